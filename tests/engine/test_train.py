"""Training: learning happens, checkpoints are complete and safe, resume is exact, DDP stays in sync."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.engine.runlog import read_log
from pmoe_core.engine.train import TrainConfig, train
from pmoe_core.errors import BadInput, FormatError, StoreError


def cfg(stores: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(stores), datasets=("scannet", "kitti"), out=str(out), preset="pmoe-tiny", steps=8,
                batch_size=2, workers=0, log_every=4, ckpt_every=100, max_points=4000, tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def test_learns_and_writes_a_complete_checkpoint(tiny_stores, tmp_path):
    result = train(cfg(tiny_stores, tmp_path / "run", steps=12))
    assert result.steps == 12 and not result.interrupted
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < 0.6 * first, result.losses
    payload = load_checkpoint(result.checkpoint)
    meta = payload["meta"]
    assert meta["complete"] and meta["step"] == 12 and meta["datasets"] == ["scannet", "semantickitti"]
    assert meta["label_spaces"]["scannet"][1] == "floor"
    assert meta["vocabulary"]["semantickitti"][5] == "person"
    assert payload["class_embeddings"].shape == (20 + 19, 384)
    train_logs = [r for r in read_log(tmp_path / "run") if r["event"] == "train"]
    assert [r["step"] for r in train_logs] == [4, 8, 12]
    experts = train_logs[-1]["experts"]
    assert experts, "MoE layers should report routing statistics"
    for layer in experts.values():
        assert len(layer["fractions"]) == 4 and abs(sum(layer["fractions"]) - 1) < 1e-3
        assert 0 <= layer["entropy"] <= torch.log(torch.tensor(4.0)).item() + 1e-6


def test_resume_continues_exactly(tiny_stores, tmp_path):
    straight = train(cfg(tiny_stores, tmp_path / "a"))
    first = train(cfg(tiny_stores, tmp_path / "b", stop_at=4))
    assert first.steps == 4 and not load_checkpoint(first.checkpoint)["meta"]["complete"]
    second = train(cfg(tiny_stores, tmp_path / "b", resume=True))
    assert second.steps == 8
    assert first.losses + second.losses == pytest.approx(straight.losses, rel=1e-5, abs=1e-6)
    a = load_checkpoint(straight.checkpoint)["model"]
    b = load_checkpoint(second.checkpoint)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_refuses_to_overwrite_or_resume_a_different_run(tiny_stores, tmp_path):
    train(cfg(tiny_stores, tmp_path / "r", steps=2))
    with pytest.raises(BadInput, match="already exists"):
        train(cfg(tiny_stores, tmp_path / "r", steps=2))
    with pytest.raises(BadInput, match="cannot resume"):
        train(cfg(tiny_stores, tmp_path / "r", steps=2, resume=True, datasets=("scannet",)))
    with pytest.raises(BadInput, match="no ckpt.pt"):
        train(cfg(tiny_stores, tmp_path / "none", resume=True))


def test_missing_store_is_a_clear_error(tiny_stores, tmp_path):
    with pytest.raises(StoreError, match="no scene store for waymo"):
        train(cfg(tiny_stores, tmp_path / "x", datasets=("waymo",)))


def test_unmixed_batches_still_train(tiny_stores, tmp_path):
    result = train(cfg(tiny_stores, tmp_path / "u", steps=4, mix=False, weights={"scannet": 3, "kitti": 1}))
    assert result.steps == 4 and all(map(lambda v: v == v, result.losses))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny_stores, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "pmoe_cli", "train", "--preset", "pmoe-tiny", "--datasets", "scannet,kitti", "--data",
           str(tiny_stores), "--out", str(out), "--steps", "4", "--batch-size", "1", "--workers", "0",
           "--log-every", "2", "--max-points", "3000", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    end = [r for r in read_log(out) if r["event"] == "end"]
    assert len(end) == 1, "only rank 0 writes the log"
    assert end[0]["world_size"] == 2 and end[0]["in_sync"] is True
    assert load_checkpoint(out / "ckpt.pt")["meta"]["complete"]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resumes(tiny_stores, tmp_path):
    out = tmp_path / "int"
    # Like `python -m pmoe_cli`, but with Python's Ctrl-C handler even when this test runs as a background job
    # (a non-interactive shell starts those with SIGINT ignored, which the child would inherit).
    cli = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "from pmoe_cli.app import main; main()")
    args = [sys.executable, "-c", cli, "train", "--preset", "pmoe-tiny", "--datasets", "scannet",
            "--data", str(tiny_stores), "--out", str(out), "--steps", "400", "--batch-size", "1", "--workers", "0",
            "--log-every", "1", "--max-points", "2000", "--threads", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    log = out / "log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and log.read_text().count("\"event\": \"train\"") >= 2):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    meta = load_checkpoint(out / "ckpt.pt")["meta"]
    assert not meta["complete"] and meta["step"] >= 2
    resumed = subprocess.run(args[:args.index("400")] + ["402"] + args[args.index("400") + 1:] + ["--resume"],
                             capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode != 0 and "schedule has 400 steps" in resumed.stderr  # a new schedule is refused
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == sorted(steps)


def test_precise_bn_recalibrates_running_statistics(tiny_stores, tmp_path):
    from pmoe_core.engine.checkpoint import load_checkpoint as load

    plain = train(cfg(tiny_stores, tmp_path / "p", steps=4))
    precise = train(cfg(tiny_stores, tmp_path / "q", steps=4, precise_bn=6))
    a, b = load(plain.checkpoint)["model"], load(precise.checkpoint)["model"]
    means = [k for k in a if k.endswith("running_mean")]
    assert means
    # Same weights (the recalibration runs after the last step), different BatchNorm statistics.
    weights = [k for k in a if not k.startswith("backbone.") or "running" not in k and "num_batches" not in k]
    for k in weights:
        torch.testing.assert_close(a[k], b[k])
    assert any(not torch.allclose(a[k], b[k]) for k in means)
    # With momentum 0.01 four steps barely move the running mean off its initial zeros; the exact average does.
    assert sum(float(b[k].abs().mean()) for k in means) > 5 * sum(float(a[k].abs().mean()) for k in means)


def test_ppt_baseline_trains_unmixed_and_keeps_zero_shot_norms(tiny_stores, tmp_path, capsys):
    from pmoe_core.engine.model_io import load_segmentation_model

    result = train(cfg(tiny_stores, tmp_path / "ppt", preset="ppt-tiny", steps=3))
    assert "training with --no-mix" in capsys.readouterr().out
    model, meta = load_segmentation_model(str(result.checkpoint))
    unseen = meta["config"]["unseen"]
    assert unseen["matterport3d"] == "scannet" and unseen["waymo"] == "semantickitti"
    assert model.backbone.cfg.unseen == unseen


def test_damaged_checkpoint_is_refused_on_resume(tiny_stores, tmp_path):
    out = tmp_path / "run"
    train(cfg(tiny_stores, out, steps=2, datasets=("scannet",)))
    ckpt = out / "ckpt.pt"
    good = ckpt.read_bytes()
    payload = load_checkpoint(ckpt)

    def edited(**changes):
        torch.save({**payload, **changes}, ckpt)

    damages = {
        "empty": lambda: ckpt.write_bytes(b""),
        "cut": lambda: ckpt.write_bytes(good[: len(good) // 3]),
        "optimizer groups": lambda: edited(optimizer={**payload["optimizer"], "param_groups": []}),
        "optimizer moments": lambda: edited(optimizer={**payload["optimizer"], "state": {
            k: {**v, "exp_avg": torch.zeros(3)} for k, v in payload["optimizer"]["state"].items()}}),
        "scheduler": lambda: edited(scheduler={**payload["scheduler"], "last_epoch": "x"}),
        "loader": lambda: edited(loader={"epoch": -1, "position": 0}),
        "rng": lambda: edited(rng={**payload["rng"], "torch": torch.zeros(3, dtype=torch.uint8)}),
        "missing rng": lambda: edited(rng=None),
    }
    for name, damage in damages.items():
        damage()
        with pytest.raises(FormatError, match="ckpt.pt") as err:
            train(cfg(tiny_stores, out, steps=2, datasets=("scannet",), resume=True))
        assert "\n" not in err.value.message, name
    ckpt.write_bytes(good)  # the real one still resumes (nothing left to do: it is complete)
    assert train(cfg(tiny_stores, out, steps=2, datasets=("scannet",), resume=True)).steps == 2


def test_disk_full_while_saving_is_one_line_and_keeps_the_previous_checkpoint(tiny_stores, tmp_path, monkeypatch,
                                                                              capsys):
    from pmoe_cli.app import main

    import builtins

    import pmoe_core.engine.checkpoint as checkpoint

    out = tmp_path / "full"
    saves = []

    class FullDisk:
        """A file whose writes fail with ENOSPC after 4 kB, as on a full disk (torch's zip writer then raises a
        RuntimeError of its own while closing: the real failure mode, seen on a 20 MB tmpfs)."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fills_the_disk(path, mode="r", *args, **kwargs):
        saves.append(path)
        f = builtins.open(path, mode, *args, **kwargs)
        return f if len(saves) == 1 else FullDisk(f)

    monkeypatch.setattr(checkpoint, "open", fills_the_disk, raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--preset", "pmoe-tiny", "--datasets", "scannet", "--data", str(tiny_stores), "--out", str(out),
              "--steps", "2", "--ckpt-every", "1", "--batch-size", "1", "--workers", "0", "--max-points", "2000"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and len(saves) == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"pmoe: error: {out / 'ckpt.pt'}: No space left on device", err
    monkeypatch.undo()
    assert load_checkpoint(out / "ckpt.pt")["meta"]["step"] == 1  # the step-1 checkpoint is intact
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".pt")) == ["ckpt.pt"]  # no partial left


