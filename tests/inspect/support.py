"""Shared by tests/inspect and tests/cli/test_route_inspect.py: the engine's tiny stores and ONE trained checkpoint.

Loaded through tests/support_loader.py under one fixed module name, so every test file shares the memo below and
the 20-step training runs once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support_loader import engine_conftest

TESTS = Path(__file__).resolve().parent.parent


engine = engine_conftest()
tiny_stores = engine.tiny_stores
engine_cache = engine.engine_cache
room = engine.room
street = engine.street


@dataclass(frozen=True)
class Checkpoints:
    pmoe: Path  # pmoe-tiny, 20 steps on scannet + semantickitti
    ptv3: Path  # ptv3-tiny (no MoE layers), 1 step


_MEMO: dict[str, Checkpoints] = {}


def checkpoints(stores: Path, root: Path) -> Checkpoints:
    """Train both checkpoints into `root` on the first call of the session; later calls reuse them."""
    if "ckpts" not in _MEMO:
        from pmoe_core.engine.train import TrainConfig, train

        def run(preset: str, steps: int) -> Path:
            cfg = TrainConfig(data=str(stores), datasets=("scannet", "semantickitti"), out=str(root / preset),
                              steps=steps, batch_size=2, workers=0, preset=preset, log_every=10, ckpt_every=1000,
                              tensorboard=False)
            return train(cfg, echo=lambda _: None).checkpoint

        _MEMO["ckpts"] = Checkpoints(pmoe=run("pmoe-tiny", 20), ptv3=run("ptv3-tiny", 1))
    return _MEMO["ckpts"]

