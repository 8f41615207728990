"""The fuzzing harness shared by the reliability tests: mutations of valid bytes, and the contract a reader must keep.

Contract of a reader given arbitrary bytes (RELIABILITY.md, "Reader contract"):
- it returns a valid Scene, or raises a `PmoeError` subclass (FormatError / MissingFile / BadInput) naming the file;
- it may report survivable defects through the `warn` callback (a numpy RuntimeWarning, i.e. NaN or overflow being
  cast to garbage, is turned into an error here and fails the test);
- it finishes within `HANG_SECONDS` and never asks for more than `MEMORY_BUDGET` bytes (numpy reports its buffers
  to tracemalloc, so a header claiming 10^12 points shows up here even when the OS would overcommit the pages).

Examples per target: `PMOE_FUZZ_EXAMPLES` (default 40 in CI), derandomized so a CI failure reproduces locally.
"""

from __future__ import annotations

import os
import signal
import struct
import tracemalloc
import warnings as _warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pmoe_core.errors import PmoeError
from pmoe_core.scene import Scene

FUZZ_EXAMPLES = int(os.environ.get("PMOE_FUZZ_EXAMPLES", "40"))
HANG_SECONDS = int(os.environ.get("PMOE_FUZZ_HANG_SECONDS", "20"))
MEMORY_BUDGET = 256 << 20

