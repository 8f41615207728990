"""`pmoe predict` through the CLI entry point (in-process): every input kind, the files it writes read back with
their types, typed class names, and the output rules (never over an input, never inside a store read)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support_loader import inspect_support

from pmoe_cli.app import main
from pmoe_core.io import write_las, write_ply
from pmoe_core.io.ply import read_ply_file
from pmoe_core.schemas import validate
from pmoe_core.store import StoreReader

support = inspect_support()
tiny_stores = support.tiny_stores
engine_cache = support.engine_cache
pytestmark = pytest.mark.slow  # shares the session's trained checkpoint (about 30 s to train when run alone)
KITTI_SCAN = Path("semantickitti") / "sequences" / "00" / "velodyne" / "000000.bin"
CLASSES = "wall, floor, road, car, potted plant, skateboard ramp"  # the last two are in no benchmark


@pytest.fixture(scope="module")
def ckpt(tiny_stores, tmp_path_factory) -> Path:
    return support.checkpoints(tiny_stores, tmp_path_factory.mktemp("cli-predict-ckpts")).pmoe


@pytest.fixture(scope="module")
def clouds(tiny_stores, tmp_path_factory) -> Path:
    """A folder with a room as PLY (colour, normals, labels) and a street as LAS (strength)."""
    folder = tmp_path_factory.mktemp("clouds")
    write_ply(StoreReader(str(tiny_stores / "scannet.zarr")).read("val", 0), folder / "room.ply")
    write_las(StoreReader(str(tiny_stores / "semantickitti.zarr")).read("val", 1), folder / "street.las")
    return folder


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["predict", *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_real_kitti_scan_ply_las_and_store_scene_with_typed_classes(capsys, ckpt, clouds, tiny_stores,
                                                                    real_fixtures, tmp_path):
    scan = real_fixtures / KITTI_SCAN
    if not scan.is_file():
        pytest.skip(f"real SemanticKITTI scan not found at {scan}")
    out = tmp_path / "pred"
    store_scene = f"{tiny_stores / 'semantickitti.zarr'}::val::val_000"
    code, stdout, err = cli(capsys, str(ckpt), str(scan), str(clouds), store_scene, "--classes", CLASSES,
                            "--out", str(out))
    assert code == 0, err
    assert "never trained on (zero-shot): potted plant, skateboard ramp" in stdout
    assert "wrote 4 labelled clouds" in stdout
    names = [n.strip() for n in CLASSES.split(",")]
    expected = {"000000": (str(scan), 50, ".ply", "outdoor"), "room": (str(clouds / "room.ply"), 3000, ".ply", "indoor"),
                "street": (str(clouds / "street.las"), 3000, ".las", "outdoor"),
                "semantickitti-val-val_000": (store_scene, 3000, ".ply", "outdoor")}
    for key, (source, n, suffix, domain) in expected.items():
        report = json.loads((out / f"{key}.report.json").read_text())
        validate(report, "predict_report", key)
        assert (report["input"], report["points"], report["domain"]) == (source, n, domain)
        assert [c["name"] for c in report["classes"]] == names
        assert [c["trained"] for c in report["classes"]] == [True, True, True, True, False, False]
        assert report["untrained"] == ["potted plant", "skateboard ramp"]
        assert sum(c["points"] for c in report["classes"]) == n
        labels, conf = np.load(out / f"{key}.labels.npy"), np.load(out / f"{key}.confidence.npy")
        assert labels.dtype == np.int32 and conf.dtype == np.float32 and labels.shape == conf.shape == (n,)
        assert ((labels >= 0) & (labels < len(names))).all() and ((conf > 0) & (conf <= 1 + 1e-6)).all()
        assert np.array_equal(np.bincount(labels, minlength=6), [c["points"] for c in report["classes"]])
        cloud = out / report["outputs"]["cloud"]
        assert cloud.name == f"{key}.pred{suffix}"
        if suffix == ".ply":
            header, elements = read_ply_file(cloud, elements=("vertex",))
            vertex = elements["vertex"]
            assert vertex["scalar_class"].dtype == np.int32 and vertex["scalar_confidence"].dtype == np.float32
            assert np.array_equal(vertex["scalar_class"], labels) and np.array_equal(vertex["scalar_confidence"], conf)
            assert "class 4 potted plant" in header.comments and "class 0 wall" in header.comments
        else:
            import laspy

            las = laspy.read(cloud)
            assert np.array_equal(np.asarray(las.classification), labels + 1)
            assert np.array_equal(np.asarray(las["class"]), labels)
            assert np.array_equal(np.asarray(las["confidence"]), conf)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{k}.{kind}" for k, (_, _, suffix, _) in expected.items()
        for kind in ("labels.npy", "confidence.npy", "report.json", f"pred{suffix}"))


def test_benchmark_label_set_and_existing_outputs_need_overwrite(capsys, ckpt, clouds, tmp_path):
    out = tmp_path / "pred"
    room = str(clouds / "room.ply")
    code, stdout, err = cli(capsys, str(ckpt), room, "--label-set", "scannet", "--out", str(out))
    assert code == 0, err and "never trained" not in stdout
    report = json.loads((out / "room.report.json").read_text())
    assert report["label_set"] == {"kind": "dataset", "dataset": "scannet"} and len(report["classes"]) == 20
    before = (out / "room.labels.npy").read_bytes()
    code, _, err = cli(capsys, str(ckpt), room, "--label-set", "kitti", "--out", str(out))
    assert code == 1 and err.count("\n") == 1 and "room.labels.npy: already exists; pass --overwrite" in err
    assert (out / "room.labels.npy").read_bytes() == before
    code, _, err = cli(capsys, str(ckpt), room, "--label-set", "kitti", "--out", str(out), "--overwrite")
    assert code == 0, err
    assert json.loads((out / "room.report.json").read_text())["label_set"]["dataset"] == "semantickitti"


@pytest.mark.parametrize("case", ["out-is-input-folder", "out-inside-store", "both-label-sets", "one-point",
                                  "one-class", "store-without-split"])
def test_refusals_are_one_line_and_write_nothing(capsys, ckpt, clouds, tiny_stores, tmp_path, case):
    store = tiny_stores / "scannet.zarr"
    single = tmp_path / "one.npy"
    np.save(single, np.zeros((1, 3), np.float32))
    inputs, out, extra, expected = {
        "out-is-input-folder": ([str(clouds)], clouds, [], "is also an input"),
        "out-inside-store": ([f"{store}::val::0"], store / "pred", [], "pmoe never writes inside what it reads"),
        "both-label-sets": ([str(clouds / "room.ply")], tmp_path / "o", ["--label-set", "scannet"],
                            "not both"),
        "one-point": ([str(single)], tmp_path / "o", [], "the cloud has 1 point; predict needs at least 2"),
        "one-class": ([str(clouds / "room.ply")], tmp_path / "o", ["--classes", "chair"], "at least two class names"),
        "store-without-split": ([str(store)], tmp_path / "o", [], "is a scene store; name a split"),
    }[case]
    if case == "both-label-sets":
        extra += ["--classes", CLASSES]
    before = sorted(p.name for p in clouds.iterdir())
    code, _, err = cli(capsys, str(ckpt), *inputs, "--out", str(out), *extra)
    assert code == 1 and err.count("\n") == 1 and err.startswith("pmoe: error: ") and expected in err, err
    assert sorted(p.name for p in clouds.iterdir()) == before and not (store / "pred").exists()
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_sanity_warning_is_printed_once_and_reported(capsys, ckpt, clouds, tmp_path):
    from pmoe_core.io import read_point_cloud

    scene = read_point_cloud(clouds / "room.ply")
    np.save(tmp_path / "grey.npy", scene.coord)  # coordinates only: an indoor cloud without colour
    code, _, err = cli(capsys, str(ckpt), str(tmp_path / "grey.npy"), "--out", str(tmp_path / "o"))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("pmoe: warning:")]
    assert len(warnings) == 1 and f"{tmp_path / 'grey.npy'}: the cloud has no colour" in warnings[0]
    report = json.loads((tmp_path / "o" / "grey.report.json").read_text())
    assert len(report["warnings"]) == 1 and report["label_set"]["kind"] == "union"
