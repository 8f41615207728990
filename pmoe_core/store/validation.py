"""`check_store`: every property a reader relies on, checked from the bytes, reported as a list of problems.

An uncommitted tail (rows past `offsets[-1]`, an unwritten trailing offset) is not a problem: readers never see it
and the next writer cuts it off. Point data is streamed one shard at a time, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import numpy as np
import zarr
from zarr.abc.store import Store

from pmoe_core.scene import FIELD_SPECS
from pmoe_core.schemas import load_schema
from pmoe_core.store.attrs import class_names
from pmoe_core.store.layout import (
    EMBEDDINGS,
    FORMAT_NAME,
    FORMAT_VERSION,
    NAMES,
    OFFSETS,
    SHARD_POINTS,
    committed_offsets,
    group_arrays,
    open_zarr_store,
    split_groups,
)
from pmoe_core.vocab.label_spaces import LABEL_SPACES


def _blocks(arr: zarr.Array, end: int) -> Iterator[np.ndarray]:
    """Rows [0, end) of `arr`, one shard at a time."""
    for lo in range(0, end, SHARD_POINTS):
        yield arr[lo : min(lo + SHARD_POINTS, end)]


def attribute_problems(attrs: dict[str, Any]) -> list[str]:
    """Problems of the root attributes (schema, format version, class names vs the benchmark label space)."""
    validator = jsonschema.Draft202012Validator(load_schema("store"))
    problems = []
    for err in sorted(validator.iter_errors(attrs), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        problems.append(f"attributes at {where}: {err.message}")
    if attrs.get("format") == FORMAT_NAME and attrs.get("format_version") not in (None, FORMAT_VERSION):
        problems.append(f"format version {attrs.get('format_version')} is not {FORMAT_VERSION}, the one this "
                        "pmoe reads")
    dataset = attrs.get("dataset")
    if dataset in LABEL_SPACES and isinstance(attrs.get("classes"), list):
        expected = list(LABEL_SPACES[dataset].classes)
        if class_names(attrs) != expected:
            problems.append(f"class names differ from the {LABEL_SPACES[dataset].benchmark} label space "
                            f"({len(class_names(attrs))} stored, {len(expected)} expected, in benchmark order)")
    return problems


def _check_embeddings(root: zarr.Group, attrs: dict[str, Any], num_classes: int | None) -> list[str]:
    arrays = group_arrays(root)
    if EMBEDDINGS not in arrays:
        return [f"{EMBEDDINGS}: array missing"]
    emb = arrays[EMBEDDINGS]
    encoder = attrs.get("text_encoder") if isinstance(attrs.get("text_encoder"), dict) else {}
    problems = []
    dim = encoder.get("dim")
    if emb.ndim != 2 or (num_classes is not None and emb.shape[0] != num_classes) or \
            (isinstance(dim, int) and emb.shape[1] != dim):
        problems.append(f"{EMBEDDINGS}: shape {emb.shape}, expected ({num_classes}, {dim}) = (classes, dim)")
    if emb.dtype != np.float32:
        problems.append(f"{EMBEDDINGS}: dtype {emb.dtype}, expected float32")
    values = np.asarray(emb[...])
    if not np.isfinite(values).all():
        problems.append(f"{EMBEDDINGS}: contains NaN or infinite values")
    elif values.ndim == 2 and (np.linalg.norm(values, axis=-1) == 0).any():
        problems.append(f"{EMBEDDINGS}: has all-zero rows (vectors never written)")
    if emb.attrs.get("encoder") != encoder.get("name"):
        problems.append(f"{EMBEDDINGS}: encoder attribute {emb.attrs.get('encoder')!r} differs from "
                        f"text_encoder.name {encoder.get('name')!r}")
    return problems


def _check_split(split: str, group: zarr.Group, num_classes: int | None) -> list[str]:
    arrays = group_arrays(group)
    problems = [f"{split}: unknown array {name!r}" for name in arrays
                if name not in FIELD_SPECS and name not in (OFFSETS, NAMES)]
    if OFFSETS not in arrays and all(a.shape[0] == 0 for a in arrays.values()):
        return problems  # a split whose creation was interrupted: nothing committed, the next writer redoes it
    for required in (OFFSETS, NAMES, "coord"):
        if required not in arrays:
            problems.append(f"{split}/{required}: array missing")
    if problems:
        return problems
    offsets_arr = arrays[OFFSETS]
    if offsets_arr.dtype != np.int64 or offsets_arr.ndim != 1:
        return [f"{split}/offsets: dtype {offsets_arr.dtype} ndim {offsets_arr.ndim}, expected 1-D int64"]
    raw = offsets_arr[:]
    offsets = committed_offsets(raw)
    count = offsets.shape[0] - 1
    if count and raw[0] != 0:
        return [f"{split}/offsets: must start with 0"]
    steps = np.diff(offsets)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        return [f"{split}/offsets: not increasing at scene {i} ({offsets[i]} -> {offsets[i + 1]})"]
    end = int(offsets[-1])

    names_arr = arrays[NAMES]
    if names_arr.shape[0] < count:
        problems.append(f"{split}/names: {names_arr.shape[0]} names for {count} committed scenes")
    else:
        names = [str(n) for n in names_arr[:count]] if count else []
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})[:3]
            problems.append(f"{split}/names: duplicate scene names {dup}")
        if any(not n for n in names):
            problems.append(f"{split}/names: empty scene name")

    for name in (f for f in FIELD_SPECS if f in arrays):
        arr = arrays[name]
        dtype, width = FIELD_SPECS[name]
        expected_ndim = 2 if width else 1
        if arr.dtype != dtype or arr.ndim != expected_ndim or (width and arr.shape[1] != width):
            problems.append(f"{split}/{name}: dtype {arr.dtype} shape {arr.shape}, expected {dtype} with "
                            f"{'width ' + str(width) if width else 'one value'} per point")
            continue
        if arr.shape[0] < end:
            problems.append(f"{split}/{name}: {arr.shape[0]} rows but offsets need {end}")
            continue
        problems.extend(_check_values(split, name, arr, end, num_classes))
    return problems


def _check_values(split: str, name: str, arr: zarr.Array, end: int, num_classes: int | None) -> list[str]:
    if name in ("coord", "normal"):
        for block in _blocks(arr, end):
            if not np.isfinite(block).all():
                return [f"{split}/{name}: contains NaN or infinite values"]
    if name == "segment" and num_classes is not None:
        lo, hi = 0, -1
        for block in _blocks(arr, end):
            if block.size:
                lo, hi = min(lo, int(block.min())), max(hi, int(block.max()))
        if lo < -1 or hi >= num_classes:
            return [f"{split}/segment: values span [{lo}, {hi}], allowed -1 .. {num_classes - 1}"]
    return []


def check_store(url: str | Store) -> list[str]:
    """Every problem found in the store at `url` (an empty list means a reader can trust it)."""
    try:
        root = zarr.open_group(open_zarr_store(url, read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return ["no scene store here (expected a Zarr v3 group written by pmoe convert)"]
    attrs = dict(root.attrs)
    problems = attribute_problems(attrs)
    classes = attrs.get("classes")
    num_classes = len(classes) if isinstance(classes, list) and classes else None
    problems += _check_embeddings(root, attrs, num_classes)
    for split in split_groups(root):
        problems += _check_split(split, root[split], num_classes)
    return problems
