"""NumPy (.npy/.npz) and KITTI-style .bin point files -> Scene.

.npz: arrays named after Scene fields: `coord` (N, 3) required; `color` (N, 3, 0-255), `normal` (N, 3),
`strength` (N,), `segment` (N,), `instance` (N,) optional; other keys are ignored.
.npy: one (N, C) array: C = 3 (x y z), 4 (x y z strength), 6 (x y z r g b) or 7 (x y z r g b segment).
.bin: float32 x 4 per point (x, y, z, remission), as in KITTI / SemanticKITTI velodyne scans.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.scene import FIELD_SPECS, Scene

NPY_LAYOUTS = {3: ("coord",), 4: ("coord", "strength"), 6: ("coord", "color"), 7: ("coord", "color", "segment")}


def _exists(path: Path) -> None:
    if not path.is_file():
        raise MissingFile("file not found", path)


def read_npz(path: str | Path) -> Scene:
    path = Path(path)
    _exists(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "coord" not in archive.files:
                raise FormatError(f"no 'coord' array (keys: {', '.join(archive.files) or 'none'})", path)
            arrays = {k: archive[k] for k in FIELD_SPECS if k in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise FormatError(f"cannot read .npz ({err})", path) from None
    return _scene(path, arrays)


def read_npy(path: str | Path) -> Scene:
    path = Path(path)
    _exists(path)
    try:
        table = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        raise FormatError(f"cannot read .npy ({err})", path) from None
    if table.ndim != 2 or table.shape[1] not in NPY_LAYOUTS:
        raise FormatError(f"array has shape {table.shape}; expected (N, C) with C in {sorted(NPY_LAYOUTS)}", path)
    layout, col, arrays = NPY_LAYOUTS[table.shape[1]], 0, {}
    for field in layout:
        width = FIELD_SPECS[field][1]
        arrays[field] = np.array(table[:, col:col + width] if width else table[:, col])
        col += max(width, 1)
    return _scene(path, arrays)


def read_kitti_bin(path: str | Path) -> Scene:
    path = Path(path)
    _exists(path)
    size = path.stat().st_size
    if size % 16:
        raise FormatError(f"size {size} bytes is not a multiple of 16 (float32 x, y, z, remission)", path)
    points = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    return _scene(path, {"coord": points[:, :3], "strength": points[:, 3]})


def _scene(path: Path, arrays: dict[str, np.ndarray]) -> Scene:
    if "color" in arrays:
        color = arrays["color"]
        if color.dtype.kind == "f" and color.size and color.max() <= 1.0:
            color = color * 255.0
        arrays["color"] = np.clip(np.rint(color), 0, 255)
    for field in ("segment", "instance"):
        if field in arrays:
            values = arrays[field]
            if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
                raise FormatError(f"{field} holds non-integer values", path)
            info = np.iinfo(FIELD_SPECS[field][0])
            if values.size and (values.min() < info.min or values.max() > info.max):
                raise FormatError(f"{field} values do not fit {FIELD_SPECS[field][0].name}", path)
    try:
        scene = Scene(path.stem, **arrays)
    except ValueError as err:
        raise FormatError(f"array cannot be converted ({err})", path) from None
    return scene.validate(str(path))


def write_npz(scene: Scene, path: str | Path) -> None:
    """The inverse of `read_npz` (uncompressed; keys = Scene field names)."""
    np.savez(path, **scene.arrays())
