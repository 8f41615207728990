"""What every raw-dataset source module provides, so one converter drives them all.

A source module (e.g. `pmoe_core.sources.scannet`) exposes:

- `NAME: str` (canonical dataset name, a key of `pmoe_core.vocab.label_spaces.LABEL_SPACES`)
- `FAR_M: float`: a point farther than this from its scene's median point is implausible for the domain (1 km
  indoor, 10 km outdoor); convert keeps such points and warns once per scene with their count
- `Options`: a dataclass of its reader options, every field with a default; its `__post_init__` refuses values
  out of range (BadInput), so a bad `-O KEY=VALUE` stops before any work
- `list_scenes(root: Path, options: Options) -> list[SceneRef]`: every scene under the raw root, in a stable order
- `read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene`: one scene, labels in the benchmark space

`read_scene` raises a `PmoeError` (FormatError / MissingFile, naming the file) for a scene it cannot read; it calls
`warn` for defects it survives (e.g. a stray byte in an S3DIS annotation file), naming the file. A scene that
`list_scenes` finds but already knows to be unreadable (a house whose region archive is a dangling link) is listed
with `problem` set, so convert skips it and counts it (or stops under --strict) instead of dropping it silently.
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
    prefix or a frame token, as strings so the ref pickles cheaply to worker processes. `problem`, when not empty,
    is why the scene cannot be read ("<file>: <problem>"); convert skips it with that reason.
    """

    name: str
    split: str
    paths: tuple[str, ...]
    meta: dict[str, str] = field(default_factory=dict)
    problem: str = ""


def noop_warn(message: str) -> None:
    """Default warning sink for library callers that do not collect warnings."""
