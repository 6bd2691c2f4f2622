"""Scoring every point of rooms with the same block voting as ``pcseg segment``."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..data.rooms import load_room
from ..infer import predict_probabilities
from ..metrics import average_precision, confusion_matrix, scores
from ..refine import model_refines, refine_probabilities


def evaluate_rooms(model: torch.nn.Module, root, entries, data: dict, num_classes: int,
                   device="cpu", batch_size: int = 16, votes: int = 1, refine: bool | None = None,
                   progress: bool = False, desc: str = "evaluate") -> dict:
    """Metrics over every point of ``entries`` (rooms of the cache at ``root``), each block
    seen ``votes`` times (see :mod:`pcseg.infer`) and, with ``refine`` (default: the model's
    ``data.refine``, else true), flat patches voted (:mod:`pcseg.refine`), as ``pcseg segment`` does.

    Returns :func:`pcseg.metrics.scores` plus ``AP`` (per class), ``confusion``, ``points``, and per
    class ``support`` (labelled points) and ``rooms_with_class`` (entries holding at least one of them),
    which say how much a class's IoU rests on. ``progress`` shows one bar over the rooms, named ``desc``.
    """
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    rooms_with_class = np.zeros(num_classes, dtype=np.int64)
    all_probs, all_targets = [], []
    for entry in tqdm(entries, desc=desc, unit="room", disable=not progress):
        room = load_room(root, entry)
        xyz = np.asarray(room.xyz)
        probs = predict_probabilities(model, xyz, np.asarray(room.rgb),
                                      feature_set=data["feature_set"], num_points=data["num_points"],
                                      block_size=data["block_size"], stride=data["stride"],
                                      batch_size=batch_size, device=device, votes=votes, progress=False,
                                      colours=data["colours"])
        if model_refines(data, refine):
            probs = refine_probabilities(xyz, probs)
        target = np.asarray(room.labels)
        room_cm = confusion_matrix(target, probs.argmax(1), num_classes)
        cm += room_cm
        rooms_with_class += room_cm.sum(axis=1) > 0
        step = max(1, len(target) // 20000)  # AP on a fixed subsample keeps memory bounded
        all_probs.append(probs[::step])
        all_targets.append(target[::step])
    result = scores(cm)
    result["AP"] = average_precision(np.concatenate(all_targets), np.concatenate(all_probs))
    result["confusion"] = cm.tolist()
    result["points"] = int(cm.sum())
    result["support"] = cm.sum(axis=1).tolist()
    result["rooms_with_class"] = rooms_with_class.tolist()
    return result


def format_table(result: dict, class_names, split: str) -> str:
    """A per-class table (scores in percent, then the labelled points and the rooms holding them)
    and the summary line, labelled with the split it comes from."""
    lines = [f"{split}: {result['points']:,} points",
             f"{'class':<12}{'IoU':>8}{'prec':>8}{'recall':>8}{'F1':>8}{'AP':>8}{'points':>10}{'rooms':>7}"]
    for i, name in enumerate(class_names):
        vals = [result[k][i] for k in ("IoU", "precision", "recall", "F1", "AP")]
        lines.append(f"{name:<12}" + "".join("     -  " if v != v else f"{100 * v:8.1f}" for v in vals)
                     + f"{result['support'][i]:>10,}{result['rooms_with_class'][i]:>7}")
    lines.append(f"{split}: OA {100 * result['OA']:.1f}  mAcc {100 * result['mAcc']:.1f}  "
                 f"mIoU {100 * result['mIoU']:.1f}  fwIoU {100 * result['fwIoU']:.1f}")
    return "\n".join(lines)
