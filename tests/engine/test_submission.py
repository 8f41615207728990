"""`eval --save-pred` files: the inverse label maps, and each benchmark's submission layout read back against the
format rules (shared/reference/datasets.md, the nuScenes devkit's validate_submission), on the real SemanticKITTI
scan and on converted synthetic ScanNet / nuScenes raw data, with predictions we control."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from support_loader import engine_conftest
from torch import nn

from pmoe_core.convert import convert
from pmoe_core.engine.evaluate import evaluate_model
from pmoe_core.engine.submission import (
    PredictionWriter,
    nuscenes_meta,
    submission_values,
)
from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.sources import nuscenes as nuscenes_source
from pmoe_core.sources.synthetic_indoor import write_scannet
from pmoe_core.sources.synthetic_outdoor import write_nuscenes
from pmoe_core.store import StoreReader
from pmoe_core.vocab.label_spaces import NUSCENES, SCANNET, SEMANTICKITTI, label_space

room = engine_conftest().room
write_store = engine_conftest().write_store


def meta(*datasets: str) -> dict:
    return {"kind": "segmentation", "preset": "fake", "step": 0, "datasets": list(datasets), "text_encoder": "minilm"}


class Stripes(nn.Module):
    """Class floor(3|x| + 5|y|) mod K: many classes per scene, the same for a point in every fragment and view."""

    def forward(self, batch, class_embeddings: torch.Tensor) -> torch.Tensor:
        k = class_embeddings.shape[0]
        cls = torch.floor(3 * batch.coord[:, 0].abs() + 5 * batch.coord[:, 1].abs()).long() % k
        return 20.0 * torch.nn.functional.one_hot(cls, k).float()


class NeverCalled(nn.Module):
    def forward(self, batch, class_embeddings):
        raise AssertionError("the model ran before the prediction files were checked")


def stored(store: Path, split: str) -> dict[str, np.ndarray]:
    """Scene name -> stored segment (the ground truth eval compares with)."""
    reader = StoreReader(str(store))
    return {name: reader.read(split, name, fields=["segment"]).segment for name in reader.names(split)}


def confusion_from(classes: dict[str, np.ndarray], truth: dict[str, np.ndarray], k: int) -> np.ndarray:
    pred = np.concatenate([classes[n] for n in truth]).astype(np.int64)
    target = np.concatenate(list(truth.values())).astype(np.int64)
    keep = target >= 0
    return np.bincount(target[keep] * k + pred[keep], minlength=k * k).reshape(k, k)


def saved_classes(out: Path, dataset: str, split: str, names) -> dict[str, np.ndarray]:
    arrays = {n: np.load(out / dataset / split / "classes" / f"{n}.npy") for n in names}
    assert all(a.dtype == np.int16 for a in arrays.values())
    return arrays


def test_submission_values_map_back_to_every_class_through_the_learning_maps():
    scannet = submission_values("scannet")
    assert scannet.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]  # NYU40 ids
    assert SCANNET.map_raw(scannet).tolist() == list(range(20))
    kitti = submission_values("semantickitti")
    # semantic-kitti.yaml learning_map_inv, classes 1..19 (0 = unlabeled is never predicted)
    assert kitti.tolist() == [10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81]
    assert SEMANTICKITTI.map_raw(kitti).tolist() == list(range(19))
    nus = submission_values("nuscenes")  # the devkit's lidarseg challenge index: barrier 1 ... vegetation 16
    assert nus.tolist() == list(range(1, 17))
    assert NUSCENES.classes[0] == "barrier" and NUSCENES.classes[15] == "vegetation"
    with pytest.raises(BadInput, match="no benchmark submission format"):
        submission_values("waymo")
    assert nuscenes_meta(["nuscenes"])["use_external"] is False
    assert nuscenes_meta(["nuscenes", "scannet"]) == {"use_camera": False, "use_lidar": True, "use_radar": False,
                                                      "use_map": False, "use_external": True}


def test_real_semantickitti_scan_gets_a_label_file_of_raw_ids(real_fixtures, tmp_path, engine_cache):
    convert("semantickitti", real_fixtures / "semantickitti", str(tmp_path / "data"), workers=1)
    out = tmp_path / "pred"
    writer = PredictionWriter(out)
    report = evaluate_model(Stripes(), meta("semantickitti"), str(tmp_path / "data"), ["semantickitti"],
                            split="train", predictions=writer)  # sequence 00 is a training sequence
    writer.finish(report.trained_on)

    label = out / "semantickitti" / "train" / "submission" / "sequences" / "00" / "predictions" / "000000.label"
    raw = np.fromfile(label, dtype="<u4")
    assert label.stat().st_size == 4 * 50 and raw.size == 50  # one uint32 per point of the real 50-point scan
    assert (raw >> 16 == 0).all()  # no instance ids
    assert set(raw.tolist()) <= set(submission_values("semantickitti").tolist())
    classes = saved_classes(out, "semantickitti", "train", ["00_000000"])["00_000000"]
    assert len(set(classes.tolist())) > 3  # the stripes reach several classes
    assert SEMANTICKITTI.map_raw(raw).tolist() == classes.tolist()
    truth = stored(tmp_path / "data" / "semantickitti.zarr", "train")
    assert (confusion_from({"00_000000": classes}, truth, 19) == report.result("semantickitti").confusion).all()


@pytest.fixture(scope="module")
def converted(tmp_path_factory, engine_cache) -> Path:
    """Synthetic raw ScanNet and nuScenes (with one sweep per key frame) converted by pmoe convert."""
    base = tmp_path_factory.mktemp("submission")
    write_scannet(base / "raw_scannet", scenes=2, seed=3)
    write_nuscenes(base / "raw_nuscenes", scenes=2, seed=4, columns=128)
    convert("scannet", base / "raw_scannet", str(base / "data"), workers=1)
    convert("nuscenes", base / "raw_nuscenes", str(base / "data"), workers=1,
            options=nuscenes_source.Options(sweeps=1))
    return base


def test_scannet_txt_has_one_nyu40_id_per_mesh_vertex(converted, tmp_path):
    writer = PredictionWriter(tmp_path)
    report = evaluate_model(Stripes(), meta("scannet"), str(converted / "data"), ["scannet"], predictions=writer)
    truth = stored(converted / "data" / "scannet.zarr", "val")
    classes = saved_classes(tmp_path, "scannet", "val", truth)
    for name in truth:
        txt = tmp_path / "scannet" / "val" / "submission" / f"{name}.txt"
        lines = txt.read_text().splitlines()
        ply = (converted / "raw_scannet" / "scans" / name / f"{name}_vh_clean_2.ply").read_bytes()
        vertices = int(re.search(rb"element vertex (\d+)", ply).group(1))
        assert len(lines) == vertices == len(classes[name])
        assert all(re.fullmatch(r"\d+", line) for line in lines)
        nyu40 = np.array(lines, dtype=np.int64)
        assert set(nyu40.tolist()) <= set(SCANNET.raw_to_name)
        assert SCANNET.map_raw(nyu40).tolist() == classes[name].tolist()
    assert (confusion_from(classes, truth, 20) == report.result("scannet").confusion).all()
    assert not (tmp_path / "nuscenes").exists()


def test_nuscenes_bins_are_named_by_lidar_token_and_cover_key_frame_points_only(converted, tmp_path):
    writer = PredictionWriter(tmp_path)
    report = evaluate_model(Stripes(), meta("scannet", "nuscenes"), str(converted / "data"), ["nuscenes"],
                            predictions=writer)
    writer.finish(report.trained_on)
    raw = converted / "raw_nuscenes"
    refs = nuscenes_source.list_scenes(raw, nuscenes_source.Options(sweeps=1))  # as converted
    name_of = {ref.meta["token"]: ref.name for ref in refs if ref.split == "val"}
    results = tmp_path / "nuscenes" / "val" / "submission"  # the devkit's results_folder
    meta_file = json.loads((results / "val" / "submission.json").read_text())
    assert set(meta_file["meta"]) == {"use_camera", "use_lidar", "use_radar", "use_map", "use_external"}
    assert all(type(v) is bool for v in meta_file["meta"].values()) and meta_file["meta"]["use_external"]
    bins = sorted((results / "lidarseg" / "val").iterdir())
    assert {p.name for p in bins} == {f"{t}_lidarseg.bin" for t in name_of} and len(bins) == 2
    truth = stored(converted / "data" / "nuscenes.zarr", "val")
    classes = saved_classes(tmp_path, "nuscenes", "val", truth)
    for path in bins:
        token = path.name.removesuffix("_lidarseg.bin")
        values = np.fromfile(path, dtype=np.uint8)
        labels = np.fromfile(raw / "lidarseg" / "v1.0-trainval" / path.name, dtype=np.uint8)  # the devkit's check
        name = name_of[token]
        assert values.size == labels.size < len(classes[name])  # key-frame points only; the sweep is left out
        assert values.min() >= 1 and values.max() <= 16  # never the ignore index 0
        assert (values.astype(np.int64) - 1).tolist() == classes[name][: values.size].tolist()
    assert (confusion_from(classes, truth, 16) == report.result("nuscenes").confusion).all()


def test_datasets_without_a_submission_format_get_npy_only(tmp_path, engine_cache):
    def s3dis_room(rng, name):
        scene = room(rng, name, n=800)
        lut = np.array([label_space("s3dis").classes.index(c) if c in label_space("s3dis").classes else -1
                        for c in SCANNET.classes], np.int16)
        scene.segment = lut[scene.segment]
        return scene

    write_store(tmp_path / "data", "s3dis", s3dis_room, train=0, val=2, seed=5)
    out = tmp_path / "pred"
    writer = PredictionWriter(out)
    report = evaluate_model(Stripes(), meta("s3dis"), str(tmp_path / "data"), ["s3dis"], predictions=writer)
    saved = writer.finish(report.trained_on)
    assert saved.scenes == {"s3dis": 2} and saved.submission_files == {}
    assert sorted(p.name for p in (out / "s3dis" / "val").iterdir()) == ["classes"]
    truth = stored(tmp_path / "data" / "s3dis.zarr", "val")
    classes = saved_classes(out, "s3dis", "val", truth)
    assert (confusion_from(classes, truth, 13) == report.result("s3dis").confusion).all()


def test_unnameable_scenes_and_missing_raw_tables_fail_before_the_model_runs(converted, tmp_path, engine_cache):
    write_store(tmp_path / "kitti", "semantickitti", lambda rng, name: room(rng, name, n=300), 0, 1, seed=6)
    with pytest.raises(FormatError, match="not named <sequence>_<frame>"):  # write_store names scenes val_000
        evaluate_model(NeverCalled(), meta("semantickitti"), str(tmp_path / "kitti"), predictions=PredictionWriter(
            tmp_path / "out"))
    with pytest.raises(BadInput, match="--label-set own"):
        evaluate_model(NeverCalled(), meta("scannet"), str(converted / "data"), label_set="union",
                       predictions=PredictionWriter(tmp_path / "out"))
    moved = tmp_path / "moved"
    (converted / "raw_nuscenes").rename(moved)
    try:
        with pytest.raises(MissingFile, match="raw nuScenes folder"):
            evaluate_model(NeverCalled(), meta("nuscenes"), str(converted / "data"), ["nuscenes"],
                           predictions=PredictionWriter(tmp_path / "out"))
    finally:
        moved.rename(converted / "raw_nuscenes")
    assert not (tmp_path / "out").exists()
