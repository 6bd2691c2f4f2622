"""Models shipped inside the package (``pcseg/weights/<name>.pt``) and ``--model`` resolution."""

from __future__ import annotations

from pathlib import Path

from .errors import PcsegError

WEIGHTS = Path(__file__).parent / "weights"
#: The model ``pcseg segment`` uses when ``--model`` is not given.
DEFAULT_MODEL = "pointnet_synthetic"


def bundled_models() -> list[str]:
    """Names of the checkpoints shipped in ``pcseg/weights``."""
    return sorted(p.stem for p in WEIGHTS.glob("*.pt"))


def resolve_model(name_or_path: str | None) -> Path:
    """A checkpoint path from a bundled model name or a path; PcsegError when neither exists."""
    name_or_path = name_or_path or DEFAULT_MODEL
    path = Path(name_or_path)
    if path.suffix == ".pt" or path.exists():
        if not path.is_file():
            raise PcsegError(f"{path}: checkpoint not found")
        return path
    bundled = WEIGHTS / f"{name_or_path}.pt"
    if bundled.is_file():
        return bundled
    available = ", ".join(bundled_models()) or "none are installed"
    raise PcsegError(f"no bundled model named {name_or_path!r} (bundled: {available}); "
                     f"pass a checkpoint with --model RUN_DIR/best.pt")
