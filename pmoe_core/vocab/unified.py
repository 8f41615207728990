"""The unified vocabulary: every benchmark class of the seven datasets, mapped by name to one shared entry.

Why an explicit table: a model scoring points against text embeddings learns "ceiling" only if ceiling points are
trained against the text "ceiling". A widely copied config built this map from sorted lists and trained S3DIS
ceiling against "wall"; here every (dataset, class) pair names its entry literally and tests check each one.

Merge rule: two benchmark classes share an entry only when they mean the same thing (same NYU40 id indoors, or the
same object under another name outdoors). Everything else stays a separate entry, even where the names are close
(nuScenes driveable_surface also covers parking areas, which SemanticKITTI labels "parking", so it is not "road").

Prompt rule: the prompt is the clean class name ("shower curtain", "traffic cone"), not a template sentence.
PPT and Point-MoE embed bare class names with CLIP, so bare names keep their recipe; and a shared template
("a photo of a ...") adds the same words to every prompt, which raises all pairwise similarities of a sentence
encoder and so blurs the classes (docs/vocabulary.md has the numbers). Where the bare benchmark word is ambiguous out
of context ("board", "trunk", "sign", "manmade", "parking") the prompt is the shortest phrase naming the intended
thing ("whiteboard", "tree trunk", ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pmoe_core.errors import BadInput
from pmoe_core.vocab.label_spaces import INDOOR, LABEL_SPACES, OUTDOOR, resolve_dataset


@dataclass(frozen=True)
class VocabEntry:
    """One vocabulary entry: a stable snake_case `name`, the `prompt` that gets embedded, and the `domains`
    ("indoor", "outdoor") of the datasets whose classes map to it."""

    name: str
    prompt: str
    domains: tuple[str, ...]


# Entry name -> prompt, in vocabulary order (indoor first, then outdoor). This order is VOCABULARY's order.
_PROMPTS: dict[str, str] = {
    # indoor: the NYU40-derived classes shared by ScanNet, Structured3D, Matterport3D (and S3DIS where it has them)
    "wall": "wall",
    "floor": "floor",
    "ceiling": "ceiling",
    "cabinet": "cabinet",
    "bed": "bed",
    "chair": "chair",
    "sofa": "sofa",
    "table": "table",
    "door": "door",
    "window": "window",
    "bookshelf": "bookshelf",
    "picture": "picture",
    "counter": "counter",
    "desk": "desk",
    "curtain": "curtain",
    "refrigerator": "refrigerator",
    "shower_curtain": "shower curtain",
    "toilet": "toilet",
    "sink": "sink",
    "bathtub": "bathtub",
    "other_furniture": "other furniture",
    # indoor: S3DIS only
    "beam": "ceiling beam",
    "column": "column",
    "board": "whiteboard",
    "clutter": "clutter",
    # indoor: Structured3D only
    "shelves": "shelves",
    "dresser": "dresser",
    "pillow": "pillow",
    "mirror": "mirror",
    "television": "television",
    "nightstand": "nightstand",
    "lamp": "lamp",
    "other_structure": "other structure",
    "other_prop": "other object",
    # outdoor: vehicles and road users
    "car": "car",
    "truck": "truck",
    "bus": "bus",
    "other_vehicle": "other vehicle",
    "construction_vehicle": "construction vehicle",
    "trailer": "trailer",
    "bicycle": "bicycle",
    "motorcycle": "motorcycle",
    "person": "person",
    "bicyclist": "bicyclist",
    "motorcyclist": "motorcyclist",
    # outdoor: street furniture
    "barrier": "barrier",
    "traffic_cone": "traffic cone",
    "traffic_sign": "traffic sign",
    "traffic_light": "traffic light",
    "pole": "pole",
    "fence": "fence",
    # outdoor: ground
    "road": "road",
    "driveable_surface": "driveable surface",
    "lane_marker": "lane marking",
    "parking": "parking area",
    "sidewalk": "sidewalk",
    "curb": "curb",
    "walkable": "walkable surface",
    "other_ground": "other ground",
    "terrain": "terrain",
    # outdoor: structures and nature
    "building": "building",
    "manmade": "man-made structure",
    "vegetation": "vegetation",
    "tree_trunk": "tree trunk",
}

# (dataset -> benchmark class -> entry name), written out for every class of every dataset.
CLASS_TO_ENTRY: dict[str, dict[str, str]] = {
    "scannet": {
        "wall": "wall", "floor": "floor", "cabinet": "cabinet", "bed": "bed", "chair": "chair", "sofa": "sofa",
        "table": "table", "door": "door", "window": "window", "bookshelf": "bookshelf", "picture": "picture",
        "counter": "counter", "desk": "desk", "curtain": "curtain", "refrigerator": "refrigerator",
        "shower curtain": "shower_curtain", "toilet": "toilet", "sink": "sink", "bathtub": "bathtub",
        "otherfurniture": "other_furniture",
    },
    "s3dis": {
        "ceiling": "ceiling", "floor": "floor", "wall": "wall", "beam": "beam", "column": "column",
        "window": "window", "door": "door", "table": "table", "chair": "chair", "sofa": "sofa",
        "bookcase": "bookshelf",  # a bookcase is a bookshelf (ScanNet/Matterport nyu40 10)
        "board": "board",
        "clutter": "clutter",  # everything else, props and stairs included: wider than "other furniture"
    },
    "structured3d": {
        "wall": "wall", "floor": "floor", "cabinet": "cabinet", "bed": "bed", "chair": "chair", "sofa": "sofa",
        "table": "table", "door": "door", "window": "window", "picture": "picture", "desk": "desk",
        "shelves": "shelves",  # nyu40 15, a different NYU40 class from bookshelf (10): kept apart
        "curtain": "curtain", "dresser": "dresser", "pillow": "pillow", "mirror": "mirror", "ceiling": "ceiling",
        "refrigerator": "refrigerator", "television": "television", "nightstand": "nightstand", "sink": "sink",
        "lamp": "lamp", "otherstructure": "other_structure", "otherfurniture": "other_furniture",
        "otherprop": "other_prop",
    },
    "matterport3d": {
        "wall": "wall", "floor": "floor", "cabinet": "cabinet", "bed": "bed", "chair": "chair", "sofa": "sofa",
        "table": "table", "door": "door", "window": "window", "bookshelf": "bookshelf", "picture": "picture",
        "counter": "counter", "desk": "desk", "curtain": "curtain", "refrigerator": "refrigerator",
        "shower curtain": "shower_curtain", "toilet": "toilet", "sink": "sink", "bathtub": "bathtub",
        "other": "other_furniture",  # Matterport's "other" is nyu40 39 = otherfurniture
        "ceiling": "ceiling",
    },
    "nuscenes": {
        "barrier": "barrier", "bicycle": "bicycle", "bus": "bus", "car": "car",
        "construction_vehicle": "construction_vehicle", "motorcycle": "motorcycle",
        "pedestrian": "person",  # adult, child, construction worker, police officer: people on foot
        "traffic_cone": "traffic_cone", "trailer": "trailer", "truck": "truck",
        "driveable_surface": "driveable_surface",  # includes parking areas: not the same as road
        "other_flat": "other_ground",  # the remainder ground class, as KITTI other-ground / Waymo other_ground
        "sidewalk": "sidewalk", "terrain": "terrain", "manmade": "manmade", "vegetation": "vegetation",
    },
    "semantickitti": {
        "car": "car", "bicycle": "bicycle", "motorcycle": "motorcycle", "truck": "truck",
        "other-vehicle": "other_vehicle", "person": "person", "bicyclist": "bicyclist",
        "motorcyclist": "motorcyclist", "road": "road", "parking": "parking", "sidewalk": "sidewalk",
        "other-ground": "other_ground", "building": "building", "fence": "fence", "vegetation": "vegetation",
        "trunk": "tree_trunk", "terrain": "terrain", "pole": "pole", "traffic-sign": "traffic_sign",
    },
    "waymo": {
        "car": "car", "truck": "truck", "bus": "bus", "other_vehicle": "other_vehicle",
        "motorcyclist": "motorcyclist", "bicyclist": "bicyclist", "pedestrian": "person", "sign": "traffic_sign",
        "traffic_light": "traffic_light", "pole": "pole",
        "construction_cone": "traffic_cone",  # the same cones nuScenes calls traffic_cone
        "bicycle": "bicycle", "motorcycle": "motorcycle", "building": "building", "vegetation": "vegetation",
        "tree_trunk": "tree_trunk", "curb": "curb", "road": "road", "lane_marker": "lane_marker",
        "other_ground": "other_ground", "walkable": "walkable", "sidewalk": "sidewalk",
    },
}


def _domain(dataset: str) -> str:
    return "indoor" if dataset in INDOOR else "outdoor"


def _build_vocabulary() -> tuple[VocabEntry, ...]:
    """Entries in `_PROMPTS` order, each with the domains of the datasets that use it."""
    domains: dict[str, set[str]] = {name: set() for name in _PROMPTS}
    for dataset, table in CLASS_TO_ENTRY.items():
        for entry in table.values():
            domains[entry].add(_domain(dataset))
    order = ("indoor", "outdoor")
    return tuple(
        VocabEntry(name, prompt, tuple(d for d in order if d in domains[name])) for name, prompt in _PROMPTS.items()
    )


VOCABULARY: tuple[VocabEntry, ...] = _build_vocabulary()
_BY_NAME: dict[str, VocabEntry] = {entry.name: entry for entry in VOCABULARY}
assert set(INDOOR + OUTDOOR) == set(CLASS_TO_ENTRY) == set(LABEL_SPACES)


def entry(name: str) -> VocabEntry:
    """The vocabulary entry called `name`."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise BadInput(f"unknown vocabulary entry {name!r} ({len(VOCABULARY)} entries, e.g. wall, car)") from None


