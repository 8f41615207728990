"""A torch DataLoader over a SceneDataset and a MixedBatchSampler, with worker processes and a resumable position.

Workers read, transform and collate whole batches (the sampler runs in the main process). Because workers
prefetch, the sampler's own position runs ahead of training; the Loader counts the batches actually handed to
the caller, and that count is what its state_dict saves.

Mix3D (collate.mix3d) is decided here, in the main process, per batch handed out: the coin is a pure function of
(seed, rank, epoch, batch index), so it needs no state of its own and a resumed run draws the same coins.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import partial
from typing import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from pmoe_core.data.collate import Collate, SegTargets, mix3d
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.sampler import MixedBatchSampler
from pmoe_core.errors import BadInput
from pmoe_core.models.batch import PointBatch


@dataclass
class Throughput:
    """What a loader delivered: `seconds` is wall time from the first request to the last batch, `waiting` the
    part of it the consumer spent blocked on the loader (near 0 when loading keeps up with training)."""

    batches: int = 0
    scenes: int = 0  # scenes drawn (a Mix3D pair counts two)
    mixed: int = 0  # batches whose pairs Mix3D merged
    points: int = 0
    seconds: float = 0.0
    waiting: float = 0.0

    @property
    def scenes_per_s(self) -> float:
        return self.scenes / self.seconds if self.seconds > 0 else 0.0

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        mixed = f" ({self.mixed} mixed by Mix3D)" if self.mixed else ""
        return (f"{self.batches} batches{mixed}, {self.scenes} scenes, {self.points} points in {self.seconds:.2f} s "
                f"({self.waiting:.2f} s waiting): {self.scenes_per_s:.2f} scenes/s, {self.points_per_s:,.0f} points/s")


def seed_worker(base_seed: int, worker_id: int) -> None:
    """Seed the global RNGs of a worker; the pipeline itself draws only from per-sample generators."""
    seed = (base_seed * 1_000_003 + worker_id) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


MIX3D_STREAM = 0x4D3D  # keeps the Mix3D coins' seed sequence apart from the sampler's (seed, epoch) stream


def mix3d_coin(prob: float, seed: int, rank: int, epoch: int, index: int) -> bool:
    """Whether Mix3D merges batch `index` of `epoch` on `rank`: true with probability `prob`, the same on every
    call with the same arguments (Pointcept draws one coin per batch from the worker's global RNG)."""
    if prob <= 0:
        return False
    return bool(np.random.default_rng([MIX3D_STREAM, seed, rank, epoch, index]).random() < prob)


class Loader:
    """Iterates (PointBatch, SegTargets) for the sampler's current epoch; see `make_loader`."""

    def __init__(self, loader: DataLoader, sampler: MixedBatchSampler, mix3d: float = 0.0):
        if not 0 <= mix3d <= 1:
            raise BadInput(f"the Mix3D probability must be from 0 to 1, got {mix3d}")
        self.loader, self.sampler, self.mix3d = loader, sampler, mix3d
        self.epoch, self.position = sampler.epoch, sampler.position
        self.stats = Throughput()

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[PointBatch, SegTargets]]:
        self.epoch, self.position = self.sampler.epoch, self.sampler.position
        before = self.stats.seconds
        start = asked = time.perf_counter()
        for batch, targets in self.loader:
            now = time.perf_counter()
            index, self.position = self.position, self.position + 1
            self.stats.batches += 1
            self.stats.scenes += batch.num_samples
            self.stats.points += int(batch.coord.shape[0])
            self.stats.waiting += now - asked
            self.stats.seconds = before + now - start
            if mix3d_coin(self.mix3d, self.sampler.seed, self.sampler.rank, self.epoch, index):
                count = batch.num_samples
                batch, targets = mix3d(batch, targets)
                self.stats.mixed += int(batch.num_samples < count)
            yield batch, targets
            asked = time.perf_counter()
        self.epoch, self.position = self.epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.epoch, self.position = self.sampler.epoch, self.sampler.position

    def state_dict(self) -> dict[str, int]:
        """Epoch and batches consumed by the caller (not merely prefetched)."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.sampler.load_state_dict(state)
        self.epoch, self.position = self.sampler.epoch, self.sampler.position

    def throughput(self) -> Throughput:
        """Totals over every batch delivered so far (all epochs)."""
        return Throughput(**vars(self.stats))


def make_loader(
    dataset: SceneDataset,
    sampler: MixedBatchSampler,
    num_workers: int = 2,
    prefetch_factor: int = 2,
    persistent_workers: bool = True,
    seed: int = 0,
    collate: Collate | None = None,
    mix3d: float = 0.0,
) -> Loader:
    """`mix3d`: the probability that a batch's pairs of samples are merged into one scene each (collate.mix3d),
    training only (Pointcept's `mix_prob`)."""
    workers = num_workers > 0
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate if collate is not None else Collate(dataset.label_spaces),
        num_workers=num_workers,
        persistent_workers=persistent_workers and workers,
        prefetch_factor=prefetch_factor if workers else None,
        worker_init_fn=partial(seed_worker, seed) if workers else None,
        # Its own generator: a DataLoader draws a base seed each time an iterator starts (every epoch, and on
        # resume), which would otherwise advance the global torch RNG and make resumed runs drift.
        generator=torch.Generator().manual_seed(seed),
    )
    return Loader(loader, sampler, mix3d)


def make_test_loader(dataset: SceneDataset, scenes_per_batch: int = 1, num_workers: int = 2,
                     collate: Collate | None = None) -> DataLoader:
    """Every scene once, in order; each batch holds all fragments of its scenes with the maps back (Collate.test).

    `dataset` should be in mode "test" (or use a recipe ending in GridFragments).
    """
    collate = collate if collate is not None else Collate(dataset.label_spaces)
    return DataLoader(
        dataset,
        batch_size=scenes_per_batch,
        shuffle=False,
        collate_fn=collate.test,
        num_workers=num_workers,
        worker_init_fn=partial(seed_worker, 0) if num_workers > 0 else None,
    )
