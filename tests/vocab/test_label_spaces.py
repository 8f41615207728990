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
