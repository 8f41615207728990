"""A newcomer follows the README literally: fresh copy of the project, fresh virtual environment, the README's
bootstrap line, then its quick-check line (the main job, sized down). Outputs must exist and validate."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pmoe_core.schemas import validate

REPO = Path(__file__).resolve().parent.parent


def readme_command(marker: str) -> str:
    """The command line right under `<!-- marker -->` and its ```bash fence."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", text)
    assert match, f"README.md has no {marker} block"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    out = subprocess.run(["bash", "-c", "sed -n '/<!-- test-command -->/{n;n;p;}' README.md"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.stdout.strip() == readme_command("test-command")
    assert "sed -n '/<!-- test-command -->/{n;n;p;}' README.md" in (REPO / ".ci" / "run").read_text()


def test_readme_commands_set_up_before_they_run():
    for marker in ("main-command", "quick-command", "test-command"):
        assert readme_command(marker).startswith("scripts/bootstrap && "), marker


def test_demo_refuses_a_file_as_out_folder(tmp_path, capsys):
    """A typo'd --out that names a file fails at once with one line, before any step runs or anything is written."""
    from pmoe_cli.app import main

    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(target)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == f"pmoe: error: {target}: --out must be a folder (it is created if missing), not a file\n"
    assert target.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def copy_checkout(dest: Path) -> Path:
    """A copy of the project as a newcomer's clone would hold it: tracked and not-ignored files, nothing built."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def fresh_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without its virtual environment (nothing of .venv on PATH or PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    env["PMOE_CACHE_DIR"] = str(tmp_path / "cache")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_newcomer_walkthrough_in_a_fresh_environment(tmp_path):
    checkout = copy_checkout(tmp_path / "pmoe")
    env = fresh_env(tmp_path)
    command = readme_command("quick-command")
    proc = subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert (checkout / ".venv" / "bin" / "pmoe").exists(), "the README's bootstrap made no fresh environment"
    out = checkout / re.search(r"--out (\S+)", command).group(1)
    summary = json.loads((out / "summary.json").read_text())
    assert [s["command"].split()[1] for s in summary["steps"]][-5:] == ["eval", "route-inspect", "plan", "plan",
                                                                         "predict"]
    labelled = [p for p in (out / "reports" / "predict").iterdir() if p.name.endswith(".report.json")]
    assert len(labelled) == 1 and "reading lamp" in json.loads(labelled[0].read_text())["untrained"]
    validate(json.loads(labelled[0].read_text()), "predict_report")
    for name in ("eval", "eval_union"):
        report = json.loads((out / "reports" / name / "report.json").read_text())
        validate(report, "eval_report")
        assert {r["dataset"] for r in report["results"]} >= {"scannet", "matterport3d", "waymo"}
    validate(json.loads((out / "reports" / "routing" / "report.json").read_text()), "routing_report")
    plan = json.loads((out / "reports" / "plan" / "plan.json").read_text())
    validate(plan, "plan_output")
    scene = json.loads((out / "reports" / "plan" / "scene.json").read_text())
    assert plan["instruction"] == scene["instruction"]  # the planner is asked what the scene's task asks
    assert "done in" in proc.stdout
