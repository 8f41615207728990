"""Fixtures of the route-inspect tests: the engine's tiny stores, one trained Point-MoE checkpoint, and one
route-inspect run over several scenes (store split, a single store scene of another dataset, a PLY file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from support_loader import inspect_support

support = inspect_support()
tiny_stores = support.tiny_stores
engine_cache = support.engine_cache


@pytest.fixture(scope="session")
def checkpoints(tiny_stores, tmp_path_factory):
    return support.checkpoints(tiny_stores, tmp_path_factory.mktemp("inspect-ckpts"))


@dataclass(frozen=True)
class Inspected:
    out: Path
    result: object  # RouteInspectResult
    ply_input: Path  # the PLY file given as one of the scenes
    specs: tuple[str, ...]


@pytest.fixture(scope="session")
def ply_scene(tiny_stores, tmp_path_factory) -> Path:
    """scannet val_000 written as a PLY file (colors, normals, labels)."""
    from pmoe_core.io import write_ply
    from pmoe_core.store import StoreReader

    path = tmp_path_factory.mktemp("inspect-ply") / "room_copy.ply"
    write_ply(StoreReader(str(tiny_stores / "scannet.zarr")).read("val", "val_000"), path)
    return path


@pytest.fixture(scope="session")
def inspected(checkpoints, tiny_stores, ply_scene, tmp_path_factory) -> Inspected:
    from pmoe_core.inspect.run import RouteInspectConfig, route_inspect

    specs = (f"{tiny_stores / 'scannet.zarr'}::val", f"{tiny_stores / 'semantickitti.zarr'}::val::val_001",
             str(ply_scene))
    out = tmp_path_factory.mktemp("inspect-out")
    result = route_inspect(RouteInspectConfig(str(checkpoints.pmoe), specs, out=str(out), max_queries=1500))
    return Inspected(out, result, ply_scene, specs)
