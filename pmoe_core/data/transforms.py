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


_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic): a well-spread hash of each value."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _vertex_noise(vertex: np.ndarray, seed: int) -> np.ndarray:
    """(M, 3) float32 standard-normal noise, a pure function of each integer grid vertex (M, 3) and `seed`: the
    noise field exists everywhere, but only the vertices asked for are ever computed."""
    v = vertex.astype(np.uint64)  # two's complement: negative vertices hash like any others
    h = _mix64(np.uint64(seed) ^ v[:, 0])
    h = _mix64(h ^ v[:, 1] ^ np.uint64(0x9E3779B97F4A7C15))
    h = _mix64(h ^ v[:, 2] ^ np.uint64(0x632BE59BD9B4E019))
    h2 = _mix64(h ^ np.uint64(0xD1B54A32D192ED03))
    words = [(w >> np.uint64(32)) if high else (w & np.uint64(0xFFFFFFFF)) for w in (h, h2) for high in (0, 1)]
    u = [(w.astype(np.float64) + 0.5) / 2.0**32 for w in words]  # uniforms in (0, 1)
    r0, r1 = np.sqrt(-2 * np.log(u[0])), np.sqrt(-2 * np.log(u[2]))  # Box-Muller, two pairs
    return np.stack([r0 * np.cos(2 * np.pi * u[1]), r0 * np.sin(2 * np.pi * u[1]), r1 * np.cos(2 * np.pi * u[3])],
                    axis=1).astype(np.float32)


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of an (M, 3) int64 array and the inverse index; one int64 key per row where the rows' extent
    allows it (always after BoundExtent), else numpy's row-wise unique."""
    lo = rows.min(axis=0)
    rel, extent = rows - lo, rows.max(axis=0) - lo + 1
    if float(extent[0]) * float(extent[1]) * float(extent[2]) >= 2.0**62:  # far apart: rank each axis instead
        ranked = [np.unique(rows[:, a], return_inverse=True) for a in range(3)]
        rel = np.stack([inverse.reshape(-1) for _, inverse in ranked], axis=1)
        extent = np.array([len(values) for values, _ in ranked], dtype=np.int64)
    if float(extent[0]) * float(extent[1]) * float(extent[2]) < 2.0**62:
        key = (rel[:, 0] * extent[1] + rel[:, 1]) * extent[2] + rel[:, 2]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return rows[first], inverse.reshape(-1)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


_TAPS = np.array([1, 2, 3, 2, 1], np.float32) / 9  # a width-3 box filter applied twice
_STEPS = np.arange(-2, 3)


def _smooth_noise(vertex: np.ndarray, seed: int) -> np.ndarray:
    """Noise box-blurred twice along each axis, evaluated only at `vertex` (M, 3) int64: the blur is separable, so
    each axis pass needs the previous pass's values at the vertices +-2 along that axis only. Memory follows the
    vertices asked for (at most 125x, far less on surfaces), never the scene's extent."""
    passes = []
    target = vertex
    for axis in (2, 1, 0):  # from the vertices outwards: what each pass needs of the one before
        needed = np.repeat(target[:, None, :], len(_STEPS), axis=1)
        needed[:, :, axis] += _STEPS
        target, inverse = _unique_rows(needed.reshape(-1, 3))
        passes.append(inverse.reshape(-1, len(_STEPS)))
    values = _vertex_noise(target, seed)
    for inverse in reversed(passes):  # x, then y, then z
        out = np.zeros((inverse.shape[0], 3), np.float32)
        for k, tap in enumerate(_TAPS):
            out += tap * values[inverse[:, k]]
        values = out
    return values


def _smooth_noise_box(lo: np.ndarray, hi: np.ndarray, seed: int) -> np.ndarray:
    """The same field as `_smooth_noise`, on every vertex of the box [lo, hi] (inclusive), blurred by shifted
    slices: the fast way when the box is small next to the point count."""
    axes = [np.arange(a - 2, b + 3) for a, b in zip(lo, hi)]
    shape = tuple(len(a) for a in axes)
    vertex = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    values = _vertex_noise(vertex, seed).reshape(*shape, 3)
    for axis in range(3):
        length = values.shape[axis] - 4
        values = sum(tap * values.take(np.arange(k, k + length), axis=axis) for k, tap in enumerate(_TAPS))
    return values


