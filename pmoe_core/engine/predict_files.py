"""`pmoe predict` over files and store scenes: outputs checked first, then each input labelled and written.

Per input KEY (the file's stem, or STORE-split-scene) in OUT: `KEY.labels.npy` (int32 class index),
`KEY.confidence.npy` (float32), a labelled copy (`KEY.pred.las`/`.laz` for LAS/LAZ input, else `KEY.pred.ply`) and
`KEY.report.json` (schemas/predict_report.schema.json). Every output path is checked before the model loads (never
inside or over an input, the checkpoint or a store read; an existing file only with `overwrite`), and every file is
written atomically: an input's four files appear together or not at all.
"""

from __future__ import annotations

import dataclasses
import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from pmoe_core.engine.predict import Prediction, PredictOptions, Predictor, load_predictor, predict_scene
from pmoe_core.engine.predict_labels import PredictLabels, resolve_labels
from pmoe_core.errors import BadInput
from pmoe_core.io import write_las, write_ply
from pmoe_core.outputs import atomic_path, check_output_dir, check_output_file
from pmoe_core.progress import Progress, silent
from pmoe_core.scene import Scene
from pmoe_core.schemas import validate

REPORT_FORMAT = "pmoe-predict-report"
REPORT_VERSION = 1
LAS_SUFFIXES = (".las", ".laz")


class SceneSource(Protocol):
    """What predict needs of an input (inspect.scenes.SceneRef is one): its spec, known dataset, and a reader."""

    source: str
    dataset: str | None
    read: Callable[[], Scene]


@dataclass(frozen=True)
class PredictConfig:
    checkpoint: str
    inputs: tuple[str, ...]  # the specs as the user gave them: what the outputs must stay out of
    out: str
    label_set: str | None = None  # dataset name or "union" (default when no classes)
    classes: tuple[str, ...] | None = None  # any names
    options: PredictOptions = PredictOptions()
    overwrite: bool = False
    text_weights: str | None = None
    device: str = "auto"


@dataclass(frozen=True)
class OutputPaths:
    key: str
    labels: Path
    confidence: Path
    cloud: Path
    report: Path

    def all(self) -> tuple[Path, ...]:
        return (self.labels, self.confidence, self.cloud, self.report)


@dataclass
class FileResult:
    source: str
    scene: str
    points: int
    fields: list[str]
    prediction: Prediction
    outputs: OutputPaths


def read_paths(config: PredictConfig) -> list[str]:
    """Local paths the run reads: the checkpoint, every input file or folder, every store (the part before ::)."""
    return [config.checkpoint, *(spec.split("::")[0] for spec in config.inputs)]


def output_key(source: str) -> str:
    """A file name stem for the input: the file's stem, or STORE-split-scene for a store scene."""
    if "::" in source:
        url, *rest = source.split("::")
        stem = re.sub(r"\.zarr$", "", url.rstrip("/").rsplit("/", 1)[-1])
        text = "-".join([stem, *rest])
    else:
        text = Path(source).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "cloud"


def plan_outputs(refs: Sequence[SceneSource], out: Path) -> list[OutputPaths]:
    """One set of output paths per input; a key taken twice (000000.bin of two sequences) gets -2, -3, ..."""
    used: set[str] = set()
    plans = []
    for ref in refs:
        base = key = output_key(ref.source)
        k = 2
        while key in used:
            key, k = f"{base}-{k}", k + 1
        used.add(key)
        suffix = Path(ref.source).suffix.lower() if "::" not in ref.source else ""
        cloud = f"{key}.pred{suffix}" if suffix in LAS_SUFFIXES else f"{key}.pred.ply"
        plans.append(OutputPaths(key, out / f"{key}.labels.npy", out / f"{key}.confidence.npy", out / cloud,
                                 out / f"{key}.report.json"))
    return plans


