"""Object proposals from the cloud (no masks) and their tokens: right count, centres at the objects, order-free."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmoe_core.planner.objects import ObjectTokenConfig, ObjectTokens, segment, with_object_ids
from pmoe_core.tabletop.observe import observe
from pmoe_core.planner.pose_dit import PoseDiT, PoseDiTConfig
from pmoe_core.planner.scene_encoder import FOREGROUND_Z, SceneEncoder, SceneEncoderConfig, scene_points
from pmoe_core.tabletop.tasks import make_scene

CFG = ObjectTokenConfig(max_objects=10)


def _observed(task: str, seed: int) -> tuple[object, torch.Tensor]:
    desc = make_scene(task, seed)
    cloud = observe(desc)
    return desc, scene_points(cloud.coord, cloud.color, 2048, seed, 1.0, CFG)


@pytest.mark.parametrize("task", ["stack-blocks", "put-block-into-matching-bowl"])
def test_one_proposal_per_object_anchored_at_its_centre(task):
    tokens = ObjectTokens(CFG)
    for seed in range(100000, 100006):
        desc, points = _observed(task, seed)
        objects = [o for o in desc.objects if o.kind != "zone"]
        _, anchors, valid, _, _ = tokens(points[None, :, :6], points[None, :, 6].long())
        anchors = anchors[0, valid[0]].numpy()
        assert len(anchors) == len(objects), f"seed {seed}"
        for obj in objects:  # bowls and blocks alike: footprint centre within 3 mm, from the visible points only
            assert np.hypot(*(anchors[:, :2] - np.array(obj.position[:2])).T).min() < 0.003, (seed, obj)
        assert np.all(np.diff(anchors[:, 0]) >= 0)  # slots ordered by x


def test_table_points_and_specks_get_no_proposal():
    rng = np.random.default_rng(0)
    table = np.c_[rng.uniform(0.3, 0.7, (500, 2)), np.zeros(500)]
    block = np.c_[rng.uniform(0.40, 0.44, (200, 2)), np.full(200, 0.04)]
    speck = np.c_[rng.uniform(0.60, 0.601, (5, 2)), np.full(5, 0.01)]
    ids = segment(np.concatenate([table, block, speck]), CFG, FOREGROUND_Z)
    assert (ids[:500] == -1).all() and (ids[500:700] == 0).all() and (ids[700:] == -1).all()


def test_only_the_largest_proposals_are_kept():
    rng = np.random.default_rng(1)
    blobs = [np.c_[rng.uniform(0.1 * i, 0.1 * i + 0.03, (30 + 10 * i, 2)), np.full(30 + 10 * i, 0.03)] for i in range(4)]
    ids = segment(np.concatenate(blobs), ObjectTokenConfig(max_objects=2), FOREGROUND_Z)
    sizes = np.cumsum([0] + [len(b) for b in blobs])
    assert (ids[: sizes[2]] == -1).all()  # the two smallest dropped
    assert (ids[sizes[2] : sizes[3]] == 0).all() and (ids[sizes[3] :] == 1).all()  # the rest in x order


def test_proposals_and_tokens_do_not_depend_on_point_order():
    _, points = _observed("put-block-into-matching-bowl", 100001)
    perm = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))
    again = torch.from_numpy(with_object_ids(points[perm, :6].numpy(), CFG, FOREGROUND_Z))
    assert torch.equal(again[:, 6], points[perm, 6])
    tokens = ObjectTokens(CFG).eval()
    a = tokens(points[None, :, :6], points[None, :, 6].long())
    b = tokens(again[None, :, :6], again[None, :, 6].long())
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-5)


def test_empty_slots_are_zero_and_invalid():
    _, points = _observed("stack-blocks", 100002)
    feats, _, valid, _, _ = ObjectTokens(CFG)(points[None, :, :6], points[None, :, 6].long())
    n = int(points[:, 6].max()) + 1
    assert valid[0].tolist() == [True] * n + [False] * (CFG.max_objects - n)
    assert (feats[0, n:] == 0).all() and (feats[0, :n].abs().sum(-1) > 0).all()


def test_encoder_appends_object_tokens_and_checks_its_columns(cloud):
    enc = SceneEncoder(SceneEncoderConfig(objects=CFG), 24)
    _, points = _observed("stack-blocks", 100003)
    tokens, centres, valid, yaws, colors = enc(points[None])
    m = enc.cfg.pointnet.layers[-1].npoint
    assert tokens.shape == (1, m + CFG.max_objects, 24) and centres.shape == (1, m + CFG.max_objects, 3)
    assert yaws.shape == (1, m + CFG.max_objects) and (yaws[0, :m] == 0).all() and (colors[0, :m] == 0).all()
    assert valid[0, :m].all() and valid[0, m:].sum() == int(points[:, 6].max()) + 1
    with pytest.raises(ValueError, match="takes 7 columns per point, got 6"):
        enc(cloud(256, batch=1))


def test_second_pointer_pass_is_recorded_and_only_with_anchors():
    dit = PoseDiT(PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, pointer_passes=2), 16)
    cond, anchors = torch.randn(2, 7, 16), torch.rand(2, 7, 3)
    mask = torch.ones(2, 7, dtype=torch.bool)
    seq, pooled = dit.encode_condition(cond, mask)
    weights: list[torch.Tensor] = []
    v = dit.velocity(torch.randn(2, 3, 2, 9), torch.rand(2), seq, mask, pooled, torch.ones(2, 3, dtype=torch.bool),
                     anchors, mask, weights)
    assert v.shape == (2, 3, 2, 9) and len(weights) == 2
    assert torch.allclose(weights[1].sum(-1), torch.ones(2, 3, 2))
    with pytest.raises(ValueError, match="pointer_passes"):
        PoseDiT(PoseDiTConfig(dim=32, heads=2, pointer_passes=2), 16)


def test_a_planner_with_object_tokens_trains_through_them_and_plans():
    import dataclasses

    from pmoe_core.planner.demos import canonical_steps
    from pmoe_core.planner.model import ThreeDMoEConfig, ThreeDMoEPlanner
    from pmoe_core.planner.policy import cloud_input
    from pmoe_core.planner.pose_tokens import steps_to_tensor

    tiny = ThreeDMoEConfig.tiny()
    config = dataclasses.replace(
        tiny,
        encoder=dataclasses.replace(tiny.encoder, objects=ObjectTokenConfig(max_objects=6, hidden=16, dim=32)),
        dit=dataclasses.replace(tiny.dit, pointer_loss=1.0, pointer_passes=2),
    )
    model = ThreeDMoEPlanner(config)
    desc = make_scene("stack-blocks", 100004)
    points = cloud_input(observe(desc), config, seed=desc.seed)
    assert points.shape == (512, 7)
    poses, lengths = steps_to_tensor([canonical_steps(desc)], config.dit.max_steps)
    parts = model.stage2_loss(points[None], [desc.instruction], poses, lengths)
    parts["loss"].backward()
    grads = [p.grad for p in model.encoder.objects.parameters()] + [model.encoder.object_projector.weight.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    steps = model.eval().plan(points, desc.instruction)
    assert 1 <= len(steps) <= config.dit.max_steps


def test_pointer_can_be_limited_to_object_tokens_and_falls_back_without_any():
    import dataclasses

    from pmoe_core.planner.model import ThreeDMoEConfig, ThreeDMoEPlanner

    tiny = ThreeDMoEConfig.tiny()
    objects = ObjectTokenConfig(max_objects=6, hidden=16, dim=32, pointer_only=True)
    config = dataclasses.replace(tiny, encoder=dataclasses.replace(tiny.encoder, objects=objects),
                                 dit=dataclasses.replace(tiny.dit, pointer_loss=1.0))
    model = ThreeDMoEPlanner(config).eval()
    desc = make_scene("put-block-into-matching-bowl", 100005)
    cloud = observe(desc)
    points = scene_points(cloud.coord, cloud.color, 512, desc.seed, 1.0, objects)
    bare = points.clone()
    bare[:, 6] = -1  # no proposals at all
    with torch.no_grad():
        cond = model.condition_with_anchors(torch.stack([points, bare]), [desc.instruction] * 2)
    m = config.encoder.pointnet.layers[-1].npoint
    n_objects = int(points[:, 6].max()) + 1
    assert cond.pointer_mask[0].sum() == n_objects and cond.pointer_mask[0, m : m + n_objects].all()
    assert torch.equal(cond.pointer_mask[1], cond.anchor_mask[1])  # nothing to point at: every scene token
    seq, pooled = model.dit.encode_condition(cond.seq, cond.mask, cond.anchor_mask)
    weights: list[torch.Tensor] = []
    with torch.no_grad():
        model.dit.velocity(torch.randn(2, 2, 2, 9), torch.rand(2), seq, cond.mask, pooled,
                           torch.ones(2, 2, dtype=torch.bool), cond.anchors, cond.anchor_mask, weights, cond.pointer_mask)
    assert float(weights[0][0][..., ~cond.pointer_mask[0]].abs().sum()) == 0.0
    assert torch.allclose(weights[0].sum(-1), torch.ones(2, 2, 2))


def _pointed_centres(dit: PoseDiT, training: bool):
    """(centres the pointer took (B, 6, 3), the anchors (B, 7, 3), its soft attention (B, 6, 7))."""
    torch.manual_seed(0)
    cond, anchors = torch.randn(2, 7, 16), torch.rand(2, 7, 3)
    mask = torch.ones(2, 7, dtype=torch.bool)
    seq, pooled = dit.encode_condition(cond, mask)
    h = torch.randn(2, 3, 2, 32)
    features = torch.zeros(2, 7, 3 + 6 * dit.cfg.anchor_bands)
    dit.train(training)
    centre, _, weights, used = dit.pointer(h, seq, anchors, features, mask, dit.pointer_q, dit.pointer_k)
    return centre.reshape(2, 6, 3), anchors, weights.reshape(2, 6, 7), used


def test_hard_pointer_takes_one_token_at_inference_only():
    dit = PoseDiT(PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, hard_pointer=True), 16)
    soft_centre, anchors, soft, _ = _pointed_centres(dit, training=True)
    hard_centre, _, again, used = _pointed_centres(dit, training=False)
    assert torch.equal(soft, again) and (soft < 1).all()  # the recorded attention is the soft one either way
    assert torch.allclose(soft_centre, soft @ anchors)
    assert torch.equal(hard_centre, torch.gather(anchors, 1, soft.argmax(-1)[..., None].expand(-1, -1, 3)))
    assert set(used.unique().tolist()) == {0.0, 1.0}


def test_straight_through_trains_on_the_hard_choice_with_soft_gradients():
    cfg = PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, hard_pointer=True, straight_through=True)
    dit = PoseDiT(cfg, 16)
    centre, anchors, soft, _ = _pointed_centres(dit, training=True)
    assert torch.allclose(centre, torch.gather(anchors, 1, soft.argmax(-1)[..., None].expand(-1, -1, 3)))
    centre.sum().backward()
    assert dit.pointer_q.weight.grad is not None and dit.pointer_q.weight.grad.abs().sum() > 0


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
        _, anchors, valid, yaws, _ = tokens(points[None, :, :6], points[None, :, 6].long())
        for anchor, yaw in zip(anchors[0, valid[0]].numpy(), yaws[0, valid[0]].numpy()):
            block = min(desc.objects, key=lambda o: np.hypot(*(np.array(o.position[:2]) - anchor[:2])))
            errors.append(abs((np.degrees(yaw - block.yaw) + 45) % 90 - 45))
    assert np.median(errors) < 1.5 and max(errors) < 4.0


def test_targets_fold_by_quarter_turns_to_the_nearest_object_yaw():
    import math

    from pmoe_core.planner.pose_tokens import yaw_of_tokens
    from pmoe_core.planner.pose_head import fold_yaws_to_anchors, nearest_candidate
    from pmoe_core.planner.pose_tokens import poses_to_tokens
    from pmoe_core.tabletop.poses import yaw_to_quat

    def token(x, y, yaw_deg):
        return poses_to_tokens(torch.tensor([x, y, 0.02, *yaw_to_quat(math.radians(yaw_deg))]))

    targets = torch.stack([token(0.4, 0.1, -44.5), token(0.6, -0.2, 10.0)]).reshape(1, 1, 2, 9)
    anchors = torch.stack([targets[0, 0, 0, :3], targets[0, 0, 1, :3], torch.tensor([0.0, 0.0, 0.0])])[None]
    yaws = torch.tensor([[math.radians(44.0), math.radians(-40.0), math.radians(10.0)]])
    candidates = torch.tensor([[True, True, False]])
    folded = fold_yaws_to_anchors(targets, yaws, nearest_candidate(targets, anchors, candidates))
    assert torch.allclose(folded[..., :3], targets[..., :3])
    got = torch.rad2deg(yaw_of_tokens(folded))[0, 0].tolist()
    assert got == pytest.approx([45.5, -80.0], abs=1e-3)  # each within 45 degrees of its object's yaw


def test_yaw_anchored_dit_starts_at_the_pointed_objects_yaw():
    """A fresh anchored DiT predicts a zero residual: its sampled pose is the pointed object's centre and yaw."""
    from pmoe_core.planner.pose_tokens import yaw_of_tokens
    from pmoe_core.planner.pose_head import sample_poses

    cfg = PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, hard_pointer=True, yaw_anchor=True)
    dit = PoseDiT(cfg, 16).eval()
    cond, anchors = torch.randn(1, 7, 16), torch.rand(1, 7, 3) * 2 - 1
    mask = torch.ones(1, 7, dtype=torch.bool)
    yaws = torch.linspace(-0.7, 0.7, 7)[None]
    tokens, lengths = sample_poses(dit, cond, mask, 4, lengths=torch.tensor([2]), anchors=anchors, anchor_mask=mask,
                                   anchor_yaws=yaws)
    nearest = (tokens[0, :, :, None, :3] - anchors[0]).norm(dim=-1).argmin(-1)  # (2, 2)
    assert torch.allclose(tokens[0, ..., :3], anchors[0][nearest], atol=1e-5)
    assert torch.allclose(yaw_of_tokens(tokens[0]), yaws[0][nearest], atol=1e-5)
    with pytest.raises(ValueError, match="anchor_yaws"):
        sample_poses(dit, cond, mask, 4, lengths=torch.tensor([2]), anchors=anchors, anchor_mask=mask)


