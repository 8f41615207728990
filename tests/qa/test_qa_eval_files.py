"""`pmoe qa eval` on benchmark-format files written from synthetic rooms: both formats end to end (raw folder and
converted store), scores recomputed independently from the per-question answers in the JSON, SQA3D agents reaching
the model in the cloud's frame, and one-line refusals."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from cli_errors import one_line_error
from typer.testing import CliRunner

from pmoe_cli.app import app
from pmoe_core.convert import convert
from pmoe_core.qa.benchmark_eval import read_benchmark, scene_inputs
from pmoe_core.qa.metrics import em_by_type, scanqa_scores
from pmoe_core.qa.model import facing_xy
from pmoe_core.qa.readers import (
    read_scanqa,
    read_sqa3d,
    scanqa_path,
    scanqa_question_type,
    sqa3d_paths,
    sqa3d_question_type,
    write_sqa3d,
)
from pmoe_core.qa.sqa3d_frame import in_scene_frame
from pmoe_core.qa.synthetic_rooms import room_qa, write_room_sets
from pmoe_core.qa.train import QATrainConfig, train_qa
from pmoe_core.sources.synthetic_indoor import write_scannet

runner = CliRunner()


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    """A raw ScanNet folder (random axisAlignment per scene), its questions, and those written as benchmark files.
    Questions start with a capital, as ScanQA's do, so its case-sensitive type rule finds several types."""
    root = tmp_path_factory.mktemp("rooms")
    write_scannet(root, scenes=6, seed=3)
    files = tmp_path_factory.mktemp("files")
    items = [dataclasses.replace(i, question=i.question[0].upper() + i.question[1:]) for i in room_qa(root)]
    write_room_sets(items, files, "val", root)
    return root, files, items


