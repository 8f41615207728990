"""Raw label id -> benchmark class, for ids taken straight from shared/reference/datasets.md."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pmoe_core.errors import BadInput
from pmoe_core.scene import IGNORE_INDEX
from pmoe_core.vocab import LABEL_SPACES, label_space, resolve_dataset

# (dataset, raw id, expected class name or None for ignore, expected index or None)
RAW_CASES = [
    ("semantickitti", 252, "car", 0),  # moving-car
    ("semantickitti", 10, "car", 0),
    ("semantickitti", 99, None, None),  # other-object -> ignore
    ("semantickitti", 0, None, None),
    ("semantickitti", 52, None, None),
    ("semantickitti", 60, "road", 8),  # lane marking -> road
    ("semantickitti", 254, "person", 5),
    ("semantickitti", 253, "bicyclist", 6),
    ("semantickitti", 257, "other-vehicle", 4),
    ("semantickitti", 258, "truck", 3),
    ("semantickitti", 71, "trunk", 15),
    ("semantickitti", 81, "traffic-sign", 18),
    ("nuscenes", 24, "driveable_surface", 10),
    ("nuscenes", 1, None, None),  # animal -> ignore
    ("nuscenes", 0, None, None),
    ("nuscenes", 31, None, None),  # ego vehicle
    ("nuscenes", 2, "pedestrian", 6),
    ("nuscenes", 6, "pedestrian", 6),
    ("nuscenes", 5, None, None),  # personal mobility
    ("nuscenes", 16, "bus", 2),
    ("nuscenes", 9, "barrier", 0),
    ("nuscenes", 30, "vegetation", 15),
    ("matterport3d", 22, "ceiling", 20),
    ("matterport3d", 39, "other", 19),
    ("matterport3d", 10, "bookshelf", 9),
    ("matterport3d", 13, None, None),  # nyu40 blinds: not kept
    ("matterport3d", 40, None, None),
    ("scannet", 1, "wall", 0),
    ("scannet", 10, "bookshelf", 9),
    ("scannet", 28, "shower curtain", 15),
    ("scannet", 39, "otherfurniture", 19),
    ("scannet", 22, None, None),  # ceiling is not a ScanNet20 class
    ("scannet", 40, None, None),
    ("structured3d", 22, "ceiling", 16),
    ("structured3d", 15, "shelves", 11),
    ("structured3d", 32, "nightstand", 19),
    ("structured3d", 40, "otherprop", 24),
    ("structured3d", 10, None, None),  # bookshelf is not a Structured3D25 class
    ("structured3d", 0, None, None),
    ("waymo", 1, "car", 0),
    ("waymo", 0, None, None),
    ("waymo", 7, "pedestrian", 6),
    ("waymo", 11, "construction_cone", 10),
    ("waymo", 22, "sidewalk", 21),
]


@pytest.mark.parametrize(("dataset", "raw", "name", "index"), RAW_CASES,
                         ids=[f"{d}:{r}" for d, r, _, _ in RAW_CASES])
def test_raw_id_maps_to_class(dataset, raw, name, index):
    space = LABEL_SPACES[dataset]
    assert space.raw_to_name.get(raw) == name
    expected = IGNORE_INDEX if index is None else index
    assert int(space.map_raw(np.array([raw]))[0]) == expected
    if name is not None:
        assert space.classes[index] == name


def test_class_counts():
    counts = {d: s.num_classes for d, s in LABEL_SPACES.items()}
    assert counts == {"scannet": 20, "s3dis": 13, "structured3d": 25, "matterport3d": 21, "nuscenes": 16,
                      "semantickitti": 19, "waymo": 22}


def test_map_raw_vectorised_and_out_of_range():
    space = label_space("kitti")
    out = space.map_raw(np.array([252, 99, 40, -3, 100000]))
    assert out.dtype == np.int16
    assert out.tolist() == [0, IGNORE_INDEX, 8, IGNORE_INDEX, IGNORE_INDEX]


def test_s3dis_names_and_fallback():
    space = label_space("s3dis")
    assert space.map_name("ceiling") == 0
    assert space.map_name("bookcase") == 10
    assert space.map_name("stairs") == space.index("clutter") == 12


def test_resolve_dataset_aliases():
    assert resolve_dataset("KITTI") == "semantickitti"
    assert resolve_dataset("Semantic-KITTI") == "semantickitti"
    assert resolve_dataset("nuscenes_lidarseg") == "nuscenes"
    assert resolve_dataset("mp3d") == "matterport3d"
    with pytest.raises(BadInput, match=re.escape("unknown dataset 'scannet++'")):
        resolve_dataset("scannet++")


# The complete raw-id -> class maps, copied by hand from shared/reference/datasets.md (not derived from the code):
# every raw id the benchmark keeps, and nothing else (anything absent maps to ignore).
REFERENCE_RAW_MAPS: dict[str, dict[int, str]] = {
    "scannet": dict(zip(
        (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39),
        ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
         "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
         "otherfurniture"))),
    "structured3d": dict(zip(
        (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14, 15, 16, 17, 18, 19, 22, 24, 25, 32, 34, 35, 38, 39, 40),
        ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "picture", "desk", "shelves",
         "curtain", "dresser", "pillow", "mirror", "ceiling", "refrigerator", "television", "nightstand", "sink",
         "lamp", "otherstructure", "otherfurniture", "otherprop"))),
    "matterport3d": {
        1: "wall", 2: "floor", 3: "cabinet", 4: "bed", 5: "chair", 6: "sofa", 7: "table", 8: "door", 9: "window",
        10: "bookshelf", 11: "picture", 12: "counter", 14: "desk", 16: "curtain", 24: "refrigerator",
        28: "shower curtain", 33: "toilet", 34: "sink", 36: "bathtub", 39: "other", 22: "ceiling",
    },
    "nuscenes": {
        9: "barrier", 14: "bicycle", 15: "bus", 16: "bus", 17: "car", 18: "construction_vehicle", 21: "motorcycle",
        2: "pedestrian", 3: "pedestrian", 4: "pedestrian", 6: "pedestrian", 12: "traffic_cone", 22: "trailer",
        23: "truck", 24: "driveable_surface", 25: "other_flat", 26: "sidewalk", 27: "terrain", 28: "manmade",
        30: "vegetation",
    },
    "semantickitti": {
        10: "car", 252: "car", 11: "bicycle", 15: "motorcycle", 18: "truck", 258: "truck", 13: "other-vehicle",
        16: "other-vehicle", 20: "other-vehicle", 256: "other-vehicle", 257: "other-vehicle", 259: "other-vehicle",
        30: "person", 254: "person", 31: "bicyclist", 253: "bicyclist", 32: "motorcyclist", 255: "motorcyclist",
        40: "road", 60: "road", 44: "parking", 48: "sidewalk", 49: "other-ground", 50: "building", 51: "fence",
        70: "vegetation", 71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign",
    },
    "waymo": {
        1: "car", 2: "truck", 3: "bus", 4: "other_vehicle", 5: "motorcyclist", 6: "bicyclist", 7: "pedestrian",
        8: "sign", 9: "traffic_light", 10: "pole", 11: "construction_cone", 12: "bicycle", 13: "motorcycle",
        14: "building", 15: "vegetation", 16: "tree_trunk", 17: "curb", 18: "road", 19: "lane_marker",
        20: "other_ground", 21: "walkable", 22: "sidewalk",
    },
}
# Raw ids the reference sends to ignore explicitly.
REFERENCE_IGNORED = {
    "nuscenes": (0, 1, 5, 7, 8, 10, 11, 13, 19, 20, 29, 31),
    "semantickitti": (0, 1, 52, 99),
    "waymo": (0,),
}


@pytest.mark.parametrize("dataset", list(REFERENCE_RAW_MAPS))
def test_complete_raw_map_matches_the_reference(dataset):
    space = LABEL_SPACES[dataset]
    assert space.raw_to_name == REFERENCE_RAW_MAPS[dataset]
    raw = np.array(sorted(REFERENCE_RAW_MAPS[dataset]))
    names = [space.classes[i] for i in space.map_raw(raw)]
    assert names == [REFERENCE_RAW_MAPS[dataset][r] for r in raw]  # each id lands on its class *by name*
    assert set(REFERENCE_RAW_MAPS[dataset].values()) == set(space.classes)  # every class is reachable
    ignored = np.array(REFERENCE_IGNORED.get(dataset, ()), dtype=np.int64)
    assert (space.map_raw(ignored) == IGNORE_INDEX).all()


def test_nuscenes_raw_ids_are_all_accounted_for():
    assert sorted([*REFERENCE_RAW_MAPS["nuscenes"], *REFERENCE_IGNORED["nuscenes"]]) == list(range(32))


def test_s3dis_has_no_raw_ids_only_names():
    space = LABEL_SPACES["s3dis"]
    assert space.raw_kind == "name" and space.raw_to_name == {}
    assert [space.map_name(c) for c in space.classes] == list(range(13))
