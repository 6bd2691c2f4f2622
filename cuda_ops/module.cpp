// Python module pcseg._C: loading it registers the torch.ops.pcseg.* operators
// (see ops.cpp); build_info() reports what was compiled in.
#include <torch/extension.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef PCSEG_CUDA_ARCHS
#define PCSEG_CUDA_ARCHS ""
#endif

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
#ifdef _OPENMP
  info["openmp"] = true;
  info["omp_threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["omp_threads"] = 1;
#endif
#ifdef WITH_CUDA
  info["cuda"] = true;
#else
  info["cuda"] = false;
#endif
  info["cuda_archs"] = PCSEG_CUDA_ARCHS;
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("build_info", &build_info,
        "What was compiled: openmp, omp_threads, cuda, cuda_archs.");
}