def test_refiner_lets_scene_positions_read_the_instruction():
    """The LLM is causal with the scene first; only with refiner layers do scene positions depend on the text."""
    torch.manual_seed(0)
    cond = torch.randn(1, 9, 16)
    changed = cond.clone()
    changed[0, 6:] = torch.randn(3, 16)  # positions 6.. are the instruction
    mask = torch.ones(1, 9, dtype=torch.bool)
    anchor_mask = torch.tensor([[True] * 6 + [False] * 3])
    anchors = torch.rand(1, 9, 3)
    for layers in (0, 2):
        dit = PoseDiT(PoseDiTConfig(dim=32, depth=1, heads=2, anchor=True, cond_layers=layers), 16).eval()
        a, _ = dit.encode_condition(cond, mask, anchor_mask, anchors)
        b, _ = dit.encode_condition(changed, mask, anchor_mask, anchors)
        assert torch.equal(a[0, :6], b[0, :6]) == (layers == 0)


def test_color_bonus_favours_objects_coloured_like_the_partners_choice():
    cfg = PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, pointer_passes=2, color_affinity=True)
    dit = PoseDiT(cfg, 16)
    colors = torch.tensor([[[1.0, 0, 0], [0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]]])  # red, blue, red, green
    used = torch.tensor([[[0, 0, 0, 1.0], [0, 1.0, 0, 0]]])  # one step: pick pointed at green, place at blue
    h = torch.randn(1, 1, 2, 32)
    assert dit.color_bonus(h, used, colors).abs().sum() == 0  # gated off at initialisation
    torch.nn.init.constant_(dit.affinity_gate.bias, 1.0)
    bonus = dit.color_bonus(h, used, colors)[0]
    assert bonus[0].argmax() == 1 and bonus[1].argmax() == 3  # each role looks for its partner's colour
    assert bonus[0, 1] == 0 and (bonus[0, [0, 2, 3]] < 0).all()


