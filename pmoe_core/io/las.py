"""LAS/LAZ <-> Scene with laspy (LAZ through lazrs), streamed in chunks so large tiles never double in memory.

Labels: pmoe writes `classification = segment + 1` (0 = ignore, the ASPRS "never classified"), `intensity` from
strength, and the exact values as extra dimensions `segment` (int16) / `instance` (int32) / `strength` (float32). On reading, the extra
dimensions win; otherwise `classification=True` takes the raw classification codes as the segment.
Colours: 16-bit LAS RGB is scaled to 8 bit (values <= 255 are taken as already 8 bit).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.io.columns import scalar_column
from pmoe_core.io.files import require_regular_file
from pmoe_core.scene import Scene

CHUNK_POINTS = 1_000_000
# Dimension names of the point formats pmoe writes; an extra dimension must not repeat one.
LAS_STANDARD_NAMES = {"x", "y", "z", "intensity", "return_number", "number_of_returns", "classification",
                      "scan_angle_rank", "scan_angle", "user_data", "point_source_id", "gps_time", "red", "green",
                      "blue", "synthetic", "key_point", "withheld", "overlap", "scanner_channel",
                      "scan_direction_flag", "edge_of_flight_line", "classification_flags"}
# LAZ compresses a point record ~5-20x; a header claiming more than this many record bytes per compressed byte is
# corrupt. Checked before allocating, so a 10^12-point claim fails fast instead of asking for terabytes.
LAZ_MAX_RATIO = 10_000
VLR_HEADER_BYTES, EVLR_HEADER_BYTES = 54, 60
# What laspy and lazrs raise on bytes they cannot parse: their own errors plus the builtins their parsers leak
# (a corrupt extra-bytes VLR divides by zero; lazrs raises LazrsError, a plain Exception subclass).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, ZeroDivisionError, struct.error,
                                                    IndexError, KeyError, OverflowError)


def read_las(path: str | Path, classification: bool = False, chunk_points: int = CHUNK_POINTS) -> Scene:
    import laspy

    path = Path(path)
    require_regular_file(path, "LAS/LAZ file")
    _check_raw_header(path)
    try:
        with laspy.open(path) as reader:
            header = reader.header
            n = int(header.point_count)
            _check_sizes(path, header, n)
            dims = set(header.point_format.dimension_names)
            extra = set(header.point_format.extra_dimension_names)
            out = _allocate(n, dims, extra, classification)
            start = 0
            for chunk in reader.chunk_iterator(chunk_points):
                stop = start + len(chunk)
                if stop > n:
                    raise FormatError(f"file holds more points than its header's {n}", path)
                _fill(out, chunk, start, stop, dims, extra, classification, path)
                start = stop
    except (laspy.errors.LaspyException, *_DECODE_ERRORS, *_lazrs_errors()) as err:
        raise FormatError(f"cannot read LAS/LAZ ({type(err).__name__}: {_first_line(err)})", path) from None
    if start != n:
        raise FormatError(f"header declares {n} points but the file holds {start} (truncated)", path)
    if "color" in out:
        out["color"] = finish_colors(out["color"])
    return Scene(path.stem, **out).validate(str(path))


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else "no detail"


def _lazrs_errors() -> tuple[type[BaseException], ...]:
    try:
        import lazrs
    except ImportError:
        return ()
    return (lazrs.LazrsError,)


def _check_raw_header(path: Path) -> None:
    """laspy builds every VLR the header announces before we see the header (a 2-byte edit announced 16M VLRs:
    1.8 GB and a minute), so the VLR/EVLR counts are checked against the bytes that could hold them first."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(375)
    if len(head) < 227 or head[:4] != b"LASF":
        raise FormatError("not a LAS/LAZ file (missing LASF signature or header shorter than 227 bytes)", path)
    header_size, point_data, vlrs = struct.unpack_from("<HII", head, 94)
    if vlrs * VLR_HEADER_BYTES > max(point_data - header_size, 0) or point_data > size:
        raise FormatError(f"header announces {vlrs} VLRs before byte {point_data} of a {size}-byte file "
                          "(corrupt header)", path)
    if head[25] >= 4 and len(head) >= 247:  # LAS 1.4: extended VLRs after the points
        first_evlr, evlrs = struct.unpack_from("<QI", head, 235)
        if evlrs and (first_evlr > size or evlrs * EVLR_HEADER_BYTES > size - first_evlr):
            raise FormatError(f"header announces {evlrs} extended VLRs from byte {first_evlr} of a {size}-byte "
                              "file (corrupt header)", path)


