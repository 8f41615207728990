"""30M-point LAS and binary PLY files are read without extra full copies: the peak of memory the reader allocates
(tracemalloc, which numpy reports every buffer to) stays within 1.5x the bytes of the Scene it returns, measured in
a child process. Peak RSS (VmHWM) is recorded too; for PLY it includes the file's memory-mapped page cache. PMOE_BIG_POINTS
overrides the size (default 30M)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support_loader import reliability_conftest

REPO = reliability_conftest().REPO

POINTS = int(os.environ.get("PMOE_BIG_POINTS", str(30_000_000)))
CHUNK = 2_000_000

MEASURE = r"""
import json, re, sys, time
from pmoe_core.io import read_point_cloud

def high_water():  # VmHWM: peak resident set of this process, in bytes (Linux)
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024

import tracemalloc
base = high_water()
tracemalloc.start()  # numpy reports every buffer it allocates; file-backed mmap pages are not allocations
t = time.perf_counter()
scene = read_point_cloud(sys.argv[1])
seconds = time.perf_counter() - t
allocated = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
peak = high_water()
out = sum(a.nbytes for a in scene.arrays().values())
print(json.dumps({"points": len(scene), "seconds": seconds, "baseline": base, "peak": peak, "output": out,
                  "allocated": allocated, "fields": scene.present_fields()}))
"""


def _write_ply(path: Path, n: int) -> None:
    """x y z float32 + red green blue uchar, written through a memmap chunk by chunk (never all in memory)."""
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n").encode()
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    path.write_bytes(header)
    with path.open("r+b") as f:
        f.truncate(len(header) + n * dtype.itemsize)
    table = np.memmap(path, dtype=dtype, mode="r+", offset=len(header), shape=(n,))
    rng = np.random.default_rng(0)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        for axis in "xyz":
            table[axis][lo:hi] = rng.uniform(-50, 50, hi - lo)
        for c in ("red", "green", "blue"):
            table[c][lo:hi] = rng.integers(0, 256, hi - lo)
    table.flush()
    del table


def _write_las(path: Path, n: int) -> None:
    """Point format 2 (xyz, intensity, rgb) written with laspy's chunked writer."""
    import laspy

    header = laspy.LasHeader(point_format=2, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.zeros(3)
    rng = np.random.default_rng(0)
    with laspy.open(path, mode="w", header=header) as writer:
        for lo in range(0, n, CHUNK):
            m = min(CHUNK, n - lo)
            points = laspy.ScaleAwarePointRecord.zeros(m, header=header)
            points.x, points.y, points.z = (rng.uniform(-50, 50, m) for _ in range(3))
            points.intensity = rng.integers(0, 65535, m)
            points.red, points.green, points.blue = (rng.integers(0, 65535, m) for _ in range(3))
            writer.write_points(points)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ply", "las"])
def test_big_file_reads_in_bounded_memory(kind, tmp_path):
    path = tmp_path / f"big.{kind}"
    started = time.perf_counter()
    (_write_ply if kind == "ply" else _write_las)(path, POINTS)
    written = time.perf_counter() - started
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=600)
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout)
    assert m["points"] == POINTS
    ratio = m["allocated"] / m["output"]
    _record(kind, path.stat().st_size, written, m, ratio)
    assert ratio <= 1.5, f"{kind}: {m['allocated'] / 2**20:.0f} MiB allocated at peak for {m['output'] / 2**20:.0f} MiB out"


def _record(kind: str, size: int, written: float, m: dict, ratio: float) -> None:
    report = os.environ.get("PMOE_RELIABILITY_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"test": f"big_{kind}", "file_bytes": size, "write_s": round(written, 1),
                                "read_s": round(m["seconds"], 1), "rss_peak_above_baseline": m["peak"] - m["baseline"],
                                "allocated_peak": m["allocated"],
                                "output_bytes": m["output"], "ratio": round(ratio, 2), "fields": m["fields"]})
                    + "\n")