def test_teacher_anchor_trains_the_end_point_at_the_target_object():
    """With teacher anchors and a fresh DiT (zero residual), training end points sit on the target's object whatever
    the pointer chose; at inference the pointer's own choice anchors them."""
    cfg = PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, hard_pointer=True, teacher_anchor=True)
    dit = PoseDiT(cfg, 16)
    torch.manual_seed(0)
    cond, anchors = torch.randn(1, 7, 16), torch.rand(1, 7, 3)
    mask = torch.ones(1, 7, dtype=torch.bool)
    seq, pooled = dit.encode_condition(cond, mask)
    target = torch.tensor([[[5, 2]]])
    x, t = torch.randn(1, 1, 2, 9), torch.full((1,), 0.5)
    args = (x, t, seq, mask, pooled, torch.ones(1, 1, dtype=torch.bool), anchors, mask)
    end = x + 0.5 * dit.train().velocity(*args, target=target)
    assert torch.allclose(end[0, 0, :, :3], anchors[0, [5, 2]], atol=1e-5)
    with pytest.raises(ValueError, match="target"):
        dit.velocity(*args)
    weights: list[torch.Tensor] = []
    end = x + 0.5 * dit.eval().velocity(*args, weights)
    assert torch.allclose(end[0, 0, :, :3], anchors[0, weights[0][0, 0].argmax(-1)], atol=1e-5)


