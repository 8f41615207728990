"""`store_info`: a JSON-ready summary of a store (splits, scenes, points, per-class point counts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from zarr.abc.store import Store

from pmoe_core.store.reader import StoreReader


@dataclass
class SplitInfo:
    scenes: int
    points: int
    fields: list[str]
    labeled: bool
    class_points: dict[str, int] = field(default_factory=dict)  # per benchmark class, labeled splits only
    ignored_points: int = 0  # segment == -1


def _histogram(reader: StoreReader, split: str, num_classes: int) -> tuple[np.ndarray, int]:
    """Point counts per class and of ignored points, one shard-sized block at a time."""
    counts = np.zeros(num_classes + 1, dtype=np.int64)  # slot 0 = ignore (-1)
    for block in reader.iter_field(split, "segment"):
        counts += np.bincount(np.asarray(block, dtype=np.int64) + 1, minlength=num_classes + 1)[: num_classes + 1]
    return counts[1:], int(counts[0])


def store_info(url: str | Store, histogram: bool = True) -> dict:
    """Summary of the store at `url`; `histogram=False` skips reading the labels (reads no point data)."""
    reader = StoreReader(url)
    names = reader.class_names
    splits: dict[str, SplitInfo] = {}
    for split in reader.splits:
        fields = list(reader.fields(split))
        info = SplitInfo(scenes=reader.num_scenes(split), points=reader.num_points(split), fields=fields,
                         labeled="segment" in fields)
        if histogram and info.labeled and info.points:
            counts, ignored = _histogram(reader, split, len(names))
            info.class_points = {n: int(c) for n, c in zip(names, counts)}
            info.ignored_points = ignored
        splits[split] = info
    attrs = reader.attrs
    return {
        "url": reader.url,
        "dataset": reader.dataset,
        "benchmark": attrs["benchmark"],
        "format_version": attrs["format_version"],
        "converter_version": attrs["converter"]["version"],
        "source": attrs["source"],
        "created": attrs["created"],
        "text_encoder": reader.encoder,
        "embedding_dim": int(attrs["text_encoder"]["dim"]),
        "classes": names,
        "scenes": sum(s.scenes for s in splits.values()),
        "points": sum(s.points for s in splits.values()),
        "splits": {name: asdict(s) for name, s in splits.items()},
    }
