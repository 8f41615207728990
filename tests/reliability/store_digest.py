"""A content digest of a scene store: what must be identical between an interrupted-and-resumed conversion and an
uninterrupted one (every field array, names, offsets, array shapes, attributes except the creation time)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import zarr

from pmoe_core.store.layout import EMBEDDINGS, NAMES, OFFSETS, group_arrays, split_groups

VOLATILE_ATTRS = ("created",)


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def store_digest(url: str) -> dict:
    root = zarr.open_group(url, mode="r")
    attrs = {k: v for k, v in dict(root.attrs).items() if k not in VOLATILE_ATTRS}
    digest: dict = {"attrs": json.dumps(attrs, sort_keys=True),
                    EMBEDDINGS: _sha(np.asarray(root[EMBEDDINGS][...]))}
    for split in split_groups(root):
        arrays = group_arrays(root[split])
        entry = {"names": [str(n) for n in arrays[NAMES][:]], OFFSETS: arrays[OFFSETS][:].tolist()}
        for name, arr in sorted(arrays.items()):
            if name not in (NAMES, OFFSETS):
                entry[name] = (tuple(arr.shape), str(arr.dtype), _sha(arr[...]))
        digest[split] = entry
    return digest
