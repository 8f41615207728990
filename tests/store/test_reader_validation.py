"""The reader validates what it reads (issue #16 items 2, 5, 9): a damaged store is one StoreError, never a hang, a
traceback, a truncated scene or rows of fill values passed off as data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from store_fakes import embedding_cache, make_scene  # noqa: F401

from pmoe_core.data.dataset import SceneDataset
from pmoe_core.errors import StoreError
from pmoe_core.store import (
    StoreReader,
    StoreWriter,
    check_store,
    store_info,
    store_path,
)

pytestmark = pytest.mark.usefixtures("embedding_cache")


@pytest.fixture
def store(tmp_path) -> str:
    url = store_path(str(tmp_path), "scannet")
    with StoreWriter.open(url, "scannet") as w:
        for i in range(3):
            w.append("train", make_scene(f"t{i}", 100 + i))
    return url


def _split(url: str) -> zarr.Group:
    return zarr.open_group(url, mode="r+")["train"]


def _edit_metadata(url: str, member: str, edit) -> None:
    path = Path(url) / member / "zarr.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _every_reader_refuses(url: str, match: str) -> None:
    """Opening the split, reading a scene, iterating a field, info, check and the training dataset all say so."""
    for attempt in (lambda: StoreReader(url).read("train", 0), lambda: list(StoreReader(url).iter_field("train", "coord")),
                    lambda: store_info(url), lambda: SceneDataset([url], "train")):
        with pytest.raises(StoreError, match=match) as err:
            attempt()
        assert "\n" not in err.value.message and url in err.value.message
    assert check_store(url), "check must see it too"


def test_last_offset_claiming_1e15_points_fails_fast(store):
    """`pmoe info` iterated 1M-row blocks up to the claimed offset (a hang); train read a truncated scene."""
    _split(store)["offsets"][3] = 10**15
    t = time.perf_counter()
    _every_reader_refuses(store, r"train/coord: 303 rows but offsets need 1000000000000000")
    assert time.perf_counter() - t < 20


def test_offsets_and_shape_both_claiming_1e15_fail_fast_without_looping(store):
    """With the array's shape edited to match, the missing objects are found from one listing, not 10^9 look-ups."""
    _split(store)["offsets"][3] = 10**15
    for field, width in (("coord", [3]), ("color", [3]), ("normal", [3]), ("strength", []), ("segment", []),
                         ("instance", [])):
        _edit_metadata(store, f"train/{field}", lambda m, w=width: m.__setitem__("shape", [10**15, *w]))
    t = time.perf_counter()
    _every_reader_refuses(store, r"train/coord: 953674316 stored object\(s\) missing")
    assert time.perf_counter() - t < 20


def test_deleted_chunk_is_an_error_not_zeros(store):
    (Path(store) / "train" / "coord" / "c" / "0" / "0").unlink()
    _every_reader_refuses(store, r"train/coord: 1 stored object\(s\) missing \(c/0/0\)")


def test_non_monotone_and_float_offsets_are_errors_not_empty_scenes(store, tmp_path):
    _split(store)["offsets"][2] = 50
    _every_reader_refuses(store, r"train/offsets: not increasing at scene 1 \(100 -> 50\)")
    group = _split(store)
    values = group["offsets"][:]
    del group["offsets"]
    group.create_array("offsets", data=values.astype(np.float64))
    _every_reader_refuses(store, r"train/offsets: dtype float64 ndim 1, expected 1-D int64")


def test_short_names_and_zero_chunk_shapes_are_errors_not_tracebacks(store):
    _split(store)["names"].resize((2,))
    _every_reader_refuses(store, r"train/names: 2 names for 3 committed scenes")


@pytest.mark.parametrize("where", ["chunk_grid", "inner"])
def test_zero_chunk_shape_is_an_error(store, where):
    def zero(meta):
        if where == "chunk_grid":
            meta["chunk_grid"]["configuration"]["chunk_shape"] = [0, 3]
        else:
            meta["codecs"][0]["configuration"]["chunk_shape"] = [0, 3]
    _edit_metadata(store, "train/coord", zero)
    with pytest.raises(StoreError) as err:
        StoreReader(store).read("train", 0)
    assert "train/coord" in err.value.message and ("not positive" in err.value.message
                                                   or "unreadable" in err.value.message)
    assert check_store(store)


