"""Shared fixtures: the real scans beside the project, and deterministic seeds."""

import os
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_SCANS = PROJECT_ROOT.parent / "shared" / "real"
REAL_ROOMS = PROJECT_ROOT.parent / "shared" / "realrooms"

# Tests run on two cores shared with other work: keep kernels single-threaded
# unless a test asks otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def real_scans() -> Path:
    """Folder of real captures (``../shared/real``); skips the test when it is absent."""
    if not REAL_SCANS.is_dir():
        pytest.skip(f"real scans not found at {REAL_SCANS}")
    return REAL_SCANS


@pytest.fixture
def real_rooms() -> Path:
    """Folder of real labelled rooms (``../shared/realrooms``); skips the test when it is absent."""
    if not REAL_ROOMS.is_dir():
        pytest.skip(f"real labelled rooms not found at {REAL_ROOMS}")
    return REAL_ROOMS


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator, so failures reproduce."""
    return np.random.default_rng(1234)


def untrained_checkpoint(path: Path, stride: float = 0.5) -> Path:
    """An untrained PointNet (seed 0) saved as a checkpoint at ``path``: 256 points per 1 m block
    at ``stride`` metres, the 13 S3DIS classes, for tests that run inference fast."""
    import torch

    from pcseg.checkpoint import save_checkpoint
    from pcseg.classes import S3DIS_CLASSES
    from pcseg.models import build

    torch.manual_seed(0)
    model = build("pointnet", 13, 9)
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config,
                           "data": {"feature_set": "xyzrgbn", "num_points": 256, "block_size": 1.0, "stride": stride},
                           "class_names": list(S3DIS_CLASSES)})
    return path
