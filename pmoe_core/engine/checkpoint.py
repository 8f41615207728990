"""One-file checkpoints holding only tensors and plain data.

Loading always uses `torch.load(weights_only=True)`, whose unpickler refuses every class outside tensors and
Python primitives, so opening an untrusted checkpoint cannot run code. Writes go to a temporary file in the same
folder and are renamed into place, so a killed process never leaves a half-written checkpoint under the real name;
the temp files such a process leaves are deleted by the next successful save.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pmoe_core import __version__
from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.outputs import atomic_path, remove_stale_partials
from pmoe_core.schemas import validate

FORMAT = "pmoe-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, meta: dict[str, Any], tensors: dict[str, Any]) -> Path:
    """Atomically write `{format, version, meta, **tensors}`; `meta` must match schemas/checkpoint.schema.json."""
    path = Path(path)
    meta = {"pmoe_version": __version__, **meta}
    validate(meta, "checkpoint", path)
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "meta": meta, **tensors}
    with atomic_path(path, make_parents=True) as tmp:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
    # one writer per run folder: the new checkpoint is in place, so no one else can still be writing the leftovers
    remove_stale_partials(path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; anything that is not a pmoe checkpoint is a FormatError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("checkpoint not found", path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if "Unsupported" in ln or "global" in ln.lower()]
        first = lines[0] if lines else "it contains objects other than tensors and plain data"
        raise FormatError(f"refused to load: not plain tensors/data ({first})", path) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise FormatError(f"not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise FormatError(f"not a {FORMAT} file", path)
    if payload.get("version") != FORMAT_VERSION:
        raise FormatError(f"checkpoint format version {payload.get('version')} is not {FORMAT_VERSION}", path)
    validate(payload.get("meta"), "checkpoint", path)
    return payload


def rng_state() -> dict[str, Any]:
    """Every RNG a training step touches, as tensors and plain data."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
