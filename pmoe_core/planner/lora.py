"""LoRA (peft) on the LLM's attention and on every expert; base weights frozen, routers fully trainable.

Adapters are injected into the model itself (`peft.inject_adapter_in_model`), not wrapped in a PeftModel, so the
LLM keeps its transformers API. The paper uses r=128, alpha=256; the CPU default is r=8, alpha=16.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import LoraConfig, inject_adapter_in_model
from torch import nn

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
EXPERT = ["gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ATTENTION + EXPERT)


def is_lora_param(name: str) -> bool:
    return "lora_A" in name or "lora_B" in name


def is_router_param(name: str) -> bool:
    return ".router." in name


def apply_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Freeze `model`, inject LoRA adapters into the target linears, and unfreeze them and the MoE routers."""
    for p in model.parameters():
        p.requires_grad_(False)
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=list(settings.targets)
    )
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_(is_lora_param(name) or is_router_param(name))
    return model
