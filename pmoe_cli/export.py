"""`pmoe export STORE --split S [--scene NAME] --format ply|las|h5 OUT`: scenes out of a store for other tools."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path

import numpy as np
import typer

from pmoe_core.errors import BadInput
from pmoe_core.io import write_las, write_ply
from pmoe_core.outputs import atomic_path, check_output_file
from pmoe_core.store import StoreReader


class ExportFormat(str, Enum):
    ply = "ply"
    las = "las"
    h5 = "h5"


def export(
    store: str = typer.Argument(..., help="Scene store path or URL (OUT/<dataset>.zarr)."),
    out: Path = typer.Argument(..., help="Output file (never inside the store; an existing file needs --overwrite)."),
    split: str = typer.Option(..., "--split", help="Split to read (train, val, test)."),
    scene: str | None = typer.Option(None, "--scene", help="Scene name or index (required for ply/las)."),
    format: ExportFormat = typer.Option(ExportFormat.ply, "--format", help="ply (labels as scalar 'label'), "
                                        "las (labels as classification+1 and extra dims), h5 (whole split)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Export one scene as PLY/LAS (colours kept, labels as scalar fields) or a whole split as HDF5."""
    if format is not ExportFormat.h5 and scene is None:
        raise BadInput(f"--scene is required for --format {format.value} (h5 exports a whole split)")
    check_output_file(out, reads=[store], overwrite=overwrite, make_parents=True)
    reader = StoreReader(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format is ExportFormat.h5:
        with atomic_path(out) as tmp:
            count = export_h5(reader, split, tmp, only=scene)
        typer.echo(f"exported {count} scenes of {reader.dataset}/{split} -> {out}")
        return
    record = reader.read(split, int(scene) if scene.isdigit() else scene)
    writer: Callable = write_ply if format is ExportFormat.ply else write_las
    with atomic_path(out) as tmp:
        writer(record, tmp)
    typer.echo(f"exported {record.name} ({len(record)} points) -> {out}")


def export_h5(reader: StoreReader, split: str, out: Path, only: str | None = None) -> int:
    """One HDF5 group per scene (datasets named after Scene fields); file attributes name the label space."""
    import h5py

    keys = [int(only) if only.isdigit() else only] if only else range(len(reader.names(split)))
    with h5py.File(out, "w") as h5:
        h5.attrs["dataset"] = reader.dataset
        h5.attrs["split"] = split
        h5.attrs["class_names"] = np.array(reader.class_names, dtype=h5py.string_dtype())
        count = 0
        for key in keys:
            record = reader.read(split, key)
            group = h5.create_group(record.name)
            for field, values in record.arrays().items():
                group.create_dataset(field, data=values, compression="gzip", compression_opts=1)
            count += 1
    return count
