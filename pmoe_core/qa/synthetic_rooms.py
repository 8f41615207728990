"""QA sets generated from ScanNet rooms with instance annotations: the synthetic rooms `pmoe synth scannet` writes
(or real ScanNet scans; only the files are read, never the generator).

Objects come from the scene's annotation exactly as ScanQA's do: one object per aggregation segGroup (its `id` is
the ScanQA object id, its `label` the object name), with the group's vertices after ScanNet's axis alignment
giving its box and mean colour. Walls, floor and ceiling are not objects. Families (QAItem.question_type): count,
exist, color, next_to ("what is next to the X?"), and situated (SQA3D style: a standing agent at `position` facing
an object, `rotation` the quaternion (x, y, z, w) of its heading about z; facing direction = that rotation applied
to +x; "left" is 90 degrees counter-clockwise seen from above). Colour names are the nearest of `COLOR_WORDS`
(CIELAB; values from the planner's colour lexicon) to the mean vertex colour; in the synthetic rooms each kind has
one base colour, so there colour answers follow from the object's kind (they test recognition, not colour
perception). Answers are recomputed from the
geometry only where they are unambiguous (margins below); other candidate questions are dropped.

Scene refs are the ScanNet scene ids; `pmoe_core.qa.scenes.load_scene_cloud(scene_id, root)` reads the cloud from
the same raw folder (or from a store converted from it). Held-out scenes: the split lists of the folder (synthetic
rooms: scene i is train/val/test by i % 3; test scenes carry no annotations and yield no questions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.jsonio import read_json
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.scenes import read_raw_scannet

STRUCTURE = {"wall", "floor", "ceiling"}
# Raw ScanNet categories shortened to the noun a question uses ("office chair" -> "chair").
NOUNS = {"office chair": "chair", "couch": "sofa", "kitchen cabinets": "cabinet", "kitchen cabinet": "cabinet",
         "kitchen counter": "counter", "tv": "television", "shelf": "shelves", "trash bin": "trash can"}
# Nouns asked about in "is there a ...?" when absent: what the synthetic rooms can hold (and ScanNet commonly does).
VOCABULARY = ("bathtub", "bed", "bookshelf", "box", "cabinet", "chair", "counter", "curtain", "desk", "door",
              "dresser", "lamp", "mirror", "nightstand", "picture", "refrigerator", "shelves", "sink", "sofa",
              "table", "television", "toilet", "trash can", "whiteboard", "window")
# Colour words answers may use; their values come from the planner's colour lexicon (XKCD survey colours).
ALWAYS_THERE = ("door", "window")
COLOR_WORDS = ("black", "white", "gray", "red", "green", "blue", "light blue", "brown", "beige", "yellow", "purple")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
# The object kinds questions name, in a fixed order: what the answering model's kind head classifies a room
# proposal as, and its noun head reads off a question (`QAModelConfig.object_kinds` is their number).
OBJECT_NOUNS = tuple(sorted(set(VOCABULARY) | set(ALWAYS_THERE)))
PROPOSAL_MARGIN_M = 0.1  # a proposal covers an annotated object when its footprint centre is within its box + this
MARGIN_M = 0.3  # the nearest answer must beat the next different one by this much
COLOR_MARGIN = 1.2  # the nearest colour name must be this many times closer than the next

TEMPLATES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "count": {
        "train": (("count_how_many", "how many {plural} are in the room?"),
                  ("count_number", "what is the number of {plural} in the room?"),
                  ("count_there", "how many {plural} are there in the room?")),
        "heldout": (("count_count", "count the {plural} in this room."),
                    ("count_see", "how many {plural} can you see here?")),
    },
    "exist": {
        "train": (("exist_is_there", "is there {a_noun} in the room?"), ("exist_any", "does the room have {a_noun}?"),
                  ("exist_here", "is there {a_noun} here?")),
        "heldout": (("exist_can_see", "can you see {a_noun} in here?"),
                    ("exist_contain", "does this room contain {a_noun}?")),
    },
    "color": {
        "train": (("color_what", "what color is the {noun}?"), ("color_which", "which color does the {noun} have?"),
                  ("color_of", "what is the color of the {noun}?")),
        "heldout": (("color_tell", "tell me the color of the {noun}."), ("color_is", "the {noun} is which color?")),
    },
    "next_to": {
        "train": (("next_what", "what is next to the {noun}?"), ("next_closest", "what is closest to the {noun}?"),
                  ("next_by", "what is by the {noun}?")),
        "heldout": (("next_beside", "what stands beside the {noun}?"),
                    ("next_near", "name the object nearest to the {noun}.")),
    },
    "situated_what": {
        "train": (("sit_what", "what is {where}?"), ("sit_which", "which object is {where}?"),
                  ("sit_there", "what is there {where}?")),
        "heldout": (("sit_name", "name the object {where}."), ("sit_find", "what do I find {where}?")),
    },
    "situated_side": {
        "train": (("side_is", "is the {noun} on my left or on my right?"),
                  ("side_which", "on which side is the {noun}, left or right?"),
                  ("side_lr", "is the {noun} to my left or to my right?")),
        "heldout": (("side_where", "where is the {noun}, to my left or to my right?"),
                    ("side_turn", "should I turn left or right to face the {noun}?")),
    },
}
SITUATIONS = {
    "train": (("situation_facing", "I am facing the {noun}."), ("situation_looking", "I am looking at the {noun}."),
              ("situation_toward", "I am turned toward the {noun}.")),
    "heldout": (("situation_front", "The {noun} is in front of me."),
                ("situation_standing", "I am standing with the {noun} ahead of me.")),
}
WHERE = {"left": "on my left", "right": "on my right", "back": "behind me"}
BEARING = {"left": 90.0, "right": -90.0, "back": 180.0}


@dataclass(frozen=True)
class RoomObject:
    """One annotated object: ScanQA object id (segGroup id), raw label, noun, box, mean colour."""

    id: int
    label: str
    noun: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    rgb: tuple[float, float, float]

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.lo) + np.asarray(self.hi)) / 2


@dataclass(frozen=True)
class Question:
    """A question before wording: family (a TEMPLATES key), template words, answer, the objects it is about."""

    family: str
    words: dict
    answer: str
    objects: tuple[RoomObject, ...] = ()
    situation: dict | None = None  # {"noun", "position", "yaw", "phrase"}


def room_objects(root: str | Path, scene_id: str) -> list[RoomObject]:
    """The annotated objects of one scene (aligned coordinates), ordered by object id."""
    scene = read_raw_scannet(scene_id, Path(root))
    if scene.instance is None:
        return []
    agg = _aggregation(Path(root), scene_id)
    labels = {}
    for k, group in enumerate(agg):
        try:
            labels[int(group["id"])] = str(group["label"])
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"segGroup {k} lacks id/label", _agg_path(Path(root), scene_id)) from None
    objects = []
    for oid in sorted(set(np.unique(scene.instance).tolist()) - {-1}):
        label = labels.get(oid)
        if label is None or label in STRUCTURE:
            continue
        mask = scene.instance == oid
        coord, color = scene.coord[mask].astype(np.float64), scene.color[mask].astype(np.float64)
        objects.append(RoomObject(oid, label, NOUNS.get(label, label), _floats(coord.min(0), 4),
                                  _floats(coord.max(0), 4), _floats(color.mean(0), 2)))
    return objects


def proposal_nouns(objects: list[RoomObject], scene, slots: int) -> np.ndarray:
    """(slots,) the OBJECT_NOUNS index of the annotated object each proposal of `scene` (a `QAScene`) covers: the one
    whose box (widened by PROPOSAL_MARGIN_M) holds the proposal's footprint centre, the nearest centre when several
    do; -1 for an empty slot, a proposal over no annotated object, or a noun outside OBJECT_NOUNS. Training targets
    of the model's kind head: what the annotation says each proposal is."""
    out = np.full(slots, -1, np.int64)
    ids = scene.points[:, 6].astype(np.int64)
    for slot in range(min(slots, scene.objects)):
        xy = scene.points[ids == slot, :2] * scene.scale + scene.origin[:2]
        if len(xy) == 0:
            continue
        centre = (xy.min(0) + xy.max(0)) / 2
        near = [o for o in objects if o.noun in OBJECT_NOUNS and all(
            o.lo[i] - PROPOSAL_MARGIN_M <= centre[i] <= o.hi[i] + PROPOSAL_MARGIN_M for i in range(2))]
        if near:
            best = min(near, key=lambda o: float(np.linalg.norm(o.center[:2] - centre)))
            out[slot] = OBJECT_NOUNS.index(best.noun)
    return out


