"""Hostile inputs: names that try to leave OUT, archive members with `..`, checkpoints carrying pickle gadgets,
and store attributes tampered with after conversion."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pmoe_core.engine.checkpoint import load_checkpoint, save_checkpoint
from pmoe_core.errors import FormatError, PmoeError, StoreError
from pmoe_core.inspect.export import safe_name, scene_key
from pmoe_core.scene import Scene
from pmoe_core.sources import structured3d
from pmoe_core.sources.synthetic_indoor import write_structured3d
from pmoe_core.store import StoreReader, StoreWriter, check_store

HOSTILE_NAMES = ["../escape", "/abs/path", "a/b", "..", "name\n", "new\nline", "nul\x00byte", "ünïcode",
                 "x" * 201, "", "C:\\win", "~user", "$HOME"]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _scene(name: str) -> Scene:
    rng = np.random.default_rng(0)
    return Scene(name, rng.random((50, 3), dtype=np.float32), segment=np.zeros(50, np.int16))


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_store_refuses_scene_names_that_are_not_one_safe_component(name, tmp_path, cache_env):
    out = tmp_path / "out"
    with StoreWriter.open(str(out / "scannet.zarr"), "scannet") as writer:
        before = _files(tmp_path)
        with pytest.raises(FormatError, match="bad scene name") as err:
            writer.append("train", _scene(name))
        assert "\n" not in err.value.message
        assert _files(tmp_path) == before  # nothing written anywhere, inside OUT or outside it
    assert check_store(str(out / "scannet.zarr")) == []


@pytest.mark.parametrize("split", ["../x", "train/../../x", "train\n", "/abs"], ids=repr)
def test_store_refuses_hostile_split_names(split, tmp_path, cache_env):
    with StoreWriter.open(str(tmp_path / "scannet.zarr"), "scannet") as writer:
        with pytest.raises(FormatError, match="bad split name"):
            writer.append(split, _scene("ok"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["ok_name"], ids=repr)
def test_route_inspect_file_names_stay_one_component(name):
    """route-inspect writes OUT/ply/<scene_key>/<layer>.ply: keys from any stored name stay one component."""
    for text in (safe_name(name), scene_key(3, name)):
        assert text and "/" not in text and "\\" not in text and "\x00" not in text and "\n" not in text
        assert not os.path.isabs(text)
    assert scene_key(3, name) not in (".", "..")


def test_structured3d_zip_members_with_dotdot_are_read_in_place(tmp_path, cache_env):
    """Members named `../..` or absolute are only ever read from the archive, never extracted anywhere."""
    raw = tmp_path / "raw"
    write_structured3d(raw, scenes=1, width=32)
    archive = next(raw.glob("*.zip"))
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            for prefix in ("../../outside/", "/abs/"):
                dst.writestr(prefix + info.filename, data)
    archive.unlink()
    evil.rename(archive)
    before = _files(tmp_path)
    refs = structured3d.list_scenes(raw, structured3d.Options())
    assert refs, "the hostile members should still be found as rooms"
    for ref in refs:
        assert "/" not in ref.name and ".." not in ref.name.split("_")
        scene = structured3d.read_scene(ref, structured3d.Options(), lambda m: None)
        assert len(scene) > 0
    assert _files(tmp_path) == before
    assert not (tmp_path.parent / "outside").exists()


# --- checkpoints: no pickle gadget runs on load ---------------------------------------------------------------

class _Gadget:
    """Unpickles to fn(*args): the classic pickle code-execution payload."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _gadget(kind: str, marker: Path) -> _Gadget:
    """A payload that creates `marker` if unpickled, by one of four routes to code execution."""
    import builtins
    import subprocess

    calls = {
        "system": (os.system, f"touch {marker}"),
        "subprocess": (subprocess.Popen, ["touch", str(marker)]),
        "eval": (builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "exec": (builtins.exec, f"import pathlib; pathlib.Path({str(marker)!r}).touch()"),
    }
    fn, arg = calls[kind]
    return _Gadget(fn, arg)


def _gadget_bytes(kind: str, marker: Path) -> bytes:
    """A .pt file whose unpickling would create `marker` if it ran code."""
    buf = io.BytesIO()
    if kind == "legacy_pickle":  # not a zip at all: the pre-1.6 torch format, a raw pickle stream
        return pickle.dumps({"format": "pmoe-checkpoint", "x": _gadget("system", marker)})
    if kind == "data_pkl_swap":  # a valid torch zip whose data.pkl is replaced by a gadget pickle
        torch.save({"format": "pmoe-checkpoint", "w": torch.zeros(2)}, buf)
        src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename.endswith("data.pkl"):
                    data = pickle.dumps({"format": "pmoe-checkpoint", "x": _gadget("eval", marker)}, protocol=2)
                dst.writestr(info, data)
        return out.getvalue()
    torch.save({"format": "pmoe-checkpoint", "version": 1, "meta": {}, "payload": _gadget(kind, marker)}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["system", "subprocess", "eval", "exec", "legacy_pickle", "data_pkl_swap"])
def test_crafted_checkpoint_cannot_run_code(kind, tmp_path):
    marker = tmp_path / f"pwned-{kind}"
    path = tmp_path / "ckpt.pt"
    path.write_bytes(_gadget_bytes(kind, marker))
    with pytest.raises(FormatError) as err:
        load_checkpoint(path)
    assert not marker.exists(), f"{kind}: the gadget ran"
    assert str(path) in err.value.message and "\n" not in err.value.message


def test_checkpoint_round_trip_still_loads(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", {"kind": "segmentation", "step": 3}, {"w": torch.ones(2)})
    assert load_checkpoint(path)["meta"]["step"] == 3


# --- tampered store attributes -------------------------------------------------------------------------------

def _tamper(url: str, edit) -> None:
    meta = Path(url) / "zarr.json"
    doc = json.loads(meta.read_text())
    edit(doc["attributes"])
    meta.write_text(json.dumps(doc))


TAMPERING = {
    "format_version": (lambda a: a.update(format_version=99), "format version"),
    "classes_dropped": (lambda a: a.update(classes=a["classes"][:3]), "classes"),
    "class_renamed": (lambda a: a["classes"][0].update(name="evil"), "class names differ"),
    "dataset_unknown": (lambda a: a.update(dataset="../../etc"), "dataset"),
    "encoder_dim_string": (lambda a: a["text_encoder"].update(dim="384"), "text_encoder"),
    "format_removed": (lambda a: a.pop("format"), "format"),
}


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory, cache_env) -> Path:
    out = tmp_path_factory.mktemp("tamper") / "scannet.zarr"
    with StoreWriter.open(str(out), "scannet") as writer:
        writer.append("train", _scene("scene_a"))
    return out


@pytest.mark.parametrize("case", list(TAMPERING), ids=str)
def test_tampered_attributes_are_refused_with_a_clear_message(case, clean_store, tmp_path):
    import shutil

    url = str(tmp_path / "scannet.zarr")
    shutil.copytree(clean_store, url)
    edit, words = TAMPERING[case]
    _tamper(url, edit)
    problems = check_store(url)
    assert problems and any(words in p for p in problems), problems
    with pytest.raises(PmoeError) as err:
        StoreReader(url).read("train", 0)
    assert url in err.value.message and "\n" not in err.value.message
    assert isinstance(err.value, (StoreError, FormatError))
