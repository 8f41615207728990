"""Validation during training: ckpt-best.pt follows the best mean mIoU (also across --resume), the last K step
checkpoints are kept, and a real validation logs per-dataset mIoU."""

from __future__ import annotations

import math

import pytest

import pmoe_core.engine.train as train_module
from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.engine.runlog import read_log
from pmoe_core.engine.train import BEST_NAME, TrainConfig, train
from pmoe_core.engine.validation import ValResult
from pmoe_core.errors import StoreError


def cfg(stores, out, **kw) -> TrainConfig:
    base = dict(data=str(stores), datasets=("scannet", "kitti"), out=str(out), preset="pmoe-tiny", steps=8,
                batch_size=1, workers=0, log_every=100, ckpt_every=2, max_points=2000, tensorboard=False,
                val_every=2)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def fake_scores(monkeypatch):
    """Validation replaced by a fixed mean mIoU per step (the selection logic, not the model, is under test)."""
    scores = {2: 0.2, 4: 0.5, 6: 0.3, 8: 0.4}
    calls = []

    def fake(model, meta, data, datasets, step, limit, device):
        calls.append(step)
        value = scores[step]
        return ValResult(step=step, miou={"scannet": value, "semantickitti": value}, mean_miou=value, scenes=2,
                         seconds=0.0)

    monkeypatch.setattr(train_module, "validate", fake)
    return calls


def test_best_checkpoint_follows_the_best_mean_miou_and_keep_last(tiny_stores, tmp_path, fake_scores):
    out = tmp_path / "run"
    result = train(cfg(tiny_stores, out, keep_last=2))
    assert fake_scores == [2, 4, 6, 8]
    best = load_checkpoint(out / BEST_NAME)["meta"]
    assert best["step"] == 4 and best["best"]["mean_miou"] == 0.5
    assert load_checkpoint(out / "ckpt.pt")["meta"]["best"]["step"] == 4 and result.best["step"] == 4
    assert sorted(p.name for p in out.glob("ckpt-step*.pt")) == ["ckpt-step000006.pt", "ckpt-step000008.pt"]
    assert load_checkpoint(out / "ckpt-step000006.pt")["meta"]["step"] == 6
    vals = [r for r in read_log(out) if r["event"] == "val"]
    assert [(r["step"], r["best_step"]) for r in vals] == [(2, 2), (4, 4), (6, 4), (8, 4)]


def test_best_so_far_survives_resume(tiny_stores, tmp_path, fake_scores):
    out = tmp_path / "run"
    train(cfg(tiny_stores, out, stop_at=5))  # validated at 2 and 4; saved at 4 and at the stop
    assert load_checkpoint(out / "ckpt.pt")["meta"]["best"]["step"] == 4
    before = (out / BEST_NAME).stat().st_mtime_ns
    resumed = train(cfg(tiny_stores, out, resume=True))
    assert fake_scores == [2, 4, 6, 8]
    assert resumed.best["step"] == 4 and resumed.best["mean_miou"] == 0.5  # 0.3 and 0.4 after resume do not win
    assert (out / BEST_NAME).stat().st_mtime_ns == before
    assert load_checkpoint(out / BEST_NAME)["meta"]["step"] == 4


def test_real_validation_logs_per_dataset_miou_and_leaves_training_alone(tiny_stores, tmp_path):
    plain = train(cfg(tiny_stores, tmp_path / "plain", steps=2, val_every=0))
    validated = train(cfg(tiny_stores, tmp_path / "val", steps=2, val_every=1, val_limit=1))
    assert validated.losses == plain.losses  # validation touches no RNG and no weights
    vals = [r for r in read_log(tmp_path / "val") if r["event"] == "val"]
    assert [r["step"] for r in vals] == [1, 2] and all(r["scenes"] == 2 for r in vals)
    for r in vals:
        assert set(r["miou"]) == {"scannet", "semantickitti"}
        assert all(0 <= v <= 1 for v in r["miou"].values())
        assert math.isclose(r["mean_miou"], sum(r["miou"].values()) / 2)
    assert load_checkpoint(tmp_path / "val" / BEST_NAME)["meta"]["best"]["step"] == validated.best["step"]


def test_validation_needs_val_splits_before_training(tmp_path):
    from tests.engine.conftest import room, write_store

    write_store(tmp_path / "data", "scannet", room, train=2, val=0, seed=0)
    with pytest.raises(StoreError, match="needs a val split"):
        train(cfg(tmp_path / "data", tmp_path / "run", datasets=("scannet",)))
    assert not (tmp_path / "run" / "ckpt.pt").exists()