@pytest.mark.parametrize("change, message", [
    (dict(datasets=("kitti", "semantickitti")), "'kitti' and 'semantickitti' are both semantickitti"),
    (dict(weights={"scannet": float("nan"), "kitti": 1.0}), "--weights scannet must be a non-negative number"),
    (dict(grad_clip=0.0), "grad_clip must be a positive number"),
    (dict(device="cuda:99"), "cuda:99"),
    (dict(device="nonsense"), "not a device"),
    (dict(backend="nope"), "--backend"),
])
def test_options_are_checked_before_the_data_is_read(tmp_path, change, message):
    with pytest.raises(BadInput, match=message):
        train(cfg(tmp_path / "no-such-data", tmp_path / "run", **change))
    assert not (tmp_path / "run").exists()


def test_logged_learning_rate_is_the_rate_the_step_used(tiny_stores, tmp_path):
    from torch import nn

    from pmoe_core.engine.optim import OptimConfig, make_optimizer

    result = train(cfg(tiny_stores, tmp_path / "lr", steps=6, log_every=1, batch_size=1, max_points=2000))
    logged = [r["lr"] for r in read_log(result.run_dir) if r["event"] == "train"]
    shadow = nn.ModuleDict({"blocks": nn.Linear(1, 1), "head": nn.Linear(1, 1)})  # one parameter of each group
    optimizer, scheduler = make_optimizer(shadow, OptimConfig(), 6)
    expected = []
    for _ in range(6):
        expected.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert sum(logged, []) == pytest.approx(sum(expected, []), rel=1e-9)
    assert logged[0] == pytest.approx([0.002 / 10, 0.0006 / 10])  # OneCycle starts at max_lr / div_factor


