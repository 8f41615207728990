"""Training config files: layering and precedence, type and key checks, and the recorded config reproducing a run."""

from __future__ import annotations

import json

import pytest

from pmoe_cli.app import main
from pmoe_core.engine.config_file import build_config, config_data, parse_set, read_config_file, write_config
from pmoe_core.engine.optim import OptimConfig
from pmoe_core.engine.runlog import read_log
from pmoe_core.engine.train import TrainConfig
from pmoe_core.errors import BadInput, FormatError


def preset_recipe(name: str) -> dict:
    return {"optim": {"lr": 0.005 if name.startswith("ppt") else 0.002}, "grad_clip": 3.0 if name.startswith("ppt")
            else 1.0}


def build(*layers) -> TrainConfig:
    return build_config(TrainConfig, [("the defaults", {"data": "d", "datasets": ("scannet",)}), *layers],
                        preset_recipe)


def test_precedence_defaults_preset_file_flags_set(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "ppt-tiny"\nbatch_size = 8\nseed = 3\nepochs = 5\n[optim]\nblock_lr = 0.001\n'
                    'pct_start = 0.2\n')
    cfg = build((str(path), read_config_file(path)), ("the command line", {"seed": 4, "steps": 7}),
                ("--set", parse_set(["seed=5", "optim.pct_start=0.3", "datasets=scannet,kitti",
                                     "point_clip=none"])))
    assert cfg.preset == "ppt-tiny" and cfg.batch_size == 8  # file over defaults
    assert cfg.optim == OptimConfig(lr=0.005, block_lr=0.001, pct_start=0.3)  # preset < file < --set, per key
    assert cfg.grad_clip == 3.0  # the preset's recipe, nothing above it
    assert cfg.seed == 5  # --set over the flag over the file
    assert (cfg.steps, cfg.epochs) == (7, None)  # --steps on the command line drops the file's epochs
    assert cfg.datasets == ("scannet", "kitti") and cfg.point_clip is None


def test_yaml_and_toml_say_the_same(tmp_path):
    toml = tmp_path / "a.toml"
    toml.write_text('steps = 3\ncrop_rates = {s3dis = 0.5}\nweights = {scannet = 2, kitti = 1}\n'
                    'point_clip = [[-1, -1, -1], [1, 1, 1]]\n')
    yaml_ = tmp_path / "a.yaml"
    yaml_.write_text("steps: 3\ncrop_rates: {s3dis: 0.5}\nweights: {scannet: 2, kitti: 1}\n"
                     "point_clip: [[-1, -1, -1], [1, 1, 1]]\n")
    a, b = (build((str(p), read_config_file(p))) for p in (toml, yaml_))
    assert a == b
    assert a.crop_rates == (("s3dis", 0.5),) and a.weights == {"scannet": 2.0, "kitti": 1.0}
    assert a.point_clip == ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def test_written_config_reads_back_to_the_same_config(tmp_path):
    cfg = build(("--set", parse_set(["epochs=3", "weights={scannet=1.5}", "crop_rates={s3dis=0.25}",
                                     "max_points=none", "optim.lr=0.01"])))
    path = write_config(cfg, tmp_path / "config.yaml")
    again = build_config(TrainConfig, [(str(path), read_config_file(path))])
    assert again == cfg and config_data(again) == config_data(cfg)
    assert again.max_points is None and again.optim.lr == 0.01


@pytest.mark.parametrize("text, message", [
    ("stepz = 3\n", r"unknown key stepz in .*bad.toml.*known keys"),
    ("[optim]\nlrr = 1\n", r"unknown key optim.lrr in .*bad.toml"),
    ("batch-size = 3\n", r"unknown key batch-size in .*bad.toml \(did you mean batch_size\?\)"),
    ("steps = 2.5\n", r"steps must be an integer, got 2.5 \(in .*bad.toml\)"),
    ('mix = "yes"\n', r"mix must be true or false"),
    ("optim = 3\n", r"optim must be a table"),
    ("steps = 3\nepochs = 2\n", r"steps and epochs both set \(in .*bad.toml\)"),
])
def test_bad_keys_and_types_are_one_line_naming_key_and_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message) as err:
        build((str(path), read_config_file(path)))
    assert "\n" not in err.value.message


def test_unreadable_files_are_format_errors(tmp_path):
    (tmp_path / "a.toml").write_text("steps = = 3\n")
    (tmp_path / "b.yaml").write_text("- a list\n- not a mapping\n")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(FormatError, match="not a readable TOML config"):
        read_config_file(tmp_path / "a.toml")
    with pytest.raises(FormatError, match="mapping of settings, not a list"):
        read_config_file(tmp_path / "b.yaml")
    with pytest.raises(BadInput, match=r"\.toml, \.yaml or \.yml"):
        read_config_file(tmp_path / "c.json")
    with pytest.raises(BadInput, match="--set expects KEY=VALUE"):
        parse_set(["steps"])


def test_cli_unknown_key_is_one_line_before_any_work(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("datasets: [scannet]\ndata: nowhere\nlearning_rate: 0.1\n")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and len(err) == 1
    assert err[0].startswith("pmoe: error: unknown key learning_rate in ") and str(path) in err[0]
    assert not (tmp_path / "run").exists()


def test_config_round_trip_reproduces_the_run(tiny_stores, tmp_path):
    """file -> run -> OUT/config.yaml -> the same run: same effective config, identical loss records."""
    path = tmp_path / "first.toml"
    path.write_text(f'datasets = ["scannet", "kitti"]\ndata = "{tiny_stores}"\npreset = "pmoe-tiny"\n'
                    "batch_size = 1\nworkers = 0\nmax_points = 2000\nlog_every = 1\ntensorboard = false\n"
                    "[optim]\nweight_decay = 0.01\n")
    common = ["--threads", "1"]
    with pytest.raises(SystemExit) as done:
        main(["train", "--config", str(path), "--out", str(tmp_path / "a"), "--steps", "2", "--set", "seed=7",
              *common])
    assert done.value.code in (None, 0)
    recorded = tmp_path / "a" / "config.yaml"
    with pytest.raises(SystemExit) as done:
        main(["train", "--config", str(recorded), "--set", f"out={tmp_path / 'b'}", *common])
    assert done.value.code in (None, 0)
    a, b = (read_config_file(tmp_path / run / "config.yaml") for run in "ab")
    assert a.pop("out") != b.pop("out") and a == b
    assert a["seed"] == 7 and a["steps"] == 2 and a["optim"]["weight_decay"] == 0.01 and a["epochs"] is None
    logs = {run: read_log(tmp_path / run) for run in "ab"}
    first = logs["a"][0]
    assert first["event"] == "config" and first["config"]["seed"] == 7 and first["total_steps"] == 2
    assert "--set" in first["command"]
    losses = {run: [r["loss"] for r in log if r["event"] == "train"] for run, log in logs.items()}
    assert len(losses["a"]) == 2 and losses["a"] == losses["b"]
    assert json.loads(json.dumps(first["config"])) == {**a, "out": str(tmp_path / "a")}
