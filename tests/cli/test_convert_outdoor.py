"""synth -> convert -> StoreReader -> compare with the generator's truth, for the outdoor datasets (CLI in-process)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from pmoe_cli.app import app
from pmoe_core.sources.synthetic_outdoor import write_nuscenes, write_semantickitti, write_waymo
from pmoe_core.store import StoreReader
from pmoe_core.vocab.label_spaces import label_space

WRITERS = {"semantickitti": write_semantickitti, "nuscenes": write_nuscenes, "waymo": write_waymo}
COORD_ATOL = {"semantickitti": 0, "nuscenes": 0, "waymo": 1e-3}
EXPECTED_SPLITS = {"semantickitti": {"train", "val", "test"}, "nuscenes": {"train", "val"}, "waymo": {"train", "val"}}

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(WRITERS))
def test_synth_convert_read_back(dataset, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    invoke("synth", dataset, raw, "--scenes", 3, "--seed", 4)
    truth = WRITERS[dataset](tmp_path / "truth_raw", scenes=3, seed=4)  # same seed -> same data
    invoke("convert", dataset, raw, out, "--workers", 1)
    store = StoreReader(str(out / f"{dataset}.zarr"))
    assert store.dataset == dataset
    assert list(store.class_names) == list(label_space(dataset).classes)
    assert set(store.splits) == EXPECTED_SPLITS[dataset]
    seen = set()
    for split in store.splits:
        for scene in store.iter_scenes(split):
            want = truth[scene.name]
            seen.add(scene.name)
            np.testing.assert_allclose(scene.coord, want.coord, atol=COORD_ATOL[dataset], rtol=0)
            np.testing.assert_allclose(scene.strength, want.strength, atol=1e-6)
            if want.segment is not None:
                np.testing.assert_array_equal(scene.segment, want.segment)
            if want.instance is not None:
                np.testing.assert_array_equal(scene.instance, want.instance)
    assert seen == set(truth)


@pytest.mark.slow
def test_reader_options_reach_the_source(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    truth = write_nuscenes(raw, scenes=1, seed=1, sweeps=2)
    invoke("convert", "nuscenes", raw, out, "--workers", 1, "-O", "sweeps=2")
    store = StoreReader(str(out / "nuscenes.zarr"))
    for scene in store.iter_scenes("train"):
        assert len(scene) == len(truth[scene.name])
        np.testing.assert_allclose(scene.coord, truth[scene.name].coord, atol=1e-4, rtol=0)
