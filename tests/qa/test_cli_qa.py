"""`pmoe qa` with a tiny trained checkpoint: answers (greedy, beams, JSON), `qa train`, `qa bench`, and one-line
errors for bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_errors import one_line_error
from plyfile import PlyData, PlyElement
from qa_model_support import cube_on_table
from typer.testing import CliRunner

from pmoe_cli.app import app
from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.io import write_ply
from pmoe_core.io.ply import write_ply_arrays
from pmoe_core.qa.train import QATrainConfig, train_qa

runner = CliRunner()
SCENE = "tabletop/stack-blocks/seen/100000"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny answering model trained for a few steps (answer quality is not the point here, the plumbing is).
    Uses the default QA cache (tiny keyed sets), as `pmoe qa bench` will."""
    root = tmp_path_factory.mktemp("qa")
    cfg = QATrainConfig(out=str(root / "run"), tabletop_scenes=3, rooms=0, steps=2, dense_steps=1, batch_size=4,
                        warmup=1, preset="tiny", tensorboard=False, lexicon_names=24)
    return train_qa(cfg).checkpoint


@pytest.fixture(scope="module")
def cube_ply(tmp_path_factory):
    out = tmp_path_factory.mktemp("cloud") / "cube.ply"
    write_ply(cube_on_table((255, 87, 89)), out)
    return out


def test_qa_is_listed():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "qa" in result.output
    result = runner.invoke(app, ["qa", "--help"])
    assert result.exit_code == 0
    for word in ("--scene", "--question", "--situation", "--position", "--rotation", "--beams", "--max-tokens", "train",
                 "bench"):
        assert word in result.output