def _check_sizes(path: Path, header, n: int) -> None:
    """Refuse point counts the file's bytes cannot hold, before anything is allocated or handed to lazrs."""
    size = path.stat().st_size
    data = size - int(header.offset_to_point_data)
    need = n * int(header.point_format.size)
    if data < 0:
        raise FormatError(f"header puts point data at byte {header.offset_to_point_data} of a {size}-byte file", path)
    if not header.are_points_compressed:
        if need > data:
            raise FormatError(f"header declares {n} points ({need} bytes) but only {data} bytes of point data "
                              "follow (truncated file or corrupt header)", path)
        return
    if need > LAZ_MAX_RATIO * max(data, 1):
        raise FormatError(f"header declares {n} points but the compressed point data is only {data} bytes "
                          "(corrupt header)", path)
    _check_laz_chunk_table(path, int(header.offset_to_point_data), size)


def _check_laz_chunk_table(path: Path, start: int, size: int) -> None:
    """lazrs sizes its chunk table from the file and aborts the whole process when that allocation fails, so the
    table's offset and chunk count are checked here first (a chunk holds at least one byte of point data)."""
    with path.open("rb") as f:
        f.seek(start)
        raw = f.read(8)
        if len(raw) < 8:
            raise FormatError("LAZ point data is missing (truncated file)", path)
        (table,) = struct.unpack("<q", raw)
        if table == -1:  # written in streaming mode: the offset is the file's last 8 bytes
            f.seek(max(size - 8, 0))
            (table,) = struct.unpack("<q", f.read(8).rjust(8, b"\0"))
        if not start + 8 <= table <= size - 8:
            raise FormatError(f"LAZ chunk table offset {table} lies outside the point data (file has {size} bytes)",
                              path)
        f.seek(table)
        _version, chunks = struct.unpack("<II", f.read(8))
    if chunks > table - start:
        raise FormatError(f"LAZ chunk table claims {chunks} chunks in {table - start} bytes of point data "
                          "(corrupt file)", path)


def _allocate(n: int, dims: set[str], extra: set[str], classification: bool) -> dict[str, np.ndarray]:
    out = {"coord": np.empty((n, 3), np.float32)}
    if {"red", "green", "blue"} <= dims:
        out["color"] = np.empty((n, 3), np.uint16)
    if "strength" in extra or "intensity" in dims:
        out["strength"] = np.empty(n, np.float32)
    if "segment" in extra or classification:
        out["segment"] = np.empty(n, np.int16)
    if "instance" in extra:
        out["instance"] = np.empty(n, np.int32)
    return out


def _fill(out, chunk, start: int, stop: int, dims, extra, classification: bool, path: Path) -> None:
    xyz = np.column_stack([chunk.x, chunk.y, chunk.z])
    if not (np.abs(xyz) <= np.finfo(np.float32).max).all():  # also false for NaN
        raise FormatError(f"points {start}..{stop - 1} have coordinates beyond float32 range or NaN "
                          "(corrupt scale/offset)", path)
    out["coord"][start:stop] = xyz
    if "color" in out:
        out["color"][start:stop] = np.column_stack([chunk.red, chunk.green, chunk.blue])
    if "strength" in out:
        out["strength"][start:stop] = chunk["strength"] if "strength" in extra else chunk.intensity
    if "segment" in out:
        out["segment"][start:stop] = chunk["segment"] if "segment" in extra else chunk.classification
    if "instance" in out:
        out["instance"][start:stop] = chunk["instance"]


def finish_colors(color16: np.ndarray) -> np.ndarray:
    """8-bit colours from LAS RGB (16-bit scaled down unless every value already fits 8 bits)."""
    if color16.max(initial=0) > 255:
        np.right_shift(color16, 8, out=color16)  # in place: a 30M-point tile would otherwise hold a third copy
    return color16.astype(np.uint8)


WRITE_CHUNK_POINTS = 1 << 20  # points per piece written (~40 MB of records)


