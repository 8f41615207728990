"""`pmoe predict` on large synthetic clouds (1M and 30M points by default): points/s and peak RSS on CPU, and, where
eval applies (the same cloud stored as one scene), `pmoe eval`'s cost on it, measured in the same run.

The cloud is a floor of furnished rooms (6 x 5 x 3 m: floor, four walls, a table and a cabinet; ~250k points each,
coloured by surface) written as an (N, 6) .npy (x y z r g b). predict scores it in xy tiles of --tile-points with
context (bounded memory); eval scores a stored scene whole (all fragments, (N, K) scores), so eval runs only for
sizes up to --eval-max-points. Without --checkpoint, `pmoe train` trains pmoe-tiny for 2 steps on synthetic ScanNet
(time and memory do not depend on how trained the weights are); both commands then score the ScanNet20 classes.
Each command runs in its own process (bench/eval.py's runner): peak RSS is wait4's ru_maxrss of that process
(interpreter, torch and model included). "s" is the command's own scoring time (predict's report `seconds`, eval's
report `seconds`, which includes writing its --save-pred files); "wall" adds start-up, reading and writing.
"labels agree" compares predict's labels with eval's saved classes point by point: identical while the cloud fits
one tile; with several tiles the context (one point per voxel around a tile) changes the fragments, and the
near-uniform scores of a barely trained checkpoint flip easily (72.8% at 200k points in 4 tiles of 50k).
A small --tile-points on a small cloud is costly: every tile scores its 2 m of context too.
With --scene terrain the cloud is airborne-LiDAR-like instead: 100 x 100 m tiles of rolling ground with box
buildings and round trees (~12 points/m^2, no colour, intensity by surface), scored with the SemanticKITTI classes
by the outdoor recipe (what predict picks for a cloud with intensity and no colour); it is always handed over as LAS,
and eval (up to --eval-max-points) scores the same LAS as pmoe reads it, stored as one SemanticKITTI val scene.
With --format las the cloud is handed to predict as a LAS 1.4 file (point format 2, 16-bit colour), written
in pieces of 1M points, so predict's own LAS reader and labelled-copy writer are what is measured.
Run: PYTHONPATH=. python bench/predict.py [--sizes 1000000,30000000] [--threads 2] [--eval-max-points 1000000]
     [--tile-points 400000] [--checkpoint CKPT] [--format npy|las]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval import pmoe, prepare  # noqa: E402  (bench/eval.py's per-process runner and tiny-checkpoint recipe)

from pmoe_core.scene import Scene  # noqa: E402
from pmoe_core.store import StoreWriter  # noqa: E402

ROOM = np.array([6.0, 5.0, 3.0])
ROOM_POINTS = 250_000
# surface kind -> (ScanNet20 class, colour): floor, wall, table, cabinet
KINDS = ((1, (180, 170, 150)), (0, (220, 220, 210)), (6, (120, 80, 40)), (2, (60, 90, 160)))


def room_points(rng: np.random.Generator, n: int, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coord float32, color uint8, ScanNet20 segment int16) of one furnished room at `origin`."""
    kind = rng.choice(4, size=n, p=[0.25, 0.5, 0.15, 0.10])
    u = rng.random((n, 3))
    xyz = u * ROOM
    xyz[kind == 0, 2] = 0.0
    walls = np.flatnonzero(kind == 1)
    side = rng.integers(0, 4, walls.size)
    xyz[walls[side == 0], 0] = 0.0
    xyz[walls[side == 1], 0] = ROOM[0]
    xyz[walls[side == 2], 1] = 0.0
    xyz[walls[side == 3], 1] = ROOM[1]
    table = kind == 2
    xyz[table] = np.c_[1.5 + 1.6 * u[table, 0], 1.5 + 0.9 * u[table, 1], np.full(table.sum(), 0.75)]
    cabinet = kind == 3
    xyz[cabinet] = np.c_[4.8 + 0.6 * u[cabinet, 0], 0.2 + 1.2 * u[cabinet, 1], 1.8 * u[cabinet, 2]]
    palette = np.array([c for _, c in KINDS], np.float64)
    color = np.clip(palette[kind] + rng.normal(0, 12, (n, 3)), 0, 255).astype(np.uint8)
    segment = np.array([s for s, _ in KINDS], np.int16)[kind]
    return (xyz + origin).astype(np.float32), color, segment


