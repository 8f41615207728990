"""Test-time views: the release's exact view set, and that each view moves points the way its transform says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pmoe_core.data.sample import Sample
from pmoe_core.data.transforms import CenterShift
from pmoe_core.engine.tta import View, release_views, tta_views
from pmoe_core.errors import BadInput
from pmoe_core.scene import Scene


def _sample() -> Sample:
    rng = np.random.default_rng(0)
    coord = (rng.uniform(-1, 1, (50, 3)) + np.array([7.0, -3.0, 1.5])).astype(np.float32)
    normal = rng.normal(size=(50, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    scene = Scene(name="s", coord=coord, normal=normal, segment=np.zeros(50, np.int16))
    return Sample.from_scene(scene, "scannet")


def _apply(view: View, sample: Sample) -> Sample:
    return view(dataclasses.replace(sample), np.random.default_rng(0))


# The release's test aug_transform (configs/point_moe/indoor.py, data.test, ScanNet/S3DIS/Matterport3D test_cfg),
# written out as the maps (x, y, z) -> ... they apply: RandomRotateTargetAngle(angle=[a]) turns by a*pi about z
# through the centre [0, 0, 0], RandomScale([s, s]) multiplies coordinates by s, RandomFlip(p=1) negates x and y.
QUARTER_TURNS = [lambda x, y, z: (x, y, z), lambda x, y, z: (-y, x, z), lambda x, y, z: (-x, -y, z),
                 lambda x, y, z: (y, -x, z)]
RELEASE_MAPS = [(turn, s) for s in (1.0, 0.95, 1.05) for turn in QUARTER_TURNS] + [
    (lambda x, y, z: (-x, -y, z), 1.0)]


def test_release_view_set_is_the_release_configs():
    views = release_views()
    assert tta_views("release") == views == tta_views(" Release ")
    assert len(views) == 13 == len(RELEASE_MAPS)
    sample = _sample()
    x, y, z = sample.coord.T
    nx, ny, nz = sample.normal.T
    for view, (turn, scale) in zip(views, RELEASE_MAPS):
        out = _apply(view, sample)
        np.testing.assert_allclose(out.coord, np.stack(turn(x, y, z), axis=1) * scale, atol=1e-5)
        np.testing.assert_allclose(out.normal, np.stack(turn(nx, ny, nz), axis=1), atol=1e-5)  # scale keeps them
        assert out.coord.dtype == np.float32
    np.testing.assert_array_equal(sample.coord, np.stack([x, y, z], axis=1))  # the input is not changed in place


def test_views_commute_with_the_indoor_recentring():
    """The release centres the room, then applies the view about the origin; pmoe applies the view to the stored
    room and the indoor test recipe centres it afterwards. For the release's views the two agree."""
    sample = _sample()
    centre = CenterShift(apply_z=True)
    rng = np.random.default_rng(0)
    for view in release_views():
        release = _apply(view, centre(dataclasses.replace(sample), rng))
        ours = centre(_apply(view, sample), rng)
        np.testing.assert_allclose(ours.coord, release.coord, atol=1e-5)


def test_numbered_views_and_bad_values():
    assert tta_views(None) == tta_views(False) == tta_views(1) == tta_views("1") == [View()]
    assert tta_views("4") == tta_views(4)
    assert [v.flip for v in tta_views(4)] == [False, True, False, True]
    assert all(v.scale == 1.0 and not v.flip_y for v in tta_views(6))
    for bad in ("0", "-2", "rel", "", 0):
        with pytest.raises(BadInput, match="--tta"):
            tta_views(bad)
