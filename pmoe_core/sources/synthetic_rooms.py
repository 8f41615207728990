"""Room geometry shared by the synthetic indoor writers: boxes and vertical cylinders in a room shell.

A room is its shell (floor, ceiling, four walls seen from inside) plus solids: doors and windows set into walls,
furniture on the floor, pictures/boards on walls, beams and columns. Each solid carries a generic kind (a key of
`KINDS`) that every dataset writer maps to its own raw label form (ScanNet raw category, S3DIS file name, NYU40 id).
From the geometry we build triangle meshes (ScanNet/Matterport3D), sample dense surfaces (S3DIS) and ray-cast
panoramas (Structured3D). Everything is drawn from a seeded numpy Generator, so a seed fixes the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Kind:
    """A generic object kind: its NYU40 id, shape, size ranges (x, y, z in m), base colour and placement."""

    nyu40: int
    shape: str  # "box" | "cylinder"
    size_lo: tuple[float, float, float]
    size_hi: tuple[float, float, float]
    color: tuple[int, int, int]
    place: str  # "floor" | "wall" (against a wall, on the floor) | "wall_mounted" | "ceiling" | "corner"
    mount_z: float = 0.0  # bottom height of wall-mounted things


KINDS: dict[str, Kind] = {
    "wall": Kind(1, "box", (0, 0, 0), (0, 0, 0), (190, 185, 175), "shell"),
    "floor": Kind(2, "box", (0, 0, 0), (0, 0, 0), (130, 110, 90), "shell"),
    "ceiling": Kind(22, "box", (0, 0, 0), (0, 0, 0), (235, 235, 230), "shell"),
    "door": Kind(8, "box", (0.8, 0.04, 2.0), (1.0, 0.06, 2.1), (140, 90, 50), "door"),
    "window": Kind(9, "box", (0.9, 0.04, 0.9), (1.5, 0.06, 1.3), (170, 200, 230), "wall_mounted", 0.9),
    "table": Kind(7, "box", (1.0, 0.6, 0.72), (1.6, 0.9, 0.76), (150, 110, 70), "floor"),
    "chair": Kind(5, "box", (0.45, 0.45, 0.8), (0.55, 0.55, 1.0), (60, 60, 75), "floor"),
    "sofa": Kind(6, "box", (1.6, 0.8, 0.75), (2.2, 0.95, 0.9), (120, 40, 40), "wall"),
    "bed": Kind(4, "box", (1.4, 1.9, 0.5), (1.8, 2.1, 0.6), (205, 205, 220), "wall"),
    "cabinet": Kind(3, "box", (0.6, 0.4, 0.8), (1.2, 0.6, 1.8), (170, 150, 120), "wall"),
    "bookshelf": Kind(10, "box", (0.8, 0.3, 1.6), (1.2, 0.4, 2.0), (110, 80, 50), "wall"),
    "desk": Kind(14, "box", (1.2, 0.6, 0.74), (1.6, 0.8, 0.76), (185, 160, 130), "wall"),
    "refrigerator": Kind(24, "box", (0.65, 0.65, 1.7), (0.75, 0.75, 1.9), (230, 230, 232), "wall"),
    "toilet": Kind(33, "cylinder", (0.38, 0.38, 0.42), (0.45, 0.45, 0.48), (248, 248, 250), "wall"),
    "sink": Kind(34, "box", (0.45, 0.4, 0.85), (0.6, 0.5, 0.9), (220, 225, 230), "wall"),
    "bathtub": Kind(36, "box", (1.5, 0.7, 0.5), (1.7, 0.8, 0.6), (240, 240, 245), "wall"),
    "counter": Kind(12, "box", (1.4, 0.6, 0.88), (2.2, 0.65, 0.92), (90, 90, 95), "wall"),
    "trash can": Kind(39, "cylinder", (0.25, 0.25, 0.4), (0.35, 0.35, 0.6), (40, 120, 60), "floor"),
    "lamp": Kind(35, "cylinder", (0.3, 0.3, 1.3), (0.4, 0.4, 1.6), (240, 220, 160), "floor"),
    "box": Kind(40, "box", (0.3, 0.3, 0.25), (0.5, 0.5, 0.45), (160, 130, 90), "floor"),
    "nightstand": Kind(32, "box", (0.4, 0.35, 0.5), (0.5, 0.45, 0.6), (120, 90, 60), "wall"),
    "dresser": Kind(17, "box", (0.9, 0.45, 0.8), (1.3, 0.55, 1.1), (130, 95, 65), "wall"),
    "shelves": Kind(15, "box", (0.8, 0.3, 1.0), (1.1, 0.4, 1.6), (100, 100, 110), "wall"),
    "picture": Kind(11, "box", (0.5, 0.03, 0.4), (0.9, 0.04, 0.7), (200, 60, 60), "wall_mounted", 1.3),
    "television": Kind(25, "box", (0.9, 0.06, 0.5), (1.2, 0.08, 0.7), (20, 20, 25), "wall_mounted", 1.0),
    "mirror": Kind(19, "box", (0.5, 0.03, 0.8), (0.7, 0.04, 1.0), (200, 210, 215), "wall_mounted", 0.9),
    "curtain": Kind(16, "box", (0.9, 0.06, 2.0), (1.3, 0.08, 2.2), (90, 60, 130), "wall_mounted", 0.3),
    "whiteboard": Kind(30, "box", (1.5, 0.03, 1.0), (2.2, 0.04, 1.2), (245, 245, 245), "wall_mounted", 0.9),
    "column": Kind(38, "box", (0.3, 0.3, 0.0), (0.5, 0.5, 0.0), (180, 180, 180), "corner"),
    "beam": Kind(38, "box", (0.0, 0.3, 0.3), (0.0, 0.4, 0.4), (175, 175, 170), "ceiling"),
    "stairs": Kind(38, "box", (0.9, 1.2, 0.5), (1.1, 1.6, 0.8), (150, 150, 140), "wall"),
}

SHELL_KINDS = ("floor", "ceiling", "wall")


@dataclass(frozen=True)
class Solid:
    """An axis-aligned box or vertical cylinder; `lo`/`hi` are its bounds in metres (room frame, z up)."""

    kind: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    color: tuple[int, int, int]

    @property
    def shape(self) -> str:
        return KINDS[self.kind].shape


@dataclass(frozen=True)
class Room:
    """A room [0,W]x[0,D]x[0,H] and the solids in it (shell parts are implicit)."""

    size: tuple[float, float, float]
    solids: tuple[Solid, ...]
    shell_colors: dict[str, tuple[int, int, int]]


def make_room(rng: np.random.Generator, kinds: list[str], size_scale: float = 1.0) -> Room:
    """A random room holding one solid per entry of `kinds` (repeats allowed), without overlaps on the floor."""
    w = float(rng.uniform(4.0, 6.0)) * size_scale
    d = float(rng.uniform(3.5, 5.0)) * size_scale
    h = float(rng.uniform(2.6, 3.0))
    occupied: list[tuple[float, float, float, float]] = []
    solids: list[Solid] = []
    wall_slots = {0: [], 1: [], 2: [], 3: []}  # per wall: used (start, end) intervals along the wall
    for kind_name in kinds:
        placed = _place(rng, kind_name, (w, d, h), occupied, wall_slots)
        if placed is not None:
            solids.append(placed)
    shell = {k: _vary(rng, KINDS[k].color) for k in SHELL_KINDS}
    return Room((w, d, h), tuple(solids), shell)


def _vary(rng: np.random.Generator, color: tuple[int, int, int]) -> tuple[int, int, int]:
    c = np.clip(np.asarray(color) + rng.integers(-20, 21, 3), 0, 255)
    return tuple(int(v) for v in c)


def _place(rng, kind_name, room, occupied, wall_slots) -> Solid | None:
    kind = KINDS[kind_name]
    w, d, h = room
    size = rng.uniform(kind.size_lo, kind.size_hi)
    color = _vary(rng, kind.color)
    for _ in range(40):
        if kind.place == "floor":
            x = rng.uniform(0.3, w - 0.3 - size[0])
            y = rng.uniform(0.3, d - 0.3 - size[1])
            lo, hi = (x, y, 0.0), (x + size[0], y + size[1], size[2])
        elif kind.place == "corner":
            cx, cy = [(0, 0), (w, 0), (0, d), (w, d)][int(rng.integers(4))]
            x = 0.0 if cx == 0 else w - size[0]
            y = 0.0 if cy == 0 else d - size[1]
            lo, hi = (x, y, 0.0), (x + size[0], y + size[1], h)
        elif kind.place == "ceiling":
            y = rng.uniform(0.5, d - 0.5 - size[1])
            lo, hi = (0.0, y, h - size[2]), (w, y + size[1], h)
            return Solid(kind_name, _r(lo), _r(hi), color)
        else:
            placed = _on_wall(rng, kind, size, room, wall_slots)
            if placed is None:
                continue
            lo, hi = placed
            if kind.place in ("wall_mounted", "door"):
                return Solid(kind_name, _r(lo), _r(hi), color)
        footprint = (lo[0], lo[1], hi[0], hi[1])
        if all(_apart(footprint, other) for other in occupied):
            occupied.append(footprint)
            return Solid(kind_name, _r(lo), _r(hi), color)
    return None


def _on_wall(rng, kind: Kind, size, room, wall_slots):
    """Bounds of something standing against (or mounted on) a random wall, not overlapping others on that wall."""
    w, d, h = room
    wall = int(rng.integers(4))
    length = w if wall in (0, 1) else d
    along, depth, height = size
    if along > length - 0.4:
        return None
    start = rng.uniform(0.2, length - 0.2 - along)
    if any(start < e + 0.05 and s < start + along + 0.05 for s, e in wall_slots[wall]):
        return None
    wall_slots[wall].append((start, start + along))
    z0 = kind.mount_z if kind.place == "wall_mounted" else 0.0
    z1 = min(z0 + height, h - 0.05)
    if wall == 0:  # y = 0
        return (start, 0.0, z0), (start + along, depth, z1)
    if wall == 1:  # y = d
        return (start, d - depth, z0), (start + along, d, z1)
    if wall == 2:  # x = 0
        return (0.0, start, z0), (depth, start + along, z1)
    return (w - depth, start, z0), (w, start + along, z1)


def _apart(a, b, gap: float = 0.1) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _r(v) -> tuple[float, float, float]:
    return tuple(round(float(x), 4) for x in v)


# --- meshes -------------------------------------------------------------------------------------------------------

@dataclass
class Mesh:
    """Triangle mesh of one surface part: vertices, faces (indices into its own vertices), analytic normals."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    normals: np.ndarray  # (V, 3) float64 analytic surface normal of each vertex
    part: np.ndarray  # (V,) int: which flat face/side of the solid a vertex lies on


