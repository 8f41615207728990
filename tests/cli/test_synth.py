"""`pmoe synth --format`: Waymo in either raw format (v2 parquet, v1 TFRecords), refused for the other datasets."""

import numpy as np
from typer.testing import CliRunner

from pmoe_cli.app import app
from pmoe_core.errors import BadInput
from pmoe_core.sources.synthetic_outdoor import write_waymo
from pmoe_core.store import StoreReader

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_waymo_v1_tfrecords_convert_to_the_same_scenes(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    result = invoke("synth", "waymo", raw, "--scenes", 1, "--seed", 5, "--format", "v1")
    assert result.exit_code == 0, result.output
    assert [p.name.endswith("_with_camera_labels.tfrecord") for p in (raw / "training").iterdir()] == [True]
    assert not list(raw.rglob("*.parquet"))
    default = tmp_path / "v2"
    assert invoke("synth", "waymo", default, "--scenes", 1, "--seed", 5).exit_code == 0
    assert (default / "training" / "lidar").is_dir() and not list(default.rglob("*.tfrecord"))

    assert invoke("convert", "waymo", raw, out, "--workers", 1).exit_code == 0
    truth = write_waymo(tmp_path / "truth", scenes=1, seed=5, fmt="v1")
    store = StoreReader(str(out / "waymo.zarr"))
    scenes = {s.name: s for split in store.splits for s in store.iter_scenes(split)}
    assert set(scenes) == set(truth)
    for name, want in truth.items():
        np.testing.assert_allclose(scenes[name].coord, want.coord, atol=1e-3, rtol=0)
        np.testing.assert_array_equal(scenes[name].segment, want.segment)


def test_format_is_refused_for_other_datasets_and_bad_values(tmp_path):
    result = invoke("synth", "scannet", tmp_path / "scannet", "--format", "v1")  # in-process: the user error
    assert isinstance(result.exception, BadInput)                              # is raised, `pmoe` prints it
    assert str(result.exception) == "--format applies only to waymo (v1 or v2); scannet has one raw format"
    assert not (tmp_path / "scannet").exists()
    result = invoke("synth", "waymo", tmp_path / "waymo", "--format", "v3")
    assert isinstance(result.exception, BadInput) and str(result.exception) == "--format must be v2 or v1, got 'v3'"
    assert not (tmp_path / "waymo").exists()
