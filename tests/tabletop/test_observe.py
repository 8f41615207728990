"""The observed point cloud: only surfaces some camera sees, coloured by the object hit; PLY round trip."""

from __future__ import annotations

import numpy as np
import pytest

from pmoe_core.errors import BadInput

from pmoe_core.tabletop.observe import CAMERAS, observe
from pmoe_core.tabletop.oracle import oracle_steps
from pmoe_core.tabletop.poses import quat_to_matrix
from pmoe_core.tabletop.scene_io import read_scene_ply, save_episode
from pmoe_core.tabletop.sim import execute
from pmoe_core.tabletop.tasks import make_scene
from pmoe_core.tabletop.world import BOWL_HEIGHT, COLORS, TABLE_COLOR, SceneDesc

SCENES = [("put-block-into-matching-bowl", 3), ("stack-block-pyramid", 1), ("stack-blocks-of-same-color", 2)]


@pytest.fixture(scope="module", params=SCENES, ids=[t for t, _ in SCENES])
def exact(request):
    desc = make_scene(*request.param)
    return desc, observe(desc, depth_noise=0.0)


def _local(obj, points):
    r = quat_to_matrix(obj.pose.quaternion)
    return (points - np.asarray(obj.position)) @ r


def test_block_points_lie_on_visible_faces_only(exact):
    desc, cloud = exact
    cams = np.array([c.position for c in CAMERAS])
    for obj in desc.blocks:
        half = obj.size / 2
        local = _local(obj, cloud.coord[cloud.segment == obj.id].astype(np.float64))
        assert len(local) > 50, obj
        assert np.allclose(np.abs(local).max(1), half, atol=1e-5)  # on the box surface
        bottom = (np.abs(local[:, 2] + half) < 1e-5) & (np.abs(local[:, :2]) < half - 1e-4).all(1)
        assert not bottom.any()  # never the bottom face (side faces reach down to its edges)
        assert (np.abs(local[:, 2] - half) < 1e-5).sum() > 20  # the top face is seen
        # each point's face must face at least one camera
        axis = np.abs(local / half).argmax(1)
        normal_local = np.zeros_like(local)
        normal_local[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
        normal = normal_local @ quat_to_matrix(obj.pose.quaternion).T
        world = local @ quat_to_matrix(obj.pose.quaternion).T + obj.position
        facing = np.einsum("nkc,nc->nk", cams[None] - world[:, None], normal) > 0
        assert facing.any(1).all()


def test_table_is_hidden_under_objects(exact):
    desc, cloud = exact
    table = cloud.coord[cloud.segment == -1].astype(np.float64)
    assert np.abs(table[:, 2]).max() < 1e-5
    for obj in desc.objects:
        if obj.kind == "bowl":
            inside = np.hypot(*(table[:, :2] - obj.position[:2]).T) < obj.size / 2 - 1e-3
        else:
            local = _local(obj, table)
            inside = (np.abs(local[:, :2]) < obj.size / 2 - 1e-3).all(1)
        assert not inside.any(), obj


def test_bowl_and_zone_points_stay_on_their_geometry(exact):
    desc, cloud = exact
    for obj in desc.objects:
        pts = cloud.coord[cloud.segment == obj.id].astype(np.float64)
        if obj.kind == "bowl":
            assert np.hypot(*(pts[:, :2] - obj.position[:2]).T).max() < obj.size / 2 + 0.002
            assert pts[:, 2].min() > -1e-6 and pts[:, 2].max() < BOWL_HEIGHT + 1e-5
        if obj.kind == "zone":
            assert pts[:, 2].min() > -1e-6 and pts[:, 2].max() < obj.height + 1e-5  # the 1 mm patch and its rim
            assert (np.abs(_local(obj, pts)[:, :2]) <= obj.size / 2 + 1e-5).all()


def test_colours_match_objects(exact):
    desc, cloud = exact
    expected = np.array([COLORS[o.color] for o in desc.objects] + [TABLE_COLOR])[cloud.segment]
    assert (cloud.color == expected).all()
    assert set(np.unique(cloud.segment)) == {-1, *(o.id for o in desc.objects)}


def test_sensor_noise_is_small_and_deterministic():
    desc = make_scene("stack-blocks", 4)
    noisy = observe(desc)
    assert (observe(desc).coord == noisy.coord).all()
    for obj in desc.blocks:
        local = _local(obj, noisy.coord[noisy.segment == obj.id].astype(np.float64))
        err = np.abs(np.abs(local).max(1) - obj.size / 2)
        assert 1e-4 < np.median(err) < 1.5e-3 and np.quantile(err, 0.95) < 3e-3


def test_ply_and_sidecar_round_trip(tmp_path):
    desc = make_scene("move-block-to-absolute-position", 2)
    cloud = observe(desc)
    ply, sidecar = save_episode(cloud, desc, tmp_path / "scene.ply")
    assert sidecar == tmp_path / "scene.json"
    assert b"format binary_little_endian" in ply.read_bytes()[:200]
    assert b"property int scalar_object_id" in ply.read_bytes()[:400]
    back = read_scene_ply(ply)
    for name in ("coord", "color", "segment", "normal"):
        assert (getattr(back, name) == getattr(cloud, name)).all()
    assert SceneDesc.load(sidecar).to_json() == desc.to_json()


def test_scene_files_appear_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write that fails half-way leaves neither a partial PLY nor a stale sidecar; a .json --out is refused."""
    old, new = make_scene("stack-blocks", 1), make_scene("stack-blocks", 2)
    save_episode(observe(old), old, tmp_path / "scene.ply")
    before = (tmp_path / "scene.ply").read_bytes()

    def broken_save(self, path):
        open(path, "w").write("{")  # half a description, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(SceneDesc, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        save_episode(observe(new), new, tmp_path / "scene.ply")
    assert (tmp_path / "scene.ply").read_bytes() == before  # the old pair is untouched
    assert SceneDesc.load(tmp_path / "scene.json").to_json() == old.to_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.json", "scene.ply"]  # no temporary files left
    monkeypatch.undo()
    with pytest.raises(BadInput, match=r"scene\.json: the point cloud must be written to a \.ply path"):
        save_episode(observe(new), new, tmp_path / "scene.json")
    assert (tmp_path / "scene.ply").read_bytes() == before
    assert SceneDesc.load(tmp_path / "scene.json").to_json() == old.to_json()


def test_observing_after_execution_sees_the_tower_and_hides_covered_tops():
    desc = make_scene("stack-blocks", 6)
    rollout = execute(desc, oracle_steps(desc))
    cloud = observe(desc, depth_noise=0.0, poses=rollout.poses)
    top = max(desc.blocks, key=lambda o: rollout.poses[o.id].position[2])
    assert cloud.coord[cloud.segment == top.id][:, 2].max() == pytest.approx(len(desc.blocks) * 0.04, abs=0.003)
    for obj in desc.blocks:
        if obj.id == top.id:
            continue
        pose = rollout.poses[obj.id]
        local = (cloud.coord[cloud.segment == obj.id] - np.asarray(pose.position)) @ quat_to_matrix(pose.quaternion)
        on_top_face = (np.abs(local[:, 2] - 0.02) < 1e-4) & (np.abs(local[:, :2]) < 0.02 - 2e-3).all(1)
        assert len(local) > 20 and not on_top_face.any()  # sides seen, top face covered by the block above
