"""`pmoe plan`: tabletop planning worlds (scenes, oracle/random benchmarks); model-based planning grows here."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pmoe_core.planner.episodes import POLICIES, bench_report, run_bench
from pmoe_core.planner.observe import observe
from pmoe_core.planner.scene_io import save_episode
from pmoe_core.planner.tasks import TASKS, make_scene

plan_app = typer.Typer(
    name="plan",
    help="3D-language tabletop planning: task scenes, oracle/random benchmarks in MuJoCo.",
    invoke_without_command=True,
    add_completion=False,
)

TASK_HELP = "task family: " + ", ".join(TASKS)


@plan_app.callback(invoke_without_command=True)
def _plan(ctx: typer.Context) -> None:
    """3D-language tabletop planning: task scenes, oracle/random benchmarks in MuJoCo."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


@plan_app.command("scene")
def scene(
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    seed: int = typer.Option(0, "--seed", help="episode seed (same seed, same scene)"),
    out: Path = typer.Option(..., "--out", help="PLY to write; the scene description goes beside it as .json"),
    split: str = typer.Option("seen", "--split", help="colour split: seen or unseen (CLIPort)"),
) -> None:
    """Generate a task scene and write what three cameras see (PLY + JSON sidecar)."""
    desc = make_scene(task, seed, split)
    cloud = observe(desc)
    ply, sidecar = save_episode(cloud, desc, out)
    typer.echo(f"{desc.task} seed {desc.seed}: {desc.instruction!r}")
    typer.echo(f"wrote {ply} ({len(cloud)} points, {len(desc.objects)} objects) and {sidecar}")


@plan_app.command("bench")
def bench(
    task: str = typer.Option("all", "--task", help=TASK_HELP + ", or all"),
    episodes: int = typer.Option(100, "--episodes", help="episodes per task"),
    policy: str = typer.Option("oracle", "--policy", help="policy: " + ", ".join(POLICIES)),
    seed: int = typer.Option(0, "--seed", help="first episode seed"),
    split: str = typer.Option("seen", "--split", help="colour split: seen or unseen"),
    json_out: Path = typer.Option(None, "--json", help="also write the results as JSON here"),
) -> None:
    """Success rate and mean score per task for a policy executed in MuJoCo."""
    console = Console()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as bar:
        job = bar.add_task("episodes", total=None)

        def progress(*, total=None, advance=0, message=None):
            bar.update(job, total=total if total is not None else bar.tasks[job].total, advance=advance,
                       description=message or "episodes")

        results = run_bench([task], episodes, policy, seed, split, progress)
    table = Table(title=f"pmoe plan bench: policy {policy}, split {split}, seeds {seed}..{seed + episodes - 1}")
    for column in ("task", "episodes", "success", "score", "episodes/s"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for r in results:
        table.add_row(r.task, str(r.episodes), f"{100 * r.success_rate:.1f}%", f"{r.score:.1f}",
                      f"{r.episodes_per_s:.1f}")
    console.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(bench_report(results, policy, seed, split), indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {json_out}")
