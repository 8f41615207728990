"""JSON in and out. Every JSON file pmoe reads goes through `read_json`/`loads_json`: bad bytes, bad syntax and
nesting deeper than any real file has become one FormatError naming the file, never a RecursionError. Reports are
written whole or not at all (`write_json_atomic`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.outputs import atomic_path, check_output_file

MAX_DEPTH = 64  # real files nest a handful of levels (nuScenes tables 3, zarr.json with pmoe attributes ~8)


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk would fail where the parser did not)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads_json(data: str | bytes, source: str | Path | None = None) -> Any:
    """Parse JSON text; any failure is a FormatError naming `source`."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise FormatError(f"JSON nested deeper than {MAX_DEPTH} levels", source) from None
    except UnicodeDecodeError as err:
        raise FormatError(f"not UTF-8 JSON (byte {err.start})", source) from None
    except json.JSONDecodeError as err:
        raise FormatError(f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})", source) from None
    if _depth(value) > MAX_DEPTH:
        raise FormatError(f"JSON nested deeper than {MAX_DEPTH} levels", source)
    return value


def read_json(path: str | Path, max_bytes: int = 1 << 30) -> Any:
    """Read and parse a JSON file (at most `max_bytes`; nothing real is near the default)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("JSON file not found" if not path.exists() else "not a regular file", path)
    size = path.stat().st_size
    if size > max_bytes:
        raise FormatError(f"JSON file of {size} bytes is larger than the {max_bytes}-byte limit", path)
    return loads_json(path.read_bytes(), path)


def write_json_atomic(path: str | Path, data: Any, indent: int = 2, make_parents: bool = False) -> Path:
    """Temporary file in the same folder + rename; permissions as for any new file."""
    path = Path(path)
    check_output_file(path, overwrite=True, make_parents=make_parents)
    with atomic_path(path, make_parents=make_parents) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent)
            f.write("\n")
    return path
