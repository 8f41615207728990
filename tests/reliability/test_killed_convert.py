"""`pmoe convert` SIGKILLed at seeded random moments, then resumed: the store checks clean after every kill and ends
identical (content digest) to an uninterrupted run. Trials: PMOE_KILL_TRIALS (default 16)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from store_digest import store_digest
from support_loader import reliability_conftest

from pmoe_core.sources.synthetic_outdoor import write_semantickitti
from pmoe_core.store import check_store
from pmoe_core.store.layout import LOCK_KEY

REPO = reliability_conftest().REPO
pmoe_argv = reliability_conftest().pmoe_argv
run_pmoe = reliability_conftest().run_pmoe

KILL_TRIALS = int(os.environ.get("PMOE_KILL_TRIALS", "16"))
SCENES = 24


def _convert_argv(raw: Path, out: Path, workers: int) -> list[str]:
    return pmoe_argv("convert", "semantickitti", raw, out, "--workers", workers)


def _kill_during(argv: list[str], env: dict, rng: random.Random) -> tuple[int | None, str]:
    """Start `argv` and SIGKILL it at a seeded random moment: one time in five during start-up (store creation,
    lock), otherwise right after a random progress line "[i/N]" plus 0-50 ms, i.e. inside or between commits.
    Returns (exit code, or None if killed; stderr)."""
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: the kill reaches reader workers too
    lines: list[str] = []
    try:
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.1, 1.5))
        else:
            fraction = rng.random()
            for line in proc.stderr:
                lines.append(line)
                match = re.match(r"\[(\d+)/(\d+)\]", line)
                if match and int(match.group(1)) >= max(1, round(fraction * int(match.group(2)))):
                    time.sleep(rng.uniform(0.0, 0.05))
                    break
        if proc.poll() is not None:
            return proc.returncode, "".join(lines) + proc.stderr.read()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, "".join(lines)
    finally:
        proc.stderr.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_killed_conversion_resumes_to_an_identical_store(tmp_path, cache_env, workers):
    raw = tmp_path / "raw"
    write_semantickitti(raw, scenes=SCENES, seed=3, columns=1024)
    reference = tmp_path / "reference"
    started = time.perf_counter()
    done = run_pmoe(cache_env, "convert", "semantickitti", raw, reference, "--workers", workers)
    full_run = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    want = store_digest(str(reference / "semantickitti.zarr"))

    rng = random.Random(20240 + workers)
    trials = max(1, KILL_TRIALS // 2)
    stats = {"kills": 0, "runs_finished_before_kill": 0, "killed_before_store_existed": 0, "checked_clean": 0,
             "stale_lock_taken_over": 0, "stores_compared": 0, "committed_after_kill": []}
    cycle = 0
    url = _store(tmp_path, cycle)
    while stats["kills"] < trials:
        code, stderr = _kill_during(_convert_argv(raw, Path(url).parent, workers), cache_env, rng)
        stats["stale_lock_taken_over"] += "stale writer lock" in stderr
        if code is not None:  # finished before the kill: compare, then start a new store
            assert code == 0, stderr
            assert store_digest(url) == want
            stats["runs_finished_before_kill"] += 1
            stats["stores_compared"] += 1
            cycle += 1
            url = _store(tmp_path, cycle)
            continue
        stats["kills"] += 1
        if not _has_attrs(url):
            stats["killed_before_store_existed"] += 1  # killed while creating: the next run starts it afresh
            continue
        problems = check_store(url)
        assert problems == [], f"store fails check after kill {stats['kills']}: {problems}"
        stats["checked_clean"] += 1
        stats["committed_after_kill"].append(_committed(url))

    final = run_pmoe(cache_env, "convert", "semantickitti", raw, Path(url).parent, "--workers", workers)
    assert final.returncode == 0, final.stderr
    checked = run_pmoe(cache_env, "check", url)
    assert checked.returncode == 0 and checked.stdout.startswith("ok: "), checked.stderr
    assert not (Path(url) / LOCK_KEY).exists()
    assert store_digest(url) == want
    stats["stores_compared"] += 1
    assert stats["checked_clean"] >= 1, stats  # at least one kill landed after the store existed
    _record(f"convert_kill_workers{workers}", stats | {"full_run_s": round(full_run, 2)})


def _store(tmp_path: Path, cycle: int) -> str:
    return str(tmp_path / f"out{cycle}" / "semantickitti.zarr")


def _has_attrs(url: str) -> bool:
    if not (Path(url) / "zarr.json").is_file():
        return False
    return "format" in json.loads((Path(url) / "zarr.json").read_text()).get("attributes", {})


def _committed(url: str) -> int:
    from pmoe_core.store import open_store

    reader = open_store(url)
    return sum(reader.num_scenes(s) for s in reader.splits)


def _record(name: str, stats: dict) -> None:
    """Figures for RELIABILITY.md when PMOE_RELIABILITY_REPORT names a file."""
    report = os.environ.get("PMOE_RELIABILITY_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"test": name, **stats}) + "\n")


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc to list the session")
@pytest.mark.slow
def test_reader_workers_exit_when_the_parent_is_killed(tmp_path, cache_env):
    """SIGKILL of the convert process alone (not its group): workers, forkserver and resource tracker used to live
    on (~340 MB, still there after 60 s). They must all be gone within seconds."""
    raw = tmp_path / "raw"
    write_semantickitti(raw, scenes=30, seed=4, columns=256)
    proc = subprocess.Popen(_convert_argv(raw, tmp_path / "out", 2), cwd=REPO, env=cache_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_session_members(proc.pid)) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for the forkserver and both workers (and the resource tracker)
        helpers = [pid for pid in _session_members(proc.pid) if pid != proc.pid]
        assert len(helpers) >= 3, f"expected 2 workers and a forkserver, found {helpers}"  # else nothing is tested
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while _session_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _session_members(proc.pid)
        assert not left, f"still running 15 s after the parent died: {left}"
    finally:
        for pid in _session_members(proc.pid):
            os.kill(pid, signal.SIGKILL)
