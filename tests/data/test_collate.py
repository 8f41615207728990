from __future__ import annotations

import numpy as np
import pytest
import torch

from pmoe_core.data import recipes
from pmoe_core.data.collate import Collate
from pmoe_core.data.sample import Sample
from pmoe_core.data.transforms import apply
from pmoe_core.vocab.label_spaces import LABEL_SPACES


def _train_sample(make_scene, dataset: str, n: int, seed: int) -> Sample:
    sample = Sample.from_scene(make_scene(f"{dataset}-{seed}", dataset, n, seed), dataset)
    return apply(recipes.train_recipe(dataset), sample, np.random.default_rng(seed))


def test_collate_offsets_features_labels(make_scene):
    samples = [_train_sample(make_scene, d, 3000 + 500 * i, i)
               for i, d in enumerate(["scannet", "semantickitti", "s3dis"])]
    spaces = {"scannet": 20, "s3dis": 13, "semantickitti": 19}
    batch, targets = Collate(spaces)(samples)
    sizes = [len(s) for s in samples]
    assert batch.offset.tolist() == np.cumsum(sizes).tolist()
    assert batch.coord.shape == (sum(sizes), 3) and batch.coord.dtype == torch.float32
    assert batch.feat.shape == (sum(sizes), 7) and batch.feat.dtype == torch.float32
    assert batch.grid_coord.dtype == torch.int64 and batch.grid_coord.min() >= 0
    assert targets.segment.dtype == torch.int64 and targets.segment.shape == (sum(sizes),)
    assert targets.datasets == ("scannet", "semantickitti", "s3dis")
    assert targets.num_classes.tolist() == [20, 19, 13]
    assert targets.class_offset.tolist() == [0, 33, 20]  # position in the fixed order scannet, s3dis, semantickitti
    # Each sample's slice holds its own points and labels, each within its own label space.
    for b, s in enumerate(samples):
        lo, hi = int(batch.offset[b]) - len(s), int(batch.offset[b])
        np.testing.assert_array_equal(batch.coord[lo:hi].numpy(), s.coord)
        np.testing.assert_array_equal(batch.grid_coord[lo:hi].numpy(), s.grid_coord)
        seg = targets.segment[lo:hi]
        assert seg.min() >= -1 and seg.max() < targets.num_classes[b]
    assert (batch.batch_index().bincount() == torch.tensor(sizes)).all()


def test_default_label_spaces_are_all_datasets(make_scene):
    _, targets = Collate()([_train_sample(make_scene, "waymo", 2000, 0)])
    offset = sum(space.num_classes for name, space in LABEL_SPACES.items() if name != "waymo")
    assert targets.class_offset.tolist() == [offset] and targets.num_classes.tolist() == [22]


def test_collate_rejects_ungridded(make_scene):
    sample = Sample.from_scene(make_scene("s", "scannet", 100), "scannet")
    with pytest.raises(ValueError, match="grid"):
        Collate()([sample])


def test_test_batch_votes_back_to_every_point(make_scene):
    scenes = [make_scene("a", "scannet", 4000, 1), make_scene("b", "scannet", 2500, 2)]
    samples = [apply(recipes.test_recipe("indoor"), Sample.from_scene(s, "scannet"), np.random.default_rng(0))
               for s in scenes]
    batch, targets = Collate().test(samples)
    maps = targets.fragments
    assert maps.scene_offset.tolist() == [4000, 6500]
    assert batch.num_samples == sum(s.fragments.shape[0] for s in samples)
    np.testing.assert_array_equal(maps.scene_segment.numpy(), np.concatenate([s.segment for s in scenes]))
    # The fragments' labels are the original points' labels.
    target = maps.target_index(batch.offset)
    assert torch.equal(targets.segment, maps.scene_segment[target])
    # Voting each point's own original index (and a count) sums back onto exactly that original point.
    counts = maps.vote(torch.ones(len(target), 1), batch.offset)[:, 0]
    votes = maps.vote(target.double()[:, None], batch.offset)[:, 0]
    assert (counts >= 1).all() and counts.sum() == batch.coord.shape[0]
    assert torch.equal(votes / counts, torch.arange(6500, dtype=torch.float64))
