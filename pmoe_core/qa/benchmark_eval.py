"""Scoring an answering model on the benchmarks' own files (ScanQA v1.0, SQA3D v1): what `pmoe qa eval` runs.

`pmoe qa bench` scores held-out synthetic questions; this scores whatever a user's ScanQA / SQA3D files hold, with
the scenes read from a converted store or a raw ScanNet v2 folder (`scenes.load_scene_cloud`), every scene through
`scene_input` once, and the questions answered by `evaluate.predict` (and `predict_ranked` for EM@10), so a
benchmark question reaches the model exactly as a training question does.

Question types follow the benchmarks, from the question text (`readers.scanqa_question_type`: ScanQA's score.py
classes; `readers.sqa3d_question_type`: SQA3D's first-word types), whatever type a file carries (pmoe's synthetic
files carry their template family; it is kept per question in the report as `file_type`). ScanQA's table is
EM@1 and BLEU-1..4, ROUGE-L, METEOR and CIDEr of the greedy answer (`metrics.scanqa_scores`; per type, CIDEr's idf
comes from that type's questions); SQA3D's is EM@1. With `em10`, EM@10 is added: a hit when any of the ten best
answers of a beam search of ten matches.

SQA3D gives agents in its own frame (the raw mesh centred on its bounding box); they are moved into the cloud's
frame with `sqa3d_frame.in_scene_frame`, which needs the raw ScanNet folder (a converted store keeps neither the
raw mesh nor the alignment).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from pmoe_core.errors import BadInput, MissingFile
from pmoe_core.progress import Progress, silent
from pmoe_core.qa.answer import Agent, check_agent_in_scene
from pmoe_core.qa.data import QASet, load_scene_input, load_text_states
from pmoe_core.qa.evaluate import EM10_BEAMS, predict, predict_ranked
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.metrics import ScanQAScores, em_by_type, scanqa_scores
from pmoe_core.qa.readers import (
    SCANQA_TYPES,
    SQA3D_TYPES,
    read_scanqa,
    read_sqa3d,
    scanqa_question_type,
    sqa3d_paths,
    sqa3d_question_type,
)
from pmoe_core.qa.scene_input import QAScene
from pmoe_core.qa.sqa3d_frame import in_scene_frame, scene_folder

SCANQA, SQA3D = "ScanQA", "SQA3D"
ALL = "all"


@dataclass(frozen=True)
class BenchmarkFile:
    """The questions of one benchmark file (an SQA3D questions + annotations pair), typed as the benchmark types
    them; `file_types` keeps the type the file itself gave each question id (pmoe's synthetic files: the template
    family); `total` is the file's question count before `limit` cut it."""

    benchmark: str
    paths: tuple[Path, ...]
    items: list[QAItem]
    file_types: dict[str, str]
    total: int


@dataclass(frozen=True)
class Scores:
    """One row of the report (x100). EM@10 with --em10 only; the caption metrics for ScanQA only; `meteor` None
    when it could not be computed (the result's `notes` say why)."""

    count: int
    em1: float
    em10: float | None = None
    bleu: tuple[float, float, float, float] | None = None
    rouge_l: float | None = None
    meteor: float | None = None
    cider: float | None = None

    def to_json(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "bleu"}
        if self.bleu is not None:
            out.update({f"bleu{n}": b for n, b in enumerate(self.bleu, 1)})
        return out


@dataclass(frozen=True)
class Answered:
    """One question and what the model said: the greedy answer, and the ranked answers with EM@10. `position` and
    `rotation` are the agent as the model read it (the cloud's frame)."""

    item: QAItem
    file_type: str
    prediction: str
    ranked: tuple[str, ...] | None = None

    def to_json(self) -> dict:
        i = self.item
        out = {"question_id": i.qid, "scene_id": i.scene, "question": i.question, "question_type": i.question_type,
               "file_type": self.file_type, "answers": list(i.answers), "prediction": self.prediction}
        if i.situation is not None:
            out.update(situation=i.situation, position=list(i.position), rotation=list(i.rotation))
        if self.ranked is not None:
            out["ranked"] = list(self.ranked)
        return out