def grid_patch(origin, u, v, step: float, normal) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle origin + s*u + t*v (s,t in [0,1]) as a vertex grid, triangles wound so they face `normal`."""
    u, v, origin = np.asarray(u, float), np.asarray(v, float), np.asarray(origin, float)
    nu = max(2, int(np.ceil(np.linalg.norm(u) / step)) + 1)
    nv = max(2, int(np.ceil(np.linalg.norm(v) / step)) + 1)
    s, t = np.meshgrid(np.linspace(0, 1, nu), np.linspace(0, 1, nv), indexing="ij")
    verts = origin + s.reshape(-1, 1) * u + t.reshape(-1, 1) * v
    i, j = np.meshgrid(np.arange(nu - 1), np.arange(nv - 1), indexing="ij")
    a = (i * nv + j).ravel()
    b, c, e = a + nv, a + 1, a + nv + 1
    faces = np.concatenate([np.stack([a, b, e], 1), np.stack([a, e, c], 1)])
    if np.dot(np.cross(u, v), normal) < 0:
        faces = faces[:, ::-1]
    return verts, faces


def _merge(patches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Mesh:
    verts, faces, normals, parts, base = [], [], [], [], 0
    for k, (pv, pf, pn) in enumerate(patches):
        verts.append(pv)
        faces.append(pf + base)
        normals.append(np.broadcast_to(pn, pv.shape) if pn.ndim == 1 else pn)
        parts.append(np.full(len(pv), k))
        base += len(pv)
    return Mesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(normals), np.concatenate(parts))


def box_mesh(lo, hi, step: float, inward: bool = False, skip: tuple[str, ...] = ()) -> Mesh:
    """The faces of a box as vertex grids; `inward` makes normals point into the box (a room seen from inside)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    dx, dy, dz = hi - lo
    sides = {
        "-z": (lo, (dx, 0, 0), (0, dy, 0), (0, 0, -1)),
        "+z": (lo + (0, 0, dz), (dx, 0, 0), (0, dy, 0), (0, 0, 1)),
        "-y": (lo, (dx, 0, 0), (0, 0, dz), (0, -1, 0)),
        "+y": (lo + (0, dy, 0), (dx, 0, 0), (0, 0, dz), (0, 1, 0)),
        "-x": (lo, (0, dy, 0), (0, 0, dz), (-1, 0, 0)),
        "+x": (lo + (dx, 0, 0), (0, dy, 0), (0, 0, dz), (1, 0, 0)),
    }
    patches = []
    for name, (origin, u, v, n) in sides.items():
        if name in skip:
            continue
        n = -np.asarray(n, float) if inward else np.asarray(n, float)
        pv, pf = grid_patch(origin, u, v, step, n)
        patches.append((pv, pf, n))
    return _merge(patches)


