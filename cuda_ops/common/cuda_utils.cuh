// Small CUDA helpers shared by the .cu kernels.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

namespace pcseg {

constexpr int kThreads = 256;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Block-wide arg-max over (value, index) pairs held one per thread: largest
// value, ties to the lowest index. Result valid in thread 0. kThreads threads.
template <typename T>
__device__ void block_argmax(T& value, int64_t& index) {
  __shared__ T s_val[kThreads];
  __shared__ int64_t s_idx[kThreads];
  const int t = threadIdx.x;
  s_val[t] = value;
  s_idx[t] = index;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) {
      const T v = s_val[t + stride];
      const int64_t i = s_idx[t + stride];
      if (v > s_val[t] || (v == s_val[t] && i < s_idx[t])) {
        s_val[t] = v;
        s_idx[t] = i;
      }
    }
    __syncthreads();
  }
  value = s_val[0];
  index = s_idx[0];
}

}  // namespace pcseg
