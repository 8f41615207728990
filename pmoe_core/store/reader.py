"""O(1) random access to the scenes of a store (or of several shard stores of one dataset), validated as read.

Opening reads the root attributes (checked as `pmoe check` checks them). The first access to a split reads and
validates its commit record once (`validation.read_split_index`: offsets int64, starting at 0, increasing, within
every field array; one non-empty unique name per scene; field dtypes and widths; chunk shapes; every stored object
the committed rows need, from one listing per array). From then on, scene i is one slice
`offsets[i]:offsets[i+1]` per field, whatever the number of scenes, and its values get the checks `check` applies
(finite coordinates and normals, labels in range). Any violation is a StoreError naming the store, never a
traceback, a hang, or rows of fill values passed off as data.
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
from pmoe_core.scene import Scene
from pmoe_core.schemas import validate
from pmoe_core.store.attrs import class_names
from pmoe_core.store.layout import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SHARD_POINTS,
    is_url,
    split_groups,
)
from pmoe_core.store.validation import (
    SplitIndex,
    attribute_problems,
    member_arrays,
    members,
    open_root,
    read_embeddings,
    read_split_index,
    value_problem,
)
from pmoe_core.vocab.custom import register_from_attrs
from pmoe_core.vocab.label_spaces import LabelSpace, label_space


def _damage(problem: str, url: str) -> StoreError:
    return StoreError(f"{problem} (run pmoe check for every problem)", url)


class _SplitView:
    """One split's committed scenes; its index is read and validated on first use."""

    def __init__(self, url: str, name: str, group: zarr.Group, num_classes: int):
        self.url = url
        self.name = name
        self.group = group
        self.num_classes = num_classes

    @cached_property
    def index(self) -> SplitIndex:
        arrays, problems = member_arrays(self.group, self.name)  # metadata that does not parse: named, not raised
        if problems:
            raise _damage(problems[0], self.url)
        try:
            index, problems = read_split_index(self.name, arrays)
        except Exception as err:  # metadata zarr parsed but cannot use (a safety net: check reports it alike)
            raise _damage(f"{self.name}: metadata unreadable ({type(err).__name__}: {str(err)[:200]})",
                          self.url) from None
        if problems or index is None:
            raise _damage(problems[0], self.url)
        return index

    @property
    def offsets(self) -> np.ndarray:
        return self.index.offsets

    @property
    def count(self) -> int:
        return self.index.count

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.index.fields) if self.count else ()

    @property
    def names(self) -> list[str]:
        return self.index.names

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

    def rows(self, field: str, lo: int, hi: int, what: str) -> np.ndarray:
        """Rows [lo, hi) of one field, decoded and checked as `check` checks them."""
        try:
            values = self.index.fields[field][lo:hi]
        except Exception as err:  # a chunk that does not decode (checksum, codec): damage, not a bug
            raise _damage(f"{what} is unreadable ({type(err).__name__}: {str(err)[:200]})", self.url) from None
        problem = value_problem(f"{self.name}", field, values, self.num_classes)
        if problem:
            raise _damage(f"{what}: {problem}", self.url)
        return values

    def read(self, i: int, fields: Sequence[str] | None) -> Scene:
        wanted = self.fields if fields is None else tuple(fields)
        missing = [f for f in wanted if f not in self.fields]
        if missing:
            raise BadInput(f"split {self.name!r} has no field(s) {', '.join(missing)} "
                           f"(it stores {', '.join(self.fields)})", self.url)
        if "coord" not in wanted:
            wanted = ("coord", *wanted)  # a Scene always has coordinates
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        data = {f: self.rows(f, lo, hi, f"scene {i} of split {self.name!r}") for f in wanted}
        return Scene(name=self.names[i], **data)


class StoreReader:
    """A read-only view of one scene store (local path, fsspec URL, or a zarr Store object)."""

    def __init__(self, url: str | Store):
        self.url = url if isinstance(url, str) else str(url)
        self._root = open_root(url)
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
        register_from_attrs(self.attrs, self.url)  # a custom dataset's label space travels in its attributes
        _, problems = members(self._root)  # a member whose zarr.json is missing or does not parse
        if problems:
            raise _damage(problems[0], self.url)
        try:
            splits = split_groups(self._root)
            self._splits = {s: _SplitView(self.url, s, self._root[s], len(self.class_names)) for s in splits}
        except Exception as err:  # a member's zarr.json that does not parse (truncated, nested 1000 deep)
            raise _damage(f"metadata of the root group's members unreadable ({type(err).__name__}: "
                          f"{str(err)[:200]})", self.url) from None

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
        try:
            values, problems = read_embeddings(self._root, self.attrs)
        except Exception as err:  # its zarr.json does not parse as zarr metadata
            raise _damage(f"class_embeddings: metadata unreadable ({type(err).__name__})", self.url) from None
        if problems or values is None:
            raise _damage(problems[0], self.url)
        return np.asarray(values, dtype=np.float32)

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
        end = int(view.offsets[-1])
        for lo in range(0, end, block):
            yield view.rows(field, lo, min(lo + block, end), f"{split}/{field} rows {lo}..")


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
