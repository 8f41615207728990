"""Oracle and random policies executed in MuJoCo; pose-sequence JSON."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from pmoe_core.errors import FormatError
from pmoe_core.tabletop.episodes import POLICIES, run_bench, run_episode
from pmoe_core.tabletop.oracle import oracle_steps, random_steps, steps_from_json, steps_to_json
from pmoe_core.tabletop.tasks import TASKS, make_scene
from pmoe_core.schemas import validate


def test_poses_json_round_trip_and_schema():
    steps = oracle_steps(make_scene("stack-block-pyramid", 1))
    data = json.loads(json.dumps(steps_to_json(steps)))
    validate(data, "planner_poses")
    assert steps_from_json(data) == steps
    data["steps"][0]["pick"]["quaternion"] = [0.5, 0.5, 0.0, 0.0]
    with pytest.raises(FormatError, match="poses.json: step 0: quaternion"):
        steps_from_json(data, "poses.json")
    del data["steps"][0]["place"]
    with pytest.raises(FormatError, match="steps/0"):
        steps_from_json(data)


@pytest.mark.parametrize("task", TASKS)
def test_oracle_solves_a_few_episodes(task):
    for seed in range(3):
        for split in ("seen", "unseen"):
            s = run_episode(make_scene(task, seed, split), POLICIES["oracle"])
            assert s.success and s.reward == 1.0, (task, seed, split)


@pytest.mark.slow
def test_oracle_success_at_least_99_percent_over_100_episodes_every_task():
    start = time.perf_counter()
    results = run_bench(["all"], 100, "oracle", seed=1000)
    elapsed = time.perf_counter() - start
    for r in results:
        assert r.success_rate >= 0.99, r
    print(f"oracle: {700 / elapsed:.0f} episodes/s")


def test_random_policy_scores_near_zero():
    results = run_bench(["all"], 10, "random", seed=0)
    assert np.mean([r.success_rate for r in results]) <= 0.05
    assert max(r.score for r in results) <= 20


def test_random_steps_respect_the_workspace_and_budget():
    desc = make_scene("stack-blocks", 0)
    steps = random_steps(desc, np.random.default_rng(0))
    assert len(steps) == desc.max_steps
    xy = np.array([s.place.position[:2] for s in steps])
    assert (xy[:, 0] >= 0.25).all() and (xy[:, 0] <= 0.75).all() and (np.abs(xy[:, 1]) <= 0.5).all()
