"""Regressions found while documenting: option changes on resume, file:// outputs, export into new folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pmoe_core.convert import build_options, convert
from pmoe_core.errors import BadInput
from pmoe_core.sources.synthetic_indoor import write_s3dis
from pmoe_core.store import StoreReader, check_store


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pmoe-cache"))


def test_resume_with_other_reader_options_is_refused(tmp_path):
    write_s3dis(tmp_path / "raw", scenes=3, seed=0)
    convert("s3dis", tmp_path / "raw", str(tmp_path / "out"), workers=1, limit=1)
    # recorded options (S3DIS normals) are named even at their defaults, so an old store is never mixed with a new one
    with pytest.raises(BadInput, match="reader options normals='pca', normals_k=30, not val_area=2"):
        convert("s3dis", tmp_path / "raw", str(tmp_path / "out"), workers=1,
                options=build_options("s3dis", ["val_area=2"]))
    summary = convert("s3dis", tmp_path / "raw", str(tmp_path / "out"), workers=1)  # same options: resumes
    assert summary.already_present >= 1
    reader = StoreReader(str(tmp_path / "out" / "s3dis.zarr"))
    names = [n for split in reader.splits for n in reader.names(split)]
    assert len(names) == len(set(names)), "no scene may sit in two splits"


def test_file_url_output_writes_a_valid_local_store(tmp_path):
    write_s3dis(tmp_path / "raw", scenes=2, seed=1)
    summary = convert("s3dis", tmp_path / "raw", f"file://{tmp_path / 'out'}", workers=1)
    assert summary.written == 2
    assert check_store(str(tmp_path / "out" / "s3dis.zarr")) == []
    assert check_store(f"file://{tmp_path / 'out' / 's3dis.zarr'}") == []


def test_export_creates_missing_folders(tmp_path):
    write_s3dis(tmp_path / "raw", scenes=2, seed=2)
    convert("s3dis", tmp_path / "raw", str(tmp_path / "out"), workers=1)
    target = tmp_path / "new" / "deeper" / "scene.ply"
    proc = subprocess.run([sys.executable, "-m", "pmoe_cli", "export", str(tmp_path / "out" / "s3dis.zarr"),
                           str(target), "--split", "train", "--scene", "0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert target.stat().st_size > 0
