"""Helpers shared by the indoor source tests: read every scene of a synthetic raw set, collect warnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pmoe_core.scene import Scene


def read_all(module, root: Path, options=None) -> tuple[dict[str, Scene], dict[str, str], list[str]]:
    """(scenes by name, split by name, warnings) for every scene the module lists under `root`."""
    options = options or module.Options()
    warnings: list[str] = []
    refs = module.list_scenes(root, options)
    scenes = {ref.name: module.read_scene(ref, options, warnings.append) for ref in refs}
    return scenes, {ref.name: ref.split for ref in refs}, warnings


def assert_same_points(got: Scene, want: Scene, coord_atol: float = 1e-5) -> None:
    """Point-by-point equality of labels, instances and colours; coordinates within `coord_atol` metres."""
    assert len(got) == len(want), (got.name, len(got), len(want))
    np.testing.assert_allclose(got.coord, want.coord, atol=coord_atol, rtol=0)
    np.testing.assert_array_equal(got.color, want.color)
    if want.segment is None:
        assert got.segment is None
    else:
        np.testing.assert_array_equal(got.segment, want.segment)
    if want.instance is not None:
        np.testing.assert_array_equal(got.instance, want.instance)


def normal_agreement(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Cosine between corresponding unit normals."""
    return (got * want).sum(axis=1)
