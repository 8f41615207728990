"""The tabletop scene description: objects, their poses, the instruction and the goals, as plain JSON-able data.

Conventions (LoHoRavens): workspace x in [0.25, 0.75] m, y in [-0.5, 0.5] m, z up from the table top at z = 0.
"Left" is +y and "top" (far from the robot) is +x. An object's `position` is the centre of its bounding box, so a
small block resting on the table has z = 0.02. Yaw is the heading of the object's x axis about world z.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.jsonio import read_json
from pmoe_core.tabletop.poses import Pose
from pmoe_core.schemas import validate

FORMAT = "pmoe-planner-scene"
VERSION = 1

WORKSPACE = ((0.25, 0.75), (-0.5, 0.5), (0.0, 0.3))

# Ravens' colour values (utils.COLORS), in 0-255.
COLORS: dict[str, tuple[int, int, int]] = {
    "blue": (78, 121, 167),
    "red": (255, 87, 89),
    "green": (89, 169, 79),
    "yellow": (237, 201, 72),
    "brown": (156, 117, 95),
    "gray": (186, 176, 172),
    "cyan": (118, 183, 178),
    "orange": (242, 142, 43),
    "purple": (176, 122, 161),
    "pink": (255, 157, 167),
    "white": (255, 255, 255),
}
TABLE_COLOR = (96, 84, 72)
# CLIPort colour split: models train on "seen" colours and are evaluated on "unseen" ones too.
SPLITS: dict[str, tuple[str, ...]] = {
    "seen": ("blue", "red", "green", "yellow", "brown", "gray", "cyan"),
    "unseen": ("orange", "purple", "pink", "white"),
}

BLOCK_SIZES = {"small": 0.04, "big": 0.06}
BOWL_RADIUS = 0.06  # outer
BOWL_INNER_RADIUS = 0.054
BOWL_HEIGHT = 0.035
BOWL_FLOOR = 0.005
ZONE_THICKNESS = 0.001

Kind = Literal["block", "bowl", "zone"]


@dataclass(frozen=True)
class TableObject:
    """One object on the table. `size` is the block edge, the bowl's outer diameter, or the zone's side."""

    id: int
    kind: Kind
    color: str
    size: float
    position: tuple[float, float, float]
    yaw: float

    @property
    def pose(self) -> Pose:
        return Pose.from_yaw(self.position, self.yaw)

    @property
    def height(self) -> float:
        return {"block": self.size, "bowl": BOWL_HEIGHT, "zone": ZONE_THICKNESS}[self.kind]

    @property
    def footprint_radius(self) -> float:
        """Radius of a disc covering the object seen from above (used to keep objects apart)."""
        return self.size / 2 if self.kind == "bowl" else self.size * math.sqrt(2) / 2

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLORS[self.color]


@dataclass(frozen=True)
class Goal:
    """A target pose that any one of `candidates` (object ids) must reach.

    Checks: xy distance < xy_tol; |z - target z| < z_tol when z_tol is set (stacking); yaw error modulo the object's
    symmetry < yaw_tol when yaw is set (None = the target is rotation-free, e.g. inside a bowl).
    """

    candidates: tuple[int, ...]
    position: tuple[float, float, float]
    yaw: float | None = None
    xy_tol: float = 0.01
    z_tol: float | None = None
    yaw_tol: float = math.radians(15)


@dataclass
class SceneDesc:
    """Everything needed to build, observe, execute and score one episode.

    `words` are what the instruction names, canonical and lower case ({"color": "gray", "position": "center"}; the
    text may say "GREY" or "centre"); `phrasing` the set it was worded from (tabletop/phrasing.py). Files written
    before either existed load with {} and "template", the only phrasing there was.
    """

    task: str
    seed: int
    split: str
    instruction: str
    objects: list[TableObject]
    goals: list[Goal]
    max_steps: int
    words: dict[str, str] = field(default_factory=dict)
    phrasing: str = "template"

    def object(self, object_id: int) -> TableObject:
        return self.objects[object_id]

    @property
    def blocks(self) -> list[TableObject]:
        return [o for o in self.objects if o.kind == "block"]

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "task": self.task,
            "seed": self.seed,
            "split": self.split,
            "instruction": self.instruction,
            "words": dict(self.words),
            "phrasing": self.phrasing,
            "max_steps": self.max_steps,
            "workspace": [list(r) for r in WORKSPACE],
            "objects": [
                {
                    "id": o.id,
                    "kind": o.kind,
                    "color": o.color,
                    "rgb": list(o.rgb),
                    "size": o.size,
                    "position": list(o.position),
                    "yaw": o.yaw,
                }
                for o in self.objects
            ],
            "goals": [
                {
                    "candidates": list(g.candidates),
                    "position": list(g.position),
                    "yaw": g.yaw,
                    "xy_tol": g.xy_tol,
                    "z_tol": g.z_tol,
                    "yaw_tol": g.yaw_tol,
                }
                for g in self.goals
            ],
        }

    @classmethod
    def from_json(cls, data: dict, source: str | Path | None = None) -> "SceneDesc":
        """Validate against `schemas/planner_scene.schema.json`, then rebuild; FormatError names `source`."""
        validate(data, "planner_scene", source)
        objects = [
            TableObject(o["id"], o["kind"], o["color"], o["size"], tuple(o["position"]), o["yaw"])
            for o in data["objects"]
        ]
        if [o.id for o in objects] != list(range(len(objects))):
            raise FormatError("object ids must be 0..n-1 in order", source)
        goals = [
            Goal(tuple(g["candidates"]), tuple(g["position"]), g["yaw"], g["xy_tol"], g["z_tol"], g["yaw_tol"])
            for g in data["goals"]
        ]
        if any(c >= len(objects) for g in goals for c in g.candidates):
            raise FormatError("a goal names an object id that does not exist", source)
        return cls(
            data["task"], data["seed"], data["split"], data["instruction"], objects, goals, data["max_steps"],
            dict(data.get("words", {})), data.get("phrasing", "template"),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "SceneDesc":
        path = Path(path)
        if not path.is_file():
            raise MissingFile("scene description not found", path)
        return cls.from_json(read_json(path), path)


def r6(v: float) -> float:
    """Round to the micrometre so a description survives a JSON round trip bit for bit."""
    return round(float(v), 6)


class Placer:
    """Rejection sampler of non-overlapping object positions inside the workspace (deterministic given `rng`)."""

    MARGIN = 0.015  # free gap between footprints, so the suction cup and falling blocks do not hit neighbours

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.discs: list[tuple[float, float, float]] = []  # x, y, radius

    def reserve(self, x: float, y: float, radius: float) -> None:
        """Keep a disc free (e.g. an absolute target position)."""
        self.discs.append((x, y, radius))

    def free(self, x: float, y: float, radius: float) -> bool:
        return all(math.hypot(x - a, y - b) >= radius + r + self.MARGIN for a, b, r in self.discs)

    def sample(self, radius: float, tries: int = 2000) -> tuple[float, float]:
        (x0, x1), (y0, y1), _ = WORKSPACE
        for _ in range(tries):
            x = self.rng.uniform(x0 + radius, x1 - radius)
            y = self.rng.uniform(y0 + radius, y1 - radius)
            if self.free(x, y, radius):
                self.reserve(x, y, radius)
                return r6(x), r6(y)
        raise RuntimeError(f"could not place an object of radius {radius} m after {tries} tries")


def new_object(placer: Placer, objects: list[TableObject], kind: Kind, color: str, size: float) -> TableObject:
    """Place a new object at a free spot with a random yaw and append it to `objects`."""
    probe = TableObject(len(objects), kind, color, size, (0.0, 0.0, 0.0), 0.0)
    x, y = placer.sample(probe.footprint_radius)
    yaw = r6(placer.rng.uniform(-math.pi, math.pi)) if kind != "bowl" else 0.0
    obj = TableObject(len(objects), kind, color, r6(size), (x, y, r6(probe.height / 2)), yaw)
    objects.append(obj)
    return obj
