"""One GPU check (issue #19): everything a first run on a CUDA machine must show, in one go, under ~8 minutes.

1. the CUDA-marked tests (`pytest -m cuda`);
2. the MoE layer at 100k and 1M tokens, fp32 and bf16: ours vs reference-style dispatch vs dense (bench/moe.py);
3. one ptv3-base and one pmoe-l training step, bf16, on a ~100k-point scene, with peak memory, against the PTv3
   paper's 151 ms train / 61 ms inference on an RTX 4090 (bench/train_step.py);
4. 200 steps of pmoe-tiny training on synthetic ScanNet + SemanticKITTI, then eval (the library's train/eval paths).

Results go to OUT/gpu_check.json and OUT/gpu_check.txt (OUT: --out, else $OUT, else bench_out/). A failing section is
recorded with its error and the others still run; the exit status is 1 when any failed. `--dry-run` runs every
section at toy sizes on the CPU (the tiny presets, a few steps), to prove the script end to end without a GPU.

    bench/gpu_check.sh            # on a GPU machine
    bench/gpu_check.sh --dry-run  # anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from _scene import synthetic_scene  # bench-local (run as `python bench/gpu_check.py`)
from moe import interleaved_best, reference_dispatch
from train_step import PAPER_MS, time_preset

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Sizes:
    """What each section runs: the GPU sizes of issue #19, or toy sizes for --dry-run."""

    device: str
    moe_tokens: tuple[int, ...]
    moe_channels: int
    moe_repeat: int
    step_presets: tuple[str, ...]
    step_points: int
    step_repeats: int
    train_preset: str
    train_steps: int
    train_scenes: int
    train_max_points: int
    train_datasets: tuple[str, ...]


GPU = Sizes("cuda", (100_000, 1_000_000), 256, 5, ("ptv3-base", "pmoe-l"), 100_000, 5, "pmoe-tiny", 200, 8, 40_000,
            ("scannet", "semantickitti"))
DRY = Sizes("cpu", (2_000, 5_000), 64, 1, ("ptv3-tiny", "pmoe-tiny"), 3_000, 1, "pmoe-tiny", 2, 2, 3_000, ("scannet",))


def cuda_tests(sizes: Sizes) -> dict[str, Any]:
    """`pytest -m cuda`; on CPU every test must skip with the stated reason (and the run still passes)."""
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    lines = proc.stdout.strip().splitlines()
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    if proc.returncode != 0:
        raise RuntimeError(f"pytest -m cuda exited {proc.returncode}: {summary}\n{proc.stdout[-3000:]}")
    return {"summary": summary, "skip_reasons": sorted({ln.split(": ", 1)[-1] for ln in lines if "SKIPPED" in ln})}


