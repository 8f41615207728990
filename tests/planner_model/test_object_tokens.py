"""Object proposals from the cloud (no masks) and their tokens: one per object (zones too), centres at the objects,
measured yaws, order-free."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmoe_core.planner.objects import (
    ObjectTokenConfig,
    ObjectTokens,
    foreground_mask,
    segment,
    with_object_ids,
)
from pmoe_core.planner.scene_encoder import (
    SceneEncoder,
    SceneEncoderConfig,
    scene_points,
)
from pmoe_core.tabletop.observe import observe
from pmoe_core.tabletop.tasks import TASKS, make_scene

CFG = ObjectTokenConfig(max_objects=10)


def _observed(task: str, seed: int) -> tuple[object, torch.Tensor]:
    desc = make_scene(task, seed)
    cloud = observe(desc)
    return desc, scene_points(cloud.coord, cloud.color, 2048, seed, CFG)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_one_proposal_per_object_anchored_at_its_centre(task):
    """Blocks, bowls and the 1 mm zone patches (found by colour, inside the depth noise) alike."""
    tokens = ObjectTokens(CFG)
    for seed in range(100000, 100004):
        desc, points = _observed(task, seed)
        p = tokens(points[None, :, :6], points[None, :, 6].long())
        anchors = p.anchors[0, p.valid[0]].numpy()
        assert len(anchors) == len(desc.objects), f"seed {seed}"
        for obj in desc.objects:  # footprint centre within 5 mm, from the visible points only
            assert np.hypot(*(anchors[:, :2] - np.array(obj.position[:2])).T).min() < 0.005, (seed, obj)
        assert np.all(np.diff(anchors[:, 0]) >= 0)  # slots ordered by x


def test_foreground_is_above_the_table_or_unlike_its_colour():
    rng = np.random.default_rng(0)
    table = np.c_[rng.uniform(0.3, 0.7, (500, 2)), rng.normal(0, 0.002, 500)]
    patch = np.c_[rng.uniform(0.5, 0.6, (100, 2)), rng.normal(0, 0.002, 100)]
    block = np.c_[rng.uniform(0.40, 0.44, (50, 2)), np.full(50, 0.04)]
    coord = np.concatenate([table, patch, block])
    rgb = np.concatenate([np.tile([0.38, 0.33, 0.28], (500, 1)), np.tile([0.9, 0.8, 0.3], (100, 1)),
                          np.tile([0.38, 0.33, 0.28], (50, 1))])  # a table-coloured block still stands out
    fg = foreground_mask(coord, rgb)
    assert not fg[:500].any() and fg[500:].all()


def test_table_points_and_specks_get_no_proposal():
    rng = np.random.default_rng(0)
    table = np.c_[rng.uniform(0.3, 0.7, (500, 2)), np.zeros(500)]
    block = np.c_[rng.uniform(0.40, 0.44, (200, 2)), np.full(200, 0.04)]
    speck = np.c_[rng.uniform(0.60, 0.601, (5, 2)), np.full(5, 0.01)]
    coord = np.concatenate([table, block, speck])
    ids = segment(coord, np.full((len(coord), 3), 0.4), CFG)
    assert (ids[:500] == -1).all() and (ids[500:700] == 0).all() and (ids[700:] == -1).all()


def test_only_the_largest_proposals_are_kept():
    rng = np.random.default_rng(1)
    blobs = [np.c_[rng.uniform(0.1 * i, 0.1 * i + 0.03, (30 + 10 * i, 2)), np.full(30 + 10 * i, 0.03)] for i in range(4)]
    coord = np.concatenate(blobs)
    ids = segment(coord, np.full((len(coord), 3), 0.4), ObjectTokenConfig(max_objects=2))
    sizes = np.cumsum([0] + [len(b) for b in blobs])
    assert (ids[: sizes[2]] == -1).all()  # the two smallest dropped
    assert (ids[sizes[2] : sizes[3]] == 0).all() and (ids[sizes[3] :] == 1).all()  # the rest in x order


def test_proposals_and_tokens_do_not_depend_on_point_order():
    _, points = _observed("put-block-into-matching-bowl", 100001)
    perm = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))
    fg = np.ones(len(points), dtype=bool)  # scene_points keeps foreground points only
    again = torch.from_numpy(with_object_ids(points[perm, :6].numpy(), CFG, fg))
    assert torch.equal(again[:, 6], points[perm, 6])
    tokens = ObjectTokens(CFG).eval()
    a = tokens(points[None, :, :6], points[None, :, 6].long())
    b = tokens(again[None, :, :6], again[None, :, 6].long())
    for name in ("features", "anchors", "valid", "yaws", "colors", "extents"):
        assert torch.allclose(getattr(a, name).float(), getattr(b, name).float(), atol=1e-5), name


def test_empty_slots_are_zero_and_invalid():
    _, points = _observed("stack-blocks", 100002)
    p = ObjectTokens(CFG)(points[None, :, :6], points[None, :, 6].long())
    n = int(points[:, 6].max()) + 1
    assert p.valid[0].tolist() == [True] * n + [False] * (CFG.max_objects - n)
    assert (p.features[0, n:] == 0).all() and (p.features[0, :n].abs().sum(-1) > 0).all()
    xy = p.extents[0, :n, :2]
    assert ((xy > 0.035) & (xy < 0.06)).all()  # 4 cm blocks at any yaw: 4 to 5.7 cm across


def test_encoder_appends_object_tokens_and_checks_its_columns(cloud):
    enc = SceneEncoder(SceneEncoderConfig(objects=CFG), 24)
    _, points = _observed("stack-blocks", 100003)
    out = enc(points[None])
    m = enc.cfg.pointnet.layers[-1].npoint
    assert out.tokens.shape == (1, m + CFG.max_objects, 24) and out.centres.shape == (1, m + CFG.max_objects, 3)
    assert (out.yaws[0, :m] == 0).all() and (out.colors[0, :m] == 0).all() and not out.objects[0, :m].any()
    assert out.valid[0, :m].all() and out.objects[0, m:].sum() == int(points[:, 6].max()) + 1
    with pytest.raises(ValueError, match="takes 7 columns per point, got 6"):
        enc(cloud(256, batch=1))


def _square(yaw: float, centre=(0.5, 0.1), size=0.04, n=400, seed=0) -> torch.Tensor:
    """Points on the top face and the sides of a cube at `yaw`: what the cameras see of a block."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-size / 2, size / 2, (n, 2))
    side = rng.uniform(0, 1, n) < 0.4  # side points: pushed to an edge, lower down
    u[side, 0] = np.sign(u[side, 0]) * size / 2
    z = np.where(side, rng.uniform(0.005, size - 0.006, n), size)
    c, s = np.cos(yaw), np.sin(yaw)
    xy = u @ np.array([[c, s], [-s, c]]) + centre
    return torch.tensor(np.c_[xy, z], dtype=torch.float32)


