"""The prediction core: eval's voting on any cloud, tiles that cover every point once, any label set, sanity checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from support_loader import inspect_support

from pmoe_core.data.recipes import RecipeConfig
from pmoe_core.data.sample import Sample
from pmoe_core.engine.predict import (
    PredictOptions,
    cloud_warnings,
    load_predictor,
    plan_tiles,
    predict,
    tile_points,
)
from pmoe_core.engine.predict_labels import parse_class_names, resolve_labels
from pmoe_core.engine.tta import View
from pmoe_core.engine.voting import vote_scenes
from pmoe_core.errors import BadInput, FormatError
from pmoe_core.io import read_point_cloud
from pmoe_core.scene import Scene
from pmoe_core.store import StoreReader

pytestmark = pytest.mark.slow  # shares the session's trained checkpoint (about 30 s to train when run alone)
KITTI_SCAN = Path("semantickitti") / "sequences" / "00" / "velodyne" / "000000.bin"


@pytest.fixture(scope="module")
def predictor(tiny_stores, tmp_path_factory):
    ckpt = inspect_support().checkpoints(tiny_stores, tmp_path_factory.mktemp("predict-ckpts")).pmoe
    return load_predictor(ckpt, device="cpu")


@pytest.fixture(scope="module")
def room(tiny_stores):
    return StoreReader(str(tiny_stores / "scannet.zarr")).read("val", 0)


def test_one_tile_labels_exactly_as_eval_votes(predictor, room, tiny_stores):
    """Same fragments, same summed softmax: the argmax of eval's votes, and confidence = its share of the votes."""
    pred = predict(predictor, room.coord, room.color, room.normal, label_set="scannet")
    store = StoreReader(str(tiny_stores / "scannet.zarr"))
    votes = vote_scenes(predictor.model, [Sample.from_scene(room, "scannet")], [View()], RecipeConfig(),
                        torch.from_numpy(np.asarray(store.class_embeddings, np.float32)), "scannet")
    assert pred.tiles == 1 and pred.domain == "indoor" and pred.grid_size == 0.02
    assert np.array_equal(pred.labels, votes.argmax(dim=1).numpy())
    share = (votes.max(dim=1).values / votes.sum(dim=1)).numpy()
    assert np.allclose(pred.confidence, share, atol=1e-6)
    assert pred.labels.dtype == np.int32 and pred.confidence.dtype == np.float32
    assert pred.classes == tuple(store.class_names) and pred.untrained == ()
    assert (pred.counts().sum(), len(pred.counts())) == (len(room), 20)


def test_tiles_partition_the_cloud_and_agree_with_one_pass(predictor, room):
    whole = predict(predictor, room.coord, room.color, room.normal, label_set="scannet")
    tiled = predict(predictor, room.coord, room.color, room.normal, label_set="scannet",
                    options=PredictOptions(tile_points=700))
    assert tiled.tiles >= 4 and (tiled.labels >= 0).all()
    assert (tiled.labels == whole.labels).mean() > 0.95  # context margins: tile borders barely matter
    boxes = plan_tiles(room.coord, 700)
    owner = np.zeros(len(room), int)
    for box in boxes:
        core, points = tile_points(room.coord, box, 0.5, 0.02, whole=False)
        owner[core] += 1
        assert np.array_equal(points[: core.size], core) and core.size <= 1.3 * 700
        context = points[core.size:]  # one point per voxel, none of them the tile's own
        assert not np.isin(context, core).any()
    assert (owner == 1).all()


def test_tiles_of_a_cloud_that_cannot_be_split_stay_whole():
    coord = np.zeros((50, 3), np.float32)
    coord[:, 2] = np.arange(50)
    assert len(plan_tiles(coord, 10)) == 1


def test_typed_names_outside_every_benchmark(predictor, room, tiny_stores):
    names = ["Wall", "floor", "potted plant", "skateboard ramp"]
    pred = predict(predictor, room.coord, room.color, room.normal, classes=names)
    assert pred.classes == tuple(names) and pred.untrained == ("potted plant", "skateboard ramp")
    labels = resolve_labels(predictor.meta, classes=names)
    assert labels.prompts == ("wall", "floor", "potted plant", "skateboard ramp")
    store = StoreReader(str(tiny_stores / "scannet.zarr"))
    wall = list(store.class_names).index("wall")  # a trained name is embedded exactly as training embedded it
    assert np.allclose(labels.embeddings[0].numpy(), store.class_embeddings[wall], atol=1e-6)
    assert set(np.unique(pred.labels)) <= {0, 1, 2, 3} and (pred.counts() > 0).sum() >= 2


