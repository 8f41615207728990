"""`pmoe eval --save-pred DIR` end to end: a trained tiny checkpoint on converted synthetic ScanNet, SemanticKITTI
and nuScenes stores; every file read back (lengths, dtypes, raw-id ranges), mapped back through each dataset's
learning map, and checked against the confusion matrices of eval's own JSON report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pmoe_cli import app as app_module
from pmoe_core.convert import convert
from pmoe_core.engine.train import TrainConfig, train
from pmoe_core.sources import nuscenes as nuscenes_source
from pmoe_core.sources.synthetic_indoor import write_scannet
from pmoe_core.sources.synthetic_outdoor import write_nuscenes, write_semantickitti
from pmoe_core.store import StoreReader
from pmoe_core.vocab.label_spaces import SCANNET, SEMANTICKITTI

DATASETS = ("scannet", "semantickitti", "nuscenes")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(checkpoint of a 1-step pmoe-tiny run on scannet + semantickitti, data folder of converted stores, raw root)."""
    base = tmp_path_factory.mktemp("save-pred")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PMOE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pmoe-embedding-cache"))
        data = base / "data"
        write_scannet(base / "raw" / "scannet", scenes=2, seed=1)
        write_semantickitti(base / "raw" / "semantickitti", scenes=2, seed=2, columns=128)
        write_nuscenes(base / "raw" / "nuscenes", scenes=2, seed=3, columns=128)
        for name in DATASETS:
            convert(name, base / "raw" / name, str(data), workers=1)
        result = train(TrainConfig(data=str(data), datasets=("scannet", "semantickitti"), out=str(base / "run"),
                                   steps=1, batch_size=1, workers=0, preset="pmoe-tiny", tensorboard=False),
                       echo=lambda line: None)
        yield result.checkpoint, data, base / "raw"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        app_module.main(["eval", *map(str, args)])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def confusion(classes: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    keep = truth >= 0
    return np.bincount(truth[keep].astype(np.int64) * k + classes[keep], minlength=k * k).reshape(k, k)


@pytest.mark.slow
def test_save_pred_writes_every_benchmark_format_that_maps_back_to_evals_predictions(run, capsys, tmp_path):
    checkpoint, data, raw = run
    out = tmp_path / "pred"
    code, stdout, err = run_cli(capsys, checkpoint, "--data", data, "--datasets", "scannet,kitti,nus",
                                "--save-pred", out, "--json", tmp_path / "report.json", "--threads", "1")
    assert code == 0, err
    assert f"wrote predictions of 4 scenes and 4 submission files to {out}" in stdout
    report = {r["dataset"]: r for r in json.loads((tmp_path / "report.json").read_text())["results"]}

    for dataset in DATASETS:
        reader = StoreReader(str(data / f"{dataset}.zarr"))
        classes, truth = [], []
        for i, name in enumerate(reader.names("val")):
            array = np.load(out / dataset / "val" / "classes" / f"{name}.npy")
            assert array.dtype == np.int16 and array.shape == (reader.num_points("val", i),)
            classes.append(array.astype(np.int64))
            truth.append(reader.read("val", name, fields=["segment"]).segment)
        k = len(reader.class_names)
        # the saved classes are exactly what eval scored: same confusion matrix as its report
        assert (confusion(np.concatenate(classes), np.concatenate(truth), k) == report[dataset]["confusion"]["matrix"]).all()

    scannet = StoreReader(str(data / "scannet.zarr"))
    (name,) = scannet.names("val")
    lines = (out / "scannet" / "val" / "submission" / f"{name}.txt").read_text().splitlines()
    ply = (raw / "scannet" / "scans" / name / f"{name}_vh_clean_2.ply").read_bytes()
    assert len(lines) == int(re.search(rb"element vertex (\d+)", ply).group(1))  # one line per mesh vertex
    nyu40 = np.array(lines, dtype=np.int64)
    assert set(nyu40.tolist()) <= set(SCANNET.raw_to_name)
    assert SCANNET.map_raw(nyu40).tolist() == np.load(out / "scannet" / "val" / "classes" / f"{name}.npy").tolist()

    label = out / "semantickitti" / "val" / "submission" / "sequences" / "08" / "predictions" / "000000.label"
    ids = np.fromfile(label, dtype="<u4")
    assert ids.size == (raw / "semantickitti" / "sequences" / "08" / "velodyne" / "000000.bin").stat().st_size // 16
    assert (ids >> 16 == 0).all() and set(ids.tolist()) <= set(SEMANTICKITTI.raw_to_name)
    assert SEMANTICKITTI.map_raw(ids).tolist() == np.load(
        out / "semantickitti" / "val" / "classes" / "08_000000.npy").tolist()

    results = out / "nuscenes" / "val" / "submission"
    meta = json.loads((results / "val" / "submission.json").read_text())["meta"]
    assert meta == {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False,
                    "use_external": True}  # trained on ScanNet and SemanticKITTI
    refs = [r for r in nuscenes_source.list_scenes(raw / "nuscenes", nuscenes_source.Options()) if r.split == "val"]
    assert sorted(p.name for p in (results / "lidarseg" / "val").iterdir()) == sorted(
        f"{r.meta['token']}_lidarseg.bin" for r in refs)
    for ref in refs:
        values = np.fromfile(results / "lidarseg" / "val" / f"{ref.meta['token']}_lidarseg.bin", dtype=np.uint8)
        assert values.size == Path(ref.paths[0]).stat().st_size // 20  # every key-frame point
        assert 1 <= values.min() and values.max() <= 16
        saved = np.load(out / "nuscenes" / "val" / "classes" / f"{ref.name}.npy")
        assert (values.astype(np.int64) - 1).tolist() == saved.tolist()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("{data}/preds", "{data}/preds: is inside the input {data}; pmoe never writes inside what it reads"),
        ("{file}", "{file}: is a file; give a folder for the output"),
        ("{file}/sub", "{file}/sub: lies under {file}, which is a file; give a folder for the output"),
    ],
)
def test_bad_save_pred_folders_are_refused_before_any_work(capsys, tmp_path, where, message):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "file").write_text("x")
    fill = {"data": data, "file": tmp_path / "file"}
    code, _, err = run_cli(capsys, tmp_path / "missing.pt", "--data", data, "--save-pred", where.format(**fill))
    assert code == 1
    assert err.strip() == f"pmoe: error: {message.format(**fill)}"  # before the (missing) checkpoint is opened
    assert not (data / "preds").exists()
