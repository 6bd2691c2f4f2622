// Exact farthest point sampling on the CPU (plain C++ with OpenMP).
//
// The cloud is split into KD-tree leaves. Each leaf keeps the largest
// "distance to the sampled set" of its points (and the lowest index reaching
// it). After a new sample s is chosen, a leaf whose box is at least that far
// from s cannot change and is skipped; this is the bucket pruning of
// QuickFPS / fpsample, applied to exact distances, so the result equals the
// plain O(N*M) algorithm bit for bit.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common/kdtree.h"

namespace pcseg {

template <typename T>
struct FpsBest {
  T dist;
  int64_t index;  // original index; ties go to the lower one
  void take(T d, int64_t i) {
    if (d > dist || (d == dist && i < index)) {
      dist = d;
      index = i;
    }
  }
};

template <typename T>
class FpsState {
 public:
  FpsState(const T* xyz, int64_t n, int64_t leaf_size)
      : tree_(xyz, n, leaf_size),
        mind_(n, std::numeric_limits<T>::infinity()),
        leaf_max_(tree_.leaves.size(), std::numeric_limits<T>::infinity()),
        leaf_arg_(tree_.leaves.size(), 0) {}

  int64_t num_leaves() const { return static_cast<int64_t>(tree_.leaves.size()); }

  // Updates leaves [l0, l1) with the new sample (qx, qy, qz) and returns the
  // farthest point among them.
  FpsBest<T> update(int64_t l0, int64_t l1, T qx, T qy, T qz) {
    FpsBest<T> best{-std::numeric_limits<T>::infinity(), std::numeric_limits<int64_t>::max()};
    const T* px = tree_.x.data();
    const T* py = tree_.y.data();
    const T* pz = tree_.z.data();
    T* mind = mind_.data();
    for (int64_t l = l0; l < l1; ++l) {
      const KdNode<T>& nd = tree_.nodes[tree_.leaves[l]];
      if (!(tree_.min_dist2(nd, qx, qy, qz) >= leaf_max_[l])) {
        T m = T(0);
        for (int64_t i = nd.begin; i < nd.end; ++i) {
          const T d = sq_dist<T>(px[i], py[i], pz[i], qx, qy, qz);
          const T v = d < mind[i] ? d : mind[i];
          mind[i] = v;
          m = v > m ? v : m;
        }
        int64_t i = nd.begin;
        while (mind[i] != m) ++i;  // first in the leaf = lowest original index
        leaf_max_[l] = m;
        leaf_arg_[l] = tree_.index[i];
      }
      best.take(leaf_max_[l], leaf_arg_[l]);
    }
    return best;
  }

 private:
  KdTree<T> tree_;
  std::vector<T> mind_;
  std::vector<T> leaf_max_;
  std::vector<int64_t> leaf_arg_;
};

// Samples m points of the cloud xyz (n, 3) into out (m,), starting at start.
// threads > 1 splits the leaves of every iteration between OpenMP threads.
template <typename T>
void fps_cloud(const T* xyz, int64_t n, int64_t m, int64_t start, int64_t* out, int threads,
               int64_t leaf_size) {
  FpsState<T> state(xyz, n, leaf_size);
  out[0] = start;
  if (m == 1) return;
  const int64_t L = state.num_leaves();
#ifdef _OPENMP
  if (threads > 1 && L >= 4 * threads) {
    std::vector<FpsBest<T>> partial(threads);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      const int nt = omp_get_num_threads();
      const int64_t l0 = L * t / nt, l1 = L * (t + 1) / nt;
      for (int64_t s = 1; s < m; ++s) {
        const int64_t last = out[s - 1];
        partial[t] = state.update(l0, l1, xyz[3 * last], xyz[3 * last + 1], xyz[3 * last + 2]);
#pragma omp barrier
#pragma omp single
        {
          FpsBest<T> best = partial[0];
          for (int u = 1; u < nt; ++u) best.take(partial[u].dist, partial[u].index);
          out[s] = best.index;
        }  // implicit barrier
      }
    }
    return;
  }
#endif
  (void)threads;
  for (int64_t s = 1; s < m; ++s) {
    const int64_t last = out[s - 1];
    out[s] = state.update(0, L, xyz[3 * last], xyz[3 * last + 1], xyz[3 * last + 2]).index;
  }
}

}  // namespace pcseg
