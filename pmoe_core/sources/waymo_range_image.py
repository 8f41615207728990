"""Waymo range images to points in the vehicle frame, following the official `range_image_utils` geometry.

Row i of a range image is a beam (row 0 the highest), column j an azimuth sweeping from +pi (j=0) clockwise, both
corrected for the laser's mounting yaw. Each TOP pixel also carries the vehicle pose at the instant it was fired;
applying it and then the inverse frame pose removes the motion smear of a ~0.1 s sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmoe_core.sources.waymo_frame import LaserCalibration, WaymoFrame


def beam_inclinations(cal: LaserCalibration, height: int) -> np.ndarray:
    """(H,) radians, row 0 = highest beam: explicit values when given, else uniform between min and max."""
    if cal.beam_inclinations is not None and len(cal.beam_inclinations) == height:
        ascending = np.asarray(cal.beam_inclinations, dtype=np.float64)
    else:
        ratios = (np.arange(height, dtype=np.float64) + 0.5) / height
        ascending = cal.beam_inclination_min + ratios * (cal.beam_inclination_max - cal.beam_inclination_min)
    return ascending[::-1].copy()


def azimuths(extrinsic: np.ndarray, width: int) -> np.ndarray:
    """(W,) radians in the sensor frame, column 0 at +pi minus the mounting yaw."""
    az_correction = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    ratios = (width - np.arange(width, dtype=np.float64) - 0.5) / width
    return (ratios * 2.0 - 1.0) * np.pi - az_correction


def pixel_directions(cal: LaserCalibration, height: int, width: int) -> np.ndarray:
    """(H, W, 3) unit rays in the sensor frame."""
    incl = beam_inclinations(cal, height)[:, None]
    az = azimuths(cal.extrinsic, width)[None, :]
    return np.stack(np.broadcast_arrays(np.cos(az) * np.cos(incl), np.sin(az) * np.cos(incl), np.sin(incl)), axis=-1)


def rotation_rpy(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations R = Rz(yaw) Ry(pitch) Rx(roll), as Waymo's per-pixel poses define them."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.stack([
        np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], axis=-1),
        np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], axis=-1),
        np.stack([-sp, cp * sr, cp * cr], axis=-1),
    ], axis=-2)


def vehicle_points(range_m: np.ndarray, cal: LaserCalibration, pixel_pose: np.ndarray | None,
                   frame_pose: np.ndarray) -> np.ndarray:
    """(H, W, 3) float64 points in the vehicle frame at the frame timestamp."""
    h, w = range_m.shape
    sensor = pixel_directions(cal, h, w) * range_m[..., None].astype(np.float64)
    extrinsic = np.asarray(cal.extrinsic, dtype=np.float64)
    points = np.einsum("ij,hwj->hwi", extrinsic[:3, :3], sensor) + extrinsic[:3, 3]  # einsum avoids BLAS threads
    if pixel_pose is None:
        return points
    pose = pixel_pose.astype(np.float64)
    rot = rotation_rpy(pose[..., 0], pose[..., 1], pose[..., 2])
    world = np.einsum("hwij,hwj->hwi", rot, points) + pose[..., 3:6]
    vehicle_from_world = np.linalg.inv(np.asarray(frame_pose, dtype=np.float64))
    return np.einsum("ij,hwj->hwi", vehicle_from_world[:3, :3], world) + vehicle_from_world[:3, 3]


@dataclass
class FramePoints:
    """All returns of all lasers, concatenated in laser-name order, return 1 before return 2, row-major pixels."""

    coord: np.ndarray  # (N, 3) float64, vehicle frame
    intensity: np.ndarray  # (N,) float32
    semantic: np.ndarray  # (N,) int32 raw Waymo type, -1 where the laser/return carries no labels
    instance: np.ndarray  # (N,) int32, -1 where unlabelled


def frame_points(frame: WaymoFrame) -> FramePoints:
    """Points of every return with range > 0; raises KeyError/ValueError for missing calibration or bad shapes."""
    coords, intensities, semantics, instances = [], [], [], []
    for name in sorted(frame.lasers):
        laser = frame.lasers[name]
        if name not in frame.calibrations:
            raise KeyError(f"laser {name} has range images but no calibration")
        cal = frame.calibrations[name]
        for ri, labels in zip(laser.returns, laser.labels):
            if ri.ndim != 3 or ri.shape[2] < 2:
                raise ValueError(f"laser {name}: range image has shape {ri.shape}, expected (H, W, 4)")
            if labels is not None and labels.shape[:2] != ri.shape[:2]:
                raise ValueError(f"laser {name}: labels shape {labels.shape} does not match range image {ri.shape}")
            if laser.pose is not None and laser.pose.shape[:2] != ri.shape[:2]:
                raise ValueError(f"laser {name}: pixel pose shape {laser.pose.shape} does not match {ri.shape}")
            keep = ri[..., 0] > 0
            xyz = vehicle_points(ri[..., 0], cal, laser.pose, frame.pose)
            coords.append(xyz[keep])
            intensities.append(ri[..., 1][keep].astype(np.float32))
            if labels is not None:
                semantics.append(labels[..., 1][keep].astype(np.int32))
                instances.append(labels[..., 0][keep].astype(np.int32))
            else:
                semantics.append(np.full(int(keep.sum()), -1, dtype=np.int32))
                instances.append(np.full(int(keep.sum()), -1, dtype=np.int32))
    if not coords:
        return FramePoints(np.zeros((0, 3)), np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.int32))
    return FramePoints(np.concatenate(coords), np.concatenate(intensities), np.concatenate(semantics),
                       np.concatenate(instances))
