"""Which language model a planner reads text with: the packaged SmolLM2, a local LLaMA-family folder, or (tests
only) the seeded random tiny LLaMA as a fast stand-in."""

from __future__ import annotations

from pmoe_core.planner.llm import TinyLlamaSpec, load_llm, tiny_llm
from pmoe_core.planner.text_features import TextFeatures, TextFeatureSpec

TINY = "tiny"  # a test stand-in: random weights know no language


def build_lm(name: str):
    """(causal LM, tokenizer) for `name`: "smollm2", "tiny" or a folder."""
    if name == TINY:
        return tiny_llm(TinyLlamaSpec(tokenizer="words"))
    return load_llm(None if name == "smollm2" else name)


def text_features(spec: TextFeatureSpec) -> TextFeatures:
    """The frozen LM's cached states for `spec` (the tiny stand-in built here; the others load on first use)."""
    if spec.llm == TINY:
        return TextFeatures(spec, *build_lm(TINY))
    return TextFeatures(spec)
