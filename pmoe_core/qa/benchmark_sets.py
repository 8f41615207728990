"""The benchmarks' own files (a ScanQA file, an SQA3D split) as training questions: what `pmoe qa train --scanqa /
--sqa3d-dir` adds to the synthetic mix.

Files are read, checked and placed exactly as `pmoe qa eval` reads them (`benchmark_eval.read_benchmark`,
`check_inputs`, `sqa3d_frame.in_scene_frame`, `scene_inputs`), so a question trains the model in the form it is later
scored in. Their scenes are renamed `files/<scene id>` inside the set: pmoe's synthetic rooms use ScanNet's ids too,
and the two must not share an input. The kind head learns nothing from them (no proposal annotation: -1, as for
tabletops); the noun head's targets come from the question text, as for every question.

Each file is identified by its sha256 (`FileRecord`), which the checkpoint keeps so a resume refuses a changed data
set, wherever the files are moved (and the trainer keeps a digest of the scene inputs, `data.scenes_digest`, for
the scenes). The scene inputs are cached under the QA cache (`files-*.npz`), keyed by those hashes, the scene roots
(path, and when their marker zarr.json / scans/ last changed) and the input sizes: a scene edited in place without
touching that marker is not noticed (delete the `files-*.npz`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput
from pmoe_core.progress import Progress, silent
from pmoe_core.qa.benchmark_eval import (
    BenchmarkFile,
    check_inputs,
    read_benchmark,
    scene_inputs,
)
from pmoe_core.qa.data import (
    PERCEPTION_VERSION,
    QASet,
    qa_cache_dir,
    read_scenes,
    write_scenes,
)
from pmoe_core.qa.sqa3d_frame import in_scene_frame

SCENE_PREFIX = "files/"


@dataclass(frozen=True)
class TrainingFiles:
    """What the user named: a ScanQA file and/or an SQA3D folder and split, where their scenes are (`scenes`: a
    converted store or a raw ScanNet folder) and the raw folder that places SQA3D's agents (`scannet_raw`)."""

    scanqa: str | None = None
    sqa3d_dir: str | None = None
    sqa3d_split: str | None = None  # None: train
    scenes: str | None = None
    scannet_raw: str | None = None

    @property
    def given(self) -> bool:
        return self.scanqa is not None or self.sqa3d_dir is not None


@dataclass(frozen=True)
class FileRecord:
    """One file a model was trained on, as the checkpoint records it."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class FileQuestions:
    """The checked files, their records, and the raw folder that places the agents (None: no agents)."""

    files: list[BenchmarkFile]
    records: list[FileRecord]
    raw: Path | None


def read_training_files(spec: TrainingFiles) -> FileQuestions:
    """Every refusal before any work: options that do not go together, a missing or malformed file, one without
    answers, scenes not in `scenes`, agents with no raw folder to place them."""
    if not spec.given:
        named = [o for o, v in (("--scenes", spec.scenes), ("--scannet-raw", spec.scannet_raw),
                                ("--sqa3d-split", spec.sqa3d_split)) if v is not None]
        if named:
            raise BadInput(f"{named[0]} belongs to benchmark files: give --scanqa FILE or --sqa3d-dir DIR too")
        return FileQuestions([], [], None)
    if spec.sqa3d_split is not None and spec.sqa3d_dir is None:
        raise BadInput("--sqa3d-split picks an SQA3D split: give --sqa3d-dir DIR too")
    if spec.scenes is None:
        raise BadInput("--scenes ROOT is needed: the converted store or raw ScanNet folder the files' scene ids are in")
    files = []
    if spec.scanqa is not None:
        files.append(read_benchmark(scanqa=spec.scanqa))
    if spec.sqa3d_dir is not None:
        files.append(read_benchmark(sqa3d_dir=spec.sqa3d_dir, split=spec.sqa3d_split or "train"))
    raws = [check_inputs(f, spec.scenes, spec.scannet_raw) for f in files]
    raw = next((r for r in raws if r is not None), None)
    return FileQuestions(files, [file_record(p) for f in files for p in f.paths], raw)


def file_record(path: str | Path) -> FileRecord:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        size = f.tell()  # bytes hashed, read from the same handle
    return FileRecord(str(Path(path).resolve()), digest, size)


@dataclass(frozen=True)
class FileSet:
    """The files' questions as one training set (scenes `files/<id>`, agents in the clouds' frame), and the
    questions whose agent stands outside its scene (`benchmark_eval.SceneInputs`)."""

    data: QASet
    agents_outside: list[str]


def load_file_set(questions: FileQuestions, spec: TrainingFiles, num_points: int, max_objects: int,
                  cache: str | Path | None = None, progress: Progress = silent) -> FileSet:
    """Every question of the files, its scene's input computed once (or read from the cache)."""
    items = [i for f in questions.files for i in f.items]
    if questions.raw is not None:
        items = in_scene_frame(items, questions.raw)
    path = qa_cache_dir(cache) / f"files-{_scene_key(questions, spec, num_points, max_objects)}.npz"
    if path.is_file():
        scenes = read_scenes(path)
        with np.load(path, allow_pickle=False) as f:
            outside = [str(q) for q in f["agents_outside"]]
    else:
        inputs = scene_inputs(items, spec.scenes, num_points, max_objects, progress)
        scenes, outside = inputs.scenes, inputs.agents_outside
        write_scenes(path, scenes, agents_outside=np.array(outside, dtype=str))
    named = {SCENE_PREFIX + s: scene for s, scene in scenes.items()}
    return FileSet(QASet([replace(i, scene=SCENE_PREFIX + i.scene) for i in items], named), outside)


def _scene_key(questions: FileQuestions, spec: TrainingFiles, num_points: int, max_objects: int) -> str:
    roots = [str(Path(r).resolve()) for r in (spec.scenes, questions.raw) if r is not None]
    data = {"files": [(r.sha256, r.bytes) for r in questions.records], "roots": roots,
            "changed": [_marker_mtime(Path(r)) for r in roots], "num_points": num_points,
            "max_objects": max_objects, "perception": PERCEPTION_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _marker_mtime(root: Path) -> int:
    """When a root's contents last changed as far as cheaply seen: a store's zarr.json, a raw folder's scans/."""
    for marker in (root / "zarr.json", root / "scans", root / "scans_test"):
        if marker.exists():
            return marker.stat().st_mtime_ns
    return 0
