"""Evaluation: metric plumbing on models whose predictions we control, voting onto every stored point, label-free
scoring, zero-shot flags, TTA, the JSON report and PNGs, and a really trained tiny checkpoint."""

from __future__ import annotations

import json
from math import pi
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support_loader import engine_conftest
from torch import nn

from pmoe_core.data.collate import fragment_pieces
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.recipes import RecipeConfig
from pmoe_core.data.sample import Sample
from pmoe_core.engine.confusion_plot import row_normalised, save_confusion_png
from pmoe_core.engine.eval_report import write_report
from pmoe_core.engine.evaluate import (
    CHUNK_POINTS,
    evaluate,
    evaluate_model,
    vote_scenes,
)
from pmoe_core.engine.label_sets import UnionVocabulary, union_vocabulary
from pmoe_core.engine.train import TrainConfig, train
from pmoe_core.engine.tta import View, tta_views
from pmoe_core.errors import BadInput, MissingFile, StoreError
from pmoe_core.models.presets import build_model, get_config
from pmoe_core.scene import Scene
from pmoe_core.schemas import validate
from pmoe_core.store import StoreReader
from pmoe_core.vocab.label_spaces import label_space

room = engine_conftest().room
street = engine_conftest().street
write_store = engine_conftest().write_store

CODE = 8  # the red channel of the coded stores is label * CODE, so a fake model can read the true label
IGNORED = 30  # red code of ignore-labelled points (clamped onto the last row of the oracle's table)
META = {"kind": "segmentation", "preset": "fake", "step": 0, "datasets": ["scannet", "semantickitti"],
        "text_encoder": "minilm"}


def relabel(scene: Scene, dataset: str) -> Scene:
    """The conftest room carries ScanNet20 indices: move them, by class name, into `dataset`'s label space."""
    source, target = label_space("scannet"), label_space(dataset)
    lut = np.array([target.classes.index(c) if c in target.classes else -1 for c in source.classes], np.int16)
    scene.segment = lut[scene.segment]
    return scene


def coded(make, dataset: str):
    """Scenes whose color encodes the label exactly (5% of points ignore-labelled)."""

    def make_coded(rng: np.random.Generator, name: str) -> Scene:
        scene = make(rng, name, n=1200)
        if dataset not in ("scannet", "semantickitti"):
            scene = relabel(scene, dataset)
        scene.segment[rng.random(len(scene)) < 0.05] = -1
        red = np.where(scene.segment >= 0, scene.segment * CODE, IGNORED * CODE)
        scene.color = np.stack([red, np.zeros_like(red), np.zeros_like(red)], axis=1).astype(np.uint8)
        return scene

    return make_coded


@pytest.fixture(scope="module")
def coded_stores(tmp_path_factory, engine_cache) -> Path:
    out = tmp_path_factory.mktemp("coded")
    write_store(out, "scannet", coded(room, "scannet"), train=0, val=2, seed=10)
    write_store(out, "semantickitti", coded(street, "semantickitti"), train=0, val=2, seed=11)
    write_store(out, "matterport3d", coded(room, "matterport3d"), train=0, val=2, seed=12)
    return out


class Oracle(nn.Module):
    """Reads each point's true label from its color and gives it `looks_like[label]` as feature; the logits are
    the language head's (scaled cosine with the class embeddings handed in). Rows of `looks_like` control what a
    class is mistaken for."""

    def __init__(self, looks_like: np.ndarray):
        super().__init__()
        self.looks_like = torch.as_tensor(looks_like, dtype=torch.float32)

    def forward(self, batch, class_embeddings: torch.Tensor) -> torch.Tensor:
        code = torch.round((batch.feat[:, 0] + 1) * 127.5 / CODE).long()
        point = F.normalize(self.looks_like[code.clamp(max=len(self.looks_like) - 1)], dim=1)
        return 100.0 * point @ F.normalize(class_embeddings, dim=1).T


