import time

import numpy as np
import pytest

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.io import read_point_cloud, write_las, write_npz, write_ply
from pmoe_core.io.ply import read_ply_file, write_ply_arrays
from pmoe_core.scene import Scene


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    n = 2000
    return Scene("room", rng.uniform(-50, 50, (n, 3)), color=rng.integers(0, 256, (n, 3)),
                 normal=rng.normal(size=(n, 3)), strength=rng.random(n), segment=rng.integers(-1, 20, n),
                 instance=rng.integers(-1, 100, n))


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(scene, tmp_path, binary):
    path = tmp_path / "room.ply"
    write_ply(scene, path, binary=binary)
    back = read_point_cloud(path)
    assert back.present_fields() == scene.present_fields()
    for field, values in scene.arrays().items():
        np.testing.assert_array_equal(getattr(back, field), values, err_msg=field)


def test_ply_with_faces_and_only_xyz(tmp_path):
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = tmp_path / "mesh.ply"
    write_ply_arrays(path, {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]},
                     {"vertex_indices": np.array([[0, 1, 2], [0, 2, 3]], np.int32)})
    back = read_point_cloud(path)
    np.testing.assert_array_equal(back.coord, xyz)
    assert back.present_fields() == ["coord"]


def test_las_and_laz_round_trip(scene, tmp_path):
    for suffix in (".las", ".laz"):
        path = tmp_path / f"room{suffix}"
        write_las(scene, path)
        back = read_point_cloud(path)
        np.testing.assert_allclose(back.coord, scene.coord, atol=5e-4)
        np.testing.assert_array_equal(back.color, scene.color)
        np.testing.assert_array_equal(back.segment, scene.segment)
        np.testing.assert_array_equal(back.instance, scene.instance)


def test_las_streams_in_chunks_and_classification_on_request(scene, tmp_path):
    import laspy

    from pmoe_core.io.las import read_las

    path = tmp_path / "plain.las"
    header = laspy.LasHeader(point_format=1, version="1.2")
    header.scales = np.array([0.01, 0.01, 0.01])
    las = laspy.LasData(header)
    las.x, las.y, las.z = (scene.coord[:, i].astype(np.float64) for i in range(3))
    las.classification = np.arange(len(scene)) % 7
    las.write(str(path))
    assert read_las(path).segment is None
    back = read_las(path, classification=True, chunk_points=333)
    np.testing.assert_array_equal(back.segment, np.arange(len(scene)) % 7)
    np.testing.assert_allclose(back.coord, scene.coord, atol=6e-3)


def test_npz_npy_and_kitti_bin(scene, tmp_path):
    write_npz(scene, tmp_path / "a.npz")
    back = read_point_cloud(tmp_path / "a.npz")
    for field, values in scene.arrays().items():
        np.testing.assert_array_equal(getattr(back, field), values)
    np.save(tmp_path / "b.npy", np.column_stack([scene.coord, scene.color]).astype(np.float32))
    back = read_point_cloud(tmp_path / "b.npy")
    np.testing.assert_array_equal(back.color, scene.color)
    points = np.column_stack([scene.coord, scene.strength]).astype(np.float32)
    points.tofile(tmp_path / "000000.bin")
    back = read_point_cloud(tmp_path / "000000.bin")
    np.testing.assert_array_equal(back.strength, scene.strength)


def test_absurd_vertex_count_is_rejected_before_allocating(tmp_path):
    path = tmp_path / "bomb.ply"
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000000\n"
                     b"property float x\nproperty float y\nproperty float z\nend_header\n" + b"\0" * 120)
    started = time.perf_counter()
    with pytest.raises(FormatError, match="1000000000000 vertex") as err:
        read_point_cloud(path)
    assert time.perf_counter() - started < 1.0
    assert str(path) in str(err.value)
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1000000000000\nproperty float x\nproperty float y\n"
                     b"property float z\nend_header\n1 2 3\n")
    with pytest.raises(FormatError, match="1000000000000 vertex"):
        read_point_cloud(path)


def test_ply_defects_name_the_file(scene, tmp_path):
    path = tmp_path / "room.ply"
    write_ply(scene, path)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(FormatError, match="truncated") as err:
        read_point_cloud(path)
    assert str(path) in str(err.value)
    path.write_bytes(data.replace(b"property float x", b"property float q"))
    with pytest.raises(FormatError, match="lacks property x") as err:
        read_point_cloud(path)
    assert str(path) in str(err.value)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n")
    with pytest.raises(FormatError, match="end_header"):
        read_point_cloud(path)
    path.write_bytes(b"solid cube\n")
    with pytest.raises(FormatError, match="magic"):
        read_point_cloud(path)


def test_non_triangle_faces_are_a_format_error(tmp_path):
    path = tmp_path / "quad.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
                     b"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
                     b"0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    with pytest.raises(FormatError, match="face 0 has 4 entries in vertex_indices, expected 3") as err:
        read_ply_file(path)
    assert str(path) in str(err.value)
    assert len(read_ply_file(path, elements=("vertex",))[1]["vertex"]["x"]) == 4  # faces after it are not decoded


def test_unknown_suffix_missing_file_and_bad_bin(tmp_path):
    with pytest.raises(BadInput, match="'.xyz'"):
        read_point_cloud(tmp_path / "cloud.xyz")
    with pytest.raises(MissingFile):
        read_point_cloud(tmp_path / "nothing.ply")
    (tmp_path / "odd.bin").write_bytes(b"\0" * 15)
    with pytest.raises(FormatError, match="multiple of 16"):
        read_point_cloud(tmp_path / "odd.bin")
    np.savez(tmp_path / "nocoord.npz", xyz=np.zeros((3, 3)))
    with pytest.raises(FormatError, match="coord") as err:
        read_point_cloud(tmp_path / "nocoord.npz")
    assert "nocoord.npz" in str(err.value)
    np.save(tmp_path / "nan.npy", np.array([[0, 0, np.nan]]))
    with pytest.raises(FormatError, match="NaN"):
        read_point_cloud(tmp_path / "nan.npy")
