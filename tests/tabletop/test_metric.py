"""The benchmark metric on hand-made final poses: near misses on each side of every tolerance."""

from __future__ import annotations

import math

import pytest

from pmoe_core.tabletop.metric import score
from pmoe_core.tabletop.poses import Pose, matrix_to_quat, quat_to_matrix, yaw_to_quat
from pmoe_core.tabletop.world import Goal, SceneDesc, TableObject

Z_TOL = 0.01


def _desc(goals, n_blocks=3):
    blocks = [TableObject(i, "block", "red", 0.04, (0.3, -0.3 + 0.1 * i, 0.02), 0.0) for i in range(n_blocks)]
    return SceneDesc("hand-made", 0, "seen", "test", blocks, goals, n_blocks + 2)


def _poses(desc, **moved):
    poses = {o.id: o.pose for o in desc.objects}
    poses.update({int(k[1:]): v for k, v in moved.items()})
    return poses


@pytest.mark.parametrize("dx, met", [(0.009, True), (0.011, False)])
def test_xy_one_centimetre(dx, met):
    desc = _desc([Goal((0,), (0.5, 0.0, 0.02), 0.0, z_tol=Z_TOL)])
    s = score(desc, _poses(desc, o0=Pose.from_yaw((0.5 + dx * 0.6, dx * 0.8, 0.02), 0.0)))
    assert s.success is met and s.reward == (1.0 if met else 0.0)


@pytest.mark.parametrize("deg, met", [(14, True), (16, False), (90 + 14, True), (90 - 16, False), (-14, True)])
def test_yaw_fifteen_degrees_modulo_quarter_turn(deg, met):
    desc = _desc([Goal((0,), (0.5, 0.0, 0.02), 0.3, z_tol=Z_TOL)])
    s = score(desc, _poses(desc, o0=Pose.from_yaw((0.5, 0.0, 0.02), 0.3 + math.radians(deg))))
    assert s.success is met


def test_yaw_free_goal_ignores_rotation():
    desc = _desc([Goal((0,), (0.5, 0.0, 0.025), None, xy_tol=0.025, z_tol=Z_TOL)])
    assert score(desc, _poses(desc, o0=Pose.from_yaw((0.52, 0.0, 0.025), 0.7))).success


def test_tilted_block_fails_and_block_on_its_side_passes():
    desc = _desc([Goal((0,), (0.5, 0.0, 0.02), 0.0, z_tol=Z_TOL)])
    tilt = lambda a: matrix_to_quat(  # noqa: E731
        quat_to_matrix((math.sin(a / 2), 0.0, 0.0, math.cos(a / 2)))
    )
    assert not score(desc, _poses(desc, o0=Pose((0.5, 0.0, 0.02), tilt(math.radians(20))))).success
    assert score(desc, _poses(desc, o0=Pose((0.5, 0.0, 0.02), tilt(math.pi / 2)))).success


def test_toppled_stack_fails():
    """A tower whose top block fell off: one of two goals, no success; and an unstable world never succeeds."""
    goals = [Goal((1, 2), (0.3, -0.3, z), 0.0, z_tol=Z_TOL) for z in (0.06, 0.10)]
    desc = _desc(goals)
    level1, level2 = Pose((0.3, -0.3, 0.0598), yaw_to_quat(0.0)), Pose((0.3, -0.3, 0.0995), yaw_to_quat(0.0))
    standing = _poses(desc, o1=level1, o2=level2)
    assert score(desc, standing).success
    toppled = {**standing, 2: Pose.from_yaw((0.31, -0.28, 0.02), 0.4)}
    s = score(desc, toppled)
    assert not s.success and s.reward == pytest.approx(0.5)
    s = score(desc, _poses(desc, o1=level2, o2=Pose((0.3, -0.3, 0.02), (0.0, 0.0, 0.0, 1.0))))
    assert s.reward == pytest.approx(0.5)  # block 2 lies in the tower's xy on the table: 4 cm too low for goal 0
    assert not score(desc, standing, stable=False).success


def test_interchangeable_blocks_match_in_any_order():
    goals = [Goal((1, 2), (0.3, -0.3, z), 0.0, z_tol=Z_TOL) for z in (0.06, 0.10)]
    desc = _desc(goals)
    s = score(desc, _poses(desc, o2=Pose.from_yaw((0.3, -0.3, 0.06), 0.0), o1=Pose.from_yaw((0.3, -0.3, 0.10), 0.0)))
    assert s.success and sorted(s.matched) == [1, 2]
    # the same block cannot fill two goals
    s = score(desc, _poses(desc, o1=Pose.from_yaw((0.3, -0.3, 0.06), 0.0)))
    assert s.reward == pytest.approx(0.5)
