"""The protobuf wire format, just enough to read and write Waymo v1 `Frame` messages without protobuf or TensorFlow.

A message decodes to `{field number: [values]}` in wire order: varints as int, 64/32-bit fields as their raw 8/4
bytes, length-delimited fields as memoryviews (sub-messages, strings, or packed arrays: the schema, not the wire,
says which). Packed numeric arrays decode and encode vectorised, since a range image holds ~10^5-10^6 values.
"""

from __future__ import annotations

import numpy as np

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

Message = dict[int, list]


class WireError(ValueError):
    """Bytes that are not a valid protobuf message (the caller names the file)."""


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("message ends inside a varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def decode(data: bytes | memoryview) -> Message:
    """Split one message into its fields (one level deep; sub-messages stay bytes until asked for)."""
    buf = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    fields: Message = {}
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == FIXED64:
            value, pos = bytes(buf[pos: pos + 8]), pos + 8
        elif wire == FIXED32:
            value, pos = bytes(buf[pos: pos + 4]), pos + 4
        elif wire == LENGTH:
            size, pos = _read_varint(buf, pos)
            value, pos = buf[pos: pos + size], pos + size
        else:
            raise WireError(f"unsupported wire type {wire} (field {number})")
        if pos > end:
            raise WireError(f"field {number} runs past the end of the message")
        fields.setdefault(number, []).append(value)
    return fields


# --- typed access to decoded fields -------------------------------------------------------------------------------

def message(fields: Message, number: int) -> Message | None:
    """The last occurrence of a sub-message field (proto2 semantics), decoded; None if absent."""
    values = fields.get(number)
    return decode(values[-1]) if values else None


def messages(fields: Message, number: int) -> list[Message]:
    return [decode(v) for v in fields.get(number, [])]


def scalar_int(fields: Message, number: int, default: int = 0) -> int:
    values = fields.get(number)
    return int(values[-1]) if values else default


def string(fields: Message, number: int, default: str = "") -> str:
    values = fields.get(number)
    try:
        return bytes(values[-1]).decode("utf-8") if values else default
    except UnicodeDecodeError as err:
        raise WireError(f"field {number} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def _fixed(fields: Message, number: int, dtype: str) -> np.ndarray:
    """Repeated fixed-width field: accepts unpacked (one value per occurrence) and packed (bytes) encodings mixed."""
    parts = [np.frombuffer(v, dtype=dtype) for v in fields.get(number, [])]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def doubles(fields: Message, number: int) -> np.ndarray:
    return _fixed(fields, number, "<f8").astype(np.float64)


def floats(fields: Message, number: int) -> np.ndarray:
    return _fixed(fields, number, "<f4").astype(np.float32)


def scalar_double(fields: Message, number: int, default: float = 0.0) -> float:
    values = doubles(fields, number)
    return float(values[-1]) if values.size else default


def varint_array(data: bytes | memoryview) -> np.ndarray:
    """Decode packed varints at numpy speed: split at terminator bytes, then OR the 7-bit groups into uint64."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.uint64)
    ends = np.flatnonzero(raw < 0x80)
    if ends.size == 0 or ends[-1] != raw.size - 1:
        raise WireError("packed varints end inside a value")
    starts = np.concatenate(([0], ends[:-1] + 1))
    position = np.arange(raw.size) - np.repeat(starts, ends - starts + 1)
    if position.max() > 9:
        raise WireError("varint longer than 10 bytes")
    groups = (raw & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.bitwise_or.reduceat(groups, starts)


def int32s(fields: Message, number: int) -> np.ndarray:
    """Repeated int32, packed or unpacked; negative values arrive as 64-bit two's complement varints."""
    parts: list[np.ndarray] = []
    for v in fields.get(number, []):
        if isinstance(v, int):
            parts.append(np.array([v], dtype=np.uint64))
        else:
            parts.append(varint_array(v))
    values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    return values.astype(np.int64).astype(np.int32)


# --- encoding ------------------------------------------------------------------------------------------------------

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def enc_varint(number: int, value: int) -> bytes:
    return _key(number, VARINT) + _varint(value)


def enc_bytes(number: int, payload: bytes) -> bytes:
    return _key(number, LENGTH) + _varint(len(payload)) + payload


def enc_double(number: int, value: float) -> bytes:
    return _key(number, FIXED64) + np.float64(value).tobytes()


def enc_doubles_unpacked(number: int, values: np.ndarray) -> bytes:
    """proto2 `repeated double` without [packed=true] (Waymo's Transform, beam_inclinations)."""
    return b"".join(enc_double(number, v) for v in np.asarray(values, dtype=np.float64).ravel())


def enc_int32s_unpacked(number: int, values) -> bytes:
    return b"".join(enc_varint(number, int(v)) for v in values)


def enc_floats_packed(number: int, values: np.ndarray) -> bytes:
    return enc_bytes(number, np.asarray(values, dtype="<f4").ravel().tobytes())


def varint_bytes(values: np.ndarray) -> bytes:
    """Encode many varints at once (negative int32 as 10-byte two's complement, as protobuf does)."""
    v = np.asarray(values).astype(np.int64).astype(np.uint64).ravel()
    nbits = np.zeros(v.shape, dtype=np.int64)
    nz = v > 0
    nbits[nz] = np.floor(np.log2(v[nz].astype(np.float64))).astype(np.int64) + 1
    # log2 in float64 can round up near powers of two; fix those by checking the top bit directly.
    too_high = nz & ((v >> np.maximum(nbits - 1, 0).astype(np.uint64)) == 0)
    nbits[too_high] -= 1
    count = np.maximum(1, (nbits + 6) // 7)
    starts = np.concatenate(([0], np.cumsum(count)[:-1]))
    which = np.repeat(np.arange(v.size), count)
    position = np.arange(int(count.sum())) - np.repeat(starts, count)
    groups = ((v[which] >> (7 * position).astype(np.uint64)) & np.uint64(0x7F)).astype(np.uint8)
    last = position == np.repeat(count - 1, count)
    groups[~last] |= 0x80
    return groups.tobytes()


def enc_int32s_packed(number: int, values: np.ndarray) -> bytes:
    return enc_bytes(number, varint_bytes(values))
