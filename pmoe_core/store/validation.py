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
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import numpy as np
import zarr
from numcodecs import Zstd
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from pmoe_core.errors import FormatError, StoreError
from pmoe_core.jsonio import loads_json
from pmoe_core.scene import FIELD_SPECS
from pmoe_core.schemas import load_schema
from pmoe_core.store.attrs import class_names
from pmoe_core.store.layout import (
    ALL_CHUNKS_STORED,
    EMBEDDINGS,
    FORMAT_NAME,
    FORMAT_VERSION,
    LOCK_KEY,
    NAMES,
    OFFSETS,
    SHARD_POINTS,
    committed_offsets,
    group_arrays,
    open_zarr_store,
    quiet_lock_listing,
    split_groups,
)
from pmoe_core.vocab.label_spaces import LABEL_SPACES
from pmoe_core.vocab.unified import CLASS_TO_ENTRY


def _blocks(arr: zarr.Array, end: int) -> Iterator[np.ndarray]:
    """Rows [0, end) of `arr`, one shard at a time."""
    for lo in range(0, end, SHARD_POINTS):
        yield arr[lo : min(lo + SHARD_POINTS, end)]


def _unreadable(where: str, err: BaseException) -> str:
    return f"{where}: unreadable ({type(err).__name__}: {str(err)[:200]})"


def _object_key_pattern(arr: zarr.Array) -> tuple[str, str]:
    """(prefix, suffix) around the leading chunk index in the keys of `arr`'s objects (any key encoding)."""
    sentinel = 987654321
    key = arr.metadata.encode_chunk_key((sentinel,) + (0,) * (arr.ndim - 1))
    prefix, _, suffix = key.partition(str(sentinel))
    return prefix, suffix


def stored_objects(arr: zarr.Array) -> set[int]:
    """Leading-axis indices of the chunk/shard objects the store holds for `arr`, from one listing.

    A listing, not one `exists` per object: its cost follows what is stored, never what the metadata claims (a
    shape edited to 10^15 rows would otherwise mean 10^9 look-ups)."""
    path = arr.store_path
    base = f"{path.path}/" if path.path else ""
    prefix, suffix = _object_key_pattern(arr)
    found: set[int] = set()

    async def collect() -> None:
        async for key in path.store.list_prefix(base):
            rel = key.removeprefix(base)
            if rel.startswith(prefix) and rel.endswith(suffix):
                middle = rel[len(prefix): len(rel) - len(suffix)]
                if middle.isdigit():
                    found.add(int(middle))

    sync(collect())
    return found


def objects_per_row_block(arr: zarr.Array) -> int:
    """Rows held by one stored object of `arr` (a shard when the array is sharded, else a chunk)."""
    return int((arr.shards or arr.chunks)[0])


def _objects_problem(where: str, arr: zarr.Array, rows: int) -> list[str]:
    """The objects rows [0, rows) of `arr` need but the store lacks, as a problem (count and first keys)."""
    needed = -(-rows // objects_per_row_block(arr))
    if needed <= 0:
        return []
    stored = stored_objects(arr)
    count = needed - sum(1 for k in stored if k < needed)
    if not count:
        return []
    keys: list[str] = []
    k = 0
    while len(keys) < min(3, count):  # within the first len(stored) + 3 indices: bounded by the listing
        if k not in stored:
            keys.append(arr.metadata.encode_chunk_key((k,) + (0,) * (arr.ndim - 1)))
        k += 1
    return [f"{where}: {count} stored object(s) missing ({', '.join(keys)}); "
            "the rows they hold would read as fill values"]


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_claim(data: bytes) -> int | None:
    """The decompressed size a zstd frame header declares (None where it declares none): the zstd decoder
    allocates that much before it decodes a byte, so a flipped header byte can ask for gigabytes."""
    if len(data) < 6 or data[:4] != _ZSTD_MAGIC:
        return None
    descriptor = data[4]
    single_segment = (descriptor >> 5) & 1
    at = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3]
    width = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    if not width or len(data) < at + width:
        return None
    value = int.from_bytes(data[at: at + width], "little")
    return value + 256 if width == 2 else value


