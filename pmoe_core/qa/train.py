"""Training of the answering model on synthetic QA sets, and on the benchmarks' own files beside or instead of
them (qa/benchmark_sets.py), with exact resume; loading trained models.

The trunk trains dense for `dense_steps` (the planner's Stage I idea), then is upcycled to its experts (exact at the
switch, planner/trunk.py) and trains on. In the dense phase the colour head also learns from the named-colour lexicon
(planner/colour.py: `lexicon_batch` phrases per step beside the questions); it is frozen from the switch on, and
its grounding of the lexicon's held-out names is logged there ("grounding"). Each step's batch is drawn from a generator seeded by (seed, step), and
nothing else is random (no dropout), so a resumed run continues exactly where a straight run would be. The
frozen LM's states of every question are computed once (`TextFeatures`, cached on disk beside the scene inputs).
Checkpoints hold only tensors and plain data (`engine/checkpoint.py`): kind "qa", the model config, the step, the
training arguments and the command line.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pmoe_core.engine.checkpoint import (
    check_resume_args,
    load_checkpoint,
    plain_args,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pmoe_core.engine.runlog import RunLog
from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.planner.colour import (
    lexicon_batch,
    lexicon_split,
    lexicon_texts,
)
from pmoe_core.planner.model import trainable_groups
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.planner.train import colour_grounding
from pmoe_core.progress import Progress, silent
from pmoe_core.qa.benchmark_sets import (
    TrainingFiles,
    load_file_set,
    read_training_files,
)
from pmoe_core.qa.data import QASetSpec, load_set, load_text_states, scenes_digest
from pmoe_core.qa.model import DESIGN, TEXT_ONLY_DESIGN, QAModel, QAModelConfig

KIND = "qa"
CHECKPOINT_NAME = "qa.pt"
PRESETS = ("default", "tiny")
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default" / "qa-default.pt"


def model_config(preset: str, text_only: bool = False) -> QAModelConfig:
    if preset not in PRESETS:
        raise BadInput(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
    cfg = QAModelConfig() if preset == "default" else QAModelConfig.tiny()
    return dataclasses.replace(cfg, scene_tokens=not text_only)


@dataclass
class QATrainConfig:
    """Everything a run needs; saved in the checkpoint so `--resume` can refuse a mismatched continuation."""

    out: str = "runs/qa"
    tabletop_scenes: int = 2000  # train seeds 0..N-1 (seen colours), the tabletop generator's task mix
    rooms: int = 900  # synthetic ScanNet rooms written; the train split (i % 3 == 0) is used: 300 rooms
    steps: int = 4000
    dense_steps: int = 300  # the trunk is dense (and the colour head learns) for these steps, then upcycled
    lexicon_batch: int = 64  # lexicon phrases per dense step (the colour head's data)
    lexicon_names: int | None = None  # learn from this many lexicon names (spread over the alphabet); None: all
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    grad_clip: float = 1.0
    preset: str = "default"
    text_only: bool = False  # the text-only baseline: no scene tokens (bench only)
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 250
    stop_at: int | None = None  # save and stop at this step; --resume continues
    resume: bool = False
    cache: str | None = None  # QA cache folder (default $PMOE_CACHE_DIR/qa)
    tensorboard: bool = True
    command: str | None = None  # the command line that started the run, recorded in the checkpoint
    # the benchmarks' own files, added to the synthetic questions (qa/benchmark_sets.py; `pmoe qa eval`'s options)
    scanqa: str | None = None
    sqa3d_dir: str | None = None
    sqa3d_split: str | None = None  # None: train
    scenes: str | None = None
    scannet_raw: str | None = None
    data_files: list[dict] = field(default_factory=list)  # set by train_qa: each file's path, sha256 and bytes
    scenes_sha256: str | None = None  # set by train_qa: data.scenes_digest of the files' scene inputs

    def data_spec(self, model_cfg: QAModelConfig) -> QASetSpec:
        return QASetSpec(tabletop_scenes=self.tabletop_scenes, rooms=self.rooms, room_split="train",
                         num_points=model_cfg.num_points, max_objects=model_cfg.max_objects)


@dataclass
class QATrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    losses: list[float]
    seconds: float
    interrupted: bool = False
    file_questions: int = 0  # questions from the benchmark files
    agents_outside: list[str] = field(default_factory=list)  # their question ids whose agent stands off its scene


# Changing these between a run and its resume would silently change what is trained.
_RESUME_KEYS = ("tabletop_scenes", "rooms", "steps", "dense_steps", "lexicon_batch", "lexicon_names", "batch_size",
                "lr", "weight_decay", "warmup", "preset", "text_only", "seed")


def batch_indices(seed: int, step: int, size: int, batch: int) -> list[int]:
    """The items of one step: a function of (seed, step) only, so resume needs no sampler state."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randperm(size, generator=g)[:batch] if batch <= size else torch.randint(size, (batch,), generator=g)
    return idx.tolist()


