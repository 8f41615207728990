"""Files of an observed episode: a binary PLY point cloud and the JSON scene description beside it.

PLY vertex properties: x, y, z (float32), red, green, blue (uint8), object_id (int16; -1 = table), and nx, ny, nz
(float32) when the scene has normals. The description goes to the same path with the suffix `.json`. Both files
are written to a temporary name and renamed, so an interrupted `pmoe plan scene` leaves no half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.planner.world import SceneDesc
from pmoe_core.scene import Scene


def sidecar_path(ply_path: str | Path) -> Path:
    return Path(ply_path).with_suffix(".json")


def write_scene_ply(scene: Scene, path: str | Path) -> None:
    """Write `scene` as a little-endian binary PLY."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
              ("object_id", "<i2")]
    if scene.normal is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    vertex = np.empty(len(scene), dtype=fields)
    vertex["x"], vertex["y"], vertex["z"] = scene.coord.T
    vertex["red"], vertex["green"], vertex["blue"] = scene.color.T
    vertex["object_id"] = scene.segment
    if scene.normal is not None:
        vertex["nx"], vertex["ny"], vertex["nz"] = scene.normal.T
    PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<").write(str(path))


def read_scene_ply(path: str | Path) -> Scene:
    """Read a PLY written by `write_scene_ply` back into a Scene (segment = object id)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("point cloud not found", path)
    try:
        vertex = PlyData.read(str(path))["vertex"].data
    except Exception as err:  # plyfile raises several unrelated types for a broken file
        raise FormatError(f"not a readable PLY: {err}", path) from err
    names = set(vertex.dtype.names)
    missing = {"x", "y", "z", "red", "green", "blue", "object_id"} - names
    if missing:
        raise FormatError(f"PLY vertex lacks {', '.join(sorted(missing))}", path)
    normal = np.stack([vertex["nx"], vertex["ny"], vertex["nz"]], 1) if {"nx", "ny", "nz"} <= names else None
    return Scene(
        name=path.stem,
        coord=np.stack([vertex["x"], vertex["y"], vertex["z"]], 1),
        color=np.stack([vertex["red"], vertex["green"], vertex["blue"]], 1),
        normal=normal,
        segment=vertex["object_id"],
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
