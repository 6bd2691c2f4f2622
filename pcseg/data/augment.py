"""Training augmentations of one block, applied to xyz (metres) and rgb (0-1 floats).

All are configurable through :class:`AugmentConfig` and draw from the generator given,
so a sample is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import MISSING_RGB


@dataclass
class AugmentConfig:
    """Which augmentations run, and how strongly (all off with ``AugmentConfig.none()``)."""

    rotate_z: bool = True            # uniform rotation about the vertical axis
    scale: tuple = (0.9, 1.1)        # per-axis uniform scale range; None to disable
    jitter_sigma: float = 0.005      # gaussian jitter, metres
    jitter_clip: float = 0.02        # jitter clipped to +- this, metres
    flip_p: float = 0.5              # probability of mirroring x, and independently y
    color_jitter: float = 0.05       # std of additive colour noise (0-1 scale)
    color_drop_p: float = 0.2        # probability that the block's colours become MISSING_RGB
    brightness: float = 0.0          # std of the block's log brightness gain (lighting); 0 = off
    white_balance: float = 0.0       # std of each channel's log gain (white balance); 0 = off

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(rotate_z=False, scale=None, jitter_sigma=0.0, jitter_clip=0.0, flip_p=0.0,
                   color_jitter=0.0, color_drop_p=0.0, brightness=0.0, white_balance=0.0)


def augment_block(xyz: np.ndarray, rgb: np.ndarray, center: np.ndarray, cfg: AugmentConfig,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Augment one block.

    Args:
        xyz: (n, 3) float32 metres; the geometric transforms act about ``center`` (2,) in x, y
            and leave z's origin alone, so the floor stays at its height.
        rgb: (n, 3) float32 in [0, 1].
    Returns new (xyz, rgb) arrays.
    """
    xyz = np.array(xyz, dtype=np.float32)
    rgb = np.array(rgb, dtype=np.float32)
    local = xyz[:, :2] - center
    if cfg.rotate_z:
        a = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        local = local @ np.array([[c, s], [-s, c]], dtype=np.float32)
    if cfg.flip_p:
        signs = np.where(rng.random(2) < cfg.flip_p, -1.0, 1.0).astype(np.float32)
        local = local * signs
    if cfg.scale is not None:
        factors = rng.uniform(cfg.scale[0], cfg.scale[1], 3).astype(np.float32)
        local = local * factors[:2]
        xyz[:, 2] = xyz[:, 2] * factors[2]
    xyz[:, :2] = local + center
    if cfg.jitter_sigma:
        noise = rng.normal(0, cfg.jitter_sigma, xyz.shape).clip(-cfg.jitter_clip, cfg.jitter_clip)
        xyz = xyz + noise.astype(np.float32)
    if cfg.color_drop_p and rng.random() < cfg.color_drop_p:
        rgb[:] = MISSING_RGB
    else:
        rgb = _recolour(rgb, cfg, rng)
    return xyz, rgb


def _recolour(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Another sensor's colours: a lighting gain on all channels, a white-balance gain per
    channel (both log-normal, one draw per block), then per-point noise; clipped to [0, 1].
    An augmentation that is off draws nothing, so older recipes keep their samples."""
    if cfg.brightness or cfg.white_balance:
        log_gain = rng.normal(0, cfg.brightness) + rng.normal(0, cfg.white_balance, 3)
        rgb = np.clip(rgb * np.exp(log_gain).astype(np.float32), 0, 1)
    if cfg.color_jitter:
        rgb = np.clip(rgb + rng.normal(0, cfg.color_jitter, rgb.shape).astype(np.float32), 0, 1)
    return rgb
