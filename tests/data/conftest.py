"""Synthetic scenes for the data-pipeline tests (built in memory, no fixtures on disk)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from pmoe_core.scene import Scene
from pmoe_core.vocab.label_spaces import LABEL_SPACES, OUTDOOR


def synthetic_scene(name: str, dataset: str, num_points: int, seed: int = 0) -> Scene:
    """Indoor: a 6 x 5 x 3 m room with color and normals. Outdoor: a 40 m sensor sweep with strength only."""
    rng = np.random.default_rng(seed)
    num_classes = LABEL_SPACES[dataset].num_classes
    segment = rng.integers(-1, num_classes, num_points).astype(np.int16)
    if dataset in OUTDOOR:
        radius = rng.uniform(2, 40, num_points)
        angle = rng.uniform(-np.pi, np.pi, num_points)
        coord = np.stack([radius * np.cos(angle), radius * np.sin(angle), rng.normal(-1.7, 0.3, num_points)], 1)
        return Scene(name, coord, strength=rng.random(num_points), segment=segment)
    coord = rng.random((num_points, 3)) * np.array([6.0, 5.0, 3.0]) + np.array([10.0, -3.0, 0.5])
    normal = rng.normal(size=(num_points, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    color = rng.integers(0, 256, (num_points, 3))
    return Scene(name, coord, color=color, normal=normal, segment=segment, instance=rng.integers(0, 9, num_points))


@pytest.fixture
def make_scene():
    return synthetic_scene


@dataclass(frozen=True)
class Stores:
    """Small stores in a temporary folder: two datasets, and one dataset written as two shards."""

    scannet: str
    semantickitti: str
    s3dis_shards: tuple[str, str]

    @property
    def all(self) -> list[str]:
        return [self.scannet, self.semantickitti, *self.s3dis_shards]


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> Stores:
    from pmoe_core.store import StoreWriter, store_path

    out = str(tmp_path_factory.mktemp("stores"))
    layout = {store_path(out, "scannet"): ("scannet", 4), store_path(out, "semantickitti"): ("semantickitti", 3),
              store_path(out, "s3dis", (0, 2)): ("s3dis", 2), store_path(out, "s3dis", (1, 2)): ("s3dis", 3)}
    for k, (url, (dataset, count)) in enumerate(layout.items()):
        with StoreWriter.open(url, dataset) as writer:
            for i in range(count):
                writer.append("train", synthetic_scene(f"{dataset}-{k}-{i}", dataset, 4000 + 500 * i, 10 * k + i))
            writer.append("val", synthetic_scene(f"{dataset}-{k}-val", dataset, 3000, 99 + k))
    urls = list(layout)
    return Stores(urls[0], urls[1], (urls[2], urls[3]))
