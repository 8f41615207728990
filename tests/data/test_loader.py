from __future__ import annotations

import torch

from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.loader import make_loader
from pmoe_core.data.recipes import RecipeConfig
from pmoe_core.data.sampler import MixedBatchSampler


def _loader(stores, num_workers: int):
    data = SceneDataset(stores.all, "train", config=RecipeConfig(max_points=1500))
    sampler = MixedBatchSampler(data.groups, batch_size=3, samples_per_epoch=12, seed=4)
    return make_loader(data, sampler, num_workers=num_workers, prefetch_factor=2, seed=4)


def _flat(batches):
    return [(b.coord, b.feat, b.grid_coord, b.offset, t.segment, t.datasets, t.class_offset) for b, t in batches]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert u == v if isinstance(u, tuple) else torch.equal(u, v)


def test_two_workers_deliver_the_same_batches_as_none(stores):
    serial, parallel = _loader(stores, 0), _loader(stores, 2)
    first = _flat(serial)
    _assert_same(first, _flat(parallel))
    assert len(first) == 4 and len({d for x in first for d in x[5]}) > 1
    second = _flat(parallel)  # persistent workers, next epoch: new order, still matching the serial loader
    _assert_same(second, _flat(serial))
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(first, second))
    stats = parallel.throughput()
    assert stats.batches == 8 and stats.scenes == 24 and stats.points > 0 and stats.scenes_per_s > 0


def test_resume_mid_epoch_counts_consumed_not_prefetched(stores):
    loader = _loader(stores, 2)
    list(loader)  # epoch 0
    it = iter(loader)  # epoch 1
    next(it), next(it)
    state = loader.state_dict()
    assert state == {"epoch": 1, "position": 2}  # workers have prefetched further; only 2 were consumed
    rest_here = _flat(list(it))
    resumed = _loader(stores, 0)
    resumed.load_state_dict(state)
    _assert_same(_flat(resumed), rest_here)
    assert len(rest_here) == 2
    assert loader.state_dict() == {"epoch": 2, "position": 0}


def test_test_loader_covers_every_point_of_every_scene(stores):
    from pmoe_core.data.loader import make_test_loader

    data = SceneDataset([stores.scannet, stores.semantickitti], "val", mode="test")
    seen = []
    for batch, targets in make_test_loader(data, scenes_per_batch=1, num_workers=0):
        maps = targets.fragments
        covered = torch.zeros(int(maps.scene_offset[-1]), dtype=torch.bool)
        covered[maps.target_index(batch.offset)] = True
        assert covered.all()
        seen += list(maps.scene_names)
    assert seen == [data.raw(i).name for i in range(len(data))]
