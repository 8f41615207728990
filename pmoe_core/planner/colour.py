"""Colour, measured and named: CIELAB of measured colours, and colour words grounded in CIELAB by language.

The objects' colours are measured from the cloud and compared in CIELAB (`rgb_to_lab`), where distance follows
what people call a different colour far better than in rgb. A colour word is grounded in the same space by
language-side data, not by demonstrations: a named-colour lexicon (tabletop/lexicon.py: the CSS4 and XKCD names
with their rgb) trains `ColourHead`, which reads the frozen LM's state of every token of a phrase and says which
tokens name a colour (a pooling weight) and what CIELAB colour they name. The head is trained in Stage I and frozen
in Stage II, so the seven colours of the demonstrations cannot overwrite what ~950 names taught it; a word the
demonstrations never had ("pink") lands where the lexicon put it.

How an asked colour relates to the objects (which one is meant, whether it matters for the task) is learned by the
planner from demonstrations: it gets the difference between the asked colour and each object's (model.py).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import nn

from pmoe_core.tabletop.lexicon import D65_WHITE, SRGB_TO_XYZ

# CIELAB under D65, from sRGB.
_M = torch.tensor(SRGB_TO_XYZ, dtype=torch.float32)
_WHITE = torch.tensor(D65_WHITE, dtype=torch.float32)

# Phrases a colour name is read in: the LM's state of a word depends on the words before it, and instructions name
# colours inside such phrases ("... on the red block").
CARRIERS = ("{c}", "the {c} block", "the {c} bowl", "the {c} zone", "stack them on the {c} block",
            "put the {c} block there", "the small {c} one")
HELD_OUT_EVERY = 10  # lexicon names with crc32(name) % 10 == 0 are held out of Stage I, to measure generalisation


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) sRGB in [0, 1] -> (..., 3) CIELAB (L in [0, 100], a and b about [-100, 100]).

    The tensor twin of `tabletop.lexicon.to_lab` (same constants; the model converts on its own device and dtype,
    the world's checks on numpy arrays of 0-255)."""
    rgb = rgb.clamp(0, 1)
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _M.to(rgb).t() / _WHITE.to(rgb)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(-1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-1)


@dataclass
class ColourHeadConfig:
    hidden: int = 128


@dataclass
class AskedColour:
    """The colour a text names, pooled over its tokens: CIELAB / 100, and each token's pooling weight."""

    lab: torch.Tensor  # (B, 3)
    weights: torch.Tensor  # (B, T)


class ColourHead(nn.Module):
    """Frozen-LM token states (B, T, H) -> the CIELAB colour the text names (`AskedColour`)."""

    def __init__(self, cfg: ColourHeadConfig, text_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, cfg.hidden), nn.GELU(),
                                 nn.Linear(cfg.hidden, 4))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> AskedColour:
        out = self.net(states)
        weights = out[..., 3].masked_fill(~mask, float("-inf")).softmax(-1)
        return AskedColour((weights[..., None] * out[..., :3]).sum(1), weights)


@dataclass(frozen=True)
class LexiconEntry:
    name: str
    lab: tuple[float, float, float]  # CIELAB / 100


def lexicon_entries() -> tuple[list[LexiconEntry], list[LexiconEntry]]:
    """(train, held out) entries of the named-colour lexicon, split by a hash of the name."""
    from pmoe_core.tabletop.lexicon import colour_lexicon

    entries = {}
    for named in colour_lexicon():
        rgb = np.asarray(named.rgb, dtype=np.float32)
        rgb = rgb / 255.0 if rgb.max() > 1.0 else rgb
        entries.setdefault(named.name.strip().lower(), rgb)
    names = sorted(entries)
    labs = (rgb_to_lab(torch.from_numpy(np.stack([entries[n] for n in names]))) / 100.0).tolist()
    out = [LexiconEntry(n, tuple(lab)) for n, lab in zip(names, labs)]
    held = [e for e in out if zlib.crc32(e.name.encode()) % HELD_OUT_EVERY == 0]
    return [e for e in out if zlib.crc32(e.name.encode()) % HELD_OUT_EVERY != 0], held


