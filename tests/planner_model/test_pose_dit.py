"""Pose-DiT: token codec, shapes, zero-init, padding mask, and a toy 2-mode conditional distribution it must learn."""

from __future__ import annotations

import pytest
import torch

from pmoe_core.planner.flow import FlowConfig
from pmoe_core.tabletop.oracle import Step
from pmoe_core.planner.pose_dit import PoseDiT, PoseDiTConfig, step_mask
from pmoe_core.planner.pose_head import pose_losses, sample_poses
from pmoe_core.planner.pose_tokens import (
    matrix_to_quat,
    poses_to_tokens,
    quat_to_matrix,
    steps_to_tensor,
    tensor_to_steps,
    tokens_to_poses,
)
from pmoe_core.tabletop.poses import Pose, quat_to_matrix as np_quat_to_matrix


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


def test_shapes_and_zero_init():
    dit = _dit()
    cond, cmask = torch.randn(3, 7, 16), torch.ones(3, 7, dtype=torch.bool)
    seq, pooled = dit.encode_condition(cond, cmask)
    x = torch.randn(3, 4, 2, 9)
    v = dit.velocity(x, torch.rand(3), seq, cmask, pooled, step_mask(torch.tensor([4, 2, 1]), 4))
    assert v.shape == x.shape and torch.all(v == 0)  # adaLN-Zero and zero output layer: v = 0 at init
    assert dit.length_logits(pooled).shape == (3, 5)
    with pytest.raises(ValueError):
        dit.velocity(torch.randn(3, 6, 2, 9), torch.rand(3), seq, cmask, pooled, torch.ones(3, 6, dtype=torch.bool))


