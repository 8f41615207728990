"""SQA3D's agent frame (raw mesh centred on its bounding box) <-> the axis-aligned cloud pmoe reads: a hand-made
scene whose answer is worked out by hand, the round trip, and one-line errors for a broken scene folder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.io.ply import write_ply_arrays
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.model import facing_xy
from pmoe_core.qa.sqa3d_frame import in_scene_frame, in_sqa3d_frame, scannet_frame


def _scene(root, name="scene0001_00", alignment: str | None = None, vertices=((0, 0, 0), (4, 2, 3))):
    folder = root / "scans" / name
    folder.mkdir(parents=True)
    v = np.asarray(vertices, np.float32)
    write_ply_arrays(folder / f"{name}_vh_clean_2.ply", {"x": v[:, 0], "y": v[:, 1], "z": v[:, 2]})
    if alignment is not None:
        (folder / f"{name}.txt").write_text(f"axisAlignment = {alignment}\nsceneType = Office\n")
    return folder


# A quarter turn about z (x -> y) and a shift of (10, 0, 0): raw (x, y, z) -> (10 - y, x, z).
QUARTER = "0 -1 0 10 1 0 0 0 0 0 1 0 0 0 0 1"


def test_a_pose_worked_out_by_hand(tmp_path):
    _scene(tmp_path, alignment=QUARTER)
    # Raw bounding box (0,0,0)-(4,2,3): centre (2, 1, 1.5). SQA3D (1, 0, 0) is raw (3, 1, 1.5) -> aligned (9, 3, 1.5).
    # Facing raw +x (identity quaternion) turns with the alignment to aligned +y.
    item = QAItem("1", "scene0001_00", "what is in front of me?", ("door",), situation="I am here.",
                  position=(1.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0, 1.0))
    (moved,) = in_scene_frame([item], tmp_path)
    assert np.allclose(moved.position, (9.0, 3.0, 1.5))
    assert np.allclose(facing_xy(moved.rotation), (0.0, 1.0), atol=1e-9)
    assert moved.question == item.question and moved.answers == item.answers


def test_without_an_alignment_only_the_centre_moves(tmp_path):
    _scene(tmp_path)
    yaw = 0.7
    item = QAItem("1", "scene0001_00", "q", ("a",), position=(0.5, -0.5, 0.0),
                  rotation=(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)))
    (moved,) = in_scene_frame([item], tmp_path)
    assert np.allclose(moved.position, (2.5, 0.5, 1.5))
    assert np.allclose(facing_xy(moved.rotation), facing_xy(item.rotation))


def test_round_trip_and_items_without_an_agent_pass(tmp_path):
    _scene(tmp_path, alignment=QUARTER)
    items = [QAItem(str(k), "scene0001_00", "q", ("a",), position=(0.1 * k, -0.2, 0.0),
                    rotation=(0.0, 0.0, math.sin(k / 4), math.cos(k / 4))) for k in range(5)]
    plain = QAItem("p", "scene0001_00", "how many chairs?", ("2",))
    back = in_sqa3d_frame(in_scene_frame([*items, plain], tmp_path), tmp_path)
    assert back[-1] == plain
    assert np.allclose([i.position for i in back[:-1]], [i.position for i in items])
    assert np.allclose([facing_xy(i.rotation) for i in back[:-1]], [facing_xy(i.rotation) for i in items])


def test_broken_scene_folders_are_one_line_errors(tmp_path):
    item = QAItem("1", "scene0001_00", "q", ("a",), position=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0, 1.0))
    with pytest.raises(MissingFile, match="no ScanNet scene 'scene0001_00'"):
        in_scene_frame([item], tmp_path)
    folder = _scene(tmp_path, alignment="0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1")
    with pytest.raises(FormatError, match="axisAlignment is singular"):
        in_scene_frame([item], tmp_path)
    (folder / "scene0001_00.txt").write_text("axisAlignment = 1 0 0\n")
    with pytest.raises(FormatError, match="axisAlignment has 3 values, expected 16"):
        scannet_frame(folder)
    (folder / "scene0001_00_vh_clean_2.ply").unlink()
    with pytest.raises(MissingFile, match="not a raw ScanNet scene folder"):
        scannet_frame(folder)
