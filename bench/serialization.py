"""Serialization speed: our curve encoders vs straightforward implementations, 1M points, depth 10.

The references are what one writes from the definitions: Skilling's AxesToTranspose one level and one axis at a
time over whole tensors (as the usual PTv3 Hilbert encoder does), and a bit-by-bit interleave for z-order.
Codes must be identical. Run: python bench/serialization.py [--points 1000000] [--depth 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from pmoe_core.models.serialization import CURVES, encode


def skilling_hilbert(grid: torch.Tensor, depth: int) -> torch.Tensor:
    x = [grid[:, i].to(torch.int64).clone() for i in range(3)]
    q = 1 << (depth - 1)
    while q > 1:
        p = q - 1
        for i in range(3):
            on = (x[i] & q) != 0
            t = torch.where(on, 0, (x[0] ^ x[i]) & p)
            x[0] = torch.where(on, x[0] ^ p, x[0] ^ t)
            if i:
                x[i] = x[i] ^ t
        q >>= 1
    x[1] ^= x[0]
    x[2] ^= x[1]
    t = torch.zeros_like(x[0])
    q = 1 << (depth - 1)
    while q > 1:
        t = torch.where((x[2] & q) != 0, t ^ (q - 1), t)
        q >>= 1
    x = [v ^ t for v in x]
    code = torch.zeros_like(x[0])
    for level in range(depth - 1, -1, -1):
        for i in range(3):
            code = (code << 1) | ((x[i] >> level) & 1)
    return code


def interleave(grid: torch.Tensor, depth: int) -> torch.Tensor:
    g = grid.to(torch.int64)
    code = torch.zeros_like(g[:, 0])
    for i in range(depth):
        for axis in range(3):
            code |= ((g[:, axis] >> i) & 1) << (3 * i + 2 - axis)
    return code


REFERENCE = {
    "z": lambda g, d: interleave(g, d),
    "z-trans": lambda g, d: interleave(g[:, [1, 0, 2]], d),
    "hilbert": lambda g, d: skilling_hilbert(g, d),
    "hilbert-trans": lambda g, d: skilling_hilbert(g[:, [1, 0, 2]], d),
}


def best_of(fn, repeat: int) -> tuple[float, torch.Tensor]:
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    grid = torch.randint(0, 1 << args.depth, (args.points, 3), generator=torch.Generator().manual_seed(0))
    print(f"{args.points} points, depth {args.depth}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'curve':14s} {'ours ms':>9s} {'reference ms':>13s} {'speedup':>8s} identical")
    for curve in CURVES:
        ours_t, ours = best_of(lambda: encode(grid, None, args.depth, curve), args.repeat)
        ref_t, ref = best_of(lambda: REFERENCE[curve](grid, args.depth), max(1, args.repeat // 2))
        print(f"{curve:14s} {ours_t * 1e3:9.1f} {ref_t * 1e3:13.1f} {ref_t / ours_t:7.1f}x {torch.equal(ours, ref)}")


if __name__ == "__main__":
    main()
