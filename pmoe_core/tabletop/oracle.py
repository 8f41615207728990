"""Pick/place pose sequences: the ground-truth oracle, a random baseline, and their JSON form.

A step is two 6-D gripper poses. The pick pose is the suction cup on the object's top face (its centre for the
oracle); the place pose is where the cup is when the object sits at its target, i.e. the target centre raised by
half the object's height, with the target yaw. As in Ravens the executor descends until contact, so z matters little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError
from pmoe_core.tabletop.poses import Pose
from pmoe_core.tabletop.world import WORKSPACE, SceneDesc, r6
from pmoe_core.schemas import validate

FORMAT = "pmoe-planner-poses"
VERSION = 1


@dataclass(frozen=True)
class Step:
    """One pick-and-place action."""

    pick: Pose
    place: Pose

    def to_json(self) -> dict:
        return {"pick": self.pick.to_json(), "place": self.place.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "Step":
        return cls(Pose.from_json(data["pick"]), Pose.from_json(data["place"]))


def steps_to_json(steps: list[Step]) -> dict:
    return {"format": FORMAT, "version": VERSION, "steps": [s.to_json() for s in steps]}


def steps_from_json(data: dict, source: str | Path | None = None) -> list[Step]:
    """Validate against `schemas/planner_poses.schema.json`, then rebuild the steps."""
    validate(data, "planner_poses", source)
    steps = [Step.from_json(s) for s in data["steps"]]
    for i, step in enumerate(steps):
        for pose in (step.pick, step.place):
            if abs(float(np.linalg.norm(pose.quaternion)) - 1.0) > 1e-3:
                raise FormatError(f"step {i}: quaternion {pose.quaternion} is not unit length", source)
    return steps


def oracle_steps(desc: SceneDesc) -> list[Step]:
    """Fill the goals in order (they are listed bottom-up), each with the first still unused candidate."""
    used: set[int] = set()
    steps = []
    for goal in desc.goals:
        obj = desc.object(next(c for c in goal.candidates if c not in used))
        used.add(obj.id)
        half = obj.height / 2
        x, y, z = obj.position
        pick = Pose.from_yaw((x, y, r6(z + half)), obj.yaw)
        gx, gy, gz = goal.position
        place = Pose.from_yaw((gx, gy, r6(gz + half)), obj.yaw if goal.yaw is None else goal.yaw)
        steps.append(Step(pick, place))
    return steps


def random_steps(desc: SceneDesc, rng: np.random.Generator) -> list[Step]:
    """Baseline: `max_steps` times, pick the top of a random block (where it started) and place it anywhere."""
    blocks = desc.blocks
    (x0, x1), (y0, y1), _ = WORKSPACE
    steps = []
    for _ in range(desc.max_steps):
        obj = blocks[int(rng.integers(len(blocks)))]
        x, y, z = obj.position
        pick = Pose.from_yaw((x, y, z + obj.height / 2), obj.yaw)
        place = Pose.from_yaw(
            (rng.uniform(x0, x1), rng.uniform(y0, y1), obj.height), rng.uniform(-math.pi, math.pi)
        )
        steps.append(Step(pick, place))
    return steps