@dataclass
class EvalResult:
    """Everything `pmoe qa eval` reports: `scores` holds "all" first, then each benchmark type present;
    `by_file_type` EM per the file's own types where they differ (`file_type_scores`); `seconds` per stage;
    `notes`: what was not computed and why; `agents_outside`: questions whose agent stands outside its scene."""

    benchmark: str
    files: list[str]
    checkpoint: str
    scenes_root: str
    scannet_raw: str | None
    questions_in_files: int
    scenes: int
    em10: bool
    scores: dict[str, Scores]
    answered: list[Answered]
    by_file_type: dict[str, Scores] = field(default_factory=dict)
    tokenizer: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    agents_outside: list[str] = field(default_factory=list)  # question ids (`SceneInputs`)
    checkpoint_step: int | None = None  # the training step it was saved at
    trained_on: list[dict] = field(default_factory=list)  # benchmark files the checkpoint trained on (path, sha256)

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "files": self.files, "checkpoint": self.checkpoint,
                "checkpoint_step": self.checkpoint_step, "trained_on": self.trained_on,
                "scenes_root": self.scenes_root, "scannet_raw": self.scannet_raw,
                "questions": len(self.answered), "questions_in_files": self.questions_in_files,
                "scenes": self.scenes, "agents_outside": self.agents_outside, "em10": self.em10,
                "tokenizer": self.tokenizer, "notes": self.notes,
                "scores": {k: v.to_json() for k, v in self.scores.items()},
                "by_file_type": {k: v.to_json() for k, v in self.by_file_type.items()},
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "per_question": [a.to_json() for a in self.answered]}


# --- reading ----------------------------------------------------------------------------------------------------

def read_benchmark(scanqa: str | Path | None = None, sqa3d_dir: str | Path | None = None, split: str = "val",
                   limit: int | None = None) -> BenchmarkFile:
    """The questions of one ScanQA file or of one SQA3D split (its balanced pair in `sqa3d_dir`), the first `limit`
    of them when given; refused when there is nothing to score."""
    if (scanqa is None) == (sqa3d_dir is None):
        raise BadInput("give one benchmark file: --scanqa FILE or --sqa3d-dir DIR (not both, not neither)")
    if limit is not None and limit < 1:
        raise BadInput(f"--limit must be >= 1, got {limit}")
    if scanqa is not None:
        benchmark, paths, typed = SCANQA, (Path(scanqa),), scanqa_question_type
        items = read_scanqa(scanqa)
    else:
        if not Path(sqa3d_dir).is_dir():
            raise MissingFile("no such folder (SQA3D's sqa_task/balanced/ holds the question files)", sqa3d_dir)
        benchmark, paths, typed = SQA3D, sqa3d_paths(sqa3d_dir, split), sqa3d_question_type
        items = read_sqa3d(*paths)
    if not items:
        raise BadInput("the file holds no questions", paths[0])
    unanswered = [i.qid for i in items if not i.answers]
    if unanswered:
        raise BadInput(f"{len(unanswered)} of {len(items)} questions have no reference answer (first: question_id "
                       f"{unanswered[0]}); a test split without answers cannot be scored or trained on", paths[-1])
    kept = items[:limit]
    return BenchmarkFile(benchmark, paths, [dataclasses.replace(i, question_type=typed(i.question)) for i in kept],
                         {i.qid: i.question_type for i in kept}, len(items))


# --- scenes -----------------------------------------------------------------------------------------------------

def is_raw_scannet(root: Path) -> bool:
    return (root / "scans").is_dir() or (root / "scans_test").is_dir()


def scene_names(root: str | Path) -> set[str]:
    """The scene ids a converted store (any split) or a raw ScanNet v2 folder holds."""
    from pmoe_core.store.layout import is_store_folder

    root = Path(root)
    if is_store_folder(root):
        from pmoe_core.store.reader import StoreReader

        reader = StoreReader(str(root))
        return {name for split in reader.splits for name in reader.names(split)}
    if is_raw_scannet(root):
        from pmoe_core.sources import scannet

        return {ref.name for ref in scannet.list_scenes(root, scannet.Options())}
    inside = sorted(p.name for p in root.glob("*.zarr") if is_store_folder(p)) if root.is_dir() else []
    hint = f" (the store is {root / inside[0]})" if inside else ""
    raise MissingFile("--scenes must be a converted pmoe store (with zarr.json) or a raw ScanNet v2 folder "
                      f"(with scans/){hint}", root)