@pytest.fixture(scope="module")
def store(rooms, tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    convert("scannet", rooms[0], str(out), workers=1)
    return out / "scannet.zarr"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny answering model trained for a few steps (the plumbing is tested, not answer quality)."""
    root = tmp_path_factory.mktemp("qa")
    cfg = QATrainConfig(out=str(root / "run"), tabletop_scenes=3, rooms=0, steps=2, dense_steps=1, batch_size=4,
                        warmup=1, preset="tiny", tensorboard=False, lexicon_names=24)
    return train_qa(cfg).checkpoint


def _eval(args: list[str], out) -> dict:
    result = runner.invoke(app, ["qa", "eval", *args, "--json", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_eval_is_listed():
    result = runner.invoke(app, ["qa", "--help"])
    assert result.exit_code == 0 and "eval" in result.output
    result = runner.invoke(app, ["qa", "eval", "--help"])
    for word in ("--scanqa", "--sqa3d-dir", "--split", "--scenes", "--scannet-raw", "--limit", "--em10", "--json"):
        assert word in result.output


def test_scanqa_file_scored_as_the_benchmark_scores_it(rooms, tiny_ckpt, tmp_path):
    root, files, _ = rooms
    path = scanqa_path(files, "val")
    data, output = _eval(["--scanqa", str(path), "--scenes", str(root), "--checkpoint", str(tiny_ckpt)],
                         tmp_path / "scanqa.json")
    expected = read_scanqa(path)
    assert data["benchmark"] == "ScanQA" and data["questions"] == data["questions_in_files"] == len(expected)
    assert data["scenes"] == len({i.scene for i in expected}) and data["scannet_raw"] is None
    rows = data["per_question"]
    assert [r["question_id"] for r in rows] == [i.qid for i in expected]
    assert [r["file_type"] for r in rows] == [i.question_type for i in expected]  # the synthetic family
    predictions = {r["question_id"]: r["prediction"] for r in rows}
    # the benchmark's types come from the question text (score.py's rule), recomputed here from the file
    typed = [dataclasses.replace(i, question_type=scanqa_question_type(i.question)) for i in expected]
    em = em_by_type(typed, predictions)
    assert data["scores"]["all"]["em1"] == pytest.approx(em.em1) and data["scores"]["all"]["count"] == em.count
    assert set(data["scores"]) == {"all", *em.per_type} and len(em.per_type) >= 3
    for qtype, (em1, count) in em.per_type.items():
        assert data["scores"][qtype]["em1"] == pytest.approx(em1) and data["scores"][qtype]["count"] == count
    captions = scanqa_scores(typed, predictions, meteor=False)
    assert data["scores"]["all"]["cider"] == pytest.approx(captions.cider)
    assert data["scores"]["all"]["bleu1"] == pytest.approx(captions.bleu[0])
    assert data["scores"]["all"]["meteor"] is not None or any("METEOR" in n for n in data["notes"])
    by_family = em_by_type(expected, predictions)
    assert {k: v["count"] for k, v in data["by_file_type"].items()} == {k: n for k, (_, n) in
                                                                         by_family.per_type.items()}
    assert "CIDEr" in output and "METEOR" in output and data["seconds"]["total"] > 0


def test_sqa3d_agents_reach_the_model_in_the_cloud_frame(rooms, store, tiny_ckpt, tmp_path):
    """Scenes from a converted store, agents placed through the raw folder; positions as the model read them equal
    the generator's (cloud-frame) poses, not the file's SQA3D-frame ones."""
    root, files, items = rooms
    data, output = _eval(["--sqa3d-dir", str(files), "--split", "val", "--scenes", str(store), "--scannet-raw",
                          str(root), "--checkpoint", str(tiny_ckpt), "--em10"], tmp_path / "sqa.json")
    in_file = read_sqa3d(*sqa3d_paths(files, "val"))
    generated = {i.qid: i for i in items if i.situation is not None}
    placed = {i.qid: i for i in in_scene_frame(in_file, root)}
    rows = data["per_question"]
    assert data["benchmark"] == "SQA3D" and [r["question_id"] for r in rows] == [i.qid for i in in_file]
    assert data["scannet_raw"] == str(root) and data["questions"] == len(generated)
    assert data["agents_outside"] == [] and "warning" not in output
    for row in rows:
        want = generated[row["question_id"]]
        assert np.allclose(row["position"], want.position, atol=1e-4)
        assert np.allclose(facing_xy(row["rotation"]), facing_xy(want.rotation), atol=1e-4)
        assert np.allclose(row["position"], placed[row["question_id"]].position)
        assert row["question_type"] == sqa3d_question_type(row["question"])
    assert not np.allclose([r["position"] for r in rows], [i.position for i in in_file], atol=0.1)
    typed = [dataclasses.replace(i, question_type=sqa3d_question_type(i.question)) for i in in_file]
    em = em_by_type(typed, {r["question_id"]: r["prediction"] for r in rows})
    em10 = em_by_type(typed, {r["question_id"]: r["ranked"] for r in rows}, top=10)
    assert data["scores"]["all"]["em1"] == pytest.approx(em.em1)
    assert data["scores"]["all"]["em10"] == pytest.approx(em10.em1)
    assert {k: v["count"] for k, v in data["scores"].items() if k != "all"} == {k: n for k, (_, n) in
                                                                                  em.per_type.items()}
    assert all(1 <= len(r["ranked"]) <= 10 for r in rows)
    assert "EM@10" in output and "CIDEr" not in output  # SQA3D's table is exact match only


def test_limit_takes_the_first_questions(rooms, tiny_ckpt, tmp_path):
    root, files, _ = rooms
    data, _ = _eval(["--sqa3d-dir", str(files), "--scenes", str(root), "--checkpoint", str(tiny_ckpt),
                     "--limit", "5"], tmp_path / "five.json")
    in_file = read_sqa3d(*sqa3d_paths(files, "val"))
    assert data["questions"] == 5 and data["questions_in_files"] == len(in_file)
    assert [r["question_id"] for r in data["per_question"]] == [i.qid for i in in_file[:5]]
    assert data["scannet_raw"] == str(root)  # --scenes is raw: it fixes the agent frame too


def test_one_line_errors(rooms, store, tiny_ckpt, tmp_path, capsys):
    root, files, _ = rooms
    scanqa = str(scanqa_path(files, "val"))
    ck = ["--checkpoint", str(tiny_ckpt)]
    err = one_line_error(capsys, ["qa", "eval", "--scenes", str(root), *ck])
    assert "--scanqa FILE or --sqa3d-dir DIR" in err
    err = one_line_error(capsys, ["qa", "eval", "--scanqa", scanqa, "--sqa3d-dir", str(files), "--scenes", str(root)])
    assert "not both" in err
    assert "--scenes ROOT" in one_line_error(capsys, ["qa", "eval", "--scanqa", scanqa])
    assert "SQA3D split" in one_line_error(capsys, ["qa", "eval", "--scanqa", scanqa, "--split", "val",
                                                    "--scenes", str(root)])
    missing = tmp_path / "ScanQA_v1.0_nope.json"
    assert str(missing) in one_line_error(capsys, ["qa", "eval", "--scanqa", str(missing), "--scenes", str(root)])
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    assert "broken.json: not valid JSON" in one_line_error(capsys, ["qa", "eval", "--scanqa", str(broken),
                                                                    "--scenes", str(root)])
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert "empty.json: the file holds no questions" in one_line_error(
        capsys, ["qa", "eval", "--scanqa", str(empty), "--scenes", str(root)])
    unanswered = tmp_path / "test.json"
    unanswered.write_text(json.dumps([{"scene_id": "scene0000_00", "question_id": "q1", "question": "What is it?"}]))
    assert "cannot be scored" in one_line_error(capsys, ["qa", "eval", "--scanqa", str(unanswered),
                                                         "--scenes", str(root)])
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps([{"scene_id": "scene0999_00", "question_id": "q1", "question": "What is it?",
                                      "answers": ["chair"]}]))
    err = one_line_error(capsys, ["qa", "eval", "--scanqa", str(elsewhere), "--scenes", str(store), *ck])
    assert str(store) in err and "scene0999_00" in err
    err = one_line_error(capsys, ["qa", "eval", "--sqa3d-dir", str(files), "--scenes", str(store), *ck])
    assert "--scannet-raw" in err and "v1_balanced_sqa_annotations_val_scannetv2.json" in err
    assert "raw ScanNet v2 folder" in one_line_error(capsys, ["qa", "eval", "--scanqa", scanqa, "--scenes",
                                                              str(tmp_path), *ck])
    err = one_line_error(capsys, ["qa", "eval", "--scanqa", scanqa, "--scenes", str(store.parent), *ck])
    assert f"(the store is {store})" in err  # convert's OUT folder given instead of the store in it
    (tmp_path / "bare" / "scans").mkdir(parents=True)
    err = one_line_error(capsys, ["qa", "eval", "--sqa3d-dir", str(files), "--scenes", str(store), "--scannet-raw",
                                  str(tmp_path / "bare"), *ck])
    assert "no ScanNet scene" in err and str(tmp_path / "bare") in err
    assert "no such folder" in one_line_error(capsys, ["qa", "eval", "--sqa3d-dir", str(tmp_path / "none"),
                                                       "--scenes", str(root)])
    assert "--limit must be >= 1" in one_line_error(capsys, ["qa", "eval", "--scanqa", scanqa, "--scenes",
                                                             str(root), "--limit", "0"])


def test_agents_outside_their_scene_are_reported(rooms):
    """A pose in the wrong frame is not refused (the file is scored whole) but named: here agents moved 50 m."""
    root, files, _ = rooms
    file = read_benchmark(sqa3d_dir=files, split="val", limit=6)
    items = in_scene_frame(file.items, root)
    moved = [dataclasses.replace(i, position=(i.position[0] + 50.0, *i.position[1:])) for i in items[:2]]
    inputs = scene_inputs(moved + items[2:], root, num_points=256, max_objects=8)
    assert inputs.agents_outside == [i.qid for i in moved]
    assert set(inputs.scenes) == {i.scene for i in items}
    assert scene_inputs(items, root, num_points=256, max_objects=8).agents_outside == []


def test_the_command_warns_of_agents_outside(rooms, tiny_ckpt, tmp_path):
    root, files, _ = rooms
    far = [dataclasses.replace(i, position=(i.position[0] + 50.0, *i.position[1:]))
           for i in read_sqa3d(*sqa3d_paths(files, "val"))[:3]]
    (tmp_path / "sqa").mkdir()
    write_sqa3d(*sqa3d_paths(tmp_path / "sqa", "val"), far)
    data, output = _eval(["--sqa3d-dir", str(tmp_path / "sqa"), "--scenes", str(root), "--checkpoint", str(tiny_ckpt)],
                         tmp_path / "far.json")
    assert data["agents_outside"] == [i.qid for i in far] and data["questions"] == 3
    assert f"warning: 3 of 3 agents stand outside their scene (first: question {far[0].qid})" in output
