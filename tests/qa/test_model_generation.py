"""The answering model's generation: deterministic, greedy == beam 1, ranked beams that score what they say, the
length limit, and answers that follow the scene (a tiny model trained briefly on two scenes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from qa_model_support import cube_on_table

from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.qa.answer import answer_question
from pmoe_core.qa.model import QAInput, QAModel, QAModelConfig, agent_features, question_text
from pmoe_core.qa.scene_input import scene_input

RED, BLUE = (255, 87, 89), (78, 121, 167)


@pytest.fixture(scope="module")
def features():
    return TextFeatures(QAModelConfig.tiny().text)


@pytest.fixture(scope="module")
def model(features):
    torch.manual_seed(0)
    return QAModel(QAModelConfig.tiny(), features).eval()


def _input(model, cloud, question="what color is the block?"):
    cfg = model.config
    return QAInput(scene_input(cloud, cfg.num_points, cfg.max_objects), question_text(question))


def _sequence_logprob(model, query, ids, finished):
    """Teacher-forced log-probability of `ids` (+ the end token when finished), recomputed from scratch."""
    with torch.no_grad():
        memory, _ = model.memory([query])
    dec = model.decoder
    prefix = torch.tensor([[dec.bos, *ids]])
    with torch.no_grad():
        logp = torch.log_softmax(dec.logits(dec.hidden(prefix, memory))[0].double(), -1)
    targets = [*ids, dec.eos] if finished else list(ids)
    return float(sum(logp[i, t] for i, t in enumerate(targets)))


def test_same_inputs_same_answer(model):
    query = _input(model, cube_on_table(RED))
    first = model.answer([query])[0]
    again = model.answer([_input(model, cube_on_table(RED))])[0]
    assert first == again
    assert model.answer_beams(query, 3) == model.answer_beams(query, 3)


def test_batched_ranked_answers_equal_one_question_beams(model):
    queries = [_input(model, cube_on_table(c), q) for c in (RED, BLUE) for q in ("what color is the block?",
                                                                                 "how many blocks are there?")]
    batched = model.ranked_answers(queries, 4, max_tokens=3)
    for query, hyps in zip(queries, batched):
        alone = model.answer_beams(query, 4, max_tokens=3)
        assert [h.ids for h in hyps] == [h.ids for h in alone]
        assert [h.logprob for h in hyps] == pytest.approx([h.logprob for h in alone], abs=1e-4)


def test_greedy_equals_beam_one(model):
    for colour in (RED, BLUE):
        query = _input(model, cube_on_table(colour))
        greedy = model.answer([query], max_tokens=5)[0]
        beam = model.answer_beams(query, 1, max_tokens=5)
        assert len(beam) == 1
        assert beam[0].ids == greedy.ids and beam[0].finished == greedy.finished
        assert beam[0].logprob == pytest.approx(greedy.logprob, abs=1e-4)


def test_beams_are_ranked_distinct_and_score_what_they_say(model):
    query = _input(model, cube_on_table(BLUE))
    beams = model.answer_beams(query, 4, max_tokens=3)
    assert 2 <= len(beams) <= 4
    scores = [h.logprob for h in beams]
    assert scores == sorted(scores, reverse=True)
    assert len({h.ids for h in beams}) == len(beams)
    for h in beams:
        assert h.logprob == pytest.approx(_sequence_logprob(model, query, h.ids, h.finished), abs=1e-3)


def test_length_limit(model):
    query = _input(model, cube_on_table(RED))
    for limit in (1, 2, 4):
        for h in [model.answer([query], max_tokens=limit)[0], *model.answer_beams(query, 3, max_tokens=limit)]:
            assert len(h.ids) <= limit
            assert h.finished or len(h.ids) == limit
    with pytest.raises(ValueError, match="length limit"):
        model.answer([query], max_tokens=0)
    with pytest.raises(ValueError, match="length limit"):
        model.answer([query], max_tokens=model.config.decoder.max_positions)


def test_text_only_baseline_ignores_the_scene(features):
    torch.manual_seed(1)
    cfg = dataclasses.replace(QAModelConfig.tiny(), scene_tokens=False)
    baseline = QAModel(cfg, features).eval()
    red, blue = _input(baseline, cube_on_table(RED)), _input(baseline, cube_on_table(BLUE))
    mem_red, _ = baseline.memory([red])
    mem_blue, _ = baseline.memory([blue])
    assert torch.equal(mem_red.states, mem_blue.states) and torch.equal(mem_red.query, mem_blue.query)


def test_answers_follow_the_scene(features):
    """Same question, two scenes that differ only in the block's colour: after a short training the tiny model
    names each scene's colour. A model that ignored the scene could get at most one of them right."""
    torch.manual_seed(0)
    model = QAModel(QAModelConfig.tiny(), features).train()
    scenes = {"red": cube_on_table(RED, seed=1), "blue": cube_on_table(BLUE, seed=2)}
    queries = {name: _input(model, cloud) for name, cloud in scenes.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(60):
        loss = model.loss(list(queries.values()), list(queries))["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    answers = {name: model.answer_text(h.ids) for name, h in zip(queries, model.answer(list(queries.values())))}
    assert answers == {"red": "red", "blue": "blue"}
    # the same through the one-question path `pmoe qa` uses, on a cloud the model never saw (another noise draw)
    result = answer_question(model, cube_on_table(BLUE, seed=7), "what color is the block?")
    assert result.answers[0].text == "blue" and result.kind == "tabletop" and result.objects == 1


def test_agent_features_in_model_frame():
    cloud = cube_on_table(RED)
    scene = scene_input(cloud, 128, 4)
    yaw = np.pi / 2
    agent = agent_features(scene, (0.5, 0.0, 0.0), (0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)))
    x, y, z, c, s = agent
    assert (c, s) == pytest.approx((0.0, 1.0), abs=1e-6)
    assert np.allclose(scene.to_model_frame([0.5, 0.0, 0.0]), (x, y, z))
    assert agent_features(scene, None, None) is None
