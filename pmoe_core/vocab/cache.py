"""On-disk embedding cache: one .npy per (encoder identity, sha256 of the text).

One small file per text means concurrent processes (converter workers, trainer ranks) never rewrite each other's
entries, and each file appears whole or not at all (pmoe_core.outputs.atomic_path). A cached run loads no model.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from pmoe_core.outputs import atomic_path

CACHE_ENV = "PMOE_CACHE_DIR"


def cache_root() -> Path:
    """`$PMOE_CACHE_DIR/embeddings` where the variable is set, else `~/.cache/pmoe/embeddings`."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "pmoe") / "embeddings"


def _path(identity: str, text: str) -> Path:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return cache_root() / identity / f"{digest}.npy"


def load(identity: str, text: str, dim: int) -> np.ndarray | None:
    """The cached vector of `text`, or None when absent or unreadable (then it is simply recomputed)."""
    path = _path(identity, text)
    try:
        vector = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vector.shape != (dim,) or vector.dtype != np.float32:
        return None
    return vector


def store(identity: str, text: str, vector: np.ndarray) -> None:
    """Write one vector atomically; a failure to write (read-only home, full disk) only costs a recompute later."""
    path = _path(identity, text)
    try:
        with atomic_path(path, make_parents=True) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(vector, dtype=np.float32), allow_pickle=False)
    except OSError:
        return
