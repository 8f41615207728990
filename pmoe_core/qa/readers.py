"""Readers and writers of the two 3D-QA benchmark file formats, ScanQA v1.0 and SQA3D v1, as `QAItem`s.

Checked against the public releases (2026-12, with the code search tool):
- ScanQA (github.com/ATR-DBI/ScanQA): docs/dataset.md lists the entry keys `scene_id`, `object_ids` (ScanNet
  aggregation `objectId`s), `object_names` (aggregation `label`s), `question_id`, `question`, `answers`; the files
  are `ScanQA_v1.0_{train,val,test_w_obj,test_wo_obj}.json`, each a JSON list of entries; lib/dataset.py reads
  `answers` with `.get(..., [])` and skips object ids for test (the test files have no answers, test_wo_obj no
  objects). scripts/score.py groups questions by substrings (`qclass1`: Where -> Place, How many -> Number,
  What color / What is the color -> Color, What shape/type/kind -> Object nature, What is -> Object, else Other);
  `scanqa_question_type` implements that rule.
- SQA3D (github.com/SilongYong/SQA3D): assets/data/data.md and the released test files
  (LLM/v1_balanced_{questions,sqa_annotations}_test_scannetv2.json): a questions file `{"info", "license",
  "data_type", "data_subtype", "task_type", "questions": [{"scene_id", "situation", "alternative_situation",
  "question", "question_id" (int)}]}` and an annotations file `{"info", ..., "annotations": [{"scene_id",
  "question_type" ("N/A" throughout the release), "answer_type", "question_id", "answers": [{"answer",
  "answer_confidence", "answer_id"}], "rotation": {"_x", "_y", "_z", "_w"}, "position": {"x", "y", "z"}}]}`, joined
  by question_id. As the file carries no type, the type comes from the question's first word: the SQA3D
  repository itself scores overall accuracy only (ScanQA/scripts/test.py, LLM/eval_sqa3d_llm.py); the paper's
  per-type table groups by first word, and the function later SQA3D evaluators share (`get_sqa_question_type`,
  in several public 3D-LLM code bases) does it as a case-insensitive prefix test after leading spaces: what / is /
  how / can / which, else others. `sqa3d_question_type` implements that.

pmoe's writers produce the same structures. Two optional keys carry what synthetic sets need and the formats have
no place for: `question_type` in a ScanQA entry (written only when it differs from the substring rule) and
`template` in either format's question entry; other readers ignore unknown keys.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.jsonio import read_json, write_json_atomic
from pmoe_core.outputs import check_output_file
from pmoe_core.qa.items import QAItem

SCANQA_SPLITS = ("train", "val", "test_w_obj", "test_wo_obj")
SQA3D_SPLITS = ("train", "val", "test")
SQA3D_TYPES = ("what", "is", "how", "can", "which", "others")
SCANQA_TYPES = ("Place", "Number", "Color", "Object nature", "Object", "Other")
NO_TYPE = "N/A"
SQA3D_INFO = {"description": "SQA3D-format file written by pmoe", "version": "1.0"}
SQA3D_HEADER = {"data_type": "scannet", "data_subtype": "v2"}


def scanqa_path(folder: str | Path, split: str) -> Path:
    if split not in SCANQA_SPLITS:
        raise BadInput(f"unknown ScanQA split {split!r}; known: {', '.join(SCANQA_SPLITS)}")
    return Path(folder) / f"ScanQA_v1.0_{split}.json"


def sqa3d_paths(folder: str | Path, split: str, version: str = "balanced") -> tuple[Path, Path]:
    """(questions, annotations) file of `split` in a folder such as the release's sqa_task/balanced/."""
    if split not in SQA3D_SPLITS:
        raise BadInput(f"unknown SQA3D split {split!r}; known: {', '.join(SQA3D_SPLITS)}")
    folder = Path(folder)
    return (folder / f"v1_{version}_questions_{split}_scannetv2.json",
            folder / f"v1_{version}_sqa_annotations_{split}_scannetv2.json")


def scanqa_question_type(question: str) -> str:
    """ScanQA's question class (scripts/score.py `qclass1`: case-sensitive substring tests, in this order)."""
    if "Where" in question:
        return "Place"
    if "How many" in question:
        return "Number"
    if "What color" in question or "What is the color" in question:
        return "Color"
    if any(f"What {w}" in question for w in ("shape", "type", "kind")):
        return "Object nature"
    if "What is" in question:
        return "Object"
    return "Other"


def sqa3d_question_type(question: str) -> str:
    """SQA3D's question type: the first word's prefix (what / is / how / can / which), else "others"."""
    q = question.lstrip().lower()
    for word in ("what", "is", "how", "can", "which"):
        if q.startswith(word):
            return word
    return "others"