def check_scenes(file: BenchmarkFile, root: str | Path) -> None:
    """Every scene the questions ask about is in `root`: one line naming the first missing one, before any work."""
    wanted, there = sorted({i.scene for i in file.items}), scene_names(root)
    missing = [s for s in wanted if s not in there]
    if missing:
        raise MissingFile(f"{len(missing)} of the {len(wanted)} scenes {file.paths[0].name} asks about are not "
                          f"here (first: {missing[0]})", root)


def raw_root_for_agents(file: BenchmarkFile, scenes_root: str | Path, scannet_raw: str | Path | None) -> Path | None:
    """The raw ScanNet folder that fixes SQA3D's agent frame: `scannet_raw`, else `scenes_root` when it is raw;
    None when no question has an agent; refused when agents need one and neither gives it, or it lacks a scene."""
    situated = sorted({i.scene for i in file.items if i.position is not None})
    if not situated:
        return None
    if scannet_raw is not None:
        if not is_raw_scannet(Path(scannet_raw)):
            raise MissingFile("--scannet-raw must be a raw ScanNet v2 folder (with scans/)", scannet_raw)
        raw = Path(scannet_raw)
    elif is_raw_scannet(Path(scenes_root)):
        raw = Path(scenes_root)
    else:
        raise BadInput(f"{file.paths[-1]}: its agents are in SQA3D's frame (the raw mesh's bounding-box centre); "
                       "a converted store cannot place them: give the raw ScanNet folder with --scannet-raw")
    for scene in situated:
        scene_folder(raw, scene)  # MissingFile naming the first scene the raw folder lacks
    return raw


def check_inputs(file: BenchmarkFile, scenes_root: str | Path, scannet_raw: str | Path | None) -> Path | None:
    """Every refusal that needs no model (cheap: listings only), so a command can fail before loading one; returns
    the raw folder that places the agents (`raw_root_for_agents`)."""
    check_scenes(file, scenes_root)
    return raw_root_for_agents(file, scenes_root, scannet_raw)


@dataclass(frozen=True)
class SceneInputs:
    """Each scene's model input, and the questions whose agent stands outside its scene (`agents_outside`)."""

    scenes: dict[str, QAScene]
    agents_outside: list[str]


def scene_inputs(items: list[QAItem], root: str | Path, num_points: int, max_objects: int,
                 progress: Progress = silent) -> SceneInputs:
    """The model input of every scene `items` ask about, computed once as the QA sets compute theirs (seed 0).
    While each cloud is loaded, its agents are checked against it (`answer.check_agent_in_scene`, the rule
    `pmoe qa` refuses a pose by): a benchmark file is scored whole, but many agents outside their rooms mean
    positions in another frame, which would silently ruin the situated scores."""
    by_scene: dict[str, list[QAItem]] = {}
    for item in items:
        by_scene.setdefault(item.scene, []).append(item)
    progress(total=len(by_scene))
    scenes, outside = {}, []
    for scene_id in sorted(by_scene):
        source = f"{root}::{scene_id}"
        cloud, scenes[scene_id] = load_scene_input(scene_id, root, num_points, max_objects, source)
        outside += [i.qid for i in by_scene[scene_id] if not _agent_inside(i, cloud, source)]
        progress(advance=1)
    return SceneInputs(scenes, outside)


def _agent_inside(item: QAItem, cloud, source: str) -> bool:
    if item.position is None or item.rotation is None:
        return True
    try:
        check_agent_in_scene(Agent(item.position, item.rotation), cloud, source)
    except BadInput:
        return False
    return True


# --- scoring ----------------------------------------------------------------------------------------------------

