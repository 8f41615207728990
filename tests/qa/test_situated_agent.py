"""SQA3D's situated agent through `pmoe qa`'s one-question path: the same model input as a QA set's item (eval and
training), the agent reaching the model, and one clear error per bad value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from qa_model_support import cube_on_table

from pmoe_core.errors import BadInput
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.qa.answer import Agent, check_agent, check_agent_in_scene, question_input
from pmoe_core.qa.data import QASetSpec, load_set
from pmoe_core.qa.model import QAModel, QAModelConfig
from pmoe_core.qa.scenes import load_scene_cloud


def _yaw(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return QAModel(QAModelConfig.tiny(), TextFeatures(QAModelConfig.tiny().text)).eval()


@pytest.fixture(scope="module")
def room_set(tmp_path_factory):
    """The situated questions of three synthetic rooms as the eval path loads them (scene inputs cached)."""
    cfg = QAModelConfig.tiny()
    cache = tmp_path_factory.mktemp("qa-cache")
    spec = QASetSpec(rooms=3, room_split="train", num_points=cfg.num_points, max_objects=cfg.max_objects)
    return load_set(spec, cache), cache


def test_answer_path_reads_an_item_as_the_eval_path_does(room_set, model):
    data, cache = room_set
    rows = [k for k, item in enumerate(data.items) if item.position is not None]
    assert rows, "the synthetic rooms must yield situated questions"
    root = cache / "rooms-3-seed0"
    for row in rows[:4]:
        item = data.items[row]
        evaluated = data.inputs([row])[0]
        cloud = load_scene_cloud(item.scene, root)
        asked = question_input(model.config, cloud, item.question, item.situation, Agent(item.position, item.rotation),
                               source=item.scene)
        assert asked.agent is not None and asked.agent == evaluated.agent
        assert asked.text == evaluated.text and item.situation in asked.text
        assert np.array_equal(asked.scene.points, evaluated.scene.points)


def test_the_agent_reaches_the_model(model):
    cloud = cube_on_table((255, 87, 89))
    where = (0.2, 0.0, 0.0)
    east, north = (question_input(model.config, cloud, "what is on my left?", "I am facing the block.",
                                  Agent(where, _yaw(yaw))) for yaw in (0.0, math.pi / 2))
    assert east.agent[3:] == pytest.approx((1.0, 0.0)) and north.agent[3:] == pytest.approx((0.0, 1.0), abs=1e-7)
    with torch.no_grad():
        a, _ = model.memory([east])
        b, _ = model.memory([north])
        none, _ = model.memory([question_input(model.config, cloud, "what is on my left?", "I am facing the block.")])
    assert not torch.allclose(a.states, b.states)  # the heading changes what the decoder reads
    assert none.mask.sum() == a.mask.sum() - 1  # no agent: its token is masked out


def test_bad_agents_are_refused():
    good = Agent((0.0, 0.0, 0.0), _yaw(0.3))
    check_agent(good, "I am facing the door.")
    check_agent(None, None)
    cases = [
        (good, None, "need --situation"),
        (Agent((0.0, float("nan"), 0.0), _yaw(0.0)), "s", "--position must be three finite"),
        (Agent((0.0, 0.0, 0.0), (0.0, 0.0, float("inf"), 1.0)), "s", "--rotation must be four finite"),
        (Agent((0.0, 0.0, 0.0), (0.0, 0.0, 0.5, 0.5)), "s", "unit quaternion"),
        (Agent((0.0, 0.0, 0.0), (0.0, -math.sqrt(0.5), 0.0, math.sqrt(0.5))), "s", "almost vertical"),
    ]
    for agent, situation, words in cases:
        with pytest.raises(BadInput, match=words):
            check_agent(agent, situation)


def test_an_agent_outside_the_scene_is_refused():
    cloud = cube_on_table((255, 87, 89))  # x 0..1, y -0.3..0.3 m
    check_agent_in_scene(Agent((1.1, 0.0, 0.0), _yaw(0.0)), cloud, "cube.ply")  # within the margin
    with pytest.raises(BadInput, match="outside the scene"):
        check_agent_in_scene(Agent((100.0, 0.0, 0.0), _yaw(0.0)), cloud, "cube.ply")  # centimetres for metres
