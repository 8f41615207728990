"""Data-loader throughput vs. how fast a tiny model consumes scenes in a CPU training step, in one run.

Builds synthetic ScanNet-like (indoor, color + normals) and SemanticKITTI-like (outdoor, strength) stores in a
temporary folder, streams mixed batches through the full training recipes with worker processes, then times
training steps of a tiny preset on batches from the same loader. The loader should deliver at least 3x the
scenes per second the model consumes, so training never waits for data.

    python bench/loader.py [--points 80000] [--workers 2] [--batch-size 2] [--preset pmoe-tiny]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from pmoe_core.data.collate import SegTargets
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.loader import make_loader
from pmoe_core.data.sampler import MixedBatchSampler
from pmoe_core.models.batch import PointBatch
from pmoe_core.scene import Scene
from pmoe_core.store import StoreReader, StoreWriter, store_path


def indoor_scene(name: str, n: int, rng: np.random.Generator) -> Scene:
    """Points on the floor, walls and ceiling of a room plus a few boxes, 20 classes, per-surface normals."""
    size = rng.uniform([4, 4, 2.5], [9, 8, 3.2])
    surface = rng.integers(0, 9, n)  # 0 floor, 1 ceiling, 2-5 walls, 6-8 furniture boxes
    u, v = rng.random(n), rng.random(n)
    coord = np.empty((n, 3))
    normal = np.zeros((n, 3))
    axis = np.array([2, 2, 0, 0, 1, 1, 2, 2, 2])[surface]
    side = np.array([0, 1, 0, 1, 0, 1, 0, 0, 0])[surface]
    for a in range(3):
        others = [b for b in range(3) if b != a]
        rows = axis == a
        coord[rows, a] = side[rows] * size[a]
        coord[rows, others[0]] = u[rows] * size[others[0]]
        coord[rows, others[1]] = v[rows] * size[others[1]]
        normal[rows, a] = 1 - 2 * side[rows]
    box = surface >= 6
    coord[box, 2] = rng.choice([0.45, 0.75, 1.1], box.sum())
    coord[box, :2] = rng.uniform(1, 3, (box.sum(), 2)) + surface[box, None] - 6
    coord += rng.normal(scale=0.003, size=coord.shape)
    palette = rng.integers(0, 256, (9, 3))
    color = np.clip(palette[surface] + rng.normal(scale=12, size=(n, 3)), 0, 255)
    segment = np.array([1, 0, 0, 0, 0, 0, 4, 6, 12])[surface]
    return Scene(name, coord, color=color, normal=normal, segment=segment)


def outdoor_scene(name: str, n: int, rng: np.random.Generator) -> Scene:
    """A lidar-like sweep: ground ring (denser near the sensor) plus vertical structures, 19 classes."""
    radius = 2 + 60 * rng.random(n) ** 2
    angle = rng.uniform(-np.pi, np.pi, n)
    coord = np.stack([radius * np.cos(angle), radius * np.sin(angle), np.full(n, -1.7)], 1)
    upright = rng.random(n) < 0.4
    coord[upright, 2] += rng.uniform(0, 6, upright.sum())
    coord += rng.normal(scale=0.02, size=coord.shape)
    segment = np.where(upright, rng.choice([0, 12, 14, 17], n), rng.choice([8, 10, 16], n))
    return Scene(name, coord, strength=rng.random(n), segment=segment)


def build_stores(out: str, scenes: int, points: int) -> list[str]:
    rng = np.random.default_rng(0)
    urls = []
    for dataset, make in (("scannet", indoor_scene), ("semantickitti", outdoor_scene)):
        url = store_path(out, dataset)
        with StoreWriter.open(url, dataset) as writer:
            for i in range(scenes):
                writer.append("train", make(f"{dataset}-{i:03d}", int(points * rng.uniform(0.6, 1.0)), rng))
        urls.append(url)
    return urls


def class_embeddings(urls: list[str], order: dict[str, int]) -> torch.Tensor:
    """The stores' class embeddings, concatenated in the collator's label-space order."""
    by_dataset = {r.dataset: r.class_embeddings for r in map(StoreReader, urls)}
    return torch.from_numpy(np.concatenate([by_dataset[d] for d in order]))


def train_step(model, optimizer, batch: PointBatch, targets: SegTargets, embeddings: torch.Tensor) -> float:
    """One step with each sample's loss over its own label space (the language head sliced per sample)."""
    feat = model.features(batch)
    ends = batch.offset.tolist()
    losses = []
    for b, (lo, hi) in enumerate(zip([0] + ends[:-1], ends)):
        start, count = int(targets.class_offset[b]), int(targets.num_classes[b])
        logits = model.head(feat[lo:hi], embeddings[start : start + count])
        losses.append(F.cross_entropy(logits, targets.segment[lo:hi], ignore_index=-1))
    loss = torch.stack(losses).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=80_000, help="points of the largest stored scene")
    parser.add_argument("--scenes", type=int, default=8, help="scenes per dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--loader-batches", type=int, default=24)
    parser.add_argument("--preset", default="pmoe-tiny")
    parser.add_argument("--model-steps", type=int, default=2, help="timed steps, after one untimed warm-up step")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training step")
    args = parser.parse_args()

    from pmoe_core.models.presets import build_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        urls = build_stores(out, args.scenes, args.points)
        data = SceneDataset(urls, "train")
        samples = args.batch_size * (args.loader_batches + 1)
        sampler = MixedBatchSampler(data.groups, batch_size=args.batch_size, samples_per_epoch=samples, seed=0)
        loader = make_loader(data, sampler, num_workers=args.workers)

        it = iter(loader)  # timed from here: worker start-up included, so the rate is a lower bound
        kept = list(itertools.islice(it, args.model_steps + 1))  # batches for the model, from the same loader
        for _ in it:
            pass
        stats = loader.throughput()
        loader_rate = stats.scenes_per_s
        print(f"loader: {args.workers} workers, batch {args.batch_size}, mixed indoor/outdoor, full train recipes: "
              f"{stats.scenes} scenes, {stats.points:,} points in {stats.seconds:.2f} s -> {loader_rate:.2f} scenes/s, "
              f"{stats.points_per_s:,.0f} points/s ({stats.points / stats.scenes:,.0f} points/scene after the recipes)")

        model = build_model(args.preset, text_dim=int(StoreReader(urls[0]).class_embeddings.shape[1]))
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        embeddings = class_embeddings(urls, data.label_spaces)
        train_step(model, optimizer, *kept[0], embeddings)
        model_scenes, model_points, start = 0, 0, time.perf_counter()
        for batch, targets in kept[1:]:
            train_step(model, optimizer, batch, targets, embeddings)
            model_scenes += batch.num_samples
            model_points += int(batch.coord.shape[0])
        model_seconds = time.perf_counter() - start
        model_rate = model_scenes / model_seconds
        print(f"model: {args.preset} training step on CPU ({args.threads} threads): {model_scenes} scenes, "
              f"{model_points:,} points in {model_seconds:.2f} s -> {model_rate:.3f} scenes/s")
        ratio = loader_rate / model_rate
        print(f"ratio loader/model: {ratio:.1f}x ({'meets' if ratio >= 3 else 'FAILS'} the >= 3x requirement)")


if __name__ == "__main__":
    main()
