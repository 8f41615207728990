"""A valid segmentation checkpoint of a few kilobytes (a 2-stage Point-MoE of 8-16 channels), written without
training, for tests that damage checkpoints (tests/engine/test_checkpoint.py, tests/reliability/test_fuzz_checkpoint.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pmoe_core.engine.checkpoint import save_checkpoint
from pmoe_core.engine.model_io import config_to_data
from pmoe_core.models.moe import MoEConfig
from pmoe_core.models.presets import build_model
from pmoe_core.models.ptv3 import PTv3Config

CONFIG = PTv3Config(enc_depths=(1, 1), enc_channels=(8, 16), enc_num_head=(1, 2), enc_patch_size=(16, 16),
                    dec_depths=(1,), dec_channels=(8,), dec_num_head=(1,), dec_patch_size=(16,),
                    moe=MoEConfig(num_experts=2, top_k=1))
TEXT_DIM = 4


def small_meta(**changes: Any) -> dict[str, Any]:
    meta = {"kind": "segmentation", "preset": "pmoe-tiny", "config": config_to_data(CONFIG), "step": 1,
            "datasets": ["scannet"], "text_encoder": "test", "train_args": {"steps": 1}}
    return {**meta, **changes}


def small_tensors(seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = build_model(CONFIG, text_dim=TEXT_DIM)
    return {"model": model.state_dict(), "class_embeddings": torch.randn(20, TEXT_DIM)}


def write_small_checkpoint(path: str | Path, meta: dict[str, Any] | None = None, **tensors: Any) -> Path:
    """Save (through the real writer) a checkpoint that `load_segmentation_model` loads; keyword arguments replace
    or add payload entries."""
    return save_checkpoint(path, meta if meta is not None else small_meta(), {**small_tensors(), **tensors})
