"""`pmoe plan --scene --instruction` with trained checkpoints, `plan train`, `plan bench --policy model`, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_errors import one_line_error
from plyfile import PlyData, PlyElement
from typer.testing import CliRunner

from pmoe_cli.app import main
from pmoe_cli.plan import plan_app
from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.planner.policy import (
    DEFAULT_CHECKPOINT,
    cloud_input,
    load_planner,
    plan_cloud,
)
from pmoe_core.planner.train import PlannerTrainConfig, train_planner
from pmoe_core.schemas import validate
from pmoe_core.tabletop.observe import observe
from pmoe_core.tabletop.tasks import make_scene

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny planner trained for a few steps (planning quality is not the point here, the plumbing is)."""
    root = tmp_path_factory.mktemp("plan")
    cfg = PlannerTrainConfig(
        out=str(root / "run"), tasks=("stack-blocks",), episodes=2, steps_stage1=1, steps=3, batch_size=2, warmup=1,
        preset="tiny", cache=str(root / "demos"), tensorboard=False,
    )
    return train_planner(cfg).checkpoint


@pytest.fixture(scope="module")
def scene_ply(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene") / "s.ply"
    result = runner.invoke(plan_app, ["scene", "--task", "stack-blocks", "--seed", "100000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _ok(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0


def test_plan_prints_steps_and_writes_valid_json(tiny_ckpt, scene_ply, tmp_path):
    out = tmp_path / "plan.json"
    args = ["--scene", str(scene_ply), "--instruction", "stack all the blocks on the red block",
            "--checkpoint", str(tiny_ckpt), "--json", str(out), "--euler-steps", "2", "--seed", "3"]
    result = runner.invoke(plan_app, args)
    assert result.exit_code == 0, result.output
    assert "pick x, y, z" in result.output and "stages: load" in result.output
    data = json.loads(out.read_text())
    validate(data, "plan_output")
    assert data["euler_steps"] == 2 and data["seed"] == 3 and "simulation" not in data
    assert 1 <= len(data["steps"]) <= 6
    q = np.array(data["steps"][0]["pick"]["quaternion"])
    assert abs(np.linalg.norm(q) - 1) < 1e-5
    rerun = args[:-6] + ["--json", str(tmp_path / "b.json"), "--euler-steps", "2", "--seed", "3"]
    again = runner.invoke(plan_app, rerun)
    assert again.exit_code == 0
    assert json.loads((tmp_path / "b.json").read_text())["steps"] == data["steps"]  # seeded: reproducible


def test_simulate_scores_the_plan(tiny_ckpt, scene_ply, tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(plan_app, ["--scene", str(scene_ply), "--instruction", "stack the blocks",
                                      "--checkpoint", str(tiny_ckpt), "--simulate", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "simulated: reward" in result.output
    sim = json.loads(out.read_text())["simulation"]
    validate(json.loads(out.read_text()), "plan_output")
    assert 0.0 <= sim["reward"] <= 1.0 and isinstance(sim["success"], bool)
    assert len(sim["matched"]) == len(make_scene("stack-blocks", 100000).goals)


def test_simulate_says_which_goal_it_scored_when_the_instruction_differs(tiny_ckpt, scene_ply, tmp_path, capsys):
    """scene_ply is stack-blocks seed 100000: 'build one tower on top of the brown block with all the other blocks'."""
    out = tmp_path / "plan.json"
    argv = ["plan", "--scene", str(scene_ply), "--instruction", "stack all the blocks on the red block",
            "--checkpoint", str(tiny_ckpt), "--simulate", "--json", str(out)]
    _ok(argv)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pmoe: warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("pmoe: warning: --simulate scores the scene file's goal")
    assert "brown" in warnings[0] and "red" in warnings[0]
    data = json.loads(out.read_text())
    validate(data, "plan_output")
    assert data["simulation"]["instruction_differs"] is True
    assert data["simulation"]["goal_instruction"] == make_scene("stack-blocks", 100000).instruction
    assert data["checks"]["task"] == "stack-blocks" and data["checks"]["words"] == {"color": "red"}
    _ok([*argv[:4], "STACK ALL THE BLOCKS ON THE BROWN BLOCK!", *argv[5:], "--overwrite"])
    assert "pmoe: warning" not in capsys.readouterr().err
    assert json.loads(out.read_text())["simulation"]["instruction_differs"] is False


def test_bench_with_the_model_policy(tiny_ckpt, tmp_path):
    report = tmp_path / "bench.json"
    result = runner.invoke(plan_app, ["bench", "--task", "stack-blocks", "--episodes", "1", "--policy", "model",
                                      "--checkpoint", str(tiny_ckpt), "--seed", "100000", "--json", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    validate(data, "planner_bench")
    assert data["policy"] == "model" and data["tasks"][0]["episodes"] == 1


def test_train_command_writes_checkpoint_and_export(tmp_path, monkeypatch):
    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path / "cache"))
    run, slim = tmp_path / "run", tmp_path / "slim.pt"
    result = runner.invoke(plan_app, ["train", "--tasks", "stack-blocks", "--episodes", "2", "--steps-stage1", "1",
                                      "--steps", "2", "--batch-size", "2", "--preset", "tiny", "--experts", "2",
                                      "--out", str(run), "--export", str(slim)])
    assert result.exit_code == 0, result.output
    assert "done: step 3" in result.output
    meta = load_checkpoint(slim)["meta"]
    assert meta["kind"] == "planner" and meta["config"]["trunk"]["experts"] == 2
    assert meta["command"].startswith("pmoe ") and meta["complete"] is True
    assert (run / "log.jsonl").is_file() and (run / "tb").is_dir()


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no packaged default checkpoint")
def test_default_checkpoint_plans_a_generated_scene():
    planner = load_planner()
    assert planner.meta["kind"] == "planner" and planner.meta["complete"] is True
    assert "pmoe plan train" in planner.meta["command"]
    desc = make_scene("put-block-into-matching-bowl", 100001)
    points = cloud_input(observe(desc), planner.model.config, seed=desc.seed)
    steps, timings = plan_cloud(planner, points, desc.instruction)
    assert 1 <= len(steps) <= planner.model.config.dit.max_steps
    assert timings.encode_s > 0 and timings.llm_s > 0 and timings.dit_s > 0
    assert DEFAULT_CHECKPOINT.stat().st_size < 20 * 2**20


def test_errors_are_one_line_naming_the_file(tiny_ckpt, scene_ply, tmp_path, capsys):
    missing = tmp_path / "nope.ply"
    assert str(missing) in one_line_error(capsys, ["plan", "--scene", str(missing), "--instruction", "x",
                                           "--checkpoint", str(tiny_ckpt)])

    bare = tmp_path / "bare.ply"
    xyz = np.zeros(10, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    PlyData([PlyElement.describe(xyz, "vertex")]).write(str(bare))
    err = one_line_error(capsys, ["plan", "--scene", str(bare), "--instruction", "x", "--checkpoint", str(tiny_ckpt)])
    assert str(bare) in err and "colours" in err

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert str(junk) in one_line_error(capsys, ["plan", "--scene", str(scene_ply), "--instruction", "stack the blocks",
                                        "--checkpoint", str(junk)])

    err = one_line_error(capsys, ["plan", "train", "--tasks", "juggle-blocks", "--out", str(tmp_path / "r")])
    assert "unknown task 'juggle-blocks'" in err

    lonely = tmp_path / "lonely.ply"
    lonely.write_bytes(scene_ply.read_bytes())  # no .json sidecar beside it
    err = one_line_error(capsys, ["plan", "--scene", str(lonely), "--instruction", "x", "--checkpoint", str(tiny_ckpt),
                          "--simulate"])
    assert str(lonely.with_suffix(".json")) in err

    assert "--instruction" in one_line_error(capsys, ["plan", "--scene", str(scene_ply)])