def cylinder_mesh(lo, hi, step: float) -> Mesh:
    """A vertical cylinder inscribed in the box lo..hi: side and top cap (the bottom rests on the floor)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    center = (lo[:2] + hi[:2]) / 2
    radius = float(min(hi[0] - lo[0], hi[1] - lo[1]) / 2)
    n_ang = max(8, int(np.ceil(2 * np.pi * radius / step)))
    n_z = max(2, int(np.ceil((hi[2] - lo[2]) / step)) + 1)
    ang = np.arange(n_ang) * 2 * np.pi / n_ang
    z = np.linspace(lo[2], hi[2], n_z)
    a, zz = np.meshgrid(ang, z, indexing="ij")
    radial = np.stack([np.cos(a.ravel()), np.sin(a.ravel()), np.zeros(a.size)], 1)
    side_v = np.column_stack([center + radius * radial[:, :2], zz.ravel()])
    i, j = np.meshgrid(np.arange(n_ang), np.arange(n_z - 1), indexing="ij")
    p = (i * n_z + j).ravel()
    q = (((i + 1) % n_ang) * n_z + j).ravel()
    side_f = np.concatenate([np.stack([p, q, q + 1], 1), np.stack([p, q + 1, p + 1], 1)])
    rings = max(1, int(np.ceil(radius / step)))
    r = np.repeat(np.arange(1, rings + 1) / rings * radius, n_ang)
    ca = np.tile(ang, rings)
    cap_v = np.vstack([[*center, hi[2]], np.column_stack([center + np.stack([np.cos(ca), np.sin(ca)], 1) * r[:, None],
                                                          np.full(r.size, hi[2])])])
    # fan from the centre to ring 1, then quads between rings k and k+1 (vertex 1 + k*n_ang + a)
    a0 = np.arange(n_ang)
    a1 = (a0 + 1) % n_ang
    cap_f = [np.stack([np.zeros(n_ang, int), 1 + a0, 1 + a1], 1)]
    for k in range(rings - 1):
        inner0, inner1 = 1 + k * n_ang + a0, 1 + k * n_ang + a1
        outer0, outer1 = inner0 + n_ang, inner1 + n_ang
        cap_f += [np.stack([inner0, outer0, outer1], 1), np.stack([inner0, outer1, inner1], 1)]
    return _merge([(side_v, side_f, radial), (cap_v, np.concatenate(cap_f), np.array([0.0, 0.0, 1.0]))])


def solid_mesh(solid: Solid, step: float, room_size: tuple[float, float, float]) -> Mesh:
    """Mesh of a solid without the faces hidden against the floor, a wall or the ceiling."""
    if solid.shape == "cylinder":
        return cylinder_mesh(solid.lo, solid.hi, step)
    touching = [
        ("-z", solid.lo[2] <= 1e-6), ("+z", solid.hi[2] >= room_size[2] - 1e-6),
        ("-x", solid.lo[0] <= 1e-6), ("+x", solid.hi[0] >= room_size[0] - 1e-6),
        ("-y", solid.lo[1] <= 1e-6), ("+y", solid.hi[1] >= room_size[1] - 1e-6),
    ]
    return box_mesh(solid.lo, solid.hi, step, skip=tuple(side for side, hidden in touching if hidden))


def shell_meshes(room: Room, step: float) -> dict[str, Mesh]:
    """Floor, ceiling and walls of the room as inward-facing meshes."""
    w, d, h = room.size
    floor_v, floor_f = grid_patch((0, 0, 0), (w, 0, 0), (0, d, 0), step, (0, 0, 1))
    ceil_v, ceil_f = grid_patch((0, 0, h), (w, 0, 0), (0, d, 0), step, (0, 0, -1))
    walls = box_mesh((0, 0, 0), (w, d, h), step, inward=True, skip=("-z", "+z"))
    return {
        "floor": _merge([(floor_v, floor_f, np.array([0.0, 0.0, 1.0]))]),
        "ceiling": _merge([(ceil_v, ceil_f, np.array([0.0, 0.0, -1.0]))]),
        "wall": walls,
    }


def sample_mesh_surface(mesh: Mesh, density: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points on a mesh (`density` points per m^2) and the unit normal of the face each lies on."""
    tri = mesh.vertices[mesh.faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    n = max(1, int(round(area.sum() * density)))
    face = rng.choice(len(area), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    t = tri[face]
    points = t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])
    normals = cross[face] / np.linalg.norm(cross[face], axis=1, keepdims=True)
    return points, normals


