"""`pmoe predict`: label any point cloud with a trained checkpoint, with any class names you type."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pmoe_cli.progress import ProgressBar

HELP = (
    "Label every point of your own point clouds with a trained checkpoint.\n\n"
    "INPUT: a .ply/.las/.laz/.npy/.npz/.bin file, a folder of them, STORE::split or STORE::split::scene. "
    "No labels needed.\n\n"
    "Classes: --classes \"chair, table, floor, potted plant\" (any names: the language head scores points against "
    "their text embeddings; names the checkpoint never trained on are zero-shot and listed as such), "
    "--classes-file FILE (one name per line), or --label-set DATASET|union (a benchmark's classes, or the union "
    "vocabulary of all seven: the default).\n\n"
    "Scoring is eval's: covering grid fragments, softmax summed onto every original point (confidence = the chosen "
    "class's mean probability). Clouds larger than --tile-points are scored in xy tiles with context, in bounded "
    "memory. The recipe follows the cloud's fields (colour: indoor; LiDAR strength without colour: outdoor); "
    "--domain and --grid override.\n\n"
    "Writes per input to OUT: KEY.labels.npy (int32), KEY.confidence.npy (float32), a labelled copy "
    "(KEY.pred.ply with scalar_class/scalar_confidence and the class names as header comments; KEY.pred.las/.laz "
    "for LAS input: classification = class + 1, extra bytes class and confidence) and KEY.report.json."
)


def predict(
    checkpoint: str = typer.Argument(..., help="Checkpoint file (ckpt.pt of a `pmoe train` run)."),
    inputs: list[str] = typer.Argument(..., help="Point-cloud files, folders of them, or STORE::split[::scene]."),
    out: Path = typer.Option(..., "--out", help="Folder for the labelled clouds, arrays and reports."),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated class names (any names)."),
    classes_file: Path | None = typer.Option(None, "--classes-file", help="File with one class name per line."),
    label_set: str | None = typer.Option(None, "--label-set",
                                         help="A dataset's classes (scannet, kitti, ...) or union (the default)."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset the file inputs come from (sets the "
                                                               "domain; needed only by the PPT baseline)."),
    domain: str | None = typer.Option(None, "--domain", help="indoor or outdoor recipe (default: from the fields)."),
    grid: float | None = typer.Option(None, "--grid", help="Voxel size in metres (default: the checkpoint's)."),
    tta: int = typer.Option(1, "--tta", min=1, help="Test-time augmentation passes summed per point."),
    tile_points: int = typer.Option(400_000, "--tile-points", min=2,
                                    help="Clouds with more points are scored in xy tiles of about this many."),
    chunk_points: int = typer.Option(131_072, "--chunk-points", min=1, help="Most points per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda, cuda:1, ..."),
    text_weights: str | None = typer.Option(None, "--text-weights", help="Local text-encoder weights (clip)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that exist."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's)."),
) -> None:
    from pmoe_core.engine.predict import PredictOptions
    from pmoe_core.engine.predict_files import PredictConfig, run_predict
    from pmoe_core.engine.predict_labels import parse_class_names, read_class_file
    from pmoe_core.errors import BadInput
    from pmoe_core.inspect.scenes import resolve_specs

    if threads:
        import torch

        torch.set_num_threads(threads)
    if classes is not None and classes_file is not None:
        raise BadInput("give --classes or --classes-file, not both")
    names = parse_class_names(classes) if classes is not None else (
        read_class_file(classes_file) if classes_file is not None else None)
    if names is not None and label_set is not None:
        raise BadInput("give either --label-set or --classes/--classes-file, not both")
    options = PredictOptions(domain=domain, grid=grid, tta=tta, chunk_points=chunk_points, tile_points=tile_points)
    options.check()
    config = PredictConfig(str(checkpoint), tuple(inputs), str(out), label_set=label_set,
                           classes=tuple(names) if names else None, options=options, overwrite=overwrite,
                           text_weights=text_weights, device=device)
    refs = resolve_specs(inputs, dataset)
    bars: list[ProgressBar] = []

    def progress_for(source: str) -> ProgressBar:
        if bars:
            bars[-1].stop()
        bars.append(ProgressBar(_short(source), unit="points"))
        return bars[-1]

    def warn(line: str) -> None:
        if bars:
            bars[-1].say(f"pmoe: warning: {line}")
        else:
            print(f"pmoe: warning: {line}", file=sys.stderr, flush=True)

    try:
        results = run_predict(config, refs, progress_for, warn)
    finally:
        if bars:
            bars[-1].stop()
    Console().print(summary_table(results))
    untrained = results[0].prediction.untrained if results else ()
    if untrained:
        typer.echo(f"never trained on (zero-shot): {', '.join(untrained)}")
    for r in results:
        typer.echo(f"{r.source} -> {r.outputs.cloud}")
    typer.echo(f"wrote {len(results)} labelled cloud{'s' if len(results) != 1 else ''}, arrays and reports to {out}")


predict.__doc__ = HELP


def _short(source: str, width: int = 32) -> str:
    url, sep, rest = source.partition("::")
    name = Path(url.rstrip("/")).name + sep + rest
    return name if len(name) <= width else "..." + name[-(width - 3):]


def summary_table(results) -> Table:
    table = Table(title="predictions")
    for col in ("input", "points", "domain", "tiles", "most points", "mean conf.", "seconds"):
        table.add_column(col, justify="left" if col in ("input", "domain", "most points") else "right")
    for r in results:
        pred = r.prediction
        counts = pred.counts()
        top = counts.argsort()[::-1][:3]
        most = ", ".join(f"{pred.classes[k]} {100 * counts[k] / r.points:.0f}%" for k in top if counts[k])
        table.add_row(_short(r.source), f"{r.points:,}", pred.domain, str(pred.tiles), most,
                      f"{pred.confidence.mean():.2f}", f"{pred.seconds:.1f}")
    return table
