"""`check_store`: every property a reader relies on, checked from the bytes, reported as a list of problems.

An uncommitted tail (rows past `offsets[-1]`, an unwritten trailing offset) is not a problem: readers never see it
and the next writer cuts it off. Point data is streamed one shard at a time, so memory stays bounded.

Damaged bytes are problems too, never tracebacks: unreadable metadata or chunks are reported by path, and so is a
chunk or shard object that committed rows need but the store lacks (zarr reads a missing object as fill values
without complaint, so a partial copy would otherwise pass as zeros, or as a shorter split). `names`, `offsets` and
`class_embeddings` never hold a chunk of fill values only, so their objects are always stored; a point field's are
only where the writer marked the array `all_chunks_stored` (see layout.py): older arrays leave out all-zero chunks,
so an absent object there is not evidence of damage and is not reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import jsonschema
import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.core.sync import sync

from pmoe_core.scene import FIELD_SPECS
from pmoe_core.schemas import load_schema
from pmoe_core.store.attrs import class_names
from pmoe_core.store.layout import (
    EMBEDDINGS,
    FORMAT_NAME,
    FORMAT_VERSION,
    NAMES,
    OFFSETS,
    ALL_CHUNKS_STORED,
    SHARD_POINTS,
    committed_offsets,
    group_arrays,
    open_zarr_store,
    split_groups,
)
from pmoe_core.vocab.label_spaces import LABEL_SPACES
from pmoe_core.vocab.unified import CLASS_TO_ENTRY


def _blocks(arr: zarr.Array, end: int) -> Iterator[np.ndarray]:
    """Rows [0, end) of `arr`, one shard at a time."""
    for lo in range(0, end, SHARD_POINTS):
        yield arr[lo : min(lo + SHARD_POINTS, end)]


def _unreadable(where: str, err: Exception) -> str:
    return f"{where}: unreadable ({type(err).__name__}: {str(err)[:200]})"


def _missing_objects(arr: zarr.Array, rows: int) -> list[str]:
    """Keys of the chunk/shard objects that rows [0, rows) of `arr` need but the store does not hold."""
    per_object = (arr.shards or arr.chunks)[0]
    path = arr.store_path
    missing = []
    for k in range(-(-rows // per_object)):
        key = arr.metadata.encode_chunk_key((k,) + (0,) * (arr.ndim - 1))
        if not sync(path.store.exists(f"{path.path}/{key}")):
            missing.append(key)
    return missing


def _objects_problem(where: str, arr: zarr.Array, rows: int) -> list[str]:
    missing = _missing_objects(arr, rows)
    if missing:
        return [f"{where}: {len(missing)} stored object(s) missing ({', '.join(missing[:3])}); "
                "the rows they hold would read as fill values"]
    return []


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
        else:  # the union-vocabulary evaluation trusts each class's entry: it must be the vocabulary's, by name
            for i, (name, c) in enumerate(zip(expected, attrs["classes"])):
                want = CLASS_TO_ENTRY[dataset][name]
                if c.get("entry") != want:
                    problems.append(f"attributes at classes/{i}: class {name!r} maps to vocabulary entry "
                                    f"{c.get('entry')!r}, but the unified vocabulary says {want!r}")
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
    problems += _objects_problem(EMBEDDINGS, emb, emb.shape[0])
    try:
        values = np.asarray(emb[...])
    except Exception as err:  # damaged bytes: a problem to report, not a crash
        return problems + [_unreadable(EMBEDDINGS, err)]
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
    # all but the last entry: a writer killed inside a commit may leave that one unwritten, which is no damage
    problems = _objects_problem(f"{split}/offsets", offsets_arr, offsets_arr.shape[0] - 1)
    if problems:
        return problems
    try:
        raw = offsets_arr[:]
    except Exception as err:
        return [_unreadable(f"{split}/offsets", err)]
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
    elif (missing := _objects_problem(f"{split}/names", names_arr, count)):
        problems += missing
    else:
        try:
            names = [str(n) for n in names_arr[:count]] if count else []
        except Exception as err:
            names = []
            problems.append(_unreadable(f"{split}/names", err))
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
        missing = _objects_problem(f"{split}/{name}", arr, end) if arr.attrs.get(ALL_CHUNKS_STORED) is True else []
        if missing:
            problems += missing
            continue
        try:
            problems.extend(_check_values(split, name, arr, end, num_classes))
        except Exception as err:  # a chunk that does not decode (checksum, codec): report it, do not crash
            problems.append(_unreadable(f"{split}/{name}", err))
    return problems


def _check_values(split: str, name: str, arr: zarr.Array, end: int, num_classes: int | None) -> list[str]:
    """Decode every committed block of the field (so damaged chunks surface here) and check its values."""
    lo, hi = 0, -1
    for block in _blocks(arr, end):
        if name in ("coord", "normal") and not np.isfinite(block).all():
            return [f"{split}/{name}: contains NaN or infinite values"]
        if name == "segment" and block.size:
            lo, hi = min(lo, int(block.min())), max(hi, int(block.max()))
    if name == "segment" and num_classes is not None and (lo < -1 or hi >= num_classes):
        return [f"{split}/segment: values span [{lo}, {hi}], allowed -1 .. {num_classes - 1}"]
    return []


def check_store(url: str | Store) -> list[str]:
    """Every problem found in the store at `url` (an empty list means a reader can trust it)."""
    try:
        root = zarr.open_group(open_zarr_store(url, read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return ["no scene store here (expected a Zarr v3 group written by pmoe convert)"]
    except ValueError as err:  # zarr.json that is not JSON (truncated copy, hand edit)
        return [_unreadable("zarr.json of the root group", err)]
    attrs = dict(root.attrs)
    problems = attribute_problems(attrs)
    with warnings.catch_warnings():  # zarr warns about a member without metadata; we report it as a problem
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy")
        return problems + _check_members(root, attrs)


def _check_members(root: zarr.Group, attrs: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    classes = attrs.get("classes")
    num_classes = len(classes) if isinstance(classes, list) and classes else None
    try:
        problems += _check_embeddings(root, attrs, num_classes)
        splits = split_groups(root)
    except Exception as err:  # an array's or group's zarr.json that does not parse
        return problems + [_unreadable("metadata of the root group's members", err)]
    for split in splits:
        try:
            problems += _check_split(split, root[split], num_classes)
        except Exception as err:
            problems.append(_unreadable(f"{split}: metadata", err))
    return problems
