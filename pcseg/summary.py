"""The per-class summary of a labelled cloud: points and share per class."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .classes import UNLABELLED


def class_summary(labels: np.ndarray, class_names: Sequence[str]) -> str:
    """A table of the classes present: name, points, share; unlabelled points last."""
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels != UNLABELLED], minlength=len(class_names))
    total = len(labels)
    rows = [(class_names[i], int(c)) for i, c in enumerate(counts) if c]
    rows.sort(key=lambda r: -r[1])
    unlabelled = int((labels == UNLABELLED).sum())
    if unlabelled:
        rows.append(("unlabelled", unlabelled))
    width = max([len(n) for n, _ in rows] + [5])
    lines = [f"{'class':<{width}}  {'points':>12}  {'share':>7}"]
    lines += [f"{name:<{width}}  {count:>12,}  {100 * count / total:6.1f}%" for name, count in rows]
    lines.append(f"{'total':<{width}}  {total:>12,}")
    return "\n".join(lines)
