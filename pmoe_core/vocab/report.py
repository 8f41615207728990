"""The vocabulary report behind `pmoe vocab`: each benchmark class, its unified entry and prompt, as plain data.

Built here rather than in the CLI so the JSON (schema `schemas/vocab.schema.json`) and the table come from one
place, and so other tools can produce the same report without the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pmoe_core.errors import BadInput
from pmoe_core.vocab.embeddings import class_embeddings, union_embeddings
from pmoe_core.vocab.encoders import get_text_encoder
from pmoe_core.vocab.label_spaces import LABEL_SPACES, resolve_dataset
from pmoe_core.vocab.unified import CLASS_TO_ENTRY, dataset_entries, union_entries

REPORT_FORMAT = "pmoe-vocab"
REPORT_VERSION = 1


def select_datasets(spec: str) -> list[str]:
    """"all" -> the seven datasets in their standard order; else one dataset name or alias."""
    return list(LABEL_SPACES) if spec.strip().lower() == "all" else [resolve_dataset(spec)]


def vocab_report(datasets: Sequence[str], encoder: str | None = None, checkpoint: str | Path | None = None,
                 similar: int = 0, vectors: bool = False) -> dict[str, Any]:
    """The report of `datasets`; with `encoder`, also the embedding identity and, per class, the `similar`
    nearest other vocabulary entries (cosine of prompt embeddings) and optionally the vector itself."""
    if similar < 0:
        raise BadInput(f"--similar must be 0 or more, not {similar}")
    names = [resolve_dataset(d) for d in datasets]
    if (similar or vectors) and encoder is None:
        raise BadInput("--similar and --vectors need a text encoder (--encoder minilm or clip)")
    enc = get_text_encoder(encoder, checkpoint) if encoder is not None and (similar or vectors) else None
    union = union_embeddings(None, enc) if enc is not None and similar else None

    report_datasets = []
    for name in names:
        space = LABEL_SPACES[name]
        emb = class_embeddings(name, enc) if enc is not None else None
        rows = []
        for index, (cls, entry) in enumerate(zip(space.classes, dataset_entries(name))):
            row: dict[str, Any] = {"index": index, "name": cls, "entry": entry.name, "prompt": entry.prompt}
            if emb is not None and union is not None:
                row["similar"] = _nearest(emb.vectors[index], entry.name, union.entries, union.prompts,
                                          union.vectors, similar)
            if emb is not None and vectors:
                row["vector"] = [float(x) for x in emb.vectors[index]]
            rows.append(row)
        report_datasets.append({"dataset": name, "benchmark": space.benchmark, "classes": rows})

    vocabulary = [
        {
            "name": e.name,
            "prompt": e.prompt,
            "domains": list(e.domains),
            "classes": [{"dataset": d, "class": c} for d in names for c, n in CLASS_TO_ENTRY[d].items()
                        if n == e.name],
        }
        for e in union_entries(names)
    ]
    encoder_info = {"name": enc.name, "identity": enc.identity, "dim": enc.dim} if enc is not None else None
    return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "encoder": encoder_info,
            "datasets": report_datasets, "vocabulary": vocabulary}


def _nearest(vector: np.ndarray, own: str, names: Sequence[str], prompts: Sequence[str], matrix: np.ndarray,
             k: int) -> list[dict[str, Any]]:
    """The k entries (other than `own`) whose prompt embeddings are closest to `vector`, best first."""
    cosines = matrix @ vector
    order = [i for i in np.argsort(-cosines, kind="stable") if names[i] != own][:k]
    return [{"entry": names[i], "prompt": prompts[i], "cosine": round(float(cosines[i]), 4)} for i in order]
