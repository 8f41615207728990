"""Test-time augmentation views: deterministic z-rotations, uniform scales and mirrors, applied before fragmenting.

A view changes coordinates (and normals) only and keeps every point in its place, so the scores of all views add
up per original point. It runs before the test recipe, as in the references, so each view is voxelised afresh.

Two view sets: `--tta N` (N evenly spaced rotations, odd ones mirrored in x) and `--tta release`, the 13 views of
the Point-MoE release's test configs (docs/recipes.md): rotations by 0, 90, 180 and 270 degrees about z at scales
1, 0.95 and 1.05, and one RandomFlip(p=1), which mirrors both x and y.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import pi

import numpy as np

from pmoe_core.data.sample import Sample
from pmoe_core.data.transforms import rotation_matrix
from pmoe_core.errors import BadInput

RELEASE = "release"


@dataclass(frozen=True)
class View:
    """Rotate by `angle` about the z axis through the origin, scale by `scale`, then mirror x when `flip` and y
    when `flip_y`.

    The pivot is the origin: outdoor scans are sensor-centred (training rotates them about the sensor), and the
    indoor test recipe re-centres the room afterwards. For quarter turns, mirrors and uniform scales the room's
    bounding box maps onto an axis-aligned box, so the re-centred result equals the release's (which centres the
    room first and pivots there).
    """

    angle: float = 0.0
    flip: bool = False
    scale: float = 1.0
    flip_y: bool = False

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if self.angle == 0.0 and not self.flip and not self.flip_y and self.scale == 1.0:
            return sample
        mirror = np.diag([-1.0 if self.flip else 1.0, -1.0 if self.flip_y else 1.0, 1.0]).astype(np.float32)
        linear = mirror @ rotation_matrix("z", self.angle)
        sample.coord = (sample.coord @ (linear * np.float32(self.scale)).T).astype(np.float32)
        if sample.normal is not None:
            sample.normal = (sample.normal @ linear.T).astype(np.float32)  # a uniform scale keeps directions
        return sample


def release_views() -> list[View]:
    """The aug_transform list of the release's test configs, in its order (12 rotate/scale views, then the flip)."""
    turns = [View(angle=pi * k / 2, scale=s) for s in (1.0, 0.95, 1.05) for k in range(4)]
    return [*turns, View(flip=True, flip_y=True)]


def tta_views(tta: bool | int | str | None) -> list[View]:
    """`tta` passes: pass k rotates by k * 2pi / tta and odd passes also mirror x; False/None/1 = one plain pass;
    "release" = the release's 13 views (release_views)."""
    if tta is None or tta is False:
        return [View()]
    if isinstance(tta, str):
        if tta.strip().lower() == RELEASE:
            return release_views()
        try:
            tta = int(tta)
        except ValueError:
            raise BadInput(f"--tta must be a positive number of passes or {RELEASE!r}, got {tta!r}") from None
    n = int(tta)
    if n < 1:
        raise BadInput(f"--tta must be a positive number of passes or {RELEASE!r}, got {tta}")
    return [View(angle=2 * pi * k / n, flip=k % 2 == 1) for k in range(n)]
