"""Reader-only throughput of the outdoor sources (list_scenes + read_scene, no store), vs the naive baselines of
bench/convert.py, on the same synthetic bytes. Separates the sources' cost from the store writer's.

Usage: .venv/bin/python bench/outdoor_readers.py [--scenes 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.convert import DATASETS
from pmoe_core.sources import get_source


def read_all(name: str, raw: Path, **options) -> int:
    module = get_source(name)
    opts = module.Options(**options)
    return sum(len(module.read_scene(ref, opts, lambda m: None)) for ref in module.list_scenes(raw, opts))


def best_of(fn, repeat: int = 3) -> tuple[int, float]:
    best, points = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        points = fn()
        best = min(best, time.perf_counter() - started)
    return points, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=6)
    args = parser.parse_args()
    print("| dataset | format | points | naive baseline pts/s | pmoe reader pts/s | speed-up |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt in (("semantickitti", ""), ("nuscenes", ""), ("waymo", "v2"), ("waymo", "v1")):
            raw = Path(tmp) / f"{name}{fmt}"
            writer_kwargs = {"fmt": fmt} if fmt else {}
            DATASETS[name].write(raw, scenes=args.scenes, seed=0, **writer_kwargs)
            points, seconds = best_of(lambda: read_all(name, raw))
            if fmt == "v1":
                base = "-"
            else:
                base_points, base_s = best_of(lambda: DATASETS[name].baseline(raw), repeat=1)
                assert base_points == points
                base = f"{base_points / base_s:,.0f}"
            speed = "-" if base == "-" else f"{(points / seconds) / (base_points / base_s):.1f}x"
            print(f"| {name} | {fmt or 'native'} | {points:,} | {base} | {points / seconds:,.0f} | {speed} |",
                  flush=True)


if __name__ == "__main__":
    main()
