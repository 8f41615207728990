from __future__ import annotations

import pickle

import numpy as np
import pytest

from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.recipes import RecipeConfig
from pmoe_core.data.sampler import SampleKey
from pmoe_core.errors import StoreError
from pmoe_core.store import StoreReader


def test_stores_of_two_datasets_and_two_shards_read_as_one(stores, make_scene):
    data = SceneDataset(stores.all, "train", config=RecipeConfig(max_points=2000))
    assert len(data) == 4 + 3 + 2 + 3
    assert data.datasets == ("scannet", "semantickitti", "s3dis")
    groups = data.groups
    assert {d: len(g) for d, g in groups.items()} == {"scannet": 4, "semantickitti": 3, "s3dis": 5}
    assert data.label_spaces == {"scannet": 20, "semantickitti": 19, "s3dis": 13}
    # The shards' scenes are all there, each once, under the one dataset.
    s3dis_names = sorted(data.raw(int(i)).name for i in groups["s3dis"])
    expected = sorted(name for url in stores.s3dis_shards for name in StoreReader(url).names("train"))
    assert s3dis_names == expected and len(set(s3dis_names)) == 5
    # Items are the stored scenes, transformed by their own domain's recipe.
    for i in (int(groups["scannet"][1]), int(groups["semantickitti"][2])):
        raw = data.raw(i)
        item = data[i]
        assert item.dataset == raw.dataset and item.name == raw.name
        assert item.grid_coord is not None and len(item) <= len(raw)
        np.testing.assert_array_equal(item.segment, raw.segment[item.index])
    assert data[int(groups["scannet"][0])].color is not None
    kitti = data[int(groups["semantickitti"][0])]
    assert kitti.color is None and kitti.strength is not None
    # Outdoor grid is 5 cm, indoor 2 cm with a 2000-point crop.
    assert len(data[int(groups["scannet"][3])]) <= 2000


def test_items_are_seeded_by_key(stores):
    data = SceneDataset([stores.scannet], "train")
    a, b, c = data[SampleKey(2, 11)], data[SampleKey(2, 11)], data[SampleKey(2, 12)]
    np.testing.assert_array_equal(a.coord, b.coord)
    assert not np.array_equal(a.coord[:100], c.coord[:100]) or len(a) != len(c)
    np.testing.assert_array_equal(data[1].coord, data[1].coord)


def test_pickles_without_open_stores(stores):
    data = SceneDataset(stores.all, "train")
    data[0]
    clone = pickle.loads(pickle.dumps(data))
    assert clone._readers == {}
    np.testing.assert_array_equal(clone[SampleKey(5, 1)].coord, data[SampleKey(5, 1)].coord)


def test_test_mode_keeps_every_point(stores):
    data = SceneDataset([stores.scannet, stores.semantickitti], "val", mode="test")
    assert len(data) == 2
    for i in range(2):
        raw, item = data.raw(i), data[i]
        assert len(item) == len(raw) and item.fragments is not None
        np.testing.assert_array_equal(np.unique(item.fragments), np.arange(len(raw)))


def test_split_without_scenes_is_refused(stores):
    with pytest.raises(StoreError, match="no scenes"):
        SceneDataset([stores.scannet], "test")


def test_fsspec_urls(stores):
    data = SceneDataset([f"file://{stores.scannet}"], "train")
    local = SceneDataset([stores.scannet], "train")
    np.testing.assert_array_equal(data[SampleKey(1, 3)].coord, local[SampleKey(1, 3)].coord)
