from __future__ import annotations

from math import pi

import numpy as np
import pytest

from pmoe_core.data import recipes
from pmoe_core.data import transforms as t
from pmoe_core.data.features import point_features
from pmoe_core.data.sample import Sample
from pmoe_core.errors import BadInput


def _sample(make_scene, dataset="scannet", n=20_000, seed=0) -> Sample:
    return Sample.from_scene(make_scene("s", dataset, n, seed), dataset)


def _arrays(sample: Sample) -> dict[str, np.ndarray]:
    names = ("coord", "color", "normal", "strength", "segment", "grid_coord", "index")
    return {k: getattr(sample, k) for k in names if getattr(sample, k) is not None}


@pytest.mark.parametrize("dataset", ["scannet", "semantickitti"])
def test_train_recipe_shapes_and_consistency(make_scene, dataset):
    cfg = recipes.RecipeConfig(max_points=5_000)
    sample = t.apply(recipes.train_recipe(dataset, cfg), _sample(make_scene, dataset), np.random.default_rng(0))
    n = len(sample)
    assert 0 < n < 20_000
    for name, value in _arrays(sample).items():
        assert value.shape[0] == n, name
    assert sample.coord.dtype == np.float32 and sample.segment.dtype == np.int64
    assert sample.grid_coord.dtype == np.int64 and sample.grid_coord.min() >= 0
    if dataset == "scannet":
        assert n <= 5_000
        assert sample.color.min() >= 0 and sample.color.max() <= 255
        np.testing.assert_allclose(np.linalg.norm(sample.normal, axis=1), 1, atol=1e-4)
    # Labels travel with their points: every kept point keeps the label it was stored with.
    original = make_scene("s", dataset, 20_000, 0)
    np.testing.assert_array_equal(sample.segment, original.segment[sample.index])


@pytest.mark.parametrize("dataset", ["scannet", "nuscenes"])
def test_same_seed_same_result_other_seed_differs(make_scene, dataset):
    recipe = recipes.train_recipe(dataset, recipes.RecipeConfig(max_points=4_000))
    a = t.apply(recipe, _sample(make_scene, dataset), np.random.default_rng(7))
    b = t.apply(recipe, _sample(make_scene, dataset), np.random.default_rng(7))
    c = t.apply(recipe, _sample(make_scene, dataset), np.random.default_rng(8))
    for name, value in _arrays(a).items():
        np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)
    assert len(a) != len(c) or not np.array_equal(a.coord, c.coord)


def test_rotation_preserves_distances_and_rotates_normals(make_scene):
    sample = _sample(make_scene, n=500)
    coord, normal = sample.coord.copy(), sample.normal.copy()
    for axis in "xyz":
        sample = t.RandomRotate(axis, pi, p=1.0)(sample, np.random.default_rng(3))
    assert not np.allclose(sample.coord, coord)
    d_before = np.linalg.norm(coord[:, None] - coord[None], axis=-1)
    d_after = np.linalg.norm(sample.coord[:, None] - sample.coord[None], axis=-1)
    np.testing.assert_allclose(d_after, d_before, atol=1e-4)
    # The normal of a point keeps its angle to every point-to-point vector.
    np.testing.assert_allclose(sample.normal @ (sample.coord[1] - sample.coord[0]),
                               normal @ (coord[1] - coord[0]), atol=1e-4)


