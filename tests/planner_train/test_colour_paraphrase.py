"""Stage II instructions: which lexicon names may stand for a world colour, how an instruction is reworded, and the
training wordings each demonstration is seen in."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pmoe_core.planner.colour import (
    PARAPHRASE_DELTA_E,
    colour_paraphrases,
    lexicon_entries,
    swap_colour_word,
)
from pmoe_core.planner.demos import DemoSet, DemoSpec
from pmoe_core.planner.train import (
    InstructionOptions,
    PlannerTrainConfig,
    instruction_options,
    stage2_instructions,
)
from pmoe_core.tabletop.lexicon import to_lab, words_of
from pmoe_core.tabletop.mirror import mirror_words
from pmoe_core.tabletop.phrasing import fill, frames, normalise
from pmoe_core.tabletop.tasks import make_scene
from pmoe_core.tabletop.world import COLORS, SPLITS


def test_paraphrases_are_near_their_colour_and_never_unseen_or_held_out_names():
    _, held_out = lexicon_entries()
    held = {e.name for e in held_out}
    labs = {e.name: np.asarray(e.lab) * 100 for e in lexicon_entries()[0]}
    world = {c: to_lab(np.asarray(rgb, dtype=np.float64)) for c, rgb in COLORS.items()}
    for colour in SPLITS["seen"]:
        names = colour_paraphrases(colour)
        assert len(names) >= 5, colour
        for name in names:
            assert name not in held
            assert not any(w.startswith(u[:4]) for w in words_of(name) for u in SPLITS["unseen"]), name
            d = {c: float(np.linalg.norm(labs[name] - v)) for c, v in world.items()}
            assert min(d, key=d.get) == colour and d[colour] <= PARAPHRASE_DELTA_E, (colour, name)


def test_swap_keeps_the_case_and_replaces_only_the_named_colour():
    assert swap_colour_word("STACK THEM ON THE GREY BLOCK.", "gray", "cool blue") == "STACK THEM ON THE COOL BLUE BLOCK."
    assert swap_colour_word("Red block first", "red", "cherry") == "Cherry block first"
    assert swap_colour_word("put it on the red zone", "red", "cherry") == "put it on the cherry zone"
    assert swap_colour_word("stack them on the bored block", "red", "cherry") == "stack them on the bored block"


def _demos(instructions: list[str], tasks: list[str], seeds: list[int], mirrored: list[bool]) -> DemoSet:
    n = len(instructions)
    return DemoSet(np.zeros((n, 1, 7)), np.zeros((n, 1, 2, 7)), np.ones(n, dtype=np.int64), instructions,
                   np.full((n, 1), ""), np.zeros((n, 1, 2)), tasks, np.asarray(seeds), np.asarray(mirrored, dtype=bool))


def test_a_batch_takes_a_paraphrase_at_the_configured_rate_else_any_wording_and_is_reproducible():
    n = 400
    demos = _demos([f"on the red block {i}" for i in range(n)], ["stack-blocks"] * n, list(range(n)), [False] * n)
    options = [InstructionOptions((f"on the red block {i}", f"the red one {i}"),
                                  (f"on the cherry block {i}", f"on the coral block {i}")) for i in range(n)]
    rows = list(range(n))
    cfg = PlannerTrainConfig(batch_size=n, colour_paraphrase=0.5, wordings=2)
    texts = stage2_instructions(demos, options, rows, cfg, step=3)
    assert texts == stage2_instructions(demos, options, rows, cfg, step=3)
    kinds = [("cherry" in t or "coral" in t, t.startswith("the red one")) for t in texts]
    paraphrased = np.mean([p for p, _ in kinds])
    assert 0.4 < paraphrased < 0.6
    assert 0.15 < np.mean([o for _, o in kinds]) < 0.35  # half of the unparaphrased half
    plain = stage2_instructions(demos, options, rows, dataclasses.replace(cfg, colour_paraphrase=0.0), 3)
    assert all("cherry" not in t and "coral" not in t for t in plain)
    assert stage2_instructions(demos, [], rows, cfg, 3) == demos.instructions


@pytest.mark.parametrize("task", ["stack-blocks", "move-block-to-absolute-position", "stack-blocks-of-same-color"])
def test_each_demonstration_gets_training_wordings_of_its_own_scene_mirrored_with_it(task):
    seeds = [0, 0, 1, 1, 2, 2]
    mirrored = [False, True] * 3
    own = [make_scene(task, s, "seen", "train").instruction for s in seeds]
    own = [mirror_words(t) if m else t for t, m in zip(own, mirrored)]
    demos = _demos(own, [task] * len(seeds), seeds, mirrored)
    spec = DemoSpec((task,), 3, 64, 8)
    cfg = PlannerTrainConfig(wordings=4)
    options = instruction_options(demos, spec, cfg)
    assert options == instruction_options(demos, spec, cfg)
    allowed = frames(task, "train")
    for option, seed, flip, text in zip(options, seeds, mirrored, own):
        words = make_scene(task, seed, "seen", "train").words
        shown = {k: mirror_words(v) for k, v in words.items()} if flip else words
        assert len(option.wordings) == 4 and option.wordings[0] == text
        assert len(set(option.wordings)) > 1
        for wording in option.wordings:
            assert normalise(wording) in {normalise(fill(f, shown)) for f in allowed}, wording
        colour = words.get("color")
        assert bool(option.paraphrased) == bool(colour)
        for paraphrase in option.paraphrased:
            assert any(swap_colour_word(w, colour, name) == paraphrase
                       for w in option.wordings for name in colour_paraphrases(colour)), paraphrase
    single = instruction_options(demos, spec, dataclasses.replace(cfg, wordings=1))
    assert [o.wordings for o in single] == [(t,) for t in own]
