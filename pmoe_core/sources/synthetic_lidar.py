"""Vectorised ray casting against a `Street`, and a spinning multi-beam LiDAR built on it.

Each cast handles every ray at once per primitive (slabs for yawed boxes, quadratics for vertical cylinders and
spheres, a plane for the ground); the nearest hit beyond `t_min` wins. No per-point Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmoe_core.sources.synthetic_street import KINDS, Box, Cylinder, Sphere, Street, ground_kind

MISS = np.inf


@dataclass
class Hits:
    """Per ray: distance along the unit direction (inf = no return), KINDS index and instance id of what it hit."""

    t: np.ndarray
    kind: np.ndarray
    instance: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return np.isfinite(self.t)


def _box(o: np.ndarray, d: np.ndarray, box: Box, t_min: np.ndarray) -> np.ndarray:
    c, s = np.cos(-box.yaw), np.sin(-box.yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    lo = np.einsum("ij,nj->ni", rot, o - np.asarray(box.center))  # einsum: BLAS threads stall on (N,3)@(3,3)
    ld = np.einsum("ij,nj->ni", rot, d)
    half = np.asarray(box.size) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - lo) / ld
        t2 = (half - lo) / ld
    lo_t, hi_t = np.minimum(t1, t2), np.maximum(t1, t2)
    near = np.fmax(np.fmax(lo_t[:, 0], lo_t[:, 1]), lo_t[:, 2])  # fmax/fmin skip the NaNs of 0/0 slabs
    far = np.fmin(np.fmin(hi_t[:, 0], hi_t[:, 1]), hi_t[:, 2])
    ok = (near <= far) & (near > t_min)
    return np.where(ok, near, MISS)


def _cylinder(o: np.ndarray, d: np.ndarray, cyl: Cylinder, t_min: np.ndarray) -> np.ndarray:
    ox, oy = o[:, 0] - cyl.x, o[:, 1] - cyl.y
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (ox * d[:, 0] + oy * d[:, 1])
    c = ox ** 2 + oy ** 2 - cyl.radius ** 2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    z = o[:, 2] + t * d[:, 2]
    ok = (disc >= 0) & (a > 1e-12) & (t > t_min) & (z >= cyl.z0) & (z <= cyl.z1)
    return np.where(ok, t, MISS)


def _sphere(o: np.ndarray, d: np.ndarray, sph: Sphere, t_min: np.ndarray) -> np.ndarray:
    oc = o - np.asarray(sph.center)
    b = np.einsum("ij,ij->i", oc, d)
    c = np.einsum("ij,ij->i", oc, oc) - sph.radius ** 2
    disc = b * b - c
    with np.errstate(invalid="ignore"):
        t = -b - np.sqrt(disc)
    return np.where((disc >= 0) & (t > t_min), t, MISS)


def cast(origins: np.ndarray, dirs: np.ndarray, street: Street, max_range: float,
         t_min: np.ndarray | float = 0.05) -> Hits:
    """Nearest hit of each ray (origins (N,3) or (3,), unit dirs (N,3)) within max_range."""
    d = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
    o = np.broadcast_to(np.asarray(origins, dtype=np.float64), d.shape)
    t_min = np.broadcast_to(np.asarray(t_min, dtype=np.float64), d.shape[:1])
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = -o[:, 2] / d[:, 2]
    best = np.where((d[:, 2] < 0) & (t_ground > t_min), t_ground, MISS)
    ground_y = o[:, 1] + np.where(np.isfinite(best), best, 0.0) * d[:, 1]
    kind = ground_kind(ground_y)
    instance = np.zeros(d.shape[0], dtype=np.int64)
    shapes = {Box: _box, Cylinder: _cylinder, Sphere: _sphere}
    for prim in street.primitives:
        t = shapes[type(prim)](o, d, prim, t_min)
        closer = t < best
        best = np.where(closer, t, best)
        kind[closer] = KINDS.index(prim.kind)
        instance[closer] = prim.instance
    best[best > max_range] = MISS
    return Hits(best, kind, instance)


def unit_rays(elevation: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """(len(elevation), len(azimuth), 3) unit directions, x forward, y left, z up."""
    el = np.asarray(elevation, dtype=np.float64)[:, None]
    az = np.asarray(azimuth, dtype=np.float64)[None, :]
    return np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1)


# Reflectivity per kind, to give intensities some structure (lane-marking-free asphalt is dark, signs are bright).
REFLECTIVITY = {"road": 0.12, "curb": 0.3, "sidewalk": 0.25, "terrain": 0.35, "building": 0.4, "vegetation": 0.5,
                "trunk": 0.3, "pole": 0.45, "sign": 0.95, "car": 0.6, "truck": 0.55, "pedestrian": 0.3,
                "cyclist": 0.3, "bicycle": 0.5, "other": 0.2}
REFLECTIVITY_BY_INDEX = np.array([REFLECTIVITY[k] for k in KINDS])


def intensity(hits: Hits, rng: np.random.Generator) -> np.ndarray:
    """A [0, 1] return strength: the kind's reflectivity with noise, fading slowly with range."""
    base = REFLECTIVITY_BY_INDEX[hits.kind]
    fade = np.exp(-np.where(hits.hit, hits.t, 0.0) / 200.0)
    return np.clip(base * fade + rng.normal(0, 0.03, hits.t.shape), 0.0, 1.0)