def test_union_and_an_untrained_benchmark(predictor):
    union = resolve_labels(predictor.meta, "union")
    assert union.kind == "union" and "wall" in union.names and "car" in union.names
    assert "wall" not in union.untrained and len(union.untrained) > 0  # e.g. waymo/nuscenes-only entries
    waymo = resolve_labels(predictor.meta, "waymo")
    assert waymo.kind == "dataset" and waymo.dataset == "waymo" and "car" not in waymo.untrained


def test_real_semantickitti_scan_every_point_labelled(predictor, real_fixtures):
    scan = real_fixtures / KITTI_SCAN
    if not scan.is_file():
        pytest.skip(f"real SemanticKITTI scan not found at {scan}")
    scene = read_point_cloud(scan)
    pred = predict(predictor, scene.coord, strength=scene.strength, label_set="semantickitti")
    assert len(pred.labels) == len(scene) == 50
    assert pred.domain == "outdoor" and pred.grid_size == 0.05 and pred.warnings == []
    assert ((pred.labels >= 0) & (pred.labels < 19)).all()
    assert ((pred.confidence > 1 / 19 - 1e-6) & (pred.confidence <= 1 + 1e-6)).all()


def test_sanity_errors_and_warnings(predictor, room):
    with pytest.raises(BadInput, match="has 1 point; predict needs at least 2"):
        predict(predictor, room.coord[:1], label_set="scannet")
    with pytest.raises(FormatError, match="no points"):
        predict(predictor, room.coord[:0], label_set="scannet")
    # scale warnings are checked on the cloud alone: millimetre clouds are slow to score (a huge voxel extent)
    mm = cloud_warnings(Scene("mm", room.coord * 1000, room.color), "indoor", predictor)
    assert len(mm) == 1 and "looks like millimetres" in mm[0]
    assert cloud_warnings(Scene("street", room.coord * 1000, room.color), "outdoor", predictor) == []  # 4 km: fine
    km = cloud_warnings(Scene("km", room.coord / 1000, room.color), "indoor", predictor)
    assert len(km) == 1 and "looks like kilometres" in km[0]
    assert cloud_warnings(room, "indoor", predictor) == []
    grey = predict(predictor, room.coord, label_set="scannet", options=PredictOptions(domain="indoor"))
    assert len(grey.warnings) == 1 and "no colour" in grey.warnings[0] and "scannet" in grey.warnings[0]
    with pytest.raises(BadInput, match="--domain"):
        predict(predictor, room.coord, label_set="scannet", options=PredictOptions(domain="underwater"))


def test_class_name_lists_and_encoder_check(predictor):
    assert parse_class_names("chair, table,\n# comment\npotted  plant\n") == ["chair", "table", "potted plant"]
    with pytest.raises(BadInput, match="at least two"):
        parse_class_names("chair")
    with pytest.raises(BadInput, match="given twice"):
        parse_class_names("chair, Chair")
    with pytest.raises(BadInput, match="not both"):
        resolve_labels(predictor.meta, "scannet", ["a", "b"])
    wrong = predictor.trained_vectors.copy()
    wrong[0] = -wrong[0]
    with pytest.raises(BadInput, match="does not reproduce the class vectors"):
        resolve_labels(predictor.meta, "scannet", trained_vectors=wrong)


def test_package_level_api_takes_a_checkpoint_path(predictor, room):
    import pmoe_core

    pred = pmoe_core.predict(predictor.checkpoint, room.coord, room.color, room.normal, classes=["wall", "floor"],
                             device="cpu")
    assert isinstance(pred, pmoe_core.Prediction) and pred.classes == ("wall", "floor")
    assert pred.labels.shape == (len(room),) and set(np.unique(pred.labels)) <= {0, 1}


def test_a_voxel_crowded_with_duplicates_is_scored_by_capped_fragments(predictor, room):
    """20,000 copies of one point (zero returns at a sensor) add no fragments beyond the cap: every copy is labelled
    with its voxel-mates' votes, and the rest of the room keeps the labels it gets without the copies."""
    from pmoe_core.data.grid import MAX_FRAGMENTS

    copies = 20_000
    assert copies > MAX_FRAGMENTS
    coord = np.concatenate([room.coord, np.repeat(room.coord[:1], copies, axis=0)])
    color = np.concatenate([room.color, np.repeat(room.color[:1], copies, axis=0)])
    normal = np.concatenate([room.normal, np.repeat(room.normal[:1], copies, axis=0)])
    pred = predict(predictor, coord, color, normal, label_set="scannet")
    assert pred.labels.shape == (len(coord),) and (pred.confidence > 0).all()
    duplicated = pred.labels[len(room.coord):]
    assert (duplicated == pred.labels[0]).all()
