"""`pmoe train`: joint Point-MoE training over scene stores (single process, or torchrun for DDP)."""

from __future__ import annotations

import dataclasses

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


# Flags whose value is not the TrainConfig field of the same name: (config key, parser of the flag's text).
def _flag_keys() -> dict[str, tuple[str, object]]:
    from pmoe_core.data.recipes import parse_clip, parse_rates

    return {
        "datasets": ("datasets", lambda text: tuple(d.strip() for d in text.split(",") if d.strip())),
        "lr": ("optim.lr", None), "block_lr": ("optim.block_lr", None), "weight_decay": ("optim.weight_decay", None),
        "weights": ("weights", _weights), "crop_rate": ("crop_rates", parse_rates),
        "point_clip": ("point_clip", parse_clip),
    }


CLI_ONLY = ("ctx", "config", "set_", "threads")  # not training settings


def _command_line(ctx: typer.Context) -> list[str]:
    """`pmoe train` and the options given on its command line, as parsed (also when called through main(argv))."""
    words = ["pmoe", "train"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP") or not param.opts:
            continue
        value = ctx.params.get(param.name)
        if getattr(param, "is_flag", False):
            words.append(param.opts[0] if value else (param.secondary_opts or param.opts)[0])
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                words += [param.opts[0], str(item)]
    return words


def _flag_layers(ctx: typer.Context) -> tuple[dict, dict]:
    """The options as two config layers: their defaults (None: not set) and the ones given on the command line."""
    from pmoe_core.engine.train import TrainConfig

    special = _flag_keys()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    defaults: dict = {}
    flags: dict = {}
    for name, value in ctx.params.items():
        if name in CLI_ONLY or (name not in special and name not in fields):
            continue
        source = ctx.get_parameter_source(name)  # by name: typer ships its own copy of click's enum
        given = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
        if value is None and not given:
            continue
        key, parse = special.get(name, (name, None))
        if parse is not None and value is not None:
            value = parse(value)
        layer = flags if given else defaults
        *parents, leaf = key.split(".")
        node = layer
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return defaults, flags


def train(
    ctx: typer.Context,
    config: str | None = typer.Option(None, "--config", metavar="FILE", help="Settings from a .toml or .yaml file "
                                      "(keys: TrainConfig's fields; optim.lr ...). Precedence: defaults < preset < "
                                      "config file < flags < --set. OUT/config.yaml of a run is one."),
    set_: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE", help="Set any setting, last word "
                                          "(repeatable): --set grad_clip=3 --set optim.pct_start=0.1."),
    datasets: str | None = typer.Option(None, "--datasets", help="Comma-separated datasets (aliases: kitti, nus, s3d, "
                                        "mp3d). Required (here or in --config)."),
    data: str | None = typer.Option(None, "--data", help="Folder (or fsspec URL) holding the <dataset>.zarr stores. "
                                    "Required (here or in --config)."),
    out: str = typer.Option("runs/pmoe", "--out", help="Run folder: ckpt.pt, log.jsonl, tb/."),
    preset: str = typer.Option("l", "--preset", help="Model preset (s, l, or a full name such as pmoe-tiny)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Optimizer steps (the OneCycle schedule spans "
                                     "them); wins over --epochs."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Run length in epochs when --steps is not given "
                                      "(default: the Point-MoE release's 120)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Scenes per batch and process."),
    accum: int = typer.Option(1, "--accum", min=1, help="Gradient accumulation: micro-batches per step."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate outside the transformer blocks "
                                    "(default: the preset's recipe: 0.002, PPT 0.005)."),
    block_lr: float | None = typer.Option(None, "--block-lr", help="Peak learning rate of block parameters "
                                          "(default: the preset's recipe: 0.0006, PPT 0.0005)."),
    weight_decay: float = typer.Option(0.05, "--weight-decay"),
    weights: str | None = typer.Option(None, "--weights", help="Per-dataset sampling weights naming every dataset, e.g. scannet=2,kitti=1 (default: by scene count)."),
    mix: bool = typer.Option(True, "--mix/--no-mix", help="Mixed-dataset batches (--no-mix: one dataset per batch)."),
    mix3d: float | None = typer.Option(None, "--mix3d", min=0.0, max=1.0, metavar="P",
                                       help="Mix3D: probability that a batch's pairs of scenes (same dataset) are "
                                            "overlaid into one (default: the preset's recipe: PPT 0.8, others 0)."),
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
    val_every: int = typer.Option(0, "--val-every", min=0, metavar="N", help="Validate on the val splits every N "
                                  "steps and at the end (per-dataset mIoU in log.jsonl; ckpt-best.pt by mean mIoU)."),
    val_limit: int | None = typer.Option(None, "--val-limit", min=1, metavar="K",
                                         help="At most K val scenes per dataset in each validation."),
    keep_last: int = typer.Option(0, "--keep-last", min=0, metavar="K",
                                  help="Also keep the last K checkpoints as ckpt-stepNNNNNN.pt."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    backend: str | None = typer.Option(None, "--backend", help="Sparse conv backend: spconv or torch."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's)."),
) -> None:
    import torch  # heavy imports stay inside the command, so `pmoe --help` and other commands start fast

    from pmoe_core.engine.config_file import parse_set, read_config_file
    from pmoe_core.engine.train import config_from_layers, train as run_train

    if threads:
        torch.set_num_threads(threads)
    defaults, flags = _flag_layers(ctx)
    layers = [("the defaults", defaults)]
    if config:
        layers.append((config, read_config_file(config)))
    layers += [("the command line", flags), ("--set", parse_set(set_ or []))]
    cfg = config_from_layers(layers)  # over the preset's recipe: PPT's own lr, clipping and Mix3D (docs/recipes.md)
    if cfg.upcycle is not None and not cfg.init:
        raise BadInput("--upcycle needs --init DENSE: the dense PTv3 checkpoint whose projections become the experts")
    bar = ProgressBar("training", unit="steps", every=cfg.log_every)
    try:
        result = run_train(cfg, progress=bar, echo=bar.say, command=_command_line(ctx))
    finally:
        bar.stop()
    state = "interrupted" if result.interrupted else ("stopped" if result.steps < result.total_steps else "done")
    loss = f"loss {result.final_loss:.4f}" if result.losses else "no step finished in this run"
    typer.echo(f"{state} at step {result.steps}: {loss}, "
               f"{result.points_per_s:,.0f} points/s; checkpoint {result.checkpoint}")
    if result.interrupted:
        raise typer.Exit(130)


train.__doc__ = HELP
