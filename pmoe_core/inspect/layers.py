"""Which MoE layers get coloured point clouds and affinity figures (`--layers`)."""

from __future__ import annotations

from typing import Sequence

from pmoe_core.errors import BadInput


def default_layers(layers: Sequence[str]) -> list[str]:
    """First encoder layer, deepest encoder layer (last in forward order), last decoder layer; no repeats."""
    enc = [n for n in layers if n.startswith("enc")]
    dec = [n for n in layers if n.startswith("dec")]
    picks = [enc[0], enc[-1]] if enc else [layers[0]]
    picks.append(dec[-1] if dec else layers[-1])
    return list(dict.fromkeys(picks))


def select_layers(layers: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """Layers by name or forward-order index (negative counts from the end); "all" takes every layer."""
    if not wanted:
        return default_layers(layers)
    if list(wanted) == ["all"]:
        return list(layers)
    picked = []
    for item in wanted:
        if item in layers:
            picked.append(item)
        elif item.lstrip("-").isdigit() and -len(layers) <= int(item) < len(layers):
            picked.append(layers[int(item)])
        else:
            raise BadInput(f"--layers: no MoE layer {item!r} (give a name or an index 0..{len(layers) - 1}; "
                           f"layers: {', '.join(layers)})")
    return list(dict.fromkeys(picked))
