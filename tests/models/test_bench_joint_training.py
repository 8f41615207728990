"""bench/joint_training.py compares the three tiny models at equal active parameters; these checks keep it so."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from pmoe_core.models import PRESETS, build_model, count_parameters
from pmoe_core.models.presets import pmoe_tiny

BENCH = Path(__file__).resolve().parents[2] / "bench" / "joint_training.py"


@pytest.fixture(name="bench")
def _bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("joint_training_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Register the bench-local preset for this test only: the library's PRESETS must not keep it.
    monkeypatch.setitem(PRESETS, module.MATCHED, module.pmoe_tiny_matched)
    return module


def test_active_parameters_equal_within_one_percent(bench):
    counts = bench.check_matched()
    assert set(counts) == {"ptv3-tiny", "ppt-tiny", "pmoe-tiny-matched"}
    assert max(counts.values()) / min(counts.values()) - 1 <= 0.01


def test_ppt_counts_one_norm_bank_per_point(bench):
    total, _ = count_parameters(build_model("ppt-tiny", dataset_names=bench.TRAINED))
    active = bench.active_parameters("ppt-tiny")
    assert active == bench.active_parameters("ptv3-tiny")
    assert total > active  # the other four banks exist but a point does not go through them


def test_library_pmoe_tiny_is_not_matched_and_is_refused(bench, monkeypatch):
    assert bench.active_parameters("pmoe-tiny") > 1.1 * bench.active_parameters("ptv3-tiny")
    monkeypatch.setattr(bench, "MODELS", ("ptv3-tiny", "ppt-tiny", "pmoe-tiny"))
    with pytest.raises(SystemExit, match="active parameters differ"):
        bench.check_matched()


def test_matched_config_keeps_the_moe_and_runs(bench, make_batch):
    cfg = bench.pmoe_tiny_matched()
    assert cfg.moe == pmoe_tiny().moe
    assert "pmoe-tiny" in PRESETS and PRESETS["pmoe-tiny"]().enc_channels == (16, 32, 64, 64, 64)
    torch.manual_seed(0)
    model = build_model(bench.MATCHED)
    batch = make_batch((300, 200))
    out = model(batch)
    assert out.shape == (batch.coord.shape[0], model.out_channels) and torch.isfinite(out).all()


def test_summary_gives_mean_and_spread_over_seeds(bench, tmp_path, capsys):
    """Three seeds of one model -> one row with the mean and the min..max of every column."""
    import json

    names = [*bench.TRAINED, *bench.ZERO_SHOT]
    paths = []
    for seed, base in enumerate((10.0, 20.0, 30.0)):
        row = {"model": "m", "miou": {n: base for n in names}, "avg_trained": base, "avg_zero_shot": base + 1}
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps({"steps": 3, "scenes": 2, "seed": seed, "rows": [row]}))
        paths.append(path)
    bench.summarise(paths)
    out = capsys.readouterr().out
    assert "seeds 0, 1, 2" in out
    assert "| m | 20.0 (10.0..30.0)" in out and "21.0 (11.0..31.0) |" in out
