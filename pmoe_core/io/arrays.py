"""NumPy (.npy/.npz) and KITTI-style .bin point files -> Scene.

.npz: arrays named after Scene fields: `coord` (N, 3) required; `color` (N, 3, 0-255), `normal` (N, 3),
`strength` (N,), `segment` (N,), `instance` (N,) optional; other keys are ignored.
.npy: one (N, C) array: C = 3 (x y z), 4 (x y z strength), 6 (x y z r g b) or 7 (x y z r g b segment).
.bin: float32 x 4 per point (x, y, z, remission), as in KITTI / SemanticKITTI velodyne scans.
"""

from __future__ import annotations

import tokenize
import zipfile
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError
from pmoe_core.io.files import require_regular_file
from pmoe_core.scene import FIELD_SPECS, Scene

NPY_LAYOUTS = {3: ("coord",), 4: ("coord", "strength"), 6: ("coord", "color"), 7: ("coord", "color", "segment")}


def _exists(path: Path) -> None:
    require_regular_file(path, "file")


# Deflate inflates at most ~1032:1; a member claiming more bytes than that is a corrupt size field.
MAX_DEFLATE_RATIO = 1100
MAX_NPY_HEADER = 1 << 16


def _check_npy_header(fp, available: int, source) -> None:
    """Refuse an .npy header whose shape needs more bytes than `available`, before numpy allocates the array
    (numpy sizes its buffer from the header; a 10^12-row claim asks for terabytes, 2^62 overflows its size)."""
    major, minor = np.lib.format.read_magic(fp)
    if major not in (1, 2, 3):
        raise FormatError(f"unsupported .npy format version {major}.{minor}", source)
    start = fp.tell()
    length = int.from_bytes(fp.read(2 if major == 1 else 4), "little")
    if length > min(available, MAX_NPY_HEADER):  # numpy reads the whole header before its own size check
        raise FormatError(f".npy header claims {length} bytes (corrupt file)", source)
    fp.seek(start)
    header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    try:
        shape, _, dtype = header(fp)
    except (SyntaxError, tokenize.TokenError) as err:  # numpy leaks these from its header parser
        raise FormatError(f"unreadable .npy header ({type(err).__name__})", source) from None
    if any(int(d) < 0 for d in shape):
        raise FormatError(f"header declares a negative dimension in shape {shape}", source)
    need = int(np.prod([int(d) for d in shape], dtype=object)) * dtype.itemsize
    if need > available:
        raise FormatError(f"header declares shape {shape} of {dtype} ({need} bytes) but the file holds only "
                          f"{available} bytes (truncated file or corrupt header)", source)


def _check_npz_members(path: Path) -> None:
    archive_size = path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.filename[:-4] not in FIELD_SPECS or not info.filename.endswith(".npy"):
                continue
            available = min(info.file_size, MAX_DEFLATE_RATIO * max(info.compress_size, 1),
                            MAX_DEFLATE_RATIO * archive_size)
            with zf.open(info) as fp:
                _check_npy_header(fp, available, f"{path}:{info.filename}")


def read_npz(path: str | Path) -> Scene:
    path = Path(path)
    _exists(path)
    try:
        _check_npz_members(path)
        with np.load(path, allow_pickle=False) as archive:
            if "coord" not in archive.files:
                raise FormatError(f"no 'coord' array (keys: {', '.join(archive.files) or 'none'})", path)
            arrays = {k: archive[k] for k in FIELD_SPECS if k in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as err:
        raise FormatError(f"cannot read .npz ({err})", path) from None
    bad = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise FormatError(f"member(s) {', '.join(bad)} are not .npy arrays", path)
    return _scene(path, arrays)


def load_npy_array(path: str | Path) -> np.ndarray:
    """One .npy file as a read-only memory map, its header checked against the file size first; pickled object
    arrays and .npz archives are refused (FormatError naming the file)."""
    path = Path(path)
    _exists(path)
    try:
        with path.open("rb") as fp:
            _check_npy_header(fp, path.stat().st_size, path)
        table = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError, OverflowError) as err:
        if "pickle" in str(err) or "Python objects" in str(err):
            raise FormatError("holds pickled Python objects, which pmoe never loads (allow_pickle=False)",
                              path) from None
        raise FormatError(f"cannot read .npy ({err})", path) from None
    if not isinstance(table, np.ndarray):
        raise FormatError("not a .npy array (a zip/.npz archive or pickled data)", path)
    return table


def read_npy(path: str | Path) -> Scene:
    path = Path(path)
    table = load_npy_array(path)
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
        if color.dtype.kind == "f" and not np.isfinite(color).all():
            raise FormatError("color holds NaN or infinite values", path)
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
