"""`pmoe plan train`: train the 3D-MoE planner (Stage I grounding, Stage II poses) on oracle demonstrations.

With no options it trains the packaged default (docs/planner.md): every task family, 500 demos each.

Registered on `pmoe plan` by pmoe_cli/plan.py. The planner modules (torch, transformers) are imported when the
command runs, never when the app is built.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from pmoe_cli.progress import ProgressBar, report_training
from pmoe_core.errors import BadInput
from pmoe_core.outputs import check_output_file
from pmoe_core.tabletop.tasks import TASKS

DEFAULT_TASKS = tuple(TASKS)  # = pmoe_core.planner.train.DEFAULT_TASKS
PRESETS = ("default", "tiny")  # = pmoe_core.planner.train.PRESETS


def train(
    tasks: str = typer.Option("all", "--tasks", help="comma-separated task families, or all"),
    episodes: int = typer.Option(500, "--episodes", help="demos per task (train seeds 0..N-1, seen colours)"),
    steps_stage1: int = typer.Option(1000, "--steps-stage1", help="Stage I (colour words, referring phrases) steps"),
    steps: int = typer.Option(10000, "--steps", help="Stage II (upcycled MoE trunk + Pose-DiT) steps"),
    batch_size: int = typer.Option(16, "--batch-size", help="demonstrations per step"),
    lr: float = typer.Option(1e-3, "--lr", help="peak learning rate (warmup, cosine to 10%)"),
    llm: str = typer.Option("smollm2", "--llm", help="the pretrained LM: smollm2 (packaged) or a local HF LLaMA dir"),
    joint: bool = typer.Option(False, "--joint", help="the paper's path: scene + instruction through the upcycled "
                               "LLM with LoRA (~28 s a step on CPU) instead of its cached states and the trunk"),
    experts: int = typer.Option(4, "--experts", help="experts per upcycled FFN: 2, 4, 8 (1 = dense)"),
    preset: str = typer.Option("default", "--preset", help="model sizes: " + ", ".join(PRESETS)),
    seed: int = typer.Option(0, "--seed", help="training seed"),
    out: Path = typer.Option(Path("runs/planner"), "--out", help="run folder: planner.pt, log.jsonl, tb/"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/planner.pt"),
    stop_at: int = typer.Option(None, "--stop-at", help="save and stop at this global step (--resume continues)"),
    ckpt_every: int = typer.Option(250, "--ckpt-every", help="checkpoint every N steps"),
    export: Path = typer.Option(None, "--export", help="also write a slim fp16 weights-only copy here"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --export file"),
) -> None:
    """Train a 3D-MoE planner on oracle demonstrations (demos rendered once and cached)."""
    from pmoe_cli.plan import (
        require_planner_extra,  # plan.py registers this command: imported here, not above
    )

    if export is not None:
        check_output_file(export, overwrite=overwrite)
    names = DEFAULT_TASKS if tasks.strip() == "all" else tuple(t.strip() for t in tasks.split(",") if t.strip())
    if not names:
        raise BadInput("--tasks is empty")
    require_planner_extra()
    from pmoe_core.planner.train import (
        PlannerTrainConfig,
        export_checkpoint,
        train_planner,
    )

    cfg = PlannerTrainConfig(
        out=str(out), tasks=names, episodes=episodes, steps_stage1=steps_stage1, steps=steps, batch_size=batch_size,
        lr=lr, preset=preset, llm=llm, joint=joint, experts=experts, seed=seed, ckpt_every=ckpt_every, stop_at=stop_at,
        resume=resume, command="pmoe " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    demo_bar, bar = ProgressBar("demos", "episodes", every=50), ProgressBar("train", "steps", every=25)
    try:
        result = train_planner(cfg, bar, demo_bar)
    finally:
        demo_bar.stop()
        bar.stop()
    report_training(result, export, export_checkpoint)
