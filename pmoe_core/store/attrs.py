"""The store's group attributes: what a reader needs to interpret labels without any other file.

Class names, their unified-vocabulary entries and prompts, and the encoder name live in the attributes (JSON);
the embedding vectors themselves live beside them in the small array `class_embeddings` (C, D) float32.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from pmoe_core import __version__
from pmoe_core.store.layout import EMBEDDINGS, FORMAT_NAME, FORMAT_VERSION
from pmoe_core.vocab.custom import registered
from pmoe_core.vocab.label_spaces import label_space


@dataclass(frozen=True)
class ClassTable:
    """Per-class text of a dataset's benchmark label space plus the embedding of each class, in class order."""

    encoder: str
    identity: str  # encoder name + model + weights fingerprint: equal identities mean comparable vectors
    classes: tuple[str, ...]
    entries: tuple[str, ...]
    prompts: tuple[str, ...]
    vectors: np.ndarray  # (C, D) float32


def compute_class_table(dataset: str, encoder: str, checkpoint: str | None = None) -> ClassTable:
    """Ask the vocabulary for the class embeddings of `dataset` under text encoder `encoder` (cached on disk)."""
    from pmoe_core.vocab import class_embeddings

    emb = class_embeddings(dataset, encoder, checkpoint)
    return ClassTable(
        encoder=str(emb.encoder),
        identity=str(emb.identity),
        classes=tuple(emb.classes),
        entries=tuple(emb.entries),
        prompts=tuple(emb.prompts),
        vectors=np.ascontiguousarray(emb.vectors, dtype=np.float32),
    )


def build_attrs(dataset: str, table: ClassTable, source: str) -> dict[str, Any]:
    """The root attributes of a new store (validated against schemas/store.schema.json by the writer)."""
    space = label_space(dataset)
    custom = registered(space.dataset)
    extra = {"label_space": custom.attrs()} if custom is not None else {}  # a custom dataset carries its own
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "dataset": space.dataset,
        "benchmark": space.benchmark,
        "classes": [
            {"name": name, "entry": entry, "prompt": prompt}
            for name, entry, prompt in zip(table.classes, table.entries, table.prompts, strict=True)
        ],
        "text_encoder": {"name": table.encoder, "identity": table.identity, "dim": int(table.vectors.shape[1]), "array": EMBEDDINGS},
        "converter": {"name": "pmoe", "version": __version__},
        "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def class_names(attrs: dict[str, Any]) -> list[str]:
    return [c["name"] for c in attrs.get("classes", [])]
