"""FLOPs per forward (torch.utils.flop_counter) and parameter counts of the large presets on one synthetic scene.

Sparse convs run on the torch backend so their matmuls are counted; MoE layers count only executed (top-k) experts.
Reports pmoe-l / ppt-l next to the paper's 265.7 / 384.4 GFLOPs = 0.69 (their figure is per training step).
Run: python bench/flops.py [--points 30000]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(__file__))
from _scene import synthetic_scene  # noqa: E402

from pmoe_core.models import PPT, build_model, count_parameters  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=30_000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    batch = synthetic_scene(args.points)
    print(f"scene: {batch.coord.shape[0]} points (2 cm voxels), forward only, eval mode")
    print(f"{'preset':10s} {'total':>9s} {'active':>9s} {'GFLOPs':>8s}")
    flops = {}
    for preset in ("ptv3-l", "ppt-l", "pmoe-s", "pmoe-l"):
        torch.manual_seed(0)
        model = build_model(preset, backend="torch").eval()
        total, active = count_parameters(model)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(batch, "scannet") if isinstance(model, PPT) else model(batch)
        flops[preset] = counter.get_total_flops()
        print(f"{preset:10s} {total / 1e6:8.1f}M {active / 1e6:8.1f}M {flops[preset] / 1e9:8.1f}")
        del model
    print(f"pmoe-l / ppt-l FLOPs: {flops['pmoe-l'] / flops['ppt-l']:.2f} (paper: 265.7 / 384.4 = {265.7 / 384.4:.2f})")
    print(f"pmoe-l / ptv3-l FLOPs: {flops['pmoe-l'] / flops['ptv3-l']:.2f}")


if __name__ == "__main__":
    main()
