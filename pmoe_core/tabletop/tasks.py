"""Task families in the LoHoRavens spirit: each builds objects, the goals and the words its instruction names (a
colour, a position) from a random generator; `phrasing.py` turns those words into the instruction.

Towers are built on a base the instruction names (a block or a zone), so every goal is an absolute pose that the
instruction determines; goals that several blocks could fill list them all as candidates (any order scores).
"""

from __future__ import annotations

import math
import zlib
from typing import Callable

import numpy as np

from pmoe_core.errors import BadInput
from pmoe_core.tabletop.phrasing import PHRASINGS, check_phrasing, render
from pmoe_core.tabletop.world import (
    BLOCK_SIZES,
    BOWL_FLOOR,
    BOWL_INNER_RADIUS,
    SPLITS,
    Goal,
    Placer,
    SceneDesc,
    TableObject,
    new_object,
    r6,
)

SMALL, BIG = BLOCK_SIZES["small"], BLOCK_SIZES["big"]
# Bumped when a task's scenes or goals change for the same (task, seed, split): caches of rendered scenes key on it.
# 2: the pyramid's row along the zone's edge nearest x.
WORLD_VERSION = 2
Z_TOL = 0.01
# A block is "in" a bowl when its footprint disc lies inside the bowl's inner wall.
BOWL_XY_TOL = round(BOWL_INNER_RADIUS - SMALL * math.sqrt(2) / 2, 3)

Built = tuple[list[TableObject], list[Goal], dict[str, str]]  # objects, goals, named words ({"color": ...})
TaskFn = Callable[[np.random.Generator, tuple[str, ...]], Built]


def _colors(rng: np.random.Generator, palette: tuple[str, ...], n: int) -> list[str]:
    """`n` colours, distinct while the palette allows (the unseen split has only four)."""
    return [str(c) for c in rng.choice(palette, size=n, replace=n > len(palette))]


def _top(obj: TableObject) -> float:
    """Height of the surface a block stacked on `obj` rests on (zones are flat patches on the table)."""
    return 0.0 if obj.kind == "zone" else obj.position[2] + obj.height / 2


def _tower(base: TableObject, levels: list[tuple[tuple[int, ...], float]]) -> list[Goal]:
    """Goals of a vertical stack on `base`: one per level, (candidates, block size) from the bottom up."""
    z = _top(base)
    goals = []
    for candidates, size in levels:
        goals.append(Goal(candidates, (base.position[0], base.position[1], r6(z + size / 2)), base.yaw, z_tol=Z_TOL))
        z += size
    return goals


def stack_blocks(rng: np.random.Generator, palette: tuple[str, ...]) -> Built:
    placer, objects = Placer(rng), []
    blocks = [new_object(placer, objects, "block", c, SMALL) for c in _colors(rng, palette, int(rng.integers(3, 5)))]
    base, rest = blocks[0], tuple(b.id for b in blocks[1:])
    words = {"color": base.color}
    return objects, _tower(base, [(rest, SMALL)] * len(rest)), words


def stack_blocks_of_same_color(rng: np.random.Generator, palette: tuple[str, ...]) -> Built:
    placer, objects, goals = Placer(rng), [], []
    colors = _colors(rng, palette, 3)
    for color in colors[:2]:
        base = new_object(placer, objects, "block", color, BIG)
        small = tuple(new_object(placer, objects, "block", color, SMALL).id for _ in range(int(rng.integers(1, 3))))
        goals += _tower(base, [(small, SMALL)] * len(small))
    new_object(placer, objects, "block", colors[2], SMALL)  # a distractor that stays where it is
    words: dict[str, str] = {}
    return objects, goals, words


def stack_blocks_in_size_order(rng: np.random.Generator, palette: tuple[str, ...]) -> Built:
    placer, objects = Placer(rng), []
    n_small = int(rng.integers(1, 3))
    colors = _colors(rng, palette, 2 + n_small)
    base, other = (new_object(placer, objects, "block", c, BIG) for c in colors[:2])
    small = tuple(new_object(placer, objects, "block", c, SMALL).id for c in colors[2:])
    words = {"color": base.color}
    return objects, _tower(base, [((other.id,), BIG)] + [(small, SMALL)] * len(small)), words


PYRAMID = ((-0.05, 0.02), (0.0, 0.02), (0.05, 0.02), (-0.025, 0.06), (0.025, 0.06), (0.0, 0.10))  # (zone-frame x, z)