def write_las(scene: Scene, path: str | Path, fields: tuple[str, ...] | None = None,
              extra: Mapping[str, np.ndarray] | None = None) -> None:
    """Write a Scene as LAS (or LAZ when the suffix is .laz), millimetre coordinate resolution.

    Standard fields: RGB (16 bit) when the scene has colour; `intensity` = strength scaled to 16 bits (see
    `intensity_from_strength`); `classification` = segment + 1 (0 = ignore), or `extra["classification"]` as given.
    Exact values go to extra-bytes dimensions `segment` (int16), `instance` (int32), `strength` (float32) and one per
    other `extra` entry (int32 or float32). LAS 1.2 point format 1/3, whose classification holds 0..31; when a class
    code is larger, LAS 1.4 point format 6/7 (0..255).
    """
    import laspy

    wanted = scene.present_fields() if fields is None else [f for f in fields if getattr(scene, f) is not None]
    extra = dict(extra or {})
    classes = _classification(scene, wanted, extra.pop("classification", None), path)
    columns = {name: getattr(scene, name) for name in ("segment", "instance", "strength") if name in wanted}
    for name, values in extra.items():
        if name in columns or name.lower() in LAS_STANDARD_NAMES:
            raise BadInput(f"extra LAS dimension {name!r} would repeat a field of the file", path)
        columns[name] = scalar_column(name, values, len(scene), path)
    wide = classes is not None and classes.size and int(classes.max()) > 31
    color = "color" in wanted
    point_format, version = ((7 if color else 6), "1.4") if wide else ((3 if color else 1), "1.2")
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor(scene.coord.min(axis=0)) if len(scene) else np.zeros(3)
    for name, values in columns.items():
        header.add_extra_dim(laspy.ExtraBytesParams(name=name, type=values.dtype))
    intensity = intensity_from_strength(scene.strength) if "strength" in wanted else None
    with laspy.open(str(path), mode="w", header=header) as writer:  # in pieces: memory does not grow with the file
        for start in range(0, len(scene), WRITE_CHUNK_POINTS):
            part = slice(start, min(start + WRITE_CHUNK_POINTS, len(scene)))
            points = laspy.ScaleAwarePointRecord.zeros(part.stop - part.start, header=header)
            points.x, points.y, points.z = (scene.coord[part, i].astype(np.float64) for i in range(3))
            if color:
                rgb = scene.color[part].astype(np.uint16) * 257
                points.red, points.green, points.blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
            if intensity is not None:
                points.intensity = intensity[part]
            if classes is not None:
                points.classification = classes[part]
            for name, values in columns.items():
                points[name] = values[part]
            writer.write_points(points)


def intensity_from_strength(strength: np.ndarray) -> np.ndarray:
    """LAS intensity (uint16, the sensor's range normalised to 16 bits) from a Scene's strength.

    Stores keep strength in [0, 1] (remission, intensity/255, tanh(intensity)), so it is scaled by 65535; a strength
    with values above 1 came from a file whose intensities were never normalised and is kept as is (clipped to
    0..65535). NaN becomes 0. The exact float is in the `strength` extra dimension either way.
    """
    values = np.nan_to_num(strength.astype(np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
    if values.size and values.max() > 1.0:
        return np.clip(np.rint(values), 0, 65535).astype(np.uint16)
    return np.rint(np.clip(values, 0.0, 1.0) * 65535).astype(np.uint16)


def _classification(scene: Scene, wanted, given, path) -> np.ndarray | None:
    """The classification codes to write: given ones (checked to fit 0..255), else segment + 1 (codes a byte
    cannot hold become 0, "never classified"; the exact segment is in its extra dimension)."""
    if given is not None:
        given = np.asarray(given)
        if given.shape != (len(scene),) or given.dtype.kind not in "iub":
            raise BadInput(f"classification must be ({len(scene)},) integers, got {given.shape} {given.dtype}", path)
        if given.size and (given.min() < 0 or given.max() > 255):
            raise BadInput(f"classification values {given.min()}..{given.max()} do not fit a LAS class code "
                           "(0..255)", path)
        return given.astype(np.uint8)
    if "segment" not in wanted:
        return None
    codes = scene.segment.astype(np.int32) + 1
    return np.where((codes >= 0) & (codes <= 255), codes, 0).astype(np.uint8)
