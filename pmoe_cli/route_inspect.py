"""`pmoe route-inspect CKPT SCENE...`: which experts every point goes to, per MoE layer, and how that relates to
classes and datasets. Options in, `pmoe_core.inspect.run.route_inspect` does the work, tables out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

HELP = """Inspect the routing of a Point-MoE checkpoint on one or more scenes.

SCENE is a point-cloud file (.ply/.las/.laz/.npy/.npz/.bin), STORE::split::scene (scene name or index) or
STORE::split (every scene of the split; --limit N keeps the first N). All scenes are aggregated.

\b
Writes into --out:
  report.json      per-layer statistics (schema routing_report)
  traces.h5        per point and layer: expert ids, weights, probs
  heatmap.png      token fraction per layer and expert
  entropy.png, margin.png, mi.png, affinity/*.png
  ply/SCENE/LAYER.ply   points coloured by top-1 expert
  legend.png, legend.json, features_pca.png (or _tsne)

\b
Example:
  pmoe route-inspect runs/pmoe/ckpt.pt data/scannet.zarr::val \\
      data/semantickitti.zarr::val --limit 4 --out route_inspect
"""


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _read_list(path: Path) -> list[str]:
    from pmoe_core.errors import MissingFile

    if not path.is_file():
        raise MissingFile("no such scene list file", path)
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def route_inspect(
    checkpoint: str = typer.Argument(..., metavar="CKPT", help="A Point-MoE checkpoint (pmoe train's ckpt.pt)."),
    scenes: Optional[list[str]] = typer.Argument(None, metavar="SCENE...", help="Files or STORE::split[::scene]."),
    scene_list: Optional[Path] = typer.Option(None, "--scenes", help="A text file of SCENE specs, one per line."),
    out: Path = typer.Option(Path("route_inspect"), "--out", help="Output folder."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Comma-separated layer names or indices for PLYs and "
                                         "affinity figures, or 'all' (default: first encoder, deepest, last decoder)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Scenes taken from each STORE::split."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset of file inputs (grid size, class names)."),
    grid: Optional[float] = typer.Option(None, "--grid", help="Grid size, m (default 0.02 indoor, 0.05 outdoor)."),
    knn: int = typer.Option(8, "--knn", help="Neighbours of the routing-consistency statistic."),
    max_queries: int = typer.Option(20000, "--max-queries", help="Consistency query tokens per scene."),
    embed: str = typer.Option("pca", "--embed", help="Feature projection: pca, tsne (scikit-learn) or none."),
    embed_points: int = typer.Option(2000, "--embed-points", help="Tokens per scene in the projection."),
    probs: bool = typer.Option(True, "--probs/--no-probs", help="Store full router probabilities in traces.h5."),
    plys: bool = typer.Option(True, "--ply/--no-ply", help="Write coloured point clouds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the consistency and projection subsamples."),
    device: str = typer.Option("cpu", "--device", help="Torch device: cpu, cuda, cuda:1, ... or auto."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Torch CPU threads."),
) -> None:
    """Which experts each point goes to, per MoE layer, and why (class / dataset / neighbourhood)."""
    from pmoe_core.inspect.run import RouteInspectConfig, route_inspect as run

    if threads:
        import torch

        torch.set_num_threads(threads)
    specs = list(scenes or []) + (_read_list(scene_list) if scene_list else [])
    cfg = RouteInspectConfig(
        checkpoint=checkpoint, scenes=tuple(specs), out=str(out),
        layers=tuple(x.strip() for x in layers.split(",") if x.strip()) if layers else None,
        limit=limit, dataset=dataset, grid=grid, knn=knn, max_queries=max_queries, embed=embed,
        embed_points=embed_points, probs=probs,
        plys=plys, seed=seed, device=device,
    )
    console = Console()
    err = Console(stderr=True)

    def progress(*, total: int | None = None, advance: int = 0, message: str | None = None) -> None:
        if advance and message:
            err.print(f"  {message}", highlight=False)

    result = run(cfg, progress)
    _print_summary(console, result)


def _print_summary(console: Console, result) -> None:
    scenes = result.scenes
    points = sum(s.points for s in scenes)
    console.print(f"route-inspect: {len(scenes)} scene(s), {points:,} points, datasets "
                  f"{', '.join(sorted({s.dataset for s in scenes}))}; {result.shape.num_experts} experts, "
                  f"top-{result.shape.top_k}, {len(result.layers)} MoE layers ({result.seconds:.1f} s)")
    names = _short_names([s.name for s in result.layers])
    health = Table(title="routing per MoE layer")
    for col in ("layer", "stage", "H/log2E", "p1-p2", "max/mean", "CV", "kNN disagree"):
        health.add_column(col, justify="left" if col in ("layer", "stage") else "right")
    for name, s in zip(names, result.layers):
        health.add_row(name, s.stage, _fmt(s.entropy_norm_mean), _fmt(s.prob_margin_mean),
                       _fmt(s.load_max_over_mean, 2), _fmt(s.load_cv, 2), _fmt(s.inconsistent_fraction))
    console.print(health)
    info = Table(title="MI(top-1 expert; Y) in bits, nMI = 2 MI / (H(expert) + H(Y)); '-' = fewer than 2 values")
    for col in ("layer", "MI(e;class)", "nMI", "MI(e;dataset)", "nMI", "MI(e;cls|ds)"):
        info.add_column(col, justify="left" if col == "layer" else "right")
    for name, s in zip(names, result.layers):
        info.add_row(name, _fmt(s.mi_class.bits if s.mi_class else None),
                     _fmt(s.mi_class.normalized if s.mi_class else None),
                     _fmt(s.mi_dataset.bits if s.mi_dataset else None),
                     _fmt(s.mi_dataset.normalized if s.mi_dataset else None), _fmt(s.mi_class_given_dataset_bits))
    console.print(info)
    fractions = Table(title="token fraction per expert (all top-k slots)")
    fractions.add_column("layer")
    for e in range(result.shape.num_experts):
        fractions.add_column(f"e{e}", justify="right")
    for name, s in zip(names, result.layers):
        fractions.add_row(name, *(f"{f:.3f}" for f in s.fractions))
    console.print(fractions)
    console.print(f"report: {result.out / result.files.report}  traces: {result.out / result.files.traces}  "
                  f"plots/PLYs in {result.out}/")


def _short_names(names: list[str]) -> list[str]:
    """Layer names without their shared suffix (".attn.proj"), to keep tables narrow."""
    tails = {n.split(".", 2)[-1] for n in names if n.count(".") >= 2}
    if len(tails) != 1:
        return names
    suffix = "." + tails.pop()
    return [n.removesuffix(suffix) for n in names]


route_inspect.__doc__ = HELP