# --- ScanQA ------------------------------------------------------------------------------------------------------

def read_scanqa(path: str | Path) -> list[QAItem]:
    """Every entry of a ScanQA v1.0 file (answers and object ids empty where the split has none)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise FormatError(f"expected a JSON list of questions (ScanQA v1.0), got {_kind(data)}", path)
    items, seen = [], set()
    for i, entry in enumerate(data):
        where = _where(i, entry)
        if not isinstance(entry, dict):
            raise FormatError(f"{where}: expected an object, got {_kind(entry)}", path)
        qid = _qid(entry, where, path)
        if qid in seen:
            raise FormatError(f"{where}: question_id {qid!r} appears twice", path)
        seen.add(qid)
        question = _text(entry, "question", where, path)
        qtype = entry.get("question_type", scanqa_question_type(question))
        items.append(QAItem(
            qid=qid, scene=_text(entry, "scene_id", where, path), question=question,
            answers=tuple(_str_list(entry, "answers", where, path)),
            question_type=_checked_str(qtype, "question_type", where, path),
            object_ids=tuple(_int_list(entry, "object_ids", where, path)),
            object_names=tuple(_str_list(entry, "object_names", where, path)),
            template=_checked_str(entry.get("template", ""), "template", where, path),
        ))
    return items


def write_scanqa(path: str | Path, items: list[QAItem], overwrite: bool = False) -> Path:
    """Write `items` as a ScanQA v1.0 file (whole or not at all)."""
    check_output_file(path, overwrite=overwrite)
    entries = []
    for item in items:
        entry: dict[str, Any] = {"scene_id": item.scene, "question_id": item.qid, "question": item.question,
                                 "answers": list(item.answers), "object_ids": list(item.object_ids),
                                 "object_names": list(item.object_names)}
        if item.question_type != scanqa_question_type(item.question):
            entry["question_type"] = item.question_type
        if item.template:
            entry["template"] = item.template
        entries.append(entry)
    return write_json_atomic(path, entries, indent=None)


# --- SQA3D -------------------------------------------------------------------------------------------------------

def read_sqa3d(questions_path: str | Path, annotations_path: str | Path) -> list[QAItem]:
    """The questions of an SQA3D questions file joined with their annotations (answers, position, rotation)."""
    questions = _top_list(read_json(questions_path), "questions", questions_path)
    annotations = _top_list(read_json(annotations_path), "annotations", annotations_path)
    by_id: dict[str, tuple[int, dict]] = {}
    for i, ann in enumerate(annotations):
        where = _where(i, ann)
        if not isinstance(ann, dict):
            raise FormatError(f"{where}: expected an object, got {_kind(ann)}", annotations_path)
        qid = _qid(ann, where, annotations_path)
        if qid in by_id:
            raise FormatError(f"{where}: question_id {qid} appears twice", annotations_path)
        by_id[qid] = (i, ann)
    items, used = [], set()
    for i, entry in enumerate(questions):
        where = _where(i, entry)
        if not isinstance(entry, dict):
            raise FormatError(f"{where}: expected an object, got {_kind(entry)}", questions_path)
        qid = _qid(entry, where, questions_path)
        if qid in used:
            raise FormatError(f"{where}: question_id {qid} appears twice", questions_path)
        if qid not in by_id:
            raise FormatError(f"question_id {qid} ({where} of {Path(questions_path).name}) has no annotation",
                              annotations_path)
        used.add(qid)
        items.append(_sqa3d_item(entry, where, by_id[qid], questions_path, annotations_path))
    extra = [qid for qid in by_id if qid not in used]
    if extra:
        raise FormatError(f"{len(extra)} annotations have no question in {Path(questions_path).name} "
                          f"(first: question_id {extra[0]})", annotations_path)
    return items


def _sqa3d_item(entry: dict, where: str, annotation: tuple[int, dict], q_path, a_path) -> QAItem:
    i, ann = annotation
    a_where = _where(i, ann)
    scene = _text(entry, "scene_id", where, q_path)
    if _text(ann, "scene_id", a_where, a_path) != scene:
        raise FormatError(f"{a_where}: scene_id {ann['scene_id']!r} differs from the question's {scene!r}", a_path)
    question = _text(entry, "question", where, q_path)
    qtype = _checked_str(ann.get("question_type", NO_TYPE), "question_type", a_where, a_path)
    answers = ann.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, dict) and isinstance(a.get("answer"), str)
                                                for a in answers):
        raise FormatError(f"{a_where}: 'answers' must be a list of {{\"answer\": text, ...}} objects", a_path)
    alternatives = entry.get("alternative_situation", [])
    if not isinstance(alternatives, list) or not all(isinstance(s, str) for s in alternatives):
        raise FormatError(f"{where}: 'alternative_situation' must be a list of strings", q_path)
    return QAItem(
        qid=_qid(entry, where, q_path), scene=scene, question=question, answers=tuple(a["answer"] for a in answers),
        question_type=sqa3d_question_type(question) if qtype == NO_TYPE else qtype,
        situation=_text(entry, "situation", where, q_path),
        position=_vector(ann, "position", ("x", "y", "z"), a_where, a_path),
        rotation=_vector(ann, "rotation", ("_x", "_y", "_z", "_w"), a_where, a_path),
        template=_checked_str(entry.get("template", ""), "template", where, q_path),
        extra={"alternative_situation": tuple(alternatives)},
    )


def write_sqa3d(questions_path: str | Path, annotations_path: str | Path, items: list[QAItem],
                overwrite: bool = False) -> tuple[Path, Path]:
    """Write `items` (situated: situation, position and rotation set; integer question ids) as SQA3D's pair."""
    for path in (questions_path, annotations_path):
        check_output_file(path, overwrite=overwrite)
    questions, annotations = [], []
    for item in items:
        if item.situation is None or item.position is None or item.rotation is None:
            raise BadInput(f"question {item.qid}: SQA3D items need a situation, a position and a rotation")
        if not item.qid.lstrip("-").isdigit():
            raise BadInput(f"question {item.qid}: SQA3D question ids are integers")
        qid = int(item.qid)
        entry: dict[str, Any] = {"scene_id": item.scene, "situation": item.situation,
                                 "alternative_situation": list(item.extra.get("alternative_situation", ())),
                                 "question": item.question, "question_id": qid}
        if item.template:
            entry["template"] = item.template
        questions.append(entry)
        qtype = NO_TYPE if item.question_type == sqa3d_question_type(item.question) else item.question_type
        annotations.append({
            "scene_id": item.scene, "question_type": qtype, "answer_type": "other", "question_id": qid,
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                        for k, a in enumerate(item.answers)],
            "rotation": dict(zip(("_x", "_y", "_z", "_w"), item.rotation)),
            "position": dict(zip(("x", "y", "z"), item.position)),
        })
    header = {"info": SQA3D_INFO, "license": {}, **SQA3D_HEADER}
    write_json_atomic(annotations_path, {**header, "annotations": annotations}, indent=None)
    write_json_atomic(questions_path, {**header, "task_type": "Situated question answering",
                                       "questions": questions}, indent=None)
    return Path(questions_path), Path(annotations_path)


