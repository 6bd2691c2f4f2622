// Per-point arithmetic shared by the CPU (C++) and CUDA kernels.
//
// Every distance in pcseg is computed by sq_dist() below, in the input dtype,
// as ((dx*dx + dy*dy) + dz*dz) with dx = a.x - b.x, each operation rounded
// separately (no fused multiply-add: the CPU build passes -ffp-contract=off,
// the device code uses the explicitly rounded intrinsics). This is what makes
// CPU and CUDA results bitwise identical and equal to the numpy reference.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define PCSEG_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define PCSEG_HD inline __attribute__((always_inline))
#else
#define PCSEG_HD inline
#endif

namespace pcseg {

PCSEG_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
PCSEG_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
PCSEG_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
PCSEG_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// +infinity in dtype T, usable in host and device code.
template <typename T>
PCSEG_HD T infinity() {
  return static_cast<T>(INFINITY);
}

// Squared distance of the sum of three per-axis offsets (see file comment).
template <typename T>
PCSEG_HD T sum_sq(T dx, T dy, T dz) {
  return add_rn(add_rn(mul_rn(dx, dx), mul_rn(dy, dy)), mul_rn(dz, dz));
}

// Squared Euclidean distance between (ax, ay, az) and (bx, by, bz).
template <typename T>
PCSEG_HD T sq_dist(T ax, T ay, T az, T bx, T by, T bz) {
  return sum_sq<T>(ax - bx, ay - by, az - bz);
}

// Offset of coordinate q from the interval [lo, hi] (0 inside). Because
// rounding is monotonic, sum_sq of these offsets is <= sq_dist to any point
// of the box as computed by sq_dist: a safe lower bound for pruning.
template <typename T>
PCSEG_HD T gap_to_interval(T q, T lo, T hi) {
  return q < lo ? lo - q : (q > hi ? q - hi : T(0));
}

// Largest offset of q from [lo, hi]; sum_sq of these is a safe upper bound.
template <typename T>
PCSEG_HD T far_to_interval(T q, T lo, T hi) {
  const T a = q - lo, b = hi - q;
  const T fa = a < T(0) ? -a : a, fb = b < T(0) ? -b : b;
  return fa > fb ? fa : fb;
}

// Neighbour order: smaller distance first, ties by lower index.
template <typename T>
PCSEG_HD bool closer(T d, int64_t i, T d_other, int64_t i_other) {
  return d < d_other || (d == d_other && i < i_other);
}

// Inserts (d, i) into the ascending list (dist, idx) of length k when it ranks
// among the k best; the list is initialised with (+inf, -1) entries.
template <typename T>
PCSEG_HD void insert_sorted(T* dist, int64_t* idx, int64_t k, T d, int64_t i) {
  if (!closer(d, i, dist[k - 1], idx[k - 1] < 0 ? INT64_MAX : idx[k - 1])) return;
  int64_t j = k - 1;
  while (j > 0 && closer(d, i, dist[j - 1], idx[j - 1] < 0 ? INT64_MAX : idx[j - 1])) {
    dist[j] = dist[j - 1];
    idx[j] = idx[j - 1];
    --j;
  }
  dist[j] = d;
  idx[j] = i;
}

// Annulus membership with the squared radii already computed in dtype T.
template <typename T>
PCSEG_HD bool in_ring(T d2, T r_inner2, T r_outer2) {
  return d2 >= r_inner2 && d2 < r_outer2;
}

// A-CNN fill rule of one ring row: slots [count, k) repeat the first member;
// an empty ring (count == 0) repeats `nearest` everywhere.
PCSEG_HD void fill_ring_row(int64_t* idx, int64_t k, int64_t count, int64_t nearest) {
  const int64_t fill = count > 0 ? idx[0] : nearest;
  for (int64_t j = count; j < k; ++j) idx[j] = fill;
}

}  // namespace pcseg
