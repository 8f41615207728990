"""Frozen language-model states of texts (instructions, questions, colour names), computed once per text.

In a causal LM, text placed before the scene tokens has hidden states that do not depend on the scene. So the
frozen pretrained LM (the packaged SmolLM2-135M by default) runs once per distinct text, and the trainable parts
(a small MoE trunk over scene tokens, the heads) read the cached states. Training then costs the trunk, not the LM:
a 135M-parameter forward over every batch would be ~28 s per batch-16 step on 2 CPU cores (docs/planner.md).

The cache is in memory, keyed by the exact text; `save`/`load` keep a whole set on disk (a training run's
instructions), tagged with the LM's identity so states of one LM are never read as another's.

A colour head may read an earlier layer than the rest (`colour_layer`): a word's state in the final layer carries
much of the words before it, so a colour word in a phrasing the head never saw reads as another colour; block 2's
state of it holds the word itself (BENCHMARKS.md, "Planner model"; `bench/planner.py --part colour-layers`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pmoe_core.errors import FormatError
from pmoe_core.outputs import atomic_path


@dataclass(frozen=True)
class TextFeatureSpec:
    llm: str = "smollm2"  # "smollm2" (the packaged model) or a local Hugging Face LLaMA-family folder
    layer: int = -1  # which hidden state: -1 the final one (after the LM's final norm), k the output of block k
    max_tokens: int = 48  # longer texts are cut (a warning is the caller's to give)
    colour_layer: int | None = None  # the hidden state a colour head reads; None: the same as `layer`

    @property
    def layers(self) -> tuple[int, ...]:
        """The hidden states kept per token, side by side: `layer`, then `colour_layer` when it differs."""
        return (self.layer,) if self.colour_layer in (None, self.layer) else (self.layer, self.colour_layer)


@dataclass
class TextBatch:
    """Frozen-LM states of a batch of texts, right-padded: what the trunk reads and what a colour head reads."""

    states: torch.Tensor  # (B, T, H)
    colour_states: torch.Tensor  # (B, T, H); equal to `states` when the spec has one layer
    mask: torch.Tensor  # (B, T) bool

    def to(self, device: torch.device) -> TextBatch:
        return TextBatch(self.states.to(device), self.colour_states.to(device), self.mask.to(device))


class TextFeatures:
    """Per-text states (L, H * len(spec.layers)) float32 of a frozen LM, with the token ids they belong to."""

    def __init__(self, spec: TextFeatureSpec | None = None, llm=None, tokenizer=None):
        self.spec = spec or TextFeatureSpec()
        self._llm, self._tokenizer = llm, tokenizer
        self._states: dict[str, np.ndarray] = {}
        self._ids: dict[str, np.ndarray] = {}

    # --- the frozen LM, loaded on first use ---

    def _load(self) -> None:
        if self._llm is None:
            from pmoe_core.planner.llm import load_llm

            self._llm, self._tokenizer = load_llm(None if self.spec.llm == "smollm2" else self.spec.llm)
        self._llm.eval().requires_grad_(False)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._load()
        return self._tokenizer

    @property
    def llm(self):
        if self._llm is None:
            self._load()
        return self._llm

    @property
    def dim(self) -> int:
        return int(self.llm.config.hidden_size)

    def identity(self) -> dict:
        """What the states depend on: the spec and the LM's size (stored with saved states, checked on load)."""
        cfg = self.llm.config
        return {**asdict(self.spec), "hidden_size": int(cfg.hidden_size), "layers": int(cfg.num_hidden_layers),
                "vocab_size": int(cfg.vocab_size)}

    # --- states ---

    def ids(self, text: str) -> np.ndarray:
        """Token ids of `text` as the LM reads it (no special tokens; at least one id, at most `max_tokens`)."""
        if text not in self._ids:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.spec.max_tokens]
            self._ids[text] = np.asarray(ids or [self.tokenizer.eos_token_id], np.int64)
        return self._ids[text]

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 64) -> list[np.ndarray]:
        """(L_i, H * len(spec.layers)) float32 states of each text; texts not yet cached go through the LM in
        batches."""
        todo = sorted({t for t in texts if t not in self._states}, key=lambda t: len(self.ids(t)))
        layers = self.spec.layers
        if todo and any(not -1 <= k <= self.llm.config.num_hidden_layers for k in layers):  # cached: no LM load
            raise ValueError(f"text features read hidden states {layers} of an LM with "
                             f"{self.llm.config.num_hidden_layers} blocks")
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            ids = [self.ids(t) for t in chunk]
            longest = max(len(i) for i in ids)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            batch = torch.full((len(chunk), longest), pad, dtype=torch.long)
            mask = torch.zeros(len(chunk), longest, dtype=torch.long)
            for row, i in enumerate(ids):  # right padding: a causal LM's real positions never see the pads
                batch[row, : len(i)] = torch.from_numpy(i)
                mask[row, : len(i)] = 1
            out = self.llm.model(input_ids=batch, attention_mask=mask, output_hidden_states=layers != (-1,),
                                 use_cache=False)
            states = torch.cat([out.last_hidden_state if k == -1 else out.hidden_states[k] for k in layers], -1)
            for row, text in enumerate(chunk):
                self._states[text] = states[row, : len(ids[row])].float().numpy().copy()
        return [self._states[t] for t in texts]

    def batch(self, texts: list[str]) -> TextBatch:
        """The texts' states, right-padded, with the mask of real positions (on the CPU)."""
        states = self.encode(texts)
        longest = max(len(s) for s in states)
        out = torch.zeros(len(states), longest, states[0].shape[1])
        mask = torch.zeros(len(states), longest, dtype=torch.bool)
        for row, s in enumerate(states):
            out[row, : len(s)] = torch.from_numpy(s)
            mask[row, : len(s)] = True
        h = out.shape[-1] // len(self.spec.layers)
        return TextBatch(out[..., :h], out[..., -h:], mask)

    def retain(self, texts: set[str]) -> None:
        """Forget every cached text not in `texts`."""
        for text in [t for t in self._states if t not in texts]:
            del self._states[text]
            self._ids.pop(text, None)

    # --- a whole set on disk ---

    def save(self, path: str | Path) -> None:
        """Every cached text's states (float16) and ids in one .npz, written atomically (its folder made: the
        callers save into caches that a fresh machine does not have yet)."""
        texts = sorted(self._states)
        lengths = np.array([len(self._states[t]) for t in texts], np.int64)
        with atomic_path(Path(path), make_parents=True) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, texts=np.array(texts, dtype=object).astype(str), lengths=lengths,
                         states=np.concatenate([self._states[t] for t in texts]).astype(np.float16),
                         ids=np.concatenate([self._ids[t] for t in texts]),
                         identity=np.array(repr(sorted(self.identity().items()))))

    def load(self, path: str | Path) -> bool:
        """Add the states saved at `path` when they were computed by this same LM setup; False (nothing read)
        when they were not. A damaged file is a FormatError naming it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["identity"]) != repr(sorted(self.identity().items())):
                    return False
                texts, lengths = data["texts"].tolist(), data["lengths"]
                states, ids = data["states"].astype(np.float32), data["ids"]
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise FormatError(f"not a text-feature cache ({exc})", path) from exc
        if len(texts) != len(lengths) or int(lengths.sum()) != len(states) or len(ids) != len(states):
            raise FormatError("text-feature cache sizes disagree", path)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for text, a, b in zip(texts, offsets[:-1], offsets[1:]):
            self._states[text], self._ids[text] = states[a:b], ids[a:b].astype(np.int64)
        return True