def moe_layer(sizes: Sizes) -> dict[str, Any]:
    """Forward+backward of one Point-MoE-L-like layer (E=8, top-2, ratio 2), best of `moe_repeat`, interleaved."""
    rows = [_moe_row(sizes, tokens, name, dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
            for tokens in sizes.moe_tokens]
    return {"channels": sizes.moe_channels, "experts": 8, "top_k": 2, "ratio": 2.0, "rows": rows}


def _moe_row(sizes: Sizes, tokens: int, dtype_name: str, dtype: torch.dtype) -> dict[str, Any]:
    """One size and dtype; its tensors are freed on return, so the next row's peak memory is its own."""
    from pmoe_core.models.moe import GatedMLP, MoE, MoEConfig

    torch.manual_seed(0)
    c, cfg = sizes.moe_channels, MoEConfig(8, 2, 2.0)
    moe = MoE(c, cfg).to(sizes.device, dtype)
    dense = GatedMLP(c, int(cfg.top_k * cfg.ratio * c)).to(sizes.device, dtype)
    x = torch.randn(tokens, c, device=sizes.device, dtype=dtype, requires_grad=True)
    if sizes.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    best = interleaved_best({"dense": dense, "ours": moe, "reference": lambda t: reference_dispatch(moe, t)},
                            x, sizes.moe_repeat)
    row = {"tokens": tokens, "dtype": dtype_name, **{f"{k}_ms": round(v * 1e3, 2) for k, v in best.items()},
           "ours_vs_reference": round(best["reference"] / best["ours"], 2),
           "ours_vs_dense": round(best["ours"] / best["dense"], 2)}
    if sizes.device == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def train_steps(sizes: Sizes) -> dict[str, Any]:
    """Median train step (forward + backward + AdamW) and inference of each preset, bf16 autocast on the GPU."""
    device = torch.device(sizes.device)
    batch = synthetic_scene(sizes.step_points).to(device)
    amp = "bf16" if device.type == "cuda" else "off"
    rows = []
    for preset in sizes.step_presets:
        r = time_preset(preset, batch, device, amp, sizes.step_repeats, warmup=2 if device.type == "cuda" else 1)
        row = {"preset": preset, "train_ms": round(r["train"] * 1e3, 1), "inference_ms": round(r["inference"] * 1e3, 1),
               "train_vs_paper_4090": round(r["train"] * 1e3 / PAPER_MS["train"], 2),
               "inference_vs_paper_4090": round(r["inference"] * 1e3 / PAPER_MS["inference"], 2)}
        row.update({k: round(v, 2) for k, v in r.items() if k.endswith("_peak_gib")})
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"points": int(batch.coord.shape[0]), "amp": amp, "paper_ms": PAPER_MS, "rows": rows}


