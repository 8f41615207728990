"""Gated-MLP experts over expert-sorted token slices, with a hand-written backward.

Why by hand: on CPU a layer this size is bound by memory, and most of it is first-touch page faults on freshly
allocated activations (a new 200 MB tensor costs ~45 ms before any arithmetic; writing into one that exists costs ~6
ms). Autograd over per-expert `chunk @ w` allocates every intermediate anew and then concatenates them. Here each
activation is one buffer for all experts that the per-expert matmuls write into (`out=`), gate and up projections
are one matmul, the relu and the routing weights are applied in place, and the backward overwrites the saved
gate/up buffer with its own gradient. The arithmetic is the autograd graph's, so results agree to float rounding.

Because the backward consumes its saved activations, it may run once per forward: a second backward through the
same graph (retain_graph=True) raises instead of returning wrong gradients.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def grouped_gated_mlp(x: torch.Tensor, token_idx: torch.Tensor, counts: list[int], weights: torch.Tensor,
                      w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """sum over pairs p of weights[p] * expert_e(x[token_idx[p]]), pairs sorted by expert with counts[e] each.

    x (N, C); token_idx (P,) int64; weights (P,); w_gate, w_up (E, C, H); w_down (E, H, C). Returns (N, C).
    Under autocast the experts run in the autocast dtype, like the matmuls they replace.
    """
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
    w_gate_up = torch.cat([w_gate, w_up], dim=2).to(dtype)
    with torch.autocast(device, enabled=False):
        return _GroupedGatedMLP.apply(x.to(dtype), token_idx, counts, weights.to(dtype), w_gate_up, w_down.to(dtype))


def _slices(counts: list[int]) -> Iterator[tuple[int, slice]]:
    start = 0
    for expert, count in enumerate(counts):
        if count:
            yield expert, slice(start, start + count)
        start += count


class _GroupedGatedMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, token_idx, counts, weights, w_gate_up, w_down):
        hidden = w_down.shape[1]
        xs = x.index_select(0, token_idx)
        gate_up = xs.new_empty(xs.shape[0], 2 * hidden)
        for e, s in _slices(counts):
            torch.mm(xs[s], w_gate_up[e], out=gate_up[s])
        act, up = gate_up[:, :hidden], gate_up[:, hidden:]
        act.clamp_min_(0)
        h = act * up
        y = xs.new_empty(xs.shape)
        for e, s in _slices(counts):
            torch.mm(h[s], w_down[e], out=y[s])
        y.mul_(weights.unsqueeze(1))
        out = x.new_zeros(x.shape).index_add_(0, token_idx, y)
        ctx.save_for_backward(xs, gate_up, h, token_idx, weights, w_gate_up, w_down)
        ctx.counts = counts
        ctx.consumed = False
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.consumed:
            raise RuntimeError("MoE expert backward ran twice over one forward (retain_graph=True); it frees its "
                               "activations on the first backward, so run the forward again instead")
        ctx.consumed = True
        xs, gate_up, h, token_idx, weights, w_gate_up, w_down = ctx.saved_tensors
        counts, hidden = ctx.counts, w_down.shape[1]
        act, up = gate_up[:, :hidden], gate_up[:, hidden:]
        grad_y = grad_out.index_select(0, token_idx)
        grad_weights = grad_out.new_empty(weights.shape) if ctx.needs_input_grad[3] else None
        grad_w_down = torch.empty_like(w_down)
        # One expert's d h at a time in a reused scratch; h's buffer takes it over once h is spent.
        scratch = h.new_empty(2, max(counts, default=0), hidden)
        for e, s in _slices(counts):
            grad_h, product = scratch[:, : s.stop - s.start]
            torch.mm(grad_y[s], w_down[e].T, out=grad_h)
            if grad_weights is not None:  # d out / d weight_p = <grad_out[t], expert(x_t)> = <d h_p, h_p>
                grad_weights[s] = torch.mul(grad_h, h[s], out=product).sum(1)
            scale = weights[s].unsqueeze(1)
            grad_y[s] *= scale
            torch.mm(h[s].T, grad_y[s], out=grad_w_down[e])
            torch.mul(grad_h, scale, out=h[s])
        grad_h = h
        # gate_up becomes its own gradient: the up half turns into d gate, the gate half into d up.
        up.mul_(grad_h)
        torch.ops.aten.threshold_backward.grad_input(up, act, 0.0, grad_input=up)
        act.mul_(grad_h)
        grad_up_gate = gate_up  # now [d up | d gate]
        w_up_gate = torch.cat([w_gate_up[:, :, hidden:], w_gate_up[:, :, :hidden]], dim=2)
        grad_w_up_gate = torch.empty_like(w_gate_up)
        grad_xs = grad_y  # reused: grad_y is spent
        for e, s in _slices(counts):
            torch.mm(xs[s].T, grad_up_gate[s], out=grad_w_up_gate[e])
            torch.mm(grad_up_gate[s], w_up_gate[e].T, out=grad_xs[s])
        grad_w_gate_up = torch.cat([grad_w_up_gate[:, :, hidden:], grad_w_up_gate[:, :, :hidden]], dim=2)
        empty = [e for e, c in enumerate(counts) if not c]  # experts without tokens get zero gradients
        if empty:
            grad_w_down[empty] = 0
            grad_w_gate_up[empty] = 0
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out.new_zeros(grad_out.shape).index_add_(0, token_idx, grad_xs)
        return grad_x, None, None, grad_weights, grad_w_gate_up, grad_w_down
