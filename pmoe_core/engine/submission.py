"""`pmoe eval --save-pred DIR`: every scene's predicted classes, and the benchmark submission files made from them.

Layout under DIR (split = the evaluated split):
```
<dataset>/<split>/classes/<scene>.npy          int16 class index into the benchmark label space, every stored point
scannet/<split>/submission/<scene>.txt         ScanNet20: the NYU40 id of every mesh vertex, one per line
semantickitti/<split>/submission/sequences/NN/predictions/NNNNNN.label
                                               uint32 raw SemanticKITTI id per point (learning_map_inv; instance 0)
nuscenes/<split>/submission/lidarseg/<split>/<lidar sample_data token>_lidarseg.bin
                                               uint8 lidarseg challenge index 1..16 per key-frame point (never 0)
nuscenes/<split>/submission/<split>/submission.json   {"meta": {"use_camera", "use_lidar", ...}}
```
S3DIS, Structured3D, Matterport3D and Waymo have no submission format here: their scenes get the `.npy` only.

What names the files comes from the store: ScanNet scene ids and SemanticKITTI `<sequence>_<frame>` are the scene
names the converters write. The nuScenes lidar token is not stored (scenes are named `<scene>_<k>`), so it is
looked up again in the raw tables the store records as its source, the way the converter listed the key frames;
the key frame's point count comes from its `.pcd.bin` size (sweep points, stored after them, are left out).
All of that is resolved in `begin`, before any model time; every file is written whole or not at all.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile, StoreError
from pmoe_core.jsonio import write_json_atomic
from pmoe_core.outputs import atomic_path
from pmoe_core.store import StoreReader
from pmoe_core.vocab.label_spaces import NUSCENES, SCANNET, SEMANTICKITTI, LabelSpace

SUBMISSION_DATASETS = ("scannet", "semantickitti", "nuscenes")

# semantic-kitti.yaml `learning_map_inv`: the raw id a predicted class is written as. Where several raw ids map to
# one class (moving-car, on-rails, ...), the official inverse picks the static id, and "other-vehicle" is 20, not 13.
SEMANTICKITTI_INVERSE = {
    "car": 10, "bicycle": 11, "motorcycle": 15, "truck": 18, "other-vehicle": 20, "person": 30, "bicyclist": 31,
    "motorcyclist": 32, "road": 40, "parking": 44, "sidewalk": 48, "other-ground": 49, "building": 50, "fence": 51,
    "vegetation": 70, "trunk": 71, "terrain": 72, "pole": 80, "traffic-sign": 81,
}
NUSCENES_META = ("use_camera", "use_lidar", "use_radar", "use_map", "use_external")
KITTI_SCENE = re.compile(r"(\d{1,2})_(\d{1,6})")


def submission_values(dataset: str) -> np.ndarray:
    """Class index -> the value its benchmark's submission file holds, for the three datasets that have one.

    ScanNet: the class's NYU40 id. SemanticKITTI: the raw id of learning_map_inv. nuScenes: the lidarseg challenge
    index (class + 1; 0 is "ignore" and not allowed in a submission). Each is checked against the label space's
    raw-id map, so a value read back through the dataset's learning map gives the class again."""
    if dataset == "scannet":
        inverse = _unique_inverse(SCANNET)
    elif dataset == "semantickitti":
        inverse = [SEMANTICKITTI_INVERSE[name] for name in SEMANTICKITTI.classes]
        assert all(SEMANTICKITTI.raw_to_name[raw] == name for name, raw in SEMANTICKITTI_INVERSE.items())
    elif dataset == "nuscenes":
        inverse = list(range(1, NUSCENES.num_classes + 1))
    else:
        raise BadInput(f"{dataset} has no benchmark submission format here (its predictions are saved as .npy)")
    return np.asarray(inverse, dtype=np.int64)


def _unique_inverse(space: LabelSpace) -> list[int]:
    raws: dict[str, list[int]] = {}
    for raw, name in space.raw_to_name.items():
        raws.setdefault(name, []).append(raw)
    assert all(len(raws[name]) == 1 for name in space.classes), f"{space.dataset}: a class has several raw ids"
    return [raws[name][0] for name in space.classes]


