from __future__ import annotations

import numpy as np

from pmoe_core.data import recipes
from pmoe_core.data.grid import GridSample, fragment_indices, grid_coordinates, voxel_keys
from pmoe_core.data.sample import Sample
from pmoe_core.data.transforms import apply


def _clustered(n: int, seed: int = 0) -> np.ndarray:
    """Points with very uneven voxel occupancy (dense blobs plus sparse background)."""
    rng = np.random.default_rng(seed)
    blobs = rng.normal(scale=0.01, size=(n // 2, 3)) + rng.integers(0, 5, (n // 2, 1)) * 0.3
    return np.concatenate([blobs, rng.random((n - n // 2, 3)) * 2]).astype(np.float32)


def test_grid_coordinates_non_negative_floor():
    coord = _clustered(5000)
    g = grid_coordinates(coord, 0.05)
    assert g.dtype == np.int64 and g.min() == 0
    np.testing.assert_array_equal(g, np.floor((coord - coord.min(0)) / 0.05).astype(np.int64))


def test_train_grid_sample_one_point_per_voxel(make_scene):
    scene = make_scene("s", "scannet", 30_000)
    sample = GridSample(0.1)(Sample.from_scene(scene, "scannet"), np.random.default_rng(0))
    keys = voxel_keys(sample.grid_coord)
    all_keys = voxel_keys(grid_coordinates(scene.coord, 0.1))
    assert len(np.unique(keys)) == len(keys)  # at most one point per voxel
    assert set(np.unique(all_keys)) == set(keys)  # and every occupied voxel keeps one
    np.testing.assert_array_equal(sample.coord, scene.coord[sample.index])


def test_train_grid_sample_picks_random_point():
    coord = np.zeros((1000, 3), np.float32) + np.linspace(0, 0.009, 1000, dtype=np.float32)[:, None]
    sample = Sample(dataset="scannet", name="x", coord=coord, segment=np.zeros(1000, np.int64),
                    index=np.arange(1000))
    picks = {int(GridSample(0.02)(Sample(**vars(sample)), np.random.default_rng(s)).index[0]) for s in range(20)}
    assert len(picks) > 15  # one voxel, different random representatives


def test_fragments_cover_every_point_one_per_voxel():
    coord = _clustered(20_000)
    g = grid_coordinates(coord, 0.02)
    frags, source = fragment_indices(g, max_fragments=len(coord))
    assert source is None  # no cap reached: every point is scored itself
    keys = voxel_keys(g)
    num_voxels = len(np.unique(keys))
    counts = np.unique(keys, return_counts=True)[1]
    assert frags.shape == (counts.max(), num_voxels)
    np.testing.assert_array_equal(np.unique(frags), np.arange(len(coord)))  # every original point covered
    for row in frags:  # each fragment: exactly one point of every voxel
        assert len(np.unique(keys[row])) == num_voxels
    # Fragment j holds the j-th point (mod occupancy) of each voxel: each point appears ceil/floor(F / count) times.
    times = np.bincount(frags.ravel(), minlength=len(coord))
    per_point_count = counts[np.searchsorted(np.unique(keys), keys)]
    assert np.all(times >= frags.shape[0] // per_point_count)
    assert np.all(times <= -(-frags.shape[0] // per_point_count))


def test_test_recipe_keeps_points_and_maps_back(make_scene):
    scene = make_scene("room", "scannet", 10_000)
    sample = apply(recipes.test_recipe("indoor"), Sample.from_scene(scene, "scannet"), np.random.default_rng(0))
    assert len(sample) == 10_000
    np.testing.assert_array_equal(sample.index, np.arange(10_000))
    for j in range(sample.fragments.shape[0]):
        fragment = sample.fragment(j)
        np.testing.assert_array_equal(fragment.segment, scene.segment[fragment.index])
        np.testing.assert_allclose(fragment.coord - sample.coord[sample.fragments[j]], 0)
        assert len(np.unique(voxel_keys(fragment.grid_coord))) == len(fragment)
