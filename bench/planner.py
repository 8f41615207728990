"""3D-MoE planner: held-out success vs oracle/random, Euler sampling steps, E=2/4/dense, latency per stage; the
task x colours x phrasing matrix; the input checks' thresholds.

    OMP_NUM_THREADS=1 python bench/planner.py --part all --episodes 50
    OMP_NUM_THREADS=1 python bench/planner.py --part matrix [--checkpoint CKPT] --episodes 50 --json matrix.json
    OMP_NUM_THREADS=1 python bench/planner.py --part checks --episodes 30
    OMP_NUM_THREADS=1 python bench/planner.py --part colour-layers --episodes 100

Held-out episodes use seeds from HELD_OUT_SEED (100000) on, with seen and unseen colours; training used seeds
0..episodes-1 with seen colours only. The expert ablation trains short runs of the *tiny* preset from scratch
(same data, same steps, only the expert count differs) and reports their held-out Stage II loss and success.

`--part matrix` scores any checkpoint (default: the packaged one) on every task x {seen, unseen} colours x
{template, heldout} phrasings (the same scenes in both phrasings), with the oracle on the same scenes as reference,
and counts how often the input checks refuse or warn about an instruction naming a colour no object has. Rows print
as they finish; with --json every finished cell is saved at once, and --resume skips the cells a file already holds.
`--part checks` measures what the input checks' thresholds were chosen from (pmoe_core/planner/checks.py).
`--part colour-layers` measures which LM hidden state the colour head should read (text_features.py; ~15 min).
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pmoe_core.jsonio import read_json, write_json_atomic
from pmoe_core.outputs import check_output_file
from pmoe_core.planner.checks import (
    HUE_LIMIT,
    TASK_SIMILARITY,
    check_input,
    colour_present,
    match_task,
    object_colours,
)
from pmoe_core.planner.colour import world_colour_of
from pmoe_core.planner.demos import HELD_OUT_SEED, canonical_steps
from pmoe_core.planner.policy import ModelPolicy, cloud_input, load_planner, plan_cloud
from pmoe_core.planner.pose_tokens import steps_to_tensor
from pmoe_core.planner.train import DEFAULT_TASKS, PlannerTrainConfig, train_planner
from pmoe_core.tabletop.episodes import run_bench
from pmoe_core.tabletop.lexicon import FAMILY_REACH, colour_lexicon, lexicon_colour, to_lab
from pmoe_core.tabletop.observe import observe
from pmoe_core.tabletop.scene_io import save_episode
from pmoe_core.tabletop.sim import execute
from pmoe_core.tabletop.tasks import TASKS, make_scene
from pmoe_core.tabletop.world import COLORS, SPLITS

MATRIX_PHRASINGS = ("template", "heldout")


def success_table(checkpoint: str | None, tasks: list[str], episodes: int) -> None:
    planner = load_planner(checkpoint)
    print(f"\n### Held-out success ({episodes} episodes per task and split, seeds {HELD_OUT_SEED}..)")
    print("| task | split | oracle | random | model (4 Euler steps) | model score | model s/plan |")
    print("|---|---|---|---|---|---|---|")
    for split in ("seen", "unseen"):
        for task in tasks:
            oracle = run_bench([task], episodes, "oracle", HELD_OUT_SEED, split)[0]
            rand = run_bench([task], episodes, "random", HELD_OUT_SEED, split)[0]
            policy = ModelPolicy(planner)
            model = run_bench([task], episodes, "model", HELD_OUT_SEED, split, policy_fn=policy)[0]
            print(f"| {task} | {split} | {100 * oracle.success_rate:.0f}% | {100 * rand.success_rate:.0f}% | "
                  f"{100 * model.success_rate:.0f}% | {model.score:.1f} | {policy.mean_plan_s():.3f} |", flush=True)


def steps_table(checkpoint: str | None, tasks: list[str], episodes: int) -> None:
    planner = load_planner(checkpoint)
    print(f"\n### Euler sampling steps (seen colours, {episodes} held-out episodes per task)")
    print("| Euler steps | " + " | ".join(f"{t} success" for t in tasks) + " | mean plan latency (s) |")
    print("|---|" + "---|" * len(tasks) + "---|")
    for n in (4, 10, 25):
        policy = ModelPolicy(planner, euler_steps=n)
        rows = run_bench(tasks, episodes, "model", HELD_OUT_SEED, "seen", policy_fn=policy)
        cells = " | ".join(f"{100 * r.success_rate:.0f}%" for r in rows)
        print(f"| {n} | {cells} | {policy.mean_plan_s():.3f} |", flush=True)


def diagnostics_table(checkpoint: str | None, tasks: list[str], episodes: int) -> None:
    """Where success is low, what does the model get right? Step count, and how close picks and places come."""
    policy = ModelPolicy(load_planner(checkpoint))
    print(f"\n### What the model gets right (seen colours, {episodes} held-out episodes per task)")
    print("| task | step count right | first picks that grasp a block | median pick xy error to nearest block (cm) | "
          "same for uniformly random picks (cm) | median place xy error to nearest goal (cm) |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for task in tasks:
        right, grasps, errors, chance, places = [], [], [], [], []
        for i in range(episodes):
            desc = make_scene(task, HELD_OUT_SEED + i)
            steps = policy(desc)
            right.append(len(steps) == len(canonical_steps(desc)))
            grasps += [p is not None for p in execute(desc, steps[:1]).picked]  # first pick, from the start state
            blocks = np.array([b.position[:2] for b in desc.blocks])
            goals = np.array([g.position[:2] for g in desc.goals])
            errors += [float(np.min(np.linalg.norm(blocks - s.pick.position[:2], axis=1))) for s in steps]
            places += [float(np.min(np.linalg.norm(goals - s.place.position[:2], axis=1))) for s in steps]
            guess = rng.uniform([0.25, -0.5], [0.75, 0.5])
            chance.append(float(np.min(np.linalg.norm(blocks - guess, axis=1))))
        print(f"| {task} | {100 * np.mean(right):.0f}% | {100 * np.mean(grasps):.0f}% | "
              f"{100 * np.median(errors):.1f} | {100 * np.median(chance):.1f} | {100 * np.median(places):.1f} |",
              flush=True)


def colour_naming_tasks(tasks: list[str]) -> list[str]:
    return [t for t in tasks if "color" in make_scene(t, HELD_OUT_SEED).words]


def nearer_another(read_lab, task: str, phrasing: str, episodes: int) -> tuple[int, list[float]]:
    """(how many of the unseen-colour held-out instructions read (`read_lab`: instruction -> CIELAB) nearer another
    object on the table than the named one, each margin to the nearest other object in delta E)."""
    wrong, margins = 0, []
    for i in range(episodes):
        desc = make_scene(task, HELD_OUT_SEED + i, "unseen", phrasing)
        lab = read_lab(desc.instruction)
        distance = {o.color: float(np.linalg.norm(lab - to_lab(np.asarray(COLORS[o.color], np.float64))))
                    for o in desc.objects}
        named = distance.pop(desc.words["color"])
        if distance:
            margins.append(min(distance.values()) - named)
            wrong += margins[-1] < 0
    return wrong, margins


@torch.no_grad()
def asked_colour_table(checkpoint: str | None, tasks: list[str], episodes: int) -> None:
    """Does the colour the model reads from an instruction (its colour head, `model.asked_colour`) point at the named
    object? Per task naming a colour, unseen colours, template against held-out phrasing: how often it lies nearer
    (CIELAB) another object on the table, and the median margin to the nearest other object."""
    model = load_planner(checkpoint).model.eval()

    def read_lab(text: str) -> np.ndarray:
        return model.asked_colour(model.text_batch([text])).lab[0].cpu().numpy() * 100.0

    print(f"\n### The colour read from the instruction vs the objects (unseen colours, {episodes} held-out episodes)")
    print("| task | phrasing | nearer another object | median margin (delta E) |")
    print("|---|---|---|---|")
    for task in colour_naming_tasks(tasks):
        for phrasing in MATRIX_PHRASINGS:
            wrong, margins = nearer_another(read_lab, task, phrasing, episodes)
            print(f"| {task} | {phrasing} | {wrong}/{len(margins)} | {np.median(margins):.1f} |", flush=True)


def colour_layer_table(layers: list[int], episodes: int) -> None:
    """Which of the frozen LM's hidden states should the colour head read? Per layer, a head of the default's size
    trained as Stage I trains it (lexicon phrases alone, the same batches and schedule, seed 0), then the measure of
    `asked_colour_table` over the tasks naming a colour: an unfamiliar frame must not move the colour read."""
    from pmoe_core.planner.colour import ColourHead, colour_loss, lexicon_batch, lexicon_split, lexicon_texts
    from pmoe_core.planner.model_lm import text_features
    from pmoe_core.planner.train import default_model_config, learning_rate

    model_cfg, cfg = default_model_config(), PlannerTrainConfig()
    features = text_features(model_cfg.text)
    lexicon, _ = lexicon_split(cfg.lexicon_names)
    tasks = colour_naming_tasks(list(TASKS))
    asked = {make_scene(t, HELD_OUT_SEED + i, "unseen", p).instruction
             for t in tasks for p in MATRIX_PHRASINGS for i in range(episodes)}
    states = layer_states(features, sorted(set(lexicon_texts(lexicon, framed=True)) | asked), layers)
    print(f"\n### Which LM layer the colour head reads (Stage I's lexicon training alone; unseen colours, {episodes} "
          f"held-out episodes per task and phrasing, {len(tasks)} tasks)")
    print("| hidden state | final lexicon loss | template: nearer another object | held-out: nearer another object | "
          "held-out median margin (delta E) |")
    print("|---|---|---|---|---|")
    for k, layer in enumerate(layers):
        def batch(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            rows = [states[t][k] for t in texts]
            out = torch.zeros(len(rows), max(len(r) for r in rows), rows[0].shape[-1])
            mask = torch.zeros(out.shape[:2], dtype=torch.bool)
            for row, r in enumerate(rows):
                out[row, : len(r)], mask[row, : len(r)] = r.float(), True
            return out, mask

        torch.manual_seed(cfg.seed)
        head = ColourHead(model_cfg.colour, features.dim)
        opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        for step in range(cfg.steps_stage1):
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step)
            texts, labs = lexicon_batch(lexicon, cfg.seed, step, cfg.lexicon_batch, framed=True)
            loss = colour_loss(head(*batch(texts)), labs)
            opt.zero_grad()
            loss.backward()
            opt.step()

        @torch.no_grad()
        def read_lab(text: str) -> np.ndarray:
            return head(*batch([text])).lab[0].numpy() * 100.0

        results = {p: [nearer_another(read_lab, t, p, episodes) for t in tasks] for p in MATRIX_PHRASINGS}
        wrong = {p: sum(w for w, _ in results[p]) for p in MATRIX_PHRASINGS}
        total = sum(len(m) for _, m in results["heldout"])
        margin = np.median([m for _, ms in results["heldout"] for m in ms])
        name = "final (after the norm)" if layer == -1 else "embeddings" if layer == 0 else f"block {layer}"
        print(f"| {name} | {loss.item():.4f} | {wrong['template']}/{total} | {wrong['heldout']}/{total} | "
              f"{margin:.1f} |", flush=True)


@torch.no_grad()
def layer_states(features, texts: list[str], layers: list[int]) -> dict[str, list[torch.Tensor]]:
    """Each text's (L, H) float16 states at each of `layers` (-1: the final), from one LM pass per batch."""
    llm, out = features.llm, {}
    for start in range(0, len(texts), 64):
        chunk = texts[start : start + 64]
        ids = [torch.from_numpy(features.ids(t)) for t in chunk]
        batch = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True)
        mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(i) for i in ids], batch_first=True)
        result = llm.model(input_ids=batch, attention_mask=mask, output_hidden_states=True, use_cache=False)
        hidden = [result.last_hidden_state if k == -1 else result.hidden_states[k] for k in layers]
        for row, text in enumerate(chunk):
            out[text] = [h[row, : len(ids[row])].half() for h in hidden]
    return out


