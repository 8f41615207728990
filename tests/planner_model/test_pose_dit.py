"""Pose-DiT: token codec, anchored end points, padding, the pointer and its supervision, learned on a toy scene."""

from __future__ import annotations

import pytest
import torch

from pmoe_core.planner.flow import FlowConfig
from pmoe_core.planner.pose_dit import (
    Condition,
    PointerRecord,
    PoseDiT,
    PoseDiTConfig,
    distinct_picks,
    step_mask,
)
from pmoe_core.planner.pose_head import (
    nearest_candidate,
    pointer_loss,
    pose_losses,
    sample_poses,
)
from pmoe_core.planner.pose_tokens import (
    matrix_to_quat,
    poses_to_tokens,
    positions_to_tokens,
    quat_to_matrix,
    steps_to_tensor,
    tensor_to_steps,
    tokens_to_poses,
)
from pmoe_core.planner.relations import ATTRIBUTE_DIM
from pmoe_core.tabletop.oracle import Step
from pmoe_core.tabletop.poses import Pose
from pmoe_core.tabletop.poses import quat_to_matrix as np_quat_to_matrix


def test_pose_tokens_round_trip_and_match_numpy_rotation():
    steps = [
        Step(Pose.from_yaw((0.4, 0.1, 0.02), 0.3), Pose.from_yaw((0.6, -0.2, 0.04), -2.0)),
        Step(Pose((0.3, 0.4, 0.1), (0.0, 1.0, 0.0, 0.0)), Pose((0.7, 0.0, 0.2), (0.5, 0.5, 0.5, 0.5))),
    ]
    tensor, lengths = steps_to_tensor([steps, steps[:1]], max_steps=4)
    assert tensor.shape == (2, 4, 2, 7) and lengths.tolist() == [2, 1]
    tokens = poses_to_tokens(tensor)
    assert tokens.shape == (2, 4, 2, 9) and tokens.abs().max() <= 1.0 + 1e-6
    back = tensor_to_steps(tokens_to_poses(tokens)[0, :2])
    for a, b in zip(steps, back):
        for pa, pb in ((a.pick, b.pick), (a.place, b.place)):
            assert pa.position == pytest.approx(pb.position, abs=1e-6)
            assert pa.quaternion == pytest.approx(pb.quaternion, abs=1e-6)  # all have w >= 0 here
            assert quat_to_matrix(torch.tensor(pa.quaternion)).numpy() == pytest.approx(
                np_quat_to_matrix(pa.quaternion), abs=1e-6
            )
    with pytest.raises(ValueError):
        steps_to_tensor([steps * 3], max_steps=4)


def test_any_token_decodes_to_a_unit_quaternion():
    poses = tokens_to_poses(torch.randn(100, 9))
    torch.testing.assert_close(poses[:, 3:].norm(dim=-1), torch.ones(100))
    q = poses[:, 3:]
    torch.testing.assert_close(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-5, rtol=0)


def _dit(**kw) -> PoseDiT:
    return PoseDiT(PoseDiTConfig(dim=32, depth=2, heads=2, max_steps=5, **kw), cond_dim=16)


def _condition(feats: torch.Tensor, pos: torch.Tensor, text: int = 2, yaws: torch.Tensor | None = None) -> Condition:
    """A toy condition: `text` instruction positions (zeros) then one candidate per row of `pos` (B, K, 3) token
    units, whose states are `feats` (B, K, C)."""
    b, k, c = feats.shape
    seq = torch.cat([torch.zeros(b, text, c), feats], 1)
    mask = torch.ones(b, text + k, dtype=torch.bool)
    text_mask = torch.zeros_like(mask)
    text_mask[:, :text] = True
    anchors = torch.cat([torch.zeros(b, text, 3), pos], 1)
    attrs = torch.zeros(b, text + k, ATTRIBUTE_DIM)
    attrs[:, text:, :3] = pos
    attrs[:, text:, 9] = 1.0
    yaw = torch.zeros(b, text + k) if yaws is None else torch.cat([torch.zeros(b, text), yaws], 1)
    return Condition(seq, mask, text_mask, anchors, ~text_mask, yaw, attrs)


