"""Models shipped inside the package (``pcseg/weights/<name>.pt``) and ``--model`` resolution.

``--model`` takes a bundled name (listed in ``pcseg/weights/README.md``), a checkpoint file,
or a training run directory (its ``best.pt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import PcsegError

WEIGHTS = Path(__file__).parent / "weights"
#: The model ``pcseg segment`` uses when ``--model`` is not given.
DEFAULT_MODEL = "acnn_real"


def bundled_models() -> list[str]:
    """Names of the checkpoints shipped in ``pcseg/weights``, sorted."""
    return sorted(p.stem for p in WEIGHTS.glob("*.pt"))


def resolve_model(name_or_path: Optional[str]) -> Path:
    """A checkpoint path from a bundled model name, a checkpoint file or a run directory.

    Raises :class:`PcsegError` naming the bundled models when nothing matches.
    """
    name_or_path = name_or_path or DEFAULT_MODEL
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise PcsegError(f"{path}: a folder without best.pt; pass a checkpoint file")
        return path / "best.pt"
    if path.is_file():
        return path
    if path.suffix == ".pt" or len(path.parts) > 1:
        raise PcsegError(f"{path}: checkpoint not found")
    bundled = WEIGHTS / f"{name_or_path}.pt"
    if bundled.is_file():
        return bundled
    available = ", ".join(bundled_models()) or "none is installed"
    raise PcsegError(f"no bundled model named {name_or_path!r} (bundled: {available}); "
                     f"pass a checkpoint with --model RUN_DIR/best.pt")