def question_nouns(question: str) -> np.ndarray:
    """(len(OBJECT_NOUNS),) float 0/1: which object kinds `question` names (singular or plural, whole words).
    Training targets of the model's noun head, which reads the same from the LM's states of any wording."""
    words = f" {' '.join(question.lower().replace('?', ' ').replace('.', ' ').replace(',', ' ').split())} "
    return np.array([float(f" {n} " in words or f" {plural(n)} " in words) for n in OBJECT_NOUNS], np.float32)


def _floats(values: np.ndarray, digits: int) -> tuple[float, ...]:
    return tuple(round(float(v), digits) for v in values)


def _agg_path(root: Path, scene_id: str) -> Path:
    """The scene's aggregation file (early ScanNet releases name it `<scene>_vh_clean.aggregation.json`)."""
    folder = root / "scans" / scene_id
    path = folder / f"{scene_id}.aggregation.json"
    early = folder / f"{scene_id}_vh_clean.aggregation.json"
    return early if not path.is_file() and early.is_file() else path


def _aggregation(root: Path, scene_id: str) -> list:
    path = _agg_path(root, scene_id)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("segGroups"), list):
        raise FormatError("aggregation has no segGroups list", path)
    return data["segGroups"]


def room_scenes(root: str | Path, split: str | None = None) -> list[str]:
    """Annotated scenes (under scans/) of the folder, those of `split` when given (its scannetv2_*.txt lists)."""
    from pmoe_core.sources import scannet

    refs = scannet.list_scenes(Path(root), scannet.Options())
    return [r.name for r in refs if "scans_test" not in r.paths[0] and (split is None or r.split == split)]


