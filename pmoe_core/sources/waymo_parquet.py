"""Waymo v2 (parquet, one file per component per segment) to and from `WaymoFrame`, with pyarrow only.

Layout: `<split dir>/<component>/<context>.parquet` for the components lidar, lidar_segmentation,
lidar_calibration, lidar_pose and vehicle_pose, with the column names of the official v2 schema.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.sources.waymo_frame import TOP, LaserCalibration, LaserReturns, WaymoFrame

CONTEXT = "key.segment_context_name"
TIMESTAMP = "key.frame_timestamp_micros"
LASER = "key.laser_name"
LIDAR = "[LiDARComponent]"
SEGMENTATION = "[LiDARSegmentationLabelComponent]"
CALIBRATION = "[LiDARCalibrationComponent]"
PIXEL_POSE = "[LiDARPoseComponent]"
VEHICLE_POSE = "[VehiclePoseComponent]"

REQUIRED = ("lidar", "lidar_calibration", "lidar_pose", "vehicle_pose")
SEGMENTATION_DIR = "lidar_segmentation"


def component_path(split_dir: Path, component: str, context: str) -> Path:
    return split_dir / component / f"{context}.parquet"


def require_components(split_dir: Path, context: str) -> None:
    for component in REQUIRED:
        path = component_path(split_dir, component, context)
        if not path.is_file():
            raise MissingFile(f"Waymo v2 component '{component}' missing for segment {context}", path)


def frame_timestamps(split_dir: Path, context: str, labelled_only: bool) -> list[int]:
    """Timestamps of a segment's frames: those with segmentation labels, or every lidar frame."""
    component = SEGMENTATION_DIR if labelled_only else "lidar"
    path = component_path(split_dir, component, context)
    if not path.is_file():
        return []
    column = _read(path, [TIMESTAMP]).column(TIMESTAMP).to_numpy()
    return sorted(int(t) for t in np.unique(column))


def _read(path: Path, columns: list[str] | None = None, timestamp: int | None = None) -> pa.Table:
    filters = [(TIMESTAMP, "==", timestamp)] if timestamp is not None else None
    try:
        table = pq.read_table(path, columns=columns, filters=filters)
        table.column_names  # noqa: B018 - field names are decoded lazily; a non-UTF-8 name fails here, not later
        return table
    except (pa.ArrowInvalid, OSError, KeyError, UnicodeDecodeError) as err:
        detail = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise FormatError(f"cannot read Waymo v2 parquet: {detail}", path) from err


def _column(table: pa.Table, name: str, path: Path) -> list:
    if name not in table.column_names:
        raise FormatError(f"column '{name}' missing", path)
    try:
        return table.column(name).to_pylist()
    except (UnicodeDecodeError, pa.ArrowInvalid) as err:
        raise FormatError(f"column '{name}' cannot be decoded ({type(err).__name__})", path) from None


def _list_rows(table: pa.Table, name: str, dtype, path: Path) -> list[np.ndarray | None]:
    """A list<number> column as one numpy array per row (None for null rows), without going through Python lists."""
    if name not in table.column_names:
        raise FormatError(f"column '{name}' missing", path)
    column = table.column(name).combine_chunks() if table.num_rows else None
    if column is None:
        return []
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    offsets = column.offsets.to_numpy() - column.offsets[0].as_py()
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    return [None if nulls[i] else flat[offsets[i]: offsets[i + 1]] for i in range(len(column))]


def _image(array: np.ndarray | None, shape, path: Path, what: str) -> np.ndarray | None:
    if array is None or shape is None:
        return None
    if int(np.prod(shape)) != array.size:
        raise FormatError(f"{what}: {array.size} values do not fill shape {tuple(shape)}", path)
    return array.reshape(tuple(shape))


def _transform(values, path: Path, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)  # real files store float32 here although the schema says float64
    if array.size != 16:
        raise FormatError(f"{what} has {array.size} values, expected 16", path)
    return array.reshape(4, 4)


def _calibrations(path: Path) -> dict[int, LaserCalibration]:
    table = _read(path)
    names = _column(table, LASER, path)
    extrinsics = _column(table, f"{CALIBRATION}.extrinsic.transform", path)
    mins = _column(table, f"{CALIBRATION}.beam_inclination.min", path)
    maxs = _column(table, f"{CALIBRATION}.beam_inclination.max", path)
    values = _column(table, f"{CALIBRATION}.beam_inclination.values", path)
    return {
        int(n): LaserCalibration(int(n), _transform(e, path, "extrinsic.transform"),
                                 np.asarray(v, dtype=np.float64) if v else None, float(lo), float(hi))
        for n, e, lo, hi, v in zip(names, extrinsics, mins, maxs, values)
    }


def _per_laser(path: Path, timestamp: int, prefix: str, returns: tuple[int, ...], dtype) -> dict[int, list]:
    """laser name -> [image of return k for k in returns] for one frame of one component."""
    table = _read(path, timestamp=timestamp)
    names = _column(table, LASER, path)
    out: dict[int, list] = {}
    for k in returns:
        values = _list_rows(table, f"{prefix}.range_image_return{k}.values", dtype, path)
        shapes = _column(table, f"{prefix}.range_image_return{k}.shape", path)
        for n, v, s in zip(names, values, shapes):
            out.setdefault(int(n), []).append(_image(v, s, path, f"laser {n} return {k}"))
    return out