def noisy_colors(rng: np.random.Generator, base, n: int, sigma: float = 8.0) -> np.ndarray:
    """Per-point colours around a base colour (uint8)."""
    return np.clip(np.asarray(base, float) + rng.normal(0, sigma, (n, 3)), 0, 255).round().astype(np.uint8)


# --- ray casting (panoramas) --------------------------------------------------------------------------------------

def raycast(room: Room, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of each ray from `origin` along unit `dirs` (R, 3).

    Returns (t, hit index, normal): hit index -1/-2/-3 = floor/ceiling/wall of the shell, else index into
    `room.solids`; the normal faces the camera side of the surface.
    """
    w, d, h = room.size
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t_lo = (np.zeros(3) - origin) * inv
        t_hi = (np.array([w, d, h]) - origin) * inv
    t_exit_axes = np.maximum(t_lo, t_hi)
    axis = np.argmin(t_exit_axes, axis=1)
    rows = np.arange(len(dirs))
    best_t = t_exit_axes[rows, axis]
    normal = np.zeros_like(dirs)
    normal[rows, axis] = -np.sign(dirs[rows, axis])
    hit = np.where(axis == 2, np.where(dirs[:, 2] < 0, -1, -2), -3)
    for k, solid in enumerate(room.solids):
        if solid.shape == "box":
            t, n = _ray_box(origin, dirs, inv, np.asarray(solid.lo), np.asarray(solid.hi))
        else:
            t, n = _ray_cylinder(origin, dirs, np.asarray(solid.lo), np.asarray(solid.hi))
        closer = t < best_t
        best_t = np.where(closer, t, best_t)
        normal[closer] = n[closer]
        hit = np.where(closer, k, hit)
    return best_t, hit, normal


def _ray_box(origin, dirs, inv, lo, hi):
    with np.errstate(invalid="ignore"):
        t1 = (lo - origin) * inv
        t2 = (hi - origin) * inv
    t_near_axes = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
    t_far_axes = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
    t_near = t_near_axes.max(axis=1)
    t_far = t_far_axes.min(axis=1)
    ok = (t_near <= t_far) & (t_near > 1e-6)
    axis = np.argmax(t_near_axes, axis=1)
    rows = np.arange(len(dirs))
    normal = np.zeros_like(dirs)
    normal[rows, axis] = -np.sign(dirs[rows, axis])
    return np.where(ok, t_near, np.inf), normal


def _ray_cylinder(origin, dirs, lo, hi):
    center = (lo[:2] + hi[:2]) / 2
    radius = min(hi[0] - lo[0], hi[1] - lo[1]) / 2
    oc = origin[:2] - center
    a = (dirs[:, :2] ** 2).sum(1)
    b = 2 * (dirs[:, :2] @ oc)
    c = oc @ oc - radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(disc)) / (2 * a)
        z_side = origin[2] + t_side * dirs[:, 2]
        side_ok = (disc >= 0) & (t_side > 1e-6) & (z_side >= lo[2]) & (z_side <= hi[2])
        t_cap = (hi[2] - origin[2]) / dirs[:, 2]
        p_cap = origin[:2] + t_cap[:, None] * dirs[:, :2]
    cap_ok = (t_cap > 1e-6) & (((p_cap - center) ** 2).sum(1) <= radius**2) & (dirs[:, 2] < 0)
    t = np.full(len(dirs), np.inf)
    t = np.where(side_ok, t_side, t)
    t = np.where(cap_ok & (t_cap < t), t_cap, t)
    hit_p = origin + np.nan_to_num(t, posinf=0)[:, None] * dirs
    radial = np.column_stack([hit_p[:, :2] - center, np.zeros(len(dirs))]) / radius
    normal = np.where((cap_ok & (t == t_cap))[:, None], np.array([0.0, 0.0, 1.0]), radial)
    return t, normal