@dataclass(frozen=True)
class NuScenesFrame:
    token: str  # LIDAR_TOP key-frame sample_data token (= lidarseg token)
    points: int  # points of the key-frame .pcd.bin; the stored scene may add sweep points after them


@dataclass
class SavedPredictions:
    """What `PredictionWriter` wrote, per dataset: scenes and submission files (for the CLI's summary line)."""

    out: Path
    scenes: dict[str, int] = field(default_factory=dict)
    submission_files: dict[str, int] = field(default_factory=dict)


class PredictionWriter:
    """The prediction sink `evaluate(..., predictions=...)` hands each scene's classes to; writes DIR's layout."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.saved = SavedPredictions(self.out)
        self._split = ""
        self._frames: dict[str, NuScenesFrame] = {}
        self._values = {name: submission_values(name) for name in SUBMISSION_DATASETS}

    def begin(self, dataset: str, split: str, stores: Sequence[str], count: int) -> None:
        """Check that every scene to come can be named (and find nuScenes tokens) before the model runs."""
        self._split = split
        names = _scene_names(stores, split)[:count]
        for name in names:
            _check_file_name(name, stores[0])
            if dataset == "semantickitti":
                _kitti_parts(name, stores[0])
        if dataset == "nuscenes":
            frames = nuscenes_frames(stores, split)
            missing = [n for n in names if n not in frames]
            if missing:
                raise FormatError(f"scene {missing[0]} is not a key frame of the raw nuScenes tables the store was "
                                  "converted from, so its lidar token is unknown", stores[0])
            self._frames.update({n: frames[n] for n in names})
        self.saved.scenes.setdefault(dataset, 0)

    def scene(self, dataset: str, name: str, classes: np.ndarray) -> None:
        """Save one scene's predicted class indices (stored point order) and, where the benchmark has one, its
        submission file."""
        classes = np.asarray(classes)
        if classes.size and (classes.min() < 0 or classes.max() >= 2 ** 15):
            raise ValueError(f"{dataset} {name}: class indices outside 0..32767")  # eval passes own-label-set classes
        base = self.out / dataset / self._split
        _save_npy(base / "classes" / f"{name}.npy", classes.astype(np.int16))
        self.saved.scenes[dataset] = self.saved.scenes.get(dataset, 0) + 1
        if dataset not in SUBMISSION_DATASETS:
            return
        values = self._values[dataset][classes.astype(np.int64)]
        sub = base / "submission"
        if dataset == "scannet":
            write_scannet_txt(sub / f"{name}.txt", values)
        elif dataset == "semantickitti":
            sequence, frame = _kitti_parts(name, name)
            write_kitti_label(sub / "sequences" / f"{sequence:02d}" / "predictions" / f"{frame:06d}.label", values)
        else:
            frame = self._frames[name]
            if values.shape[0] < frame.points:
                raise FormatError(f"stored scene has {values.shape[0]} points, fewer than the {frame.points} of its "
                                  "raw key frame", name)
            write_nuscenes_bin(sub / "lidarseg" / self._split / f"{frame.token}_lidarseg.bin", values[:frame.points])
        self.saved.submission_files[dataset] = self.saved.submission_files.get(dataset, 0) + 1

    def finish(self, trained_on: Sequence[str]) -> SavedPredictions:
        """Write what belongs to a whole split (nuScenes' submission.json) once every scene is in."""
        if "nuscenes" in self.saved.scenes:
            meta = nuscenes_meta(trained_on)
            write_json_atomic(self.out / "nuscenes" / self._split / "submission" / self._split / "submission.json",
                              {"meta": meta}, make_parents=True)
        return self.saved


def nuscenes_meta(trained_on: Sequence[str]) -> dict[str, bool]:
    """Lidar only; a model trained on any dataset besides nuScenes used external data (the lidar track forbids it)."""
    return {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False,
            "use_external": any(d != "nuscenes" for d in trained_on)}


# --- file formats --------------------------------------------------------------------------------------------------

def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, make_parents=True) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def write_scannet_txt(path: Path, nyu40: np.ndarray) -> None:
    """ScanNet benchmark: `<scene>.txt`, the NYU40 id of every vertex of the scene's mesh, one per line."""
    with atomic_path(path, make_parents=True) as tmp:
        tmp.write_text("".join(f"{v}\n" for v in nyu40.tolist()), encoding="ascii")


