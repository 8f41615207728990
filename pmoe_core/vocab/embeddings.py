"""Text embeddings of vocabulary prompts, per dataset label space or for the label-free union.

The language-guided head scores point features against these vectors, so any label set can be evaluated by
handing the head that set's `ClassEmbeddings`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pmoe_core.vocab import cache
from pmoe_core.vocab.encoders import TextEncoder, get_text_encoder
from pmoe_core.vocab.label_spaces import label_space
from pmoe_core.vocab.unified import VocabEntry, dataset_entries, union_entries


@dataclass(frozen=True)
class ClassEmbeddings:
    """One label set's text embeddings: row i of `vectors` belongs to `classes[i]` (-> `entries[i]`, `prompts[i]`).

    `encoder` is the encoder's name ("minilm", "clip"); `identity` adds the model and a weights fingerprint, so two
    label sets agree on it only when their vectors came from the same weights.
    """

    encoder: str
    dim: int
    classes: tuple[str, ...]
    entries: tuple[str, ...]
    prompts: tuple[str, ...]
    vectors: np.ndarray
    identity: str

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (vectors as nested lists of floats), e.g. for store attributes."""
        return {
            "encoder": self.encoder,
            "identity": self.identity,
            "dim": self.dim,
            "classes": list(self.classes),
            "entries": list(self.entries),
            "prompts": list(self.prompts),
            "vectors": self.vectors.tolist(),
        }


def _resolve(encoder: str | TextEncoder, checkpoint: str | Path | None) -> TextEncoder:
    return get_text_encoder(encoder, checkpoint) if isinstance(encoder, str) else encoder


def embed_texts(texts: Iterable[str], encoder: str | TextEncoder = "minilm",
                checkpoint: str | Path | None = None) -> np.ndarray:
    """(n, dim) float32 L2-normalised embeddings; cached texts are read from disk, only misses reach the model."""
    enc = _resolve(encoder, checkpoint)
    texts = list(texts)
    out = np.zeros((len(texts), enc.dim), dtype=np.float32)
    missing: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        vector = cache.load(enc.identity, text, enc.dim)
        if vector is None:
            missing.setdefault(text, []).append(i)
        else:
            out[i] = vector
    if missing:
        fresh = enc.encode(list(missing))
        for (text, rows), vector in zip(missing.items(), fresh):
            cache.store(enc.identity, text, vector)
            out[rows] = vector
    return out


def _embed_entries(entries: list[VocabEntry], classes: tuple[str, ...], encoder: str | TextEncoder,
                   checkpoint: str | Path | None) -> ClassEmbeddings:
    enc = _resolve(encoder, checkpoint)
    prompts = tuple(e.prompt for e in entries)
    return ClassEmbeddings(
        encoder=enc.name,
        dim=enc.dim,
        classes=classes,
        entries=tuple(e.name for e in entries),
        prompts=prompts,
        vectors=embed_texts(prompts, enc),
        identity=enc.identity,
    )


def class_embeddings(dataset: str, encoder: str | TextEncoder = "minilm",
                     checkpoint: str | Path | None = None) -> ClassEmbeddings:
    """Embeddings of a dataset's benchmark classes, one row per class in label-index order."""
    space = label_space(dataset)
    return _embed_entries(dataset_entries(space.dataset), space.classes, encoder, checkpoint)


def union_embeddings(datasets: Iterable[str] | None = None, encoder: str | TextEncoder = "minilm",
                     checkpoint: str | Path | None = None) -> ClassEmbeddings:
    """Embeddings of the union vocabulary of `datasets` (all seven if None); `classes` are the entry names."""
    entries = union_entries(datasets)
    return _embed_entries(entries, tuple(e.name for e in entries), encoder, checkpoint)
