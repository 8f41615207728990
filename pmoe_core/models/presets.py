"""Named model configurations and the model factory.

A preset is a plain function returning a config dataclass: read the function to see the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from pmoe_core.errors import BadInput

from .batch import IN_CHANNELS
from .heads import DEFAULT_TEXT_DIM, SegmentationModel
from .moe import MoEConfig
from .ppt import PPT, PPTConfig
from .ptv3 import PTv3, PTv3Config

ModelConfig = PTv3Config | PPTConfig


def _base(**overrides) -> PTv3Config:
    """Pointcept PT-v3m1 base: 46.2M parameters."""
    return PTv3Config(in_channels=IN_CHANNELS, **overrides)


def _large(**overrides) -> PTv3Config:
    """The "PPT-extreme" PTv3-L used by PTv3-L and PPT-L."""
    return PTv3Config(
        in_channels=IN_CHANNELS,
        enc_depths=(3, 3, 3, 6, 3),
        enc_channels=(48, 96, 192, 384, 512),
        enc_num_head=(3, 6, 12, 24, 32),
        dec_depths=(3, 3, 3, 3),
        dec_channels=(64, 96, 192, 384),
        dec_num_head=(4, 6, 12, 24),
        **overrides,
    )


def _tiny(**overrides) -> PTv3Config:
    """Same architecture, small enough to train on a laptop CPU in minutes."""
    return PTv3Config(
        in_channels=IN_CHANNELS,
        enc_depths=(1, 1, 1, 1, 1),
        enc_channels=(16, 32, 64, 64, 64),
        enc_num_head=(1, 2, 4, 4, 4),
        enc_patch_size=(128,) * 5,
        dec_depths=(1, 1, 1, 1),
        dec_channels=(32, 32, 64, 64),
        dec_num_head=(2, 2, 4, 4),
        dec_patch_size=(128,) * 4,
        drop_path=0.0,
        **overrides,
    )


def ptv3_base() -> PTv3Config:
    return _base()


def ptv3_l() -> PTv3Config:
    return _large()


def ppt_l() -> PPTConfig:
    return PPTConfig(backbone=_large())


def pmoe_s() -> PTv3Config:
    """Point-MoE-S: base backbone, every attention projection a 4-expert top-2 MoE of ratio 1."""
    return _base(moe=MoEConfig(num_experts=4, top_k=2, ratio=1.0), in_features="pmoe7-xyz")


def pmoe_l() -> PTv3Config:
    """Point-MoE-L: every attention projection an 8-expert top-2 MoE of ratio 2, on the base-width backbone.

    Why base width: the paper reports Point-MoE-L at 265.7 vs PPT-L's 384.4 GFLOPs per step (0.69x) and lower
    peak memory. On the base backbone we measure 0.66x PPT-L's forward FLOPs (bench/flops.py); on the large
    backbone the MoE projections (12 C^2 per token instead of C^2) would make it 1.49x, contradicting the paper.
    Use `_large(moe=MoEConfig(8, 2, 2.0))` for that wider variant.
    """
    return _base(moe=MoEConfig(num_experts=8, top_k=2, ratio=2.0), in_features="pmoe7-xyz")


def ptv3_tiny() -> PTv3Config:
    return _tiny()


def ppt_tiny() -> PPTConfig:
    return PPTConfig(backbone=_tiny())


def pmoe_tiny() -> PTv3Config:
    return _tiny(moe=MoEConfig(num_experts=4, top_k=2, ratio=1.0))


NORM_SWITCH = ("bn", "ln", "rms")


def norm_switch(cfg: ModelConfig, switch: str) -> ModelConfig:
    """The Point-MoE release's norm switch (its backbone's use_ln / use_RMS flags), applied to a config.

    "bn" (release default): BatchNorm in the stem, pooling and unpooling, LayerNorm inside blocks; "ln" (use_ln):
    LayerNorm everywhere; "rms" (use_RMS): RMSNorm everywhere. The paper's LN and RMSNorm ablation rows change all
    of those norms, not only the in-block ones (docs/recipes.md). A PPT config switches its backbone.
    """
    if switch not in NORM_SWITCH:
        raise BadInput(f"norm switch must be one of {', '.join(NORM_SWITCH)}, got {switch!r}")
    if isinstance(cfg, PPTConfig):
        return dataclasses.replace(cfg, backbone=norm_switch(cfg.backbone, switch))
    block = "ln" if switch == "bn" else switch
    return dataclasses.replace(cfg, outer_norm=switch, block_norm=block)


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "ptv3-base": ptv3_base,
    "ptv3-l": ptv3_l,
    "ppt-l": ppt_l,
    "pmoe-s": pmoe_s,
    "pmoe-l": pmoe_l,
    "ptv3-tiny": ptv3_tiny,
    "ppt-tiny": ppt_tiny,
    "pmoe-tiny": pmoe_tiny,
}


@dataclass(frozen=True)
class RecipeDefaults:
    """The training-recipe defaults a preset comes with: those of the reference config it reproduces
    (docs/recipes.md). Training (engine/train.py preset_recipe) uses them wherever a run does not set its own."""

    lr: float = 0.002  # Point-MoE release: OneCycle max_lr [0.002, 0.0006] (configs/point_moe/indoor.py)
    block_lr: float = 0.0006
    grad_clip: float = 1.0
    mix: bool = True  # mixed-dataset batches
    mix3d: float = 0.0  # Mix3D probability per training batch (the release: mix_prob = 0)


POINT_MOE_RECIPE = RecipeDefaults()
# Pointcept's PPT + PTv3 ("PPT-extreme", configs/scannet/semseg-pt-v3m1-1-ppt-extreme.py): lr 0.005, block lr 0.0005,
# clip_grad 3.0, mix_prob 0.8, batches of one dataset (its MultiDatasetTrainer); PDNorm needs the last one anyway.
PPT_RECIPE = RecipeDefaults(lr=0.005, block_lr=0.0005, grad_clip=3.0, mix=False, mix3d=0.8)


def recipe_defaults(preset: str) -> RecipeDefaults:
    """The recipe of a (resolved) preset name: PPT's own for ppt-*, Point-MoE's for the others and unknown names."""
    make = PRESETS.get(preset)
    return PPT_RECIPE if make is not None and isinstance(make(), PPTConfig) else POINT_MOE_RECIPE


def get_config(preset: str) -> ModelConfig:
    try:
        return PRESETS[preset]()
    except KeyError:
        raise BadInput(f"unknown model preset {preset!r} (known: {', '.join(PRESETS)})") from None


def build_model(
    preset_or_config: str | ModelConfig,
    dataset_names: Sequence[str] | None = None,
    text_dim: int | None = None,
    backend: str | None = None,
) -> nn.Module:
    """Backbone for a preset name or config; with `text_dim`, a SegmentationModel (backbone + language head). A
    config with a fixed-class head (`head="linear"`) always gets its SegmentationModel, text_dim or not.

    The backbone maps a PointBatch to per-point features (N, out_channels). `dataset_names` sets the PDNorm banks of
    the PPT baseline (ignored by the others: they take no dataset). `backend` overrides the sparse conv backend.
    """
    cfg = get_config(preset_or_config) if isinstance(preset_or_config, str) else preset_or_config
    if isinstance(cfg, PPTConfig):
        if dataset_names is not None:
            cfg = dataclasses.replace(cfg, datasets=tuple(dataset_names))
        if backend is not None:
            cfg = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, backend=backend))
        backbone: nn.Module = PPT(cfg)
    elif isinstance(cfg, PTv3Config):
        if backend is not None:
            cfg = dataclasses.replace(cfg, backend=backend)
        backbone = PTv3(cfg)
    else:
        raise TypeError(f"expected a preset name, PTv3Config or PPTConfig, got {type(cfg).__name__}")
    bcfg = backbone_config(cfg)
    if bcfg.head == "linear":
        return SegmentationModel(backbone, num_classes=bcfg.head_classes)
    if text_dim is None:
        return backbone
    return SegmentationModel(backbone, text_dim=text_dim, logit_scale=bcfg.head_logit_scale)


def backbone_config(cfg: ModelConfig) -> PTv3Config:
    """The PTv3Config of a model config (PPT wraps one): where the head and input-layout knobs live."""
    return cfg.backbone if isinstance(cfg, PPTConfig) else cfg


def input_layout(model: nn.Module) -> str:
    """The feature layout (batch.FEATURE_LAYOUTS) a built model expects; the data pipeline builds it."""
    backbone = getattr(model, "backbone", model)
    cfg = getattr(backbone, "cfg", None)
    return backbone_config(cfg).in_features if isinstance(cfg, (PTv3Config, PPTConfig)) else "pmoe7"


__all__ = ["PRESETS", "get_config", "build_model", "backbone_config", "input_layout", "norm_switch", "recipe_defaults",
           "RecipeDefaults", "DEFAULT_TEXT_DIM"]
