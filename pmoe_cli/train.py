"""`pmoe train`: joint Point-MoE training over scene stores (single process, or torchrun for DDP)."""

from __future__ import annotations

import typer

from pmoe_cli.progress import ProgressBar
from pmoe_core.errors import BadInput

HELP = """Train one model jointly on several datasets' scene stores (from `pmoe convert`).

Batches mix datasets; each sample's loss is taken over its own label space through the language-guided head,
and the backbone and router never see which dataset a point came from. The run folder gets ckpt.pt
(atomic, weights-only), log.jsonl and TensorBoard events (tb/). Ctrl-C saves a checkpoint; --resume continues
exactly where it stopped.

\b
Presets: s / l = pmoe-s / pmoe-l (Point-MoE-S/L); also ptv3-base, ptv3-l, ppt-l, and the CPU-sized
pmoe-tiny, ptv3-tiny, ppt-tiny (`pmoe models` lists them).
\b
Several GPUs / nodes:
    torchrun --nproc_per_node 8 -m pmoe_cli train --preset l --datasets scannet,s3dis,s3d,nus,kitti --data DATA
"""


def _weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or weights.get(name.strip(), -1) < 0:
            raise BadInput(f"--weights takes NAME=WEIGHT,... with non-negative weights, got {item!r}")
    return weights


def train(
    datasets: str = typer.Option(..., "--datasets", help="Comma-separated datasets (aliases: kitti, nus, s3d, mp3d)."),
    data: str = typer.Option(..., "--data", help="Folder (or fsspec URL) holding the <dataset>.zarr stores."),
    out: str = typer.Option("runs/pmoe", "--out", help="Run folder: ckpt.pt, log.jsonl, tb/."),
    preset: str = typer.Option("l", "--preset", help="Model preset (s, l, or a full name such as pmoe-tiny)."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Optimizer steps (the OneCycle schedule spans them)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Scenes per batch and process."),
    accum: int = typer.Option(1, "--accum", min=1, help="Gradient accumulation: micro-batches per step."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate outside the transformer blocks "
                                    "(default: the preset's recipe: 0.002, PPT 0.005)."),
    block_lr: float | None = typer.Option(None, "--block-lr", help="Peak learning rate of block parameters "
                                          "(default: the preset's recipe: 0.0006, PPT 0.0005)."),
    weight_decay: float = typer.Option(0.05, "--weight-decay"),
    weights: str | None = typer.Option(None, "--weights", help="Per-dataset sampling weights naming every dataset, e.g. scannet=2,kitti=1 (default: by scene count)."),
    mix: bool = typer.Option(True, "--mix/--no-mix", help="Mixed-dataset batches (--no-mix: one dataset per batch)."),
    samples_per_epoch: int | None = typer.Option(None, "--samples-per-epoch", min=1,
                                                 help="Draws per epoch over all processes "
                                                      "(default: all scenes, at least one batch per process)."),
    amp: str = typer.Option("auto", "--amp", help="auto (bf16 on GPU, off on CPU), bf16, fp16 or off."),
    aux_alpha: float | None = typer.Option(None, "--aux-alpha", min=0.0, help="MoE balance-loss weight (paper: 0)."),
    drop_path: float | None = typer.Option(None, "--drop-path", min=0.0, max=1.0, help="Override the preset's."),
    max_points: int | None = typer.Option(204800, "--max-points", min=1, help="Indoor sphere-crop size (the "
                                          "Point-MoE release's 204800; docs/recipes.md)."),
    crop_rate: str = typer.Option("s3dis=0.6,structured3d=0.8", "--crop-rate", metavar="DATASET=RATE,...|none",
                                  help="Indoor datasets first sphere-cropped to this fraction of their points."),
    point_clip: str = typer.Option("-35.2,-35.2,-4,35.2,35.2,2", "--point-clip", metavar="X0,Y0,Z0,X1,Y1,Z1|none",
                                   help="Outdoor training coordinates clamped into this box (metres)."),
    workers: int = typer.Option(2, "--workers", min=0, help="Data loader processes."),
    seed: int = typer.Option(0, "--seed"),
    log_every: int = typer.Option(10, "--log-every", min=1),
    ckpt_every: int = typer.Option(100, "--ckpt-every", min=1),
    precise_bn: int = typer.Option(0, "--precise-bn", min=0,
                                   help="At the end, re-estimate BatchNorm statistics over N batches (short runs)."),
    stop_at: int | None = typer.Option(None, "--stop-at", min=1,
                                       help="Save and stop at this step (for wall-time limited jobs; --resume later)."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT/ckpt.pt exactly where it stopped."),
    init: str | None = typer.Option(None, "--init", metavar="CKPT", help="Start from this pmoe checkpoint (trained "
                                    "or `pmoe import`ed): its architecture and weights; new optimizer and schedule."),
    upcycle: int | None = typer.Option(None, "--upcycle", min=2, metavar="E",
                                       help="With --init of a dense PTv3: train its sparse-upcycled Point-MoE, each "
                                            "attention projection copied into E experts under a fresh router."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    backend: str | None = typer.Option(None, "--backend", help="Sparse conv backend: spconv or torch."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's)."),
) -> None:
    import torch  # heavy imports stay inside the command, so `pmoe --help` and other commands start fast

    from pmoe_core.data.recipes import parse_clip, parse_rates
    from pmoe_core.engine.optim import OptimConfig
    from pmoe_core.engine.train import TrainConfig, resolve_preset, train as run_train
    from pmoe_core.models.presets import recipe_defaults

    if upcycle is not None and not init:
        raise BadInput("--upcycle needs --init DENSE: the dense PTv3 checkpoint whose projections become the experts")
    if threads:
        torch.set_num_threads(threads)
    recipe = recipe_defaults(resolve_preset(preset))  # PPT keeps its own lr and clipping (docs/recipes.md)
    lr = recipe.lr if lr is None else lr
    block_lr = recipe.block_lr if block_lr is None else block_lr
    cfg = TrainConfig(
        data=data, datasets=tuple(d for d in datasets.split(",") if d.strip()), out=out, preset=preset, steps=steps,
        batch_size=batch_size, accum=accum, samples_per_epoch=samples_per_epoch, weights=_weights(weights), mix=mix,
        optim=OptimConfig(lr=lr, block_lr=block_lr, weight_decay=weight_decay), grad_clip=recipe.grad_clip, amp=amp,
        aux_alpha=aux_alpha,
        drop_path=drop_path, max_points=max_points, crop_rates=parse_rates(crop_rate),
        point_clip=parse_clip(point_clip), workers=workers, seed=seed, log_every=log_every,
        ckpt_every=ckpt_every, precise_bn=precise_bn, stop_at=stop_at, resume=resume, device=device, backend=backend,
        init=init, upcycle=upcycle,
    )
    bar = ProgressBar("training", unit="steps", every=log_every)
    try:
        result = run_train(cfg, progress=bar, echo=bar.say)
    finally:
        bar.stop()
    state = "interrupted" if result.interrupted else ("stopped" if result.steps < steps else "done")
    loss = f"loss {result.final_loss:.4f}" if result.losses else "no step finished in this run"
    typer.echo(f"{state} at step {result.steps}: {loss}, "
               f"{result.points_per_s:,.0f} points/s; checkpoint {result.checkpoint}")
    if result.interrupted:
        raise typer.Exit(130)


train.__doc__ = HELP
