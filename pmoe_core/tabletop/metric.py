"""Benchmark scoring (Ravens / LoHoRavens): per-goal pose matches, reward summed to 1, success = all goals and stable.

A goal is met by one of its candidate objects when the xy error < the goal's tolerance (1 cm by default), the yaw
error modulo the object's symmetry < 15 degrees where the goal has a yaw (blocks: pi/2; the block must also stand on
a face, tilted < 15 degrees), and the height error is within tolerance where the task stacks. Goals and objects are
matched one to one (maximum bipartite matching), so interchangeable blocks score in any order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pmoe_core.tabletop.poses import BLOCK_SYMMETRY, Pose, angle_diff, up_axis_yaw_and_tilt
from pmoe_core.tabletop.world import Goal, SceneDesc, TableObject


@dataclass
class Score:
    """reward in [0, 1] (fraction of goals met); `matched[i]` is the object filling goal i, or None."""

    reward: float
    success: bool
    stable: bool
    matched: list[int | None]


def meets(goal: Goal, obj: TableObject, pose: Pose) -> bool:
    """Does `obj`, now at `pose`, fill `goal`?"""
    if obj.id not in goal.candidates:
        return False
    x, y, z = pose.position
    gx, gy, gz = goal.position
    if math.hypot(x - gx, y - gy) >= goal.xy_tol:
        return False
    if goal.z_tol is not None and abs(z - gz) >= goal.z_tol:
        return False
    if goal.yaw is not None and obj.kind == "block":
        yaw, tilt = up_axis_yaw_and_tilt(pose.quaternion)
        if tilt >= goal.yaw_tol or angle_diff(yaw, goal.yaw, BLOCK_SYMMETRY) >= goal.yaw_tol:
            return False
    return True


def _match(options: list[list[int]]) -> list[int | None]:
    """Maximum bipartite matching goal -> object (Kuhn's augmenting paths; a handful of goals)."""
    owner: dict[int, int] = {}

    def augment(goal: int, seen: set[int]) -> bool:
        for obj in options[goal]:
            if obj in seen:
                continue
            seen.add(obj)
            if obj not in owner or augment(owner[obj], seen):
                owner[obj] = goal
                return True
        return False

    for goal in range(len(options)):
        augment(goal, set())
    matched: list[int | None] = [None] * len(options)
    for obj, goal in owner.items():
        matched[goal] = obj
    return matched


def score(desc: SceneDesc, poses: dict[int, Pose], stable: bool = True) -> Score:
    """Score final object poses against the scene's goals."""
    options = [[c for c in g.candidates if meets(g, desc.object(c), poses[c])] for g in desc.goals]
    matched = _match(options)
    met = sum(m is not None for m in matched)
    reward = met / len(desc.goals)
    return Score(reward, bool(stable and met == len(desc.goals)), bool(stable), matched)
