"""Model configurations as plain data (for checkpoints) and back, without pickling classes."""

from __future__ import annotations

import dataclasses
from typing import Any

from pmoe_core.errors import FormatError
from pmoe_core.models.moe import MoEConfig
from pmoe_core.models.ppt import PPTConfig
from pmoe_core.models.ptv3 import PTv3Config

CONFIG_TYPES = {cls.__name__: cls for cls in (PTv3Config, PPTConfig, MoEConfig)}


def config_to_data(cfg: Any) -> Any:
    """A (nested) config dataclass as dicts tagged with their type name; tuples become lists."""
    if dataclasses.is_dataclass(cfg):
        data = {f.name: config_to_data(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
        return {"__type__": type(cfg).__name__, **data}
    if isinstance(cfg, (list, tuple)):
        return [config_to_data(v) for v in cfg]
    return cfg


def config_from_data(data: Any, source: str | None = None) -> Any:
    """Inverse of config_to_data; lists become tuples (configs are frozen-friendly)."""
    if isinstance(data, dict) and "__type__" in data:
        name = data["__type__"]
        if name not in CONFIG_TYPES:
            raise FormatError(f"unknown model config type {name!r}", source)
        cls = CONFIG_TYPES[name]
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: config_from_data(v, source) for k, v in data.items() if k != "__type__"}
        unknown = set(values) - known
        if unknown:
            raise FormatError(f"{name} has no fields {sorted(unknown)}", source)
        return cls(**values)
    if isinstance(data, list):
        return tuple(config_from_data(v, source) for v in data)
    return data


def load_segmentation_model(path: str, device: str = "cpu"):
    """(model in eval mode, checkpoint meta) from a `pmoe train` checkpoint; refuses planner checkpoints."""
    from pmoe_core.engine.checkpoint import load_checkpoint
    from pmoe_core.models.presets import build_model

    payload = load_checkpoint(path)
    meta = payload["meta"]
    if meta.get("kind") != "segmentation" or "config" not in meta or "model" not in payload:
        raise FormatError(f"not a segmentation checkpoint (kind {meta.get('kind')!r})", path)
    config = config_from_data(meta["config"], path)
    text_dim = int(payload["class_embeddings"].shape[1]) if "class_embeddings" in payload else None
    if text_dim is None:
        raise FormatError("checkpoint has no class embeddings", path)
    model = build_model(config, dataset_names=meta.get("datasets"), text_dim=text_dim)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise FormatError(f"weights do not fit the stored config ({str(err).splitlines()[0]})", path) from None
    return model.to(device).eval(), meta