def _dit(cond_dim: int = 6, steps: int = 2) -> PoseDiT:
    return PoseDiT(PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=steps), cond_dim)


def _randomised(dit: PoseDiT) -> PoseDiT:
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return dit


def test_a_fresh_dit_predicts_the_pointed_candidates_pose():
    """Residuals start at zero: the end point is the hard-pointed candidate's centre and measured yaw."""
    torch.manual_seed(0)
    dit = _dit().eval()
    pos = torch.rand(3, 5, 3) * 2 - 1
    yaws = torch.rand(3, 5) * 1.5 - 0.75
    cond = _condition(torch.randn(3, 5, 6), pos, yaws=yaws)
    prepared = dit.prepare(cond)
    x, t = torch.randn(3, 2, 2, 9), torch.full((3,), 0.5)
    record = PointerRecord([])
    v = dit.velocity(x, t, cond, prepared, step_mask(torch.tensor([2, 1, 2]), 2), record=record)
    end = x + 0.5 * v
    chosen = distinct_picks(record.weights[-1])  # (B, S, 2) indices into the condition
    assert (chosen >= 2).all()  # never an instruction position
    for i in range(3):
        for s in range(2):
            for r in range(2):
                j = int(chosen[i, s, r])
                torch.testing.assert_close(end[i, s, r, :3], cond.anchors[i, j], atol=1e-5, rtol=0)
                yaw = torch.atan2(end[i, s, r, 4], end[i, s, r, 3])
                torch.testing.assert_close(yaw, cond.yaws[i, j], atol=1e-5, rtol=0)
    assert dit.length_logits(prepared).shape == (3, 2)
    with pytest.raises(ValueError, match="max_steps"):
        dit.velocity(torch.randn(3, 3, 2, 9), t, cond, prepared, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="teacher"):
        dit.train().velocity(x, t, cond, prepared, torch.ones(3, 2, dtype=torch.bool))


