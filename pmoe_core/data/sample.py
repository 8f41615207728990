"""The per-sample record the transforms mutate, from a stored Scene to what collate packs into a batch."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from pmoe_core.scene import IGNORE_INDEX, Scene

# Per-point arrays (first axis = points); `keep` subsets all of them together.
POINT_FIELDS = ("coord", "color", "normal", "strength", "segment", "instance", "grid_coord", "index")
FRAGMENT_FIELDS = ("fragments", "vote_source")  # set by test-time fragmenting; not carried into a fragment


@dataclass
class Sample:
    """One scene on its way through the pipeline.

    `color` stays in [0, 255] (float32) through the augmentations; features.py scales it once. `segment` is int64
    with -1 = ignore (all -1 when the scene carries no labels). `index` maps every point back to the stored
    scene's points, so test predictions can be summed per original point. `grid_coord` is set by grid sampling;
    `fragments` (F, V) only by test-time fragmenting: row j holds indices (into this sample's points) of fragment j;
    `vote_source` (N,), set with them where a voxel holds more points than there are fragments: the point whose
    votes each point takes (grid.fragment_indices).
    `dataset` selects the recipe and the label space; it never reaches the backbone.
    """

    dataset: str
    name: str
    coord: np.ndarray
    segment: np.ndarray
    index: np.ndarray
    color: np.ndarray | None = None
    normal: np.ndarray | None = None
    strength: np.ndarray | None = None
    instance: np.ndarray | None = None
    grid_coord: np.ndarray | None = None
    fragments: np.ndarray | None = None
    vote_source: np.ndarray | None = None

    @classmethod
    def from_scene(cls, scene: Scene, dataset: str) -> "Sample":
        n = len(scene)
        segment = (
            scene.segment.astype(np.int64) if scene.segment is not None else np.full(n, IGNORE_INDEX, dtype=np.int64)
        )
        return cls(
            dataset=dataset,
            name=scene.name,
            coord=scene.coord.astype(np.float32, copy=True),
            segment=segment,
            index=np.arange(n, dtype=np.int64),
            color=None if scene.color is None else scene.color.astype(np.float32),
            normal=None if scene.normal is None else scene.normal.astype(np.float32, copy=True),
            strength=None if scene.strength is None else scene.strength.astype(np.float32, copy=True),
            instance=None if scene.instance is None else scene.instance.astype(np.int64),
        )

    def __len__(self) -> int:
        return int(self.coord.shape[0])

    def keep(self, index: np.ndarray) -> "Sample":
        """Restrict every per-point array to `index` (integer indices or a boolean mask), in place."""
        if self.fragments is not None:
            raise ValueError("points cannot be dropped after GridFragments: the fragments index them")
        for name in POINT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[index])
        return self

    def fragment(self, j: int) -> "Sample":
        """Test fragment j as a Sample of its own (one point per voxel), `index` still pointing at stored points."""
        if self.fragments is None:
            raise ValueError(f"sample {self.name!r} has no fragments; run GridFragments first")
        rows = self.fragments[j]
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in POINT_FIELDS + FRAGMENT_FIELDS}
        per_point = {name: None if getattr(self, name) is None else getattr(self, name)[rows] for name in POINT_FIELDS}
        return Sample(**values, **per_point)
