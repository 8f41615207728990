"""Point-cloud augmentations of the reference recipes (Pointcept PTv3), as small callables on a Sample.

Every transform is `transform(sample, rng) -> sample`: randomness comes only from the passed Generator, so a run
is reproduced by reproducing the generator's seed (the dataset derives it from the sampler's draw). Angles are
in radians; colors are in [0, 255] until features.py scales them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from pmoe_core.data.sample import Sample

Transform = Callable[[Sample, np.random.Generator], Sample]


def apply(transforms: Sequence[Transform], sample: Sample, rng: np.random.Generator) -> Sample:
    for transform in transforms:
        sample = transform(sample, rng)
    return sample


def _bbox_center(coord: np.ndarray) -> np.ndarray:
    return (coord.min(axis=0) + coord.max(axis=0)) / 2


@dataclass
class CenterShift:
    """Move the bounding-box centre to the origin in x, y and, with `apply_z`, the floor to z = 0."""

    apply_z: bool = True

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        lo, hi = sample.coord.min(axis=0), sample.coord.max(axis=0)
        shift = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] if self.apply_z else 0.0], np.float32)
        sample.coord = sample.coord - shift
        return sample


@dataclass
class RandomDropout:
    """With probability p, drop a random `ratio` of the points."""

    ratio: float = 0.2
    p: float = 0.2

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        n = len(sample)
        keep = np.sort(rng.choice(n, size=int(n * (1 - self.ratio)), replace=False))
        return sample.keep(keep)


def rotation_matrix(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float32)
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)
    raise ValueError(f"axis must be x, y or z, got {axis!r}")


@dataclass
class RandomRotate:
    """With probability p, rotate about `axis` by an angle uniform in [-max_angle, max_angle].

    The pivot is `center`, or the bounding-box centre when None. Normals rotate with the points.
    """

    axis: str
    max_angle: float
    p: float = 0.5
    center: tuple[float, float, float] | None = None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        rot = rotation_matrix(self.axis, rng.uniform(-self.max_angle, self.max_angle))
        pivot = _bbox_center(sample.coord) if self.center is None else np.asarray(self.center, np.float32)
        sample.coord = ((sample.coord - pivot) @ rot.T + pivot).astype(np.float32)
        if sample.normal is not None:
            sample.normal = sample.normal @ rot.T
        return sample


@dataclass
class RandomScale:
    """Scale all coordinates by one factor uniform in [low, high]."""

    low: float = 0.9
    high: float = 1.1

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample.coord = sample.coord * np.float32(rng.uniform(self.low, self.high))
        return sample


@dataclass
class RandomFlip:
    """Mirror x, and independently y, each with probability p (normals mirrored too)."""

    p: float = 0.5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for axis in (0, 1):
            if rng.random() < self.p:
                sample.coord = sample.coord.copy()
                sample.coord[:, axis] *= -1
                if sample.normal is not None:
                    sample.normal = sample.normal.copy()
                    sample.normal[:, axis] *= -1
        return sample


@dataclass
class RandomJitter:
    """Add clipped Gaussian noise (sigma, clipped to +-clip metres) to every coordinate."""

    sigma: float = 0.005
    clip: float = 0.02

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        noise = np.clip(self.sigma * rng.standard_normal(sample.coord.shape, np.float32), -self.clip, self.clip)
        sample.coord = sample.coord + noise
        return sample


def _blur(noise: np.ndarray, axis: int) -> np.ndarray:
    """Box filter of width 3 along `axis` with zero padding."""
    padded = np.pad(noise, [(1, 1) if a == axis else (0, 0) for a in range(noise.ndim)])
    length = noise.shape[axis]
    return (padded.take(range(0, length), axis) + padded.take(range(1, length + 1), axis)
            + padded.take(range(2, length + 2), axis)) / 3


def _trilinear(grid: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample grid (X, Y, Z, 3) at fractional grid positions u (N, 3) inside it."""
    upper = np.array(grid.shape[:3]) - 2
    i0 = np.clip(np.floor(u).astype(np.int64), 0, upper)
    t = (u - i0).astype(np.float32)
    out = np.zeros((u.shape[0], grid.shape[3]), np.float32)
    for dx in (0, 1):
        wx = t[:, 0] if dx else 1 - t[:, 0]
        for dy in (0, 1):
            wy = t[:, 1] if dy else 1 - t[:, 1]
            for dz in (0, 1):
                wz = t[:, 2] if dz else 1 - t[:, 2]
                out += (wx * wy * wz)[:, None] * grid[i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz]
    return out


@dataclass
class ElasticDistortion:
    """With probability p, displace points by smooth random fields, one per (granularity, magnitude) pair.

    Noise on a coarse grid (spacing = granularity), box-blurred twice per axis, interpolated trilinearly.
    """

    params: tuple[tuple[float, float], ...] = ((0.2, 0.4), (0.8, 1.6))
    p: float = 0.95

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        for granularity, magnitude in self.params:
            lo = sample.coord.min(axis=0)
            dims = ((sample.coord - lo).max(axis=0) // granularity).astype(np.int64) + 3
            noise = rng.standard_normal((*dims, 3), np.float32)
            for _ in range(2):
                for axis in range(3):
                    noise = _blur(noise, axis)
            u = (sample.coord - (lo - granularity)) / granularity
            sample.coord = sample.coord + magnitude * _trilinear(noise, u)
        return sample


@dataclass
class ChromaticAutoContrast:
    """With probability p, blend colors with their per-channel min-max stretched version."""

    p: float = 0.2
    blend: float | None = None  # None: a random blend factor each time

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if sample.color is None or rng.random() >= self.p:
            return sample
        lo = sample.color.min(axis=0, keepdims=True)
        hi = sample.color.max(axis=0, keepdims=True)
        stretched = (sample.color - lo) * (255 / np.maximum(hi - lo, 1e-6))
        blend = rng.random() if self.blend is None else self.blend
        sample.color = ((1 - blend) * sample.color + blend * stretched).astype(np.float32)
        return sample


@dataclass
class ChromaticTranslation:
    """With probability p, shift all colors by one random RGB offset of up to +-ratio * 255."""

    p: float = 0.95
    ratio: float = 0.05

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if sample.color is None or rng.random() >= self.p:
            return sample
        offset = (rng.random((1, 3), np.float32) - 0.5) * 255 * 2 * self.ratio
        sample.color = np.clip(sample.color + offset, 0, 255)
        return sample


@dataclass
class ChromaticJitter:
    """With probability p, add per-point Gaussian color noise of std `std` * 255."""

    p: float = 0.95
    std: float = 0.05

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if sample.color is None or rng.random() >= self.p:
            return sample
        noise = rng.standard_normal(sample.color.shape, np.float32) * np.float32(self.std * 255)
        sample.color = np.clip(sample.color + noise, 0, 255)
        return sample


@dataclass
class SphereCrop:
    """Keep the `max_points` points nearest to a random point, when there are more."""

    max_points: int

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if len(sample) <= self.max_points:
            return sample
        center = sample.coord[rng.integers(len(sample))]
        dist2 = np.sum((sample.coord - center) ** 2, axis=1)
        return sample.keep(np.sort(np.argpartition(dist2, self.max_points - 1)[: self.max_points]))


@dataclass
class PointClip:
    """Clamp coordinates into a box (outdoor sensor range), as the reference does: points are kept."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample.coord = np.clip(sample.coord, np.asarray(self.low, np.float32), np.asarray(self.high, np.float32))
        return sample


@dataclass
class Shuffle:
    """Randomly permute the points (the backbone must not rely on storage order)."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return sample.keep(rng.permutation(len(sample)))
