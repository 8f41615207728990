"""Where commands write: one guard that checks an output before any work is done, and one atomic writer.

The rules are the same for every command, so a user learns them once:
- nothing is written inside (or over) what the command reads: a store, an input file, a checkpoint;
- an existing file is replaced only when the user said `--overwrite`;
- an output file is not a folder, an output folder is not a file, and neither lies under /proc, /sys or /dev;
- the folder an output file goes into exists (or is created by the command; `make_parents=True`).
Outputs appear whole or not at all: `atomic_path` yields a temporary name beside the target and renames it into
place on success, with the permissions any new file gets (umask), not mkstemp's 0600.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pmoe_core.errors import BadInput, MissingFile

SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path)))).resolve()


def _is_local(path: str | Path) -> bool:
    return "://" not in str(path)


def _refuse_system_tree(out: Path, shown: str | Path) -> None:
    for tree in SYSTEM_TREES:
        if out == tree or tree in out.parents:
            raise BadInput(f"is under {tree}; choose an ordinary folder for output", shown)


def _refuse_inside_inputs(out: Path, reads: Iterable[str | Path], shown: str | Path) -> None:
    for source in reads:
        if source is None or not _is_local(source):
            continue
        src = _resolved(source)
        if out == src:
            raise BadInput(f"is also an input ({source}); pmoe never writes over what it reads", shown)
        if src in out.parents and src.is_dir():
            raise BadInput(f"is inside the input {source}; pmoe never writes inside what it reads", shown)


def check_output_file(path: str | Path, *, reads: Iterable[str | Path] = (), overwrite: bool = False,
                      make_parents: bool = False) -> Path:
    """Refuse an output file that cannot or must not be written, before any slow work is done for it."""
    path = Path(path)
    out = _resolved(path)
    _refuse_system_tree(out, path)
    _refuse_inside_inputs(out, reads, path)
    if out.is_dir():
        raise BadInput("is a folder; give a file name for the output", path)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise BadInput("already exists; pass --overwrite to replace it", path)
        if not out.is_file():
            raise BadInput("exists and is not a regular file; refusing to replace it", path)
    parent = out.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise BadInput(f"{existing} is a file, not a folder", path)
    if not parent.is_dir() and not make_parents:
        raise MissingFile("folder does not exist", path.parent)
    return path


def check_output_dir(path: str | Path, *, reads: Iterable[str | Path] = ()) -> Path:
    """Refuse an output folder that is a file, a system tree, or inside (or equal to) an input."""
    path = Path(path)
    if not _is_local(path):
        return path
    out = _resolved(path)
    _refuse_system_tree(out, path)
    _refuse_inside_inputs(out, reads, path)
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == out else f"lies under {existing}, which is a file"
        raise BadInput(f"{where}; give a folder for the output", path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, make_parents: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix: writers that choose a format by suffix still work), renamed onto
    `path` when the block ends without error and removed on any failure, Ctrl-C included."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_partials(path: str | Path) -> None:
    """Delete temporary files of earlier writes of `path` that a killed process left behind (call only where one
    process owns the folder, e.g. a run folder, once the new file is in place)."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial{glob.escape(path.suffix)}"):
        stale.unlink(missing_ok=True)