def read_frame(split_dir: Path, context: str, timestamp: int) -> WaymoFrame:
    """One frame from the five components (segmentation optional: absent means unlabelled)."""
    require_components(split_dir, context)
    pose_path = component_path(split_dir, "vehicle_pose", context)
    poses = _column(_read(pose_path, timestamp=timestamp), f"{VEHICLE_POSE}.world_from_vehicle.transform", pose_path)
    if not poses:
        raise FormatError(f"no vehicle pose for frame {timestamp}", pose_path)
    lidar_path = component_path(split_dir, "lidar", context)
    images = _per_laser(lidar_path, timestamp, LIDAR, (1, 2), np.float32)
    if not images:
        raise FormatError(f"no lidar rows for frame {timestamp}", lidar_path)
    seg_path = component_path(split_dir, SEGMENTATION_DIR, context)
    labels = _per_laser(seg_path, timestamp, SEGMENTATION, (1, 2), np.int32) if seg_path.is_file() else {}
    pixel_pose = _per_laser(component_path(split_dir, "lidar_pose", context), timestamp, PIXEL_POSE, (1,), np.float32)
    lasers = {}
    for name, returns in images.items():
        for k, (ri, lab) in enumerate(zip(returns, labels.get(name, [None, None])), start=1):
            if ri is not None and lab is not None and lab.shape[:2] != ri.shape[:2]:
                raise FormatError(f"laser {name} return {k} of frame {timestamp}: label image {lab.shape[:2]} does "
                                  f"not match range image {ri.shape[:2]}", seg_path)
        kept = [(ri, lab) for ri, lab in zip(returns, labels.get(name, [None, None])) if ri is not None]
        lasers[name] = LaserReturns(name, [ri for ri, _ in kept], [lab for _, lab in kept],
                                    pixel_pose.get(name, [None])[0])
    return WaymoFrame(context, timestamp, _transform(poses[0], pose_path, "world_from_vehicle.transform"),
                      _calibrations(component_path(split_dir, "lidar_calibration", context)), lasers)


# --- writing (synthetic data) --------------------------------------------------------------------------------------

def _image_columns(prefix: str, k: int, images: list[np.ndarray | None], value_type: pa.DataType) -> dict:
    return {
        f"{prefix}.range_image_return{k}.values": pa.array(
            [None if im is None else im.ravel() for im in images], type=pa.list_(value_type)),
        f"{prefix}.range_image_return{k}.shape": pa.array(
            [None if im is None else list(im.shape) for im in images], type=pa.list_(pa.int32(), 3)),
    }


def _keys(context: str, timestamps: list[int], lasers: list[int] | None) -> dict:
    keys = {CONTEXT: pa.array([context] * len(timestamps), pa.string()),
            TIMESTAMP: pa.array(timestamps, pa.int64())}
    if lasers is not None:
        keys[LASER] = pa.array(lasers, pa.int8())
    return keys


def write_segment(split_dir: Path, frames: list[WaymoFrame]) -> None:
    """Write frames of one segment as the five v2 component files."""
    context = frames[0].context
    rows = [(f, laser) for f in frames for laser in f.lasers.values()]
    ts = [f.timestamp for f, _ in rows]
    names = [laser.name for _, laser in rows]

    def ret(laser: LaserReturns, k: int, what: str):
        items = laser.returns if what == "ri" else laser.labels
        return items[k] if k < len(items) else None

    lidar = _keys(context, ts, names)
    for k in (1, 2):
        lidar |= _image_columns(LIDAR, k, [ret(laser, k - 1, "ri") for _, laser in rows], pa.float32())
    labelled = [(f, laser) for f, laser in rows if any(lab is not None for lab in laser.labels)]
    seg = _keys(context, [f.timestamp for f, _ in labelled], [laser.name for _, laser in labelled])
    for k in (1, 2):
        seg |= _image_columns(SEGMENTATION, k, [ret(laser, k - 1, "lab") for _, laser in labelled], pa.int32())
    posed = [(f, laser) for f, laser in rows if laser.name == TOP and laser.pose is not None]
    pose = _keys(context, [f.timestamp for f, _ in posed], [laser.name for _, laser in posed])
    pose |= _image_columns(PIXEL_POSE, 1, [laser.pose for _, laser in posed], pa.float32())
    cals = list(frames[0].calibrations.values())
    calibration = {
        CONTEXT: pa.array([context] * len(cals), pa.string()),
        LASER: pa.array([c.name for c in cals], pa.int8()),
        f"{CALIBRATION}.extrinsic.transform": pa.array([c.extrinsic.ravel() for c in cals], pa.list_(pa.float64())),
        f"{CALIBRATION}.beam_inclination.min": pa.array([c.beam_inclination_min for c in cals], pa.float64()),
        f"{CALIBRATION}.beam_inclination.max": pa.array([c.beam_inclination_max for c in cals], pa.float64()),
        f"{CALIBRATION}.beam_inclination.values": pa.array(
            [None if c.beam_inclinations is None else c.beam_inclinations for c in cals], pa.list_(pa.float64())),
    }
    vehicle = _keys(context, [f.timestamp for f in frames], None)
    vehicle[f"{VEHICLE_POSE}.world_from_vehicle.transform"] = pa.array(
        [f.pose.ravel() for f in frames], pa.list_(pa.float64()))
    for component, columns in (("lidar", lidar), (SEGMENTATION_DIR, seg), ("lidar_pose", pose),
                               ("lidar_calibration", calibration), ("vehicle_pose", vehicle)):
        path = component_path(split_dir, component, context)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
