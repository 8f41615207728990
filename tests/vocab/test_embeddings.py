"""Embedding cache and class embeddings: a cached run must not load any model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pmoe_core.vocab import (
    ClassEmbeddings,
    class_embeddings,
    embed_texts,
    encoders,
    get_text_encoder,
    union_embeddings,
    union_entries,
)
from pmoe_core.vocab import cache as vocab_cache


@pytest.fixture
def count_loads(monkeypatch):
    """Wrap the MiniLM loader so a test can count how often a model is asked for."""
    real = encoders._load_minilm
    calls: list[str] = []

    def counting(model_dir: str):
        calls.append(model_dir)
        return real(model_dir)

    monkeypatch.setattr(encoders, "_load_minilm", counting)
    return calls


def test_second_call_reads_cache_without_loading_the_model(cache_dir, count_loads, monkeypatch):
    first = embed_texts(["chair", "sofa", "chair"])
    assert len(count_loads) == 1
    identity = get_text_encoder("minilm").identity
    assert len(list((cache_dir / identity).glob("*.npy"))) == 2  # one file per distinct text
    assert not list((cache_dir / identity).glob(".*"))  # no temp files left behind
    np.testing.assert_array_equal(first[0], first[2])

    def no_model(model_dir: str):
        raise AssertionError("the model was loaded although every text was cached")

    monkeypatch.setattr(encoders, "_load_minilm", no_model)
    second = embed_texts(["sofa", "chair"])
    np.testing.assert_array_equal(second, first[[1, 0]])


def test_only_misses_are_encoded(count_loads, monkeypatch):
    embed_texts(["wall"])
    seen: list[list[str]] = []
    real_encode = encoders.MiniLMEncoder.encode

    def spy(self, texts):
        seen.append(list(texts))
        return real_encode(self, texts)

    monkeypatch.setattr(encoders.MiniLMEncoder, "encode", spy)
    embed_texts(["wall", "floor", "floor"])
    assert seen == [["floor"]]


def test_cached_equals_fresh_and_corrupt_entry_is_recomputed(cache_dir):
    fresh = embed_texts(["ceiling"])
    identity = get_text_encoder("minilm").identity
    (path,) = (cache_dir / identity).glob("*.npy")
    path.write_bytes(b"garbage")
    again = embed_texts(["ceiling"])
    np.testing.assert_array_equal(again, fresh)
    assert vocab_cache.load(identity, "ceiling", 384) is not None  # rewritten whole


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("PMOE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert vocab_cache.cache_root() == tmp_path / ".cache" / "pmoe" / "embeddings"
    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path / "c"))
    assert vocab_cache.cache_root() == tmp_path / "c" / "embeddings"


def test_class_embeddings_of_s3dis():
    emb = class_embeddings("s3dis")
    assert isinstance(emb, ClassEmbeddings)
    assert emb.encoder == "minilm" and emb.dim == 384 and emb.identity.startswith("minilm-")
    assert emb.classes[10] == "bookcase" and emb.entries[10] == "bookshelf" and emb.prompts[10] == "bookshelf"
    assert emb.classes[0] == "ceiling" and emb.prompts[0] == "ceiling"
    assert emb.vectors.shape == (13, 384) and emb.vectors.dtype == np.float32
    np.testing.assert_array_equal(emb.vectors[0], embed_texts(["ceiling"])[0])  # row 0 is "ceiling", not "wall"
    plain = emb.as_dict()
    assert plain["classes"][10] == "bookcase" and len(plain["vectors"]) == 13 and len(plain["vectors"][0]) == 384


def test_merged_classes_share_one_vector():
    s3dis = class_embeddings("s3dis")
    scannet = class_embeddings("scannet")
    np.testing.assert_array_equal(s3dis.vectors[10], scannet.vectors[9])  # bookcase == bookshelf


def test_union_embeddings():
    emb = union_embeddings(["nuscenes", "semantickitti", "waymo"])
    names = [e.name for e in union_entries(["nuscenes", "semantickitti", "waymo"])]
    assert list(emb.classes) == list(emb.entries) == names
    assert emb.vectors.shape == (len(names), 384)
    assert "person" in names and "pedestrian" not in names


def test_package_import_is_light_and_cached_run_loads_no_model(cache_dir):
    """In a fresh process: importing pmoe_core.vocab and a fully cached class_embeddings import no torch."""
    class_embeddings("waymo")  # fills the cache
    code = (
        "import sys; from pmoe_core.vocab import class_embeddings; "
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, 'heavy import at package import'; "
        "e = class_embeddings('waymo'); "
        "assert e.vectors.shape == (22, 384); "
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, 'model loaded on a cache hit'"
    )
    env = dict(os.environ, PMOE_CACHE_DIR=str(cache_dir.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
