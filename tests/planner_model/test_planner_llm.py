"""LLM loading without the packaged GGUF: byte tokenizer, tiny LLaMA, local folders and their errors."""

from __future__ import annotations

import json

import pytest
import torch

from pmoe_core.errors import BadInput, MissingFile
from pmoe_core.planner.llm import (
    TinyLlamaSpec,
    byte_tokenizer,
    llm_cache_root,
    load_llm,
    tiny_llm,
)


def test_byte_tokenizer_round_trips_any_text():
    tok = byte_tokenizer()
    text = "Put the rouge block — 2 cm — into the bowl ✓"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert len(tok) == 259 and tok.pad_token_id != tok.eos_token_id


def test_tiny_llm_is_seeded():
    a, _ = tiny_llm(TinyLlamaSpec(seed=5))
    b, _ = tiny_llm(TinyLlamaSpec(seed=5))
    c, _ = tiny_llm(TinyLlamaSpec(seed=6))
    w = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_load_llm_reads_a_local_llama_folder(tmp_path):
    model, tok = tiny_llm()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_llm(tmp_path)
    ids = torch.randint(0, 256, (1, 11))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert loaded_tok("abc")["input_ids"] == tok("abc")["input_ids"]
    assert not loaded.training


def test_load_llm_errors_are_user_errors(tmp_path):
    with pytest.raises(MissingFile, match="not found"):
        load_llm(tmp_path / "nope")
    with pytest.raises(MissingFile, match="config.json"):
        load_llm(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BadInput, match="not LLaMA-like"):
        load_llm(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(MissingFile, match="cannot load"):
        load_llm(tmp_path)  # config but no weights


def test_cache_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path))
    assert llm_cache_root() == tmp_path / "llm"


def test_word_tokenizer_gives_every_planner_word_one_token_and_round_trips():
    import re

    from pmoe_core.planner.demos import referring_phrases
    from pmoe_core.planner.llm import PLANNER_WORDS, word_tokenizer
    from pmoe_core.tabletop.tasks import TASKS, make_scene

    tok = word_tokenizer()
    used = set()
    for task in sorted(TASKS):
        for split in ("seen", "unseen"):
            for seed in range(12):
                desc = make_scene(task, seed, split)
                refs = " ".join(text for text, _, _ in referring_phrases(desc))
                used |= set(re.findall(r"[A-Za-z]+", desc.instruction + " " + refs))
    assert used <= set(PLANNER_WORDS), sorted(used - set(PLANNER_WORDS))
    for word in used:
        assert len(tok(f"the {word}", add_special_tokens=False)["input_ids"]) == 2, word
    text = "stack the reddish blocks, 3 times! ünïcode"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == " " + text
    assert len(tok) > 256 + len(PLANNER_WORDS)


def test_tiny_llm_takes_either_tokenizer_and_refuses_others():
    from pmoe_core.planner.llm import TinyLlamaSpec, tiny_llm

    model, tok = tiny_llm(TinyLlamaSpec(tokenizer="words"))
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    with pytest.raises(ValueError, match="tokenizer"):
        tiny_llm(TinyLlamaSpec(tokenizer="sentencepiece"))
