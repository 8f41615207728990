"""PLY reading and writing, driven by the header (never fixed offsets).

Binary elements are decoded in one `np.frombuffer` call per element through a structured dtype built from the
header. List properties (mesh faces) must have one fixed length per element (triangles: 3), which is checked after
decoding; that is what the real ScanNet and Matterport3D meshes use. Sizes claimed by the header are checked
against the bytes actually present *before* anything is allocated, so a truncated file or an absurd header (10^12
vertices) fails fast with a `FormatError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pmoe_core.errors import FormatError, MissingFile

PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
NUMPY_TO_PLY: dict[str, str] = {
    "i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float", "f8": "double",
}
FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
MAX_HEADER_BYTES = 1 << 20


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


def parse_header(data: bytes | memoryview, source: str | Path) -> PlyHeader:
    """Parse the ASCII header at the start of `data`."""
    head = bytes(data[:MAX_HEADER_BYTES])
    if not head.startswith(b"ply"):
        raise FormatError("not a PLY file (missing 'ply' magic)", source)
    end = head.find(b"end_header")
    if end < 0:
        raise FormatError("PLY header has no end_header line (truncated or not a PLY file)", source)
    line_end = head.find(b"\n", end)
    size = len(head) if line_end < 0 else line_end + 1
    lines = head[:end].decode("ascii", errors="replace").splitlines()[1:]
    fmt, comments, elements = None, [], []
    name, count, props = None, 0, []
    for raw in lines:
        parts = raw.split()
        if not parts:
            continue
        key = parts[0]
        if key == "format":
            if len(parts) < 2 or parts[1] not in FORMATS:
                raise FormatError(f"unsupported PLY format line {raw.strip()!r}", source)
            fmt = parts[1]
        elif key in ("comment", "obj_info"):
            comments.append(raw[len(key):].strip())
        elif key == "element":
            if name is not None:
                elements.append(PlyElement(name, count, tuple(props)))
            if len(parts) != 3 or not parts[2].isdigit():
                raise FormatError(f"bad PLY element line {raw.strip()!r}", source)
            name, count, props = parts[1], int(parts[2]), []
        elif key == "property":
            if name is None:
                raise FormatError(f"PLY property before any element: {raw.strip()!r}", source)
            props.append(_parse_property(parts, raw, source))
        else:
            raise FormatError(f"unexpected PLY header line {raw.strip()!r}", source)
    if name is not None:
        elements.append(PlyElement(name, count, tuple(props)))
    if fmt is None:
        raise FormatError("PLY header has no format line", source)
    return PlyHeader(fmt, tuple(elements), size, tuple(comments))


def _parse_property(parts: list[str], raw: str, source: str | Path) -> PlyProperty:
    if len(parts) == 5 and parts[1] == "list":
        if parts[2] not in PLY_TYPES or parts[3] not in PLY_TYPES:
            raise FormatError(f"unknown PLY type in {raw.strip()!r}", source)
        return PlyProperty(parts[4], PLY_TYPES[parts[3]], PLY_TYPES[parts[2]])
    if len(parts) == 3 and parts[1] in PLY_TYPES:
        return PlyProperty(parts[2], PLY_TYPES[parts[1]])
    raise FormatError(f"bad PLY property line {raw.strip()!r}", source)


def read_ply_bytes(
    data: bytes | np.ndarray,
    source: str | Path,
    elements: tuple[str, ...] = ("vertex", "face"),
    list_lengths: dict[str, int] | None = None,
) -> tuple[PlyHeader, dict[str, dict[str, np.ndarray]]]:
    """Decode the wanted elements of a PLY held in memory.

    Returns the header and, per wanted element present in the file, its properties as arrays (list properties as
    (count, length) arrays). Binary columns may be read-only views of `data`: copy before modifying them. `list_lengths` gives the expected length of each list property (default 3, triangles).
    """
    header = parse_header(data, source)
    lengths = {"vertex_indices": 3, "vertex_index": 3, **(list_lengths or {})}
    if header.format == "ascii":
        return header, _read_ascii(data, header, source, elements, lengths)
    return header, _read_binary(data, header, source, elements, lengths)


def read_ply_file(
    path: str | Path, elements: tuple[str, ...] = ("vertex", "face"), list_lengths: dict[str, int] | None = None
) -> tuple[PlyHeader, dict[str, dict[str, np.ndarray]]]:
    """`read_ply_bytes` for a file on disk."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("PLY file not found", path)
    if path.stat().st_size == 0:
        raise FormatError("empty file", path)
    data = np.memmap(path, dtype=np.uint8, mode="r")  # columns may be views of the map until the caller drops them
    return read_ply_bytes(data, path, elements, list_lengths)


def _binary_dtype(element: PlyElement, order: str, lengths: dict[str, int], source) -> np.dtype:
    fields: list[tuple] = []
    for prop in element.properties:
        if prop.count_type is None:
            fields.append((prop.name, order + prop.type))
            continue
        if prop.name not in lengths:
            raise FormatError(f"list property {element.name}.{prop.name} has no known fixed length", source)
        fields.append((f"{prop.name}__count", order + prop.count_type))
        fields.append((prop.name, order + prop.type, (lengths[prop.name],)))
    return np.dtype(fields)


