"""`pmoe models`: the model presets with total and active (per-token) parameter counts."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List model presets with total and active parameter counts."""
    import torch

    from pmoe_core.models import PRESETS, PPTConfig, build_model, count_parameters

    rows = []
    with torch.device("meta"):  # shapes only: no memory, no init time
        for name, make in PRESETS.items():
            cfg = make()
            total, active = count_parameters(build_model(cfg, backend="torch"))
            backbone = cfg.backbone if isinstance(cfg, PPTConfig) else cfg
            moe = backbone.moe
            kind = "ppt" if isinstance(cfg, PPTConfig) else ("point-moe" if moe else "ptv3")
            experts = f"{moe.num_experts}x r{moe.ratio:g} top-{moe.top_k} @{backbone.moe_at}" if moe else ""
            rows.append({"name": name, "kind": kind, "total_params": total, "active_params": active,
                         "channels": list(backbone.enc_channels), "depths": list(backbone.enc_depths), "experts": experts})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="model presets (backbone only; the language head adds out_channels x text_dim)")
    for col in ("preset", "kind", "total", "active", "enc channels", "enc depths", "experts"):
        table.add_column(col, justify="right" if col in ("total", "active") else "left")
    for r in rows:
        table.add_row(r["name"], r["kind"], f"{r['total_params'] / 1e6:.2f}M", f"{r['active_params'] / 1e6:.2f}M",
                      str(tuple(r["channels"])), str(tuple(r["depths"])), r["experts"])
    Console().print(table)
