"""Stage II colour paraphrases: which lexicon names may stand for a world colour, and how an instruction is reworded."""

from __future__ import annotations

import numpy as np

from pmoe_core.planner.colour import (
    PARAPHRASE_DELTA_E,
    colour_paraphrases,
    lexicon_entries,
    swap_colour_word,
)
from pmoe_core.planner.demos import DemoSet
from pmoe_core.planner.train import PlannerTrainConfig, stage2_instructions
from pmoe_core.tabletop.lexicon import to_lab, words_of
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


def test_a_batch_takes_a_paraphrase_at_the_configured_rate_and_is_reproducible():
    n = 400
    demos = DemoSet(np.zeros((n, 1, 7)), np.zeros((n, 1, 2, 7)), np.ones(n, dtype=np.int64),
                    [f"on the red block {i}" for i in range(n)], np.full((n, 1), ""), np.zeros((n, 1, 2)),
                    ["stack-blocks"] * n, np.arange(n), np.zeros(n, dtype=bool))
    variants = [(f"on the cherry block {i}", f"on the coral block {i}") for i in range(n)]
    rows = list(range(n))
    cfg = PlannerTrainConfig(batch_size=n, colour_paraphrase=0.5)
    texts = stage2_instructions(demos, variants, rows, cfg, step=3)
    assert texts == stage2_instructions(demos, variants, rows, cfg, step=3)
    share = np.mean([t.startswith("on the cherry") or t.startswith("on the coral") for t in texts])
    assert 0.4 < share < 0.6
    assert stage2_instructions(demos, variants, rows, PlannerTrainConfig(colour_paraphrase=0.0), 3) == demos.instructions
    assert stage2_instructions(demos, [], rows, cfg, 3) == demos.instructions
