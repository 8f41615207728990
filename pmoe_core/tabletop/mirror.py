"""The planner world seen in a mirror: y -> -y, yaw -> -yaw, "left" <-> "right" in the words.

The table, workspace and cameras are symmetric about y = 0 (world.WORKSPACE, observe.CAMERAS), so the mirror of
an episode is another episode of the same task, told in the mirrored words. Training on both halves gives every
"left" demonstration its "right" twin; one run without them read "left" inside "top left corner" as "right" in
half of such episodes (docs/planner-world.md).
"""

from __future__ import annotations

import dataclasses
import re

from pmoe_core.tabletop.world import Goal, SceneDesc, TableObject

_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)
_SWAP = {"left": "right", "right": "left"}


def mirror_words(text: str) -> str:
    """`text` with the whole words "left" and "right" swapped, case kept ("Left" -> "Right"; "bright" untouched)."""

    def swap(match: re.Match) -> str:
        word = match.group(0)
        other = _SWAP[word.lower()]
        if word.isupper():
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return _SIDE.sub(swap, text)


def _mirror_object(obj: TableObject) -> TableObject:
    x, y, z = obj.position
    return dataclasses.replace(obj, position=(x, -y, z), yaw=-obj.yaw)


def _mirror_goal(goal: Goal) -> Goal:
    x, y, z = goal.position
    return dataclasses.replace(goal, position=(x, -y, z), yaw=None if goal.yaw is None else -goal.yaw)


def mirror_scene(desc: SceneDesc) -> SceneDesc:
    """The mirrored episode: objects and goals reflected in y = 0, the instruction and named words mirrored."""
    return dataclasses.replace(
        desc,
        instruction=mirror_words(desc.instruction),
        objects=[_mirror_object(o) for o in desc.objects],
        goals=[_mirror_goal(g) for g in desc.goals],
        words={k: mirror_words(v) for k, v in desc.words.items()},
    )
