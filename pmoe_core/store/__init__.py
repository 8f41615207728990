"""The Zarr scene store: layout, atomic resumable writer, O(1) scene reader, validation.

One format for every dataset: `OUT/<dataset>.zarr` (see layout.py for the tree and writer.py for the commit
protocol). Other packages import from here only.
"""

from pmoe_core.store.info import store_info
from pmoe_core.store.layout import CHUNK_POINTS, FORMAT_NAME, FORMAT_VERSION, SHARD_POINTS, store_path
from pmoe_core.store.reader import StoreReader, StoreSet, find_stores, open_store, open_stores
from pmoe_core.store.validation import check_store
from pmoe_core.store.writer import StoreWriter

__all__ = [
    "CHUNK_POINTS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SHARD_POINTS",
    "StoreReader",
    "StoreSet",
    "StoreWriter",
    "check_store",
    "find_stores",
    "open_store",
    "open_stores",
    "store_info",
    "store_path",
]
