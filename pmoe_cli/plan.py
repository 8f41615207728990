"""`pmoe plan`: 3D-language tabletop planning.

- `pmoe plan --scene S.ply --instruction "..."`: plan pick/place poses with a trained 3D-MoE planner (the packaged
  default unless --checkpoint), print them, optionally write JSON and execute them in MuJoCo (--simulate).
- `pmoe plan train`: train a planner (Stage I alignment, Stage II poses) on oracle demonstrations.
- `pmoe plan scene` / `pmoe plan bench`: task scenes and success-rate benchmarks (oracle, random, model).

Every command needs the `planner` extra (MuJoCo, peft, gguf). Its modules are imported when a command runs, never
when the app is built, so that `pmoe --help` and every other command work on a core install; a command run without
the extra stops with one line naming it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pmoe_cli import plan_train
from pmoe_core.errors import BadInput
from pmoe_core.io import read_point_cloud
from pmoe_core.jsonio import write_json_atomic
from pmoe_core.outputs import check_output_file
from pmoe_core.tabletop.oracle import Step
from pmoe_core.tabletop.phrasing import PHRASINGS, check_phrasing
from pmoe_core.tabletop.scene_io import save_episode, sidecar_path
from pmoe_core.tabletop.tasks import TASKS, make_scene
from pmoe_core.tabletop.world import SceneDesc

# The planner model pulls in torch and transformers, the world MuJoCo: imported inside the commands that need them.
BENCH_POLICIES = ("oracle", "random", "model")  # = pmoe_core.tabletop.episodes.POLICIES + the model
PLANNER_EXTRA = ("mujoco", "peft", "gguf")  # = pyproject.toml [project.optional-dependencies] planner


def require_planner_extra(command: str = "pmoe plan") -> None:
    """Stop with one line naming the extra when a module of it cannot be imported (a core install has none)."""
    missing = []
    for module in PLANNER_EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise BadInput(f"`{command}` needs the planner extra: pip install 'pmoe[planner]' "
                       f"({', '.join(missing)} not installed)")

plan_app = typer.Typer(
    name="plan",
    help="3D-language tabletop planning: plan poses with the 3D-MoE model, train it, task scenes, benchmarks.",
    invoke_without_command=True,
    add_completion=False,
)

TASK_HELP = "task family: " + ", ".join(TASKS)
PHRASING_HELP = "how instructions are worded: " + ", ".join(PHRASINGS) + " (docs/planner-world.md)"
plan_app.command("train")(plan_train.train)


@plan_app.callback(invoke_without_command=True)
def _plan(
    ctx: typer.Context,
    scene_path: Path = typer.Option(None, "--scene", help="point cloud to plan on (PLY with red/green/blue)"),
    instruction: str = typer.Option(
        None, "--instruction", help='what to do, e.g. "stack all the blocks on the red block"'
    ),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="planner checkpoint (default: the packaged one)"),
    json_out: Path = typer.Option(None, "--json", help="also write the plan as JSON here (schema plan_output)"),
    simulate: bool = typer.Option(False, "--simulate", help="execute the plan in MuJoCo on the scene's .json sidecar"),
    euler_steps: int = typer.Option(None, "--euler-steps", help="rectified-flow Euler steps (default: the model's, 4)"),
    seed: int = typer.Option(0, "--seed", help="seed of the point subsample and the flow noise"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file"),
) -> None:
    """3D-language tabletop planning: `pmoe plan --scene S.ply --instruction "..."` plans pick/place poses."""
    if ctx.invoked_subcommand is not None:
        if scene_path is not None or instruction is not None:
            raise BadInput("--scene/--instruction plan on their own; do not combine them with a subcommand")
        return
    if scene_path is None and instruction is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    if scene_path is None or instruction is None:
        raise BadInput("planning needs both --scene and --instruction")
    run_plan(scene_path, instruction, checkpoint, json_out, simulate, euler_steps, seed, overwrite)


def run_plan(scene_path: Path, instruction: str, checkpoint: Path | None, json_out: Path | None, simulate: bool,
             euler_steps: int | None, seed: int, overwrite: bool = False) -> None:
    """Check the inputs, plan, print; refusals (pmoe_core/planner/checks.py) stop before the planner loads."""
    require_planner_extra()
    from pmoe_core.tabletop.metric import score
    from pmoe_core.tabletop.sim import execute

    console = Console()
    if json_out is not None:
        check_output_file(json_out, reads=[scene_path], overwrite=overwrite)
    desc = SceneDesc.load(sidecar_path(scene_path)) if simulate else None  # fail before the slow load
    cloud = read_point_cloud(scene_path)
    from pmoe_core.planner.checks import check_input  # torch: load lazily

    checked = check_input(cloud, instruction, seed)
    checked.raise_refusal(scene_path)
    for problem in checked.warnings:
        _warn(f"{scene_path}: {problem.message}")
    goal_note = simulated_goal_note(desc, instruction, checked) if desc is not None else None
    if goal_note is not None:
        _warn(goal_note)
    from pmoe_core.planner.policy import (
        cloud_input,
        load_planner,
        plan_cloud,
        plan_output,
    )

    planner = load_planner(checkpoint)
    points = cloud_input(cloud, planner.model.config, seed, scene_path)
    steps, timings = plan_cloud(planner, points, instruction, euler_steps, seed)
    console.print(_steps_table(steps, f"plan for {instruction!r} ({scene_path.name})"))
    console.print(f"stages: load {timings.load_s:.2f} s, encode {timings.encode_s:.3f} s, LLM {timings.llm_s:.3f} s, "
                  f"DiT {timings.dit_s:.3f} s", highlight=False)
    simulation = None
    if desc is not None:
        rollout = execute(desc, steps)
        result = score(desc, rollout.poses, rollout.stable)
        simulation = {"reward": result.reward, "success": result.success, "stable": result.stable,
                      "matched": result.matched, "goal_instruction": desc.instruction,
                      "instruction_differs": goal_note is not None}
        console.print(f"simulated: reward {result.reward:.2f}, success {'yes' if result.success else 'no'}, "
                      f"stable {'yes' if result.stable else 'no'} (task {desc.task}, seed {desc.seed})",
                      highlight=False)
    if json_out is not None:
        used = euler_steps or planner.model.config.flow.euler_steps
        report = plan_output(scene_path, instruction, planner.path, used, seed, steps, timings, simulation)
        report["checks"] = {
            "task": checked.task.task, "similarity": round(checked.task.similarity, 4), "words": checked.words,
            "object_colors": [list(c) for c in checked.object_colors],
            "warnings": [{"check": p.check, "message": p.message} for p in checked.warnings],
        }
        write_json_atomic(json_out, report, indent=1)
        console.print(f"wrote {json_out}")


def _warn(line: str) -> None:
    print(f"pmoe: warning: {line}", file=sys.stderr, flush=True)


def simulated_goal_note(desc: SceneDesc, instruction: str, checked) -> str | None:
    """One line when `--simulate` will score a goal other than the one the instruction asks for, else None.

    `--simulate` always scores the scene file's goals (they are the only goals there are). Instructions that differ
    only in case, punctuation or spacing are the same; otherwise the instruction is compared with the scene file's by
    the task the input check matched and the words it names (colour, position): a paraphrase asking the same thing
    gets no note, one asking something else is told which goal is scored.
    """
    from pmoe_core.planner.checks import match_task, named_words
    from pmoe_core.tabletop.phrasing import normalise

    if normalise(instruction) == normalise(desc.instruction):
        return None
    scene_task = match_task(desc.instruction).task
    scene_words = desc.words or named_words(desc.instruction)
    same_task = checked.task.task in (desc.task, scene_task)
    if same_task and checked.words == scene_words:
        return None
    asked = ", ".join([checked.task.task, *checked.words.values()])
    goal = ", ".join([desc.task, *scene_words.values()])
    return (f"--simulate scores the scene file's goal ({desc.instruction!r}: {goal}), not this instruction's "
            f"(matched {asked})")


def _steps_table(steps: list[Step], title: str) -> Table:
    table = Table(title=title)
    for column in ("step", "pick x, y, z (m)", "pick yaw", "place x, y, z (m)", "place yaw"):
        table.add_column(column, justify="right")
    for i, s in enumerate(steps):
        table.add_row(str(i + 1), _xyz(s.pick.position), f"{_deg(s.pick.yaw):.0f}°", _xyz(s.place.position),
                      f"{_deg(s.place.yaw):.0f}°")
    return table


def _xyz(p) -> str:
    return ", ".join(f"{v:.3f}" for v in p)


def _deg(radians: float) -> float:
    return radians * 180.0 / 3.141592653589793


@plan_app.command("scene")
def scene(
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    seed: int = typer.Option(0, "--seed", help="episode seed (same seed, same scene)"),
    out: Path = typer.Option(..., "--out", help="PLY to write; the scene description goes beside it as .json"),
    split: str = typer.Option("seen", "--split", help="colour split: seen or unseen (CLIPort)"),
    phrasing: str = typer.Option("template", "--phrasing", help=PHRASING_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out PLY and its .json"),
) -> None:
    """Generate a task scene and write what three cameras see (PLY + JSON sidecar)."""
    for path in (out, sidecar_path(out)):
        check_output_file(path, overwrite=overwrite)
    require_planner_extra()
    from pmoe_core.tabletop.observe import observe

    desc = make_scene(task, seed, split, phrasing)
    cloud = observe(desc)
    ply, sidecar = save_episode(cloud, desc, out)
    typer.echo(f"{desc.task} seed {desc.seed}: {desc.instruction!r}")
    typer.echo(f"wrote {ply} ({len(cloud)} points, {len(desc.objects)} objects) and {sidecar}")


@plan_app.command("bench")
def bench(
    task: str = typer.Option("all", "--task", help=TASK_HELP + ", or all"),
    episodes: int = typer.Option(100, "--episodes", help="episodes per task"),
    policy: str = typer.Option("oracle", "--policy", help="policy: " + ", ".join(BENCH_POLICIES)),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", help="with --policy model: planner checkpoint (default: packaged)"
    ),
    euler_steps: int = typer.Option(None, "--euler-steps", help="with --policy model: rectified-flow Euler steps"),
    seed: int = typer.Option(0, "--seed", help="first episode seed"),
    split: str = typer.Option("seen", "--split", help="colour split: seen or unseen"),
    phrasing: str = typer.Option("template", "--phrasing", help=PHRASING_HELP),
    json_out: Path = typer.Option(None, "--json", help="also write the results as JSON here"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file"),
) -> None:
    """Success rate and mean score per task for a policy executed in MuJoCo."""
    check_phrasing(phrasing)
    if json_out is not None:
        check_output_file(json_out, overwrite=overwrite)
    require_planner_extra()
    from pmoe_core.tabletop.episodes import bench_report, run_bench

    policy_fn = None
    if policy == "model":
        from pmoe_core.planner.policy import ModelPolicy, load_planner

        policy_fn = ModelPolicy(load_planner(checkpoint), euler_steps)
    elif checkpoint is not None or euler_steps is not None:
        raise BadInput("--checkpoint and --euler-steps apply to --policy model only")
    console = Console()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as bar:
        job = bar.add_task("episodes", total=None)

        def progress(*, total=None, advance=0, message=None):
            bar.update(job, total=total if total is not None else bar.tasks[job].total, advance=advance,
                       description=message or "episodes")

        results = run_bench([task], episodes, policy, seed, split, progress, policy_fn, phrasing)
    table = Table(title=f"pmoe plan bench: policy {policy}, split {split}, {phrasing} phrasings, "
                        f"seeds {seed}..{seed + episodes - 1}")
    for column in ("task", "episodes", "success", "score", "episodes/s"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for r in results:
        table.add_row(r.task, str(r.episodes), f"{100 * r.success_rate:.1f}%", f"{r.score:.1f}",
                      f"{r.episodes_per_s:.1f}")
    console.print(table)
    if json_out is not None:
        write_json_atomic(json_out, bench_report(results, policy, seed, split, phrasing), indent=1)
        console.print(f"wrote {json_out}")
