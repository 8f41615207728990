"""Recording which experts every input point was routed to, per MoE layer.

Inside `with record_routing(model) as rec:` each MoE layer keeps its routing and forward hooks map it from the
layer's tokens back to the INPUT points: tokens of a level are that level's points in their own order (attention
un-serializes before the output projection), and `Level.input_map` composes the pooling cluster maps down the
hierarchy (decoder levels reuse their encoder twin's map). Outside the block no hook exists and MoE layers only
test one boolean, so recording costs nothing when off.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

from .moe import MoE
from .ptv3 import Block


@dataclass
class RoutingRecord:
    """One MoE layer in one forward, per input point (or per token for an MoE outside a PTv3 block)."""

    expert_ids: torch.Tensor  # (N, k) int64
    weights: torch.Tensor  # (N, k)
    probs: torch.Tensor  # (N, E) full router softmax


@dataclass
class RoutingRecorder:
    records: dict[str, list[RoutingRecord]] = field(default_factory=dict)  # layer name -> one record per forward

    def last(self) -> dict[str, RoutingRecord]:
        """Each layer's record from the most recent forward."""
        return {name: recs[-1] for name, recs in self.records.items()}

    @property
    def layer_names(self) -> list[str]:
        return list(self.records)


@contextmanager
def record_routing(model: nn.Module) -> Iterator[RoutingRecorder]:
    """Context manager: record routing of every MoE layer of `model`, mapped back to input points."""
    recorder = RoutingRecorder()
    current_map: list[torch.Tensor | None] = [None]
    handles = []
    moes = [(name, m) for name, m in model.named_modules() if isinstance(m, MoE)]

    def enter_block(block: nn.Module, args: tuple) -> None:
        current_map[0] = args[0].input_map  # Block.forward(level, order_index)

    def leave_block(block: nn.Module, args: tuple, output: torch.Tensor) -> None:
        current_map[0] = None

    def store(layer_name: str):
        def hook(module: MoE, args: tuple, output: torch.Tensor) -> None:
            r = module.last_routing
            module.last_routing = None
            if r is None:
                return
            ids, weights, probs = r.expert_ids, r.weights, r.probs
            input_map = current_map[0]
            if input_map is not None:
                ids, weights, probs = ids[input_map], weights[input_map], probs[input_map]
            recorder.records.setdefault(layer_name, []).append(RoutingRecord(ids, weights, probs))

        return hook

    try:
        for module in model.modules():
            if isinstance(module, Block) and any(isinstance(m, MoE) for m in module.modules()):
                handles.append(module.register_forward_pre_hook(enter_block))
                handles.append(module.register_forward_hook(leave_block))
        for name, m in moes:
            m.record = True
            handles.append(m.register_forward_hook(store(m.layer_name or name)))
        yield recorder
    finally:
        for h in handles:
            h.remove()
        for _, m in moes:
            m.record = False
            m.last_routing = None