def test_answer_greedy_and_json(tiny_ckpt, cube_ply, tmp_path):
    out = tmp_path / "a.json"
    args = ["qa", "--scene", str(cube_ply), "--question", "what color is the block?", "--checkpoint", str(tiny_ckpt),
            "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["answers"]) == 1 and data["beams"] == 1 and data["scene_kind"] == "tabletop"
    assert data["object_proposals"] == 1 and data["max_tokens"] == 8
    assert data["answers"][0]["text"] in result.output
    refused = runner.invoke(app, args)  # an existing --json file is not replaced without --overwrite
    assert refused.exit_code == 1 and json.loads(out.read_text()) == data
    again = runner.invoke(app, [*args, "--overwrite"])  # deterministic: the same call, the same answer
    assert json.loads(out.read_text())["answers"] == data["answers"] and again.exit_code == 0


def test_answer_beams_situated_tabletop_ref(tiny_ckpt, tmp_path):
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["qa", "--scene", SCENE, "--question", "what is on my left?", "--situation",
                                 "I am facing the red block.", "--checkpoint", str(tiny_ckpt), "--beams", "3",
                                 "--max-tokens", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    answers = json.loads(out.read_text())["answers"]
    assert 1 <= len(answers) <= 3 and "rank" in result.output
    assert [a["logprob"] for a in answers] == sorted((a["logprob"] for a in answers), reverse=True)
    assert json.loads(out.read_text())["situation"] == "I am facing the red block."


def test_situated_agent_position_and_rotation(tiny_ckpt, cube_ply, tmp_path, capsys):
    out = tmp_path / "s.json"
    base = ["qa", "--scene", str(cube_ply), "--question", "what is on my left?", "--checkpoint", str(tiny_ckpt)]
    agent = ["--position", "0.2", "-0.1", "0", "--rotation", "0", "0", "0.7071068", "0.7071068"]
    result = runner.invoke(app, [*base, "--situation", "I am facing the block.", *agent, "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["position"] == [0.2, -0.1, 0.0] and data["rotation"] == [0.0, 0.0, 0.7071068, 0.7071068]
    assert data["situation"] == "I am facing the block." and data["answers"][0]["text"] in result.output
    situated = ["--situation", "I am facing the block."]
    assert "go together" in one_line_error(capsys, [*base, *situated, "--position", "0", "0", "0"])
    assert "need --situation" in one_line_error(capsys, [*base, *agent])
    assert "unit quaternion" in one_line_error(capsys, [*base, *situated, "--position", "0", "0", "0",
                                                        "--rotation", "0", "0", "1", "1"])
    assert "finite" in one_line_error(capsys, [*base, *situated, "--position", "nan", "0", "0",
                                               "--rotation", "0", "0", "0", "1"])
    err = one_line_error(capsys, [*base, *situated, "--position", "50", "0", "0", "--rotation", "0", "0", "0", "1"])
    assert "outside the scene" in err and "cube.ply" in err


def test_situated_agent_in_sqa3d_frame(tiny_ckpt, cube_ply, tmp_path, capsys):
    """--sqa3d-scene: the pose is SQA3D's (relative to the raw mesh's bounding-box centre); the model reads it in
    the cloud's frame, and the JSON says which pose that was."""
    folder = tmp_path / "scans" / "scene0001_00"
    folder.mkdir(parents=True)
    corners = np.array([[0.0, -0.2, -0.5], [0.4, 0.0, 0.5]], np.float32)  # bounding-box centre (0.2, -0.1, 0)
    write_ply_arrays(folder / "scene0001_00_vh_clean_2.ply", {"x": corners[:, 0], "y": corners[:, 1],
                                                             "z": corners[:, 2]})
    out = tmp_path / "f.json"
    base = ["qa", "--scene", str(cube_ply), "--question", "what is on my left?", "--checkpoint", str(tiny_ckpt),
            "--situation", "I am facing the block."]
    agent = ["--position", "0", "0", "0", "--rotation", "0", "0", "0.7071068", "0.7071068"]
    result = runner.invoke(app, [*base, *agent, "--sqa3d-scene", str(folder), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert np.allclose(data["position"], [0.2, -0.1, 0.0]) and np.allclose(data["rotation"][2:], [0.7071068] * 2)
    assert data["sqa3d_scene"] == str(folder)
    assert "give them too" in one_line_error(capsys, [*base, "--sqa3d-scene", str(folder)])
    assert "not a raw ScanNet scene folder" in one_line_error(capsys, [*base, *agent, "--sqa3d-scene", str(tmp_path)])


def test_bad_inputs_are_one_line(tiny_ckpt, cube_ply, tmp_path, capsys):
    ck = ["--checkpoint", str(tiny_ckpt)]
    assert "--question is empty" in one_line_error(capsys, ["qa", "--scene", str(cube_ply), "--question", "  ", *ck])
    assert "--situation is empty" in one_line_error(
        capsys, ["qa", "--scene", str(cube_ply), "--question", "what?", "--situation", "", *ck])
    assert "both --scene and --question" in one_line_error(capsys, ["qa", "--question", "what?"])
    err = one_line_error(capsys, ["qa", "--scene", str(tmp_path / "absent.ply"), "--question", "what?", *ck])
    assert "absent.ply" in err
    bare = tmp_path / "bare.ply"
    xyz = np.zeros(10, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    xyz["x"] = np.arange(10)
    PlyData([PlyElement.describe(xyz, "vertex")]).write(str(bare))
    err = one_line_error(capsys, ["qa", "--scene", str(bare), "--question", "what?", *ck])
    assert "bare.ply" in err and "no colour" in err
    assert "--beams must be >= 1" in one_line_error(capsys, ["qa", "--scene", str(cube_ply), "--question", "what?",
                                                     "--beams", "0", *ck])
    assert "--max-tokens must be 1..15" in one_line_error(capsys, ["qa", "--scene", str(cube_ply), "--question", "what?",
                                                           "--max-tokens", "40", *ck])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    assert "junk.pt" in one_line_error(capsys, ["qa", "--scene", str(cube_ply), "--question", "what?",
                                        "--checkpoint", str(junk)])
    assert "unknown" in one_line_error(capsys, ["qa", "bench", "--checkpoint", str(tiny_ckpt), "--conditions", "sideways"])


def test_bench_reports_model_and_majority(tiny_ckpt, tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["qa", "bench", "--checkpoint", str(tiny_ckpt), "--tabletop-scenes", "2",
                                 "--rooms", "0", "--em10", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["conditions"]) == {"heldout-scenes", "heldout-templates"}
    for rows in report["conditions"].values():
        assert rows["all"]["model"]["count"] == rows["all"]["majority"]["count"] > 0
        assert 0 <= rows["all"]["model"]["em1"] <= 100 and 0 <= rows["all"]["model"]["em10"] <= 100
        assert rows["all"]["majority"]["em10"] >= rows["all"]["majority"]["em1"]  # its top answer is among its ten
        assert "all" in rows and len(rows) > 2  # overall and at least two question types
    assert "EM@1" in result.output and "EM@10" in result.output and "majority" in result.output
    assert report["em10"] is True


def test_train_command_records_itself(tmp_path):
    out = tmp_path / "run"
    slim = tmp_path / "slim.pt"
    result = runner.invoke(app, ["qa", "train", "--preset", "tiny", "--tabletop-scenes", "2", "--rooms", "0",
                                 "--steps", "2", "--dense-steps", "1", "--batch-size", "2", "--out", str(out),
                                 "--export", str(slim)])
    assert result.exit_code == 0, result.output
    assert "done: step 2" in result.output and slim.is_file()
    meta = load_checkpoint(out / "qa.pt")["meta"]
    assert meta["kind"] == "qa" and meta["command"].startswith("pmoe ")
