"""The paper's joint path: scene tokens and the instruction through the pretrained LLM, upcycled to MoE, with LoRA.

Scene tokens are projected into the LLM's embedding space and placed before the instruction's token embeddings;
the LLM's FFNs are upcycled into experts (upcycle.py) and LoRA adapts attention and every expert (lora.py); its
final hidden states, projected back to the planner's width, are split into text and scene parts like the trunk's
(`TrunkOutput`), so the rest of the planner is the same. Every step runs the whole LLM: ~28 s per batch-16 step for
SmolLM2-135M on 2 CPU cores, which is why the CPU default uses the frozen LM's cached states and a small trunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pmoe_core.planner.lora import LoraSettings, apply_lora
from pmoe_core.planner.model_lm import build_lm
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.planner.trunk import TrunkOutput
from pmoe_core.planner.upcycle import MoEConfig, aux_loss, upcycle


@dataclass
class JointConfig:
    moe: MoEConfig = field(default_factory=MoEConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)


class JointTrunk(nn.Module):
    """forward(texts, scene tokens (B, S, dim), scene mask) -> TrunkOutput, through its own copy of the LLM."""

    def __init__(self, cfg: JointConfig, dim: int, text: TextFeatures):
        super().__init__()
        llm, self.tokenizer = build_lm(text.spec.llm)
        llm.config.use_cache = False
        self.llm = apply_lora(upcycle(llm, cfg.moe), cfg.lora)
        self.aux_weight = cfg.moe.aux_loss_weight
        self.max_tokens = text.spec.max_tokens
        hidden = llm.config.hidden_size
        self.scene_in = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, dim)
        with torch.no_grad():  # scene tokens start at the loudness of the LLM's word embeddings
            target = self.llm.get_input_embeddings().weight.float().pow(2).mean().sqrt().item()
            nn.init.normal_(self.scene_in.weight, std=target / dim**0.5)
            nn.init.zeros_(self.scene_in.bias)

    def forward(self, texts: list[str], scene: torch.Tensor, scene_mask: torch.Tensor) -> TrunkOutput:
        b, s, _ = scene.shape
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"][: self.max_tokens]
               or [self.tokenizer.eos_token_id] for t in texts]
        longest = max(len(i) for i in ids)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        tokens = torch.full((b, longest), pad, dtype=torch.long, device=scene.device)
        text_mask = torch.zeros(b, longest, dtype=torch.bool, device=scene.device)
        for row, i in enumerate(ids):
            tokens[row, : len(i)] = torch.tensor(i, dtype=torch.long)
            text_mask[row, : len(i)] = True
        embeds = torch.cat([self.scene_in(scene), self.llm.get_input_embeddings()(tokens).to(scene.dtype)], 1)
        mask = torch.cat([scene_mask, text_mask], 1).long()
        hidden = self.llm.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
        out = self.out(hidden)
        aux = self.aux_weight * aux_loss(self.llm).to(out.device)
        return TrunkOutput(out[:, s:], out[:, :s], text_mask, scene_mask, aux)
