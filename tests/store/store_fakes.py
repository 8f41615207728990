"""Test helpers for the store and the converter machinery: synthetic scenes and a fake source module.

The fake source follows the source-module protocol (pmoe_core/sources/base.py) and poses as "scannet" when a test
points `pmoe_core.sources.SOURCE_MODULES["scannet"]` at this module. Its raw root is a folder of
`<split>/<name>.scene` files (see `make_raw`); scene content is derived from the name alone (crc32 seed), so
every process reads identical scenes. Options make chosen scenes fail or warn.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.scene import Scene
from pmoe_core.sources.base import SceneRef, Warn

NAME = "scannet"
NUM_CLASSES = 20


def make_scene(name: str, n: int, *, fields: tuple[str, ...] = ("color", "normal", "strength", "segment", "instance"),
               seed: int | None = None) -> Scene:
    """A deterministic scene of `n` points with the given optional fields."""
    rng = np.random.default_rng(zlib.crc32(name.encode()) if seed is None else seed)
    data = {
        "coord": rng.uniform(-5, 5, (n, 3)).astype(np.float32),
        "color": rng.integers(0, 256, (n, 3), dtype=np.uint8),
        "normal": rng.normal(size=(n, 3)).astype(np.float32),
        "strength": rng.random(n, dtype=np.float32),
        "segment": rng.integers(-1, NUM_CLASSES, n).astype(np.int16),
        "instance": rng.integers(-1, 50, n).astype(np.int32),
    }
    return Scene(name=name, coord=data["coord"], **{f: data[f] for f in fields})


def assert_same_scene(a: Scene, b: Scene) -> None:
    assert a.name == b.name
    assert a.present_fields() == b.present_fields()
    for field, value in a.arrays().items():
        other = getattr(b, field)
        assert other.dtype == value.dtype, field
        np.testing.assert_array_equal(other, value, err_msg=field)


@pytest.fixture(scope="module", autouse=False)
def embedding_cache(tmp_path_factory):
    """One MiniLM embedding cache for the whole session (the model loads once; later opens hit the disk cache)."""
    cache = tmp_path_factory.getbasetemp() / "pmoe-embedding-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PMOE_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture
def fake_source(monkeypatch):
    """Route dataset "scannet" to this module for the duration of a test."""
    import pmoe_core.sources

    monkeypatch.setitem(pmoe_core.sources.SOURCE_MODULES, "scannet", __name__)
    return __name__


# --- the fake source module protocol ---


@dataclass
class Options:
    points: int = 200  # base points per scene (each scene adds crc32(name) % 97)
    fail: str = ""  # comma-separated scene names whose file is "truncated" (FormatError)
    missing: str = ""  # comma-separated scene names whose file "vanished" (MissingFile)
    warn_on: str = ""  # comma-separated scene names whose reader warns
    scale: float = 1.0


def make_raw(root: Path, counts: dict[str, int]) -> Path:
    """A fake raw root with counts[split] scene files per split."""
    for split, count in counts.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (folder / f"{split}{i:03d}.scene").write_text("fake")
    return root


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    refs = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for f in sorted(folder.glob("*.scene")):
            refs.append(SceneRef(f.stem, folder.name, (str(f),)))
    return refs


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    path = ref.paths[0]
    if ref.name in options.fail.split(","):
        raise FormatError("truncated at byte 12 (fake)", path)
    if ref.name in options.missing.split(","):
        raise MissingFile("vanished (fake)", path)
    if ref.name in options.warn_on.split(","):
        warn(f"{path}: 3 stray bytes ignored (fake)")
    n = options.points + zlib.crc32(ref.name.encode()) % 97
    fields = ("color", "normal", "instance") if ref.split == "test" else ("color", "normal", "segment", "instance")
    scene = make_scene(ref.name, n, fields=fields)
    scene.coord *= np.float32(options.scale)
    return scene
