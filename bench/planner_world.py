"""Planner world speed: oracle episodes/s per task (scene generation + MuJoCo execution incl. settling + scoring),
the random baseline, and the cost of observing a scene (three 320x240 ray-cast cameras), each against a naive
baseline measured in the same run:

- execution vs a fixed settle: every place steps the whole settle budget (3 s of simulated time) instead of stopping
  once every velocity is ~0, i.e. what a "wait long enough" executor costs;
- observation vs casting the same rays one `mj_ray` call at a time from Python instead of one `mj_multiRay` call.

    python bench/planner_world.py --episodes 100
"""

from __future__ import annotations

import argparse
import platform
import time

import mujoco
import numpy as np

from pmoe_core.tabletop.episodes import run_bench
from pmoe_core.tabletop.metric import score
from pmoe_core.tabletop.mjcf import scene_mjcf
from pmoe_core.tabletop.observe import CAMERAS, observe
from pmoe_core.tabletop.oracle import oracle_steps
from pmoe_core.tabletop.sim import SETTLE_BUDGET, VEL_TOL, Simulator
from pmoe_core.tabletop.tasks import TASKS, make_scene


class FixedSettle(Simulator):
    """Baseline executor: no early exit, every settle runs the full budget."""

    def settle(self, budget: int = SETTLE_BUDGET) -> bool:
        mujoco.mj_step(self.model, self.data, nstep=budget)
        self.physics_steps += budget
        return bool(self.model.nv == 0 or np.abs(self.data.qvel).max() < VEL_TOL)


def execution_ratio(episodes: int, seed: int) -> None:
    """Oracle episodes/s with the early-exit settle vs the fixed settle, same episodes, interleaved per task."""
    print(f"\nexecution vs fixed settle ({episodes} oracle episodes per task, seeds {seed}..):")
    print("| task | early-exit episodes/s | fixed-settle episodes/s | speed-up | success early / fixed |")
    print("|---|---|---|---|---|")
    for task in TASKS:
        times, wins = {}, {}
        for name, cls in (("early", Simulator), ("fixed", FixedSettle)):
            start, ok = time.perf_counter(), 0
            for i in range(episodes):
                desc = make_scene(task, seed + i)
                rollout = cls(desc).execute(oracle_steps(desc))
                ok += score(desc, rollout.poses, rollout.stable).success
            times[name], wins[name] = time.perf_counter() - start, ok
        print(f"| {task} | {episodes / times['early']:.0f} | {episodes / times['fixed']:.1f} | "
              f"{times['fixed'] / times['early']:.1f}x | {wins['early']}/{episodes} / {wins['fixed']}/{episodes} |")


def observe_ratio(seed: int, stride: int = 16) -> None:
    """One mj_multiRay call per camera vs a Python loop of mj_ray over every `stride`-th ray (cost per ray)."""
    desc = make_scene("stack-block-pyramid", seed)
    batched = float("inf")
    for _ in range(3):  # best of 3: the first call also pays for warm-up
        start = time.perf_counter()
        observe(desc)
        batched = min(batched, time.perf_counter() - start)
    n_rays = sum(len(c.rays()) for c in CAMERAS)

    model = mujoco.MjModel.from_xml_string(scene_mjcf(desc))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    geom = np.zeros(1, dtype=np.int32)
    start, cast = time.perf_counter(), 0
    for cam in CAMERAS:
        origin = np.asarray(cam.position, dtype=np.float64)
        for d in cam.rays()[::stride]:
            mujoco.mj_ray(model, data, origin, d, None, 1, -1, geom)
            cast += 1
    looped = (time.perf_counter() - start) / cast * n_rays
    print(f"\nobserve ({n_rays} rays, pyramid scene): mj_multiRay {1000 * batched:.0f} ms per scene, best of 3 "
          f"(incl. noise, crop, colours) vs a Python mj_ray loop {1000 * looped:.0f} ms (rays only, timed on every "
          f"{stride}th ray): {looped / batched:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--baseline-episodes", type=int, default=5, help="episodes per task for the settle baseline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, mujoco {mujoco.__version__}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}")
    oracle = run_bench(["all"], args.episodes, "oracle", args.seed)
    random = run_bench(["all"], args.episodes, "random", args.seed)
    print("| task | oracle success | oracle episodes/s | random success | random score |")
    print("|---|---|---|---|---|")
    for o, r in zip(oracle, random):
        print(f"| {o.task} | {100 * o.success_rate:.0f}% | {o.episodes_per_s:.0f} | {100 * r.success_rate:.0f}% | "
              f"{r.score:.1f} |")
    total = len(oracle) * args.episodes / sum(args.episodes / o.episodes_per_s for o in oracle)
    print(f"oracle, all tasks: {total:.0f} episodes/s")

    execution_ratio(args.baseline_episodes, args.seed)
    observe_ratio(args.seed)

    descs = [make_scene(t, args.seed + i) for t in TASKS for i in range(5)]
    start = time.perf_counter()
    points = [len(observe(d)) for d in descs]
    per = (time.perf_counter() - start) / len(descs)
    print(f"observe: {1000 * per:.0f} ms per scene over {len(descs)} scenes, {np.mean(points):.0f} points on average")


if __name__ == "__main__":
    main()