def test_asked_color_bonus_favours_objects_of_the_predicted_colour():
    cfg = PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, color_query=True)
    dit = PoseDiT(cfg, 16)
    colors = torch.tensor([[[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]])
    h = torch.randn(1, 1, 2, 32)
    assert (dit.color_gate(h) == 1).all()  # open at initialisation, so the asked colour gets gradients at once
    torch.nn.init.zeros_(dit.color_head.weight)
    with torch.no_grad():
        dit.color_head.bias.copy_(torch.tensor([-9.0, -9.0, 9.0]))  # asks for blue
    assert (dit.asked_color_bonus(h, colors)[0].argmax(-1) == 1).all()


def test_color_loss_trains_the_asked_colour_towards_the_target_object():
    from pmoe_core.planner.flow import FlowConfig
    from pmoe_core.planner.pose_head import pose_losses

    cfg = PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, pointer_loss=1.0, color_query=True,
                        color_loss=10.0)
    dit = PoseDiT(cfg, 16)
    torch.manual_seed(0)
    cond, anchors = torch.randn(1, 5, 16), torch.rand(1, 5, 3) * 2 - 1
    mask = torch.ones(1, 5, dtype=torch.bool)
    colors = torch.rand(1, 5, 3)
    tokens = torch.zeros(1, 2, 2, 9)
    tokens[..., :3] = anchors[0, [[1, 3], [4, 0]]]  # at objects 1, 3, 4, 0
    tokens[..., 3], tokens[..., 7] = 1.0, 1.0  # identity rotations
    optimizer = torch.optim.Adam(dit.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        parts = pose_losses(dit, cond, mask, tokens, torch.tensor([2]), FlowConfig(), anchors=anchors,
                            anchor_mask=mask, anchor_colors=colors)
        losses.append(parts["color"].item())
        optimizer.zero_grad()
        sum(parts.values()).backward()
        optimizer.step()
    assert losses[-1] < 0.1 * losses[0]


def test_each_pointer_pass_gets_only_its_own_colour_bonus():
    cfg = PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=4, anchor=True, pointer_passes=2, color_query=True)
    dit = PoseDiT(cfg, 16).eval()
    asked, given = [], []
    bonus_of = dit.asked_color_bonus
    dit.asked_color_bonus = lambda *a: asked.append(bonus_of(*a)) or asked[-1]
    pointer = dit.pointer
    dit.pointer = lambda *a: given.append(a[-1]) or pointer(*a)
    cond, anchors, colors = torch.randn(1, 5, 16), torch.rand(1, 5, 3), torch.rand(1, 5, 3)
    mask = torch.ones(1, 5, dtype=torch.bool)
    seq, pooled = dit.encode_condition(cond, mask)
    with torch.no_grad():
        dit.velocity(torch.randn(1, 2, 2, 9), torch.rand(1), seq, mask, pooled, torch.ones(1, 2, dtype=torch.bool),
                     anchors, mask, anchor_colors=colors)
    assert len(given) == 2 and all(torch.equal(g, a) for g, a in zip(given, asked))
