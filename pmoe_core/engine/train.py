"""Joint training over several scene stores: mixed-dataset batches, language-guided loss, exact resume, DDP.

The loop is written out plainly: build data, model, optimizer; optionally resume; then steps of
(accumulate micro-batches -> clip -> step) with periodic logs and atomic checkpoints. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from pmoe_core.data.collate import Collate, SegTargets
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.loader import Loader, make_loader
from pmoe_core.data.recipes import (RELEASE_MAX_POINTS, RELEASE_POINT_CLIP, RELEASE_SAMPLE_RATES, Box,
                                    RecipeConfig, domain_of)
from pmoe_core.data.sampler import MixedBatchSampler
from pmoe_core.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pmoe_core.engine.config_file import CONFIG_NAME, build_config, config_data, write_config
from pmoe_core.engine.distributed import DistInfo, init_distributed, params_in_sync, shutdown
from pmoe_core.engine.init_from import apply_init, load_init
from pmoe_core.engine.loss import label_space_loss
from pmoe_core.engine.model_io import check_weights_fit, checked_weights, config_from_data, config_to_data
from pmoe_core.engine.optim import OptimConfig, make_optimizer
from pmoe_core.engine.options import Rule, check_device, check_numbers, unique_datasets
from pmoe_core.engine.runlog import RunLog
from pmoe_core.engine.validation import ValResult, check_val_splits, improves, validate
from pmoe_core.errors import BadInput, FormatError, StoreError
from pmoe_core.models.batch import PointBatch
from pmoe_core.models.moe import MoE, moe_aux_loss
from pmoe_core.models.ppt import PPTConfig
from pmoe_core.models.presets import backbone_config, build_model, get_config, recipe_defaults
from pmoe_core.models.sparse_conv import resolve_backend
from pmoe_core.outputs import atomic_path, check_output_dir
from pmoe_core.progress import Progress, silent
from pmoe_core.store import StoreReader, find_stores
from pmoe_core.store.custom_spaces import register_custom_stores
from pmoe_core.vocab import dataset_entries
from pmoe_core.vocab.custom import registered as registered_custom
from pmoe_core.vocab.label_spaces import LABEL_SPACES

CHECKPOINT_NAME = "ckpt.pt"
BEST_NAME = "ckpt-best.pt"
# The Point-MoE release's run length (configs/point_moe/indoor+outdoor.py: epoch = 120, batch_size = 16 over all
# GPUs); indoor.py trains 240. An epoch is one pass of draws (--samples-per-epoch) over all processes.
RELEASE_EPOCHS = 120
PRESET_ALIASES = {"s": "pmoe-s", "l": "pmoe-l", "tiny": "pmoe-tiny"}


def resolve_preset(name: str) -> str:
    return PRESET_ALIASES.get(name, name)


@dataclass
class TrainConfig:
    """Everything a run needs; saved in the checkpoint so `--resume` can refuse a mismatched continuation."""

    data: str
    datasets: tuple[str, ...]
    out: str = "runs/pmoe"
    preset: str = "pmoe-tiny"
    steps: int | None = None  # optimizer steps; None: `epochs` passes (run_length); given, steps wins
    epochs: int | None = None  # None with steps None: RELEASE_EPOCHS
    batch_size: int = 4  # per process (the release's 16 in all = 4 processes x 4)
    accum: int = 1
    samples_per_epoch: int | None = None
    weights: dict[str, float] | None = None
    mix: bool = True
    # These three, None: the preset's recipe (preset_recipe: PPT's own for ppt-*, the Point-MoE release's else).
    optim: OptimConfig | None = None  # None: OptimConfig with the recipe's lr and block lr
    grad_clip: float | None = None
    mix3d: float | None = None  # probability that a batch's pairs of scenes are overlaid into one (Mix3D)
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU) | bf16 | fp16 | off
    aux_alpha: float | None = None  # override the preset's MoE balance-loss weight
    drop_path: float | None = None  # override the preset's drop path
    max_points: int | None = RELEASE_MAX_POINTS  # these three: data/recipes.py RecipeConfig (the release's recipe)
    crop_rates: tuple[tuple[str, float], ...] = RELEASE_SAMPLE_RATES
    point_clip: Box | None = RELEASE_POINT_CLIP
    grid_indoor: float = 0.02
    grid_outdoor: float = 0.05
    workers: int = 2
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 100
    precise_bn: int = 0  # re-estimate BatchNorm running stats over this many batches at the end (short runs)
    stop_at: int | None = None  # save and stop at this step (wall-time limited jobs); --resume continues
    resume: bool = False
    init: str | None = None  # start from this checkpoint's architecture and weights (init_from.py)
    upcycle: int | None = None  # with init (a dense PTv3): train its upcycled Point-MoE with this many experts
    backend: str | None = None
    device: str = "auto"
    tensorboard: bool = True
    val_every: int = 0  # validate on the val splits every N steps and at the end (0: never); validation.py
    val_limit: int | None = None  # at most this many val scenes per dataset (None: the whole split)
    keep_last: int = 0  # besides ckpt.pt, keep the last K periodic checkpoints as ckpt-stepNNNNNN.pt


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    final_loss: float
    losses: list[float]
    seconds: float
    points_per_s: float
    in_sync: bool
    interrupted: bool = False
    total_steps: int = 0  # the run's length (--steps, or --epochs converted)
    best: dict[str, Any] | None = None  # best validation so far: step, mean_miou, miou per dataset
    validations: list[ValResult] = field(default_factory=list)  # this process's validations (rank 0)


def pick_device(name: str, info: DistInfo) -> torch.device:
    """"auto": this process's GPU when there is CUDA, else the CPU; any other name must exist on this machine."""
    if name == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return check_device(name)


