"""`pmoe plan`: scene files, benchmark report, help without a subcommand, one-line errors."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from pmoe_cli.plan import BENCH_POLICIES, plan_app
from pmoe_core.tabletop.tasks import make_scene
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


def test_scene_and_bench_in_other_phrasings(tmp_path):
    out = runner.invoke(plan_app, ["scene", "--task", "stack-blocks", "--seed", "4", "--phrasing", "heldout",
                                   "--out", str(tmp_path / "s.ply")])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data == make_scene("stack-blocks", 4, phrasing="heldout").to_json() and data["phrasing"] == "heldout"
    assert data["instruction"] != make_scene("stack-blocks", 4).instruction
    report = tmp_path / "bench.json"
    out = runner.invoke(plan_app, ["bench", "--task", "stack-blocks", "--episodes", "1", "--phrasing", "train",
                                   "--json", str(report)])
    assert out.exit_code == 0, out.output
    data = json.loads(report.read_text())
    validate(data, "planner_bench")
    assert data["phrasing"] == "train"
    bad = runner.invoke(plan_app, ["bench", "--episodes", "1", "--phrasing", "poetic"])
    assert bad.exit_code != 0 and "unknown phrasing 'poetic'" in str(bad.exception)


def test_registered_on_the_main_app_and_errors_are_one_line(capsys):
    from pmoe_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["plan", "bench", "--policy", "psychic", "--episodes", "1"])
    assert exc.value.code == 1
    assert capsys.readouterr().err.startswith("pmoe: error: unknown policy 'psychic'")


@pytest.mark.parametrize("command", [["bench", "--episodes", "1"], ["--scene", "x.ply", "--instruction", "stack"]])
def test_json_into_a_missing_folder_is_refused_before_any_work(command, tmp_path, capsys, monkeypatch):
    from pmoe_cli.app import main

    from pmoe_core.tabletop import episodes

    monkeypatch.setattr(episodes, "run_bench", lambda *a, **k: pytest.fail("ran episodes before checking --json"))
    target = tmp_path / "missing" / "out.json"
    with pytest.raises(SystemExit) as exc:
        main(["plan", *command, "--json", str(target)])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.count("\n") == 1
    assert "folder does not exist" in err and str(tmp_path / "missing") in err


def test_bench_policies_in_the_help_are_the_known_ones():
    from pmoe_core.tabletop.episodes import POLICIES

    assert BENCH_POLICIES == (*POLICIES, "model")


@pytest.mark.parametrize("command", [["scene", "--task", "stack-blocks", "--out", "s.ply"], ["bench", "--episodes", "1"],
                                     ["train", "--steps", "1"], ["--scene", "s.ply", "--instruction", "stack"]])
def test_without_the_planner_extra_each_command_names_it(command, tmp_path, capsys, monkeypatch):
    """A core install has no MuJoCo: one line naming the extra, nothing written; help still works."""
    from pmoe_cli.app import main

    monkeypatch.setitem(sys.modules, "mujoco", None)  # what `import mujoco` does where it is not installed
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["plan", *command])
    assert exc.value.code == 1
    assert capsys.readouterr().err == ("pmoe: error: `pmoe plan` needs the planner extra: pip install 'pmoe[planner]' "
                                       "(mujoco not installed)\n")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit) as exc:
        main(["plan", *command[:1 if command[0].isalpha() else 0], "--help"])
    assert exc.value.code == 0 and "Usage: pmoe plan" in capsys.readouterr().out


def test_scene_out_is_replaced_only_with_overwrite(tmp_path):
    args = ["scene", "--task", "stack-blocks", "--seed", "4", "--out", str(tmp_path / "s.ply")]
    assert runner.invoke(plan_app, args).exit_code == 0
    (tmp_path / "s.json").write_text("mine")
    refused = runner.invoke(plan_app, [*args[:-3], "5", "--out", str(tmp_path / "s.ply")])
    assert refused.exit_code != 0 and "already exists; pass --overwrite" in str(refused.exception or refused.output)
    assert (tmp_path / "s.json").read_text() == "mine"  # nothing of the refused call was written
    again = runner.invoke(plan_app, [*args[:-3], "5", "--out", str(tmp_path / "s.ply"), "--overwrite"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "s.json").read_text())["seed"] == 5


@pytest.mark.parametrize("command", [["plan", "train"], ["qa", "train"]])
def test_train_export_is_checked_first_and_replaced_only_with_overwrite(command, tmp_path, capsys):
    """An existing --export file is refused before any data or training work (one line, exit 1)."""
    from pmoe_cli.app import main

    target = tmp_path / "model.pt"
    target.write_bytes(b"someone else's weights")
    with pytest.raises(SystemExit) as exc:
        main([*command, "--out", str(tmp_path / "run"), "--export", str(target)])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.count("\n") == 1
    assert "already exists; pass --overwrite to replace it" in err and str(target) in err
    assert target.read_bytes() == b"someone else's weights" and not (tmp_path / "run").exists()
