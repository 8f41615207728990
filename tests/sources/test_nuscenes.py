"""nuScenes-lidarseg reader: synthetic tables and scans point by point, sweeps, the real pair, malformed tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.sources import nuscenes, nuscenes_splits
from pmoe_core.sources.synthetic_outdoor import write_nuscenes

VERSION = "v1.0-trainval"
KEY_FILE = "samples/LIDAR_TOP/n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin"
SWEEP_FILE = "sweeps/LIDAR_TOP/n008-2018-09-18-12-07-26-0400__LIDAR_TOP__1537287083900561.pcd.bin"
KEY_TOKEN = "5f6c1e0a0c3b444b97e78d2aa3fa34d2"
# The real category.json of nuScenes v1.0 (lidarseg): name and `index`, written out independently of the library.
REAL_CATEGORIES = [
    "noise", "animal", "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility", "human.pedestrian.police_officer", "human.pedestrian.stroller",
    "human.pedestrian.wheelchair", "movable_object.barrier", "movable_object.debris",
    "movable_object.pushable_pullable", "movable_object.trafficcone", "static_object.bicycle_rack", "vehicle.bicycle",
    "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.car", "vehicle.construction", "vehicle.emergency.ambulance",
    "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer", "vehicle.truck", "flat.driveable_surface",
    "flat.other", "flat.sidewalk", "flat.terrain", "static.manmade", "static.other", "static.vegetation",
    "vehicle.ego",
]
# lidarseg raw index -> nuScenes16 index (barrier 0 ... vegetation 15); everything else -1.
RAW_TO_16 = {9: 0, 14: 1, 15: 2, 16: 2, 17: 3, 18: 4, 21: 5, 2: 6, 3: 6, 4: 6, 6: 6, 12: 7, 22: 8, 23: 9, 24: 10,
             25: 11, 26: 12, 27: 13, 28: 14, 30: 15}


def expected_segment(raw: np.ndarray) -> np.ndarray:
    return np.array([RAW_TO_16.get(r, -1) for r in raw.tolist()])


def read_all(root, options=None):
    options = options or nuscenes.Options()
    refs = nuscenes.list_scenes(root, options)
    return refs, {r.name: nuscenes.read_scene(r, options, lambda m: None) for r in refs}


def assert_matches(scenes, truth, atol=0.0):
    assert scenes.keys() == truth.keys()
    for name, expected in truth.items():
        got = scenes[name]
        assert len(got) == len(expected)
        np.testing.assert_allclose(got.coord, expected.coord, atol=atol, rtol=0)
        np.testing.assert_allclose(got.strength, expected.strength, atol=1e-6)
        np.testing.assert_array_equal(got.segment, expected.segment)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("nus")
    return root, write_nuscenes(root, scenes=2, seed=5)


def test_synthetic_key_frames_match_truth(synthetic):
    root, truth = synthetic
    refs, scenes = read_all(root)
    assert {r.name: r.split for r in refs} == {"scene-0001_00": "train", "scene-0001_01": "train",
                                                "scene-0003_00": "val", "scene-0003_01": "val"}
    assert_matches(scenes, truth)
    scene = scenes["scene-0001_00"]
    assert len(scene) > 10_000 and scene.instance is None
    assert {3, 6, 10, 12, 14, 15} <= set(np.unique(scene.segment).tolist())


def test_labels_follow_category_index(synthetic):
    root, _ = synthetic
    refs, scenes = read_all(root)
    ref = refs[0]
    raw = np.fromfile(ref.meta["labels"], dtype=np.uint8)
    np.testing.assert_array_equal(scenes[ref.name].segment, expected_segment(raw))


def test_renumbered_category_table_is_followed_by_name(synthetic, tmp_path):
    """A category.json with other indices (and bins written with them) must give the same classes."""
    src, truth = synthetic
    root = tmp_path / "nus"
    shutil.copytree(src, root)
    table = root / VERSION / "category.json"
    rows = json.loads(table.read_text())
    permutation = np.random.default_rng(0).permutation(len(rows)) + 100  # new index of old index i
    for row in rows:
        row["index"] = int(permutation[row["index"]])
    table.write_text(json.dumps(rows))
    for lidarseg in (root / "lidarseg" / VERSION).glob("*.bin"):
        old = np.fromfile(lidarseg, dtype=np.uint8)
        permutation[old].astype(np.uint8).tofile(lidarseg)
    nuscenes.raw_to_class.cache_clear()
    _, scenes = read_all(root)
    assert_matches(scenes, truth)


def test_sweeps_are_motion_compensated_into_the_key_frame(tmp_path):
    truth = write_nuscenes(tmp_path, scenes=1, seed=2, sweeps=3)
    _, scenes = read_all(tmp_path, nuscenes.Options(sweeps=3))
    assert_matches(scenes, truth, atol=1e-4)
    for name, scene in scenes.items():
        key_points = np.fromfile(tmp_path / json.loads(
            next(r for r in nuscenes.list_scenes(tmp_path, nuscenes.Options()) if r.name == name).meta["frames"]
        )[0]["file"], dtype="<f4").reshape(-1, 5)
        assert len(scene) > 3 * len(key_points)  # three sweeps added
        assert (scene.segment[len(key_points):] == -1).all()


def test_split_lists_are_the_official_ones():
    assert len(nuscenes_splits.TRAIN) == 700 and len(nuscenes_splits.VAL) == 150 and len(nuscenes_splits.TEST) == 150
    assert not set(nuscenes_splits.TRAIN) & set(nuscenes_splits.VAL)
    assert not (set(nuscenes_splits.TRAIN) | set(nuscenes_splits.VAL)) & set(nuscenes_splits.TEST)
    assert nuscenes_splits.TRAIN[:3] == ("scene-0001", "scene-0002", "scene-0004")
    assert nuscenes_splits.VAL[-1] == "scene-1073" and nuscenes_splits.TEST[0] == "scene-0077"
    assert nuscenes_splits.official_splits("v1.0-mini") == {
        "train": ("scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077", "scene-1094",
                  "scene-1100"),
        "val": ("scene-0103", "scene-0916")}
    assert set(nuscenes_splits.MINI_TRAIN + nuscenes_splits.MINI_VAL) <= set(nuscenes_splits.TRAIN + nuscenes_splits.VAL)


# --- real pair -----------------------------------------------------------------------------------------------------

def quaternion_z(angle_deg: float) -> list[float]:
    a = np.deg2rad(angle_deg) / 2
    return [float(np.cos(a)), 0.0, 0.0, float(np.sin(a))]


def build_real_tables(root, real, scene_name="scene-0001", key_cs="cs-key"):
    """Minimal tables around the real key frame + one real sweep; sweep ego pose: +2 m x and 90 degrees yaw."""
    for folder in ("samples", "sweeps", "lidarseg"):
        (root / folder).symlink_to(real / "nuscenes" / folder)
    tables = root / VERSION
    tables.mkdir()
    rows = {
        "category": [{"token": f"cat{i}", "name": n, "description": "", "index": i}
                     for i, n in enumerate(REAL_CATEGORIES)],
        "sensor": [{"token": "lidar", "channel": "LIDAR_TOP", "modality": "lidar"}],
        "calibrated_sensor": [{"token": "cs-key", "sensor_token": "lidar", "translation": [0.0, 0.0, 0.0],
                               "rotation": [1.0, 0.0, 0.0, 0.0], "camera_intrinsic": []}],
        "ego_pose": [{"token": "ego-key", "timestamp": 2, "translation": [0.0, 0.0, 0.0],
                      "rotation": [1.0, 0.0, 0.0, 0.0]},
                     {"token": "ego-sweep", "timestamp": 1, "translation": [2.0, 0.0, 0.0],
                      "rotation": quaternion_z(90.0)}],
        "log": [{"token": "log", "logfile": "n015-2018-08-02-17-16-37+0800", "vehicle": "n015",
                 "date_captured": "2018-08-02", "location": "singapore-onenorth"}],
        "scene": [{"token": "scene", "log_token": "log", "nbr_samples": 1, "first_sample_token": "sample",
                   "last_sample_token": "sample", "name": scene_name, "description": ""}],
        "sample": [{"token": "sample", "timestamp": 2, "prev": "", "next": "", "scene_token": "scene"}],
        "sample_data": [
            {"token": KEY_TOKEN, "sample_token": "sample", "ego_pose_token": "ego-key",
             "calibrated_sensor_token": key_cs, "timestamp": 2, "fileformat": "pcd", "is_key_frame": True,
             "height": 0, "width": 0, "filename": KEY_FILE, "prev": "sweep", "next": ""},
            {"token": "sweep", "sample_token": "sample", "ego_pose_token": "ego-sweep",
             "calibrated_sensor_token": "cs-key", "timestamp": 1, "fileformat": "pcd", "is_key_frame": False,
             "height": 0, "width": 0, "filename": SWEEP_FILE, "prev": "", "next": KEY_TOKEN}],
        "lidarseg": [{"token": KEY_TOKEN, "sample_data_token": KEY_TOKEN,
                      "filename": f"lidarseg/{VERSION}/{KEY_TOKEN}_lidarseg.bin"}],
    }
    for name, table in rows.items():
        (tables / f"{name}.json").write_text(json.dumps(table))
    return tables


def test_real_pair_gets_the_official_labels(real_fixtures, tmp_path):
    build_real_tables(tmp_path, real_fixtures)
    refs, scenes = read_all(tmp_path)
    assert [(r.name, r.split) for r in refs] == [("scene-0001_00", "train")]
    scene = scenes["scene-0001_00"]
    points = np.fromfile(real_fixtures / "nuscenes" / KEY_FILE, dtype="<f4").reshape(-1, 5)
    raw = np.fromfile(real_fixtures / "nuscenes" / "lidarseg" / VERSION / f"{KEY_TOKEN}_lidarseg.bin", dtype=np.uint8)
    assert len(scene) == 40
    np.testing.assert_array_equal(scene.coord, points[:, :3])
    np.testing.assert_allclose(scene.strength, points[:, 3] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(scene.segment, expected_segment(raw))
    # raw {17 car, 24 driveable_surface, 27 terrain, 28 manmade, 30 vegetation, 31 ego (ignored)}
    assert set(np.unique(scene.segment).tolist()) == {-1, 3, 10, 13, 14, 15}


def test_real_sweep_is_moved_into_the_key_frame(real_fixtures, tmp_path):
    build_real_tables(tmp_path, real_fixtures)
    _, scenes = read_all(tmp_path, nuscenes.Options(sweeps=1))
    scene = scenes["scene-0001_00"]
    sweep = np.fromfile(real_fixtures / "nuscenes" / SWEEP_FILE, dtype="<f4").reshape(-1, 5)
    sweep = sweep[~((np.abs(sweep[:, 0]) < 1) & (np.abs(sweep[:, 1]) < 1))]
    # Sweep ego = key ego moved 2 m along x and turned 90 degrees left: (x, y) -> (2 - y, x).
    expected = np.stack([2.0 - sweep[:, 1], sweep[:, 0], sweep[:, 2]], axis=1)
    assert len(scene) == 40 + len(sweep)
    np.testing.assert_allclose(scene.coord[40:], expected, atol=1e-5)
    assert (scene.segment[40:] == -1).all()


# --- malformed input -----------------------------------------------------------------------------------------------

def test_sample_data_with_missing_calibrated_sensor_names_the_table(real_fixtures, tmp_path):
    build_real_tables(tmp_path, real_fixtures, key_cs="no-such-token")
    with pytest.raises(FormatError) as err:
        nuscenes.list_scenes(tmp_path, nuscenes.Options())
    assert "calibrated_sensor.json" in str(err.value) and "no-such-token" in str(err.value)


def test_sweep_chain_to_a_missing_sample_data_row_names_the_table(real_fixtures, tmp_path):
    tables = build_real_tables(tmp_path, real_fixtures)
    rows = json.loads((tables / "sample_data.json").read_text())
    rows[0]["prev"] = "no-such-sweep"
    (tables / "sample_data.json").write_text(json.dumps(rows))
    assert len(nuscenes.list_scenes(tmp_path, nuscenes.Options())) == 1  # sweeps=0 never follows the chain
    with pytest.raises(FormatError) as err:
        nuscenes.list_scenes(tmp_path, nuscenes.Options(sweeps=1))
    assert "sample_data.json" in str(err.value) and "no-such-sweep" in str(err.value)


def test_missing_lidarseg_file_names_it(synthetic, tmp_path):
    ref = _copy_synthetic(synthetic, tmp_path)
    Path(ref.meta["labels"]).unlink()
    with pytest.raises(MissingFile) as err:
        nuscenes.read_scene(ref, nuscenes.Options(), lambda m: None)
    assert ref.meta["labels"] in str(err.value)


def test_missing_table_names_the_file(real_fixtures, tmp_path):
    tables = build_real_tables(tmp_path, real_fixtures)
    (tables / "ego_pose.json").unlink()
    with pytest.raises(MissingFile) as err:
        nuscenes.list_scenes(tmp_path, nuscenes.Options())
    assert "ego_pose.json" in str(err.value)


def test_scene_outside_split_lists(real_fixtures, tmp_path):
    build_real_tables(tmp_path, real_fixtures, scene_name="scene-9999")
    with pytest.raises(BadInput) as err:
        nuscenes.list_scenes(tmp_path, nuscenes.Options())
    assert "scene-9999" in str(err.value) and "scene.json" in str(err.value)
    lists = tmp_path / "splits.json"
    lists.write_text(json.dumps({"val": ["scene-9999"]}))
    refs = nuscenes.list_scenes(tmp_path, nuscenes.Options(split_lists=str(lists)))
    assert [(r.name, r.split) for r in refs] == [("scene-9999_00", "val")]


def _copy_synthetic(synthetic, tmp_path):
    src, _ = synthetic
    shutil.copytree(src, tmp_path / "nus")
    refs = nuscenes.list_scenes(tmp_path / "nus", nuscenes.Options())
    return refs[0]


def test_points_file_not_whole_points_names_the_file(synthetic, tmp_path):
    ref = _copy_synthetic(synthetic, tmp_path)
    with open(ref.paths[0], "ab") as f:
        f.write(b"\0" * 7)
    with pytest.raises(FormatError) as err:
        nuscenes.read_scene(ref, nuscenes.Options(), lambda m: None)
    assert ref.paths[0] in str(err.value) and "multiple of 20" in str(err.value)


def test_label_count_mismatch_names_the_lidarseg_file(synthetic, tmp_path):
    ref = _copy_synthetic(synthetic, tmp_path)
    labels = ref.meta["labels"]
    with open(labels, "ab") as f:
        f.write(b"\x18")
    with pytest.raises(FormatError) as err:
        nuscenes.read_scene(ref, nuscenes.Options(), lambda m: None)
    assert labels in str(err.value) and "labels for" in str(err.value)
