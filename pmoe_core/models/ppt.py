"""Point Prompt Training baseline (Wu et al., CVPR 2024): PTv3 with dataset-specific normalisation (PDNorm).

This is the one model that is told the dataset of a batch: every BatchNorm (stem, pooling, unpooling) and
LayerNorm (blocks) is a bank of norms, one per training dataset, selected by the batch's dataset name. A batch must
therefore come from a single dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from pmoe_core.errors import BadInput
from pmoe_core.vocab.label_spaces import resolve_dataset

from .batch import PointBatch
from .ptv3 import PTv3, PTv3Config, make_norm

PPT_DATASETS = ("scannet", "s3dis", "structured3d", "nuscenes", "semantickitti")


@dataclass
class PPTConfig:
    backbone: PTv3Config = field(default_factory=PTv3Config)
    datasets: tuple[str, ...] = PPT_DATASETS  # one norm per entry, in this order
    pdnorm_bn: bool = True  # dataset-specific BatchNorm in stem / pool / unpool
    pdnorm_ln: bool = True  # dataset-specific norms inside blocks
    # Norms to use for a dataset not trained on (zero-shot), e.g. {"matterport3d": "scannet"}; else it is an error.
    unseen: dict[str, str] = field(default_factory=dict)


class PDNorm(nn.Module):
    """One norm per dataset; `condition` (set by PPT.forward) says which one runs."""

    def __init__(self, kind: str, channels: int, num_datasets: int):
        super().__init__()
        self.norms = nn.ModuleList(make_norm(kind, channels) for _ in range(num_datasets))
        self.condition: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.condition is None:
            raise RuntimeError("PDNorm called outside PPT.forward (no dataset condition set)")
        return self.norms[self.condition](x)


class PPT(nn.Module):
    """forward(batch, dataset) -> per-point features; `dataset` is a name, or one name per sample (all equal)."""

    needs_dataset = True

    def __init__(self, cfg: PPTConfig):
        super().__init__()
        if not cfg.datasets:
            raise ValueError("PPT needs at least one dataset")
        self.cfg = cfg
        self.datasets = tuple(resolve_dataset(d) for d in cfg.datasets)
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"duplicate datasets in {cfg.datasets}")
        self.unseen = {resolve_dataset(k): resolve_dataset(v) for k, v in cfg.unseen.items()}
        self._pdnorms: list[PDNorm] = []

        def norm(kind: str, channels: int) -> nn.Module:
            if (kind == "bn" and cfg.pdnorm_bn) or (kind != "bn" and cfg.pdnorm_ln):
                module = PDNorm(kind, channels, len(self.datasets))
                self._pdnorms.append(module)
                return module
            return make_norm(kind, channels)

        self.backbone = PTv3(cfg.backbone, norm=norm)

    @property
    def out_channels(self) -> int:
        return self.backbone.out_channels

    def condition_index(self, dataset: str | Sequence[str] | None) -> int:
        if dataset is None:
            raise BadInput("the PPT baseline needs the dataset name of the batch")
        names = {dataset} if isinstance(dataset, str) else set(dataset)
        if len(names) != 1:
            raise BadInput(f"a PPT batch must come from one dataset, got {sorted(names)} (PDNorm picks one norm per batch)")
        name = resolve_dataset(names.pop())
        name = self.unseen.get(name, name)
        if name not in self.datasets:
            raise BadInput(f"PPT was built for {', '.join(self.datasets)}; no norms for {name!r} (map it with PPTConfig.unseen)")
        return self.datasets.index(name)

    def forward(self, batch: PointBatch, dataset: str | Sequence[str] | None = None) -> torch.Tensor:
        index = self.condition_index(dataset)
        for m in self._pdnorms:
            m.condition = index
        try:
            return self.backbone(batch)
        finally:
            for m in self._pdnorms:
                m.condition = None
