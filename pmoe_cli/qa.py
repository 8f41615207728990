"""`pmoe qa`: 3D question answering with the 3D-MoE answering model.

- `pmoe qa --scene SCENE --question "..." [--situation "..." [--position X Y Z --rotation QX QY QZ QW]]`: answer in
  text (the packaged default unless --checkpoint); greedy, or --beams N ranked answers; --json writes them. The
  position and rotation are SQA3D's situated agent, read as the QA sets read them (`qa/answer.py`): in the cloud's
  frame, or with --sqa3d-scene DIR as SQA3D's files give them (qa/sqa3d_frame.py; the JSON holds the cloud-frame
  pose the model read).
- `pmoe qa train`: train an answering model on synthetic QA sets (the packaged default's recipe by default), and
  on a user's ScanQA file / SQA3D split beside them or alone (qa/benchmark_sets.py).
- `pmoe qa bench`: EM@1 and CIDEr (and with --em10 EM@10) per question type on held-out synthetic questions,
  with the majority baseline.
- `pmoe qa eval`: the benchmarks' own scores on a user's ScanQA file or SQA3D split, scenes from a converted store
  or a raw ScanNet folder (qa/benchmark_eval.py).

Like `pmoe plan`, every command needs the planner extra (the model is built from the planner's parts, the tabletop
scenes need MuJoCo); its modules are imported when a command runs, never when the app is built.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pmoe_cli.plan import require_planner_extra
from pmoe_cli.progress import ProgressBar, report_training
from pmoe_core.errors import BadInput
from pmoe_core.jsonio import write_json_atomic
from pmoe_core.outputs import check_output_file

PRESETS = ("default", "tiny")  # = pmoe_core.qa.train.PRESETS
CONDITIONS = ("heldout-scenes", "heldout-templates")  # = pmoe_core.qa.evaluate.CONDITIONS

qa_app = typer.Typer(
    name="qa",
    help="3D question answering: answer questions about a scene in text, train the answering model, benchmark it "
         "(synthetic held-out sets, or ScanQA / SQA3D files).",
    invoke_without_command=True,
    add_completion=False,
)


@qa_app.callback(invoke_without_command=True)
def _qa(
    ctx: typer.Context,
    scene: str = typer.Option(None, "--scene", help="a coloured point cloud (PLY/LAS/NPY...), STORE::split::scene, "
                              "or a tabletop ref such as tabletop/stack-blocks/seen/100000"),
    question: str = typer.Option(None, "--question", help='e.g. "how many blocks are there?"'),
    situation: str = typer.Option(None, "--situation", help='where you are, e.g. "I am facing the door."'),
    position: tuple[float, float, float] = typer.Option(None, "--position", help="the situated agent's position "
                                                        "X Y Z in the cloud's frame, metres (SQA3D's; needs "
                                                        "--situation and --rotation)"),
    rotation: tuple[float, float, float, float] = typer.Option(None, "--rotation", help="the agent's rotation, a "
                                                               "unit quaternion QX QY QZ QW (SQA3D's); it faces "
                                                               "the rotated +x, only the yaw is used"),
    sqa3d_scene: Path = typer.Option(None, "--sqa3d-scene", help="--position/--rotation are as SQA3D's files give "
                                     "them (relative to the raw mesh's bounding-box centre, not axis-aligned); "
                                     "this raw ScanNet scene folder (scans/sceneXXXX_XX) fixes that frame"),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="QA checkpoint (default: the packaged one)"),
    beams: int = typer.Option(1, "--beams", help="1: greedy; N > 1: beam search, N ranked answers"),
    max_tokens: int = typer.Option(None, "--max-tokens", help="answer length limit in LM tokens (default: the "
                                   "model's, 8)"),
    json_out: Path = typer.Option(None, "--json", help="also write the answers as JSON here"),
    seed: int = typer.Option(0, "--seed", help="seed of the point subsample"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file"),
) -> None:
    """3D question answering: `pmoe qa --scene S --question "..."` prints the answer."""
    if ctx.invoked_subcommand is not None:
        if scene is not None or question is not None:
            raise BadInput("--scene/--question answer on their own; do not combine them with a subcommand")
        return
    if scene is None and question is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    if scene is None or question is None:
        raise BadInput("answering needs both --scene and --question")
    run_qa(scene, question, situation, checkpoint, beams, max_tokens, json_out, seed, overwrite, position, rotation,
           sqa3d_scene)


def run_qa(scene_ref: str, question: str, situation: str | None, checkpoint: Path | None, beams: int,
           max_tokens: int | None, json_out: Path | None, seed: int, overwrite: bool = False,
           position: tuple[float, ...] | None = None, rotation: tuple[float, ...] | None = None,
           sqa3d_scene: Path | None = None) -> None:
    if not question.strip():
        raise BadInput("--question is empty")
    if situation is not None and not situation.strip():
        raise BadInput("--situation is empty (leave it out for an unsituated question)")
    if (position is None) != (rotation is None):
        raise BadInput("--position and --rotation go together (the agent's place and heading)")
    if sqa3d_scene is not None and position is None:
        raise BadInput("--sqa3d-scene says which frame --position/--rotation are in: give them too")
    if beams < 1:
        raise BadInput(f"--beams must be >= 1, got {beams}")
    if max_tokens is not None and not 1 <= max_tokens <= 15:
        raise BadInput(f"--max-tokens must be 1..15, got {max_tokens}")
    if json_out is not None:
        check_output_file(json_out, overwrite=overwrite)
    require_planner_extra("pmoe qa")
    from pmoe_core.qa.answer import (
        Agent,
        answer_question,
        check_agent,
        check_agent_in_scene,
    )
    from pmoe_core.qa.scene_input import require_colour
    from pmoe_core.qa.scenes import load_scene_cloud
    from pmoe_core.qa.train import load_qa_model

    agent = Agent(tuple(position), tuple(rotation)) if position is not None else None
    check_agent(agent, situation)
    if sqa3d_scene is not None:
        from pmoe_core.qa.sqa3d_frame import scannet_frame

        agent = Agent(*scannet_frame(sqa3d_scene).to_scene(agent.position, agent.rotation))
    started = time.perf_counter()
    cloud = load_scene_cloud(scene_ref)  # fail on a bad scene before the slow model load
    require_colour(cloud, scene_ref)
    check_agent_in_scene(agent, cloud, scene_ref)
    loaded = load_qa_model(checkpoint)
    load_s = time.perf_counter() - started
    result = answer_question(loaded.model, cloud, question, situation, beams, max_tokens, seed, scene_ref, agent)
    console = Console()
    if beams == 1:
        console.print(result.answers[0].text or "(empty answer)", highlight=False)
    else:
        table = Table(title=f"{question!r} ({scene_ref})")
        for column in ("rank", "answer", "log-prob", "ended"):
            table.add_column(column, justify="left" if column == "answer" else "right")
        for rank, a in enumerate(result.answers, 1):
            table.add_row(str(rank), a.text, f"{a.logprob:.3f}", "yes" if a.finished else "cut")
        console.print(table)
    console.print(f"scene: {result.kind}, {result.objects} object proposals, scale {result.scale:.2f} m; "
                  f"load {load_s:.2f} s, answer {result.seconds:.3f} s", highlight=False, style="dim")
    if json_out is not None:
        report = {"scene": scene_ref, "question": question, "situation": situation,
                  "sqa3d_scene": str(sqa3d_scene) if sqa3d_scene else None,
                  "position": list(agent.position) if agent else None,
                  "rotation": list(agent.rotation) if agent else None, "checkpoint": str(loaded.path),
                  "beams": beams, "max_tokens": result.max_tokens, "seed": seed,
                  "answers": [{"text": a.text, "logprob": a.logprob, "finished": a.finished} for a in result.answers],
                  "scene_kind": result.kind, "object_proposals": result.objects,
                  "timings": {"load_s": load_s, "answer_s": result.seconds}}
        write_json_atomic(json_out, report, indent=1)
        console.print(f"wrote {json_out}")


@qa_app.command("train")
def train(
    tabletop_scenes: int = typer.Option(2000, "--tabletop-scenes", help="tabletop training scenes (seeds 0..N-1)"),
    rooms: int = typer.Option(900, "--rooms", help="synthetic ScanNet rooms written; a third (train split) are used"),
    steps: int = typer.Option(4000, "--steps", help="training steps"),
    dense_steps: int = typer.Option(300, "--dense-steps", help="steps with a dense trunk before it is upcycled"),
    batch_size: int = typer.Option(32, "--batch-size", help="questions per step"),
    lr: float = typer.Option(1e-3, "--lr", help="peak learning rate (warmup, cosine to 10%)"),
    preset: str = typer.Option("default", "--preset", help="model sizes: " + ", ".join(PRESETS)),
    text_only: bool = typer.Option(False, "--text-only", help="the text-only baseline (no scene tokens), for bench"),
    seed: int = typer.Option(0, "--seed", help="training seed"),
    out: Path = typer.Option(Path("runs/qa"), "--out", help="run folder: qa.pt, log.jsonl, tb/"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/qa.pt"),
    stop_at: int = typer.Option(None, "--stop-at", help="save and stop at this step (--resume continues)"),
    ckpt_every: int = typer.Option(250, "--ckpt-every", help="checkpoint every N steps"),
    export: Path = typer.Option(None, "--export", help="also write a slim fp16 weights-only copy here"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --export file"),
    scanqa: Path = typer.Option(None, "--scanqa", help="also train on a ScanQA v1.0 file with answers, e.g. "
                                "ScanQA_v1.0_train.json"),
    sqa3d_dir: Path = typer.Option(None, "--sqa3d-dir", help="also train on an SQA3D split from this folder "
                                   "(sqa_task/balanced/)"),
    sqa3d_split: str = typer.Option(None, "--sqa3d-split", help="the SQA3D split: train, val or test (default "
                                    "train)"),
    scenes: Path = typer.Option(None, "--scenes", help="where the files' scene ids are read: a converted pmoe store "
                                "(scannet.zarr) or a raw ScanNet v2 folder (scans/)"),
    scannet_raw: Path = typer.Option(None, "--scannet-raw", help="raw ScanNet v2 folder that fixes SQA3D's agent "
                                     "frame (default: --scenes when it is one)"),
) -> None:
    """Train an answering model on synthetic tabletop and room questions, and on ScanQA / SQA3D files (--scanqa,
    --sqa3d-dir; with --tabletop-scenes 0 --rooms 0, on the files alone). Scene inputs are computed once and
    cached."""
    if export is not None:
        check_output_file(export, overwrite=overwrite)
    require_planner_extra("pmoe qa")
    from pmoe_core.qa.train import QATrainConfig, export_checkpoint, train_qa

    cfg = QATrainConfig(
        out=str(out), tabletop_scenes=tabletop_scenes, rooms=rooms, steps=steps, dense_steps=dense_steps,
        batch_size=batch_size, lr=lr, preset=preset, text_only=text_only, seed=seed, ckpt_every=ckpt_every,
        stop_at=stop_at, resume=resume, command="pmoe " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        scanqa=_text(scanqa), sqa3d_dir=_text(sqa3d_dir), sqa3d_split=sqa3d_split, scenes=_text(scenes),
        scannet_raw=_text(scannet_raw),
    )
    data_bar, bar = ProgressBar("scenes", "scenes", every=100), ProgressBar("train", "steps", every=25)
    try:
        result = train_qa(cfg, bar, data_bar)
    finally:
        data_bar.stop()
        bar.stop()
    if result.file_questions:
        typer.echo(f"{result.file_questions} questions from the benchmark files")
    if result.agents_outside:
        typer.echo(f"warning: {len(result.agents_outside)} agents stand outside their scene (first: question "
                   f"{result.agents_outside[0]}): positions in another frame than the clouds'?", err=True)
    report_training(result, export, export_checkpoint)


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


@qa_app.command("bench")
def bench(
    checkpoint: Path = typer.Option(None, "--checkpoint", help="QA checkpoint (default: the packaged one)"),
    tabletop_scenes: int = typer.Option(200, "--tabletop-scenes", help="held-out tabletop scenes (seeds 100000..)"),
    rooms: int = typer.Option(100, "--rooms", help="held-out rooms (the val split of the training rooms)"),
    conditions: str = typer.Option(",".join(CONDITIONS), "--conditions",
                                   help="held-out scenes in training wording, and/or in held-out wording"),
    em10: bool = typer.Option(False, "--em10", help="also EM@10: the ten best answers of a beam search of ten "
                              "(about 6x the time)"),
    json_out: Path = typer.Option(None, "--json", help="also write the scores as JSON here"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file"),
) -> None:
    """EM@1 and CIDEr (--em10: and EM@10) per question type on held-out synthetic questions, beside the
    majority-answer baseline."""
    names = tuple(c.strip() for c in conditions.split(",") if c.strip())
    unknown = [c for c in names if c not in CONDITIONS]
    if not names or unknown:
        raise BadInput(f"--conditions: unknown {unknown or '(empty)'}; known: {', '.join(CONDITIONS)}")
    if tabletop_scenes < 0 or rooms < 0 or tabletop_scenes + rooms == 0:
        raise BadInput("--tabletop-scenes and --rooms must be >= 0, and not both 0")
    if json_out is not None:
        check_output_file(json_out, overwrite=overwrite)
    require_planner_extra("pmoe qa")
    from pmoe_core.qa.evaluate import BenchSpec, run_bench
    from pmoe_core.qa.train import load_qa_model

    started = time.perf_counter()
    loaded = load_qa_model(checkpoint)
    bar = ProgressBar("questions", "questions", every=500)
    try:
        report = run_bench(loaded, BenchSpec(tabletop_scenes, rooms), names, progress=bar, em10=em10)
    finally:
        bar.stop()
    console = Console()
    for condition in names:
        rows = report["conditions"][condition]
        table = Table(title=f"pmoe qa bench: {condition} ({loaded.path.name})")
        columns = ["question type", "questions", "EM@1", *(["EM@10"] if em10 else []), "CIDEr", "majority EM@1",
                   *(["majority EM@10"] if em10 else []), "majority CIDEr"]
        for column in columns:
            table.add_column(column, justify="left" if column == "question type" else "right")
        for qtype, row in rows.items():
            cells = [f"{row[who][key]:.1f}" for who in ("model", "majority")
                     for key in ("em1", *(["em10"] if em10 else []), "cider")]
            table.add_row(qtype, str(row["model"]["count"]), *cells)
        console.print(table)
    report["seconds"] = time.perf_counter() - started
    console.print(f"{report['seconds']:.0f} s", style="dim")
    if json_out is not None:
        write_json_atomic(json_out, report, indent=1)
        console.print(f"wrote {json_out}")


@qa_app.command("eval")
def eval_files(
    scanqa: Path = typer.Option(None, "--scanqa", help="a ScanQA v1.0 file with answers, e.g. ScanQA_v1.0_val.json"),
    sqa3d_dir: Path = typer.Option(None, "--sqa3d-dir", help="SQA3D's folder of balanced question/annotation files "
                                   "(sqa_task/balanced/)"),
    split: str = typer.Option(None, "--split", help="the SQA3D split: train, val or test (default val)"),
    scenes: Path = typer.Option(None, "--scenes", help="where the scene ids are read: a converted pmoe store "
                                "(scannet.zarr) or a raw ScanNet v2 folder (scans/)"),
    scannet_raw: Path = typer.Option(None, "--scannet-raw", help="raw ScanNet v2 folder that fixes SQA3D's agent "
                                     "frame (default: --scenes when it is one)"),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="QA checkpoint (default: the packaged one)"),
    limit: int = typer.Option(None, "--limit", help="score only the first N questions (a quick look)"),
    em10: bool = typer.Option(False, "--em10", help="also EM@10: the ten best answers of a beam search of ten "
                              "(about 6x the time)"),
    json_out: Path = typer.Option(None, "--json", help="also write the scores and every question's answer here"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file"),
) -> None:
    """Score the answering model on a benchmark's own files (ScanQA, or an SQA3D split): EM@1 (--em10: EM@10),
    and for ScanQA BLEU-1..4, ROUGE-L, METEOR and CIDEr, overall and per question type."""
    if scanqa is not None and split is not None:
        raise BadInput("--split picks an SQA3D split; a ScanQA file is scored whole")
    if scenes is None:
        raise BadInput("--scenes ROOT is needed: the converted store or raw ScanNet folder the scene ids are in")
    if json_out is not None:
        inputs = [p for p in (scanqa, sqa3d_dir) if p is not None]
        check_output_file(json_out, reads=inputs, overwrite=overwrite)
    require_planner_extra("pmoe qa")
    from pmoe_core.qa.benchmark_eval import (
        SCANQA,
        EvalOptions,
        check_inputs,
        evaluate_file,
        read_benchmark,
    )
    from pmoe_core.qa.train import load_qa_model

    started = time.perf_counter()
    file = read_benchmark(scanqa, sqa3d_dir, split or "val", limit)
    check_inputs(file, scenes, scannet_raw)  # every refusal before the model loads
    loaded = load_qa_model(checkpoint)
    load_s = time.perf_counter() - started
    scene_bar, bar = ProgressBar("scenes", "scenes"), ProgressBar("questions", "questions", every=500)
    try:
        result = evaluate_file(loaded, file, scenes, scannet_raw, EvalOptions(em10=em10), scene_bar, bar)
    finally:
        scene_bar.stop()
        bar.stop()
    result.seconds = {"load": load_s, **result.seconds, "total": time.perf_counter() - started}
    console = Console()
    shown = f"{file.paths[0].name}" if file.benchmark == SCANQA else f"{sqa3d_dir} ({split or 'val'})"
    console.print(_scores_table(f"pmoe qa eval: {file.benchmark} {shown} ({loaded.path.name})", "question type",
                                result.scores))
    if result.by_file_type:
        console.print(_scores_table("EM by file type", "file type", result.by_file_type))
    console.print(f"{len(result.answered)} questions (of {result.questions_in_files} in the file), "
                  f"{result.scenes} scenes; " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()),
                  style="dim", highlight=False)
    for note in result.notes:
        console.print(note, style="dim", highlight=False)
    if result.agents_outside:
        situated = sum(a.item.position is not None for a in result.answered)
        console.print(f"warning: {len(result.agents_outside)} of {situated} agents stand outside their scene (first: "
                      f"question {result.agents_outside[0]}): positions in another frame than the clouds'?",
                      style="yellow", highlight=False)
    if json_out is not None:
        report = {"command": "pmoe " + " ".join(shlex.quote(a) for a in sys.argv[1:]), **result.to_json()}
        write_json_atomic(json_out, report, indent=1)
        console.print(f"wrote {json_out}")


def _scores_table(title: str, first: str, scores: dict) -> Table:
    """One row per group; the columns a benchmark scores (None in every row: not shown)."""
    columns = [("EM@1", "em1"), ("EM@10", "em10"), ("BLEU-1", "bleu1"), ("BLEU-2", "bleu2"), ("BLEU-3", "bleu3"),
               ("BLEU-4", "bleu4"), ("ROUGE-L", "rouge_l"), ("METEOR", "meteor"), ("CIDEr", "cider")]
    rows = {name: s.to_json() for name, s in scores.items()}
    shown = [(head, key) for head, key in columns if any(r.get(key) is not None for r in rows.values())]
    table = Table(title=title)
    for column in (first, "questions", *(head for head, _ in shown)):
        table.add_column(column, justify="left" if column == first else "right")
    for name, row in rows.items():
        cells = ["-" if row.get(key) is None else f"{row[key]:.1f}" for _, key in shown]
        table.add_row(name, str(row["count"]), *cells)
    return table