_CORNERS = np.array([[dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])
BOX_CELLS_PER_POINT = 2  # the dense box is used while it has at most this many vertices per point (+ 64 Ki)


def _elastic_offsets(coord: np.ndarray, granularity: float, seed: int) -> np.ndarray:
    """Trilinear interpolation of the smooth noise field (vertices every `granularity` metres) at every point."""
    c = coord.astype(np.float64)
    u = (c - c.min(axis=0)) / granularity + 1  # grid units, the first vertex one cell below the lowest point
    base = np.minimum(np.floor(u), 2.0**60)
    t = (u - base).astype(np.float32)
    base = base.astype(np.int64)
    hi = base.max(axis=0) + 1
    if float(np.prod((hi + 5).astype(np.float64))) <= BOX_CELLS_PER_POINT * len(coord) + (1 << 16):
        noise = _smooth_noise_box(np.zeros(3, np.int64), hi, seed)
        gather = lambda d: noise[base[:, 0] + d[0], base[:, 1] + d[1], base[:, 2] + d[2]]
    else:  # a far point makes the box huge: compute the field only at the corners of occupied cells
        cells, cell_of_point = _unique_rows(base)
        vertex, corner_index = _unique_rows((cells[:, None, :] + _CORNERS).reshape(-1, 3))
        noise = _smooth_noise(vertex, seed)
        corner_index = corner_index.reshape(-1, 8)[cell_of_point]  # (N, 8): vertex of each corner of each cell
        gather = lambda d: noise[corner_index[:, int(d[0] * 4 + d[1] * 2 + d[2])]]
    out = np.zeros((coord.shape[0], 3), np.float32)
    for d in _CORNERS:
        w = (t[:, 0] if d[0] else 1 - t[:, 0]) * (t[:, 1] if d[1] else 1 - t[:, 1]) * \
            (t[:, 2] if d[2] else 1 - t[:, 2])
        out += w[:, None] * gather(d)
    return out


@dataclass
class ElasticDistortion:
    """With probability p, displace points by smooth random fields, one per (granularity, magnitude) pair.

    Gaussian noise on a grid of spacing `granularity`, box-blurred twice per axis, interpolated trilinearly (the
    reference's field). The reference builds the whole grid over the bounding box, so one far point costs memory
    by the cube of the extent (31.8 GiB for a point 300 m from its room); here the noise is a hash of the grid
    vertex, computed only at the vertices the points need, so memory follows the points.
    """

    params: tuple[tuple[float, float], ...] = ((0.2, 0.4), (0.8, 1.6))
    p: float = 0.95

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p or not len(sample):
            return sample
        for granularity, magnitude in self.params:
            seed = int(rng.integers(0, 2**63))
            offsets = _elastic_offsets(sample.coord, granularity, seed)
            sample.coord = (sample.coord + np.float32(magnitude) * offsets).astype(np.float32)
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
    """Keep the `max_points` points nearest to a random point, when there are more.

    With `sample_rate` the cap is instead that fraction of the sample's points (int(rate * N), as Pointcept's
    SphereCrop(sample_rate=...) computes it), so a crop always happens when rate < 1."""

    max_points: int | None = None
    sample_rate: float | None = None

    def __post_init__(self) -> None:
        if (self.max_points is None) == (self.sample_rate is None):
            raise ValueError("SphereCrop takes exactly one of max_points and sample_rate")
        if self.sample_rate is not None and not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")
        if self.max_points is not None and self.max_points < 1:
            raise ValueError(f"max_points must be positive, got {self.max_points}")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        n = len(sample)
        cap = self.max_points if self.sample_rate is None else max(int(self.sample_rate * n), 1)
        if n <= cap:
            return sample
        center = sample.coord[rng.integers(n)]
        dist2 = np.sum((sample.coord - center) ** 2, axis=1)
        return sample.keep(np.sort(np.argpartition(dist2, cap - 1)[:cap]))


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
