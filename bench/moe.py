"""MoE layer forward+backward: our sorted dropless dispatch vs the reference-style dispatch vs a dense gated MLP.

- ours: sort (token, expert) pairs by expert, one matmul chain per contiguous expert slice, weighted index_add.
- reference-style: repeat every token k times, loop over experts with a boolean mask each (Point-MoE training path).
- dense: GatedMLP with hidden = k * ratio * C, the same active FLOPs per token.
Run: python bench/moe.py [--tokens 100000] [--device cpu|cuda] [--dtype fp32|bf16]
"""

from __future__ import annotations

import argparse
import time

import torch

from pmoe_core.models.moe import GatedMLP, MoE, MoEConfig, expert_forward


def reference_dispatch(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    r = moe.route(x)
    k = moe.cfg.top_k
    xr = x.repeat_interleave(k, dim=0)
    flat = r.expert_ids.reshape(-1)
    y = torch.empty_like(xr)
    for e in range(moe.cfg.num_experts):
        mask = flat == e
        y[mask] = expert_forward(xr[mask], moe.w_gate[e], moe.w_up[e], moe.w_down[e])
    return (y.view(-1, k, x.shape[1]) * r.weights.to(x.dtype).unsqueeze(-1)).sum(1)


def run_once(fn, x: torch.Tensor) -> float:
    x.grad = None
    if x.is_cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn(x).float().square().mean().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def interleaved_best(fns: dict, x: torch.Tensor, repeat: int) -> dict[str, float]:
    """Best of `repeat` per variant, the variants taking turns so that machine drift hits them all alike."""
    for fn in fns.values():  # warm-up
        run_once(fn, x)
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(run_once(fn, x))
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--ratio", type=float, default=2.0)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    c = args.channels
    moe = MoE(c, MoEConfig(args.experts, args.top_k, args.ratio)).to(args.device, dtype)
    dense = GatedMLP(c, int(args.top_k * args.ratio * c)).to(args.device, dtype)
    x = torch.randn(args.tokens, c, device=args.device, dtype=dtype, requires_grad=True)
    print(f"{args.tokens} tokens, C={c}, E={args.experts}, ratio {args.ratio}, top-{args.top_k}, {args.device} {args.dtype}, "
          f"{torch.get_num_threads()} threads; forward+backward, best of {args.repeat}, interleaved")
    results = interleaved_best({"dense": dense, "ours": moe, "reference": lambda t: reference_dispatch(moe, t)},
                               x, args.repeat)
    base = results["dense"]
    for name, t in results.items():
        print(f"{name:14s} {t * 1e3:9.1f} ms   {t / base:5.2f}x dense")
    print(f"ours vs reference-style: {results['reference'] / results['ours']:.2f}x faster")


if __name__ == "__main__":
    main()
