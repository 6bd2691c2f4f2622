"""PNG plots of a run: loss and mIoU curves, the confusion matrix (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(records: list[dict], path: Path) -> None:
    """Training loss per epoch and validation mIoU (when present) to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in records], marker="o")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss (train)")
    val = [(r["epoch"], r["val"]["mIoU"]) for r in records if r.get("val")]
    if val:
        ax2.plot(*zip(*val), marker="o", color="tab:green")
    ax2.set(xlabel="epoch", ylabel="mIoU", title="mIoU (validation, every point)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_confusion(cm, class_names, path: Path, split: str) -> None:
    """Row-normalised confusion matrix (ground truth rows) to ``path``, each cell's percentage
    written in it, with a colour bar; ``split`` names the data and epoch in the title."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the class's points")
    for (row, col), share in np.ndenumerate(norm):
        if cm[row, col] > 0:
            ax.text(col, row, f"{100 * share:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if share > 0.5 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="ground truth", title=f"confusion ({split}, row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