def test_padded_steps_and_padded_condition_do_not_leak():
    dit = _dit()
    for p in dit.parameters():  # leave zero-init so outputs are non-trivial
        torch.nn.init.normal_(p, std=0.2)
    cond, cmask = torch.randn(2, 6, 16), torch.tensor([[1] * 6, [1] * 3 + [0] * 3], dtype=torch.bool)
    x, t, lengths = torch.randn(2, 5, 2, 9), torch.rand(2), torch.tensor([5, 2])
    mask = step_mask(lengths, 5)
    seq, pooled = dit.encode_condition(cond, cmask)
    v = dit.velocity(x, t, seq, cmask, pooled, mask)
    x2, cond2 = x.clone(), cond.clone()
    x2[1, 2:] = torch.randn(3, 2, 9)  # change only padding steps
    cond2[1, 3:] = torch.randn(3, 16)  # and padded condition positions
    seq2, pooled2 = dit.encode_condition(cond2, cmask)
    v2 = dit.velocity(x2, t, seq2, cmask, pooled2, mask)
    torch.testing.assert_close(v2[1, :2], v[1, :2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v2[0], v[0])
    x2[1, 1] += 1.0  # a real step does matter to the other real step (temporal attention)
    assert not torch.allclose(dit.velocity(x2, t, seq2, cmask, pooled2, mask)[1, 0], v[1, 0], atol=1e-4)


def _toy_modes() -> tuple[torch.Tensor, torch.Tensor]:
    """Two pose-sequence modes (tokens, lengths): label 0 -> 2 steps, label 1 -> 4 different steps."""
    g = torch.Generator().manual_seed(7)
    modes = torch.rand(2, 5, 2, 9, generator=g) * 1.6 - 0.8
    modes[0, 2:] = 0
    modes[1, 4:] = 0
    return modes, torch.tensor([2, 4])


def test_toy_two_mode_distribution_is_learned_and_recovered_in_four_euler_steps():
    torch.manual_seed(0)
    modes, mode_len = _toy_modes()
    dit = _dit()
    label_emb = torch.nn.Embedding(2, 16)
    opt = torch.optim.AdamW([*dit.parameters(), *label_emb.parameters()], lr=3e-3)
    flow = FlowConfig()
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(250):
        labels = torch.randint(0, 2, (32,), generator=g)
        x1 = modes[labels] + 0.02 * torch.randn(32, 5, 2, 9, generator=g)
        cond = label_emb(labels)[:, None, :]
        parts = pose_losses(dit, cond, torch.ones(32, 1, dtype=torch.bool), x1, mode_len[labels], flow, g)
        loss = parts["flow"] + parts["stop"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((parts["flow"].item(), parts["stop"].item()))
    first, last = losses[0], torch.tensor(losses[-20:]).mean(0).tolist()
    assert last[0] < 0.2 * first[0] and last[1] < 0.05

    labels = torch.tensor([0, 1] * 8)
    with torch.no_grad():
        cond = label_emb(labels)[:, None, :]
    tokens, lengths = sample_poses(dit, cond, torch.ones(16, 1, dtype=torch.bool), euler_steps=4,
                                   generator=torch.Generator().manual_seed(2))
    assert lengths.tolist() == mode_len[labels].tolist()  # the stop head ends each plan at its mode's length
    assert tokens.shape == (16, 4, 2, 9)
    for i, label in enumerate(labels.tolist()):
        n = int(lengths[i])
        err = (tokens[i, :n] - modes[label, :n]).abs()
        other = (tokens[i, :2] - modes[1 - label, :2]).abs().mean()
        assert err.mean() < 0.1 and err.max() < 0.35, (label, err.mean().item(), err.max().item())
        assert other > 3 * err.mean()


def _pointer_toy(g: torch.Generator, batch: int, anchors: int = 12):
    """Scenes of random points; one is flagged "pick", one "place". Target: pick at the first, place 0.1 above the
    second (token units), identity rotations. The condition carries each point's flag and raw position."""
    pos = torch.rand(batch, anchors, 3, generator=g) * 2 - 1
    which = torch.stack([torch.randperm(anchors, generator=g)[:2] for _ in range(batch)])
    flags = torch.zeros(batch, anchors, 3)
    flags[..., 0] = 1
    rows = torch.arange(batch)
    flags[rows, which[:, 0]] = torch.tensor([0.0, 1.0, 0.0])
    flags[rows, which[:, 1]] = torch.tensor([0.0, 0.0, 1.0])
    x1 = torch.zeros(batch, 1, 2, 9)
    x1[:, 0, 0, :3] = pos[rows, which[:, 0]]
    x1[:, 0, 1, :3] = pos[rows, which[:, 1]] + torch.tensor([0.0, 0.0, 0.1])
    x1[..., 3], x1[..., 7] = 1.0, 1.0  # 6-D identity rotation: columns (1, 0, 0) and (0, 1, 0)
    return torch.cat([flags, pos], -1), pos, x1


def _train_pointer_toy(anchor: bool, steps: int) -> float:
    """Mean position error (token units) of 4-step samples after `steps` of training."""
    torch.manual_seed(0)
    dit = PoseDiT(PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=2, anchor=anchor), cond_dim=6)
    opt = torch.optim.AdamW(dit.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(32, 12, dtype=torch.bool)
    for _ in range(steps):
        cond, pos, x1 = _pointer_toy(g, 32)
        parts = pose_losses(dit, cond, mask, x1, torch.ones(32, dtype=torch.long), FlowConfig(), g,
                            anchors=pos, anchor_mask=mask)
        opt.zero_grad()
        (parts["flow"] + parts["stop"]).backward()
        opt.step()
    cond, pos, x1 = _pointer_toy(torch.Generator().manual_seed(7), 64)
    tokens, _ = sample_poses(dit, cond, torch.ones(64, 12, dtype=torch.bool), 4, torch.ones(64, dtype=torch.long),
                             torch.Generator().manual_seed(3), anchors=pos, anchor_mask=torch.ones(64, 12, dtype=torch.bool))
    return (tokens[..., :3] - x1[..., :3]).norm(dim=-1).mean().item()


def test_anchored_positions_copy_the_pointed_scene_token():
    """The pointer head learns to put pick and place on the flagged scene points (4 Euler steps)."""
    err = _train_pointer_toy(True, 400)
    assert err < 0.05, err  # the scene spans 2 token units; neighbouring points are ~0.5 apart


def test_anchored_dit_needs_anchors_and_predicts_end_points_in_the_hull_of_the_anchors():
    dit = PoseDiT(PoseDiTConfig(dim=16, depth=1, heads=2, max_steps=2, anchor=True), cond_dim=6)
    cond, pos, x1 = _pointer_toy(torch.Generator().manual_seed(0), 4)
    mask = torch.ones(4, 12, dtype=torch.bool)
    with pytest.raises(ValueError, match="anchors"):
        pose_losses(dit, cond, mask, x1, torch.ones(4, dtype=torch.long), FlowConfig())
    seq, pooled = dit.encode_condition(cond, mask)
    steps = torch.ones(4, 1, dtype=torch.bool)
    x = torch.randn(4, 1, 2, 9)
    with torch.no_grad():
        dit.pointer_q.weight.zero_()
        dit.pointer_q.bias.zero_()  # uniform attention: the anchor is the mean of the scene points
    mask[:, 6:] = False  # ... of the unmasked ones only
    for t in (0.0, 0.5, 0.9):
        v = dit.velocity(x, torch.full((4,), t), seq, mask, pooled, steps, pos, mask)
        end = x[..., :3] + (1 - t) * v[..., :3]  # a fresh DiT's residual is zero
        want = pos[:, :6].mean(1)[:, None, None, :].expand(4, 1, 2, 3)
        torch.testing.assert_close(end, want, atol=1e-5, rtol=0)


def test_pointer_loss_rewards_attention_on_the_tokens_at_the_target():
    from pmoe_core.planner.pose_head import pointer_loss

    anchors = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0], [-0.5, 0.5, 0], [0.9, 0.9, 0.9]]])
    mask = torch.tensor([[True, True, True, False]])  # the last is a text position
    targets = torch.tensor([[[[0.49, 0.0, 0.0], [-0.5, 0.52, 0.0]]]])  # (1, 1 step, pick/place, 3)
    steps = torch.ones(1, 1, dtype=torch.bool)
    right = torch.tensor([[[[0.01, 0.97, 0.01, 0.01], [0.01, 0.01, 0.97, 0.01]]]])
    uniform = torch.full((1, 1, 2, 4), 0.25)
    assert pointer_loss(right, targets, anchors, mask, steps) < 0.1 < pointer_loss(uniform, targets, anchors, mask, steps)
    dit = PoseDiT(PoseDiTConfig(dim=16, depth=1, heads=2, max_steps=2, anchor=True, pointer_loss=0.5), cond_dim=6)
    cond, pos, x1 = _pointer_toy(torch.Generator().manual_seed(0), 4)
    m = torch.ones(4, 12, dtype=torch.bool)
    parts = pose_losses(dit, cond, m, x1, torch.ones(4, dtype=torch.long), FlowConfig(), anchors=pos, anchor_mask=m)
    assert set(parts) == {"flow", "stop", "pointer"} and parts["pointer"] > 0


def test_pointer_target_ignores_height_so_a_place_on_a_tower_points_at_its_base():
    from pmoe_core.planner.pose_head import pointer_loss

    base, other = [0.2, 0.1, -0.6], [0.6, -0.4, -0.6]  # tokens on the table, token units
    anchors = torch.tensor([[base, other]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    steps = torch.ones(1, 1, dtype=torch.bool)
    high = torch.tensor([[[[0.2, 0.1, 0.0], [0.2, 0.1, 0.0]]]])  # 0.6 token units (~9 cm) above the base
    on_base = torch.tensor([[[[0.98, 0.02], [0.98, 0.02]]]])
    on_other = torch.tensor([[[[0.02, 0.98], [0.02, 0.98]]]])
    assert pointer_loss(on_base, high, anchors, mask, steps) < 0.1 < pointer_loss(on_other, high, anchors, mask, steps)