def test_run_length_steps_win_epochs_convert_release_default(tmp_path):
    from pmoe_core.engine.train import RELEASE_EPOCHS, run_length

    base = cfg(tmp_path, tmp_path / "r", steps=None)
    assert run_length(base, 10) == RELEASE_EPOCHS * 10 == 1200  # the release's 120 epochs by default
    assert run_length(cfg(tmp_path, tmp_path / "r", steps=None, epochs=3, accum=4), 10) == 3 * 3  # ceil(10 / 4)
    assert run_length(cfg(tmp_path, tmp_path / "r", steps=7), 10) == 7
    with pytest.raises(BadInput, match="--steps and --epochs both given"):
        train(cfg(tmp_path / "no-data", tmp_path / "r", steps=7, epochs=2))


def test_epochs_set_the_schedule_and_resume_checks_it(tiny_stores, tmp_path):
    # 12 train scenes, batch 4: 3 steps an epoch.
    result = train(cfg(tiny_stores, tmp_path / "e", steps=None, epochs=1, batch_size=4, max_points=2000))
    assert result.steps == result.total_steps == 3
    assert load_checkpoint(result.checkpoint)["meta"]["total_steps"] == 3
    with pytest.raises(BadInput, match="schedule has 3 steps, not 6"):
        train(cfg(tiny_stores, tmp_path / "e", steps=None, epochs=2, batch_size=4, max_points=2000, resume=True))
