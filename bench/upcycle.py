"""Sparse upcycling vs training from scratch, at the same number of steps, on synthetic joint data.

(a) dense ptv3-tiny trained N steps, then `--init` + `--upcycle E` and M more steps (upcycled Point-MoE);
(b) pmoe-tiny from scratch for N + M steps;
(c) the dense checkpoint of (a) continued for M steps with `--init` (same fresh optimizer/schedule as (a)'s second
    phase), the dense control.
All runs use the joint-training bench's data (bench/joint_training.py: the paper's five datasets synthesised in their
raw formats and converted), the same seed, batch and crop, and go through the library's train and eval paths.
mIoU is the mean over the five trained datasets' val splits.

    OMP_NUM_THREADS=1 python bench/upcycle.py --threads 1          # ~30 min on 2 CPU cores shared with ~10 jobs
    python bench/upcycle.py --dense-steps 10 --steps 10 --scenes 3 # quick look

Tiny synthetic data says nothing about the paper's scale; it shows the upcycled model starts where the dense one
stopped and whether the extra experts help within the same step budget.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

# bench-local data, from bench/joint_training.py (run as `python bench/upcycle.py`)
from joint_training import TRAINED, prepare

from pmoe_core.engine.evaluate import evaluate
from pmoe_core.engine.model_io import load_segmentation_model
from pmoe_core.engine.train import TrainConfig, train
from pmoe_core.models import count_parameters


def run(data: Path, out: Path, steps: int, seed: int, max_points: int, **model) -> tuple[Path, float, float]:
    """Train one run; (checkpoint, seconds, final loss)."""
    start = time.perf_counter()
    result = train(TrainConfig(data=str(data), datasets=TRAINED, out=str(out), steps=steps, batch_size=2,
                               max_points=max_points, workers=2, seed=seed, log_every=max(steps // 5, 1),
                               ckpt_every=steps + 1, precise_bn=5, tensorboard=False, **model), echo=lambda s: None)
    return result.checkpoint, time.perf_counter() - start, result.final_loss


def score(label: str, ckpt: Path, data: Path, seconds: float, loss: float, steps: int) -> dict:
    report = evaluate(str(ckpt), str(data), datasets=TRAINED)
    miou = {r.dataset: round(100 * r.miou, 1) for r in report.results}
    total, active = count_parameters(load_segmentation_model(str(ckpt))[0])
    return {"model": label, "steps": steps, "params": total, "active_params": active, "train_s": round(seconds, 1),
            "final_loss": round(loss, 4), "miou": miou, "avg": round(sum(miou.values()) / len(miou), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense-steps", type=int, default=30, help="N: dense pre-training steps")
    parser.add_argument("--steps", type=int, default=30, help="M: steps after the upcycling")
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--max-points", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("PMOE_CACHE_DIR", str(Path(tempfile.gettempdir()) / "pmoe-bench-cache"))
    root = args.workdir or Path(tempfile.mkdtemp(prefix="pmoe-upcycle-"))
    total = time.perf_counter()
    data = prepare(root, args.scenes, args.seed)
    print(f"data ready in {time.perf_counter() - total:.0f} s under {root}", flush=True)
    n, m, seed, pts = args.dense_steps, args.steps, args.seed, args.max_points
    rows: list[dict] = []

    def add(row: dict) -> None:  # printed as it comes: a run cut short still leaves its finished rows
        rows.append(row)
        print(f"{row['model']}: train {row['train_s']:.0f} s, loss {row['final_loss']}, mIoU {row['avg']}", flush=True)

    dense, t_dense, loss = run(data, root / "dense", n, seed, pts, preset="ptv3-tiny")
    add(score(f"ptv3-tiny, {n} steps (the start)", dense, data, t_dense, loss, n))
    up, t, loss = run(data, root / "upcycled", m, seed, pts, init=str(dense), upcycle=args.experts)
    add(score(f"(a) upcycled x{args.experts}, {n}+{m}", up, data, t_dense + t, loss, n + m))
    scratch, t, loss = run(data, root / "scratch", n + m, seed, pts, preset="pmoe-tiny")
    add(score(f"(b) pmoe-tiny scratch, {n + m}", scratch, data, t, loss, n + m))
    cont, t, loss = run(data, root / "dense_more", m, seed, pts, init=str(dense))
    add(score(f"(c) ptv3-tiny, {n}+{m}", cont, data, t_dense + t, loss, n + m))

    print(f"\nmIoU (%) on the val splits, {args.scenes} scenes per dataset, crop {pts} points, seed {seed}")
    print(f"{'model':<34}{'params':>11}{'active':>11}" + "".join(f"{d[:8]:>9}" for d in TRAINED)
          + f"{'avg5':>7}{'train s':>9}")
    for r in rows:
        print(f"{r['model']:<34}{r['params']:>11,}{r['active_params']:>11,}"
              + "".join(f"{r['miou'][d]:>9.1f}" for d in TRAINED) + f"{r['avg']:>7.1f}{r['train_s']:>9.0f}")
    a, b, c = (rows[i]["avg"] for i in (1, 2, 3))
    ratios = {"upcycled/scratch": round(a / b, 3) if b else None, "upcycled/dense": round(a / c, 3) if c else None}
    print(f"ratios of avg mIoU: upcycled/scratch {ratios['upcycled/scratch']}, "
          f"upcycled/dense-continued {ratios['upcycled/dense']}")
    print(f"total {time.perf_counter() - total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"dense_steps": n, "steps": m, "experts": args.experts, "scenes": args.scenes,
                                         "max_points": pts, "seed": seed, "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
