"""How each task family's instruction is worded: the original templates, a training set of variants, and a held-out
set of sentence frames and words that training never produces.

Three phrasing sets (`PHRASINGS`):
- "template": the three original templates per task, lower case, no punctuation (what the first planners trained
  and were benchmarked on; `make_scene`'s default, so a (task, seed, split) names the same scene as ever).
- "train": the templates plus generated variants: word order (the place first: "on the red block, stack all the
  blocks"), synonyms (block/cube/object, put/place/set, stack/pile, bowl/dish/container, zone/area/region,
  color/hue), politeness ("please ...", "could you ...?", "..., thanks"), British spelling (colour, grey, centre),
  case (lower, Capitalised, UPPER) and end punctuation (none, ".", "!").
- "heldout": other sentence frames, other synonyms (box/piece, drop, heap, basin, square, shade) and other
  politeness ("kindly ...", "can you ...?", "i would like you to ...", "..., please"), with the same case, spelling
  and punctuation variants. No normalised frame of it is one of "train" (tests/tabletop/test_phrasing.py).

A frame is a format string over the words a scene names (`{color}`, `{position}`); `normalise` folds case,
punctuation and white space, which is the level at which the sets are disjoint and at which `frames` lists them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from pmoe_core.errors import BadInput

PHRASINGS = ("template", "train", "heldout")

# American -> British spellings a phrasing may use (words of frames and of the named words alike).
BRITISH = {"color": "colour", "colored": "coloured", "gray": "grey", "center": "centre"}


@dataclass(frozen=True)
class TaskWording:
    """A task family's frames: the original `templates`, `variants` (train only: word order and other sentence
    frames), `heldout`."""

    templates: tuple[str, ...]
    variants: tuple[str, ...]
    heldout: tuple[str, ...]


WORDINGS: dict[str, TaskWording] = {
    "stack-blocks": TaskWording(
        (
            "stack all the blocks on the {color} block",
            "build one tower on top of the {color} block with all the other blocks",
            "put every block in a single stack on the {color} block",
        ),
        (
            "on the {color} block, stack all the blocks",
            "on top of the {color} block, build one tower with all the other blocks",
            "use the {color} block as the foundation and pile the rest on it",
            "i want every block stacked on the {color} block",
            "all blocks on the {color} block, in one tower",
            "the tower starts at the {color} block; place the others above it",
            "build a tower whose bottom block is the {color} one",
            "have the others stacked onto the {color} block",
            "move each of the other blocks onto the {color} block",
            "one stack, {color} block underneath, everything else on top",
            "put the {color} block at the bottom of one tower made of all the blocks",
            "the {color} block stays where it is; stack every other block on top of it",
            "gather all the blocks into a single tower with the {color} block at the bottom",
            "every other block ends up above the {color} block",
            "stack everything on the {color} block, so that it is the lowest block of the tower",
            "leave the {color} block on the table and pile all the others on it",
            "first the {color} block, then every other block on top of it, in one tower",
            "sort all the blocks into one tower resting on the {color} block",
            "move every block except the {color} one onto the {color} block",
            "a single tower of all the blocks, with the {color} block as the first one",
        ),
        (
            "the {color} block goes at the bottom: put all the other blocks on top of it",
            "make a single tower using every block, with the {color} block as its base",
            "put all of the blocks onto the {color} one, one on top of another",
        ),
    ),
    "stack-blocks-of-same-color": TaskWording(
        (
            "stack the blocks of the same color, each color on its big block",
            "put the small blocks on the big block of the same color",
            "make one stack per color with the big block at the bottom",
        ),
        (
            "each color on its big block, stack the blocks of the same color",
            "on the big block of the same color, put the small blocks",
            "match the colors: every small block on the big one of its color",
            "build towers by color, the big block of each color at the base",
            "each small block belongs on the large block that has its color",
            "put small blocks onto big blocks with the same color",
            "for every color, stack its small blocks on its big block",
            "make towers where each big block carries the small blocks of its color",
            "group the blocks by color: the small ones go on the big block of their color",
            "sort by color and stack each small block on the larger block of that color",
            "the big block of each color at the bottom, its small blocks on top",
            "each big block is the base for the small blocks that share its color",
            "on each large block, stack the little blocks of the same color",
            "small blocks on big blocks, color matching color",
            "stack by color, the large block underneath",
            "one tower for each color, with the big block of that color at the bottom",
        ),
        (
            "sort the blocks into towers by color, each on the big block of its color",
            "put each small block on top of the large block with the same color",
            "group the blocks by color into stacks, largest at the bottom",
        ),
    ),
    "stack-blocks-in-size-order": TaskWording(
        (
            "stack all blocks on the {color} block in size order, bigger blocks below smaller ones",
            "build a tower on the {color} block from the biggest blocks up to the smallest",
            "stack the blocks on the {color} block so that their size decreases towards the top",
        ),
        (
            "on the {color} block, stack all blocks in size order, bigger blocks below smaller ones",
            "from the biggest blocks up to the smallest, build a tower on the {color} block",
            "on the {color} block, the big block first, then the small ones",
            "build a tower from large to small, starting with the {color} block",
            "the {color} block is the base; add the other big block, then the small blocks",
            "stack by size on the {color} block, smallest at the top",
            "order the blocks by size into a tower on the {color} block",
            "use the {color} block as the base of a tower that gets smaller towards the top",
            "sort the blocks by size into a tower on the {color} block, largest at the bottom",
            "the {color} block at the bottom, then the other big block, and the small blocks at the top",
            "put the blocks on the {color} block in order of size, big ones lower",
            "a tower on the {color} block that goes from large at the bottom to small at the top",
            "group the blocks into a tower on the {color} block by size",
            "stack the big block on the {color} block first and the small blocks last",
            "on the {color} block, stack the largest block first and the smallest at the top",
        ),
        (
            "make a tower on the {color} block with the large block first and the small ones above it",
            "put the blocks on the {color} block, largest first and smallest last",
            "starting from the {color} block, stack the blocks from big to small",
        ),
    ),
    "stack-block-pyramid": TaskWording(
        (
            "stack the blocks into a pyramid on the {color} zone",
            "build a three-two-one pyramid of blocks on the {color} zone",
            "make a pyramid with all six blocks on the {color} zone",
        ),
        (
            "on the {color} zone, stack the blocks into a pyramid",
            "on the {color} zone, make a pyramid with all six blocks",
            "build a pyramid: three blocks at the bottom, then two, then one, on the {color} zone",
            "the six blocks should form a pyramid on the {color} zone",
            "pyramid of blocks, {color} zone",
            "make the blocks into a pyramid standing in the {color} zone",
            "on the {color} zone, a row of three, a row of two and one on top",
            "i want a pyramid of all the blocks on the {color} zone",
            "build three layers on the {color} zone: three blocks, then two, then a single block",
            "place a bottom row of three blocks in the {color} zone, a middle row of two and one block at the top",
            "stack the six blocks on the {color} zone in rows of three, two and one",
            "make a triangle of blocks on the {color} zone, three wide at the base",
            "sort the blocks into a pyramid on the {color} zone",
            "group all the blocks into a pyramid shape on the {color} zone",
        ),
        (
            "arrange the six blocks as a pyramid standing on the {color} zone",
            "on top of the {color} zone, put three blocks in a row, two on them and one at the top",
            "use all the blocks to make a pyramid in the {color} zone",
        ),
    ),
    "put-block-into-matching-bowl": TaskWording(
        (
            "put the blocks in the bowls of the same color",
            "place each block into the bowl that matches its color",
            "put every block in the matching colored bowl",
        ),
        (
            "into the bowls of the same color, put the blocks",
            "into the bowl that matches its color, place each block",
            "match the blocks to the bowls by color",
            "every block into the bowl of its own color",
            "put each block in a bowl, colors matching",
            "find each block's bowl of the same color and put it there",
            "blocks go into bowls that have their color",
            "each block should end up in the bowl with its color",
            "group the blocks with the bowls of their color",
            "each bowl gets the block of the same color",
            "put each block into the bowl of its color, one block per bowl",
            "move every block into the bowl that has the same color as the block",
            "the blocks go in the bowls; match each one by color",
            "place the blocks into bowls so that every color matches",
        ),
        (
            "sort the blocks into the bowls by color",
            "each block goes into the bowl with its color",
            "put every block in the bowl whose color is the same as its own",
        ),
    ),
    "stack-all-blocks-on-a-zone": TaskWording(
        (
            "stack all the blocks on the {color} zone",
            "put all blocks in one stack inside the {color} zone",
            "build a tower of all the blocks on the {color} zone",
        ),
        (
            "on the {color} zone, stack all the blocks",
            "inside the {color} zone, put all blocks in one stack",
            "all the blocks in one tower on the {color} zone",
            "the {color} zone is where the tower goes; stack every block there",
            "pile every block on the {color} zone",
            "build one stack of blocks in the {color} zone",
            "i want all blocks stacked inside the {color} zone",
            "carry every block to the {color} zone and stack them",
            "stack every block in the {color} zone, one on top of the other",
            "the {color} zone gets a single tower with every block",
            "group all the blocks in one pile on the {color} zone",
            "put the blocks on top of each other in the {color} zone",
            "move all the blocks into the {color} zone and build one tower there",
            "a single stack of every block, standing in the {color} zone",
        ),
        (
            "make a single tower out of all the blocks in the {color} zone",
            "put the blocks one on another inside the {color} zone",
            "gather all blocks into a stack on the {color} zone",
        ),
    ),
    "move-block-to-absolute-position": TaskWording(
        (
            "move the {color} block to the {position} of the table",
            "put the {color} block at the {position}",
            "place the {color} block in the {position} of the table",
        ),
        (
            "to the {position} of the table, move the {color} block",
            "at the {position}, put the {color} block",
            "the {color} block to the {position} of the table",
            "i want the {color} block at the {position}",
            "move the {color} block so it sits at the {position} of the table",
            "{color} block, {position}",
            "put the {color} block over at the {position} of the table",
            "the {position} of the table is where the {color} block goes",
            "slide the {color} block to the {position}",
            "the {color} block belongs at the {position} of the table",
            "get the {color} block to the {position}",
            "move only the {color} block, to the {position} of the table",
            "place the {color} block so that it sits at the {position}",
            "carry the {color} block to the {position} of the table",
            "put the {color} block down at the {position}",
        ),
        (
            "take the {color} block over to the {position}",
            "the {color} block should go to the {position} of the table",
            "bring the {color} block to the {position}",
        ),
    ),
}

# Interchangeable words (each tuple: the frame's word first). A frame's every occurrence of a word takes one choice.
SYNONYMS = {
    "train": (
        ("block", "cube", "object"), ("blocks", "cubes", "objects"), ("put", "place", "set"), ("place", "put", "set"),
        ("stack", "pile"), ("bowl", "dish", "container"), ("bowls", "dishes", "containers"),
        ("zone", "area", "region"), ("color", "hue"),
    ),
    "heldout": (
        ("block", "box", "piece"), ("blocks", "boxes", "pieces"), ("put", "drop"), ("stack", "heap"),
        ("bowl", "basin"), ("bowls", "basins"), ("zone", "square"), ("color", "shade"),
    ),
}
# (prefix, suffix) pairs.
POLITENESS = {
    "train": (("", ""), ("please ", ""), ("please, ", ""), ("could you ", "?"), ("", ", thanks"), ("", " thanks")),
    "heldout": (("", ""), ("kindly ", ""), ("can you ", "?"), ("i would like you to ", ""), ("", ", please"),
                ("", " thank you")),
}
# A polite prefix ("please", "could you") goes only before a frame that starts with one of these verbs.
VERBS = frozenset(("stack", "build", "put", "place", "set", "pile", "make", "move", "sort", "group", "arrange", "use",
                   "gather", "take", "bring", "drop", "heap", "match",
                   "order", "find", "carry", "have", "slide", "get", "leave"))
ENDINGS = ("", ".", "!")
CASES = ("lower", "capitalised", "upper")
CASE_WEIGHTS = (0.5, 0.35, 0.15)
BRITISH_RATE = 0.3
TEMPLATE_RATE = 0.25  # share of "train" instructions that are an original template as it is


def check_phrasing(phrasing: str) -> str:
    if phrasing not in PHRASINGS:
        raise BadInput(f"unknown phrasing {phrasing!r}; known: {', '.join(PHRASINGS)}")
    return phrasing


def normalise(text: str) -> str:
    """Lower case, punctuation dropped (braces of a frame's slots kept), white space collapsed."""
    return " ".join(re.sub(r"[^\w\s{}'-]", " ", text.lower()).split())


def _frames_of(task: str, phrasing: str) -> tuple[str, ...]:
    wording = WORDINGS[task]
    return wording.templates + wording.variants if phrasing == "train" else wording.heldout


def _word_choices(frame: str, phrasing: str) -> list[tuple[str, ...]]:
    present = set(re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", frame)))
    return [group for group in SYNONYMS[phrasing] if group[0] in present]


def _substitute(frame: str, groups: list[tuple[str, ...]], picks: tuple[str, ...]) -> str:
    table = {group[0]: pick for group, pick in zip(groups, picks)}
    return re.sub(r"\{\w+\}|[a-z]+", lambda m: table.get(m.group(0), m.group(0)), frame)


def british(text: str) -> str:
    """`text` with British spellings (colour, grey, centre); a frame's `{slots}` are left alone."""
    return re.sub(r"\{\w+\}|[a-z]+", lambda m: BRITISH.get(m.group(0), m.group(0)), text)


def _politeness(body: str, phrasing: str) -> tuple[tuple[str, str], ...]:
    imperative = body.split(" ", 1)[0] in VERBS
    return tuple(p for p in POLITENESS[phrasing] if imperative or not p[0])


def _case(text: str, case: str) -> str:
    if case == "upper":
        return text.upper()
    return text[:1].upper() + text[1:] if case == "capitalised" else text


def render(task: str, words: dict[str, str], phrasing: str, rng: np.random.Generator) -> str:
    """One instruction for a scene of `task` naming `words`, drawn from `phrasing`'s set with `rng`.

    "template" draws exactly one integer (as task generation always did), so template scenes stay what they were.
    """
    check_phrasing(phrasing)
    wording = WORDINGS[task]
    if phrasing == "template":
        return wording.templates[int(rng.integers(len(wording.templates)))].format(**words)
    if phrasing == "train" and rng.random() < TEMPLATE_RATE:
        return wording.templates[int(rng.integers(len(wording.templates)))].format(**words)
    frames = _frames_of(task, phrasing)
    frame = frames[int(rng.integers(len(frames)))]
    groups = _word_choices(frame, phrasing)
    picks = tuple(group[int(rng.integers(len(group)))] for group in groups)
    body = _substitute(frame, groups, picks)
    polite = _politeness(body, phrasing)
    prefix, suffix = polite[int(rng.integers(len(polite)))]
    text = prefix + body.format(**words) + suffix
    if rng.random() < BRITISH_RATE:
        text = british(text)
    if not suffix.endswith("?"):
        text += ENDINGS[int(rng.integers(len(ENDINGS)))]
    return _case(text, CASES[int(rng.choice(len(CASES), p=CASE_WEIGHTS))])


def frames(task: str, phrasing: str, courtesy: bool = True) -> set[str]:
    """Every normalised frame `phrasing` can produce for `task` (slots left as `{color}`, `{position}`);
    `courtesy=False`: without politeness and British spellings (the frames and synonyms alone)."""
    check_phrasing(phrasing)
    wording = WORDINGS[task]
    if phrasing == "template":
        return {normalise(t) for t in wording.templates}
    out = {normalise(t) for t in wording.templates} if phrasing == "train" else set()
    for frame in _frames_of(task, phrasing):
        groups = _word_choices(frame, phrasing)
        for picks in itertools.product(*groups):
            body = _substitute(frame, groups, picks)
            if not courtesy:
                out.add(normalise(body))
                continue
            for prefix, suffix in _politeness(body, phrasing):
                text = prefix + body + suffix
                out |= {normalise(text), normalise(british(text))}
    return out


def fill(frame: str, words: dict[str, str]) -> str:
    """A frame with its slots filled (slots a scene does not name stay as they are)."""
    return re.sub(r"\{(\w+)\}", lambda m: words.get(m.group(1), m.group(0)), frame)
