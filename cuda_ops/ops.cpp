// Operator schemas of torch.ops.pcseg.* and their CPU kernels; the CUDA
// kernels (*.cu) are registered here behind the same argument checks.
//
// The Python wrappers in pcseg/ops.py validate every argument and always pass
// contiguous tensors and explicit int64 lengths, so the checks here are what
// the kernels need to stay memory-safe when the operators are called directly
// (they read the lengths with one reduction: one sync on CUDA).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fps/fps_cpu.h"
#include "knn/knn_cpu.h"
#include "ops_cuda.h"

namespace {

constexpr int64_t kFpsLeafSize = 64;

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void check_cloud(const at::Tensor& xyz, const at::Tensor& lengths, const char* what) {
  TORCH_CHECK(xyz.dim() == 3 && xyz.size(2) == 3, what, " must have shape (B, N, 3)");
  TORCH_CHECK(xyz.is_contiguous(), what, " must be contiguous");
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == xyz.size(0) && lengths.scalar_type() == at::kLong,
              what, " lengths must be int64 of shape (B,)");
  TORCH_CHECK(lengths.device() == xyz.device(), what, " lengths are on ", lengths.device(), " but ", what, " is on ",
              xyz.device());
}

// Smallest and largest value of each (B,) lengths tensor, read in one copy to the host.
std::vector<int64_t> length_ranges(std::initializer_list<at::Tensor> lengths) {
  std::vector<int64_t> out;
  if (lengths.begin()->numel() == 0) return out;
  std::vector<at::Tensor> ends;
  for (const at::Tensor& l : lengths) ends.insert(ends.end(), {l.min(), l.max()});
  const at::Tensor host = at::stack(ends).to(at::kCPU);
  out.assign(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
  return out;
}

void check_fps(const at::Tensor& xyz, int64_t num_samples, const at::Tensor& lengths, int64_t start_idx) {
  check_cloud(xyz, lengths, "xyz");
  TORCH_CHECK(num_samples >= 1 && start_idx >= 0, "fps: need num_samples >= 1 and start_idx >= 0");
  const std::vector<int64_t> range = length_ranges({lengths});
  TORCH_CHECK(range.empty() || (range[0] >= num_samples && range[1] <= xyz.size(1) && start_idx < range[0]),
              "fps: lengths/num_samples/start_idx out of range");
}

// Whole clouds in parallel when the batch can feed every thread, otherwise
// one cloud at a time with its leaves split between the threads.
template <typename T>
void fps_batch(const T* x, int64_t B, int64_t N, const int64_t* len, int64_t m, int64_t start, int64_t* out) {
  const int threads = max_threads();
  if (B >= threads || threads == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t b = 0; b < B; ++b)
      pcseg::fps_cloud<T>(x + b * N * 3, len[b], m, start, out + b * m, 1, kFpsLeafSize);
  } else {
    for (int64_t b = 0; b < B; ++b)
      pcseg::fps_cloud<T>(x + b * N * 3, len[b], m, start, out + b * m, threads, kFpsLeafSize);
  }
}

at::Tensor fps_cpu(const at::Tensor& xyz, int64_t num_samples, const at::Tensor& lengths, int64_t start_idx) {
  check_fps(xyz, num_samples, lengths, start_idx);
  const int64_t B = xyz.size(0), N = xyz.size(1);
  auto len = lengths.contiguous();
  const int64_t* len_p = len.data_ptr<int64_t>();
  auto out = at::empty({B, num_samples}, xyz.options().dtype(at::kLong));
  int64_t* out_p = out.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "pcseg_fps_cpu", [&] {
    fps_batch<scalar_t>(xyz.data_ptr<scalar_t>(), B, N, len_p, num_samples, start_idx, out_p);
  });
  return out;
}