def _decoded_size_problem(where: str, arr: zarr.Array, rows: int) -> list[str]:
    """For the small zstd-compressed arrays a reader decodes whole on open (offsets, names, class embeddings):
    refuse an object whose frame claims more bytes than its chunk can hold, before zarr allocates them."""
    codecs = [type(codec).__name__ for codec in arr.metadata.codecs]
    if codecs[-1:] != ["ZstdCodec"]:
        return []
    values = int(np.prod(arr.chunks))
    bound = values * (arr.dtype.itemsize if arr.dtype.kind in "iuf" else 4096) + 4096  # names: 4 KiB each
    path = arr.store_path
    base = f"{path.path}/" if path.path else ""
    for k in range(-(-rows // objects_per_row_block(arr))):
        key = base + arr.metadata.encode_chunk_key((k,) + (0,) * (arr.ndim - 1))
        buf = sync(path.store.get(key, prototype=default_buffer_prototype()))
        if buf is None:
            continue
        data = buf.to_bytes()
        claim = _zstd_claim(data[:32])
        if claim is not None and claim > bound:
            return [f"{where}: object {key} claims {claim} decoded bytes, more than its {values} values hold"]
        if codecs == ["VLenUTF8Codec", "ZstdCodec"]:  # the string count heading a chunk sizes its object array
            try:
                head = Zstd().decode(data)[:4]
            except Exception as err:
                return [_unreadable(f"{where}: object {key}", err)]
            count = int.from_bytes(bytes(head), "little") if len(head) == 4 else -1
            if count != values:
                return [f"{where}: object {key} holds {count} strings, its chunk has {values}"]
    return []


def _chunk_problem(where: str, arr: zarr.Array) -> list[str]:
    """A zero chunk or shard extent (a hand-edited zarr.json) makes zarr divide by zero on every read."""
    try:
        shapes = [tuple(arr.chunks)] + ([tuple(arr.shards)] if arr.shards else [])
    except Exception as err:  # zarr derives the inner chunk shape by division: a zero there fails here
        return [_unreadable(f"{where}: chunk shape", err)]
    if any(int(c) <= 0 for shape in shapes for c in shape):
        return [f"{where}: chunk shape {arr.chunks} (shards {arr.shards}) has an extent that is not positive"]
    return []


def value_problem(where: str, name: str, values: np.ndarray, num_classes: int | None) -> str | None:
    """What `check` says about decoded rows of one field (non-finite coordinates or normals, labels out of range);
    readers apply it to every scene they return."""
    if name in ("coord", "normal") and not np.isfinite(values).all():
        return f"{where}/{name}: contains NaN or infinite values"
    if name == "segment" and num_classes is not None and values.size:
        lo, hi = int(values.min()), int(values.max())
        if lo < -1 or hi >= num_classes:
            return f"{where}/segment: values span [{lo}, {hi}], allowed -1 .. {num_classes - 1}"
    return None


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


def members(group: zarr.Group, where: str = "") -> tuple[dict[str, zarr.Array | zarr.Group], list[str]]:
    """The members of a group by name, opened one by one from a listing of its folder, so metadata that does not
    parse (a zero inner chunk shape, 1000 nested brackets) or is missing (a split's deleted zarr.json: zarr would
    just not list it, and the split would vanish) is a problem naming the member, not an exception or a silence."""
    path = group.store_path
    base = f"{path.path}/" if path.path else ""

    async def names() -> list[str]:
        return [name async for name in path.store.list_dir(base)]

    found: dict[str, zarr.Array | zarr.Group] = {}
    problems: list[str] = []
    with quiet_lock_listing():
        for name in sorted(sync(names())):
            if name in ("zarr.json", LOCK_KEY) or name.startswith("."):
                continue
            shown = f"{where}/{name}" if where else name
            try:
                found[name] = group[name]
            except KeyError:
                problems.append(f"{shown}: no zarr.json (its metadata is missing)")
            except Exception as err:
                problems.append(_unreadable(f"{shown}: metadata", err))
    return found, problems


def member_arrays(group: zarr.Group, where: str) -> tuple[dict[str, zarr.Array], list[str]]:
    """The arrays of a split group (see `members`)."""
    found, problems = members(group, where)
    return {name: node for name, node in found.items() if isinstance(node, zarr.Array)}, problems


def read_embeddings(root: zarr.Group, attrs: dict[str, Any]) -> tuple[np.ndarray | None, list[str]]:
    """The class embeddings (C, D) float32 and their problems; nothing is decoded when the shape or the stored
    objects are already wrong (a shape edited to 10^12 rows must not become an allocation)."""
    arrays = group_arrays(root)
    if EMBEDDINGS not in arrays:
        return None, [f"{EMBEDDINGS}: array missing"]
    emb = arrays[EMBEDDINGS]
    classes = attrs.get("classes")
    num_classes = len(classes) if isinstance(classes, list) and classes else None
    encoder = attrs.get("text_encoder") if isinstance(attrs.get("text_encoder"), dict) else {}
    problems = []
    dim = encoder.get("dim")
    if emb.ndim != 2 or (num_classes is not None and emb.shape[0] != num_classes) or \
            (isinstance(dim, int) and emb.shape[1] != dim):
        problems.append(f"{EMBEDDINGS}: shape {emb.shape}, expected ({num_classes}, {dim}) = (classes, dim)")
    if emb.dtype != np.float32:
        problems.append(f"{EMBEDDINGS}: dtype {emb.dtype}, expected float32")
    problems += _chunk_problem(EMBEDDINGS, emb)
    if problems:
        return None, problems
    problems += _objects_problem(EMBEDDINGS, emb, emb.shape[0]) or _decoded_size_problem(EMBEDDINGS, emb, emb.shape[0])
    if problems:
        return None, problems
    try:
        values = np.asarray(emb[...])
    except Exception as err:  # damaged bytes: a problem to report, not a crash
        return None, [_unreadable(EMBEDDINGS, err)]
    if not np.isfinite(values).all():
        problems.append(f"{EMBEDDINGS}: contains NaN or infinite values")
    elif values.ndim == 2 and (np.linalg.norm(values, axis=-1) == 0).any():
        problems.append(f"{EMBEDDINGS}: has all-zero rows (vectors never written)")
    if emb.attrs.get("encoder") != encoder.get("name"):
        problems.append(f"{EMBEDDINGS}: encoder attribute {emb.attrs.get('encoder')!r} differs from "
                        f"text_encoder.name {encoder.get('name')!r}")
    return values, problems


@dataclass
class SplitIndex:
    """A split's commit record, validated: what a reader needs before it touches point data."""

    offsets: np.ndarray  # (S + 1,) int64: 0, then strictly increasing; scene i is rows offsets[i]:offsets[i+1]
    names: list[str]  # S unique, non-empty names
    fields: dict[str, zarr.Array] = field(default_factory=dict)  # point fields (FIELD_SPECS order) that passed

    @property
    def count(self) -> int:
        return int(self.offsets.shape[0]) - 1


EMPTY_SPLIT = SplitIndex(np.zeros(1, dtype=np.int64), [])


def read_split_index(split: str, arrays: dict[str, zarr.Array]) -> tuple[SplitIndex | None, list[str]]:
    """Read and validate a split's offsets, names and field metadata: everything `check` verifies short of decoding
    point data. Readers call it once per split on open; `check_store` adds the value scans.

    Cost: offsets and names are read once (8 bytes and one name per scene), each array's objects are listed once;
    nothing scales with what a header claims. Returns the index (None when offsets or names are unusable) and the
    problems, in the order `check` reports them; fields with a problem are left out of the index."""
    if OFFSETS not in arrays and all(a.shape[0] == 0 for a in arrays.values()):
        return EMPTY_SPLIT, []  # a split whose creation was interrupted: nothing committed, the next writer redoes it
    problems = [f"{split}/{required}: array missing" for required in (OFFSETS, NAMES, "coord")
                if required not in arrays]
    if problems:
        return None, problems
    offsets_arr = arrays[OFFSETS]
    if offsets_arr.dtype != np.int64 or offsets_arr.ndim != 1:
        return None, [f"{split}/offsets: dtype {offsets_arr.dtype} ndim {offsets_arr.ndim}, expected 1-D int64"]
    # all but the last entry: a writer killed inside a commit may leave that one unwritten, which is no damage
    problems = _chunk_problem(f"{split}/offsets", offsets_arr) or \
        _objects_problem(f"{split}/offsets", offsets_arr, offsets_arr.shape[0] - 1) or \
        _decoded_size_problem(f"{split}/offsets", offsets_arr, offsets_arr.shape[0])
    if problems:
        return None, problems
    try:
        raw = offsets_arr[:]
    except Exception as err:
        return None, [_unreadable(f"{split}/offsets", err)]
    offsets = committed_offsets(raw)
    count = offsets.shape[0] - 1
    if count and raw[0] != 0:
        return None, [f"{split}/offsets: must start with 0"]
    steps = np.diff(offsets)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        return None, [f"{split}/offsets: not increasing at scene {i} ({offsets[i]} -> {offsets[i + 1]})"]
    end = int(offsets[-1])

    names: list[str] = []
    names_arr = arrays[NAMES]
    if names_arr.shape[0] < count:
        problems.append(f"{split}/names: {names_arr.shape[0]} names for {count} committed scenes")
    elif (missing := _chunk_problem(f"{split}/names", names_arr) or
          _objects_problem(f"{split}/names", names_arr, count) or
          _decoded_size_problem(f"{split}/names", names_arr, count)):
        problems += missing
    else:
        try:
            names = [str(n) for n in names_arr[:count]] if count else []
        except Exception as err:
            problems.append(_unreadable(f"{split}/names", err))
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})[:3]
            problems.append(f"{split}/names: duplicate scene names {dup}")
        if any(not n for n in names):
            problems.append(f"{split}/names: empty scene name")

    fields: dict[str, zarr.Array] = {}
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
        missing = _chunk_problem(f"{split}/{name}", arr)
        if not missing and arr.attrs.get(ALL_CHUNKS_STORED) is True:
            missing = _objects_problem(f"{split}/{name}", arr, end)
        if missing:
            problems += missing
            continue
        fields[name] = arr
    if len(names) != count:
        return None, problems
    return SplitIndex(offsets, names, fields), problems


