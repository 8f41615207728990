"""The Point-MoE release's data recipe (issue #19): crop sizes and per-dataset crop rates, the outdoor point clip,
and the outdoor coordinate features of the "pmoe7-xyz" input layout."""

from __future__ import annotations

import numpy as np
import pytest

from pmoe_core.data import recipes
from pmoe_core.data import transforms as t
from pmoe_core.data.features import point_features
from pmoe_core.data.grid import GridSample
from pmoe_core.data.sample import Sample
from pmoe_core.errors import BadInput
from pmoe_core.models.presets import get_config
from pmoe_core.models.ptv3 import PTv3Config


def _sample(make_scene, dataset: str, n: int, seed: int = 0) -> Sample:
    return Sample.from_scene(make_scene("s", dataset, n, seed), dataset)


def test_defaults_are_the_release_recipe():
    cfg = recipes.RecipeConfig()
    assert cfg.max_points == 204_800
    assert cfg.sample_rate("s3dis") == 0.6 and cfg.sample_rate("structured3d") == 0.8
    assert cfg.sample_rate("scannet") is None and cfg.sample_rate("matterport3d") is None
    assert cfg.point_clip == ((-35.2, -35.2, -4.0), (35.2, 35.2, 2.0))


@pytest.mark.parametrize("rate", [0.6, 0.8, 1.0])
def test_rate_crop_keeps_that_fraction(make_scene, rate):
    sample = _sample(make_scene, "s3dis", 3_001)
    cropped = t.SphereCrop(sample_rate=rate)(sample, np.random.default_rng(0))
    assert len(cropped) == int(rate * 3_001)
    assert len(np.unique(cropped.index)) == len(cropped)  # distinct stored points, labels carried along


@pytest.mark.parametrize(("dataset", "rate"), [("s3dis", 0.6), ("structured3d", 0.8), ("scannet", None)])
def test_train_recipe_crops_a_dataset_by_its_rate(make_scene, dataset, rate):
    """Through the whole recipe: after grid sampling (N points), a dataset with rate r keeps int(r * N) points,
    one without a rate keeps all N (below the 204,800 cap)."""
    recipe = recipes.train_recipe(dataset, recipes.RecipeConfig())
    grid_at = next(i for i, step in enumerate(recipe) if isinstance(step, GridSample))
    rng = np.random.default_rng(5)
    sample = t.apply(recipe[: grid_at + 1], _sample(make_scene, dataset, 30_000), rng)
    after_grid = len(sample)
    sample = t.apply(recipe[grid_at + 1:], sample, rng)
    assert len(sample) == (after_grid if rate is None else int(rate * after_grid))


def test_rate_crop_comes_before_the_cap(make_scene):
    cfg = recipes.RecipeConfig(max_points=1_000, sample_rates=(("s3dis", 0.8),))
    crops = [s for s in recipes.indoor_train(cfg, "s3dis") if isinstance(s, t.SphereCrop)]
    assert [(c.sample_rate, c.max_points) for c in crops] == [(0.8, None), (None, 1_000)]
    sample = t.apply(crops, _sample(make_scene, "s3dis", 3_000), np.random.default_rng(0))
    assert len(sample) == 1_000
    sample = t.apply(crops, _sample(make_scene, "s3dis", 1_200), np.random.default_rng(0))
    assert len(sample) == 960  # the rate alone (0.8 * 1200) is below the cap


def test_outdoor_points_are_clipped_by_default(make_scene):
    recipe = recipes.outdoor_train()
    clips = [s for s in recipe if isinstance(s, t.PointClip)]
    assert len(clips) == 1
    raw = _sample(make_scene, "semantickitti", 5_000)
    assert np.abs(raw.coord[:, :2]).max() > 39  # the synthetic sweep reaches 40 m
    sample = t.apply(recipe, raw, np.random.default_rng(1))
    slack = 1.1, 0.02  # after the clip: scaled by at most 1.1, jittered by at most 2 cm
    assert np.abs(sample.coord[:, :2]).max() <= 35.2 * slack[0] + slack[1]
    assert sample.coord[:, 2].min() >= -4 * slack[0] - slack[1] and sample.coord[:, 2].max() <= 2 * slack[0] + slack[1]
    assert not any(isinstance(s, t.PointClip) for s in recipes.outdoor_train(recipes.RecipeConfig(point_clip=None)))


