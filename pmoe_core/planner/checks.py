"""Input checks of `pmoe plan`: is this a tabletop cloud in metres with objects on it, and an instruction the planner
knows, naming colours the scene has? Without them the planner answers anything with a confident plan.

`check_input` returns an `InputCheck`: what it measured, `problems` that make planning meaningless (`refusals`:
the CLI stops with the first, one line) and `warnings` (printed; the plan goes ahead). Refused: an empty cloud or one
too small to hold an object, a cloud in centimetres or millimetres, a cloud with no point in the workspace, a table
with no object on it, and an instruction that matches no task. Warned: points outside the workspace (a room-scale
cloud: the planner was trained on the table alone) and a colour named that no object has (the check is approximate:
it compares colour words with measured colours, so it warns rather than refuses).

Thresholds (measured with `OMP_NUM_THREADS=1 python bench/planner.py --part checks --episodes 50`: 50 held-out
scenes (seeds 100000..) per task and colour split; the tables are in docs/commands/plan.md):
- Named colours. An object has the named colour when it reads as the name's basic colour term and is near the name.
  It reads as (lexicon.basic_term) the term whose family (the name and the names of kinds of it: "dusky blue" is a
  blue) comes nearest in CIELAB, among white, gray and black for an object of chroma <= 15 and among the hues for
  the rest, unless another term whose family reaches it (delta E <= `FAMILY_REACH` = 12) has a focal colour (the
  term's own entry) 10 nearer. Near the name: within `FAMILY_REACH` of the name's family or, for a name that is
  not a basic term ("navy", "cyan"), within `HUE_LIMIT` = 30 degrees of its hue. The XKCD prototypes are vivid where
  the scene palette is muted (XKCD "blue" is delta E 72 from the scene's blue), so one prototype separates nothing;
  the families bring every scene colour within 10.4 of its name except cyan (21.0, found by its hue). Families blur
  neighbours, which the reading undoes: the scene's red lies 5 from the pink family ("coral pink") and 7 from red's
  (red's focal colour is 32 from it, pink's 47), its white 1 from "pale grey" (white's focal 0, gray's 39), its
  brown 10 from gray's ("brownish grey") but has chroma 22; its blue reads as blue, as the name "cyan" does, but
  lies 71 degrees of hue from cyan. Measured (bench --part checks, docs/commands/plan.md): every colour of the
  palette named beside every other is right both ways, on held-out scenes 2413 of 2413 present colours found and
  5287 of 5287 absent ones caught; on lexicon names that stand nearest one palette colour (a test the palette
  does not choose), 245 of 284 found on it and 14 of 2790 found on a clearly different one.
- Task match. An instruction matches a task when the MiniLM embedding of it (colour and position words replaced by
  the reference words) has cosine >= `TASK_SIMILARITY` = 0.4 with a reference phrasing (phrasing.py "train" frames
  and synonyms without politeness and British spellings, 2043, filled with "red" and "center"). Held-out phrasings:
  min 0.445 of 700 (5th percentile 0.563); chit-chat: max 0.388 ("turn off the lights") except "paint the wall red"
  (0.550: it is an imperative naming a colour, and passes). The nearest phrasing's task is right for 700/700
  template and 594/700 held-out phrasings (598 with the 8196 polite and British variants as references, which took
  four times as long to embed on a machine's first `pmoe plan`; 603 before the wider training synonyms). The
  planner never reads this match; `plan --simulate` does, to tell a paraphrase from another request, so a wrong
  match there adds a needless note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from pmoe_core.errors import BadInput
from pmoe_core.planner.objects import ObjectTokenConfig, segment
from pmoe_core.scene import Scene
from pmoe_core.tabletop.lexicon import (
    BASIC_TERMS,
    FAMILY_REACH,
    NamedColour,
    basic_term,
    basic_term_of,
    colour_words_in,
    family_distance,
    hue_difference,
    is_achromatic,
    words_of,
)
from pmoe_core.tabletop.phrasing import BRITISH, british, fill, frames
from pmoe_core.tabletop.tasks import POSITIONS, TASKS
from pmoe_core.tabletop.world import WORKSPACE

HUE_LIMIT = 30.0  # degrees of CIELAB hue between a name that is not a basic term and an object of its basic term
TASK_SIMILARITY = 0.4
WORKSPACE_MARGIN = 0.05  # m around the workspace box that still counts as inside (objects at its edge, noise)
OUTSIDE_WARN = 0.2  # warn when more than this share of the points lies outside the workspace
SEGMENT_SAMPLE = 32768  # points segmented into objects: a 4 cm block keeps ~200 (at 8,192 one split into specks)
UNIT_SCALES = {"centimetres": 0.01, "millimetres": 0.001}
REFERENCE_WORDS = {"color": "red", "position": "center"}  # fill the training frames' slots for the embedding


@dataclass(frozen=True)
class Problem:
    """One finding: which check (`workspace`, `units`, `points`, `objects`, `colour`, `instruction`), what it says,
    and whether it makes planning meaningless (`refuse`)."""

    check: str
    message: str
    refuse: bool = False


@dataclass(frozen=True)
class TaskMatch:
    """The training phrasing nearest to the instruction (MiniLM cosine) and its task."""

    task: str
    phrasing: str
    similarity: float

    @property
    def matched(self) -> bool:
        return self.similarity >= TASK_SIMILARITY


@dataclass(frozen=True)
class ColourFinding:
    """A colour the instruction names, how far (CIE76 delta E) the nearest object's measured colour is from its
    family (None: no object to compare with), and whether some object has it (`colour_present`)."""

    name: str
    nearest_delta_e: float | None
    present: bool


@dataclass
class InputCheck:
    """What the checks measured and found; `problems` in the order they were found."""

    points: int
    span_m: tuple[float, float, float]
    inside_workspace: float  # share of the points inside the workspace (with its margin)
    object_colors: list[tuple[int, int, int]]  # measured mean colour of each object proposal
    task: TaskMatch
    words: dict[str, str]  # what the instruction names (`named_words`)
    colours: list[ColourFinding]
    problems: list[Problem] = field(default_factory=list)

    @property
    def refusals(self) -> list[Problem]:
        return [p for p in self.problems if p.refuse]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.refuse]

    def raise_refusal(self, source: object = None) -> None:
        """BadInput with the first refusal (one line naming `source`), if there is one."""
        if self.refusals:
            raise BadInput(self.refusals[0].message, source)


def _inside(coord: np.ndarray, scale: float = 1.0) -> np.ndarray:
    xyz = coord * scale
    keep = np.ones(len(xyz), dtype=bool)
    for axis, (lo, hi) in enumerate(WORKSPACE):
        keep &= (xyz[:, axis] >= lo - WORKSPACE_MARGIN) & (xyz[:, axis] <= hi + WORKSPACE_MARGIN)
    return keep


def _workspace_text() -> str:
    (x0, x1), (y0, y1), (z0, z1) = WORKSPACE
    return f"x {x0}..{x1}, y {y0}..{y1}, z {z0}..{z1} m"


def check_cloud(coord: np.ndarray, problems: list[Problem]) -> tuple[np.ndarray, float]:
    """Units and workspace: (mask of the points inside the workspace, their share); appends what it finds."""
    inside = _inside(coord)
    share = float(inside.mean())
    span = np.ptp(coord, axis=0)
    if share >= 1 - OUTSIDE_WARN:
        return inside, share
    for unit, scale in UNIT_SCALES.items():
        if _inside(coord, scale).mean() >= 1 - OUTSIDE_WARN:
            problems.append(Problem("units", f"the cloud looks like {unit} (span {span[0]:.0f} x {span[1]:.0f} x "
                                    f"{span[2]:.0f}); the planner's world is in metres: scale it by {scale}", True))
            return inside, share
    where = f"{100 * (1 - share):.0f}% of the points lie outside the tabletop workspace ({_workspace_text()}; " \
            f"the cloud spans {span[0]:.2f} x {span[1]:.2f} x {span[2]:.2f} m)"
    if not inside.any():
        problems.append(Problem("workspace", f"{where}: nothing to plan on", True))
    else:
        problems.append(Problem("workspace", f"{where}; the planner was trained on the table alone: crop the cloud "
                                "to the table"))
    return inside, share


def object_colours(coord: np.ndarray, color: np.ndarray, seed: int = 0) -> list[tuple[int, int, int]]:
    """Mean colour (0-255) of each object proposal (`objects.segment`) in a uniform sample of the cloud.

    The sample keeps the table's points: `segment` tells a zone (a coloured patch on the table) from the table by
    the table's colour, measured from the points at table height.
    """
    rgb = np.asarray(color, dtype=np.float64)
    rgb = rgb / 255.0 if np.asarray(color).dtype == np.uint8 or rgb.max() > 1.0 else rgb
    idx = np.random.default_rng(seed).permutation(len(coord))[:SEGMENT_SAMPLE]
    ids = segment(coord[idx], rgb[idx], ObjectTokenConfig())
    return [tuple(round(255 * float(v)) for v in rgb[idx][ids == k].mean(0)) for k in range(int(ids.max()) + 1)]


def colour_present(colour: NamedColour, measured: list[tuple[int, int, int]]) -> ColourFinding:
    """Is `colour` one of the measured object colours? Yes when an object reads as the name's basic colour term
    (lexicon.basic_term) and is near the name: within `FAMILY_REACH` of its family or, for a name that is not a
    basic term, within `HUE_LIMIT` of its hue (module docstring)."""
    if not measured:
        return ColourFinding(colour.name, None, False)
    rgb = np.array(measured, dtype=np.float64)
    term = basic_term_of(colour)
    distance = family_distance(colour, rgb)
    reads = np.array([basic_term(c) for c in rgb])
    near = distance <= FAMILY_REACH
    if colour.name not in BASIC_TERMS:  # a white, gray or black has no hue: reading as the name's term will do
        near |= is_achromatic(rgb) | (hue_difference(colour.rgb, rgb) <= HUE_LIMIT)
    return ColourFinding(colour.name, float(distance.min()), bool(((reads == term) & near).any()))


@lru_cache(maxsize=1)
def _references() -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    from pmoe_core.vocab.embeddings import embed_texts

    tasks, texts = [], []
    for task in TASKS:  # politeness and British spellings left out (module docstring)
        for frame in sorted(frames(task, "train", courtesy=False)):
            tasks.append(task)
            texts.append(fill(frame, REFERENCE_WORDS))
    return tuple(tasks), tuple(texts), embed_texts(texts)


def _with_reference_words(instruction: str) -> str:
    """The instruction, normalised, naming the reference words: which colour or place it names is the colour
    check's business, not the task match's (and "the pink block" should match "the red block" as well as any)."""
    text = f" {' '.join(words_of(instruction))} "
    for colour in colour_words_in(instruction):
        text = text.replace(f" {colour.name} ", f" {REFERENCE_WORDS['color']} ", 1)
    for place in sorted(POSITIONS, key=len, reverse=True):
        for spelled in (place, british(place)):
            text = text.replace(f" {spelled} ", f" {REFERENCE_WORDS['position']} ")
    return text.strip()


def named_words(instruction: str) -> dict[str, str]:
    """What an instruction names, as a scene description records it (SceneDesc.words): the first colour and the
    table position, American spellings ({"color": "gray", "position": "center"})."""
    american = {v: k for k, v in BRITISH.items()}
    words: dict[str, str] = {}
    colours = colour_words_in(instruction)
    if colours:
        words["color"] = " ".join(american.get(w, w) for w in colours[0].name.split())
    text = f" {' '.join(words_of(instruction))} "
    for place in sorted(POSITIONS, key=len, reverse=True):
        if f" {place} " in text or f" {british(place)} " in text:
            words["position"] = place
            break
    return words


def match_task(instruction: str) -> TaskMatch:
    """The task of the training phrasing nearest to `instruction` (cosine of MiniLM sentence embeddings)."""
    from pmoe_core.vocab.embeddings import embed_texts

    tasks, texts, vectors = _references()
    sims = vectors @ embed_texts([_with_reference_words(instruction)])[0]
    best = int(np.argmax(sims))
    return TaskMatch(tasks[best], texts[best], float(sims[best]))


def check_instruction(instruction: str, measured: list[tuple[int, int, int]] | None,
                      problems: list[Problem]) -> tuple[TaskMatch, list[ColourFinding]]:
    """Task match and colour presence (`measured` None: no cloud to compare with); appends what it finds."""
    match = match_task(instruction)
    if not match.matched:
        problems.append(Problem(
            "instruction", f"the instruction {instruction!r} matches no task the planner knows (nearest: "
            f"{match.phrasing!r}, similarity {match.similarity:.2f} < {TASK_SIMILARITY}); say what to stack or move, "
            "e.g. 'stack all the blocks on the red block'", True))
    findings = []
    for colour in colour_words_in(instruction):
        finding = colour_present(colour, measured or [])
        findings.append(finding)
        if measured and not finding.present:
            seen = ", ".join(f"{basic_term(c)} rgb{c}" for c in measured)
            problems.append(Problem("colour", f"the instruction names {colour.name!r} but no object on the table "
                                    f"has that colour (objects read as: {seen})"))
    return match, findings


def check_input(cloud: Scene, instruction: str, seed: int = 0) -> InputCheck:
    """Run every check on a cloud (metres expected) and an instruction; `seed` seeds the point sample."""
    problems: list[Problem] = []
    coord = np.asarray(cloud.coord, dtype=np.float64)
    min_points = ObjectTokenConfig().min_points
    span = tuple(float(v) for v in np.ptp(coord, axis=0)) if len(coord) else (0.0, 0.0, 0.0)
    measured: list[tuple[int, int, int]] | None = None
    share = 0.0
    if cloud.color is None:
        problems.append(Problem("points", "the point cloud has no colours (red, green, blue); the planner needs them",
                                True))
    elif len(coord) < min_points:
        problems.append(Problem("points", f"the point cloud has {len(coord)} point(s); an object needs at least "
                                f"{min_points}", True))
    else:
        inside, share = check_cloud(coord, problems)
        if not any(p.refuse for p in problems):
            measured = object_colours(coord[inside], np.asarray(cloud.color)[inside], seed)
            if not measured:
                problems.append(Problem("objects", "no objects found on the table (nothing above it or coloured "
                                        f"unlike it in a cluster of >= {min_points} points); nothing to pick", True))
    match, colours = check_instruction(instruction, measured, problems)
    return InputCheck(len(coord), span, share, measured or [], match, named_words(instruction), colours, problems)
