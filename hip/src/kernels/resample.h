// The f64 arithmetic of the resampling families (resize.hip, grid_sample.hip), as the ref rounds
// it: adds, subtracts and multiplies without FMA contraction, wasm's saturating f64 -> int64
// truncation, and float elements loaded and stored as f64. Including it turns FMA contraction off
// for the rest of the file on hipcc (on nvcc, the _rn intrinsics keep device code from fusing).
#pragma once
#include <cstdint>

#include "device.h"

#if defined(__clang__) && defined(__HIP__)
#pragma clang fp contract(off)
#endif

namespace kiln {

// f64 ops without FMA contraction (the ref rounds every operation)
KILN_HD double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
KILN_HD double dsub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
KILN_HD double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

/** f64 -> int64 as wasm's saturating truncation (NaN -> 0). */
KILN_HD int64_t satI64(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(v);
}

/** A float element of type dt as f64 (as the ref's getAsF64 / loadF64). */
KILN_HD double loadF(const void* p, int64_t i, int dt) {
  switch (dt) {
    case DT_FLOAT: return static_cast<const float*>(p)[i];
    case DT_DOUBLE: return static_cast<const double*>(p)[i];
    case DT_FLOAT16: return f16ToF32(static_cast<const uint16_t*>(p)[i]);
    default: return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
  }
}

/** Stores f64 v as float type dt (as the ref's setFromF64 / storeF64). */
KILN_HD void storeF(void* p, int64_t i, int dt, double v) {
  switch (dt) {
    case DT_FLOAT: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DT_DOUBLE: static_cast<double*>(p)[i] = v; break;
    case DT_FLOAT16: static_cast<uint16_t*>(p)[i] = f32ToF16(static_cast<float>(v)); break;
    default: static_cast<uint16_t*>(p)[i] = f32ToBf16(static_cast<float>(v)); break;
  }
}

}  // namespace kiln