def lexicon_split(names: int | None = None) -> tuple[list[LexiconEntry], list[LexiconEntry]]:
    """(train, held-out) lexicon entries, the training names cut to `names` spread over the alphabet (None: all;
    tests train on a few), the held-out ones whole."""
    train, held_out = lexicon_entries()
    if names is not None:
        train = train[:: max(1, len(train) // max(1, names))][:names]
    return train, held_out


def _cased(text: str, key: str) -> str:
    """`text` in the case instructions come in (lower, Capitalised or UPPER), fixed by a hash of `key`."""
    case = zlib.crc32(key.encode()) % 8
    return text.upper() if case == 0 else text[:1].upper() + text[1:] if case < 3 else text


def lexicon_phrase(name: str, carrier: int) -> str:
    """`name` in carrier `carrier`, in a case fixed per pair (so the set of phrases stays one per pair).
    Carriers past `CARRIERS` are the name's `FRAMES_PER_NAME` instruction frames (`framed_phrase`)."""
    if carrier >= len(CARRIERS):
        return framed_phrase(name, carrier - len(CARRIERS))
    return _cased(CARRIERS[carrier].format(c=name), f"{name}|{carrier}")


# A colour word inside a whole instruction: the head's pooling must find it among a dozen other words. Trained on the
# short carriers alone, it found unseen-split words in 40% of unseen-colour bench instructions (83% with frames).
FRAMES_PER_NAME = 3


@cache
def instruction_frames() -> tuple[str, ...]:
    """The training phrasings' frames that name a colour (tabletop/phrasing.py "train"; never a held-out one)."""
    from pmoe_core.tabletop.phrasing import frames
    from pmoe_core.tabletop.tasks import TASKS

    return tuple(sorted({f for task in TASKS for f in frames(task, "train") if "{color}" in f}))


def framed_phrase(name: str, k: int) -> str:
    """`name` in the k-th of its instruction frames (chosen by a hash; a named position filled the same way)."""
    from pmoe_core.tabletop.phrasing import fill
    from pmoe_core.tabletop.tasks import POSITIONS

    h = zlib.crc32(f"{name}|frame{k}".encode())
    frames, places = instruction_frames(), list(POSITIONS)
    text = fill(frames[h % len(frames)], {"color": name, "position": places[(h >> 8) % len(places)]})
    return _cased(text, f"{name}|frame{k}")


def lexicon_texts(entries: list[LexiconEntry], framed: bool = False) -> list[str]:
    """Every phrase Stage I reads: each name in each carrier (and, `framed`, in its instruction frames)."""
    carriers = len(CARRIERS) + (FRAMES_PER_NAME if framed else 0)
    return [lexicon_phrase(e.name, c) for e in entries for c in range(carriers)]


def lexicon_batch(entries: list[LexiconEntry], seed: int, step: int, size: int,
                  framed: bool = False) -> tuple[list[str], torch.Tensor]:
    """`size` (phrase, CIELAB / 100) pairs of one step: a function of (seed, step) only, as the demo batches are.
    `framed`: every second phrase is the name in one of its instruction frames instead of a short carrier."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_919)
    rows = torch.randint(len(entries), (size,), generator=g).tolist()
    carriers = torch.randint(len(CARRIERS), (size,), generator=g).tolist()
    if framed:
        frames = torch.randint(FRAMES_PER_NAME, (size,), generator=g).tolist()
        carriers = [c if i % 2 == 0 else len(CARRIERS) + f for i, (c, f) in enumerate(zip(carriers, frames))]
    texts = [lexicon_phrase(entries[r].name, c) for r, c in zip(rows, carriers)]
    return texts, torch.tensor([entries[r].lab for r in rows])


def colour_loss(asked: AskedColour, target_lab: torch.Tensor) -> torch.Tensor:
    """Mean squared CIELAB error (units of 100) of the asked colours."""
    return (asked.lab - target_lab).pow(2).sum(-1).mean()


@torch.no_grad()
def nearest_colour_accuracy(asked_lab: torch.Tensor, true_lab: torch.Tensor, palette_lab: torch.Tensor) -> float:
    """Fraction of phrases whose asked colour is nearest (among `palette_lab` (P, 3)) to the same palette entry as
    the phrase's true colour: would the planner pick the right object among objects of these colours."""
    asked = torch.cdist(asked_lab, palette_lab).argmin(-1)
    truth = torch.cdist(true_lab, palette_lab).argmin(-1)
    return float((asked == truth).float().mean())


# Stage II colour paraphrases: a demonstration's colour word swapped for a lexicon name of the same scene colour.
PARAPHRASE_DELTA_E = 20.0  # a name may stand for a world colour within this CIE76 distance of it...
PARAPHRASE_MARGIN = 5.0  # ...and this much nearer to it than to any other world colour


def world_colour_of(lab: np.ndarray) -> str | None:
    """The world colour (tabletop COLORS) a CIELAB colour (0-100 scale) stands for: the nearest, if it lies within
    `PARAPHRASE_DELTA_E` and `PARAPHRASE_MARGIN` nearer than the next; None otherwise."""
    from pmoe_core.tabletop.lexicon import to_lab
    from pmoe_core.tabletop.world import COLORS

    distance = sorted((float(np.linalg.norm(lab - to_lab(np.asarray(rgb, dtype=np.float64)))), name)
                      for name, rgb in COLORS.items())
    (nearest, name), (second, _) = distance[0], distance[1]
    return name if nearest <= PARAPHRASE_DELTA_E and second - nearest >= PARAPHRASE_MARGIN else None


@cache
def colour_paraphrases(colour: str) -> tuple[str, ...]:
    """Stage I lexicon names (never held-out ones) that can stand for the world colour `colour` in an instruction
    (`world_colour_of`).

    Stage II reads every colour word through the frozen colour head (the asked colour against each object's); with
    only the seven demonstrated words, the trunk can instead learn each word's LM state by heart, and a word it never
    met ("purple", grounded right) then points nowhere. Names that word or stem an unseen-split colour ("pinkish
    red") are left out: unseen colours never appear in Stage II."""
    from pmoe_core.tabletop.lexicon import words_of
    from pmoe_core.tabletop.world import SPLITS

    train, _ = lexicon_entries()
    return tuple(entry.name for entry in train
                 if not any(word.startswith(u[:4]) for word in words_of(entry.name) for u in SPLITS["unseen"])
                 and world_colour_of(np.asarray(entry.lab) * 100.0) == colour)


def swap_colour_word(instruction: str, colour: str, name: str) -> str:
    """`instruction` with its word for `colour` (either spelling, any case) replaced by `name` in the same case."""
    from pmoe_core.tabletop.phrasing import british

    spellings = {colour, british(colour)}
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in spellings) + r")\b", re.IGNORECASE)

    def cased(match: re.Match) -> str:
        word = match.group(0)
        if word.isupper():
            return name.upper()
        return name[:1].upper() + name[1:] if word[:1].isupper() else name

    return pattern.sub(cased, instruction, count=1)
