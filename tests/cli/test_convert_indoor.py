"""synth -> convert -> StoreReader -> compare with the generator's truth, one dataset at a time (CLI in-process)."""

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from pmoe_cli.app import app
from pmoe_core.io import read_point_cloud
from pmoe_core.sources.synthetic_indoor import (
    write_matterport3d, write_s3dis, write_scannet, write_structured3d,
)
from pmoe_core.store import StoreReader
from pmoe_core.vocab.label_spaces import label_space

WRITERS = {"scannet": write_scannet, "s3dis": write_s3dis, "structured3d": write_structured3d,
           "matterport3d": write_matterport3d}
COORD_ATOL = {"scannet": 2e-5, "s3dis": 0, "structured3d": 1e-5, "matterport3d": 0}

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.mark.parametrize("dataset", list(WRITERS))
def test_synth_convert_read_back(dataset, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    invoke("synth", dataset, raw, "--scenes", 3, "--seed", 7)
    truth = WRITERS[dataset](tmp_path / "truth_raw", scenes=3, seed=7)  # same seed -> same data
    options = ["-O", "align=true"] if dataset == "scannet" else []
    invoke("convert", dataset, raw, out, "--workers", 1, *options)
    store = StoreReader(str(out / f"{dataset}.zarr"))
    assert store.dataset == dataset
    assert list(store.class_names) == list(label_space(dataset).classes)
    seen = set()
    for split in store.splits:
        for scene in store.iter_scenes(split):
            want = truth[scene.name]
            seen.add(scene.name)
            np.testing.assert_allclose(scene.coord, want.coord, atol=COORD_ATOL[dataset], rtol=0)
            np.testing.assert_array_equal(scene.color, want.color)
            if want.segment is not None:
                np.testing.assert_array_equal(scene.segment, want.segment)
            if want.instance is not None:
                np.testing.assert_array_equal(scene.instance, want.instance)
    assert seen == set(truth)


def test_export_ply_las_h5_keep_labels_and_colours(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    invoke("synth", "s3dis", raw, "--scenes", 2)
    invoke("convert", "s3dis", raw, out, "--workers", 1)
    store_path = out / "s3dis.zarr"
    scene = StoreReader(str(store_path)).read("train", 0)
    for fmt in ("ply", "las"):
        invoke("export", store_path, tmp_path / f"x.{fmt}", "--split", "train", "--scene", scene.name,
               "--format", fmt)
        back = read_point_cloud(tmp_path / f"x.{fmt}")
        np.testing.assert_array_equal(back.segment, scene.segment)
        np.testing.assert_array_equal(back.color, scene.color)
        np.testing.assert_allclose(back.coord, scene.coord, atol=6e-4)
    invoke("export", store_path, tmp_path / "train.h5", "--split", "train", "--format", "h5")
    with h5py.File(tmp_path / "train.h5") as h5:
        assert list(h5) == [scene.name] and h5.attrs["dataset"] == "s3dis"
        np.testing.assert_array_equal(h5[scene.name]["segment"][:], scene.segment)


def test_synth_rejects_dataset_without_writer_and_export_needs_scene(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "none.zarr"), str(tmp_path / "x.ply"), "--split", "train"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["synth", "not-a-dataset", str(tmp_path)])
    assert result.exit_code != 0 and "unknown dataset" in str(result.exception)


def test_export_failure_leaves_no_file_and_keeps_an_old_one(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    invoke("synth", "s3dis", raw, "--scenes", 2)
    invoke("convert", "s3dis", raw, out, "--workers", 1)
    store_path = out / "s3dis.zarr"
    target = tmp_path / "exports" / "train.h5"  # folder does not exist yet: it is created
    result = runner.invoke(app, ["export", str(store_path), str(target), "--split", "train", "--scene", "nope",
                                 "--format", "h5"])
    assert result.exit_code != 0 and "nope" in str(result.exception)
    assert list(target.parent.iterdir()) == []  # no half-written h5, no temporary left behind
    target.write_bytes(b"old")
    result = runner.invoke(app, ["export", str(store_path), str(target.with_suffix(".laz")), "--split", "train",
                                 "--scene", "nope", "--format", "las"])
    assert result.exit_code != 0 and sorted(p.name for p in target.parent.iterdir()) == ["train.h5"]
    assert target.read_bytes() == b"old"
    invoke("export", store_path, target, "--split", "train", "--format", "h5", "--overwrite")
    with h5py.File(target) as h5:
        assert h5.attrs["split"] == "train"
    assert sorted(p.name for p in target.parent.iterdir()) == ["train.h5"]
    result = runner.invoke(app, ["export", str(store_path), str(target.parent), "--split", "train", "--scene", "0"])
    assert result.exit_code != 0 and "is a folder" in str(result.exception)
