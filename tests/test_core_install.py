"""`pip install .` with no extras gives a working `pmoe`: a fresh virtual environment gets torch (the CPU wheel, as
scripts/bootstrap installs it) and a copy of the checkout, nothing else. Every command that needs no extra starts;
the quick ones run; `pmoe plan` names the extra it needs in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_readme_walkthrough import copy_checkout, fresh_env

from pmoe_core import __version__

EXTRAS_MODULES = ("mujoco", "peft", "gguf", "spconv", "open3d", "open_clip", "pycocoevalcap")
PLAN_LINE = ("pmoe: error: `pmoe plan` needs the planner extra: pip install 'pmoe[planner]' "
             "(mujoco, peft, gguf not installed)\n")
# Each command's --help in one process (a process per command would cost ~2 s of imports each).
ALL_HELP = """
import sys
from pmoe_cli.app import app, main
names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
for name in names:
    try:
        main([name, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, (name, exc.code)
print(" ".join(names))
"""


def _run(args: list, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(args: list, cwd: Path, env: dict, timeout: int = 900) -> str:
    proc = _run(args, cwd, env, timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout


@pytest.mark.slow
def test_core_install_runs_every_command_that_needs_no_extra(tmp_path):
    checkout = copy_checkout(tmp_path / "pmoe")
    env = fresh_env(tmp_path)
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    started = time.perf_counter()
    _ok([sys.executable, "-m", "venv", venv], tmp_path, env)
    # --no-compile: byte-compiling torch and transformers at install is a third of the time; imports compile lazily
    _ok([venv / "bin" / "pip", "install", "-q", "--no-compile", "torch==2.13.0"], tmp_path, env)
    _ok([venv / "bin" / "pip", "install", "-q", "--no-compile", checkout], tmp_path, env)
    installed = time.perf_counter() - started
    python, pmoe = venv / "bin" / "python", venv / "bin" / "pmoe"

    present = _ok([python, "-c", "import importlib.util as u; print(*[m for m in %r if u.find_spec(m)])"
                   % (EXTRAS_MODULES,)], work, env)
    assert present.split() == [], f"a core install pulled in extras: {present}"
    assert _ok([pmoe, "--version"], work, env) == f"pmoe {__version__}\n"
    listed = _ok([pmoe, "--help"], work, env)
    names = _ok([python, "-c", ALL_HELP], work, env).splitlines()[-1].split()
    assert "plan" in names and "convert" in names
    assert all(name in listed for name in names)

    _ok([pmoe, "synth", "s3dis", "raw"], work, env)
    _ok([pmoe, "convert", "s3dis", "raw", "out"], work, env)
    _ok([pmoe, "check", "out/s3dis.zarr"], work, env)  # validates against the JSON Schemas the wheel ships
    _ok([pmoe, "export", "out/s3dis.zarr", "scene.ply", "--split", "train", "--scene", "0"], work, env)
    assert b"property int scalar_class" in (work / "scene.ply").read_bytes()[:1000]
    assert "pmoe-tiny" in _ok([pmoe, "models"], work, env)

    plan = _run([pmoe, "plan", "scene", "--task", "stack-blocks", "--out", "s.ply"], work, env)
    assert (plan.returncode, plan.stderr) == (1, PLAN_LINE)
    assert not (work / "s.ply").exists()
    qa = _run([pmoe, "qa", "--scene", "scene.ply", "--question", "how many chairs are there?"], work, env)
    assert (qa.returncode, qa.stderr) == (1, PLAN_LINE.replace("`pmoe plan`", "`pmoe qa`"))
    print(f"core install: {installed:.0f} s to install, {time.perf_counter() - started:.0f} s in all")
