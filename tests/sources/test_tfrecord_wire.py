"""CRC32C, TFRecord framing and the protobuf wire codec that the Waymo v1 reader stands on."""

from __future__ import annotations

import numpy as np
import pytest

from pmoe_core.sources import protobuf_wire as pw
from pmoe_core.sources.waymo_tfrecord import (
    crc32c,
    frame_record,
    iter_records,
    masked_crc32c,
)


def crc32c_bitwise(data: bytes) -> int:
    """The textbook bit-at-a-time CRC32C, the reference the library is checked against."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors():
    # RFC 3720 (iSCSI) appendix B.4 and the classic check value.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0


@pytest.mark.parametrize("n", [1, 7, 4095, 4096, 4097, 1024 * 5 + 3])
def test_crc32c_matches_bitwise_reference_and_continues(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert crc32c(data) == crc32c_bitwise(data)
    assert crc32c(data[n // 3:], crc32c(data[: n // 3])) == crc32c(data)
    assert crc32c(bytearray(data)) == crc32c(memoryview(data)) == crc32c(data)


def test_masked_crc_of_tensorflow_record_header():
    # A record of 3 bytes: the length field and both masked CRCs as TensorFlow writes them.
    record = frame_record(b"abc")
    assert record[:8] == (3).to_bytes(8, "little")
    assert int.from_bytes(record[8:12], "little") == masked_crc32c(record[:8])
    assert int.from_bytes(record[-4:], "little") == masked_crc32c(b"abc")
    crc = crc32c(b"abc")
    assert masked_crc32c(b"abc") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_iter_records_round_trip(tmp_path):
    path = tmp_path / "x.tfrecord"
    payloads = [b"", b"one", bytes(range(256)) * 40]
    path.write_bytes(b"".join(frame_record(p) for p in payloads))
    assert list(iter_records(path)) == payloads


def test_varints_vectorised_round_trip():
    values = np.array([0, 1, 127, 128, 300, 2**31 - 1, -1, -2**31, 16384, 2**21 - 1], dtype=np.int64)
    encoded = pw.varint_bytes(values)
    one_by_one = b"".join(pw._varint(int(v)) for v in values)
    assert encoded == one_by_one
    np.testing.assert_array_equal(pw.int32s({1: [encoded]}, 1), values.astype(np.int32))
    rnd = np.random.default_rng(1).integers(-2**31, 2**31, 5000)
    np.testing.assert_array_equal(pw.int32s({1: [pw.varint_bytes(rnd)]}, 1), rnd.astype(np.int32))


def test_message_round_trip_packed_and_unpacked():
    body = (pw.enc_varint(1, 5) + pw.enc_doubles_unpacked(2, np.array([1.5, -2.0])) + pw.enc_double(3, 0.25)
            + pw.enc_bytes(4, pw.enc_varint(1, 9)) + pw.enc_floats_packed(5, np.array([1.0, 2.0], np.float32))
            + pw.enc_bytes(6, "naïve".encode()))
    fields = pw.decode(body)
    assert pw.scalar_int(fields, 1) == 5
    np.testing.assert_array_equal(pw.doubles(fields, 2), [1.5, -2.0])
    assert pw.scalar_double(fields, 3) == 0.25
    assert pw.scalar_int(pw.message(fields, 4), 1) == 9
    np.testing.assert_array_equal(pw.floats(fields, 5), [1.0, 2.0])
    assert pw.string(fields, 6) == "naïve"
    with pytest.raises(pw.WireError):
        pw.decode(body[:-2])
