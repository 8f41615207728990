"""PLY file <-> Scene: which vertex properties become which Scene fields, in both directions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.io.columns import scalar_column
from pmoe_core.io.ply import read_ply_file, require_properties, write_ply_arrays
from pmoe_core.scene import Scene

# Scene field <- first vertex property present among these names (CloudCompare writes "scalar_<name>").
COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
STRENGTH_NAMES = ("intensity", "scalar_intensity", "strength", "reflectance", "remission", "scalar_Intensity")
# Earlier pmoe wrote `label` (short); it now writes `scalar_class` (int), which CloudCompare and Open3D keep.
SEGMENT_NAMES = ("scalar_class", "label", "segment", "scalar_label", "semantic", "class", "classification",
                 "scalar_segment")
INSTANCE_NAMES = ("scalar_instance", "instance", "instance_id")
SCALAR_PREFIX = "scalar_"


def read_ply(path: str | Path) -> Scene:
    """A PLY point cloud or mesh (binary or ASCII; faces are not needed and not read) as a Scene.

    x, y, z are required; red/green/blue (uint8, or floats in [0, 1]), nx/ny/nz, an intensity-like scalar and
    class/instance scalars (`scalar_class`, the `label` of earlier pmoe files, ...) are taken when present.
    """
    path = Path(path)
    _, elements = read_ply_file(path, elements=("vertex",))
    vertex = elements.get("vertex")
    if vertex is None:
        raise FormatError("PLY has no vertex element", path)
    require_properties(vertex, ("x", "y", "z"), "vertex", path)
    fields: dict[str, np.ndarray] = {"coord": _stack(vertex, ("x", "y", "z"), np.float32)}
    rgb = next((names for names in COLOR_NAMES if all(n in vertex for n in names)), None)
    if rgb is not None:
        kinds = {vertex[n].dtype.kind for n in rgb}
        color = _stack(vertex, rgb, np.uint8) if kinds <= {"u"} and all(vertex[n].max(initial=0) <= 255 for n in rgb) \
            else np.column_stack([vertex[n] for n in rgb])
        if color.dtype.kind == "f":
            color = color * 255.0 if color.max(initial=0) <= 1.0 else color
            color = np.rint(color)
        fields["color"] = color if color.dtype == np.uint8 else np.clip(color, 0, 255).astype(np.uint8)
    if all(n in vertex for n in ("nx", "ny", "nz")):
        fields["normal"] = np.column_stack([vertex["nx"], vertex["ny"], vertex["nz"]])
    strength = next((n for n in STRENGTH_NAMES if n in vertex), None)
    if strength:
        fields["strength"] = vertex[strength]
    for field, names in (("segment", SEGMENT_NAMES), ("instance", INSTANCE_NAMES)):
        name = next((n for n in names if n in vertex), None)
        if name:
            fields[field] = _integer_column(vertex[name], field, path, np.int16 if field == "segment" else np.int32)
    return Scene(path.stem, **fields).validate(str(path))


def _stack(vertex: dict[str, np.ndarray], names: tuple[str, ...], dtype) -> np.ndarray:
    """(N, k) array of the named columns, each column freed once copied (peak: the output plus one column)."""
    n = len(vertex[names[0]])
    out = np.empty((n, len(names)), dtype=dtype)
    for i, name in enumerate(names):
        out[:, i] = vertex.pop(name)
    return out


def _integer_column(values: np.ndarray, field: str, path: Path, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise FormatError(f"{field} property holds non-integer values", path)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise FormatError(f"{field} values {values.min()}..{values.max()} do not fit {np.dtype(dtype).name}", path)
    return values.astype(dtype)


def write_ply(
    scene: Scene,
    path: str | Path | BinaryIO,
    fields: tuple[str, ...] | None = None,
    binary: bool = True,
    extra: Mapping[str, np.ndarray] | None = None,
    comments: Sequence[str] = (),
) -> None:
    """Write a Scene as a PLY point cloud that Open3D, CloudCompare and MeshLab load without losing a field.

    Vertex properties: x y z float, red green blue uchar, nx ny nz float, intensity float (strength), then the
    per-point scalars as `scalar_<name>`: `scalar_class` int (segment, -1 = ignore), `scalar_instance` int, and one
    per `extra` entry (integer arrays as int, float arrays as float). Why these names and types: CloudCompare loads a
    vertex property as a scalar field only when its name contains "scalar" (and strips the `scalar_` prefix: the
    field shows as "class"); Open3D's tensor reader skips char/short/ushort/uint properties. `fields` picks Scene
    fields (default: all present); `comments` become header comments (one ASCII line each).
    """
    wanted = scene.present_fields() if fields is None else [f for f in fields if getattr(scene, f) is not None]
    vertex: dict[str, np.ndarray] = {}
    for axis, name in enumerate("xyz"):
        vertex[name] = scene.coord[:, axis]
    if "color" in wanted:
        vertex.update(red=scene.color[:, 0], green=scene.color[:, 1], blue=scene.color[:, 2])
    if "normal" in wanted:
        vertex.update(nx=scene.normal[:, 0], ny=scene.normal[:, 1], nz=scene.normal[:, 2])
    if "strength" in wanted:
        vertex["intensity"] = scene.strength
    if "segment" in wanted:
        vertex[scalar_name("class")] = scene.segment.astype(np.int32)
    if "instance" in wanted:
        vertex[scalar_name("instance")] = scene.instance
    for name, values in (extra or {}).items():
        prop = scalar_name(name)
        if prop in vertex:
            raise BadInput(f"extra PLY property {name!r} would repeat the vertex property {prop!r}", _shown(path))
        vertex[prop] = scalar_column(name, values, len(scene), _shown(path))
    header = [f"pmoe scene {scene.name}", *comments]
    write_ply_arrays(path, vertex, binary=binary, comments=tuple(header_line(c) for c in header))


def scalar_name(name: str) -> str:
    """The PLY property a per-point scalar is written as: `scalar_<name>` (CloudCompare's convention)."""
    return name if name.startswith(SCALAR_PREFIX) else SCALAR_PREFIX + name


def header_line(text: str) -> str:
    """A PLY header comment is one ASCII line: other characters are escaped, line breaks become spaces."""
    flat = " ".join(str(text).split())
    return flat.encode("ascii", "backslashreplace").decode("ascii")


def _shown(path) -> str | Path | None:
    return None if hasattr(path, "write") else path
