// Exact farthest point sampling on CUDA.
//
// Each iteration is two launches on the current stream: every block of a
// grid spanning the whole cloud updates its chunk's distances to the last
// sample and writes its chunk's farthest point; one block per cloud then picks
// the farthest over the chunks. Large clouds therefore use many blocks. The
// result equals the CPU kernel (same distance helper, same tie rule).
#include <limits>

#include "../common/cuda_utils.cuh"
#include "../common/point_math.h"
#include "../ops_cuda.h"

namespace pcseg {
namespace {

constexpr int64_t kPointsPerThread = 8;
constexpr int64_t kChunk = kThreads * kPointsPerThread;

template <typename T>
__global__ void fps_update_kernel(const T* __restrict__ xyz, const int64_t* __restrict__ lengths,
                                  T* __restrict__ mind, int64_t* __restrict__ out, T* __restrict__ part_val,
                                  int64_t* __restrict__ part_idx, int64_t N, int64_t M, int64_t num_chunks,
                                  int64_t s) {
  const int64_t b = blockIdx.y;
  const int64_t n = lengths[b];
  const T* cloud = xyz + b * N * 3;
  const int64_t last = out[b * M + s - 1];
  const T qx = cloud[3 * last], qy = cloud[3 * last + 1], qz = cloud[3 * last + 2];
  T best = -infinity<T>();
  int64_t best_idx = INT64_MAX;
  const int64_t begin = blockIdx.x * kChunk;
  for (int64_t i = begin + threadIdx.x; i < begin + kChunk && i < n; i += kThreads) {
    const T d = sq_dist<T>(cloud[3 * i], cloud[3 * i + 1], cloud[3 * i + 2], qx, qy, qz);
    const T old = mind[b * N + i];
    const T v = d < old ? d : old;
    mind[b * N + i] = v;
    if (v > best) {  // i increases within a thread: strict keeps the lowest index
      best = v;
      best_idx = i;
    }
  }
  block_argmax(best, best_idx);
  if (threadIdx.x == 0) {
    part_val[b * num_chunks + blockIdx.x] = best;
    part_idx[b * num_chunks + blockIdx.x] = best_idx;
  }
}

template <typename T>
__global__ void fps_select_kernel(const T* __restrict__ part_val, const int64_t* __restrict__ part_idx,
                                  int64_t* __restrict__ out, int64_t M, int64_t num_chunks, int64_t s) {
  const int64_t b = blockIdx.x;
  T best = -infinity<T>();
  int64_t best_idx = INT64_MAX;
  for (int64_t c = threadIdx.x; c < num_chunks; c += kThreads) {
    const T v = part_val[b * num_chunks + c];
    const int64_t i = part_idx[b * num_chunks + c];
    if (v > best || (v == best && i < best_idx)) {
      best = v;
      best_idx = i;
    }
  }
  block_argmax(best, best_idx);
  if (threadIdx.x == 0) out[b * M + s] = best_idx;
}

}  // namespace

at::Tensor fps_cuda(const at::Tensor& xyz, int64_t num_samples, const at::Tensor& lengths, int64_t start_idx) {
  TORCH_CHECK(xyz.is_cuda() && lengths.is_cuda(), "fps_cuda: tensors must be on CUDA");
  TORCH_CHECK(xyz.dim() == 3 && xyz.size(2) == 3 && xyz.is_contiguous(), "fps_cuda: xyz must be (B, N, 3)");
  const c10::cuda::CUDAGuard guard(xyz.device());
  const int64_t B = xyz.size(0), N = xyz.size(1), M = num_samples;
  auto out = at::full({B, M}, start_idx, xyz.options().dtype(at::kLong));
  if (M == 1 || B == 0) return out;
  const int64_t num_chunks = ceil_div(N, kChunk);
  auto mind = at::full({B, N}, std::numeric_limits<double>::infinity(), xyz.options());
  auto part_val = at::empty({B, num_chunks}, xyz.options());
  auto part_idx = at::empty({B, num_chunks}, xyz.options().dtype(at::kLong));
  auto len = lengths.contiguous();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "pcseg_fps_cuda", [&] {
    const dim3 grid(static_cast<unsigned>(num_chunks), static_cast<unsigned>(B));
    for (int64_t s = 1; s < M; ++s) {
      fps_update_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
          xyz.data_ptr<scalar_t>(), len.data_ptr<int64_t>(), mind.data_ptr<scalar_t>(), out.data_ptr<int64_t>(),
          part_val.data_ptr<scalar_t>(), part_idx.data_ptr<int64_t>(), N, M, num_chunks, s);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      fps_select_kernel<scalar_t><<<static_cast<unsigned>(B), kThreads, 0, stream>>>(
          part_val.data_ptr<scalar_t>(), part_idx.data_ptr<int64_t>(), out.data_ptr<int64_t>(), M, num_chunks, s);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

}  // namespace pcseg