def vocab_entry(dataset: str, class_name: str) -> VocabEntry:
    """The entry a benchmark class maps to, e.g. ("s3dis", "bookcase") -> bookshelf."""
    canonical = resolve_dataset(dataset)
    custom = _custom(canonical)
    if custom is not None:
        if class_name not in custom.space.classes:
            raise BadInput(f"dataset {canonical!r} has no class {class_name!r} (classes: "
                           f"{', '.join(custom.space.classes)})")
        return custom.entries[custom.space.index(class_name)]
    table = CLASS_TO_ENTRY[canonical]
    if class_name not in table:
        known = ", ".join(LABEL_SPACES[canonical].classes)
        raise BadInput(f"dataset {canonical!r} has no class {class_name!r} (classes: {known})")
    return _BY_NAME[table[class_name]]


def dataset_entries(dataset: str) -> list[VocabEntry]:
    """The entry of each benchmark class, in the dataset's class (label index) order."""
    canonical = resolve_dataset(dataset)
    custom = _custom(canonical)
    if custom is not None:
        return list(custom.entries)
    return [vocab_entry(canonical, name) for name in LABEL_SPACES[canonical].classes]


def _custom(dataset: str):
    """The registered custom label space of `dataset` (vocab/custom.py), or None for the seven."""
    from pmoe_core.vocab.custom import registered

    return None if dataset in LABEL_SPACES else registered(dataset)


def union_entries(datasets: Iterable[str] | None = None) -> list[VocabEntry]:
    """The entries used by any of `datasets` (all seven if None), each once, in VOCABULARY order.

    This is the label-free vocabulary: the head scores points against it without knowing the source dataset.
    """
    names = list(LABEL_SPACES) if datasets is None else [resolve_dataset(d) for d in datasets]
    if not names:
        raise BadInput("no dataset given for the union vocabulary")
    used = {CLASS_TO_ENTRY[d][c] for d in names for c in LABEL_SPACES[d].classes}
    return [e for e in VOCABULARY if e.name in used]