// Shared driver of knn and ring_knn: builds one tree per reference cloud and
// runs all queries of the batch in parallel. Returns the per-query count.
template <typename scalar_t, bool kRing>
void tree_queries(const at::Tensor& query, const at::Tensor& ref, int64_t k, const int64_t* qlen,
                  const int64_t* rlen, scalar_t r_inner2, scalar_t r_outer2, scalar_t* dist, int64_t* idx,
                  int64_t* count) {
  const int64_t B = query.size(0), M = query.size(1), N = ref.size(1);
  const scalar_t* q = query.data_ptr<scalar_t>();
  const scalar_t* r = ref.data_ptr<scalar_t>();
  std::vector<pcseg::KdTree<scalar_t>*> trees(B, nullptr);
  const bool same = q == r && M == N;
  const int threads = max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t b = 0; b < B; ++b) trees[b] = new pcseg::KdTree<scalar_t>(r + b * N * 3, rlen[b], pcseg::kKnnLeafSize);
  // Cloud b is queried whole against itself.
  const auto self_cloud = [&](int64_t b) { return same && qlen[b] == rlen[b]; };
  // Plain kNN of such a cloud: the queries of each leaf together
  // (LeafSelfSearch), one task per leaf of every such cloud.
  std::vector<std::pair<int64_t, int32_t>> leaf_tasks;  // (cloud, leaf node)
  if (!kRing) {
    for (int64_t b = 0; b < B; ++b) {
      if (!self_cloud(b)) continue;
      const auto& nodes = trees[b]->nodes;
      for (int32_t id = 0; id < static_cast<int32_t>(nodes.size()); ++id)
        if (nodes[id].left < 0) leaf_tasks.emplace_back(b, id);
    }
  }
  const int64_t L = static_cast<int64_t>(leaf_tasks.size());
  // Then every other query of the batch, all in parallel, each thread with its own scratch.
#pragma omp parallel num_threads(threads)
  {
    pcseg::SearchScratch<scalar_t> scratch;
    std::vector<scalar_t> leaf_dist;
    std::vector<int64_t> leaf_idx;
#pragma omp for schedule(dynamic, 16)
    for (int64_t u = 0; u < L; ++u) {
      const auto [b, id] = leaf_tasks[u];
      const pcseg::KdTree<scalar_t>& tree = *trees[b];
      const pcseg::KdNode<scalar_t>& leaf = tree.nodes[id];
      const int64_t m = leaf.end - leaf.begin;
      leaf_dist.resize(m * k);
      leaf_idx.resize(m * k);
      pcseg::LeafSelfSearch<scalar_t>{tree, k, scratch}.run(leaf, leaf_dist.data(), leaf_idx.data());
      for (int64_t j = 0; j < m; ++j) {
        const int64_t t = b * M + tree.index[leaf.begin + j];
        std::copy_n(leaf_dist.data() + j * k, k, dist + t * k);
        std::copy_n(leaf_idx.data() + j * k, k, idx + t * k);
      }
    }
#pragma omp for schedule(dynamic, 64)
    for (int64_t u = 0; u < B * M; ++u) {
      // Queries that are the reference cloud itself run in tree order, so that
      // consecutive queries walk the same nodes (much better cache use).
      const int64_t b = u / M, pos = u % M;
      const bool self = self_cloud(b) && pos < qlen[b];
      if (self && !kRing) continue;  // done leaf by leaf above
      const int64_t i = self ? trees[b]->index[pos] : pos;
      const int64_t t = b * M + i;
      scalar_t* drow = dist + t * k;
      int64_t* irow = idx + t * k;
      if (i >= qlen[b]) {
        for (int64_t j = 0; j < k; ++j) {
          drow[j] = std::numeric_limits<scalar_t>::infinity();
          irow[j] = -1;
        }
        if (count) count[t] = 0;
        continue;
      }
      const scalar_t* p = q + t * 3;
      pcseg::TreeSearch<scalar_t, kRing> search{*trees[b], k, r_inner2, r_outer2, scratch};
      const int64_t found = search.run(p[0], p[1], p[2], drow, irow);
      if (count) count[t] = found;
      if (kRing) {
        int64_t nearest = -1;
        if (found == 0) {
          scalar_t d1;
          pcseg::TreeSearch<scalar_t, false>{*trees[b], 1, 0, 0, scratch}.run(p[0], p[1], p[2], &d1, &nearest);
        }
        pcseg::fill_ring_row(irow, k, found, nearest);
      }
    }
  }
  for (auto* tree : trees) delete tree;
}

void check_pair(const at::Tensor& query, const at::Tensor& ref, const at::Tensor& qlen, const at::Tensor& rlen,
                int64_t k) {
  check_cloud(query, qlen, "query");
  check_cloud(ref, rlen, "ref");
  TORCH_CHECK(query.size(0) == ref.size(0), "query and ref batch sizes differ");
  TORCH_CHECK(query.scalar_type() == ref.scalar_type(), "query and ref dtypes differ");
  TORCH_CHECK(query.device() == ref.device(), "query is on ", query.device(), " but ref is on ", ref.device());
  TORCH_CHECK(k >= 1, "k must be >= 1");
  const std::vector<int64_t> range = length_ranges({qlen, rlen});
  TORCH_CHECK(range.empty() || (range[0] >= 0 && range[1] <= query.size(1)), "query_lengths out of range");
  TORCH_CHECK(range.empty() || (range[2] >= 1 && range[3] <= ref.size(1)), "ref_lengths out of range");
}

