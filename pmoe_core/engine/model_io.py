"""Model configurations as plain data (for checkpoints) and back, without pickling classes."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.models.moe import MoEConfig
from pmoe_core.models.ppt import PPTConfig
from pmoe_core.models.presets import build_model
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
    """Inverse of config_to_data; lists become tuples (configs are frozen-friendly). Every field is checked against
    its annotation (a checkpoint is untrusted input: `"enc_channels": "abc"` must not reach the model code)."""
    if isinstance(data, dict) and "__type__" in data:
        name = data["__type__"]
        if not isinstance(name, str) or name not in CONFIG_TYPES:
            raise FormatError(f"unknown model config type {name!r}", source)
        cls = CONFIG_TYPES[name]
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = {str(k) for k in data if k != "__type__"} - known
        if unknown:
            raise FormatError(f"{name} has no fields {sorted(unknown)}", source)
        values = {k: config_from_data(v, source) for k, v in data.items() if k != "__type__"}
        for key, value in values.items():
            if not _fits(value, hints[key]):
                raise FormatError(f"{name}.{key} = {_short(value)} is not {_type_name(hints[key])}", source)
        try:
            return cls(**values)
        except (ValueError, TypeError) as err:
            raise FormatError(f"bad {name}: {err}", source) from None
    if isinstance(data, list):
        return tuple(config_from_data(v, source) for v in data)
    return data


def _fits(value: Any, hint: Any) -> bool:
    """Whether a decoded value matches a config annotation (int, float, bool, str, tuple[X, ...], dict[str, str],
    X | None, a config dataclass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        return isinstance(value, tuple) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    raise TypeError(f"config annotation {hint!r} has no check")  # a new field type: teach _fits about it


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked_weights(payload: dict[str, Any], key: str, source: str | Path) -> dict[str, torch.Tensor]:
    """`payload[key]` as a state dict (names -> tensors), or a FormatError."""
    weights = payload.get(key)
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise FormatError(f"checkpoint entry {key!r} is not a state dict of named tensors", source)
    return weights


def check_weights_fit(config: Any, weights: dict[str, torch.Tensor], source: str | Path, dataset_names: Any = None,
                      text_dim: int | None = None) -> None:
    """FormatError unless the stored config builds a model whose parameters have exactly the stored names and
    shapes. Built on the meta device (no memory), so building the real model afterwards costs memory bounded by the
    weights really in the file, not by what the config claims (enc_channels of 10^6 would not fit)."""
    if not isinstance(config, (PTv3Config, PPTConfig)):
        raise FormatError(f"model config is a {type(config).__name__}, not PTv3Config or PPTConfig", source)
    backbone = config.backbone if isinstance(config, PPTConfig) else config
    blocks = sum(backbone.enc_depths) + sum(backbone.dec_depths)
    if min((*backbone.enc_depths, *backbone.dec_depths), default=0) < 0 or blocks > len(weights):
        raise FormatError(f"model config claims {blocks} blocks but the file holds {len(weights)} weight tensors",
                          source)
    try:
        with torch.device("meta"):
            shape_only = build_model(config, dataset_names=dataset_names, text_dim=text_dim, backend="torch")
    except (ValueError, TypeError, ZeroDivisionError, IndexError, KeyError, RuntimeError, OverflowError) as err:
        raise FormatError(f"stored model config does not build a model ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''})", source) from None
    expected = {k: tuple(v.shape) for k, v in shape_only.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != stored:
        missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
        wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
        what = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra
                else f"{wrong[0]} is {stored[wrong[0]]}, config says {expected[wrong[0]]}")
        raise FormatError(f"weights do not fit the stored config ({what})", source)


def build_fitting_model(config: Any, weights: dict[str, torch.Tensor], source: str | Path,
                        dataset_names: Any = None, text_dim: int | None = None, backend: str | None = None) -> nn.Module:
    """The model of a stored config with `weights` loaded, checked first by check_weights_fit."""
    check_weights_fit(config, weights, source, dataset_names, text_dim)
    try:
        model = build_model(config, dataset_names=dataset_names, text_dim=text_dim, backend=backend)
    except ImportError as err:
        raise BadInput(f"model needs a missing package ({err})", source) from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise FormatError(f"weights do not fit the stored config ({str(err).splitlines()[0]})", source) from None
    return model


def load_segmentation_model(path: str, device: str = "cpu"):
    """(model in eval mode, checkpoint meta) from a `pmoe train` checkpoint; refuses planner checkpoints."""
    from pmoe_core.engine.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    meta = payload["meta"]
    if meta.get("kind") != "segmentation" or "config" not in meta or "model" not in payload:
        raise FormatError(f"not a segmentation checkpoint (kind {meta.get('kind')!r})", path)
    config = config_from_data(meta["config"], path)
    text_dim = None
    if fixed_head_classes(config) is None:  # a language head: its width is the class embeddings'
        embeddings = payload.get("class_embeddings")
        if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2 or not embeddings.is_floating_point() \
                or min(embeddings.shape) < 1:
            raise FormatError("checkpoint has no class embeddings (a 2-D float tensor)", path)
        text_dim = int(embeddings.shape[1])
    model = build_fitting_model(config, checked_weights(payload, "model", path), path,
                                dataset_names=meta.get("datasets"), text_dim=text_dim)
    return model.to(device).eval(), meta


def fixed_head_classes(config: Any) -> int | None:
    """Class count of a fixed-class (linear) head, e.g. an imported Pointcept seg_head; None for a language head.
    `config` is a model config or a checkpoint's meta (its "config" entry as plain data)."""
    if isinstance(config, dict):  # checkpoint meta: the config as plain data (PPT nests the PTv3 one)
        data = config.get("config")
        data = data.get("backbone", data) if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("head") != "linear":
            return None
        return int(data.get("head_classes", 0))
    backbone = config.backbone if isinstance(config, PPTConfig) else config
    return backbone.head_classes if getattr(backbone, "head", "language") == "linear" else None
