"""MJCF of a scene description: the one MuJoCo model that both the simulator and the observer use.

Blocks are free bodies (wood: 600 kg/m^3, so 38 g small / 130 g big; friction 0.8). Bowls and zones are fixtures
welded to the table: a bowl is a floor disc and a ring of box walls, a zone a 1 mm coloured patch with no collision.
Bodies are named `obj<id>`, so body id -> object id is a name lookup.
"""

from __future__ import annotations

import math

from pmoe_core.tabletop.world import BOWL_FLOOR, BOWL_HEIGHT, BOWL_INNER_RADIUS, TABLE_COLOR, SceneDesc, TableObject

TIMESTEP = 0.002
BLOCK_DENSITY = 600.0
FRICTION = "0.8 0.005 0.0001"
BOWL_WALLS = 16


def _rgba(rgb: tuple[int, int, int]) -> str:
    return " ".join(f"{c / 255:.4f}" for c in rgb) + " 1"


def _quat_wxyz(yaw: float) -> str:
    return f"{math.cos(yaw / 2):.9f} 0 0 {math.sin(yaw / 2):.9f}"


def _block(o: TableObject) -> str:
    h = o.size / 2
    x, y, z = o.position
    return (
        f'<body name="obj{o.id}" pos="{x} {y} {z}" quat="{_quat_wxyz(o.yaw)}"><freejoint/>'
        f'<geom type="box" size="{h} {h} {h}" density="{BLOCK_DENSITY}" friction="{FRICTION}" rgba="{_rgba(o.rgb)}"/>'
        "</body>"
    )


def _bowl(o: TableObject) -> str:
    x, y, _ = o.position
    outer = o.size / 2
    mid, half_t = (outer + BOWL_INNER_RADIUS) / 2, (outer - BOWL_INNER_RADIUS) / 2
    half_len = mid * math.tan(math.pi / BOWL_WALLS) + half_t  # walls overlap at the corners: no gaps
    rgba = _rgba(o.rgb)
    walls = "".join(
        f'<geom type="box" size="{half_t} {half_len:.6f} {BOWL_HEIGHT / 2}" rgba="{rgba}" friction="{FRICTION}" '
        f'pos="{mid * math.cos(a):.6f} {mid * math.sin(a):.6f} {BOWL_HEIGHT / 2}" quat="{_quat_wxyz(a)}"/>'
        for a in (2 * math.pi * k / BOWL_WALLS for k in range(BOWL_WALLS))
    )
    floor = (
        f'<geom type="cylinder" size="{BOWL_INNER_RADIUS + half_t} {BOWL_FLOOR / 2}" pos="0 0 {BOWL_FLOOR / 2}" '
        f'rgba="{rgba}" friction="{FRICTION}"/>'
    )
    return f'<body name="obj{o.id}" pos="{x} {y} 0">{floor}{walls}</body>'


def _zone(o: TableObject) -> str:
    x, y, z = o.position
    h = o.size / 2
    return (
        f'<body name="obj{o.id}" pos="{x} {y} {z}" quat="{_quat_wxyz(o.yaw)}">'
        f'<geom type="box" size="{h} {h} {o.height / 2}" contype="0" conaffinity="0" rgba="{_rgba(o.rgb)}"/></body>'
    )


BUILDERS = {"block": _block, "bowl": _bowl, "zone": _zone}


def scene_mjcf(desc: SceneDesc) -> str:
    """The MJCF XML string of `desc`."""
    bodies = "".join(BUILDERS[o.kind](o) for o in desc.objects)
    return (
        f'<mujoco model="{desc.task}-{desc.seed}">'
        f'<option timestep="{TIMESTEP}" cone="elliptic" impratio="10"/>'
        "<worldbody>"
        f'<geom name="table" type="plane" size="0 0 0.05" rgba="{_rgba(TABLE_COLOR)}" friction="{FRICTION}"/>'
        f"{bodies}</worldbody></mujoco>"
    )
