"""Training-step throughput (forward + backward + AdamW) of the presets, in points/s.

CPU (default): the tiny presets on a small indoor-like scene, each against ptv3-tiny measured in the same run
(the dense baseline at equal width), printed as ratios. GPU (`--device cuda`): ptv3-base and pmoe-l with bf16
autocast on a ScanNet-sized scene (~100k points after grid sampling), with peak memory, against the PTv3 paper's
RTX 4090 numbers (train 151 ms, inference 61 ms).

    python bench/train_step.py                       # CPU, tiny presets
    python bench/train_step.py --device cuda --points 100000 --presets ptv3-base,pmoe-l --amp bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _scene import synthetic_scene
from pmoe_core.engine.optim import OptimConfig, make_optimizer
from pmoe_core.models.presets import build_model

PAPER_MS = {"train": 151.0, "inference": 61.0}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_preset(preset: str, batch, device: torch.device, amp: str, repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    classes = torch.nn.functional.normalize(torch.randn(20, 384, device=device), dim=-1)
    model = build_model(preset, dataset_names=["scannet"], text_dim=384).to(device).train()
    optimizer, _ = make_optimizer(model, OptimConfig(), total_steps=1000)
    target = torch.randint(0, 20, (batch.coord.shape[0],), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    ctx = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else (lambda: torch.enable_grad())
    kwargs = {"dataset": "scannet"} if getattr(model, "needs_dataset", False) else {}

    def step() -> None:
        with ctx():
            logits = model(batch, classes, **kwargs)
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def infer() -> None:
        with torch.no_grad(), ctx():
            model(batch, classes, **kwargs)

    out = {}
    for name, fn in (("train", step), ("inference", infer)):
        for _ in range(warmup):
            fn()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
        if device.type == "cuda":
            out[f"{name}_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", default="ptv3-tiny,pmoe-tiny,ppt-tiny")
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batch = synthetic_scene(args.points).to(device)
    n = batch.coord.shape[0]
    presets = args.presets.split(",")
    print(f"device {device}, {n} points, amp {args.amp}, threads {args.threads}, median of {args.repeats}")
    results = {p: time_preset(p, batch, device, args.amp, args.repeats, args.warmup) for p in presets}
    base = results[presets[0]]
    print(f"{'preset':<12} {'train ms':>10} {'points/s':>12} {'vs ' + presets[0]:>14} {'infer ms':>10}"
          + ("  peak GiB (train)" if device.type == "cuda" else ""))
    for p, r in results.items():
        line = (f"{p:<12} {r['train'] * 1e3:>10.1f} {n / r['train']:>12,.0f} {r['train'] / base['train']:>13.2f}x "
                f"{r['inference'] * 1e3:>10.1f}")
        if device.type == "cuda":
            line += f"  {r['train_peak_gib']:.2f}"
        print(line)
    if device.type == "cuda":
        for p, r in results.items():
            print(f"{p}: train {r['train'] * 1e3 / PAPER_MS['train']:.2f}x and inference "
                  f"{r['inference'] * 1e3 / PAPER_MS['inference']:.2f}x the PTv3 paper's RTX 4090 times")


if __name__ == "__main__":
    main()
