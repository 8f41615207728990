"""O(1) random access to the scenes of a store (or of several shard stores of one dataset).

Opening reads only the root attributes. The first access to a split reads its `offsets` (8 bytes a scene); from
then on, scene i is one slice `offsets[i]:offsets[i+1]` per field, whatever the number of scenes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.abc.store import Store

from pmoe_core.errors import BadInput, StoreError
from pmoe_core.scene import FIELD_SPECS, Scene
from pmoe_core.schemas import validate
from pmoe_core.store.attrs import class_names
from pmoe_core.store.validation import attribute_problems
from pmoe_core.store.layout import (
    EMBEDDINGS,
    FORMAT_NAME,
    FORMAT_VERSION,
    NAMES,
    OFFSETS,
    SHARD_POINTS,
    committed_offsets,
    group_arrays,
    is_url,
    open_zarr_store,
    split_groups,
)
from pmoe_core.vocab.label_spaces import LabelSpace, label_space


class _SplitView:
    """One split's committed scenes; offsets, names and arrays are loaded on first use."""

    def __init__(self, url: str, name: str, group: zarr.Group):
        self.url = url
        self.name = name
        self.group = group

    @cached_property
    def _arrays(self) -> dict[str, zarr.Array]:
        return group_arrays(self.group)

    @cached_property
    def offsets(self) -> np.ndarray:
        if OFFSETS not in self._arrays or NAMES not in self._arrays:
            return np.zeros(1, dtype=np.int64)  # a split whose creation was interrupted: nothing committed
        try:
            return committed_offsets(self._arrays[OFFSETS][:])
        except (ValueError, RuntimeError) as err:  # a chunk that does not decode: damage, not a bug
            raise StoreError(f"{self.name}/offsets is unreadable ({err}); run pmoe check", self.url) from None

    @property
    def count(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @cached_property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for f in FIELD_SPECS if f in self._arrays) if self.count else ()

    @cached_property
    def names(self) -> list[str]:
        return [str(n) for n in self._arrays[NAMES][: self.count]] if self.count else []

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def position(self, key: int | str) -> int:
        if isinstance(key, str):
            try:
                return self.index_of[key]
            except KeyError:
                raise BadInput(f"no scene named {key!r} in split {self.name!r}", self.url) from None
        i = int(key)
        n = self.count
        if not -n <= i < n:
            raise BadInput(f"scene index {key} out of range: split {self.name!r} has {n} scenes", self.url)
        return i % n

    def read(self, i: int, fields: Sequence[str] | None) -> Scene:
        wanted = self.fields if fields is None else tuple(fields)
        missing = [f for f in wanted if f not in self.fields]
        if missing:
            raise BadInput(f"split {self.name!r} has no field(s) {', '.join(missing)} "
                           f"(it stores {', '.join(self.fields)})", self.url)
        if "coord" not in wanted:
            wanted = ("coord", *wanted)  # a Scene always has coordinates
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        try:
            data = {f: self._arrays[f][lo:hi] for f in wanted}
            name = self.names[i] if "names" in self.__dict__ else str(self._arrays[NAMES][i])
        except (ValueError, RuntimeError) as err:  # a chunk that does not decode: damage, not a bug
            raise StoreError(f"scene {i} of split {self.name!r} is unreadable ({err}); run pmoe check",
                             self.url) from None
        return Scene(name=name, **data)


