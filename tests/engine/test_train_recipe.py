"""The library's train() runs each preset with its reference's recipe (PPT: Pointcept's lr, clipping and Mix3D;
the others: the Point-MoE release's), keeps what a caller sets, records what it ran, and resumes exactly with
Mix3D on."""

from __future__ import annotations

import pytest

import pmoe_core.engine.train as engine_train
from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.engine.config_file import parse_set
from pmoe_core.engine.optim import OptimConfig
from pmoe_core.engine.runlog import read_log
from pmoe_core.engine.train import TrainConfig, config_from_layers, resolve_recipe, train
from pmoe_core.errors import BadInput


def cfg(stores, out, **kw) -> TrainConfig:
    base = dict(data=str(stores), datasets=("scannet", "kitti"), out=str(out), preset="ppt-tiny", steps=6,
                batch_size=2, workers=0, log_every=1, ckpt_every=100, max_points=2000, tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def _scenes_per_step(monkeypatch) -> list[tuple[str, ...]]:
    """Record the dataset ids of the samples each loss sees (one entry per micro-batch)."""
    seen: list[tuple[str, ...]] = []
    loss = engine_train.label_space_loss

    def recording(logits, targets, batch_index, *args, **kwargs):
        assert int(batch_index.max()) + 1 == len(targets.datasets)  # one id per scene the model saw
        seen.append(targets.datasets)
        return loss(logits, targets, batch_index, *args, **kwargs)

    monkeypatch.setattr(engine_train, "label_space_loss", recording)
    return seen


@pytest.mark.parametrize("preset, lrs, clip, mix3d", [
    ("ppt-tiny", (0.005, 0.0005), 3.0, 0.8),  # Pointcept PPT-extreme: lr, block lr, clip_grad, mix_prob
    ("pmoe-tiny", (0.002, 0.0006), 1.0, 0.0),  # the Point-MoE release
])
def test_library_train_uses_the_presets_recipe(tiny_stores, tmp_path, monkeypatch, preset, lrs, clip, mix3d):
    seen = _scenes_per_step(monkeypatch)
    result = train(cfg(tiny_stores, tmp_path / "run", preset=preset, mix=False), echo=lambda s: None)
    log = read_log(result.run_dir)
    config = next(r for r in log if r["event"] == "config")["config"]
    assert (config["optim"]["lr"], config["optim"]["block_lr"], config["grad_clip"], config["mix3d"]) == (*lrs, clip,
                                                                                                           mix3d)
    first = next(r for r in log if r["event"] == "train")
    assert first["lr"] == pytest.approx([lr / 10 for lr in lrs])  # OneCycle starts at max_lr / div_factor
    train_args = load_checkpoint(result.checkpoint)["meta"]["train_args"]
    assert (train_args["optim"]["lr"], train_args["grad_clip"], train_args["mix3d"]) == (lrs[0], clip, mix3d)
    merged = sum(len(datasets) == 1 for datasets in seen)  # batch 2 of one dataset: 1 scene when Mix3D merged it
    assert len(seen) == 6 and all(len(set(datasets)) == 1 for datasets in seen)
    assert next(r for r in log if r["event"] == "end")["mix3d_batches"] == merged
    if mix3d:
        assert 0 < merged < 6  # seed 0's coins at 0.8: some batches merged, not all
    else:
        assert merged == 0


def test_what_a_caller_sets_wins_over_the_recipe(tiny_stores, tmp_path):
    mine = resolve_recipe(cfg(tiny_stores, tmp_path, optim=OptimConfig(lr=0.01, block_lr=0.001), grad_clip=2.0,
                              mix3d=0.0))
    assert (mine.optim.lr, mine.optim.block_lr, mine.grad_clip, mine.mix3d) == (0.01, 0.001, 2.0, 0.0)
    recipe = resolve_recipe(cfg(tiny_stores, tmp_path))
    assert (recipe.optim, recipe.grad_clip, recipe.mix3d) == (OptimConfig(lr=0.005, block_lr=0.0005), 3.0, 0.8)
    with pytest.raises(BadInput, match="mix3d must be a number from 0 to 1"):
        train(cfg(tmp_path / "no-data", tmp_path / "r", mix3d=1.5))


def test_layered_config_and_library_resolve_the_same_recipe(tmp_path):
    """`pmoe train`'s layers (flags, files, --set) sit on the same preset recipe as a TrainConfig built in code."""
    base = {"data": "d", "datasets": ("scannet",), "preset": "ppt-tiny", "optim": {"weight_decay": 0.05}}
    layered = config_from_layers([("the defaults", base)])
    assert layered == resolve_recipe(TrainConfig(data="d", datasets=("scannet",), preset="ppt-tiny"))
    assert (layered.optim.lr, layered.grad_clip, layered.mix3d) == (0.005, 3.0, 0.8)
    overridden = config_from_layers([("the defaults", base), ("--set", parse_set(["mix3d=0", "optim.lr=0.01"]))])
    assert (overridden.optim.lr, overridden.optim.block_lr, overridden.mix3d) == (0.01, 0.0005, 0.0)


def test_resume_with_mix3d_continues_exactly(tiny_stores, tmp_path):
    # 6 batches an epoch: 8 steps cross into the next epoch; at 0.5 some batches are merged and some not.
    straight = train(cfg(tiny_stores, tmp_path / "a", steps=8, mix3d=0.5), echo=lambda s: None)
    first = train(cfg(tiny_stores, tmp_path / "b", steps=8, mix3d=0.5, stop_at=3), echo=lambda s: None)
    second = train(cfg(tiny_stores, tmp_path / "b", steps=8, mix3d=0.5, resume=True), echo=lambda s: None)
    assert first.steps == 3 and second.steps == 8
    assert first.losses + second.losses == pytest.approx(straight.losses, rel=1e-5, abs=1e-6)
    assert next(r for r in read_log(tmp_path / "a") if r["event"] == "end")["mix3d_batches"] > 0  # merged batches
