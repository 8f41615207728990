"""LAS/LAZ <-> Scene with laspy (LAZ through lazrs), streamed in chunks so large tiles never double in memory.

Labels: pmoe writes `classification = segment + 1` (0 = ignore, the ASPRS "never classified") and also the exact
values as extra dimensions `segment` (int16) / `instance` (int32) / `strength` (float32). On reading, the extra
dimensions win; otherwise `classification=True` takes the raw classification codes as the segment.
Colours: 16-bit LAS RGB is scaled to 8 bit (values <= 255 are taken as already 8 bit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.scene import Scene

CHUNK_POINTS = 1_000_000


def read_las(path: str | Path, classification: bool = False, chunk_points: int = CHUNK_POINTS) -> Scene:
    import laspy

    path = Path(path)
    if not path.is_file():
        raise MissingFile("LAS/LAZ file not found", path)
    try:
        with laspy.open(path) as reader:
            header = reader.header
            n = int(header.point_count)
            dims = set(header.point_format.dimension_names)
            extra = set(header.point_format.extra_dimension_names)
            out = _allocate(n, dims, extra, classification)
            start = 0
            for chunk in reader.chunk_iterator(chunk_points):
                stop = start + len(chunk)
                if stop > n:
                    raise FormatError(f"file holds more points than its header's {n}", path)
                _fill(out, chunk, start, stop, dims, extra, classification)
                start = stop
    except (laspy.errors.LaspyException, ValueError, OSError, EOFError) as err:
        raise FormatError(f"cannot read LAS/LAZ ({err})", path) from None
    if start != n:
        raise FormatError(f"header declares {n} points but the file holds {start} (truncated)", path)
    if "color" in out:
        out["color"] = finish_colors(out["color"])
    return Scene(path.stem, **out).validate(str(path))


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


def _fill(out, chunk, start: int, stop: int, dims, extra, classification: bool) -> None:
    out["coord"][start:stop] = np.column_stack([chunk.x, chunk.y, chunk.z])
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
    return (color16 >> 8 if color16.max(initial=0) > 255 else color16).astype(np.uint8)


def write_las(scene: Scene, path: str | Path, fields: tuple[str, ...] | None = None) -> None:
    """Write a Scene as LAS (or LAZ when the suffix is .laz), millimetre coordinate resolution."""
    import laspy

    wanted = scene.present_fields() if fields is None else [f for f in fields if getattr(scene, f) is not None]
    point_format = 3 if "color" in wanted else 1
    header = laspy.LasHeader(point_format=point_format, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor(scene.coord.min(axis=0)) if len(scene) else np.zeros(3)
    for name, dtype in (("segment", np.int16), ("instance", np.int32), ("strength", np.float32)):
        if name in wanted:
            header.add_extra_dim(laspy.ExtraBytesParams(name=name, type=dtype))
    las = laspy.LasData(header)
    las.x, las.y, las.z = (scene.coord[:, i].astype(np.float64) for i in range(3))
    if "color" in wanted:
        rgb = scene.color.astype(np.uint16) * 257
        las.red, las.green, las.blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    if "segment" in wanted:
        las.classification = np.clip(scene.segment.astype(np.int32) + 1, 0, 31).astype(np.uint8)
        las["segment"] = scene.segment
    if "instance" in wanted:
        las["instance"] = scene.instance
    if "strength" in wanted:
        las["strength"] = scene.strength
    las.write(str(path))