class StoreReader:
    """A read-only view of one scene store (local path, fsspec URL, or a zarr Store object)."""

    def __init__(self, url: str | Store):
        self.url = url if isinstance(url, str) else str(url)
        store = open_zarr_store(url, read_only=True)
        try:
            self._root = zarr.open_group(store, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
            raise StoreError("no scene store here (expected a Zarr v3 group written by pmoe convert)",
                             self.url) from None
        except ValueError as err:  # zarr.json that is not JSON (truncated copy, hand edit)
            raise StoreError(f"the root group's zarr.json is unreadable ({err}); run pmoe check", self.url) from None
        self.attrs: dict[str, Any] = dict(self._root.attrs)
        if self.attrs.get("format") != FORMAT_NAME:
            raise StoreError("a zarr group, but not a pmoe scene store (attribute format is missing)", self.url)
        if self.attrs.get("format_version") != FORMAT_VERSION:
            raise StoreError(f"store format version {self.attrs.get('format_version')} is not supported "
                             f"(this pmoe reads version {FORMAT_VERSION})", self.url)
        validate(self.attrs, "store", self.url)
        problems = attribute_problems(self.attrs)  # e.g. class names edited: labels would be misread
        if problems:
            raise StoreError(f"{problems[0]} (pmoe check lists every problem)", self.url)
        self._splits = {s: _SplitView(self.url, s, self._root[s]) for s in split_groups(self._root)}

    @property
    def dataset(self) -> str:
        return str(self.attrs["dataset"])

    @property
    def encoder(self) -> str:
        return str(self.attrs["text_encoder"]["name"])

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self._splits)

    @property
    def label_space(self) -> LabelSpace:
        return label_space(self.dataset)

    @property
    def class_names(self) -> list[str]:
        return class_names(self.attrs)

    @cached_property
    def class_embeddings(self) -> np.ndarray:
        return np.asarray(self._root[EMBEDDINGS][...], dtype=np.float32)

    def _split(self, split: str) -> _SplitView:
        try:
            return self._splits[split]
        except KeyError:
            raise BadInput(f"no split {split!r} (store has: {', '.join(self._splits) or 'none'})",
                           self.url) from None

    def fields(self, split: str) -> tuple[str, ...]:
        return self._split(split).fields

    def names(self, split: str) -> list[str]:
        return list(self._split(split).names)

    def num_scenes(self, split: str) -> int:
        return self._split(split).count

    def num_points(self, split: str, i: int | None = None) -> int:
        """Points of scene `i` of `split`, or of the whole split when `i` is None."""
        view = self._split(split)
        if i is None:
            return int(view.offsets[-1])
        j = view.position(i)
        return int(view.offsets[j + 1] - view.offsets[j])

    def offsets(self, split: str) -> np.ndarray:
        return self._split(split).offsets.copy()

    def read(self, split: str, key: int | str, fields: Sequence[str] | None = None) -> Scene:
        """Scene `key` (index or name) of `split`: one slice per field."""
        view = self._split(split)
        return view.read(view.position(key), fields)

    def iter_scenes(self, split: str, fields: Sequence[str] | None = None) -> Iterator[Scene]:
        view = self._split(split)
        for i in range(view.count):
            yield view.read(i, fields)

    def iter_field(self, split: str, field: str, block: int = SHARD_POINTS) -> Iterator[np.ndarray]:
        """All committed rows of one field of `split`, in blocks of `block` rows (whole-split statistics)."""
        view = self._split(split)
        if field not in view.fields:
            raise BadInput(f"split {split!r} has no field {field!r}", self.url)
        arr, end = view._arrays[field], int(view.offsets[-1])
        for lo in range(0, end, block):
            try:
                rows = arr[lo : min(lo + block, end)]
            except (ValueError, RuntimeError) as err:
                raise StoreError(f"{split}/{field} rows {lo}.. are unreadable ({err}); run pmoe check",
                                 self.url) from None
            yield rows


def open_store(url: str | Store) -> StoreReader:
    return StoreReader(url)