def run_predict(config: PredictConfig, refs: Sequence[SceneSource],
                progress_for: Callable[[str], Progress] = lambda _: silent,
                warn: Callable[[str], None] = lambda _: None) -> list[FileResult]:
    """Check every output, load the checkpoint and label set once, then label and write each input in turn.
    `progress_for(source)` gives the progress callback of one input; `warn(line)` receives sanity warnings."""
    if not refs:
        raise BadInput("no input given")
    reads = read_paths(config)
    out = check_output_dir(config.out, reads=reads)
    plans = plan_outputs(refs, Path(out))
    for plan in plans:
        for path in plan.all():
            check_output_file(path, reads=reads, overwrite=config.overwrite, make_parents=True)
    config.options.check()
    predictor = load_predictor(config.checkpoint, config.device)
    labels = resolve_labels(predictor.meta, config.label_set, list(config.classes) if config.classes else None,
                            config.text_weights, predictor.trained_vectors)
    Path(out).mkdir(parents=True, exist_ok=True)
    results = []
    for ref, plan in zip(refs, plans):
        scene = ref.read()
        options = dataclasses.replace(config.options, dataset=ref.dataset or config.options.dataset)
        prediction = predict_scene(predictor, scene, labels, options, progress_for(ref.source),
                                   warn=lambda line, src=ref.source: warn(f"{src}: {line}"))
        result = FileResult(ref.source, scene.name, len(scene), scene.present_fields(), prediction, plan)
        write_outputs(result, scene, labels, predictor)
        del scene
        results.append(result)
    return results


def write_outputs(result: FileResult, scene: Scene, labels: PredictLabels, predictor: Predictor) -> None:
    """The two arrays, the labelled copy and the report, each to a temporary file renamed into place only when all
    four are written, so an input's outputs appear together or not at all."""
    pred, paths = result.prediction, result.outputs
    report = build_report(result, labels, predictor)
    validate(report, "predict_report", paths.report)
    with ExitStack() as stack:
        labels_tmp, conf_tmp, cloud_tmp, report_tmp = (stack.enter_context(atomic_path(p)) for p in paths.all())
        for tmp, values in ((labels_tmp, pred.labels), (conf_tmp, pred.confidence)):
            with open(tmp, "wb") as f:
                np.save(f, values, allow_pickle=False)
        write_cloud(cloud_tmp, scene, pred, labels, predictor.checkpoint)
        with open(report_tmp, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


def write_cloud(path: Path, scene: Scene, pred: Prediction, labels: PredictLabels, checkpoint: str) -> None:
    """The input's points with their class and confidence: LAS/LAZ (by suffix) or PLY. Labels the input carried
    are left out (the class field is the prediction)."""
    copy = Scene(scene.name, coord=scene.coord, color=scene.color, normal=scene.normal, strength=scene.strength)
    if path.suffix in LAS_SUFFIXES:
        extra = {"class": pred.labels, "confidence": pred.confidence}
        if len(labels.names) < 255:  # LAS class codes are a byte; code = class + 1 (0 = never classified)
            extra["classification"] = (pred.labels + 1).astype(np.uint8)
        write_las(copy, path, extra=extra)
        return
    comments = [f"pmoe predict {Path(checkpoint).name}: scalar_class indexes these classes, scalar_confidence is "
                "the class's mean softmax probability"]
    comments += [f"class {i} {name}" for i, name in enumerate(labels.names)]
    write_ply(copy, path, extra={"class": pred.labels, "confidence": pred.confidence}, comments=comments)


def build_report(result: FileResult, labels: PredictLabels, predictor: Predictor) -> dict[str, Any]:
    pred = result.prediction
    counts, conf = pred.counts(), pred.mean_confidence()
    meta = predictor.meta
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "input": result.source,
        "scene": result.scene,
        "points": result.points,
        "fields": result.fields,
        "checkpoint": predictor.checkpoint,
        "preset": str(meta.get("preset", "")),
        "step": int(meta.get("step", 0)),
        "trained_on": list(meta.get("datasets") or ()),
        "text_encoder": str(meta.get("text_encoder", "")),
        "label_set": {"kind": labels.kind, "dataset": labels.dataset},
        "domain": pred.domain,
        "grid_size": pred.grid_size,
        "tiles": pred.tiles,
        "mean_confidence": float(pred.confidence.mean()),
        "classes": [{"index": i, "name": name, "prompt": prompt, "trained": trained, "points": int(counts[i]),
                     "mean_confidence": None if counts[i] == 0 else float(conf[i])}
                    for i, (name, prompt, trained) in enumerate(zip(labels.names, labels.prompts, labels.trained))],
        "untrained": list(labels.untrained),
        "warnings": list(pred.warnings),
        "outputs": {"labels": result.outputs.labels.name, "confidence": result.outputs.confidence.name,
                    "cloud": result.outputs.cloud.name},
        "seconds": round(pred.seconds, 3),
    }
