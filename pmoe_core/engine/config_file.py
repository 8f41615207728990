"""Training configuration files: read (TOML or YAML), layer, check, and write back the effective configuration.

Precedence, lowest first: TrainConfig's defaults < the preset's recipe (lr, block lr, grad clip of the reference
it reproduces) < the config file < command-line flags < `--set key=value`. Keys are TrainConfig's field names;
the optimizer's are in an `optim` table (`optim.lr` with --set). `steps` and `epochs` are one choice: a layer
that sets one drops the other from the layers below it; one layer setting both is refused.

Why YAML and TOML rather than Pointcept's Python configs: a config file is data, read on every rank and shared
between people, so it must not run code; YAML can say `null` (no crop, no clip), which TOML cannot (there, the
string "none" stands for it). The effective configuration is written as YAML (`OUT/config.yaml`), which this
module reads back to the same TrainConfig.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.outputs import atomic_path

CONFIG_NAME = "config.yaml"
EXCLUSIVE = ("steps", "epochs")  # run length: one of them (see module docstring)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a .toml / .yaml / .yml file; FormatError naming the file when it is not one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise BadInput("a config file must end in .toml, .yaml or .yml", path)
    with open(path, "rb") as f:  # a missing file is an OSError: the CLI turns it into one line
        raw = f.read(1 << 22)
        if f.read(1):
            raise FormatError("config file larger than 4 MiB", path)
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError, RecursionError) as err:
        raise FormatError(f"not a readable {suffix[1:].upper()} config: {err}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FormatError(f"a config file holds a mapping of settings, not a {type(data).__name__}", path)
    return data


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """`--set key=value` pairs -> a nested mapping. The value is read as a TOML value (`3`, `0.1`, `true`,
    `[1, 2]`, `{s3dis = 0.5}`), else kept as a string (`datasets=scannet,kitti`, `preset=pmoe-s`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BadInput(f"--set {key}: {part} is not a table")
        node[leaf] = value
    return out


def build_config(cls: type, layers: Sequence[tuple[str, Mapping[str, Any]]],
                 preset_layer: typing.Callable[[str], Mapping[str, Any]] | None = None) -> Any:
    """An instance of dataclass `cls` from `layers` (source name, mapping), lowest precedence first, each checked
    against `cls`'s fields and types; `preset_layer(preset)` gives the values the final preset brings, placed below
    all layers. An unknown key or a wrong type is BadInput naming the key and the layer it came from."""
    checked = [(source, _check_mapping(cls, layer, source, "")) for source, layer in layers]
    merged: dict[str, Any] = {}
    for _, layer in checked:
        _merge(merged, layer)
    if preset_layer is not None:
        preset = merged.get("preset", _default(cls, "preset"))
        base = _check_mapping(cls, preset_layer(preset), f"preset {preset}", "")
        merged = _merge(base, merged)
    return _instantiate(cls, merged)


def config_data(cfg: Any) -> dict[str, Any]:
    """A dataclass as plain data (tuples -> lists), the one serialisation of a training config: config.yaml, the
    checkpoint's `train_args`, the log's first record."""
    return _plain(dataclasses.asdict(cfg))


def write_config(cfg: Any, path: str | Path) -> Path:
    """Write the configuration as YAML, atomically; `read_config_file` + `build_config` give back the same one."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("# pmoe train: the effective configuration of this run (pmoe train --config THIS_FILE)\n")
            yaml.safe_dump(config_data(cfg), f, sort_keys=False, default_flow_style=None)
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _default(cls: type, name: str) -> Any:
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base` (nested tables merged key by key); a layer setting steps or epochs drops the other."""
    if any(k in top for k in EXCLUSIVE):
        for k in EXCLUSIVE:
            if k not in top:
                base.pop(k, None)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "weights":
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _hints(cls: type) -> dict[str, Any]:
    import sys

    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def _check_mapping(cls: type, data: Mapping[str, Any], source: str, prefix: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise BadInput(f"{prefix.rstrip('.') or 'the configuration'} must be a table of settings "
                       f"(in {source})")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if not prefix and all(k in data for k in EXCLUSIVE) and None not in (data["steps"], data["epochs"]):
        raise BadInput(f"steps and epochs both set (in {source}); the run length is one of them")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            near = [n for n in names if n.replace("_", "") == str(key).replace("_", "").replace("-", "")]
            hint = f" (did you mean {near[0]}?)" if near else f"; known keys: {', '.join(names)}"
            raise BadInput(f"unknown key {prefix}{key} in {source}{hint}")
        out[key] = _coerce(value, hints[key], f"{prefix}{key}", source)
    return out


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """`value` as type `hint` (what the file's syntax can say for it), else BadInput naming key and source."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def wrong(expected: str) -> BadInput:
        return BadInput(f"{key} must be {expected}, got {value!r} (in {source})")

    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() == "none")):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0] if len(inner) == 1 else typing.Union[tuple(inner)], key, source)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return dataclasses.asdict(value)
        return _check_mapping(hint, value, source, f"{key}.")
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise wrong("a table of NAME = VALUE")
        return {str(k): _coerce(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, Mapping) and len(args) == 2 and args[1] is Ellipsis:
            value = list(value.items())  # {s3dis = 0.6} for a tuple of (name, rate) pairs
        if isinstance(value, str) and args == (str, Ellipsis):
            value = [v.strip() for v in value.split(",") if v.strip()]  # datasets = "scannet,kitti"
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise wrong(f"a list of {len(args)}")
        return tuple(_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    raise TypeError(f"no config coercion for {hint!r} ({key})")  # a field type this module must learn: a bug


def _instantiate(cls: type, data: dict[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if isinstance(value, dict) and dataclasses.is_dataclass(inner[0]):
            value = inner[0](**value)
        kwargs[key] = value
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise BadInput(f"{', '.join(missing)} must be given (a flag such as --{missing[0]}, or the config file)")
    return cls(**kwargs)
