"""QA sets generated from planner-world tabletop scenes, with answers computed from the scene description.

Each seed picks a task family (cycling through `TASKS`) and a state: even seeds the oracle's final state (towers,
blocks in bowls, a block moved), odd seeds the start state. The scene ref is `tabletop/<task>/<split>/<seed>` for
the start and `.../<seed>/final` for the final state; `pmoe_core.qa.scenes.load_scene_cloud` turns either back into
the same point cloud. Families (QAItem.question_type): color, count, exist, support (what is on / under / in what),
relation (left/right/in front/behind, as seen by the robot: left = +y, front = +x). Every family has three TRAIN and two
HELD-OUT phrasings (QAItem.template names one); a question's content (referent, answer) does not depend on which
set is asked for, only its wording does, so held-out templates test phrasing, held-out seeds test scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from pmoe_core.errors import BadInput
from pmoe_core.qa.items import QAItem
from pmoe_core.tabletop.oracle import oracle_steps
from pmoe_core.tabletop.tasks import TASKS as TASK_FNS
from pmoe_core.tabletop.tasks import make_scene
from pmoe_core.tabletop.world import BOWL_FLOOR, BOWL_INNER_RADIUS, SPLITS, SceneDesc, TableObject, r6

PREFIX = "tabletop"
FINAL = "final"
TASKS = tuple(TASK_FNS)
EVAL_SEED_START = 100_000  # held-out scenes: seeds from here on are never used for training sets
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
ON_TOL = 0.012  # m: a resting object's bottom is this close to its support's top

# family -> (train phrasings, held-out phrasings). {ref}/{color}/{kind}/{a}/{b} are filled per question.
TEMPLATES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "color": {
        "train": (("color_what", "what color is the {ref}?"), ("color_which", "which color does the {ref} have?"),
                  ("color_of", "what is the color of the {ref}?")),
        "heldout": (("color_tell", "tell me the color of the {ref}."), ("color_is", "the {ref} is which color?")),
    },
    "count": {
        "train": (("count_how_many", "how many {kinds} are there?"),
                  ("count_number", "what is the number of {kinds} on the table?"),
                  ("count_on", "how many {kinds} are on the table?")),
        "heldout": (("count_count", "count the {kinds} on the table."), ("count_see", "how many {kinds} do you see?")),
    },
    "exist": {
        "train": (("exist_is_there", "is there {a_thing}?"), ("exist_any", "is there any {thing} on the table?"),
                  ("exist_on", "is there {a_thing} on the table?")),
        "heldout": (("exist_can_see", "can you see {a_thing}?"), ("exist_does", "does the table have {a_thing}?")),
    },
    "support_on": {
        "train": (("on_what", "what is on the {ref}?"), ("on_top", "what is on top of the {ref}?"),
                  ("on_placed", "what is placed on the {ref}?")),
        "heldout": (("on_rests", "what rests on the {ref}?"), ("on_sits", "what sits on top of the {ref}?")),
    },
    "support_under": {
        "train": (("under_what", "what is the {ref} on?"), ("under_below", "what is below the {ref}?"),
                  ("under_beneath", "what is beneath the {ref}?")),
        "heldout": (("under_holds", "what holds up the {ref}?"), ("under_stands", "what does the {ref} stand on?")),
    },
    "support_in": {
        "train": (("in_what", "what is in the {ref}?"), ("in_inside", "what is inside the {ref}?"),
                  ("in_placed", "what is placed in the {ref}?")),
        "heldout": (("in_holds", "what does the {ref} hold?"), ("in_contains", "what does the {ref} contain?")),
    },
    "relation_what": {
        "train": (("rel_what", "what is {side} the {ref}?"), ("rel_which", "which object is {side} the {ref}?"),
                  ("rel_located", "what is located {side} the {ref}?")),
        "heldout": (("rel_name", "name the object {side} the {ref}."), ("rel_find", "what do you find {side} the {ref}?")),
    },
    "relation_side": {
        "train": (("side_is", "is the {a} to the left or to the right of the {b}?"),
                  ("side_which", "which side of the {b} is the {a} on, left or right?"),
                  ("side_short", "is the {a} left or right of the {b}?")),
        "heldout": (("side_where", "where is the {a} relative to the {b}, left or right?"),
                    ("side_lies", "does the {a} lie left or right of the {b}?")),
    },
}
FAMILY = {"support_on": "support", "support_under": "support", "support_in": "support",
          "relation_what": "relation", "relation_side": "relation"}
SIDES = {"left of": (0.0, 1.0), "right of": (0.0, -1.0), "behind": (1.0, 0.0), "in front of": (-1.0, 0.0)}


@dataclass(frozen=True)
class Question:
    """A question before wording: its family, the words its template needs, the answer."""

    family: str
    words: dict
    answer: str


def scene_ref(task: str, split: str, seed: int, final: bool) -> str:
    return f"{PREFIX}/{task}/{split}/{seed}" + (f"/{FINAL}" if final else "")


def parse_ref(ref: str) -> tuple[str, str, int, bool]:
    """(task, split, seed, final) of a tabletop scene ref; BadInput naming the ref when it is not one."""
    parts = ref.split("/")
    ok = len(parts) in (4, 5) and parts[0] == PREFIX and parts[1] in TASK_FNS and parts[2] in SPLITS
    ok = ok and parts[3].isdigit() and (len(parts) == 4 or parts[4] == FINAL)
    if not ok:
        raise BadInput(f"bad tabletop scene {ref!r}: expected {PREFIX}/TASK/SPLIT/SEED[/{FINAL}] "
                       f"(tasks: {', '.join(TASK_FNS)}; splits: {', '.join(SPLITS)})")
    return parts[1], parts[2], int(parts[3]), len(parts) == 5


def final_state(desc: SceneDesc) -> SceneDesc:
    """The scene after the oracle's steps: each goal's object moved to the goal pose (what `oracle_steps` places)."""
    objects = list(desc.objects)
    used: set[int] = set()
    for goal, step in zip(desc.goals, oracle_steps(desc)):
        obj = desc.object(next(c for c in goal.candidates if c not in used))
        used.add(obj.id)
        objects[obj.id] = replace(obj, position=tuple(r6(v) for v in goal.position), yaw=r6(step.place.yaw))
    return replace(desc, objects=objects)


def tabletop_scene(ref: str) -> SceneDesc:
    """The scene description a tabletop ref names (start or final state)."""
    task, split, seed, final = parse_ref(ref)
    desc = make_scene(task, seed, split)
    return final_state(desc) if final else desc


def tabletop_qa(seeds, split: str = "seen", templates: str = "train") -> list[QAItem]:
    """Questions about the scenes of `seeds` in colour split `split`, worded with the `templates` set."""
    if templates not in ("train", "heldout"):
        raise BadInput(f"templates must be 'train' or 'heldout', got {templates!r}")
    if split not in SPLITS:
        raise BadInput(f"unknown colour split {split!r}; known: {', '.join(SPLITS)}")
    items = []
    for seed in seeds:
        seed = int(seed)
        task, final = TASKS[seed % len(TASKS)], seed % 2 == 0
        ref = scene_ref(task, split, seed, final)
        desc = tabletop_scene(ref)
        rng = np.random.default_rng([seed, list(SPLITS).index(split), 7])
        for k, q in enumerate(scene_questions(desc, rng)):
            name, text = _wording(q, templates, rng)
            items.append(QAItem(qid=f"{ref}#{k}", scene=ref, question=text, answers=(q.answer,),
                                question_type=FAMILY.get(q.family, q.family), template=name))
    return items


def _wording(q: Question, templates: str, rng: np.random.Generator) -> tuple[str, str]:
    """Pick a phrasing. The draw happens for both template sets, so switching sets never changes the questions."""
    pool = TEMPLATES[q.family][templates]
    name, text = pool[int(rng.integers(1 << 30)) % len(pool)]
    return name, text.format(**q.words)


# --- descriptions ------------------------------------------------------------------------------------------------

def describe(obj: TableObject, objects: list[TableObject]) -> str | None:
    """Shortest name that picks `obj` out of `objects`: "red block", else "small red block"; None if neither does."""
    same = [o for o in objects if o.kind == obj.kind and o.color == obj.color]
    if len(same) == 1:
        return f"{obj.color} {obj.kind}"
    if obj.kind == "block" and sum(_size_word(o) == _size_word(obj) for o in same) == 1:
        return f"{_size_word(obj)} {obj.color} block"
    return None


def _article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _size_word(obj: TableObject) -> str:
    return "big" if obj.kind == "block" and obj.size > 0.05 else "small"


def _support_top(obj: TableObject) -> float:
    """Height a resting object's bottom has on `obj`: a block's top face, a bowl's floor, a zone's (the table's)."""
    return {"block": obj.position[2] + obj.height / 2, "bowl": BOWL_FLOOR, "zone": 0.0}[obj.kind]


def supporter(obj: TableObject, objects: list[TableObject]) -> TableObject | None | str:
    """What `obj` rests on: another object, None for the table, "several" when it rests on more than one (pyramids).
    Resting = its bottom within ON_TOL of the other's support height and its centre over the other's top face
    (inside a bowl's inner wall)."""
    bottom = obj.position[2] - obj.height / 2
    under = []
    for other in objects:
        reach = BOWL_INNER_RADIUS if other.kind == "bowl" else other.size / 2
        if other.id != obj.id and abs(bottom - _support_top(other)) < ON_TOL and _xy_dist(obj, other) < reach:
            under.append(other)
    if len(under) > 1:
        return "several"
    return under[0] if under else None


def _xy_dist(a: TableObject, b: TableObject) -> float:
    return math.hypot(a.position[0] - b.position[0], a.position[1] - b.position[1])


# --- question families -------------------------------------------------------------------------------------------

def scene_questions(desc: SceneDesc, rng: np.random.Generator) -> list[Question]:
    """Every family's questions for one scene (a sample of each, drawn from `rng`), in a fixed family order."""
    objects, palette = desc.objects, SPLITS[desc.split]
    out: list[Question] = []
    for family in (_color, _count, _exist, _support, _relation):
        out += family(objects, palette, rng)
    return out


def _pick(rng: np.random.Generator, items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def _color(objects: list[TableObject], palette: tuple[str, ...], rng) -> list[Question]:
    """"What color is the big block?": referents named without their colour (by size, kind or extreme position)."""
    refs: list[tuple[str, TableObject]] = []
    for kind in ("block", "bowl", "zone"):
        group = [o for o in objects if o.kind == kind]
        if len(group) == 1:
            refs.append((kind, group[0]))
        for size in ("big", "small"):
            sized = [o for o in group if kind == "block" and _size_word(o) == size]
            if len(sized) == 1 and len(group) > 1:
                refs.append((f"{size} block", sized[0]))
    blocks = [o for o in objects if o.kind == "block"]
    on_table = [b for b in blocks if supporter(b, objects) is None]
    if len(on_table) >= 2:
        ys = sorted(on_table, key=lambda o: o.position[1])
        if ys[-1].position[1] - ys[-2].position[1] > 0.05:
            refs.append(("leftmost block", ys[-1]))
        if ys[1].position[1] - ys[0].position[1] > 0.05:
            refs.append(("rightmost block", ys[0]))
    return [Question("color", {"ref": name}, obj.color) for name, obj in _pick(rng, refs, 2)]


def _count(objects: list[TableObject], palette: tuple[str, ...], rng) -> list[Question]:
    blocks = [o for o in objects if o.kind == "block"]
    qs = [Question("count", {"kinds": "blocks"}, NUMBERS[len(blocks)])]
    colors = sorted(palette)
    color = colors[int(rng.integers(len(colors)))]
    qs.append(Question("count", {"kinds": f"{color} blocks"}, NUMBERS[sum(b.color == color for b in blocks)]))
    return qs


def _exist(objects: list[TableObject], palette: tuple[str, ...], rng) -> list[Question]:
    """One present and one absent colour of the same kind (a kind the scene holds), so that neither the answer nor
    the kind named gives the answer away (bowls appear in one task only: "bowl -> no" would be learnable)."""
    kinds = sorted({o.kind for o in objects})
    kind = kinds[int(rng.integers(len(kinds)))]
    present = sorted({o.color for o in objects if o.kind == kind})
    absent = [c for c in sorted(palette) if c not in present]
    if not absent:  # every colour of the split is there (unseen split, 4 colours): a lone "yes" would skew the set
        return []
    qs = []
    for colors, answer in ((present, "yes"), (absent, "no")):
        thing = f"{colors[int(rng.integers(len(colors)))]} {kind}"
        qs.append(Question("exist", {"thing": thing, "a_thing": _article(thing)}, answer))
    return qs


def _support(objects: list[TableObject], palette: tuple[str, ...], rng) -> list[Question]:
    """What is on / under / in what, from the resting contacts of the scene (towers in final states)."""
    below = {o.id: supporter(o, objects) for o in objects if o.kind == "block"}
    qs = []
    for obj in objects:
        name = describe(obj, objects)
        if name is None:
            continue
        if obj.kind == "block":
            under = below[obj.id]
            if under != "several":
                under_name = "table" if under is None else describe(under, objects)
                if under_name is not None:
                    qs.append(Question("support_under", {"ref": name}, under_name))
        on_top = [b for b, s in below.items() if isinstance(s, TableObject) and s.id == obj.id]
        if len(on_top) <= 1:
            top_name = "nothing" if not on_top else describe(objects[on_top[0]], objects)
            family = "support_in" if obj.kind == "bowl" else "support_on"
            if top_name is not None:
                qs.append(Question(family, {"ref": name}, top_name))
    trivial = [q for q in qs if q.answer in ("nothing", "table")]
    informative = [q for q in qs if q.answer not in ("nothing", "table")]
    return _pick(rng, informative, 2) + _pick(rng, trivial, 1)


def _relation(objects: list[TableObject], palette: tuple[str, ...], rng) -> list[Question]:
    """"What is left of the red block?" (nearest object in a 90-degree cone, unambiguous by 3 cm) and
    "is A left or right of B?" (|dy| > 5 cm). Stacked objects share a position and are not asked about."""
    named = [(o, describe(o, objects)) for o in objects]
    named = [(o, n) for o, n in named if n is not None]
    what = []
    for obj, name in named:
        for side, (ux, uy) in SIDES.items():
            cands = []
            for other, other_name in named:
                dx, dy = other.position[0] - obj.position[0], other.position[1] - obj.position[1]
                along = dx * ux + dy * uy
                if other.id != obj.id and along > 0.05 and abs(dx * uy - dy * ux) < along:
                    cands.append((math.hypot(dx, dy), other_name))
            cands.sort()
            if cands and (len(cands) == 1 or cands[1][0] - cands[0][0] > 0.03):
                what.append(Question("relation_what", {"side": side, "ref": name}, cands[0][1]))
    side_qs = []
    for a, a_name in named:
        for b, b_name in named:
            dy = a.position[1] - b.position[1]
            if a.id != b.id and abs(dy) > 0.05:
                side_qs.append(Question("relation_side", {"a": a_name, "b": b_name}, "left" if dy > 0 else "right"))
    return _pick(rng, what, 2) + _pick(rng, side_qs, 1)
