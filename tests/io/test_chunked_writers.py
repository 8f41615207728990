"""PLY and LAS writers work in pieces: the same file whatever the piece size, and memory that does not grow with
the file beyond the arrays handed in (predict writes labelled copies of clouds of tens of millions of points)."""

from __future__ import annotations

import tracemalloc

import laspy
import numpy as np
import pytest

from pmoe_core.io import las as las_module
from pmoe_core.io import ply as ply_module
from pmoe_core.io import read_las, read_ply, write_las, write_ply
from pmoe_core.scene import Scene


def _scene(n: int, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    return Scene(
        name="chunks",
        coord=(rng.random((n, 3)) * 50).astype(np.float32),
        color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        strength=rng.random(n).astype(np.float32),
        segment=rng.integers(-1, 20, n).astype(np.int16),
    )


@pytest.mark.parametrize("binary", [True, False])
def test_ply_is_the_same_file_whatever_the_piece_size(tmp_path, monkeypatch, binary):
    scene = _scene(1000)
    extra = {"confidence": np.linspace(0, 1, 1000, dtype=np.float32)}
    write_ply(scene, tmp_path / "whole.ply", binary=binary, extra=extra)
    monkeypatch.setattr(ply_module, "WRITE_CHUNK_ROWS", 7)
    write_ply(scene, tmp_path / "pieces.ply", binary=binary, extra=extra)
    assert (tmp_path / "whole.ply").read_bytes() == (tmp_path / "pieces.ply").read_bytes()
    back = read_ply(tmp_path / "pieces.ply")
    np.testing.assert_array_equal(back.segment, scene.segment)
    np.testing.assert_allclose(back.coord, scene.coord, rtol=1e-6)


def test_las_pieces_keep_every_point_and_the_bounds(tmp_path, monkeypatch):
    scene = _scene(1000)
    monkeypatch.setattr(las_module, "WRITE_CHUNK_POINTS", 7)
    confidence = np.linspace(0, 1, 1000, dtype=np.float32)
    write_las(scene, tmp_path / "pieces.laz", extra={"confidence": confidence})
    las = laspy.read(tmp_path / "pieces.laz")
    assert las.header.point_count == 1000
    np.testing.assert_allclose(las.header.mins, scene.coord.min(axis=0), atol=1e-3)
    np.testing.assert_allclose(las.header.maxs, scene.coord.max(axis=0), atol=1e-3)
    np.testing.assert_array_equal(np.asarray(las.confidence), confidence)
    np.testing.assert_array_equal(np.asarray(las.classification), np.where(scene.segment >= 0, scene.segment + 1, 0))
    back = read_las(tmp_path / "pieces.laz")
    np.testing.assert_allclose(back.coord, scene.coord, atol=1e-3)
    np.testing.assert_array_equal(back.segment, scene.segment)


def _peak_bytes(writer, scene: Scene, path) -> int:
    tracemalloc.start()
    writer(scene, path, extra={"confidence": scene.strength})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("suffix", [".ply", ".las"])
def test_writing_costs_memory_by_the_piece_not_the_file(tmp_path, suffix):
    """Tripling the cloud adds far less than the packed records of the added points (27 bytes each here): only
    small per-point conversions (int32 classes, 16-bit intensity) grow with the file."""
    writer = write_ply if suffix == ".ply" else write_las
    small, large = 1_000_000, 3_000_000
    peak_small = _peak_bytes(writer, _scene(small), tmp_path / f"small{suffix}")
    peak_large = _peak_bytes(writer, _scene(large), tmp_path / f"large{suffix}")
    added_records = (large - small) * (12 + 3 + 4 + 4 + 4)
    growth = peak_large - peak_small
    assert growth < added_records / 2, f"grew {growth / 2**20:.0f} MiB for {added_records / 2**20:.0f} MiB of records"
