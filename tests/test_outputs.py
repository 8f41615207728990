"""The shared output rules (pmoe_core.outputs), JSON reading with a depth limit, and one-line messages."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from pmoe_core.errors import BadInput, FormatError, MissingFile, PmoeError, os_error_line
from pmoe_core.jsonio import MAX_DEPTH, loads_json, read_json, write_json_atomic
from pmoe_core.outputs import atomic_path, check_output_dir, check_output_file, remove_stale_partials


def test_output_file_rules(tmp_path):
    store = tmp_path / "s.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    with pytest.raises(BadInput, match="inside the input"):
        check_output_file(store / "zarr.json", reads=[store], overwrite=True)
    with pytest.raises(BadInput, match="also an input"):
        check_output_file(store / "zarr.json", reads=[store / "zarr.json"], overwrite=True)
    existing = tmp_path / "old.ply"
    existing.write_text("x")
    with pytest.raises(BadInput, match="--overwrite"):
        check_output_file(existing)
    assert check_output_file(existing, overwrite=True) == existing
    with pytest.raises(BadInput, match="is a folder"):
        check_output_file(store)
    with pytest.raises(MissingFile, match="folder does not exist"):
        check_output_file(tmp_path / "nope" / "a.json")
    assert check_output_file(tmp_path / "nope" / "a.json", make_parents=True)
    with pytest.raises(BadInput, match="is a file"):
        check_output_file(existing / "a.json", make_parents=True)
    with pytest.raises(BadInput, match="/proc"):
        check_output_file("/proc/self/x.json")


def test_output_dir_rules(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(BadInput, match="inside the input"):
        check_output_dir(raw / "out", reads=[raw])
    with pytest.raises(BadInput, match="also an input"):
        check_output_dir(raw, reads=[raw])
    with pytest.raises(BadInput, match="is a file"):
        check_output_dir(a_file)
    with pytest.raises(BadInput, match="which is a file"):
        check_output_dir(a_file / "sub")
    for tree in ("/proc/x", "/sys/y", "/dev/z"):
        with pytest.raises(BadInput, match="ordinary folder"):
            check_output_dir(tree)
    assert check_output_dir(tmp_path / "new" / "deeper", reads=[raw]) == tmp_path / "new" / "deeper"
    assert check_output_dir("s3://bucket/out", reads=[raw]) is not None  # remote outputs are the store's business


def test_atomic_path_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    old_umask = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".pt" and tmp.parent == tmp_path
            tmp.write_bytes(b"new")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # like any new file, not mkstemp's 0600


def test_stale_partials_are_removed_only_for_their_target(tmp_path):
    target = tmp_path / "ckpt.pt"
    ours = tmp_path / ".ckpt.pt.abc.partial.pt"
    other = tmp_path / ".other.pt.abc.partial.pt"
    ours.write_bytes(b"x")
    other.write_bytes(b"x")
    remove_stale_partials(target)
    assert not ours.exists() and other.exists()


def test_json_depth_limit_and_bad_bytes(tmp_path):
    deep = "[" * 1000 + "]" * 1000
    with pytest.raises(FormatError, match="nested deeper"):
        loads_json(deep, "x.json")
    just_too_deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(FormatError, match="nested deeper"):
        loads_json(just_too_deep, "x.json")
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_json(ok, "x.json") is not None
    with pytest.raises(FormatError, match=r"x\.json: not valid JSON \(line 1"):
        loads_json("{oops", "x.json")
    with pytest.raises(FormatError, match="not UTF-8"):
        loads_json(b"{\"a\": \"\xff\"}", "x.json")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(MissingFile, match="not a regular file"):
        read_json(fifo)
    with pytest.raises(MissingFile, match="not found"):
        read_json(tmp_path / "missing.json")
    path = write_json_atomic(tmp_path / "r.json", {"a": [1, {"b": 2}]})
    assert read_json(path) == {"a": [1, {"b": 2}]}


def test_messages_are_one_line():
    err = PmoeError("scene name\nwith a newline\r and a tab\t", "room\n1.ply")
    assert "\n" not in err.message and "\r" not in err.message
    assert "room\\n1.ply" in err.message and "\\t" in err.message
    disk_full = OSError(errno.ENOSPC, "No space left on device", "/data/run/ckpt.pt")
    assert os_error_line(disk_full) == "/data/run/ckpt.pt: No space left on device"
    moved = OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")
    assert os_error_line(moved) == "a -> b: Invalid cross-device link"
