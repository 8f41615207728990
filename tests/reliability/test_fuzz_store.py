"""Property-based fuzzing of the scene store's own files and values (issue #16: "one bounded, validated reader layer").

Byte targets mutate one file of a small valid store (root / split / array zarr.json, an offsets or names chunk, a
point-field shard, the class embeddings) as test_fuzz_readers.py mutates raw files; value targets write absurd
offsets and names through zarr itself. Every reading path (StoreReader open, read, iter_field, embeddings, `pmoe
info`'s summary, `pmoe export`) must keep the contract of fuzzing.py: the data, or one PmoeError line naming the
store; no traceback, no hang, no huge allocation. And never silent fill values: a scene that reads must not carry
rows of zeros where the pristine store had data (what a missing chunk used to give).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from fuzzing import (
    FUZZ,
    FUZZ_EXAMPLES,
    HUGE_NUMBERS,
    Tally,
    check_contract,
    mutate,
    mutations,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from store_targets import STORE_FILES, StoreTarget, build_store, read_everything

from pmoe_core.store import StoreReader

pytestmark = pytest.mark.slow  # ~1 min for all targets on 2 loaded cores

STORE_FUZZ = settings(FUZZ, max_examples=max(FUZZ_EXAMPLES // 4, 5))  # 10 targets + 2 value targets


@pytest.fixture(scope="module")
def pristine_store(tmp_path_factory, cache_env):
    """(url, scenes by (split, name)) of the valid fixture, built once."""
    root = tmp_path_factory.mktemp("fuzz-store")
    url = build_store(root)
    reader = StoreReader(url)
    scenes = {(split, s.name): s for split in reader.splits for s in reader.iter_scenes(split)}
    return url, scenes


@pytest.fixture
def working_copy(pristine_store, tmp_path):
    """A fresh copy of the store per test (examples restore the one file they edit)."""
    url, scenes = pristine_store
    copy = tmp_path / "scannet.zarr"
    shutil.copytree(url, copy)
    return str(copy), scenes, tmp_path / "exported" / "x.ply"


def _no_silent_fill(read: list, pristine: dict) -> None:
    """A field of a scene must not read as all fill values (zeros) where the pristine store had data: that is a
    missing chunk read as data (each fixture scene lies inside one chunk). Other changed values can pass: point
    chunks carry no checksum (docs/store-format.md)."""
    for scene in read:
        for (_, name), original in pristine.items():
            if name != scene.name or len(original) != len(scene):
                continue
            for field, values in scene.arrays().items():
                before = getattr(original, field)
                if before is not None and (before != 0).any():
                    assert (values != 0).any(), f"{scene.name}/{field}: every row reads as zeros"


def _contract(url: str, export_to: Path, pristine: dict) -> str:
    export_to.parent.mkdir(exist_ok=True)

    def read(warn):
        scenes = read_everything(url, export_to)
        _no_silent_fill(scenes, pristine)
        return scenes

    return check_contract(read, url).kind


@pytest.mark.parametrize("target", STORE_FILES, ids=lambda t: t.name)
def test_store_file_mutations_are_read_or_refused(target: StoreTarget, working_copy):
    url, pristine, export_to = working_copy
    path = Path(url) / target.file
    original = path.read_bytes()
    tally = Tally(f"store_{target.name}")

    @STORE_FUZZ
    @given(edits=mutations(target.text_header))
    def example(edits):
        path.write_bytes(mutate(original, edits, target.header_bytes))
        try:
            outcome = _contract(url, export_to, pristine)
            tally.ok += outcome == "ok"
            tally.error += outcome == "error"
        finally:
            path.write_bytes(original)

    example()
    tally.write()
    assert tally.ok + tally.error > 0


@pytest.mark.parametrize("target", STORE_FILES, ids=lambda t: t.name)
def test_deleted_store_file_is_refused_not_read_as_fill_values(target: StoreTarget, working_copy):
    url, pristine, export_to = working_copy
    (Path(url) / target.file).unlink()
    assert _contract(url, export_to, pristine) == "error"


def _write_offsets(url: str, split: str, values: list[int]) -> None:
    group = zarr.open_group(url, mode="r+")[split]
    arr = group["offsets"]
    arr.resize((len(values),))
    arr[:] = np.asarray(values, dtype=np.int64)


@STORE_FUZZ
@given(data=st.data())
def test_absurd_offsets_are_read_or_refused(working_copy, data):
    url, pristine, export_to = working_copy
    original = zarr.open_group(url, mode="r")["train"]["offsets"][:].tolist()
    edited = list(original)
    for _ in range(data.draw(st.integers(1, 3))):
        what = data.draw(st.sampled_from(["set", "append", "drop"]))
        if what == "set":
            i = data.draw(st.integers(0, len(edited) - 1))
            edited[i] = data.draw(st.one_of(st.sampled_from([v for v in HUGE_NUMBERS if v < 2**63]
                                                            + [-(2**63), -(10**15), 10**15]),
                                            st.integers(-1000, 2000)))
        elif what == "append":
            edited.append(data.draw(st.sampled_from([-1, 0, 10**15, 2**63 - 1, edited[-1] + 1])))
        elif len(edited) > 1:
            edited.pop()
    try:
        _write_offsets(url, "train", edited)
        assert _contract(url, export_to, pristine) in ("ok", "error")
    finally:
        _write_offsets(url, "train", original)


@STORE_FUZZ
@given(names=st.lists(st.one_of(st.sampled_from(["", "train0", "train1", "..", "a" * 300, "x\ny", "\x00"]),
                                st.text(max_size=12)), min_size=0, max_size=5))
def test_absurd_names_are_read_or_refused(working_copy, names):
    url, pristine, export_to = working_copy
    arr = zarr.open_group(url, mode="r+")["train"]["names"]
    original = [str(n) for n in arr[:]]
    try:
        arr.resize((len(names),))
        if names:
            arr[:] = np.array(names, dtype=object)
        assert _contract(url, export_to, pristine) in ("ok", "error")
    finally:
        arr.resize((len(original),))
        arr[:] = np.array(original, dtype=object)
