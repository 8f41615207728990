"""Scene specs of `route-inspect` and `predict`: a point-cloud file, a folder of them, or `STORE::split::scene` /
`STORE::split` in a scene store.

A spec resolves to `SceneRef`s that load lazily, so a long store split is read one scene at a time. What a scene
carries beyond its points (its dataset, hence the grid size and the class names of its labels) comes from the
store, or for a file from `--dataset` when given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.io import READERS, read_point_cloud
from pmoe_core.scene import Scene
from pmoe_core.store import StoreReader
from pmoe_core.store.layout import is_store_folder
from pmoe_core.vocab import LABEL_SPACES, dataset_entries, resolve_dataset
from pmoe_core.vocab.custom import registered

SPEC_HELP = (
    "expected FILE (.ply/.las/.laz/.npy/.npz/.bin), a FOLDER of them, STORE::split::scene (name or index) or "
    "STORE::split"
)
UNKNOWN_DATASET = "unknown"


@dataclass(frozen=True)
class SceneRef:
    """One scene to inspect: where it comes from and how to read it."""

    source: str  # the spec (or spec + index) naming this scene, for reports and errors
    dataset: str | None  # canonical dataset name when known
    read: Callable[[], Scene]

    def load(self) -> "LoadedScene":
        scene = self.read()
        return LoadedScene(self, scene, class_keys(scene, self.dataset, self.source))


@dataclass(frozen=True)
class LoadedScene:
    ref: SceneRef
    scene: Scene
    classes: np.ndarray | None  # (N,) object array of class keys per point ("" = ignore), None without labels

    @property
    def dataset_key(self) -> str:
        return self.ref.dataset or UNKNOWN_DATASET


def class_keys(scene: Scene, dataset: str | None, source: str) -> np.ndarray | None:
    """Per-point class key: the unified-vocabulary name of the label when the dataset is known (so the same class of
    two datasets is one class), else `label_<i>`. "" marks ignored points; None when the scene has no labels."""
    if scene.segment is None or not (scene.segment >= 0).any():
        return None
    seg = scene.segment.astype(np.int64)
    if dataset is None:
        names = np.array([f"label_{i}" for i in range(int(seg.max()) + 1)] + [""], dtype=object)
        return names[seg]  # -1 picks the trailing ""
    entries = dataset_entries(dataset)
    if seg.max() >= len(entries):
        raise FormatError(f"label {int(seg.max())} is outside the {dataset} label space ({len(entries)} classes)",
                          source)
    names = np.array([e.name for e in entries] + [""], dtype=object)
    return names[seg]


def resolve_specs(specs: Sequence[str], dataset: str | None = None, limit: int | None = None) -> list[SceneRef]:
    """Every scene the specs name, in order; `limit` caps the scenes taken from each `STORE::split` spec."""
    if not specs:
        raise BadInput(f"no scene given; {SPEC_HELP}")
    if limit is not None and limit < 1:
        raise BadInput(f"--limit must be at least 1, got {limit}")
    file_dataset = resolve_dataset(dataset) if dataset else None
    refs: list[SceneRef] = []
    for spec in specs:
        if "::" in spec:
            refs += _store_refs(spec, limit)
        elif Path(spec).is_dir():
            refs += _folder_refs(spec, file_dataset)
        else:
            refs.append(_file_ref(spec, file_dataset))
    return refs


def _folder_refs(spec: str, dataset: str | None) -> list[SceneRef]:
    """Every point-cloud file directly in the folder (by suffix, sorted by name)."""
    if is_store_folder(spec):
        raise BadInput(f"is a scene store; name a split: {spec}::val (or {spec}::val::SCENE)", spec)
    files = sorted(p for p in Path(spec).iterdir() if p.suffix.lower() in READERS and p.is_file())
    if not files:
        raise BadInput(f"folder holds no point-cloud file ({', '.join(READERS)})", spec)
    return [_file_ref(str(p), dataset) for p in files]


def _file_ref(spec: str, dataset: str | None) -> SceneRef:
    path = Path(spec)
    if not path.is_file():
        raise MissingFile("no such point-cloud file" if not path.exists() else "not a file", path)
    return SceneRef(source=spec, dataset=dataset, read=lambda: read_point_cloud(path).validate(spec))


def _store_refs(spec: str, limit: int | None) -> list[SceneRef]:
    parts = spec.split("::")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadInput(f"bad scene spec {spec!r}: {SPEC_HELP}")
    url, split = parts[0], parts[1]
    if "://" not in url and not Path(url).exists():
        raise MissingFile("no such scene store", url)
    reader = StoreReader(url)
    dataset = reader.dataset if reader.dataset in LABEL_SPACES or registered(reader.dataset) else None  # custom too
    if len(parts) == 3:
        key: int | str = int(parts[2]) if _is_int(parts[2]) else parts[2]
        reader.num_points(split, key)  # fail now, with the store's message, for a bad split / name / index
        return [SceneRef(spec, dataset, lambda: reader.read(split, key).validate(spec))]
    count = reader.num_scenes(split)
    if count == 0:
        raise BadInput(f"split {split!r} has no scenes", url)
    indices = range(min(count, limit) if limit else count)
    return [SceneRef(f"{url}::{split}::{i}", dataset, _store_reader(reader, split, i, spec)) for i in indices]


def _store_reader(reader: StoreReader, split: str, i: int, spec: str) -> Callable[[], Scene]:
    return lambda: reader.read(split, i).validate(spec)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
