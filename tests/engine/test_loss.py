"""The training loss: Lovász-softmax against its definition, per-dataset averaging, own-label-space scoring."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from pmoe_core.data.collate import SegTargets
from pmoe_core.engine.loss import LossConfig, label_space_loss, lovasz_softmax


def jaccard_loss(error_set: set[int], gt: set[int]) -> float:
    """The set function the Lovász extension extends: |M| / |gt ∪ M| (0 for the empty error set)."""
    return len(error_set) / len(gt | error_set) if error_set else 0.0


def lovasz_extension_brute(errors: list[float], gt: set[int]) -> float:
    """max over every ordering of the points of sum_i e_(i) (Δ(first i) - Δ(first i-1)): for a submodular Δ (the
    Jaccard loss is) this maximum is the Lovász extension (Edmonds' greedy theorem); no sort is trusted."""
    best = -1.0
    for order in itertools.permutations(range(len(errors))):
        total, prev = 0.0, 0.0
        for i in range(len(order)):
            cur = jaccard_loss(set(order[: i + 1]), gt)
            total += errors[order[i]] * (cur - prev)
            prev = cur
        best = max(best, total)
    return best


def lovasz_brute(probs: torch.Tensor, labels: torch.Tensor) -> float:
    classes = sorted(set(labels.tolist()))
    values = []
    for c in classes:
        gt = {i for i, y in enumerate(labels.tolist()) if y == c}
        errors = [abs(float(i in gt) - float(probs[i, c])) for i in range(len(labels))]
        values.append(lovasz_extension_brute(errors, gt))
    return sum(values) / len(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_matches_brute_force_extension(seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.randn(6, 4, generator=g).softmax(dim=1)
    labels = torch.tensor([0, 2, 2, 3, 0, 2])  # class 1 absent: left out of the mean, as in the release
    assert float(lovasz_softmax(probs, labels)) == pytest.approx(lovasz_brute(probs, labels), abs=1e-6)


def test_lovasz_of_hard_predictions_is_one_minus_iou():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    pred = torch.tensor([0, 1, 0, 1, 2, 2, 2, 0, 2, 1])  # class 3 present but never predicted: IoU 0
    probs = F.one_hot(pred, 4).float()
    ious = []
    for c in labels.unique().tolist():
        inter = int(((labels == c) & (pred == c)).sum())
        union = int(((labels == c) | (pred == c)).sum())
        ious.append(inter / union)
    expected = 1 - sum(ious) / len(ious)
    assert expected > 0.3  # a case where the loss is far from 0 and 1
    assert float(lovasz_softmax(probs, labels)) == pytest.approx(expected, abs=1e-6)
    assert float(lovasz_softmax(F.one_hot(labels, 4).float(), labels)) == pytest.approx(0.0, abs=1e-7)


def test_lovasz_has_a_gradient():
    logits = torch.randn(50, 5, requires_grad=True)
    labels = torch.randint(0, 5, (50,))
    lovasz_softmax(logits.softmax(1), labels).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def _targets(segment: torch.Tensor, datasets: tuple[str, ...], spaces: dict[str, int]) -> SegTargets:
    offsets = dict(zip(spaces, torch.tensor([0, *spaces.values()]).cumsum(0).tolist()))
    return SegTargets(segment=segment, datasets=datasets, names=tuple(f"s{i}" for i in range(len(datasets))),
                      num_classes=torch.tensor([spaces[d] for d in datasets]),
                      class_offset=torch.tensor([offsets[d] for d in datasets]))


def _batch(sizes: list[int], datasets: tuple[str, ...], spaces: dict[str, int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    total = sum(spaces.values())
    batch_index = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    segment = torch.cat([torch.randint(0, spaces[d], (n,), generator=g) for n, d in zip(sizes, datasets)])
    logits = torch.randn(sum(sizes), total, generator=g) * 3
    return logits, _targets(segment, datasets, spaces), batch_index


SPACES = {"scannet": 5, "semantickitti": 3}


def test_each_dataset_weighs_equally_whatever_its_point_count():
    sizes, datasets = [2000, 1000, 12], ("scannet", "scannet", "semantickitti")
    logits, targets, bi = _batch(sizes, datasets, SPACES)
    both = label_space_loss(logits, targets, bi)
    a = label_space_loss(logits[:3000], _targets(targets.segment[:3000], datasets[:2], SPACES), bi[:3000])
    b = label_space_loss(logits[3000:], _targets(targets.segment[3000:], datasets[2:], SPACES), bi[3000:] * 0)
    assert float(both) == pytest.approx((float(a) + float(b)) / 2, rel=1e-6)
    # the pooled loss is dominated by the 3000 ScanNet points; the per-dataset one is not
    pooled = label_space_loss(logits, targets, bi, LossConfig(per_dataset=False))
    assert abs(float(pooled) - float(a)) < abs(float(both) - float(a))
    # and the 12 KITTI points get half of the gradient mass
    logits.requires_grad_(True)
    label_space_loss(logits, targets, bi).backward()
    kitti = logits.grad[3000:].abs().sum()
    assert float(kitti / logits.grad.abs().sum()) > 0.3


def test_terms_are_cross_entropy_plus_lovasz_over_own_classes():
    logits, targets, bi = _batch([40], ("semantickitti",), SPACES, seed=3)
    own = logits[:, 5:8]
    expected = F.cross_entropy(own, targets.segment) + lovasz_softmax(own.softmax(1), targets.segment)
    assert float(label_space_loss(logits, targets, bi)) == pytest.approx(float(expected), rel=1e-6)
    ce_only = LossConfig(lovasz_weight=0.0)
    assert float(label_space_loss(logits, targets, bi, ce_only)) == pytest.approx(
        float(F.cross_entropy(own, targets.segment)), rel=1e-6)
    # columns of other label spaces never matter
    shuffled = logits.clone()
    shuffled[:, :5] = 1e4
    assert float(label_space_loss(shuffled, targets, bi)) == pytest.approx(float(expected), rel=1e-6)


def test_ignored_points_and_all_ignore_batches():
    logits, targets, bi = _batch([30, 20], ("scannet", "semantickitti"), SPACES, seed=4)
    targets.segment[30:] = -1  # the KITTI sample is unlabelled: only ScanNet counts
    alone = label_space_loss(logits[:30], _targets(targets.segment[:30], ("scannet",), SPACES), bi[:30])
    assert float(label_space_loss(logits, targets, bi)) == pytest.approx(float(alone), rel=1e-6)
    targets.segment[:] = -1
    logits.requires_grad_(True)
    zero = label_space_loss(logits, targets, bi)
    assert float(zero.detach()) == 0.0 and zero.requires_grad
