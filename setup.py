"""Build of pcseg and its compiled extension ``pcseg._C``.

The C++ (OpenMP) CPU kernels in ``cuda_ops/`` are always built. The CUDA
kernels are added when torch was built with CUDA and nvcc is found, or when
``FORCE_CUDA=1``; the target architectures come from ``TORCH_CUDA_ARCH_LIST``
(torch's own default when unset), never from this file.

Build against the installed torch, without build isolation::

    pip install --no-build-isolation -e .
"""

import glob
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - only hit when building without torch
    sys.exit("pcseg: building needs torch installed first (pip install torch==2.13.0), "
             "then: pip install --no-build-isolation -e .")

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    """True when the CUDA kernels should be compiled."""
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def extension():
    cpp_sources = sorted(glob.glob(os.path.join("cuda_ops", "**", "*.cpp"), recursive=True))
    cu_sources = sorted(glob.glob(os.path.join("cuda_ops", "**", "*.cu"), recursive=True))
    openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []
    # C++20: the torch headers need it. No fused multiply-add: distances must round exactly as cuda_ops/common/point_math.h says.
    cxx_flags = ["-O3", "-std=c++20", "-ffp-contract=off"] + openmp
    define_macros = []
    if want_cuda():
        define_macros.append(("WITH_CUDA", None))
        archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "default (torch)")
        define_macros.append(("PCSEG_CUDA_ARCHS", f'"{archs}"'))
        return CUDAExtension(
            "pcseg._C", cpp_sources + cu_sources,
            include_dirs=[os.path.join(HERE, "cuda_ops")],
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--fmad=false", "-std=c++20"]},
            extra_link_args=openmp,
        )
    return CppExtension(
        "pcseg._C", cpp_sources,
        include_dirs=[os.path.join(HERE, "cuda_ops")],
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=openmp,
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
