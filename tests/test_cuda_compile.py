"""Every CUDA source compiles with nvcc, warnings as errors, for sm_80 and sm_90.

No GPU is needed: this only proves that the kernels build. The files compile
in parallel; sm_80 runs by default, sm_90 with the slow tests (-m slow).
"""

import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torch.utils.cpp_extension import COMMON_NVCC_FLAGS, include_paths

ROOT = Path(__file__).resolve().parents[1]
NVCC = "/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else shutil.which("nvcc")
CU_FILES = sorted((ROOT / "cuda_ops").rglob("*.cu"))

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


def compile_cu(source: Path, arch: str, out_dir: Path) -> subprocess.CompletedProcess:
    cmd = [
        NVCC, "-c", str(source), "-o", str(out_dir / f"{source.stem}.o"),
        "-std=c++20", "-O3", "--fmad=false",
        f"-gencode=arch=compute_{arch},code=sm_{arch}",
        "-DWITH_CUDA", "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE",
        "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Werror",
        f"-I{ROOT / 'cuda_ops'}", f"-I{sysconfig.get_paths()['include']}",
        *COMMON_NVCC_FLAGS, *(f"-I{p}" for p in include_paths()),
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_every_op_has_a_cuda_source():
    assert {p.name for p in CU_FILES} >= {"fps_cuda.cu", "knn_cuda.cu"}
    text = "".join(p.read_text() for p in CU_FILES)
    for kernel in ("fps_cuda", "knn_cuda", "ring_knn_cuda"):
        assert f"{kernel}(" in text


@pytest.mark.parametrize("arch", ["80", pytest.param("90", marks=pytest.mark.slow)])
def test_cuda_sources_compile_without_warnings(arch, tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda src: compile_cu(src, arch, tmp_path), CU_FILES))
    failures = [f"{src.name}:\n{res.stderr[-3000:]}" for src, res in zip(CU_FILES, results) if res.returncode]
    assert not failures, "\n".join(failures)
