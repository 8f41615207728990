"""Custom datasets named on the command line: found as stores in the data folder, their label spaces registered.

`--datasets warehouse` means nothing to a process that has not opened warehouse.zarr yet: the seven datasets are
built in, a custom one is known only from its store's attributes (`pmoe_core.vocab.custom`). Train and eval call
this before resolving names, so a custom dataset is named exactly like the seven.
"""

from __future__ import annotations

from collections.abc import Iterable

from pmoe_core.errors import BadInput
from pmoe_core.store.reader import StoreReader, find_stores
from pmoe_core.vocab.custom import NAME_RE
from pmoe_core.vocab.label_spaces import resolve_dataset


def register_custom_stores(data: str, names: Iterable[str]) -> None:
    """Open the first store of each name in `data` that is not one of the seven (registering its label space);
    names with no store are left for the caller's own 'unknown dataset' / 'no scene store' message."""
    for name in names:
        try:
            resolve_dataset(name)
            continue
        except BadInput:
            pass
        if NAME_RE.match(name):
            found = find_stores(data, name)
            if found:
                StoreReader(found[0])
