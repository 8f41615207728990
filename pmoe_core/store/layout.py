"""Where things live in a scene store and how its arrays are chunked; shared by the writer, reader and checker.

```
<dataset>.zarr/                      group; attributes described by schemas/store.schema.json
  class_embeddings                   (C, D) float32, one chunk; attribute "encoder"
  pmoe-writer.lock                   present only while a writer holds the store
  <split>/                           group per split (train / val / test)
    coord, color, ...                one ragged array per field, all scenes concatenated along axis 0
    names                            (>= S,) strings
    offsets                          (S + 1,) int64; scene i is rows offsets[i]:offsets[i+1]
```

The commit protocol (see writer.py) makes `offsets` the commit record: field rows and names beyond what the
offsets cover are an uncommitted tail, which readers ignore and a resuming writer cuts off.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.codecs import BloscCodec

from pmoe_core.errors import StoreError
from pmoe_core.scene import FIELD_SPECS
from pmoe_core.sources.base import SPLITS

FORMAT_NAME = "pmoe-scene-store"
FORMAT_VERSION = 1

# 64 Ki points per chunk: a typical indoor scene (50k-300k points) spans 1-6 chunks, so a random scene read
# decodes little it does not need; 16 chunks per shard keeps the object count per field at one per ~1M points.
CHUNK_POINTS = 65_536
SHARD_POINTS = 16 * CHUNK_POINTS
NAMES_CHUNK = 4096
OFFSETS_CHUNK = 8192

OFFSETS = "offsets"
NAMES = "names"
EMBEDDINGS = "class_embeddings"
LOCK_KEY = "pmoe-writer.lock"


def point_codec() -> BloscCodec:
    """Blosc lz4 with byte shuffle: about zstd's ratio on point data at a fraction of its cost (BENCHMARKS.md)."""
    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def store_path(out_dir: str, dataset: str, shard: tuple[int, int] | None = None) -> str:
    """`OUT/<dataset>.zarr`, or `OUT/<dataset>.shard-K-of-N.zarr` for shard K (0-based) of N.

    Works for local folders and fsspec URLs alike (plain string joining, no Path normalisation of `s3://`).
    """
    name = f"{dataset}.zarr"
    if shard is not None:
        k, n = shard
        if not (n >= 1 and 0 <= k < n):
            raise StoreError(f"shard {k}/{n} is out of range: need 0 <= K < N")
        name = f"{dataset}.shard-{k}-of-{n}.zarr"
    return f"{str(out_dir).rstrip('/')}/{name}"


def is_store_folder(path: str | Path) -> bool:
    """A local folder holding a store: its root group's zarr.json (how a command tells a store from a raw dataset
    folder or a folder of stores)."""
    return (Path(path) / "zarr.json").is_file()


def is_url(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def local_or_url(url: str) -> str:
    """`file://` URLs name local paths: use the local store and lock, which are atomic (fsspec's are not)."""
    return url[len("file://"):] if url.startswith("file://") else url


def open_zarr_store(url: str | Store, *, read_only: bool) -> Store:
    """A zarr Store for a local path or an fsspec URL (or an already-built Store, e.g. a wrapper in tests)."""
    if isinstance(url, Store):
        return url
    url = local_or_url(url)
    if is_url(url):
        return zarr.storage.FsspecStore.from_url(url, read_only=read_only)
    return zarr.storage.LocalStore(url, read_only=read_only)


# By default zarr does not store a chunk whose values all equal the fill value (0 for point fields: an all-zero
# `instance` or `segment` is ordinary data) and reads an absent object as fill values. The writer stores every
# chunk, so an absent object always means damage, and marks each field array it creates with this attribute so
# `pmoe check` knows it may say so (arrays from writers before this have no mark: absence is ambiguous there).
WRITE_EMPTY_CHUNKS = {"write_empty_chunks": True}
ALL_CHUNKS_STORED = "all_chunks_stored"


def field_array_kwargs(field: str) -> dict[str, Any]:
    """Creation arguments of a ragged field array: (0,) or (0, width), chunked and sharded along points."""
    dtype, width = FIELD_SPECS[field]
    shape: tuple[int, ...] = (0, width) if width else (0,)
    chunks: tuple[int, ...] = (CHUNK_POINTS, width) if width else (CHUNK_POINTS,)
    shards: tuple[int, ...] = (SHARD_POINTS, width) if width else (SHARD_POINTS,)
    return dict(shape=shape, dtype=dtype, chunks=chunks, shards=shards, compressors=point_codec(), fill_value=0,
                config=WRITE_EMPTY_CHUNKS, attributes={ALL_CHUNKS_STORED: True})


UNWRITTEN_OFFSET = -1  # fill value of `offsets`: what an entry reads as before its value is written


def committed_offsets(offsets: np.ndarray) -> np.ndarray:
    """The committed part of an `offsets` array as read: S + 1 values for S committed scenes.

    zarr's append grows the shape before it writes the value, so a writer killed in between leaves a trailing
    fill value (-1), which is not a commit (nor is an unwritten leading 0 of a split being created). Any other bad
    value is damage and is left for `check_store` to report.
    """
    n = int(offsets.shape[0]) - 1
    while n > 0 and offsets[n] == UNWRITTEN_OFFSET:
        n -= 1
    if n <= 0:
        return np.zeros(1, dtype=np.int64)
    return np.asarray(offsets[: n + 1], dtype=np.int64)


@contextmanager
def quiet_lock_listing() -> Iterator[None]:
    """Listing the root while a writer holds it: zarr warns that the lock object is not a zarr node."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{LOCK_KEY}.*")
        yield


def split_groups(root: zarr.Group) -> list[str]:
    """Names of the split subgroups, standard splits first (train, val, test), then others sorted."""
    with quiet_lock_listing():
        names = [name for name, _ in root.groups()]
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(names, key=lambda s: (order.get(s, len(order)), s))


def group_arrays(group: zarr.Group) -> dict[str, zarr.Array]:
    """The arrays of a group by name (a split's fields plus `offsets` and `names`; the root's embeddings)."""
    with quiet_lock_listing():
        return {name: arr for name, arr in group.arrays()}
