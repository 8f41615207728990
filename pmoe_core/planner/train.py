"""Two-stage training of the 3D-MoE planner on cached oracle demonstrations, with exact resume.

Stage I (alignment): captioning LM loss on template scene captions; trains encoder + projector, LoRA, routers.
Stage II: flow + stop losses on oracle pose sequences; trains everything trainable (now including the Pose-DiT).
Steps are numbered across both stages (0..steps_stage1-1 are Stage I). Each step's batch is drawn from a generator
seeded by (seed, step), and the flow noise comes from the global torch RNG saved in the checkpoint, so a resumed
run continues exactly where a straight run would be. Checkpoints hold only tensors and plain data.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pmoe_core.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pmoe_core.engine.runlog import RunLog
from pmoe_core.errors import BadInput, FormatError
from pmoe_core.planner.demos import DemoSet, DemoSpec, load_demos
from pmoe_core.planner.llm import TinyLlamaSpec
from pmoe_core.planner.lora import LoraSettings
from pmoe_core.planner.model import ThreeDMoEConfig, ThreeDMoEPlanner, trainable_groups
from pmoe_core.planner.objects import ObjectTokenConfig, with_object_ids
from pmoe_core.planner.pointnet2 import PointNet2Config, SALayer
from pmoe_core.planner.pose_dit import PoseDiTConfig
from pmoe_core.planner.scene_encoder import FOREGROUND_Z, SceneEncoderConfig
from pmoe_core.planner.spatial_transformer import SpatialTransformerConfig
from pmoe_core.tabletop.tasks import task_name
from pmoe_core.planner.upcycle import MoEConfig
from pmoe_core.progress import Progress, silent

CHECKPOINT_NAME = "planner.pt"
DEFAULT_TASKS = ("stack-blocks", "put-block-into-matching-bowl")
PRESETS = ("default", "tiny")


def default_model_config() -> ThreeDMoEConfig:
    """The shipped default: a seeded random tiny LLaMA (2 layers, hidden 128, a token per planner-world word)
    upcycled to 4 experts, a PointNet++ with 256/64 centres on 2048 points plus object tokens, and a 2-block
    Pose-DiT pointing at objects; sized to train in ~45 minutes on one CPU thread (docs/planner.md)."""
    return ThreeDMoEConfig(
        llm="tiny",
        tiny_llm=TinyLlamaSpec(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, tokenizer="words"),
        moe=MoEConfig(num_experts=4, top_k=2),
        lora=LoraSettings(r=8, alpha=16),
        encoder=SceneEncoderConfig(
            pointnet=PointNet2Config(
                layers=[SALayer(256, 0.04, 16, [32, 32, 64]), SALayer(64, 0.1, 16, [64, 96, 128])]
            ),
            spatial=SpatialTransformerConfig(dim=128, heads=4, layers=2, fourier_bands=8),
            objects=ObjectTokenConfig(max_objects=10, pointer_only=True),
        ),
        dit=PoseDiTConfig(dim=128, depth=2, heads=4, max_steps=8, anchor=True, pointer_loss=1.0, text_pool=True,
                          pointer_passes=2, hard_pointer=True, cond_layers=2, yaw_anchor=True,
                          straight_through=True, teacher_anchor=True, color_affinity=True, color_query=True,
                          color_loss=10.0),
        num_points=2048,
        foreground=1.0,
        max_text_tokens=96,
    )


def model_config(preset: str, llm: str, experts: int) -> ThreeDMoEConfig:
    """The preset's sizes with the LLM and the expert count swapped in (experts=1: a dense FFN, no routing)."""
    if preset not in PRESETS:
        raise BadInput(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
    if experts not in (1, 2, 4, 8):
        raise BadInput(f"--experts must be 1 (dense), 2, 4 or 8, got {experts}")
    cfg = default_model_config() if preset == "default" else ThreeDMoEConfig.tiny()
    moe = dataclasses.replace(cfg.moe, num_experts=experts, top_k=min(2, experts))
    return dataclasses.replace(cfg, llm=llm, moe=moe)


@dataclass
class PlannerTrainConfig:
    """Everything a run needs; saved in the checkpoint so `--resume` can refuse a mismatched continuation."""

    out: str = "runs/planner"
    tasks: tuple[str, ...] = DEFAULT_TASKS
    episodes: int = 1000  # per task, train seeds 0..episodes-1, seen colours
    steps_stage1: int = 100
    steps: int = 5000  # Stage II steps
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    grad_clip: float = 1.0
    preset: str = "default"
    llm: str = "tiny"
    experts: int = 4
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 250
    stop_at: int | None = None  # save and stop at this global step; --resume continues
    resume: bool = False
    cache: str | None = None  # demo cache folder (default $PMOE_CACHE_DIR/demos)
    tensorboard: bool = True
    command: str | None = None  # the command line that started the run, recorded in the checkpoint


@dataclass
class PlannerTrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    losses: list[float]
    seconds: float
    interrupted: bool = False


# Changing these between a run and its resume would silently change what is trained.
_RESUME_KEYS = ("tasks", "episodes", "steps_stage1", "batch_size", "lr", "weight_decay", "warmup", "preset", "llm",
                "experts", "seed")


def demo_spec(cfg: PlannerTrainConfig, model_cfg: ThreeDMoEConfig) -> DemoSpec:
    return DemoSpec(tuple(task_name(t) for t in cfg.tasks), cfg.episodes, model_cfg.num_points, model_cfg.dit.max_steps,
                    foreground=model_cfg.foreground)


def model_inputs(demos: DemoSet, model_cfg: ThreeDMoEConfig) -> DemoSet:
    """Demo clouds as the encoder takes them: with object tokens on, each point's proposal id is appended here
    rather than cached, so one rendered demo set serves models with and without them."""
    objects = model_cfg.encoder.objects
    if not objects.max_objects:
        return demos
    return dataclasses.replace(demos, points=with_object_ids(demos.points, objects, FOREGROUND_Z))


def batch_indices(seed: int, step: int, size: int, batch: int) -> torch.Tensor:
    """The demos of one step: a function of (seed, step) only, so resume needs no sampler state."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(size, generator=g)[:batch] if batch <= size else torch.randint(size, (batch,), generator=g)


def learning_rate(cfg: PlannerTrainConfig, step: int) -> float:
    """Per stage: linear warmup, then cosine decay to 10% of `lr`."""
    start, length = (0, cfg.steps_stage1) if step < cfg.steps_stage1 else (cfg.steps_stage1, cfg.steps)
    i = step - start
    if i < cfg.warmup:
        return cfg.lr * (i + 1) / cfg.warmup
    frac = (i - cfg.warmup) / max(1, length - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def stage_of(cfg: PlannerTrainConfig, step: int) -> int:
    return 1 if step < cfg.steps_stage1 else 2


def step_loss(model: ThreeDMoEPlanner, demos: DemoSet, idx: torch.Tensor, stage: int) -> dict[str, torch.Tensor]:
    rows = idx.tolist()
    points = torch.from_numpy(demos.points[rows])
    if stage == 1:
        return model.stage1_loss(points, [demos.captions[i] for i in rows])
    return model.stage2_loss(
        points, [demos.instructions[i] for i in rows], torch.from_numpy(demos.poses[rows]),
        torch.from_numpy(demos.lengths[rows]),
    )


def make_optimizer(model: ThreeDMoEPlanner, cfg: PlannerTrainConfig, stage: int) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.trainable_parameters(stage), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _meta(cfg: PlannerTrainConfig, model_cfg: ThreeDMoEConfig, step: int, stage: int, loss: float | None) -> dict:
    total = cfg.steps_stage1 + cfg.steps
    meta = {
        "kind": "planner",
        "preset": cfg.preset,
        "config": model_cfg.to_dict(),
        "step": step,
        "stage": stage,
        "train_args": _plain(dataclasses.asdict(cfg)),
        "complete": step >= total,
        "metrics": {} if loss is None else {"loss": loss},
    }
    if cfg.command:
        meta["command"] = cfg.command
    return meta


def _check_resume(meta: dict, cfg: PlannerTrainConfig, path: Path) -> None:
    saved = meta.get("train_args", {})
    for key in _RESUME_KEYS:
        now = _plain(getattr(cfg, key))
        if key in saved and saved[key] != now:
            raise BadInput(f"--resume with a different {key} ({saved[key]!r} in the checkpoint, {now!r} now)", path)


def train_planner(
    cfg: PlannerTrainConfig, progress: Progress = silent, demo_progress: Progress = silent
) -> PlannerTrainResult:
    """Run (or resume) both stages; checkpoints to `cfg.out/planner.pt` every `ckpt_every` steps and at the end."""
    if cfg.steps_stage1 < 0 or cfg.steps < 1 or cfg.batch_size < 1 or cfg.episodes < 1:
        raise BadInput("--steps, --batch-size and --episodes must be >= 1 and --steps-stage1 >= 0")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    model_cfg = model_config(cfg.preset, cfg.llm, cfg.experts)
    demos = model_inputs(load_demos(demo_spec(cfg, model_cfg), cfg.cache, demo_progress), model_cfg)
    model = ThreeDMoEPlanner(model_cfg).train()
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    total = cfg.steps_stage1 + cfg.steps

    start, optimizer, opt_stage = 0, None, 0
    if cfg.resume and ckpt_path.is_file():
        payload = load_checkpoint(ckpt_path)
        meta = payload["meta"]
        if meta["kind"] != "planner":
            raise FormatError(f"not a planner checkpoint (kind {meta['kind']!r})", ckpt_path)
        _check_resume(meta, cfg, ckpt_path)
        model.load_trainable_state_dict(payload["model"])
        start = int(meta["step"])
        if start < total and meta.get("stage") == stage_of(cfg, start):
            optimizer, opt_stage = make_optimizer(model, cfg, meta["stage"]), meta["stage"]
            optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])

    stop = min(total, cfg.stop_at) if cfg.stop_at is not None else total
    losses: list[float] = []
    started = time.perf_counter()
    progress(total=total, advance=start)
    loss_value: float | None = None
    step = start
    with RunLog(run_dir, tensorboard=cfg.tensorboard) as log:
        if start == 0:
            log.log(0, "start", groups=trainable_groups(model), demos=len(demos),
                    config=_plain(dataclasses.asdict(cfg)))
        while step < stop:
            stage = stage_of(cfg, step)
            if optimizer is None or opt_stage != stage:
                optimizer, opt_stage = make_optimizer(model, cfg, stage), stage
            lr = learning_rate(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            parts = step_loss(model, demos, batch_indices(cfg.seed, step, len(demos), cfg.batch_size), stage)
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.trainable_parameters(stage), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = parts["loss"].item()
            losses.append(loss_value)
            progress(advance=1, message=f"stage {stage} loss {loss_value:.3f}")
            if step % cfg.log_every == 0 or step == stop:
                log.log(step, "train", stage=stage, lr=lr, **{k: v.item() for k, v in parts.items()})
            boundary = step == cfg.steps_stage1 or step == stop
            if step % cfg.ckpt_every == 0 or boundary:
                _save(ckpt_path, cfg, model_cfg, model, optimizer, step, stage, loss_value)
        log.log(step, "end", seconds=time.perf_counter() - started, complete=step >= total)
    return PlannerTrainResult(run_dir, ckpt_path, step, losses, time.perf_counter() - started, step < total)


def _save(path: Path, cfg, model_cfg, model, optimizer, step: int, stage: int, loss: float | None) -> None:
    tensors = {"model": model.trainable_state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state()}
    save_checkpoint(path, _meta(cfg, model_cfg, step, stage, loss), tensors)


def export_checkpoint(src: str | Path, dst: str | Path, half: bool = True) -> Path:
    """A slim copy for shipping: trainable weights only (no optimizer, no RNG), fp16 by default; meta kept."""
    payload = load_checkpoint(src)
    dtype = torch.float16 if half else torch.float32
    weights = {k: v.to(dtype) for k, v in payload["model"].items()}
    meta = {k: v for k, v in payload["meta"].items() if k != "pmoe_version"}
    meta["exported_from"] = Path(src).name
    return save_checkpoint(dst, meta, {"model": weights})