@pytest.mark.parametrize("yaw_deg", [-44.0, -30.0, 0.0, 12.5, 44.0, 70.0, 135.0])
def test_top_face_yaw_recovers_a_cube_yaw_modulo_a_quarter_turn(yaw_deg):
    from pmoe_core.planner.objects import top_face_yaw

    xyz = _square(np.radians(yaw_deg))
    slot = torch.zeros(len(xyz), dtype=torch.long)
    lo, hi = xyz.min(0).values, xyz.max(0).values
    anchor = torch.cat([(lo[:2] + hi[:2]) / 2, hi[2:]])[None]
    yaw = float(top_face_yaw(xyz, anchor, slot, 1)[0])
    assert -np.pi / 4 <= yaw < np.pi / 4
    err = (np.degrees(yaw) - yaw_deg + 45) % 90 - 45
    assert abs(err) < 2.0


def test_object_yaws_match_the_blocks_in_observed_scenes():
    tokens = ObjectTokens(CFG)
    errors = []
    for seed in range(100000, 100005):
        desc, points = _observed("stack-blocks", seed)
        p = tokens(points[None, :, :6], points[None, :, 6].long())
        for anchor, yaw in zip(p.anchors[0, p.valid[0]].numpy(), p.yaws[0, p.valid[0]].numpy()):
            block = min(desc.objects, key=lambda o: np.hypot(*(np.array(o.position[:2]) - anchor[:2])))
            errors.append(abs((np.degrees(yaw - block.yaw) + 45) % 90 - 45))
    assert np.median(errors) < 1.5 and max(errors) < 4.0


def test_targets_fold_by_quarter_turns_to_the_nearest_object_yaw():
    import math

    from pmoe_core.planner.pose_head import fold_yaws_to_anchors
    from pmoe_core.planner.pose_tokens import poses_to_tokens, yaw_of_tokens
    from pmoe_core.tabletop.poses import yaw_to_quat

    def token(x, y, yaw_deg):
        return poses_to_tokens(torch.tensor([x, y, 0.02, *yaw_to_quat(math.radians(yaw_deg))]))

    targets = torch.stack([token(0.4, 0.1, -44.5), token(0.6, -0.2, 10.0)]).reshape(1, 1, 2, 9)
    yaws = torch.tensor([[math.radians(44.0), math.radians(-40.0), math.radians(10.0)]])
    folded = fold_yaws_to_anchors(targets, yaws, torch.tensor([[[0, 1]]]))  # each at its own object
    assert torch.allclose(folded[..., :3], targets[..., :3])
    got = torch.rad2deg(yaw_of_tokens(folded))[0, 0].tolist()
    assert got == pytest.approx([45.5, -80.0], abs=1e-3)  # each within 45 degrees of its object's yaw
