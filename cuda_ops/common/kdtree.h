// KD-tree over one point cloud (CPU only, plain C++), split at the middle of
// the longest box axis.
//
// Points are copied into structure-of-arrays order grouped by leaf; each node
// stores the tight bounding box of its points; index[] maps back to the
// original point order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "point_math.h"

namespace pcseg {

template <typename T>
struct KdNode {
  T lo[3], hi[3];
  int64_t begin, end;   // range in the tree's point order
  int32_t left, right;  // children, -1 for a leaf
};

template <typename T>
struct KdTree {
  std::vector<T> x, y, z;         // coordinates in tree order
  std::vector<int64_t> index;     // original index of each point in tree order
  std::vector<KdNode<T>> nodes;   // nodes[0] is the root
  int depth = 0;                  // number of edges on the longest root-to-leaf path

  // xyz: (n, 3) row-major, n >= 1; leaf_size: maximum number of points per
  // leaf (leaves of identical points may be larger).
  KdTree(const T* xyz, int64_t n, int64_t leaf_size) : x(n), y(n), z(n), index(n) {
    for (int64_t i = 0; i < n; ++i) {
      x[i] = xyz[3 * i];
      y[i] = xyz[3 * i + 1];
      z[i] = xyz[3 * i + 2];
      index[i] = i;
    }
    nodes.reserve(4 * (n / std::max<int64_t>(leaf_size, 1)) + 2);
    build(0, n, leaf_size, 0);
  }

  // Lower / upper bound of the squared distance from q to node's points.
  PCSEG_HD T min_dist2(const KdNode<T>& nd, T qx, T qy, T qz) const {
    return sum_sq<T>(gap_to_interval(qx, nd.lo[0], nd.hi[0]), gap_to_interval(qy, nd.lo[1], nd.hi[1]),
                     gap_to_interval(qz, nd.lo[2], nd.hi[2]));
  }
  PCSEG_HD T max_dist2(const KdNode<T>& nd, T qx, T qy, T qz) const {
    return sum_sq<T>(far_to_interval(qx, nd.lo[0], nd.hi[0]), far_to_interval(qy, nd.lo[1], nd.hi[1]),
                     far_to_interval(qz, nd.lo[2], nd.hi[2]));
  }

 private:
  T* axis_data(int a) { return a == 0 ? x.data() : (a == 1 ? y.data() : z.data()); }

  // Splits [begin, end) at the middle of its box's longest axis (sliding
  // midpoint): one bounding-box pass and one partition pass per level, both
  // sequential, which keeps the build cheap next to a median split.
  int32_t build(int64_t begin, int64_t end, int64_t leaf_size, int level) {
    const int32_t id = static_cast<int32_t>(nodes.size());
    nodes.push_back(KdNode<T>{});
    depth = std::max(depth, level);
    KdNode<T> nd;
    nd.begin = begin;
    nd.end = end;
    nd.left = nd.right = -1;
    for (int a = 0; a < 3; ++a) min_max(axis_data(a), begin, end, nd.lo[a], nd.hi[a]);
    int axis = 0;
    for (int a = 1; a < 3; ++a)
      if (nd.hi[a] - nd.lo[a] > nd.hi[axis] - nd.lo[axis]) axis = a;
    if (end - begin <= leaf_size || nd.hi[axis] == nd.lo[axis]) {
      nodes[id] = nd;
      return id;
    }
    // Points at the low end are always left and at the high end right, so
    // both sides are non-empty even when the midpoint rounds onto lo.
    const T cut = nd.lo[axis] + (nd.hi[axis] - nd.lo[axis]) / T(2);
    const int64_t mid = partition(begin, end, axis, [cut, lo = nd.lo[axis]](T v) { return (v < cut) | (v == lo); });
    nd.left = build(begin, mid, leaf_size, level + 1);
    nd.right = build(mid, end, leaf_size, level + 1);
    nodes[id] = nd;
    return id;
  }

  // Branch-free Lomuto partition: every point is swapped with the first
  // right-side slot and the boundary advances only for left points (data-
  // dependent branches would mispredict about half the time).
  template <typename Pred>
  int64_t partition(int64_t begin, int64_t end, int axis, Pred goes_left) {
    const T* c = axis_data(axis);
    int64_t mid = begin;
    for (int64_t i = begin; i < end; ++i) {
      const bool left = goes_left(c[i]);
      const T xi = x[i], yi = y[i], zi = z[i];
      const int64_t ii = index[i];
      x[i] = x[mid], y[i] = y[mid], z[i] = z[mid], index[i] = index[mid];
      x[mid] = xi, y[mid] = yi, z[mid] = zi, index[mid] = ii;
      mid += left;
    }
    return mid;
  }

  // Minimum and maximum of c[begin, end) with 8 independent accumulators
  // (min/max are exact, so the order does not matter; this lets it vectorise).
  static void min_max(const T* c, int64_t begin, int64_t end, T& lo, T& hi) {
    T l[8], h[8];
    for (int j = 0; j < 8; ++j) l[j] = h[j] = c[begin];
    int64_t i = begin;
    for (; i + 8 <= end; i += 8)
      for (int j = 0; j < 8; ++j) {
        l[j] = c[i + j] < l[j] ? c[i + j] : l[j];
        h[j] = c[i + j] > h[j] ? c[i + j] : h[j];
      }
    for (; i < end; ++i) {
      l[0] = c[i] < l[0] ? c[i] : l[0];
      h[0] = c[i] > h[0] ? c[i] : h[0];
    }
    lo = l[0], hi = h[0];
    for (int j = 1; j < 8; ++j) lo = l[j] < lo ? l[j] : lo, hi = h[j] > hi ? h[j] : hi;
  }
};

}  // namespace pcseg
