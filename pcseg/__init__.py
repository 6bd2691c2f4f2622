"""pcseg: semantic segmentation of indoor 3D point clouds.

The compiled kernels live in :mod:`pcseg.ops`, file formats in :mod:`pcseg.io`,
datasets and block sampling in :mod:`pcseg.data`, networks in
:mod:`pcseg.models`.
"""

__version__ = "0.1.0"

from .errors import PcsegError  # noqa: E402

__all__ = ["PcsegError", "__version__"]
