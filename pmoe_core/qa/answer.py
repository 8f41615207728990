"""One question about one cloud -> the model's answer(s) as text: what `pmoe qa` runs.

A question reaches the model exactly as a QA set's item does: `answer_question` wraps it in a `QAItem` and builds
the model input with `data.item_input`, the function training and evaluation use, so the situation text and the
situated agent (SQA3D's position and quaternion) are read one way only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from pmoe_core.errors import BadInput
from pmoe_core.qa.data import item_input
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.model import QAInput, QAModel, QAModelConfig, facing_xy
from pmoe_core.qa.scene_input import scene_input
from pmoe_core.scene import Scene

UNIT_TOLERANCE = 1e-3  # |norm - 1| a rotation quaternion may show (SQA3D's are printed to ~6 digits)
MIN_LEVEL = 0.1  # the facing direction must lean at least this far from vertical (horizontal share), or yaw is noise
EXTENT_MARGIN = 0.25  # an agent may stand this share of the scene's half extent outside its xy box, no further


@dataclass(frozen=True)
class Answer:
    text: str
    logprob: float  # summed log-probability of its tokens (and of the end token when it ended)
    finished: bool  # False: cut at the length limit


@dataclass(frozen=True)
class AnswerResult:
    answers: list[Answer]  # best first; one for greedy
    kind: str  # "tabletop" or "room" (scene_input's scale decision)
    objects: int  # object proposals found in the cloud
    scale: float  # metres per model unit
    max_tokens: int
    seconds: float  # scene input + model, without loading


@dataclass(frozen=True)
class Agent:
    """SQA3D's situated agent: where it stands (the cloud's frame, metres) and its rotation as a quaternion
    (x, y, z, w), read as the QA sets read it: the agent faces the rotation applied to +x, and only the heading's
    yaw about +z reaches the model (`model.agent_features`)."""

    position: tuple[float, float, float]
    rotation: tuple[float, float, float, float]


def check_agent(agent: Agent | None, situation: str | None) -> None:
    """BadInput for values the model cannot read. An agent without a situation text is refused: SQA3D pairs every
    position with one and the model never saw an agent without it."""
    if agent is None:
        return
    if situation is None or not situation.strip():
        raise BadInput("--position/--rotation need --situation (SQA3D gives the agent's situation in words too; "
                       "the model never saw an agent without one)")
    if not all(math.isfinite(v) for v in agent.position):
        raise BadInput(f"--position must be three finite numbers, got {agent.position}")
    if not all(math.isfinite(v) for v in agent.rotation):
        raise BadInput(f"--rotation must be four finite numbers, got {agent.rotation}")
    norm = math.sqrt(sum(v * v for v in agent.rotation))
    if abs(norm - 1.0) > UNIT_TOLERANCE:
        raise BadInput(f"--rotation must be a unit quaternion (x y z w), its norm is {norm:.4g}")
    if math.hypot(*facing_xy(agent.rotation)) < MIN_LEVEL:
        raise BadInput("--rotation turns the agent's facing direction (+x) almost vertical: its heading is undefined")


def check_agent_in_scene(agent: Agent | None, cloud: Scene, source: str) -> None:
    """BadInput when the agent stands well outside the cloud's horizontal extent: almost always a position given in
    another frame or unit than the cloud's."""
    if agent is None:
        return
    xy = np.asarray(cloud.coord, np.float64)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    margin = EXTENT_MARGIN * float((hi - lo).max()) / 2
    x, y = agent.position[:2]
    if not (lo[0] - margin <= x <= hi[0] + margin and lo[1] - margin <= y <= hi[1] + margin):
        raise BadInput(f"--position ({x:g}, {y:g}) is outside the scene (x {lo[0]:.2f}..{hi[0]:.2f}, "
                       f"y {lo[1]:.2f}..{hi[1]:.2f} m); give it in the cloud's frame, in metres", source)


def question_input(config: QAModelConfig, cloud: Scene, question: str, situation: str | None = None,
                   agent: Agent | None = None, seed: int = 0, source: str | None = None) -> QAInput:
    """The model input of one question about `cloud`, built as a QA set's item is (`data.item_input`)."""
    scene = scene_input(cloud, config.num_points, config.max_objects, seed=seed, source=source)
    item = QAItem(qid="query", scene=source or cloud.name, question=question, answers=(), situation=situation,
                  position=agent.position if agent else None, rotation=agent.rotation if agent else None)
    return item_input(item, scene)


def answer_question(model: QAModel, cloud: Scene, question: str, situation: str | None = None, beams: int = 1,
                    max_tokens: int | None = None, seed: int = 0, source: str | None = None,
                    agent: Agent | None = None) -> AnswerResult:
    """Greedy (beams=1) or beam-search answers. Deterministic: the same inputs and seed give the same answers."""
    if not question.strip():
        raise BadInput("the question is empty")
    check_agent(agent, situation)
    started = time.perf_counter()
    limit = model.config.max_answer_tokens if max_tokens is None else max_tokens
    query = question_input(model.config, cloud, question, situation, agent, seed, source)
    hyps = model.answer([query], limit) if beams == 1 else model.answer_beams(query, beams, limit)
    answers, seen = [], set()
    for h in hyps:
        text = model.answer_text(h.ids)
        if text not in seen:  # two token sequences can spell the same text; keep the better
            seen.add(text)
            answers.append(Answer(text, h.logprob, h.finished))
    scene = query.scene
    return AnswerResult(answers, scene.kind, scene.objects, scene.scale, limit, time.perf_counter() - started)
