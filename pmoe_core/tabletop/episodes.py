"""Running episodes and benchmarks: scene -> policy steps -> MuJoCo execution -> score."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from pmoe_core.errors import BadInput
from pmoe_core.progress import Progress, silent
from pmoe_core.tabletop.metric import Score, score
from pmoe_core.tabletop.oracle import Step, oracle_steps, random_steps
from pmoe_core.tabletop.sim import execute
from pmoe_core.tabletop.tasks import TASKS, make_scene, task_name
from pmoe_core.tabletop.world import SceneDesc

Policy = Callable[[SceneDesc], list[Step]]


def _random(desc: SceneDesc) -> list[Step]:
    return random_steps(desc, np.random.default_rng([desc.seed, 7]))


POLICIES: dict[str, Policy] = {"oracle": oracle_steps, "random": _random}


@dataclass
class TaskResult:
    """One task's benchmark row; `score` is the mean reward x 100 (LoHoRavens' 0-100 score)."""

    task: str
    episodes: int
    success_rate: float
    score: float
    episodes_per_s: float


def run_episode(desc: SceneDesc, policy: Policy) -> Score:
    rollout = execute(desc, policy(desc))
    return score(desc, rollout.poses, rollout.stable)


def run_bench(
    tasks: list[str],
    episodes: int,
    policy: str,
    seed: int = 0,
    split: str = "seen",
    progress: Progress = silent,
    policy_fn: Policy | None = None,
    phrasing: str = "template",
) -> list[TaskResult]:
    """Episodes seed, seed+1, ... of every task in `tasks` ("all" = every task) under `policy`.

    `policy_fn` runs a policy that needs more than a name (a trained model, see planner/policy.py) under `policy`;
    `phrasing` words the instructions (tabletop/phrasing.py; the scenes are the same in every phrasing).
    """
    fn = policy_fn or POLICIES.get(policy)
    if fn is None:
        raise BadInput(f"unknown policy {policy!r}; known: {', '.join([*POLICIES, 'model'])}")
    if episodes < 1:
        raise BadInput(f"--episodes must be >= 1, got {episodes}")
    names = list(TASKS) if tasks == ["all"] else [task_name(t) for t in tasks]
    progress(total=len(names) * episodes)
    results = []
    for name in names:
        start = time.perf_counter()
        scores = []
        for i in range(episodes):
            scores.append(run_episode(make_scene(name, seed + i, split, phrasing), fn))
            progress(advance=1, message=name)
        elapsed = time.perf_counter() - start
        results.append(
            TaskResult(
                name,
                episodes,
                float(np.mean([s.success for s in scores])),
                float(100 * np.mean([s.reward for s in scores])),
                episodes / elapsed,
            )
        )
    return results


def bench_report(results: list[TaskResult], policy: str, seed: int, split: str, phrasing: str = "template") -> dict:
    """The JSON written by `pmoe plan bench --json` (schema `planner_bench`)."""
    return {
        "format": "pmoe-planner-bench",
        "version": 1,
        "policy": policy,
        "seed": seed,
        "split": split,
        "phrasing": phrasing,
        "tasks": [asdict(r) for r in results],
    }
