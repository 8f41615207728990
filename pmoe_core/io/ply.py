"""PLY reading (plyfile) behind size guards, and the one PLY writer.

Decoding is plyfile's: its header parser and its per-element reader (what `PlyData.read` runs for each element;
binary elements are memory-mapped, mesh faces too when their list length is known: triangles). Calling them one
element at a time (plyfile 1.x internals, hence the `<2` pin) lets this module add what plyfile leaves to the
caller: the sizes the header claims are checked against the bytes actually present *before* anything is allocated
(a truncated file or an absurd header such as 10^12 vertices fails fast with a `FormatError` naming the file;
plyfile allocates an ASCII element's table, or a table of variable-length lists, before reading it), only the elements up to the last wanted one are decoded (the faces of a quad mesh
do not stop its vertices from reading), ASCII values are checked against their declared type (plyfile would store
1e400 as inf and raise a bare OverflowError for 70000 in a short), and every failure is one `FormatError` line.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from plyfile import PlyData, PlyElementParseError, PlyListProperty, PlyParseError
from plyfile import PlyElement as _PlyfileElement, PlyProperty as _PlyfileProperty

from pmoe_core.errors import FormatError
from pmoe_core.io.files import require_regular_file

NUMPY_TO_PLY: dict[str, str] = {
    "i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float", "f8": "double",
}
FORMAT_NAMES = {"<": "binary_little_endian", ">": "binary_big_endian"}
MAX_HEADER_BYTES = 1 << 20
# Expected length of list properties: triangle meshes (ScanNet, Matterport3D); `list_lengths` adds others.
LIST_LENGTHS = {"vertex_indices": 3, "vertex_index": 3}
# Smallest ASCII text of one value: a digit and a separator.
MIN_ASCII_VALUE_BYTES = 2


@dataclass(frozen=True)
class PlyProperty:
    name: str
    type: str  # numpy kind+size, e.g. "f4"
    count_type: str | None = None  # list properties: type of the length prefix


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    def property_names(self) -> list[str]:
        return [p.name for p in self.properties]


@dataclass(frozen=True)
class PlyHeader:
    format: str
    elements: tuple[PlyElement, ...]
    size: int  # bytes up to and including "end_header\n"
    comments: tuple[str, ...] = ()

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


Columns = dict[str, dict[str, np.ndarray]]


def read_ply_file(
    path: str | Path, elements: tuple[str, ...] = ("vertex", "face"), list_lengths: dict[str, int] | None = None
) -> tuple[PlyHeader, Columns]:
    """Decode the wanted elements of a PLY file.

    Returns the header and, per wanted element present in the file, its properties as arrays (list properties as
    (count, length) arrays). Binary columns may be read-only views of the memory-mapped file: copy before
    modifying them. `list_lengths` gives the expected length of list properties beyond triangles' 3.
    """
    path = Path(path)
    size = require_regular_file(path, "PLY file")
    if size == 0:
        raise FormatError("empty file", path)
    with path.open("rb") as stream:
        return _read(stream, size, path, elements, list_lengths)


def read_ply_bytes(
    data: bytes | np.ndarray,
    source: str | Path,
    elements: tuple[str, ...] = ("vertex", "face"),
    list_lengths: dict[str, int] | None = None,
) -> tuple[PlyHeader, Columns]:
    """`read_ply_file` for a PLY held in memory (e.g. an archive member), `source` naming it in errors.

    The bytes go through an anonymous temporary file: plyfile memory-maps a file but decodes an in-memory stream
    row by row in Python (minutes for a large mesh).
    """
    view = memoryview(data).cast("B")
    if not view.nbytes:
        raise FormatError("empty file", source)
    with tempfile.TemporaryFile() as stream:
        stream.write(view)
        stream.seek(0)
        return _read(stream, view.nbytes, source, elements, list_lengths)


def _read(stream: BinaryIO, size: int, source, wanted: tuple[str, ...], list_lengths) -> tuple[PlyHeader, Columns]:
    head = stream.read(1 << 16)  # a header is a few hundred bytes; look further only when it must
    if b"end_header" not in head:
        head += stream.read(MAX_HEADER_BYTES - len(head))
    if not head.startswith(b"ply"):
        raise FormatError("not a PLY file (missing 'ply' magic)", source)
    if b"end_header" not in head:
        raise FormatError("PLY header has no end_header line (truncated or not a PLY file)", source)
    stream.seek(0)
    try:
        # plyfile's own header parser: the first step of PlyData.read, whose per-element step follows below.
        ply = PlyData._parse_header(stream)
    except (PlyParseError, ValueError, UnicodeDecodeError) as err:
        raise FormatError(f"bad PLY header: {_one_line(err)}", source) from None
    header = _header(ply, stream.tell())
    lengths = {**LIST_LENGTHS, **(list_lengths or {})}
    last = max((i for i, e in enumerate(header.elements) if e.name in wanted), default=-1)
    _check_sizes(header.elements[: last + 1], size - header.size, ply.text, lengths, source)
    data = io.TextIOWrapper(stream, "ascii", newline=None) if ply.text else stream
    out: Columns = {}
    for element, described in zip(header.elements[: last + 1], ply.elements[: last + 1]):
        known = {p.name: lengths[p.name] for p in element.properties if p.count_type and p.name in lengths}
        if ply.text:
            described = _widened(described)
        try:
            described._read(data, ply.text, ply.byte_order, "r", known_list_len=known)
        except PlyElementParseError as err:
            raise FormatError(_element_error(err, known), source) from None
        except (PlyParseError, ValueError, OverflowError, UnicodeDecodeError) as err:
            raise FormatError(f"cannot read the PLY {element.name} element: {_one_line(err)}", source) from None
        if element.name in wanted:
            out[element.name] = _columns(described.data, element, known, ply.text, source)
    return header, out


def _header(ply: PlyData, size: int) -> PlyHeader:
    elements = tuple(
        PlyElement(e.name, e.count, tuple(
            PlyProperty(p.name, p.val_dtype, p.len_dtype) if isinstance(p, PlyListProperty)
            else PlyProperty(p.name, p.val_dtype)
            for p in e.properties))
        for e in ply.elements)
    return PlyHeader("ascii" if ply.text else FORMAT_NAMES[ply.byte_order], elements, size,
                     tuple(ply.comments) + tuple(ply.obj_info))


def _check_sizes(elements, have: int, text: bool, lengths: dict[str, int], source) -> None:
    """Refuse element counts the bytes after the header cannot hold, before plyfile allocates for them."""
    used = 0
    for element in elements:
        if element.count < 0:
            raise FormatError(f"header declares {element.count} {element.name} elements", source)
        if text:
            values = sum(1 if p.count_type is None else 1 + lengths.get(p.name, 0) for p in element.properties)
            need = element.count * max(values, 1) * MIN_ASCII_VALUE_BYTES
            if need > have - used:
                raise FormatError(
                    f"header declares {element.count} {element.name} elements but the file holds only {have} bytes "
                    "of ASCII data (truncated file or corrupt header)", source)
        else:
            row = sum(np.dtype(p.type).itemsize if p.count_type is None
                      else np.dtype(p.count_type).itemsize + lengths.get(p.name, 0) * np.dtype(p.type).itemsize
                      for p in element.properties)
            need = element.count * row
            if need > have - used:
                raise FormatError(
                    f"header declares {element.count} {element.name} elements ({need} bytes) but only "
                    f"{max(have - used, 0)} bytes follow (truncated file or corrupt header)", source)
        used += need


def _widened(element: _PlyfileElement) -> _PlyfileElement:
    """The element with every ASCII value parsed as float64 (lists with an int32 length), so that `_cast` can refuse,
    naming the property, a value its declared type cannot hold; plyfile would raise a bare OverflowError or store
    inf."""
    return _PlyfileElement(element.name, [
        PlyListProperty(p.name, "i4", "f8") if isinstance(p, PlyListProperty) else _PlyfileProperty(p.name, "f8")
        for p in element.properties], element.count)


def _element_error(err: PlyElementParseError, known: dict[str, int]) -> str:
    where = f"{err.element.name} {err.row}" if err.row is not None else err.element.name
    prop = f" ({err.prop.name})" if err.prop is not None else ""
    if err.message == "unexpected list length" and err.prop is not None and err.prop.name in known:
        return (f"{where} has a {err.prop.name} list whose length is not {known[err.prop.name]} (only triangle "
                "meshes are supported) or the file is corrupt")
    if "end-of-file" in err.message:
        return f"PLY data ends inside {where}{prop} (truncated)"
    return f"bad PLY data in {where}{prop}: {err.message}"


def _columns(table: np.ndarray, element: PlyElement, known: dict[str, int], text: bool, source) -> dict:
    columns = {}
    for prop in element.properties:
        column = table[prop.name]
        if column.dtype == object:  # list property of unknown length, or any list of an ASCII file
            column = _fixed_lists(column, element.name, prop.name, known.get(prop.name), source)
        if text:
            column = _cast(column, prop, element.name, source)
        elif not (column.dtype.isnative or column.dtype.itemsize == 1):
            column = column.astype(column.dtype.newbyteorder("="))
        # Native binary columns stay views of the mapped file: a 30M-point cloud then costs its Scene plus one
        # column, not twice its size.
        columns[prop.name] = column
    return columns


def _fixed_lists(lists: np.ndarray, element: str, name: str, expected: int | None, source) -> np.ndarray:
    """(count, k) array of per-row lists that must all have one length (`expected` when known)."""
    sizes = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    k = expected if expected is not None else (int(sizes[0]) if sizes.size else 0)
    bad = np.flatnonzero(sizes != k)
    if bad.size:
        row = int(bad[0])
        raise FormatError(f"{element} {row} has {int(sizes[row])} entries in {name}, expected {k} (only triangle "
                          "meshes are supported) or the file is corrupt", source)
    if not lists.size:
        return np.zeros((0, k), dtype=np.float64)
    return np.stack(list(lists))


def _cast(values: np.ndarray, prop: PlyProperty, element: str, source) -> np.ndarray:
    """ASCII values (parsed as float64) as the property's declared type, refusing values that type cannot hold
    (numpy would wrap integers and turn large floats into inf with only a RuntimeWarning)."""
    dtype = np.dtype(prop.type)
    if values.size and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not (np.isfinite(values).all() and values.min() >= info.min and values.max() <= info.max):
            raise FormatError(f"{element}.{prop.name} holds values outside the range of {dtype.name}", source)
        if not np.array_equal(values, np.trunc(values)):
            raise FormatError(f"{element}.{prop.name} holds non-integer values but is declared {dtype.name}", source)
    elif values.size and dtype == np.float32:
        finite = np.isfinite(values)
        if (np.abs(values[finite]) > np.finfo(np.float32).max).any():
            raise FormatError(f"{element}.{prop.name} holds values outside the range of float32", source)
    return values.astype(dtype)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def require_properties(columns: dict[str, np.ndarray], names: tuple[str, ...], element: str, source) -> None:
    """Raise FormatError naming the missing properties of an element."""
    missing = [n for n in names if n not in columns]
    if missing:
        raise FormatError(f"PLY {element} element lacks propert{'y' if len(missing) == 1 else 'ies'} "
                          f"{', '.join(missing)}", source)


def write_ply_arrays(
    path: str | Path | BinaryIO,
    vertex: dict[str, np.ndarray],
    face: dict[str, np.ndarray] | None = None,
    binary: bool = True,
    comments: tuple[str, ...] = (),
) -> None:
    """Write vertex columns (and optional face columns; `vertex_indices` as (F, 3) int32) in the given order
    to a path or an open binary file."""
    n = len(next(iter(vertex.values())))
    lines = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {n}")
    vfields = []
    for name, column in vertex.items():
        code = column.dtype.str[1:]
        lines.append(f"property {NUMPY_TO_PLY[code]} {name}")
        vfields.append((name, "<" + code))
    ffields = []
    if face is not None:
        nf = len(next(iter(face.values())))
        lines.append(f"element face {nf}")
        for name, column in face.items():
            code = column.dtype.str[1:]
            if column.ndim == 2:
                lines.append(f"property list uchar {NUMPY_TO_PLY[code]} {name}")
                ffields += [(f"{name}__count", "u1"), (name, "<" + code, (column.shape[1],))]
            else:
                lines.append(f"property {NUMPY_TO_PLY[code]} {name}")
                ffields.append((name, "<" + code))
    lines.append("end_header")
    if hasattr(path, "write"):
        _write_body(path, lines, vertex, vfields, n, face, ffields, binary)
        return
    with open(path, "wb") as fh:
        _write_body(fh, lines, vertex, vfields, n, face, ffields, binary)


WRITE_CHUNK_ROWS = 1 << 20  # rows packed at a time: memory does not grow with the file


def _write_body(fh: BinaryIO, lines: list[str], vertex, vfields, n: int, face, ffields, binary: bool) -> None:
    fh.write(("\n".join(lines) + "\n").encode("ascii"))
    elements = [(vertex, vfields, n)]
    if face is not None:
        elements.append((face, ffields, len(next(iter(face.values())))))
    for columns, fields, rows in elements:
        for start in range(0, rows, WRITE_CHUNK_ROWS):
            part = slice(start, min(start + WRITE_CHUNK_ROWS, rows))
            fh.write(_pack({k: v[part] for k, v in columns.items()}, fields, part.stop - part.start, binary))


def _pack(columns: dict[str, np.ndarray], fields: list[tuple], n: int, binary: bool) -> bytes:
    table = np.empty(n, dtype=np.dtype(fields))
    for name in table.dtype.names:
        if name.endswith("__count"):
            table[name] = columns[name[:-7]].shape[1]
        else:
            table[name] = columns[name]
    if binary:
        return table.tobytes()
    parts = []
    for name in table.dtype.names:
        col = table[name]
        parts.append(col.reshape(n, -1).astype(np.float64 if col.dtype.kind == "f" else np.int64))
    matrix = np.hstack(parts) if parts else np.zeros((n, 0))
    int_cols = np.concatenate([
        np.full(table[name].reshape(n, -1).shape[1], table[name].dtype.kind != "f") for name in table.dtype.names
    ])
    fmt = " ".join("%d" if is_int else "%.9g" for is_int in int_cols)
    rows = [fmt % tuple(row) for row in matrix.tolist()] if n else []
    return ("\n".join(rows) + ("\n" if rows else "")).encode("ascii")
