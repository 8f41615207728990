"""6-D poses (position + unit quaternion) and the few rotation helpers the planner needs.

Quaternions are (x, y, z, w), scalar last, as in Ravens / CLIPort (pybullet); MuJoCo's (w, x, y, z) order only
appears inside `sim.py` and `observe.py`, converted by `to_mj_quat` / `from_mj_quat`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK_SYMMETRY = math.pi / 2  # a cube looks the same after a quarter turn about its up axis


@dataclass(frozen=True)
class Pose:
    """A rigid pose: position in metres (world frame, z up) and orientation as an (x, y, z, w) unit quaternion."""

    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    @classmethod
    def from_yaw(cls, position, yaw: float) -> "Pose":
        return cls(tuple(float(v) for v in position), yaw_to_quat(yaw))

    @property
    def yaw(self) -> float:
        return quat_to_yaw(self.quaternion)

    def to_json(self) -> dict:
        return {"position": [float(v) for v in self.position], "quaternion": [float(v) for v in self.quaternion]}

    @classmethod
    def from_json(cls, data: dict) -> "Pose":
        return cls(tuple(float(v) for v in data["position"]), tuple(float(v) for v in data["quaternion"]))


def yaw_to_quat(yaw: float) -> tuple[float, float, float, float]:
    """Rotation by `yaw` radians about world z."""
    return (0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0))


def quat_to_yaw(q) -> float:
    """Heading of the rotated x axis projected on the table plane."""
    x, y, z, w = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_to_matrix(q) -> np.ndarray:
    """3x3 rotation matrix of an (x, y, z, w) quaternion (normalised first)."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(m: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) quaternion of a rotation matrix (Shepperd's method, w >= 0)."""
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        v = [0.0, 0.0, 0.0]
        v[i] = 0.25 * s
        v[j] = (m[j, i] + m[i, j]) / s
        v[k] = (m[k, i] + m[i, k]) / s
        q = (v[0], v[1], v[2], (m[k, j] - m[j, k]) / s)
    q = np.asarray(q) * (1.0 if q[3] >= 0 else -1.0)
    return tuple(float(v) for v in q / np.linalg.norm(q))


def to_mj_quat(q) -> np.ndarray:
    """(x, y, z, w) -> MuJoCo's (w, x, y, z)."""
    return np.array([q[3], q[0], q[1], q[2]], dtype=np.float64)


def from_mj_quat(q) -> tuple[float, float, float, float]:
    """MuJoCo's (w, x, y, z) -> (x, y, z, w)."""
    return (float(q[1]), float(q[2]), float(q[3]), float(q[0]))


def up_axis_yaw_and_tilt(q) -> tuple[float, float]:
    """For a box: yaw of a horizontal face axis about whichever body axis points most nearly up, and that axis' tilt.

    A cube lying on any face is "upright"; its heading is then the heading of one of its two horizontal axes
    (equal modulo pi/2), so the metric can compare it with a target yaw under the block's symmetry.
    """
    r = quat_to_matrix(q)
    up = int(np.argmax(np.abs(r[2, :])))
    tilt = math.acos(min(1.0, abs(float(r[2, up]))))
    side = r[:, (up + 1) % 3]
    return math.atan2(side[1], side[0]), tilt


def angle_diff(a: float, b: float, symmetry: float = 2 * math.pi) -> float:
    """Smallest |a - b| modulo `symmetry` (radians)."""
    d = (a - b) % symmetry
    return min(d, symmetry - d)
