"""The parts of one Waymo frame that segmentation conversion needs, independent of the file version (v1 or v2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LASER_NAMES = {1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}
TOP = 1


@dataclass
class LaserCalibration:
    """Extrinsic (vehicle_from_sensor, 4x4) and beam inclinations (radians, ascending) of one laser."""

    name: int
    extrinsic: np.ndarray
    beam_inclinations: np.ndarray | None
    beam_inclination_min: float
    beam_inclination_max: float


@dataclass
class LaserReturns:
    """Range images of one laser: per return (H, W, 4) = range, intensity, elongation, no-label-zone.

    `labels[k]` is (H, W, 2) = instance, semantic for return k, or None where the laser/return is unlabelled;
    `pose` is the per-pixel vehicle pose (H, W, 6) = roll, pitch, yaw, x, y, z of return 1 (TOP only).
    """

    name: int
    returns: list[np.ndarray]
    labels: list[np.ndarray | None]
    pose: np.ndarray | None = None


@dataclass
class WaymoFrame:
    context: str
    timestamp: int
    pose: np.ndarray  # world_from_vehicle at the frame time, 4x4
    calibrations: dict[int, LaserCalibration] = field(default_factory=dict)
    lasers: dict[int, LaserReturns] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return any(lab is not None for laser in self.lasers.values() for lab in laser.labels)