class Constant(nn.Module):
    """Predicts class `k` everywhere, whatever the label set's size."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, batch, class_embeddings: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(batch.coord.shape[0], class_embeddings.shape[0])
        logits[:, self.k] = 10.0
        return logits


class SignOfX(nn.Module):
    """Class 0 where x > 0, class 1 elsewhere (nearly one-hot): its votes show which views a point went through."""

    def forward(self, batch, class_embeddings: torch.Tensor) -> torch.Tensor:
        logits = torch.full((batch.coord.shape[0], class_embeddings.shape[0]), -20.0)
        positive = batch.coord[:, 0] > 0
        logits[:, 0] = torch.where(positive, 20.0, -20.0)
        logits[:, 1] = torch.where(positive, -20.0, 20.0)
        return logits


def embeddings(stores: Path, dataset: str) -> np.ndarray:
    return StoreReader(str(stores / f"{dataset}.zarr")).class_embeddings


def label_counts(stores: Path, dataset: str) -> np.ndarray:
    """Labelled points per class over the val split, straight from the store."""
    reader = StoreReader(str(stores / f"{dataset}.zarr"))
    segment = np.concatenate(list(reader.iter_field("val", "segment")))
    return np.bincount(segment[segment >= 0], minlength=len(reader.class_names))


def stored_points(stores: Path, dataset: str) -> int:
    return StoreReader(str(stores / f"{dataset}.zarr")).num_points("val")


def test_exact_predictions_score_one_on_every_stored_point(coded_stores):
    for dataset in ("scannet", "semantickitti"):
        report = evaluate_model(Oracle(embeddings(coded_stores, dataset)), META, str(coded_stores), [dataset])
        r = report.result(dataset)
        assert (r.macc, r.all_acc) == (1.0, 1.0)
        assert all(c.iou == 1.0 for c in r.classes if c.support)
        assert r.miou == (1.0 if dataset == "scannet" else 3 / 19)  # SemanticKITTI counts absent classes as 0
        assert r.points == stored_points(coded_stores, dataset)  # voted back onto every point, not the voxels
        assert r.labelled_points == label_counts(coded_stores, dataset).sum() < r.points
        assert r.scenes == 2 and not r.zero_shot and r.outside_points is None


def test_constant_predictor_matches_hand_computed_iou(coded_stores):
    n = label_counts(coded_stores, "scannet")  # wall 0, floor 1, table 6 present
    r = evaluate_model(Constant(0), META, str(coded_stores), ["scannet"]).result("scannet")
    wall_iou = n[0] / n.sum()
    assert r.absent_policy == "exclude"
    assert r.classes[0].iou == pytest.approx(wall_iou)
    assert r.classes[1].iou == 0.0 and r.classes[6].iou == 0.0 and r.classes[2].iou is None
    assert r.miou == pytest.approx(wall_iou / 3)  # absent classes left out of the mean
    assert r.macc == pytest.approx(1 / 3) and r.all_acc == pytest.approx(wall_iou)

    n = label_counts(coded_stores, "semantickitti")  # car 0, road 8, building 12 present
    r = evaluate_model(Constant(0), META, str(coded_stores), ["kitti"]).result("semantickitti")
    assert r.absent_policy == "zero"
    assert r.miou == pytest.approx(n[0] / n.sum() / 19)  # SemanticKITTI: absent classes count as IoU 0
    assert r.macc == pytest.approx(1 / 3)


def test_limit_counts_scenes_and_points(coded_stores):
    reader = StoreReader(str(coded_stores / "scannet.zarr"))
    r = evaluate_model(Constant(0), META, str(coded_stores), ["scannet"], limit=1).result("scannet")
    assert r.scenes == 1 and r.points == reader.num_points("val", 0)


def test_union_mode_equals_own_mode_when_entries_are_distinct(coded_stores):
    emb = embeddings(coded_stores, "scannet")
    exact_union = evaluate_model(Oracle(emb), META, str(coded_stores), ["scannet"], label_set="union")
    r = exact_union.result("scannet")
    assert r.miou == 1.0 and r.outside_points == 0 and r.outside_entries == {} and r.columns[-1] == "outside"

    mistaken = emb.copy()
    mistaken[6] = emb[4]  # tables look like chairs: an error inside the label space
    own = evaluate_model(Oracle(mistaken), META, str(coded_stores), ["scannet"]).result("scannet")
    union = evaluate_model(Oracle(mistaken), META, str(coded_stores), ["scannet"], label_set="union").result("scannet")
    assert own.miou < 1.0
    assert np.array_equal(union.confusion[:, :-1], own.confusion) and union.confusion[:, -1].sum() == 0
    assert (union.miou, union.macc, union.all_acc) == pytest.approx((own.miou, own.macc, own.all_acc))


def test_union_entries_outside_the_label_space_are_false_negatives_only(coded_stores):
    vocab = union_vocabulary("minilm")
    emb = embeddings(coded_stores, "scannet").copy()
    emb[6] = vocab.vectors[vocab.entries.index("car")]  # tables look like cars, which ScanNet does not have
    r = evaluate_model(Oracle(emb), META, str(coded_stores), ["scannet"], label_set="union").result("scannet")
    n = label_counts(coded_stores, "scannet")
    assert r.outside_points == n[6] == r.confusion[6, -1]
    assert r.outside_entries == {"car": n[6]}
    assert r.classes[6].iou == 0.0 and r.classes[6].acc == 0.0
    assert r.classes[0].iou == 1.0 and r.classes[1].iou == 1.0  # outside is nobody's false positive
    assert r.miou == pytest.approx(2 / 3)  # the outside column is no class of the mean
    assert r.all_acc == pytest.approx(1 - n[6] / n.sum())


def test_zero_shot_flag_and_scoring_through_class_names(coded_stores):
    report = evaluate_model(Oracle(embeddings(coded_stores, "matterport3d")), META, str(coded_stores),
                            ["mp3d"], label_set="own")
    r = report.result("matterport3d")
    assert r.zero_shot and r.miou == 1.0 and r.points == stored_points(coded_stores, "matterport3d")
    assert report.trained_on == ("scannet", "semantickitti")


def test_tta_views_and_voting_cover_every_point(coded_stores):
    assert tta_views(False) == [View()] == tta_views(1)
    views = tta_views(4)
    assert [v.flip for v in views] == [False, True, False, True]
    assert views[1].angle == pytest.approx(pi / 2)
    with pytest.raises(BadInput):
        tta_views(0)

    sample = SceneDataset([str(coded_stores / "semantickitti.zarr")], "val", mode="test").raw(0)
    turned = views[1](SceneDataset([str(coded_stores / "semantickitti.zarr")], "val", mode="test").raw(0), None)
    assert np.allclose(turned.coord[:, 0], sample.coord[:, 1], atol=1e-5)  # (x, y) -> (-y, x), then x mirrored
    assert np.allclose(turned.coord[:, 1], sample.coord[:, 0], atol=1e-5)

    oracle = Oracle(embeddings(coded_stores, "semantickitti"))
    scores = vote_scenes(oracle, [sample], views, RecipeConfig(), torch.from_numpy(
        embeddings(coded_stores, "semantickitti")), "semantickitti")
    assert scores.shape == (len(sample), 19)
    assert bool((scores.sum(dim=1) >= len(views) - 1e-4).all())  # each view reached each point at least once
    report = evaluate_model(oracle, META, str(coded_stores), ["semantickitti"], tta=4)
    assert report.tta == 4 and report.result("semantickitti").all_acc == 1.0

    # A model that only looks at the sign of x: one pass votes [x > 0]; the four views see x, y, -x, -y.
    emb = torch.from_numpy(embeddings(coded_stores, "semantickitti"))
    per_view = [vote_scenes(SignOfX(), [sample], [v], RecipeConfig(), emb, "semantickitti") for v in views]
    x, y = torch.from_numpy(sample.coord[:, 0]), torch.from_numpy(sample.coord[:, 1])
    for scores, seen_as_x in zip(per_view, (x, y, -x, -y)):
        assert torch.allclose(scores[:, 0] / scores.sum(dim=1), (seen_as_x > 0).float(), atol=1e-4)
    summed = vote_scenes(SignOfX(), [sample], views, RecipeConfig(), emb, "semantickitti")
    assert torch.allclose(summed, sum(per_view), atol=1e-4)


class PassRecorder(nn.Module):
    """Logits from each point's own coordinates only (so they cannot depend on the batch); records the points of
    every forward pass."""

    def __init__(self):
        super().__init__()
        self.passes: list[int] = []

    def forward(self, batch, class_embeddings: torch.Tensor) -> torch.Tensor:
        self.passes.append(batch.coord.shape[0])
        k = torch.arange(class_embeddings.shape[0], dtype=torch.float32)
        return torch.sin(batch.coord[:, :1] * (k + 1) + batch.coord[:, 1:2] * k)


def dense_room(duplicates: int) -> Sample:
    """A 6000-point room plus `duplicates` copies of one point: one voxel that deep makes as many fragments, each
    as large as the room's voxel count (the Structured3D panorama poles: 33 fragments of a 32k-point room)."""
    scene = room(np.random.default_rng(3), "dense", n=6000)
    extra = np.zeros(duplicates, np.int64)  # copies of point 0
    for field in ("coord", "color", "normal", "segment"):
        values = getattr(scene, field)
        setattr(scene, field, np.concatenate([values, values[extra]]))
    return Sample.from_scene(scene, "scannet")