@torch.no_grad()
def held_out_loss(checkpoint: Path, tasks: list[str], episodes: int) -> float:
    """Mean Stage II loss (flow + stop) on held-out demos, with fixed flow noise so runs compare fairly."""
    planner = load_planner(checkpoint)
    model, cfg = planner.model, planner.model.config
    losses = []
    for task in tasks:
        for i in range(episodes):
            desc = make_scene(task, HELD_OUT_SEED + i)
            points = cloud_input(observe(desc), cfg, seed=desc.seed)
            poses, lengths = steps_to_tensor([canonical_steps(desc)], cfg.dit.max_steps)
            torch.manual_seed(i)
            parts = model.stage2_loss(points[None], [desc.instruction], poses, lengths)
            losses.append(float(parts["flow"] + parts["stop"]))
    return statistics.fmean(losses)


def experts_table(tasks: list[str], episodes: int, steps: int, train_episodes: int, out: Path) -> None:
    print(f"\n### Experts (tiny preset, {steps} Stage II steps, {train_episodes} demos per task; short runs)")
    print("| experts | trainable params | train s | final train loss | held-out loss | "
          + " | ".join(f"{t} success" for t in tasks) + " |")
    print("|---|---|---|---|---|" + "---|" * len(tasks))
    for experts in (1, 2, 4):
        cfg = PlannerTrainConfig(out=str(out / f"experts-{experts}"), tasks=tuple(tasks), episodes=train_episodes,
                                 steps_stage1=50, steps=steps, batch_size=16, preset="tiny", experts=experts,
                                 tensorboard=False)
        result = train_planner(cfg)
        planner = load_planner(result.checkpoint)
        params = sum(p.numel() for p in planner.model.parameters() if p.requires_grad)
        loss = held_out_loss(result.checkpoint, tasks, max(4, episodes // 2))
        rows = run_bench(tasks, episodes, "model", HELD_OUT_SEED, "seen", policy_fn=ModelPolicy(planner))
        tail = statistics.fmean(result.losses[-50:])
        cells = " | ".join(f"{100 * r.success_rate:.0f}%" for r in rows)
        name = "dense (1)" if experts == 1 else str(experts)
        print(f"| {name} | {params:,} | {result.seconds:.0f} | {tail:.3f} | {loss:.3f} | {cells} |", flush=True)


def latency_table(checkpoint: str | None, repeats: int) -> None:
    desc = make_scene("stack-blocks", HELD_OUT_SEED)
    loads, encode, llm, dit = [], [], [], []
    for _ in range(max(1, repeats // 5)):
        loads.append(load_planner(checkpoint).load_s)
    planner = load_planner(checkpoint)
    points = cloud_input(observe(desc), planner.model.config)
    plan_cloud(planner, points, desc.instruction)  # warm-up
    for i in range(repeats):
        _, t = plan_cloud(planner, points, desc.instruction, seed=i)
        encode.append(t.encode_s)
        llm.append(t.llm_s)
        dit.append(t.dit_s)
    with tempfile.TemporaryDirectory() as tmp:
        ply = Path(tmp) / "scene.ply"
        save_episode(observe(desc), desc, ply)
        cmd = [sys.executable, "-m", "pmoe_cli", "plan", "--scene", str(ply), "--instruction", desc.instruction]
        if checkpoint:
            cmd += ["--checkpoint", checkpoint]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        cli = time.perf_counter() - start
    med = statistics.median
    print(f"\n### Latency of one plan (median of {repeats}, 4 Euler steps, 1 thread)")
    print("| stage | ms |")
    print("|---|---|")
    print(f"| load (checkpoint + LLM build, once per process) | {1000 * med(loads):.0f} |")
    print(f"| encode (PointNet++ + spatial transformer + projector) | {1000 * med(encode):.1f} |")
    print(f"| LLM (MoE + LoRA trunk) | {1000 * med(llm):.1f} |")
    print(f"| Pose-DiT (length head + Euler sampling) | {1000 * med(dit):.1f} |")
    print(f"| whole `pmoe plan --scene --instruction` process (imports, PLY read, load, plan, print) "
          f"| {1000 * cli:.0f} |")


JUNK = ("hello there", "what time is it", "make me a sandwich", "tell me a joke", "how are you today",
        "turn off the lights", "open the door", "what is the weather like", "play some music", "good morning",
        "thank you", "who are you", "order a pizza", "drive to the station", "write an email to my boss",
        "sing a song", "clean the kitchen", "the quick brown fox jumps over the lazy dog", "asdf qwerty",
        "paint the wall red")


def with_absent_colour(desc) -> tuple[str, str] | None:
    """The scene's instruction with its named colour swapped for a CLIPort colour no object has (seeded by the
    episode), and that colour; None when the instruction names no colour."""
    named = desc.words.get("color")
    if named is None:
        return None
    have = {o.color for o in desc.objects}
    absent = sorted(set(COLORS) - have)
    other = absent[int(np.random.default_rng([desc.seed, 11]).integers(len(absent)))]
    return re.sub(rf"\b{named}\b", other, desc.instruction, flags=re.IGNORECASE), other


class MatrixPolicy:
    """The model policy of the matrix: one scene in two phrasings is observed once (the encoder input is kept per
    task, split and seed), then planned on with each instruction, as ModelPolicy does."""

    def __init__(self, planner):
        self.planner = planner
        self.points: dict[tuple[str, str, int], torch.Tensor] = {}
        self.plan_s: list[float] = []

    def __call__(self, desc):
        key = (desc.task, desc.split, desc.seed)
        if key not in self.points:
            self.points[key] = cloud_input(observe(desc), self.planner.model.config, seed=desc.seed)
        steps, timings = plan_cloud(self.planner, self.points[key], desc.instruction, seed=desc.seed)
        self.plan_s.append(timings.total_s - timings.load_s)
        return steps

    def mean_plan_s(self) -> float:
        return statistics.fmean(self.plan_s) if self.plan_s else 0.0


class MatrixFile:
    """The matrix's --json file: every finished cell is written at once (atomic), so a run cut short keeps them."""

    def __init__(self, path: Path | None, checkpoint: str, episodes: int, resume: bool, overwrite: bool):
        self.path = path
        self.data = {"format": "pmoe-planner-matrix", "version": 1, "checkpoint": checkpoint, "episodes": episodes,
                     "first_seed": HELD_OUT_SEED, "cells": [], "absent_colour": []}
        if path is None:
            return
        if resume and path.is_file():
            old = read_json(path)
            if (old.get("checkpoint"), old.get("episodes")) != (checkpoint, episodes):
                raise SystemExit(f"{path}: was made with checkpoint {old.get('checkpoint')} and "
                                 f"{old.get('episodes')} episodes; --resume needs the same")
            self.data = old
        else:
            check_output_file(path, overwrite=overwrite)

    def find(self, key: str, **match) -> dict | None:
        return next((c for c in self.data[key] if all(c.get(k) == v for k, v in match.items())), None)

    def add(self, key: str, row: dict) -> None:
        self.data[key].append(row)
        if self.path is not None:
            write_json_atomic(self.path, self.data, indent=1)


def matrix_table(planner, tasks: list[str], episodes: int, out: MatrixFile) -> None:
    """Success per task x colours x phrasing on held-out seeds, the oracle on the same scenes, absent colours."""
    policy = MatrixPolicy(planner)
    print(f"\n### Held-out matrix: {planner.path} ({episodes} episodes per cell, seeds {HELD_OUT_SEED}..)")
    print("| task | colours | phrasing | model success | model score | oracle success | s/plan | cell wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for task in tasks:
        for split in SPLITS:
            oracle = None
            for phrasing in MATRIX_PHRASINGS:
                row = out.find("cells", task=task, split=split, phrasing=phrasing)
                if row is None:
                    start = time.perf_counter()
                    if oracle is None:  # the same scenes in every phrasing: one oracle run per task and split
                        oracle = run_bench([task], episodes, "oracle", HELD_OUT_SEED, split)[0].success_rate
                    policy.plan_s.clear()
                    model = run_bench([task], episodes, "model", HELD_OUT_SEED, split, policy_fn=policy,
                                      phrasing=phrasing)[0]
                    row = {"task": task, "split": split, "phrasing": phrasing, "episodes": episodes,
                           "success": model.success_rate, "score": model.score, "oracle_success": oracle,
                           "plan_s": policy.mean_plan_s(), "wall_s": time.perf_counter() - start}
                    out.add("cells", row)
                print(f"| {task} | {split} | {phrasing} | {100 * row['success']:.0f}% | {row['score']:.1f} | "
                      f"{100 * row['oracle_success']:.0f}% | {row['plan_s']:.3f} | {row['wall_s']:.1f} |", flush=True)
            policy.points.clear()  # these scenes are done in every phrasing
    absent_colour_table(tasks, episodes, out)


def absent_colour_table(tasks: list[str], episodes: int, out: MatrixFile) -> None:
    """How often an instruction naming a colour no object has is refused or warned about (never silently run)."""
    print(f"\n### Instructions naming an absent colour (the scene's instruction with its colour swapped for a "
          f"CLIPort colour no object has; {episodes} held-out scenes per row)")
    print("| task | colours | refused | warned | silent | the real instruction warned (false alarm) |")
    print("|---|---|---|---|---|---|")
    for task in tasks:
        if "color" not in make_scene(task, HELD_OUT_SEED).words:
            continue
        for split in SPLITS:
            row = out.find("absent_colour", task=task, split=split)
            if row is None:
                counts = {"refused": 0, "warned": 0, "silent": 0, "false_alarm": 0}
                for i in range(episodes):
                    desc = make_scene(task, HELD_OUT_SEED + i, split)
                    cloud = observe(desc)
                    text, _ = with_absent_colour(desc)
                    check = check_input(cloud, text, seed=desc.seed)
                    kind = "refused" if check.refusals else "warned" if check.warnings else "silent"
                    counts[kind] += 1
                    counts["false_alarm"] += bool(check_input(cloud, desc.instruction, seed=desc.seed).problems)
                row = {"task": task, "split": split, "episodes": episodes, **counts}
                out.add("absent_colour", row)
            n = row["episodes"]
            print(f"| {task} | {split} | {row['refused']}/{n} | {row['warned']}/{n} | {row['silent']}/{n} | "
                  f"{row['false_alarm']}/{n} |", flush=True)


def checks_table(episodes: int) -> None:
    """What the input checks' thresholds come from: named colours present vs absent, phrasings vs chit-chat."""
    present, absent = [], []
    start = time.perf_counter()
    for task in TASKS:
        for split in SPLITS:
            for i in range(episodes):
                desc = make_scene(task, HELD_OUT_SEED + i, split)
                cloud = observe(desc)
                measured = object_colours(cloud.coord, cloud.color, desc.seed)
                have = {o.color for o in desc.objects}
                for name in COLORS:
                    finding = colour_present(lexicon_colour(name), measured)
                    (present if name in have else absent).append(finding)
    print(f"\n### Named colours vs measured object colours ({episodes} held-out scenes per task and split, "
          f"{time.perf_counter() - start:.0f} s)")
    print("| named colour | in the scene: max delta E to its family | found (of) | not in the scene: "
          "min delta E | caught as absent (of) |")
    print("|---|---|---|---|---|")
    for name in COLORS:
        here = [f for f in present if f.name == name]
        gone = [f for f in absent if f.name == name]
        print(f"| {name} | {max(f.nearest_delta_e for f in here):.1f} | {sum(f.present for f in here)}/{len(here)} | "
              f"{min(f.nearest_delta_e for f in gone):.1f} | {sum(not f.present for f in gone)}/{len(gone)} |")
    print(f"| all | {max(f.nearest_delta_e for f in present):.1f} | {sum(f.present for f in present)}/{len(present)} "
          f"| {min(f.nearest_delta_e for f in absent):.1f} | {sum(not f.present for f in absent)}/{len(absent)} |")
    print(f"(an object has the named colour when it reads as the name's basic term and lies within FAMILY_REACH = "
          f"{FAMILY_REACH} of the name's family or, for a name that is not a basic term, HUE_LIMIT = {HUE_LIMIT} "
          "degrees of its hue)")
    off_palette_colour_tables()

    print(f"\n### Instruction vs nearest training phrasing (MiniLM cosine; {episodes} held-out scenes per task, "
          "seen and unseen colours)")
    print("| instructions | n | min cosine | 5th percentile | matched the right task |")
    print("|---|---|---|---|---|")
    for phrasing in ("template", "train", "heldout"):
        sims, right = [], 0
        for task in TASKS:
            for split in SPLITS:
                for i in range(episodes):
                    match = match_task(make_scene(task, HELD_OUT_SEED + i, split, phrasing).instruction)
                    sims.append(match.similarity)
                    right += match.task == task
        print(f"| {phrasing} phrasings | {len(sims)} | {min(sims):.3f} | {np.percentile(sims, 5):.3f} | "
              f"{right}/{len(sims)} |")
    junk = sorted(((match_task(text).similarity, text) for text in JUNK), reverse=True)
    print(f"| chit-chat ({len(junk)}) | | max {junk[0][0]:.3f} ({junk[0][1]!r}); next {junk[1][0]:.3f} "
          f"({junk[1][1]!r}) | | refused {sum(s < TASK_SIMILARITY for s, _ in junk)}/{len(junk)} |")
    print(f"(threshold TASK_SIMILARITY = {TASK_SIMILARITY})")


def off_palette_colour_tables() -> None:
    """The colour check beyond the eleven palette colours: every lexicon name that stands for one palette colour
    (`colour.world_colour_of`: the nearest, within delta E 20 and 5 nearer than any other), checked against that
    colour alone (should be found) and against each palette colour 10 farther from it than its own (should not);
    and the palette dimmed."""
    found, names, wrong, pairs = 0, 0, 0, 0
    for entry in colour_lexicon():
        lab = to_lab(np.asarray(entry.rgb, dtype=np.float64))
        own = world_colour_of(lab)
        if own is None:
            continue
        names += 1
        found += colour_present(entry, [COLORS[own]]).present
        distance = {name: float(np.linalg.norm(lab - to_lab(np.asarray(rgb, dtype=np.float64))))
                    for name, rgb in COLORS.items()}
        for other, d in distance.items():
            if d > distance[own] + 10:
                pairs += 1
                wrong += colour_present(entry, [COLORS[other]]).present
    print(f"\n### Lexicon names nearest one palette colour: found on it {found}/{names}; found on a clearly "
          f"different one (10 farther) {wrong}/{pairs}")
    print("\n### The palette dimmed (every channel x k, as a darker light would): named colours found beside their own "
          "object, and found beside another palette colour's")
    for k in (1.0, 0.85, 0.7, 0.55):
        dim = {name: tuple(round(v * k) for v in rgb) for name, rgb in COLORS.items()}
        own = [n for n in COLORS if colour_present(lexicon_colour(n), [dim[n]]).present]
        other = sum(colour_present(lexicon_colour(n), [dim[o]]).present for n in COLORS for o in COLORS if o != n)
        print(f"- x{k}: found {len(own)}/{len(COLORS)} (missed: {', '.join(sorted(set(COLORS) - set(own))) or '-'}), "
              f"beside another {other}/{len(COLORS) * (len(COLORS) - 1)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all",
                        choices=("all", "success", "diagnostics", "steps", "experts", "latency", "matrix", "checks",
                                 "colour-layers"))
    parser.add_argument("--checkpoint", default=None, help="planner checkpoint (default: the packaged one)")
    parser.add_argument("--tasks", default=None,
                        help="comma-separated tasks (default: the matrix and checks all seven, the rest "
                             + ",".join(DEFAULT_TASKS) + ")")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--ablation-steps", type=int, default=600)
    parser.add_argument("--ablation-train-episodes", type=int, default=200)
    parser.add_argument("--ablation-out", type=Path, default=Path("runs/bench-experts"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None, help="--part matrix: save every finished cell here")
    parser.add_argument("--resume", action="store_true", help="--part matrix: skip the cells --json already holds")
    parser.add_argument("--overwrite", action="store_true", help="--part matrix: replace an existing --json file")
    parser.add_argument("--layers", default="-1,0,1,2,3,4,8,16,24",
                        help="--part colour-layers: the LM hidden states to compare (-1: the final, 0: embeddings)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = [t.strip() for t in (args.tasks or ",".join(DEFAULT_TASKS)).split(",")]
    machine = platform.processor() or platform.machine()
    print(f"python {platform.python_version()}, torch {torch.__version__}, {machine}")
    if args.part == "matrix":
        matrix_tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else list(TASKS)
        planner = load_planner(args.checkpoint)
        out = MatrixFile(args.json, str(planner.path), args.episodes, args.resume, args.overwrite)
        matrix_table(planner, matrix_tasks, args.episodes, out)
    if args.part == "checks":
        checks_table(args.episodes)
    if args.part == "colour-layers":
        colour_layer_table([int(k) for k in args.layers.split(",")], args.episodes)
    if args.part in ("all", "success"):
        success_table(args.checkpoint, tasks, args.episodes)
    if args.part in ("all", "diagnostics"):
        asked_colour_table(args.checkpoint, tasks, args.episodes)
        diagnostics_table(args.checkpoint, tasks, args.episodes)
    if args.part in ("all", "steps"):
        steps_table(args.checkpoint, tasks, max(1, args.episodes // 2))
    if args.part in ("all", "experts"):
        experts_table(tasks, max(1, args.episodes // 2), args.ablation_steps, args.ablation_train_episodes,
                      args.ablation_out)
    if args.part in ("all", "latency"):
        latency_table(args.checkpoint, args.repeats)


if __name__ == "__main__":
    main()
