"""SQA3D's agent coordinates <-> the frame of the scene cloud pmoe reads.

SQA3D gives the situated agent's `position` and `rotation` relative to the raw ScanNet mesh
(`<scene>_vh_clean_2.ply`) centred on its bounding box. In the release (SilongYong/SQA3D): its data loader
(ScanQA/lib/sepdataset.py) adds the scene's `bs_center` to the position, then applies the scene's axis-alignment
matrix to the position and left-multiplies its rotation into the agent's; its viewer (utils/visualize_data.py)
computes that centre as (max + min) / 2 of the raw mesh vertices and draws the agent there. pmoe's ScanNet reader
(convert and the raw-folder scene loader) applies the same `axisAlignment` but does not centre, so an SQA3D position
read as it is would put the agent metres off and turned by the alignment's yaw. `SQA3DFrame` maps between the two;
`scannet_frame` builds it from the raw scene folder (its mesh and <scene>.txt), which is what fixes the transform:
a converted store keeps neither.

Only the heading is kept of a rotation (SQA3D's agents stand upright: their quaternions turn about z), so a rotation
comes back as a pure yaw quaternion (0, 0, sin(yaw / 2), cos(yaw / 2)).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.model import facing_xy

Vector3 = tuple[float, float, float]
Quaternion = tuple[float, float, float, float]


@dataclass(frozen=True)
class SQA3DFrame:
    """`centre`: the raw mesh's bounding-box centre (SQA3D's origin, raw coordinates); `alignment`: the 4x4 transform
    from raw coordinates to the scene cloud's (ScanNet's axisAlignment; identity where a scene has none)."""

    centre: np.ndarray
    alignment: np.ndarray

    def to_scene(self, position, rotation) -> tuple[Vector3, Quaternion]:
        """An SQA3D (position, rotation xyzw) -> the same pose in the scene cloud's frame."""
        raw = np.asarray(position, np.float64) + self.centre
        rot, shift = self.alignment[:3, :3], self.alignment[:3, 3]
        return _vector(rot @ raw + shift), _yaw_quaternion(rot @ np.array([*facing_xy(rotation), 0.0]))

    def from_scene(self, position, rotation) -> tuple[Vector3, Quaternion]:
        """A pose in the scene cloud's frame -> SQA3D's (what a file in SQA3D's format holds)."""
        inverse = np.linalg.inv(self.alignment)
        rot, shift = inverse[:3, :3], inverse[:3, 3]
        raw = rot @ np.asarray(position, np.float64) + shift
        return _vector(raw - self.centre), _yaw_quaternion(rot @ np.array([*facing_xy(rotation), 0.0]))


def _vector(v: np.ndarray) -> Vector3:
    return float(v[0]), float(v[1]), float(v[2])


def _yaw_quaternion(facing: np.ndarray) -> Quaternion:
    yaw = math.atan2(facing[1], facing[0])
    return 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)


def scannet_frame(scene_dir: str | Path) -> SQA3DFrame:
    """The SQA3D frame of one raw ScanNet scene folder (`scans/<scene>/`: its `_vh_clean_2.ply` and `<scene>.txt`)."""
    from pmoe_core.io.ply import read_ply_file, require_properties
    from pmoe_core.sources.scannet import axis_alignment, check_invertible

    scene_dir = Path(scene_dir)
    name = scene_dir.name
    mesh_path = scene_dir / f"{name}_vh_clean_2.ply"
    if not mesh_path.is_file():
        raise MissingFile(f"no {mesh_path.name}: not a raw ScanNet scene folder", scene_dir)
    _, ply = read_ply_file(mesh_path, elements=("vertex",))
    vertex = ply.get("vertex", {})
    require_properties(vertex, ("x", "y", "z"), "vertex", mesh_path)
    coord = np.column_stack([vertex["x"], vertex["y"], vertex["z"]]).astype(np.float64)
    if len(coord) == 0 or not np.isfinite(coord).all():
        raise FormatError("the mesh has no vertices or non-finite ones: no bounding-box centre", mesh_path)
    meta_path = scene_dir / f"{name}.txt"
    matrix = axis_alignment(meta_path)
    if matrix is None:
        matrix = np.eye(4)
    elif not np.isfinite(matrix).all():
        raise FormatError("axisAlignment holds NaN or infinity", meta_path)
    check_invertible(matrix, meta_path)
    return SQA3DFrame((coord.min(0) + coord.max(0)) / 2, matrix)


def scene_folder(root: str | Path, scene: str) -> Path:
    """`scans/<scene>` (or `scans_test/<scene>`) of a raw ScanNet root."""
    root = Path(root)
    for sub in ("scans", "scans_test"):
        if (root / sub / scene).is_dir():
            return root / sub / scene
    raise MissingFile(f"no ScanNet scene {scene!r} under scans/ or scans_test/", root)


def _convert(items: list[QAItem], root: str | Path, forward: bool) -> list[QAItem]:
    frames: dict[str, SQA3DFrame] = {}
    out = []
    for item in items:
        if item.position is None or item.rotation is None:
            out.append(item)
            continue
        if item.scene not in frames:
            frames[item.scene] = scannet_frame(scene_folder(root, item.scene))
        frame = frames[item.scene]
        position, rotation = (frame.to_scene if forward else frame.from_scene)(item.position, item.rotation)
        out.append(dataclasses.replace(item, position=position, rotation=rotation))
    return out


def in_scene_frame(items: list[QAItem], root: str | Path) -> list[QAItem]:
    """SQA3D items (as `read_sqa3d` returns them) with their agents moved into the scene clouds' frame, each scene's
    transform read from the raw ScanNet `root`; items without an agent are returned as they are."""
    return _convert(items, root, forward=True)


def in_sqa3d_frame(items: list[QAItem], root: str | Path) -> list[QAItem]:
    """The inverse of `in_scene_frame`: what an SQA3D file must hold for agents given in the scene clouds' frame."""
    return _convert(items, root, forward=False)