def _read_binary(data, header: PlyHeader, source, wanted, lengths) -> dict[str, dict[str, np.ndarray]]:
    order = FORMATS[header.format]
    offset, out = header.size, {}
    last_wanted = max((i for i, e in enumerate(header.elements) if e.name in wanted), default=-1)
    for i, element in enumerate(header.elements[: last_wanted + 1]):
        dtype = _binary_dtype(element, order, lengths, source)
        need = element.count * dtype.itemsize
        have = len(data) - offset
        if need > have:
            raise FormatError(
                f"header declares {element.count} {element.name} elements ({need} bytes) but only {have} bytes "
                "follow (truncated file or corrupt header)",
                source,
            )
        table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
        offset += need
        if element.name in wanted:
            out[element.name] = _split_fields(table, element, lengths, source)
    return out


def _split_fields(table: np.ndarray, element: PlyElement, lengths, source) -> dict[str, np.ndarray]:
    columns = {}
    for prop in element.properties:
        if prop.count_type is not None:
            counts = table[f"{prop.name}__count"]
            bad = np.flatnonzero(counts != lengths[prop.name])
            if bad.size:
                raise FormatError(
                    f"{element.name} {int(bad[0])} has {int(counts[bad[0]])} entries in {prop.name}, expected "
                    f"{lengths[prop.name]} (only triangle meshes are supported) or the file is corrupt",
                    source,
                )
        column = table[prop.name]
        native = column.dtype.isnative or column.dtype.itemsize == 1
        # Native-order columns stay read-only views of the file (one copy later, into the caller's arrays: a
        # 30M-point cloud then costs its Scene plus one column, not twice its size); others are converted.
        columns[prop.name] = column if native else column.astype(column.dtype.newbyteorder("="))
    return columns


def _read_ascii(data, header: PlyHeader, source, wanted, lengths) -> dict[str, dict[str, np.ndarray]]:
    body = bytes(data[header.size:])
    lines = body.split(b"\n")
    start, out = 0, {}
    last_wanted = max((i for i, e in enumerate(header.elements) if e.name in wanted), default=-1)
    for element in header.elements[: last_wanted + 1]:
        min_tokens = sum(1 if p.count_type is None else 1 + lengths.get(p.name, 0) for p in element.properties)
        if element.count * max(min_tokens, 1) * 2 > len(body):
            raise FormatError(
                f"header declares {element.count} {element.name} elements but the file holds only {len(body)} bytes "
                "of ASCII data (truncated file or corrupt header)",
                source,
            )
        chunk = lines[start:start + element.count]
        start += element.count
        if len(chunk) < element.count or (chunk and not chunk[-1].strip()):
            raise FormatError(f"ASCII PLY ends before its {element.count} {element.name} lines (truncated)", source)
        if element.name not in wanted:
            continue
        try:
            values = np.array(b" ".join(chunk).split(), dtype=np.float64)
        except ValueError:
            raise FormatError(f"non-numeric value in the {element.name} lines", source) from None
        if values.size != element.count * min_tokens:
            raise FormatError(
                f"{element.name} lines hold {values.size} values, expected {element.count} x {min_tokens} "
                "(wrong list lengths or missing values)",
                source,
            )
        table = values.reshape(element.count, min_tokens) if element.count else values.reshape(0, min_tokens)
        columns, col = {}, 0
        for prop in element.properties:
            if prop.count_type is None:
                columns[prop.name] = _cast(table[:, col], prop, element.name, source)
                col += 1
                continue
            k = lengths.get(prop.name, 0)
            if (table[:, col] != k).any():
                raise FormatError(f"{element.name}.{prop.name} lists must have length {k}", source)
            columns[prop.name] = _cast(table[:, col + 1:col + 1 + k], prop, element.name, source)
            col += 1 + k
        out[element.name] = columns
    return out


def _cast(values: np.ndarray, prop: PlyProperty, element: str, source) -> np.ndarray:
    """ASCII values as the property's declared type, refusing values that type cannot hold (numpy would wrap
    integers and turn large floats into inf with only a RuntimeWarning)."""
    dtype = np.dtype(prop.type)
    if values.size and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not (np.isfinite(values).all() and values.min() >= info.min and values.max() <= info.max):
            raise FormatError(f"{element}.{prop.name} holds values outside the range of {dtype.name}", source)
    elif values.size and dtype == np.float32:
        finite = np.isfinite(values)
        if (np.abs(values[finite]) > np.finfo(np.float32).max).any():
            raise FormatError(f"{element}.{prop.name} holds values outside the range of float32", source)
    return values.astype(dtype)


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
    payload = [("\n".join(lines) + "\n").encode("ascii"), _pack(vertex, vfields, n, binary)]
    if face is not None:
        payload.append(_pack(face, ffields, nf, binary))
    if hasattr(path, "write"):
        path.write(b"".join(payload))
        return
    with open(path, "wb") as fh:
        fh.write(b"".join(payload))


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
