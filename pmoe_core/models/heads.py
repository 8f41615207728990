"""Language-guided segmentation head and the backbone + head wrapper.

Classes are scored by cosine similarity with text embeddings of their names, so one head serves any label set:
pass the (num_classes, D) embedding matrix of the vocabulary to score.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .batch import PointBatch

DEFAULT_TEXT_DIM = 384  # all-MiniLM-L6-v2, the text encoder the project ships; CLIP ViT-B/16 would be 512
CLIP_LOGIT_SCALE = 100.0  # CLIP's learned temperature saturates at exp(4.6052) = 100; frozen as in PPT


class LanguageHead(nn.Module):
    """logits = scale * cos(Linear(feature), class embedding): (N, C) x (K, D) -> (N, K)."""

    def __init__(self, in_channels: int, text_dim: int = DEFAULT_TEXT_DIM, logit_scale: float = CLIP_LOGIT_SCALE, norm: bool = False):
        super().__init__()
        self.proj = nn.Linear(in_channels, text_dim)
        self.norm = nn.LayerNorm(text_dim) if norm else nn.Identity()
        self.logit_scale = logit_scale  # fixed, not learned

    def forward(self, feat: torch.Tensor, class_embeddings: torch.Tensor | None) -> torch.Tensor:
        if class_embeddings is None or class_embeddings.ndim != 2 or class_embeddings.shape[1] != self.proj.out_features:
            raise ValueError(
                f"class embeddings must be (num_classes, {self.proj.out_features}), got "
                f"{None if class_embeddings is None else tuple(class_embeddings.shape)}"
            )
        point = F.normalize(self.norm(self.proj(feat)), dim=-1)
        text = F.normalize(class_embeddings.to(point.dtype), dim=-1)
        return self.logit_scale * point @ text.T


class LinearHead(nn.Module):
    """logits = Linear(feature): a fixed-class head (an imported Pointcept `seg_head`), whose outputs follow one
    benchmark's class order. forward takes the class embeddings like LanguageHead, only to check their count."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.proj = nn.Linear(in_channels, num_classes)

    def forward(self, feat: torch.Tensor, class_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        if class_embeddings is not None and class_embeddings.shape[0] != self.proj.out_features:
            raise ValueError(f"this head scores a fixed set of {self.proj.out_features} classes, "
                             f"got a label set of {class_embeddings.shape[0]}")
        return self.proj(feat)


class SegmentationModel(nn.Module):
    """Backbone + language head. forward(batch, class_embeddings, dataset=None) -> logits (N, num_classes).

    `dataset` is handed to backbones that take one (the PPT baseline) and to no other: PTv3 and Point-MoE never see
    which dataset a batch comes from, so a trainer can call every model the same way.
    """

    def __init__(self, backbone: nn.Module, text_dim: int = DEFAULT_TEXT_DIM, logit_scale: float = CLIP_LOGIT_SCALE,
                 head_norm: bool = False, num_classes: int = 0):
        """`num_classes` > 0: a fixed-class LinearHead instead of the language head (text_dim is then unused)."""
        super().__init__()
        self.backbone = backbone
        self.head: nn.Module = (LinearHead(backbone.out_channels, num_classes) if num_classes > 0
                                else LanguageHead(backbone.out_channels, text_dim, logit_scale, head_norm))

    @property
    def needs_dataset(self) -> bool:
        return bool(getattr(self.backbone, "needs_dataset", False))

    def features(self, batch: PointBatch, dataset: str | Sequence[str] | None = None) -> torch.Tensor:
        if self.needs_dataset:
            return self.backbone(batch, dataset)
        return self.backbone(batch)

    def forward(self, batch: PointBatch, class_embeddings: torch.Tensor | None = None,
                dataset: str | Sequence[str] | None = None) -> torch.Tensor:
        """`class_embeddings` may be None only for a fixed-class (linear) head."""
        return self.head(self.features(batch, dataset), class_embeddings)
