"""ScanQA / SQA3D readers and writers: hand-written files in the releases' structures, round trips, one-line errors."""

from __future__ import annotations

import json

import pytest

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.readers import (
    read_scanqa,
    read_sqa3d,
    scanqa_path,
    scanqa_question_type,
    sqa3d_paths,
    sqa3d_question_type,
    write_scanqa,
    write_sqa3d,
)

# Entries shaped like ScanQA_v1.0_{val,test_w_obj,test_wo_obj}.json (a list; answers absent in test, objects too in
# test_wo_obj). Contents invented here.
SCANQA_VAL = [
    {"answers": ["brown wooden cabinet", "cabinet"], "object_ids": [8], "object_names": ["cabinet"],
     "question": "What is placed under the television?", "question_id": "val-scene0011_00-3",
     "scene_id": "scene0011_00"},
    {"answers": ["2"], "object_ids": [3, 4], "object_names": ["office_chair", "office_chair"],
     "question": "How many chairs are at the desk?", "question_id": "val-scene0011_00-4", "scene_id": "scene0011_00"},
    {"answers": ["black"], "object_ids": [12], "object_names": ["tv"],
     "question": "What color is the tv on the wall?", "question_id": "val-scene0015_00-0", "scene_id": "scene0015_00"},
]
SCANQA_TEST_W_OBJ = [{"object_ids": [5], "object_names": ["bed"], "question": "Where is the pillow?",
                      "question_id": "test-scene0707_00-1", "scene_id": "scene0707_00"}]
SCANQA_TEST_WO_OBJ = [{"question": "What is on the table?", "question_id": "test-scene0710_00-2",
                       "scene_id": "scene0710_00"}]

# SQA3D v1 balanced pair: questions + annotations joined by integer question_id; question_type "N/A" as released.
HEADER = {"info": {"description": "hand-written test file", "version": "1.0"}, "license": {"name": "CC BY 4.0"},
          "data_type": "scannet", "data_subtype": "v2"}
SQA_QUESTIONS = {**HEADER, "task_type": "Situated question answering", "questions": [
    {"scene_id": "scene0050_00", "situation": "I am sitting on the sofa with a lamp on my left.",
     "alternative_situation": ["The lamp is to my left while I sit."],
     "question": "What is in front of me?", "question_id": 220602000002},
    {"scene_id": "scene0050_00", "situation": "I am facing the window.", "alternative_situation": [],
     "question": "  Is the door behind me?", "question_id": 220602000003},
    {"scene_id": "scene0702_00", "situation": "I stand at the sink.", "alternative_situation": [],
     "question": "Which way is the exit?", "question_id": 220602000017},
]}
SQA_ANNOTATIONS = {**HEADER, "annotations": [
    {"scene_id": "scene0702_00", "question_type": "N/A", "answer_type": "other", "question_id": 220602000017,
     "answers": [{"answer": "left", "answer_confidence": "yes", "answer_id": 1}],
     "rotation": {"_x": 0, "_y": 0, "_z": 0.9161659367494626, "_w": -0.400799172079979},
     "position": {"x": -0.4167123144195156, "y": -0.5504911505201957, "z": 0}},
    {"scene_id": "scene0050_00", "question_type": "N/A", "answer_type": "other", "question_id": 220602000002,
     "answers": [{"answer": "table", "answer_confidence": "yes", "answer_id": 1}],
     "rotation": {"_x": 0, "_y": 0, "_z": 0, "_w": 1}, "position": {"x": 0.71, "y": -0.03, "z": 0}},
    {"scene_id": "scene0050_00", "question_type": "N/A", "answer_type": "other", "question_id": 220602000003,
     "answers": [{"answer": "yes", "answer_confidence": "yes", "answer_id": 1}],
     "rotation": {"_x": 0, "_y": 0, "_z": -0.5, "_w": 0.8660254037844386}, "position": {"x": 1, "y": 2, "z": 0}},
]}


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def _sqa_pair(tmp_path, questions=SQA_QUESTIONS, annotations=SQA_ANNOTATIONS):
    q, a = sqa3d_paths(tmp_path, "val")
    return _write(q, questions), _write(a, annotations)


