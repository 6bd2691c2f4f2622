// CUDA kernels of torch.ops.pcseg.* (defined in the .cu files, registered in ops.cpp).
#pragma once

#ifdef WITH_CUDA
#include <ATen/ATen.h>

#include <tuple>

namespace pcseg {

at::Tensor fps_cuda(const at::Tensor& xyz, int64_t num_samples, const at::Tensor& lengths, int64_t start_idx);
std::tuple<at::Tensor, at::Tensor> knn_cuda(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                            const at::Tensor& query_lengths, const at::Tensor& ref_lengths);
std::tuple<at::Tensor, at::Tensor> ring_knn_cuda(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                                 double r_inner, double r_outer, const at::Tensor& query_lengths,
                                                 const at::Tensor& ref_lengths);

}  // namespace pcseg
#endif
