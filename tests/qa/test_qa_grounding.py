"""The room side of the answering model (issue #21): each room proposal's annotated kind (the kind head's
targets), the kinds a question names (the noun head's), the situated agent's view of each object, and the checkpoint
designs this brings (a text-only baseline of design 2 still loads: designs 3 and 4 changed the scene side only), and
design 4's anchor (the object the question names) with each object's place relative to it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pmoe_core.engine.checkpoint import load_checkpoint, save_checkpoint
from pmoe_core.errors import FormatError
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.qa.data import QASetSpec, load_set, rooms_folder
from pmoe_core.qa.model import (
    QAModelConfig,
    egocentric,
    find_anchor,
    relative_to_anchor,
)
from pmoe_core.qa.synthetic_rooms import OBJECT_NOUNS, question_nouns, room_objects
from pmoe_core.qa.train import QATrainConfig, load_qa_model, train_qa


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("qa-cache"))


@pytest.fixture(scope="module")
def features():
    return TextFeatures(QAModelConfig.tiny().text)


def test_the_kind_head_has_one_class_per_object_noun():
    assert QAModelConfig().object_kinds == QAModelConfig.tiny().object_kinds == len(OBJECT_NOUNS)


def test_question_nouns_name_whole_words_singular_or_plural():
    def named(q):
        return [OBJECT_NOUNS[i] for i in np.flatnonzero(question_nouns(q))]

    assert named("how many chairs are in the room?") == ["chair"]
    assert named("is the trash can on my left or on my right?") == ["trash can"]
    assert named("what is next to the bookshelf?") == ["bookshelf"]  # not "shelves", not "book"
    assert named("how many shelves are there in the room?") == ["shelves"]
    assert named("what is on my left?") == [] and named("is there a red bowl?") == []


def test_room_proposals_carry_their_annotated_kind(cache):
    cfg = QAModelConfig.tiny()
    data = load_set(QASetSpec(rooms=6, room_split="train", num_points=cfg.num_points, max_objects=cfg.max_objects),
                    cache)
    root = rooms_folder(6, 0, cache)
    assert set(data.object_nouns) == set(data.scenes)
    for ref, kinds in data.object_nouns.items():
        scene = data.scenes[ref]
        annotated = {o.noun for o in room_objects(root, ref)}
        named = {OBJECT_NOUNS[k] for k in kinds if k >= 0}
        assert named <= annotated and len(named) >= min(cfg.max_objects, scene.objects) // 2
        assert (kinds[scene.objects:] == -1).all()  # empty slots have no kind
        for slot in np.flatnonzero(kinds >= 0):  # the labelled proposal lies within its object's box
            xy = scene.points[scene.points[:, 6] == slot, :2] * scene.scale + scene.origin[:2]
            centre = (xy.min(0) + xy.max(0)) / 2
            boxes = [o for o in room_objects(root, ref) if o.noun == OBJECT_NOUNS[kinds[slot]]]
            assert any(o.lo[0] - 0.1 <= centre[0] <= o.hi[0] + 0.1 and o.lo[1] - 0.1 <= centre[1] <= o.hi[1] + 0.1
                       for o in boxes)
    rows = list(range(len(data)))
    targets = data.targets(rows, cfg.max_objects)
    assert targets.kinds.shape == (len(rows), cfg.max_objects) and targets.asked.shape == (len(rows), len(OBJECT_NOUNS))
    assert targets.asked.sum() > 0
    again = load_set(QASetSpec(rooms=6, room_split="train", num_points=cfg.num_points, max_objects=cfg.max_objects),
                     cache)  # read back from the cache: the same kinds
    assert all(np.array_equal(again.object_nouns[r], k) for r, k in data.object_nouns.items())


def test_egocentric_view_of_the_agent():
    yaw = math.pi / 2  # facing +y
    agent = torch.tensor([[1.0, 1.0, 0.0, math.cos(yaw), math.sin(yaw)]])
    centres = torch.tensor([[[1.0, 3.0, 0.5], [0.0, 1.0, 0.0], [2.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    view = egocentric(centres, agent)[0]
    ahead, left, dist = view[:, 0], view[:, 1], view[:, 2]
    torch.testing.assert_close(ahead, torch.tensor([2.0, 0.0, 0.0, -1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(left, torch.tensor([0.0, 1.0, -1.0, 0.0]), atol=1e-6, rtol=0)  # -x is on the left
    torch.testing.assert_close(dist, torch.tensor([2.0, 1.0, 1.0, 1.0]))
    torch.testing.assert_close(view[:, 3] ** 2 + view[:, 4] ** 2, torch.ones(4))


def test_the_anchor_is_the_named_object_and_others_are_placed_from_it():
    """Worked by hand: three objects (and one non-object token), the first matching the question's noun. The anchor
    sits on it; the second object's footprint (0.2 wide) starts 0.4 beyond the anchor's (0.4 wide): gap 0.4."""
    match = torch.tensor([[0.9, 0.1, 0.1, 0.95]])
    objects = torch.tensor([[True, True, True, False]])  # the last token is no object: never the anchor
    centres = torch.tensor([[[0.0, 0.0, 0.0], [0.7, 0.0, 0.0], [0.0, -2.0, 1.0], [5.0, 5.0, 5.0]]])
    extents = torch.tensor([[[0.4, 0.4, 0.4], [0.2, 0.2, 0.2], [0.2, 0.2, 0.2], [0.0, 0.0, 0.0]]])
    anchor = find_anchor(match, objects, centres, extents)
    assert anchor.weights[0, 0] > 0.99 and anchor.weights[0, 3] == 0
    torch.testing.assert_close(anchor.match, torch.tensor([0.9]))
    rel = relative_to_anchor(centres, extents, anchor)[0]
    torch.testing.assert_close(rel[1, :3], torch.tensor([0.7, 0.0, 0.0]), atol=1e-2, rtol=0)
    torch.testing.assert_close(rel[1, 3:5], torch.tensor([0.7, 0.4]), atol=1e-2, rtol=0)  # centre distance, gap
    torch.testing.assert_close(rel[2, 4], torch.tensor(1.7), atol=1e-2, rtol=0)  # |dy| 2 - (0.4 + 0.2) / 2
    assert rel[0, 4] < 1e-3 and rel[0, 5] > 0.99  # the anchor: no gap to itself, and it knows it is the anchor


def test_a_scene_without_objects_has_no_anchor_and_finite_gradients():
    match = torch.rand(2, 4, requires_grad=True)
    objects = torch.tensor([[False] * 4, [True, False, True, False]])
    centres = torch.zeros(2, 4, 3, requires_grad=True)
    anchor = find_anchor(match, objects, centres, torch.ones(2, 4, 3))
    assert anchor.weights[0].abs().sum() == 0 and torch.isclose(anchor.weights[1].sum(), torch.tensor(1.0))
    out = relative_to_anchor(centres, torch.ones(2, 4, 3), anchor).sum() + egocentric(
        anchor.centre[:, None], torch.zeros(2, 5)).sum()
    out.backward()
    assert torch.isfinite(match.grad).all() and torch.isfinite(centres.grad).all()


def test_training_fits_the_kind_and_noun_heads(tmp_path, cache, features):
    cfg = QATrainConfig(out=str(tmp_path / "run"), tabletop_scenes=0, rooms=6, steps=60, dense_steps=10,
                        batch_size=16, warmup=5, lr=3e-3, preset="tiny", cache=cache, tensorboard=False,
                        lexicon_names=24, log_every=10)
    result = train_qa(cfg, features=features)
    import json

    logs = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    steps = [e for e in logs if e["event"] == "train"]
    assert steps[-1]["kind"] < 0.5 * steps[0]["kind"] and steps[-1]["noun"] < 0.5 * steps[0]["noun"]


def test_a_text_only_design_2_checkpoint_still_loads(tmp_path, cache, features):
    """Designs 3 and 4 added scene-side parts only: a text-only baseline of design 2 has exactly this design's
    weights; a scene model of design 2 lacks the kind and noun heads (and the anchor's parts) and is refused in one
    line."""
    common = {"tabletop_scenes": 2, "rooms": 0, "steps": 2, "dense_steps": 1, "batch_size": 2, "warmup": 1,
              "preset": "tiny", "cache": cache, "tensorboard": False, "lexicon_names": 24}
    for text_only in (True, False):
        run = train_qa(QATrainConfig(out=str(tmp_path / f"t{text_only}"), text_only=text_only, **common),
                       features=features)
        payload = load_checkpoint(run.checkpoint)
        meta = {**payload["meta"], "design": 2}
        old = save_checkpoint(tmp_path / f"old{text_only}.pt", meta, {"model": payload["model"]})
        if text_only:
            assert not load_qa_model(old, features).model.config.scene_tokens
        else:
            with pytest.raises(FormatError, match="older design"):
                load_qa_model(old, features)