def test_scanqa_val_reads_every_field(tmp_path):
    items = read_scanqa(_write(scanqa_path(tmp_path, "val"), SCANQA_VAL))
    assert [i.qid for i in items] == [e["question_id"] for e in SCANQA_VAL]
    first = items[0]
    assert first.scene == "scene0011_00" and first.answers == ("brown wooden cabinet", "cabinet")
    assert first.object_ids == (8,) and first.object_names == ("cabinet",) and first.situation is None
    assert [i.question_type for i in items] == ["Object", "Number", "Color"]


def test_scanqa_test_splits_have_no_answers(tmp_path):
    w_obj = read_scanqa(_write(scanqa_path(tmp_path, "test_w_obj"), SCANQA_TEST_W_OBJ))[0]
    wo_obj = read_scanqa(_write(scanqa_path(tmp_path, "test_wo_obj"), SCANQA_TEST_WO_OBJ))[0]
    assert w_obj.answers == () and w_obj.object_ids == (5,) and w_obj.question_type == "Place"
    assert wo_obj.answers == () and wo_obj.object_ids == () and wo_obj.object_names == ()


@pytest.mark.parametrize("data", [SCANQA_VAL, SCANQA_TEST_W_OBJ, SCANQA_TEST_WO_OBJ])
def test_scanqa_round_trip(tmp_path, data):
    items = read_scanqa(_write(tmp_path / "in.json", data))
    write_scanqa(tmp_path / "out.json", items)
    assert read_scanqa(tmp_path / "out.json") == items
    written = json.loads((tmp_path / "out.json").read_text())
    assert all("question_type" not in e and "template" not in e for e in written)  # real data stays plain


def test_scanqa_round_trip_keeps_synthetic_type_and_template(tmp_path):
    items = [QAItem("synth-1", "scene0000_00", "how many chairs are in the room?", ("two",), "count",
                    object_ids=(3, 4), object_names=("office chair", "office chair"), template="count_how_many")]
    write_scanqa(tmp_path / "s.json", items)
    assert read_scanqa(tmp_path / "s.json") == items


def test_sqa3d_joins_by_question_id_and_derives_types(tmp_path):
    items = read_sqa3d(*_sqa_pair(tmp_path))
    assert [i.qid for i in items] == ["220602000002", "220602000003", "220602000017"]  # questions-file order
    sink = items[2]
    assert sink.answers == ("left",) and sink.scene == "scene0702_00" and sink.situation == "I stand at the sink."
    assert sink.position == (-0.4167123144195156, -0.5504911505201957, 0.0)
    assert sink.rotation == (0.0, 0.0, 0.9161659367494626, -0.400799172079979)
    assert [i.question_type for i in items] == ["what", "is", "which"]  # "N/A" in the file: the first-word rule
    assert items[0].extra["alternative_situation"] == ("The lamp is to my left while I sit.",)


def test_sqa3d_round_trip(tmp_path):
    items = read_sqa3d(*_sqa_pair(tmp_path))
    out_q, out_a = tmp_path / "q.json", tmp_path / "a.json"
    write_sqa3d(out_q, out_a, items)
    again = read_sqa3d(out_q, out_a)
    assert again == items
    assert [i.extra for i in again] == [i.extra for i in items]
    annotations = json.loads(out_a.read_text())["annotations"]
    assert {a["question_type"] for a in annotations} == {"N/A"} and all(
        isinstance(a["question_id"], int) for a in annotations)


def test_sqa3d_keeps_a_type_the_file_carries(tmp_path):
    annotations = json.loads(json.dumps(SQA_ANNOTATIONS))
    annotations["annotations"][0]["question_type"] = "navigation"
    items = read_sqa3d(*_sqa_pair(tmp_path, annotations=annotations))
    assert items[2].question_type == "navigation"


def test_question_type_rules():
    assert [sqa3d_question_type(q) for q in ("What is it?", " is it?", "How far?", "Can I sit?", "Which side?",
                                             "Where am I?", "island?")] == [
        "what", "is", "how", "can", "which", "others", "is"]  # a prefix test, as the benchmark code does
    assert [scanqa_question_type(q) for q in ("Where is the bed?", "How many chairs?", "What is the color of it?",
                                              "What kind of table?", "What is on it?", "what is on it?")] == [
        "Place", "Number", "Color", "Object nature", "Object", "Other"]  # case-sensitive substrings


