"""Room QA sets from `pmoe synth scannet` folders: answers recomputed from the written annotation files, situated
questions checked against the written pose, benchmark-format round trips, scene ids -> clouds (raw and store)."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from pmoe_core.convert import convert
from pmoe_core.errors import BadInput, MissingFile
from pmoe_core.qa.model import facing_xy
from pmoe_core.qa.readers import read_scanqa, read_sqa3d, scanqa_path, sqa3d_paths
from pmoe_core.qa.scenes import load_scene_cloud
from pmoe_core.qa.sqa3d_frame import in_scene_frame
from pmoe_core.qa.synthetic_rooms import (
    NOUNS,
    NUMBERS,
    SITUATIONS,
    TEMPLATES,
    plural,
    room_objects,
    room_qa,
    room_scenes,
    write_room_sets,
)
from pmoe_core.sources.synthetic_indoor import write_scannet


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    write_scannet(root, scenes=8, seed=3)
    return root


@pytest.fixture(scope="module")
def items(rooms):
    return room_qa(rooms)


def _labels(root, scene):
    """Raw labels of the scene's segGroups, read straight from the aggregation file."""
    data = json.loads((root / "scans" / scene / f"{scene}.aggregation.json").read_text())
    return [g["label"] for g in data["segGroups"] if g["label"] not in ("wall", "floor", "ceiling")]


def test_deterministic_and_unique_ids(rooms, items):
    assert room_qa(rooms) == items
    assert len({i.qid for i in items}) == len(items)
    assert {i.question_type for i in items} == {"count", "exist", "color", "next_to", "situated"}


def test_splits_follow_the_folder_lists(rooms):
    train, val = room_scenes(rooms, "train"), room_scenes(rooms, "val")
    assert train and val and not set(train) & set(val)
    assert {i.scene for i in room_qa(rooms, split="val")} == set(val)
    assert not room_scenes(rooms, "test")  # scans_test/ has no annotation to ask about


def test_count_and_exist_answers_match_the_annotation(rooms, items):
    checked = 0
    for item in items:
        nouns = [NOUNS.get(label, label) for label in _labels(rooms, item.scene)]
        if item.question_type == "count":
            what = re.search(r"(?:many|number of|count the) (.+?) (?:are|in|can)", item.question).group(1)
            expected = len(nouns) if what == "objects" else sum(plural(n) == what for n in nouns)
            assert item.answers == (NUMBERS[expected],), item
            assert len(item.object_ids) == expected
            checked += 1
        if item.question_type == "exist":
            noun = re.search(r"(?:is there|have|see|contain) an? (.+?)(?: in the room| in here| here)?\?", item.question)
            assert item.answers == ("yes" if noun.group(1) in nouns else "no",), item
            checked += 1
    assert checked >= 16


def test_object_ids_and_names_are_the_aggregation_groups(rooms, items):
    for item in items:
        if item.object_ids and item.situation is None:
            data = json.loads((rooms / "scans" / item.scene / f"{item.scene}.aggregation.json").read_text())
            label = {g["id"]: g["label"] for g in data["segGroups"]}
            assert item.object_names == tuple(label[i] for i in item.object_ids)


def test_situated_left_right_agrees_with_the_written_pose(rooms, items):
    """Recompute from position + quaternion: facing = rotation applied to +x; left = positive cross product."""
    checked = 0
    for item in items:
        if item.question_type != "situated" or item.answers[0] not in ("left", "right"):
            continue
        x, y, z, w = item.rotation
        assert x == y == 0 and math.isclose(z * z + w * w, 1.0, abs_tol=1e-5)
        yaw = 2 * math.atan2(z, w)
        facing = np.array([math.cos(yaw), math.sin(yaw)])
        noun = re.search(r"(?:is the|face the) (.+?)(?: on my| to my|,|\?)", item.question).group(1)
        (target,) = [o for o in room_objects(rooms, item.scene) if o.noun == noun]
        d = target.center[:2] - np.asarray(item.position[:2])
        cross = facing[0] * d[1] - facing[1] * d[0]
        assert item.answers == ("left" if cross > 0 else "right",), item
        checked += 1
    assert checked >= 4


def test_situated_agent_faces_the_named_object(rooms, items):
    for item in items:
        if item.question_type == "situated":
            noun = re.search(r"the (.+?)(?:\.| ahead| is in front)", item.situation).group(1)
            anchor = [o for o in room_objects(rooms, item.scene) if o.noun == noun]
            assert len(anchor) == 1
            z, w = item.rotation[2:]
            yaw = 2 * math.atan2(z, w)
            d = anchor[0].center[:2] - np.asarray(item.position[:2])
            assert math.isclose(math.atan2(d[1], d[0]), yaw, abs_tol=1e-3) or abs(
                abs(math.atan2(d[1], d[0]) - yaw) - 2 * math.pi) < 1e-3


