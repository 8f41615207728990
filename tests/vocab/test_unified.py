"""The unified vocabulary, checked name by name against a table written out here (not derived from the code)."""

from __future__ import annotations

import pytest

from pmoe_core.errors import BadInput
from pmoe_core.vocab import (
    LABEL_SPACES,
    VOCABULARY,
    VocabEntry,
    dataset_entries,
    label_space,
    union_entries,
    vocab_entry,
)

# Every benchmark class of every dataset, in label-index order, with the entry it must map to.
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "scannet": [
        ("wall", "wall"), ("floor", "floor"), ("cabinet", "cabinet"), ("bed", "bed"), ("chair", "chair"),
        ("sofa", "sofa"), ("table", "table"), ("door", "door"), ("window", "window"), ("bookshelf", "bookshelf"),
        ("picture", "picture"), ("counter", "counter"), ("desk", "desk"), ("curtain", "curtain"),
        ("refrigerator", "refrigerator"), ("shower curtain", "shower_curtain"), ("toilet", "toilet"),
        ("sink", "sink"), ("bathtub", "bathtub"), ("otherfurniture", "other_furniture"),
    ],
    "s3dis": [
        ("ceiling", "ceiling"), ("floor", "floor"), ("wall", "wall"), ("beam", "beam"), ("column", "column"),
        ("window", "window"), ("door", "door"), ("table", "table"), ("chair", "chair"), ("sofa", "sofa"),
        ("bookcase", "bookshelf"), ("board", "board"), ("clutter", "clutter"),
    ],
    "structured3d": [
        ("wall", "wall"), ("floor", "floor"), ("cabinet", "cabinet"), ("bed", "bed"), ("chair", "chair"),
        ("sofa", "sofa"), ("table", "table"), ("door", "door"), ("window", "window"), ("picture", "picture"),
        ("desk", "desk"), ("shelves", "shelves"), ("curtain", "curtain"), ("dresser", "dresser"),
        ("pillow", "pillow"), ("mirror", "mirror"), ("ceiling", "ceiling"), ("refrigerator", "refrigerator"),
        ("television", "television"), ("nightstand", "nightstand"), ("sink", "sink"), ("lamp", "lamp"),
        ("otherstructure", "other_structure"), ("otherfurniture", "other_furniture"), ("otherprop", "other_prop"),
    ],
    "matterport3d": [
        ("wall", "wall"), ("floor", "floor"), ("cabinet", "cabinet"), ("bed", "bed"), ("chair", "chair"),
        ("sofa", "sofa"), ("table", "table"), ("door", "door"), ("window", "window"), ("bookshelf", "bookshelf"),
        ("picture", "picture"), ("counter", "counter"), ("desk", "desk"), ("curtain", "curtain"),
        ("refrigerator", "refrigerator"), ("shower curtain", "shower_curtain"), ("toilet", "toilet"),
        ("sink", "sink"), ("bathtub", "bathtub"), ("other", "other_furniture"), ("ceiling", "ceiling"),
    ],
    "nuscenes": [
        ("barrier", "barrier"), ("bicycle", "bicycle"), ("bus", "bus"), ("car", "car"),
        ("construction_vehicle", "construction_vehicle"), ("motorcycle", "motorcycle"), ("pedestrian", "person"),
        ("traffic_cone", "traffic_cone"), ("trailer", "trailer"), ("truck", "truck"),
        ("driveable_surface", "driveable_surface"), ("other_flat", "other_ground"), ("sidewalk", "sidewalk"),
        ("terrain", "terrain"), ("manmade", "manmade"), ("vegetation", "vegetation"),
    ],
    "semantickitti": [
        ("car", "car"), ("bicycle", "bicycle"), ("motorcycle", "motorcycle"), ("truck", "truck"),
        ("other-vehicle", "other_vehicle"), ("person", "person"), ("bicyclist", "bicyclist"),
        ("motorcyclist", "motorcyclist"), ("road", "road"), ("parking", "parking"), ("sidewalk", "sidewalk"),
        ("other-ground", "other_ground"), ("building", "building"), ("fence", "fence"),
        ("vegetation", "vegetation"), ("trunk", "tree_trunk"), ("terrain", "terrain"), ("pole", "pole"),
        ("traffic-sign", "traffic_sign"),
    ],
    "waymo": [
        ("car", "car"), ("truck", "truck"), ("bus", "bus"), ("other_vehicle", "other_vehicle"),
        ("motorcyclist", "motorcyclist"), ("bicyclist", "bicyclist"), ("pedestrian", "person"),
        ("sign", "traffic_sign"), ("traffic_light", "traffic_light"), ("pole", "pole"),
        ("construction_cone", "traffic_cone"), ("bicycle", "bicycle"), ("motorcycle", "motorcycle"),
        ("building", "building"), ("vegetation", "vegetation"), ("tree_trunk", "tree_trunk"), ("curb", "curb"),
        ("road", "road"), ("lane_marker", "lane_marker"), ("other_ground", "other_ground"),
        ("walkable", "walkable"), ("sidewalk", "sidewalk"),
    ],
}

