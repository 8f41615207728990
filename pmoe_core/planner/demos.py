"""Training data for the planner: oracle demonstrations and referring phrases, generated once and cached.

A demonstration is one episode of the planner world on a TRAIN seed with SEEN colours: the camera cloud from
`observe()`, subsampled by `scene_points` (seeded by the episode seed, with each point's object-proposal id), the
task's instruction in one of the training phrasings, referring phrases for Stage I ("the red bowl", "the block at
the top left": which object a phrase means, from the scene's description), and the oracle's
pick/place sequence put in an order the observation determines (`canonical_steps`): the oracle fills goals
with candidates in object-id order, which the model cannot see, so the same scene would have several "right"
first steps and the flow head would learn their blur. Every episode comes twice, as drawn and mirrored
(tabletop/mirror.py: y -> -y, "left" <-> "right"), so each side's words have the other side's as contrast. Train
seeds are 0, 1, 2, ...; held-out evaluation starts at `HELD_OUT_SEED`, far from any training run's range.
Rendering costs ~0.1 s per episode, so a set is written once as an `.npz` under `$PMOE_CACHE_DIR/demos` (else
`~/.cache/pmoe/demos`), named by a hash of everything that shaped it. The instructions are not cached: they are
worded again at every load (milliseconds), so a change of phrasing.py's frames reaches training without a stale
cache or a re-render.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pmoe_core.outputs import atomic_path
from pmoe_core.planner.objects import ObjectTokenConfig
from pmoe_core.planner.pose_tokens import steps_to_tensor
from pmoe_core.planner.scene_encoder import scene_points
from pmoe_core.progress import Progress, silent
from pmoe_core.tabletop.mirror import mirror_scene, mirror_words
from pmoe_core.tabletop.observe import observe
from pmoe_core.tabletop.oracle import Step, oracle_steps
from pmoe_core.tabletop.poses import BLOCK_SYMMETRY, Pose
from pmoe_core.tabletop.tasks import WORLD_VERSION, make_scene, task_name
from pmoe_core.tabletop.world import SceneDesc

DEMO_VERSION = 8  # 8: every episode also mirrored
REFS = 8  # referring phrases kept per demonstration
HELD_OUT_SEED = 100_000  # evaluation episodes use seeds from here on; training uses 0..episodes-1
CACHE_ENV = "PMOE_CACHE_DIR"


@dataclass(frozen=True)
class DemoSpec:
    """What a demonstration set contains; two equal specs give bit-identical sets."""

    tasks: tuple[str, ...]
    episodes: int  # per task, seeds 0..episodes-1
    num_points: int
    max_steps: int
    split: str = "seen"
    phrasing: str = "train"  # tasks.make_scene's instruction phrasings: "template", "train" or "heldout"
    max_objects: int = 10  # object proposals (objects.ObjectTokenConfig): they shape the cached proposal ids
    radius: float = 0.012
    min_points: int = 24

    def objects(self) -> ObjectTokenConfig:
        return ObjectTokenConfig(max_objects=self.max_objects, radius=self.radius, min_points=self.min_points)

    def key(self) -> str:
        text = json.dumps({"version": DEMO_VERSION, "world": WORLD_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class DemoSet:
    """Arrays of D demonstrations, row-aligned: each (task, seed) as drawn, then mirrored."""

    points: np.ndarray  # (D, N, 7) float32: xyz (m), rgb in [0, 1], object-proposal id
    poses: np.ndarray  # (D, S, 2, 7) float32 oracle pick/place poses, padded past `lengths`
    lengths: np.ndarray  # (D,) int64
    instructions: list[str]
    ref_texts: np.ndarray  # (D, REFS) str: referring phrases ("" past the last)
    ref_xy: np.ndarray  # (D, REFS, 2) float32: the xy (m) of the object each phrase means
    tasks: list[str]
    seeds: np.ndarray  # (D,) int64
    mirrored: np.ndarray  # (D,) bool: the episode reflected in y = 0 (tabletop/mirror.py)

    def __len__(self) -> int:
        return len(self.instructions)


def _where(x: float, y: float) -> str:
    """Rough table position in the words of the task templates ("top" = far from the robot, "left" = +y)."""
    row = "top" if x > 0.583 else "bottom" if x < 0.417 else ""
    col = "left" if y > 0.167 else "right" if y < -0.167 else ""
    if row and col:
        return f"{row} {col}"
    return row or col or "center"


_REF_FORMS = ("the {a} {k}", "{a} {k}", "the {k} that is {a}")


def referring_phrases(desc: SceneDesc) -> list[tuple[str, float, float]]:
    """Phrases that name exactly one object of the scene, with its xy: by colour ("the red bowl"), by size and
    colour where the colour alone is shared ("the big red block"), by rough position ("the block at the top
    left") where that is unique. Stage I teaches the trunk to find what a phrase names; the words are the
    tasks' (colours, kinds, sizes, table positions), the phrasing varies with the episode seed."""
    rng = np.random.default_rng([desc.seed, 7])
    out = []
    for obj in desc.objects:
        same = [o for o in desc.objects if o.kind == obj.kind and o.color == obj.color]
        size = "big" if obj.size >= 0.05 else "small"
        if len(same) == 1:
            adjective = obj.color
        elif obj.kind == "block" and sum((o.size >= 0.05) == (obj.size >= 0.05) for o in same) == 1:
            adjective = f"{size} {obj.color}"
        else:
            adjective = None
        form = _REF_FORMS[int(rng.integers(len(_REF_FORMS)))]
        if adjective is not None:
            out.append((form.format(a=adjective, k=obj.kind), *obj.position[:2]))
        where = _where(*obj.position[:2])
        if sum(o.kind == obj.kind and _where(*o.position[:2]) == where for o in desc.objects) == 1:
            out.append((f"the {obj.kind} at the {where}", *obj.position[:2]))
    order = rng.permutation(len(out))
    return [out[i] for i in order[:REFS]]


def canonical_steps(desc: SceneDesc) -> list[Step]:
    """The oracle's plan with interchangeable blocks assigned, and independent steps ordered, by position.

    Candidates of each goal are tried in (x, y) order of their objects; then steps are sorted by the height of
    their place pose (a stacked block always comes after the one below it) and, within a height, by the place's
    (x, y), then the pick's. Every ordering this produces is one the oracle's goals allow, so it scores the same.
    Ordering by the place makes each step's place a matter of geometry (the k-th bowl from the robot) and leaves
    the pick to follow from it (the block of that bowl's colour); ordered by the pick, the first step had to work
    out which blocks have a bowl at all before it could choose one. Yaws are folded
    into [-45, 45) degrees: a cube looks the same after a quarter turn, so the oracle's yaw is one of four equally
    right ones the cloud cannot tell apart; a block picked and placed with folded yaws ends in the same pose modulo
    that symmetry.
    """
    goals = [
        dataclasses.replace(g, candidates=tuple(sorted(g.candidates, key=lambda i: desc.object(i).position[:2])))
        for g in desc.goals
    ]
    steps = [Step(_folded(s.pick), _folded(s.place)) for s in oracle_steps(dataclasses.replace(desc, goals=goals))]
    return sorted(steps, key=lambda s: (round(s.place.position[2], 2), *s.place.position[:2], *s.pick.position[:2]))


def _folded(pose: Pose) -> Pose:
    half = BLOCK_SYMMETRY / 2
    return Pose.from_yaw(pose.position, (pose.yaw + half) % BLOCK_SYMMETRY - half)


def build_demo(desc: SceneDesc, num_points: int, objects: ObjectTokenConfig) -> tuple[np.ndarray, list[Step]]:
    """(encoder input (N, 7), canonical oracle steps) of one episode."""
    cloud = observe(desc)
    points = scene_points(cloud.coord, cloud.color, num_points, desc.seed, objects).numpy()
    return points, canonical_steps(desc)


def generate_demos(spec: DemoSpec, progress: Progress = silent) -> DemoSet:
    """Render every (task, seed) episode of `spec` and its mirror; deterministic."""
    tasks = [task_name(t) for t in spec.tasks]
    progress(total=2 * len(tasks) * spec.episodes)
    points, sequences, instructions, refs, names, seeds, mirrored = [], [], [], [], [], [], []
    for task in tasks:
        for seed in range(spec.episodes):
            drawn = make_scene(task, seed, spec.split, spec.phrasing)
            for flip, desc in ((False, drawn), (True, mirror_scene(drawn))):
                cloud, steps = build_demo(desc, spec.num_points, spec.objects())
                points.append(cloud)
                sequences.append(steps)
                instructions.append(desc.instruction)
                refs.append(referring_phrases(desc))
                names.append(task)
                seeds.append(seed)
                mirrored.append(flip)
                progress(advance=1, message=f"{task} {seed}")
    poses, lengths = steps_to_tensor(sequences, spec.max_steps)
    ref_texts = np.full((len(refs), REFS), "", dtype=object)
    ref_xy = np.zeros((len(refs), REFS, 2), np.float32)
    for i, phrases in enumerate(refs):
        for j, (text, x, y) in enumerate(phrases):
            ref_texts[i, j], ref_xy[i, j] = text, (x, y)
    return DemoSet(
        np.stack(points).astype(np.float32), poses.numpy(), lengths.numpy().astype(np.int64), instructions,
        ref_texts.astype(str), ref_xy, names, np.asarray(seeds, dtype=np.int64), np.asarray(mirrored, dtype=bool),
    )


def demo_cache_dir(cache: str | Path | None = None) -> Path:
    if cache is not None:
        return Path(cache)
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "pmoe") / "demos"