AMP_MODES = ("auto", "bf16", "fp16", "off")


def preset_recipe(preset: str) -> dict[str, Any]:
    """The training settings a preset brings (models/presets.py recipe_defaults: Pointcept's PPT recipe for ppt-*,
    the Point-MoE release's for the others), as a config layer. The one place they enter a run: below every file,
    flag and --set (config_from_layers), and wherever a TrainConfig built in code leaves them None (resolve_recipe).
    """
    recipe = recipe_defaults(resolve_preset(preset))
    return {"optim": {"lr": recipe.lr, "block_lr": recipe.block_lr}, "grad_clip": recipe.grad_clip,
            "mix3d": recipe.mix3d}


def resolve_recipe(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with the settings it leaves None taken from its preset's recipe: what train() runs and records."""
    recipe = preset_recipe(cfg.preset)
    return dataclasses.replace(
        cfg,
        optim=cfg.optim if cfg.optim is not None else OptimConfig(**recipe["optim"]),
        grad_clip=cfg.grad_clip if cfg.grad_clip is not None else recipe["grad_clip"],
        mix3d=cfg.mix3d if cfg.mix3d is not None else recipe["mix3d"],
    )


def config_from_layers(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> TrainConfig:
    """A TrainConfig from settings layers (source name, mapping), lowest precedence first, over the preset's
    recipe (config_file.build_config): what `pmoe train` builds from its defaults, --config, flags and --set."""
    return build_config(TrainConfig, layers, preset_recipe)


def check_train_options(cfg: TrainConfig) -> tuple[str, ...]:
    """Every option that can be wrong without reading data, checked before anything is opened or written; returns
    the canonical dataset names."""
    cfg = resolve_recipe(cfg)
    register_custom_stores(cfg.data, cfg.datasets)  # a custom dataset is known from its store's attributes
    datasets = unique_datasets(cfg.datasets)
    if not datasets:
        raise BadInput("--datasets needs at least one dataset")
    check_numbers([
        ("--lr", cfg.optim.lr, Rule.POSITIVE), ("--block-lr", cfg.optim.block_lr, Rule.POSITIVE),
        ("--weight-decay", cfg.optim.weight_decay, Rule.NON_NEGATIVE),
        ("pct_start", cfg.optim.pct_start, Rule.FRACTION), ("div_factor", cfg.optim.div_factor, Rule.POSITIVE),
        ("final_div_factor", cfg.optim.final_div_factor, Rule.POSITIVE),
        ("--aux-alpha", cfg.aux_alpha, Rule.NON_NEGATIVE), ("--drop-path", cfg.drop_path, Rule.FRACTION),
        ("grad_clip", cfg.grad_clip, Rule.POSITIVE), ("mix3d", cfg.mix3d, Rule.FRACTION),
        ("grid_indoor", cfg.grid_indoor, Rule.POSITIVE),
        ("grid_outdoor", cfg.grid_outdoor, Rule.POSITIVE),
        *((f"--weights {name}", w, Rule.NON_NEGATIVE) for name, w in (cfg.weights or {}).items()),
    ])
    if cfg.steps is not None and cfg.epochs is not None:
        raise BadInput("--steps and --epochs both given; the run length is one of them (--steps wins over a config "
                       "file's epochs, see docs/commands/train.md)")
    for name, value in (("--steps", cfg.steps), ("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size),
                        ("--accum", cfg.accum), ("--val-limit", cfg.val_limit),
                        ("--log-every", cfg.log_every), ("--ckpt-every", cfg.ckpt_every),
                        ("--samples-per-epoch", cfg.samples_per_epoch), ("--max-points", cfg.max_points),
                        ("--stop-at", cfg.stop_at)):
        if value is not None and value < 1:
            raise BadInput(f"{name} must be positive, got {value}")
    if cfg.workers < 0 or cfg.precise_bn < 0 or cfg.val_every < 0 or cfg.keep_last < 0:
        raise BadInput("--workers, --precise-bn, --val-every and --keep-last must not be negative")
    if cfg.amp not in AMP_MODES:
        raise BadInput(f"--amp must be auto, bf16, fp16 or off, got {cfg.amp!r}")
    if cfg.backend is not None:
        try:
            resolve_backend(cfg.backend)
        except (ValueError, ImportError) as err:
            raise BadInput(f"--backend: {err}") from None
    if cfg.weights:
        unique_datasets(list(cfg.weights), "--weights")
    get_config(resolve_preset(cfg.preset))
    RecipeConfig(max_points=cfg.max_points, sample_rates=tuple(cfg.crop_rates), point_clip=cfg.point_clip)  # refuses
    check_output_dir(cfg.out, reads=[cfg.data])
    return datasets


def run_length(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of the run: --steps when given, else --epochs (default RELEASE_EPOCHS) passes of
    `batches_per_epoch` micro-batches per process (the sampler's length: draws per epoch over batch size times
    processes), so more processes mean fewer steps for the same epochs."""
    if cfg.steps is not None:
        return cfg.steps
    epochs = cfg.epochs if cfg.epochs is not None else RELEASE_EPOCHS
    return epochs * max(1, math.ceil(batches_per_epoch / cfg.accum))


def autocast_for(amp: str, device: torch.device):
    """bf16 autocast on GPU by default; CPU runs in fp32 unless asked (CPU bf16 is slower than fp32 here)."""
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "off"
    if amp == "off":
        return contextlib.nullcontext, None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        raise BadInput(f"--amp must be auto, bf16, fp16 or off, got {amp!r}")
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def training_stores(data: str, datasets: tuple[str, ...]) -> list[str]:
    stores = []
    for name in datasets:
        found = find_stores(data, name)
        if not found:
            raise StoreError(f"no scene store for {name} (expected {name}.zarr or {name}.shard-K-of-N.zarr; "
                             f"run `pmoe convert {name} RAW {data}`)", data)
        stores += found
    return stores


def class_table(stores: list[str], label_spaces: dict[str, int]) -> tuple[torch.Tensor, str]:
    """Class-name embeddings of every training label space, concatenated in the collator's order."""
    tables: dict[str, np.ndarray] = {}
    encoders = set()
    for url in stores:
        reader = StoreReader(url)
        tables.setdefault(reader.dataset, reader.class_embeddings)
        encoders.add(reader.encoder)
    if len(encoders) != 1:
        raise StoreError(f"training stores were embedded with different text encoders {sorted(encoders)}; "
                         "convert them with one --text-encoder", ", ".join(stores))
    table = np.concatenate([tables[d] for d in label_spaces]).astype(np.float32)
    return torch.from_numpy(table), encoders.pop()


def build_segmentation_model(preset: str, datasets: tuple[str, ...], text_dim: int, cfg: TrainConfig | None = None,
                             config: Any = None) -> tuple[nn.Module, Any]:
    """The model of a preset (or an explicit config), with run-level overrides applied."""
    model_cfg = config if config is not None else get_config(resolve_preset(preset))
    backbone_cfg = getattr(model_cfg, "backbone", model_cfg)
    if cfg is not None:
        changes: dict[str, Any] = {}
        if cfg.drop_path is not None:
            changes["drop_path"] = cfg.drop_path
        if cfg.aux_alpha is not None and getattr(backbone_cfg, "moe", None) is not None:
            changes["moe"] = dataclasses.replace(backbone_cfg.moe, aux_loss_alpha=cfg.aux_alpha)
        if changes:
            backbone_cfg = dataclasses.replace(backbone_cfg, **changes)
            model_cfg = (dataclasses.replace(model_cfg, backbone=backbone_cfg) if hasattr(model_cfg, "backbone")
                         else backbone_cfg)
    if isinstance(model_cfg, PPTConfig) and config is None:
        model_cfg = dataclasses.replace(model_cfg, datasets=datasets, unseen=ppt_unseen_norms(datasets))
    model = build_model(model_cfg, dataset_names=datasets, text_dim=text_dim,
                        backend=cfg.backend if cfg is not None else None)
    return model, model_cfg


def ppt_unseen_norms(trained: tuple[str, ...]) -> dict[str, str]:
    """PPT picks norms by dataset name; a zero-shot dataset borrows those of the first trained one of its domain
    (indoor or outdoor), else of the first trained dataset. Recorded in the config, so eval uses the same rule."""
    unseen = {}
    for name in LABEL_SPACES:
        if name in trained:
            continue
        same_domain = [d for d in trained if domain_of(d) == domain_of(name)]
        unseen[name] = (same_domain or list(trained))[0]
    return unseen


def routing_stats(model: nn.Module) -> dict[str, Any]:
    """Per-expert token fractions and mean router entropy of every MoE layer's last recorded forward."""
    stats: dict[str, Any] = {}
    for m in model.modules():
        if isinstance(m, MoE) and m.last_routing is not None:
            r = m.last_routing
            frac = torch.bincount(r.expert_ids.reshape(-1), minlength=m.cfg.num_experts).float()
            frac = (frac / frac.sum()).tolist()
            entropy = float(-(r.probs * r.probs.clamp_min(1e-12).log()).sum(-1).mean())
            stats[m.layer_name or f"moe{len(stats)}"] = {"fractions": [round(f, 4) for f in frac],
                                                         "entropy": round(entropy, 4)}
    return stats


def _set_recording(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, MoE):
            m.record = on
            if not on:
                m.last_routing = None


def recalibrate_batchnorm(model: nn.Module, batches: Iterator[tuple[PointBatch, SegTargets]], count: int,
                          forward: Callable[[PointBatch, SegTargets], Any], device: torch.device) -> int:
    """Precise BN: replace running statistics by their exact average over `count` training batches.

    The reference's momentum of 0.01 needs thousands of steps to settle; a short run evaluated with its running
    statistics scores far below what its weights can do. Weights are not touched. Returns batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or count < 1:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches seen
    with torch.no_grad():
        for _ in range(count):
            batch, targets = next(batches)
            forward(batch.to(device), targets)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return count


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def keep_step_copies(ckpt: Path, step: int, keep: int) -> None:
    """Keep `ckpt` as ckpt-stepNNNNNN.pt beside it (a hard link: no copy, and the next atomic save of ckpt.pt
    replaces the name, not the linked file) and delete all but the newest `keep` such copies."""
    copy = ckpt.with_name(f"ckpt-step{step:06d}.pt")
    copy.unlink(missing_ok=True)
    try:
        os.link(ckpt, copy)
    except OSError:  # a file system without hard links
        with atomic_path(copy) as tmp:
            shutil.copyfile(ckpt, tmp)
    copies = sorted((p for p in ckpt.parent.glob("ckpt-step*.pt") if p.stem[9:].isdigit()),
                    key=lambda p: int(p.stem[9:]))
    for old in copies[:-keep]:
        old.unlink(missing_ok=True)


def _batches(loader: Loader) -> Iterator[tuple[PointBatch, SegTargets]]:
    """An endless stream across epochs (the sampler advances its epoch at the end of each pass)."""
    while True:
        yield from loader


def _meta(cfg: TrainConfig, model_cfg: Any, datasets: tuple[str, ...], class_names: dict[str, tuple[str, ...]],
          encoder: str, step: int, epoch: int, complete: bool, total_steps: int,
          best: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "segmentation",
        "preset": resolve_preset(cfg.preset),
        "config": config_to_data(model_cfg),
        "step": step,
        "epoch": epoch,
        "datasets": list(datasets),
        "label_spaces": {d: list(class_names[d]) for d in datasets},
        "vocabulary": {d: [e.name for e in dataset_entries(d)] for d in datasets},
        **_custom_spaces(datasets),
        "text_encoder": encoder,
        "train_args": config_data(cfg),
        "total_steps": total_steps,
        "complete": complete,
        **({"best": best} if best is not None else {}),
    }


def _custom_spaces(datasets: tuple[str, ...]) -> dict[str, Any]:
    """Custom datasets' label spaces travel in the checkpoint too (predict and route-inspect run without stores)."""
    spaces = {d: custom.description() for d in datasets if (custom := registered_custom(d)) is not None}
    return {"custom_label_spaces": spaces} if spaces else {}


def _check_resume(meta: dict[str, Any], cfg: TrainConfig, datasets: tuple[str, ...], path: Path,
                  total_steps: int) -> None:
    if meta.get("kind") != "segmentation":
        raise BadInput(f"cannot resume: checkpoint holds a {meta.get('kind')} model", path)
    preset = meta.get("preset") if meta.get("init_from") else resolve_preset(cfg.preset)  # --init: the stored one
    if meta.get("preset") != preset or tuple(meta.get("datasets", ())) != datasets:
        raise BadInput(f"cannot resume: checkpoint was trained with --preset {meta.get('preset')} "
                       f"--datasets {','.join(meta.get('datasets', []))}", path)
    stored = meta.get("total_steps", meta.get("train_args", {}).get("steps"))
    if stored != total_steps:
        raise BadInput(f"cannot resume: checkpoint schedule has {stored} steps, not {total_steps} (the OneCycle "
                       "schedule depends on it: give the same --steps or --epochs)", path)


def _same_layout(fresh: Any, stored: Any) -> bool:
    """Whether `stored` has the structure of the `fresh` state this process would save: the same types, lengths and
    tensor shapes on every key both hold (keys only one side has, such as a CUDA RNG, are left to the loader)."""
    if isinstance(fresh, dict):
        return isinstance(stored, dict) and all(_same_layout(v, stored[k]) for k, v in fresh.items() if k in stored)
    if isinstance(fresh, (list, tuple)):
        return (type(stored) is type(fresh) and len(stored) == len(fresh)
                and all(_same_layout(a, b) for a, b in zip(fresh, stored)))
    if isinstance(fresh, torch.Tensor):
        return isinstance(stored, torch.Tensor) and stored.dtype == fresh.dtype and stored.shape == fresh.shape
    if isinstance(fresh, float):
        return type(stored) in (float, int) and math.isfinite(stored)
    return fresh is None or type(stored) is type(fresh)


def _resume_states(payload: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: Any, loader: Loader, path: Path) -> None:
    """Load everything a resumed run continues from; a state that does not fit this run is a FormatError naming the
    checkpoint (a damaged or hand-edited file must not crash, or worse train on, with garbage)."""
    fresh = {"scheduler": scheduler.state_dict(), "loader": loader.state_dict(), "rng": rng_state(),
             "optimizer": {"param_groups": optimizer.state_dict()["param_groups"]}}
    for key, state in fresh.items():
        if key not in payload or not _same_layout(state, payload[key]):
            raise FormatError(f"cannot resume: the {key} state does not fit this run", path)
    if min(payload["loader"].get("epoch", 0), payload["loader"].get("position", 0)) < 0:
        raise FormatError("cannot resume: the loader state is negative", path)
    model.load_state_dict(payload["model"])
    try:
        optimizer.load_state_dict(payload["optimizer"])
        for group in optimizer.param_groups:
            for param in group["params"]:
                for value in optimizer.state.get(param, {}).values():
                    if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                        raise ValueError(f"a moment of shape {tuple(value.shape)} for a parameter of "
                                         f"{tuple(param.shape)}")
        scheduler.load_state_dict(payload["scheduler"])
        loader.load_state_dict(payload["loader"])
        set_rng_state(payload["rng"])
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, AttributeError, OverflowError) as err:
        raise FormatError(f"cannot resume: state does not fit this run ({type(err).__name__}: "
                          f"{(str(err).splitlines() or [''])[0]})", path) from None


def train(cfg: TrainConfig, progress: Progress = silent, echo: Callable[[str], None] = print,
          command: list[str] | None = None) -> TrainResult:
    """Run (or resume) training; `command` is the command line recorded in log.jsonl's config record."""
    info = init_distributed()
    try:
        return _train(cfg, info, progress, echo, command)
    finally:
        shutdown(info)


def _train(cfg: TrainConfig, info: DistInfo, progress: Progress, echo: Callable[[str], None],
           command: list[str] | None) -> TrainResult:
    cfg = resolve_recipe(cfg)
    datasets = check_train_options(cfg)
    device = pick_device(cfg.device, info)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if cfg.resume and not ckpt_path.is_file():
        raise BadInput(f"--resume given but there is no {CHECKPOINT_NAME} to resume from", run_dir)
    if not cfg.resume and info.is_main and (ckpt_path.exists() or ckpt_path.is_symlink()):
        raise BadInput(f"{CHECKPOINT_NAME} already exists; pass --resume to continue it or choose another --out",
                       run_dir)
    torch.manual_seed(cfg.seed + info.rank)
    np.random.seed(cfg.seed + info.rank)

    stores = training_stores(cfg.data, datasets)
    if cfg.val_every:
        check_val_splits(stores)
    recipe = RecipeConfig(indoor_grid=cfg.grid_indoor, outdoor_grid=cfg.grid_outdoor, max_points=cfg.max_points,
                          sample_rates=tuple(cfg.crop_rates), point_clip=cfg.point_clip)
    dataset = SceneDataset(stores, split="train", mode="train", config=recipe, seed=cfg.seed)
    missing = [d for d in datasets if d not in dataset.datasets]
    if missing:
        raise StoreError(f"no train scenes for {', '.join(missing)}", cfg.data)
    weights = dict(zip(unique_datasets(list(cfg.weights), "--weights"), cfg.weights.values())) if cfg.weights else None
    mix = cfg.mix
    if mix and isinstance(get_config(resolve_preset(cfg.preset)), PPTConfig):
        mix = False  # PDNorm selects one norm per batch, so the PPT baseline trains on single-dataset batches
        if info.is_main:
            echo("note: the PPT baseline needs one dataset per batch; training with --no-mix")
    sampler = MixedBatchSampler(dataset.groups, cfg.batch_size, samples_per_epoch=cfg.samples_per_epoch,
                                weights=weights, mix=mix, seed=cfg.seed, rank=info.rank,
                                world_size=info.world_size)
    total = run_length(cfg, len(sampler))
    classes, encoder = class_table(stores, dataset.label_spaces)
    classes = classes.to(device)

    resume_payload = None
    if cfg.resume:
        resume_payload = load_checkpoint(ckpt_path)
        _check_resume(resume_payload["meta"], cfg, datasets, ckpt_path, total)

    config, init = None, None
    if resume_payload is not None:
        config = config_from_data(resume_payload["meta"].get("config"), str(ckpt_path))
        check_weights_fit(config, checked_weights(resume_payload, "model", ckpt_path), ckpt_path, datasets,
                          int(classes.shape[1]))
    elif cfg.init:
        init = load_init(cfg.init, int(classes.shape[1]), cfg.upcycle)
        config = init.config
    layout = backbone_config(config if config is not None else get_config(resolve_preset(cfg.preset))).in_features
    loader = make_loader(dataset, sampler, num_workers=cfg.workers, seed=cfg.seed,
                         collate=Collate(dataset.label_spaces, in_features=layout), mix3d=cfg.mix3d)
    model, model_cfg = build_segmentation_model(cfg.preset, datasets, classes.shape[1], cfg, config=config)
    if init is not None:
        apply_init(model, init, cfg.init)
    model.to(device)
    optimizer, scheduler = make_optimizer(model, cfg.optim, total)
    step = 0
    if resume_payload is not None:
        _resume_states(resume_payload, model, optimizer, scheduler, loader, ckpt_path)
        step = int(resume_payload["meta"]["step"])

    ddp_model: nn.Module = model
    if info.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None, find_unused_parameters=True)
    needs_dataset = bool(getattr(model, "needs_dataset", False))
    autocast, scaler = autocast_for(cfg.amp, device)
    log = RunLog(run_dir, tensorboard=cfg.tensorboard) if info.is_main else None

    best: dict[str, Any] | None = (resume_payload or {}).get("meta", {}).get("best")  # survives --resume
    validations: list[ValResult] = []

    def meta_now(complete: bool) -> dict[str, Any]:
        meta = _meta(cfg, model_cfg, datasets, dataset.class_names, encoder, step, loader.state_dict()["epoch"],
                     complete, total, best)
        origin = init.origin if init is not None else (resume_payload or {}).get("meta", {}).get("init_from")
        if origin is not None:  # a --init run: its architecture is the init checkpoint's, not --preset's
            meta.update(preset=f"init:{origin.get('preset')}", init_from=origin)
        return meta

    def save(complete: bool, path: Path = ckpt_path) -> None:
        if not info.is_main:
            return
        tensors = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "rng": rng_state(), "loader": loader.state_dict(),
                   "class_embeddings": classes.cpu()}
        save_checkpoint(path, meta_now(complete), tensors)
        if path == ckpt_path and cfg.keep_last:
            keep_step_copies(ckpt_path, step, cfg.keep_last)

    def run_validation() -> None:
        nonlocal best
        if not info.is_main:
            return  # the other ranks wait for rank 0 at the next step's gradient all-reduce
        _set_recording(model, False)
        result = validate(model, meta_now(False), cfg.data, datasets, step, cfg.val_limit, device)
        validations.append(result)
        better = improves(result, best)
        if better:
            best = {"step": step, "mean_miou": result.mean_miou, "miou": result.miou}
        if log is not None:
            log.log(step, event="val", mean_miou=_finite(result.mean_miou),
                    miou={k: _finite(v) for k, v in result.miou.items()}, scenes=result.scenes,
                    seconds=result.seconds, best_step=best["step"] if best else None)
        if better:
            save(complete=step >= total, path=run_dir / BEST_NAME)
        shown = ", ".join(f"{k} {100 * v:.1f}" for k, v in result.miou.items())
        echo(f"val at step {step}: mean mIoU {100 * result.mean_miou:.1f} ({shown})"
             + (f"; new best, {BEST_NAME} written" if better else f"; best {100 * best['mean_miou']:.1f} at step "
                f"{best['step']}" if best else ""))

    if log is not None:
        if not cfg.resume:
            write_config(cfg, run_dir / CONFIG_NAME)
        log.log_config(step, config_data(cfg), total_steps=total, command=command)
    if info.is_main:
        params = sum(p.numel() for p in model.parameters())
        what = f"{init.preset or 'a checkpoint'} from {cfg.init} (head {init.origin['head']})" if init else None
        echo(f"training {what or resolve_preset(cfg.preset)} ({params / 1e6:.2f}M parameters) on "
             f"{', '.join(datasets)}: "
             f"{len(dataset)} train scenes, {info.world_size} process(es) on {device}, steps {step}->{total}"
             + ("" if cfg.steps is not None else f" ({cfg.epochs or RELEASE_EPOCHS} epochs of "
                f"{math.ceil(len(sampler) / cfg.accum)} steps)")
             + (f", Mix3D {cfg.mix3d:g}" if cfg.mix3d else ""))
    progress(total=total, advance=step, message="training")
    model.train()
    stream = _batches(loader)
    losses: list[float] = []
    points_done, start = 0, time.perf_counter()
    interrupted = False
    try:
        last = min(total, cfg.stop_at) if cfg.stop_at else total
        while step < last:
            record = info.is_main and (step + 1) % cfg.log_every == 0
            _set_recording(model, record)
            step_loss = 0.0
            for micro in range(cfg.accum):
                batch, targets = next(stream)
                batch = batch.to(device)
                sync = contextlib.nullcontext() if (not info.enabled or micro == cfg.accum - 1) else ddp_model.no_sync()
                with sync:
                    with autocast():
                        logits = ddp_model(batch, classes, targets.datasets) if needs_dataset else ddp_model(batch, classes)
                        loss = label_space_loss(logits, targets, batch.batch_index())
                        aux = moe_aux_loss(model)
                        if aux is not None:
                            loss = loss + aux
                    loss = loss / cfg.accum
                    (scaler.scale(loss) if scaler else loss).backward()
                step_loss += float(loss.detach())
                points_done += int(batch.coord.shape[0])
            lrs = [g["lr"] for g in optimizer.param_groups]  # the rates this step uses (scheduler.step moves them on)
            if scaler:
                scaler.unscale_(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            if not math.isfinite(step_loss):
                raise BadInput(f"training diverged: the loss became {step_loss} at step {step} (try a lower --lr "
                               f"and --block-lr); {CHECKPOINT_NAME} holds the last saved step", run_dir)
            losses.append(step_loss)
            progress(advance=1, message=f"loss {step_loss:.4f}")
            if log is not None and (record or step == total):
                elapsed = time.perf_counter() - start
                log.log(step, loss=step_loss, lr=lrs, grad_norm=grad_norm,
                        points_per_s=points_done / max(elapsed, 1e-9), epoch=loader.state_dict()["epoch"],
                        experts=routing_stats(model))
            if cfg.val_every and step % cfg.val_every == 0 and step < total:
                run_validation()
            if step % cfg.ckpt_every == 0 and step < last:
                save(complete=False)
    except KeyboardInterrupt:
        interrupted = True
        save(complete=False)
        if info.is_main:
            echo(f"interrupted at step {step}: checkpoint saved, continue with --resume")
    _set_recording(model, False)
    if not interrupted and cfg.precise_bn and step >= total:
        used = recalibrate_batchnorm(
            model, stream, cfg.precise_bn,
            lambda b, t: model(b, classes, t.datasets) if needs_dataset else model(b, classes), device)
        if info.is_main:
            echo(f"re-estimated BatchNorm statistics over {used} training batches")
    if not interrupted and cfg.val_every and step >= total and losses:
        run_validation()  # the last step (after precise BN, as the run is saved)
    in_sync = params_in_sync(model, info)
    elapsed = time.perf_counter() - start
    if not interrupted:
        save(complete=step >= total)
        if log is not None:
            throughput = loader.throughput()
            log.log(step, event="end", seconds=round(elapsed, 3), in_sync=in_sync, world_size=info.world_size,
                    loader=str(throughput), mix3d_batches=throughput.mixed)
    if log is not None:
        log.close()
    return TrainResult(run_dir=run_dir, checkpoint=ckpt_path, steps=step, final_loss=losses[-1] if losses else math.nan,
                       losses=losses, seconds=elapsed, points_per_s=points_done / max(elapsed, 1e-9),
                       in_sync=in_sync, interrupted=interrupted, total_steps=total, best=best,
                       validations=validations)
