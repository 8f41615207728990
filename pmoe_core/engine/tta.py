"""Test-time augmentation views: deterministic z-rotations and a mirror, applied before grid fragmenting.

A view changes coordinates (and normals) only and keeps every point in its place, so the scores of all views add
up per original point. It runs before the test recipe, as in the references, so each view is voxelised afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import pi

import numpy as np

from pmoe_core.data.sample import Sample
from pmoe_core.data.transforms import rotation_matrix
from pmoe_core.errors import BadInput


@dataclass(frozen=True)
class View:
    """Rotate by `angle` about the z axis through the origin, then mirror x when `flip`.

    The pivot is the origin: outdoor scans are sensor-centred (training rotates them about the sensor), and the
    indoor test recipe re-centres the room afterwards, so the pivot does not matter there.
    """

    angle: float = 0.0
    flip: bool = False

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if self.angle == 0.0 and not self.flip:
            return sample
        mirror = np.diag([-1.0 if self.flip else 1.0, 1.0, 1.0]).astype(np.float32)
        linear = mirror @ rotation_matrix("z", self.angle)
        sample.coord = (sample.coord @ linear.T).astype(np.float32)
        if sample.normal is not None:
            sample.normal = (sample.normal @ linear.T).astype(np.float32)
        return sample


def tta_views(tta: bool | int | None) -> list[View]:
    """`tta` passes: pass k rotates by k * 2pi / tta and odd passes also mirror x; False/None/1 = one plain pass."""
    if tta is None or tta is False:
        return [View()]
    n = int(tta)
    if n < 1:
        raise BadInput(f"--tta must be a positive number of passes, got {tta}")
    return [View(angle=2 * pi * k / n, flip=k % 2 == 1) for k in range(n)]
