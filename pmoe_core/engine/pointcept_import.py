"""`pmoe import`: a Pointcept PT-v3m1 / PTMoE-v0m0 checkpoint written as a pmoe segmentation checkpoint.

The conversion itself is models/pointcept.py; this module decides what the checkpoint's metadata says (which label
set a fixed-class head follows, which text encoder a language head expects) and writes it atomically. Nothing is
written unless the whole checkpoint converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from pmoe_core.engine.checkpoint import save_checkpoint
from pmoe_core.engine.model_io import config_to_data
from pmoe_core.errors import BadInput
from pmoe_core.models.pointcept import ImportOptions, PointceptImport, convert, read_state_dict
from pmoe_core.models.ptv3 import count_parameters
from pmoe_core.models.presets import build_model
from pmoe_core.outputs import check_output_file
from pmoe_core.vocab.label_spaces import label_space, resolve_dataset
from pmoe_core.vocab.unified import dataset_entries


@dataclass
class ImportResult:
    out: Path
    imported: PointceptImport
    parameters: int
    meta: dict[str, Any]


def import_pointcept(source: str | Path, out: str | Path, label_set: str | None = None,
                     datasets: Sequence[str] = (), text_encoder: str = "clip",
                     options: ImportOptions | None = None, overwrite: bool = False) -> ImportResult:
    """Convert `source` and write `out`.

    `label_set`: a DefaultSegmentorV2 checkpoint's seg_head is a fixed-class Linear; name the benchmark whose class
    order its outputs follow (its class count must match). `datasets` / `text_encoder`: for a PPTMoE-v0m0 checkpoint
    (language head), the datasets it was trained on (eval's default list) and the encoder its class embeddings came
    from (Point-MoE: CLIP ViT-B/16); stores evaluated with it must be embedded by the same encoder.
    """
    out = check_output_file(out, reads=[source], overwrite=overwrite, make_parents=True)
    imported = convert(read_state_dict(source), options or ImportOptions(), source)
    cfg = imported.config
    names = [resolve_dataset(d) for d in datasets]
    tensors: dict[str, Any] = {"model": imported.weights}
    if cfg.head == "linear":
        if label_set is None:
            raise BadInput(f"this checkpoint has a fixed {cfg.head_classes}-class seg_head: say whose class order its "
                           f"outputs follow with --label-set DATASET (e.g. scannet)")
        label_set = resolve_dataset(label_set)
        classes = label_space(label_set).classes
        if len(classes) != cfg.head_classes:
            raise BadInput(f"--label-set {label_set} has {len(classes)} classes, the checkpoint's seg_head "
                           f"{cfg.head_classes}")
        if names and names != [label_set]:
            raise BadInput("a fixed-class head scores one label set: --datasets must be empty or the --label-set")
        names, encoder = [label_set], ""
    else:
        if label_set is not None:
            raise BadInput("--label-set is for a fixed-class seg_head; this checkpoint has a language head "
                           "(PPTMoE-v0m0): it scores any label set through class-name embeddings")
        assert imported.class_embeddings is not None
        tensors["class_embeddings"] = imported.class_embeddings
        encoder = text_encoder
    with torch.device("meta"):  # shapes only
        total, _ = count_parameters(build_model(cfg, text_dim=_text_dim(imported), backend="torch"))
    meta: dict[str, Any] = {
        "kind": "segmentation",
        "preset": f"import:{imported.arch}",
        "config": config_to_data(cfg),
        "step": 0,
        "epoch": 0,
        "datasets": names,
        "label_spaces": {d: list(label_space(d).classes) for d in names},
        "vocabulary": {d: [e.name for e in dataset_entries(d)] for d in names},
        "text_encoder": encoder,
        "complete": True,
        "imported_from": {"format": "pointcept", "file": str(source), "arch": imported.arch,
                          "wrapper": imported.wrapper, "keys": imported.source_keys,
                          "ignored_keys": imported.ignored},
    }
    save_checkpoint(out, meta, tensors)
    return ImportResult(out, imported, total, meta)


def _text_dim(imported: PointceptImport) -> int | None:
    emb = imported.class_embeddings
    return None if emb is None else int(emb.shape[1])


__all__ = ["ImportResult", "import_pointcept"]
