"""Test fragments are capped: a voxel crowded with duplicates costs votes copied from a voxel-mate, not one more
full-size fragment (and one more forward pass) per duplicate."""

from __future__ import annotations

import numpy as np

from pmoe_core.data.grid import MAX_FRAGMENTS, GridFragments, fragment_indices
from pmoe_core.data.sample import Sample


def _grid(n_spread: int, n_dup: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spread = rng.integers(0, 50, (n_spread, 3))
    return np.concatenate([spread, np.zeros((n_dup, 3), dtype=np.int64)]).astype(np.int64)


def test_below_the_cap_every_point_is_in_a_fragment_and_nothing_is_copied():
    grid = _grid(2000, 5)
    fragments, source = fragment_indices(grid)
    assert source is None
    assert set(np.unique(fragments)) == set(range(len(grid)))
    assert all(len(np.unique(grid[row], axis=0)) == fragments.shape[1] for row in fragments)  # one point per voxel


def test_a_crowded_voxel_is_capped_and_its_extra_points_take_a_mates_votes():
    grid = _grid(2000, 10_000)
    fragments, source = fragment_indices(grid, max_fragments=8)
    assert fragments.shape[0] == 8
    covered = np.unique(fragments)
    assert source is not None and source.shape == (len(grid),)
    assert np.isin(source, covered).all()  # every point takes votes from a point that was scored
    assert (source[covered] == covered).all()  # scored points keep their own
    np.testing.assert_array_equal(grid[source], grid)  # always from the same voxel
    assert fragments.size <= 8 * len(np.unique(grid, axis=0))


def test_grid_fragments_sets_the_vote_source_and_fragment_samples_do_not_carry_it():
    n = 50_000
    coord = np.zeros((n, 3), dtype=np.float32)  # one voxel, 50k duplicates
    coord[:100] = np.random.default_rng(1).random((100, 3)).astype(np.float32)
    sample = Sample(dataset="scannet", name="dups", coord=coord, segment=np.full(n, -1), index=np.arange(n))
    sample = GridFragments(0.02)(sample, np.random.default_rng(0))
    assert sample.fragments.shape[0] == MAX_FRAGMENTS and sample.vote_source is not None
    part = sample.fragment(0)
    assert part.vote_source is None and part.fragments is None and len(part) == sample.fragments.shape[1]
