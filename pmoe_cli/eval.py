"""`pmoe eval`: split-level mIoU of a checkpoint on scene stores, as tables, a JSON report and confusion PNGs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pmoe_cli.progress import ProgressBar
from pmoe_core.engine.eval_report import EvalReport, write_report

HELP = (
    "Evaluate a `pmoe train` checkpoint on the scene stores in --data.\n\n"
    "Every scene is cut into covering grid fragments; the softmax scores of all fragments (and of all --tta views) "
    "are summed onto every original point, and the argmax enters one confusion matrix per dataset over the whole "
    "split. Absent classes follow each benchmark's official rule (SemanticKITTI: IoU 0; others: left out of the "
    "mean).\n\n"
    "--label-set own: each dataset's benchmark classes; a dataset the checkpoint never trained on is scored "
    "zero-shot through its class names.\n\n"
    "--label-set union: label-free, the union vocabulary of all seven datasets with the dataset unknown; a predicted "
    "entry outside the dataset's label space counts as wrong (the \"outside\" column).\n\n"
    "--tta N: N passes summed, pass k rotated by k*360/N degrees about z, odd passes also mirrored in x. "
    "--tta release: the Point-MoE release's 13 test views (0/90/180/270 degrees at scales 1, 0.95, 1.05, and a "
    "mirror of x and y)."
)


def eval_cmd(
    checkpoint: str = typer.Argument(..., help="Checkpoint file (ckpt.pt of a `pmoe train` run)."),
    data: str = typer.Option(..., "--data", help="Folder (or fsspec URL) holding the <dataset>.zarr stores."),
    datasets: str | None = typer.Option(None, "--datasets",
                                        help="Comma-separated datasets (aliases: kitti, nus, s3d, mp3d); "
                                             "default: the checkpoint's training datasets."),
    split: str = typer.Option("val", "--split", help="Split to evaluate."),
    label_set: str = typer.Option("own", "--label-set", help="own or union (label-free)."),
    tta: str = typer.Option("1", "--tta", help="Test-time augmentation: N passes summed per scene (1 = none), "
                                               "or 'release' (the release's 13 views)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many scenes per dataset."),
    out: Path | None = typer.Option(None, "--out", help="Folder for confusion_<dataset>.png and eval_report.json."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
    per_class: bool = typer.Option(False, "--per-class", help="Also print per-class IoU tables."),
    batch_scenes: int = typer.Option(1, "--batch-scenes", min=1, help="Scenes scored together (their fragments "
                                                                      "share forward passes)."),
    chunk_points: int = typer.Option(131_072, "--chunk-points", min=1,
                                     help="Most points per forward pass (a memory bound; fragments of a dense "
                                          "scene are scored in several passes)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda, cuda:1, ..."),
    text_weights: str | None = typer.Option(None, "--text-weights",
                                            help="Local text-encoder weights for --label-set union (needed for clip)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's)."),
    save_pred: Path | None = typer.Option(None, "--save-pred",
                                          help="Folder for every scene's predicted classes (.npy) and the ScanNet, "
                                               "SemanticKITTI and nuScenes-lidarseg submission files "
                                               "(see docs/commands/eval.md)."),
) -> None:
    from pmoe_core.outputs import check_output_dir, check_output_file

    # outputs are checked before torch is even imported: a bad --out or --json must not cost an evaluation
    if out is not None:
        check_output_dir(out, reads=[data, checkpoint])
        check_output_file(out / "eval_report.json", overwrite=True, make_parents=True)
    if json_path is not None:
        check_output_file(json_path, reads=[data, checkpoint], overwrite=overwrite)

    from pmoe_core.engine.confusion_plot import save_confusion_png
    from pmoe_core.engine.evaluate import evaluate
    from pmoe_core.engine.tta import tta_views

    tta_views(tta)  # a bad --tta is refused before the checkpoint is loaded

    if threads:
        import torch

        torch.set_num_threads(threads)
    writer = None
    if save_pred is not None:
        from pmoe_core.engine.submission import PredictionWriter
        from pmoe_core.outputs import check_output_dir

        writer = PredictionWriter(check_output_dir(save_pred, reads=[data, checkpoint]))
    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    bar = ProgressBar("evaluating", unit="scenes")
    try:
        report = evaluate(checkpoint, data, names, split=split, label_set=label_set, tta=tta, limit=limit,
                          progress=bar, batch_scenes=batch_scenes, device=device, text_weights=text_weights,
                          chunk_points=chunk_points, predictions=writer)
    finally:
        bar.stop()
    console = Console()
    console.print(summary_table(report))
    if per_class:
        for table in class_tables(report):
            console.print(table)
    if out is not None:
        for result in report.results:
            save_confusion_png(result, out / f"confusion_{result.dataset}.png")
        write_report(report, out / "eval_report.json")
        typer.echo(f"wrote {len(report.results)} confusion matrices and eval_report.json to {out}")
    if writer is not None:
        saved = writer.finish(report.trained_on)
        files = sum(saved.submission_files.values())
        typer.echo(f"wrote predictions of {sum(saved.scenes.values())} scenes"
                   + (f" and {files} submission files" if files else "") + f" to {save_pred}")
    if json_path is not None:
        write_report(report, json_path)
        typer.echo(f"wrote {json_path}")


eval_cmd.__doc__ = HELP


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def summary_table(report: EvalReport) -> Table:
    mode = "own label spaces" if report.label_set == "own" else "label-free (union vocabulary)"
    extras = f", tta {report.tta}" if report.tta > 1 else ""
    extras += ", dataset id given (PPT)" if report.dataset_id_given else ""
    table = Table(title=f"{report.preset} step {report.step} on {report.split}: {mode}{extras}")
    for col in ("dataset", "zero-shot", "mIoU", "mAcc", "allAcc", "scenes", "points"):
        table.add_column(col, justify="left" if col in ("dataset", "zero-shot") else "right")
    if report.label_set == "union":
        table.add_column("outside", justify="right")
    for r in report.results:
        row = [r.dataset, "yes" if r.zero_shot else "no", _pct(r.miou), _pct(r.macc), _pct(r.all_acc),
               str(r.scenes), f"{r.points:,}"]
        if r.outside_points is not None:
            row.append(_pct(r.outside_points / r.labelled_points) if r.labelled_points else "-")
        table.add_row(*row)
    return table


def class_tables(report: EvalReport) -> list[Table]:
    tables = []
    for r in report.results:
        table = Table(title=f"{r.dataset} per class (absent classes: {r.absent_policy})")
        for col in ("class", "entry", "IoU", "Acc", "points"):
            table.add_column(col, justify="left" if col in ("class", "entry") else "right")
        for c in r.classes:
            table.add_row(c.name, c.entry, _pct(c.iou), _pct(c.acc), f"{c.support:,}")
        tables.append(table)
    return tables
