"""Segmentation metrics, all from one confusion matrix (rows: ground truth, columns: prediction).

Names are honest: OA is overall accuracy (correct points / all points); mAcc is the mean
of per-class recall; mIoU the mean of per-class IoU; fwIoU weights IoU by class frequency.
Means run over the classes that occur in the ground truth or the prediction; a class absent
from both has no defined IoU and is left out (reported as NaN).
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(target: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """(K, K) int64 counts; points whose target is ``ignore_index`` are left out."""
    target, pred = np.asarray(target).ravel(), np.asarray(pred).ravel()
    keep = target != ignore_index
    if ((target[keep] < 0) | (target[keep] >= num_classes)).any() or ((pred < 0) | (pred >= num_classes)).any():
        raise ValueError("labels outside 0..num_classes-1")
    flat = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(cm: np.ndarray) -> dict:
    """OA, mAcc, mIoU, fwIoU and per-class IoU / precision / recall / F1 from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    union = gt + pred - tp
    occurs = union > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(occurs, tp / union, np.nan)
        recall = np.where(gt > 0, tp / gt, np.nan)
        precision = np.where(pred > 0, tp / pred, np.nan)
        f1 = np.where(occurs, 2 * tp / (gt + pred), np.nan)
    total = cm.sum()
    return {
        "OA": float(tp.sum() / total) if total else float("nan"),
        "mAcc": float(np.nanmean(recall)) if (gt > 0).any() else float("nan"),
        "mIoU": float(np.nanmean(iou)) if occurs.any() else float("nan"),
        "fwIoU": float(np.nansum(gt / total * np.nan_to_num(iou))) if total else float("nan"),
        "IoU": iou.tolist(), "precision": precision.tolist(), "recall": recall.tolist(), "F1": f1.tolist(),
    }


def average_precision(target: np.ndarray, probs: np.ndarray, ignore_index: int = 255) -> list:
    """Per-class average precision of probabilities (P, K) against targets (P,).

    AP = mean of the precision at the rank of each true point when points are sorted by the
    class's probability (ties broken by point order); NaN for a class with no true point.
    """
    target = np.asarray(target).ravel()
    probs = np.asarray(probs).reshape(len(target), -1)
    keep = target != ignore_index
    target, probs = target[keep], probs[keep]
    out = []
    for c in range(probs.shape[1]):
        positive = target == c
        if not positive.any():
            out.append(float("nan"))
            continue
        order = np.argsort(-probs[:, c], kind="stable")
        hits = positive[order]
        precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out.append(float(precision_at[hits].mean()))
    return out


def finite_json(value):
    """``value`` (nested dicts, lists, numbers) with every NaN or infinity as None, so that
    ``json.dumps`` writes ``null`` (standard JSON) where a score is undefined."""
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value

