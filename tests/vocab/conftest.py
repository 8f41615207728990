"""Every vocab test gets its own empty embedding cache, so no test reads what another (or the user) wrote."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pmoe-cache"
    monkeypatch.setenv("PMOE_CACHE_DIR", str(path))
    return path / "embeddings"
