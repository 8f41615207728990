"""Rectified flow: the exact velocity of a point mass has zero loss and Euler sampling lands on it."""

from __future__ import annotations

import pytest
import torch

from pmoe_core.planner.flow import FlowConfig, euler_sample, flow_loss, sample_times


def test_exact_velocity_has_zero_loss_and_euler_is_exact_on_straight_paths():
    target = torch.tensor([0.3, -0.7, 0.5])

    def velocity(x, t):  # every path of a point-mass target is a straight line: v = (x1 - x_t) / (1 - t)
        return (target - x) / (1 - t[:, None]).clamp_min(1e-6)

    x1 = target.expand(64, 3).clone()
    assert flow_loss(velocity, x1, None, FlowConfig(time_sampling="uniform")).item() < 1e-6
    for steps in (1, 4):
        out = euler_sample(velocity, (16, 3), steps, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, target.expand(16, 3), atol=1e-5, rtol=0)


def test_mask_excludes_entries():
    x1 = torch.zeros(4, 3)
    mask = torch.tensor([[1.0], [1.0], [0.0], [0.0]])

    def velocity(x, t):  # x1 = 0: x_t = (1 - t) x0 and the target x1 - x0 = -x0 = -x_t / (1 - t)
        out = -x / (1 - t[:, None])
        out[2:] += 100.0  # wrong where masked out
        return out

    assert flow_loss(velocity, x1, mask, FlowConfig()).item() < 1e-6
    assert flow_loss(velocity, x1, None, FlowConfig()).item() > 100


@pytest.mark.parametrize("kind", ["uniform", "logit_normal"])
def test_times_lie_in_the_unit_interval(kind):
    t = sample_times(10000, FlowConfig(time_sampling=kind), generator=torch.Generator().manual_seed(0))
    assert 0.0 <= t.min() and t.max() <= 1.0 and abs(t.mean().item() - 0.5) < 0.02
    if kind == "logit_normal":
        assert (t - 0.5).abs().mean() < 0.22  # concentrated towards the middle (uniform gives 0.25)
    with pytest.raises(ValueError):
        sample_times(3, FlowConfig(time_sampling="cosine"))


def test_end_point_dims_score_the_implied_end_point():
    """Scored as end points, a velocity whose end point x_t + (1 - t) v misses by d costs d^2 at every t; on the
    other coordinates the same miss costs d^2 / (1 - t)^2."""
    target = torch.tensor([0.3, -0.7])
    miss = torch.tensor([0.1, 0.1])

    def velocity(x, t):
        return (target + miss - x) / (1 - t[:, None])

    x1 = target.expand(256, 2).clone()
    cfg = FlowConfig(time_sampling="uniform")
    g = torch.Generator().manual_seed(0)
    both = flow_loss(velocity, x1, None, cfg, torch.Generator().manual_seed(0), end_point_dims=2)
    torch.testing.assert_close(both, torch.tensor(0.01), atol=1e-5, rtol=0)
    plain = flow_loss(velocity, x1, None, cfg, g)
    assert plain > 0.02  # E[1 / (1 - t)^2] > 1


def test_dim_weights_scale_each_coordinates_error():
    """The same miss on two coordinates, the second weighted 4x, costs 1 and 4 times d^2."""
    target = torch.tensor([0.3, -0.7])
    miss = torch.tensor([0.1, 0.1])

    def velocity(x, t):
        return (target + miss - x) / (1 - t[:, None])

    x1 = target.expand(64, 2).clone()
    cfg = FlowConfig(time_sampling="uniform")
    loss = flow_loss(velocity, x1, None, cfg, torch.Generator().manual_seed(0), end_point_dims=2,
                     dim_weights=torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(loss, torch.tensor((0.01 + 0.04) / 2), atol=1e-5, rtol=0)
