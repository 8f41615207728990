"""`pmoe eval` with fragments scored in bounded passes (--chunk-points, the default) vs all of a scene's fragments
in one forward pass (the baseline, measured in the same run): eval seconds, peak RSS and whether mIoU agrees.

Why: a scene has as many test fragments as its densest voxel has points; a synthetic Structured3D room (panorama
poles) is ~32k points but 33 fragments, ~1M points in one pass. Without --data, `pmoe synth` writes raw
Structured3D and SemanticKITTI data (--scenes each; the val split holds half of them), `pmoe convert` stores it,
and without --checkpoint `pmoe train` trains pmoe-tiny for 2 steps on it (memory and time do not depend on how
trained the weights are). Every `pmoe eval` runs in its own process, one dataset at a time, so peak RSS
(wait4's ru_maxrss) is that variant's alone; it includes the interpreter, torch and the model. "eval s" is the
report's own `seconds` (scoring only, without imports and checkpoint loading).
Run: PYTHONPATH=. python bench/eval.py [--scenes 2] [--datasets structured3d,semantickitti] [--threads 1]
     [--chunk-points 131072] [--data STORES --checkpoint CKPT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmoe_core.data.collate import fragment_pieces
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.recipes import RecipeConfig, domain_of, test_recipe
from pmoe_core.data.transforms import apply
from pmoe_core.engine.evaluate import CHUNK_POINTS
from pmoe_core.store import find_stores

ONE_PASS = 1 << 40  # more points than any split: every scene's fragments go through the model together


@dataclass
class EvalRun:
    """One `pmoe eval` process: its report and what it cost."""

    seconds: float  # the report's scoring time
    peak_rss: int  # bytes
    miou: float
    confusion: np.ndarray


def pmoe(args: list[str], log: Path, threads: int, watch: Callable[[int], None] | None = None) -> tuple[float, int]:
    """Run `python -m pmoe_cli ARGS` (output to `log`); (wall seconds, peak RSS bytes of that process alone).
    `watch(pid)`, when given, is called about twice a second while the process runs (e.g. to sample its memory)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pmoe_cli", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        while True:  # per-child rusage; RUSAGE_CHILDREN would be the max of all
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if watch else 0)
            if pid:
                break
            watch(proc.pid)
            time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"pmoe {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return wall, usage.ru_maxrss * 1024  # Linux: kilobytes


def prepare(work: Path, datasets: list[str], scenes: int, threads: int) -> tuple[str, str]:
    """Synthetic raw data -> stores -> a 2-step pmoe-tiny checkpoint; (data folder, checkpoint)."""
    data = work / "data"
    for name in datasets:
        pmoe(["synth", name, str(work / f"raw_{name}"), "--scenes", str(scenes)], work / "synth.log", threads)
        pmoe(["convert", name, str(work / f"raw_{name}"), str(data), "--workers", "1"], work / "convert.log", threads)
    pmoe(["train", "--datasets", ",".join(datasets), "--data", str(data), "--out", str(work / "run"),
          "--preset", "pmoe-tiny", "--steps", "2", "--batch-size", "2", "--workers", "0", "--ckpt-every", "1000",
          "--device", "cpu", "--threads", str(threads)], work / "train.log", threads)
    return str(data), str(work / "run" / "ckpt.pt")


def fragment_stats(data: str, dataset: str, split: str, chunk: int) -> tuple[int, int, int, int]:
    """(scenes, stored points, fragment points, forward passes at `chunk`) of the split, as `pmoe eval` cuts them
    (default grids; one scene per batch)."""
    scenes = SceneDataset(find_stores(data, dataset), split, mode="test", config=RecipeConfig())
    transforms = test_recipe(domain_of(dataset))
    stored = fragment_points = passes = 0
    for i in range(len(scenes)):
        raw = scenes.raw(i)
        stored += len(raw)
        sample = apply(transforms, raw, np.random.default_rng(0))
        count, points = sample.fragments.shape
        fragment_points += count * points
        passes += len(fragment_pieces([sample], chunk))
    return len(scenes), stored, fragment_points, passes


def evaluate(ckpt: str, data: str, dataset: str, split: str, chunk: int, threads: int, work: Path) -> EvalRun:
    report = work / f"eval_{dataset}_{chunk}.json"
    _, rss = pmoe(["eval", ckpt, "--data", data, "--datasets", dataset, "--split", split, "--device", "cpu",
                      "--threads", str(threads), "--chunk-points", str(chunk), "--json", str(report)],
                     work / f"eval_{dataset}_{chunk}.log", threads)
    doc = json.loads(report.read_text())
    result = doc["results"][0]
    return EvalRun(doc["seconds"], rss, result["miou"], np.asarray(result["confusion"]))


def agreement(a: EvalRun, b: EvalRun) -> str:
    cells = int((a.confusion != b.confusion).sum())
    if cells == 0:
        return "yes (identical confusion)"
    delta = abs(a.miou - b.miou)
    return f"{'yes' if delta < 1e-4 else 'NO'} (|dmIoU| {delta:.1e}, {cells} confusion cells differ)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=2, help="synthetic scenes per dataset (half of them val)")
    ap.add_argument("--datasets", default="structured3d,semantickitti")
    ap.add_argument("--split", default="val")
    ap.add_argument("--chunk-points", type=int, default=CHUNK_POINTS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="existing stores (then --checkpoint too) instead of synthetic ones")
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    if (args.data is None) != (args.checkpoint is None):
        ap.error("--data and --checkpoint go together (the checkpoint must be trained on the stores' classes)")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        data, ckpt = (args.data, args.checkpoint) if args.data else prepare(work, datasets, args.scenes, args.threads)
        print(f"{args.threads} thread(s), checkpoint {ckpt if args.checkpoint else 'pmoe-tiny, 2 steps'}, "
              f"data prepared in {time.perf_counter() - start:.1f} s, --chunk-points {args.chunk_points:,}")
        print("| dataset | scenes | points | fragment points | passes chunked / one | eval s chunked | eval s one pass "
              "| time chunked / one | peak RSS chunked | peak RSS one pass | memory chunked / one | mIoU agrees |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name in datasets:
            scenes, points, fragment_points, passes = fragment_stats(data, name, args.split, args.chunk_points)
            chunked = evaluate(ckpt, data, name, args.split, args.chunk_points, args.threads, work)
            one = evaluate(ckpt, data, name, args.split, ONE_PASS, args.threads, work)
            print(f"| {name} | {scenes} | {points:,} | {fragment_points:,} | {passes} / {scenes} | "
                  f"{chunked.seconds:.1f} | {one.seconds:.1f} | {chunked.seconds / one.seconds:.2f}x | "
                  f"{chunked.peak_rss / 2**30:.2f} GiB | {one.peak_rss / 2**30:.2f} GiB | "
                  f"{chunked.peak_rss / one.peak_rss:.2f}x | {agreement(chunked, one)} |")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"whole run {time.perf_counter() - t:.1f} s")
