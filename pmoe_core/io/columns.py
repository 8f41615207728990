"""Extra per-point columns handed to the writers (`write_ply(extra=...)`, `write_las(extra=...)`): one check of
what every file format can hold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput

FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")  # PLY names have no spaces; LAS extra-bytes names hold 32 bytes


def scalar_column(name: str, values: np.ndarray, n: int, where: str | Path | None) -> np.ndarray:
    """An extra per-point scalar as int32 (integers, booleans) or float32 (floats), refusing what a PLY property
    cannot hold losslessly enough to be read back (wrong length, out-of-range integers, non-numbers)."""
    if not FIELD_NAME.fullmatch(name):
        raise BadInput(f"extra field name {name!r} must be 1-32 letters, digits and underscores", where)
    values = np.asarray(values)
    if values.shape != (n,):
        raise BadInput(f"extra field {name!r} has shape {values.shape}, expected ({n},)", where)
    if values.dtype.kind in "biu":
        info = np.iinfo(np.int32)
        if values.size and values.dtype.kind != "b" and (values.min() < info.min or values.max() > info.max):
            raise BadInput(f"extra field {name!r} holds values outside int32", where)
        return values.astype(np.int32, copy=False)
    if values.dtype.kind == "f":
        return values.astype(np.float32, copy=False)
    raise BadInput(f"extra field {name!r} has dtype {values.dtype}; give integers or floats", where)
