"""Writer/reader round trips, commit/resume protocol, refusals, memory:// stores and O(1) reads."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import zarr
from store_fakes import NUM_CLASSES, assert_same_scene, embedding_cache, make_scene  # noqa: F401
from zarr.storage import LocalStore, WrapperStore

from pmoe_core.errors import BadInput, FormatError, StoreError
from pmoe_core.scene import Scene
from pmoe_core.schemas import validate
from pmoe_core.store import (
    CHUNK_POINTS,
    SHARD_POINTS,
    StoreReader,
    StoreWriter,
    check_store,
    find_stores,
    open_store,
    open_stores,
    store_info,
    store_path,
)

pytestmark = pytest.mark.usefixtures("embedding_cache")

ALL = ("color", "normal", "strength", "segment", "instance")


def write(url, scenes_by_split, **kw):
    with StoreWriter.open(url, "scannet", **kw) as w:
        for split, scenes in scenes_by_split.items():
            for s in scenes:
                w.append(split, s)


def test_store_path_local_url_and_shard(tmp_path):
    assert store_path(str(tmp_path), "scannet") == f"{tmp_path}/scannet.zarr"
    assert store_path("s3://bucket/out/", "waymo", (2, 8)) == "s3://bucket/out/waymo.shard-2-of-8.zarr"
    with pytest.raises(StoreError):
        store_path("out", "waymo", (8, 8))


def test_round_trip_every_field(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    # sizes cross chunk boundaries: the 70k scene spans two 64 Ki chunks
    train = [make_scene(f"scene{i}", n) for i, n in enumerate((10, 70_000, 1, 3000))]
    test = [make_scene(f"test{i}", 500 + i, fields=("color",)) for i in range(3)]
    write(url, {"train": train, "test": test})

    r = open_store(url)
    assert r.dataset == "scannet" and r.splits == ("train", "test")
    assert r.fields("train") == ("coord",) + ALL
    assert r.fields("test") == ("coord", "color")  # unlabeled split: no segment array at all
    assert "segment" not in dict(zarr.open_group(url, mode="r")["test"].arrays())
    assert r.names("train") == [s.name for s in train]
    assert [r.num_points("train", i) for i in range(4)] == [10, 70_000, 1, 3000]
    for i, s in enumerate(train):
        assert_same_scene(s, r.read("train", i))
        assert_same_scene(s, r.read("train", s.name))
    assert_same_scene(train[-1], r.read("train", -1))
    for got, want in zip(r.iter_scenes("test"), test):
        assert_same_scene(want, got)
    part = r.read("train", 1, fields=["segment"])
    assert part.present_fields() == ["coord", "segment"]
    np.testing.assert_array_equal(part.segment, train[1].segment)
    with pytest.raises(BadInput, match="no field"):
        r.read("test", 0, fields=["segment"])
    with pytest.raises(BadInput, match="out of range"):
        r.read("train", 4)
    with pytest.raises(BadInput, match="no scene named"):
        r.read("train", "nope")
    assert check_store(url) == []


def test_attributes_follow_schema_and_carry_embeddings(tmp_path):
    from pmoe_core.vocab import class_embeddings

    url = store_path(str(tmp_path), "scannet")
    write(url, {"train": [make_scene("a", 100)]}, source="unit test")
    r = StoreReader(url)
    validate(r.attrs, "store", url)
    expected = class_embeddings("scannet", "minilm")
    assert r.class_names == list(expected.classes) == list(r.label_space.classes)
    assert [c["entry"] for c in r.attrs["classes"]] == list(expected.entries)
    assert [c["prompt"] for c in r.attrs["classes"]] == list(expected.prompts)
    assert r.class_embeddings.shape == (20, expected.dim) and r.class_embeddings.dtype == np.float32
    np.testing.assert_array_equal(r.class_embeddings, expected.vectors)
    assert r.attrs["text_encoder"]["name"] == "minilm" and r.attrs["source"] == "unit test"


def test_writer_validates_attributes_before_committing_them(tmp_path, monkeypatch):
    from pmoe_core.store import attrs as store_attrs

    real = store_attrs.build_attrs
    monkeypatch.setattr(store_attrs, "build_attrs", lambda *a, **k: {**real(*a, **k), "benchmark": ""})
    url = store_path(str(tmp_path), "scannet")
    with pytest.raises(FormatError, match="does not match schema 'store' at benchmark"):
        StoreWriter.open(url, "scannet")
    assert not (tmp_path / "scannet.zarr").exists()  # no attributes, no embeddings, no lock, no empty folder
    monkeypatch.setattr(store_attrs, "build_attrs", real)
    write(url, {"train": [make_scene("a", 10)]})  # the same folder then takes a valid store
    assert check_store(url) == []


def test_failed_creation_leaves_nothing_and_never_removes_an_existing_store(tmp_path, monkeypatch):
    from pmoe_core.store import attrs as store_attrs

    real = store_attrs.compute_class_table

    def no_weights(dataset, encoder, *args, **kwargs):  # clip offline without weights; minilm works
        if encoder == "clip":
            raise BadInput("the clip text encoder needs --text-weights")
        return real(dataset, encoder, *args, **kwargs)

    monkeypatch.setattr(store_attrs, "compute_class_table", no_weights)
    url = store_path(str(tmp_path / "out" / "deeper"), "scannet")
    with pytest.raises(BadInput, match="needs --text-weights"):
        StoreWriter.open(url, "scannet", text_encoder="clip")
    assert list(tmp_path.iterdir()) == []  # neither the store nor the parents it would have made

    kept = store_path(str(tmp_path), "scannet")
    write(kept, {"train": [make_scene("a", 10)]})
    with pytest.raises(BadInput):  # a failed --overwrite embeds first: the old store is untouched
        StoreWriter.open(kept, "scannet", text_encoder="clip", overwrite=True)
    assert open_store(kept).names("train") == ["a"] and check_store(kept) == []
    empty = tmp_path / "empty" / "scannet.zarr"
    empty.mkdir(parents=True)
    with pytest.raises(BadInput):
        StoreWriter.open(str(empty), "scannet", text_encoder="clip")
    assert empty.is_dir()  # a folder that was there before stays

    # Failing before the first commit removes the store this writer created; after a commit it stays (resume).
    fresh = store_path(str(tmp_path / "fresh"), "scannet")
    with pytest.raises(FormatError):
        with StoreWriter.open(fresh, "scannet") as w:
            w.append("train", make_scene("../bad", 10))
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(FormatError):
        with StoreWriter.open(fresh, "scannet") as w:
            w.append("train", make_scene("a", 10))
            w.append("train", make_scene("../bad", 10))
    assert open_store(fresh).names("train") == ["a"]
    with pytest.raises(FormatError):  # a store that existed before this writer opened it is never removed
        with StoreWriter.open(kept, "scannet", overwrite=True) as w:
            w.append("train", make_scene("../bad", 10))
    assert (tmp_path / "scannet.zarr" / "zarr.json").is_file()


def test_scene_validation_on_append(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    with StoreWriter.open(url, "scannet") as w:
        w.append("train", make_scene("a", 50))
        with pytest.raises(FormatError, match="fixed by its first scene"):
            w.append("train", make_scene("b", 50, fields=("color",)))
        bad = make_scene("c", 50)
        bad.segment[3] = NUM_CLASSES
        with pytest.raises(FormatError, match="segment values"):
            w.append("train", bad)
        nan = make_scene("d", 50)
        nan.coord[0, 0] = np.nan
        with pytest.raises(FormatError, match="NaN"):
            w.append("train", nan)
        with pytest.raises(FormatError, match="bad scene name"):
            w.append("train", make_scene("x/y", 5))
        with pytest.raises(StoreError, match="already committed"):
            w.append("train", make_scene("a", 50))
        w.append("train", make_scene("e", 50))
    r = open_store(url)
    assert r.names("train") == ["a", "e"]  # refused scenes left nothing behind
    assert check_store(url) == []


def _leave_uncommitted_tail(url: str) -> None:
    """What a writer killed mid-commit leaves: extra field rows and a name, and a grown-but-unwritten offset."""
    split = zarr.open_group(url, mode="r+")["train"]
    for name, arr in split.arrays():
        if name == "names":
            arr.append(np.array(["ghost"], dtype=object))
        elif name == "offsets":
            arr.resize((arr.shape[0] + 1,))  # zarr's append grows the shape before writing the value
        else:
            arr.append(np.ones((123, *arr.shape[1:]), dtype=arr.dtype))


def test_uncommitted_tail_is_invisible_and_cut_on_resume(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    scenes = [make_scene(f"s{i}", 100 + i) for i in range(3)]
    write(url, {"train": scenes[:2]})
    _leave_uncommitted_tail(url)
    assert check_store(url) == []
    r = open_store(url)
    assert r.num_scenes("train") == 2 and r.names("train") == ["s0", "s1"]
    assert_same_scene(scenes[1], r.read("train", 1))

    with StoreWriter.open(url, "scannet") as w:
        assert w.committed("train") == {"s0", "s1"}
        raw = zarr.open_group(url, mode="r")["train"]
        assert raw["coord"].shape[0] == 201 and raw["names"].shape[0] == 2 and raw["offsets"].shape[0] == 3
        w.append("train", scenes[2])
    r = open_store(url)
    assert r.names("train") == ["s0", "s1", "s2"]
    for s in scenes:
        assert_same_scene(s, r.read("train", s.name))
    assert check_store(url) == []


def test_split_without_any_commit_takes_new_fields_on_resume(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    with StoreWriter.open(url, "scannet") as w:
        w.append("val", make_scene("v", 10))
    group = zarr.open_group(url, mode="r+")
    half = group.create_group("train")  # a split whose creation was interrupted: arrays but no offsets
    half.create_array("coord", shape=(0, 3), dtype="float32")
    torn = group.create_group("test")  # ... or killed between growing offsets to (1,) and writing its 0
    torn.create_array("coord", shape=(0, 3), dtype="float32")
    torn.create_array("names", shape=(0,), dtype=str)
    torn.create_array("offsets", shape=(1,), dtype="int64", fill_value=-1)
    assert check_store(url) == []
    r = open_store(url)
    assert (r.num_scenes("train"), r.num_scenes("test"), r.num_scenes("val")) == (0, 0, 1)
    with StoreWriter.open(url, "scannet") as w:
        assert w.committed("train") == w.committed("test") == set()
        w.append("train", make_scene("t", 10, fields=("color",)))
        w.append("test", make_scene("u", 10, fields=("normal",)))
    r = open_store(url)
    assert r.fields("train") == ("coord", "color") and r.fields("test") == ("coord", "normal")
    assert r.names("test") == ["u"]
    assert check_store(url) == []


def test_all_zero_fields_are_stored_so_a_missing_object_still_means_damage(tmp_path):
    """zarr skips chunks of fill values (0) by default; an all-zero segment or instance is valid data, not a hole."""
    url = store_path(str(tmp_path), "scannet")

    def zeros(name, n):
        return Scene(name, np.zeros((n, 3), np.float32), segment=np.zeros(n, np.int16),
                     instance=np.zeros(n, np.int32))

    write(url, {"train": [zeros("a", 10)]})
    assert check_store(url) == []
    with StoreWriter.open(url, "scannet") as w:  # a reopened array forgets write_empty_chunks: the writer resets it
        w.append("train", zeros("b", SHARD_POINTS))  # rows 10 .. 1 Mi + 10: the first rows of a second shard
    split = tmp_path / "scannet.zarr" / "train"
    for k in (0, 1):  # every shard of every field, all of them zeros
        assert all((split / key).exists() for key in (f"coord/c/{k}/0", f"segment/c/{k}", f"instance/c/{k}"))
    assert check_store(url) == []
    assert_same_scene(zeros("b", SHARD_POINTS), open_store(url).read("train", "b"))

    (split / "segment" / "c" / "1").unlink()
    # a field array from a writer that skipped all-zero chunks has no mark: an absent object there is ambiguous
    zarr.open_group(url, mode="r+")["train"]["instance"].attrs.put({})
    (split / "instance" / "c" / "0").unlink()
    assert check_store(url) == [
        "train/segment: 1 stored object(s) missing (c/1); the rows they hold would read as fill values"]


def test_refuses_other_dataset_version_encoder_and_foreign_folders(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    write(url, {"train": [make_scene("a", 10)]})
    with pytest.raises(StoreError, match="holds dataset 'scannet', not 's3dis'"):
        StoreWriter.open(url, "s3dis")
    with pytest.raises(StoreError, match="text encoder 'minilm', not 'clip'"):
        StoreWriter.open(url, "scannet", text_encoder="clip")
    group = zarr.open_group(url, mode="r+")
    group.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="format version 99"):
        StoreWriter.open(url, "scannet")
    with pytest.raises(StoreError, match="format version 99"):
        StoreReader(url)
    # the refusals released the lock: an overwrite may still start again
    with StoreWriter.open(url, "scannet", overwrite=True) as w:
        assert w.committed("train") == set()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a zarr scene store"):
        StoreWriter.open(str(foreign), "scannet")
    assert (foreign / "todo.txt").read_text() == "mine"


def test_lock_is_released_and_held(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    w = StoreWriter.open(url, "scannet")
    with pytest.raises(StoreError, match=r"being written by pid \d+"):
        StoreWriter.open(url, "scannet")
    w.close()
    StoreWriter.open(url, "scannet").close()


def test_memory_store_round_trip():
    url = f"memory://pmoe-test-{uuid.uuid4().hex}/out"
    path = store_path(url, "scannet")
    scenes = [make_scene(f"m{i}", 200) for i in range(3)]
    write(path, {"train": scenes})
    r = open_store(path)
    for s in scenes:
        assert_same_scene(s, r.read("train", s.name))
    assert check_store(path) == []
    assert store_info(path)["scenes"] == 3
    found = find_stores(url, "scannet")
    assert len(found) == 1 and open_store(found[0]).names("train") == ["m0", "m1", "m2"]
    with StoreWriter.open(path, "scannet") as w:  # resume works on fsspec stores too
        assert w.committed("train") == {"m0", "m1", "m2"}


def test_shard_stores_read_as_one(tmp_path):
    scenes = [make_scene(f"s{i:02d}", 50 + i) for i in range(7)]
    for k in range(3):
        write(store_path(str(tmp_path), "scannet", (k, 3)), {"train": scenes[k::3]})
    urls = find_stores(str(tmp_path), "scannet")
    assert [u.rsplit("/", 1)[-1] for u in urls] == [f"scannet.shard-{k}-of-3.zarr" for k in range(3)]
    both = open_stores(urls)
    assert both.num_scenes("train") == 7
    assert sorted(both.names("train")) == [s.name for s in scenes]
    for s in scenes:
        assert_same_scene(s, both.read("train", s.name))
    assert_same_scene(scenes[2], both.read("train", 5))  # shard 2 holds s02, s05; it follows 3 + 2 scenes
    assert sum(1 for _ in both.iter_scenes("train")) == 7
    write(str(tmp_path / "dup.zarr"), {"train": [scenes[0]]})
    with pytest.raises(StoreError, match="more than one"):
        open_stores([*urls, str(tmp_path / "dup.zarr")]).names("train")


class CountingStore(WrapperStore):
    """Records every get (key, bytes returned) so a test can see what a read touched."""

    def __init__(self, store):
        super().__init__(store)
        self.gets: list[tuple[str, int]] = []

    async def get(self, key, prototype, byte_range=None):
        buf = await self._store.get(key, prototype, byte_range)
        self.gets.append((key, 0 if buf is None else len(buf)))
        return buf


def test_scene_read_touches_only_its_own_slice(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    n_scenes, n_points = 200, 4000  # 800k points: 13 chunks of 64 Ki per field
    rng = np.random.default_rng(0)
    with StoreWriter.open(url, "scannet") as w:
        for i in range(n_scenes):
            w.append("train", make_scene(f"s{i:03d}", n_points, fields=("segment",), seed=int(rng.integers(1 << 30))))
    stored_bytes = sum(p.stat().st_size for p in (tmp_path / "scannet.zarr" / "train" / "coord").rglob("c/*/*"))
    assert 800_000 / CHUNK_POINTS > 12

    def cost(i: int) -> tuple[int, int, int]:
        counting = CountingStore(LocalStore(url, read_only=True))
        r = StoreReader(counting)
        r.offsets("train")  # load offsets first: that one-time cost is not part of a scene read
        before = len(counting.gets)
        scene = r.read("train", i)
        assert len(scene) == n_points
        gets = counting.gets[before:]
        coord_bytes = sum(b for k, b in gets if k.startswith("train/coord/c"))
        return len(gets), coord_bytes, len({k for k, _ in gets})

    first, last = cost(0), cost(n_scenes - 1)
    # fields coord + segment: shard index + 1-2 chunks each, plus one names chunk
    assert last[0] <= 7 and first[0] <= 7
    assert last[1] < 0.2 * stored_bytes, (last, stored_bytes)  # far less than the whole array
    assert last[2] == first[2]  # the same kinds of objects, whatever the position
