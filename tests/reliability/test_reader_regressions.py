"""One crafted input per bug the fuzzer found (RELIABILITY.md, table of fixes), asserting the exact FormatError.

Absurd size claims run in a child process under RLIMIT_AS = 1 GiB: rejected before allocating means the child
finishes with the error instead of dying of MemoryError, an OOM abort (lazrs) or a SIGKILL.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support_loader import reliability_conftest
from targets import small_scene

from pmoe_core import io as pio
from pmoe_core.errors import FormatError
from pmoe_core.sources import nuscenes, protobuf_wire, s3dis, structured3d
from pmoe_core.sources.synthetic_indoor import write_structured3d

REPO = reliability_conftest().REPO

LIMITED = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from pmoe_core.io import read_point_cloud
    from pmoe_core.errors import FormatError
    try:
        read_point_cloud(sys.argv[1])
    except FormatError as err:
        print(err.message)
        sys.exit(3)
""")


def _read_limited(path: Path) -> str:
    """The FormatError message of reading `path` in a 1 GiB address space (fails if anything else happens)."""
    result = subprocess.run([sys.executable, "-c", LIMITED, str(path)], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 3, f"rc {result.returncode}: {result.stderr[-2000:]}"
    return result.stdout.strip()


def _las(tmp: Path, suffix: str = ".las") -> tuple[Path, bytearray]:
    path = tmp / f"c{suffix}"
    pio.write_las(small_scene(), path)
    return path, bytearray(path.read_bytes())


def test_ply_claiming_1e12_vertices_is_rejected_before_allocating(tmp_path):
    path = tmp_path / "c.ply"
    pio.write_ply(small_scene(), path)
    path.write_bytes(path.read_bytes().replace(b"element vertex 400", b"element vertex 1000000000000"))
    assert "header declares 1000000000000 vertex elements" in _read_limited(path)


def test_las_claiming_4e9_points_is_rejected_before_allocating(tmp_path):
    path, data = _las(tmp_path)
    data[107:111] = struct.pack("<I", 4_000_000_000)
    path.write_bytes(bytes(data))
    assert "header declares 4000000000 points" in _read_limited(path)


def test_las_announcing_16m_vlrs_is_rejected_before_laspy_builds_them(tmp_path):
    path, data = _las(tmp_path)
    data[100:104] = struct.pack("<I", 16_000_000)
    path.write_bytes(bytes(data))
    assert "announces 16000000 VLRs" in _read_limited(path)


def test_laz_chunk_table_claiming_4e9_chunks_does_not_abort_the_process(tmp_path):
    import laspy

    path, data = _las(tmp_path, ".laz")
    with laspy.open(path) as reader:
        start = reader.header.offset_to_point_data
    (table,) = struct.unpack_from("<q", data, start)
    data[table + 4:table + 8] = struct.pack("<I", 4_000_000_000)
    path.write_bytes(bytes(data))
    assert "claims 4000000000 chunks" in _read_limited(path)


def test_npy_claiming_1e12_rows_is_rejected_before_allocating(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.zeros((10, 3), np.float32))
    path.write_bytes(path.read_bytes().replace(b"(10, 3)", b"(1000000000000, 3)"))
    assert "header declares shape (1000000000000, 3)" in _read_limited(path)


@pytest.mark.parametrize("shape", [b"(4611686018427387904, 3)", b"(-1, 3)"])
def test_npy_shape_overflow_or_negative(shape, tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.zeros((10, 3), np.float32))
    path.write_bytes(path.read_bytes().replace(b"(10, 3)", shape))
    with pytest.raises(FormatError, match="header declares"):
        pio.read_npy(path)


def test_npy_that_is_a_zip_and_npz_member_that_is_not_an_array(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.zeros((10, 3), np.float32))
    path.write_bytes(b"PK\x03\x04" + path.read_bytes())
    with pytest.raises(FormatError, match="c.npy"):
        pio.read_npy(path)
    npz = tmp_path / "c.npz"
    with zipfile.ZipFile(npz, "w") as zf:
        buf = io.BytesIO()
        np.save(buf, np.zeros((4, 3), np.float32))
        zf.writestr("coord.npy", buf.getvalue())
        zf.writestr("color", b"not an npy at all")  # np.load maps key "color" to this raw member
    with pytest.raises(FormatError, match="not .npy arrays"):
        pio.read_npz(npz)


def test_nan_colours_are_an_error_not_zero(tmp_path):
    path = tmp_path / "c.npy"
    table = np.ones((5, 6), np.float32)
    table[2, 4] = np.nan
    np.save(path, table)
    with pytest.raises(FormatError, match="color holds NaN"):
        pio.read_npy(path)


def test_ascii_ply_value_outside_its_declared_type(tmp_path):
    path = tmp_path / "c.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
                     b"property short label\nend_header\n0 0 0 2147483648\n1 1 1 3\n")
    with pytest.raises(FormatError, match="vertex.label holds values outside the range of int16"):
        pio.read_ply(path)


