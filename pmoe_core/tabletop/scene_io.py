"""Files of an observed episode: a binary PLY point cloud and the JSON scene description beside it.

PLY vertex properties: x, y, z (float32), red, green, blue (uint8), nx, ny, nz (float32) when the scene has
normals, and scalar_object_id (int32; -1 = table), a name and type CloudCompare and Open3D keep. The description
goes to the same path with the suffix `.json`. Both files are written to a temporary name and renamed, so an
interrupted `pmoe plan scene` leaves no half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.io.ply import read_ply_file, require_properties
from pmoe_core.io.ply_scene import write_ply
from pmoe_core.tabletop.world import SceneDesc
from pmoe_core.scene import Scene

OBJECT_ID_NAMES = ("scalar_object_id", "object_id")


def sidecar_path(ply_path: str | Path) -> Path:
    return Path(ply_path).with_suffix(".json")


def write_scene_ply(scene: Scene, path: str | Path) -> None:
    """Write `scene` as a little-endian binary PLY (the one PLY writer; the object id as `scalar_object_id`)."""
    cloud = Scene(scene.name, scene.coord, color=scene.color, normal=scene.normal)
    write_ply(cloud, path, extra={"object_id": scene.segment})


def read_scene_ply(path: str | Path) -> Scene:
    """Read a PLY written by `write_scene_ply` back into a Scene (segment = object id; files that earlier pmoe wrote
    call it `object_id`, short)."""
    path = Path(path)
    _, elements = read_ply_file(path, elements=("vertex",))
    vertex = elements.get("vertex", {})
    object_id = next((n for n in OBJECT_ID_NAMES if n in vertex), None)
    require_properties(vertex, ("x", "y", "z", "red", "green", "blue", object_id or OBJECT_ID_NAMES[0]), "vertex",
                       path)
    names = set(vertex)
    normal = np.stack([vertex["nx"], vertex["ny"], vertex["nz"]], 1) if {"nx", "ny", "nz"} <= names else None
    ids = vertex[object_id]
    if ids.size and (ids.min() < np.iinfo(np.int16).min or ids.max() > np.iinfo(np.int16).max):
        raise FormatError(f"{object_id} values {ids.min()}..{ids.max()} do not fit int16", path)
    return Scene(
        name=path.stem,
        coord=np.stack([vertex["x"], vertex["y"], vertex["z"]], 1),
        color=np.stack([vertex["red"], vertex["green"], vertex["blue"]], 1),
        normal=normal,
        segment=ids,
    ).validate(str(path))


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_episode(scene: Scene, desc: SceneDesc, ply_path: str | Path) -> tuple[Path, Path]:
    """Write the point cloud and its description sidecar; returns both paths.

    The sidecar is renamed into place last: a PLY whose `.json` exists is complete, and `--simulate` never scores
    a new description against an older cloud that an interrupted write left behind.
    """
    ply_path = Path(ply_path)
    if not ply_path.parent.is_dir():
        raise MissingFile("output folder does not exist", ply_path.parent)
    if ply_path.suffix.lower() != ".ply":
        raise BadInput("the point cloud must be written to a .ply path (its description goes beside it as .json)",
                       ply_path)
    json_path = sidecar_path(ply_path)
    tmp_ply, tmp_json = _tmp(ply_path), _tmp(json_path)
    try:
        write_scene_ply(scene, tmp_ply)
        desc.save(tmp_json)
        json_path.unlink(missing_ok=True)
        os.replace(tmp_ply, ply_path)
        os.replace(tmp_json, json_path)
    finally:
        tmp_ply.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
    return ply_path, json_path
