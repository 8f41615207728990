"""CRC32C (Castagnoli), the checksum TFRecord framing uses, without a compiled extension.

`zlib.crc32` is a different polynomial, and neither `crc32c` nor `google-crc32c` is a dependency. Large buffers are
split into equal lanes whose CRCs numpy advances together four bytes a step (slicing-by-4 tables), then the lane
CRCs are merged pairwise with GF(2) "append n zero bytes" operators, so a multi-MB record costs a few hundred numpy
calls instead of one Python step per byte.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

POLY = 0x82F63B78  # reflected Castagnoli polynomial
MASK_DELTA = 0xA282EAD8  # TFRecord's checksum masking constant
_SMALL = 4096  # below this many bytes a plain table loop is faster than the lane machinery
_LANE_WORDS = 256
_LANE_BYTES = 4 * _LANE_WORDS  # 1 KiB per lane
_LANE_LOG2 = 10


def _byte_table() -> np.ndarray:
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(POLY), crc >> 1).astype(np.uint32)
    return crc


TABLE = _byte_table()
_TABLE_LIST = TABLE.tolist()
# SLICE[k][b]: the CRC contribution of byte b followed by k zero bytes (slicing-by-4).
SLICE = [TABLE]
for _ in range(3):
    SLICE.append(((SLICE[-1] >> 8) ^ TABLE[SLICE[-1] & 0xFF]).astype(np.uint32))


def _raw_small(state: int, data: bytes | memoryview) -> int:
    """Advance the (un-inverted) CRC register over `data`, one byte a step."""
    table = _TABLE_LIST
    for b in bytes(data):
        state = table[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


# --- GF(2) linear operators on the 32-bit register: a matrix is 32 uint32 columns (column i = image of bit i) ---

def _apply(matrix: np.ndarray, value: int) -> int:
    out = 0
    for i in range(32):
        if (value >> i) & 1:
            out ^= int(matrix[i])
    return out


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The operator `a after b`."""
    return np.array([_apply(a, int(col)) for col in b], dtype=np.uint32)


def _one_zero_byte() -> np.ndarray:
    return np.array([_raw_small(1 << i, b"\x00") for i in range(32)], dtype=np.uint32)


_ZERO_POWERS: list[np.ndarray] = [_one_zero_byte()]  # _ZERO_POWERS[k] appends 2**k zero bytes


def _zero_power(k: int) -> np.ndarray:
    """The operator that appends 2**k zero bytes (cached; each is the square of the previous)."""
    while len(_ZERO_POWERS) <= k:
        _ZERO_POWERS.append(_compose(_ZERO_POWERS[-1], _ZERO_POWERS[-1]))
    return _ZERO_POWERS[k]


def _advance_zeros(state: int, n: int) -> int:
    """The register after n zero bytes, applying the cached power-of-two operators for the bits of n."""
    k = 0
    while n:
        if n & 1:
            state = _apply(_zero_power(k), state)
        n >>= 1
        k += 1
    return state


@lru_cache(maxsize=64)
def _operator_tables(k: int) -> np.ndarray:
    """(4, 256) tables with append-2**k-zeros(x) = XOR_j tables[j][byte j of x], to apply it to many values."""
    matrix = _zero_power(k)
    bits = (np.arange(256, dtype=np.uint32)[:, None] >> np.arange(8, dtype=np.uint32)) & 1  # (256, 8)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for j in range(4):
        cols = matrix[8 * j: 8 * j + 8]
        tables[j] = np.bitwise_xor.reduce(np.where(bits.astype(bool), cols[None, :], np.uint32(0)), axis=1)
    return tables


def _apply_many(tables: np.ndarray, x: np.ndarray) -> np.ndarray:
    return tables[0][x & 0xFF] ^ tables[1][(x >> 8) & 0xFF] ^ tables[2][(x >> 16) & 0xFF] ^ tables[3][x >> 24]


def _raw_lanes(block: np.ndarray) -> int:
    """Register after `block` starting from 0; its length is (a power of two) * _LANE_BYTES."""
    words = block.view("<u4").reshape(-1, _LANE_WORDS).T.copy()  # (words per lane, lanes), rows contiguous
    crc = np.zeros(words.shape[1], dtype=np.uint32)
    s0, s1, s2, s3 = SLICE
    for row in words:
        x = crc ^ row
        crc = s3[x & 0xFF] ^ s2[(x >> 8) & 0xFF] ^ s1[(x >> 16) & 0xFF] ^ s0[x >> 24]
    k = _LANE_LOG2
    while crc.shape[0] > 1:  # merge neighbours: crc(a || b) = zeros_|b|(crc(a)) ^ crc(b)
        crc = _apply_many(_operator_tables(k), crc[0::2]) ^ crc[1::2]
        k += 1
    return int(crc[0])


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC32C of `data` (continuing from a previous `value`, like zlib.crc32's second argument)."""
    state = value ^ 0xFFFFFFFF
    n = len(data)
    if n < _SMALL:
        return _raw_small(state, data) ^ 0xFFFFFFFF
    buf = np.frombuffer(data, dtype=np.uint8)
    head = n % _LANE_BYTES
    state = _raw_small(state, memoryview(buf[:head]))
    lanes_left = n // _LANE_BYTES
    pos = head
    # The register is linear: raw(s, block) = zeros_|block|(s) ^ raw(0, block); blocks of 2**k lanes, largest first.
    for k in reversed(range(lanes_left.bit_length())):
        if not (lanes_left >> k) & 1:
            continue
        size = (1 << k) * _LANE_BYTES
        state = _advance_zeros(state, size) ^ _raw_lanes(buf[pos: pos + size])
        pos += size
    return state ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant, so CRCs of CRCs stay well distributed."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def crc32c_bitwise(data: bytes | bytearray | memoryview) -> int:
    """The textbook bit-at-a-time CRC32C: the reference the fast path is tested against (and the naive benchmark)."""
    crc = 0xFFFFFFFF
    for b in bytes(data):
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF
