"""A miniature of Point-MoE's main table on synthetic data in the real raw formats.

Synthesises and converts all seven datasets, trains tiny PTv3, tiny PPT and tiny Point-MoE jointly on the paper's
five (ScanNet, S3DIS, Structured3D, nuScenes, SemanticKITTI) with the same steps and seed, and evaluates each on all
seven validation splits: five in-domain, Matterport3D and Waymo zero-shot through their class names. Point-MoE is
also trained with unmixed batches (the paper's mixing ablation). Everything goes through the real `pmoe` library
paths (convert -> train -> eval), so this doubles as an end-to-end check.

Equal active parameters: the library's pmoe-tiny (4 experts, top-2, ratio 1) has 12% more active parameters per
point than ptv3-tiny, because a routed gated-MLP projection costs 2 x 3 C^2 where the dense one costs C^2. The bench
therefore trains `pmoe-tiny-matched`, a bench-local config: pmoe-tiny with its 64-wide levels at 60 (same MoE).
PPT's PDNorm keeps one norm bank per dataset but a point goes through one, so its per-point count is PTv3's.

Each model trains with its reference's recipe, as the library's train() applies it (engine/train.py
preset_recipe): PPT with Pointcept's (lr 0.005 / block 0.0005, clip 3.0, Mix3D 0.8, one dataset per batch), the
others with the Point-MoE release's (0.002 / 0.0006, clip 1.0, no Mix3D); each row's JSON records the values used.

    OMP_NUM_THREADS=1 python bench/joint_training.py --threads 1   # ~28 min on 2 busy CPU cores
    python bench/joint_training.py --steps 40 --scenes 4             # quick look
    for s in 0 1 2; do python bench/joint_training.py --steps 30 --scenes 4 --threads 1 --seed $s --json j$s.json; done
    python bench/joint_training.py --summarise j0.json j1.json j2.json   # mean and spread over the seeds
    python bench/joint_training.py --steps 30 --scenes 4 --models ppt-tiny   # one model's rows only

Numbers on tiny synthetic data say nothing about the paper's; they show the pipeline and the comparison run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from pmoe_core.convert import convert
from pmoe_core.engine.evaluate import evaluate
from pmoe_core.engine.train import TrainConfig, resolve_recipe, train
from pmoe_core.models import PRESETS, build_model, count_parameters
from pmoe_core.models.ppt import PDNorm
from pmoe_core.models.presets import ModelConfig, pmoe_tiny
from pmoe_core.sources.synthetic_indoor import write_matterport3d, write_s3dis, write_scannet, write_structured3d
from pmoe_core.sources.synthetic_outdoor import write_nuscenes, write_semantickitti, write_waymo

TRAINED = ("scannet", "s3dis", "structured3d", "nuscenes", "semantickitti")
ZERO_SHOT = ("matterport3d", "waymo")
WRITERS = {
    "scannet": write_scannet, "s3dis": write_s3dis, "structured3d": write_structured3d,
    "matterport3d": write_matterport3d, "nuscenes": write_nuscenes, "semantickitti": write_semantickitti,
    "waymo": write_waymo,
}
MATCHED = "pmoe-tiny-matched"
MODELS = ("ptv3-tiny", "ppt-tiny", MATCHED)
RUNS = (("ptv3-tiny", True), ("ppt-tiny", True), (MATCHED, True), (MATCHED, False))
TOLERANCE = 0.01  # the three models' active parameters per point may differ by at most 1%


def pmoe_tiny_matched() -> ModelConfig:
    """pmoe-tiny with the 64-wide levels at 60: same MoE (4 experts, top-2, ratio 1), ptv3-tiny's active count."""
    cfg = pmoe_tiny()
    return dataclasses.replace(cfg, enc_channels=(16, 32, 60, 60, 60), dec_channels=(32, 32, 60, 60))


def register_matched_preset() -> None:
    """Make the bench-local config trainable by name (train() takes a preset; eval rebuilds from the checkpoint)."""
    PRESETS.setdefault(MATCHED, pmoe_tiny_matched)


def active_parameters(preset: str) -> int:
    """Parameters one point goes through: top-k of each MoE's experts, and one of PPT's per-dataset norm banks."""
    model = build_model(preset, dataset_names=TRAINED)
    _, active = count_parameters(model)
    unused_banks = sum(sum(p.numel() for p in norm.parameters()) for m in model.modules() if isinstance(m, PDNorm)
                       for norm in list(m.norms)[1:])
    return active - unused_banks


def check_matched() -> dict[str, int]:
    """Active counts of the three models; stops the bench if they are not equal within TOLERANCE."""
    counts = {preset: active_parameters(preset) for preset in MODELS}
    spread = max(counts.values()) / min(counts.values()) - 1
    if spread > TOLERANCE:
        raise SystemExit(f"active parameters differ by {spread:.1%} (> {TOLERANCE:.0%}): {counts}")
    return counts


