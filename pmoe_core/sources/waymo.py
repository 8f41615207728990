"""Waymo Open Dataset (3D semantic segmentation) -> Scene, one scene per frame, in the vehicle frame.

Reads v2 parquet components (preferred) or v1 TFRecords, both without TensorFlow. All five lasers and both returns
become points (laser-name order, return 1 then 2); only TOP carries labels, so other lasers' points are ignore
(-1). Labels: Waymo22 = raw type - 1 (UNDEFINED -> ignore); strength = tanh(intensity), as Pointcept does.

Splits come from the official folders: `training/` -> train, `validation/` -> val, `testing/` -> test, each holding
either `<component>/<context>.parquet` (v2) or `*.tfrecord` (v1).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.scene import Scene
from pmoe_core.sources import waymo_parquet, waymo_tfrecord, waymo_v1
from pmoe_core.sources.base import SPLITS, SceneRef, Warn, noop_warn
from pmoe_core.sources.label_tables import warn_unknown_ids
from pmoe_core.sources.protobuf_wire import WireError
from pmoe_core.sources.waymo_frame import WaymoFrame
from pmoe_core.sources.waymo_range_image import frame_points
from pmoe_core.vocab.label_spaces import WAYMO, WAYMO_RAW_TYPES

NAME = "waymo"
FAR_M = 10_000.0  # outdoor: farther than this from the frame median is implausible (warned, kept)
FORMATS = ("auto", "v1", "v2")
KNOWN_RAW = frozenset(range(-1, len(WAYMO_RAW_TYPES)))  # -1: no labels for this laser/return; 0 = UNDEFINED
SPLIT_DIRS = {"training": "train", "validation": "val", "testing": "test"}


@dataclass
class Options:
    format: str = field(default="auto", metadata={
        "help": "raw format: 'v2' (parquet components), 'v1' (TFRecords) or 'auto' (v2 if a lidar/ folder exists)"})
    labelled_only: bool = field(default=True, metadata={
        "help": "train/val: keep only frames with segmentation labels (about 1 in 5); test keeps every frame"})
    split: str | None = field(default=None, metadata={
        "help": "split for a root without training/validation/testing folders (train, val or test)"})

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise BadInput(f"option format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.split is not None and self.split not in SPLITS:
            raise BadInput(f"option split must be one of {', '.join(SPLITS)}, got {self.split!r}")


def _split_dirs(root: Path, options: Options) -> list[tuple[Path, str]]:
    if not root.is_dir():
        raise MissingFile("Waymo root folder not found", root)
    found = [(root / name, split) for name, split in SPLIT_DIRS.items() if (root / name).is_dir()]
    if found:
        return found
    if options.split is None:
        raise BadInput("no training/validation/testing folder; pass -O split=train|val|test for a flat folder", root)
    return [(root, options.split)]


def _format(split_dir: Path, options: Options) -> str:
    if options.format in ("v1", "v2"):
        return options.format
    return "v2" if (split_dir / "lidar").is_dir() else "v1"


def _list_v2(split_dir: Path, split: str, options: Options) -> list[SceneRef]:
    refs = []
    for lidar in sorted((split_dir / "lidar").glob("*.parquet")):
        context = lidar.stem
        waymo_parquet.require_components(split_dir, context)
        labelled_only = options.labelled_only and split != "test"
        for ts in waymo_parquet.frame_timestamps(split_dir, context, labelled_only):
            refs.append(SceneRef(f"{context}_{ts}", split, (str(lidar),),
                                 {"format": "v2", "split_dir": str(split_dir), "context": context, "timestamp": str(ts)}))
    return refs


def _list_v1(split_dir: Path, split: str, options: Options) -> list[SceneRef]:
    refs = []
    for path in sorted(split_dir.glob("*.tfrecord")):
        for span in waymo_tfrecord.scan(path):
            with path.open("rb") as f:
                f.seek(span.offset)
                payload = f.read(span.length)
            try:
                context, ts, labelled = waymo_v1.frame_summary(payload)
            except WireError as err:
                raise FormatError(f"bad Frame record at byte {span.offset - 12}: {err}", path) from err
            if options.labelled_only and split != "test" and not labelled:
                continue
            refs.append(SceneRef(f"{context}_{ts}", split, (str(path),),
                                 {"format": "v1", "offset": str(span.offset), "length": str(span.length)}))
    return refs


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    refs: list[SceneRef] = []
    for split_dir, split in _split_dirs(Path(root), options):
        lister = _list_v2 if _format(split_dir, options) == "v2" else _list_v1
        refs.extend(lister(split_dir, split, options))
    if not refs and options.labelled_only:
        # Say why, instead of a bare "no scenes found": usually the lidar_segmentation component was not downloaded.
        unlabelled = list_scenes(root, replace(options, labelled_only=False))
        if unlabelled:
            raise BadInput(f"{len(unlabelled)} frame(s) under {root}, none with segmentation labels (v2: is "
                           "lidar_segmentation/ missing?); -O labelled_only=false converts them without labels",
                           unlabelled[0].paths[0])
    return refs


def read_frame(ref: SceneRef) -> WaymoFrame:
    """The raw frame behind a ref (v1 record or v2 component rows)."""
    if ref.meta["format"] == "v2":
        return waymo_parquet.read_frame(Path(ref.meta["split_dir"]), ref.meta["context"], int(ref.meta["timestamp"]))
    path = Path(ref.paths[0])
    span = waymo_tfrecord.RecordSpan(int(ref.meta["offset"]), int(ref.meta["length"]))
    payload = waymo_tfrecord.read_record(path, span)
    try:
        return waymo_v1.decode_frame(payload)
    except (WireError, zlib.error) as err:
        raise FormatError(f"bad Frame record at byte {span.offset - 12}: {err}", path) from err


def frame_to_scene(name: str, frame: WaymoFrame, source: str, warn: Warn = noop_warn) -> Scene:
    try:
        points = frame_points(frame)
    except (KeyError, ValueError) as err:
        raise FormatError(str(err.args[0]), source) from err
    if not (np.abs(points.coord) <= np.finfo(np.float32).max).all():  # also false for NaN
        raise FormatError("points land beyond float32 range or at NaN (corrupt calibration or pose)", source)
    labelled = frame.labelled
    if labelled:  # -1: a laser/return without labels; 0..22: the segmentation types
        warn_unknown_ids(points.semantic, KNOWN_RAW, source, "the Waymo segmentation types (0..22)", warn)
    return Scene(
        name=name,
        coord=points.coord.astype(np.float32),
        strength=np.tanh(points.intensity),
        segment=WAYMO.map_raw(points.semantic) if labelled else None,
        instance=points.instance if labelled else None,
    ).validate(source)


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    return frame_to_scene(ref.name, read_frame(ref), ref.paths[0], warn)