def _check_split(split: str, group: zarr.Group, num_classes: int | None) -> list[str]:
    arrays, problems = member_arrays(group, split)
    if problems:
        return problems
    problems = [f"{split}: unknown array {name!r}" for name in arrays
                if name not in FIELD_SPECS and name not in (OFFSETS, NAMES)]
    index, more = read_split_index(split, arrays)
    problems += more
    if index is None or index.count == 0:
        return problems
    end = int(index.offsets[-1])
    for name, arr in index.fields.items():
        try:
            problems.extend(_check_values(split, name, arr, end, num_classes))
        except Exception as err:  # a chunk that does not decode (checksum, codec): report it, do not crash
            problems.append(_unreadable(f"{split}/{name}", err))
    return problems


def _check_values(split: str, name: str, arr: zarr.Array, end: int, num_classes: int | None) -> list[str]:
    """Decode every committed block of the field (so damaged chunks surface here) and check its values."""
    lo, hi = 0, -1
    for block in _blocks(arr, end):
        if name in ("coord", "normal") and (problem := value_problem(split, name, block, num_classes)):
            return [problem]
        if name == "segment" and block.size:
            lo, hi = min(lo, int(block.min())), max(hi, int(block.max()))
    problem = value_problem(split, name, np.array([lo, hi]), num_classes) if name == "segment" else None
    return [problem] if problem else []