def save_demos(demos: DemoSet, path: Path) -> None:
    """Atomic write (temporary file + rename) so an interrupted run never leaves half a cache entry."""
    with atomic_path(path, make_parents=True) as tmp:  # suffix .npz kept: np.savez appends none
        np.savez(
            tmp, points=demos.points, poses=demos.poses, lengths=demos.lengths, seeds=demos.seeds,
            ref_texts=demos.ref_texts, ref_xy=demos.ref_xy, tasks=np.asarray(demos.tasks), mirrored=demos.mirrored,
        )


def read_demos(path: Path, spec: DemoSpec) -> DemoSet:
    """A cached set, its instructions worded now from `spec.phrasing` (an older file's stored ones are ignored)."""
    with np.load(path, allow_pickle=False) as f:
        tasks, seeds, mirrored = [str(s) for s in f["tasks"]], f["seeds"], f["mirrored"]
        instructions = []
        for task, seed, flip in zip(tasks, seeds.tolist(), mirrored.tolist()):
            text = make_scene(task, seed, spec.split, spec.phrasing).instruction
            instructions.append(mirror_words(text) if flip else text)
        return DemoSet(f["points"], f["poses"], f["lengths"], instructions, f["ref_texts"], f["ref_xy"], tasks, seeds,
                       mirrored)


def load_demos(spec: DemoSpec, cache: str | Path | None = None, progress: Progress = silent) -> DemoSet:
    """The cached set of `spec`, generating and caching it on first use."""
    path = demo_cache_dir(cache) / f"demos-{spec.key()}.npz"
    if path.is_file():
        return read_demos(path, spec)
    demos = generate_demos(spec, progress)
    save_demos(demos, path)
    return demos
