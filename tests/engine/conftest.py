"""Tiny scene stores of two datasets (one indoor, one outdoor) for engine tests, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pmoe_core.scene import Scene
from pmoe_core.store import StoreWriter


def room(rng: np.random.Generator, name: str, n: int = 3000) -> Scene:
    """Floor, two walls and a box: labels follow geometry, so a model can learn them (ScanNet20 indices)."""
    k = n // 4
    floor = np.c_[rng.uniform(0, 4, (k, 2)), rng.normal(0, 0.005, k)]
    wall_x = np.c_[rng.normal(0, 0.005, k), rng.uniform(0, 4, k), rng.uniform(0, 2.5, k)]
    wall_y = np.c_[rng.uniform(0, 4, k), rng.normal(4, 0.005, k), rng.uniform(0, 2.5, k)]
    c = rng.uniform(1, 3, 2)
    box = np.c_[rng.uniform(-0.3, 0.3, (n - 3 * k, 2)) + c, rng.uniform(0.0, 0.8, n - 3 * k)]
    coord = np.concatenate([floor, wall_x, wall_y, box]).astype(np.float32)
    segment = np.repeat([1, 0, 0, 6], [k, k, k, n - 3 * k]).astype(np.int16)  # floor, wall, wall, table
    palette = np.array([[200, 200, 200], [120, 80, 40], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [30, 90, 200]])
    color = np.clip(palette[segment] + rng.normal(0, 10, (n, 3)), 0, 255).astype(np.uint8)
    normal = np.zeros((n, 3), np.float32)
    normal[:k, 2] = 1
    normal[k:2 * k, 0] = 1
    normal[2 * k:3 * k, 1] = -1
    normal[3 * k:, 2] = 1
    return Scene(name=name, coord=coord, color=color, normal=normal, segment=segment)


def street(rng: np.random.Generator, name: str, n: int = 3000) -> Scene:
    """Road plane, a building facade and a car box (SemanticKITTI19 indices)."""
    k = n // 3
    road = np.c_[rng.uniform(-20, 20, (k, 2)), rng.normal(-1.7, 0.02, k)]
    facade = np.c_[rng.uniform(-20, 20, k), rng.normal(8, 0.02, k), rng.uniform(-1.7, 6, k)]
    car = np.c_[rng.uniform(2, 6, n - 2 * k), rng.uniform(-1, 1, n - 2 * k), rng.uniform(-1.7, -0.2, n - 2 * k)]
    coord = np.concatenate([road, facade, car]).astype(np.float32)
    segment = np.repeat([8, 12, 0], [k, k, n - 2 * k]).astype(np.int16)  # road, building, car
    strength = np.clip(np.repeat([0.2, 0.5, 0.8], [k, k, n - 2 * k]) + rng.normal(0, 0.05, n), 0, 1)
    return Scene(name=name, coord=coord, strength=strength.astype(np.float32), segment=segment)


def write_store(out: Path, dataset: str, make, train: int, val: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with StoreWriter.open(str(out / f"{dataset}.zarr"), dataset) as writer:
        for i in range(train):
            writer.append("train", make(rng, f"train_{i:03d}"))
        for i in range(val):
            writer.append("val", make(rng, f"val_{i:03d}"))


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pmoe-cache")
    old = os.environ.get("PMOE_CACHE_DIR")
    os.environ["PMOE_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PMOE_CACHE_DIR", None)
    else:
        os.environ["PMOE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_stores(tmp_path_factory, engine_cache) -> Path:
    out = tmp_path_factory.mktemp("stores")
    write_store(out, "scannet", room, train=6, val=2, seed=0)
    write_store(out, "semantickitti", street, train=6, val=2, seed=1)
    return out
