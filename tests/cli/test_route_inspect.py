"""`pmoe route-inspect` through the CLI entry point (in-process): inputs of every kind, outputs, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
from support_loader import inspect_support

from pmoe_cli.app import main
from pmoe_core.schemas import validate

support = inspect_support()
tiny_stores = support.tiny_stores
engine_cache = support.engine_cache
pytestmark = pytest.mark.slow  # shares the session's trained checkpoint (about 30 s to train when run alone)


@pytest.fixture(scope="module")
def ckpts(tiny_stores, tmp_path_factory):
    return support.checkpoints(tiny_stores, tmp_path_factory.mktemp("cli-inspect-ckpts"))


@pytest.fixture(scope="module")
def ply_file(tiny_stores, tmp_path_factory) -> Path:
    from pmoe_core.io import write_ply
    from pmoe_core.store import StoreReader

    path = tmp_path_factory.mktemp("cli-inspect-ply") / "street.ply"
    write_ply(StoreReader(str(tiny_stores / "semantickitti.zarr")).read("val", 0), path)
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["route-inspect", *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_store_scene_and_ply_file(capsys, ckpts, tiny_stores, ply_file, tmp_path):
    out = tmp_path / "ri"
    code, stdout, err = cli(capsys, str(ckpts.pmoe), f"{tiny_stores / 'scannet.zarr'}::val::val_000", str(ply_file),
                            "--dataset", "semantickitti", "--layers", "0,dec1.block0.attn.proj", "--embed", "none",
                            "--no-probs", "--out", str(out))
    assert code == 0, err
    for text in ("MI(e;class)", "MI(e;dataset)", "enc0.block0", "dec0.block0", "2 scene(s), 6,000 points"):
        assert text in stdout
    report = json.loads((out / "report.json").read_text())
    validate(report, "routing_report", "report.json")
    assert [s["dataset"] for s in report["scenes"]] == ["scannet", "semantickitti"]
    assert report["chosen_layers"] == ["enc0.block0.attn.proj", "dec1.block0.attn.proj"]
    assert len(list((out / "ply").rglob("*.ply"))) == 4 and report["files"]["features"] is None
    mi = [layer["mi"]["dataset"] for layer in report["layers"]]
    assert all(m is not None and 0 <= m["bits"] <= 1 for m in mi)  # two datasets: at most 1 bit
    with h5py.File(out / "traces.h5", "r") as h5:
        assert all("probs" not in h5[k] and "experts" in h5[k] for k in h5)


def test_scene_list_file_and_limit(capsys, ckpts, tiny_stores, tmp_path):
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"# two splits, one scene each\n{tiny_stores / 'scannet.zarr'}::train\n\n"
                       f"{tiny_stores / 'semantickitti.zarr'}::val\n")
    code, stdout, err = cli(capsys, str(ckpts.pmoe), "--scenes", str(listing), "--limit", "1", "--out",
                            str(tmp_path / "ri"), "--no-ply", "--embed", "none")
    assert code == 0, err
    report = json.loads((tmp_path / "ri" / "report.json").read_text())
    assert [s["name"] for s in report["scenes"]] == ["train_000", "val_000"]
    assert report["files"]["ply"] == []


@pytest.mark.parametrize("case", ["bad-spec", "missing-file", "missing-store", "bad-index", "no-moe", "no-ckpt",
                                  "no-scene"])
def test_errors_are_one_line(capsys, ckpts, tiny_stores, tmp_path, case):
    store = tiny_stores / "scannet.zarr"
    ckpt, scene, expected = {
        "bad-spec": (ckpts.pmoe, f"{store}::val::0::extra", "bad scene spec"),
        "missing-file": (ckpts.pmoe, str(tmp_path / "nope.ply"), f"{tmp_path / 'nope.ply'}: no such point-cloud file"),
        "missing-store": (ckpts.pmoe, f"{tmp_path / 'x.zarr'}::val::0", f"{tmp_path / 'x.zarr'}: no such scene store"),
        "bad-index": (ckpts.pmoe, f"{store}::val::9", f"{store}: scene index 9 out of range"),
        "no-moe": (ckpts.ptv3, f"{store}::val::0", f"{ckpts.ptv3}: checkpoint has no MoE layers"),
        "no-ckpt": (tmp_path / "none.pt", f"{store}::val::0", f"{tmp_path / 'none.pt'}: checkpoint not found"),
        "no-scene": (ckpts.pmoe, None, "no scene given"),
    }[case]
    args = [str(ckpt)] + ([scene] if scene else []) + ["--out", str(tmp_path / "ri")]
    code, _, err = cli(capsys, *args)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("pmoe: error: ") and expected in err


def test_a_scene_failing_halfway_leaves_out_as_it_was(capsys, ckpts, tiny_stores, tmp_path):
    """The first scene is traced (traces, PLYs) before the second turns out corrupt: nothing of it may remain, a new
    OUT is not created and an existing OUT keeps the previous run's files byte for byte."""
    bad = tmp_path / "cut.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000\nproperty float x\nproperty float y\n"
                    b"property float z\nend_header\n\x00\x00")
    good = f"{tiny_stores / 'scannet.zarr'}::val::val_000"
    code, _, err = cli(capsys, str(ckpts.pmoe), good, str(bad), "--out", str(tmp_path / "new"))
    error = [line for line in err.splitlines() if not line.startswith("  ")]  # progress lines are indented
    assert code == 1 and len(error) == 1 and f"{bad}: header declares 1000 vertex elements" in error[0]
    assert not (tmp_path / "new").exists()

    out = tmp_path / "old"
    assert cli(capsys, str(ckpts.pmoe), good, "--out", str(out), "--embed", "none")[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert Path("report.json") in before and Path("traces.h5") in before
    code, _, err = cli(capsys, str(ckpts.pmoe), good, str(bad), "--out", str(out))
    assert code == 1 and f"{bad}:" in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_rerun_replaces_the_previous_clouds(capsys, ckpts, tiny_stores, tmp_path):
    out = tmp_path / "ri"
    store = tiny_stores / "scannet.zarr"
    assert cli(capsys, str(ckpts.pmoe), f"{store}::val::val_000", "--out", str(out), "--embed", "none")[0] == 0
    assert cli(capsys, str(ckpts.pmoe), f"{store}::val::val_001", "--out", str(out), "--embed", "none")[0] == 0
    assert sorted(p.name for p in (out / "ply").iterdir()) == ["000_val_001"]  # not val_000's clouds as well
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no staging folder left


def test_out_that_is_a_file_is_refused(capsys, ckpts, tiny_stores, tmp_path):
    out = tmp_path / "taken"
    out.write_text("mine")
    code, _, err = cli(capsys, str(ckpts.pmoe), f"{tiny_stores / 'scannet.zarr'}::val::0", "--out", str(out))
    assert code == 1 and f"{out}: is a file; give a folder" in err and out.read_text() == "mine"