def train_eval(sizes: Sizes) -> dict[str, Any]:
    """pmoe-tiny trained on synthetic ScanNet + SemanticKITTI (raw formats, converted; ScanNet alone in a dry run)
    and evaluated on their val splits."""
    from pmoe_core.convert import convert
    from pmoe_core.engine.evaluate import evaluate
    from pmoe_core.engine.train import TrainConfig, train
    from pmoe_core.sources.synthetic_indoor import write_scannet
    from pmoe_core.sources.synthetic_outdoor import write_semantickitti

    root = Path(tempfile.mkdtemp(prefix="pmoe-gpu-check-"))
    os.environ.setdefault("PMOE_CACHE_DIR", str(root / "cache"))
    writers = {"scannet": write_scannet, "semantickitti": write_semantickitti}
    for name in sizes.train_datasets:
        writers[name](root / "raw" / name, scenes=sizes.train_scenes, seed=0)
        convert(name, str(root / "raw" / name), str(root / "data"), workers=2)
    start = time.perf_counter()
    result = train(TrainConfig(data=str(root / "data"), datasets=sizes.train_datasets, out=str(root / "run"),
                               preset=sizes.train_preset, steps=sizes.train_steps, batch_size=2,
                               max_points=sizes.train_max_points, workers=2, log_every=max(sizes.train_steps // 4, 1),
                               ckpt_every=sizes.train_steps + 1, device=sizes.device, tensorboard=False),
                   echo=lambda s: None)
    seconds = time.perf_counter() - start
    report = evaluate(str(result.checkpoint), str(root / "data"), device=sizes.device)
    first = result.losses[0] if result.losses else float("nan")
    return {"preset": sizes.train_preset, "steps": result.steps, "train_s": round(seconds, 1),
            "points_per_s": round(result.points_per_s), "first_loss": round(first, 4),
            "final_loss": round(result.final_loss, 4), "eval_s": round(report.seconds, 1),
            "miou": {r.dataset: round(100 * r.miou, 1) for r in report.results}}


SECTIONS: dict[str, Callable[[Sizes], dict[str, Any]]] = {
    "cuda_tests": cuda_tests, "moe_layer": moe_layer, "train_steps": train_steps, "train_eval": train_eval,
}


def table(results: dict[str, Any]) -> str:
    """The readable side of the JSON."""
    env = results["environment"]
    what = "dry run, CPU" if results["dry_run"] else env["device_name"]
    head = (f"pmoe GPU check ({what}), torch {env['torch']}, CUDA {env['cuda']}, spconv {env['spconv']}, "
            f"{results['total_s']:.0f} s")
    out = [head, ""]
    for name, sec in results["sections"].items():
        if "error" in sec:
            out.append(f"[{name}] FAILED after {sec['seconds']:.0f} s: {sec['error'].splitlines()[0]}")
            continue
        out.append(f"[{name}] {sec['seconds']:.0f} s")
        if name == "cuda_tests":
            out.append(f"  {sec['summary']}" + (f"; skipped: {', '.join(sec['skip_reasons'])}" if sec["skip_reasons"]
                                                 else ""))
        elif name == "moe_layer":
            out.append(f"  C={sec['channels']}, E=8, top-2, ratio 2, forward+backward, best of repeats")
            out.append(f"  {'tokens':>9} {'dtype':>5} {'dense ms':>9} {'ours ms':>9} {'ref ms':>9} {'ours/ref':>9}"
                       f" {'peak GiB':>9}")
            for r in sec["rows"]:
                out.append(f"  {r['tokens']:>9,} {r['dtype']:>5} {r['dense_ms']:>9.1f} {r['ours_ms']:>9.1f} "
                           f"{r['reference_ms']:>9.1f} {r['ours_vs_reference']:>8.2f}x {r.get('peak_gib', '-'):>9}")
        elif name == "train_steps":
            out.append(f"  {sec['points']:,} points, amp {sec['amp']}; PTv3 paper on an RTX 4090: "
                       f"train {sec['paper_ms']['train']:.0f} ms, inference {sec['paper_ms']['inference']:.0f} ms")
            for r in sec["rows"]:
                out.append(f"  {r['preset']:<10} train {r['train_ms']:8.1f} ms ({r['train_vs_paper_4090']:.2f}x paper)"
                           f"  inference {r['inference_ms']:8.1f} ms ({r['inference_vs_paper_4090']:.2f}x paper)"
                           f"  peak {r.get('train_peak_gib', '-')} GiB train / {r.get('inference_peak_gib', '-')} GiB"
                           f" inference")
        elif name == "train_eval":
            out.append(f"  {sec['preset']} {sec['steps']} steps in {sec['train_s']:.0f} s "
                       f"({sec['points_per_s']:,} points/s), loss {sec['first_loss']} -> {sec['final_loss']}; "
                       f"eval {sec['eval_s']:.0f} s, mIoU " + ", ".join(f"{k} {v}" for k, v in sec["miou"].items()))
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: prove the script end to end")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "bench_out"))
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    args = parser.parse_args()
    sizes = DRY if args.dry_run else GPU
    if sizes.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible (use --dry-run to check the script on the CPU)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(8, os.cpu_count() or 1) if sizes.device == "cuda" else 2)
    from pmoe_core.models.sparse_conv import HAS_SPCONV

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "spconv": HAS_SPCONV}
    results: dict[str, Any] = {"dry_run": args.dry_run, "sizes": asdict(sizes), "environment": env, "sections": {}}
    total = time.perf_counter()
    for name in args.only.split(","):
        start = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        interrupted = False
        try:
            section = SECTIONS[name](sizes)
        except KeyboardInterrupt:  # gpu_check.sh's time limit (SIGINT): keep what ran, skip the rest
            section, interrupted = {"error": "interrupted: over the time limit"}, True
        except Exception as err:  # noqa: BLE001 - every failure is recorded and fails the run at the end
            section = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
            print(section["traceback"], file=sys.stderr, flush=True)
        section["seconds"] = round(time.perf_counter() - start, 1)
        results["sections"][name] = section
        if interrupted:
            break
    results["total_s"] = round(time.perf_counter() - total, 1)
    failed = [name for name, sec in results["sections"].items() if "error" in sec]
    results["failed"] = failed
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (args.out / "gpu_check.txt").write_text(text)
    print("\n" + text + f"results: {args.out / 'gpu_check.json'}, {args.out / 'gpu_check.txt'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