def test_labels_out_of_range_and_nan_coordinates_in_a_scene_are_errors(store):
    _split(store)["segment"][100:105] = 20  # scannet has classes 0..19
    with pytest.raises(StoreError, match=r"scene 1 of split 'train': train/segment: values span \[-1, 20\]"):
        StoreReader(store).read("train", 1)
    StoreReader(store).read("train", 0)  # the other scenes stay readable
    _split(store)["coord"][0, 0] = np.nan
    with pytest.raises(StoreError, match="scene 0 of split 'train': train/coord: contains NaN"):
        StoreReader(store).read("train", 0)


def test_class_embeddings_claiming_1e12_rows_are_refused_before_reading(store):
    _edit_metadata(store, "class_embeddings", lambda m: m.__setitem__("shape", [10**12, m["shape"][1]]))
    with pytest.raises(StoreError, match="class_embeddings: shape"):
        _ = StoreReader(store).class_embeddings
    assert check_store(store)[0].startswith("class_embeddings: shape")


def test_deeply_nested_zarr_json_is_one_error_line(store):
    """~1000 nested levels gave a RecursionError traceback; root, split and array metadata alike."""
    root = Path(store) / "zarr.json"
    pristine = root.read_text()
    root.write_text(pristine[:-1] + ', "deep": ' + "[" * 1000 + "]" * 1000 + "}")
    with pytest.raises(StoreError, match="zarr.json is unreadable") as err:
        StoreReader(store)
    assert "\n" not in err.value.message
    assert "nested deeper" in check_store(store)[0]
    root.write_text(pristine)
    array_meta = Path(store) / "train" / "coord" / "zarr.json"
    text = array_meta.read_text()
    array_meta.write_text(text[:-1] + ', "deep": ' + "[" * 1000 + "]" * 1000 + "}")
    with pytest.raises(StoreError) as err:
        StoreReader(store).read("train", 0)
    assert "\n" not in err.value.message and "metadata" in err.value.message
    assert check_store(store)


def test_healthy_store_reads_without_extra_cost(store):
    """The validation happens once per split: later reads reuse the index (no re-listing, no re-reading)."""
    reader = StoreReader(store)
    first = reader.read("train", 0)
    index = reader._split("train").index
    assert reader.read("train", 2).name == "t2" and reader._split("train").index is index
    assert len(first) == 100 and check_store(store) == []


def test_names_chunk_claiming_16_gib_is_refused_before_zarr_allocates(store):
    """Fuzzer finds: a flipped zstd frame-size byte, or a flipped string count in the names chunk, made zarr allocate
    16 GiB before it noticed anything."""
    import tracemalloc

    chunk = Path(store) / "train" / "names" / "c" / "0"
    pristine = chunk.read_bytes()
    frame = bytearray(pristine)
    frame[4] = 0xE0  # single segment, 8-byte frame content size
    claims_16_gib = bytes(frame[:5]) + (1 << 34).to_bytes(8, "little") + bytes(frame[7:])
    count_flipped = bytearray(pristine)
    count_flipped[12] ^= 0x80
    for damaged, match in ((claims_16_gib, "claims 17179869184 decoded bytes, more than its 4096 values hold"),
                           (bytes(count_flipped), r"holds \d+ strings, its chunk has 4096")):
        chunk.write_bytes(damaged)
        tracemalloc.start()
        try:
            with pytest.raises(StoreError, match=f"train/names: object train/names/c/0 {match}"):
                StoreReader(store).read("train", 0)
            assert tracemalloc.get_traced_memory()[1] < 64 << 20
        finally:
            tracemalloc.stop()
        assert check_store(store)[0].startswith("train/names: object train/names/c/0")
