"""The converter machinery (pmoe_core.convert) driving a fake source module: order, resume, shards, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import store_fakes
from store_fakes import Options, assert_same_scene, embedding_cache, fake_source, make_raw  # noqa: F401

from pmoe_core.convert import build_options, convert, parse_shard, select_scenes
from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.sources.base import SceneRef
from pmoe_core.store import check_store, open_store, open_stores, store_path

pytestmark = pytest.mark.usefixtures("embedding_cache", "fake_source")

COUNTS = {"train": 7, "val": 3, "test": 2}


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path / "raw", COUNTS)


def expected_scene(name: str, split: str, options: Options = Options()):
    ref = SceneRef(name, split, (f"{split}/{name}.scene",))
    return store_fakes.read_scene(ref, options, lambda m: None)


def store_contents(url: str) -> dict:
    r = open_store(url)
    return {split: [r.read(split, i) for i in range(r.num_scenes(split))] for split in r.splits}


def assert_same_stores(a: str, b: str) -> None:
    sa, sb = store_contents(a), store_contents(b)
    assert list(sa) == list(sb)
    for split in sa:
        assert [s.name for s in sa[split]] == [s.name for s in sb[split]]
        for x, y in zip(sa[split], sb[split]):
            assert_same_scene(x, y)


@pytest.mark.slow
def test_one_and_two_workers_write_identical_stores(raw, tmp_path):
    one = convert("scannet", raw, str(tmp_path / "w1"), workers=1)
    two = convert("scannet", raw, str(tmp_path / "w2"), workers=2, options=Options(warn_on="train003"))
    assert one.written == two.written == 12 and one.skipped == two.skipped == []
    assert one.points == two.points == sum(len(s) for ss in store_contents(one.store).values() for s in ss)
    assert_same_stores(one.store, two.store)
    # warnings raised by the reader inside a worker process reach the parent's summary
    assert two.warnings == [f"{raw}/train/train003.scene: 3 stray bytes ignored (fake)"]
    r = open_store(one.store)
    assert r.splits == ("train", "val", "test")
    assert r.names("train") == [f"train{i:03d}" for i in range(7)]
    assert "segment" not in r.fields("test") and "segment" in r.fields("val")
    assert_same_scene(expected_scene("val002", "val"), r.read("val", "val002"))
    assert "pmoe_core" not in r.attrs["source"] and "store_fakes reading" in r.attrs["source"]
    assert check_store(one.store) == []


def test_interrupted_run_resumes_without_rereading(raw, tmp_path):
    out = str(tmp_path / "out")
    seen = []

    def interrupt_after_four(*, total=None, advance=0, message=None):
        if advance:
            seen.append(message)
            if len(seen) == 4:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert("scannet", raw, out, workers=1, progress=interrupt_after_four)
    assert open_store(store_path(out, "scannet")).names("train") == seen  # four committed, lock released

    again = convert("scannet", raw, out, workers=1)
    assert again.already_present == 4 and again.written == 8 and again.selected == 12
    assert check_store(again.store) == []
    assert_same_stores(again.store, convert("scannet", raw, str(tmp_path / "clean"), workers=1).store)
    third = convert("scannet", raw, out, workers=1)
    assert (third.written, third.already_present) == (0, 12)
    fresh = convert("scannet", raw, out, workers=1, overwrite=True)
    assert (fresh.written, fresh.already_present) == (12, 0)


def test_shards_partition_the_sorted_scene_list(raw, tmp_path):
    out = str(tmp_path / "out")
    names = []
    for k in range(3):
        s = convert("scannet", raw, out, workers=1, shard=(k, 3))
        assert s.store == store_path(out, "scannet", (k, 3))
        r = open_store(s.store)
        names.append([n for split in r.splits for n in r.names(split)])
    flat = [n for part in names for n in part]
    assert len(flat) == len(set(flat)) == 12  # disjoint and complete
    ordered = [f"train{i:03d}" for i in range(7)] + [f"val{i:03d}" for i in range(3)] + ["test000", "test001"]
    assert names[1] == ordered[1::3]
    both = open_stores([store_path(out, "scannet", (k, 3)) for k in range(3)])
    assert both.num_scenes("train") == 7 and both.num_scenes("test") == 2


def test_limit_is_per_split_and_split_filter(raw, tmp_path):
    s = convert("scannet", raw, str(tmp_path / "a"), workers=1, limit=2)
    r = open_store(s.store)
    assert {split: r.names(split) for split in r.splits} == {
        "train": ["train000", "train001"], "val": ["val000", "val001"], "test": ["test000", "test001"]}
    s = convert("scannet", raw, str(tmp_path / "b"), workers=1, splits=["val"])
    assert open_store(s.store).splits == ("val",) and s.written == 3
    with pytest.raises(BadInput, match="no scenes of split"):
        convert("scannet", raw, str(tmp_path / "c"), splits=["validation"])


def test_unreadable_scenes_are_skipped_with_a_warning(raw, tmp_path):
    warned = []
    opts = Options(fail="train002", missing="val001")
    s = convert("scannet", raw, str(tmp_path / "out"), workers=2, options=opts, warn=warned.append)
    assert s.written == 10
    assert [(k.name, k.split) for k in s.skipped] == [("train002", "train"), ("val001", "val")]
    assert s.skipped[0].reason == f"{raw}/train/train002.scene: truncated at byte 12 (fake)"
    assert warned == s.warnings and len(warned) == 2
    assert f"{raw}/val/val001.scene: vanished (fake)" in warned[1]
    r = open_store(s.store)
    assert "train002" not in r.names("train") and r.num_scenes("train") == 6
    # skipped scenes are tried again by the next run (and skipped again while still broken)
    again = convert("scannet", raw, str(tmp_path / "out"), workers=1, options=opts)
    assert (again.written, again.already_present, len(again.skipped)) == (0, 10, 2)


def test_strict_mode_stops_at_the_first_unreadable_scene(raw, tmp_path):
    with pytest.raises(FormatError, match=r"train001 \(train\): .*train001.scene: truncated .*strict"):
        convert("scannet", raw, str(tmp_path / "out"), workers=1, strict=True, options=Options(fail="train001"))
    assert open_store(store_path(str(tmp_path / "out"), "scannet")).names("train") == ["train000"]


def test_scene_the_store_refuses_is_skipped_too(raw, tmp_path):
    s = convert("scannet", raw, str(tmp_path / "out"), workers=1, options=Options(scale=float("inf")), limit=1)
    assert s.written == 0 and len(s.skipped) == 3
    assert "NaN or infinite" in s.skipped[0].reason


def test_missing_or_empty_root_and_no_scenes_are_fatal(tmp_path):
    with pytest.raises(MissingFile, match="raw dataset root not found"):
        convert("scannet", tmp_path / "nope", str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFile, match="raw dataset root is empty"):
        convert("scannet", tmp_path / "empty", str(tmp_path / "out"))
    (tmp_path / "noscenes" / "train").mkdir(parents=True)
    with pytest.raises(MissingFile, match="no scannet scenes found"):
        convert("scannet", tmp_path / "noscenes", str(tmp_path / "out"))
    assert not (tmp_path / "out" / "scannet.zarr").exists()


def test_build_options_types_and_unknown_keys():
    opts = build_options("scannet", ["points=50", "scale=0.5", "fail=a,b"])
    assert opts == Options(points=50, scale=0.5, fail="a,b")
    with pytest.raises(BadInput, match=r"unknown option 'pionts' for scannet \(valid: fail, missing, points, "):
        build_options("scannet", ["pionts=3"])
    with pytest.raises(BadInput, match="expects an integer"):
        build_options("scannet", ["points=many"])
    with pytest.raises(BadInput, match="not KEY=VALUE"):
        build_options("scannet", ["points"])


def test_parse_shard_and_selection_rules():
    assert parse_shard("2/8") == (2, 8)
    for bad in ("8/8", "1", "a/b", "-1/3"):
        with pytest.raises(BadInput):
            parse_shard(bad)
    refs = [SceneRef(n, sp, ()) for n, sp in [("b", "val"), ("z", "train"), ("a", "train"), ("c", "test")]]
    assert [r.name for r in select_scenes(refs)] == ["a", "z", "b", "c"]
    assert [r.name for r in select_scenes(refs, limit=1)] == ["a", "b", "c"]
    assert [r.name for r in select_scenes(refs, shard=(1, 2))] == ["z", "c"]
    assert np.array_equal([r.name for r in select_scenes(refs, splits=["train"])], ["a", "z"])
