"""Benchmark label spaces, the unified vocabulary, and text embeddings of class names.

Importing this package is light (numpy only): transformers / open_clip load inside the encoders, on a cache miss.
"""

from pmoe_core.vocab.embeddings import ClassEmbeddings, class_embeddings, embed_texts, union_embeddings
from pmoe_core.vocab.encoders import TextEncoder, get_text_encoder
from pmoe_core.vocab.label_spaces import LABEL_SPACES, LabelSpace, label_space, resolve_dataset
from pmoe_core.vocab.unified import VOCABULARY, VocabEntry, dataset_entries, union_entries, vocab_entry

__all__ = [
    "LABEL_SPACES",
    "VOCABULARY",
    "ClassEmbeddings",
    "LabelSpace",
    "TextEncoder",
    "VocabEntry",
    "class_embeddings",
    "dataset_entries",
    "embed_texts",
    "get_text_encoder",
    "label_space",
    "resolve_dataset",
    "union_embeddings",
    "union_entries",
    "vocab_entry",
]