# --- checks ------------------------------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _where(i: int, entry: Any) -> str:
    qid = entry.get("question_id") if isinstance(entry, dict) else None
    return f"entry {i}" + (f" (question_id {qid})" if isinstance(qid, (str, int)) else "")


def _top_list(data: Any, key: str, path) -> list:
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        got = _kind(data) if not isinstance(data, dict) else f"an object without a {key!r} list"
        raise FormatError(f"expected an SQA3D object with a {key!r} list, got {got}", path)
    return data[key]


def _qid(entry: dict, where: str, path) -> str:
    qid = entry.get("question_id")
    if isinstance(qid, bool) or not isinstance(qid, (str, int)):
        raise FormatError(f"{where}: missing or non-text 'question_id'", path)
    return str(qid)


def _text(entry: dict, key: str, where: str, path) -> str:
    if key not in entry:
        raise FormatError(f"{where}: missing {key!r}", path)
    return _checked_str(entry[key], key, where, path)


def _checked_str(value: Any, key: str, where: str, path) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{where}: {key!r} must be text, got {_kind(value)}", path)
    return value


def _str_list(entry: dict, key: str, where: str, path) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FormatError(f"{where}: {key!r} must be a list of strings", path)
    return value


def _int_list(entry: dict, key: str, where: str, path) -> list[int]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise FormatError(f"{where}: {key!r} must be a list of integers", path)
    return value


def _vector(entry: dict, key: str, names: tuple[str, ...], where: str, path) -> tuple[float, ...]:
    value = entry.get(key)
    if not isinstance(value, dict) or not all(k in value for k in names):
        raise FormatError(f"{where}: {key!r} must be an object with {', '.join(names)}", path)
    out = []
    for k in names:
        v = value[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise FormatError(f"{where}: {key}.{k} must be a finite number", path)
        out.append(float(v))
    return tuple(out)
