"""Single point-cloud files -> one in-memory Scene, and the writers used by `pmoe export`.

`read_point_cloud(path)` dispatches on the file suffix (table `READERS`); an unknown suffix is a BadInput.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pmoe_core.errors import BadInput
from pmoe_core.io.arrays import read_kitti_bin, read_npy, read_npz, write_npz
from pmoe_core.io.las import read_las, write_las
from pmoe_core.io.ply_scene import read_ply, write_ply
from pmoe_core.scene import Scene

READERS: dict[str, Callable[[Path], Scene]] = {
    ".ply": read_ply,
    ".las": read_las,
    ".laz": read_las,
    ".npy": read_npy,
    ".npz": read_npz,
    ".bin": read_kitti_bin,
}


def read_point_cloud(path: str | Path, classification: bool = False) -> Scene:
    """Read one point-cloud file; `classification=True` takes LAS/LAZ classification codes as the segment."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise BadInput(f"unknown point-cloud file type {suffix or '(none)'!r}; known: {', '.join(READERS)}", path)
    if suffix in (".las", ".laz"):
        return read_las(path, classification=classification)
    return READERS[suffix](path)


__all__ = ["READERS", "read_point_cloud", "read_ply", "read_las", "read_npy", "read_npz", "read_kitti_bin",
           "write_ply", "write_las", "write_npz"]
