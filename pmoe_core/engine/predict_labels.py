"""The classes `predict` labels points with: a benchmark's, the union vocabulary, or any names a user types.

The language-guided head scores point features against text embeddings, so any list of names is a label set once
it is embedded by the checkpoint's text encoder (through the embedding cache). A typed name that is a vocabulary
entry, its prompt, or a benchmark class name is embedded through that entry's prompt, exactly the vector training
used; any other name is embedded as typed. A name is "trained" when its entry was a training target of the
checkpoint (a class of one of its training datasets); every other name is zero-shot and the report says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.vocab import (LABEL_SPACES, VOCABULARY, dataset_entries, embed_texts, label_space,
                             resolve_dataset, union_entries)
from pmoe_core.vocab.unified import CLASS_TO_ENTRY

UNION = "union"
MAX_CLASSES = 4096  # a label set is scored for every point: keep a typo'd file from making (N, 1e6) score tables
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class PredictLabels:
    """Row i of `embeddings` (K, D) is class `names[i]`, embedded from `prompts[i]`; `trained[i]` says whether that
    class was a training target of the checkpoint. `kind`: "dataset", "union" or "names"."""

    kind: str
    dataset: str | None
    names: tuple[str, ...]
    prompts: tuple[str, ...]
    trained: tuple[bool, ...]
    embeddings: torch.Tensor

    @property
    def untrained(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.trained) if not t)


def _normal(name: str) -> str:
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().lower()


def _entry_lookup() -> dict[str, Any]:
    """Normalised name -> vocabulary entry, from entry names, prompts and every benchmark class name."""
    table: dict[str, Any] = {}
    by_name = {e.name: e for e in VOCABULARY}
    for entry in VOCABULARY:
        table.setdefault(_normal(entry.name), entry)
        table.setdefault(_normal(entry.prompt), entry)
    for mapping in CLASS_TO_ENTRY.values():
        for class_name, entry_name in mapping.items():
            table.setdefault(_normal(class_name), by_name[entry_name])
    return table


def trained_entries(meta: dict[str, Any]) -> set[str]:
    """Vocabulary entries the checkpoint was trained against (the classes of its training datasets)."""
    vocab = meta.get("vocabulary") or {}
    names = {e for entries in vocab.values() for e in entries}
    for dataset in meta.get("datasets") or ():
        if dataset not in vocab and dataset in LABEL_SPACES:
            names |= {e.name for e in dataset_entries(dataset)}
    return names


def parse_class_names(text: str, source: str = "--classes") -> list[str]:
    """Comma- or newline-separated names; blank items and `#` comment lines are skipped; duplicates refused."""
    names: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        names += [re.sub(r"\s+", " ", n).strip() for n in line.split(",") if n.strip()]
    if len(names) < 2:
        raise BadInput(f"needs at least two class names, got {len(names)} (separate names with commas)", source)
    if len(names) > MAX_CLASSES:
        raise BadInput(f"has {len(names)} class names; at most {MAX_CLASSES}", source)
    long = next((n for n in names if len(n) > MAX_NAME_CHARS), None)
    if long is not None:
        raise BadInput(f"class name longer than {MAX_NAME_CHARS} characters: {long[:40]!r}...", source)
    seen: dict[str, str] = {}
    for name in names:
        key = _normal(name)
        if key in seen:
            raise BadInput(f"class {name!r} is given twice (as {seen[key]!r})", source)
        seen[key] = name
    return names


def read_class_file(path: str | Path) -> list[str]:
    """One name per line (commas also separate), for --classes-file."""
    path = Path(path)
    if not path.is_file():
        from pmoe_core.errors import MissingFile

        raise MissingFile("no such class-name file" if not path.exists() else "not a file", path)
    if path.stat().st_size > 1 << 20:
        raise BadInput("class-name file is larger than 1 MiB; expected one name per line", path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError("class-name file is not UTF-8 text", path) from None
    return parse_class_names(text, str(path))


def resolve_labels(meta: dict[str, Any], label_set: str | None = None, classes: list[str] | None = None,
                   text_weights: str | None = None, trained_vectors: np.ndarray | None = None) -> PredictLabels:
    """The label set of a prediction: `classes` (any names) or `label_set` (a dataset name / alias, or "union";
    the default). `trained_vectors`: the class embeddings stored in the checkpoint, to check that this machine's
    text encoder reproduces them (a different encoder would give vectors the head never learnt)."""
    if classes is not None and label_set is not None:
        raise BadInput("give either --label-set or --classes/--classes-file, not both")
    fixed = _fixed_head_labels(meta, label_set, classes)
    if fixed is not None:
        return fixed
    encoder = str(meta.get("text_encoder") or "")
    if not encoder:
        raise FormatError("checkpoint names no text encoder; cannot embed class names for it")
    trained = trained_entries(meta)
    if classes is not None:
        lookup = _entry_lookup()
        names = tuple(classes)
        matched = [lookup.get(_normal(n)) for n in names]
        prompts = tuple(e.prompt if e is not None else n for n, e in zip(names, matched))
        flags = tuple(e is not None and e.name in trained for e in matched)
        kind, dataset = "names", None
    elif label_set is None or label_set.strip().lower() == UNION:
        entries = union_entries(None)
        names, prompts = tuple(e.name for e in entries), tuple(e.prompt for e in entries)
        flags = tuple(e.name in trained for e in entries)
        kind, dataset = "union", None
    else:
        dataset = resolve_dataset(label_set)
        entries = dataset_entries(dataset)
        names, prompts = label_space(dataset).classes, tuple(e.prompt for e in entries)  # custom too
        flags = tuple(e.name in trained for e in entries)
        kind = "dataset"
    _check_encoder(meta, encoder, text_weights, trained_vectors)
    vectors = embed_texts(prompts, encoder, text_weights)
    return PredictLabels(kind, dataset, tuple(names), tuple(prompts), flags, torch.from_numpy(vectors))


def _fixed_head_labels(meta: dict[str, Any], label_set: str | None,
                       classes: list[str] | None) -> PredictLabels | None:
    """An imported fixed-class head (pmoe import --label-set) labels with its own classes only; its `embeddings`
    are (K, 0): the head needs no text vectors, only the class count. None for a language head."""
    from pmoe_core.engine.model_io import fixed_head_classes

    if fixed_head_classes(meta) is None:
        return None
    (dataset,) = meta.get("datasets") or [None]
    if dataset is None:
        raise FormatError("fixed-class checkpoint names no label set (meta datasets)")
    if classes is not None or (label_set is not None and resolve_dataset(label_set) != dataset):
        raise BadInput(f"this checkpoint's head has the fixed classes of {dataset} (pmoe import --label-set); "
                       f"it cannot score other classes: drop --classes/--label-set or use --label-set {dataset}")
    names = LABEL_SPACES[dataset].classes
    prompts = tuple(e.prompt for e in dataset_entries(dataset))
    return PredictLabels("dataset", dataset, tuple(names), prompts, (True,) * len(names),
                         torch.zeros(len(names), 0))


def _check_encoder(meta: dict[str, Any], encoder: str, text_weights: str | None,
                   trained_vectors: np.ndarray | None) -> None:
    if trained_vectors is None:
        return
    prompts = [e.prompt for d in (meta.get("label_spaces") or {}) for e in dataset_entries(d)]
    if len(prompts) != trained_vectors.shape[0]:
        return  # an older layout of the stored table: nothing to compare row by row
    here = embed_texts(prompts, encoder, text_weights)
    if here.shape != trained_vectors.shape or float(np.abs(here - trained_vectors).max()) > 1e-3:
        raise BadInput(f"the {encoder} text encoder here does not reproduce the class vectors this checkpoint was "
                       "trained with; give the same encoder weights (--text-weights)")
