"""`pmoe convert` end to end on the fake source: summary, resume, warnings, option and shard validation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_fakes import embedding_cache, fake_source, make_raw  # noqa: E402, F401

from pmoe_cli import app as app_module  # noqa: E402
from pmoe_core.store import check_store, open_store, store_path  # noqa: E402

pytestmark = pytest.mark.usefixtures("embedding_cache", "fake_source")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        app_module.main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path / "raw", {"train": 4, "val": 2})


def test_convert_writes_resumes_and_summarises(raw, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, stdout, stderr = run_cli(capsys, "convert", "scannet", str(raw), out, "--workers", "1", "--limit", "3",
                                   "-O", "fail=train001", "--option", "warn_on=val000")
    assert code == 0, stderr
    url = store_path(out, "scannet")
    assert stdout.startswith(f"{url}: wrote 4 scenes (")
    assert ", 0 already present, 1 skipped, 2 warnings, " in stdout
    assert f"  skipped train001 (train): {raw}/train/train001.scene: truncated at byte 12 (fake)" in stdout
    assert f"warning: {raw}/val/val000.scene: 3 stray bytes ignored (fake)" in stderr
    assert "[5/5] val001" in stderr  # plain progress lines when stderr is not a terminal
    assert open_store(url).names("train") == ["train000", "train002"]

    code, stdout, stderr = run_cli(capsys, "convert", "scannet", str(raw), out, "--workers", "1",
                                   "-O", "fail=train001", "--option", "warn_on=val000")
    assert code == 0, stderr
    assert "wrote 1 scene (" in stdout and ", 4 already present, 1 skipped, 1 warnings, " in stdout
    assert open_store(url).names("train") == ["train000", "train002", "train003"]  # commit order
    assert check_store(url) == []

    # Other reader options would mix two selections in one store: refused, nothing written.
    code, _, err = run_cli(capsys, "convert", "scannet", str(raw), out, "--workers", "1")
    assert code == 1 and "store was converted with reader options fail='train001', warn_on='val000'" in err
    assert open_store(url).names("train") == ["train000", "train002", "train003"]


def test_strict_and_bad_options_fail_with_one_line(raw, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, _, err = run_cli(capsys, "convert", "scannet", str(raw), out, "-O", "colour=1")
    assert code == 1
    assert err == ("pmoe: error: unknown option 'colour' for scannet "
                   "(valid: fail, missing, points, scale, warn_on)\n")
    code, _, err = run_cli(capsys, "convert", "scannet", str(raw), out, "-O", "points=lots")
    assert code == 1 and "option points expects an integer, got 'lots'" in err
    code, _, err = run_cli(capsys, "convert", "scannet", str(raw), out, "--shard", "3/3")
    assert code == 1 and "need 0 <= K < N" in err
    code, _, err = run_cli(capsys, "convert", "scannet", str(raw), out, "--strict", "--workers", "1",
                           "-O", "missing=train002")
    last = err.splitlines()[-1]  # after the progress lines of the scenes before it
    assert code == 1 and last.startswith("pmoe: error: scene train002 (train): ")
    assert f"{raw}/train/train002.scene: vanished (fake)" in last
    code, _, err = run_cli(capsys, "convert", "nosuchset", str(raw), out)
    assert code == 1 and "unknown dataset 'nosuchset'" in err


def test_clip_without_weights_leaves_no_folder_behind(raw, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "convert", "scannet", str(raw), str(out), "--workers", "1",
                           "--text-encoder", "clip")
    assert code == 1 and err.startswith("pmoe: error: ") and "clip" in err  # no open_clip or no --text-weights
    assert not out.exists()  # was: an empty out/scannet.zarr/
    out.mkdir()
    (out / "other.txt").write_text("mine")
    code, _, _ = run_cli(capsys, "convert", "scannet", str(raw), str(out), "--workers", "1", "--text-encoder", "clip")
    assert code == 1 and [p.name for p in out.iterdir()] == ["other.txt"]  # an existing OUT is left as it was


def test_shard_option_writes_the_shard_store(raw, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, stdout, stderr = run_cli(capsys, "convert", "scannet", str(raw), out, "--shard", "1/2", "--workers", "1",
                                   "--split", "train")
    assert code == 0, stderr
    url = store_path(out, "scannet", (1, 2))
    assert stdout.startswith(f"{url}: wrote 2 scenes")
    assert open_store(url).names("train") == ["train001", "train003"]


def test_help_shows_slurm_example(capsys):
    code, out, _ = run_cli(capsys, "convert", "--help")
    assert code == 0
    assert "#SBATCH --array=0-7" in out and "--shard $SLURM_ARRAY_TASK_ID/8" in out
