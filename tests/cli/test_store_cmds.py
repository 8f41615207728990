"""`pmoe check` and `pmoe info` on real stores, healthy and damaged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_fakes import embedding_cache, make_scene  # noqa: E402, F401

from pmoe_cli import app as app_module  # noqa: E402
from pmoe_core.schemas import validate  # noqa: E402
from pmoe_core.store import StoreWriter, store_path  # noqa: E402

pytestmark = pytest.mark.usefixtures("embedding_cache")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        app_module.main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def store(tmp_path) -> str:
    url = store_path(str(tmp_path), "scannet")
    with StoreWriter.open(url, "scannet") as w:
        for i in range(3):
            w.append("train", make_scene(f"t{i}", 100 + i))
        w.append("test", make_scene("x0", 50, fields=("color",)))
    return url


def test_check_ok(store, capsys):
    code, out, err = run_cli(capsys, "check", store)
    assert code == 0, err
    assert out.strip() == f"ok: {store}: scannet, 4 scenes (train 3, test 1), 353 points"


def test_check_reports_corrupted_attributes(store, capsys):
    group = zarr.open_group(store, mode="r+")
    attrs = dict(group.attrs)
    del attrs["dataset"]
    attrs["classes"] = attrs["classes"][:5]
    group.attrs.put(attrs)
    code, out, err = run_cli(capsys, "check", store)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"pmoe: error: {store}: attributes at (root): 'dataset' is a required property")

    code, out, err = run_cli(capsys, "check", "--all", store)
    assert code == 1
    lines = out.strip().splitlines()
    assert "class_embeddings: shape (20, 384), expected (5, 384) = (classes, dim)" in lines
    assert err.strip() == f"pmoe: error: {store}: {len(lines)} problem(s) found"


def test_check_reports_damaged_point_data(store, capsys):
    split = zarr.open_group(store, mode="r+")["train"]
    split["segment"][5] = 20  # ScanNet20 has classes 0..19
    split["offsets"][2] = split["offsets"][1] - 1
    code, out, err = run_cli(capsys, "check", "--all", store)
    assert code == 1
    assert "train/offsets: not increasing at scene 1" in out
    split["offsets"][2] = 201
    code, out, err = run_cli(capsys, "check", store)
    assert code == 1 and "train/segment: values span [-1, 20], allowed -1 .. 19" in err


def test_check_reports_a_class_mapped_to_the_wrong_vocabulary_entry(store, capsys):
    """The S3DIS sorted-index bug, done by hand: class names intact, entries shifted. Eval would trust them."""
    group = zarr.open_group(store, mode="r+")
    attrs = dict(group.attrs)
    attrs["classes"][0]["entry"], attrs["classes"][1]["entry"] = "floor", "wall"
    group.attrs.put(attrs)
    code, out, err = run_cli(capsys, "check", "--all", store)
    assert code == 1
    assert out.strip().splitlines() == [
        "attributes at classes/0: class 'wall' maps to vocabulary entry 'floor', but the unified vocabulary says "
        "'wall'",
        "attributes at classes/1: class 'floor' maps to vocabulary entry 'wall', but the unified vocabulary says "
        "'floor'",
    ]


def test_check_and_info_report_unreadable_bytes_in_one_line(store, capsys):
    root = Path(store)
    (root / "zarr.json").write_text((root / "zarr.json").read_text()[:-40])  # a truncated copy
    for command in ("check", "info"):
        code, out, err = run_cli(capsys, command, store)
        assert code == 1 and err.count("\n") == 1, err
        assert err.startswith(f"pmoe: error: {store}: ") and "zarr.json" in err and "unreadable" in err


def test_check_reports_corrupt_and_missing_chunks(store, capsys):
    root = Path(store)
    (root / "train" / "color" / "c" / "0" / "0").write_bytes(b"\x00" * 64)  # fails its checksum
    (root / "train" / "instance" / "c" / "0").unlink()  # zarr would read zeros in its place
    code, out, err = run_cli(capsys, "check", "--all", store)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 2, lines
    # what the metadata and the listing show comes first, then what decoding the point data shows
    assert lines[0] == "train/instance: 1 stored object(s) missing (c/0); the rows they hold would read as fill values"
    assert lines[1].startswith("train/color: unreadable (")
    (root / "test" / "names" / "c" / "0").unlink()
    code, out, err = run_cli(capsys, "check", "--all", store)
    assert "test/names: 1 stored object(s) missing (c/0); the rows they hold would read as fill values" in out


@pytest.mark.slow  # one real `pmoe` process: its start-up imports every registered command
def test_check_exit_code_from_a_real_process(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "pmoe_cli", "check", str(tmp_path / "missing.zarr")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr == f"pmoe: error: {tmp_path / 'missing.zarr'}: no scene store here (expected a Zarr v3 " \
                         "group written by pmoe convert)\n"


def test_info_json_and_tables(store, capsys):
    code, out, err = run_cli(capsys, "info", "--json", store)
    assert code == 0, err
    info = json.loads(out)
    assert info["dataset"] == "scannet" and info["benchmark"] == "ScanNet20"
    assert info["scenes"] == 4 and info["points"] == 353
    assert info["text_encoder"] == "minilm" and info["embedding_dim"] == 384
    train = info["splits"]["train"]
    assert train["fields"] == ["coord", "color", "normal", "strength", "segment", "instance"]
    segments = np.concatenate([make_scene(f"t{i}", 100 + i).segment for i in range(3)])
    assert train["class_points"]["wall"] == int((segments == 0).sum())
    assert train["ignored_points"] == int((segments == -1).sum())
    assert sum(train["class_points"].values()) + train["ignored_points"] == 303
    assert info["splits"]["test"] == {"scenes": 1, "points": 50, "fields": ["coord", "color"], "labeled": False,
                                      "class_points": {}, "ignored_points": 0}
    code, out, err = run_cli(capsys, "info", store)
    assert code == 0 and "points per class" in out and "otherfurniture" in out and "train" in out


def test_store_attributes_validate(store):
    validate(dict(zarr.open_group(store, mode="r").attrs), "store", store)


def test_info_on_offsets_claiming_1e15_points_is_one_line_not_a_hang(store, capsys):
    zarr.open_group(store, mode="r+")["train"]["offsets"][3] = 10**15
    code, _, err = run_cli(capsys, "info", store)
    assert code == 1 and err.count("\n") == 1
    assert "train/coord: 303 rows but offsets need 1000000000000000" in err


def test_export_never_writes_inside_the_store_or_over_a_file_without_overwrite(store, capsys, tmp_path):
    """`pmoe export S/scannet.zarr S/scannet.zarr/zarr.json` replaced the store's own metadata (data loss)."""
    meta = Path(store) / "zarr.json"
    before = meta.read_bytes()
    code, _, err = run_cli(capsys, "export", store, str(meta), "--split", "train", "--scene", "0")
    assert code == 1 and "is inside the input" in err and "never writes inside what it reads" in err, err
    assert meta.read_bytes() == before
    code, _, err = run_cli(capsys, "export", store, str(Path(store) / "train" / "new.ply"), "--split", "train",
                             "--scene", "0")
    assert code == 1 and "never writes inside what it reads" in err
    assert not (Path(store) / "train" / "new.ply").exists()
    target = tmp_path / "old.ply"
    target.write_bytes(b"mine")
    code, _, err = run_cli(capsys, "export", store, str(target), "--split", "train", "--scene", "0")
    assert code == 1 and "already exists; pass --overwrite" in err and target.read_bytes() == b"mine"
    code, _, err = run_cli(capsys, "export", store, str(target), "--split", "train", "--scene", "0", "--overwrite")
    assert code == 0 and target.read_bytes().startswith(b"ply\n")


@pytest.mark.parametrize("damage", ["deleted chunk", "float offsets", "short names"])
def test_export_of_a_damaged_store_is_an_error_and_writes_nothing(store, capsys, tmp_path, damage):
    """These exported all-zero coordinates or an empty PLY with exit 0, or gave a traceback."""
    split = zarr.open_group(store, mode="r+")["train"]
    if damage == "deleted chunk":
        (Path(store) / "train" / "coord" / "c" / "0" / "0").unlink()
    elif damage == "float offsets":
        values = split["offsets"][:]
        del split["offsets"]
        split.create_array("offsets", data=values.astype(np.float64))
    else:
        split["names"].resize((1,))
    out_file = tmp_path / "x.ply"
    code, _, err = run_cli(capsys, "export", store, str(out_file), "--split", "train", "--scene", "0")
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"pmoe: error: {store}: train/"), err
    assert not out_file.exists() and list(tmp_path.glob(".x.ply*")) == []
