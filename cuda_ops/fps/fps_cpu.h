// Exact farthest point sampling on the CPU (plain C++ with OpenMP).
//
// The cloud is held in a KD-tree. Every node keeps the largest "distance to
// the sampled set" of its points (and the lowest index reaching it). After a
// new sample s is chosen, a node whose box is at least that far from s cannot
// change and is skipped with its whole subtree; this is the bucket pruning of
// QuickFPS / fpsample, applied to exact distances, so the result equals the
// plain O(N*M) algorithm bit for bit. The farthest point is the root's.
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
  void take(const FpsBest& other) {
    if (other.dist > dist || (other.dist == dist && other.index < index)) *this = other;
  }
};

template <typename T>
class FpsState {
 public:
  FpsState(const T* xyz, int64_t n, int64_t leaf_size)
      : tree_(xyz, n, leaf_size),
        mind_(n, std::numeric_limits<T>::infinity()),
        node_max_(tree_.nodes.size(), std::numeric_limits<T>::infinity()),
        node_arg_(tree_.nodes.size(), 0) {}

  // Updates the subtree of `node` with the new sample q; returns its farthest point.
  FpsBest<T> update(int32_t node, T qx, T qy, T qz) {
    const KdNode<T>& nd = tree_.nodes[node];
    if (!(tree_.min_dist2(nd, qx, qy, qz) >= node_max_[node])) {
      if (nd.left < 0) {
        update_leaf(node, qx, qy, qz);
      } else {
        FpsBest<T> best = update(nd.left, qx, qy, qz);
        best.take(update(nd.right, qx, qy, qz));
        set(node, best);
      }
    }
    return {node_max_[node], node_arg_[node]};
  }

  // Re-derives `node` from its children (after they were updated separately).
  FpsBest<T> merge(int32_t node) {
    const KdNode<T>& nd = tree_.nodes[node];
    FpsBest<T> best{node_max_[nd.left], node_arg_[nd.left]};
    best.take({node_max_[nd.right], node_arg_[nd.right]});
    set(node, best);
    return best;
  }

  // Nodes exactly `depth` levels below `node` (or leaves above that depth),
  // in left-to-right order, plus the internal nodes above them, children first.
  void split(int32_t node, int depth, std::vector<int32_t>& roots, std::vector<int32_t>& above) const {
    const KdNode<T>& nd = tree_.nodes[node];
    if (depth == 0 || nd.left < 0) {
      roots.push_back(node);
      return;
    }
    split(nd.left, depth - 1, roots, above);
    split(nd.right, depth - 1, roots, above);
    above.push_back(node);
  }

 private:
  void set(int32_t node, const FpsBest<T>& best) {
    node_max_[node] = best.dist;
    node_arg_[node] = best.index;
  }

  void update_leaf(int32_t node, T qx, T qy, T qz) {
    const KdNode<T>& nd = tree_.nodes[node];
    const T* px = tree_.x.data();
    const T* py = tree_.y.data();
    const T* pz = tree_.z.data();
    T* mind = mind_.data();
    T m = T(0);
    for (int64_t i = nd.begin; i < nd.end; ++i) {
      const T d = sq_dist<T>(px[i], py[i], pz[i], qx, qy, qz);
      const T v = d < mind[i] ? d : mind[i];
      mind[i] = v;
      m = v > m ? v : m;
    }
    int64_t arg = std::numeric_limits<int64_t>::max();
    for (int64_t i = nd.begin; i < nd.end; ++i)
      if (mind[i] == m && tree_.index[i] < arg) arg = tree_.index[i];
    node_max_[node] = m;
    node_arg_[node] = arg;
  }

  KdTree<T> tree_;
  std::vector<T> mind_;
  std::vector<T> node_max_;   // per node: largest distance to the sampled set below it
  std::vector<int64_t> node_arg_;  // and the lowest original index reaching it
};

// Samples m points of the cloud xyz (n, 3) into out (m,), starting at start.
// threads > 1 gives every thread its own subtrees of each iteration.
template <typename T>
void fps_cloud(const T* xyz, int64_t n, int64_t m, int64_t start, int64_t* out, int threads,
               int64_t leaf_size) {
  FpsState<T> state(xyz, n, leaf_size);
  out[0] = start;
#ifdef _OPENMP
  if (threads > 1 && n >= (int64_t(1) << 18)) {  // below that the barriers cost more than they save
    std::vector<int32_t> roots, above;
    int depth = 0;
    while ((1 << depth) < 4 * threads) ++depth;
    state.split(0, depth, roots, above);
    const int64_t R = static_cast<int64_t>(roots.size());
#pragma omp parallel num_threads(threads)
    for (int64_t s = 1; s < m; ++s) {
      const int64_t last = out[s - 1];
      const T qx = xyz[3 * last], qy = xyz[3 * last + 1], qz = xyz[3 * last + 2];
#pragma omp for schedule(dynamic, 1)
      for (int64_t r = 0; r < R; ++r) state.update(roots[r], qx, qy, qz);
#pragma omp single
      {
        FpsBest<T> best{};
        for (int32_t node : above) best = state.merge(node);
        out[s] = best.index;
      }  // implicit barrier
    }
    return;
  }
#endif
  (void)threads;
  for (int64_t s = 1; s < m; ++s) {
    const int64_t last = out[s - 1];
    out[s] = state.update(0, xyz[3 * last], xyz[3 * last + 1], xyz[3 * last + 2]).index;
  }
}

}  // namespace pcseg