def test_flip_mirrors_points_and_normals(make_scene):
    sample = _sample(make_scene, n=100)
    coord, normal = sample.coord.copy(), sample.normal.copy()
    sample = t.RandomFlip(p=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(sample.coord[:, :2], -coord[:, :2])
    np.testing.assert_array_equal(sample.normal[:, :2], -normal[:, :2])
    np.testing.assert_array_equal(sample.coord[:, 2], coord[:, 2])


def test_center_shift(make_scene):
    sample = t.CenterShift(apply_z=True)(_sample(make_scene, n=1000), np.random.default_rng(0))
    lo, hi = sample.coord.min(0), sample.coord.max(0)
    np.testing.assert_allclose((lo[:2] + hi[:2]) / 2, 0, atol=1e-5)
    assert abs(lo[2]) < 1e-5


def test_jitter_is_clipped_and_scale_in_range(make_scene):
    sample = _sample(make_scene, n=5000)
    coord = sample.coord.copy()
    jittered = t.RandomJitter(sigma=0.05, clip=0.02)(sample, np.random.default_rng(0))
    assert np.abs(jittered.coord - coord).max() <= 0.02 + 1e-6
    small = Sample.from_scene(make_scene("s", "scannet", 10), "scannet")
    scaled = t.RandomScale(0.9, 1.1)(small, np.random.default_rng(1))
    ratio = scaled.coord / make_scene("s", "scannet", 10).coord
    assert np.allclose(ratio, ratio[0, 0]) and 0.9 <= ratio[0, 0] <= 1.1


def test_elastic_distortion_is_smooth_and_bounded(make_scene):
    sample = _sample(make_scene, n=5000)
    coord = sample.coord.copy()
    sample = t.ElasticDistortion(params=((0.2, 0.4),), p=1.0)(sample, np.random.default_rng(0))
    shift = sample.coord - coord
    assert 0 < np.abs(shift).max() < 0.4
    # Smooth: points closer than 5 cm move almost alike, far less than the field's spread.
    near = np.linalg.norm(coord[:, None, :] - coord[None, :200, :], axis=-1) < 0.05
    i, j = np.nonzero(near)
    i, j = i[i != j], j[i != j]
    assert np.abs(shift[i] - shift[j]).mean() < 0.2 * shift.std()


def test_dropout_and_sphere_crop(make_scene):
    sample = t.RandomDropout(ratio=0.2, p=1.0)(_sample(make_scene, n=1000), np.random.default_rng(0))
    assert len(sample) == 800 and len(np.unique(sample.index)) == 800
    sample = _sample(make_scene, n=3000)
    cropped = t.SphereCrop(1000)(sample, np.random.default_rng(0))
    assert len(cropped) == 1000
    # The kept points are the 1000 nearest to one of them: for some kept centre, every dropped point is farther
    # than every kept point.
    full = make_scene("s", "scannet", 3000).coord
    dropped = full[np.setdiff1d(np.arange(3000), cropped.index)]
    kept_radius = np.linalg.norm(cropped.coord[:, None] - cropped.coord[None], axis=-1).max(axis=1)
    dropped_near = np.linalg.norm(cropped.coord[:, None] - dropped[None], axis=-1).min(axis=1)
    assert np.any(kept_radius <= dropped_near)


def test_chromatic_keeps_range(make_scene):
    sample = _sample(make_scene, n=2000)
    sample.color = sample.color * 0.5 + 50  # a washed-out scene, so auto-contrast has something to stretch
    rng = np.random.default_rng(0)
    for transform in (t.ChromaticAutoContrast(p=1.0), t.ChromaticTranslation(p=1.0), t.ChromaticJitter(p=1.0)):
        before = sample.color.copy()
        sample = transform(sample, rng)
        assert sample.color.min() >= 0 and sample.color.max() <= 255
        assert not np.array_equal(before, sample.color)


def test_features_layout(make_scene):
    indoor = _sample(make_scene, n=50)
    feat = point_features(indoor)
    assert feat.shape == (50, 7) and feat.dtype == np.float32
    np.testing.assert_allclose(feat[:, :3], indoor.color / 127.5 - 1)
    np.testing.assert_array_equal(feat[:, 3:6], indoor.normal)
    assert not feat[:, 6].any()
    outdoor = _sample(make_scene, "waymo", n=50)
    feat = point_features(outdoor)
    assert not feat[:, :6].any()
    np.testing.assert_array_equal(feat[:, 6], outdoor.strength)


def test_domain_picks_recipe():
    assert recipes.domain_of("s3dis") == "indoor" and recipes.domain_of("waymo") == "outdoor"
    with pytest.raises(BadInput):
        recipes.domain_of("mars")
    indoor_grid = [x for x in recipes.indoor_train() if hasattr(x, "grid_size")]
    outdoor_grid = [x for x in recipes.outdoor_train() if hasattr(x, "grid_size")]
    assert indoor_grid[0].grid_size == 0.02 and outdoor_grid[0].grid_size == 0.05