def open_root(url: str | Store) -> zarr.Group:
    """The root group of the store at `url`, or StoreError with the one problem that prevents opening it.

    The root zarr.json is parsed by `jsonio.loads_json` first (a depth limit: 1000 nested brackets are a
    FormatError, not a RecursionError inside zarr); this works for local paths, fsspec URLs and Store objects."""
    shown = url if isinstance(url, str) else str(url)
    store = open_zarr_store(url, read_only=True)
    try:
        buf = sync(store.get("zarr.json", prototype=default_buffer_prototype()))
    except FileNotFoundError:  # a local store's folder that does not exist
        buf = None
    except Exception as err:  # an unreachable URL, a folder where the file should be
        raise StoreError(_unreadable("zarr.json of the root group", err), shown) from None
    if buf is None:
        raise StoreError("no scene store here (expected a Zarr v3 group written by pmoe convert)", shown)
    try:
        loads_json(buf.to_bytes(), "zarr.json")
    except FormatError as err:
        raise StoreError(f"the root group's zarr.json is unreadable ({err.problem})", shown) from None
    try:
        return zarr.open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        raise StoreError("no scene store here (expected a Zarr v3 group written by pmoe convert)", shown) from None
    except Exception as err:  # metadata that parses as JSON but not as a zarr group
        raise StoreError(_unreadable("zarr.json of the root group", err), shown) from None


def check_store(url: str | Store) -> list[str]:
    """Every problem found in the store at `url` (an empty list means a reader can trust it)."""
    try:
        root = open_root(url)
    except StoreError as err:
        return [err.problem]
    attrs = dict(root.attrs)
    problems = attribute_problems(attrs)
    with warnings.catch_warnings():  # zarr warns about a member without metadata; we report it as a problem
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy")
        return problems + _check_members(root, attrs)


def _check_members(root: zarr.Group, attrs: dict[str, Any]) -> list[str]:
    _, problems = members(root)
    if problems:
        return problems
    try:
        problems += read_embeddings(root, attrs)[1]
        splits = split_groups(root)
    except Exception as err:  # an array's or group's zarr.json that does not parse
        return problems + [_unreadable("metadata of the root group's members", err)]
    classes = attrs.get("classes")
    num_classes = len(classes) if isinstance(classes, list) and classes else None
    for split in splits:
        try:
            problems += _check_split(split, root[split], num_classes)
        except Exception as err:
            problems.append(_unreadable(f"{split}: metadata", err))
    return problems
