"""MuJoCo execution: the suction pick only attaches on a block's top face; placing descends until contact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pmoe_core.tabletop.metric import score
from pmoe_core.tabletop.oracle import Step, oracle_steps
from pmoe_core.tabletop.poses import Pose
from pmoe_core.tabletop.sim import Simulator, execute
from pmoe_core.tabletop.tasks import make_scene


def _top(obj, du=0.0, dv=0.0):
    """A pick pose on `obj`'s top plane, offset (du, dv) in the block's own frame."""
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    x, y, z = obj.position
    return Pose.from_yaw((x + du * c - dv * s, y + du * s + dv * c, z + obj.height / 2), obj.yaw)


@pytest.fixture
def tower():
    return make_scene("stack-blocks", 2)


@pytest.mark.parametrize("du, hit", [(0.0, True), (0.018, True), (-0.019, True), (0.021, False), (0.05, False)])
def test_pick_attaches_only_on_the_top_face(tower, du, hit):
    obj = tower.blocks[1]
    sim = Simulator(tower)
    assert sim.pick(_top(obj, du, 0.0)) == (obj.id if hit else None)


def test_a_miss_moves_nothing(tower):
    obj = tower.blocks[1]
    before = {o.id: o.pose.position for o in tower.objects}
    rollout = execute(tower, [Step(_top(obj, 0.03, 0.03), Pose.from_yaw((0.5, 0.0, 0.02), 0.0))])
    assert rollout.picked == [None]
    for oid, pos in before.items():
        assert np.allclose(rollout.poses[oid].position, pos, atol=1e-3)


def test_bowls_and_zones_are_not_pickable():
    desc = make_scene("put-block-into-matching-bowl", 0)
    bowl = next(o for o in desc.objects if o.kind == "bowl")
    assert Simulator(desc).pick(Pose.from_yaw(bowl.position, 0.0)) is None
    desc = make_scene("stack-all-blocks-on-a-zone", 0)
    zone = next(o for o in desc.objects if o.kind == "zone")
    assert Simulator(desc).pick(Pose.from_yaw(zone.position, 0.0)) is None


def test_off_centre_pick_keeps_its_offset(tower):
    obj = tower.blocks[1]
    target = np.array([0.5, 0.0])
    rollout = execute(tower, [Step(_top(obj, 0.01, 0.0), Pose.from_yaw((*target, 0.3), 0.0))])
    # the cup sat 1 cm along the block's x axis; placed with yaw 0 the block centre lands 1 cm towards -x
    assert np.allclose(rollout.poses[obj.id].position[:2], target - [0.01, 0.0], atol=1e-3)


@pytest.mark.parametrize("commanded_z", [0.0, 0.3])
def test_place_descends_until_contact(tower, commanded_z):
    base, obj = tower.blocks[0], tower.blocks[1]
    x, y, _ = base.position
    rollout = execute(tower, [Step(_top(obj), Pose.from_yaw((x, y, commanded_z), base.yaw))])
    assert rollout.poses[obj.id].position[2] == pytest.approx(0.06, abs=0.002)
    assert rollout.stable


def test_overhanging_block_topples_and_the_episode_fails(tower):
    steps = oracle_steps(tower)
    assert score(tower, execute(tower, steps).poses).success
    pick, place = steps[1].pick, steps[1].place
    shifted = Pose((place.position[0] + 0.03, place.position[1], place.position[2]), place.quaternion)
    rollout = execute(tower, [steps[0], Step(pick, shifted), *steps[2:]])
    fallen = rollout.picked[1]
    assert rollout.poses[fallen].position[2] < 0.03  # it fell to the table
    assert not score(tower, rollout.poses, rollout.stable).success


def test_execution_is_deterministic(tower):
    steps = oracle_steps(tower)
    a, b = execute(tower, steps), execute(tower, steps)
    assert all(a.poses[k] == b.poses[k] for k in a.poses)
