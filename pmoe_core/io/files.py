"""The one check every single-file reader makes before opening its input."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pmoe_core.errors import BadInput, MissingFile


def require_regular_file(path: Path, what: str) -> int:
    """The file's size; MissingFile when `path` does not exist, BadInput when it is a folder, FIFO, socket or device
    (opening a FIFO would block until a writer comes; a device may never end)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MissingFile(f"{what} not found", path) from None
    except NotADirectoryError:
        raise MissingFile(f"{what} not found (a parent is not a folder)", path) from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(f"is a folder, not a {what}", path)
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"not a regular file (a FIFO, socket or device cannot be read as a {what})", path)
    return info.st_size
