"""``pcseg info``: versions, compiled kernels, thread settings and bundled models."""

import platform


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show versions, compiled kernels and threads")
    parser.set_defaults(func=run)


def run(args) -> int:
    import numpy
    import torch

    from .. import __version__, ops
    from ..bundled import DEFAULT_MODEL, bundled_models

    build = ops.build_info()
    rows = [
        ("pcseg", __version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("numpy", numpy.__version__),
        ("CPU kernels", "yes (OpenMP)" if build["openmp"] else "yes (no OpenMP)"),
        ("CUDA kernels", f"yes, archs {build['cuda_archs']}" if build["cuda"] else "not built"),
        ("CUDA device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"),
        ("OpenMP threads", str(build["omp_threads"])),
        ("torch threads", str(torch.get_num_threads())),
        ("bundled models", ", ".join(f"{m} (default)" if m == DEFAULT_MODEL else m for m in bundled_models())
         or "none"),
    ]
    try:
        import open3d
        rows.append(("open3d", open3d.__version__))
    except ImportError:
        rows.append(("open3d", "not installed"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
