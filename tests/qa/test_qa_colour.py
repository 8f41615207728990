"""Colour grounding of the answering model (issue #21): the planner's colour head, trained on the named-colour lexicon
in the dense phase, says what colour a question names; each object token gets its measured colour and its difference
to the asked one."""

from __future__ import annotations

import json

import pytest
import torch
from qa_model_support import cube_on_table

from pmoe_core.planner.colour import rgb_to_lab
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.qa.model import QAInput, QAModel, QAModelConfig
from pmoe_core.qa.scene_input import scene_input
from pmoe_core.qa.train import QATrainConfig, load_qa_model, train_qa
from pmoe_core.tabletop.world import COLORS


@pytest.fixture(scope="module")
def features():
    return TextFeatures(QAModelConfig.tiny().text)


def _palette(name: str) -> torch.Tensor:
    return rgb_to_lab(torch.tensor(COLORS[name], dtype=torch.float32) / 255.0) / 100.0


def test_the_asked_colour_joins_object_tokens_only(features):
    """Two questions naming different colours give different object tokens and the same point-encoder, scale and
    agent tokens: the asked colour reaches the scene through the objects, as in the planner (and the anchor token,
    built from the objects the question names)."""
    torch.manual_seed(0)
    model = QAModel(QAModelConfig.tiny(), features).eval()
    cfg = model.config
    scene = scene_input(cube_on_table(COLORS["red"]), cfg.num_points, cfg.max_objects)
    inputs = [QAInput(scene, "is there a red block?"), QAInput(scene, "is there a blue block?")]
    with torch.no_grad():
        asked = torch.stack([_palette("red"), _palette("blue")])
        tokens, mask, _, _ = model._scene_tokens(inputs, asked, model.text_batch([q.text for q in inputs]))
        points = torch.from_numpy(scene.points)[None]
        objects = model.encoder(points).objects[0]
    objects = torch.cat([objects, torch.zeros(3, dtype=torch.bool)])  # + scale, agent and anchor tokens
    assert objects.sum() == 1 and mask[0, objects].all()
    assert not torch.allclose(tokens[0, objects], tokens[1, objects])
    fixed = ~objects
    fixed[-1] = False  # the anchor token summarises the object the question names: it may follow the words
    torch.testing.assert_close(tokens[0, fixed], tokens[1, fixed])


@pytest.fixture(scope="module")
def grounded(tmp_path_factory, features):
    """150 dense steps on 100 lexicon names (none of them need be "red" or "blue"), one upcycled step: ~20 s."""
    root = tmp_path_factory.mktemp("grounded")
    cfg = QATrainConfig(out=str(root / "run"), tabletop_scenes=4, rooms=0, steps=151, dense_steps=150, batch_size=4,
                        warmup=1, lr=3e-3, preset="tiny", tensorboard=False, ckpt_every=1000, lexicon_names=100,
                        cache=str(root / "cache"))
    return train_qa(cfg, features=features)


def test_a_short_run_grounds_colour_words_in_questions(grounded, features):
    """After the dense phase the colour "is there a red block?" names is nearer the world's red than its blue, and
    the other way round for blue; the lexicon's held-out names land nearest their own colour among the world's
    eleven far above chance (1 in 11). Measured: 0.51 held out."""
    model = load_qa_model(grounded.checkpoint, features).model
    with torch.no_grad():
        red, blue = model.asked_colour(model.text_batch(["is there a red block?", "is there a blue block?"])).lab
    assert (red - _palette("red")).norm() < (red - _palette("blue")).norm()
    assert (blue - _palette("blue")).norm() < (blue - _palette("red")).norm()
    events = [json.loads(line) for line in (grounded.run_dir / "log.jsonl").read_text().splitlines()]
    grounding = next(e for e in events if e["event"] == "grounding")
    assert grounding["step"] == 150 and grounding["held_out_nearest"] > 0.3
