"""The per-class summary of a labelled cloud: points, share and mean confidence per class."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .classes import UNLABELLED


def class_summary(labels: np.ndarray, class_names: Sequence[str], confidence: Optional[np.ndarray] = None) -> str:
    """A table of the classes present: name, points, share and, with ``confidence`` (N,), the mean
    confidence of the class's points; unlabelled points last."""
    labels = np.asarray(labels)
    labelled = labels != UNLABELLED
    counts = np.bincount(labels[labelled], minlength=len(class_names))
    sums = None if confidence is None else np.bincount(labels[labelled], np.asarray(confidence)[labelled],
                                                       minlength=len(class_names))
    total = len(labels)
    rows = [(class_names[i], int(c), None if sums is None else sums[i] / c) for i, c in enumerate(counts) if c]
    rows.sort(key=lambda r: -r[1])
    unlabelled = int((~labelled).sum())
    if unlabelled:
        rows.append(("unlabelled", unlabelled, None))
    width = max([len(n) for n, _, _ in rows] + [5])
    header = f"{'class':<{width}}  {'points':>12}  {'share':>7}" + ("" if sums is None else "  confidence")
    lines = [header]
    for name, count, mean in rows:
        line = f"{name:<{width}}  {count:>12,}  {100 * count / total:6.1f}%"
        lines.append(line if mean is None else f"{line}  {mean:10.2f}")
    footer = f"{'total':<{width}}  {total:>12,}"
    if sums is not None and labelled.any():
        footer += f"  {'':>7}  {sums.sum() / labelled.sum():10.2f}"
    lines.append(footer)
    return "\n".join(lines)