# The prompt of every entry (the text that is embedded).
EXPECTED_PROMPTS: dict[str, str] = {
    "wall": "wall", "floor": "floor", "ceiling": "ceiling", "cabinet": "cabinet", "bed": "bed", "chair": "chair",
    "sofa": "sofa", "table": "table", "door": "door", "window": "window", "bookshelf": "bookshelf",
    "picture": "picture", "counter": "counter", "desk": "desk", "curtain": "curtain",
    "refrigerator": "refrigerator", "shower_curtain": "shower curtain", "toilet": "toilet", "sink": "sink",
    "bathtub": "bathtub", "other_furniture": "other furniture", "beam": "ceiling beam", "column": "column",
    "board": "whiteboard", "clutter": "clutter", "shelves": "shelves", "dresser": "dresser", "pillow": "pillow",
    "mirror": "mirror", "television": "television", "nightstand": "nightstand", "lamp": "lamp",
    "other_structure": "other structure", "other_prop": "other object", "car": "car", "truck": "truck",
    "bus": "bus", "other_vehicle": "other vehicle", "construction_vehicle": "construction vehicle",
    "trailer": "trailer", "bicycle": "bicycle", "motorcycle": "motorcycle", "person": "person",
    "bicyclist": "bicyclist", "motorcyclist": "motorcyclist", "barrier": "barrier", "traffic_cone": "traffic cone",
    "traffic_sign": "traffic sign", "traffic_light": "traffic light", "pole": "pole", "fence": "fence",
    "road": "road", "driveable_surface": "driveable surface", "lane_marker": "lane marking",
    "parking": "parking area", "sidewalk": "sidewalk", "curb": "curb", "walkable": "walkable surface",
    "other_ground": "other ground", "terrain": "terrain", "building": "building",
    "manmade": "man-made structure", "vegetation": "vegetation", "tree_trunk": "tree trunk",
}

PAIRS = [(d, c, e) for d, rows in EXPECTED.items() for c, e in rows]


@pytest.mark.parametrize(("dataset", "class_name", "entry"), PAIRS, ids=[f"{d}:{c}" for d, c, _ in PAIRS])
def test_every_class_maps_to_its_entry_by_name(dataset, class_name, entry):
    got = vocab_entry(dataset, class_name)
    assert got.name == entry
    assert got.prompt == EXPECTED_PROMPTS[entry]


@pytest.mark.parametrize("dataset", list(EXPECTED))
def test_table_covers_every_class_in_label_index_order(dataset):
    assert [c for c, _ in EXPECTED[dataset]] == list(label_space(dataset).classes)
    assert [e.name for e in dataset_entries(dataset)] == [e for _, e in EXPECTED[dataset]]


def test_seven_datasets_all_covered():
    assert set(EXPECTED) == set(LABEL_SPACES)
    assert sum(len(rows) for rows in EXPECTED.values()) == 20 + 13 + 25 + 21 + 16 + 19 + 22


def test_s3dis_is_not_mapped_in_sorted_order():
    """The known bug: S3DIS index i trained against sorted-vocabulary text i (ceiling -> "wall")."""
    entries = [e.prompt for e in dataset_entries("s3dis")]
    assert entries[0] == "ceiling" and entries[2] == "wall"
    assert entries != sorted(entries)


def test_matterport_other_and_ceiling_are_not_swapped():
    entries = dataset_entries("matterport3d")
    assert entries[19].name == "other_furniture" and entries[20].name == "ceiling"


def test_vocabulary_names_are_unique_and_all_used():
    names = [e.name for e in VOCABULARY]
    assert len(names) == len(set(names)) == len(EXPECTED_PROMPTS)
    assert {e.name: e.prompt for e in VOCABULARY} == EXPECTED_PROMPTS
    used = {e for _, _, e in PAIRS}
    assert used == set(names)


def test_prompts_are_unique():
    """Two entries with the same prompt would get the same embedding and be indistinguishable to the head."""
    prompts = [e.prompt for e in VOCABULARY]
    assert len(prompts) == len(set(prompts))


def test_domains():
    by_name = {e.name: e for e in VOCABULARY}
    assert by_name["wall"].domains == ("indoor",)
    assert by_name["car"].domains == ("outdoor",)
    assert by_name["bookshelf"].domains == ("indoor",)
    assert all(isinstance(e, VocabEntry) and e.domains for e in VOCABULARY)


def test_synonym_merges():
    assert vocab_entry("s3dis", "bookcase") is vocab_entry("scannet", "bookshelf")
    assert vocab_entry("nuscenes", "pedestrian") is vocab_entry("kitti", "person") is vocab_entry("waymo", "pedestrian")
    assert vocab_entry("nuscenes", "car") is vocab_entry("semantickitti", "car") is vocab_entry("waymo", "car")
    assert vocab_entry("waymo", "construction_cone") is vocab_entry("nuscenes", "traffic_cone")
    assert vocab_entry("matterport3d", "other") is vocab_entry("scannet", "otherfurniture")
    # kept apart on purpose
    assert vocab_entry("nuscenes", "driveable_surface") is not vocab_entry("semantickitti", "road")
    assert vocab_entry("structured3d", "shelves") is not vocab_entry("scannet", "bookshelf")
    assert vocab_entry("s3dis", "clutter") is not vocab_entry("scannet", "otherfurniture")
    assert vocab_entry("nuscenes", "manmade") is not vocab_entry("waymo", "building")


def test_union_entries():
    indoor = union_entries(["scannet", "s3dis"])
    assert [e.name for e in indoor][:3] == ["wall", "floor", "ceiling"]
    assert len(indoor) == 20 + 5  # ScanNet20 plus S3DIS's ceiling, beam, column, board, clutter
    assert len(union_entries(None)) == len(VOCABULARY)
    assert union_entries(["waymo", "kitti"]) == union_entries(["semantickitti", "waymo"])


def test_unknown_dataset_and_class_are_bad_input():
    with pytest.raises(BadInput, match="unknown dataset 'nope'"):
        vocab_entry("nope", "wall")
    with pytest.raises(BadInput, match="s3dis.*no class 'bookshelf'"):
        vocab_entry("s3dis", "bookshelf")
    with pytest.raises(BadInput, match="no dataset"):
        union_entries([])
