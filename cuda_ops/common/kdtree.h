// KD-tree over one point cloud, built on the CPU in Morton order. Its nodes are
// plain data, so a CUDA kernel can search a copy of them (knn/knn_cuda.cu).
//
// Points are sorted by the Morton code of their coordinates (10 bits per axis,
// quantised over the cloud's bounding cube, LSD radix sort): the code's bits
// alternate x, y, z, so a node split at the highest bit in which its points
// differ cuts its cell at the middle of one axis (an octree-like k-d split).
// A node is then a range of the sorted order and is split by a binary
// search, so no level moves any point (a midpoint-partition build streams the
// whole cloud through memory once per level). Each node stores the tight
// bounding box of its points (leaves scan theirs, internal nodes take the
// union of their children); index[] maps back to the original point order.
// A Morton cell (cube side / 1024) with more than leaf_size points is split
// further at the middle of its box's longest axis (sliding midpoint). Leaves
// hold at most leaf_size points unless their points are identical.
#pragma once

#include <algorithm>
#include <array>
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

// Lower bound of the squared distance from q to any point of node nd (0 inside
// its box), safe for pruning (see gap_to_interval); host and device code.
template <typename T>
PCSEG_HD T box_min_dist2(const KdNode<T>& nd, T qx, T qy, T qz) {
  return sum_sq<T>(gap_to_interval(qx, nd.lo[0], nd.hi[0]), gap_to_interval(qy, nd.lo[1], nd.hi[1]),
                   gap_to_interval(qz, nd.lo[2], nd.hi[2]));
}

// Upper bound of the squared distance from q to any point of node nd.
template <typename T>
PCSEG_HD T box_max_dist2(const KdNode<T>& nd, T qx, T qy, T qz) {
  return sum_sq<T>(far_to_interval(qx, nd.lo[0], nd.hi[0]), far_to_interval(qy, nd.lo[1], nd.hi[1]),
                   far_to_interval(qz, nd.lo[2], nd.hi[2]));
}

template <typename T>
struct KdTree {
  std::vector<T> x, y, z;         // coordinates in tree order
  std::vector<int64_t> index;     // original index of each point in tree order
  std::vector<KdNode<T>> nodes;   // nodes[0] is the root
  int depth = 0;                  // number of edges on the longest root-to-leaf path

  // xyz: (n, 3) row-major, n >= 1; leaf_size: maximum number of points per
  // leaf (leaves of points sharing a Morton code may be larger).
  KdTree(const T* xyz, int64_t n, int64_t leaf_size) : x(n), y(n), z(n), index(n) {
    std::vector<uint64_t> code = morton_codes(xyz, n);
    radix_sort(code, index);
    for (int64_t s = 0; s < n; ++s) {
      const int64_t i = index[s];
      x[s] = xyz[3 * i], y[s] = xyz[3 * i + 1], z[s] = xyz[3 * i + 2];
    }
    nodes.reserve(4 * (n / std::max<int64_t>(leaf_size, 1)) + 2);
    build(code, 0, n, kMortonBits * 3 - 1, std::max<int64_t>(leaf_size, 1), 0);
  }

  // Lower / upper bound of the squared distance from q to node's points.
  T min_dist2(const KdNode<T>& nd, T qx, T qy, T qz) const { return box_min_dist2(nd, qx, qy, qz); }
  T max_dist2(const KdNode<T>& nd, T qx, T qy, T qz) const { return box_max_dist2(nd, qx, qy, qz); }

 private:
  static constexpr int kMortonBits = 10;  // per axis: 30-bit codes
  static constexpr int kRadixBits = 10;   // per radix-sort pass

