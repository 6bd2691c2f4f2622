"""Checkpoints: one dict per file, written atomically.

Keys: ``model`` (state_dict), ``model_config`` (``build(**model_config)`` rebuilds the
network), ``data`` (feature_set, num_points, block_size, stride and colours, False when the model
never reads colours: what inference needs),
``class_names``; training checkpoints add ``optimizer``, ``scheduler``, ``epoch``, ``step``,
``rng``, ``config`` and ``metrics``, and with ``train.ema_decay`` ``train_model`` (the raw
weights; ``model`` is then their moving average) and ``average_count`` (the steps averaged).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import PcsegError
from .fileutil import atomic_path
from .models import build

REQUIRED = ("model", "model_config", "data", "class_names")


def save_checkpoint(path: os.PathLike, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically (a killed write leaves the old file intact)."""
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {', '.join(missing)}")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: os.PathLike) -> dict:
    """Read a checkpoint dict; :class:`PcsegError` for a missing or foreign file.

    ``data.colours`` is filled in as True for checkpoints written before it existed (they read colours).
    """
    path = Path(path)
    if not path.is_file():
        raise PcsegError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        raise PcsegError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED):
        raise PcsegError(f"{path}: not a pcseg checkpoint")
    payload["data"] = {"colours": True, **payload["data"]}
    return payload


#: Tensors with at least this many elements are stored as float16 by :func:`export_checkpoint`
#: (weight matrices); smaller ones (batch-norm statistics, biases) stay float32.
HALF_MIN_ELEMENTS = 1024


def export_checkpoint(src: os.PathLike, dst: os.PathLike, half: bool = True, refine: bool | None = None) -> dict:
    """Write an inference-only copy of checkpoint ``src`` to ``dst`` (atomically).

    Keeps what ``pcseg segment`` and a model card need (weights, ``model_config``,
    ``data``, ``class_names``, the training ``config`` and ``metrics``); drops optimiser,
    scheduler and RNG states. With ``half``, weight matrices are stored as float16
    (:func:`load_model` turns them back into float32). ``refine`` true or false sets whether
    the model is run with flat-patch voting by default (``data.refine``; None keeps the
    checkpoint's). Returns the written payload.
    """
    payload = load_checkpoint(src)
    state = {k: v.half() if half and v.is_floating_point() and v.numel() >= HALF_MIN_ELEMENTS else v
             for k, v in payload["model"].items()}
    keep = {k: payload[k] for k in ("model_config", "data", "class_names", "config", "metrics") if k in payload}
    if refine is not None:
        keep["data"] = {**keep["data"], "refine": bool(refine)}
    exported = {"model": state, **keep}
    save_checkpoint(dst, exported)
    return exported


def float_state(payload: dict) -> dict:
    """The checkpoint's state_dict with float16 tensors (exported weights) back in float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}


def load_model(path: os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode on ``device``, checkpoint dict without the weights)."""
    payload = load_checkpoint(path)
    model = build(**payload["model_config"])
    model.load_state_dict(float_state(payload))
    meta = {k: v for k, v in payload.items() if k != "model"}
    return model.to(device).eval(), meta
