"""A scene cloud -> the answering model's input: scale-normalised points, each with its object proposal.

Questions come about scenes of two scales: planner-world tabletops (~1 m across, 4 cm blocks) and rooms (~5 m,
0.5 m chairs). Both are put in one frame so one encoder serves both:

- the support is the floor of the cloud (`support_height`: the densest 1 cm slice of z in the lower half of the
  points, the table top or the room's floor), z = 0 there;
- x and y are centred on the cloud's bounding-box centre, and every axis is divided by `scale`, the larger half
  extent in x or y (a 1 m tabletop has scale 0.5, a 5 x 4 m room 2.5): the scene spans [-1, 1] in its longer
  horizontal axis, and a block and a chair are both ~0.1-0.2 units. The scale itself is kept (`QAScene.scale`) and
  given to the model as a token (log scale), so absolute size is not lost.

A cloud wider than `ROOM_WIDTH` is a room: its shell (floor, ceiling, and the walls: points within a few cm of the
xy convex hull) is cut before objects are proposed; a smaller one is a tabletop, where the planner's
foreground rule applies (`objects.foreground_mask`: above the table, or on it in a colour unlike the table's, as a
1 mm coloured zone is). Object proposals are connected components of the remaining points, linked when they are close in 3-D AND
close in colour: unlike the planner's xy-only proposals (objects.segment), a stack of two blocks of different
colours gives two objects, which "what is on the red block?" needs. Thresholds are in metres per scale, set from
the two synthetic worlds (tabletop cameras: +-4 mm depth noise, exact palette colours; room meshes: vertices 7 cm
apart with 3 mm noise, furniture >= 10 cm apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError, cKDTree

from pmoe_core.errors import BadInput
from pmoe_core.planner.objects import FOREGROUND_Z, foreground_mask
from pmoe_core.scene import Scene

ROOM_WIDTH = 2.0  # m: a cloud whose larger horizontal extent exceeds this is a room, else a tabletop


@dataclass(frozen=True)
class ProposalSettings:
    """How objects are cut out of one kind of scene (all lengths in metres)."""

    above: float  # points this far above the support are candidates
    link: float  # 3-D link distance between points of one object
    color_link: float  # largest colour difference (Euclidean, rgb in [0, 1]) between linked points
    min_points: int  # smaller components are dropped (specks)
    wall: float = 0.0  # rooms: points this close to the xy hull are wall; also cut this much below the ceiling


TABLETOP = ProposalSettings(above=FOREGROUND_Z, link=0.012, color_link=0.15, min_points=24)
ROOM = ProposalSettings(above=0.05, link=0.09, color_link=0.2, min_points=6, wall=0.025)


@dataclass(frozen=True)
class QAScene:
    """The model's view of one scene: `points` (N, 7) float32 = normalised xyz, rgb in [0, 1], proposal id (-1 for
    none); `scale` (m per unit) and `origin` (m) undo the normalisation; `kind` is "tabletop" or "room"."""

    points: np.ndarray
    scale: float
    origin: np.ndarray
    kind: str
    objects: int

    def to_model_frame(self, xyz: np.ndarray) -> np.ndarray:
        """A position in the cloud's frame (m) -> the normalised frame (an SQA3D agent position, for one)."""
        return ((np.asarray(xyz, np.float32) - self.origin) / self.scale).astype(np.float32)


def scene_input(scene: Scene, num_points: int, max_objects: int, seed: int = 0, source: str | None = None) -> QAScene:
    """`num_points` encoder points of `scene` (proposal points first, then the rest), normalised as above.

    Deterministic for a given `seed`. Clouds without colour are refused (`require_colour`).
    """
    where = source or scene.name
    require_colour(scene, where)
    coord = np.asarray(scene.coord, np.float64)
    if len(coord) == 0 or not np.isfinite(coord).all():
        raise BadInput("the cloud is empty or has non-finite coordinates", where)
    rgb = np.asarray(scene.color, np.float32) / 255.0
    lo, hi = coord.min(0), coord.max(0)
    floor = support_height(coord[:, 2])
    half = max(float((hi[:2] - lo[:2]).max()) / 2, 1e-3)
    kind = "room" if 2 * half > ROOM_WIDTH else "tabletop"
    settings = ROOM if kind == "room" else TABLETOP
    candidate = candidates(coord, rgb, floor, settings)
    ids = np.full(len(coord), -1, np.int64)
    ids[candidate] = propose(coord[candidate], rgb[candidate], settings, max_objects)
    rng = np.random.default_rng(seed)
    fg = np.flatnonzero(ids >= 0)
    rest = np.flatnonzero(ids < 0)
    take = _draw(rng, len(fg), min(len(fg), num_points))
    pick = np.concatenate([fg[take], rest[_draw(rng, len(rest), num_points - len(take))]]) if len(rest) else \
        fg[_draw(rng, len(fg), num_points)]
    origin = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, floor])
    xyz = (coord[pick] - origin) / half
    points = np.concatenate([xyz, rgb[pick], ids[pick, None]], axis=1).astype(np.float32)
    return QAScene(points, half, origin.astype(np.float32), kind, int(ids.max()) + 1)


