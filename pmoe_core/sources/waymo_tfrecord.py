"""TFRecord framing: `uint64 length | uint32 masked crc32c(length) | payload | uint32 masked crc32c(payload)`.

Read without TensorFlow. Both checksums are verified, so a corrupt or truncated download fails loudly with the
file's name instead of yielding garbage frames. CRC32C comes from `google-crc32c` (hardware CRC instructions,
~15 GB/s; `zlib.crc32` is a different polynomial).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import google_crc32c

from pmoe_core.errors import FormatError, MissingFile

MASK_DELTA = 0xA282EAD8  # TFRecord's checksum masking constant
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC32C (Castagnoli) of `data`, continuing from the CRC `value` of the bytes before it."""
    return google_crc32c.extend(value, data if isinstance(data, bytes) else bytes(data))  # it takes only bytes


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits, add a constant (so CRCs of CRCs stay distinct)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class RecordSpan:
    """Where one record's payload lies in its file."""

    offset: int
    length: int


def _read_exact(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise FormatError(f"truncated TFRecord: {what} needs {n} bytes, {len(data)} left", path)
    return data


def _header(f: BinaryIO, path: Path, verify: bool) -> int | None:
    """The payload length of the next record, or None at a clean end of file."""
    raw = f.read(_HEADER.size)
    if not raw:
        return None
    if len(raw) != _HEADER.size:
        raise FormatError(f"truncated TFRecord: record header needs 12 bytes, {len(raw)} left", path)
    length, length_crc = _HEADER.unpack(raw)
    if verify and masked_crc32c(raw[:8]) != length_crc:
        raise FormatError(f"corrupt TFRecord: length checksum mismatch at byte {f.tell() - 12}", path)
    return length


def scan(path: str | Path) -> list[RecordSpan]:
    """Every record's payload span, checking the length CRCs and sizes but not reading payloads."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("TFRecord file not found", path)
    size = path.stat().st_size
    spans: list[RecordSpan] = []
    with path.open("rb") as f:
        while (length := _header(f, path, verify=True)) is not None:
            offset = f.tell()
            if offset + length + _FOOTER.size > size:
                raise FormatError(
                    f"truncated TFRecord: record at byte {offset - 12} declares {length} bytes, "
                    f"{size - offset} left", path)
            spans.append(RecordSpan(offset, length))
            f.seek(length + _FOOTER.size, 1)
    return spans


def read_record(path: str | Path, span: RecordSpan) -> bytes:
    """One payload, with its CRC verified."""
    path = Path(path)
    with path.open("rb") as f:
        f.seek(span.offset)
        payload = _read_exact(f, span.length, path, "record payload")
        (crc,) = _FOOTER.unpack(_read_exact(f, _FOOTER.size, path, "payload checksum"))
    if masked_crc32c(payload) != crc:
        raise FormatError(f"corrupt TFRecord: payload checksum mismatch in record at byte {span.offset - 12}", path)
    return payload


def iter_records(path: str | Path) -> Iterator[bytes]:
    path = Path(path)
    for span in scan(path):
        yield read_record(path, span)


def frame_record(payload: bytes) -> bytes:
    """One record in TFRecord framing (for writers)."""
    head = struct.pack("<Q", len(payload))
    return head + struct.pack("<I", masked_crc32c(head)) + payload + struct.pack("<I", masked_crc32c(payload))


def write_records(path: str | Path, payloads: list[bytes]) -> None:
    with Path(path).open("wb") as f:
        for payload in payloads:
            f.write(frame_record(payload))
