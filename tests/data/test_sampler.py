from __future__ import annotations

import numpy as np
import pytest

from pmoe_core.data.sampler import MixedBatchSampler, SampleKey
from pmoe_core.errors import BadInput

GROUPS = {"scannet": range(0, 100), "s3dis": range(100, 130), "nuscenes": range(130, 400)}


def _dataset_of(index: int) -> str:
    return next(name for name, members in GROUPS.items() if index in members)


def _chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("mix", [True, False])
def test_weights_are_realised(mix):
    weights = {"scannet": 1.0, "s3dis": 3.0, "nuscenes": 0.5}
    sampler = MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=6000, weights=weights, mix=mix, seed=1)
    names = list(GROUPS)
    counts = np.zeros(3)
    for batch in sampler:
        for key in batch:
            counts[names.index(_dataset_of(key.index))] += 1
    probs = np.array([weights[n] for n in names]) / sum(weights.values())
    # 2 degrees of freedom: chi-square 99.9th percentile is 13.8; without mixing, draws come in blocks of 4.
    assert _chi_square(counts / (1 if mix else 4), probs) < 13.8
    # The default (no weights) would be size-proportional and fail this test: s3dis would get 30/400 = 7.5%.
    assert counts[1] / counts.sum() > 0.5


def test_default_weights_follow_dataset_size():
    sampler = MixedBatchSampler(GROUPS, batch_size=8, samples_per_epoch=8000, seed=0)
    draws = [_dataset_of(k.index) for batch in sampler for k in batch]
    counts = np.array([draws.count(n) for n in GROUPS], dtype=float)
    assert _chi_square(counts, np.array([100, 30, 270]) / 400) < 13.8


def test_mixing_flag():
    mixed = MixedBatchSampler(GROUPS, batch_size=6, samples_per_epoch=600, seed=0)
    single = MixedBatchSampler(GROUPS, batch_size=6, samples_per_epoch=600, seed=0, mix=False)
    assert any(len({_dataset_of(k.index) for k in batch}) > 1 for batch in mixed)
    assert all(len({_dataset_of(k.index) for k in batch}) == 1 for batch in single)
    assert len({_dataset_of(batch[0].index) for batch in single}) == 3  # all datasets still take turns


def test_epoch_length_is_explicit():
    sampler = MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=50)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 12  # 50 draws -> 12 whole batches, not 400 / 4
    assert all(len(b) == 4 for b in batches)
    assert len(MixedBatchSampler(GROUPS, batch_size=4)) == 100  # default: one pass worth of draws
    with pytest.raises(BadInput, match="--samples-per-epoch 3 does not fill one batch of 4"):
        MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=3)


def test_default_epoch_fills_one_batch_per_rank_on_tiny_data():
    # Two scenes and the CLI's default batch of 4 on 2 ranks: the default epoch still has one batch per rank.
    ranks = [MixedBatchSampler({"scannet": [0], "semantickitti": [1]}, batch_size=4, rank=r, world_size=2)
             for r in range(2)]
    assert [len(s) for s in ranks] == [1, 1]
    draws = [k.index for s in ranks for b in s for k in b]
    assert len(draws) == 8 and set(draws) == {0, 1}


def test_each_scene_once_before_repeats():
    sampler = MixedBatchSampler({"s3dis": range(30)}, batch_size=5, samples_per_epoch=60, seed=3)
    draws = [k.index for b in sampler for k in b]
    assert sorted(draws[:30]) == list(range(30)) and sorted(draws[30:]) == list(range(30))


def test_deterministic_per_seed_and_epoch():
    a = MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=80, seed=5)
    b = MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=80, seed=5)
    assert list(a) == list(b)  # epoch 0, and both advance to epoch 1
    assert list(a) == list(b)
    assert a.epoch_batches(0) != a.epoch_batches(1)
    assert a.epoch_batches(0) != MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=80, seed=6).epoch_batches(0)
    seeds = [k.seed for batch in a.epoch_batches(0) for k in batch]
    assert len(set(seeds)) == len(seeds)  # a scene drawn twice is augmented differently


def test_ddp_ranks_are_disjoint_and_complete():
    world = 3
    ranks = [MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=240, seed=2, rank=r, world_size=world)
             for r in range(world)]
    per_rank = [[k for b in s for k in b] for s in ranks]
    assert all(len(p) == 80 for p in per_rank) and all(len(s) == 20 for s in ranks)
    draws = [set(p) for p in per_rank]
    assert not (draws[0] & draws[1] or draws[0] & draws[2] or draws[1] & draws[2])
    # 240 draws over 400 scenes at size-proportional weights: no dataset runs out, so no scene repeats anywhere.
    scenes = [k.index for p in per_rank for k in p]
    assert len(set(scenes)) == len(scenes)
    single = MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=240, seed=2)
    assert sorted(scenes) == sorted(k.index for b in single for k in b)


def test_resume_gives_the_same_remaining_sequence():
    sampler = MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=100, seed=9)
    sampler.set_epoch(3)
    expected = sampler.epoch_batches(3)
    it = iter(sampler)
    seen = [next(it) for _ in range(7)]
    state = sampler.state_dict()
    assert state == {"epoch": 3, "position": 7}

    fresh = MixedBatchSampler(GROUPS, batch_size=4, samples_per_epoch=100, seed=9)
    fresh.load_state_dict(state)
    assert seen + list(fresh) == expected
    assert fresh.state_dict() == {"epoch": 4, "position": 0}
    assert list(fresh) == sampler.epoch_batches(4)


def test_bad_weights_rejected():
    with pytest.raises(BadInput):
        MixedBatchSampler(GROUPS, batch_size=4, weights={"scannet": 1.0})
    with pytest.raises(BadInput):
        MixedBatchSampler(GROUPS, batch_size=4, weights={"scannet": 0.0, "s3dis": 0.0, "nuscenes": 0.0})
    zero = MixedBatchSampler(GROUPS, batch_size=4, weights={"scannet": 0.0, "s3dis": 1.0, "nuscenes": 1.0})
    assert all(_dataset_of(k.index) != "scannet" for b in zero for k in b)
    assert isinstance(next(iter(zero))[0], SampleKey)
