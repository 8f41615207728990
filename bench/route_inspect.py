"""Wall time of `route-inspect` on one large scene, single-threaded CPU, everything written (HDF5 traces with probs,
3 coloured PLYs, figures, PCA projection, JSON report).

Without --checkpoint a pmoe-tiny checkpoint is trained for 2 steps on two tiny synthetic stores (routing cost does
not depend on how trained the weights are). The scene is a synthetic room (indoor, 2 cm grid) or street (outdoor,
5 cm grid) PLY of --points points. Baseline, measured in the same run: plain inference of the same file (read,
voxelise, forward without the routing recorder); the ratio is route-inspect's per-scene time over it, i.e. what the
analysis costs on top of running the model.
Run: PYTHONPATH=. python bench/route_inspect.py [--points 100000] [--checkpoint CKPT] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pmoe_core.engine.model_io import load_segmentation_model
from pmoe_core.engine.train import TrainConfig, train
from pmoe_core.inspect.run import RouteInspectConfig, route_inspect
from pmoe_core.inspect.traces import token_batch, tokens_of
from pmoe_core.io import read_point_cloud, write_ply
from pmoe_core.scene import Scene
from pmoe_core.store import StoreWriter


def room(rng: np.random.Generator, n: int, name: str = "room") -> Scene:
    """8 x 6 m room: floor, 4 walls, 6 boxes; ScanNet labels floor 1, wall 0, table 6."""
    parts = rng.multinomial(n, [0.3, 0.4, 0.3])
    floor = np.c_[rng.uniform(0, 8, parts[0]), rng.uniform(0, 6, parts[0]), rng.normal(0, 0.003, parts[0])]
    side = rng.integers(0, 4, parts[1])
    u, z = rng.uniform(0, 1, parts[1]), rng.uniform(0, 2.8, parts[1])
    walls = np.select([side[:, None] == s for s in range(4)],
                      [np.c_[u * 8, 0 * u, z], np.c_[u * 8, 0 * u + 6, z],
                       np.c_[0 * u, u * 6, z], np.c_[0 * u + 8, u * 6, z]])
    centres = rng.uniform([1, 1], [7, 5], (6, 2))
    which = rng.integers(0, 6, parts[2])
    boxes = np.c_[centres[which] + rng.uniform(-0.4, 0.4, (parts[2], 2)), rng.uniform(0, 0.9, parts[2])]
    coord = np.concatenate([floor, walls, boxes]).astype(np.float32)
    segment = np.repeat([1, 0, 6], parts).astype(np.int16)
    color = np.clip(np.array([[200, 200, 200], [120, 80, 40]] + [[0, 0, 0]] * 4 + [[30, 90, 200]])[segment]
                    + rng.normal(0, 10, (n, 3)), 0, 255).astype(np.uint8)
    normal = np.zeros((n, 3), np.float32)
    normal[segment != 0, 2] = 1
    normal[segment == 0, 0] = 1
    return Scene(name=name, coord=coord, color=color, normal=normal, segment=segment)


def street(rng: np.random.Generator, n: int, name: str = "street") -> Scene:
    """60 x 60 m LiDAR-like street: road, facades, cars; SemanticKITTI labels road 8, building 12, car 0."""
    parts = rng.multinomial(n, [0.5, 0.3, 0.2])
    road = np.c_[rng.uniform(-30, 30, (parts[0], 2)), rng.normal(-1.7, 0.02, parts[0])]
    facade = np.c_[rng.uniform(-30, 30, parts[1]), rng.choice([-12, 12], parts[1]) + rng.normal(0, 0.02, parts[1]),
                   rng.uniform(-1.7, 8, parts[1])]
    cars = np.c_[rng.uniform(-25, 25, parts[2]), rng.uniform(-6, 6, parts[2]), rng.uniform(-1.7, -0.2, parts[2])]
    coord = np.concatenate([road, facade, cars]).astype(np.float32)
    segment = np.repeat([8, 12, 0], parts).astype(np.int16)
    strength = np.clip(np.repeat([0.2, 0.5, 0.8], parts) + rng.normal(0, 0.05, n), 0, 1).astype(np.float32)
    return Scene(name=name, coord=coord, strength=strength, segment=segment)


def tiny_checkpoint(work: Path) -> Path:
    rng = np.random.default_rng(0)
    for dataset, make in (("scannet", room), ("semantickitti", street)):
        with StoreWriter.open(str(work / f"{dataset}.zarr"), dataset) as writer:
            for i in range(2):
                writer.append("train", make(rng, 3000, f"train_{i}"))
    result = train(TrainConfig(data=str(work), datasets=("scannet", "semantickitti"), out=str(work / "run"), steps=2,
                               batch_size=2, workers=0, preset="pmoe-tiny", tensorboard=False, ckpt_every=1000),
                   echo=lambda _: None)
    return result.checkpoint


@torch.inference_mode()
def plain_inference_seconds(ckpt: str, path: Path, domain: str, grid: float, repeat: int) -> float:
    """Best of `repeat`: read the file, one point per voxel, forward without the recorder (the baseline)."""
    model, _ = load_segmentation_model(ckpt, device="cpu")
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        sample, _, _ = tokens_of(read_point_cloud(path), domain, grid)
        model.features(token_batch(sample))
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = args.checkpoint or str(tiny_checkpoint(work))
        rng = np.random.default_rng(1)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), checkpoint {ckpt}")
        print("| scene | points | tokens | layers | first run s | best run s | of which scene s | plain inference s "
              "| scene / plain |")
        print("|---|---|---|---|---|---|---|---|---|")
        for make in (room, street):
            scene = make(rng, args.points)
            path = work / f"{scene.name}.ply"
            write_ply(scene, path)
            runs = [route_inspect(RouteInspectConfig(ckpt, (str(path),), out=str(work / f"out_{scene.name}_{r}")))
                    for r in range(args.repeat)]
            best = min(runs, key=lambda r: r.seconds)
            s = best.scenes[0]
            plain = plain_inference_seconds(ckpt, path, s.domain, s.grid_size, args.repeat)
            print(f"| {scene.name} ({s.domain}, grid {s.grid_size:g} m) | {s.points:,} | {s.tokens:,} | "
                  f"{len(best.layers)} | {runs[0].seconds:.1f} | {best.seconds:.1f} | {s.seconds:.1f} | {plain:.1f} | "
                  f"{s.seconds / plain:.2f}x |")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"whole run {time.perf_counter() - t:.1f} s")
