"""`pmoe demo`: the whole pipeline on synthetic data in the real raw formats, as the commands a user would type.

Each step runs a real `pmoe` command in this process and echoes it first, so the demo doubles as a walk-through
that can be copied line by line. No science lives here.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from pmoe_core.errors import BadInput, PmoeError
from pmoe_core.tabletop.tasks import make_scene

TRAIN_DATASETS = ("scannet", "s3dis", "structured3d", "nuscenes", "semantickitti")  # the paper's joint set
ZERO_SHOT = ("matterport3d", "waymo")  # never trained on: evaluated through their class names only
PLAN_TASK = "stack-blocks"
PREDICT_SCENE = ("matterport3d", "val", "0")  # a zero-shot dataset: the model never saw a Matterport3D scene
PREDICT_CLASSES = "wall, floor, ceiling, chair, table, potted plant, reading lamp"  # the last two: in no benchmark
REPORT_KINDS = (".json", ".png", ".ply", ".h5", ".npy")  # what the final summary counts in each output folder


@dataclass
class Step:
    title: str
    args: list[str]
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _command(args: list[str]) -> str:
    """The step as a line a user can paste into a shell."""
    return "pmoe " + " ".join(shlex.quote(a) for a in args)


def _describe(path: Path) -> str:
    """A folder with what it holds by file type ("reports/eval (2 .json, 7 .png)"), so the summary says where
    the tables, figures and point clouds are."""
    if not path.is_dir():
        return str(path)
    kinds: dict[str, int] = {}
    for f in path.rglob("*"):
        if f.is_file() and f.suffix in REPORT_KINDS:
            kinds[f.suffix] = kinds.get(f.suffix, 0) + 1
    return f"{path} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else str(path)


def _run(step: Step) -> None:
    from pmoe_cli.app import app

    typer.secho(f"\n== {step.title}", bold=True)
    typer.echo("$ " + _command(step.args))
    start = time.perf_counter()
    code = app(args=step.args, prog_name="pmoe", standalone_mode=False)
    step.seconds = time.perf_counter() - start
    if code == 130:
        raise KeyboardInterrupt  # Ctrl-C inside a step: the demo stops as interrupted (exit 130), not as failed
    if code not in (None, 0):
        raise PmoeError(f"step '{step.title}' exited with code {code}")


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for raw data, stores, run and reports."),
    scenes: int = typer.Option(6, "--scenes", min=3, help="Synthetic scenes per dataset."),
    steps: int = typer.Option(80, "--steps", min=1, help="Training steps of the small Point-MoE."),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(2, "--workers", min=0, help="Data loader / converter processes."),
) -> None:
    """Run synth -> convert (7 datasets) -> train Point-MoE on 5 -> eval on 7 (2 zero-shot, plus label-free)
    -> route-inspect a scene -> plan a tabletop task with --simulate -> predict: label a scene of a dataset it never
    trained on with class names typed on the command line. About 7 minutes on 2 quiet CPU cores."""
    if out.exists() and not out.is_dir():
        raise BadInput("--out must be a folder (it is created if missing), not a file", out)
    raw, data, run, reports = out / "raw", out / "data", out / "run", out / "reports"
    ckpt = run / "ckpt.pt"
    plan_dir = reports / "plan"
    for folder in (plan_dir, reports / "eval", reports / "eval_union"):  # eval --json wants its folder to exist
        folder.mkdir(parents=True, exist_ok=True)
    steps_done: list[Step] = []
    datasets = TRAIN_DATASETS + ZERO_SHOT
    for name in datasets:
        steps_done.append(Step(f"synthesise raw {name}", ["synth", name, str(raw / name), "--scenes", str(scenes),
                                                          "--seed", str(seed)], [str(raw / name)]))
    for name in datasets:
        steps_done.append(Step(f"convert {name}", ["convert", name, str(raw / name), str(data),
                                                   "--workers", str(max(workers, 1))], [str(data / f"{name}.zarr")]))
    train_args = ["train", "--preset", "pmoe-tiny", "--datasets", ",".join(TRAIN_DATASETS), "--data", str(data),
                  "--out", str(run), "--steps", str(steps), "--batch-size", "2", "--max-points", "12000",
                  "--workers", str(workers), "--log-every", "10", "--ckpt-every", "50", "--precise-bn", "10",
                  "--seed", str(seed)]
    if ckpt.exists():
        train_args.append("--resume")
    steps_done.append(Step("train a small Point-MoE jointly on five datasets", train_args,
                           [str(ckpt), str(run / "log.jsonl"), str(run / "tb")]))
    steps_done.append(Step("evaluate on all seven (matterport3d and waymo zero-shot)",
                           ["eval", str(ckpt), "--data", str(data), "--datasets", ",".join(datasets),
                            "--out", str(reports / "eval"), "--json", str(reports / "eval" / "report.json"),
                            "--overwrite"],
                           [str(reports / "eval")]))
    steps_done.append(Step("evaluate label-free: predict over the union vocabulary, no dataset given",
                           ["eval", str(ckpt), "--data", str(data), "--datasets", ",".join(datasets),
                            "--label-set", "union", "--out", str(reports / "eval_union"),
                            "--json", str(reports / "eval_union" / "report.json"), "--overwrite"],
                           [str(reports / "eval_union")]))
    steps_done.append(Step("inspect routing on two validation scenes of different datasets",
                           ["route-inspect", str(ckpt), f"{data / 'scannet.zarr'}::val::0",
                            f"{data / 'semantickitti.zarr'}::val::0", "--out", str(reports / "routing")],
                           [str(reports / "routing")]))
    scene_ply = plan_dir / "scene.ply"
    steps_done.append(Step("make a tabletop scene", ["plan", "scene", "--task", PLAN_TASK, "--seed", str(seed),
                                                      "--out", str(scene_ply), "--overwrite"], [str(scene_ply),
                                                                                 str(scene_ply.with_suffix(".json"))]))
    steps_done.append(Step("plan pick/place poses for the scene's instruction and execute them in MuJoCo",
                           ["plan", "--scene", str(scene_ply), "--instruction", make_scene(PLAN_TASK, seed).instruction,
                            "--json", str(plan_dir / "plan.json"), "--simulate", "--overwrite"], [str(plan_dir / "plan.json")]))
    # The headline: label a scene of a dataset the model never trained on, with class names typed here (two of
    # them in no benchmark at all), and point to the labelled PLY.
    predict_dir = reports / "predict"
    labelled = predict_dir / f"{PREDICT_SCENE[0]}-{PREDICT_SCENE[1]}-{PREDICT_SCENE[2]}.pred.ply"
    steps_done.append(Step(f"label a {PREDICT_SCENE[0]} scene (never trained on) with class names typed here",
                           ["predict", str(ckpt), f"{data / (PREDICT_SCENE[0] + '.zarr')}::{PREDICT_SCENE[1]}::"
                            f"{PREDICT_SCENE[2]}", "--classes", PREDICT_CLASSES, "--out", str(predict_dir),
                            "--overwrite"],
                           [str(labelled), str(predict_dir)]))

    total = time.perf_counter()
    for step in steps_done:
        _run(step)
    total = time.perf_counter() - total

    summary = {"seconds": round(total, 1),
               "steps": [{"title": s.title, "command": _command(s.args), "seconds": round(s.seconds, 1),
                          "outputs": s.outputs} for s in steps_done]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    typer.secho(f"\n== done in {total / 60:.1f} min", bold=True)
    for s in steps_done[-6:]:
        typer.echo(f"{s.title}: {', '.join(_describe(Path(o)) for o in s.outputs)}")
    typer.echo(f"stores: {data}   raw data: {raw}   all commands and timings: {out / 'summary.json'}")
    typer.echo(f"labelled point cloud (open it in CloudCompare, Open3D or MeshLab; field 'class'): {labelled}")