  // Morton code of every point: coordinates quantised to 2^kMortonBits steps over the
  // bounding cube (side = the longest extent), bits interleaved x, y, z.
  static std::vector<uint64_t> morton_codes(const T* xyz, int64_t n) {
    double lo[3], hi[3];
    for (int a = 0; a < 3; ++a) lo[a] = hi[a] = xyz[a];
    for (int64_t i = 1; i < n; ++i)
      for (int a = 0; a < 3; ++a) {
        const double v = xyz[3 * i + a];
        lo[a] = v < lo[a] ? v : lo[a];
        hi[a] = v > hi[a] ? v : hi[a];
      }
    const double side = std::max({hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]});
    const double top = double((uint64_t(1) << kMortonBits) - 1);
    const double scale = side > 0 ? top / side : 0.0;
    std::vector<uint64_t> code(n);
    for (int64_t i = 0; i < n; ++i) {
      uint64_t c = 0;
      for (int a = 0; a < 3; ++a) {
        const double q = std::min(top, std::max(0.0, (double(xyz[3 * i + a]) - lo[a]) * scale));
        c |= spread_bits(static_cast<uint64_t>(q)) << (2 - a);
      }
      code[i] = c;
    }
    return code;
  }

  // The low 21 bits of v moved to every third bit (bit i to bit 3i).
  static uint64_t spread_bits(uint64_t v) {
    v &= 0x1fffff;
    v = (v | v << 32) & 0x1f00000000ffffULL;
    v = (v | v << 16) & 0x1f0000ff0000ffULL;
    v = (v | v << 8) & 0x100f00f00f00f00fULL;
    v = (v | v << 4) & 0x10c30c30c30c30c3ULL;
    v = (v | v << 2) & 0x1249249249249249ULL;
    return v;
  }

  // Stable LSD radix sort of code; order receives the original positions
  // (ties keep index order). Passes whose digit is the same for all codes
  // are skipped.
  static void radix_sort(std::vector<uint64_t>& code, std::vector<int64_t>& order) {
    const int64_t n = static_cast<int64_t>(code.size());
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    std::vector<uint64_t> code2(n);
    std::vector<int64_t> order2(n);
    constexpr int64_t kBuckets = int64_t(1) << kRadixBits;
    for (int shift = 0; shift < kMortonBits * 3; shift += kRadixBits) {
      std::array<int64_t, kBuckets + 1> start{};
      for (uint64_t c : code) ++start[((c >> shift) & (kBuckets - 1)) + 1];
      if (*std::max_element(start.begin(), start.end()) == n) continue;
      for (int64_t b = 0; b < kBuckets; ++b) start[b + 1] += start[b];
      for (int64_t i = 0; i < n; ++i) {
        const int64_t to = start[(code[i] >> shift) & (kBuckets - 1)]++;
        code2[to] = code[i];
        order2[to] = order[i];
      }
      code.swap(code2);
      order.swap(order2);
    }
  }

  // Reserves the slot of a node over [begin, end) at `level` (filled in by the
  // caller once its children exist) and starts `nd` as a leaf of that range.
  int32_t add_node(int64_t begin, int64_t end, int level, KdNode<T>& nd) {
    const int32_t id = static_cast<int32_t>(nodes.size());
    nodes.push_back(KdNode<T>{});
    depth = std::max(depth, level);
    nd.begin = begin;
    nd.end = end;
    nd.left = nd.right = -1;
    return id;
  }

  // Node over the sorted range [begin, end), whose codes agree above `bit`.
  int32_t build(const std::vector<uint64_t>& code, int64_t begin, int64_t end, int bit, int64_t leaf_size,
                int level) {
    KdNode<T> nd;
    const int32_t id = add_node(begin, end, level, nd);
    int64_t mid = begin;
    while (end - begin > leaf_size && bit >= 0) {  // the highest bit that splits the range
      mid = std::partition_point(code.begin() + begin, code.begin() + end,
                                 [bit](uint64_t c) { return ((c >> bit) & 1) == 0; }) - code.begin();
      if (mid != begin && mid != end) break;
      --bit;
    }
    if (end - begin > leaf_size && bit < 0) {  // one Morton cell holds too many points
      nodes.pop_back();
      return build_midpoint(begin, end, leaf_size, level);
    }
    if (end - begin <= leaf_size) {
      for (int a = 0; a < 3; ++a) min_max(axis_data(a), begin, end, nd.lo[a], nd.hi[a]);
    } else {
      nd.left = build(code, begin, mid, bit - 1, leaf_size, level + 1);
      nd.right = build(code, mid, end, bit - 1, leaf_size, level + 1);
      const KdNode<T>&l = nodes[nd.left], &r = nodes[nd.right];
      for (int a = 0; a < 3; ++a) nd.lo[a] = std::min(l.lo[a], r.lo[a]), nd.hi[a] = std::max(l.hi[a], r.hi[a]);
    }
    nodes[id] = nd;
    return id;
  }

  T* axis_data(int a) { return a == 0 ? x.data() : (a == 1 ? y.data() : z.data()); }

  // Below the Morton resolution: splits [begin, end) at the middle of its
  // box's longest axis (sliding midpoint), one bounding-box pass and one
  // partition pass per level.
  int32_t build_midpoint(int64_t begin, int64_t end, int64_t leaf_size, int level) {
    KdNode<T> nd;
    const int32_t id = add_node(begin, end, level, nd);
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
    nd.left = build_midpoint(begin, mid, leaf_size, level + 1);
    nd.right = build_midpoint(mid, end, leaf_size, level + 1);
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