def test_padded_steps_and_padded_condition_do_not_leak():
    torch.manual_seed(0)
    dit = _randomised(_dit(steps=5)).eval()
    pos = torch.rand(2, 6, 3) * 2 - 1
    cond = _condition(torch.randn(2, 6, 6), pos)
    cond.mask[1, 5:] = False
    cond.candidates[1, 5:] = False
    x, t, mask = torch.randn(2, 5, 2, 9), torch.rand(2), step_mask(torch.tensor([5, 2]), 5)
    v = dit.velocity(x, t, cond, dit.prepare(cond), mask)
    x2 = x.clone()
    x2[1, 2:] = torch.randn(3, 2, 9)  # change only padding steps
    cond.seq[1, 5:] = torch.randn(3, 6)  # and padded condition positions
    v2 = dit.velocity(x2, t, cond, dit.prepare(cond), mask)
    torch.testing.assert_close(v2[1, :2], v[1, :2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v2[0], v[0])


def _pointer_toy(g: torch.Generator, batch: int, k: int = 8):
    """Scenes of random candidates; one is flagged "pick", one "place", one "pick second"; a flag asks for a second
    step (the stop head must read it). Targets: pick at its candidate, place 0.1 above the other (token units), the
    second step's pick at the second flagged candidate and its place as the first's (a tower), identity rotations."""
    pos = torch.rand(batch, k, 3, generator=g) * 2 - 1
    which = torch.stack([torch.randperm(k, generator=g)[:3] for _ in range(batch)])
    two = torch.rand(batch, generator=g) < 0.5
    feats = torch.zeros(batch, k, 7)
    rows = torch.arange(batch)
    feats[rows, which[:, 0], 0] = 1.0
    feats[rows, which[:, 1], 1] = 1.0
    feats[rows, which[:, 2], 6] = 1.0
    feats[..., 2] = two[:, None].float()
    feats[..., 3:6] = pos
    x1 = torch.zeros(batch, 2, 2, 9)
    x1[:, :, :, 3], x1[:, :, :, 7] = 1.0, 1.0  # 6-D identity rotation
    x1[:, 0, 0, :3] = pos[rows, which[:, 0]]
    x1[:, 0, 1, :3] = pos[rows, which[:, 1]] + torch.tensor([0.0, 0.0, 0.1])
    x1[:, 1] = x1[:, 0]
    x1[:, 1, 0, :3] = pos[rows, which[:, 2]]
    return _condition(feats, pos), x1, 1 + two.long()


def test_pointer_learns_to_put_pick_and_place_on_the_flagged_candidates():
    torch.manual_seed(0)
    dit = _dit(cond_dim=7).train()
    opt = torch.optim.AdamW(dit.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        cond, x1, lengths = _pointer_toy(g, 32)
        parts = pose_losses(dit, cond, x1, lengths, FlowConfig(), g)
        assert set(parts) == {"flow", "stop", "pointer"}
        opt.zero_grad()
        sum(parts.values()).backward()
        opt.step()
    dit.eval()
    cond, x1, lengths = _pointer_toy(torch.Generator().manual_seed(7), 64)
    tokens, predicted = sample_poses(dit, cond, 4, generator=torch.Generator().manual_seed(3))
    assert (predicted == lengths).float().mean() > 0.95  # the stop head reads the flag
    real = step_mask(lengths, 2)
    err = (tokens[..., :3] - x1[..., :3]).norm(dim=-1)[real]
    assert (err < 0.1).float().mean() > 0.95 and err.median() < 0.03, err  # candidates are ~0.5 apart


def test_in_training_the_end_point_is_anchored_at_the_target_candidate():
    torch.manual_seed(0)
    dit = _dit(cond_dim=7).train()
    cond, x1, _ = _pointer_toy(torch.Generator().manual_seed(0), 4)
    prepared = dit.prepare(cond)
    target = nearest_candidate(x1, cond)
    x, t = torch.randn_like(x1), torch.full((4,), 0.25)
    end = x + 0.75 * dit.velocity(x, t, cond, prepared, torch.ones(4, 2, dtype=torch.bool), target)
    want = torch.gather(cond.anchors, 1, target.flatten(1)[..., None].expand(-1, -1, 3)).reshape(4, 2, 2, 3)
    torch.testing.assert_close(end[..., :3], want, atol=1e-5, rtol=0)


def test_pointer_loss_is_the_cross_entropy_of_the_target_candidate():
    target = torch.tensor([[[1, 2]]])
    steps = torch.ones(1, 1, dtype=torch.bool)
    right = torch.tensor([[[[0.01, 0.97, 0.02], [0.01, 0.02, 0.97]]]])
    uniform = torch.full((1, 1, 2, 3), 1 / 3)
    assert pointer_loss(right, target, steps) < 0.05 < pointer_loss(uniform, target, steps)


def test_a_target_goes_with_the_object_whose_footprint_holds_it():
    """A pyramid's place off its zone's centre belongs to the zone, not to a nearer block or table anchor; a place
    at a named position with no object there belongs to the nearest candidate."""
    metres = torch.tensor([[[0.50, 0.00, 0.0], [0.50, 0.09, 0.02], [0.40, 0.2, 0.0], [0.7, -0.3, 0.02]]])
    pos = positions_to_tokens(metres)
    cond = _condition(torch.zeros(1, 4, 6), pos)
    cond.attributes[0, 2:, 6:9] = torch.tensor([[1.5, 1.5, 0.01], [0.4, 0.4, 0.4], [1.0, 1.0, 0.0], [0.4, 0.4, 0.4]])
    cond.attributes[0, 4, 9] = 0.0  # the third candidate is a table anchor, not an object
    targets = positions_to_tokens(torch.tensor([[[[0.50, 0.06, 0.04], [0.43, 0.19, 0.02]],
                                                 [[0.7, -0.3, 0.06], [0.62, -0.3, 0.02]]]]))
    tokens = torch.cat([targets, torch.zeros(1, 2, 2, 6)], -1)
    # the zone (extent 15 cm) holds (0.50, 0.06) although the block at 0.09 is nearer; the table anchor is nearest
    # to (0.43, 0.19); (0.7, -0.3) is on the last block; (0.62, -0.3) is off every footprint: the nearest, that block
    assert nearest_candidate(tokens, cond).tolist() == [[[2, 4], [5, 5]]]


def test_the_relation_bias_starts_at_zero_and_then_reads_the_partners_choice():
    torch.manual_seed(0)
    dit = _dit(cond_dim=7).eval()
    cond, _, _ = _pointer_toy(torch.Generator().manual_seed(0), 2)
    h = torch.randn(2, 2, 2, 32)
    used = torch.zeros(2, 4, cond.seq.shape[1])
    used[:, :, 3] = 1.0
    assert torch.all(dit.relation_bias(h, used, cond) == 0)
    _randomised(dit)
    bias = dit.relation_bias(h, used, cond)
    used2 = torch.zeros_like(used)
    used2[:, :, 5] = 1.0
    assert not torch.allclose(dit.relation_bias(h, used2, cond), bias)


def test_offsets_turn_in_metres_not_token_units():
    """The token axes are scaled differently (x: 0.5 m wide, y: 1 m), so a 5 cm offset along x turned a quarter turn
    must be 5 cm along y in metres, and turning back restores it."""
    import math

    from pmoe_core.planner.pose_tokens import positions_to_tokens, rotate_token_offsets

    origin = torch.tensor([0.5, 0.0, 0.1])
    along_x = positions_to_tokens(origin + torch.tensor([0.05, 0.0, 0.0])) - positions_to_tokens(origin)
    along_y = positions_to_tokens(origin + torch.tensor([0.0, 0.05, 0.0])) - positions_to_tokens(origin)
    turned = rotate_token_offsets(along_x, torch.tensor(math.pi / 2))
    assert torch.allclose(turned, along_y, atol=1e-6)
    yaw = torch.tensor(0.3)
    assert torch.allclose(rotate_token_offsets(rotate_token_offsets(along_x, yaw), -yaw), along_x, atol=1e-6)


def test_position_errors_are_weighed_in_metres_on_every_axis():
    """A 1 cm miss costs the same along x, y and z once weighted (the token axes are 0.5, 1 and 0.3 m wide), 0.25
    in 2 cm units; rotation coordinates keep weight 1."""
    from pmoe_core.planner.pose_tokens import token_error_weights

    weights = token_error_weights(0.02)
    origin = torch.tensor([0.5, 0.0, 0.1])
    for axis in range(3):
        miss = torch.zeros(3)
        miss[axis] = 0.01
        err = positions_to_tokens(origin + miss) - positions_to_tokens(origin)
        torch.testing.assert_close((err**2 * weights[:3]).sum(), torch.tensor(0.25), rtol=1e-5, atol=0)
    assert torch.equal(weights[3:], torch.ones(6))


def test_no_plan_picks_one_object_twice():
    """Steps whose picks all prefer candidate 1: the later ones take their next choice, but not the tower's base an
    earlier place chose; places share a candidate freely; with every candidate taken a pick still never falls on
    a non-candidate."""
    w = torch.zeros(1, 3, 2, 5)  # candidates 1..4; 0 is not one (weight exactly 0 after the masked softmax)
    w[0, :, 0, 1:] = torch.tensor([0.5, 0.2, 0.2, 0.1])  # every pick prefers 1, then 4 (0.2 ties go to 2), ...
    w[0, :, 0, 4] = 0.25
    w[0, :, 1, 1:] = torch.tensor([0.1, 0.1, 0.2, 0.6])  # every place prefers 4: the base of a tower
    choice = distinct_picks(w)
    assert choice[0, :, 1].tolist() == [4, 4, 4]  # places share their candidate
    assert choice[0, :, 0].tolist() == [1, 2, 3]  # never twice, and never 4 once something was placed on it
    four = torch.cat([w, w[:, :1]], dim=1)  # a fourth step with every candidate already taken
    assert distinct_picks(four)[0, 3, 0].item() in (1, 2, 3, 4)
