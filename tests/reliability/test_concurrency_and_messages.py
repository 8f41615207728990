"""A second writer is refused (library and two `pmoe convert` processes) without interleaving the store; and every
user-facing failure of the CLI is one stderr line, exit code 1, naming the file and the problem."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support_loader import reliability_conftest

from pmoe_core.errors import StoreError
from pmoe_core.scene import Scene
from pmoe_core.sources.synthetic_indoor import write_scannet
from pmoe_core.sources.synthetic_outdoor import write_semantickitti
from pmoe_core.store import StoreWriter, check_store, open_store

REPO = reliability_conftest().REPO
pmoe_argv = reliability_conftest().pmoe_argv
run_pmoe = reliability_conftest().run_pmoe


def test_second_library_writer_is_refused_and_names_the_holder(tmp_path, cache_env):
    url = str(tmp_path / "scannet.zarr")
    with StoreWriter.open(url, "scannet") as first:
        with pytest.raises(StoreError, match=r"being written by pid \d+ on .* delete .*pmoe-writer.lock") as err:
            StoreWriter.open(url, "scannet")
        assert url in err.value.message and "\n" not in err.value.message
        first.append("train", Scene("a", np.zeros((4, 3), np.float32)))
    assert check_store(url) == []


@pytest.mark.slow
def test_two_concurrent_converts_one_is_refused_and_the_store_is_not_interleaved(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_semantickitti(raw, scenes=24, seed=5, columns=1024)
    out = tmp_path / "out"
    first = subprocess.Popen(pmoe_argv("convert", "semantickitti", raw, out, "--workers", 1), cwd=REPO,
                             env=cache_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in first.stderr:  # wait until it holds the lock and is committing
        if line.startswith("[1/"):
            break
    # Freeze the first writer mid-conversion so a fast machine cannot finish all 24 scenes before the second
    # process has even imported; the lock stays held while it is stopped.
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = run_pmoe(cache_env, "convert", "semantickitti", raw, out, "--workers", 1)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    rest = first.communicate(timeout=300)
    assert first.returncode == 0, rest[1]
    assert second.returncode == 1, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pmoe: error: ")
    assert f"being written by pid {first.pid}" in lines[0] and str(out / "semantickitti.zarr") in lines[0]
    url = str(out / "semantickitti.zarr")
    assert check_store(url) == []
    reader = open_store(url)
    names = [n for s in reader.splits for n in reader.names(s)]
    assert len(names) == len(set(names)) == 24  # each scene exactly once, in commit order per split
    for split in reader.splits:
        assert reader.names(split) == sorted(reader.names(split))


# --- one-line errors: representative bad inputs -> expected message (table in RELIABILITY.md) ---------------------

def _truncated_scannet(tmp: Path) -> Path:
    write_scannet(tmp / "raw", scenes=1)
    ply = next((tmp / "raw").rglob("*_vh_clean_2.ply"))
    ply.write_bytes(ply.read_bytes()[:5000])
    return ply


def _bad_kitti(tmp: Path) -> Path:
    write_semantickitti(tmp / "raw", scenes=1, columns=128)
    scan = next((tmp / "raw").rglob("*.bin"))
    scan.write_bytes(scan.read_bytes()[:-3])
    return scan


def _empty_raw(tmp: Path) -> Path:
    (tmp / "raw").mkdir()
    return tmp / "raw"


def _tampered_store(tmp: Path) -> Path:
    url = tmp / "store.zarr"
    with StoreWriter.open(str(url), "scannet") as writer:
        writer.append("train", Scene("a", np.zeros((4, 3), np.float32)))
    meta = url / "zarr.json"
    meta.write_text(meta.read_text().replace('"format_version": 1', '"format_version": 7'))
    return url


def _not_a_store(tmp: Path) -> Path:
    (tmp / "nothing.zarr").mkdir()
    return tmp / "nothing.zarr"


CASES = {
    # name: (make input -> file the message must name, argv given the raw/out paths, expected words)
    "truncated_ply_strict": (_truncated_scannet, lambda t: ["convert", "scannet", t / "raw", t / "out", "--strict",
                                                            "--workers", 1], "header declares"),
    "kitti_size_strict": (_bad_kitti, lambda t: ["convert", "kitti", t / "raw", t / "out", "--strict", "--workers", 1],
                          "is not a multiple of 16"),
    "empty_raw_root": (_empty_raw, lambda t: ["convert", "s3dis", t / "raw", t / "out"], "raw dataset root is empty"),
    "tampered_store_check": (_tampered_store, lambda t: ["check", t / "store.zarr"], "format version 7"),
    "tampered_store_export": (_tampered_store, lambda t: ["export", t / "store.zarr", t / "x.ply", "--split",
                                                          "train", "--scene", "0"], "version 7"),
    "not_a_store_export": (_not_a_store, lambda t: ["export", t / "nothing.zarr", t / "x.ply", "--split", "train",
                                                    "--scene", "0"], "no scene store here"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_cli_failure_is_one_line_naming_the_file(case, tmp_path, cache_env):
    make, argv, words = CASES[case]
    named = make(tmp_path)
    result = run_pmoe(cache_env, *argv(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pmoe: error: ") and str(named) in lines[0] and words in lines[0], lines[0]
