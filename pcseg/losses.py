"""Segmentation losses for points: cross-entropy, focal, Dice, Tversky, Lovász-softmax, and
weighted sums of them.

Every loss takes logits (P, K) and targets (P,) int64 with ``ignore_index`` (255) marking
points that do not count; batched inputs (B, N, K) / (B, N) are flattened first.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .classes import UNLABELLED


def _flatten(logits: torch.Tensor, target: torch.Tensor, ignore_index: int):
    logits = logits.reshape(-1, logits.shape[-1])
    target = target.reshape(-1)
    keep = target != ignore_index
    return logits[keep], target[keep]


class CrossEntropy(nn.Module):
    """Cross-entropy with optional class weights (K,), averaged as torch does (weighted mean)."""

    def __init__(self, weight: Optional[Sequence[float]] = None, ignore_index: int = UNLABELLED):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        logits, target = _flatten(logits, target, self.ignore_index)
        w = None if self.weight is None else self.weight.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=w)


class Focal(nn.Module):
    """Focal loss (Lin et al. 2017): mean of ``-alpha_t (1 - p_t)^gamma log p_t``."""

    def __init__(self, gamma: float = 2.0, weight: Optional[Sequence[float]] = None,
                 ignore_index: int = UNLABELLED):
        super().__init__()
        self.gamma, self.ignore_index = gamma, ignore_index
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits, target):
        logits, target = _flatten(logits, target, self.ignore_index)
        log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
        loss = -(1 - log_p.exp()).pow(self.gamma) * log_p
        if self.weight is not None:
            loss = loss * self.weight.to(loss.dtype)[target]
        return loss.mean() if len(loss) else logits.sum() * 0


class Tversky(nn.Module):
    """Soft Tversky loss: ``1 - mean_c TP / (TP + alpha FP + beta FN)`` over the classes present
    in the target or the prediction; alpha = beta = 0.5 is the soft Dice loss."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0,
                 ignore_index: int = UNLABELLED):
        super().__init__()
        self.alpha, self.beta, self.smooth, self.ignore_index = alpha, beta, smooth, ignore_index

    def forward(self, logits, target):
        logits, target = _flatten(logits, target, self.ignore_index)
        probs = logits.softmax(dim=-1)
        onehot = F.one_hot(target, logits.shape[-1]).to(probs.dtype)
        tp = (probs * onehot).sum(0)
        fp = (probs * (1 - onehot)).sum(0)
        fn = ((1 - probs) * onehot).sum(0)
        score = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return 1 - score.mean()


class Dice(Tversky):
    """Soft Dice loss (Tversky with alpha = beta = 0.5)."""

    def __init__(self, smooth: float = 1.0, ignore_index: int = UNLABELLED):
        super().__init__(0.5, 0.5, smooth, ignore_index)


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss for errors sorted descending."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


class LovaszSoftmax(nn.Module):
    """Lovász-softmax loss (Berman et al. 2018): mean over classes present in the target of the
    Lovász extension of the Jaccard loss of the errors ``|1[y = c] - p_c|``."""

    def __init__(self, ignore_index: int = UNLABELLED):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        logits, target = _flatten(logits, target, self.ignore_index)
        probs = logits.softmax(dim=-1)
        losses = []
        for c in torch.unique(target).tolist():
            fg = (target == c).to(probs.dtype)
            errors = (fg - probs[:, c]).abs()
            errors_sorted, perm = torch.sort(errors, descending=True)
            losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
        return torch.stack(losses).mean() if losses else logits.sum() * 0


LOSSES = {"cross_entropy": CrossEntropy, "focal": Focal, "dice": Dice, "tversky": Tversky,
          "lovasz": LovaszSoftmax}


class WeightedSum(nn.Module):
    """``sum_i weight_i * loss_i``; built from a config list of ``{name, weight, **options}``."""

    def __init__(self, terms: Sequence[dict], class_weights: Optional[Sequence[float]] = None,
                 ignore_index: int = UNLABELLED):
        super().__init__()
        if not terms:
            raise ValueError("a loss needs at least one term")
        self.weights, losses = [], []
        for term in terms:
            term = dict(term)
            name, weight = term.pop("name"), float(term.pop("weight", 1.0))
            if name not in LOSSES:
                raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
            if term.pop("class_weights", False) and name in ("cross_entropy", "focal"):
                term["weight"] = class_weights
            losses.append(LOSSES[name](ignore_index=ignore_index, **term))
            self.weights.append(weight)
        self.losses = nn.ModuleList(losses)

    def forward(self, logits, target):
        return sum(w * loss(logits, target) for w, loss in zip(self.weights, self.losses))
