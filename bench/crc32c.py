"""CRC32C throughput: the `google-crc32c` library (what the TFRecord reader uses) against baselines measured in the
same run: `zlib.crc32` (a different polynomial, the speed a C table loop reaches) and a pure-Python byte-table loop
(what a hand-written CRC32C without a compiled extension costs).

Usage: .venv/bin/python bench/crc32c.py [--mb 8]
"""

from __future__ import annotations

import argparse
import time
import zlib

import numpy as np

from pmoe_core.sources.waymo_tfrecord import crc32c

POLY = 0x82F63B78  # reflected Castagnoli polynomial


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (POLY if crc & 1 else 0)
        table.append(crc)
    return table


TABLE = _table()


def python_crc32c(data: bytes) -> int:
    """Byte-table loop in pure Python: the baseline a dependency-free implementation starts from."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def rate(fn, data: bytes, repeat: int = 5) -> float:
    """Best-of-`repeat` throughput in MB/s."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - started)
    return len(data) / best / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=8.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, int(args.mb * 2**20), dtype=np.uint8).tobytes()
    small = big[: 2**18]
    assert crc32c(small) == python_crc32c(small)  # same checksum as the reference loop
    library, library_small = rate(crc32c, big), rate(crc32c, small)
    zlib_rate = rate(zlib.crc32, big)
    python_rate = rate(python_crc32c, small, repeat=1)
    print("| implementation | buffer | MB/s |")
    print("|---|---|---|")
    print(f"| google-crc32c (library) | {args.mb:g} MiB | {library:,.0f} |")
    print(f"| google-crc32c (library) | 256 KiB | {library_small:,.0f} |")
    print(f"| zlib.crc32 (other polynomial, C) | {args.mb:g} MiB | {zlib_rate:,.0f} |")
    print(f"| pure-Python byte-table CRC32C | 256 KiB | {python_rate:,.1f} |")
    print(f"\nlibrary / zlib.crc32: {library / zlib_rate:.1f}x; library / pure Python: {library / python_rate:,.0f}x")


if __name__ == "__main__":
    main()
