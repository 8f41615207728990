"""`pmoe train` SIGKILLed at seeded random moments, then resumed with --resume: ckpt.pt is never half-written,
steps continue from the last checkpoint (the start line says so), and a finished run leaves no temp files."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from support_loader import reliability_conftest

from pmoe_core.engine.checkpoint import load_checkpoint, save_checkpoint

REPO = reliability_conftest().REPO
pmoe_argv = reliability_conftest().pmoe_argv
run_pmoe = reliability_conftest().run_pmoe

KILL_TRIALS = int(os.environ.get("PMOE_TRAIN_KILL_TRIALS", "4"))
STEPS = 16


def _engine_fixtures():
    """The tiny-store builders of tests/engine/conftest.py (one source of truth for engine test data)."""
    spec = importlib.util.spec_from_file_location("engine_fixtures", REPO / "tests" / "engine" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stores(tmp_path_factory, cache_env) -> Path:
    engine = _engine_fixtures()
    out = tmp_path_factory.mktemp("train-stores")
    engine.write_store(out, "scannet", engine.room, train=4, val=1, seed=0)
    engine.write_store(out, "semantickitti", engine.street, train=4, val=1, seed=1)
    return out


def _train_args(stores: Path, run: Path, resume: bool) -> list[object]:
    args = ["train", "--datasets", "scannet,kitti", "--data", stores, "--out", run, "--preset", "pmoe-tiny",
            "--steps", STEPS, "--batch-size", 2, "--workers", 0, "--log-every", 1, "--ckpt-every", 2,
            "--max-points", 2000, "--threads", 1, "--device", "cpu"]
    return args + (["--resume"] if resume else [])


def _start_step(output: str) -> int | None:
    match = re.search(r"steps (\d+)->(\d+)", output)
    return int(match.group(1)) if match else None


def _assert_checkpoint_sound(run: Path) -> int | None:
    """ckpt.pt is absent or a complete, schema-valid checkpoint; returns its step."""
    ckpt = run / "ckpt.pt"
    if not ckpt.exists():
        return None
    meta = load_checkpoint(ckpt)["meta"]  # raises FormatError on a torn file; validates meta against its schema
    return int(meta["step"])


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(stores, tmp_path, cache_env):
    run = tmp_path / "run"
    rng = random.Random(7)
    stats = {"kills": 0, "kills_with_checkpoint": 0, "resumes": 0, "temp_files_seen_after_kill": 0,
             "resume_steps": []}
    for _ in range(KILL_TRIALS):
        resume = (run / "ckpt.pt").exists()
        proc = subprocess.Popen(pmoe_argv(*_train_args(stores, run, resume)), cwd=REPO, env=cache_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        before = _assert_checkpoint_sound(run)
        try:
            _wait_for_training(proc, run, before, rng)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate()[0]
        stats["kills"] += 1
        if resume:
            assert _start_step(output) == before, output  # continued from the checkpoint it found, not from 0
            stats["resumes"] += 1
            stats["resume_steps"].append(before)
        after = _assert_checkpoint_sound(run)
        stats["kills_with_checkpoint"] += after is not None
        stats["temp_files_seen_after_kill"] += len(list(run.glob(".ckpt.pt.*.partial.pt")))
        if after is not None and before is not None:
            assert after >= before

    last = _assert_checkpoint_sound(run)
    done = run_pmoe(cache_env, *_train_args(stores, run, resume=last is not None), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _start_step(done.stdout + done.stderr) == (last or 0)
    meta = load_checkpoint(run / "ckpt.pt")["meta"]
    assert meta["complete"] and meta["step"] == STEPS
    assert list(run.glob(".ckpt.pt.*.partial.pt")) == []  # a completed run leaves no temp files, even after kills
    steps = [r["step"] for r in _log(run) if r.get("event") == "train"]
    assert steps and max(steps) == STEPS
    assert stats["resumes"] >= 1, stats
    _record("train_kill", stats)


def _wait_for_training(proc: subprocess.Popen, run: Path, before: int | None, rng: random.Random) -> None:
    """Return at a random moment after training has started (and, half the time, during a checkpoint save)."""
    deadline = time.monotonic() + 240
    log = run / "log.jsonl"
    seen = len(_log(run)) if log.exists() else 0
    target = seen + rng.randint(2, 6)  # usually past the next save (--ckpt-every 2), so resumes move on
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(_log(run)) >= target:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be killed"
    if rng.random() < 0.5:  # aim at the save: wait for a temp file to appear (or give up after 2 s)
        until = time.monotonic() + 2
        while time.monotonic() < until and not list(run.glob(".ckpt.pt.*.partial.pt")):
            time.sleep(0.002)
    else:
        time.sleep(rng.uniform(0.0, 0.3))


def _log(run: Path) -> list[dict]:
    rows = []
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line torn by the kill
    return rows


def test_stale_temp_files_are_cleaned_by_the_next_save(tmp_path):
    """Temp files that a killed save left behind are removed by the next successful save, and never loaded."""
    stale = tmp_path / ".ckpt.pt.abc123.partial.pt"
    stale.write_bytes(b"torn")
    other = tmp_path / ".other.pt.x.partial.pt"
    other.write_bytes(b"not ours")
    meta = {"kind": "segmentation", "step": 1, "complete": False}
    save_checkpoint(tmp_path / "ckpt.pt", meta, {"w": torch.zeros(2)})
    assert not stale.exists() and other.exists()
    assert load_checkpoint(tmp_path / "ckpt.pt")["meta"]["step"] == 1


def _record(name: str, stats: dict) -> None:
    report = os.environ.get("PMOE_RELIABILITY_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"test": name, **stats}) + "\n")
