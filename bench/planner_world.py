"""Planner world speed: oracle episodes/s per task (scene generation + MuJoCo execution incl. settling + scoring),
the random baseline, and the cost of observing a scene (three 320x240 ray-cast cameras).

    python bench/planner_world.py --episodes 100
"""

from __future__ import annotations

import argparse
import platform
import time

import mujoco
import numpy as np

from pmoe_core.planner.episodes import run_bench
from pmoe_core.planner.observe import observe
from pmoe_core.planner.tasks import TASKS, make_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
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

    descs = [make_scene(t, args.seed + i) for t in TASKS for i in range(5)]
    start = time.perf_counter()
    points = [len(observe(d)) for d in descs]
    per = (time.perf_counter() - start) / len(descs)
    print(f"observe: {1000 * per:.0f} ms per scene, {np.mean(points):.0f} points on average")


if __name__ == "__main__":
    main()