def room_qa(root: str | Path, split: str | None = None, templates: str = "train",
            scenes: list[str] | None = None) -> list[QAItem]:
    """Questions about the annotated rooms of the raw ScanNet folder `root` (`split`'s scenes, or `scenes`)."""
    if templates not in ("train", "heldout"):
        raise BadInput(f"templates must be 'train' or 'heldout', got {templates!r}")
    names = scenes if scenes is not None else room_scenes(root, split)
    items = []
    for name in names:
        objects = room_objects(root, name)
        rng = np.random.default_rng([_scene_number(name), 11])
        for k, q in enumerate(scene_questions(objects, rng)):
            items.append(_item(name, k, q, templates, rng))
    return items


def _scene_number(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits) if digits else sum(name.encode())


def _item(scene: str, k: int, q: Question, templates: str, rng: np.random.Generator) -> QAItem:
    pool = TEMPLATES[q.family][templates]
    name, text = pool[int(rng.integers(1 << 30)) % len(pool)]
    family = "situated" if q.family.startswith("situated") else q.family
    if q.situation is None:
        return QAItem(qid=f"synth-{scene}-{k}", scene=scene, question=text.format(**q.words), answers=(q.answer,),
                      question_type=family, object_ids=tuple(o.id for o in q.objects),
                      object_names=tuple(o.label for o in q.objects), template=name)
    s_name, s_text = SITUATIONS[templates][q.situation["phrase"] % len(SITUATIONS[templates])]
    yaw = q.situation["yaw"]
    x, y = q.situation["position"]
    return QAItem(qid=str(_scene_number(scene) * 100_000 + k), scene=scene, question=text.format(**q.words),
                  answers=(q.answer,), question_type=family, situation=s_text.format(noun=q.situation["noun"]),
                  position=(round(x, 4), round(y, 4), 0.0),
                  rotation=(0.0, 0.0, round(math.sin(yaw / 2), 6), round(math.cos(yaw / 2), 6)),
                  template=f"{s_name}+{name}")  # SQA3D's format has no object ids: none are set


