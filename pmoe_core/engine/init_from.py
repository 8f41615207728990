"""`pmoe train --init CKPT`: start a run from the weights of any pmoe segmentation checkpoint (trained or imported).

The architecture is the checkpoint's (its stored config; --preset is not used), the backbone weights are loaded
exactly, the optimizer, schedule and step start fresh, and the run's metadata records where it started
(`init_from`). The head is kept when it can score the new run's label spaces: a language head whose text width is
the new class embeddings'. Otherwise a new language head is trained: a fixed-class head (an imported Pointcept
seg_head) scores one benchmark's classes and cannot train on label spaces by text embedding.

`--upcycle E` (with a dense PTv3 checkpoint) trains the upcycled Point-MoE instead: every attention projection copied
into E linear experts under a fresh router (models/upcycle.py), equal to the dense model at the first step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.engine.model_io import check_weights_fit, checked_weights, config_from_data, fixed_head_classes
from pmoe_core.errors import BadInput, FormatError
from pmoe_core.models.ppt import PPTConfig
from pmoe_core.models.upcycle import upcycle_config, upcycled_state

HEAD_PREFIX = "head."


@dataclass
class InitModel:
    config: Any  # the model config to train (a fixed-class head replaced by the language head)
    weights: dict[str, torch.Tensor]  # backbone weights, plus the head's when it is kept
    origin: dict[str, Any]  # the checkpoint meta's `init_from` entry
    upcycle: bool = False  # `weights` are the dense model's, to be copied into the experts of `config`

    @property
    def preset(self) -> str:
        preset = str(self.origin.get("preset") or "")
        if self.upcycle:
            return f"{preset or 'a dense model'} upcycled to {self.origin['upcycle']['experts']} experts"
        return preset


def load_init(path: str | Path, text_dim: int, upcycle: int | None = None) -> InitModel:
    """The start of a `--init` run from `path`, for a run whose class embeddings are `text_dim` wide; with `upcycle`,
    the checkpoint must be a dense PTv3 and the run trains its upcycled Point-MoE with that many experts."""
    payload = load_checkpoint(path)
    meta = payload["meta"]
    if meta.get("kind") != "segmentation" or "config" not in meta:
        raise FormatError(f"--init needs a segmentation checkpoint, this one holds {meta.get('kind')!r}", path)
    config = config_from_data(meta["config"], path)
    if isinstance(config, PPTConfig):
        raise BadInput("--init from a PPT checkpoint is not supported: its PDNorm norms belong to its own datasets",
                       path)
    weights = checked_weights(payload, "model", path)
    stored = payload.get("class_embeddings")
    fixed = fixed_head_classes(config)
    stored_dim = int(stored.shape[1]) if isinstance(stored, torch.Tensor) and stored.ndim == 2 else None
    check_weights_fit(config, weights, path, meta.get("datasets"), None if fixed is not None else stored_dim)
    if fixed is not None:
        config = dataclasses.replace(config, head="language", head_classes=0)
        head = f"new: the checkpoint's fixed {fixed}-class head cannot score label spaces by text embedding"
    elif stored_dim != text_dim:
        head = f"new: the checkpoint's head is {stored_dim} wide, this run's class embeddings {text_dim}"
    else:
        head = "loaded"
    if head != "loaded":
        weights = {k: v for k, v in weights.items() if not k.startswith(HEAD_PREFIX)}
    origin = {"checkpoint": str(path), "preset": meta.get("preset"), "step": meta.get("step"),
              "datasets": meta.get("datasets"), "text_encoder": meta.get("text_encoder"), "head": head}
    if "imported_from" in meta:
        origin["imported_from"] = meta["imported_from"]
    if upcycle is not None:
        try:
            config = upcycle_config(config, upcycle)
        except ValueError as err:
            raise BadInput(f"--upcycle {upcycle}: {err}", path) from None
        origin["upcycle"] = {"experts": config.moe.num_experts, "top_k": config.moe.top_k, "expert": "linear"}
    return InitModel(config, weights, origin, upcycle=upcycle is not None)


def apply_init(model: nn.Module, init: InitModel, path: str | Path) -> None:
    """Load the init weights into a freshly built model: every backbone weight must load; only the head may be
    left at its initialisation (when `init` dropped it)."""
    weights = upcycled_state(model, init.weights) if init.upcycle else init.weights
    result = model.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(HEAD_PREFIX)]
    if result.unexpected_keys or missing or (init.origin["head"] == "loaded" and result.missing_keys):
        first = (result.unexpected_keys or missing or result.missing_keys)[0]
        raise FormatError(f"--init weights do not fit the model built from its config ({first})", path)


__all__ = ["InitModel", "load_init", "apply_init"]
