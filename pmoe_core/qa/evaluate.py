"""Answering a whole QA set, and scoring answers per question type (what `pmoe qa bench` and bench/qa.py report).

Scores are D's metrics (qa/metrics.py): EM@1 as ScanQA/SQA3D define it and CIDEr (pycocoevalcap), both over the
greedy answer (what `pmoe qa` prints), and, when asked for, EM@10 over the ten best answers of a beam search of ten.
CIDEr's idf comes from the references of the questions scored together, so a per-type CIDEr is computed within that
type's questions. The majority baseline answers every question of a type with that type's most common training
answer (for EM@10: its ten most common).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pmoe_core.progress import Progress, silent
from pmoe_core.qa.data import QASet, QASetSpec, build_items, load_set, load_text_states
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.metrics import em_by_type, scanqa_scores
from pmoe_core.qa.model import QAModel

ALL = "all"
CONDITIONS = ("heldout-scenes", "heldout-templates")  # held-out scenes in training wording; and in held-out wording


EM10_BEAMS = 10  # EM@10: the ten best answers of a beam search of ten


@dataclass(frozen=True)
class Score:
    """EM@1 and CIDEr (both x100) over `count` questions; EM@10 when ranked answers were scored."""

    count: int
    em1: float
    cider: float
    em10: float | None = None

    def to_json(self) -> dict:
        out = {"count": self.count, "em1": round(self.em1, 2), "cider": round(self.cider, 2)}
        return out if self.em10 is None else {**out, "em10": round(self.em10, 2)}


def predict(model: QAModel, data: QASet, batch_size: int = 64, max_tokens: int | None = None,
            progress: Progress = silent) -> dict[str, str]:
    """Question id -> the model's greedy answer, for every question of `data`."""
    model.eval()
    progress(total=len(data))
    out: dict[str, str] = {}
    for start in range(0, len(data), batch_size):
        rows = list(range(start, min(len(data), start + batch_size)))
        for row, hyp in zip(rows, model.answer(data.inputs(rows), max_tokens)):
            out[data.items[row].qid] = model.answer_text(hyp.ids)
        progress(advance=len(rows))
    return out


def predict_ranked(model: QAModel, data: QASet, beams: int = EM10_BEAMS, batch_size: int = 64,
                   max_tokens: int | None = None, progress: Progress = silent) -> dict[str, list[str]]:
    """Question id -> up to `beams` distinct answer texts, best first (beam search), for every question of `data`."""
    model.eval()
    progress(total=len(data))
    out: dict[str, list[str]] = {}
    for start in range(0, len(data), batch_size):
        rows = list(range(start, min(len(data), start + batch_size)))
        for row, hyps in zip(rows, model.ranked_answers(data.inputs(rows), beams, max_tokens)):
            texts = [model.answer_text(h.ids) for h in hyps]
            out[data.items[row].qid] = list(dict.fromkeys(texts)) or [""]  # two token sequences, one text
        progress(advance=len(rows))
    return out


def majority_answers(train: list[QAItem], top: int = 1) -> dict[str, list[str]]:
    """Question type -> its `top` most common first answers in `train`, most common first (ties: seen first)."""
    counts: dict[str, Counter] = {}
    for item in train:
        counts.setdefault(item.question_type, Counter())[item.answers[0]] += 1
    return {t: [a for a, _ in c.most_common(top)] for t, c in counts.items()}


def majority_predictions(majority: dict[str, list[str]], items: list[QAItem]) -> dict[str, list[str]]:
    """Each question answered with its type's majority answers ([""] for a type the training set never had)."""
    return {i.qid: majority.get(i.question_type, [""]) for i in items}


