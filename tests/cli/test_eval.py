"""`pmoe eval` end to end: tables, JSON report, confusion PNGs, dataset aliases and one-line user errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pmoe_cli import app as app_module
from pmoe_core.engine.train import TrainConfig, train
from pmoe_core.schemas import validate
from pmoe_core.vocab.label_spaces import label_space


def _engine_helpers():
    """The scene generators of tests/engine/conftest.py, loaded under another name (it is not importable here)."""
    path = Path(__file__).resolve().parents[1] / "engine" / "conftest.py"
    spec = importlib.util.spec_from_file_location("engine_scene_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _matterport_room(helpers, rng, name):
    """The conftest room (ScanNet20 indices) moved by class name into Matterport3D21."""
    scene = helpers.room(rng, name, n=1500)
    source, target = label_space("scannet"), label_space("matterport3d")
    lut = [target.classes.index(c) if c in target.classes else -1 for c in source.classes]
    scene.segment = np.array(lut, np.int16)[scene.segment]
    return scene


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint of a 1-step pmoe-tiny run on scannet + semantickitti, data folder that also holds matterport3d)."""
    helpers = _engine_helpers()
    base = tmp_path_factory.mktemp("cli-eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PMOE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pmoe-embedding-cache"))
        data = base / "data"
        data.mkdir()
        helpers.write_store(data, "scannet", lambda rng, name: helpers.room(rng, name, n=1500), 1, 2, seed=0)
        helpers.write_store(data, "semantickitti", lambda rng, name: helpers.street(rng, name, n=1500), 1, 2, seed=1)
        helpers.write_store(data, "matterport3d", lambda rng, name: _matterport_room(helpers, rng, name), 0, 1, seed=2)
        result = train(TrainConfig(data=str(data), datasets=("scannet", "semantickitti"), out=str(base / "run"),
                                   steps=1, batch_size=1, workers=0, preset="pmoe-tiny", tensorboard=False),
                       echo=lambda line: None)
        yield result.checkpoint, data


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        app_module.main(["eval", *map(str, args)])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_eval_prints_tables_and_writes_report_and_pngs(run, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    checkpoint, data = run
    code, out, err = run_cli(capsys, checkpoint, "--data", data, "--out", tmp_path / "eval", "--json",
                             tmp_path / "report.json", "--per-class", "--threads", "1")
    assert code == 0, err
    assert "zero-shot" in out and "allAcc" in out and "shower curtain" in out and "traffic-sign" in out
    for name in ("scannet", "semantickitti"):  # default: the checkpoint's training datasets
        png = tmp_path / "eval" / f"confusion_{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
    report = json.loads((tmp_path / "report.json").read_text())
    validate(report, "eval_report", tmp_path / "report.json")
    assert report == json.loads((tmp_path / "eval" / "eval_report.json").read_text()) | {"seconds": report["seconds"]}
    assert [r["dataset"] for r in report["results"]] == ["scannet", "semantickitti"]
    assert [r["points"] for r in report["results"]] == [3000, 3000]  # every stored point of the 2 val scenes


def test_eval_aliases_zero_shot_and_label_free(run, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    checkpoint, data = run
    code, out, err = run_cli(capsys, checkpoint, "--data", data, "--datasets", "kitti,mp3d", "--label-set", "union",
                             "--limit", "1", "--tta", "2", "--json", tmp_path / "r.json")
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "yes" in rows["matterport3d"] and "no" in rows["semantickitti"] and "outside" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["label_set"], report["tta"], report["limit"]) == ("union", 2, 1)
    assert [r["scenes"] for r in report["results"]] == [1, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{tmp}/missing.pt", "--data", "{data}"), "{tmp}/missing.pt: checkpoint not found"),
        (("{ckpt}", "--data", "{data}", "--datasets", "narnia"), "unknown dataset 'narnia'"),
        (("{ckpt}", "--data", "{data}", "--datasets", "waymo"), "{data}: no scene store for waymo"),
        (("{ckpt}", "--data", "{data}", "--split", "test"), "no split 'test'"),
        (("{ckpt}", "--data", "{data}", "--label-set", "everything"), "--label-set must be one of own, union"),
    ],
)
def test_eval_user_errors_are_one_line(run, capsys, tmp_path, args, message):
    checkpoint, data = run
    fill = {"tmp": tmp_path, "data": data, "ckpt": checkpoint}
    code, _out, err = run_cli(capsys, *(a.format(**fill) for a in args))
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("pmoe: error: ")
    assert message.format(**fill) in err


def test_eval_json_needs_overwrite_and_datasets_once(run, capsys, tmp_path):
    checkpoint, data = run
    report = tmp_path / "r.json"
    report.write_text("a user's file")
    code, out, err = run_cli(capsys, checkpoint, "--data", data, "--limit", "1", "--json", report)
    assert code == 1 and err == f"pmoe: error: {report}: already exists; pass --overwrite to replace it\n"
    assert report.read_text() == "a user's file"
    code, out, err = run_cli(capsys, checkpoint, "--data", data, "--datasets", "kitti", "--limit", "1", "--json",
                             report, "--overwrite")
    assert code == 0, err
    assert [r["dataset"] for r in json.loads(report.read_text())["results"]] == ["semantickitti"]
    code, _out, err = run_cli(capsys, checkpoint, "--data", data, "--datasets", "scannet,kitti,semantickitti")
    assert code == 1 and "'kitti' and 'semantickitti' are both semantickitti" in err and err.count("\n") == 1


def test_eval_of_a_damaged_checkpoint_is_one_line(run, capsys, tmp_path):
    checkpoint, data = run
    good = Path(checkpoint).read_bytes()
    for name, data_bytes in (("empty.pt", b""), ("cut.pt", good[: len(good) // 2])):
        (tmp_path / name).write_bytes(data_bytes)
        code, _out, err = run_cli(capsys, tmp_path / name, "--data", data)
        assert code == 1 and err.startswith(f"pmoe: error: {tmp_path / name}: ") and err.count("\n") == 1, err
