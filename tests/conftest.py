"""Shared test fixtures. Real sample files are read from ../shared/fixtures/real (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_FIXTURES = Path(os.environ.get("PMOE_REAL_FIXTURES", REPO.parent / "shared" / "fixtures" / "real"))


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """The folder of real dataset sample files; the test is skipped, saying why, where it is absent."""
    if not REAL_FIXTURES.is_dir():
        pytest.skip(f"real sample files not found at {REAL_FIXTURES} (set PMOE_REAL_FIXTURES)")
    return REAL_FIXTURES


@pytest.fixture(autouse=True, scope="session")
def _small_torch_threads():
    """Tests share 2 cores with loader workers and subprocesses: one torch thread avoids oversubscription (measured 4-14x slower steps with 2 threads under load)."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    yield


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip with a stated reason where no CUDA GPU is visible (bench/gpu_check.sh runs them)."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in marked:
        item.add_marker(skip)
