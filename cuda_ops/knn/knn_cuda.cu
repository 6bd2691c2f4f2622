// Exact kNN and ring kNN on CUDA, one thread per query, with the same distance
// helper, order and fill rules as the CPU kernels. The k best of a query are
// kept in its output rows themselves (global memory), so k has no limit.
//
// Two strategies, chosen by the padded reference size N:
// * N < kTreeMinPoints: every query scans its whole reference cloud
//   (brute force; blocks of a few thousand points, as the models use);
// * larger clouds: each reference cloud's KD-tree is built on the CPU by the
//   CPU kernels' own code (common/kdtree.h), copied to the device, and every
//   query walks it with search_tree (knn/tree_search.h), the walk the CPU
//   kernel runs. Costs one device-to-host copy of ref and a host sync.
//   Queries that are the reference cloud itself run in tree order, so that a
//   warp's queries walk the same nodes.
#include <cstring>
#include <vector>

#include "../common/cuda_utils.cuh"
#include "../common/kdtree.h"
#include "../common/point_math.h"
#include "../ops_cuda.h"
#include "tree_search.h"

namespace pcseg {
namespace {

// Reference clouds of at least this many (padded) points are searched through a tree.
constexpr int64_t kTreeMinPoints = 65536;
// Per-thread stack of the tree walk; a deeper tree (pathological clusters) is brute-forced.
constexpr int kMaxStack = 64;

// Row (k,) of +inf / -1: what a padding query or an unfilled slot holds.
template <typename T>
__device__ void clear_row(T* drow, int64_t* irow, int64_t k) {
  for (int64_t j = 0; j < k; ++j) {
    drow[j] = infinity<T>();
    irow[j] = -1;
  }
}

// kRing: keep only r_inner2 <= d2 < r_outer2, then apply the A-CNN fill rule.
template <typename T, bool kRing>
__global__ void knn_brute_kernel(const T* __restrict__ query, const T* __restrict__ ref,
                                 const int64_t* __restrict__ qlen, const int64_t* __restrict__ rlen, int64_t B,
                                 int64_t M, int64_t N, int64_t k, T r_inner2, T r_outer2, T* __restrict__ dist,
                                 int64_t* __restrict__ idx, int64_t* __restrict__ count) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * M) return;
  const int64_t b = t / M, i = t % M;
  T* drow = dist + t * k;
  int64_t* irow = idx + t * k;
  clear_row(drow, irow, k);
  if (i >= qlen[b]) {
    if (kRing) count[t] = 0;
    return;
  }
  const T qx = query[3 * t], qy = query[3 * t + 1], qz = query[3 * t + 2];
  const T* cloud = ref + b * N * 3;
  T nearest_d = infinity<T>();
  int64_t nearest = -1;
  T worst = infinity<T>();  // drow[k - 1], kept in a register
  const int64_t n = rlen[b];
  for (int64_t p = 0; p < n; ++p) {
    const T d = sq_dist<T>(cloud[3 * p], cloud[3 * p + 1], cloud[3 * p + 2], qx, qy, qz);
    if (kRing) {
      if (d < nearest_d) {  // p increases: strict keeps the lowest index
        nearest_d = d;
        nearest = p;
      }
      if (!in_ring(d, r_inner2, r_outer2)) continue;
    }
    if (d <= worst) {
      insert_sorted(drow, irow, k, d, p);
      worst = drow[k - 1];
    }
  }
  if (kRing) {
    int64_t found = 0;
    while (found < k && irow[found] >= 0) ++found;
    count[t] = found;
    fill_ring_row(irow, k, found, nearest);
  }
}

// The leaf scan of the device tree walk: offers the leaf's points one by one.
template <typename T, bool kRing>
struct PointLeafScan {
  const T *x, *y, *z;      // the cloud's coordinates in tree order
  const int64_t* index;    // original index of each point in tree order
  T qx, qy, qz;
  int64_t k;
  T r_inner2, r_outer2;

  PCSEG_HD void operator()(const KdNode<T>& nd, T* dist, int64_t* idx) const {
    for (int64_t p = nd.begin; p < nd.end; ++p) {
      const T d = sq_dist<T>(x[p], y[p], z[p], qx, qy, qz);
      if (kRing && !in_ring(d, r_inner2, r_outer2)) continue;
      if (d <= dist[k - 1]) insert_sorted(dist, idx, k, d, index[p]);
    }
  }
};

// The trees of a batch, concatenated: cloud b's nodes start at node_start[b]
// (child links relative to it) and its points at point_start[b] (node ranges
// relative to it); self[b] says that cloud b's queries are its reference points.
template <typename T>
struct DeviceTrees {
  const KdNode<T>* nodes;
  const T *x, *y, *z;
  const int64_t* index;
  const int64_t* node_start;
  const int64_t* point_start;
  const bool* self;
};