def write_kitti_label(path: Path, raw: np.ndarray) -> None:
    """SemanticKITTI: one little-endian uint32 per point, raw semantic id in the low 16 bits, instance 0."""
    with atomic_path(path, make_parents=True) as tmp:
        raw.astype("<u4").tofile(tmp)


def write_nuscenes_bin(path: Path, index: np.ndarray) -> None:
    """nuScenes-lidarseg: one uint8 challenge index (1..16) per point of the key-frame point cloud."""
    with atomic_path(path, make_parents=True) as tmp:
        index.astype(np.uint8).tofile(tmp)


# --- naming --------------------------------------------------------------------------------------------------------

def _scene_names(stores: Sequence[str], split: str) -> list[str]:
    """Scene names of `split` in the order evaluate reads them (stores in order, as SceneDataset does)."""
    names: list[str] = []
    for url in stores:
        reader = StoreReader(url)
        if split in reader.splits:
            names += reader.names(split)
    return names


def _check_file_name(name: str, where: str) -> None:
    if not name or name in (".", "..") or any(ch in name for ch in "/\\\0"):
        raise FormatError(f"scene name {name!r} cannot be a file name", where)


def _kitti_parts(name: str, where: str) -> tuple[int, int]:
    """SemanticKITTI scenes are `<sequence>_<frame>` (pmoe convert's naming): both numbers name the .label file."""
    match = KITTI_SCENE.fullmatch(name)
    if not match:
        raise FormatError(f"SemanticKITTI scene {name!r} is not named <sequence>_<frame> (as pmoe convert names "
                          "scans), so its predictions/NNNNNN.label path cannot be derived", where)
    return int(match.group(1)), int(match.group(2))


def nuscenes_frames(stores: Sequence[str], split: str) -> dict[str, NuScenesFrame]:
    """Scene name -> key-frame token and point count, from the raw tables recorded in each store's `source`."""
    from pmoe_core.sources import nuscenes

    frames: dict[str, NuScenesFrame] = {}
    sources = {}  # shards of one conversion share their source: list its tables once
    for url in stores:
        sources.setdefault(str(StoreReader(url).attrs.get("source", "")), url)
    for source, url in sources.items():
        root, options = _nuscenes_source(source, url)
        for ref in nuscenes.list_scenes(root, options):
            if ref.split != split:
                continue
            key_file = Path(ref.paths[0])
            if not key_file.is_file():
                raise MissingFile("key-frame lidar file of the store's raw source not found (its size gives the "
                                  "point count a submission file must have)", key_file)
            frames[ref.name] = NuScenesFrame(ref.meta["token"], key_file.stat().st_size // (4 * nuscenes.POINT_WIDTH))
    return frames


def _nuscenes_source(source: str, url: str):
    """(raw root, reader Options) from a store's `source` attribute: "<module> reading <root>[ with options k=v, ..]"."""
    from pmoe_core.sources import nuscenes

    prefix = f"{nuscenes.__name__} reading "
    if not source.startswith(prefix):
        raise StoreError("this nuScenes store does not record the raw tables it was converted from, and the lidar "
                         "sample_data tokens that name nuScenes submission files are not stored; convert it with "
                         "pmoe convert", url)
    root, _, option_text = source[len(prefix):].partition(" with options ")
    kwargs = {}
    if option_text:
        try:
            call = ast.parse(f"f({option_text})", mode="eval").body
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError):
            raise StoreError(f"cannot read the converter options in the store's source {source!r}", url) from None
    if not Path(root).is_dir():
        raise MissingFile("the raw nuScenes folder this store was converted from is needed to name submission files "
                          "(the store keeps no lidar tokens), and is not there", root)
    try:
        return Path(root), nuscenes.Options(**kwargs)
    except TypeError:
        raise StoreError(f"unknown converter options in the store's source {source!r}", url) from None
