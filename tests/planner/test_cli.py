"""`pmoe plan`: scene files, benchmark report, help without a subcommand, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pmoe_cli.plan import plan_app
from pmoe_core.planner.tasks import make_scene
from pmoe_core.schemas import validate

runner = CliRunner()


def test_plan_without_subcommand_prints_help():
    out = runner.invoke(plan_app, [])
    assert out.exit_code == 0 and "scene" in out.output and "bench" in out.output


def test_scene_writes_ply_and_json(tmp_path):
    out = runner.invoke(plan_app, ["scene", "--task", "stack-blocks", "--seed", "4", "--out", str(tmp_path / "s.ply")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "s.ply").stat().st_size > 10_000
    data = json.loads((tmp_path / "s.json").read_text())
    validate(data, "planner_scene")
    assert data == make_scene("stack-blocks", 4).to_json()


def test_bench_json_report(tmp_path):
    report = tmp_path / "bench.json"
    out = runner.invoke(plan_app, ["bench", "--task", "stack-blocks", "--episodes", "2", "--json", str(report)])
    assert out.exit_code == 0, out.output
    assert "stack-blocks" in out.output
    data = json.loads(report.read_text())
    validate(data, "planner_bench")
    assert data["tasks"][0]["success_rate"] == 1.0 and data["policy"] == "oracle"


def test_registered_on_the_main_app_and_errors_are_one_line(capsys):
    from pmoe_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["plan", "bench", "--policy", "psychic", "--episodes", "1"])
    assert exc.value.code == 1
    assert capsys.readouterr().err.startswith("pmoe: error: unknown policy 'psychic'")


@pytest.mark.parametrize("command", [["bench", "--episodes", "1"], ["--scene", "x.ply", "--instruction", "stack"]])
def test_json_into_a_missing_folder_is_refused_before_any_work(command, tmp_path, capsys, monkeypatch):
    from pmoe_cli import plan
    from pmoe_cli.app import main

    monkeypatch.setattr(plan, "run_bench", lambda *a, **k: pytest.fail("ran episodes before checking --json"))
    target = tmp_path / "missing" / "out.json"
    with pytest.raises(SystemExit) as exc:
        main(["plan", *command, "--json", str(target)])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.count("\n") == 1
    assert "folder does not exist" in err and str(tmp_path / "missing") in err
