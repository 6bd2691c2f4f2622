// Depth-first k-best search of one query over a KD-tree's nodes, shared by the
// CPU kernel (knn_cpu.h) and the CUDA kernel of large clouds (knn_cuda.cu).
//
// The walk visits the nearer child first and prunes a node only when its box
// lower bound is strictly beyond the current k-th distance (an equal distance
// may still win on a lower index), so the result equals a brute-force scan
// with the same tie rule, whatever the tree's shape. The caller scans leaves
// (the CPU vectorises that loop, the GPU offers point by point) and owns the
// stack: depth + 2 entries suffice.
#pragma once

#include <cstdint>

#include "../common/kdtree.h"
#include "../common/point_math.h"

namespace pcseg {

// Maximum number of points per leaf of the kNN trees (CPU and CUDA).
constexpr int64_t kKnnLeafSize = 32;

// One pending node of the depth-first walk and its lower bound.
template <typename T>
struct StackEntry {
  int32_t node;
  T bound;
};

// Pushes the children of internal node nd with their lower bounds onto the
// stack, the farther first, so that the nearer one is searched first.
template <typename T>
PCSEG_HD void push_children(StackEntry<T>* stack, int& top, const KdNode<T>& nd, T lb_left, T lb_right) {
  if (lb_left <= lb_right) {
    stack[top++] = {nd.right, lb_right};
    stack[top++] = {nd.left, lb_left};
  } else {
    stack[top++] = {nd.left, lb_left};
    stack[top++] = {nd.right, lb_right};
  }
}

// k best (dist, idx) of query q, ascending, written to dist/idx (k,), which
// are overwritten; returns the number of real entries (the rest hold +inf, -1).
// A ring query (kRing) accepts only r_inner2 <= d2 < r_outer2 and also skips
// nodes entirely outside the annulus. scan_leaf(node, dist, idx) offers the
// leaf's points to the list. stack: at least the tree's depth + 2 entries.
template <typename T, bool kRing, typename ScanLeaf>
PCSEG_HD int64_t search_tree(const KdNode<T>* nodes, StackEntry<T>* stack, T qx, T qy, T qz, int64_t k,
                             T r_inner2, T r_outer2, T* dist, int64_t* idx, const ScanLeaf& scan_leaf) {
  for (int64_t j = 0; j < k; ++j) {
    dist[j] = infinity<T>();
    idx[j] = -1;
  }
  int top = 0;
  stack[top++] = {0, box_min_dist2(nodes[0], qx, qy, qz)};
  while (top > 0) {
    const StackEntry<T> entry = stack[--top];
    if (entry.bound > dist[k - 1]) continue;
    const KdNode<T>& nd = nodes[entry.node];
    if (kRing) {
      if (!(entry.bound < r_outer2)) continue;
      if (box_max_dist2(nd, qx, qy, qz) < r_inner2) continue;
    }
    if (nd.left < 0) {
      scan_leaf(nd, dist, idx);
      continue;
    }
    push_children(stack, top, nd, box_min_dist2(nodes[nd.left], qx, qy, qz),
                  box_min_dist2(nodes[nd.right], qx, qy, qz));
  }
  int64_t found = 0;
  while (found < k && idx[found] >= 0) ++found;
  return found;
}

}  // namespace pcseg