class StoreSet:
    """Several stores of one dataset (e.g. the shards of a `--shard K/N` conversion) read as one.

    Scenes of a split are numbered store by store, in the order the stores were given. The stores must agree on
    dataset, classes and text encoder; scene names must be unique across them.
    """

    def __init__(self, urls: Sequence[str | Store]):
        if not urls:
            raise BadInput("no scene stores given")
        self.readers = [StoreReader(u) for u in urls]
        first = self.readers[0]
        for other in self.readers[1:]:
            for what, a, b in (("dataset", first.dataset, other.dataset),
                               ("classes", first.class_names, other.class_names),
                               ("text encoder", first.encoder, other.encoder)):
                if a != b:
                    raise StoreError(f"cannot read together with {first.url}: {what} differs ({b} vs {a})",
                                     other.url)
        self.attrs = first.attrs

    dataset = property(lambda self: self.readers[0].dataset)
    encoder = property(lambda self: self.readers[0].encoder)
    label_space = property(lambda self: self.readers[0].label_space)
    class_names = property(lambda self: self.readers[0].class_names)
    class_embeddings = property(lambda self: self.readers[0].class_embeddings)

    @property
    def splits(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for r in self.readers:
            seen.update(dict.fromkeys(r.splits))
        return tuple(seen)

    def _parts(self, split: str) -> list[StoreReader]:
        parts = [r for r in self.readers if split in r.splits]
        if not parts:
            raise BadInput(f"no split {split!r} in any of the {len(self.readers)} stores")
        return parts

    def _starts(self, split: str) -> list[int]:
        starts, total = [], 0
        for r in self._parts(split):
            starts.append(total)
            total += r.num_scenes(split)
        return starts

    def fields(self, split: str) -> tuple[str, ...]:
        return self._parts(split)[0].fields(split)

    def names(self, split: str) -> list[str]:
        names = [n for r in self._parts(split) for n in r.names(split)]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise StoreError(f"scene {dup!r} of split {split!r} is in more than one of the stores")
        return names

    def num_scenes(self, split: str) -> int:
        return sum(r.num_scenes(split) for r in self._parts(split))

    def _locate(self, split: str, key: int | str) -> tuple[StoreReader, int | str]:
        parts = self._parts(split)
        if isinstance(key, str):
            for r in parts:
                if key in r._split(split).index_of:
                    return r, key
            raise BadInput(f"no scene named {key!r} in split {split!r} of any store")
        n = self.num_scenes(split)
        if not -n <= key < n:
            raise BadInput(f"scene index {key} out of range: split {split!r} has {n} scenes")
        key %= n
        starts = self._starts(split)
        j = bisect.bisect_right(starts, key) - 1
        return parts[j], key - starts[j]

    def num_points(self, split: str, i: int | None = None) -> int:
        if i is None:
            return sum(r.num_points(split) for r in self._parts(split))
        r, local = self._locate(split, i)
        return r.num_points(split, local)

    def read(self, split: str, key: int | str, fields: Sequence[str] | None = None) -> Scene:
        r, local = self._locate(split, key)
        return r.read(split, local, fields)

    def iter_scenes(self, split: str, fields: Sequence[str] | None = None) -> Iterator[Scene]:
        for r in self._parts(split):
            yield from r.iter_scenes(split, fields)


def open_stores(urls: Sequence[str | Store]) -> StoreSet:
    return StoreSet(urls)


def find_stores(out_dir: str, dataset: str) -> list[str]:
    """The stores of `dataset` in `out_dir`: `<dataset>.zarr` and/or its shards `<dataset>.shard-K-of-N.zarr`."""
    fs, root = fsspec.core.url_to_fs(out_dir)
    found = sorted(set(fs.glob(f"{root.rstrip('/')}/{dataset}.zarr"))
                   | set(fs.glob(f"{root.rstrip('/')}/{dataset}.shard-*-of-*.zarr")))

    def shard_key(path: str) -> tuple[int, int]:
        stem = path.rsplit("/", 1)[-1]
        if ".shard-" not in stem:
            return (-1, 0)
        k, _, n = stem.split(".shard-")[1].removesuffix(".zarr").partition("-of-")
        return (int(n), int(k)) if k.isdigit() and n.isdigit() else (0, 0)

    found.sort(key=shard_key)
    return [fs.unstrip_protocol(p) for p in found] if is_url(out_dir) else found