def learning_rate(cfg: QATrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to 10% of `lr` over the whole run."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train_qa(cfg: QATrainConfig, progress: Progress = silent, data_progress: Progress = silent,
             features: TextFeatures | None = None) -> QATrainResult:
    """Run (or resume) training; checkpoints to `cfg.out/qa.pt` every `ckpt_every` steps and at the end."""
    files = TrainingFiles(cfg.scanqa, cfg.sqa3d_dir, cfg.sqa3d_split, cfg.scenes, cfg.scannet_raw)
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.dense_steps < 0:
        raise BadInput("--steps and --batch-size must be >= 1, --dense-steps >= 0")
    if cfg.lexicon_batch < 1 or (cfg.lexicon_names is not None and cfg.lexicon_names < 1):
        raise BadInput("the lexicon batch and the number of lexicon names must be >= 1")
    questions = read_training_files(files)  # every refusal about the files, before any work
    if cfg.tabletop_scenes < 0 or cfg.rooms < 0 or (cfg.tabletop_scenes + cfg.rooms < 1 and not files.given):
        raise BadInput("nothing to train on: --tabletop-scenes and --rooms must be >= 0, and not both 0 without "
                       "--scanqa or --sqa3d-dir")
    cfg = dataclasses.replace(cfg, data_files=[dataclasses.asdict(r) for r in questions.records])
    model_cfg = model_config(cfg.preset, cfg.text_only)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    payload = _resume_payload(cfg, ckpt_path) if cfg.resume and ckpt_path.is_file() else None
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    data = load_set(cfg.data_spec(model_cfg), cfg.cache, data_progress)
    outside, file_questions = [], 0
    if files.given:
        file_set = load_file_set(questions, files, model_cfg.num_points, model_cfg.max_objects, cfg.cache,
                                 data_progress)
        data, outside, file_questions = data.joined(file_set.data), file_set.agents_outside, len(file_set.data)
        cfg = dataclasses.replace(cfg, scenes_sha256=scenes_digest(file_set.data.scenes))
        if payload is not None:
            check_scene_inputs(payload["meta"], cfg, ckpt_path)
    if not data.items:
        raise BadInput("the training set has no questions (no scenes selected?)")
    features = features or TextFeatures(model_cfg.text)
    load_text_states(features, data.texts(), cfg.cache)
    lexicon, held_out = lexicon_split(cfg.lexicon_names)
    load_text_states(features, lexicon_texts(lexicon), cfg.cache)
    model = QAModel(model_cfg, features).train()

    start, optimizer = 0, None
    if payload is not None:
        meta = payload["meta"]
        start = int(meta["step"])
        if meta.get("upcycled"):
            model.trunk.upcycle()
        model.load_trainable_state_dict(payload["model"])
        optimizer = make_optimizer(model, cfg)  # saved with the model's parameters of that moment
        optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])

    stop = min(cfg.steps, cfg.stop_at) if cfg.stop_at is not None else cfg.steps
    losses: list[float] = []
    started = time.perf_counter()
    progress(total=cfg.steps, advance=start)
    step = start
    with RunLog(run_dir, tensorboard=cfg.tensorboard) as log:
        if start == 0:
            log.log(0, "start", groups=trainable_groups(model), questions=len(data), scenes=len(data.scenes),
                    lexicon=len(lexicon), file_questions=file_questions, agents_outside=outside,
                    config=plain_args(dataclasses.asdict(cfg)))
        while step < stop:
            if step == cfg.dense_steps and not model.trunk.is_moe:
                log.log(step, "grounding", **colour_grounding(model, held_out))
                model.trunk.upcycle()  # and the colour head is frozen from here on (QAModel.colour_frozen)
                optimizer = None  # the upcycled trunk has new parameters: a fresh optimizer (as at a planner stage)
            if optimizer is None:
                optimizer = make_optimizer(model, cfg)
            lr = learning_rate(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = batch_indices(cfg.seed, step, len(data), cfg.batch_size)
            words, labs = lexicon_batch(lexicon, cfg.seed, step, cfg.lexicon_batch) if not model.colour_frozen \
                else (None, None)
            parts = model.loss(data.inputs(rows), [data.items[i].answers[0] for i in rows], words, labs,
                               data.targets(rows, model_cfg.max_objects))
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.training_parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss = parts["loss"].item()
            losses.append(loss)
            progress(advance=1, message=f"loss {loss:.3f}")
            if step % cfg.log_every == 0 or step == stop:
                log.log(step, "train", lr=lr, **{k: v.item() for k, v in parts.items()})
            if step % cfg.ckpt_every == 0 or step == stop or step == cfg.dense_steps:
                _save(ckpt_path, cfg, model_cfg, model, optimizer, step, loss)
        log.log(step, "end", seconds=time.perf_counter() - started, complete=step >= cfg.steps)
    return QATrainResult(run_dir, ckpt_path, step, losses, time.perf_counter() - started, step < cfg.steps,
                         file_questions, outside)


def _resume_payload(cfg: QATrainConfig, path: Path) -> dict:
    """The checkpoint a resume continues, refused (before any data is built) when it cannot continue this run."""
    payload = load_checkpoint(path)
    meta = payload["meta"]
    if meta["kind"] != KIND:
        raise FormatError(f"not a QA checkpoint (kind {meta['kind']!r})", path)
    check_design(meta, path)
    check_resume_args(meta, cfg, _RESUME_KEYS, path)
    check_data_files(meta, cfg, path)
    return payload


def check_data_files(meta: dict, cfg: QATrainConfig, path: Path) -> None:
    """A resume reads the same benchmark files, byte for byte (their sha256), wherever they now lie."""
    saved, now = meta.get("train_args", {}).get("data_files", []), cfg.data_files
    if [f["sha256"] for f in saved] == [f["sha256"] for f in now]:
        return

    def shown(files: list[dict], other: list[dict]) -> str:
        """The files of one side the other lacks (all of them where only the order differs)."""
        differ = [f for f in files if f["sha256"] not in {g["sha256"] for g in other}] or files
        return ", ".join(f"{Path(f['path']).name} (sha256 {f['sha256'][:12]})" for f in differ) or "none"

    raise BadInput(f"--resume with other benchmark files: {shown(saved, now)} in the checkpoint, "
                   f"{shown(now, saved)} now", path)


def check_scene_inputs(meta: dict, cfg: QATrainConfig, path: Path) -> None:
    """A resume sees the same scenes: `--scenes` (and `--scannet-raw`) may name a store that now holds other clouds,
    which the file hashes cannot tell. Checked once the scene inputs exist, so after they are built or read."""
    saved = meta.get("train_args", {}).get("scenes_sha256")
    if saved is not None and saved != cfg.scenes_sha256:
        raise BadInput(f"--resume with other scenes: the clouds under {cfg.scenes} give other model inputs than the "
                       "run trained on (sha256 of the scene inputs differs)", path)


def make_optimizer(model: QAModel, cfg: QATrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.training_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def check_design(meta: dict, path: Path) -> None:
    """A checkpoint of an older model design is refused in one line: its weights cannot fit this model. A text-only
    baseline of design TEXT_ONLY_DESIGN or later still fits: later designs changed the scene side only."""
    design = meta.get("design")
    text_only = not (meta.get("config") or {}).get("scene_tokens", True)
    if design == DESIGN or (text_only and isinstance(design, int) and TEXT_ONLY_DESIGN <= design < DESIGN):
        return
    raise FormatError(f"QA checkpoint of an older design ({design or 'before colour grounding'}; this pmoe reads "
                      f"{DESIGN}); retrain it with `pmoe qa train`", path)


def _save(path: Path, cfg: QATrainConfig, model_cfg: QAModelConfig, model: QAModel, optimizer, step: int,
          loss: float) -> None:
    meta = {"kind": KIND, "design": DESIGN, "preset": cfg.preset, "config": model_cfg.to_dict(), "step": step,
            "stage": 2 if model.trunk.is_moe else 1, "upcycled": model.trunk.is_moe,
            "train_args": plain_args(dataclasses.asdict(cfg)), "complete": step >= cfg.steps,
            "metrics": {"loss": loss}}
    if cfg.command:
        meta["command"] = cfg.command
    tensors = {"model": model.trainable_state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state()}
    save_checkpoint(path, meta, tensors)


def export_checkpoint(src: str | Path, dst: str | Path, half: bool = True) -> Path:
    """A slim copy for shipping: trainable weights only (no optimizer, no RNG), fp16 by default; meta kept."""
    payload = load_checkpoint(src)
    if payload["meta"].get("kind") != KIND:
        raise FormatError(f"not a QA checkpoint (kind {payload['meta'].get('kind')!r})", src)
    dtype = torch.float16 if half else torch.float32
    weights = {k: v.to(dtype) for k, v in payload["model"].items()}
    meta = {k: v for k, v in payload["meta"].items() if k != "pmoe_version"}
    meta["exported_from"] = Path(src).name
    return save_checkpoint(dst, meta, {"model": weights})


@dataclass
class LoadedQA:
    model: QAModel
    path: Path
    meta: dict


def load_qa_model(path: str | Path | None = None, features: TextFeatures | None = None) -> LoadedQA:
    """A trained answering model in eval mode: `path`, or the packaged default when None."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if path == DEFAULT_CHECKPOINT and not path.is_file():
        raise MissingFile("the packaged QA default is not installed; train one with `pmoe qa train` and pass "
                          "--checkpoint RUN/qa.pt", path)
    payload = load_checkpoint(path)
    meta = payload["meta"]
    if meta.get("kind") != KIND:
        raise FormatError(f"not a QA checkpoint (kind {meta.get('kind')!r}); `pmoe qa` needs one from "
                          "`pmoe qa train`", path)
    check_design(meta, path)
    try:
        cfg = QAModelConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(f"QA checkpoint config is not readable by this version ({err})", path) from None
    model = QAModel(cfg, features)
    if meta.get("upcycled"):
        model.trunk.upcycle()
    try:
        model.load_trainable_state_dict({k: v.float() for k, v in payload["model"].items()})
    except ValueError as err:
        raise FormatError(f"QA checkpoint weights do not fit its config ({err})", path) from None
    return LoadedQA(model.eval(), path, meta)
