"""JSON reports written whole or not at all: a reader (or a crash) never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pmoe_core.errors import BadInput, MissingFile


def check_json_target(path: str | Path) -> Path:
    """Refuse an output path that cannot be written, before any slow work is done for it."""
    path = Path(path)
    if path.is_dir():
        raise BadInput("is a folder; give a file name for the JSON output", path)
    if not path.parent.is_dir():  # Path("x.json").parent is Path(".")
        raise MissingFile("folder does not exist, cannot write the JSON report there", path.parent)
    return path


def write_json_atomic(path: str | Path, data: Any, indent: int = 2, make_parents: bool = False) -> Path:
    """Temporary file in the same folder + rename; world-readable like any report (mkstemp makes 0600)."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    check_json_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