def test_dense_scenes_are_scored_in_bounded_passes_with_the_same_votes():
    sample = dense_room(40)
    emb = torch.eye(20)
    one = PassRecorder()
    single = vote_scenes(one, [sample], [View()], RecipeConfig(), emb, "scannet", max_points=10**9)
    assert len(one.passes) == 1 and one.passes[0] > CHUNK_POINTS  # the regression: 41 fragments in one pass
    fragments = one.passes[0]

    bounded = PassRecorder()
    chunked = vote_scenes(bounded, [sample], [View()], RecipeConfig(), emb, "scannet")  # default bound
    assert len(bounded.passes) > 1 and max(bounded.passes) <= CHUNK_POINTS and sum(bounded.passes) == fragments
    assert torch.equal(chunked, single)  # every point's votes summed in the same fragment order

    tiny = PassRecorder()  # a bound below one fragment: one fragment per pass, still every point
    assert torch.equal(vote_scenes(tiny, [sample], [View()], RecipeConfig(), emb, "scannet", max_points=1), single)
    assert len(set(tiny.passes)) == 1 and len(tiny.passes) == 41


def test_fragment_pieces_pack_in_order_under_the_bound():
    fragmented = [SimpleSample(3, 10), SimpleSample(2, 25)]
    assert fragment_pieces(fragmented, 30) == [[(0, 0), (0, 1), (0, 2)], [(1, 0)], [(1, 1)]]
    assert fragment_pieces(fragmented, 1000) == [[(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]]
    assert fragment_pieces(fragmented, 5) == [[(0, 0)], [(0, 1)], [(0, 2)], [(1, 0)], [(1, 1)]]
    with pytest.raises(BadInput):
        fragment_pieces(fragmented, 0)


class SimpleSample:
    """Just the fragment table fragment_pieces reads: `count` fragments of `points` points."""

    def __init__(self, count: int, points: int):
        self.name = "s"
        self.fragments = np.zeros((count, points), np.int64)


def test_report_json_validates_and_png_is_written(coded_stores, tmp_path):
    report = evaluate_model(Constant(1), META, str(coded_stores), ["scannet", "matterport3d"], label_set="union")
    path = write_report(report, tmp_path / "report.json")
    data = json.loads(path.read_text())
    validate(data, "eval_report", path)
    assert [r["dataset"] for r in data["results"]] == ["scannet", "matterport3d"]
    assert data["results"][1]["zero_shot"] is True and data["label_set"] == "union"
    assert len(data["results"][0]["confusion"]["matrix"][0]) == 21  # 20 classes + outside

    png = save_confusion_png(report.result("scannet"), tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    norm = row_normalised(report.result("scannet").confusion)
    assert np.allclose(norm.sum(axis=1)[label_counts(coded_stores, "scannet") > 0], 1.0)


def test_input_errors_are_one_line_user_errors(coded_stores, tmp_path):
    with pytest.raises(BadInput, match="unknown dataset"):
        evaluate_model(Constant(0), META, str(coded_stores), ["nonsense"])
    with pytest.raises(StoreError, match="no scene store for waymo"):
        evaluate_model(Constant(0), META, str(coded_stores), ["waymo"])
    with pytest.raises(StoreError, match="no split 'test'"):
        evaluate_model(Constant(0), META, str(coded_stores), ["scannet"], split="test")
    with pytest.raises(BadInput, match="text encoder 'minilm'.*trained with 'clip'"):
        evaluate_model(Constant(0), {**META, "text_encoder": "clip"}, str(coded_stores), ["scannet"])
    with pytest.raises(BadInput, match="--label-set"):
        evaluate_model(Constant(0), META, str(coded_stores), ["scannet"], label_set="all")
    with pytest.raises(MissingFile, match="checkpoint not found"):
        evaluate(tmp_path / "missing.pt", str(coded_stores))


def test_union_vocabulary_must_come_from_the_stores_encoder_weights(coded_stores, monkeypatch):
    other = UnionVocabulary(("wall",), np.ones((1, 384), np.float32), "minilm:other-weights")
    monkeypatch.setattr("pmoe_core.engine.evaluate.union_vocabulary", lambda encoder, weights: other)
    with pytest.raises(BadInput, match="union vocabulary was embedded by minilm:other-weights"):
        evaluate_model(Constant(0), META, str(coded_stores), ["scannet"], label_set="union")


def test_ppt_gets_its_dataset_and_refuses_datasets_without_norms(coded_stores):
    torch.manual_seed(0)
    ppt = build_model(get_config("ppt-tiny"), dataset_names=("scannet", "semantickitti"), text_dim=384).eval()
    report = evaluate_model(ppt, META, str(coded_stores), ["scannet"], limit=1)
    assert report.dataset_id_given and report.result("scannet").points > 0
    with pytest.raises(BadInput, match="label-free .*matterport3d.*PDNorm"):
        evaluate_model(ppt, META, str(coded_stores), ["matterport3d"], label_set="union")


@pytest.fixture(scope="module")
def trained(tiny_stores, tmp_path_factory) -> tuple[Path, Path]:
    """A pmoe-tiny checkpoint trained 30 steps on the conftest stores, plus a data folder that adds an unseen
    Matterport3D store beside them."""
    run = tmp_path_factory.mktemp("eval-run")
    result = train(TrainConfig(data=str(tiny_stores), datasets=("scannet", "semantickitti"), out=str(run / "run"),
                               steps=30, batch_size=2, workers=0, preset="pmoe-tiny", log_every=10, ckpt_every=1000,
                               tensorboard=False), echo=lambda line: None)
    data = run / "data"
    data.mkdir()
    for name in ("scannet", "semantickitti"):
        (data / f"{name}.zarr").symlink_to(tiny_stores / f"{name}.zarr", target_is_directory=True)
    write_store(data, "matterport3d", lambda rng, name: relabel(room(rng, name), "matterport3d"),
                train=0, val=2, seed=2)
    return result.checkpoint, data


@pytest.mark.slow
def test_trained_checkpoint_beats_chance_and_flags_unseen_datasets(trained):
    checkpoint, data = trained
    report = evaluate(checkpoint, str(data), ["scannet", "kitti", "matterport3d"])
    assert report.trained_on == ("scannet", "semantickitti") and report.step == 30
    for r in report.results:
        assert r.zero_shot == (r.dataset == "matterport3d")
        assert r.points == StoreReader(str(data / f"{r.dataset}.zarr")).num_points("val")
    for name in ("scannet", "semantickitti"):
        r = report.result(name)
        chance = 1 / len(r.classes)  # uniform guessing over the label space
        assert r.all_acc > 5 * chance, (name, r.all_acc)
    kitti = report.result("semantickitti")  # three classes, none above 40% of the points
    assert kitti.all_acc > 0.6 and sum(c.iou for c in kitti.classes if c.support) / 3 > 0.4

    union = evaluate(checkpoint, str(data), ["semantickitti"], label_set="union")
    r = union.result("semantickitti")
    assert r.outside_points is not None and r.points == kitti.points
    assert r.labelled_points == kitti.labelled_points
