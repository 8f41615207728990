"""Options of train / eval / route-inspect / vocab that are wrong on their face are refused with one line, before
any data is read, model loaded or output written (issue #16 items 8 and 12): NaN, infinite or negative numbers, a
GPU the machine does not have, a dataset named twice, an output that is a file, under /proc, or an existing JSON."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pmoe_cli.app import main


def run(capsys, *args: object) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return int(exc.value.code or 0), capsys.readouterr().err


def one_line_error(code: int, err: str) -> str:
    assert code == 1, err
    assert err.startswith("pmoe: error: ") and err.count("\n") == 1, err
    return err


TRAIN = ("train", "--preset", "pmoe-tiny", "--datasets", "scannet", "--data", "{tmp}/data", "--out", "{tmp}/run")


@pytest.mark.parametrize(("extra", "message"), [
    (("--lr", "nan"), "--lr must be a positive number, got nan"),
    (("--lr", "-1"), "--lr must be a positive number, got -1.0"),
    (("--lr", "inf"), "--lr must be a positive number, got inf"),
    (("--block-lr", "nan"), "--block-lr must be a positive number"),
    (("--weight-decay", "-0.5"), "--weight-decay must be a non-negative number"),
    (("--weight-decay", "inf"), "--weight-decay must be a non-negative number"),
    (("--weights", "scannet=inf"), "--weights scannet must be a non-negative number, got inf"),
    (("--datasets", "scannet,scannet"), "--datasets names 'scannet' twice"),
    (("--datasets", "kitti,semantickitti"), "'kitti' and 'semantickitti' are both semantickitti"),
    (("--device", "cuda:99"), "--device 'cuda:99': "),
    (("--device", "potato"), "--device 'potato' is not a device"),
    (("--amp", "fp8"), "--amp must be auto, bf16, fp16 or off"),
    (("--out", "{tmp}/file"), "{tmp}/file: is a file; give a folder for the output"),
    (("--out", "{tmp}/file/run"), "lies under {tmp}/file, which is a file"),
    (("--out", "/proc/pmoe-run"), "/proc/pmoe-run: is under /proc"),
    (("--out", "{tmp}/data/run"), "is inside the input {tmp}/data"),
])
def test_train_refuses_bad_options_before_reading_data(capsys, tmp_path, extra, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "file").write_text("not a folder")
    args = [a.format(tmp=tmp_path) for a in (*TRAIN, *extra)]
    err = one_line_error(*run(capsys, *args))
    assert message.format(tmp=tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file"]  # nothing created


@pytest.mark.parametrize("option", ["--aux-alpha", "--drop-path"])
def test_nan_in_a_bounded_option_is_a_usage_error(capsys, tmp_path, option):
    code, err = run(capsys, *[a.format(tmp=tmp_path) for a in TRAIN], option, "nan")
    assert code == 2 and option in err  # click's range check (NaN is refused by it, as it should be)


@pytest.mark.parametrize(("extra", "message"), [
    (("--device", "cuda:99"), "--device 'cuda:99': "),
    (("--out", "{tmp}/file"), "{tmp}/file: is a file"),
    (("--out", "/proc/pmoe-eval"), "/proc/pmoe-eval: is under /proc"),
    (("--json", "{tmp}/file"), "{tmp}/file: already exists; pass --overwrite to replace it"),
    (("--json", "{tmp}/data"), "{tmp}/data: is also an input"),
    (("--json", "{tmp}/folder"), "{tmp}/folder: is a folder"),
    (("--json", "{tmp}/none/r.json"), "{tmp}/none: folder does not exist"),
    (("--json", "/sys/pmoe.json"), "/sys/pmoe.json: is under /sys"),
])
def test_eval_refuses_bad_outputs_and_devices_before_the_model_loads(capsys, tmp_path, monkeypatch, extra, message):
    from pmoe_core.engine import evaluate

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(evaluate, "load_segmentation_model", must_not_load)
    for name in ("data", "folder"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").write_text("a user's file")
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"never read")
    args = [a.format(tmp=tmp_path) for a in ("eval", "{tmp}/ckpt.pt", "--data", "{tmp}/data", *extra)]
    start = time.perf_counter()
    err = one_line_error(*run(capsys, *args))
    assert message.format(tmp=tmp_path) in err
    assert time.perf_counter() - start < 10  # no evaluation ran first (it used to fail only at the very end)
    assert (tmp_path / "file").read_text() == "a user's file"


@pytest.mark.parametrize(("extra", "message"), [
    (("--grid", "nan"), "--grid must be a positive number, got nan"),
    (("--grid", "-0.05"), "--grid must be a positive number"),
    (("--limit", "0"), "--limit must be positive"),
    (("--device", "cuda:99"), "--device 'cuda:99': "),
    (("--out", "{tmp}/file"), "{tmp}/file: is a file"),
    (("--out", "/proc/pmoe-routing"), "/proc/pmoe-routing: is under /proc"),
    (("--out", "{tmp}/store.zarr/routing"), "is inside the input {tmp}/store.zarr"),
])
def test_route_inspect_refuses_bad_options_before_the_model_loads(capsys, tmp_path, monkeypatch, extra, message):
    import pmoe_core.inspect.run as inspect_run

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(inspect_run, "load_segmentation_model", must_not_load)
    (tmp_path / "store.zarr").mkdir()
    (tmp_path / "file").write_text("a user's file")
    args = [a.format(tmp=tmp_path) for a in ("route-inspect", "{tmp}/ckpt.pt", "{tmp}/store.zarr::val", *extra)]
    err = one_line_error(*run(capsys, *args))
    assert message.format(tmp=tmp_path) in err


def test_vocab_json_refuses_an_existing_file_before_embedding(capsys, tmp_path, monkeypatch):
    import pmoe_cli.vocab as vocab_cli

    def must_not_run(*args, **kwargs):
        raise AssertionError("the report was computed before the output was checked")

    monkeypatch.setattr(vocab_cli, "vocab_report", must_not_run)
    target = tmp_path / "vocab.json"
    target.write_text("a user's file")
    err = one_line_error(*run(capsys, "vocab", "s3dis", "--similar", "3", "--json", target))
    assert f"{target}: already exists; pass --overwrite" in err
    assert target.read_text() == "a user's file"
    err = one_line_error(*run(capsys, "vocab", "s3dis", "--json", Path("/proc/vocab.json")))
    assert "is under /proc" in err
