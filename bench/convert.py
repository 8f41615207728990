"""Conversion throughput: points/s of `pmoe convert` with 1 worker vs all cores, vs a straightforward baseline.

Each dataset row writes a synthetic raw set once, then times, on the same bytes:
  baseline  - a plain single-process reader of the kind found in preprocessing scripts (plyfile without the
              fixed-list fast path, np.loadtxt, json + Python loops), producing the same arrays, no store;
  pmoe read - the pmoe source module alone (list_scenes + read_scene), one process, no store;
  workers=1 - pmoe_core.convert.convert into a fresh store, reading in this process;
  workers=N - the same with N = all cores.
Usage: .venv/bin/python bench/convert.py [--datasets scannet,s3dis] [--scenes 8]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pmoe_core.convert import convert
from pmoe_core.sources import get_source
from pmoe_core.sources.base import noop_warn
from pmoe_core.sources.synthetic_indoor import (
    write_matterport3d, write_s3dis, write_scannet, write_structured3d,
)
from pmoe_core.sources.synthetic_outdoor import write_nuscenes, write_semantickitti, write_waymo
from pmoe_core.vocab.label_spaces import MATTERPORT3D, NUSCENES, S3DIS, SCANNET, SEMANTICKITTI, STRUCTURED3D, WAYMO


def baseline_scannet(root: Path) -> int:
    import plyfile

    nyu = {}
    lines = (root / "scannetv2-labels.combined.tsv").read_text().splitlines()
    for line in lines[1:]:
        cols = line.split("\t")
        nyu[cols[1]] = int(cols[4])
    points = 0
    for mesh in sorted(root.glob("scans*/*/*_vh_clean_2.ply")):
        ply = plyfile.PlyData.read(str(mesh))
        v = ply["vertex"]
        coord = np.stack([v["x"], v["y"], v["z"]], 1)
        faces = np.vstack(ply["face"]["vertex_indices"])
        tri = coord[faces]
        fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normal = np.zeros_like(coord)
        for k in range(3):
            np.add.at(normal, faces[:, k], fn)
        agg = mesh.with_name(mesh.name.replace("_vh_clean_2.ply", ".aggregation.json"))
        if agg.is_file():
            seg = np.array(json.loads(mesh.with_name(mesh.name.replace(".ply", ".0.010000.segs.json")).read_text())
                           ["segIndices"])
            label = np.full(len(coord), -1)
            for group in json.loads(agg.read_text())["segGroups"]:
                mask = np.isin(seg, group["segments"])
                label[mask] = SCANNET.map_raw(np.array([nyu.get(group["label"], 0)]))[0]
        points += len(coord)
    return points


def baseline_s3dis(root: Path) -> int:
    points = 0
    for room in sorted(root.glob("*/Area_*/*/Annotations")):
        parts = []
        for path in sorted(room.glob("*.txt")):
            if "(" in path.name:
                continue
            try:
                values = np.loadtxt(path)
            except ValueError:  # the stray byte: the plain script has to fall back to a per-line loop
                rows = []
                for line in path.read_bytes().decode(errors="ignore").splitlines():
                    clean = "".join(ch for ch in line if ch in "0123456789.- ")
                    rows.append([float(x) for x in clean.split()])
                values = np.array(rows)
            parts.append(np.column_stack([values, np.full(len(values), S3DIS.map_name(path.stem.split("_")[0]))]))
        points += len(np.concatenate(parts))
    return points


def baseline_structured3d(root: Path) -> int:
    from PIL import Image

    points = 0
    for archive in sorted(root.glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            for member in [n for n in zf.namelist() if n.endswith("camera_xyz.txt")]:
                base = member[: -len("camera_xyz.txt")]
                cam = np.array(zf.read(member).split(), dtype=float)
                depth = np.array(Image.open(io.BytesIO(zf.read(base + "full/depth.png")))).astype(float)
                sem = np.array(Image.open(io.BytesIO(zf.read(base + "full/semantic.png"))))
                h, w = depth.shape
                a = np.tile(np.arange(w) / w * 2 * np.pi - np.pi, (h, 1))
                b = np.tile((np.pi / 2 - np.arange(h) / h * np.pi)[:, None], (1, w))
                xyz = np.stack([depth * np.cos(a) * np.cos(b), depth * np.sin(b), depth * np.sin(a) * np.cos(b)], -1)
                xyz = xyz / 1000 + np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]) @ cam / 1000
                label = np.full(sem.shape, -1)
                for raw, idx in STRUCTURED3D.raw_to_index().items():  # the per-class loop of the usual script
                    label[sem == raw] = idx
                points += int(((depth > 0) & (sem > 0)).sum())
    return points


def baseline_matterport3d(root: Path) -> int:
    import plyfile

    table = {}
    for line in (root / "metadata" / "category_mapping.tsv").read_text().splitlines()[1:]:
        cols = line.split("\t")
        table[int(cols[0])] = int(cols[5] or 0)
    points = 0
    for archive in sorted(root.glob("v1/scans/*/region_segmentations.zip")):
        with zipfile.ZipFile(archive) as zf:
            for member in [n for n in zf.namelist() if n.endswith(".ply")]:
                ply = plyfile.PlyData.read(io.BytesIO(zf.read(member)))
                faces = np.vstack(ply["face"]["vertex_indices"])
                cat = np.array([table.get(int(c), 0) for c in ply["face"]["category_id"]])
                cls = MATTERPORT3D.map_raw(cat)
                counts = np.zeros((ply["vertex"].count, 22), int)
                for k in range(3):
                    np.add.at(counts, (faces[:, k], np.where(cls < 0, 21, cls)), 1)
                points += ply["vertex"].count
    return points


def baseline_semantickitti(root: Path) -> int:
    learning_map = SEMANTICKITTI.raw_to_index()
    points = 0
    for scan in sorted(root.glob("sequences/*/velodyne/*.bin")):
        xyz = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
        label_file = scan.parent.parent / "labels" / (scan.stem + ".label")
        if label_file.is_file():
            raw = np.fromfile(label_file, dtype=np.uint32)
            segment = np.array([learning_map.get(int(l) & 0xFFFF, -1) for l in raw])  # per-point Python mapping
            instance = np.array([int(l) >> 16 for l in raw])
        points += len(xyz)
    return points


def baseline_nuscenes(root: Path) -> int:
    tables = root / "v1.0-trainval"
    sample_data = json.loads((tables / "sample_data.json").read_text())
    sensors = {r["token"]: r["channel"] for r in json.loads((tables / "sensor.json").read_text())}
    cs = {r["token"]: sensors[r["sensor_token"]] for r in json.loads((tables / "calibrated_sensor.json").read_text())}
    index_to_name = {r["index"]: r["name"] for r in json.loads((tables / "category.json").read_text())}
    from pmoe_core.sources.nuscenes import LIDARSEG_CATEGORIES

    raw_map = NUSCENES.raw_to_index()
    points = 0
    for sd in sample_data:  # a linear scan per lookup, as devkit-free scripts often do
        if not (sd["is_key_frame"] and cs[sd["calibrated_sensor_token"]] == "LIDAR_TOP"):
            continue
        xyz = np.fromfile(root / sd["filename"], dtype=np.float32).reshape(-1, 5)
        labels = np.fromfile(root / "lidarseg" / "v1.0-trainval" / f"{sd['token']}_lidarseg.bin", dtype=np.uint8)
        segment = np.array([raw_map.get(LIDARSEG_CATEGORIES.index(index_to_name[int(v)]), -1) for v in labels])
        points += len(xyz)
    return points


def baseline_waymo(root: Path) -> int:
    import pyarrow.parquet as pq

    from pmoe_core.sources.waymo_parquet import read_frame
    from pmoe_core.sources.waymo_range_image import frame_points

    points = 0
    for seg in sorted(root.glob("*/lidar_segmentation/*.parquet")):
        table = pq.read_table(seg).to_pylist()  # everything through Python lists
        for ts in sorted({row["key.frame_timestamp_micros"] for row in table}):
            frame = read_frame(seg.parent.parent, seg.stem, ts)
            pts = frame_points(frame)
            segment = [WAYMO.raw_to_index().get(int(v), -1) for v in pts.semantic]  # per-point Python mapping
            points += len(pts.coord)
    return points


@dataclass(frozen=True)
class Row:
    write: Callable[..., dict]
    baseline: Callable[[Path], int]


# One row per dataset (outdoor rows are added the same way).
DATASETS: dict[str, Row] = {
    "scannet": Row(write_scannet, baseline_scannet),
    "s3dis": Row(write_s3dis, baseline_s3dis),
    "structured3d": Row(write_structured3d, baseline_structured3d),
    "matterport3d": Row(write_matterport3d, baseline_matterport3d),
    "semantickitti": Row(write_semantickitti, baseline_semantickitti),
    "nuscenes": Row(write_nuscenes, baseline_nuscenes),
    "waymo": Row(write_waymo, baseline_waymo),
}


def timed(fn: Callable[[], int], repeat: int) -> tuple[int, float]:
    best, points = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        points = fn()
        best = min(best, time.perf_counter() - started)
    return points, best


def bench(name: str, row: Row, scenes: int, repeat: int, tmp: Path) -> dict:
    raw = tmp / name / "raw"
    row.write(raw, scenes=scenes, seed=0)
    cores = os.cpu_count() or 1

    def run(workers: int) -> Callable[[], int]:
        def go() -> int:
            summary = convert(name, raw, str(tmp / name / f"out{workers}"), workers=workers, overwrite=True)
            return summary.points
        return go

    base_points, base_s = timed(lambda: row.baseline(raw), repeat)
    reader_points, reader_s = timed(lambda: read_only(name, raw), repeat)
    one_points, one_s = timed(run(1), repeat)
    all_points, all_s = timed(run(cores), repeat)
    assert base_points == reader_points == one_points == all_points, (name, base_points, one_points, all_points)
    return {"dataset": name, "scenes": scenes, "points": one_points, "cores": cores, "baseline": base_points / base_s,
            "reader": reader_points / reader_s, "one": one_points / one_s, "all": all_points / all_s}


def read_only(name: str, raw: Path) -> int:
    """The pmoe source module alone (list + read every scene, one process), no store: like for like with baseline."""
    module = get_source(name)
    options = module.Options()
    return sum(len(module.read_scene(ref, options, noop_warn)) for ref in module.list_scenes(raw, options))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print("| dataset | scenes | points | baseline read pts/s | pmoe read pts/s | read vs baseline | convert "
          "workers=1 pts/s | convert workers=N pts/s | N | N vs 1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            r = bench(name, DATASETS[name], args.scenes, args.repeat, Path(tmp))
            print(f"| {name} | {r['scenes']} | {r['points']:,} | {r['baseline']:,.0f} | {r['reader']:,.0f} | "
                  f"{r['reader'] / r['baseline']:.2f}x | {r['one']:,.0f} | {r['all']:,.0f} | {r['cores']} | "
                  f"{r['all'] / r['one']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