template <typename T, bool kRing>
__global__ void knn_tree_kernel(const T* __restrict__ query, DeviceTrees<T> trees, const int64_t* __restrict__ qlen,
                                int64_t B, int64_t M, int64_t k, T r_inner2, T r_outer2, T* __restrict__ dist,
                                int64_t* __restrict__ idx, int64_t* __restrict__ count) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * M) return;
  const int64_t b = t / M, pos = t % M, ps = trees.point_start[b];
  const bool in_cloud = pos < qlen[b];
  const int64_t i = trees.self[b] && in_cloud ? trees.index[ps + pos] : pos;  // tree order for self queries
  const int64_t row = b * M + i;
  T* drow = dist + row * k;
  int64_t* irow = idx + row * k;
  if (!in_cloud) {
    clear_row(drow, irow, k);
    if (kRing) count[row] = 0;
    return;
  }
  const T* q = query + row * 3;
  const KdNode<T>* nodes = trees.nodes + trees.node_start[b];
  StackEntry<T> stack[kMaxStack];
  const PointLeafScan<T, kRing> scan{trees.x + ps, trees.y + ps, trees.z + ps, trees.index + ps,
                                     q[0], q[1], q[2], k, r_inner2, r_outer2};
  const int64_t found = search_tree<T, kRing>(nodes, stack, q[0], q[1], q[2], k, r_inner2, r_outer2, drow, irow, scan);
  if (kRing) {
    int64_t nearest = -1;
    if (found == 0) {
      T d1;
      const PointLeafScan<T, false> nearest_scan{trees.x + ps, trees.y + ps, trees.z + ps, trees.index + ps,
                                                 q[0], q[1], q[2], 1, T(0), T(0)};
      search_tree<T, false>(nodes, stack, q[0], q[1], q[2], 1, T(0), T(0), &d1, &nearest, nearest_scan);
    }
    count[row] = found;
    fill_ring_row(irow, k, found, nearest);
  }
}

// Host copies of the batch's trees, concatenated (see DeviceTrees), then moved to the device.
template <typename T>
struct HostTrees {
  std::vector<KdNode<T>> nodes;
  std::vector<T> x, y, z;
  std::vector<int64_t> index, node_start, point_start;
  std::vector<uint8_t> self;
  int depth = 0;
};

template <typename T>
HostTrees<T> build_trees(const at::Tensor& ref_cpu, const std::vector<int64_t>& rlen, const std::vector<bool>& self) {
  const int64_t B = ref_cpu.size(0), N = ref_cpu.size(1);
  const T* r = ref_cpu.data_ptr<T>();
  HostTrees<T> out;
  for (int64_t b = 0; b < B; ++b) {
    const KdTree<T> tree(r + b * N * 3, rlen[b], kKnnLeafSize);
    out.node_start.push_back(static_cast<int64_t>(out.nodes.size()));
    out.point_start.push_back(static_cast<int64_t>(out.x.size()));
    out.self.push_back(self[b] ? 1 : 0);
    out.nodes.insert(out.nodes.end(), tree.nodes.begin(), tree.nodes.end());
    out.x.insert(out.x.end(), tree.x.begin(), tree.x.end());
    out.y.insert(out.y.end(), tree.y.begin(), tree.y.end());
    out.z.insert(out.z.end(), tree.z.begin(), tree.z.end());
    out.index.insert(out.index.end(), tree.index.begin(), tree.index.end());
    out.depth = tree.depth > out.depth ? tree.depth : out.depth;
  }
  return out;
}

// A host vector as a tensor on `device` (the bytes copied as they are).
template <typename V>
at::Tensor to_device(const std::vector<V>& v, const at::Device& device) {
  const int64_t bytes = static_cast<int64_t>(v.size() * sizeof(V));
  auto host = at::empty({bytes}, at::TensorOptions().dtype(at::kByte));
  if (bytes > 0) std::memcpy(host.data_ptr(), v.data(), bytes);
  return host.to(device);
}

template <typename T>
const T* as(const at::Tensor& bytes) {
  return reinterpret_cast<const T*>(bytes.data_ptr());
}

