"""`pmoe check STORE` and `pmoe info STORE`: validate and summarise a scene store (local path or fsspec URL)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from pmoe_core.errors import StoreError
from pmoe_core.store import check_store, store_info


def check(
    store: str = typer.Argument(..., help="Scene store: OUT/<dataset>.zarr, or an fsspec URL (s3://..., memory://...)."),
    all_problems: bool = typer.Option(False, "--all", help="List every problem, not just the first."),
) -> None:
    """Validate everything a reader relies on: attributes, offsets, names, dtypes, label range, coordinates."""
    problems = check_store(store)
    if not problems:
        info = store_info(store, histogram=False)
        splits = ", ".join(f"{name} {s['scenes']}" for name, s in info["splits"].items()) or "no splits"
        typer.echo(f"ok: {store}: {info['dataset']}, {info['scenes']} scenes ({splits}), "
                   f"{info['points']:,} points")
        return
    if all_problems:
        for problem in problems:
            typer.echo(problem)
        raise StoreError(f"{len(problems)} problem(s) found", store)
    raise StoreError(problems[0], store)


def info(
    store: str = typer.Argument(..., help="Scene store: OUT/<dataset>.zarr, or an fsspec URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of tables."),
) -> None:
    """Splits, scenes, points, fields, text encoder, and points per benchmark class."""
    summary = store_info(store)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    console.print(_overview(summary))
    if any(s["labeled"] for s in summary["splits"].values()):
        console.print(_histogram(summary))


def _overview(summary: dict[str, Any]) -> Table:
    table = Table(title=f"{summary['url']}: {summary['dataset']} ({summary['benchmark']})",
                  caption=f"text encoder {summary['text_encoder']} ({summary['embedding_dim']}-d), "
                          f"pmoe {summary['converter_version']}, created {summary['created']}")
    for column in ("split", "scenes", "points", "points/scene", "fields"):
        table.add_column(column, justify="left" if column in ("split", "fields") else "right")
    for name, s in summary["splits"].items():
        per = s["points"] // s["scenes"] if s["scenes"] else 0
        table.add_row(name, f"{s['scenes']:,}", f"{s['points']:,}", f"{per:,}", ", ".join(s["fields"]))
    table.add_section()
    table.add_row("total", f"{summary['scenes']:,}", f"{summary['points']:,}", "", "")
    return table


def _histogram(summary: dict[str, Any]) -> Table:
    labeled = {n: s for n, s in summary["splits"].items() if s["labeled"]}
    table = Table(title="points per class")
    table.add_column("index", justify="right")
    table.add_column("class")
    for name in labeled:
        table.add_column(name, justify="right")
        table.add_column("%", justify="right")
    rows = [(str(i), c) for i, c in enumerate(summary["classes"])] + [("-1", "(ignored)")]
    for index, cls in rows:
        cells = [index, cls]
        for s in labeled.values():
            count = s["ignored_points"] if index == "-1" else s["class_points"].get(cls, 0)
            cells += [f"{count:,}", f"{100.0 * count / s['points']:.1f}" if s["points"] else "-"]
        table.add_row(*cells)
    return table
