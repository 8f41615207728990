"""3D QA: the answering model against a text-only baseline (same LM, same recipe, no scene tokens) and a majority
answer per question type, on held-out synthetic questions, per question type.

    OMP_NUM_THREADS=1 python bench/qa.py --text-only RUN_TEXT/qa.pt [--checkpoint CKPT] \\
        [--tabletop-scenes 200] [--rooms 100] [--no-em10] [--json qa_bench.json]

The text-only model is trained by the default's own command plus `--text-only`
(`pmoe qa train --text-only --out RUN_TEXT`). Held-out questions: tabletop scenes of seeds 100000.. (the generator
never trains on them) and the val split of the synthetic ScanNet rooms (the model trains on the train split), asked
in the training templates ("heldout-scenes") and in held-out templates ("heldout-templates"), reported separately.
EM@1 as ScanQA/SQA3D define it and CIDEr via pycocoevalcap (qa/metrics.py), both of the greedy answer; EM@10 of
a beam search of ten (the majority baseline: its type's ten most common training answers). Every question here depends on its scene
(colours, counts, existence, supports, relations, what is next to what, the situated agent's left and right); the
text-only model can only exploit the answers' priors given the wording. Rows print as each condition finishes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from pmoe_core.jsonio import write_json_atomic
from pmoe_core.outputs import check_output_file
from pmoe_core.qa.evaluate import CONDITIONS, BenchSpec, run_bench
from pmoe_core.qa.train import load_qa_model

MODELS = ("model", "text-only", "majority")


def compare(checkpoint: str | None, text_only: str, spec: BenchSpec, em10: bool = True) -> dict:
    """Scores of the three per condition and question type: {condition: {type: {model, text-only, majority}}}."""
    ours = load_qa_model(checkpoint)
    base = load_qa_model(text_only, ours.model.features)  # the same frozen LM, loaded once
    if base.model.config.scene_tokens:
        raise SystemExit(f"{text_only}: not a text-only checkpoint (train it with `pmoe qa train --text-only`)")
    out = {"checkpoint": str(ours.path), "text_only": str(base.path), "command": ours.meta.get("command"),
           "text_only_command": base.meta.get("command"), "conditions": {}}
    for condition in CONDITIONS:
        started = time.perf_counter()
        a = run_bench(ours, spec, (condition,), em10=em10)["conditions"][condition]
        b = run_bench(base, spec, (condition,), em10=em10)["conditions"][condition]
        rows = {t: {"model": a[t]["model"], "text-only": b[t]["model"], "majority": a[t]["majority"]} for t in a}
        out["conditions"][condition] = rows
        print_table(condition, rows, time.perf_counter() - started, em10)
    return out


def print_table(condition: str, rows: dict, seconds: float, em10: bool) -> None:
    keys = ("em1", "em10", "cider") if em10 else ("em1", "cider")
    names = {"em1": "EM@1", "em10": "EM@10", "cider": "CIDEr"}
    print(f"\n{condition} ({seconds:.0f} s)\n")
    print("| question type | questions | " + " | ".join(f"{m} {names[k]}" for m in MODELS for k in keys) + " |")
    print("|---|---:|" + "---:|" * (len(keys) * len(MODELS)))
    for qtype, row in rows.items():
        cells = " | ".join(f"{row[m][k]:.1f}" for m in MODELS for k in keys)
        print(f"| {qtype} | {row['model']['count']} | {cells} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="the answering model (default: the packaged one)")
    parser.add_argument("--text-only", required=True, help="the text-only baseline's checkpoint")
    parser.add_argument("--tabletop-scenes", type=int, default=200, help="held-out tabletop scenes")
    parser.add_argument("--rooms", type=int, default=100, help="held-out rooms (val split)")
    parser.add_argument("--no-em10", action="store_true", help="skip EM@10 (the beam searches: ~6x the time)")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    args = parser.parse_args()
    if args.json is not None:
        check_output_file(args.json, overwrite=True)
    started = time.perf_counter()
    report = compare(args.checkpoint, args.text_only, BenchSpec(args.tabletop_scenes, args.rooms), not args.no_em10)
    report["bench_command"] = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
    print(f"\n{report['bench_command']}: {report['seconds']:.0f} s")
    if args.json is not None:
        write_json_atomic(args.json, report, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