settings.register_profile(
    "pmoe-fuzz",
    max_examples=FUZZ_EXAMPLES,
    derandomize=os.environ.get("PMOE_FUZZ_RANDOM", "") == "",  # set PMOE_FUZZ_RANDOM=1 for fresh examples locally
    deadline=None,  # wall time on a shared 2-core runner is noise; HANG_SECONDS is the hang guard
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
FUZZ = settings.get_profile("pmoe-fuzz")

# Values that break size arithmetic: zero, negative, just past int32/uint32, 10^12, int64/uint64 extremes.
HUGE_NUMBERS = (0, 1, -1, 255, 65_535, 2**31 - 1, 2**31, 2**32 - 1, 2**32 + 3, 10**9, 10**12, 2**62, 2**63 - 1,
                2**64 - 1)


class Hang(Exception):
    """A reader ran past HANG_SECONDS (raised by the SIGALRM guard)."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise Hang in the main thread after `seconds` (SIGALRM: the harness runs readers in-process)."""
    def _alarm(signum, frame):
        raise Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    # Repeats every second: an alarm landing in a gc callback is swallowed ("Exception ignored"), the next is not.
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --- mutations ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutation:
    """One edit of a byte string; `describe` is what a failing example prints."""

    kind: str
    offset: float  # fraction of the length, so one strategy serves files of every size
    payload: bytes = b""
    number: int = 0
    width: int = 4

    def apply(self, data: bytes, header_bytes: int) -> bytes:
        n = len(data)
        at = min(int(self.offset * n), max(n - 1, 0))
        if self.kind == "flip":
            if not n:
                return data
            buf = bytearray(data)
            for k, b in enumerate(self.payload or b"\xff"):
                buf[(at + 7 * k) % n] ^= b or 0x80
            return bytes(buf)
        if self.kind == "truncate":
            return data[:at]
        if self.kind == "insert":
            return data[:at] + self.payload + data[at:]
        if self.kind == "overwrite":
            return data[:at] + self.payload + data[at + len(self.payload):]
        if self.kind == "header_int":  # a binary header field set to an absurd value
            at = min(int(self.offset * header_bytes), max(n - self.width, 0))
            value = self.number % (1 << (8 * self.width))
            packed = value.to_bytes(self.width, "little")
            return data[:at] + packed + data[at + self.width:]
        if self.kind == "header_number":  # a decimal number of a text header (PLY counts, NPY shape, JSON)
            return _edit_number(data, header_bytes, self.offset, self.number)
        raise ValueError(self.kind)


def _edit_number(data: bytes, header_bytes: int, where: float, value: int) -> bytes:
    head = np.frombuffer(data[:header_bytes], dtype=np.uint8)
    digit = (head >= 48) & (head <= 57)
    starts = np.flatnonzero(digit & ~np.r_[False, digit[:-1]])
    if not starts.size:
        return data
    start = int(starts[min(int(where * starts.size), starts.size - 1)])
    end = start
    while end < len(data) and 48 <= data[end] <= 57:
        end += 1
    return data[:start] + str(value).encode() + data[end:]


def mutations(text_header: bool) -> st.SearchStrategy[list[Mutation]]:
    """1-3 mutations; header edits are decimal (text formats) or little-endian integers (binary formats)."""
    frac = st.floats(0.0, 1.0, allow_nan=False)
    garbage = st.one_of(st.binary(min_size=1, max_size=64), st.sampled_from(
        [b"\x00" * 16, b"\xff" * 16, b"nan ", b"inf\n", b"-1e999 ", b"\n\n\n", b"end_header\n", b"\xef\xbf\xbd",
         b"element vertex 1000000000000\n", b'{"a": [[[[[[[[', b"]]]]}", b"PK\x03\x04"]))
    header_edit = (
        st.builds(Mutation, st.just("header_number"), frac, number=st.sampled_from(HUGE_NUMBERS))
        if text_header else
        st.builds(Mutation, st.just("header_int"), frac, number=st.sampled_from(HUGE_NUMBERS),
                  width=st.sampled_from((2, 4, 8)))
    )
    one = st.one_of(
        st.builds(Mutation, st.just("flip"), frac, payload=st.binary(min_size=1, max_size=8)),
        st.builds(Mutation, st.just("truncate"), frac),
        st.builds(Mutation, st.just("insert"), frac, payload=garbage),
        st.builds(Mutation, st.just("overwrite"), frac, payload=garbage),
        header_edit,
        header_edit,  # twice the weight: size fields are where readers over-allocate or loop
    )
    return st.lists(one, min_size=1, max_size=3)


def mutate(data: bytes, edits: list[Mutation], header_bytes: int) -> bytes:
    for edit in edits:
        data = edit.apply(data, header_bytes)
    return data


# --- the contract ------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one fuzz example did: 'ok' (a valid Scene), 'error' (a PmoeError) plus the message."""

    kind: str
    message: str = ""
    warnings: int = 0


def check_contract(read: Callable[[Callable[[str], None]], object], file_name: str) -> Outcome:
    """Run `read(warn)` under the hang and memory guards; any exception but PmoeError fails the test."""
    warnings: list[str] = []
    error: PmoeError | None = None
    result = None
    tracemalloc.start()
    try:
        with time_limit(HANG_SECONDS), _warnings.catch_warnings():
            _warnings.simplefilter("error", RuntimeWarning)  # NaN/overflow silently cast to garbage is a bug
            result = read(warnings.append)
    except PmoeError as err:
        error = err
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= MEMORY_BUDGET, f"reader asked for {peak / 2**20:.0f} MiB (budget {MEMORY_BUDGET >> 20} MiB)"
    if error is not None:
        message = error.message
        assert "\n" not in message, f"multi-line error: {message!r}"
        assert file_name in message, f"error does not name the file {file_name}: {message!r}"
        return Outcome("error", message, len(warnings))
    for scene in result if isinstance(result, list) else [result]:
        assert isinstance(scene, Scene)
        scene.validate()
    return Outcome("ok", warnings=len(warnings))


@dataclass
class Tally:
    """Counts per outcome for one target, appended to $PMOE_FUZZ_REPORT (RELIABILITY.md figures) when set."""

    target: str
    ok: int = 0
    error: int = 0
    warned: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)
        self.warned += outcome.warnings > 0

    def write(self) -> None:
        report = os.environ.get("PMOE_FUZZ_REPORT")
        if report:
            with open(report, "a") as f:
                f.write(f"{self.target}\t{self.ok + self.error}\t{self.ok}\t{self.error}\t{self.warned}\n")


def le_u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def restore(path: Path, data: bytes) -> None:
    path.write_bytes(data)
