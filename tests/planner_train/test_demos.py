"""Demonstrations: referring phrases, deterministic oracle demos in training phrasings, the npz cache."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest

from pmoe_core.planner import demos
from pmoe_core.planner.demos import (
    DemoSpec,
    canonical_steps,
    generate_demos,
    load_demos,
    referring_phrases,
)
from pmoe_core.tabletop.episodes import run_episode
from pmoe_core.tabletop.mirror import mirror_scene
from pmoe_core.tabletop.tasks import TASKS, make_scene


@pytest.mark.parametrize("task", sorted(TASKS))
def test_referring_phrases_name_exactly_one_object(task):
    for seed in range(4):
        desc = make_scene(task, seed)
        phrases = referring_phrases(desc)
        assert 1 <= len(phrases) <= demos.REFS
        for text, x, y in phrases:
            named = [o for o in desc.objects if o.position[:2] == (x, y)]
            assert len(named) == 1 and named[0].kind in text, (text, seed)
            if named[0].color in text:  # the words single it out: no other object of its kind has them all
                others = [o for o in desc.objects if o is not named[0] and o.kind == named[0].kind
                          and o.color == named[0].color]
                assert not others or ("big" in text or "small" in text), (text, seed)


def test_demos_are_oracle_sequences_and_deterministic():
    spec = DemoSpec(("stack-blocks",), episodes=2, num_points=256, max_steps=6)
    a, b = generate_demos(spec), generate_demos(spec)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.poses, b.poses)
    assert a.points.shape == (4, 256, 7) and a.points.dtype == np.float32
    assert a.points[..., 6].max() >= 2  # the proposal ids of at least three blocks
    desc = make_scene("stack-blocks", 1, phrasing="train")
    steps = canonical_steps(desc)
    assert a.lengths[2] == len(steps) and a.instructions[2] == desc.instruction
    assert np.allclose(a.poses[2, 0, 1, :3], steps[0].place.position, atol=1e-6)
    assert a.seeds.tolist() == [0, 0, 1, 1] and a.tasks == ["stack-blocks"] * 4
    assert a.mirrored.tolist() == [False, True, False, True]


def test_every_episode_comes_with_its_mirror():
    """The mirrored row is the rendered mirror scene (not a flipped copy): its own canonical plan, mirrored words."""
    spec = DemoSpec(("move-block-to-absolute-position",), episodes=6, num_points=256, max_steps=6)
    demo = generate_demos(spec)
    for row in range(1, len(demo), 2):
        mirrored = mirror_scene(make_scene(spec.tasks[0], int(demo.seeds[row]), phrasing="train"))
        assert demo.instructions[row] == mirrored.instruction
        place = canonical_steps(mirrored)[0].place.position
        assert np.allclose(demo.poses[row, 0, 1, :3], place, atol=1e-6)
        assert np.allclose(demo.poses[row, 0, 1, :2], demo.poses[row - 1, 0, 1, :2] * [1, -1], atol=1e-6)
        sides = np.sign(demo.points[row, :, 1].mean()), np.sign(demo.points[row - 1, :, 1].mean())
        assert sides[0] == -sides[1]  # the rendered cloud is reflected too
    assert any("left" in t for t in demo.instructions[1::2]) and any("right" in t for t in demo.instructions[1::2])


def test_cache_round_trip(tmp_path, monkeypatch):
    spec = DemoSpec(("stack-blocks",), episodes=1, num_points=128, max_steps=6)
    first = load_demos(spec, tmp_path)
    files = list(tmp_path.glob("demos-*.npz"))
    assert len(files) == 1

    def render_again(*_args, **_kw):
        raise AssertionError("the cached set was rendered again")

    monkeypatch.setattr(demos, "generate_demos", render_again)
    again = load_demos(spec, tmp_path)
    assert np.array_equal(first.points, again.points) and np.array_equal(first.ref_texts, again.ref_texts)
    assert first.instructions == again.instructions and np.array_equal(first.mirrored, again.mirrored)


def test_cached_set_takes_the_current_wording(tmp_path, monkeypatch):
    """Instructions are worded at load: a phrasing change reaches a cached set (it once kept the stale ones)."""
    spec = DemoSpec(("stack-blocks",), episodes=2, num_points=128, max_steps=6)
    load_demos(spec, tmp_path)
    monkeypatch.setattr(demos, "make_scene", lambda *a: dataclasses.replace(make_scene(*a), instruction="reworded"))
    assert load_demos(spec, tmp_path).instructions == ["reworded"] * 4


@pytest.mark.parametrize("task", sorted(TASKS))
def test_canonical_order_still_solves_every_task(task):
    for seed in (0, 1, 2, 3):
        desc = make_scene(task, seed)
        steps = canonical_steps(desc)
        assert run_episode(desc, lambda _d: steps).success, (task, seed)
        heights = [s.place.position[2] for s in steps]
        assert heights == sorted(heights)  # nothing is placed on a block that is not there yet
        yaws = [p.yaw for s in steps for p in (s.pick, s.place)]
        assert all(-math.pi / 4 - 1e-9 <= y < math.pi / 4 + 1e-9 for y in yaws)  # folded by the cube's symmetry


def test_canonical_order_is_geometric_not_by_object_id():
    desc = make_scene("put-block-into-matching-bowl", 5)
    places = [s.place.position[:2] for s in canonical_steps(desc)]
    assert places == sorted(places) and len(places) > 1
    tower = make_scene("stack-blocks", 2)
    firsts = [tower.object(c).position[:2] for c in tower.goals[0].candidates]
    assert canonical_steps(tower)[0].pick.position[:2] == pytest.approx(min(firsts), abs=1e-6)


def test_cli_constants_match_the_trainer():
    """pmoe_cli.plan_train keeps copies of these so `pmoe --help` does not import torch."""
    import pmoe_cli.plan_train as cli
    from pmoe_core.planner import train

    assert cli.DEFAULT_TASKS == train.DEFAULT_TASKS and cli.PRESETS == train.PRESETS
    defaults = {name: p.default.default for name, p in inspect.signature(cli.train).parameters.items()}
    config = train.PlannerTrainConfig()
    assert defaults["tasks"] == "all" and config.tasks == tuple(TASKS)
    for name in ("episodes", "steps_stage1", "steps", "batch_size", "lr", "llm", "joint", "experts", "preset", "seed"):
        assert defaults[name] == getattr(config, name), name  # `pmoe plan train` with no options = the config
