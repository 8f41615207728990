"""Waymo reader: synthetic v2 and v1 frames point by point, the real v1 record, corrupt and incomplete inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.sources import waymo, waymo_tfrecord, waymo_v1
from pmoe_core.sources.synthetic_outdoor import write_waymo

# Waymo22 = raw type - 1, written out: CAR=1 -> 0, ..., ROAD=18 -> 17, SIDEWALK=22 -> 21.
ROAD = 17


def read_all(root, options=None):
    options = options or waymo.Options()
    refs = waymo.list_scenes(root, options)
    return refs, {r.name: waymo.read_scene(r, options, lambda m: None) for r in refs}


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    root = tmp_path_factory.mktemp("waymo_v2")
    return root, write_waymo(root, scenes=2, seed=7, fmt="v2")


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    root = tmp_path_factory.mktemp("waymo_v1")
    return root, write_waymo(root, scenes=2, seed=7, fmt="v1")


def test_v2_frames_match_truth_point_by_point(v2):
    root, truth = v2
    refs, scenes = read_all(root)
    assert sorted(r.split for r in refs) == ["train", "val"]
    assert scenes.keys() == truth.keys()
    for name, expected in truth.items():
        got = scenes[name]
        assert len(got) == len(expected) > 40_000
        np.testing.assert_allclose(got.coord, expected.coord, atol=1e-3, rtol=0)
        np.testing.assert_allclose(got.strength, expected.strength, atol=1e-6)
        np.testing.assert_array_equal(got.segment, expected.segment)
        np.testing.assert_array_equal(got.instance, expected.instance)


def test_v1_and_v2_of_the_same_frames_give_identical_points(v1, v2):
    _, from_v1 = read_all(v1[0])
    _, from_v2 = read_all(v2[0])
    assert from_v1.keys() == from_v2.keys() == v1[1].keys()
    for name in from_v1:
        for field in ("coord", "strength", "segment", "instance"):
            np.testing.assert_array_equal(getattr(from_v1[name], field), getattr(from_v2[name], field))


def test_geometry_puts_the_road_on_the_ground_and_labels_only_top(v2):
    root, truth = v2
    _, scenes = read_all(root)
    scene = next(iter(scenes.values()))
    road = scene.segment == ROAD
    assert road.sum() > 2_000
    # The vehicle frame has z = 0 on the flat road; per-pixel poses undo a 8 m/s, 0.2 rad/s sweep smear.
    assert np.abs(scene.coord[road, 2]).max() < 0.03
    assert (scene.segment == -1).sum() > 1_000  # side lasers and UNDEFINED points
    assert 0.0 <= scene.strength.min() and scene.strength.max() < 1.0  # tanh of a non-negative intensity


def test_unlabelled_frames_are_skipped_unless_asked(v2):
    root, truth = v2
    refs = waymo.list_scenes(root, waymo.Options(labelled_only=False))
    assert len(refs) == len(truth) + 2
    extra = next(r for r in refs if r.name not in truth)
    scene = waymo.read_scene(extra, waymo.Options(), lambda m: None)
    assert scene.segment is None and scene.instance is None and len(scene) > 40_000


def test_vehicle_pose_stored_as_float32_is_accepted(v2, tmp_path):
    src, truth = v2
    root = tmp_path / "w"
    shutil.copytree(src, root)
    column = "[VehiclePoseComponent].world_from_vehicle.transform"
    for path in root.glob("*/vehicle_pose/*.parquet"):
        table = pq.read_table(path)
        values = table.column(column).cast(pa.list_(pa.float32()))
        pq.write_table(table.set_column(table.column_names.index(column), column, values), path)
    _, scenes = read_all(root)
    for name, expected in truth.items():
        np.testing.assert_allclose(scenes[name].coord, expected.coord, atol=2e-3, rtol=0)


# --- the real v1 record ---------------------------------------------------------------------------------------------

def test_real_v1_record_decodes(real_fixtures):
    path = real_fixtures / "waymo" / "v1" / "val.tfrecord"
    spans = waymo_tfrecord.scan(path)
    assert len(spans) == 1 and spans[0].length == 8140
    frame = waymo_v1.decode_frame(waymo_tfrecord.read_record(path, spans[0]))
    assert frame.context == "1071392229495085036_1844_790_1864_790"
    assert frame.timestamp == 1507315488219118
    assert sorted(frame.calibrations) == [1, 2, 3, 4, 5]
    for cal in frame.calibrations.values():
        assert cal.extrinsic.shape == (4, 4)
        rot = cal.extrinsic[:3, :3]
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
        assert abs(np.linalg.det(rot) - 1) < 1e-6
        np.testing.assert_array_equal(cal.extrinsic[3], [0, 0, 0, 1])
    top = frame.calibrations[1]
    assert top.beam_inclinations is not None and top.beam_inclinations.shape == (64,)
    assert np.all(np.diff(top.beam_inclinations) > 0)
    assert top.beam_inclination_min <= top.beam_inclinations[0] and top.beam_inclinations[-1] <= top.beam_inclination_max
    assert -0.32 < top.beam_inclination_min < -0.30 and 0.04 < top.beam_inclination_max < 0.045
    assert 2.0 < top.extrinsic[2, 3] < 2.3  # TOP sits about 2.18 m up
    for name in (2, 3, 4, 5):  # short-range lasers: uniform inclinations from -90 to +30 degrees
        side = frame.calibrations[name]
        assert side.beam_inclinations is None
        assert side.beam_inclination_min == pytest.approx(-np.pi / 2) and side.beam_inclination_max == pytest.approx(np.pi / 6)
    np.testing.assert_allclose(frame.pose[:3, :3] @ frame.pose[:3, :3].T, np.eye(3), atol=1e-6)
    assert frame.lasers == {} and not frame.labelled


def test_real_v1_record_through_the_source(real_fixtures, tmp_path):
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "val.tfrecord").symlink_to(real_fixtures / "waymo" / "v1" / "val.tfrecord")
    with pytest.raises(BadInput) as err:  # no segmentation labels: say so rather than "no scenes"
        waymo.list_scenes(tmp_path, waymo.Options())
    assert "val.tfrecord" in str(err.value) and "segmentation labels" in str(err.value)
    assert "labelled_only=false" in str(err.value)
    (ref,) = waymo.list_scenes(tmp_path, waymo.Options(labelled_only=False))
    assert ref.name == "1071392229495085036_1844_790_1864_790_1507315488219118" and ref.split == "val"
    with pytest.raises(FormatError) as err:  # its lasers carry no range images: a scene without points
        waymo.read_scene(ref, waymo.Options(), lambda m: None)
    assert "val.tfrecord" in str(err.value) and "no points" in str(err.value)


# --- malformed input -----------------------------------------------------------------------------------------------

def _copy_v1(v1, tmp_path):
    root = tmp_path / "w"
    shutil.copytree(v1[0], root)
    return root, next(root.glob("training/*.tfrecord"))


def test_corrupt_payload_crc_names_the_file(v1, tmp_path):
    root, path = _copy_v1(v1, tmp_path)
    refs = waymo.list_scenes(root, waymo.Options())
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01  # inside the first record's payload
    path.write_bytes(bytes(data))
    ref = next(r for r in refs if r.paths[0] == str(path))
    with pytest.raises(FormatError) as err:
        waymo.read_scene(ref, waymo.Options(), lambda m: None)
    assert str(path) in str(err.value) and "checksum" in str(err.value)


def test_corrupt_length_crc_names_the_file(v1, tmp_path):
    root, path = _copy_v1(v1, tmp_path)
    data = bytearray(path.read_bytes())
    data[9] ^= 0xFF  # the first record's length checksum
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError) as err:
        waymo.list_scenes(root, waymo.Options())
    assert str(path) in str(err.value) and "length checksum" in str(err.value)


def test_truncated_tfrecord_names_the_file(v1, tmp_path):
    root, path = _copy_v1(v1, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(FormatError) as err:
        waymo.list_scenes(root, waymo.Options())
    assert str(path) in str(err.value) and "truncated" in str(err.value)
    path.write_bytes(data[:6])
    with pytest.raises(FormatError) as err:
        waymo.list_scenes(root, waymo.Options())
    assert "truncated" in str(err.value)


def test_missing_parquet_component_names_the_path(v2, tmp_path):
    root = tmp_path / "w"
    shutil.copytree(v2[0], root)
    missing = next(root.glob("training/lidar_calibration/*.parquet"))
    missing.unlink()
    with pytest.raises(MissingFile) as err:
        waymo.list_scenes(root, waymo.Options())
    assert str(missing) in str(err.value) and "lidar_calibration" in str(err.value)


def test_label_image_not_matching_the_range_image_names_the_segmentation_file(v2, tmp_path):
    root = tmp_path / "w"
    shutil.copytree(v2[0], root)
    seg = next(root.glob("training/lidar_segmentation/*.parquet"))
    shape = "[LiDARSegmentationLabelComponent].range_image_return1.shape"
    values = "[LiDARSegmentationLabelComponent].range_image_return1.values"
    table = pq.read_table(seg)
    # Keep values and shape consistent with each other (64 x 325 x 2: half the columns), but not with the range image.
    half = [None if v is None else v[: len(v) // 2] for v in table.column(values).to_pylist()]
    halved = [None if s is None else [s[0], s[1] // 2, s[2]] for s in table.column(shape).to_pylist()]
    table = table.set_column(table.column_names.index(values), values, pa.array(half, pa.list_(pa.int32())))
    table = table.set_column(table.column_names.index(shape), shape, pa.array(halved, pa.list_(pa.int32(), 3)))
    pq.write_table(table, seg)
    ref = next(r for r in waymo.list_scenes(root, waymo.Options()) if r.split == "train")
    with pytest.raises(FormatError) as err:
        waymo.read_scene(ref, waymo.Options(), lambda m: None)
    assert str(seg) in str(err.value) and "does not match range image" in str(err.value)


def test_missing_parquet_column_names_the_file_and_column(v2, tmp_path):
    root = tmp_path / "w"
    shutil.copytree(v2[0], root)
    path = next(root.glob("training/lidar_calibration/*.parquet"))
    column = "[LiDARCalibrationComponent].beam_inclination.max"
    pq.write_table(pq.read_table(path).drop_columns([column]), path)
    ref = next(r for r in waymo.list_scenes(root, waymo.Options()) if r.split == "train")
    with pytest.raises(FormatError) as err:
        waymo.read_scene(ref, waymo.Options(), lambda m: None)
    assert str(path) in str(err.value) and column in str(err.value) and "missing" in str(err.value)


def test_segment_without_labels_says_why_nothing_is_listed(v2, tmp_path):
    root = tmp_path / "w"
    shutil.copytree(v2[0], root)
    for folder in root.glob("*/lidar_segmentation"):
        shutil.rmtree(folder)
    with pytest.raises(BadInput) as err:
        waymo.list_scenes(root, waymo.Options())
    assert "lidar_segmentation" in str(err.value) and "labelled_only=false" in str(err.value)
    assert len(waymo.list_scenes(root, waymo.Options(labelled_only=False))) == len(v2[1]) + 2


def test_v1_range_image_that_does_not_inflate_names_the_file(tmp_path):
    """Checksums right, content wrong (a writer bug, not a bad download): still one clear error naming the file."""
    from pmoe_core.sources import protobuf_wire as pw

    laser = pw.enc_varint(1, 1) + pw.enc_bytes(2, pw.enc_bytes(2, b"not zlib") + pw.enc_bytes(6, b"nor this"))
    frame = pw.enc_bytes(1, pw.enc_bytes(1, b"ctx")) + pw.enc_varint(2, 7) + pw.enc_bytes(5, laser)
    (tmp_path / "training").mkdir()
    path = tmp_path / "training" / "bad.tfrecord"
    waymo_tfrecord.write_records(path, [frame])
    (ref,) = waymo.list_scenes(tmp_path, waymo.Options())
    with pytest.raises(FormatError) as err:
        waymo.read_scene(ref, waymo.Options(), lambda m: None)
    assert str(path) in str(err.value) and "bad Frame record at byte 0" in str(err.value)


def test_flat_folder_needs_a_split(v1, tmp_path):
    _, path = _copy_v1(v1, tmp_path)
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(path, flat / path.name)
    with pytest.raises(BadInput):
        waymo.list_scenes(flat, waymo.Options())
    refs = waymo.list_scenes(flat, waymo.Options(split="test"))
    assert len(refs) == 2 and {r.split for r in refs} == {"test"}  # test keeps unlabelled frames too
