import os
import pickle
import random

import numpy as np
import pytest
import torch

from pmoe_core.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pmoe_core.errors import FormatError, MissingFile

META = {"kind": "segmentation", "step": 3, "preset": "pmoe-tiny", "datasets": ["scannet"]}


def test_round_trip(tmp_path):
    model = torch.nn.Linear(4, 2)
    path = save_checkpoint(tmp_path / "ckpt.pt", META, {"model": model.state_dict()})
    payload = load_checkpoint(path)
    assert payload["meta"]["step"] == 3 and payload["meta"]["pmoe_version"]
    clone = torch.nn.Linear(4, 2)
    clone.load_state_dict(payload["model"])
    assert torch.equal(clone.weight, model.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ckpt.pt", META, {"model": {"w": torch.ones(3)}})
    before = path.read_bytes()
    (tmp_path / ".ckpt.pt.stale.partial.pt").write_bytes(b"left by a killed save")

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # e.g. killed while writing

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {**META, "step": 4}, {"model": {"w": torch.zeros(3)}})
    assert path.read_bytes() == before and load_checkpoint(path)["meta"]["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.pt.stale.partial.pt", "ckpt.pt"]  # its own temp is gone
    monkeypatch.undo()
    save_checkpoint(path, {**META, "step": 5}, {"model": {"w": torch.zeros(3)}})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # a successful save clears stale temps
    assert load_checkpoint(path)["meta"]["step"] == 5


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pmoe-pwned",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "pmoe-checkpoint", "version": 1, "meta": META, "x": Evil()}, path)
    if os.path.exists("/tmp/pmoe-pwned"):
        os.remove("/tmp/pmoe-pwned")
    with pytest.raises(FormatError, match="evil.pt: refused to load"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/pmoe-pwned")


def test_plain_pickle_and_garbage_are_format_errors(tmp_path):
    (tmp_path / "a.pt").write_bytes(pickle.dumps({"x": 1}))
    (tmp_path / "b.pt").write_bytes(b"\x00garbage")
    torch.save({"format": "other"}, tmp_path / "c.pt")
    for name in ("a.pt", "b.pt", "c.pt"):
        with pytest.raises(FormatError, match=name):
            load_checkpoint(tmp_path / name)
    with pytest.raises(MissingFile):
        load_checkpoint(tmp_path / "none.pt")


def test_bad_metadata_rejected_on_save_and_load(tmp_path):
    with pytest.raises(FormatError, match="checkpoint"):
        save_checkpoint(tmp_path / "x.pt", {"kind": "segmentation", "step": -1}, {})
    torch.save({"format": "pmoe-checkpoint", "version": 1, "meta": {"kind": "nope", "step": 0, "pmoe_version": "0"}},
               tmp_path / "y.pt")
    with pytest.raises(FormatError, match="y.pt"):
        load_checkpoint(tmp_path / "y.pt")


def test_rng_state_restores_every_generator(tmp_path):
    torch.manual_seed(1); np.random.seed(2); random.seed(3)
    save_checkpoint(tmp_path / "r.pt", META, {"rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]
