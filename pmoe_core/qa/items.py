"""The one typed record every QA reader and generator produces, and every trainer, metric and bench consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QAItem:
    """One question about one scene, with every accepted answer (ScanQA lists several; the first is the main one).

    `scene` names the scene as its source does: a ScanNet scene id ("scene0000_00") for ScanQA/SQA3D and synthetic
    rooms, a planner-world scene key for tabletop sets. `situation`, `position` and `rotation` are SQA3D's situated
    agent (text, xyz, quaternion xyzw); `object_ids` are ScanQA's answer objects. `question_type` groups the
    metrics (SQA3D's what/is/how/can/which/other, or a synthetic template family); `template` names the phrasing
    family a synthetic question came from, so benchmarks can hold whole templates out.
    """

    qid: str
    scene: str
    question: str
    answers: tuple[str, ...]
    question_type: str = "other"
    situation: str | None = None
    position: tuple[float, float, float] | None = None
    rotation: tuple[float, float, float, float] | None = None
    object_ids: tuple[int, ...] = ()
    object_names: tuple[str, ...] = ()
    template: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
