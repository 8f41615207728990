"""`pmoe vocab`: show how each benchmark class maps to the unified vocabulary (and, optionally, its neighbours)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from pmoe_core.jsonio import write_json_atomic
from pmoe_core.outputs import check_output_file
from pmoe_core.vocab.report import select_datasets, vocab_report


def vocab(
    dataset: str = typer.Argument("all", help="A dataset name or alias (scannet, s3dis, kitti, ...) or 'all'."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the report as JSON to this file."),
    encoder: str = typer.Option("minilm", "--encoder", help="Text encoder for --similar/--vectors: minilm, clip."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Local encoder weights (needed for clip; another sentence-transformers folder "
        "for minilm)."),
    similar: int = typer.Option(0, "--similar", min=0, help="List the N nearest other vocabulary entries."),
    vectors: bool = typer.Option(False, "--vectors", help="Put each class's embedding vector in the JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Print each benchmark class with its unified vocabulary entry and the prompt that gets embedded."""
    if json_path is not None:  # before any embedding is computed
        check_output_file(json_path, reads=[checkpoint] if checkpoint else [], overwrite=overwrite)
    report = vocab_report(select_datasets(dataset), encoder=encoder, checkpoint=checkpoint, similar=similar,
                          vectors=vectors)
    Console().print(_table(report))
    if json_path is not None:
        _write_json(json_path, report)
        Console(stderr=True).print(f"wrote {json_path}")


def _table(report: dict[str, Any]) -> Table:
    enc = report["encoder"]
    title = f"Unified vocabulary ({len(report['vocabulary'])} entries)"
    table = Table(title=title, caption=f"encoder: {enc['identity']} ({enc['dim']}-d)" if enc else None)
    for column in ("dataset", "index", "benchmark class", "unified entry", "prompt"):
        table.add_column(column, justify="right" if column == "index" else "left", no_wrap=True)
    with_similar = any("similar" in row for ds in report["datasets"] for row in ds["classes"])
    if with_similar:
        table.add_column("nearest other entries (cosine)")
    for ds in report["datasets"]:
        for row in ds["classes"]:
            cells = [ds["dataset"], str(row["index"]), row["name"], row["entry"], row["prompt"]]
            if with_similar:
                cells.append(", ".join(f"{s['entry']} {s['cosine']:.2f}" for s in row["similar"]))
            table.add_row(*cells)
        table.add_section()
    return table


def _write_json(path: Path, report: dict[str, Any]) -> None:
    write_json_atomic(path, report)