// Runs the tree strategy when it applies; false when a tree is too deep for the device stack.
template <typename T, bool kRing>
bool launch_tree(const at::Tensor& query, const at::Tensor& ref, int64_t k, T r_inner2, T r_outer2,
                 const at::Tensor& qlen, const at::Tensor& rlen, at::Tensor& dist, at::Tensor& idx, at::Tensor* count,
                 cudaStream_t stream) {
  const int64_t B = query.size(0), M = query.size(1), N = ref.size(1);
  const auto ql_cpu = qlen.to(at::kCPU), rl_cpu = rlen.to(at::kCPU);
  const std::vector<int64_t> ql(ql_cpu.data_ptr<int64_t>(), ql_cpu.data_ptr<int64_t>() + B);
  const std::vector<int64_t> rl(rl_cpu.data_ptr<int64_t>(), rl_cpu.data_ptr<int64_t>() + B);
  const bool same = query.data_ptr() == ref.data_ptr() && M == N;
  std::vector<bool> self(B);
  for (int64_t b = 0; b < B; ++b) self[b] = same && ql[b] == rl[b];
  const HostTrees<T> host = build_trees<T>(ref.to(at::kCPU), rl, self);
  if (host.depth + 2 > kMaxStack) return false;
  const at::Device device = query.device();
  const at::Tensor nodes = to_device(host.nodes, device), x = to_device(host.x, device), y = to_device(host.y, device),
                   z = to_device(host.z, device), index = to_device(host.index, device),
                   node_start = to_device(host.node_start, device), point_start = to_device(host.point_start, device),
                   self_flags = to_device(host.self, device);
  static_assert(sizeof(bool) == sizeof(uint8_t), "self flags are copied as bytes");
  const DeviceTrees<T> trees{as<KdNode<T>>(nodes), as<T>(x), as<T>(y), as<T>(z), as<int64_t>(index),
                             as<int64_t>(node_start), as<int64_t>(point_start), as<bool>(self_flags)};
  const unsigned blocks = static_cast<unsigned>(ceil_div(B * M, kThreads));
  knn_tree_kernel<T, kRing><<<blocks, kThreads, 0, stream>>>(
      query.data_ptr<T>(), trees, qlen.data_ptr<int64_t>(), B, M, k, r_inner2, r_outer2, dist.data_ptr<T>(),
      idx.data_ptr<int64_t>(), count ? count->data_ptr<int64_t>() : nullptr);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // The host-side tensors above are freed on return; the caching allocator keeps
  // the device buffers for the current stream until the kernel is done with them.
  return true;
}

template <bool kRing>
void launch(const at::Tensor& query, const at::Tensor& ref, int64_t k, double r_inner, double r_outer,
            const at::Tensor& query_lengths, const at::Tensor& ref_lengths, at::Tensor& dist, at::Tensor& idx,
            at::Tensor* count) {
  TORCH_CHECK(query.is_cuda() && ref.is_cuda() && query_lengths.is_cuda() && ref_lengths.is_cuda(),
              "knn_cuda: tensors must be on CUDA");
  TORCH_CHECK(query.is_contiguous() && ref.is_contiguous(), "knn_cuda: inputs must be contiguous");
  const at::Tensor qlen = query_lengths.contiguous(), rlen = ref_lengths.contiguous();
  const int64_t B = query.size(0), M = query.size(1), N = ref.size(1);
  if (B * M == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "pcseg_knn_cuda", [&] {
    const scalar_t ri = static_cast<scalar_t>(r_inner), ro = static_cast<scalar_t>(r_outer);
    if (N >= kTreeMinPoints &&
        launch_tree<scalar_t, kRing>(query, ref, k, ri * ri, ro * ro, qlen, rlen, dist, idx, count, stream))
      return;
    const unsigned blocks = static_cast<unsigned>(ceil_div(B * M, kThreads));
    knn_brute_kernel<scalar_t, kRing><<<blocks, kThreads, 0, stream>>>(
        query.data_ptr<scalar_t>(), ref.data_ptr<scalar_t>(), qlen.data_ptr<int64_t>(), rlen.data_ptr<int64_t>(),
        B, M, N, k, ri * ri, ro * ro, dist.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(),
        count ? count->data_ptr<int64_t>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> knn_cuda(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                            const at::Tensor& query_lengths, const at::Tensor& ref_lengths) {
  const c10::cuda::CUDAGuard guard(query.device());
  auto dist = at::empty({query.size(0), query.size(1), k}, query.options());
  auto idx = at::empty({query.size(0), query.size(1), k}, query.options().dtype(at::kLong));
  launch<false>(query, ref, k, 0.0, 0.0, query_lengths, ref_lengths, dist, idx, nullptr);
  return {dist, idx};
}

std::tuple<at::Tensor, at::Tensor> ring_knn_cuda(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                                 double r_inner, double r_outer, const at::Tensor& query_lengths,
                                                 const at::Tensor& ref_lengths) {
  const c10::cuda::CUDAGuard guard(query.device());
  auto dist = at::empty({query.size(0), query.size(1), k}, query.options());
  auto idx = at::empty({query.size(0), query.size(1), k}, query.options().dtype(at::kLong));
  auto count = at::empty({query.size(0), query.size(1)}, query.options().dtype(at::kLong));
  launch<true>(query, ref, k, r_inner, r_outer, query_lengths, ref_lengths, dist, idx, &count);
  return {idx, count};
}

}  // namespace pcseg
