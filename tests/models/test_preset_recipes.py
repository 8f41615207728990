"""Each preset trains with its reference's recipe: PPT with Pointcept's PPT-extreme lr, clipping and Mix3D, the
others with the Point-MoE release's; `pmoe train` uses them unless --lr / --block-lr / --mix3d / --set say
otherwise (the library's own train() is tested in tests/engine/test_train_recipe.py)."""

from __future__ import annotations

import pytest

import pmoe_core.engine.train as engine_train
from pmoe_cli.app import main
from pmoe_core.models.presets import (
    POINT_MOE_RECIPE,
    PPT_RECIPE,
    PRESETS,
    recipe_defaults,
)


def test_ppt_presets_have_their_own_recipe():
    assert (PPT_RECIPE.lr, PPT_RECIPE.block_lr, PPT_RECIPE.grad_clip, PPT_RECIPE.mix, PPT_RECIPE.mix3d) == (
        0.005, 0.0005, 3.0, False, 0.8)
    assert (POINT_MOE_RECIPE.lr, POINT_MOE_RECIPE.block_lr, POINT_MOE_RECIPE.grad_clip, POINT_MOE_RECIPE.mix3d) == (
        0.002, 0.0006, 1.0, 0.0)
    for name in PRESETS:
        assert recipe_defaults(name) == (PPT_RECIPE if name.startswith("ppt-") else POINT_MOE_RECIPE), name
    assert recipe_defaults("no-such-preset") == POINT_MOE_RECIPE  # the preset check reports bad names


@pytest.mark.parametrize("preset, extra, expected", [
    ("ppt-tiny", [], (0.005, 0.0005, 3.0, 0.8)),
    ("pmoe-tiny", [], (0.002, 0.0006, 1.0, 0.0)),
    ("ppt-tiny", ["--lr", "0.01", "--block-lr", "0.001"], (0.01, 0.001, 3.0, 0.8)),
    ("ppt-tiny", ["--mix3d", "0"], (0.005, 0.0005, 3.0, 0.0)),
    ("pmoe-tiny", ["--set", "mix3d=0.25", "--set", "grad_clip=2"], (0.002, 0.0006, 2.0, 0.25)),
])
def test_train_command_takes_the_presets_recipe(monkeypatch, tmp_path, preset, extra, expected):
    seen = []

    def fake_train(cfg, progress=None, echo=None, command=None):
        seen.append(cfg)
        raise SystemExit(0)  # stop before any data is read: only the configuration is under test

    monkeypatch.setattr(engine_train, "train", fake_train)
    with pytest.raises(SystemExit):
        main(["train", "--datasets", "scannet", "--data", str(tmp_path), "--preset", preset,
              "--out", str(tmp_path / "run"), *extra])
    (cfg,) = seen
    assert (cfg.optim.lr, cfg.optim.block_lr, cfg.grad_clip, cfg.mix3d) == expected