def test_heldout_templates_are_disjoint_and_change_only_the_wording(rooms, items):
    heldout = room_qa(rooms, templates="heldout")
    for family in (*TEMPLATES.values(), SITUATIONS):
        assert not {t for pair in family["train"] for t in pair} & {t for pair in family["heldout"] for t in pair}
    assert not {i.question for i in items} & {i.question for i in heldout}
    assert not {i.situation for i in items if i.situation} & {i.situation for i in heldout if i.situation}
    key = [(i.qid, i.scene, i.answers, i.position, i.rotation) for i in items]
    assert key == [(i.qid, i.scene, i.answers, i.position, i.rotation) for i in heldout]


def test_one_wording_per_situation(items):
    by_pose: dict = {}
    for item in items:
        if item.situation:
            by_pose.setdefault((item.scene, item.position, item.rotation), set()).add(item.situation)
    assert by_pose and all(len(s) == 1 for s in by_pose.values())


def test_written_in_the_benchmark_formats_and_read_back(rooms, items, tmp_path):
    train = [i for i in items if i.scene in room_scenes(rooms, "train")]
    write_room_sets(train, tmp_path, "train", rooms)
    plain = read_scanqa(scanqa_path(tmp_path, "train"))
    situated = read_sqa3d(*sqa3d_paths(tmp_path, "train"))
    expected = [i for i in train if i.situation is not None]
    assert plain == [i for i in train if i.situation is None]
    assert [dataclasses.replace(i, position=None, rotation=None) for i in situated] == [
        dataclasses.replace(i, position=None, rotation=None) for i in expected]
    back = in_scene_frame(situated, rooms)  # the file holds SQA3D's frame; the cloud's frame comes back
    assert np.allclose([i.position for i in back], [i.position for i in expected], atol=1e-5)
    assert np.allclose([facing_xy(i.rotation) for i in back], [facing_xy(i.rotation) for i in expected], atol=1e-5)
    assert not np.allclose([i.position for i in situated], [i.position for i in expected], atol=0.1)
    with pytest.raises(BadInput, match="already exists"):
        write_room_sets(train, tmp_path, "train", rooms)


def test_scene_ids_load_from_the_raw_folder_and_from_a_converted_store(rooms, tmp_path):
    scene = room_scenes(rooms, "train")[0]
    raw = load_scene_cloud(scene, rooms)
    assert raw.color is not None and np.array_equal(raw.coord, load_scene_cloud(scene, rooms).coord)
    objects = room_objects(rooms, scene)
    lo = np.min([o.lo for o in objects], 0)
    assert np.all(raw.coord.min(0) <= lo + 1e-6)  # object boxes are in the cloud's (aligned) frame
    convert("scannet", rooms, str(tmp_path / "store"), workers=1)
    store = tmp_path / "store" / "scannet.zarr"
    from_store = load_scene_cloud(scene, store)
    assert np.allclose(from_store.coord, raw.coord, atol=1e-5)
    assert np.array_equal(load_scene_cloud(f"{store}::train::{scene}").coord, from_store.coord)
    with pytest.raises(MissingFile, match="no scene named"):
        load_scene_cloud("scene9999_00", store)
    with pytest.raises(MissingFile, match="needs a root"):
        load_scene_cloud(scene)


def test_bad_templates_argument(rooms):
    with pytest.raises(BadInput, match="templates"):
        room_qa(rooms, templates="both")


def test_what_is_on_my_side_names_an_object_on_that_side(rooms, items):
    """The answer's object (one of that noun) lies within 45 degrees of the asked direction."""
    centre = {"on my left": 90.0, "on my right": -90.0, "behind me": 180.0}
    checked = 0
    for item in items:
        where = next((w for w in centre if item.question_type == "situated" and w in item.question), None)
        if where is None or "which side" in item.question or " or " in item.question:
            continue
        z, w = item.rotation[2:]
        yaw = 2 * math.atan2(z, w)
        bearings = []
        for obj in room_objects(rooms, item.scene):
            if obj.noun == item.answers[0]:
                d = obj.center[:2] - np.asarray(item.position[:2])
                bearings.append(math.degrees(math.atan2(d[1], d[0]) - yaw))
        assert any(abs((b - centre[where] + 180) % 360 - 180) < 45 for b in bearings), item
        checked += 1
    assert checked >= 8
