// Exact kNN and ring kNN on CUDA: one thread per query scans its reference
// cloud and keeps the k best in the output rows themselves (global memory),
// so k has no compile-time limit. Same distance helper, order and fill rules
// as the CPU kernels.
#include "../common/cuda_utils.cuh"
#include "../common/point_math.h"
#include "../ops_cuda.h"

namespace pcseg {
namespace {

// kRing: keep only r_inner2 <= d2 < r_outer2, then apply the A-CNN fill rule.
template <typename T, bool kRing>
__global__ void knn_kernel(const T* __restrict__ query, const T* __restrict__ ref,
                           const int64_t* __restrict__ qlen, const int64_t* __restrict__ rlen, int64_t B, int64_t M,
                           int64_t N, int64_t k, T r_inner2, T r_outer2, T* __restrict__ dist,
                           int64_t* __restrict__ idx, int64_t* __restrict__ count) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * M) return;
  const int64_t b = t / M, i = t % M;
  T* drow = dist + t * k;
  int64_t* irow = idx + t * k;
  for (int64_t j = 0; j < k; ++j) {
    drow[j] = infinity<T>();
    irow[j] = -1;
  }
  if (i >= qlen[b]) {
    if (kRing) count[t] = 0;
    return;
  }
  const T qx = query[3 * t], qy = query[3 * t + 1], qz = query[3 * t + 2];
  const T* cloud = ref + b * N * 3;
  T nearest_d = infinity<T>();
  int64_t nearest = -1;
  for (int64_t p = 0; p < rlen[b]; ++p) {
    const T d = sq_dist<T>(cloud[3 * p], cloud[3 * p + 1], cloud[3 * p + 2], qx, qy, qz);
    if (kRing) {
      if (d < nearest_d) {  // p increases: strict keeps the lowest index
        nearest_d = d;
        nearest = p;
      }
      if (!in_ring(d, r_inner2, r_outer2)) continue;
    }
    if (d <= drow[k - 1]) insert_sorted(drow, irow, k, d, p);
  }
  if (kRing) {
    int64_t found = 0;
    while (found < k && irow[found] >= 0) ++found;
    count[t] = found;
    fill_ring_row(irow, k, found, nearest);
  }
}

template <bool kRing>
void launch(const at::Tensor& query, const at::Tensor& ref, int64_t k, double r_inner, double r_outer,
            const at::Tensor& qlen, const at::Tensor& rlen, at::Tensor& dist, at::Tensor& idx, at::Tensor* count) {
  TORCH_CHECK(query.is_cuda() && ref.is_cuda() && qlen.is_cuda() && rlen.is_cuda(), "knn_cuda: tensors must be on CUDA");
  TORCH_CHECK(query.is_contiguous() && ref.is_contiguous(), "knn_cuda: inputs must be contiguous");
  const c10::cuda::CUDAGuard guard(query.device());
  const int64_t B = query.size(0), M = query.size(1), N = ref.size(1);
  if (B * M == 0) return;
  auto ql = qlen.contiguous(), rl = rlen.contiguous();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const unsigned blocks = static_cast<unsigned>(ceil_div(B * M, kThreads));
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "pcseg_knn_cuda", [&] {
    const scalar_t ri = static_cast<scalar_t>(r_inner), ro = static_cast<scalar_t>(r_outer);
    knn_kernel<scalar_t, kRing><<<blocks, kThreads, 0, stream>>>(
        query.data_ptr<scalar_t>(), ref.data_ptr<scalar_t>(), ql.data_ptr<int64_t>(), rl.data_ptr<int64_t>(), B, M,
        N, k, ri * ri, ro * ro, dist.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(),
        count ? count->data_ptr<int64_t>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> knn_cuda(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                            const at::Tensor& query_lengths, const at::Tensor& ref_lengths) {
  TORCH_CHECK(k >= 1, "k must be >= 1");
  auto dist = at::empty({query.size(0), query.size(1), k}, query.options());
  auto idx = at::empty({query.size(0), query.size(1), k}, query.options().dtype(at::kLong));
  launch<false>(query, ref, k, 0.0, 0.0, query_lengths, ref_lengths, dist, idx, nullptr);
  return {dist, idx};
}

std::tuple<at::Tensor, at::Tensor> ring_knn_cuda(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                                 double r_inner, double r_outer, const at::Tensor& query_lengths,
                                                 const at::Tensor& ref_lengths) {
  TORCH_CHECK(k >= 1, "k must be >= 1");
  auto dist = at::empty({query.size(0), query.size(1), k}, query.options());
  auto idx = at::empty({query.size(0), query.size(1), k}, query.options().dtype(at::kLong));
  auto count = at::empty({query.size(0), query.size(1)}, query.options().dtype(at::kLong));
  launch<true>(query, ref, k, r_inner, r_outer, query_lengths, ref_lengths, dist, idx, &count);
  return {idx, count};
}

}  // namespace pcseg
