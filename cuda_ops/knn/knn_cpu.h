// Exact k-nearest-neighbour and annulus (ring) queries on the CPU.
//
// Both walk a KD-tree of the reference cloud with search_tree (tree_search.h,
// shared with the CUDA kernel of large clouds), leaves scanned by a loop the
// compiler vectorises.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "../common/kdtree.h"
#include "tree_search.h"

namespace pcseg {

// Working memory of TreeSearch, one per thread, reused across its queries
// (owned by the caller: thread_local storage in a shared library costs a
// function call per access).
template <typename T>
struct SearchScratch {
  std::vector<StackEntry<T>> stack;
  std::vector<T> distances;
};

// Offers every point of leaf nd to the k-best list (dist, idx) of query q:
// the distances of the whole leaf first (a loop the compiler vectorises, into
// buffer), then the few that can enter the list are inserted. A ring query
// accepts only r_inner2 <= d2 < r_outer2.
template <typename T, bool kRing>
void scan_leaf_into(const KdTree<T>& tree, const KdNode<T>& nd, T qx, T qy, T qz, int64_t k, T r_inner2,
                    T r_outer2, std::vector<T>& buffer, T* dist, int64_t* idx) {
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
    std::vector<StackEntry<T>>& stack = scratch.stack;
    if (static_cast<int>(stack.size()) < tree.depth + 2) stack.resize(tree.depth + 2);
    const auto scan_leaf = [&](const KdNode<T>& nd, T* d, int64_t* i) {
      scan_leaf_into<T, kRing>(tree, nd, qx, qy, qz, k, r_inner2, r_outer2, scratch.distances, d, i);
    };
    return search_tree<T, kRing>(tree.nodes.data(), stack.data(), qx, qy, qz, k, r_inner2, r_outer2, dist, idx,
                                 scan_leaf);
  }
};

// Lower bound of the squared distance between a point of box a and a point of
// box b (0 when they overlap). Rounding is monotonic, so it is <= sq_dist of
// any such pair as sq_dist computes it: a safe bound for pruning.
template <typename T>
T box_gap2(const KdNode<T>& a, const KdNode<T>& b) {
  T g[3];
  for (int d = 0; d < 3; ++d)
    g[d] = b.lo[d] > a.hi[d] ? b.lo[d] - a.hi[d] : (a.lo[d] > b.hi[d] ? a.lo[d] - b.hi[d] : T(0));
  return sum_sq<T>(g[0], g[1], g[2]);
}

// k nearest neighbours of every point of one leaf of the tree among the
// tree's own points (a cloud queried against itself), in one traversal for
// the whole leaf: a node is pruned when its box is strictly farther from the
// leaf's box than the largest current k-th distance of the leaf's queries,
// and a leaf is scanned for a query only when its box is not strictly beyond
// that query's own k-th distance. No pruned point could enter a list, so the
// result equals TreeSearch's for each query; the traversal is paid once per
// leaf instead of once per point.
template <typename T>
struct LeafSelfSearch {
  const KdTree<T>& tree;
  int64_t k;
  SearchScratch<T>& scratch;

  // dist/idx: (leaf points, k) rows, overwritten, one per point of the leaf in tree order.
  void run(const KdNode<T>& leaf, T* dist, int64_t* idx) const {
    const int64_t m = leaf.end - leaf.begin;
    for (int64_t j = 0; j < m * k; ++j) {
      dist[j] = std::numeric_limits<T>::infinity();
      idx[j] = -1;
    }
    std::vector<StackEntry<T>>& stack = scratch.stack;
    if (static_cast<int>(stack.size()) < tree.depth + 2) stack.resize(tree.depth + 2);
    int top = 0;
    stack[top++] = {0, box_gap2(leaf, tree.nodes[0])};
    T worst = std::numeric_limits<T>::infinity();  // largest k-th distance of the leaf's queries
    while (top > 0) {
      const StackEntry<T> entry = stack[--top];
      if (entry.bound > worst) continue;
      const KdNode<T>& nd = tree.nodes[entry.node];
      if (nd.left < 0) {
        worst = T(0);
        for (int64_t j = 0; j < m; ++j) {
          const int64_t s = leaf.begin + j;
          const T qx = tree.x[s], qy = tree.y[s], qz = tree.z[s];
          T* drow = dist + j * k;
          if (!(tree.min_dist2(nd, qx, qy, qz) > drow[k - 1]))
            scan_leaf_into<T, false>(tree, nd, qx, qy, qz, k, T(0), T(0), scratch.distances, drow, idx + j * k);
          worst = drow[k - 1] > worst ? drow[k - 1] : worst;
        }
        continue;
      }
      push_children(stack.data(), top, nd, box_gap2(leaf, tree.nodes[nd.left]), box_gap2(leaf, tree.nodes[nd.right]));
    }
  }
};

}  // namespace pcseg
