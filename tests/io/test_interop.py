"""Files pmoe writes keep every field in the tools people open them with (Open3D, CloudCompare, laspy), and files
pmoe wrote before still read.

CloudCompare is not installable from PyPI, so its rule is checked on the header: its PLY filter loads a vertex
property as a scalar field only when the name contains "scalar" (or "intensity"/"gray"/"grey"); anything else is
dropped in command-line mode. Open3D's tensor reader skips char, short, ushort and uint properties.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from plyfile import PlyData

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.io import read_las, read_ply, write_las, write_ply
from pmoe_core.io.ply import read_ply_bytes, read_ply_file, write_ply_arrays
from pmoe_core.scene import Scene

# What Open3D 0.20's tensor PLY reader keeps (t/io/file_format/FilePLY.cpp, GetDtype).
OPEN3D_TYPES = {"uchar", "uint8", "uint16", "int", "int32", "float", "float32", "double", "float64"}
STANDARD = {"x", "y", "z", "red", "green", "blue", "nx", "ny", "nz", "intensity"}


@pytest.fixture
def scene() -> Scene:
    rng = np.random.default_rng(1)
    n = 300
    return Scene("room", rng.uniform(-5, 5, (n, 3)), color=rng.integers(0, 256, (n, 3)),
                 normal=rng.normal(size=(n, 3)), strength=rng.random(n), segment=rng.integers(-1, 40, n),
                 instance=rng.integers(-1, 9, n))


def _properties(path) -> list[tuple[str, str]]:
    head = path.read_bytes().split(b"end_header")[0].decode("ascii")
    return [(line.split()[2], line.split()[1]) for line in head.splitlines() if line.startswith("property ")]


def test_exported_ply_properties_are_ones_cloudcompare_and_open3d_keep(scene, tmp_path):
    path = tmp_path / "room.ply"
    write_ply(scene, path, extra={"confidence": np.linspace(0, 1, len(scene)), "expert": np.arange(len(scene))},
              comments=["class 0 chair", "class 1 café\nsofa"])
    props = dict(_properties(path))
    assert props["scalar_class"] == props["scalar_instance"] == props["scalar_expert"] == "int"
    assert props["scalar_confidence"] == props["intensity"] == "float"
    assert set(props.values()) <= OPEN3D_TYPES
    assert all("scalar" in name or name in STANDARD for name in props)
    ply = PlyData.read(str(path))
    np.testing.assert_array_equal(ply["vertex"]["scalar_class"], scene.segment)
    assert ply.comments == ["pmoe scene room", "class 0 chair", "class 1 caf\\xe9 sofa"]


def _open3d():
    try:
        import open3d
    except ImportError as err:  # open3d-cpu is in the dev extra; its wheel needs libusb-1.0 from the system
        pytest.skip(f"open3d not importable ({err}); install the dev extra (and libusb-1.0-0)")
    return open3d


def test_open3d_reads_every_exported_field(scene, tmp_path):
    o3d = _open3d()
    path = tmp_path / "room.ply"
    write_ply(scene, path, extra={"confidence": np.linspace(0, 1, len(scene), dtype=np.float32)})
    cloud = o3d.t.io.read_point_cloud(str(path))
    np.testing.assert_array_equal(cloud.point["positions"].numpy(), scene.coord)
    np.testing.assert_array_equal(cloud.point["colors"].numpy(), scene.color)
    np.testing.assert_array_equal(cloud.point["scalar_class"].numpy().ravel(), scene.segment)
    np.testing.assert_array_equal(cloud.point["scalar_instance"].numpy().ravel(), scene.instance)
    np.testing.assert_array_equal(cloud.point["intensity"].numpy().ravel(), scene.strength)
    assert cloud.point["scalar_confidence"].numpy()[-1, 0] == 1.0
    # What pmoe wrote before (short `label`) is what Open3D drops: the check above could fail.
    old = tmp_path / "old.ply"
    write_ply_arrays(old, {"x": scene.coord[:, 0], "y": scene.coord[:, 1], "z": scene.coord[:, 2],
                           "label": scene.segment})
    assert "label" not in o3d.t.io.read_point_cloud(str(old)).point


def test_files_written_before_still_read(scene, tmp_path):
    """Earlier pmoe wrote `label` short / `instance` int (export) and `object_id` short (plan scene)."""
    path = tmp_path / "old.ply"
    write_ply_arrays(path, {"x": scene.coord[:, 0], "y": scene.coord[:, 1], "z": scene.coord[:, 2],
                            "label": scene.segment, "instance": scene.instance})
    back = read_ply(path)
    np.testing.assert_array_equal(back.segment, scene.segment)
    np.testing.assert_array_equal(back.instance, scene.instance)

    from pmoe_core.tabletop.scene_io import read_scene_ply, write_scene_ply

    plan = tmp_path / "plan.ply"
    write_ply_arrays(plan, {"x": scene.coord[:, 0], "y": scene.coord[:, 1], "z": scene.coord[:, 2],
                            "red": scene.color[:, 0], "green": scene.color[:, 1], "blue": scene.color[:, 2],
                            "object_id": scene.segment})
    np.testing.assert_array_equal(read_scene_ply(plan).segment, scene.segment)
    write_scene_ply(Scene("t", scene.coord, color=scene.color, segment=scene.segment), plan)
    assert ("scalar_object_id", "int") in _properties(plan)
    np.testing.assert_array_equal(read_scene_ply(plan).segment, scene.segment)


def test_extra_fields_are_checked(scene, tmp_path):
    path = tmp_path / "x.ply"
    with pytest.raises(BadInput, match="would repeat the vertex property 'scalar_class'"):
        write_ply(scene, path, extra={"class": np.zeros(len(scene), int)})
    with pytest.raises(BadInput, match="letters, digits and underscores"):
        write_ply(scene, path, extra={"my class": np.zeros(len(scene), int)})
    with pytest.raises(BadInput, match=r"expected \(300,\)"):
        write_ply(scene, path, extra={"pred": np.zeros(3, int)})
    with pytest.raises(BadInput, match="outside int32"):
        write_ply(scene, path, extra={"pred": np.full(len(scene), 2**40)})
    write_ply(scene, path, fields=("coord",), extra={"class": np.arange(len(scene))})
    np.testing.assert_array_equal(read_ply(path).segment, np.arange(len(scene)))  # prediction reads back as labels


def test_las_intensity_classification_and_extra_bytes(scene, tmp_path):
    import laspy

    path = tmp_path / "room.las"
    write_las(scene, path, extra={"confidence": np.linspace(0, 1, len(scene))})
    las = laspy.read(path)
    assert (las.header.version.major, las.header.version.minor, las.point_format.id) == (1, 4, 7)  # codes > 31
    np.testing.assert_array_equal(las.intensity, np.rint(scene.strength * 65535).astype(np.uint16))
    np.testing.assert_array_equal(las.classification, scene.segment + 1)
    assert list(las.point_format.extra_dimension_names) == ["segment", "instance", "strength", "confidence"]
    assert las["confidence"][-1] == 1.0
    back = read_las(path)
    np.testing.assert_array_equal(back.segment, scene.segment)
    np.testing.assert_array_equal(back.strength, scene.strength)

    small = tmp_path / "small.laz"
    write_las(scene, small, fields=("coord",), extra={"classification": np.arange(len(scene)) % 20})
    las = laspy.read(small)
    assert (las.header.version.minor, las.point_format.id) == (2, 1) and not list(las.point_format.extra_dimension_names)
    np.testing.assert_array_equal(las.classification, np.arange(len(scene)) % 20)
    with pytest.raises(BadInput, match="do not fit a LAS class code"):
        write_las(scene, small, extra={"classification": np.full(len(scene), 300)})
    with pytest.raises(BadInput, match="would repeat"):
        write_las(scene, small, extra={"Intensity": np.zeros(len(scene))})


def test_las_intensity_of_unnormalised_strength_is_kept():
    from pmoe_core.io.las import intensity_from_strength

    np.testing.assert_array_equal(intensity_from_strength(np.array([0, 12, 255, 7e4, np.nan], np.float32)),
                                  [0, 12, 255, 65535, 0])
    np.testing.assert_array_equal(intensity_from_strength(np.array([0, 0.5, 1], np.float32)), [0, 32768, 65535])


def test_fifo_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "cloud.ply"
    os.mkfifo(fifo)
    for reader in (read_ply, read_las):
        with pytest.raises(BadInput, match="not a regular file") as err:
            reader(fifo)
        assert str(fifo) in str(err.value)
    with pytest.raises(BadInput, match="is a folder"):
        read_ply(tmp_path)


def test_binary_mesh_variants_read(tmp_path):
    """Big-endian and quad meshes: vertices read (faces after them are not decoded); triangles required only when
    the faces are asked for."""
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    header = ("ply\nformat binary_big_endian 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
              "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n").encode()
    data = header + xyz.astype(">f4").tobytes() + b"\x04" + np.arange(4, dtype=">i4").tobytes()
    path = tmp_path / "quad.ply"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_ply(path).coord, xyz)
    with pytest.raises(FormatError, match="face 0 has a vertex_indices list whose length is not 3"):
        read_ply_file(path)
    _, columns = read_ply_bytes(data, "archive.zip:quad.ply", elements=("vertex", "face"), list_lengths={
        "vertex_indices": 4})
    np.testing.assert_array_equal(columns["face"]["vertex_indices"], [[0, 1, 2, 3]])
    np.testing.assert_array_equal(columns["vertex"]["z"], xyz[:, 2])
