"""PTv3 forward+backward throughput (points/s) with the spconv and torch sparse-conv backends, same weights.

Also times the routing recorder on a Point-MoE model (off vs on). Run: python bench/backbone.py [--points 30000]
(100k points of ptv3-base takes tens of seconds per step on 2 CPU cores, hence the smaller default scene.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _scene import synthetic_scene  # noqa: E402

from pmoe_core.models import build_model, record_routing  # noqa: E402
from pmoe_core.models.sparse_conv import HAS_SPCONV  # noqa: E402


def step_time(model, batch, repeat: int, train: bool = True) -> float:
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        if train:
            model(batch).square().mean().backward()
        else:
            with torch.no_grad():
                model(batch)
        times.append(time.perf_counter() - t)
    return min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="ptv3-base")
    ap.add_argument("--points", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    batch = synthetic_scene(args.points)
    n = batch.coord.shape[0]
    print(f"{args.preset}, {n} points, forward+backward, best of {args.repeat}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    ref = build_model(args.preset, backend="torch").train()
    results = {"torch": step_time(ref, batch, args.repeat)}
    if HAS_SPCONV:
        sp = build_model(args.preset, backend="spconv").train()
        sp.load_state_dict(ref.state_dict())
        results["spconv"] = step_time(sp, batch, args.repeat)
    for name, t in results.items():
        print(f"{name:7s} {t:7.2f} s/step  {n / t:9.0f} points/s  {t / results['torch']:.2f}x torch backend")

    moe = build_model("pmoe-tiny").eval()
    off = step_time(moe, batch, 3, train=False)
    with record_routing(moe):
        on = step_time(moe, batch, 3, train=False)
    off2 = step_time(moe, batch, 3, train=False)
    print(f"recorder (pmoe-tiny inference): off {min(off, off2) * 1e3:.1f} ms, on {on * 1e3:.1f} ms "
          f"({on / min(off, off2):.2f}x); after exit hooks left: "
          f"{sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in moe.modules())}")


if __name__ == "__main__":
    main()
