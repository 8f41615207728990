import pytest
import torch

from pmoe_core.models.moe import GatedMLP, MoE, MoEConfig, moe_aux_loss


def naive_moe(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, combined with a dense (N, E) weight matrix that is zero off the top-k."""
    probs = torch.softmax(x @ moe.router.weight.T, dim=-1)
    w, ids = probs.topk(moe.cfg.top_k, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    dense_w = torch.zeros_like(probs).scatter(1, ids, w)
    outs = torch.stack(
        [(torch.relu(x @ moe.w_gate[e]) * (x @ moe.w_up[e])) @ moe.w_down[e] for e in range(moe.cfg.num_experts)], 1
    )
    out = (dense_w.unsqueeze(-1) * outs).sum(1)
    if moe.shared is not None:
        out = out + moe.shared(x)
    return out


@pytest.mark.parametrize("cfg", [MoEConfig(8, 2, 2.0), MoEConfig(4, 1, 1.0), MoEConfig(4, 3, 0.5, shared_expert=True)])
def test_moe_equals_naive_forward_and_backward(cfg):
    torch.manual_seed(0)
    moe = MoE(24, cfg).double()
    x = torch.randn(300, 24, dtype=torch.double)
    grads = []
    for fn in (moe, lambda t: naive_moe(moe, t)):
        moe.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = fn(xi)
        (y * torch.cos(torch.arange(y.numel(), dtype=y.dtype)).view_as(y)).sum().backward()
        grads.append([y.detach(), xi.grad] + [p.grad.clone() for p in moe.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_identical_experts_equal_dense_gated_mlp():
    """Upcycling: copies of one MLP as experts + renormalised top-k weights = that MLP, whatever the router says."""
    torch.manual_seed(0)
    dense = GatedMLP(16, 32).double()
    moe = MoE(16, MoEConfig(num_experts=6, top_k=2, ratio=2.0)).double()
    with torch.no_grad():
        moe.w_gate.copy_(dense.gate.weight.T.expand(6, -1, -1))
        moe.w_up.copy_(dense.up.weight.T.expand(6, -1, -1))
        moe.w_down.copy_(dense.down.weight.T.expand(6, -1, -1))
        moe.router.weight.normal_()
    x = torch.randn(200, 16, dtype=torch.double)
    torch.testing.assert_close(moe(x), dense(x), atol=1e-12, rtol=1e-12)


def test_every_expert_that_gets_tokens_gets_gradient():
    torch.manual_seed(0)
    moe = MoE(16, MoEConfig(num_experts=8, top_k=2, ratio=1.0))
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[7] = 5.0  # expert 7 wins almost every token; some experts may get none
    x = torch.randn(64, 16)
    moe(x).sum().backward()
    ids = moe.route(x).expert_ids
    used = torch.bincount(ids.flatten(), minlength=8) > 0
    grad_norm = moe.w_up.grad.flatten(1).norm(dim=1)
    assert torch.equal(grad_norm > 0, used)
    assert moe.router.weight.grad.abs().sum() > 0  # router learns through the combine weights


def test_routing_weights_and_aux_loss():
    torch.manual_seed(0)
    moe = MoE(8, MoEConfig(num_experts=4, top_k=2, ratio=1.0, aux_loss_alpha=0.01))
    x = torch.randn(100, 8)
    r = moe.route(x)
    torch.testing.assert_close(r.weights.sum(1), torch.ones(100))
    assert torch.equal(r.expert_ids, r.probs.topk(2, dim=1).indices)
    moe(x)
    frac = torch.bincount(r.expert_ids.flatten(), minlength=4).float() / 200
    expected = 0.01 * 4 * (r.probs.mean(0) * frac).sum()
    torch.testing.assert_close(moe.aux_loss, expected)
    other = MoE(8, MoEConfig(num_experts=4, top_k=2, ratio=1.0, aux_loss_alpha=0.01))
    other(x)
    torch.testing.assert_close(moe_aux_loss(torch.nn.Sequential(moe, other)), expected + other.aux_loss)
    assert moe_aux_loss(torch.nn.Sequential(MoE(8, MoEConfig(4, 2, 1.0)))) is None


def test_top_k_must_fit():
    with pytest.raises(ValueError):
        MoE(8, MoEConfig(num_experts=2, top_k=3))


def test_grouped_experts_backward_runs_once_and_says_so():
    """The hand-written backward spends its saved activations; a second backward must fail loudly, not silently."""
    moe = MoE(8, MoEConfig(4, 2, 1.0))
    y = moe(torch.randn(20, 8, requires_grad=True)).sum()
    y.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="ran twice"):
        y.backward()


def test_grouped_experts_leave_inputs_untouched_and_handle_empty_batches():
    moe = MoE(8, MoEConfig(4, 2, 1.0))
    x = torch.randn(30, 8, requires_grad=True)
    before = x.detach().clone()
    moe(x).square().sum().backward()
    assert torch.equal(x.detach(), before)
    assert moe(torch.zeros(0, 8)).shape == (0, 8)
    with torch.no_grad():
        assert torch.equal(moe(x), moe(x))  # inference is deterministic and needs no graph


def test_grouped_experts_follow_autocast_dtype():
    torch.manual_seed(0)
    moe = MoE(16, MoEConfig(4, 2, 1.0))
    x = torch.randn(50, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = moe(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert moe.w_gate.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    torch.testing.assert_close(y.float(), moe(x).detach(), atol=0.05, rtol=0.05)
