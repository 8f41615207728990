"""Checks of run options shared by train, eval and route-inspect, done before any data is opened or model built.

Typer parses `--lr nan` and `--aux-alpha inf` as floats and its `min=` bounds let NaN through (every comparison
with NaN is false), so numbers are checked here, once, by rule rather than by hand per option. Devices are checked
against the machine (`cuda:7` on a one-GPU or CPU-only box), and dataset lists are refused when two names (or an
alias and its dataset) are the same dataset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from enum import Enum

import torch

from pmoe_core.errors import BadInput
from pmoe_core.vocab.label_spaces import resolve_dataset


class Rule(str, Enum):
    """What a numeric option must be, besides finite."""

    POSITIVE = "a positive number"
    NON_NEGATIVE = "a non-negative number"
    FRACTION = "a number from 0 to 1"


def check_numbers(options: Iterable[tuple[str, float | int | None, Rule]]) -> None:
    """BadInput naming the first option (`--lr`, ...) whose value is NaN, infinite or outside its rule; None values
    (options not given) pass."""
    for name, value, rule in options:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"{name} must be {rule.value}, got {value!r}")
        ok = math.isfinite(value) and {
            Rule.POSITIVE: value > 0,
            Rule.NON_NEGATIVE: value >= 0,
            Rule.FRACTION: 0 <= value <= 1,
        }[rule]
        if not ok:
            raise BadInput(f"{name} must be {rule.value}, got {value!r}")


def check_device(name: str) -> torch.device:
    """The torch device `name` ("cpu", "cuda", "cuda:1", ...) if this machine has it, else BadInput."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise BadInput(f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cpu" or (device.type == "mps" and torch.backends.mps.is_available()):
        return device
    if device.type != "cuda":
        raise BadInput(f"--device {name!r}: not available here (pmoe runs on cpu, cuda devices or Apple's mps)")
    if not torch.cuda.is_available():
        raise BadInput(f"--device {name!r}: CUDA is not available on this machine (use --device cpu)")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise BadInput(f"--device {name!r}: no such GPU (this machine has {count}: cuda:0..cuda:{count - 1})")
    return device


def unique_datasets(names: Sequence[str], option: str = "--datasets") -> tuple[str, ...]:
    """Canonical dataset names; BadInput when two entries are the same dataset (`kitti,semantickitti`)."""
    canonical: dict[str, str] = {}
    for name in names:
        key = resolve_dataset(name)
        if key in canonical:
            same = f"{canonical[key]!r} and {name!r} are both {key}" if canonical[key] != name else f"{name!r} twice"
            raise BadInput(f"{option} names {same}; give each dataset once")
        canonical[key] = name
    return tuple(canonical)
