"""Losses against naive per-point versions; metrics against hand-computed confusion matrices."""

import itertools
import math

import numpy as np
import pytest
import torch

from pcseg.losses import CrossEntropy, Dice, Focal, LovaszSoftmax, Tversky, WeightedSum
from pcseg.metrics import average_precision, confusion_matrix, scores


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 30, 4, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 30), generator=g)
    target[0, :3] = 255
    return logits, target


def _kept(logits, target):
    flat_l, flat_t = logits.reshape(-1, 4), target.reshape(-1)
    return [(flat_l[i], int(flat_t[i])) for i in range(len(flat_t)) if flat_t[i] != 255]


def _softmax(row):
    e = [math.exp(v) for v in row.tolist()]
    return [v / sum(e) for v in e]


def test_cross_entropy_and_focal_naive(batch):
    logits, target = batch
    w = [1.0, 2.0, 0.5, 1.5]
    rows = _kept(logits, target)
    ce = sum(-w[t] * math.log(_softmax(l)[t]) for l, t in rows) / sum(w[t] for _, t in rows)
    assert CrossEntropy(weight=w)(logits, target).item() == pytest.approx(ce, rel=1e-9)
    focal = sum(-w[t] * (1 - _softmax(l)[t]) ** 2 * math.log(_softmax(l)[t]) for l, t in rows) / len(rows)
    assert Focal(gamma=2, weight=w)(logits, target).item() == pytest.approx(focal, rel=1e-9)


@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 0.7)])
def test_tversky_and_dice_naive(batch, alpha, beta):
    logits, target = batch
    rows = _kept(logits, target)
    total = 0.0
    for c in range(4):
        tp = sum(_softmax(l)[c] * (t == c) for l, t in rows)
        fp = sum(_softmax(l)[c] * (t != c) for l, t in rows)
        fn = sum((1 - _softmax(l)[c]) * (t == c) for l, t in rows)
        total += (tp + 1) / (tp + alpha * fp + beta * fn + 1)
    expected = 1 - total / 4
    assert Tversky(alpha, beta)(logits, target).item() == pytest.approx(expected, rel=1e-9)
    if alpha == beta == 0.5:
        assert Dice()(logits, target).item() == pytest.approx(expected, rel=1e-9)


def _lovasz_naive(errors, fg):
    """Lovász extension by its definition: sum over the greedy chain of the Jaccard-loss increments."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    F = {i for i in range(len(fg)) if fg[i]}

    def jaccard_loss(mistakes):
        return len(mistakes) / len(F | mistakes) if (F | mistakes) else 0.0

    total, chosen = 0.0, set()
    for i in order:
        before = jaccard_loss(chosen)
        chosen = chosen | {i}
        total += errors[i] * (jaccard_loss(chosen) - before)
    return total


def test_lovasz_softmax_naive(batch):
    logits, target = batch
    rows = _kept(logits, target)
    present = sorted({t for _, t in rows})
    per_class = []
    for c in present:
        fg = [t == c for _, t in rows]
        errors = [abs(float(f) - _softmax(l)[c]) for (l, _), f in zip(rows, fg)]
        per_class.append(_lovasz_naive(errors, fg))
    expected = sum(per_class) / len(per_class)
    assert LovaszSoftmax()(logits, target).item() == pytest.approx(expected, rel=1e-7)


def test_perfect_predictions_cost_nothing():
    target = torch.tensor([0, 1, 2, 2, 1])
    logits = torch.nn.functional.one_hot(target, 3).double() * 50
    assert LovaszSoftmax()(logits, target).item() == pytest.approx(0, abs=1e-9)
    assert Dice()(logits, target).item() == pytest.approx(0, abs=1e-9)


def test_weighted_sum(batch):
    logits, target = batch
    loss = WeightedSum([{"name": "cross_entropy", "weight": 1.0, "class_weights": True},
                        {"name": "lovasz", "weight": 0.5}], class_weights=[1, 2, 1, 1])
    expected = CrossEntropy(weight=[1, 2, 1, 1])(logits, target) + 0.5 * LovaszSoftmax()(logits, target)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-9)
    with pytest.raises(ValueError, match="unknown loss"):
        WeightedSum([{"name": "hinge"}])
    logits.requires_grad_(True)
    loss(logits, target).backward()
    assert logits.grad.abs().sum() > 0


def test_confusion_and_scores_by_hand():
    target = np.array([0, 0, 0, 1, 1, 2, 255])
    pred = np.array([0, 0, 1, 1, 2, 2, 0])
    cm = confusion_matrix(target, pred, 4)
    np.testing.assert_array_equal(cm[:3, :3], [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert cm[3].sum() == cm[:, 3].sum() == 0
    s = scores(cm)
    assert s["OA"] == pytest.approx(4 / 6)
    assert s["mAcc"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    iou = [2 / 3, 1 / 3, 1 / 2]
    assert s["IoU"][:3] == pytest.approx(iou) and math.isnan(s["IoU"][3])
    assert s["mIoU"] == pytest.approx(sum(iou) / 3)
    assert s["fwIoU"] == pytest.approx(3 / 6 * iou[0] + 2 / 6 * iou[1] + 1 / 6 * iou[2])
    assert s["precision"][:3] == pytest.approx([1.0, 0.5, 0.5])
    assert s["F1"][1] == pytest.approx(2 * 1 / (2 + 2))
    with pytest.raises(ValueError):
        confusion_matrix(np.array([5]), np.array([0]), 4)


def test_average_precision_by_hand():
    target = np.array([1, 0, 1, 0])
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    ap = average_precision(target, probs)
    # class 1 ranking: points 0 (hit), 1, 3, 2 (hit): precisions 1/1 and 2/4
    assert ap[1] == pytest.approx((1 + 0.5) / 2)
    # class 0 ranking: points 2, 3 (hit), 1 (hit), 0: precisions 1/2, 2/3
    assert ap[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert math.isnan(average_precision(np.array([0, 0]), np.array([[1.0, 0.0], [1.0, 0.0]]))[1])
