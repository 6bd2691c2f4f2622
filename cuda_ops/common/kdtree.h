// Balanced KD-tree over one point cloud (CPU only, plain C++).
//
// Points are copied into structure-of-arrays order grouped by leaf; each node
// stores the tight bounding box of its points. Within a leaf the points are in
// ascending original index, which lets FPS break ties by the lowest index
// with a forward scan.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
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
  std::vector<int32_t> leaves;    // node ids of the leaves, left to right

  // xyz: (n, 3) row-major; leaf_size: maximum number of points per leaf.
  KdTree(const T* xyz, int64_t n, int64_t leaf_size) : index(n) {
    std::iota(index.begin(), index.end(), int64_t(0));
    nodes.reserve(2 * (n / std::max<int64_t>(leaf_size / 2, 1)) + 2);
    build(xyz, 0, n, leaf_size);
    x.resize(n);
    y.resize(n);
    z.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = xyz[3 * index[i]];
      y[i] = xyz[3 * index[i] + 1];
      z[i] = xyz[3 * index[i] + 2];
    }
  }

  // Lower / upper bound of the squared distance from q to node's points.
  T min_dist2(const KdNode<T>& nd, T qx, T qy, T qz) const {
    return sum_sq<T>(gap_to_interval(qx, nd.lo[0], nd.hi[0]), gap_to_interval(qy, nd.lo[1], nd.hi[1]),
                     gap_to_interval(qz, nd.lo[2], nd.hi[2]));
  }
  T max_dist2(const KdNode<T>& nd, T qx, T qy, T qz) const {
    return sum_sq<T>(far_to_interval(qx, nd.lo[0], nd.hi[0]), far_to_interval(qy, nd.lo[1], nd.hi[1]),
                     far_to_interval(qz, nd.lo[2], nd.hi[2]));
  }

 private:
  int32_t build(const T* xyz, int64_t begin, int64_t end, int64_t leaf_size) {
    const int32_t id = static_cast<int32_t>(nodes.size());
    nodes.push_back(KdNode<T>{});
    KdNode<T> nd;
    nd.begin = begin;
    nd.end = end;
    nd.left = nd.right = -1;
    for (int a = 0; a < 3; ++a) {
      nd.lo[a] = xyz[3 * index[begin] + a];
      nd.hi[a] = nd.lo[a];
    }
    for (int64_t i = begin + 1; i < end; ++i) {
      for (int a = 0; a < 3; ++a) {
        const T v = xyz[3 * index[i] + a];
        nd.lo[a] = std::min(nd.lo[a], v);
        nd.hi[a] = std::max(nd.hi[a], v);
      }
    }
    int axis = 0;
    for (int a = 1; a < 3; ++a)
      if (nd.hi[a] - nd.lo[a] > nd.hi[axis] - nd.lo[axis]) axis = a;
    if (end - begin <= leaf_size || nd.hi[axis] == nd.lo[axis]) {
      std::sort(index.begin() + begin, index.begin() + end);
      leaves.push_back(id);
      nodes[id] = nd;
      return id;
    }
    const int64_t mid = begin + (end - begin) / 2;
    std::nth_element(index.begin() + begin, index.begin() + mid, index.begin() + end,
                     [&](int64_t a, int64_t b) { return xyz[3 * a + axis] < xyz[3 * b + axis]; });
    nd.left = build(xyz, begin, mid, leaf_size);
    nd.right = build(xyz, mid, end, leaf_size);
    nodes[id] = nd;
    return id;
  }
};

}  // namespace pcseg
