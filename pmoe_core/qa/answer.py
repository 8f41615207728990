"""One question about one cloud -> the model's answer(s) as text: what `pmoe qa` runs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pmoe_core.errors import BadInput
from pmoe_core.qa.model import QAInput, QAModel, question_text
from pmoe_core.qa.scene_input import scene_input
from pmoe_core.scene import Scene


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


def answer_question(model: QAModel, cloud: Scene, question: str, situation: str | None = None, beams: int = 1,
                    max_tokens: int | None = None, seed: int = 0, source: str | None = None) -> AnswerResult:
    """Greedy (beams=1) or beam-search answers. Deterministic: the same inputs and seed give the same answers."""
    if not question.strip():
        raise BadInput("the question is empty")
    started = time.perf_counter()
    cfg = model.config
    limit = cfg.max_answer_tokens if max_tokens is None else max_tokens
    scene = scene_input(cloud, cfg.num_points, cfg.max_objects, seed=seed, source=source)
    query = QAInput(scene, question_text(question, situation))
    hyps = model.answer([query], limit) if beams == 1 else model.answer_beams(query, beams, limit)
    answers, seen = [], set()
    for h in hyps:
        text = model.answer_text(h.ids)
        if text not in seen:  # two token sequences can spell the same text; keep the better
            seen.add(text)
            answers.append(Answer(text, h.logprob, h.finished))
    return AnswerResult(answers, scene.kind, scene.objects, scene.scale, limit, time.perf_counter() - started)
