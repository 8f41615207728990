"""Phrasing sets: disjoint train/held-out frames, determinism, every task in every set, old scene files still load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pmoe_core.errors import BadInput
from pmoe_core.schemas import validate
from pmoe_core.tabletop.lexicon import colour_words_in
from pmoe_core.tabletop.phrasing import (
    PHRASINGS,
    WORDINGS,
    british,
    fill,
    frames,
    normalise,
)
from pmoe_core.tabletop.tasks import TASKS, make_scene
from pmoe_core.tabletop.world import SPLITS, SceneDesc

DATA = Path(__file__).parent / "data"


def test_every_task_has_a_wording():
    assert set(WORDINGS) == set(TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_train_and_heldout_frames_are_disjoint(task):
    train, heldout = frames(task, "train"), frames(task, "heldout")
    assert frames(task, "template") <= train
    assert len(heldout) >= 20 and len(train) >= 50
    assert not train & heldout


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_every_instruction_comes_from_its_set_and_names_its_words(task, phrasing):
    allowed = frames(task, phrasing)
    for seed in range(40):
        desc = make_scene(task, seed, "seen", phrasing)
        assert desc.phrasing == phrasing
        spelled = {k: british(v) for k, v in desc.words.items()}
        filled = {normalise(fill(f, w)) for f in allowed for w in (desc.words, spelled)}
        assert normalise(desc.instruction) in filled, desc.instruction
        if "color" in desc.words:
            named = [c.name for c in colour_words_in(desc.instruction)]
            assert named and named[0] in (desc.words["color"], {"gray": "grey"}.get(desc.words["color"])), named


@pytest.mark.parametrize("phrasing", ("train", "heldout"))
def test_sets_vary_case_punctuation_and_words(phrasing):
    texts = [make_scene(t, s, "seen", phrasing).instruction for t in TASKS for s in range(30)]
    assert any(t.isupper() for t in texts) and any(t[:1].isupper() and not t.isupper() for t in texts)
    assert any(t.endswith("!") for t in texts) and any(t.endswith(".") for t in texts)
    assert any("colour" in t.lower() or "grey" in t.lower() for t in texts)
    words = {w for t in texts for w in normalise(t).split()}
    expected = {"cube", "please", "thanks"} if phrasing == "train" else {"box", "kindly", "basin", "shade"}
    assert expected <= words
    never = {"box", "piece", "kindly", "basin", "shade", "heap"} if phrasing == "train" else {"cube", "dish", "area"}
    assert not never & words


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_same_arguments_same_scene_and_phrasings_share_the_scene(phrasing):
    a = make_scene("move-block-to-absolute-position", 7, "unseen", phrasing)
    assert a.dumps() == make_scene("move-block-to-absolute-position", 7, "unseen", phrasing).dumps()
    template = make_scene("move-block-to-absolute-position", 7, "unseen")
    assert a.objects == template.objects and a.goals == template.goals and a.words == template.words


def test_heldout_instructions_differ_from_the_template_ones():
    pairs = [(make_scene(t, s).instruction, make_scene(t, s, phrasing="heldout").instruction)
             for t in TASKS for s in range(10)]
    assert all(normalise(a) != normalise(b) for a, b in pairs)


def test_template_phrasing_reproduces_the_scenes_made_before_phrasings_existed():
    """Scenes (instruction and every other field) of the first planner world, recorded before this module."""
    recorded = json.loads((DATA / "template_scenes_v1.json").read_text())
    for key, expected in recorded.items():
        task, split, seed = key.split("/")
        data = make_scene(task, int(seed), split).to_json()
        assert data["instruction"] == expected["instruction"], key
        data.pop("words"), data.pop("phrasing")
        assert hashlib.sha256(json.dumps(data, indent=1, sort_keys=True).encode()).hexdigest() == expected["sha256"]


def test_old_scene_json_loads_with_empty_words(tmp_path):
    old = json.loads((DATA / "scene_v1_move_block.json").read_text())
    assert "words" not in old
    desc = SceneDesc.load(DATA / "scene_v1_move_block.json")
    assert desc.words == {} and desc.phrasing == "template"
    new = make_scene("move-block-to-absolute-position", 3, "unseen")
    assert desc.objects == new.objects and desc.instruction == new.instruction
    validate(new.to_json(), "planner_scene")
    assert SceneDesc.from_json(json.loads(new.dumps())).words == new.words == {"color": new.words["color"],
                                                                             "position": new.words["position"]}


@pytest.mark.parametrize("split", SPLITS)
def test_words_name_the_scene(split):
    for task in TASKS:
        desc = make_scene(task, 4, split, "train")
        if "color" in desc.words:
            assert desc.words["color"] in {o.color for o in desc.objects}


def test_unknown_phrasing_is_one_clear_error():
    with pytest.raises(BadInput, match="unknown phrasing 'poetic'; known: template, train, heldout"):
        make_scene("stack-blocks", 0, phrasing="poetic")
