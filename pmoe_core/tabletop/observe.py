"""What three RealSense-like cameras see of a scene, as a coloured point cloud with object ids.

Path used (always): GL-free ray casting. Each camera casts one ray per pixel of a pinhole image with MuJoCo's
`mj_multiRay` against the same model the simulator builds (boxes, bowl walls and floors, zone patches, table
plane). Only the first hit of each ray becomes a point, so faces hidden from every camera (block bottoms, the table
under a block, the inside of a bowl wall seen from outside) are never sampled, exactly as in a depth image. The
range gets RealSense-like Gaussian noise (sigma = depth_noise * range^2), points are coloured by the object hit (flat
colours, no shading) and cropped to the workspace. This equals back-projecting MuJoCo's offscreen depth and
segmentation renders, but needs no EGL/OSMesa context and gives identical points on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from pmoe_core.tabletop.mjcf import scene_mjcf
from pmoe_core.tabletop.poses import Pose, to_mj_quat
from pmoe_core.tabletop.world import COLORS, TABLE_COLOR, WORKSPACE, SceneDesc
from pmoe_core.scene import Scene

TABLE_ID = -1


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at `position` looking at `target` (z up); `focal` in pixels for a `width` x `height` image."""

    position: tuple[float, float, float]
    target: tuple[float, float, float] = (0.5, 0.0, 0.0)
    width: int = 320
    height: int = 240
    focal: float = 225.0

    def rays(self) -> np.ndarray:
        """Unit ray directions (H*W, 3) in the world frame, one per pixel centre, row-major."""
        forward = np.subtract(self.target, self.position).astype(np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        x = (u.ravel() + 0.5 - self.width / 2) / self.focal
        y = (v.ravel() + 0.5 - self.height / 2) / self.focal
        dirs = x[:, None] * right + y[:, None] * down + forward
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def scaled(self, factor: float) -> "Camera":
        """The same view at `factor` times the resolution."""
        return Camera(
            self.position, self.target, round(self.width * factor), round(self.height * factor), self.focal * factor
        )


# Ravens' three RealSense D415 positions (front, left, right), 640x480 at focal 450 scaled by 1/2.
CAMERAS = (Camera((1.0, 0.0, 0.75)), Camera((0.0, 0.5, 0.75)), Camera((0.0, -0.5, 0.75)))


def observe(
    desc: SceneDesc,
    cameras: tuple[Camera, ...] = CAMERAS,
    depth_noise: float = 0.001,
    seed: int | None = None,
    poses: dict[int, Pose] | None = None,
) -> Scene:
    """The fused point cloud of `desc` seen by `cameras`: coord, color, normal, segment = object id (-1 table).

    `poses` (object id -> pose, e.g. a Rollout's) moves blocks away from their described start, to observe the
    world after some steps. Noise is drawn from a generator seeded by `seed` (default: the scene's seed), so the
    output is deterministic.
    """
    model = mujoco.MjModel.from_xml_string(scene_mjcf(desc))
    data = mujoco.MjData(model)
    for obj in desc.blocks:
        if poses is not None and obj.id in poses:
            qadr = model.jnt_qposadr[model.body_jntadr[model.body(f"obj{obj.id}").id]]
            data.qpos[qadr : qadr + 3] = poses[obj.id].position
            data.qpos[qadr + 3 : qadr + 7] = to_mj_quat(poses[obj.id].quaternion)
    mujoco.mj_forward(model, data)
    body_object = np.full(model.nbody, TABLE_ID, dtype=np.int16)
    for obj in desc.objects:
        body_object[model.body(f"obj{obj.id}").id] = obj.id
    rng = np.random.default_rng(desc.seed if seed is None else seed)

    coords, ids, normals = [], [], []
    for cam in cameras:
        dirs = cam.rays()
        n = len(dirs)
        geom = np.zeros(n, dtype=np.int32)
        dist = np.zeros(n, dtype=np.float64)
        normal = np.zeros((n, 3), dtype=np.float64)
        origin = np.asarray(cam.position, dtype=np.float64)
        mujoco.mj_multiRay(model, data, origin, dirs.ravel(), None, True, -1, geom, dist, normal.ravel(), n, 10.0)
        hit = dist >= 0
        rng_dist = dist[hit] + rng.normal(0.0, 1.0, hit.sum()) * depth_noise * dist[hit] ** 2
        coords.append(origin + rng_dist[:, None] * dirs[hit])
        ids.append(body_object[model.geom_bodyid[geom[hit]]])
        normals.append(normal[hit])
    coord, segment, normal = np.concatenate(coords), np.concatenate(ids), np.concatenate(normals)

    (x0, x1), (y0, y1), (z0, z1) = WORKSPACE
    keep = (
        (coord[:, 0] >= x0) & (coord[:, 0] <= x1) & (coord[:, 1] >= y0) & (coord[:, 1] <= y1)
        & (coord[:, 2] >= z0 - 0.01) & (coord[:, 2] <= z1)
    )
    palette = np.array([COLORS[o.color] for o in desc.objects] + [TABLE_COLOR], dtype=np.uint8)  # -1 -> table
    return Scene(
        name=f"{desc.task}-{desc.seed}",
        coord=coord[keep],
        color=palette[segment[keep]],
        normal=normal[keep],
        segment=segment[keep],
    )