EVAL_SCENE = {"scannet": "scene0999_00", "semantickitti": "08_000000"}  # the stored scene's name per dataset
TERRAIN_TILE = 100.0  # m
TERRAIN_POINTS = 120_000  # per tile: ~12 points/m^2
# surface kind -> (SemanticKITTI class, intensity 0-1): ground, building, vegetation
TERRAIN_KINDS = ((9, 0.35), (13, 0.6), (15, 0.2))


def terrain_points(rng: np.random.Generator, n: int, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coord float64, intensity float32, SemanticKITTI class int16) of one 100 m tile at `origin`."""
    kind = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    xy = rng.random((n, 2)) * TERRAIN_TILE
    z = 2.0 * np.sin(xy[:, 0] / 17.0) * np.cos(xy[:, 1] / 23.0)
    buildings = np.flatnonzero(kind == 1)
    centre = rng.random((6, 2)) * (TERRAIN_TILE - 20) + 10
    size = rng.uniform(6, 15, (6, 2))
    height = rng.uniform(4, 20, 6)
    which = rng.integers(0, 6, buildings.size)
    xy[buildings] = centre[which] + (rng.random((buildings.size, 2)) - 0.5) * size[which]
    z[buildings] = height[which] * np.where(rng.random(buildings.size) < 0.7, 1.0, rng.random(buildings.size))
    trees = np.flatnonzero(kind == 2)
    crown = rng.random((20, 2)) * TERRAIN_TILE
    t = rng.integers(0, 20, trees.size)
    offset = rng.normal(0, 1.5, (trees.size, 3))
    xy[trees] = crown[t] + offset[:, :2]
    z[trees] = 6.0 + offset[:, 2]
    intensity = np.clip(np.array([v for _, v in TERRAIN_KINDS])[kind] + rng.normal(0, 0.05, n), 0, 1)
    segment = np.array([c for c, _ in TERRAIN_KINDS], np.int16)[kind]
    coord = np.c_[xy + origin[:2], z + origin[2]]
    return coord, intensity.astype(np.float32), segment


def write_terrain_las(path: Path, points: int, seed: int = 0) -> Path:
    """A LAS (point format 1: xyz + intensity) of `points` terrain points, written tile by tile (memory: one tile);
    returns the path of the ground-truth classes (.npy, int16) beside it."""
    import laspy

    tiles = -(-points // TERRAIN_POINTS)
    side = int(np.ceil(np.sqrt(tiles)))
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales, header.offsets = np.array([0.01, 0.01, 0.01]), np.zeros(3)
    truth = path.with_suffix(".segment.npy")
    segment = np.lib.format.open_memmap(truth, mode="w+", dtype=np.int16, shape=(points,))
    rng = np.random.default_rng(seed)
    with laspy.open(path, mode="w", header=header) as writer:
        for tile in range(tiles):
            start, stop = tile * TERRAIN_POINTS, min(points, (tile + 1) * TERRAIN_POINTS)
            origin = np.array([tile % side, tile // side, 0]) * TERRAIN_TILE
            coord, intensity, seg = terrain_points(rng, stop - start, origin)
            record = laspy.ScaleAwarePointRecord.zeros(len(coord), header=header)
            record.x, record.y, record.z = coord[:, 0], coord[:, 1], coord[:, 2]
            record.intensity = np.rint(intensity * 65535).astype(np.uint16)
            writer.write_points(record)
            segment[start:stop] = seg
    segment.flush()
    del segment
    return truth


def write_cloud(path: Path, points: int, seed: int = 0) -> Path:
    """An (N, 6) float32 .npy written room by room (memory: one room), rooms on a square grid; the generating
    surfaces' classes go to a second .npy (int16), whose path is returned."""
    rooms = -(-points // ROOM_POINTS)
    side = int(np.ceil(np.sqrt(rooms)))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(points, 6))
    truth = path.with_suffix(".segment.npy")
    segment = np.lib.format.open_memmap(truth, mode="w+", dtype=np.int16, shape=(points,))
    rng = np.random.default_rng(seed)
    for r in range(rooms):
        start, stop = r * ROOM_POINTS, min(points, (r + 1) * ROOM_POINTS)
        coord, color, seg = room_points(rng, stop - start, np.array([r % side, r // side, 0]) * (ROOM + [0.2, 0.2, 0]))
        out[start:stop, :3], out[start:stop, 3:], segment[start:stop] = coord, color, seg
    out.flush()
    segment.flush()
    del out, segment
    return truth


def npy_to_las(cloud: Path, chunk: int = 1 << 20) -> Path:
    """The (N, 6) .npy as a LAS file beside it, written in pieces (memory: one piece); the .npy is removed."""
    import laspy

    array = np.load(cloud, mmap_mode="r")
    header = laspy.LasHeader(point_format=2, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor(array[: min(len(array), chunk), :3].min(axis=0))
    path = cloud.with_suffix(".las")
    with laspy.open(path, mode="w", header=header) as writer:
        for start in range(0, len(array), chunk):
            piece = np.asarray(array[start:start + chunk])
            points = laspy.ScaleAwarePointRecord.zeros(len(piece), header=header)
            points.x, points.y, points.z = piece[:, 0], piece[:, 1], piece[:, 2]
            rgb = piece[:, 3:].astype(np.uint16) * 257
            points.red, points.green, points.blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
            writer.write_points(points)
    del array
    cloud.unlink()
    return path


def write_store(data: Path, cloud: Path, truth: Path) -> None:
    """The same cloud as the only val scene of a ScanNet store (segment = the generating surface's class)."""
    array = np.load(cloud, mmap_mode="r")
    scene = Scene(EVAL_SCENE["scannet"], np.asarray(array[:, :3]), color=np.asarray(array[:, 3:]).astype(np.uint8),
                  segment=np.load(truth))
    with StoreWriter.open(str(data / "scannet.zarr"), "scannet") as writer:
        writer.append("val", scene)


def write_terrain_store(data: Path, las: Path, truth: Path) -> None:
    """The terrain LAS as pmoe reads it (intensity -> strength), as the only val scene of a SemanticKITTI store."""
    from pmoe_core.io import read_point_cloud

    cloud = read_point_cloud(las)
    scene = Scene(EVAL_SCENE["semantickitti"], cloud.coord, strength=cloud.strength, segment=np.load(truth))
    with StoreWriter.open(str(data / "semantickitti.zarr"), "semantickitti") as writer:
        writer.append("val", scene)


class TileMemory:
    """Samples the predict process's resident memory and files each sample under the tile being scored, so growth
    across tiles shows, not only the peak. predict logs "tile k/N" when tile k is done: samples after that line
    belong to tile k + 1, those before the first line to reading + tile 1, those after "tile N/N" to writing."""

    def __init__(self, log: Path):
        self.log = log
        self.peaks: dict[int, int] = {}
        self.tiles = 0

    def __call__(self, pid: int) -> None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            text = self.log.read_text(errors="replace")
        except OSError:
            return
        rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        found = re.findall(r"tile (\d+)/(\d+)", text)
        done, total = (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)
        tile = done + 1  # total + 1: writing the outputs
        self.peaks[tile] = max(self.peaks.get(tile, 0), rss)
        self.tiles = max(total, self.tiles)

    def summary(self) -> str:
        names = {1: "read + 1", self.tiles + 1: "write"}
        return ", ".join(f"{names.get(t, t)}: {v / 2**30:.2f}" for t, v in sorted(self.peaks.items()))


def run_predict(ckpt: str, cloud: Path, out: Path, threads: int, tile_points: int,
                label_set: str = "scannet") -> tuple[float, float, int, np.ndarray, TileMemory]:
    """(scoring s, wall s, peak RSS bytes, labels, RSS by tile) of `pmoe predict` on the cloud."""
    log = out.with_suffix(".log")
    memory = TileMemory(log)
    wall, rss = pmoe(["predict", ckpt, str(cloud), "--out", str(out), "--label-set", label_set, "--device", "cpu",
                      "--threads", str(threads), "--tile-points", str(tile_points)], log, threads, watch=memory)
    report = json.loads(next(out.glob("*.report.json")).read_text())
    labels = np.load(next(out.glob("*.labels.npy")))
    return float(report["seconds"]), wall, rss, labels, memory


def run_eval(ckpt: str, data: Path, out: Path, threads: int,
             dataset: str = "scannet") -> tuple[float, float, int, np.ndarray]:
    """(scoring s, wall s, peak RSS bytes, classes) of `pmoe eval --save-pred` on the stored cloud."""
    out.mkdir(parents=True, exist_ok=True)
    wall, rss = pmoe(["eval", ckpt, "--data", str(data), "--datasets", dataset, "--device", "cpu", "--threads",
                      str(threads), "--json", str(out / "report.json"), "--save-pred", str(out / "pred")],
                     out.with_suffix(".log"), threads)
    seconds = json.loads((out / "report.json").read_text())["seconds"]
    return float(seconds), wall, rss, np.load(out / "pred" / dataset / "val" / "classes" / f"{EVAL_SCENE[dataset]}.npy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,30000000", help="comma-separated cloud sizes (points)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-max-points", type=int, default=1_000_000, help="run eval on clouds up to this size")
    ap.add_argument("--tile-points", type=int, default=400_000)
    ap.add_argument("--checkpoint", default=None, help="a checkpoint trained on ScanNet (default: a 2-step tiny one)")
    ap.add_argument("--format", choices=("npy", "las"), default="npy", help="file handed to predict (rooms)")
    ap.add_argument("--scene", choices=("rooms", "terrain"), default="rooms", help="indoor rooms or airborne terrain")
    ap.add_argument("--work", default=None, help="folder for clouds and outputs (default: a temporary one)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        terrain = args.scene == "terrain"
        datasets = ["semantickitti"] if terrain else ["scannet"]
        ckpt = args.checkpoint or prepare(work, datasets, 2, args.threads)[1]
        print(f"{args.threads} thread(s), {args.scene}, {'las' if terrain else args.format} input, checkpoint {args.checkpoint or 'pmoe-tiny, 2 steps'}, prepared in "
              f"{time.perf_counter() - start:.1f} s, --tile-points {args.tile_points:,}", flush=True)
        print("| points | predict s (wall) | predict points/s | predict peak RSS | eval s (wall) | eval points/s "
              "| eval peak RSS | predict / eval time | predict / eval memory | labels agree |")
        print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
        for n in sizes:
            if terrain:
                cloud = work / f"terrain_{n}.las"
                truth = write_terrain_las(cloud, n)
                if n <= args.eval_max_points:
                    write_terrain_store(work / f"data_{n}", cloud, truth)
            else:
                cloud = work / f"cloud_{n}.npy"
                truth = write_cloud(cloud, n)
                if n <= args.eval_max_points:
                    write_store(work / f"data_{n}", cloud, truth)
                if args.format == "las":
                    cloud = npy_to_las(cloud)
            p_s, p_wall, p_rss, labels, memory = run_predict(ckpt, cloud, work / f"predict_{n}", args.threads,
                                                     args.tile_points, datasets[0])
            row = (f"| {n:,} | {p_s:.1f} ({p_wall:.1f}) | {n / p_s:,.0f} | {p_rss / 2**30:.2f} GiB | ")
            if n <= args.eval_max_points:
                data = work / f"data_{n}"
                e_s, e_wall, e_rss, classes = run_eval(ckpt, data, work / f"eval_{n}", args.threads, datasets[0])
                agree = float((classes.astype(np.int64) == labels).mean())
                row += (f"{e_s:.1f} ({e_wall:.1f}) | {n / e_s:,.0f} | {e_rss / 2**30:.2f} GiB | {p_s / e_s:.2f}x | "
                        f"{p_rss / e_rss:.2f}x | {100 * agree:.2f}% |")
            else:
                row += "- | - | - | - | - | - |"
            print(row, flush=True)
            print(f"  predict RSS by tile, max of 0.5 s samples (GiB): {memory.summary()}", flush=True)
            cloud.unlink()
            truth.unlink()


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"whole run {time.perf_counter() - t:.1f} s")
