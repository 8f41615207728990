"""Mixed-dataset batch sampling with explicit per-dataset weights and an explicit epoch length.

An epoch is a fixed number of draws (not the concatenated dataset length): each draw picks a dataset with
probability proportional to its weight, then the next scene of that dataset's own shuffled stream (every scene once
before any repeats). With `mix=False` a whole batch draws from one dataset (the paper's no-mixing ablation).
The whole epoch is a pure function of (seed, epoch), so every rank computes the same global sequence and takes
every world_size-th batch, and a run resumes by skipping the batches it already consumed.
"""

from __future__ import annotations

from typing import Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from pmoe_core.errors import BadInput


class SampleKey(NamedTuple):
    """One draw: which scene (dataset-global index) and the seed of its augmentations."""

    index: int
    seed: int


class MixedBatchSampler:
    """Yields this rank's batches (lists of SampleKey) for a DataLoader's `batch_sampler`.

    `groups` maps dataset name -> its scenes' global indices; `weights` (default: proportional to group size)
    are per-dataset sampling probabilities after normalisation; `samples_per_epoch` counts draws over all ranks
    (default: the total number of scenes, at least one batch per rank) and is rounded down to whole batches on
    every rank.
    Iterating to the end advances to the next epoch; `set_epoch` sets it explicitly.
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[int]],
        batch_size: int,
        samples_per_epoch: int | None = None,
        weights: Mapping[str, float] | None = None,
        mix: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.names = tuple(groups)
        self.groups = [np.asarray(groups[name], dtype=np.int64) for name in self.names]
        if any(g.size == 0 for g in self.groups):
            raise BadInput(f"every dataset needs at least one scene: {dict(zip(self.names, map(len, self.groups)))}")
        self.probs = self._normalised(weights)
        if not 0 <= rank < world_size:
            raise BadInput(f"rank {rank} outside world size {world_size}")
        if batch_size < 1:
            raise BadInput(f"batch size must be positive, got {batch_size}")
        self.batch_size, self.mix, self.seed = batch_size, mix, seed
        self.rank, self.world_size = rank, world_size
        if samples_per_epoch is None:  # one pass over the scenes, but never less than one batch per rank
            total = max(sum(g.size for g in self.groups), batch_size * world_size)
        else:
            total = samples_per_epoch
        self.batches_per_rank = total // (batch_size * world_size)
        if self.batches_per_rank == 0:
            raise BadInput(f"--samples-per-epoch {total} does not fill one batch of {batch_size} on {world_size} "
                           f"process(es); give at least {batch_size * world_size}")
        self.epoch = 0
        self.position = 0  # batches of this epoch already yielded on this rank

    def _normalised(self, weights: Mapping[str, float] | None) -> np.ndarray:
        if weights is None:
            raw = np.array([g.size for g in self.groups], dtype=np.float64)
        else:
            unknown = set(weights) - set(self.names)
            missing = set(self.names) - set(weights)
            if unknown or missing:
                raise BadInput(f"weights must name exactly {self.names}; "
                               f"unknown {sorted(unknown)}, missing {sorted(missing)}")
            raw = np.array([weights[name] for name in self.names], dtype=np.float64)
        if (raw < 0).any() or raw.sum() <= 0:
            raise BadInput(f"weights must be non-negative with a positive sum, got {raw.tolist()}")
        return raw / raw.sum()

    def __len__(self) -> int:
        return self.batches_per_rank

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def epoch_batches(self, epoch: int) -> list[list[SampleKey]]:
        """This rank's batches of `epoch`, from the start."""
        global_batches = self._global_batches(epoch)
        return global_batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        batches = self.epoch_batches(self.epoch)
        while self.position < len(batches):
            batch = batches[self.position]
            self.position += 1
            yield batch
        self.epoch, self.position = self.epoch + 1, 0

    def _global_batches(self, epoch: int) -> list[list[SampleKey]]:
        rng = np.random.default_rng([self.seed, epoch])
        num_batches = self.batches_per_rank * self.world_size
        draws = num_batches * self.batch_size
        if self.mix:
            dataset_of_draw = rng.choice(len(self.names), size=draws, p=self.probs)
        else:
            dataset_of_draw = np.repeat(rng.choice(len(self.names), size=num_batches, p=self.probs), self.batch_size)
        scene_of_draw = np.empty(draws, dtype=np.int64)
        for d, group in enumerate(self.groups):
            where = np.flatnonzero(dataset_of_draw == d)
            scene_of_draw[where] = self._stream(group, where.size, rng)
        seeds = rng.integers(0, 2**63 - 1, size=draws, dtype=np.int64)
        keys = [SampleKey(int(i), int(s)) for i, s in zip(scene_of_draw, seeds)]
        return [keys[b * self.batch_size : (b + 1) * self.batch_size] for b in range(num_batches)]

    @staticmethod
    def _stream(group: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` scenes of a group: consecutive shuffles, so each scene comes once before any comes twice."""
        rounds = -(-count // group.size)
        return np.concatenate([rng.permutation(group) for _ in range(rounds)] or [group[:0]])[:count]
