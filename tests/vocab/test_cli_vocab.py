"""`pmoe vocab`: the table, the JSON report (validated against schemas/vocab.schema.json) and one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pmoe_cli.app import app
from pmoe_core.errors import BadInput, FormatError
from pmoe_core.schemas import validate

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, ["vocab", *args], env={"COLUMNS": "200"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_table_of_one_dataset():
    result = invoke("s3dis")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "bookcase" in line]
    assert len(lines) == 1
    cells = [c.strip() for c in lines[0].split("│") if c.strip()]
    assert cells == ["s3dis", "10", "bookcase", "bookshelf", "bookshelf"]
    assert "ceiling beam" in result.stdout


def test_json_report_of_all_datasets_matches_schema(tmp_path):
    out = tmp_path / "vocab.json"
    result = invoke("all", "--json", str(out))
    assert result.exit_code == 0
    report = json.loads(out.read_text())
    validate(report, "vocab", out)
    assert [d["dataset"] for d in report["datasets"]] == [
        "scannet", "s3dis", "structured3d", "matterport3d", "nuscenes", "semantickitti", "waymo"]
    assert report["encoder"] is None  # no embeddings were needed
    mp = next(d for d in report["datasets"] if d["dataset"] == "matterport3d")
    assert mp["classes"][19] == {"index": 19, "name": "other", "entry": "other_furniture", "prompt": "other furniture"}
    assert mp["classes"][20]["entry"] == "ceiling"
    person = next(v for v in report["vocabulary"] if v["name"] == "person")
    assert person["classes"] == [{"dataset": "nuscenes", "class": "pedestrian"},
                                 {"dataset": "semantickitti", "class": "person"},
                                 {"dataset": "waymo", "class": "pedestrian"}]


def test_similar_and_vectors(tmp_path):
    out = tmp_path / "kitti.json"
    result = invoke("kitti", "--similar", "2", "--vectors", "--json", str(out))
    assert result.exit_code == 0
    assert "nearest other entries" in result.stdout
    report = json.loads(out.read_text())
    validate(report, "vocab", out)
    assert report["encoder"]["name"] == "minilm" and report["encoder"]["dim"] == 384
    car = report["datasets"][0]["classes"][0]
    assert car["name"] == "car" and len(car["vector"]) == 384
    assert len(car["similar"]) == 2 and all(s["entry"] != "car" for s in car["similar"])
    assert car["similar"][0]["cosine"] >= car["similar"][1]["cosine"]
    bicycle = report["datasets"][0]["classes"][1]
    assert bicycle["similar"][0]["entry"] in {"bicyclist", "motorcycle"}


def test_schema_rejects_a_broken_report(tmp_path):
    out = tmp_path / "vocab.json"
    invoke("waymo", "--json", str(out))
    report = json.loads(out.read_text())
    report["datasets"][0]["classes"][0]["entry"] = "Not An Entry"
    with pytest.raises(FormatError, match="entry"):
        validate(report, "vocab", out)


def run_cli(*args: str, cache: str):
    env = dict(os.environ, PMOE_CACHE_DIR=cache, HF_HUB_OFFLINE="1")  # offline, as on CI: never a download
    return subprocess.run([sys.executable, "-m", "pmoe_cli", "vocab", *args], capture_output=True, text=True,
                          env=env)


def test_errors_are_one_line_exit_1(cache_dir, tmp_path):
    out = run_cli("scannet++", cache=str(cache_dir))
    assert out.returncode == 1
    assert out.stderr.startswith("pmoe: error: unknown dataset 'scannet++'") and out.stderr.count("\n") == 1
    out = run_cli("all", "--encoder", "clip", "--similar", "1", cache=str(cache_dir))
    # offline with no checkpoint: how to pass one (or, where open_clip is absent, how to install it)
    how = "--checkpoint PATH" if importlib.util.find_spec("open_clip") else "pip install 'pmoe[clip]'"
    assert out.returncode == 1 and how in out.stderr and out.stderr.count("\n") == 1
    out = run_cli("s3dis", "--json", str(tmp_path / "no" / "such" / "dir.json"), cache=str(cache_dir))
    assert out.returncode == 1 and "folder does not exist" in out.stderr


def test_json_replaces_an_existing_file_only_with_overwrite(tmp_path):
    out = tmp_path / "vocab.json"
    out.write_text("a user's notes")
    with pytest.raises(BadInput, match="already exists; pass --overwrite"):
        invoke("s3dis", "--json", str(out))
    assert out.read_text() == "a user's notes"
    assert invoke("s3dis", "--json", str(out), "--overwrite").exit_code == 0
    assert json.loads(out.read_text())["datasets"][0]["dataset"] == "s3dis"
