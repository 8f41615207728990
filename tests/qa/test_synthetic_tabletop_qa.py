"""Tabletop QA sets: deterministic, answers true of the scene, held-out templates disjoint, refs -> clouds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pmoe_core.errors import BadInput
from pmoe_core.qa.scenes import load_scene_cloud
from pmoe_core.qa.synthetic_tabletop import (
    EVAL_SEED_START,
    NUMBERS,
    TASKS,
    TEMPLATES,
    final_state,
    parse_ref,
    tabletop_qa,
    tabletop_scene,
)
from pmoe_core.tabletop.tasks import make_scene

SEEDS = range(2 * len(TASKS))  # every task, in both states


@pytest.fixture(scope="module")
def train_items():
    return tabletop_qa(SEEDS)


@pytest.fixture(scope="module")
def heldout_items():
    return tabletop_qa(SEEDS, templates="heldout")


def test_deterministic(train_items):
    assert tabletop_qa(SEEDS) == train_items
    assert len({i.qid for i in train_items}) == len(train_items)


def test_every_family_and_task_and_both_states_appear(train_items):
    assert {i.question_type for i in train_items} == {"color", "count", "exist", "support", "relation"}
    assert {parse_ref(i.scene)[0] for i in train_items} == set(TASKS)
    assert {parse_ref(i.scene)[3] for i in train_items} == {True, False}


def test_heldout_templates_are_disjoint_and_change_only_the_wording(train_items, heldout_items):
    for family in TEMPLATES.values():
        train = {name for name, _ in family["train"]} | {text for _, text in family["train"]}
        heldout = {name for name, _ in family["heldout"]} | {text for _, text in family["heldout"]}
        assert not train & heldout
    assert not {i.template for i in train_items} & {i.template for i in heldout_items}
    assert not {i.question for i in train_items} & {i.question for i in heldout_items}
    strip = [(i.qid, i.scene, i.answers, i.question_type) for i in train_items]
    assert strip == [(i.qid, i.scene, i.answers, i.question_type) for i in heldout_items]


def test_heldout_seeds_are_other_scenes():
    train = {i.scene for i in tabletop_qa(range(4))}
    evaluation = {i.scene for i in tabletop_qa(range(EVAL_SEED_START, EVAL_SEED_START + 4))}
    assert not train & evaluation


def _blocks(desc, color=None):
    return [o for o in desc.objects if o.kind == "block" and (color is None or o.color == color)]


def test_count_and_exist_answers_match_the_scene(train_items):
    checked = 0
    for item in train_items:
        desc = tabletop_scene(item.scene)
        if item.question_type == "count":
            m = re.search(r"(?:many|number of|count the) (?:(\w+) )?blocks", item.question)
            color = m.group(1)
            assert item.answers == (NUMBERS[len(_blocks(desc, color))],), item
            checked += 1
        if item.question_type == "exist":
            color, kind = re.search(r"(?:an?|any) (\w+) (block|bowl|zone)", item.question).groups()
            present = any(o.color == color and o.kind == kind for o in desc.objects)
            assert item.answers == ("yes" if present else "no",), item
            checked += 1
    assert checked > 20


def test_tower_answers_follow_the_oracle_order():
    """stack-blocks final state: the goals are the tower levels bottom-up, filled in candidate order."""
    seed = next(s for s in range(0, 40, 2) if TASKS[s % len(TASKS)] == "stack-blocks")
    desc = make_scene("stack-blocks", seed)
    tower = [desc.objects[0].color] + [desc.objects[c].color for c in desc.goals[0].candidates]
    on = {tower[k]: tower[k + 1] for k in range(len(tower) - 1)} | {tower[-1]: None}
    items = [i for i in tabletop_qa([seed]) if i.question_type == "support"]
    assert items
    for item in items:
        color = re.search(r"the (\w+) block", item.question).group(1)
        if re.search(r"what is (on|on top of) the", item.question):
            assert item.answers == (f"{on[color]} block" if on[color] else "nothing",)
        else:  # what is the X block on / below it
            below = {v: k for k, v in on.items() if v}
            assert item.answers == (f"{below[color]} block" if color in below else "table",)


def test_relation_side_answers_match_positions(train_items):
    checked = 0
    for item in train_items:
        if item.template.startswith("side_"):
            desc = tabletop_scene(item.scene)
            a, b = re.findall(r"the ((?:big |small )?\w+ (?:block|bowl|zone))", item.question)
            if item.template == "side_which":  # "which side of the {b} is the {a} on"
                a, b = b, a
            pos = {f"{o.color} {o.kind}": o.position for o in desc.objects}
            pos.update({f"{'big' if o.size > 0.05 else 'small'} {o.color} block": o.position for o in _blocks(desc)})
            assert item.answers == ("left" if pos[a][1] > pos[b][1] else "right",)
            checked += 1
    assert checked >= 5


def test_final_state_moves_only_goal_objects_onto_goal_poses():
    desc = make_scene("put-block-into-matching-bowl", 3)
    final = final_state(desc)
    moved = {o.id for o, f in zip(desc.objects, final.objects) if o.position != f.position}
    assert moved == {g.candidates[0] for g in desc.goals}
    for goal in desc.goals:
        assert final.objects[goal.candidates[0]].position == goal.position


def test_same_question_differs_between_start_and_final_states():
    start = tabletop_scene("tabletop/stack-blocks/seen/0")
    final = tabletop_scene("tabletop/stack-blocks/seen/0/final")
    from pmoe_core.qa.synthetic_tabletop import supporter

    base = start.objects[0]
    assert all(supporter(o, start.objects) is None for o in start.objects)  # every block on the table
    assert sum(supporter(o, final.objects) is not None for o in final.objects) == len(final.objects) - 1
    assert base.position == final.objects[0].position


def test_scene_refs_load_deterministic_clouds_of_the_described_objects():
    ref = "tabletop/stack-blocks/seen/0/final"
    cloud = load_scene_cloud(ref)
    assert np.array_equal(cloud.coord, load_scene_cloud(ref).coord) and cloud.color is not None
    desc = tabletop_scene(ref)
    assert set(np.unique(cloud.segment).tolist()) == {-1} | {o.id for o in desc.objects}
    top = max(desc.objects, key=lambda o: o.position[2])
    assert cloud.coord[cloud.segment == top.id, 2].max() == pytest.approx(top.position[2] + 0.02, abs=0.005)
    start = load_scene_cloud("tabletop/stack-blocks/seen/0")
    assert start.coord[:, 2].max() < 0.05  # nothing stacked before the oracle's steps


@pytest.mark.parametrize("ref", ["tabletop/no-task/seen/1", "tabletop/stack-blocks/seen/x",
                                 "tabletop/stack-blocks/seen/1/done", "tabletop/stack-blocks/mauve/1"])
def test_bad_refs_are_one_line_errors(ref):
    with pytest.raises(BadInput, match="bad tabletop scene"):
        parse_ref(ref)


def test_bad_arguments():
    with pytest.raises(BadInput, match="templates"):
        tabletop_qa([0], templates="test")
    with pytest.raises(BadInput, match="colour split"):
        tabletop_qa([0], split="mauve")


def test_exist_questions_do_not_give_the_answer_away_by_kind():
    """Per kind named, yes and no are equally frequent (bowls exist in one task only)."""
    from collections import Counter

    counts = Counter((re.search(r"(block|bowl|zone)", i.question).group(1), i.answers[0])
                     for i in tabletop_qa(range(70)) if i.question_type == "exist")
    for kind in ("block", "bowl", "zone"):
        assert counts[(kind, "yes")] == counts[(kind, "no")] > 0


def test_exist_stays_balanced_in_the_four_colour_unseen_split():
    answers = [i.answers[0] for i in tabletop_qa(range(100), split="unseen") if i.question_type == "exist"]
    assert answers and answers.count("yes") == answers.count("no")


@pytest.mark.parametrize("task", TASKS)
def test_final_state_is_where_the_simulated_oracle_leaves_the_blocks(task):
    """The final-state scenes are not only the goals: MuJoCo executing the oracle's steps ends within 3 mm of them."""
    from pmoe_core.tabletop.oracle import oracle_steps
    from pmoe_core.tabletop.sim import execute

    for seed in (1, 2):
        desc = make_scene(task, seed)
        rollout = execute(desc, oracle_steps(desc))
        final = final_state(desc)
        assert rollout.stable
        for block in desc.blocks:
            moved = np.subtract(rollout.poses[block.id].position, final.objects[block.id].position)
            assert np.linalg.norm(moved) < 0.003, (task, seed, block)


def test_cached_scene_inputs_are_keyed_by_the_world_version(monkeypatch):
    """Final-state scenes stand at the goals, so a change of the world's goals must not reuse cached inputs."""
    from pmoe_core.qa import data

    spec = data.QASetSpec(tabletop_scenes=3)
    before = spec.scene_key()
    monkeypatch.setattr(data, "WORLD_VERSION", data.WORLD_VERSION + 1)
    assert spec.scene_key() != before
