"""QA training and evaluation sets: synthetic questions (tabletop scenes, synthetic ScanNet rooms) with each scene's
model input computed once and cached.

A set is named by what shapes it (`QASetSpec`); its scene inputs (scene_input of every scene the questions ask
about) are cached as one .npz under `$PMOE_CACHE_DIR/qa` (default `~/.cache/pmoe/qa`), keyed by a hash of the spec
(the question wording does not enter the key: both template sets ask about the same scenes). Rooms come from a
synthetic raw ScanNet folder written once into the same cache (`pmoe_core.sources.synthetic_indoor.write_scannet`,
seeded): its scenes i % 3 == 0 are the training split, i % 3 == 1 the held-out one (ScanNet's val list).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from pmoe_core.outputs import atomic_path
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.progress import Progress, silent
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.model import GroundingTargets, QAInput, agent_features, question_text
from pmoe_core.qa.scene_input import QAScene, scene_input
from pmoe_core.scene import Scene
from pmoe_core.tabletop.tasks import WORLD_VERSION

CACHE_ENV = "PMOE_CACHE_DIR"
PERCEPTION_VERSION = 1  # bump when scene_input changes what it returns for the same cloud


@dataclass(frozen=True)
class QASetSpec:
    """Which questions: tabletop scenes of seeds `tabletop_start`.. (`tabletop_scenes` of them, colour split
    `split`) and the `room_split` rooms (the first `room_limit`, 0: all) of a synthetic ScanNet folder of `rooms`
    scenes (seed `room_seed`), worded
    with the `templates` set; scene inputs of `num_points` points and up to `max_objects` proposals."""

    tabletop_scenes: int = 0
    tabletop_start: int = 0
    split: str = "seen"
    rooms: int = 0
    room_split: str = "train"
    room_seed: int = 0
    room_limit: int = 0  # the first this many rooms of the split (0: all)
    templates: str = "train"
    num_points: int = 1024
    max_objects: int = 16

    def scene_key(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k != "templates"}
        data["perception"] = PERCEPTION_VERSION
        data["world"] = WORLD_VERSION  # tabletop scenes (final states stand at the goals) change with the world
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class QASet:
    """Questions and the model input of every scene they ask about (by scene ref); for rooms, what the annotation
    says each object proposal is (`synthetic_rooms.proposal_nouns`: the kind head's training targets)."""

    items: list[QAItem]
    scenes: dict[str, QAScene]
    object_nouns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def inputs(self, rows) -> list[QAInput]:
        return [item_input(self.items[i], self.scenes[self.items[i].scene]) for i in rows]

    def targets(self, rows, slots: int) -> GroundingTargets:
        """The kind and noun heads' targets for these questions: each proposal's annotated kind (-1: unknown, as
        for every tabletop proposal) and the kinds each question names."""
        from pmoe_core.qa.synthetic_rooms import question_nouns

        unknown = np.full(slots, -1, np.int64)
        kinds = np.stack([self.object_nouns.get(self.items[i].scene, unknown)[:slots] for i in rows])
        asked = np.stack([question_nouns(self.items[i].question) for i in rows])
        return GroundingTargets(torch.from_numpy(kinds), torch.from_numpy(asked))

    def texts(self) -> list[str]:
        return sorted({question_text(i.question, i.situation) for i in self.items})

    def joined(self, other: QASet) -> QASet:
        """Both sets' questions as one set; their scene refs must not overlap (a ref names one input)."""
        shared = sorted(set(self.scenes) & set(other.scenes))
        if shared:
            raise ValueError(f"two QA sets name scene {shared[0]!r}; rename one side's scenes")
        return QASet(self.items + other.items, {**self.scenes, **other.scenes},
                     {**self.object_nouns, **other.object_nouns})


def item_input(item: QAItem, scene: QAScene) -> QAInput:
    return QAInput(scene, question_text(item.question, item.situation),
                   agent_features(scene, item.position, item.rotation))


def qa_cache_dir(cache: str | Path | None = None) -> Path:
    if cache is not None:
        return Path(cache)
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "pmoe") / "qa"


def rooms_folder(count: int, seed: int, cache: str | Path | None = None) -> Path:
    """The synthetic raw ScanNet folder of `count` rooms, written on first use (into a temporary folder renamed into
    place, so an interrupted write never leaves a partial folder under the real name)."""
    from pmoe_core.sources.synthetic_indoor import write_scannet

    folder = qa_cache_dir(cache) / f"rooms-{count}-seed{seed}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        try:
            write_scannet(tmp, scenes=count, seed=seed)
            os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return folder


def build_items(spec: QASetSpec, cache: str | Path | None = None) -> list[QAItem]:
    from pmoe_core.qa.synthetic_rooms import room_qa, room_scenes
    from pmoe_core.qa.synthetic_tabletop import tabletop_qa

    items: list[QAItem] = []
    if spec.tabletop_scenes:
        seeds = range(spec.tabletop_start, spec.tabletop_start + spec.tabletop_scenes)
        items += tabletop_qa(seeds, spec.split, spec.templates)
    if spec.rooms:
        root = rooms_folder(spec.rooms, spec.room_seed, cache)
        names = room_scenes(root, spec.room_split)
        items += room_qa(root, templates=spec.templates, scenes=names[: spec.room_limit or None])
    return items


