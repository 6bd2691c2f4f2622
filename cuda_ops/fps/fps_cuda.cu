// Exact farthest point sampling on CUDA, on the current stream, with no host
// sync per sample. The result equals the CPU kernel (same distance helper,
// same tie rule: the largest distance, then the lowest index).
//
// * Clouds of at most kSmallCloud (padded) points: one launch in all, one
//   block per cloud, each thread holding up to kPointsPerThread points and
//   their distances in registers for the whole run; a sample is one pass over
//   the points plus a block-wide arg-max (warp shuffles, two barriers).
// * Larger clouds: two launches per sample: every block of a grid spanning
//   the cloud updates its chunk's distances to the last sample and writes its
//   chunk's farthest point; one block per cloud then picks the farthest chunk.
#include <algorithm>
#include <climits>
#include <limits>

#include "../common/cuda_utils.cuh"
#include "../common/point_math.h"
#include "../ops_cuda.h"

namespace pcseg {
namespace {

constexpr int64_t kPointsPerThread = 8;
constexpr int64_t kChunk = kThreads * kPointsPerThread;

constexpr int kMaxBlockThreads = 1024;
constexpr int kWarp = 32;
constexpr int64_t kSmallCloud = int64_t(kMaxBlockThreads) * kPointsPerThread;

// Keeps (v, i) in (best, best_i) when it is farther, or as far with a lower index.
template <typename T>
__device__ __forceinline__ void take_farther(T v, int i, T& best, int& best_i) {
  if (v > best || (v == best && i < best_i)) {
    best = v;
    best_i = i;
  }
}

// Arg-max over the 32 lanes of a warp; the result is valid in lane 0.
template <typename T>
__device__ __forceinline__ void warp_argmax(T& best, int& best_i) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const T v = __shfl_down_sync(0xffffffffu, best, offset);
    const int i = __shfl_down_sync(0xffffffffu, best_i, offset);
    take_farther(v, i, best, best_i);
  }
}

// Whole FPS of cloud blockIdx.x (n <= blockDim.x * kPointsPerThread points) in
// one block. Point j of thread t is t + j * blockDim.x, so a thread's points
// rise with j and a strict comparison keeps the lowest index among its own.
// blockDim.x is a multiple of 32.
template <typename T>
__global__ void __launch_bounds__(kMaxBlockThreads)
    fps_block_kernel(const T* __restrict__ xyz, const int64_t* __restrict__ lengths, int64_t* __restrict__ out,
                     int64_t N, int64_t M, int64_t start_idx) {
  __shared__ T s_val[kMaxBlockThreads / kWarp];
  __shared__ int s_idx[kMaxBlockThreads / kWarp];
  __shared__ int s_last;
  const int64_t b = blockIdx.x;
  const int n = static_cast<int>(lengths[b]);
  const T* cloud = xyz + b * N * 3;
  int64_t* samples = out + b * M;
  const int tid = threadIdx.x, threads = blockDim.x, lane = tid % kWarp, warp = tid / kWarp;
  T px[kPointsPerThread], py[kPointsPerThread], pz[kPointsPerThread], mind[kPointsPerThread];
#pragma unroll
  for (int j = 0; j < kPointsPerThread; ++j) {
    const int i = tid + j * threads;
    const bool real = i < n;
    px[j] = real ? cloud[3 * i] : T(0);
    py[j] = real ? cloud[3 * i + 1] : T(0);
    pz[j] = real ? cloud[3 * i + 2] : T(0);
    mind[j] = infinity<T>();
  }
  int last = static_cast<int>(start_idx);
  for (int64_t s = 1; s < M; ++s) {
    const T qx = cloud[3 * last], qy = cloud[3 * last + 1], qz = cloud[3 * last + 2];
    T best = -infinity<T>();
    int best_i = INT_MAX;
#pragma unroll
    for (int j = 0; j < kPointsPerThread; ++j) {
      const int i = tid + j * threads;
      if (i < n) {
        const T d = sq_dist<T>(px[j], py[j], pz[j], qx, qy, qz);
        const T v = d < mind[j] ? d : mind[j];
        mind[j] = v;
        if (v > best) {
          best = v;
          best_i = i;
        }
      }
    }
    warp_argmax(best, best_i);
    if (lane == 0) {
      s_val[warp] = best;
      s_idx[warp] = best_i;
    }
    __syncthreads();
    if (warp == 0) {
      best = lane < threads / kWarp ? s_val[lane] : -infinity<T>();
      best_i = lane < threads / kWarp ? s_idx[lane] : INT_MAX;
      warp_argmax(best, best_i);
      if (lane == 0) {
        s_last = best_i;
        samples[s] = best_i;
      }
    }
    __syncthreads();  // warp 0 is done with s_val; s_last is rewritten after the next first barrier
    last = s_last;
  }
}

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
  TORCH_CHECK(xyz.is_contiguous(), "fps_cuda: xyz must be contiguous");
  const c10::cuda::CUDAGuard guard(xyz.device());
  const at::Tensor len = lengths.contiguous();
  const int64_t B = xyz.size(0), N = xyz.size(1), M = num_samples;
  auto out = at::full({B, M}, start_idx, xyz.options().dtype(at::kLong));
  if (M == 1 || B == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (N <= kSmallCloud) {
    const int threads = static_cast<int>(std::max<int64_t>(kWarp, ceil_div(ceil_div(N, kPointsPerThread), kWarp) * kWarp));
    AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "pcseg_fps_cuda_block", [&] {
      fps_block_kernel<scalar_t><<<static_cast<unsigned>(B), threads, 0, stream>>>(
          xyz.data_ptr<scalar_t>(), len.data_ptr<int64_t>(), out.data_ptr<int64_t>(), N, M, start_idx);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return out;
  }
  TORCH_CHECK(B <= 65535, "fps_cuda: at most 65535 clouds of more than ", kSmallCloud, " points per call");
  const int64_t num_chunks = ceil_div(N, kChunk);
  auto mind = at::full({B, N}, std::numeric_limits<double>::infinity(), xyz.options());
  auto part_val = at::empty({B, num_chunks}, xyz.options());
  auto part_idx = at::empty({B, num_chunks}, xyz.options().dtype(at::kLong));
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
