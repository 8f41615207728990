"""The seven benchmark label spaces, with names in benchmark order and each dataset's raw-id -> class map.

Sources: the official devkits and benchmark definitions (summarised in shared/reference/datasets.md). Every map is
written from raw id to class *name* and turned into indices by looking the name up, so a reordering of a class
list can never silently shift a label onto the wrong class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pmoe_core.scene import IGNORE_INDEX


@dataclass(frozen=True)
class LabelSpace:
    """A dataset's benchmark classes and how its raw label ids reach them.

    `raw_kind` says what the raw ids are: "nyu40" (NYU40 ids, ScanNet/Structured3D/Matterport3D), "name"
    (S3DIS: the class is the annotation file's name), or the dataset's own raw semantic id.
    """

    dataset: str
    benchmark: str
    classes: tuple[str, ...]
    raw_kind: str
    raw_to_name: dict[int, str] = field(default_factory=dict)
    fallback: str | None = None  # class for names outside the list (S3DIS: clutter); None = ignore

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        return self.classes.index(name)

    def raw_to_index(self) -> dict[int, int]:
        return {raw: self.index(name) for raw, name in self.raw_to_name.items()}

    def lookup_table(self, size: int | None = None) -> np.ndarray:
        """An int16 array `lut` with `lut[raw] = class index` (IGNORE_INDEX elsewhere), for vectorised mapping."""
        mapping = self.raw_to_index()
        size = size if size is not None else (max(mapping) + 1 if mapping else 1)
        lut = np.full(size, IGNORE_INDEX, dtype=np.int16)
        for raw, idx in mapping.items():
            if raw < size:
                lut[raw] = idx
        return lut

    def map_raw(self, raw: np.ndarray) -> np.ndarray:
        """Map an array of raw ids to class indices; ids outside the map (or negative) become IGNORE_INDEX."""
        raw = np.asarray(raw).astype(np.int64)
        lut = self.lookup_table()
        out = np.full(raw.shape, IGNORE_INDEX, dtype=np.int16)
        ok = (raw >= 0) & (raw < lut.shape[0])
        out[ok] = lut[raw[ok]]
        return out

    def map_name(self, name: str) -> int:
        """S3DIS-style: a class name (from a file name) to its index, or the fallback / ignore."""
        if name in self.classes:
            return self.index(name)
        return self.index(self.fallback) if self.fallback else IGNORE_INDEX


def _by_ids(ids: tuple[int, ...], names: tuple[str, ...]) -> dict[int, str]:
    assert len(ids) == len(names)
    return dict(zip(ids, names))


def _by_groups(groups: dict[str, tuple[int, ...]]) -> dict[int, str]:
    return {raw: name for name, raws in groups.items() for raw in raws}


SCANNET_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "otherfurniture",
)
SCANNET = LabelSpace(
    dataset="scannet",
    benchmark="ScanNet20",
    classes=SCANNET_CLASSES,
    raw_kind="nyu40",
    raw_to_name=_by_ids((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39), SCANNET_CLASSES),
)

S3DIS = LabelSpace(
    dataset="s3dis",
    benchmark="S3DIS13",
    classes=("ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa", "bookcase",
             "board", "clutter"),
    raw_kind="name",
    fallback="clutter",
)

STRUCTURED3D_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "picture", "desk", "shelves",
    "curtain", "dresser", "pillow", "mirror", "ceiling", "refrigerator", "television", "nightstand", "sink", "lamp",
    "otherstructure", "otherfurniture", "otherprop",
)
STRUCTURED3D = LabelSpace(
    dataset="structured3d",
    benchmark="Structured3D25",
    classes=STRUCTURED3D_CLASSES,
    raw_kind="nyu40",
    raw_to_name=_by_ids(
        (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14, 15, 16, 17, 18, 19, 22, 24, 25, 32, 34, 35, 38, 39, 40),
        STRUCTURED3D_CLASSES,
    ),
)

MATTERPORT_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture", "counter",
    "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "other", "ceiling",
)
MATTERPORT3D = LabelSpace(
    dataset="matterport3d",
    benchmark="Matterport3D21",
    classes=MATTERPORT_CLASSES,
    raw_kind="nyu40",
    # Order matters and was once swapped in widely used code: "other" is nyu40 39 (index 19), "ceiling" nyu40 22.
    raw_to_name=_by_ids(
        (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39, 22), MATTERPORT_CLASSES
    ),
)

NUSCENES = LabelSpace(
    dataset="nuscenes",
    benchmark="nuScenes16",
    classes=("barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian", "traffic_cone",
             "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain", "manmade", "vegetation"),
    raw_kind="nuscenes-lidarseg",
    raw_to_name=_by_groups({
        "barrier": (9,), "bicycle": (14,), "bus": (15, 16), "car": (17,), "construction_vehicle": (18,),
        "motorcycle": (21,), "pedestrian": (2, 3, 4, 6), "traffic_cone": (12,), "trailer": (22,), "truck": (23,),
        "driveable_surface": (24,), "other_flat": (25,), "sidewalk": (26,), "terrain": (27,), "manmade": (28,),
        "vegetation": (30,),
    }),
)

SEMANTICKITTI = LabelSpace(
    dataset="semantickitti",
    benchmark="SemanticKITTI19",
    classes=("car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist",
             "road", "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk", "terrain",
             "pole", "traffic-sign"),
    raw_kind="semantickitti",
    raw_to_name=_by_groups({
        "car": (10, 252), "bicycle": (11,), "motorcycle": (15,), "truck": (18, 258),
        "other-vehicle": (13, 16, 20, 256, 257, 259), "person": (30, 254), "bicyclist": (31, 253),
        "motorcyclist": (32, 255), "road": (40, 60), "parking": (44,), "sidewalk": (48,), "other-ground": (49,),
        "building": (50,), "fence": (51,), "vegetation": (70,), "trunk": (71,), "terrain": (72,), "pole": (80,),
        "traffic-sign": (81,),
    }),
)

WAYMO_RAW_TYPES = (
    "UNDEFINED", "CAR", "TRUCK", "BUS", "OTHER_VEHICLE", "MOTORCYCLIST", "BICYCLIST", "PEDESTRIAN", "SIGN",
    "TRAFFIC_LIGHT", "POLE", "CONSTRUCTION_CONE", "BICYCLE", "MOTORCYCLE", "BUILDING", "VEGETATION", "TREE_TRUNK",
    "CURB", "ROAD", "LANE_MARKER", "OTHER_GROUND", "WALKABLE", "SIDEWALK",
)
WAYMO_CLASSES = tuple(name.lower() for name in WAYMO_RAW_TYPES[1:])
WAYMO = LabelSpace(
    dataset="waymo",
    benchmark="Waymo22",
    classes=WAYMO_CLASSES,
    raw_kind="waymo-segmentation-type",
    raw_to_name={raw: WAYMO_RAW_TYPES[raw].lower() for raw in range(1, len(WAYMO_RAW_TYPES))},
)

LABEL_SPACES: dict[str, LabelSpace] = {
    space.dataset: space for space in (SCANNET, S3DIS, STRUCTURED3D, MATTERPORT3D, NUSCENES, SEMANTICKITTI, WAYMO)
}
INDOOR = ("scannet", "s3dis", "structured3d", "matterport3d")
OUTDOOR = ("nuscenes", "semantickitti", "waymo")

ALIASES: dict[str, str] = {
    "scannet": "scannet", "scannetv2": "scannet", "scannet20": "scannet",
    "s3dis": "s3dis",
    "structured3d": "structured3d", "s3d": "structured3d", "struct3d": "structured3d",
    "matterport3d": "matterport3d", "matterport": "matterport3d", "mp3d": "matterport3d",
    "nuscenes": "nuscenes", "nus": "nuscenes", "nuscenes-lidarseg": "nuscenes",
    "semantickitti": "semantickitti", "kitti": "semantickitti", "skitti": "semantickitti", "semkitti": "semantickitti",
    "waymo": "waymo", "wod": "waymo",
}


def _alias_key(name: str) -> str:
    """Spelling-insensitive key: "Semantic-KITTI", "semantic_kitti" and "semantickitti" are one name."""
    return "".join(ch for ch in name.strip().lower() if ch not in "_- ")


def resolve_dataset(name: str) -> str:
    """Canonical dataset name from a user-typed name or alias (case-insensitive)."""
    from pmoe_core.errors import BadInput
    from pmoe_core.vocab.custom import registered

    key = _alias_key(name)
    for alias, canonical in ALIASES.items():
        if key == _alias_key(alias):
            return canonical
    if registered(name) is not None:  # a custom dataset whose store this process has opened (vocab/custom.py)
        return name
    known = ", ".join(LABEL_SPACES)
    raise BadInput(f"unknown dataset {name!r} (known: {known}; aliases: kitti, nus, s3d, mp3d, ...; "
                   "or a custom dataset's store in the data folder)")


def label_space(name: str) -> LabelSpace:
    from pmoe_core.vocab.custom import registered

    canonical = resolve_dataset(name)
    custom = registered(canonical)
    return custom.space if custom is not None else LABEL_SPACES[canonical]
