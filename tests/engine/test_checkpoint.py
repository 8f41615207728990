import os
import pickle
import random
import sys

import numpy as np
import pytest
import torch
from small_checkpoint import CONFIG, small_meta, write_small_checkpoint

from pmoe_core.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pmoe_core.engine.model_io import config_to_data, load_segmentation_model
from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.jsonio import write_json_atomic

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


# --- damaged and hostile checkpoints (issue #16 item 7, item 5 for checkpoints; #17 permissions) ----------------

def _raw_checkpoint(path, meta=None, **entries):
    """A file with pmoe's header entries but written by plain torch.save (skipping save_checkpoint's checks)."""
    meta = {**small_meta(), "pmoe_version": "0"} if meta is None else meta
    torch.save({"format": "pmoe-checkpoint", "version": 1, "meta": meta, **entries}, path)
    return path


def test_small_checkpoint_loads_as_a_model(tmp_path):
    model, meta = load_segmentation_model(str(write_small_checkpoint(tmp_path / "ok.pt")))
    assert meta["config"]["__type__"] == "PTv3Config" and not model.training


@pytest.mark.parametrize("damage", ["empty", "half", "ten_bytes", "random", "zeroed", "no_data_pkl", "no_tensor"])
def test_damaged_bytes_are_one_format_error(tmp_path, damage):
    import zipfile

    path = write_small_checkpoint(tmp_path / "ckpt.pt")
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    if damage in ("no_data_pkl", "no_tensor"):  # a zip member lost
        with zipfile.ZipFile(path) as src:
            names = src.namelist()
            drop = next(n for n in names if n.endswith("data.pkl" if damage == "no_data_pkl" else "data/0"))
            members = [(info, src.read(info.filename)) for info in src.infolist() if info.filename != drop]
        path.unlink()
        with zipfile.ZipFile(path, "w") as dst:
            for info, data in members:
                dst.writestr(info, data)
    else:
        data = {"empty": b"", "half": good[: len(good) // 2], "ten_bytes": good[:10],
                "random": rng.integers(0, 256, len(good), dtype=np.uint8).tobytes(),
                "zeroed": bytes(len(good))}[damage]
        path.write_bytes(data)
    for load in (load_checkpoint, lambda p: load_segmentation_model(str(p))):
        with pytest.raises(FormatError, match="ckpt.pt") as err:
            load(path)
        assert "\n" not in err.value.message
    if damage == "empty":
        assert "empty file" in err.value.message


def test_wrong_payload_and_meta_types_are_format_errors(tmp_path):
    cases = {
        "list.pt": [1, 2, 3],
        "format_tensor.pt": {"format": torch.ones(2), "version": 1},
        "version_tensor.pt": {"format": "pmoe-checkpoint", "version": torch.ones(2), "meta": {}},
        "version_str.pt": {"format": "pmoe-checkpoint", "version": "1", "meta": {}},
        "meta_str.pt": {"format": "pmoe-checkpoint", "version": 1, "meta": "x"},
        "step_str.pt": {"format": "pmoe-checkpoint", "version": 1,
                        "meta": {**small_meta(), "pmoe_version": "0", "step": "1"}},
    }
    for name, payload in cases.items():
        torch.save(payload, tmp_path / name)
        with pytest.raises(FormatError, match=name):
            load_checkpoint(tmp_path / name)


def test_segmentation_entries_of_the_wrong_type_are_format_errors(tmp_path):
    good = write_small_checkpoint(tmp_path / "good.pt")
    payload = load_checkpoint(good)
    weights, emb = payload["model"], payload["class_embeddings"]
    cases = {
        "model_list.pt": {"model": [1, 2], "class_embeddings": emb},
        "model_values.pt": {"model": {k: 1 for k in weights}, "class_embeddings": emb},
        "emb_1d.pt": {"model": weights, "class_embeddings": torch.ones(4)},
        "emb_list.pt": {"model": weights, "class_embeddings": [[1.0]]},
        "emb_int.pt": {"model": weights, "class_embeddings": torch.ones(3, 4, dtype=torch.int64)},
        "missing_weight.pt": {"model": {k: v for i, (k, v) in enumerate(weights.items()) if i},
                              "class_embeddings": emb},
        "bad_shape.pt": {"model": {**weights, next(iter(weights)): torch.ones(3)}, "class_embeddings": emb},
    }
    for name, entries in cases.items():
        _raw_checkpoint(tmp_path / name, **entries)
        with pytest.raises(FormatError, match=name):
            load_segmentation_model(str(tmp_path / name))


def _config(**changes):
    data = config_to_data(CONFIG)
    return {**data, **changes}


@pytest.mark.parametrize("config, problem", [
    (_config(enc_channels="abc"), "enc_channels"),
    (_config(enc_channels=[8.5, 16]), "enc_channels"),
    (_config(mlp_ratio=float("nan")), "mlp_ratio"),
    (_config(qkv_bias=1), "qkv_bias"),
    (_config(moe={"__type__": "MoEConfig", "num_experts": "2"}), "num_experts"),
    (_config(moe={"__type__": "PTv3Config"}), "moe"),
    (_config(__type__="Evil"), "unknown model config type"),
    (_config(enc_depths=[1]), "enc_channels needs 1 entries"),
    (_config(block_norm="nope"), "block_norm"),
    (_config(enc_num_head=[0, 2]), "does not build"),
    (_config(enc_depths=[10**9, 1]), "claims"),
    (_config(enc_depths=[-1, 1]), "claims"),
    (_config(enc_channels=[10**6, 16]), "do not fit"),  # checked on the meta device: nothing is allocated
    (_config(dec_channels=[10**12]), "does not build"),  # 10^24-element weights overflow even on meta
    ({"no": "type"}, "not PTv3Config"),
])
def test_stored_configs_are_checked_before_a_model_is_built(tmp_path, config, problem):
    path = write_small_checkpoint(tmp_path / "cfg.pt", small_meta(config=config))
    with pytest.raises(FormatError, match=problem) as err:
        load_segmentation_model(str(path))
    assert str(path) in err.value.message and "\n" not in err.value.message


def test_deeply_nested_or_cyclic_data_is_a_format_error(tmp_path):
    deep: dict = {}
    level = deep
    for _ in range(1000):  # the audit's 1000 levels: jsonschema and config decoding would hit the recursion limit
        level["a"] = {}
        level = level["a"]
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # torch.save itself recurses
    try:
        _raw_checkpoint(tmp_path / "deep_config.pt", {**small_meta(), "pmoe_version": "0", "config": deep})
        _raw_checkpoint(tmp_path / "deep_entry.pt", extra=deep)
    finally:
        sys.setrecursionlimit(old)
    cycle: list = []
    cycle.append(cycle)
    dag: list = []
    for _ in range(30):  # 2^30 paths through 30 shared lists (shallow enough): a walk that does not count hangs
        dag = [dag, dag]
    _raw_checkpoint(tmp_path / "cycle.pt", extra=cycle)
    _raw_checkpoint(tmp_path / "dag.pt", extra=dag)
    for name, problem in (("deep_config.pt", "nested deeper"), ("deep_entry.pt", "nested deeper"),
                          ("cycle.pt", "nested deeper"), ("dag.pt", "containers")):
        with pytest.raises(FormatError, match=problem):
            load_checkpoint(tmp_path / name)
        with pytest.raises(FormatError, match=name):
            load_segmentation_model(str(tmp_path / name))


def test_checkpoint_gets_the_same_permissions_as_json_outputs(tmp_path):
    old = os.umask(0o022)
    try:
        ckpt = write_small_checkpoint(tmp_path / "ckpt.pt")
        report = write_json_atomic(tmp_path / "report.json", {"a": 1})
    finally:
        os.umask(old)
    assert (ckpt.stat().st_mode & 0o777) == (report.stat().st_mode & 0o777) == 0o644
