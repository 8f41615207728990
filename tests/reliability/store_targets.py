"""Fuzz targets for the scene store's own files: one small valid store, the files of it a mutation edits, and the
reading paths every command uses (StoreReader open / read / iter_field / class embeddings, `store_info` as
`pmoe info` runs it, and `pmoe export` to PLY)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmoe_cli.export import ExportFormat, export
from pmoe_core.scene import Scene
from pmoe_core.store import StoreReader, StoreWriter, store_info, store_path

SPLITS = {"train": 3, "val": 1}


def store_scene(name: str, n: int, seed: int) -> Scene:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, 3))
    return Scene(name=name, coord=rng.uniform(-3, 3, (n, 3)).astype(np.float32),
                 color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
                 normal=(normal / np.linalg.norm(normal, axis=1, keepdims=True)).astype(np.float32),
                 strength=rng.random(n, dtype=np.float32), segment=rng.integers(-1, 20, n).astype(np.int16),
                 instance=rng.integers(-1, 30, n).astype(np.int32))


def build_store(root: Path) -> str:
    """A scannet store with every field: train 3 scenes, val 1 (a few hundred points each)."""
    url = store_path(str(root), "scannet")
    with StoreWriter.open(url, "scannet", source="fuzz fixture") as w:
        for split, count in SPLITS.items():
            for i in range(count):
                w.append(split, store_scene(f"{split}{i}", 300 + 37 * i, seed=i + 10 * len(split)))
    return url


@dataclass(frozen=True)
class StoreTarget:
    """`file` (relative to the store) is what a mutation edits; `text_header` picks decimal or binary number edits."""

    name: str
    file: str
    text_header: bool
    header_bytes: int = 512


STORE_FILES: list[StoreTarget] = [
    StoreTarget("root_zarr_json", "zarr.json", text_header=True, header_bytes=1 << 16),
    StoreTarget("split_zarr_json", "train/zarr.json", text_header=True),
    StoreTarget("offsets_zarr_json", "train/offsets/zarr.json", text_header=True, header_bytes=4096),
    StoreTarget("offsets_chunk", "train/offsets/c/0", text_header=False, header_bytes=64),
    StoreTarget("names_zarr_json", "train/names/zarr.json", text_header=True, header_bytes=4096),
    StoreTarget("names_chunk", "train/names/c/0", text_header=False, header_bytes=64),
    StoreTarget("coord_zarr_json", "train/coord/zarr.json", text_header=True, header_bytes=4096),
    StoreTarget("coord_shard", "train/coord/c/0/0", text_header=False, header_bytes=64),
    StoreTarget("segment_shard", "train/segment/c/0", text_header=False, header_bytes=64),
    StoreTarget("embeddings_chunk", "class_embeddings/c/0/0", text_header=False, header_bytes=64),
]


def read_everything(url: str, export_to: Path) -> list[Scene]:
    """Every reading path a command takes, on every split; returns the scenes read (for the caller's checks)."""
    reader = StoreReader(url)
    scenes: list[Scene] = []
    for split in reader.splits:
        scenes += list(reader.iter_scenes(split))
        for field in reader.fields(split):
            for _ in reader.iter_field(split, field):
                pass
    assert reader.class_embeddings.ndim == 2
    store_info(url)
    export(url, export_to, split="train", scene="0", format=ExportFormat.ply, overwrite=True)
    return scenes