void check_ring(double r_inner, double r_outer) {
  TORCH_CHECK(r_inner >= 0 && r_outer > r_inner, "ring_knn: need 0 <= r_inner < r_outer");
}

std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                           const at::Tensor& query_lengths, const at::Tensor& ref_lengths) {
  check_pair(query, ref, query_lengths, ref_lengths, k);
  const int64_t B = query.size(0), M = query.size(1);
  auto dist = at::empty({B, M, k}, query.options());
  auto idx = at::empty({B, M, k}, query.options().dtype(at::kLong));
  auto ql = query_lengths.contiguous(), rl = ref_lengths.contiguous();
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "pcseg_knn_cpu", [&] {
    tree_queries<scalar_t, false>(query, ref, k, ql.data_ptr<int64_t>(), rl.data_ptr<int64_t>(), 0, 0,
                                  dist.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), nullptr);
  });
  return {dist, idx};
}

std::tuple<at::Tensor, at::Tensor> ring_knn_cpu(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                                double r_inner, double r_outer, const at::Tensor& query_lengths,
                                                const at::Tensor& ref_lengths) {
  check_pair(query, ref, query_lengths, ref_lengths, k);
  check_ring(r_inner, r_outer);
  const int64_t B = query.size(0), M = query.size(1);
  auto dist = at::empty({B, M, k}, query.options());
  auto idx = at::empty({B, M, k}, query.options().dtype(at::kLong));
  auto count = at::empty({B, M}, query.options().dtype(at::kLong));
  auto ql = query_lengths.contiguous(), rl = ref_lengths.contiguous();
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "pcseg_ring_knn_cpu", [&] {
    const scalar_t ri = static_cast<scalar_t>(r_inner), ro = static_cast<scalar_t>(r_outer);
    tree_queries<scalar_t, true>(query, ref, k, ql.data_ptr<int64_t>(), rl.data_ptr<int64_t>(), ri * ri, ro * ro,
                                 dist.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), count.data_ptr<int64_t>());
  });
  return {idx, count};
}

#ifdef WITH_CUDA
at::Tensor fps_cuda_checked(const at::Tensor& xyz, int64_t num_samples, const at::Tensor& lengths,
                            int64_t start_idx) {
  check_fps(xyz, num_samples, lengths, start_idx);
  return pcseg::fps_cuda(xyz, num_samples, lengths, start_idx);
}

std::tuple<at::Tensor, at::Tensor> knn_cuda_checked(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                                    const at::Tensor& query_lengths, const at::Tensor& ref_lengths) {
  check_pair(query, ref, query_lengths, ref_lengths, k);
  return pcseg::knn_cuda(query, ref, k, query_lengths, ref_lengths);
}

std::tuple<at::Tensor, at::Tensor> ring_knn_cuda_checked(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                                         double r_inner, double r_outer,
                                                         const at::Tensor& query_lengths,
                                                         const at::Tensor& ref_lengths) {
  check_pair(query, ref, query_lengths, ref_lengths, k);
  check_ring(r_inner, r_outer);
  return pcseg::ring_knn_cuda(query, ref, k, r_inner, r_outer, query_lengths, ref_lengths);
}
#endif

}  // namespace

TORCH_LIBRARY(pcseg, m) {
  m.def("fps(Tensor xyz, int num_samples, Tensor lengths, int start_idx) -> Tensor");
  m.def("knn(Tensor query, Tensor ref, int k, Tensor query_lengths, Tensor ref_lengths) -> (Tensor, Tensor)");
  m.def(
      "ring_knn(Tensor query, Tensor ref, int k, float r_inner, float r_outer, Tensor query_lengths, "
      "Tensor ref_lengths) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(pcseg, CPU, m) {
  m.impl("fps", &fps_cpu);
  m.impl("knn", &knn_cpu);
  m.impl("ring_knn", &ring_knn_cpu);
}

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(pcseg, CUDA, m) {
  m.impl("fps", &fps_cuda_checked);
  m.impl("knn", &knn_cuda_checked);
  m.impl("ring_knn", &ring_knn_cuda_checked);
}
#endif
