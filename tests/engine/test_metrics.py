"""Our metrics vs independent re-implementations of the official evaluators' definitions."""

import numpy as np
import pytest
import torch

from pmoe_core.engine.metrics import ConfusionMatrix, SegMetrics, absent_policy


def semantickitti_api_miou(pred, gt, n_classes_with_ignore, ignore=(0,)):
    """semantic-kitti-api style: conf[pred, gt] incl. the ignore class 0, gt-ignore columns zeroed,
    IoU = tp / (tp + fp + fn + 1e-15) over included classes, absent classes count as 0."""
    conf = np.zeros((n_classes_with_ignore, n_classes_with_ignore), dtype=np.int64)
    for p, g in zip(pred, gt):
        conf[p, g] += 1
    conf = conf.astype(np.float64)
    for i in ignore:
        conf[:, i] = 0
    tp = np.diag(conf)
    fp = conf.sum(axis=1) - tp
    fn = conf.sum(axis=0) - tp
    include = [c for c in range(n_classes_with_ignore) if c not in ignore]
    iou = tp / (tp + fp + fn + 1e-15)
    return iou[include].mean(), iou[include]


def nuscenes_devkit_miou(pred, gt, n_classes_with_ignore, ignore_idx=0):
    """nuScenes lidarseg devkit style: points with gt == ignore dropped, confusion [gt, pred],
    IoU = tp / (tp + fp + fn) with nan for empty classes, mIoU = nanmean over non-ignore classes."""
    mask = gt != ignore_idx
    cm = np.zeros((n_classes_with_ignore, n_classes_with_ignore), dtype=np.int64)
    np.add.at(cm, (gt[mask], pred[mask]), 1)
    cm = np.delete(np.delete(cm, ignore_idx, 0), ignore_idx, 1)
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (cm.sum(0) + cm.sum(1) - tp)
    return np.nanmean(iou), iou


def _random_case(rng, classes, n, absent=()):
    gt = rng.integers(-1, classes, n)  # -1 = ignore
    pred = np.where(rng.random(n) < 0.6, np.clip(gt, 0, None), rng.integers(0, classes, n))
    for c in absent:  # make class c absent from both
        gt[gt == c] = -1
        pred[pred == c] = (c + 1) % classes
    return pred, gt


@pytest.mark.parametrize("absent", [(), (3, 7)])
def test_matches_semantickitti_api(absent):
    rng = np.random.default_rng(0)
    pred, gt = _random_case(rng, 19, 20000, absent)
    cm = ConfusionMatrix(19)
    for chunk in np.array_split(np.arange(pred.size), 5):  # accumulate over "scenes"
        cm.update(torch.from_numpy(pred[chunk]), torch.from_numpy(gt[chunk]))
    ours = cm.metrics(absent=absent_policy("semantickitti"))
    # The official API numbers its classes with 0 = ignore, so shift by one.
    ref_miou, ref_iou = semantickitti_api_miou(pred + 1, gt + 1, 20)
    assert ours.miou == pytest.approx(ref_miou, abs=1e-12)
    assert np.allclose([v or 0.0 for v in ours.iou], ref_iou, atol=1e-12)


@pytest.mark.parametrize("absent", [(), (0, 5)])
def test_matches_nuscenes_devkit(absent):
    rng = np.random.default_rng(1)
    pred, gt = _random_case(rng, 16, 20000, absent)
    cm = ConfusionMatrix(16)
    cm.update(torch.from_numpy(pred), torch.from_numpy(gt))
    ours = cm.metrics(absent=absent_policy("nuscenes"))
    ref_miou, ref_iou = nuscenes_devkit_miou(pred + 1, gt + 1, 17)
    assert ours.miou == pytest.approx(ref_miou, abs=1e-12)
    for mine, ref in zip(ours.iou, ref_iou):
        assert (mine is None and np.isnan(ref)) or mine == pytest.approx(ref, abs=1e-12)
    if absent:
        assert ours.iou[absent[0]] is None


def test_hand_computed_example():
    # gt:   0 0 1 1 2 -1 ; pred: 0 1 1 1 0 2
    conf = ConfusionMatrix(3)
    conf.update(torch.tensor([0, 1, 1, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, -1]))
    m = conf.metrics()
    # class 0: tp 1, fn 1, fp 1 -> 1/3 ; class 1: tp 2, fp 1 -> 2/3 ; class 2: tp 0, fn 1 -> 0
    assert m.iou == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert m.miou == pytest.approx(1 / 3)
    assert m.all_acc == pytest.approx(3 / 5)
    assert m.acc == pytest.approx([0.5, 1.0, 0.0])
    assert m.support == [2, 2, 1]


def test_rejects_out_of_range_prediction():
    with pytest.raises(ValueError):
        ConfusionMatrix(3).update(torch.tensor([3]), torch.tensor([0]))


def test_empty_confusion_is_zero_not_nan():
    m = SegMetrics.from_confusion(np.zeros((4, 4)))
    assert m.miou == 0.0 and m.all_acc == 0.0