# --- question families -------------------------------------------------------------------------------------------

def scene_questions(objects: list[RoomObject], rng: np.random.Generator) -> list[Question]:
    out: list[Question] = []
    for family in (_count, _exist, _color, _next_to, _situated):
        out += family(objects, rng)
    return out


def _by_noun(objects: list[RoomObject]) -> dict[str, list[RoomObject]]:
    groups: dict[str, list[RoomObject]] = {}
    for o in objects:
        groups.setdefault(o.noun, []).append(o)
    return dict(sorted(groups.items()))


def _pick(rng: np.random.Generator, items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def plural(noun: str) -> str:
    if noun.endswith("shelf"):
        return noun[:-1] + "ves"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun if noun.endswith("shelves") else noun + "es"
    return noun + "s"


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _count(objects, rng) -> list[Question]:
    groups = _by_noun(objects)
    qs = [Question("count", {"plural": plural(n)}, NUMBERS[len(g)], tuple(g)) for n, g in groups.items()
          if len(g) < len(NUMBERS)]
    total = [Question("count", {"plural": "objects"}, NUMBERS[len(objects)], tuple(objects))] if len(objects) < len(
        NUMBERS) else []
    return _pick(rng, qs, 1) + total


def _exist(objects, rng) -> list[Question]:
    """One noun the room holds and one it does not, both from VOCABULARY less ALWAYS_THERE (every synthetic room
    has a door and a window: asking about them would teach "door -> yes", not looking)."""
    nouns = [n for n in VOCABULARY if n not in ALWAYS_THERE]
    present = [n for n in nouns if n in _by_noun(objects)]
    absent = [n for n in nouns if n not in present]
    qs = []
    for pool, answer in ((present, "yes"), (absent, "no")):
        if pool:
            noun = pool[int(rng.integers(len(pool)))]
            qs.append(Question("exist", {"a_noun": _article(noun)}, answer))
    return qs


def color_name(rgb) -> str | None:
    """Nearest colour word in CIELAB, or None when the second nearest is almost as near (COLOR_MARGIN)."""
    from pmoe_core.tabletop.lexicon import lexicon_colour, to_lab

    lab = to_lab(np.asarray(rgb, dtype=np.float64))
    dist = sorted((float(np.linalg.norm(lab - to_lab(np.asarray(lexicon_colour(w).rgb, dtype=np.float64)))), w)
                  for w in COLOR_WORDS)
    return dist[0][1] if dist[1][0] > COLOR_MARGIN * dist[0][0] else None


def _color(objects, rng) -> list[Question]:
    qs = []
    for noun, group in _by_noun(objects).items():
        name = color_name(group[0].rgb) if len(group) == 1 else None
        if name is not None:
            qs.append(Question("color", {"noun": noun}, name, (group[0],)))
    return _pick(rng, qs, 2)


def gap(a: RoomObject, b: RoomObject) -> float:
    """Horizontal distance between two boxes (0 when their footprints touch or overlap)."""
    dx = max(a.lo[0] - b.hi[0], b.lo[0] - a.hi[0], 0.0)
    dy = max(a.lo[1] - b.hi[1], b.lo[1] - a.hi[1], 0.0)
    return math.hypot(dx, dy)


def _nearest_noun(cands: list[tuple[float, str]]) -> str | None:
    """The noun of the nearest candidate, when no candidate of another noun is within MARGIN_M of it."""
    if not cands:
        return None
    cands = sorted(cands)
    best_d, best = cands[0]
    rivals = [d for d, n in cands[1:] if n != best]
    return best if not rivals or rivals[0] - best_d > MARGIN_M else None


def _next_to(objects, rng) -> list[Question]:
    qs = []
    for noun, group in _by_noun(objects).items():
        if len(group) != 1:
            continue
        obj = group[0]
        answer = _nearest_noun([(gap(obj, o), o.noun) for o in objects if o.noun != noun])
        if answer is not None:
            qs.append(Question("next_to", {"noun": noun}, answer, (obj,)))
    return _pick(rng, qs, 2)


def _bearing(position: np.ndarray, yaw: float, target: np.ndarray) -> float:
    """Angle of `target` seen from `position` facing `yaw`, degrees in (-180, 180], counter-clockwise positive."""
    d = target[:2] - position
    return math.degrees(math.atan2(d[1], d[0]) - yaw + math.pi) % 360.0 - 180.0


def _free_spot(objects, rng, anchor: RoomObject) -> np.ndarray | None:
    lo = np.min([o.lo[:2] for o in objects], 0)
    hi = np.max([o.hi[:2] for o in objects], 0)
    for _ in range(50):
        p = rng.uniform(lo + 0.5, hi - 0.5) if np.all(hi - lo > 1.0) else None
        if p is None:
            return None
        clear = all(not (o.lo[0] - 0.3 < p[0] < o.hi[0] + 0.3 and o.lo[1] - 0.3 < p[1] < o.hi[1] + 0.3)
                    for o in objects)
        if clear and np.linalg.norm(anchor.center[:2] - p) > 1.0:
            return p
    return None


def _situated(objects, rng) -> list[Question]:
    """Two situations per room, each facing a uniquely named object from a free floor spot."""
    anchors = [g[0] for g in _by_noun(objects).values() if len(g) == 1]
    qs = []
    for anchor in _pick(rng, anchors, 2):
        p = _free_spot(objects, rng, anchor)
        if p is None:
            continue
        yaw = math.atan2(*(anchor.center[:2] - p)[::-1])
        situation = {"noun": anchor.noun, "position": (float(p[0]), float(p[1])), "yaw": yaw,
                     "phrase": int(rng.integers(1 << 30))}  # one wording per situation, shared by its questions
        others = [o for o in objects if o.id != anchor.id]
        angles = [(o, _bearing(p, yaw, o.center)) for o in others]
        for side, centre in BEARING.items():
            in_cone = [(float(np.linalg.norm(o.center[:2] - p)), o.noun) for o, a in angles
                       if abs((a - centre + 180.0) % 360.0 - 180.0) < 45.0]
            answer = _nearest_noun(in_cone)
            if answer is not None:
                qs.append(Question("situated_what", {"where": WHERE[side]}, answer, (), situation))
        sided = [(o, a) for o, a in angles if 20.0 < abs(a) < 160.0
                 and sum(x.noun == o.noun for x in objects) == 1]
        for o, a in _pick(rng, sided, 1):
            qs.append(Question("situated_side", {"noun": o.noun}, "left" if a > 0 else "right", (o,), situation))
    return qs


def write_room_sets(items: list[QAItem], folder: str | Path, split: str, rooms: str | Path,
                    overwrite: bool = False) -> list[Path]:
    """Write room questions in the benchmarks' formats: the situated ones as SQA3D's balanced pair (agents in
    SQA3D's frame, from the raw `rooms` folder: qa/sqa3d_frame.py), the others as ScanQA v1.0, into `folder` (which
    must exist), so `read_scanqa` / `read_sqa3d` (+ `in_scene_frame`) serve real and synthetic sets alike."""
    from pmoe_core.qa.readers import scanqa_path, sqa3d_paths, write_scanqa, write_sqa3d
    from pmoe_core.qa.sqa3d_frame import in_sqa3d_frame

    situated = in_sqa3d_frame([i for i in items if i.situation is not None], rooms)
    plain = [i for i in items if i.situation is None]
    sqa_split = "test" if split.startswith("test") else split
    written = [write_scanqa(scanqa_path(folder, split), plain, overwrite=overwrite)]
    written += write_sqa3d(*sqa3d_paths(folder, sqa_split), situated, overwrite=overwrite)
    return written
