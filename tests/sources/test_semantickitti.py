"""SemanticKITTI reader: synthetic scans point by point, the real sample pair, and malformed files."""

from __future__ import annotations

import numpy as np
import pytest

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.sources import semantickitti
from pmoe_core.sources.synthetic_outdoor import write_semantickitti

# The 19 benchmark classes, written out here (not imported) so a reordering in the library fails this test.
CLASSES = ["car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist", "road",
           "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk", "terrain", "pole",
           "traffic-sign"]
# The official learning map (semantic-kitti.yaml), raw id -> class name; anything else is ignore.
LEARNING_MAP = {10: "car", 252: "car", 11: "bicycle", 15: "motorcycle", 18: "truck", 258: "truck",
                13: "other-vehicle", 16: "other-vehicle", 20: "other-vehicle", 256: "other-vehicle",
                257: "other-vehicle", 259: "other-vehicle", 30: "person", 254: "person", 31: "bicyclist",
                253: "bicyclist", 32: "motorcyclist", 255: "motorcyclist", 40: "road", 60: "road", 44: "parking",
                48: "sidewalk", 49: "other-ground", 50: "building", 51: "fence", 70: "vegetation", 71: "trunk",
                72: "terrain", 80: "pole", 81: "traffic-sign"}


def expected_segment(raw_semantic: np.ndarray) -> np.ndarray:
    return np.array([CLASSES.index(LEARNING_MAP[r]) if r in LEARNING_MAP else -1 for r in raw_semantic.tolist()])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    return root, write_semantickitti(root, scenes=4, seed=3)


def read_all(root, options=None):
    options = options or semantickitti.Options()
    refs = semantickitti.list_scenes(root, options)
    return refs, {r.name: semantickitti.read_scene(r, options, lambda m: None) for r in refs}


def test_synthetic_scans_match_truth_point_by_point(synthetic):
    root, truth = synthetic
    refs, scenes = read_all(root)
    assert {r.name: r.split for r in refs} == {"00_000000": "train", "08_000000": "val", "11_000000": "test",
                                                "00_000001": "train"}
    assert scenes.keys() == truth.keys()
    for name, expected in truth.items():
        got = scenes[name]
        assert len(got) == len(expected) > 30_000
        np.testing.assert_array_equal(got.coord, expected.coord)
        np.testing.assert_array_equal(got.strength, expected.strength)
        if expected.segment is None:
            assert got.segment is None and got.instance is None
        else:
            np.testing.assert_array_equal(got.segment, expected.segment)
            np.testing.assert_array_equal(got.instance, expected.instance)


def test_synthetic_labels_follow_the_learning_map_and_the_geometry(synthetic):
    root, _ = synthetic
    _, scenes = read_all(root)
    raw = np.fromfile(root / "sequences" / "08" / "labels" / "000000.label", dtype="<u4")
    np.testing.assert_array_equal(scenes["08_000000"].segment, expected_segment(raw & 0xFFFF))
    np.testing.assert_array_equal(scenes["08_000000"].instance, (raw >> 16).astype(np.int32))
    scene = scenes["00_000000"]
    road = scene.segment == CLASSES.index("road")
    assert road.sum() > 5_000
    # The simulated sensor sits 1.73 m above a flat road: road returns must lie there (range noise is 1 cm).
    assert abs(np.median(scene.coord[road, 2]) + 1.73) < 0.01
    assert (CLASSES.index("car") in scene.segment) and (-1 in scene.segment)
    assert 0.0 <= scene.strength.min() and scene.strength.max() <= 1.0


def test_real_pair_gets_the_official_labels(real_fixtures):
    root = real_fixtures / "semantickitti"
    refs, scenes = read_all(root)
    assert [(r.name, r.split) for r in refs] == [("00_000000", "train")]
    scene = scenes["00_000000"]
    points = np.fromfile(root / "sequences/00/velodyne/000000.bin", dtype="<f4").reshape(-1, 4)
    raw = np.fromfile(root / "sequences/00/labels/000000.label", dtype="<u4")
    assert len(scene) == 50
    np.testing.assert_array_equal(scene.coord, points[:, :3])
    np.testing.assert_array_equal(scene.strength, points[:, 3])
    np.testing.assert_array_equal(scene.segment, expected_segment(raw & 0xFFFF))
    # Raw ids {0, 50, 52, 70, 71, 80}: building, vegetation, trunk, pole; 0 (unlabelled) and 52 (other-structure)
    # are ignored.
    assert set(np.unique(scene.segment).tolist()) == {-1, 12, 14, 15, 17}
    assert (scene.segment[(raw & 0xFFFF) == 52] == -1).all()


def test_sequences_option_and_split_override(synthetic):
    root, _ = synthetic
    refs = semantickitti.list_scenes(root, semantickitti.Options(sequences="08-10"))
    assert [r.name for r in refs] == ["08_000000"]
    refs = semantickitti.list_scenes(root, semantickitti.Options(sequences="00,11", split="val"))
    assert {r.split for r in refs} == {"val"} and len(refs) == 3
    assert semantickitti.parse_sequences("00-02, 08") == {0, 1, 2, 8}
    with pytest.raises(BadInput):
        semantickitti.parse_sequences("zero")


def test_official_splits():
    assert [semantickitti.official_split(s) for s in (0, 7, 8, 9, 10, 11, 21, 22)] == [
        "train", "train", "val", "train", "train", "test", "test", None]


def _one_scan(tmp_path, points: bytes, labels: bytes | None, seq: str = "00"):
    (tmp_path / "sequences" / seq / "velodyne").mkdir(parents=True)
    (tmp_path / "sequences" / seq / "velodyne" / "000000.bin").write_bytes(points)
    if labels is not None:
        (tmp_path / "sequences" / seq / "labels").mkdir()
        (tmp_path / "sequences" / seq / "labels" / "000000.label").write_bytes(labels)
    return semantickitti.list_scenes(tmp_path, semantickitti.Options())


def test_bin_size_not_whole_points_names_the_file(tmp_path):
    (ref,) = _one_scan(tmp_path, np.zeros(4 * 10 + 1, dtype="<f4").tobytes(), None)
    with pytest.raises(FormatError) as err:
        semantickitti.read_scene(ref, semantickitti.Options(), lambda m: None)
    assert "000000.bin" in str(err.value) and "multiple of 16" in str(err.value)


def test_label_count_mismatch_names_the_label_file(tmp_path):
    (ref,) = _one_scan(tmp_path, np.ones((10, 4), dtype="<f4").tobytes(), np.full(9, 40, dtype="<u4").tobytes())
    with pytest.raises(FormatError) as err:
        semantickitti.read_scene(ref, semantickitti.Options(), lambda m: None)
    assert "000000.label" in str(err.value) and "9 labels for 10 points" in str(err.value)


def test_missing_labels_in_a_labelled_sequence_warns(tmp_path):
    (ref,) = _one_scan(tmp_path, np.ones((10, 4), dtype="<f4").tobytes(), None)
    warnings: list[str] = []
    scene = semantickitti.read_scene(ref, semantickitti.Options(), warnings.append)
    assert scene.segment is None and len(scene) == 10
    assert len(warnings) == 1 and "000000.bin" in warnings[0]


def test_unofficial_sequence_and_missing_root(tmp_path):
    with pytest.raises(BadInput) as err:
        _one_scan(tmp_path, np.ones((10, 4), dtype="<f4").tobytes(), None, seq="30")
    assert "30" in str(err.value)
    with pytest.raises(MissingFile):
        semantickitti.list_scenes(tmp_path / "nowhere", semantickitti.Options())
