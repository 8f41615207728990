"""Two-stage training of the 3D-MoE planner on cached oracle demonstrations, with exact resume.

Stage I (grounding, dense trunk): the colour head learns from the named-colour lexicon what colour a phrase names,
and the encoder + trunk learn which object a referring phrase names in seen-colour demo scenes. Stage II starts by
upcycling the trunk's FFNs into experts (exact at the switch) and trains flow, stop and pointer losses on the
oracle's pose sequences; the colour head stays frozen. Steps are numbered across both stages (0..steps_stage1-1
are Stage I). Each step's batch is drawn from a generator seeded by (seed, step), and the flow noise comes from the
global torch RNG saved in the checkpoint, so a resumed run continues exactly where a straight run would be.
Checkpoints hold only tensors and plain data. The frozen LM's states of every text the run reads are computed once
and cached beside the demonstrations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
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
from pmoe_core.errors import BadInput, FormatError
from pmoe_core.planner.colour import (
    LexiconEntry,
    colour_paraphrases,
    lexicon_batch,
    lexicon_split,
    lexicon_texts,
    nearest_colour_accuracy,
    rgb_to_lab,
    swap_colour_word,
)
from pmoe_core.planner.demos import (
    HELD_OUT_SEED,
    DemoSet,
    DemoSpec,
    demo_cache_dir,
    load_demos,
)
from pmoe_core.planner.joint import JointConfig
from pmoe_core.planner.model import (
    DESIGN,
    PlannerConfig,
    ThreeDMoEPlanner,
    trainable_groups,
)
from pmoe_core.planner.model_lm import text_features
from pmoe_core.planner.objects import ObjectTokenConfig
from pmoe_core.planner.pointnet2 import PointNet2Config, SALayer
from pmoe_core.planner.pose_dit import PoseDiTConfig
from pmoe_core.planner.relations import RELATION_DIM
from pmoe_core.planner.scene_encoder import SceneEncoderConfig
from pmoe_core.planner.spatial_transformer import SpatialTransformerConfig
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.planner.trunk import TrunkConfig
from pmoe_core.planner.upcycle import MoEConfig
from pmoe_core.progress import Progress, silent
from pmoe_core.tabletop.mirror import mirror_words
from pmoe_core.tabletop.phrasing import render
from pmoe_core.tabletop.tasks import TASKS, make_scene, task_name
from pmoe_core.tabletop.world import COLORS, SPLITS

CHECKPOINT_NAME = "planner.pt"
DEFAULT_TASKS = tuple(TASKS)
PRESETS = ("default", "tiny")


def default_model_config() -> PlannerConfig:
    """The shipped default: SmolLM2-135M's frozen states (the colour head reads block 2's), a PointNet++ of 64/16
    centres on 2048 points plus up to 10 object tokens, a 2-block trunk of width 128 upcycled to 4 experts (top-2)
    and a 2-block Pose-DiT; sized to train in about an hour on one CPU thread (docs/planner.md)."""
    return PlannerConfig(
        encoder=SceneEncoderConfig(
            pointnet=PointNet2Config(
                layers=[SALayer(64, 0.06, 16, [32, 32, 64]), SALayer(16, 0.2, 16, [64, 96, 128])]
            ),
            spatial=SpatialTransformerConfig(dim=128, heads=4, layers=2, fourier_bands=8),
            objects=ObjectTokenConfig(max_objects=10),
        ),
        trunk=TrunkConfig(dim=128, depth=2, heads=4, experts=4, top_k=2, relation_dim=RELATION_DIM),
        dit=PoseDiTConfig(dim=128, depth=2, heads=4, max_steps=8),
        num_points=2048,
    )


def model_config(preset: str, llm: str = "smollm2", experts: int = 4, joint: bool = False) -> PlannerConfig:
    """The preset's sizes with the LM, the expert count and the path swapped in (experts=1: a dense trunk)."""
    if preset not in PRESETS:
        raise BadInput(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
    if experts not in (1, 2, 4, 8):
        raise BadInput(f"--experts must be 1 (dense), 2, 4 or 8, got {experts}")
    cfg = default_model_config() if preset == "default" else PlannerConfig.tiny()
    trunk = dataclasses.replace(cfg.trunk, experts=experts, top_k=min(2, experts))
    text = dataclasses.replace(cfg.text, llm=llm)
    joint_cfg = JointConfig(moe=MoEConfig(num_experts=experts, top_k=min(2, experts))) if joint else None
    return dataclasses.replace(cfg, trunk=trunk, text=text, joint=joint_cfg)


@dataclass
class PlannerTrainConfig:
    """Everything a run needs; saved in the checkpoint so `--resume` can refuse a mismatched continuation."""

    out: str = "runs/planner"
    tasks: tuple[str, ...] = DEFAULT_TASKS
    episodes: int = 500  # per task, train seeds 0..episodes-1, seen colours, training phrasings
    steps_stage1: int = 1000
    steps: int = 10000  # Stage II steps (5000 left the mirrored demonstrations' left/right unlearned: BENCHMARKS.md)
    batch_size: int = 16
    lexicon_batch: int = 64  # lexicon phrases per Stage I step
    lexicon_names: int | None = None  # train on this many lexicon names (spread over the alphabet); None: all
    colour_paraphrase: float = 0.5  # share of Stage II instructions whose colour word is a lexicon paraphrase
    wordings: int = 4  # training phrasings per demonstration (its own and others of the same scene)
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    grad_clip: float = 1.0
    preset: str = "default"
    llm: str = "smollm2"
    joint: bool = False
    experts: int = 4
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 250
    stop_at: int | None = None  # save and stop at this global step; --resume continues
    resume: bool = False
    cache: str | None = None  # demo and text-state cache folder (default $PMOE_CACHE_DIR/demos)
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
_RESUME_KEYS = ("tasks", "episodes", "steps_stage1", "batch_size", "lexicon_batch", "lexicon_names",
                "colour_paraphrase", "wordings", "lr", "weight_decay", "warmup", "preset", "llm", "joint", "experts",
                "seed")
_RESUME_BEFORE = {"wordings": 1}  # runs written before the key existed read one wording per demonstration
PARAPHRASES_PER_DEMO = 2  # paraphrased instructions per demonstration naming a colour (their LM states are cached)


def demo_spec(cfg: PlannerTrainConfig, model_cfg: PlannerConfig) -> DemoSpec:
    objects = model_cfg.encoder.objects
    return DemoSpec(tuple(task_name(t) for t in cfg.tasks), cfg.episodes, model_cfg.num_points,
                    model_cfg.dit.max_steps, phrasing="train", max_objects=objects.max_objects,
                    radius=objects.radius, min_points=objects.min_points)


def text_cache_dir() -> Path:
    """`$PMOE_CACHE_DIR/text` where the variable is set, else `~/.cache/pmoe/text`: frozen-LM states of fixed text
    sets (the lexicon's phrases), shared by every run on the machine."""
    return demo_cache_dir().parent / "text"


def cached_text_features(model_cfg: PlannerConfig, texts: list[str], lexicon: list[str], cache: str | None,
                         progress: Progress = silent) -> TextFeatures:
    """The frozen LM's states of a run's `texts` (cached beside its demonstrations) and of the `lexicon` phrases
    (cached once per machine), read from the caches when computed before, else computed (~17 ms a text on one
    thread) and cached; texts the group's newest earlier cache holds are taken from it (a new paraphrase set or
    Stage I carrier recomputed all ~23k texts before: ~20 min)."""
    features = text_features(model_cfg.text)
    spec = [model_cfg.text.llm, *model_cfg.text.layers, model_cfg.text.max_tokens]
    for folder, name, group in ((text_cache_dir(), "lexicon", lexicon), (demo_cache_dir(cache), "run", texts)):
        unique = sorted(set(group))
        if not unique:
            continue
        key = hashlib.sha256(json.dumps([*spec, unique]).encode()).hexdigest()[:16]
        path = folder / f"text-{name}-{key}.npz"
        if path.is_file() and features.load(path):
            continue
        mine = TextFeatures(features.spec, features.llm, features.tokenizer)  # this group's states alone
        earlier = _newest_cache(folder, name)  # a recipe change keeps most texts: only the new ones go through the LM
        try:
            if earlier is not None and mine.load(earlier):
                mine.retain(set(unique))
        except FormatError:  # a damaged earlier cache is only a missed shortcut
            mine = TextFeatures(features.spec, features.llm, features.tokenizer)
        progress(total=len(unique))
        for start in range(0, len(unique), 256):
            chunk = unique[start : start + 256]
            mine.encode(chunk)
            progress(advance=len(chunk), message=f"{name} text states")
        mine.save(path)
        features.load(path)
    return features


def _newest_cache(folder: Path, name: str) -> Path | None:
    """The most recently written text-state cache of group `name` in `folder`, if any."""
    found = sorted(folder.glob(f"text-{name}-*.npz"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


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


@dataclass(frozen=True)
class InstructionOptions:
    """What one demonstration's Stage II instruction may be: `wordings`, its own and other training phrasings of
    the same scene (mirrored with it), and `paraphrased`, wordings whose colour word is a lexicon paraphrase."""

    wordings: tuple[str, ...]
    paraphrased: tuple[str, ...] = ()


def instruction_options(demos: DemoSet, spec: DemoSpec, cfg: PlannerTrainConfig) -> list[InstructionOptions]:
    """Per demonstration, `cfg.wordings` phrasings (phrasing.render of the scene's words, so a demonstration is
    seen in several sentence frames, synonyms, cases and courtesies, not one) and `PARAPHRASES_PER_DEMO` colour
    paraphrases (`colour.colour_paraphrases`) spread over them; none where the task names no colour."""
    out = []
    for i, (task, episode, flip) in enumerate(zip(demos.tasks, demos.seeds.tolist(), demos.mirrored.tolist())):
        words = make_scene(task, episode, spec.split, spec.phrasing).words
        rng = np.random.default_rng([cfg.seed, i, 13])
        others = (render(task, words, spec.phrasing, rng) for _ in range(cfg.wordings - 1))
        wordings = (demos.instructions[i], *(mirror_words(t) if flip else t for t in others))
        colour = words.get("color")
        names = colour_paraphrases(colour) if colour and cfg.colour_paraphrase > 0 else ()
        if not names:
            out.append(InstructionOptions(wordings))
            continue
        rng = np.random.default_rng([cfg.seed, i, 11])
        picks = rng.choice(len(names), size=min(PARAPHRASES_PER_DEMO, len(names)), replace=False)
        paraphrased = tuple(swap_colour_word(wordings[j % len(wordings)], colour, names[k])
                            for j, k in enumerate(picks))
        out.append(InstructionOptions(wordings, paraphrased))
    return out


def stage2_instructions(demos: DemoSet, options: list[InstructionOptions], rows: list[int], cfg: PlannerTrainConfig,
                        step: int) -> list[str]:
    """The batch's instructions: each a colour paraphrase with probability `cfg.colour_paraphrase` where it has
    any, else one of its wordings; a function of (seed, step) as the batch is."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 31_337)
    draws = torch.rand(len(rows), generator=g).tolist()
    picks = torch.randint(PARAPHRASES_PER_DEMO, (len(rows),), generator=g).tolist()
    which = torch.randint(max(1, cfg.wordings), (len(rows),), generator=g).tolist()
    out = []
    for i, draw, k, w in zip(rows, draws, picks, which):
        option = options[i] if options else InstructionOptions((demos.instructions[i],))
        if option.paraphrased and draw < cfg.colour_paraphrase:
            out.append(option.paraphrased[k % len(option.paraphrased)])
        else:
            out.append(option.wordings[w % len(option.wordings)])
    return out


def step_loss(model: ThreeDMoEPlanner, demos: DemoSet, lexicon: list[LexiconEntry], cfg: PlannerTrainConfig,
              step: int, options: list[InstructionOptions] | None = None) -> dict[str, torch.Tensor]:
    rows = batch_indices(cfg.seed, step, len(demos), cfg.batch_size).tolist()
    points = torch.from_numpy(demos.points[rows])
    if stage_of(cfg, step) == 1:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 104_729)
        phrases, xy = [], []
        for i in rows:
            real = int((demos.ref_texts[i] != "").sum())
            j = int(torch.randint(max(1, real), (1,), generator=g))
            phrases.append(str(demos.ref_texts[i, j]) or demos.instructions[i])
            xy.append(demos.ref_xy[i, j])
        texts, labs = lexicon_batch(lexicon, cfg.seed, step, cfg.lexicon_batch, framed=True)
        return model.stage1_loss(points, phrases, torch.from_numpy(np.stack(xy)), texts, labs)
    return model.stage2_loss(points, stage2_instructions(demos, options or [], rows, cfg, step),
                             torch.from_numpy(demos.poses[rows]), torch.from_numpy(demos.lengths[rows]))


def make_optimizer(model: ThreeDMoEPlanner, cfg: PlannerTrainConfig, stage: int) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.stage_parameters(stage), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _meta(cfg: PlannerTrainConfig, model_cfg: PlannerConfig, step: int, stage: int, loss: float | None) -> dict:
    total = cfg.steps_stage1 + cfg.steps
    meta = {
        "kind": "planner",
        "design": DESIGN,
        "preset": cfg.preset,
        "config": model_cfg.to_dict(),
        "step": step,
        "stage": stage,
        "train_args": plain_args(dataclasses.asdict(cfg)),
        "complete": step >= total,
        "metrics": {} if loss is None else {"loss": loss},
    }
    if cfg.command:
        meta["command"] = cfg.command
    return meta


def train_planner(
    cfg: PlannerTrainConfig, progress: Progress = silent, demo_progress: Progress = silent
) -> PlannerTrainResult:
    """Run (or resume) both stages; checkpoints to `cfg.out/planner.pt` every `ckpt_every` steps and at the end."""
    if cfg.steps_stage1 < 0 or cfg.steps < 1 or cfg.batch_size < 1 or cfg.episodes < 1 or cfg.lexicon_batch < 1:
        raise BadInput("--steps, --batch-size and --episodes must be >= 1 and --steps-stage1 >= 0")
    if not 0.0 <= cfg.colour_paraphrase <= 1.0:
        raise BadInput(f"colour_paraphrase must lie in [0, 1], got {cfg.colour_paraphrase}")
    if cfg.wordings < 1:
        raise BadInput(f"wordings must be >= 1, got {cfg.wordings}")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    model_cfg = model_config(cfg.preset, cfg.llm, cfg.experts, cfg.joint)
    spec = demo_spec(cfg, model_cfg)
    demos = load_demos(spec, cfg.cache, demo_progress)
    lexicon, held_out = lexicon_split(cfg.lexicon_names)
    options = instruction_options(demos, spec, cfg)
    texts = [t for o in options for t in (*o.wordings, *o.paraphrased)]
    texts += [str(t) for t in np.unique(demos.ref_texts) if t]
    features = cached_text_features(model_cfg, texts, lexicon_texts(lexicon, framed=True), cfg.cache, demo_progress)
    torch.manual_seed(cfg.seed)
    model = ThreeDMoEPlanner(model_cfg, features).train()
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    total = cfg.steps_stage1 + cfg.steps

    start, optimizer, opt_stage = 0, None, 0
    if cfg.resume and ckpt_path.is_file():
        payload = load_checkpoint(ckpt_path)
        meta = payload["meta"]
        if meta["kind"] != "planner":
            raise FormatError(f"not a planner checkpoint (kind {meta['kind']!r})", ckpt_path)
        check_resume_args(meta, cfg, _RESUME_KEYS, ckpt_path, _RESUME_BEFORE)
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
            log.log(0, "start", groups=trainable_groups(model), demos=len(demos), lexicon=len(lexicon),
                    config=plain_args(dataclasses.asdict(cfg)))
        while step < stop:
            stage = stage_of(cfg, step)
            if stage == 2 and not model.is_upcycled:
                model.upcycle()
            if optimizer is None or opt_stage != stage:
                optimizer, opt_stage = make_optimizer(model, cfg, stage), stage
            lr = learning_rate(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            parts = step_loss(model, demos, lexicon, cfg, step, options)
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.stage_parameters(stage), cfg.grad_clip)
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
            if step == cfg.steps_stage1:
                log.log(step, "grounding", **colour_grounding(model, held_out))
        log.log(step, "end", seconds=time.perf_counter() - started, complete=step >= total)
    return PlannerTrainResult(run_dir, ckpt_path, step, losses, time.perf_counter() - started, step < total)


@torch.no_grad()
def colour_grounding(model: ThreeDMoEPlanner, held_out: list[LexiconEntry]) -> dict[str, float]:
    """How well the colour head grounds colour words it did not train on (held-out lexicon names) and the unseen
    split's names: nearest-colour accuracy among the world's eleven colours, and the median CIELAB error."""
    palette = rgb_to_lab(torch.tensor([COLORS[c] for c in COLORS], dtype=torch.float32) / 255.0) / 100.0
    out = {}
    unseen = [LexiconEntry(c, tuple((palette[list(COLORS).index(c)]).tolist())) for c in SPLITS["unseen"]]
    for name, entries in (("held_out", held_out), ("unseen_names", unseen)):
        if not entries:
            continue
        texts = [f"the {e.name} block" for e in entries]
        asked = model.asked_colour(model.text_batch(texts)).lab.cpu()
        true = torch.tensor([e.lab for e in entries])
        out[f"{name}_nearest"] = nearest_colour_accuracy(asked, true, palette)
        out[f"{name}_median_delta_e"] = float((asked - true).norm(dim=-1).median() * 100)
    # what an unseen-colour scene asks of the planner: which of its four colours a word names
    unseen_palette = torch.stack([palette[list(COLORS).index(c)] for c in SPLITS["unseen"]])
    asked = model.asked_colour(model.text_batch([f"the {c} block" for c in SPLITS["unseen"]])).lab.cpu()
    out["unseen_names_among_unseen"] = nearest_colour_accuracy(asked, unseen_palette, unseen_palette)
    # ... and said inside a whole instruction: unseen-colour scenes' template instructions (held-out seeds)
    texts, named = [], []
    for task in TASKS:
        for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + 10):
            desc = make_scene(task, seed, "unseen")
            if "color" in desc.words:
                texts.append(desc.instruction)
                named.append(unseen_palette[SPLITS["unseen"].index(desc.words["color"])])
    asked = model.asked_colour(model.text_batch(texts)).lab.cpu()
    out["unseen_instructions_among_unseen"] = nearest_colour_accuracy(asked, torch.stack(named), unseen_palette)
    return out


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