def prepare(root: Path, scenes: int, seed: int) -> Path:
    data = root / "data"
    for name, write in WRITERS.items():
        write(root / "raw" / name, scenes=scenes, seed=seed)
        convert(name, str(root / "raw" / name), str(data), workers=1)
    return data


def run(data: Path, root: Path, preset: str, mix: bool, steps: int, seed: int, active: int) -> dict:
    label = f"{preset}{'' if mix else ' (no mixing)'}"
    out = root / "runs" / label.replace(" ", "_").replace("(", "").replace(")", "")
    start = time.perf_counter()
    cfg = resolve_recipe(TrainConfig(data=str(data), datasets=TRAINED, out=str(out), preset=preset, steps=steps,
                                     batch_size=2, mix=mix, max_points=12000, workers=2, seed=seed,
                                     log_every=max(steps // 5, 1), ckpt_every=steps + 1, precise_bn=10,
                                     tensorboard=False))
    result = train(cfg, echo=lambda s: None)
    trained = time.perf_counter() - start
    report = evaluate(str(result.checkpoint), str(data), datasets=TRAINED + ZERO_SHOT)
    miou = {r.dataset: r.miou for r in report.results}
    return {
        "model": label, "active_params": active, "train_s": round(trained, 1), "eval_s": round(report.seconds, 1),
        "final_loss": round(result.final_loss, 4), "miou": {k: round(v * 100, 1) for k, v in miou.items()},
        "recipe": {"lr": cfg.optim.lr, "block_lr": cfg.optim.block_lr, "grad_clip": cfg.grad_clip, "mix3d": cfg.mix3d},
        "avg_trained": round(100 * sum(miou[d] for d in TRAINED) / len(TRAINED), 1),
        "avg_zero_shot": round(100 * sum(miou[d] for d in ZERO_SHOT) / len(ZERO_SHOT), 1),
    }


def summarise(paths: list[Path]) -> None:
    """Mean and spread (min..max) per model and column over runs with different seeds, as a markdown table."""
    runs = [json.loads(p.read_text()) for p in paths]
    models = [r["model"] for r in runs[0]["rows"]]
    columns = [*TRAINED, "avg_trained", *ZERO_SHOT, "avg_zero_shot"]
    print(f"{len(runs)} runs (seeds {', '.join(str(r['seed']) for r in runs)}), {runs[0]['steps']} steps, "
          f"{runs[0]['scenes']} scenes per dataset; mean (min..max) mIoU %")
    print("| model | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for model in models:
        rows = [next(row for row in run["rows"] if row["model"] == model) for run in runs]
        cells = []
        for column in columns:
            values = [row[column] if column.startswith("avg") else row["miou"][column] for row in rows]
            cells.append(f"{sum(values) / len(values):.1f} ({min(values):.1f}..{max(values):.1f})")
        print(f"| {model} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summarise", type=Path, nargs="+", default=None, help="JSONs of earlier runs: print "
                        "mean and spread per model instead of running")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of "
                        f"{', '.join(MODELS)} to train and evaluate ({MATCHED}: with and without mixing)")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    if not chosen or set(chosen) - set(MODELS):
        parser.error(f"--models takes names from {', '.join(MODELS)}, got {args.models!r}")
    if args.summarise:
        summarise(args.summarise)
        return
    torch.set_num_threads(args.threads)
    os.environ.setdefault("PMOE_CACHE_DIR", str(Path(tempfile.gettempdir()) / "pmoe-bench-cache"))
    root = args.workdir or Path(tempfile.mkdtemp(prefix="pmoe-joint-"))
    register_matched_preset()
    counts = check_matched()
    for preset, active in counts.items():
        print(f"{preset}: {active:,} active parameters per point")
    total = time.perf_counter()
    data = prepare(root, args.scenes, args.seed)
    print(f"data ready in {time.perf_counter() - total:.0f} s under {root}", flush=True)
    rows = []
    for preset, mix in [(p, m) for p, m in RUNS if p in chosen]:
        rows.append(run(data, root, preset, mix, args.steps, args.seed, counts[preset]))
        r = rows[-1]
        print(f"{r['model']}: train {r['train_s']:.0f} s, eval {r['eval_s']:.0f} s, loss {r['final_loss']}", flush=True)
    names = TRAINED + ZERO_SHOT
    print(f"\nmIoU (%) after {args.steps} steps, {args.scenes} scenes per dataset, seed {args.seed}; "
          f"zero-shot: {', '.join(ZERO_SHOT)}")
    print(f"{'model':<30}{'active':>10}" + "".join(f"{n[:8]:>9}" for n in names)
          + f"{'avg5':>7}{'avg0shot':>9}{'train s':>9}")
    for r in rows:
        print(f"{r['model']:<30}{r['active_params']:>10,}" + "".join(f"{r['miou'][n]:>9.1f}" for n in names)
              + f"{r['avg_trained']:>7.1f}{r['avg_zero_shot']:>9.1f}{r['train_s']:>9.0f}")
    print(f"total {time.perf_counter() - total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "scenes": args.scenes, "seed": args.seed, "rows": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
