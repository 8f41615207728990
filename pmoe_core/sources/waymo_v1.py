"""Waymo v1 `Frame` protobufs (the payload of each TFRecord) to and from `WaymoFrame`, by field number.

Field numbers follow waymo_open_dataset/dataset.proto: Frame{context=1, timestamp_micros=2, pose=3, lasers=5},
Context{name=1, laser_calibrations=3}, LaserCalibration{name=1, beam_inclinations=2, beam_inclination_min=3,
beam_inclination_max=4, extrinsic=5}, Transform{transform=1}, Laser{name=1, ri_return1=2, ri_return2=3},
RangeImage{range_image_compressed=2, range_image_pose_compressed=4, segmentation_label_compressed=6};
compressed fields are zlib'd MatrixFloat/MatrixInt32{data=1 (packed), shape=2 (MatrixShape{dims=1})}.
"""

from __future__ import annotations

import zlib

import numpy as np

from pmoe_core.sources import protobuf_wire as pw
from pmoe_core.sources.waymo_frame import LaserCalibration, LaserReturns, WaymoFrame

RI_COMPRESSED, RI_POSE_COMPRESSED, RI_SEGMENTATION_COMPRESSED = 2, 4, 6


def _transform(fields: pw.Message | None) -> np.ndarray:
    values = pw.doubles(fields, 1) if fields else np.zeros(0)
    if values.size != 16:
        raise pw.WireError(f"Transform has {values.size} values, expected 16")
    return values.reshape(4, 4)


def _matrix(compressed: memoryview, kind: str) -> np.ndarray:
    """Inflate and decode a MatrixFloat ('float') or MatrixInt32 ('int32'), reshaped to its dims."""
    fields = pw.decode(zlib.decompress(compressed))
    shape_msg = pw.message(fields, 2)
    dims = tuple(int(d) for d in pw.int32s(shape_msg, 1)) if shape_msg else ()
    data = pw.floats(fields, 1) if kind == "float" else pw.int32s(fields, 1)
    if int(np.prod(dims)) != data.size:
        raise pw.WireError(f"matrix has {data.size} values but shape {dims}")
    return data.reshape(dims)


def _calibration(fields: pw.Message) -> LaserCalibration:
    inclinations = pw.doubles(fields, 2)
    return LaserCalibration(
        name=pw.scalar_int(fields, 1),
        extrinsic=_transform(pw.message(fields, 5)),
        beam_inclinations=inclinations if inclinations.size else None,
        beam_inclination_min=pw.scalar_double(fields, 3),
        beam_inclination_max=pw.scalar_double(fields, 4),
    )


def _laser(fields: pw.Message) -> LaserReturns | None:
    """A laser's returns, or None when it carries no range image (as in some published sample frames)."""
    name = pw.scalar_int(fields, 1)
    returns, labels, pose = [], [], None
    for number in (2, 3):
        ri = pw.message(fields, number)
        if ri is None or RI_COMPRESSED not in ri:
            continue
        returns.append(_matrix(ri[RI_COMPRESSED][-1], "float"))
        seg = ri.get(RI_SEGMENTATION_COMPRESSED)
        labels.append(_matrix(seg[-1], "int32") if seg else None)
        if number == 2 and RI_POSE_COMPRESSED in ri:
            pose = _matrix(ri[RI_POSE_COMPRESSED][-1], "float")
    if not returns:
        return None
    return LaserReturns(name=name, returns=returns, labels=labels, pose=pose)


def decode_frame(payload: bytes | memoryview) -> WaymoFrame:
    """Decode a Frame; raises protobuf_wire.WireError or zlib.error on malformed bytes (the caller names the file)."""
    fields = pw.decode(payload)
    context = pw.message(fields, 1) or {}
    calibrations = [_calibration(c) for c in pw.messages(context, 3)]
    lasers = [laser for laser in (_laser(m) for m in pw.messages(fields, 5)) if laser is not None]
    pose_msg = pw.message(fields, 3)
    return WaymoFrame(
        context=pw.string(context, 1),
        timestamp=pw.scalar_int(fields, 2),
        pose=_transform(pose_msg) if pose_msg else np.eye(4),
        calibrations={c.name: c for c in calibrations},
        lasers={laser.name: laser for laser in lasers},
    )


def frame_summary(payload: bytes | memoryview) -> tuple[str, int, bool]:
    """(context name, timestamp, has segmentation labels) without inflating any range image."""
    fields = pw.decode(payload)
    context = pw.message(fields, 1) or {}
    labelled = any(
        RI_SEGMENTATION_COMPRESSED in (pw.message(laser, n) or {})
        for laser in pw.messages(fields, 5) for n in (2, 3)
    )
    return pw.string(context, 1), pw.scalar_int(fields, 2), labelled


# --- encoding (synthetic writers) ----------------------------------------------------------------------------------

def _enc_transform(number: int, matrix: np.ndarray) -> bytes:
    return pw.enc_bytes(number, pw.enc_doubles_unpacked(1, np.asarray(matrix, dtype=np.float64).ravel()))


def _enc_matrix(values: np.ndarray, kind: str) -> bytes:
    data = pw.enc_floats_packed(1, values) if kind == "float" else pw.enc_int32s_packed(1, values)
    shape = pw.enc_bytes(2, pw.enc_int32s_unpacked(1, values.shape))
    return zlib.compress(data + shape)


def _enc_calibration(cal: LaserCalibration) -> bytes:
    body = pw.enc_varint(1, cal.name)
    if cal.beam_inclinations is not None:
        body += pw.enc_doubles_unpacked(2, cal.beam_inclinations)
    body += pw.enc_double(3, cal.beam_inclination_min) + pw.enc_double(4, cal.beam_inclination_max)
    return body + _enc_transform(5, cal.extrinsic)


def _enc_laser(laser: LaserReturns) -> bytes:
    body = pw.enc_varint(1, laser.name)
    for k, (ri, labels) in enumerate(zip(laser.returns, laser.labels)):
        msg = pw.enc_bytes(RI_COMPRESSED, _enc_matrix(ri, "float"))
        if k == 0 and laser.pose is not None:
            msg += pw.enc_bytes(RI_POSE_COMPRESSED, _enc_matrix(laser.pose, "float"))
        if labels is not None:
            msg += pw.enc_bytes(RI_SEGMENTATION_COMPRESSED, _enc_matrix(labels, "int32"))
        body += pw.enc_bytes(2 + k, msg)
    return body


def encode_frame(frame: WaymoFrame) -> bytes:
    context = pw.enc_bytes(1, frame.context.encode("utf-8")) + b"".join(
        pw.enc_bytes(3, _enc_calibration(c)) for c in frame.calibrations.values())
    return (pw.enc_bytes(1, context) + pw.enc_varint(2, frame.timestamp) + _enc_transform(3, frame.pose)
            + b"".join(pw.enc_bytes(5, _enc_laser(laser)) for laser in frame.lasers.values()))