def load_set(spec: QASetSpec, cache: str | Path | None = None, progress: Progress = silent) -> QASet:
    """The questions of `spec` and their scenes' inputs (computed and cached on first use)."""
    items = build_items(spec, cache)
    refs = sorted({i.scene for i in items})
    path = qa_cache_dir(cache) / f"scenes-{spec.scene_key()}.npz"
    scenes = read_scenes(path) if path.is_file() else {}
    if set(refs) - set(scenes):
        scenes = _compute_scenes(refs, spec, cache, progress)
        write_scenes(path, scenes)
    scenes = {r: scenes[r] for r in refs}
    return QASet(items, scenes, _object_nouns(scenes, spec, cache))


def _object_nouns(scenes: dict[str, QAScene], spec: QASetSpec, cache) -> dict[str, np.ndarray]:
    """Each room scene's proposal kinds from its annotation, cached beside the scene inputs."""
    from pmoe_core.qa.synthetic_rooms import OBJECT_NOUNS, proposal_nouns, room_objects

    rooms = sorted(r for r in scenes if not r.startswith("tabletop/"))
    if not rooms:
        return {}
    path = qa_cache_dir(cache) / f"nouns-{spec.scene_key()}-{len(OBJECT_NOUNS)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            stored = dict(zip(f["refs"].tolist(), f["nouns"]))
        if set(rooms) <= set(stored):
            return {r: stored[r] for r in rooms}
    root = rooms_folder(spec.rooms, spec.room_seed, cache)
    out = {r: proposal_nouns(room_objects(root, r), scenes[r], spec.max_objects) for r in rooms}
    with atomic_path(path, make_parents=True) as tmp, open(tmp, "wb") as f:
        np.savez(f, refs=np.array(rooms), nouns=np.stack([out[r] for r in rooms]))
    return out


def load_scene_input(ref: str, root: str | Path | None, num_points: int, max_objects: int,
                     source: str | None = None) -> tuple[Scene, QAScene]:
    """A scene's cloud and its model input, sampled with seed 0: the QA sets' training scenes and a benchmark
    file's scored scenes go through here, so both read the same sample of a cloud."""
    from pmoe_core.qa.scenes import load_scene_cloud

    cloud = load_scene_cloud(ref, root)
    return cloud, scene_input(cloud, num_points, max_objects, seed=0, source=source or ref)


def _compute_scenes(refs: list[str], spec: QASetSpec, cache, progress: Progress) -> dict[str, QAScene]:
    root = rooms_folder(spec.rooms, spec.room_seed, cache) if spec.rooms else None
    progress(total=len(refs))
    out = {}
    for ref in refs:
        _, out[ref] = load_scene_input(ref, None if ref.startswith("tabletop/") else root, spec.num_points,
                                       spec.max_objects)
        progress(advance=1)
    return out


def write_scenes(path: Path, scenes: dict[str, QAScene], **extra: np.ndarray) -> None:
    """Scene inputs as one .npz (with `extra` arrays beside them, which `read_scenes` leaves alone)."""
    refs = sorted(scenes)
    with atomic_path(path, make_parents=True) as tmp, open(tmp, "wb") as f:
        np.savez(f, **extra, refs=np.array(refs), points=np.stack([scenes[r].points for r in refs]),
                 scale=np.array([scenes[r].scale for r in refs]), origin=np.stack([scenes[r].origin for r in refs]),
                 kind=np.array([scenes[r].kind for r in refs]), objects=np.array([scenes[r].objects for r in refs]))


def scenes_digest(scenes: dict[str, QAScene]) -> str:
    """sha256 of what the model sees of `scenes` (their ids and inputs, in id order): a resume compares it, since a
    store given again by path may hold other clouds."""
    digest = hashlib.sha256()
    for ref in sorted(scenes):
        scene = scenes[ref]
        digest.update(ref.encode() + b"\0")
        digest.update(np.ascontiguousarray(scene.points, np.float32).tobytes())
        digest.update(np.asarray([scene.scale, *np.asarray(scene.origin, np.float64)], np.float64).tobytes())
    return digest.hexdigest()


def read_scenes(path: Path) -> dict[str, QAScene]:
    with np.load(path, allow_pickle=False) as f:
        refs, points, scale, origin, kind, objects = (f[k] for k in ("refs", "points", "scale", "origin", "kind",
                                                                       "objects"))
    return {str(r): QAScene(points[i], float(scale[i]), origin[i], str(kind[i]), int(objects[i]))
            for i, r in enumerate(refs)}


def load_text_states(features: TextFeatures, texts: list[str], cache: str | Path | None) -> None:
    """Every question's frozen-LM states, from the on-disk cache when this exact set was computed before.

    Freshly computed states are saved and read back, so every run uses the stored (float16) values: a run that
    computed them and one that read them (a resumed run) see the same numbers."""
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = qa_cache_dir(cache) / f"text-{key}.npz"
    if path.is_file() and features.load(path):
        return
    features.encode(texts)
    features.save(path)
    features.load(path)
