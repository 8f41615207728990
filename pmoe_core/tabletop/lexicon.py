"""Named colours as language-side data: what a colour word looks like, from matplotlib's CSS4 and XKCD tables.

The planner learns colour words from this lexicon (Stage I), never from a table of the scene palette, and the input
checks use it to tell whether a colour an instruction names is on the table. Names are normalised so that a user's
words find them: lower case, the "xkcd:" prefix dropped, CSS4's run-together names split into the XKCD words they are
made of ("darkslateblue" -> "dark slate blue"; names that do not split stay whole: "papayawhip"), punctuation between
words dropped ("green/yellow" -> "green yellow"), and every "grey"
name has its "gray" twin (XKCD spells grey). A name both tables hold is one entry with the XKCD value: XKCD's
values come from a survey of what people call a colour, CSS4's from web conventions (CSS "green" is #008000, darker
than what most people mean).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from matplotlib import colors as mcolors

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Berlin & Kay's eleven basic colour terms of English: the words speakers use for a colour before any finer name.
BASIC_TERMS = ("black", "white", "red", "green", "yellow", "blue", "brown", "purple", "pink", "orange", "gray")
ACHROMATIC_TERMS = ("black", "white", "gray")
# CIELAB chroma C*ab at or below which a colour is a white, gray or black rather than a hue: above the lexicon's
# plain grays ("gray" 2.5, "blue gray" 14.8; "brownish gray", 15.5, reads as a brown), below a muted brown (the
# scene's, 21.8).
ACHROMATIC_CHROMA = 15.0
FAMILY_REACH = 12.0  # CIE76 delta E within which a colour's family reaches a colour (planner/checks.py)
FOCAL_MARGIN = 10.0  # how much nearer a focal colour must be to take a colour from the nearest family
# sRGB primaries -> CIE XYZ, and the D65 white point (IEC 61966-2-1).
# sRGB (linear) -> XYZ under D65, and the D65 white: shared with the model's tensor version (planner/colour.py).
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


@dataclass(frozen=True)
class NamedColour:
    """One colour name with its sRGB value (0-255) and where it came from ("xkcd", "css4" or "xkcd+css4")."""

    name: str
    rgb: tuple[int, int, int]
    source: str


def words_of(text: str) -> tuple[str, ...]:
    """Lower-case words of `text` (apostrophes inside a word kept: "robin's egg"); how names and texts are matched."""
    return tuple(WORD.findall(text.lower()))


def _rgb(hex_value: str) -> tuple[int, int, int]:
    r, g, b = mcolors.to_rgb(hex_value)
    return round(255 * r), round(255 * g), round(255 * b)


def _split(name: str, vocabulary: set[str]) -> str:
    """A run-together CSS4 name as the fewest vocabulary words (each >= 3 letters), or the name itself."""
    best: dict[int, list[str]] = {0: []}
    for end in range(1, len(name) + 1):
        for start in range(end - 2):
            piece = name[start:end]
            if start in best and piece in vocabulary and (end not in best or len(best[start]) + 1 < len(best[end])):
                best[end] = best[start] + [piece]
    return " ".join(best[len(name)]) if len(name) in best else name


def _spellings(name: str) -> list[str]:
    return [name, re.sub(r"\bgrey\b", "gray", name)] if re.search(r"\bgrey\b", name) else [name]


@lru_cache(maxsize=1)
def _lexicon() -> tuple[NamedColour, ...]:
    xkcd = {k.removeprefix("xkcd:"): v for k, v in mcolors.XKCD_COLORS.items()}
    vocabulary = {w for name in xkcd for spelled in _spellings(name) for w in words_of(spelled)}
    entries: dict[str, NamedColour] = {}
    for raw, value in xkcd.items():
        for name in _spellings(" ".join(words_of(raw))):
            entries.setdefault(name, NamedColour(name, _rgb(value), "xkcd"))
    for raw, value in mcolors.CSS4_COLORS.items():
        name = _split(raw, vocabulary)
        known = entries.get(name)
        if known is None:
            entries[name] = NamedColour(name, _rgb(value), "css4")
        elif "css4" not in known.source:
            entries[name] = NamedColour(name, known.rgb, known.source + "+css4")
    return tuple(sorted(entries.values(), key=lambda c: c.name))


def colour_lexicon() -> list[NamedColour]:
    """Every named colour once, sorted by name (about 1,050 names)."""
    return list(_lexicon())


@lru_cache(maxsize=1)
def _by_words() -> tuple[dict[tuple[str, ...], NamedColour], int]:
    table = {words_of(c.name): c for c in _lexicon()}
    return table, max(len(k) for k in table)


def colour_words_in(text: str) -> list[NamedColour]:
    """The colours `text` names, in order: at each word the longest colour phrase that starts there ("dark sea
    green" is one colour, not "dark" and "sea green")."""
    table, longest = _by_words()
    words = words_of(text)
    found, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            colour = table.get(words[i : i + n])
            if colour is not None:
                found.append(colour)
                i += n
                break
        else:
            i += 1
    return found


def colour_family(colour: NamedColour) -> list[NamedColour]:
    """`colour` and the lexicon's names of kinds of it, the names that end in its words ("dusky blue", "light blue"
    for blue): what a speaker may call by that name. Scene colours are muted where the XKCD prototypes are vivid, so
    the input checks compare measured colours with the family, not with the prototype alone."""
    tail = words_of(colour.name)
    return [c for c in _lexicon() if words_of(c.name)[-len(tail):] == tail]


@cache
def _family_lab(name: str) -> np.ndarray:
    return to_lab(np.array([c.rgb for c in colour_family(lexicon_colour(name))], dtype=np.float64))


def family_distance(colour: NamedColour, rgb: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """CIE76 delta E from each sRGB colour (0-255, (..., 3)) to the nearest member of `colour`'s family."""
    lab = to_lab(rgb)
    return np.linalg.norm(lab[..., None, :] - _family_lab(colour.name), axis=-1).min(-1)


def focal_distance(colour: NamedColour, rgb: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """CIE76 delta E from each sRGB colour (0-255, (..., 3)) to `colour`'s own entry (its focal colour, for a basic
    term): where two families both reach a colour, the nearer focal colour says which name fits it better."""
    return np.linalg.norm(to_lab(rgb) - to_lab(np.asarray(colour.rgb, dtype=np.float64)), axis=-1)


def basic_term(rgb: np.ndarray | tuple[int, int, int]) -> str:
    """The basic colour term (`BASIC_TERMS`) one sRGB colour (0-255) reads as: of the achromatic terms for an
    achromatic colour (`is_achromatic`) and of the others for the rest (families blur across that line: the
    lexicon's "brownish grey" and "greyish brown" are one colour; speakers do not), the one whose family comes
    nearest, unless another whose family reaches it (`FAMILY_REACH`) has a focal colour `FOCAL_MARGIN` nearer."""
    grey = bool(is_achromatic(rgb))
    terms = [t for t in BASIC_TERMS if (t in ACHROMATIC_TERMS) == grey]
    reach = {t: float(family_distance(lexicon_colour(t), rgb)) for t in terms}
    nearest = min(terms, key=reach.get)
    focal = {t: float(focal_distance(lexicon_colour(t), rgb)) for t in terms if reach[t] <= FAMILY_REACH}
    better = [t for t in focal if focal[t] + FOCAL_MARGIN < focal.get(nearest, np.inf)]
    return min(better, key=focal.get) if better else nearest


def basic_term_of(colour: NamedColour) -> str:
    """A name's basic colour term: itself when it is one ("red"), else that of its value ("navy" -> "blue")."""
    return colour.name if colour.name in BASIC_TERMS else basic_term(colour.rgb)


def lexicon_colour(name: str) -> NamedColour:
    """The entry named `name` (normalised as the lexicon's names are); KeyError when there is none."""
    table, _ = _by_words()
    return table[words_of(name)]


def is_achromatic(rgb: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """Whether each sRGB colour (0-255, (..., 3)) has CIELAB chroma <= `ACHROMATIC_CHROMA` (no hue to name)."""
    return np.hypot(*np.moveaxis(to_lab(rgb)[..., 1:], -1, 0)) <= ACHROMATIC_CHROMA


def hue_difference(a: np.ndarray | tuple[int, int, int], b: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """CIELAB hue angle between sRGB colours (0-255, broadcast), in degrees 0..180."""
    la, lb = to_lab(a), to_lab(b)
    turn = np.degrees(np.arctan2(la[..., 2], la[..., 1]) - np.arctan2(lb[..., 2], lb[..., 1]))
    return np.abs((turn + 180.0) % 360.0 - 180.0)


def to_lab(rgb: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """sRGB (0-255, (..., 3)) -> CIELAB under D65 (..., 3): Euclidean distance there (CIE76 delta E) follows how
    different two colours look far better than distance in RGB does."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ SRGB_TO_XYZ.T / D65_WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)
