"""Property-based fuzzing of every raw-dataset reader and single-file reader on mutated valid fixtures.

Each example applies 1-3 mutations (byte flips, truncation, inserted or overwritten garbage, an absurd number in a
header field) to one file of a valid fixture, then reads it as pmoe would. The reader must keep the contract in
fuzzing.py: a valid Scene or a one-line PmoeError naming the file, no hang, no huge allocation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzzing import FUZZ, Tally, check_contract, mutate, mutations
from hypothesis import given

from targets import SINGLE_FILE, SOURCES, Target, member_name, read_member, replace_member, resolve_file

_BUILT: dict[str, tuple[Path, Path, bytes]] = {}


@pytest.fixture
def fixture_of(tmp_path_factory):
    """(root, mutated file, pristine bytes) of a target, built once per session."""
    def get(target: Target) -> tuple[Path, Path, bytes]:
        if target.name not in _BUILT:
            root = tmp_path_factory.mktemp(f"fuzz-{target.name}")
            target.build(root)
            path = resolve_file(root, target)
            _BUILT[target.name] = (root, path, path.read_bytes())
        return _BUILT[target.name]
    return get


def _fuzz(target: Target, fixture_of, fuzz_data) -> None:
    root, path, pristine = fixture_of(target)
    tally = Tally(target.name)

    @FUZZ
    @given(edits=mutations(target.text_header))
    def example(edits):
        if target.member:
            member = member_name_cached(path, target.member, pristine)
            data = mutate(read_member_cached(path, member, pristine), edits, target.header_bytes)
            path.write_bytes(replace_member(pristine, member, data))
        else:
            path.write_bytes(mutate(pristine, edits, target.header_bytes))
        try:
            tally.add(check_contract(lambda warn: target.read(root, warn), _named(target, root, path)))
        finally:
            path.write_bytes(pristine)

    example()
    tally.write()
    assert tally.ok + tally.error > 0


_MEMBERS: dict[tuple[Path, str], tuple[str, bytes]] = {}


def member_name_cached(path: Path, suffix: str, pristine: bytes) -> str:
    if (path, suffix) not in _MEMBERS:
        name = member_name(path, suffix)
        _MEMBERS[(path, suffix)] = (name, read_member(path, name))
    return _MEMBERS[(path, suffix)][0]


def read_member_cached(path: Path, member: str, pristine: bytes) -> bytes:
    return next(data for (p, _), (name, data) in _MEMBERS.items() if p == path and name == member)


def _named(target: Target, root: Path, path: Path) -> str:
    """What the error must name: the file itself for single-file readers, the dataset root for raw sources
    (a corrupt table may send the reader to another file, which is then the one named)."""
    return path.name if target in SINGLE_FILE else str(root)


@pytest.mark.parametrize("target", SINGLE_FILE, ids=lambda t: t.name)
def test_single_file_reader_survives_mutations(target, fixture_of):
    _fuzz(target, fixture_of, None)


@pytest.mark.parametrize("target", SOURCES, ids=lambda t: t.name)
def test_raw_source_reader_survives_mutations(target, fixture_of):
    _fuzz(target, fixture_of, None)


@pytest.mark.parametrize("target", SINGLE_FILE + SOURCES, ids=lambda t: t.name)
def test_pristine_fixture_reads(target, fixture_of):
    """The fuzzer starts from valid input: every fixture reads cleanly before it is mutated."""
    root, path, _ = fixture_of(target)
    outcome = check_contract(lambda warn: target.read(root, warn), path.name)
    assert outcome.kind == "ok", outcome.message
