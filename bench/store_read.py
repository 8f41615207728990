"""Random-scene reads: the Zarr scene store vs a folder of per-scene .npy files holding the same arrays.

Writes S synthetic room-like scenes (20k-200k points; coord float32, color uint8, segment int16) both ways, then
reads the same random sequence of scenes from each, twice (the first pass warms both equally; the second is
reported). The .npy layout is the usual per-scene folder (<scene>/coord.npy, color.npy, segment.npy).
With --codecs it also writes a subset with each Blosc codec to compare size, write and read cost.

Usage: .venv/bin/python bench/store_read.py [--scenes 240] [--reads 300] [--codecs lz4,zstd]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from zarr.codecs import BloscCodec

import pmoe_core.store.layout as layout
from pmoe_core.scene import Scene
from pmoe_core.store import StoreWriter, open_store

FIELDS = ("coord", "color", "segment")


def synth_scene(index: int, min_points: int, max_points: int) -> Scene:
    """A box room (walls, floor, ceiling) with furniture boxes: points on planes, 2 mm noise, per-surface colour
    and label, stored surface by surface like a mesh's vertex order (so the data compresses like real data)."""
    rng = np.random.default_rng(index)
    n = int(rng.integers(min_points, max_points + 1))
    size = rng.uniform([3, 3, 2.4], [10, 10, 3.5])
    planes = [(a, side * size[a], np.zeros(3), size) for a in range(3) for side in (0, 1)]
    for _ in range(int(rng.integers(4, 12))):
        lo = rng.uniform(0, 0.8) * size * np.array([1, 1, 0])
        hi = lo + rng.uniform([0.4, 0.4, 0.4], [2.0, 2.0, 1.5])
        planes += [(a, (lo, hi)[side][a], lo, hi) for a in range(3) for side in (0, 1)]
    surface = np.sort(rng.integers(0, len(planes), n))
    axis = np.array([p[0] for p in planes])[surface]
    pos = np.array([p[1] for p in planes])[surface]
    lo = np.array([p[2] for p in planes])[surface]
    hi = np.array([p[3] for p in planes])[surface]
    coord = lo + rng.random((n, 3)) * (hi - lo)
    coord[np.arange(n), axis] = pos
    coord += rng.normal(scale=0.002, size=(n, 3))
    base = rng.integers(40, 220, (len(planes), 3))
    color = np.clip(base[surface] + rng.normal(scale=6, size=(n, 3)), 0, 255)
    labels = rng.integers(-1, 20, len(planes))
    return Scene(name=f"scene{index:04d}", coord=coord, color=color, segment=labels[surface])


def write_npy(folder: Path, scene: Scene) -> None:
    folder.mkdir(parents=True)
    for f in FIELDS:
        np.save(folder / f"{f}.npy", getattr(scene, f))


def read_npy(folder: Path) -> dict[str, np.ndarray]:
    return {f: np.load(folder / f"{f}.npy") for f in FIELDS}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed_reads(order: list[int], read) -> tuple[list[float], int]:
    latencies, points = [], 0
    for i in order:
        t = time.perf_counter()
        points += len(read(i)["coord"])
        latencies.append(time.perf_counter() - t)
    return latencies, points


def summary(latencies: list[float], points: int) -> dict[str, float]:
    ms = sorted(x * 1e3 for x in latencies)
    total = sum(latencies)
    return {"median_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))], "mean_ms": total * 1e3 / len(ms),
            "scenes_per_s": len(ms) / total, "mpoints_per_s": points / total / 1e6}


def build(work: Path, scenes: int, lo: int, hi: int, codec: BloscCodec) -> tuple[str, Path, float, float, int]:
    layout.point_codec = lambda: codec  # the bench's only knob on the store format
    url, npy = str(work / "scannet.zarr"), work / "npy"
    points, t_store, t_npy = 0, 0.0, 0.0
    with StoreWriter.open(url, "scannet", source="bench/store_read.py synthetic rooms") as w:
        for i in range(scenes):
            scene = synth_scene(i, lo, hi)
            points += len(scene)
            t = time.perf_counter()
            w.append("train", scene)
            t_store += time.perf_counter() - t
            t = time.perf_counter()
            write_npy(npy / scene.name, scene)
            t_npy += time.perf_counter() - t
    return url, npy, t_store, t_npy, points


def compare(work: Path, scenes: int, reads: int, lo: int, hi: int, codec: BloscCodec, label: str) -> None:
    url, npy, t_store, t_npy, points = build(work, scenes, lo, hi, codec)
    reader = open_store(url)
    names = reader.names("train")
    order = [int(i) for i in np.random.default_rng(7).integers(0, scenes, reads)]

    def from_store(i: int):
        return reader.read("train", i).arrays()

    def from_npy(i: int):
        return read_npy(npy / names[i])

    for i in order[:5]:  # the two layouts hold the same data
        a, b = from_store(i), from_npy(i)
        assert all(np.array_equal(a[f], b[f]) for f in FIELDS)
    for _ in range(2):  # pass 1 warms the page cache and the reader's offsets/names; pass 2 is reported
        s_lat, s_pts = timed_reads(order, from_store)
        n_lat, n_pts = timed_reads(order, from_npy)
    s, n = summary(s_lat, s_pts), summary(n_lat, n_pts)
    s_bytes, n_bytes = dir_bytes(Path(url)), dir_bytes(npy)
    print(f"\n[{label}] {scenes} scenes, {points:,} points ({points / scenes:,.0f}/scene), {reads} random reads")
    print(f"{'':8} {'size MB':>9} {'write s':>8} {'median ms':>10} {'p95 ms':>8} {'mean ms':>8} {'scenes/s':>9} "
          f"{'Mpts/s':>7}")
    for name, r, size, wt in (("store", s, s_bytes, t_store), ("npy", n, n_bytes, t_npy)):
        print(f"{name:8} {size / 1e6:9.1f} {wt:8.2f} {r['median_ms']:10.2f} {r['p95_ms']:8.2f} {r['mean_ms']:8.2f} "
              f"{r['scenes_per_s']:9.1f} {r['mpoints_per_s']:7.1f}")
    print(f"store/npy: read latency (mean) {s['mean_ms'] / n['mean_ms']:.2f}x, "
          f"throughput {s['mpoints_per_s'] / n['mpoints_per_s']:.2f}x, size {s_bytes / n_bytes:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=240)
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("--min-points", type=int, default=20_000)
    ap.add_argument("--max-points", type=int, default=200_000)
    ap.add_argument("--codecs", default="", help="also compare these Blosc codecs on a 60-scene subset, e.g. lz4,zstd")
    ap.add_argument("--workdir", default=None, help="where to write (default: a temporary folder, removed after)")
    args = ap.parse_args()
    started = time.perf_counter()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pmoe-bench-store-"))
    try:
        default = layout.point_codec()
        compare(work / "main", args.scenes, args.reads, args.min_points, args.max_points, default,
                f"default codec: blosc {default.cname.value} clevel {default.clevel}")
        for cname in filter(None, args.codecs.split(",")):
            codec = BloscCodec(cname=cname, clevel=5 if cname == "lz4" else 3, shuffle="shuffle")
            compare(work / cname, min(60, args.scenes), args.reads, args.min_points, args.max_points, codec,
                    f"blosc {cname} clevel {codec.clevel}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
