"""Fixtures of the reliability tests: one embedding cache per session, and running `pmoe` commands as processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cache_env(tmp_path_factory) -> dict[str, str]:
    """Environment for child processes (and this one) sharing one MiniLM embedding cache."""
    cache = tmp_path_factory.getbasetemp() / "pmoe-embedding-cache"
    old = os.environ.get("PMOE_CACHE_DIR")
    os.environ["PMOE_CACHE_DIR"] = str(cache)
    env = dict(os.environ, PYTHONPATH=str(REPO), PMOE_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    yield env
    if old is None:
        os.environ.pop("PMOE_CACHE_DIR", None)
    else:
        os.environ["PMOE_CACHE_DIR"] = old


def pmoe_argv(*args: object) -> list[str]:
    """argv running `pmoe ARGS` in a fresh interpreter (the real entry point, `python -m pmoe_cli`)."""
    return [sys.executable, "-m", "pmoe_cli", *map(str, args)]


def run_pmoe(env: dict[str, str], *args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(pmoe_argv(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