def row_yaw(zone_yaw: float) -> float:
    """The pyramid's row direction: the square zone's edge nearest the table's x axis, in [-pi/4, pi/4).

    A square looks the same after a quarter turn, so the zone's own yaw is not observable; its yaw modulo a quarter
    turn is (what perception measures), and a goal must be a function of what can be seen."""
    return (zone_yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4


def stack_block_pyramid(rng: np.random.Generator, palette: tuple[str, ...]) -> Built:
    placer, objects = Placer(rng), []
    zone = new_object(placer, objects, "zone", _colors(rng, palette, 1)[0], 0.15)
    blocks = tuple(new_object(placer, objects, "block", c, SMALL).id for c in _colors(rng, palette, 6))
    yaw = row_yaw(zone.yaw)
    cos, sin = math.cos(yaw), math.sin(yaw)
    x0, y0, _ = zone.position
    goals = [
        Goal(blocks, (r6(x0 + u * cos), r6(y0 + u * sin), z), r6(yaw), z_tol=Z_TOL)
        for u, z in PYRAMID
    ]
    words = {"color": zone.color}
    return objects, goals, words


def put_block_into_matching_bowl(rng: np.random.Generator, palette: tuple[str, ...]) -> Built:
    placer, objects, goals = Placer(rng), [], []
    n_bowls = int(rng.integers(2, 4))
    colors = _colors(rng, palette, min(n_bowls + 1, len(palette)))
    bowls = [new_object(placer, objects, "bowl", c, 2 * 0.06) for c in colors[:n_bowls]]
    for bowl in bowls:
        block = new_object(placer, objects, "block", bowl.color, SMALL)
        z = r6(BOWL_FLOOR + SMALL / 2)
        goals.append(Goal((block.id,), (bowl.position[0], bowl.position[1], z), None, BOWL_XY_TOL, Z_TOL))
    for color in colors[n_bowls:]:
        new_object(placer, objects, "block", color, SMALL)  # no bowl of its colour: it stays
    words: dict[str, str] = {}
    return objects, goals, words


def stack_all_blocks_on_a_zone(rng: np.random.Generator, palette: tuple[str, ...]) -> Built:
    placer, objects = Placer(rng), []
    zone = new_object(placer, objects, "zone", _colors(rng, palette, 1)[0], 0.12)
    blocks = tuple(new_object(placer, objects, "block", c, SMALL).id for c in _colors(rng, palette, 3))
    words = {"color": zone.color}
    return objects, _tower(zone, [(blocks, SMALL)] * len(blocks)), words


# Named table positions: "top" is far from the robot (+x), "left" is +y.
POSITIONS = {
    "top left corner": (0.65, 0.35),
    "top side": (0.65, 0.0),
    "top right corner": (0.65, -0.35),
    "left side": (0.5, 0.35),
    "center": (0.5, 0.0),
    "right side": (0.5, -0.35),
    "bottom left corner": (0.35, 0.35),
    "bottom side": (0.35, 0.0),
    "bottom right corner": (0.35, -0.35),
}


def move_block_to_absolute_position(rng: np.random.Generator, palette: tuple[str, ...]) -> Built:
    placer, objects = Placer(rng), []
    name = list(POSITIONS)[int(rng.integers(len(POSITIONS)))]
    x, y = POSITIONS[name]
    placer.reserve(x, y, SMALL * math.sqrt(2) / 2)
    colors = _colors(rng, palette, int(rng.integers(2, 4)))
    target = new_object(placer, objects, "block", colors[0], SMALL)
    for color in colors[1:]:
        new_object(placer, objects, "block", color, SMALL)
    words = {"color": target.color, "position": name}
    return objects, [Goal((target.id,), (x, y, SMALL / 2), None, z_tol=Z_TOL)], words


TASKS: dict[str, TaskFn] = {
    "stack-blocks": stack_blocks,
    "stack-blocks-of-same-color": stack_blocks_of_same_color,
    "stack-blocks-in-size-order": stack_blocks_in_size_order,
    "stack-block-pyramid": stack_block_pyramid,
    "put-block-into-matching-bowl": put_block_into_matching_bowl,
    "stack-all-blocks-on-a-zone": stack_all_blocks_on_a_zone,
    "move-block-to-absolute-position": move_block_to_absolute_position,
}
ALIASES = {"put-blocks-in-zone": "stack-all-blocks-on-a-zone"}


def task_name(name: str) -> str:
    """The canonical task name, or BadInput listing the known ones."""
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise BadInput(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return name


def make_scene(task: str, seed: int, split: str = "seen", phrasing: str = "template") -> SceneDesc:
    """The scene of episode (`task`, `seed`, `split`) with its instruction worded from `phrasing` (see phrasing.py):
    the same arguments always give the identical description.

    Objects and goals do not depend on `phrasing` (a phrasing is drawn last, and "train"/"heldout" from their own
    generator), so the three phrasings of one episode are the same scene told in other words.
    """
    task = task_name(task)
    if split not in SPLITS:
        raise BadInput(f"unknown colour split {split!r}; known: {', '.join(SPLITS)}")
    check_phrasing(phrasing)
    if seed < 0:
        raise BadInput(f"seed must be >= 0, got {seed}")
    key = [int(seed), zlib.crc32(task.encode()), list(SPLITS).index(split)]
    rng = np.random.default_rng(key)
    objects, goals, words = TASKS[task](rng, SPLITS[split])
    if phrasing != "template":
        rng = np.random.default_rng([*key, PHRASINGS.index(phrasing)])
    instruction = render(task, words, phrasing, rng)
    n_blocks = sum(o.kind == "block" for o in objects)
    return SceneDesc(task, int(seed), split, instruction, objects, goals, max_steps=n_blocks + 2, words=words,
                     phrasing=phrasing)
