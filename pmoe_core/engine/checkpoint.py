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
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pmoe_core import __version__
from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.outputs import atomic_path, remove_stale_partials
from pmoe_core.schemas import validate
from pmoe_core.vocab.custom import register_from_attrs

FORMAT = "pmoe-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, meta: dict[str, Any], tensors: dict[str, Any]) -> Path:
    """Atomically write `{format, version, meta, **tensors}`; `meta` must match schemas/checkpoint.schema.json."""
    path = Path(path)
    meta = {"pmoe_version": __version__, **meta}
    validate(meta, "checkpoint", path)
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "meta": meta, **tensors}
    try:
        with atomic_path(path, make_parents=True) as tmp, open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as err:
        # Disk full: torch's zip writer then fails again while closing and raises a RuntimeError ("unexpected pos")
        # over the OSError, which names no file. Surface the system's error, naming the checkpoint.
        system = _os_error_behind(err)
        if system is None:
            raise
        if system.filename is None:
            system.filename = str(path)
        raise system from None
    # one writer per run folder: the new checkpoint is in place, so no one else can still be writing the leftovers
    remove_stale_partials(path)
    return path


def _os_error_behind(err: BaseException) -> OSError | None:
    """The OSError `err` is, or was raised while handling (a short walk up the exception context)."""
    for _ in range(8):
        if isinstance(err, OSError):
            return err
        if err.__context__ is None:
            return None
        err = err.__context__
    return None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; anything that is not a pmoe checkpoint is a FormatError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("checkpoint not found", path)
    if path.stat().st_size == 0:
        raise FormatError("empty file (0 bytes), not a checkpoint", path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if "Unsupported" in ln or "global" in ln.lower()]
        first = lines[0] if lines else "it contains objects other than tensors and plain data"
        raise FormatError(f"refused to load: not plain tensors/data ({first})", path) from None
    except RecursionError:
        raise FormatError("not a readable checkpoint (data nested too deeply)", path) from None
    except UNREADABLE as err:  # torch's zip and unpickling layers raise these on damaged bytes
        first = (str(err).splitlines() or [""])[0].split(". ")[0]  # torch appends a paragraph of advice
        raise FormatError(f"not a readable checkpoint ({type(err).__name__}: {first})", path) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str) or payload["format"] != FORMAT:
        raise FormatError(f"not a {FORMAT} file", path)
    if type(payload.get("version")) is not int or payload["version"] != FORMAT_VERSION:
        raise FormatError(f"checkpoint format version {payload.get('version')!r} is not {FORMAT_VERSION}", path)
    check_plain_data(payload, path)
    validate(payload.get("meta"), "checkpoint", path)
    for described in (payload["meta"].get("custom_label_spaces") or {}).values():
        register_from_attrs(described, path)  # a model trained on a custom dataset knows its classes without a store
    return payload


# What torch.load raises on damaged bytes besides UnpicklingError (a 0-byte or cut file, a zip with a lost member,
# a storage record shorter than its tensor, a flipped pickle opcode argument).
UNREADABLE = (RuntimeError, EOFError, ValueError, OSError, IndexError, KeyError, TypeError, AttributeError,
              OverflowError, MemoryError, struct.error, zipfile.BadZipFile)
MAX_DEPTH = 32  # a real payload nests 5 levels (optimizer -> state -> param -> exp_avg; meta -> config -> moe)
MAX_CONTAINERS = 1_000_000  # dicts/lists/tuples; a real payload has about one per parameter tensor


def check_plain_data(payload: Any, path: str | Path) -> None:
    """FormatError unless the unpickled plain data is a tree of bounded depth and size.

    Everything downstream (schema validation, config decoding, load_state_dict) walks it recursively, and pickle's
    memo can make a tiny file hold a cycle or a shared-reference DAG with 2^60 paths; this walk is iterative and
    counts every container it reaches, so it ends quickly on any input.
    """
    stack, seen = [(payload, 1)], 0
    while stack:
        item, level = stack.pop()
        seen += 1
        if level > MAX_DEPTH:
            raise FormatError(f"checkpoint data nested deeper than {MAX_DEPTH} levels", path)
        if seen > MAX_CONTAINERS:
            raise FormatError(f"checkpoint data holds more than {MAX_CONTAINERS:,} containers (shared or cyclic)", path)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list, tuple)))


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


def plain_args(value: Any) -> Any:
    """Tuples as lists, recursively: what a training config looks like after a checkpoint round trip, so saved and
    current arguments compare equal."""
    if isinstance(value, dict):
        return {k: plain_args(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_args(v) for v in value]
    return value


def check_resume_args(meta: dict[str, Any], cfg: Any, keys: tuple[str, ...], path: str | Path,
                      before: dict[str, Any] | None = None) -> None:
    """Refuse a resume whose training arguments in `keys` differ from those the checkpoint was trained with (the
    data, optimiser and schedule a run's exact continuation depends on). `before` holds, for a key added after
    some checkpoints were written, the value those runs used; a checkpoint lacking any other key is not checked
    on it."""
    saved = {**(before or {}), **meta.get("train_args", {})}
    for key in keys:
        now = plain_args(getattr(cfg, key))
        if key in saved and saved[key] != now:
            raise BadInput(f"--resume with a different {key} ({saved[key]!r} in the checkpoint, {now!r} now)", path)

