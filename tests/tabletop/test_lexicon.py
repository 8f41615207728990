"""The named-colour lexicon: built from matplotlib's tables, normalised, and found in text by longest match."""

from __future__ import annotations

import numpy as np
from matplotlib import colors as mcolors

from pmoe_core.tabletop.lexicon import (
    BASIC_TERMS,
    basic_term,
    basic_term_of,
    colour_family,
    colour_lexicon,
    colour_words_in,
    family_distance,
    hue_difference,
    is_achromatic,
    lexicon_colour,
    to_lab,
)
from pmoe_core.tabletop.world import COLORS


def test_lexicon_is_large_unique_and_has_the_cliport_colours():
    lexicon = colour_lexicon()
    names = [c.name for c in lexicon]
    assert len(names) > 900 and len(names) == len(set(names))
    assert set(COLORS) <= set(names)
    assert all(c.name == c.name.lower() and "xkcd:" not in c.name for c in lexicon)
    assert {c.source for c in lexicon} == {"xkcd", "css4", "xkcd+css4"}


def test_values_come_from_matplotlib():
    dusty = mcolors.to_rgb(mcolors.XKCD_COLORS["xkcd:dusty pink"])
    assert lexicon_colour("dusty pink").rgb == tuple(round(255 * v) for v in dusty)
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


def test_families_hold_the_kinds_of_a_colour():
    blue = [c.name for c in colour_family(lexicon_colour("blue"))]
    assert "blue" in blue and "dusky blue" in blue and "light blue" in blue and "blue green" not in blue
    assert [c.name for c in colour_family(lexicon_colour("dark sea green"))] == ["dark sea green"]


def test_scene_colours_are_near_their_own_family_and_basic_terms_are_words():
    """The muted scene palette: each colour is within delta E 12 of its own name's family except cyan (21), whose
    basic term (blue) it shares with the name "cyan"; the far prototype alone would not do (blue: 72)."""
    for name, rgb in COLORS.items():
        own = float(family_distance(lexicon_colour(name), rgb))
        assert own <= 12 or basic_term(rgb) == basic_term_of(lexicon_colour(name)), name
    assert np.linalg.norm(to_lab(lexicon_colour("blue").rgb) - to_lab(COLORS["blue"])) > 70
    assert set(BASIC_TERMS) <= {c.name for c in colour_lexicon()}
    assert basic_term((0, 0, 0)) == "black" and basic_term_of(lexicon_colour("navy")) == "blue"


def test_each_scene_colour_reads_as_one_basic_term():
    """Families blur (the scene's red lies in pink's, its brown in gray's): the reading picks one term, by kind
    (white, gray and black only for chroma <= 15) and focal colour. Cyan is no basic term; it reads as blue."""
    reads = {name: basic_term(rgb) for name, rgb in COLORS.items()}
    assert reads == {name: "blue" if name == "cyan" else name for name in COLORS}
    assert is_achromatic(COLORS["gray"]) and not is_achromatic(COLORS["brown"])
    # the lexicon's "brownish grey" and "greyish brown" have chroma 15.5 and 17.6: browns; "blue grey" (14.8) a gray
    assert [basic_term(lexicon_colour(n).rgb) for n in ("brownish grey", "greyish brown", "blue grey")] == \
        ["brown", "brown", "gray"]
    assert float(hue_difference(lexicon_colour("cyan").rgb, COLORS["blue"])) > 60
    assert float(hue_difference(lexicon_colour("cyan").rgb, COLORS["cyan"])) < 10
    assert float(hue_difference((255, 0, 0), (255, 0, 0))) == 0.0