def test_las_coordinates_beyond_float32(tmp_path):
    path, data = _las(tmp_path)
    data[131:155] = struct.pack("<3d", 1e300, 1e300, 1e300)  # x/y/z scale factors
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="beyond float32 range"):
        pio.read_las(path)


def test_zip_member_with_absurd_compressed_size(tmp_path):
    write_structured3d(tmp_path, scenes=1, width=32)
    archive = next(tmp_path.glob("*.zip"))
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # last central-directory entry: patch its compressed size
    data[central + 20:central + 24] = struct.pack("<I", 2**31 + 5)
    archive.write_bytes(bytes(data))
    ref = structured3d.list_scenes(tmp_path, structured3d.Options())[0]
    with pytest.raises(FormatError, match="zip member claims 2147483653 compressed bytes"):
        structured3d.read_scene(ref, structured3d.Options(), lambda m: None)


@pytest.mark.parametrize("size, words", [((20000, 20000), "decompression bomb"),  # PIL's own limit, now caught
                                         ((8000, 4000), "claims 8000 x 4000 pixels")])  # below PIL's, above ours
def test_png_decompression_bomb_is_refused_from_its_header(size, words):
    buf = io.BytesIO()
    Image.new("L", size).save(buf, format="PNG")  # a few hundred kB of zeros inflating to 32-400 MB
    for decode in (structured3d._image, structured3d._semantic):
        with pytest.raises(FormatError, match=words):
            decode(buf.getvalue(), "x.zip:full/depth.png")


def test_nuscenes_table_not_utf8_and_record_missing_a_key(tmp_path):
    tables = tmp_path / "v1.0-mini"
    tables.mkdir()
    (tables / "scene.json").write_bytes(b'[{"token": "\xff"}]')
    with pytest.raises(FormatError, match="scene.json: not UTF-8 JSON"):
        nuscenes._table(tables, "scene")
    for name in ("scene", "sample", "calibrated_sensor", "ego_pose", "sensor", "category"):
        (tables / f"{name}.json").write_text(json.dumps([{"token": "t"}]))
    (tables / "sample_data.json").write_text(json.dumps([{"token": "s", "fileformat": "pcd", "is_key_frame": True}]))
    with pytest.raises(FormatError, match="lacks or mistypes a field"):
        nuscenes.list_scenes(tmp_path, nuscenes.Options(version="v1.0-mini"))


def test_protobuf_string_not_utf8_is_a_wire_error():
    with pytest.raises(protobuf_wire.WireError, match="not UTF-8"):
        protobuf_wire.string(protobuf_wire.decode(protobuf_wire.enc_bytes(1, b"\xff\xfe")), 1)


def test_s3dis_file_of_stray_bytes_only(tmp_path):
    path = tmp_path / "chair_1.txt"
    path.write_bytes(b"\x01\x02\xff")
    warnings: list[str] = []
    assert s3dis.parse_annotation(path, warnings.append).shape == (0, 6)
    assert warnings and "stray byte" in warnings[0]


def test_scannet_alignment_overflowing_to_infinity(tmp_path):
    from pmoe_core.sources import scannet

    meta = tmp_path / "scene.txt"
    meta.write_text("axisAlignment = " + " ".join(["1e308"] * 16) + "\n")
    with pytest.raises(FormatError, match="axisAlignment moves vertices to NaN or infinity"):
        scannet._align(np.ones((3, 3)), meta)


def test_nuscenes_sweep_point_overflowing_float32_names_the_sweep(tmp_path):
    from pmoe_core.sources.synthetic_outdoor import write_nuscenes

    write_nuscenes(tmp_path, scenes=1, samples_per_scene=1)
    sweep = sorted((tmp_path / "sweeps" / "LIDAR_TOP").iterdir())[-1]  # the newest sweep: read with sweeps >= 1
    points = np.fromfile(sweep, "<f4").reshape(-1, 5)
    points[0, :3] = 3.4e38  # a finite float32, but not after the rotation and translation into the key frame
    points.tofile(sweep)
    options = nuscenes.Options(sweeps=10)
    ref = nuscenes.list_scenes(tmp_path, options)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(FormatError) as err:
            nuscenes.read_scene(ref, options, lambda m: None)
        assert str(err.value) == f"{sweep}: 1 sweep points are NaN, infinite or beyond float32 range once moved " \
                                 "into the key frame (corrupt points or pose)"
        points[0, :3] = np.inf  # inf * 0 in the rotation: NaN, not an "invalid value" RuntimeWarning
        points.tofile(sweep)
        with pytest.raises(FormatError, match=f"{sweep.name}: 1 sweep points are NaN"):
            nuscenes.read_scene(ref, options, lambda m: None)
