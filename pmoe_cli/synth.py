"""`pmoe synth DATASET OUT`: write a small synthetic raw dataset in the dataset's real on-disk format."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import typer

from pmoe_core.errors import BadInput
from pmoe_core.sources.synthetic_indoor import write_matterport3d, write_s3dis, write_scannet, write_structured3d
from pmoe_core.sources.synthetic_outdoor import write_nuscenes, write_semantickitti, write_waymo
from pmoe_core.vocab.label_spaces import resolve_dataset

WAYMO_FORMATS = ("v2", "v1")
# Dataset -> writer(out, scenes=, seed=) returning {scene name: ground-truth Scene}. One line per dataset.
WRITERS: dict[str, Callable[..., dict]] = {
    "scannet": write_scannet,
    "s3dis": write_s3dis,
    "structured3d": write_structured3d,
    "matterport3d": write_matterport3d,
    "semantickitti": write_semantickitti,
    "nuscenes": write_nuscenes,
    "waymo": write_waymo,
}


def synth(
    dataset: str = typer.Argument(..., help="Dataset name or alias (scannet, s3dis, structured3d, matterport3d, ...)."),
    out: Path = typer.Argument(..., help="Folder to write the raw dataset into (created if missing)."),
    scenes: int = typer.Option(3, "--scenes", min=1, help="Number of scenes (rooms / regions) to write."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes the same bytes."),
    fmt: str | None = typer.Option(None, "--format",
                                   help="waymo only: v2 (parquet components, default) or v1 (TFRecords)."),
) -> None:
    """Write a synthetic raw dataset (deterministic, small) that `pmoe convert DATASET OUT ...` reads."""
    name = resolve_dataset(dataset)
    if name not in WRITERS:
        raise BadInput(f"no synthetic writer for {name!r} (have: {', '.join(WRITERS)})")
    options = _format_option(name, fmt)
    truth = WRITERS[name](out, scenes=scenes, seed=seed, **options)
    points = sum(len(scene) for scene in truth.values())
    typer.echo(f"wrote synthetic {name}: {len(truth)} scenes, {points} points -> {out}")


def _format_option(name: str, fmt: str | None) -> dict[str, str]:
    """Waymo ships in two raw formats (v2 parquet, v1 TFRecords) and the converter reads both; the other datasets
    have one, so --format is refused for them rather than ignored."""
    if fmt is None:
        return {}
    if name != "waymo":
        raise BadInput(f"--format applies only to waymo (v1 or v2); {name} has one raw format")
    if fmt not in WAYMO_FORMATS:
        raise BadInput(f"--format must be {' or '.join(WAYMO_FORMATS)}, got {fmt!r}")
    return {"fmt": fmt}
