"""What every raw-dataset source module provides, so one converter drives them all.

A source module (e.g. `pmoe_core.sources.scannet`) exposes:

- `NAME: str` (canonical dataset name, a key of `pmoe_core.vocab.label_spaces.LABEL_SPACES`)
- `Options`: a dataclass of its reader options, every field with a default
- `list_scenes(root: Path, options: Options) -> list[SceneRef]`: every scene under the raw root, in a stable order
- `read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene`: one scene, labels in the benchmark space

`read_scene` raises `FormatError` / `MissingFile` (naming the file) for a scene it cannot read; it calls `warn`
for defects it survives (e.g. a stray byte in an S3DIS annotation file), naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

Warn = Callable[[str], None]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SceneRef:
    """One scene of a raw dataset: its store name, its split, and what the reader needs to find it.

    `name` is unique within the dataset and safe as a single path component (letters, digits, `_`, `-`, `.`).
    `paths` are the files (or archives) it is read from; `meta` carries reader-specific keys such as a zip member
    prefix or a frame token, as strings so the ref pickles cheaply to worker processes.
    """

    name: str
    split: str
    paths: tuple[str, ...]
    meta: dict[str, str] = field(default_factory=dict)


def noop_warn(message: str) -> None:
    """Default warning sink for library callers that do not collect warnings."""