def scores_by_type(items: list[QAItem], predictions: dict, ranked: dict[str, list[str]] | None = None
                   ) -> dict[str, Score]:
    """EM@1 and CIDEr of `predictions` (the top answer counts) overall (key "all") and per question type, with
    EM@10 of `ranked` when given."""
    em = em_by_type(items, predictions)
    em10 = em_by_type(items, ranked, top=EM10_BEAMS) if ranked is not None else None
    out = {ALL: Score(em.count, em.em1, _cider(items, predictions), em10.em1 if em10 else None)}
    for qtype, (em1, count) in em.per_type.items():
        subset = [i for i in items if i.question_type == qtype]
        out[qtype] = Score(count, em1, _cider(subset, predictions), em10.per_type[qtype][0] if em10 else None)
    return out


def _cider(items: list[QAItem], predictions: dict) -> float:
    """CIDEr of the top answers; METEOR (a Java process per call) is not needed here."""
    return float(scanqa_scores(items, predictions, meteor=False).cider)


@dataclass(frozen=True)
class BenchSpec:
    """Held-out questions for a model trained with `train_args` (QATrainConfig as a dict): tabletop scenes of seeds
    from the generator's held-out start (`tabletop_scenes` of them, seen colours), and the first `rooms` rooms of
    the held-out (val) split of the training rooms folder."""

    tabletop_scenes: int = 200
    rooms: int = 100

    def set_spec(self, train_args: dict, num_points: int, max_objects: int, templates: str) -> QASetSpec:
        from pmoe_core.qa.synthetic_tabletop import EVAL_SEED_START

        folder_rooms = int(train_args.get("rooms", 0))
        return QASetSpec(tabletop_scenes=self.tabletop_scenes, tabletop_start=EVAL_SEED_START,
                         rooms=folder_rooms if self.rooms else 0, room_split="val", room_limit=self.rooms,
                         templates=templates, num_points=num_points, max_objects=max_objects)


def condition_templates(condition: str) -> str:
    return {"heldout-scenes": "train", "heldout-templates": "heldout"}[condition]


def bench_set(spec: BenchSpec, train_args: dict, num_points: int, max_objects: int, condition: str,
              cache=None, progress: Progress = silent) -> QASet:
    return load_set(spec.set_spec(train_args, num_points, max_objects, condition_templates(condition)), cache,
                    progress)


def training_items(train_args: dict, cache=None) -> list[QAItem]:
    """The questions a model with these training arguments was trained on (for the majority baseline)."""
    return build_items(QASetSpec(tabletop_scenes=int(train_args.get("tabletop_scenes", 0)),
                                 rooms=int(train_args.get("rooms", 0)), room_split="train"), cache)


def run_bench(loaded, spec: BenchSpec, conditions: tuple[str, ...] = CONDITIONS, cache=None,
              progress: Progress = silent, em10: bool = False) -> dict:
    """Scores of a trained model (`train.LoadedQA`) and of the majority baseline, per condition and question type,
    as plain data: {"checkpoint", "train_args", "spec", "conditions": {condition: {type: {"model", "majority"}}}}.
    `em10`: also EM@10 (a beam search of ten per question; ~6x the greedy pass's time)."""
    model, train_args = loaded.model, loaded.meta.get("train_args", {})
    majority = majority_answers(training_items(train_args, cache), EM10_BEAMS)
    report = {"checkpoint": str(loaded.path), "command": loaded.meta.get("command"), "train_args": train_args,
              "text_only": not model.config.scene_tokens, "spec": {"tabletop_scenes": spec.tabletop_scenes,
                                                                   "rooms": spec.rooms}, "em10": em10, "conditions": {}}
    for condition in conditions:
        data = bench_set(spec, train_args, model.config.num_points, model.config.max_objects, condition, cache)
        load_text_states(model.features, data.texts(), cache)
        predictions = predict(model, data, progress=progress)
        ranked = predict_ranked(model, data, progress=progress) if em10 else None
        ours = scores_by_type(data.items, predictions, ranked)
        guesses = majority_predictions(majority, data.items)
        base = scores_by_type(data.items, guesses, guesses if em10 else None)
        report["conditions"][condition] = {k: {"model": ours[k].to_json(), "majority": base[k].to_json()}
                                           for k in ours}
    return report
