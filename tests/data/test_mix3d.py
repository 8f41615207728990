"""Mix3D: pairs of training samples become one scene (points, labels and dataset ids kept), decided per batch by a
seeded coin, so that runs are reproducible and resume exactly; off unless asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmoe_core.data import recipes
from pmoe_core.data.collate import Collate, mix3d
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.loader import make_loader, mix3d_coin
from pmoe_core.data.recipes import RecipeConfig
from pmoe_core.data.sample import Sample
from pmoe_core.data.sampler import MixedBatchSampler
from pmoe_core.data.transforms import apply
from pmoe_core.engine.loss import label_space_loss
from pmoe_core.errors import BadInput

SPACES = {"scannet": 20, "s3dis": 13, "semantickitti": 19}


def _samples(make_scene, datasets: list[str]) -> list[Sample]:
    out = []
    for i, dataset in enumerate(datasets):
        sample = Sample.from_scene(make_scene(f"{dataset}-{i}", dataset, 1500 + 300 * i, i), dataset)
        out.append(apply(recipes.train_recipe(dataset), sample, np.random.default_rng(i)))
    return out


def test_pairs_become_one_scene_with_points_labels_and_dataset_kept(make_scene):
    samples = _samples(make_scene, ["scannet"] * 4)
    batch, targets = Collate(SPACES)(samples)
    merged, merged_targets = mix3d(batch, targets)
    sizes = [len(s) for s in samples]
    assert merged.num_samples == 2
    assert merged.offset.tolist() == [sizes[0] + sizes[1], sum(sizes)]
    assert merged.batch_index().bincount().tolist() == [sizes[0] + sizes[1], sizes[2] + sizes[3]]
    for name in ("coord", "feat", "grid_coord"):  # every point kept, in place: only the boundaries go
        assert torch.equal(getattr(merged, name), getattr(batch, name))
    assert torch.equal(merged_targets.segment, targets.segment)
    assert merged_targets.datasets == ("scannet", "scannet")
    assert merged_targets.names == ("scannet-0+scannet-1", "scannet-2+scannet-3")
    assert merged_targets.num_classes.tolist() == [20, 20] and merged_targets.class_offset.tolist() == [0, 0]


def test_odd_last_sample_and_pairs_of_two_datasets_stay_alone(make_scene):
    samples = _samples(make_scene, ["scannet", "semantickitti", "s3dis", "s3dis", "scannet"])
    batch, targets = Collate(SPACES)(samples)
    merged, merged_targets = mix3d(batch, targets)
    ends = batch.offset.tolist()
    assert merged.offset.tolist() == [ends[0], ends[1], ends[3], ends[4]]  # (0, 1) differ; (2, 3) merge; 4 alone
    assert merged_targets.datasets == ("scannet", "semantickitti", "s3dis", "scannet")
    assert merged_targets.num_classes.tolist() == [20, 19, 13, 20]
    assert merged_targets.class_offset.tolist() == [0, 33, 20, 0]
    one, one_targets = mix3d(*Collate(SPACES)(samples[:1]))
    assert one.offset.tolist() == [len(samples[0])] and one_targets.datasets == ("scannet",)


def test_merged_scene_is_scored_against_its_own_label_space(make_scene):
    """The per-dataset loss groups points by their samples' label space: merging pairs must not change it."""
    samples = _samples(make_scene, ["s3dis", "s3dis", "semantickitti", "semantickitti"])
    batch, targets = Collate(SPACES)(samples)
    merged, merged_targets = mix3d(batch, targets)
    assert merged_targets.datasets == ("s3dis", "semantickitti")
    logits = torch.randn(batch.coord.shape[0], sum(SPACES.values()), generator=torch.Generator().manual_seed(0))
    before = label_space_loss(logits, targets, batch.batch_index())
    after = label_space_loss(logits, merged_targets, merged.batch_index())
    assert torch.isfinite(after) and torch.allclose(before, after)


def test_test_batches_are_refused(make_scene):
    scene = make_scene("a", "scannet", 2000, 1)
    sample = apply(recipes.test_recipe("indoor"), Sample.from_scene(scene, "scannet"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="test batch"):
        mix3d(*Collate(SPACES).test([sample]))


def test_coin_is_deterministic_and_keeps_its_probability():
    coins = [mix3d_coin(0.8, 7, 0, 3, i) for i in range(4000)]
    assert coins == [mix3d_coin(0.8, 7, 0, 3, i) for i in range(4000)]  # a pure function of its arguments
    assert abs(np.mean(coins) - 0.8) < 0.03  # 4.7 standard deviations of a 4000-draw mean
    assert abs(np.mean([mix3d_coin(0.3, 7, 0, 3, i) for i in range(4000)]) - 0.3) < 0.035
    for other in ((8, 0, 3), (7, 1, 3), (7, 0, 4)):  # seed, rank and epoch each give their own sequence
        assert [mix3d_coin(0.5, *other, i) for i in range(64)] != [mix3d_coin(0.5, 7, 0, 3, i) for i in range(64)]
    assert not any(mix3d_coin(0.0, 7, 0, 3, i) for i in range(500))
    assert all(mix3d_coin(1.0, 7, 0, 3, i) for i in range(500))


def _loader(stores, mix3d_prob: float, workers: int = 0, seed: int = 4):
    data = SceneDataset(stores.all, "train", config=RecipeConfig(max_points=1000))
    sampler = MixedBatchSampler(data.groups, batch_size=2, samples_per_epoch=16, mix=False, seed=seed)
    return make_loader(data, sampler, num_workers=workers, prefetch_factor=2, seed=seed, mix3d=mix3d_prob)


def _flat(batches):
    return [(b.coord, b.offset, t.segment, t.datasets, t.names) for b, t in batches]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(u == v if isinstance(u, tuple) else torch.equal(u, v)
                                    for x, y in zip(a, b) for u, v in zip(x, y))


def test_loader_merges_the_batches_its_coins_pick_and_resumes_the_same(stores):
    loader = _loader(stores, 0.5)
    epoch = list(loader)
    expected = [mix3d_coin(0.5, 4, 0, 0, i) for i in range(len(epoch))]
    assert [len(t.datasets) == 1 for _, t in epoch] == expected  # batch 2 of one dataset: merged = 1 scene
    assert 0 < sum(expected) < len(epoch)
    for batch, targets in epoch:
        assert batch.num_samples == len(targets.datasets) == targets.num_classes.numel()
    stats = loader.throughput()
    assert stats.mixed == sum(expected) and stats.scenes == 2 * len(epoch)  # scenes drawn, before merging
    assert _same(_flat(epoch), _flat(_loader(stores, 0.5, workers=2)))  # workers or not, the same batches

    through = _loader(stores, 0.5)  # epoch 1 straight through, against resumed after its 3rd batch
    list(through)
    straight = _flat(through)
    resumed = _loader(stores, 0.5)
    resumed.load_state_dict({"epoch": 1, "position": 3})
    assert _same(_flat(resumed), straight[3:])


def test_loader_without_mix3d_keeps_every_sample_and_refuses_bad_probabilities(stores):
    loader = _loader(stores, 0.0)
    assert all(b.num_samples == 2 for b, _ in loader) and loader.throughput().mixed == 0
    with pytest.raises(BadInput, match="Mix3D probability"):
        _loader(stores, 1.5)
