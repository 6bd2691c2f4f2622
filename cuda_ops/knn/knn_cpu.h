// Exact k-nearest-neighbour and annulus (ring) queries on the CPU.
//
// Both walk a KD-tree of the reference cloud depth first, nearer child first,
// and prune a node only when its box lower bound is strictly beyond the
// current k-th neighbour (an equal distance may still win on a lower index),
// so the result equals a brute-force scan with the same tie rule.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "../common/kdtree.h"

namespace pcseg {

// Working memory of TreeSearch, one per thread, reused across its queries
// (owned by the caller: thread_local storage in a shared library costs a
// function call per access).
template <typename T>
struct SearchScratch {
  std::vector<std::pair<int32_t, T>> stack;
  std::vector<T> distances;
};

// Keeps the k best (dist, idx) of one query, ascending, in caller storage.
// A ring query additionally accepts only r_inner2 <= d2 < r_outer2.
template <typename T, bool kRing>
struct TreeSearch {
  const KdTree<T>& tree;
  int64_t k;
  T r_inner2, r_outer2;
  SearchScratch<T>& scratch;

  // dist/idx: (k,) output row, overwritten. Returns the number of real entries.
  int64_t run(T qx, T qy, T qz, T* dist, int64_t* idx) const {
    for (int64_t j = 0; j < k; ++j) {
      dist[j] = std::numeric_limits<T>::infinity();
      idx[j] = -1;
    }
    // Depth-first, two children pushed per node popped: depth + 2 slots suffice.
    std::vector<std::pair<int32_t, T>>& stack = scratch.stack;
    if (static_cast<int>(stack.size()) < tree.depth + 2) stack.resize(tree.depth + 2);
    int top = 0;
    stack[top++] = {0, tree.min_dist2(tree.nodes[0], qx, qy, qz)};
    while (top > 0) {
      const auto [id, lb] = stack[--top];
      if (lb > dist[k - 1]) continue;
      const KdNode<T>& nd = tree.nodes[id];
      if (kRing) {
        if (!(lb < r_outer2)) continue;
        if (tree.max_dist2(nd, qx, qy, qz) < r_inner2) continue;
      }
      if (nd.left < 0) {
        scan_leaf(nd, qx, qy, qz, dist, idx);
        continue;
      }
      // Push the farther child first so the nearer one is searched first.
      const T la = tree.min_dist2(tree.nodes[nd.left], qx, qy, qz);
      const T lb_right = tree.min_dist2(tree.nodes[nd.right], qx, qy, qz);
      if (la <= lb_right) {
        stack[top++] = {nd.right, lb_right};
        stack[top++] = {nd.left, la};
      } else {
        stack[top++] = {nd.left, la};
        stack[top++] = {nd.right, lb_right};
      }
    }
    int64_t found = 0;
    while (found < k && idx[found] >= 0) ++found;
    return found;
  }

 private:
  // Distances of the whole leaf first (a loop the compiler vectorises), then
  // the few that can enter the list are inserted.
  void scan_leaf(const KdNode<T>& nd, T qx, T qy, T qz, T* dist, int64_t* idx) const {
    std::vector<T>& buffer = scratch.distances;
    const int64_t n = nd.end - nd.begin;
    if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
    T* d = buffer.data();
    const T* px = tree.x.data() + nd.begin;
    const T* py = tree.y.data() + nd.begin;
    const T* pz = tree.z.data() + nd.begin;
    for (int64_t i = 0; i < n; ++i) d[i] = sq_dist<T>(px[i], py[i], pz[i], qx, qy, qz);
    for (int64_t i = 0; i < n; ++i) {
      if (kRing && !in_ring(d[i], r_inner2, r_outer2)) continue;
      if (d[i] <= dist[k - 1]) insert_sorted(dist, idx, k, d[i], tree.index[nd.begin + i]);
    }
  }
};

}  // namespace pcseg