def score(file: BenchmarkFile, predictions: dict[str, str], ranked: dict[str, list[str]] | None
          ) -> tuple[dict[str, Scores], str | None, list[str]]:
    """The benchmark's table: "all", then each type present (in the benchmark's order); the caption tokenizer and
    notes for ScanQA."""
    order = SCANQA_TYPES if file.benchmark == SCANQA else SQA3D_TYPES
    present = {i.question_type for i in file.items}
    groups = [(ALL, file.items)] + [(t, [i for i in file.items if i.question_type == t])
                                    for t in order if t in present]
    scores, tokenizer, notes = {}, None, []
    for name, items in groups:
        em10 = em_by_type(items, ranked, top=EM10_BEAMS).em1 if ranked is not None else None
        if file.benchmark == SCANQA:
            caption = scanqa_scores(items, predictions)
            scores[name] = _from_scanqa(caption, em10)
            tokenizer = caption.tokenizer
            notes += [n for n in caption.notes if n not in notes]
        else:
            scores[name] = Scores(len(items), em_by_type(items, predictions).em1, em10)
    return scores, tokenizer, notes


def file_type_scores(file: BenchmarkFile, predictions: dict[str, str], ranked: dict[str, list[str]] | None
                     ) -> dict[str, Scores]:
    """EM per the type the file itself gave, where that differs from the benchmark's (pmoe's synthetic files: per
    template family, which the benchmark's text rule cannot see); empty for the releases' own files."""
    if all(file.file_types[i.qid] == i.question_type for i in file.items):
        return {}
    retyped = [dataclasses.replace(i, question_type=file.file_types[i.qid]) for i in file.items]
    em = em_by_type(retyped, predictions)
    em10 = em_by_type(retyped, ranked, top=EM10_BEAMS) if ranked is not None else None
    return {t: Scores(n, v, em10.per_type[t][0] if em10 else None) for t, (v, n) in em.per_type.items()}


def _from_scanqa(s: ScanQAScores, em10: float | None) -> Scores:
    return Scores(s.count, s.em1, em10, s.bleu, s.rouge_l, s.meteor, s.cider)


# --- the whole run ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalOptions:
    em10: bool = False
    batch_size: int = 64
    max_tokens: int | None = None


def evaluate_file(loaded, file: BenchmarkFile, scenes_root: str | Path, scannet_raw: str | Path | None = None,
                  options: EvalOptions = EvalOptions(), scene_progress: Progress = silent,
                  progress: Progress = silent) -> EvalResult:
    """Answer and score every question of `file` with a loaded model (`train.LoadedQA`)."""
    raw = check_inputs(file, scenes_root, scannet_raw)
    items = in_scene_frame(file.items, raw) if raw is not None else file.items
    model, seconds = loaded.model, {}
    started = time.perf_counter()
    inputs = scene_inputs(items, scenes_root, model.config.num_points, model.config.max_objects, scene_progress)
    data = QASet(items, inputs.scenes)
    seconds["scenes"] = time.perf_counter() - started
    started = time.perf_counter()
    load_text_states(model.features, data.texts(), None)
    seconds["text"] = time.perf_counter() - started
    started = time.perf_counter()
    predictions = predict(model, data, options.batch_size, options.max_tokens, progress)
    ranked = (predict_ranked(model, data, EM10_BEAMS, options.batch_size, options.max_tokens, progress)
              if options.em10 else None)
    seconds["answer"] = time.perf_counter() - started
    started = time.perf_counter()
    placed = dataclasses.replace(file, items=items)
    scores, tokenizer, notes = score(placed, predictions, ranked)
    by_file_type = file_type_scores(placed, predictions, ranked)
    seconds["score"] = time.perf_counter() - started
    answered = [Answered(i, file.file_types[i.qid], predictions[i.qid], tuple(ranked[i.qid]) if ranked else None)
                for i in items]
    return EvalResult(file.benchmark, [str(p) for p in file.paths], str(loaded.path), str(scenes_root),
                      str(raw) if raw is not None else None, file.total, len(inputs.scenes), options.em10,
                      scores, answered, by_file_type, tokenizer, notes, seconds, inputs.agents_outside,
                      loaded.meta.get("step"), list(loaded.meta.get("train_args", {}).get("data_files") or []))
