"""Pointcept's preprocessed folders -> Scene: one folder per scene holding `coord.npy`, `color.npy`, ... .

What Pointcept's preprocessing scripts (pointcept/datasets/preprocessing/*) write, per dataset:

| dataset      | scene folders                                   | label file      | labels                        |
|--------------|-------------------------------------------------|-----------------|-------------------------------|
| scannet      | `{train,val,test}/sceneXXXX_XX/`                | `segment20.npy` | ScanNet20, 0..19, -1 ignore   |
| s3dis        | `Area_N/<room>/` (split by `val_area`)          | `segment.npy`   | S3DIS13, 0..12                |
| structured3d | `{train,val,test}/scene_XXXXX/room_N/`          | `segment.npy`   | Structured3D25, 0..24, -1     |
| matterport3d | `{train,val,test}/<house>_<region:02d>/`        | `segment.npy`   | Matterport3D21, 0..20, -1     |
| waymo        | `{training,validation,testing}/<context>/<ts>/` | `segment.npy`   | Waymo22 = type - 1, -1 ignore |

Fields read when present: `coord` (required), `color`, `normal`, `strength`, the label file, `instance`; anything else
(`segment200.npy`, Waymo's `pose.npy` and pickled `mask.npy`) is never opened. Pointcept saves some fields as
(N, 1) columns and labels as int64; both are accepted. Test splits carry no label file; train and val scenes must.
Each label id is mapped *by class name* from Pointcept's class list (its configs' `names`) to pmoe's label space, so a
reordered list could never shift labels; the tables below match pmoe's order today. A value outside -1..C-1 means
the folder is not what `--dataset` says: the scene is refused, naming the file.
SemanticKITTI and nuScenes are read by Pointcept from their raw layouts, which `pmoe convert semantickitti|nuscenes`
reads directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.io.arrays import load_npy_array
from pmoe_core.scene import FIELD_SPECS, IGNORE_INDEX, Scene
from pmoe_core.sources.base import SceneRef, Warn
from pmoe_core.vocab.label_spaces import LABEL_SPACES, LabelSpace, resolve_dataset

NAME = "pointcept"
FAR_M = 10_000.0  # outdoor scans reach ~100 m; indoor rooms far less: only absurd points are flagged

# Pointcept's class names in the order of its segment ids (configs/<dataset>/semseg-*.py `names`).
POINTCEPT_CLASSES: dict[str, tuple[str, ...]] = {
    "scannet": ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
                "picture", "counter", "desk", "curtain", "refridgerator", "shower curtain", "toilet", "sink",
                "bathtub", "otherfurniture"),
    "s3dis": ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa", "bookcase",
              "board", "clutter"),
    "structured3d": ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "picture", "desk",
                     "shelves", "curtain", "dresser", "pillow", "mirror", "ceiling", "refrigerator", "television",
                     "nightstand", "sink", "lamp", "otherstructure", "otherfurniture", "otherprop"),
    "matterport3d": ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
                     "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
                     "bathtub", "other", "ceiling"),
    "waymo": ("Car", "Truck", "Bus", "Other Vehicle", "Motorcyclist", "Bicyclist", "Pedestrian", "Sign",
              "Traffic Light", "Pole", "Construction Cone", "Bicycle", "Motorcycle", "Building", "Vegetation",
              "Tree Trunk", "Curb", "Road", "Lane Marker", "Other Ground", "Walkable", "Sidewalk"),
}
# Pointcept spellings that are not pmoe's class name up to case, spaces, `_` and `-`.
RENAMED: dict[str, dict[str, str]] = {"scannet": {"refridgerator": "refrigerator"}}
SUPPORTED = tuple(POINTCEPT_CLASSES)
NOT_A_CLASS = -2  # a label-table entry for a raw id that names no class
LABEL_FILE = {"scannet": "segment20"}  # every other dataset: segment
SCENE_DEPTH = {"structured3d": 2, "waymo": 2}  # folders below a split folder down to a scene; others 1
SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "test",
                 "training": "train", "validation": "val", "testing": "test"}  # Waymo keeps Waymo's names


@dataclass
class Options:
    dataset: str = field(default="", metadata={
        "help": f"which dataset the folders hold (required): {', '.join(SUPPORTED)}"})
    val_area: int = field(default=5, metadata={"help": "S3DIS: this area is the val split, the others train"})
    segment: str = field(default="", metadata={
        "help": "label file stem to read instead of the dataset's default (segment20 for ScanNet, else segment)"})

    def __post_init__(self) -> None:
        if not 1 <= self.val_area <= 6:
            raise BadInput(f"option val_area must be an S3DIS area 1..6, got {self.val_area}")


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " _-")


def dataset_name(options: Options) -> str:
    """The pmoe dataset the folders hold (checked: one that Pointcept preprocesses into scene folders)."""
    if not options.dataset:
        raise BadInput(f"pointcept folders need --dataset NAME ({', '.join(SUPPORTED)})")
    name = resolve_dataset(options.dataset)
    if name not in POINTCEPT_CLASSES:
        raise BadInput(f"Pointcept reads {name} from its raw layout, not from preprocessed scene folders: use "
                       f"`pmoe convert {name} RAW OUT` (pointcept --dataset takes {', '.join(SUPPORTED)})")
    if (options.segment or LABEL_FILE.get(name, "segment")) == "segment200":
        raise BadInput("segment200 holds ScanNet200 ids; pmoe's ScanNet label space is ScanNet20 (segment20)")
    return name


def label_table(dataset: str) -> np.ndarray:
    """`lut[pointcept_id] = pmoe class index`, built by class name."""
    space: LabelSpace = LABEL_SPACES[dataset]
    by_key = {_key(c): i for i, c in enumerate(space.classes)}
    renamed = RENAMED.get(dataset, {})
    lut = np.empty(len(POINTCEPT_CLASSES[dataset]), dtype=np.int16)
    for i, name in enumerate(POINTCEPT_CLASSES[dataset]):
        lut[i] = by_key[_key(renamed.get(name, name))]  # KeyError = a table error, caught by the tests
    return lut


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    dataset = dataset_name(options)
    root = Path(root)
    refs: list[SceneRef] = []
    for top in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        split = _split_of(dataset, top.name, options)
        if split is None:
            continue
        for folder in _scene_folders(top, SCENE_DEPTH.get(dataset, 1)):
            parts = folder.relative_to(top).parts
            name = "_".join(((top.name,) if dataset == "s3dis" else ()) + parts)
            refs.append(SceneRef(name, split, (str(folder),), {"dataset": dataset}))
    if not refs:
        wanted = "Area_1 .. Area_6" if dataset == "s3dis" else ", ".join(
            k for k, v in SPLIT_FOLDERS.items() if dataset == "waymo" or k == v)
        raise MissingFile(f"no Pointcept {dataset} scene folders found (expected split folders {wanted})", root)
    return refs


def _split_of(dataset: str, folder: str, options: Options) -> str | None:
    if dataset == "s3dis":
        if not (folder.startswith("Area_") and folder[5:].isdigit()):
            return None
        return "val" if int(folder[5:]) == options.val_area else "train"
    return SPLIT_FOLDERS.get(folder)


def _scene_folders(top: Path, depth: int) -> list[Path]:
    level = [top]
    for _ in range(depth):
        level = [c for p in level for c in sorted(p.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    return level


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    dataset = ref.meta.get("dataset") or dataset_name(options)
    folder = Path(ref.paths[0])
    label_file = options.segment or LABEL_FILE.get(dataset, "segment")
    return read_folder(folder, ref.name, label_file, label_table(dataset), labels_required=ref.split != "test",
                       what=f"Pointcept {dataset}")


def read_folder(folder: Path, name: str, label_file: str, lut: np.ndarray | None, labels_required: bool,
                what: str, ignore: int = IGNORE_INDEX, fields: tuple[str, ...] | None = None) -> Scene:
    """One folder of per-field .npy files as a Scene (shared with custom datasets in this layout).

    `lut[raw] = class index` maps the label file's values (`ignore` -> -1; a value outside the table, or whose
    entry is NOT_A_CLASS, is an error naming the file); `lut=None` keeps no labels. `fields` limits the optional
    fields read and requires each of them (None: every field present)."""
    coord_path = folder / "coord.npy"
    if not coord_path.is_file():
        raise MissingFile(f"no coord.npy in this {what} scene folder", folder)
    coord = read_array(coord_path, "f", 3)
    n = coord.shape[0]
    arrays: dict[str, np.ndarray] = {"coord": coord}
    for field_name in ("color", "normal", "strength", "instance"):
        path = folder / f"{field_name}.npy"
        if (fields is None or field_name in fields) and path.is_file():
            arrays[field_name] = _field(path, field_name, n)
        elif fields is not None and field_name in fields:
            raise MissingFile(f"no {field_name}.npy, which the dataset spec lists as a field", folder)
    label_path = folder / f"{label_file}.npy"
    if lut is not None and label_path.is_file():
        arrays["segment"] = _labels(label_path, n, lut, ignore)
    elif lut is not None and labels_required:
        raise MissingFile(f"no {label_file}.npy (train and val scenes need labels)", folder)
    return Scene(name, **arrays).validate(str(folder))


_KINDS = {"f": "floating-point", "iu": "integer", "fiu": "numeric", "fiub": "numeric"}


def read_array(path: Path, kinds: str, width: int, rows: int | None = None) -> np.ndarray:
    """A guarded .npy read with its dtype kind and shape checked: (N, width), or (N,) / (N, 1) when width is 0."""
    table = load_npy_array(path)
    if table.dtype.kind not in kinds or table.dtype.fields is not None:
        raise FormatError(f"dtype {table.dtype} is not {_KINDS[kinds]}", path)
    if width == 0 and table.ndim == 2 and table.shape[1] == 1:
        table = table[:, 0]
    expected = f"(N, {width})" if width else "(N,) or (N, 1)"
    if (width and (table.ndim != 2 or table.shape[1] != width)) or (not width and table.ndim != 1):
        raise FormatError(f"shape {table.shape}, expected {expected}", path)
    if rows is not None and table.shape[0] != rows:
        raise FormatError(f"{table.shape[0]} rows, but coord.npy has {rows} points", path)
    return table


def _field(path: Path, field_name: str, n: int) -> np.ndarray:
    dtype, width = FIELD_SPECS[field_name]
    kinds = {"color": "fiu", "normal": "f", "strength": "f", "instance": "iu"}[field_name]
    values = read_array(path, kinds, width, n)
    if field_name == "color" and values.dtype != np.uint8 and values.size:
        lo, hi = values.min(), values.max()
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0 and hi <= 255):
            raise FormatError(f"colour values {lo}..{hi} are not 0..255", path)
    if field_name == "instance" and values.size:
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise FormatError(f"instance ids {values.min()}..{values.max()} do not fit int32", path)
    return np.asarray(values, dtype=dtype)


def _labels(path: Path, n: int, lut: np.ndarray, ignore: int) -> np.ndarray:
    raw = np.asarray(read_array(path, "iu", 0, n), dtype=np.int64)
    out = np.full(n, NOT_A_CLASS, dtype=np.int16)
    inside = (raw >= 0) & (raw < lut.shape[0])
    out[inside] = lut[raw[inside]]
    bad = (out == NOT_A_CLASS) & (raw != ignore)
    out[out < 0] = IGNORE_INDEX
    if bad.any():
        values = np.unique(raw[bad])
        shown = ", ".join(str(v) for v in values[:5]) + (", ..." if values.size > 5 else "")
        raise FormatError(f"{int(bad.sum())} labels ({shown}) are neither a class id 0..{lut.shape[0] - 1} nor the "
                          f"ignore id {ignore}", path)
    return out
