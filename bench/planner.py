"""3D-MoE planner: held-out success vs oracle/random, Euler sampling steps, E=2/4/dense, latency per stage.

    OMP_NUM_THREADS=1 python bench/planner.py --part all --episodes 50

Held-out episodes use seeds from HELD_OUT_SEED (100000) on, with seen and unseen colours; training used seeds
0..episodes-1 with seen colours only. The expert ablation trains short runs of the *tiny* preset from scratch
(same data, same steps, only the expert count differs) and reports their held-out Stage II loss and success.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pmoe_core.planner.demos import HELD_OUT_SEED, canonical_steps
from pmoe_core.tabletop.episodes import run_bench
from pmoe_core.tabletop.observe import observe
from pmoe_core.planner.policy import ModelPolicy, cloud_input, load_planner, plan_cloud
from pmoe_core.planner.pose_tokens import steps_to_tensor
from pmoe_core.tabletop.scene_io import save_episode
from pmoe_core.tabletop.sim import execute
from pmoe_core.tabletop.tasks import make_scene
from pmoe_core.planner.train import DEFAULT_TASKS, PlannerTrainConfig, train_planner


def success_table(checkpoint: str | None, tasks: list[str], episodes: int) -> None:
    planner = load_planner(checkpoint)
    print(f"\n### Held-out success ({episodes} episodes per task and split, seeds {HELD_OUT_SEED}..)")
    print("| task | split | oracle | random | model (4 Euler steps) | model score | model s/plan |")
    print("|---|---|---|---|---|---|---|")
    for split in ("seen", "unseen"):
        for task in tasks:
            oracle = run_bench([task], episodes, "oracle", HELD_OUT_SEED, split)[0]
            rand = run_bench([task], episodes, "random", HELD_OUT_SEED, split)[0]
            policy = ModelPolicy(planner)
            model = run_bench([task], episodes, "model", HELD_OUT_SEED, split, policy_fn=policy)[0]
            print(f"| {task} | {split} | {100 * oracle.success_rate:.0f}% | {100 * rand.success_rate:.0f}% | "
                  f"{100 * model.success_rate:.0f}% | {model.score:.1f} | {policy.mean_plan_s():.3f} |", flush=True)


def steps_table(checkpoint: str | None, tasks: list[str], episodes: int) -> None:
    planner = load_planner(checkpoint)
    print(f"\n### Euler sampling steps (seen colours, {episodes} held-out episodes per task)")
    print("| Euler steps | " + " | ".join(f"{t} success" for t in tasks) + " | mean plan latency (s) |")
    print("|---|" + "---|" * len(tasks) + "---|")
    for n in (4, 10, 25):
        policy = ModelPolicy(planner, euler_steps=n)
        rows = run_bench(tasks, episodes, "model", HELD_OUT_SEED, "seen", policy_fn=policy)
        cells = " | ".join(f"{100 * r.success_rate:.0f}%" for r in rows)
        print(f"| {n} | {cells} | {policy.mean_plan_s():.3f} |", flush=True)


def diagnostics_table(checkpoint: str | None, tasks: list[str], episodes: int) -> None:
    """Where success is low, what does the model get right? Step count, and how close picks and places come."""
    policy = ModelPolicy(load_planner(checkpoint))
    print(f"\n### What the model gets right (seen colours, {episodes} held-out episodes per task)")
    print("| task | step count right | first picks that grasp a block | median pick xy error to nearest block (cm) | "
          "same for uniformly random picks (cm) | median place xy error to nearest goal (cm) |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for task in tasks:
        right, grasps, errors, chance, places = [], [], [], [], []
        for i in range(episodes):
            desc = make_scene(task, HELD_OUT_SEED + i)
            steps = policy(desc)
            right.append(len(steps) == len(canonical_steps(desc)))
            grasps += [p is not None for p in execute(desc, steps[:1]).picked]  # first pick, from the start state
            blocks = np.array([b.position[:2] for b in desc.blocks])
            goals = np.array([g.position[:2] for g in desc.goals])
            errors += [float(np.min(np.linalg.norm(blocks - s.pick.position[:2], axis=1))) for s in steps]
            places += [float(np.min(np.linalg.norm(goals - s.place.position[:2], axis=1))) for s in steps]
            guess = rng.uniform([0.25, -0.5], [0.75, 0.5])
            chance.append(float(np.min(np.linalg.norm(blocks - guess, axis=1))))
        print(f"| {task} | {100 * np.mean(right):.0f}% | {100 * np.mean(grasps):.0f}% | "
              f"{100 * np.median(errors):.1f} | {100 * np.median(chance):.1f} | {100 * np.median(places):.1f} |",
              flush=True)


@torch.no_grad()
def held_out_loss(checkpoint: Path, tasks: list[str], episodes: int) -> float:
    """Mean Stage II loss (flow + stop) on held-out demos, with fixed flow noise so runs compare fairly."""
    planner = load_planner(checkpoint)
    model, cfg = planner.model, planner.model.config
    losses = []
    for task in tasks:
        for i in range(episodes):
            desc = make_scene(task, HELD_OUT_SEED + i)
            points = cloud_input(observe(desc), cfg, seed=desc.seed)
            poses, lengths = steps_to_tensor([canonical_steps(desc)], cfg.dit.max_steps)
            torch.manual_seed(i)
            parts = model.stage2_loss(points[None], [desc.instruction], poses, lengths)
            losses.append(float(parts["flow"] + parts["stop"]))
    return statistics.fmean(losses)


def experts_table(tasks: list[str], episodes: int, steps: int, train_episodes: int, out: Path) -> None:
    print(f"\n### Experts (tiny preset, {steps} Stage II steps, {train_episodes} demos per task; short runs)")
    print("| experts | trainable params | train s | final train loss | held-out loss | "
          + " | ".join(f"{t} success" for t in tasks) + " |")
    print("|---|---|---|---|---|" + "---|" * len(tasks))
    for experts in (1, 2, 4):
        cfg = PlannerTrainConfig(out=str(out / f"experts-{experts}"), tasks=tuple(tasks), episodes=train_episodes,
                                 steps_stage1=50, steps=steps, batch_size=16, preset="tiny", experts=experts,
                                 tensorboard=False)
        result = train_planner(cfg)
        planner = load_planner(result.checkpoint)
        params = sum(p.numel() for p in planner.model.parameters() if p.requires_grad)
        loss = held_out_loss(result.checkpoint, tasks, max(4, episodes // 2))
        rows = run_bench(tasks, episodes, "model", HELD_OUT_SEED, "seen", policy_fn=ModelPolicy(planner))
        tail = statistics.fmean(result.losses[-50:])
        cells = " | ".join(f"{100 * r.success_rate:.0f}%" for r in rows)
        name = "dense (1)" if experts == 1 else str(experts)
        print(f"| {name} | {params:,} | {result.seconds:.0f} | {tail:.3f} | {loss:.3f} | {cells} |", flush=True)


def latency_table(checkpoint: str | None, repeats: int) -> None:
    desc = make_scene("stack-blocks", HELD_OUT_SEED)
    loads, encode, llm, dit = [], [], [], []
    for _ in range(max(1, repeats // 5)):
        loads.append(load_planner(checkpoint).load_s)
    planner = load_planner(checkpoint)
    points = cloud_input(observe(desc), planner.model.config)
    plan_cloud(planner, points, desc.instruction)  # warm-up
    for i in range(repeats):
        _, t = plan_cloud(planner, points, desc.instruction, seed=i)
        encode.append(t.encode_s)
        llm.append(t.llm_s)
        dit.append(t.dit_s)
    with tempfile.TemporaryDirectory() as tmp:
        ply = Path(tmp) / "scene.ply"
        save_episode(observe(desc), desc, ply)
        cmd = [sys.executable, "-m", "pmoe_cli", "plan", "--scene", str(ply), "--instruction", desc.instruction]
        if checkpoint:
            cmd += ["--checkpoint", checkpoint]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        cli = time.perf_counter() - start
    med = statistics.median
    print(f"\n### Latency of one plan (median of {repeats}, 4 Euler steps, 1 thread)")
    print("| stage | ms |")
    print("|---|---|")
    print(f"| load (checkpoint + LLM build, once per process) | {1000 * med(loads):.0f} |")
    print(f"| encode (PointNet++ + spatial transformer + projector) | {1000 * med(encode):.1f} |")
    print(f"| LLM (MoE + LoRA trunk) | {1000 * med(llm):.1f} |")
    print(f"| Pose-DiT (length head + Euler sampling) | {1000 * med(dit):.1f} |")
    print(f"| whole `pmoe plan --scene --instruction` process (imports, PLY read, load, plan, print) "
          f"| {1000 * cli:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all",
                        choices=("all", "success", "diagnostics", "steps", "experts", "latency"))
    parser.add_argument("--checkpoint", default=None, help="planner checkpoint (default: the packaged one)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--ablation-steps", type=int, default=600)
    parser.add_argument("--ablation-train-episodes", type=int, default=200)
    parser.add_argument("--ablation-out", type=Path, default=Path("runs/bench-experts"))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = [t.strip() for t in args.tasks.split(",")]
    machine = platform.processor() or platform.machine()
    print(f"python {platform.python_version()}, torch {torch.__version__}, {machine}")
    if args.part in ("all", "success"):
        success_table(args.checkpoint, tasks, args.episodes)
    if args.part in ("all", "diagnostics"):
        diagnostics_table(args.checkpoint, tasks, args.episodes)
    if args.part in ("all", "steps"):
        steps_table(args.checkpoint, tasks, max(1, args.episodes // 2))
    if args.part in ("all", "experts"):
        experts_table(tasks, max(1, args.episodes // 2), args.ablation_steps, args.ablation_train_episodes,
                      args.ablation_out)
    if args.part in ("all", "latency"):
        latency_table(args.checkpoint, args.repeats)


if __name__ == "__main__":
    main()
