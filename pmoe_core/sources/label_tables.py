"""Label tables shipped with the indoor datasets (ScanNet `scannetv2-labels.combined.tsv`, Matterport3D
`category_mapping.tsv`): tab-separated, a header row naming the columns, LF or CRLF line endings; and the check the
raw-id readers (SemanticKITTI, Waymo) share for label ids outside their dataset's table."""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import lru_cache
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError, MissingFile


@lru_cache(maxsize=8)
def read_tsv(path: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Header and rows of a TSV file (cached per process: every scene of a dataset reads the same table)."""
    file = Path(path)
    if not file.is_file():
        raise MissingFile("label table not found", file)
    text = file.read_bytes().decode("utf-8", errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise FormatError("label table is empty", file)
    header = tuple(col.strip() for col in lines[0].split("\t"))
    rows = tuple(tuple(col.strip() for col in line.split("\t")) for line in lines[1:])
    return header, rows


def column_map(path: str | Path, key: str, value: str) -> dict[str, int]:
    """`{row[key]: int(row[value])}`; rows whose value is blank map to 0 (NYU40 "unlabelled")."""
    header, rows = read_tsv(str(path))
    for col in (key, value):
        if col not in header:
            raise FormatError(f"label table has no column {col!r} (columns: {', '.join(header)})", path)
    k, v = header.index(key), header.index(value)
    out: dict[str, int] = {}
    for row in rows:
        if len(row) <= max(k, v):
            raise FormatError(f"label table row {row[:2]} has {len(row)} columns, expected {len(header)}", path)
        try:
            out[row[k]] = int(row[v]) if row[v] else 0
        except ValueError:
            raise FormatError(f"label table value {row[v]!r} in column {value!r} is not an integer", path) from None
    return out


def warn_unknown_ids(raw: np.ndarray, known: Collection[int], source: str, table: str,
                     warn: Callable[[str], None], shown: int = 8) -> None:
    """One warning naming `source` when some raw label ids are not in `known` (they map to ignore: a corrupt or
    foreign label file would otherwise convert to an all-ignore scene without a word)."""
    ids, counts = np.unique(raw, return_counts=True)
    unknown = ~np.isin(ids, np.fromiter(known, dtype=np.int64))
    if unknown.any():
        listed = ", ".join(str(int(i)) for i in ids[unknown][:shown])
        more = f" and {int(unknown.sum()) - shown} more" if unknown.sum() > shown else ""
        warn(f"{source}: {int(counts[unknown].sum())} of {raw.size} points carry label ids not in {table} "
             f"({listed}{more}); they are ignored")
