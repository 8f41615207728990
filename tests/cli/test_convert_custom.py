"""Your own dataset end to end on the CLI: spec + PLY -> convert -> train 2 steps -> eval -> inspect -> predict.

The store carries the label space; train, eval and route-inspect get it from there (no spec, no built-in table), and
the checkpoint carries it on to predict.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_fakes import embedding_cache  # noqa: F401

from pmoe_cli import app as app_module
from pmoe_core.io.ply import write_ply_arrays
from pmoe_core.schemas import validate
from pmoe_core.sources import synthetic_indoor
from pmoe_core.store import open_store, store_path
from pmoe_core.vocab import custom as vocab_custom
from pmoe_core.vocab.label_spaces import LABEL_SPACES

pytestmark = pytest.mark.usefixtures("embedding_cache")

SPEC = """\
name = "office_scans"
domain = "indoor"
format = "ply"
label_field = "class_id"
ignore_id = 0
fields = ["color"]
classes = [
  { name = "floor", id = 1 },
  { name = "wall", id = 2 },
  { name = "seat", id = 3, synonyms = ["chair"] },
  { name = "table", id = 4 },
  { name = "storage", id = 5, entry = "cabinet" },
  { name = "door", id = 6 },
  { name = "poster", id = 7, prompt = "poster on a wall" },
]
"""
# ScanNet20 class of the synthetic rooms -> the office_scans id it is labelled with in the PLY files (others: 0)
FROM_SCANNET = {"floor": 1, "wall": 2, "chair": 3, "table": 4, "cabinet": 5, "door": 6, "picture": 7}


def write_office_scans(root: Path, scenes: int = 3) -> dict[str, np.ndarray]:
    """PLY rooms with a uchar `class_id` property (from pmoe's synthetic ScanNet rooms): train/ and val/ folders.
    Returns each scene's expected class index per point (-1 = ignore)."""
    truth = synthetic_indoor.write_scannet(root.parent / "synthetic", scenes=scenes + 1, seed=5)
    truth = dict(sorted((n, s) for n, s in truth.items() if s.segment is not None)[:scenes])  # labelled rooms
    classes = LABEL_SPACES["scannet"].classes
    raw_of = np.array([FROM_SCANNET.get(c, 0) for c in classes] + [0], dtype=np.uint8)
    expected: dict[str, np.ndarray] = {}
    for i, (name, scene) in enumerate(truth.items()):
        split = "val" if i == 0 else "train"
        raw = raw_of[scene.segment.astype(np.int64)]
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        write_ply_arrays(folder / f"office_{i}.ply", {
            "x": scene.coord[:, 0], "y": scene.coord[:, 1], "z": scene.coord[:, 2],
            "red": scene.color[:, 0], "green": scene.color[:, 1], "blue": scene.color[:, 2], "class_id": raw})
        expected[f"office_{i}"] = np.where(raw > 0, raw.astype(np.int16) - 1, -1)
    return expected


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        app_module.main([str(a) for a in args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.mark.slow
def test_custom_dataset_convert_train_eval_inspect(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(vocab_custom, "_REGISTRY", {})  # this process knows the dataset only from the spec / store
    monkeypatch.setenv("COLUMNS", "200")
    spec = tmp_path / "office_scans.toml"
    spec.write_text(SPEC)
    raw, data = tmp_path / "raw", tmp_path / "data"
    expected = write_office_scans(raw)

    code, out, err = run_cli(capsys, "convert", "custom", "--spec", spec, raw, data, "--workers", "1")
    assert code == 0, err
    url = store_path(str(data), "office_scans")
    assert out.startswith(f"{url}: wrote 3 scenes (")
    store = open_store(url)
    assert store.class_names == ["floor", "wall", "seat", "table", "storage", "door", "poster"]
    assert [c["entry"] for c in store.attrs["classes"]] == ["floor", "wall", "chair", "table", "cabinet", "door",
                                                            "poster"]
    for name, want in expected.items():
        split = "val" if name == "office_0" else "train"
        np.testing.assert_array_equal(store.read(split, name).segment, want)

    monkeypatch.setattr(vocab_custom, "_REGISTRY", {})  # train finds the label space in the store, not the spec
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--preset", "pmoe-tiny", "--datasets", "office_scans", "--data", data,
                             "--out", run, "--steps", "2", "--batch-size", "1", "--workers", "0", "--device", "cpu",
                             "--threads", "1")
    assert code == 0, err
    assert "on office_scans" in out + err and (run / "ckpt.pt").is_file()

    monkeypatch.setattr(vocab_custom, "_REGISTRY", {})
    report_path = tmp_path / "report.json"
    code, out, err = run_cli(capsys, "eval", run / "ckpt.pt", "--data", data, "--json", report_path, "--per-class",
                             "--device", "cpu", "--threads", "1")
    assert code == 0, err
    report = json.loads(report_path.read_text())
    validate(report, "eval_report", report_path)
    (result,) = report["results"]
    assert result["dataset"] == "office_scans" and result["points"] == len(expected["office_0"])
    assert "poster" in out and "storage" in out

    monkeypatch.setattr(vocab_custom, "_REGISTRY", {})
    code, out, err = run_cli(capsys, "route-inspect", run / "ckpt.pt", f"{url}::val", "--out", tmp_path / "inspect",
                             "--device", "cpu")
    assert code == 0, err

    monkeypatch.setattr(vocab_custom, "_REGISTRY", {})  # predict on a bare file: the checkpoint carries the classes
    code, out, err = run_cli(capsys, "predict", run / "ckpt.pt", raw / "val" / "office_0.ply", "--label-set",
                             "office_scans", "--out", tmp_path / "pred", "--device", "cpu", "--threads", "1")
    assert code == 0, err
    labels = np.load(tmp_path / "pred" / "office_0.labels.npy")
    assert labels.shape == expected["office_0"].shape and 0 <= labels.min() and labels.max() < 7
    report = json.loads((tmp_path / "pred" / "office_0.report.json").read_text())
    assert "poster" in json.dumps(report) and "storage" in json.dumps(report)


def test_bad_spec_and_missing_spec_are_one_line(tmp_path, capsys):
    raw = tmp_path / "raw" / "train"
    raw.mkdir(parents=True)
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.replace('{ name = "table", id = 4 }', '{ name = "wall", id = 4 }'))
    code, _, err = run_cli(capsys, "convert", "custom", "--spec", spec, tmp_path / "raw", tmp_path / "out")
    assert code == 1 and err == f"pmoe: error: {spec}: class name 'wall' appears twice (classes 1 and 3)\n"
    code, _, err = run_cli(capsys, "convert", "custom", tmp_path / "raw", tmp_path / "out")
    assert code == 1 and "a custom dataset needs --spec SPEC" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "convert", "scannet", "--spec", spec, tmp_path / "raw", tmp_path / "out")
    assert code == 2 and "--spec is for `pmoe convert custom --spec SPEC RAW OUT`" in err
    assert not (tmp_path / "out").exists()
