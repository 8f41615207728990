"""`pmoe convert DATASET RAW OUT`: raw dataset -> OUT/<dataset>.zarr scene store (resumable, parallel, shardable)."""

from __future__ import annotations

from pathlib import Path

import typer

from pmoe_cli.progress import ProgressBar
from pmoe_core.convert import ConvertSummary, build_options, convert as run_convert, parse_shard
from pmoe_core.errors import one_line
from pmoe_core.store.layout import is_url, local_or_url

HELP = """Convert the raw dataset under RAW into the scene store OUT/<dataset>.zarr.

Scenes already in the store are skipped, so running the same command again resumes an interrupted run.
A scene whose files are unreadable is skipped with a warning naming the file (--strict: stop instead).
OUT must not be RAW or lie inside it.
--limit N keeps the first N scenes of each split (sorted by name).

\b
Sharding over a Slurm job array (each task writes OUT/<dataset>.shard-K-of-N.zarr; K is 0-based):
    #SBATCH --array=0-7
    #SBATCH --cpus-per-task=8
    pmoe convert scannet RAW OUT --shard $SLURM_ARRAY_TASK_ID/8 --workers 8
The training loader reads the shard stores of a dataset as one store.
"""


def convert(
    dataset: str = typer.Argument(..., help="Dataset name or alias: scannet, s3dis, structured3d, matterport3d, "
                                  "nuscenes, semantickitti, waymo (kitti, nus, s3d, mp3d, ...); or pointcept (Pointcept's "
                                  "preprocessed folders, with --dataset) or custom (your own dataset, with --spec)."),
    raw: str = typer.Argument(..., help="Raw dataset root folder."),
    out: str = typer.Argument(..., help="Output folder (or fsspec URL); the store is OUT/<dataset>.zarr."),
    split: list[str] = typer.Option(None, "--split", help="Only this split (train, val, test); repeatable."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most N scenes of each split."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Reader processes (default: all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing store first instead of resuming."),
    text_encoder: str = typer.Option("minilm", "--text-encoder",
                                     help="Class-name text encoder: minilm (offline default) or clip (needs --text-weights)."),
    text_weights: str | None = typer.Option(None, "--text-weights",
                                            help="Local weights of the text encoder (an open_clip checkpoint for clip)."),
    shard: str | None = typer.Option(None, "--shard", help="K/N: convert every N-th scene from K (0-based)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first unreadable scene instead of skipping."),
    option: list[str] = typer.Option(None, "-O", "--option", help="Reader option KEY=VALUE; repeatable."),
    pointcept_dataset: str | None = typer.Option(None, "--dataset", help="With DATASET=pointcept: which dataset the "
                                                 "folders hold (scannet, s3dis, structured3d, matterport3d, waymo)."),
    spec: str | None = typer.Option(None, "--spec", help="With DATASET=custom: the dataset spec file (TOML or JSON; "
                                    "docs/custom-dataset.md)."),
) -> None:
    bar = ProgressBar(f"converting {dataset}", unit="scenes")
    options = build_options(dataset, layout_options(dataset, pointcept_dataset, spec) + (option or []))

    def warn(message: str) -> None:
        bar.say(f"warning: {message}")

    fresh_out = _missing_local_folder(out)
    try:
        summary = run_convert(
            dataset, raw, out, options=options, splits=split or None, limit=limit, workers=workers,
            overwrite=overwrite, shard=parse_shard(shard) if shard else None, text_encoder=text_encoder, text_checkpoint=text_weights,
            strict=strict, progress=bar, warn=warn,
        )
    except BaseException:
        _remove_if_empty(fresh_out)  # the store writer already removed a store it created and never committed to
        raise
    finally:
        bar.stop()
    _print_summary(summary)


convert.__doc__ = HELP


def layout_options(dataset: str, pointcept_dataset: str | None, spec: str | None) -> list[str]:
    """--dataset / --spec as the reader options of the pointcept / custom layouts (refused elsewhere)."""
    layout = dataset.strip().lower()
    if pointcept_dataset is not None and layout != "pointcept":
        raise typer.BadParameter("--dataset is for `pmoe convert pointcept DIR OUT --dataset NAME`")
    if spec is not None and layout != "custom":
        raise typer.BadParameter("--spec is for `pmoe convert custom --spec SPEC RAW OUT`")
    if layout == "pointcept" and pointcept_dataset is not None:
        return [f"dataset={pointcept_dataset}"]
    if layout == "custom" and spec is not None:
        return [f"spec={spec}"]
    return []


def _missing_local_folder(out: str) -> Path | None:
    """OUT when it is a local folder that does not exist yet (this run creates it), else None."""
    path = Path(local_or_url(out))
    return None if is_url(out) or path.exists() else path


def _remove_if_empty(folder: Path | None) -> None:
    """A failed run leaves no empty OUT it made; anything inside (another store, a resumable one) keeps it."""
    if folder is not None:
        try:
            folder.rmdir()
        except OSError:
            pass


def _print_summary(s: ConvertSummary) -> None:
    typer.echo(
        f"{one_line(s.store)}: wrote {s.written} scene{'' if s.written == 1 else 's'} ({s.points:,} points), {s.already_present} already present, "
        f"{len(s.skipped)} skipped, {len(s.warnings)} warnings, {s.seconds:.1f} s"
    )
    for skipped in s.skipped:
        typer.echo(f"  skipped {skipped.name} ({skipped.split}): {skipped.reason}")
