"""The named-colour lexicon: built from matplotlib's tables, normalised, and found in text by longest match."""

from __future__ import annotations

import numpy as np
from matplotlib import colors as mcolors

from pmoe_core.tabletop.lexicon import colour_lexicon, colour_words_in, lexicon_colour, to_lab
from pmoe_core.tabletop.world import COLORS


def test_lexicon_is_large_unique_and_has_the_cliport_colours():
    lexicon = colour_lexicon()
    names = [c.name for c in lexicon]
    assert len(names) > 900 and len(names) == len(set(names))
    assert set(COLORS) <= set(names)
    assert all(c.name == c.name.lower() and "xkcd:" not in c.name for c in lexicon)
    assert {c.source for c in lexicon} == {"xkcd", "css4", "xkcd+css4"}


def test_values_come_from_matplotlib():
    assert lexicon_colour("dusty pink").rgb == tuple(round(255 * v) for v in mcolors.to_rgb(mcolors.XKCD_COLORS["xkcd:dusty pink"]))
    steel = lexicon_colour("light steel blue")  # CSS4 "lightsteelblue", split into words
    assert steel.source == "css4" and steel.rgb == (176, 196, 222)
    assert lexicon_colour("green").source == "xkcd+css4"  # one entry for a name both tables hold
    assert lexicon_colour("gray").rgb == lexicon_colour("grey").rgb


def test_colour_words_in_takes_the_longest_phrase():
    found = [c.name for c in colour_words_in("Put the DARK SEA GREEN cube by the red one, not the grey/blue one.")]
    assert found == ["dark sea green", "red", "grey blue"]
    assert colour_words_in("make me a sandwich") == []
    assert [c.name for c in colour_words_in("stack all the blocks on the yellow zone")] == ["yellow"]


def test_lab_of_known_colours():
    assert np.allclose(to_lab((255, 255, 255)), (100, 0, 0), atol=0.05)
    assert np.allclose(to_lab((0, 0, 0)), (0, 0, 0), atol=1e-6)
    assert np.allclose(to_lab((255, 0, 0)), (53.24, 80.09, 67.20), atol=0.1)
