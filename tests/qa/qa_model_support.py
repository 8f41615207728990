"""Hand-built coloured clouds for the answering model's tests: a tabletop with one cube, or a bare room corner."""

from __future__ import annotations

import numpy as np

from pmoe_core.scene import Scene

TABLE = (96, 84, 72)


def cube_on_table(colour: tuple[int, int, int], seed: int = 0, size: float = 0.04,
                  at: tuple[float, float] = (0.5, 0.0)) -> Scene:
    """A 1 x 0.6 m table top (z = 0, 5 mm grid, 1 mm depth noise) with one cube of `colour` on it, sampled on its
    top and sides."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(0.0, 1.0, 0.005), np.arange(-0.3, 0.3, 0.005), indexing="ij")
    table = np.stack([gx.ravel(), gy.ravel(), rng.normal(0, 0.001, gx.size)], axis=1)
    half, n = size / 2, 400
    u, v = rng.uniform(-half, half, (2, 5, n))
    faces = [np.stack([u[0], v[0], np.full(n, size)], 1)]  # top
    faces += [np.stack([np.full(n, s * half), u[i], v[i] + half], 1) for i, s in ((1, 1), (2, -1))]
    faces += [np.stack([u[i], np.full(n, s * half), v[i] + half], 1) for i, s in ((3, 1), (4, -1))]
    cube = np.concatenate(faces) + [at[0], at[1], 0.0]
    keep = ~((np.abs(table[:, 0] - at[0]) < half) & (np.abs(table[:, 1] - at[1]) < half))  # hidden under the cube
    coord = np.concatenate([table[keep], cube]).astype(np.float32)
    color = np.concatenate([np.tile(TABLE, (int(keep.sum()), 1)), np.tile(colour, (len(cube), 1))]).astype(np.uint8)
    return Scene(f"cube-{colour}", coord, color=color)