def support_height(z: np.ndarray) -> float:
    """The height of the support plane: the median z of the densest 1 cm slice among the lower half of the points.
    A table top or a floor is one flat slab of many points; walls spread over every height, and the ceiling (as
    dense as the floor) is in the upper half."""
    low = z[z <= np.median(z)]
    edges = np.arange(low.min(), low.max() + 0.02, 0.01)
    counts, edges = np.histogram(low, bins=edges)
    k = int(np.argmax(counts))
    near = low[(low >= edges[k] - 0.005) & (low <= edges[k + 1] + 0.005)]
    return float(np.median(near))


def require_colour(scene: Scene, source: str | None = None) -> None:
    """BadInput unless the cloud has per-point colour: colour questions are half the task."""
    if scene.color is None:
        raise BadInput("the cloud has no colour (red/green/blue); 3D QA needs coloured points", source or scene.name)


def candidates(coord: np.ndarray, rgb: np.ndarray, floor: float, settings: ProposalSettings) -> np.ndarray:
    """Indices of points that may belong to objects: a tabletop's foreground (planner/objects.py's rule, measured
    from the support), a room's points above the floor and off its ceiling and walls."""
    if settings.wall <= 0:
        return np.flatnonzero(foreground_mask(coord - [0.0, 0.0, floor], rgb))
    keep = coord[:, 2] > floor + settings.above
    keep &= coord[:, 2] < np.percentile(coord[:, 2], 99) - settings.wall
    keep &= hull_distance(coord[:, :2]) > settings.wall
    return np.flatnonzero(keep)


def hull_distance(xy: np.ndarray) -> np.ndarray:
    """Distance of each xy point to the boundary of the points' convex hull (a room's walls, whatever its yaw)."""
    try:
        hull = ConvexHull(xy)
    except (QhullError, ValueError):  # degenerate (all on a line): no walls to speak of
        return np.full(len(xy), np.inf)
    return -(xy @ hull.equations[:, :2].T + hull.equations[:, 2]).max(axis=1)


def propose(coord: np.ndarray, rgb: np.ndarray, settings: ProposalSettings, max_objects: int) -> np.ndarray:
    """(N,) proposal ids in [0, max_objects), ordered by footprint centre (x, then y); -1 for specks and beyond the
    `max_objects` largest components. Points link when within `link` in 3-D and `color_link` in colour."""
    ids = np.full(len(coord), -1, np.int64)
    if len(coord) == 0 or max_objects == 0:
        return ids
    pairs = cKDTree(coord).query_pairs(settings.link, output_type="ndarray")
    close = np.linalg.norm(rgb[pairs[:, 0]] - rgb[pairs[:, 1]], axis=1) <= settings.color_link
    pairs = pairs[close]
    links = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(coord), len(coord)))
    _, labels = connected_components(links, directed=False)
    counts = np.bincount(labels)
    kept = [c for c in np.argsort(-counts, kind="stable")[:max_objects] if counts[c] >= settings.min_points]
    centre = {c: tuple((coord[labels == c, :2].min(0) + coord[labels == c, :2].max(0)) / 2) for c in kept}
    for slot, c in enumerate(sorted(kept, key=lambda c: centre[c])):
        ids[labels == c] = slot
    return ids


def _draw(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """n indices into range(size): a sorted sample without replacement, or all of them padded with repeats."""
    if n <= 0 or size == 0:
        return np.zeros(0, np.int64)
    if size >= n:
        return np.sort(rng.choice(size, n, replace=False))
    return np.concatenate([np.arange(size), rng.choice(size, n - size, replace=True)])