# --- malformed files: one FormatError naming the file and the entry ----------------------------------------------

def _one_line_error(exc_info, *words):
    message = str(exc_info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("content,words", [
    ("not json at all", ["not valid JSON"]),
    ('{"questions": []}', ["expected a JSON list"]),
    ('[{"question_id": "q1", "question": "What?"}]', ["entry 0 (question_id q1)", "missing 'scene_id'"]),
    ('[{"question_id": "q1", "question": "What?", "scene_id": "s", "answers": "yes"}]',
     ["entry 0 (question_id q1)", "'answers' must be a list of strings"]),
    ('[{"question_id": "q1", "question": "What?", "scene_id": "s", "object_ids": ["8"]}]', ["'object_ids'"]),
    ('[{"question": "What?", "scene_id": "s"}]', ["entry 0", "question_id"]),
    (json.dumps([{"question_id": "a", "question": "?", "scene_id": "s"}] * 2),
     ["entry 1 (question_id a)", "appears twice"]),
    ("[3]", ["entry 0", "expected an object"]),
])
def test_scanqa_malformed(tmp_path, content, words):
    path = tmp_path / "ScanQA_v1.0_val.json"
    path.write_text(content)
    with pytest.raises(FormatError) as info:
        read_scanqa(path)
    _one_line_error(info, str(path), *words)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(MissingFile) as info:
        read_scanqa(tmp_path / "nope.json")
    _one_line_error(info, "nope.json")


def _mutated(data, key, index, field, value):
    copy = json.loads(json.dumps(data))
    if value is None:
        del copy[key][index][field]
    else:
        copy[key][index][field] = value
    return copy


@pytest.mark.parametrize("which,mutate,words", [
    ("questions", lambda d: d["questions"], ["expected an SQA3D object", "'questions'"]),
    ("annotations", lambda d: {"info": {}}, ["'annotations' list"]),
    ("questions", lambda d: _mutated(d, "questions", 1, "situation", None), ["entry 1 (question_id 220602000003)",
                                                                              "missing 'situation'"]),
    ("annotations", lambda d: _mutated(d, "annotations", 0, "position", {"x": 1, "y": 2}),
     ["entry 0 (question_id 220602000017)", "'position' must be an object with x, y, z"]),
    ("annotations", lambda d: _mutated(d, "annotations", 1, "answers", ["table"]), ["'answers' must be a list"]),
    ("annotations", lambda d: _mutated(d, "annotations", 1, "scene_id", "scene0999_00"), ["differs"]),
    ("annotations", lambda d: _mutated(d, "annotations", 2, "question_id", 1), ["question_id 220602000003",
                                                                                 "has no annotation"]),
    ("questions", lambda d: {**d, "questions": d["questions"][:2]}, ["1 annotations have no question",
                                                                     "220602000017"]),
])
def test_sqa3d_malformed(tmp_path, which, mutate, words):
    questions, annotations = SQA_QUESTIONS, SQA_ANNOTATIONS
    if which == "questions":
        questions = mutate(questions)
    else:
        annotations = mutate(annotations)
    q, a = _sqa_pair(tmp_path, questions, annotations)
    with pytest.raises(FormatError) as info:
        read_sqa3d(q, a)
    _one_line_error(info, *words)
    assert (str(q) in str(info.value)) or (str(a) in str(info.value))


def test_writers_refuse_existing_files_and_unsituated_items(tmp_path):
    from pmoe_core.errors import BadInput

    target = _write(tmp_path / "x.json", [])
    with pytest.raises(BadInput, match="already exists"):
        write_scanqa(target, [])
    with pytest.raises(BadInput, match="situation"):
        write_sqa3d(tmp_path / "q.json", tmp_path / "a.json", [QAItem("1", "s", "what?", ("a",))])
    situated = QAItem("q-1", "s", "what?", ("a",), situation="I stand.", position=(0, 0, 0), rotation=(0, 0, 0, 1))
    with pytest.raises(BadInput, match="integers"):
        write_sqa3d(tmp_path / "q.json", tmp_path / "a.json", [situated])
    assert not (tmp_path / "q.json").exists() and not (tmp_path / "a.json").exists()
