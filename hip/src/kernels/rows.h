// What the softmax, normalization and loss families (softmax.hip, norm.hip, loss.hip) share:
// element access (ldE / stE by a compile-time float type, ldAny / stAny by a run-time one), the
// shared-memory block reductions, and the checks their lowerings make.
//
// Float element types only (float32, float64, float16, bfloat16). Sums accumulate in double. Where
// the ref computes float32 in float (LayerNormalization, InstanceNormalization and
// GroupNormalization statistics and their affine step, BatchNormalization's affine step, softmax
// exponentials) these families do too, from double sums; everything else computes in double and
// rounds once on store.
//
// A row (the elements one statistic covers) is reduced by one block with a shared-memory tree
// when it is contiguous or long; rows strided along an inner dim are handled one per thread
// (neighbouring threads read neighbouring elements) when there are many of them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "device.h"

namespace kiln {

/** Contiguous rows shorter than this run one per thread rather than one per block. */
constexpr int64_t kBlockMin = 128;

// ---- element access ----

template <int DT>
KILN_HD double ldE(const void* p, int64_t i) {
  switch (DT) {
    case DT_FLOAT: return static_cast<const float*>(p)[i];
    case DT_DOUBLE: return static_cast<const double*>(p)[i];
    case DT_FLOAT16: return f16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_BFLOAT16: return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
    default: return 0;
  }
}

template <int DT>
KILN_HD void stE(void* p, int64_t i, double v) {
  switch (DT) {
    case DT_FLOAT: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DT_DOUBLE: static_cast<double*>(p)[i] = v; break;
    case DT_FLOAT16: static_cast<uint16_t*>(p)[i] = f32ToF16(static_cast<float>(v)); break;
    case DT_BFLOAT16: static_cast<uint16_t*>(p)[i] = f32ToBf16(static_cast<float>(v)); break;
    default: break;
  }
}

/** Element i of a value of run-time type dt (float types, int32/int64) as double. */
KILN_HD double ldAny(const void* p, int64_t i, int dt) {
  switch (dt) {
    case DT_FLOAT: return static_cast<const float*>(p)[i];
    case DT_DOUBLE: return static_cast<const double*>(p)[i];
    case DT_FLOAT16: return f16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_BFLOAT16: return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_INT32: return static_cast<const int32_t*>(p)[i];
    case DT_INT64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    default: return 0;
  }
}

KILN_HD void stAny(void* p, int64_t i, int dt, double v) {
  switch (dt) {
    case DT_FLOAT: stE<DT_FLOAT>(p, i, v); break;
    case DT_DOUBLE: stE<DT_DOUBLE>(p, i, v); break;
    case DT_FLOAT16: stE<DT_FLOAT16>(p, i, v); break;
    case DT_BFLOAT16: stE<DT_BFLOAT16>(p, i, v); break;
    default: break;
  }
}

#define KILN_NORM_TYPES(X) X(DT_FLOAT) X(DT_DOUBLE) X(DT_FLOAT16) X(DT_BFLOAT16)

// ---- block reductions (shared-memory trees over kThreads, a power of two) ----

enum : int { M_SUM = 0, M_MAX = 1 };

KILN_DEVICE double blockMerge(int op, double v, double* sh) {
  const int t = static_cast<int>(threadIdx.x);
  sh[t] = v;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] = op == M_MAX ? nanMax(sh[t], sh[t + s]) : sh[t] + sh[t + s];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

/** Two sums at once. */
KILN_DEVICE void blockSum2(double& a, double& b, double* sh) {
  const int t = static_cast<int>(threadIdx.x);
  const int n = static_cast<int>(blockDim.x);
  sh[t] = a;
  sh[n + t] = b;
  __syncthreads();
  for (int s = n / 2; s > 0; s >>= 1) {
    if (t < s) {
      sh[t] += sh[t + s];
      sh[n + t] += sh[n + t + s];
    }
    __syncthreads();
  }
  a = sh[0];
  b = sh[n];
  __syncthreads();
}

// ---- lowering checks ----

inline bool requireFloat(const NodeView& v, int n, std::string& why) {
  for (int i = 0; i < n; i++) {
    if (!v.has(i)) {
      why = "input " + std::to_string(i) + " is absent";
      return false;
    }
    if (!floatType(v.in(i).dtype)) {
      why = std::string("element type ") + dtypeName(v.in(i).dtype);
      return false;
    }
  }
  return true;
}

inline int64_t prodDims(const std::vector<int64_t>& d, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to && i < d.size(); i++) n *= d[i];
  return n;
}

inline bool normAxis(int64_t a, int r, int& out) {
  const int64_t v = a < 0 ? a + r : a;
  if (v < 0 || v >= r) return false;
  out = static_cast<int>(v);
  return true;
}

}  // namespace kiln