def test_bad_settings_are_refused():
    with pytest.raises(BadInput, match="crop rate of s3dis must be in"):
        recipes.RecipeConfig(sample_rates=(("s3dis", 1.5),))
    with pytest.raises(BadInput, match="point clip needs low < high"):
        recipes.RecipeConfig(point_clip=((0, 0, 0), (1, -1, 1)))
    with pytest.raises(BadInput, match="max_points must be positive"):
        recipes.RecipeConfig(max_points=0)
    with pytest.raises(ValueError, match="exactly one"):
        t.SphereCrop()


def test_cli_strings_parse():
    assert recipes.parse_rates("s3dis=0.5, structured3d=1") == (("s3dis", 0.5), ("structured3d", 1.0))
    assert recipes.parse_rates("none") == ()
    assert recipes.parse_clip("-1,-2,-3,1,2,3") == ((-1, -2, -3), (1, 2, 3))
    assert recipes.parse_clip("none") is None
    with pytest.raises(BadInput, match="--crop-rate expects"):
        recipes.parse_rates("s3dis:0.5")
    with pytest.raises(BadInput, match="--point-clip expects six numbers"):
        recipes.parse_clip("1,2,3")


def test_pmoe7_xyz_feeds_outdoor_coordinates(make_scene):
    outdoor = _sample(make_scene, "nuscenes", 64)
    feat = point_features(outdoor, "pmoe7-xyz")
    assert feat.shape == (64, 7) and feat.dtype == np.float32
    np.testing.assert_array_equal(feat[:, 0:3], outdoor.coord)
    assert not feat[:, 3:6].any()
    np.testing.assert_array_equal(feat[:, 6], outdoor.strength)
    assert not point_features(outdoor, "pmoe7")[:, 0:6].any()  # the old layout: zeros, as before
    indoor = _sample(make_scene, "scannet", 64)  # indoors the two layouts agree: colour + normal, as the release
    np.testing.assert_array_equal(point_features(indoor, "pmoe7-xyz"), point_features(indoor, "pmoe7"))
    as_outdoor = point_features(indoor, "pmoe7-xyz", domain="outdoor")  # predict passes the domain of a cloud
    np.testing.assert_array_equal(as_outdoor[:, 0:3], indoor.coord)


def test_presets_s_and_l_record_the_new_layout_old_configs_keep_theirs():
    assert get_config("pmoe-s").in_features == "pmoe7-xyz" and get_config("pmoe-l").in_features == "pmoe7-xyz"
    assert PTv3Config().in_features == "pmoe7"  # a stored config without the key reads as before


@pytest.mark.parametrize(("extra", "message"), [
    (("--crop-rate", "s3dis=1.5"), "crop rate of s3dis must be in (0, 1], got 1.5"),
    (("--crop-rate", "s3dis"), "--crop-rate expects DATASET=RATE"),
    (("--crop-rate", "mars=0.5"), "mars"),
    (("--point-clip", "1,2,3"), "--point-clip expects six numbers"),
    (("--point-clip", "0,0,0,1,1,-1"), "point clip needs low < high"),
])
def test_train_refuses_bad_crop_options_before_reading_data(capsys, tmp_path, extra, message):
    from pmoe_cli.app import main

    (tmp_path / "data").mkdir()
    args = ["train", "--preset", "pmoe-tiny", "--datasets", "scannet", "--data", tmp_path / "data",
            "--out", tmp_path / "run", *extra]
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith("pmoe: error: ") and err.count("\n") == 1, err
    assert message in err
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing created
