"""The mirrored world: the reflection of an episode is an episode of the same task, in mirrored words."""

from __future__ import annotations

import pytest

from pmoe_core.planner.demos import canonical_steps
from pmoe_core.tabletop.episodes import run_episode
from pmoe_core.tabletop.mirror import mirror_scene, mirror_words
from pmoe_core.tabletop.tasks import POSITIONS, TASKS, make_scene


def test_words_swap_whole_words_and_keep_their_case():
    assert mirror_words("the top left corner") == "the top right corner"
    assert mirror_words("Left side. RIGHT side, Right.") == "Right side. LEFT side, Left."
    assert mirror_words("the bright block, what is leftover, righteous") == "the bright block, what is leftover, righteous"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_mirror_of_an_episode_is_solved_by_its_own_oracle(task):
    for seed in range(3):
        desc = make_scene(task, seed, phrasing="train")
        mirrored = mirror_scene(desc)
        assert run_episode(mirrored, lambda _d, m=mirrored: canonical_steps(m)).success, (task, seed)
        assert [o.position[1] for o in mirrored.objects] == [-o.position[1] for o in desc.objects]
        again = mirror_scene(mirrored)
        assert again.objects == desc.objects and again.goals == desc.goals and again.instruction == desc.instruction


def test_a_named_position_moves_to_its_mirror_image():
    for seed in range(40):
        desc = make_scene("move-block-to-absolute-position", seed)
        mirrored = mirror_scene(desc)
        name = mirrored.words["position"]
        assert name in POSITIONS and name in mirrored.instruction
        assert mirrored.goals[0].position[:2] == pytest.approx(POSITIONS[name])
        if "left" in desc.words["position"]:
            assert name == desc.words["position"].replace("left", "right")
