// Device-side helpers shared by the kernel families: element conversions (float16 and
// bfloat16 by their bits, so that no vendor half header is needed on any platform), the
// broadcast/strided index walk, and NaN-propagating min/max (as the ref target's WebAssembly
// f32.min/f32.max).
#pragma once
#include <cmath>
#include <cstdint>

#include "../lower.h"

namespace kiln {

KILN_HD float f16ToF32(uint16_t h) {
  const uint32_t sign = (uint32_t(h) & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

KILN_HD uint16_t f32ToF16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to inf (round to nearest even)
  if (absx < 0x38800000u) {                                                 // subnormal or zero in half
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = absx >> 23;
    const uint32_t m = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    const uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    uint32_t r = half + ((rem > mid || (rem == mid && (half & 1))) ? 1 : 0);
    return static_cast<uint16_t>(sign | r);
  }
  const uint32_t e = (absx >> 23) - 127 + 15;
  const uint32_t m = absx & 0x7fffffu;
  uint32_t h = (e << 10) | (m >> 13);
  const uint32_t rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
  return static_cast<uint16_t>(sign | h);
}

KILN_HD float bf16ToF32(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

KILN_HD uint16_t f32ToBf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN stays NaN
  const uint32_t round = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + round) >> 16);
}

KILN_HD bool signBit(float x) {
  uint32_t b;
  memcpy(&b, &x, 4);
  return (b >> 31) != 0;
}
KILN_HD bool signBit(double x) {
  uint64_t b;
  memcpy(&b, &x, 8);
  return (b >> 63) != 0;
}

/** WebAssembly min/max: NaN if either is NaN; -0 < +0. Floating types only. */
template <typename T>
KILN_HD T nanMin(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return signBit(a) ? a : b;
  return a < b ? a : b;
}
template <typename T>
KILN_HD T nanMax(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return signBit(a) ? b : a;
  return a > b ? a : b;
}

/** Up to kMaxDims dims and, per operand, element strides (0 for a broadcast dim). */
template <int N>
struct Walk {
  int rank;
  int64_t dims[kMaxDims];
  int64_t strides[N][kMaxDims];
  int64_t base[N];

  /**
   * Element offsets of linear output index i, per operand. The loops are unrolled to constant
   * indices: a kernel parameter indexed at run time is copied to local memory, per thread, which
   * made every walking kernel pay for a copy of the whole Walk. Divisions are 32-bit where the
   * index and the dim fit (a 64-bit division is several times the instructions).
   */
  KILN_HD void offsets(int64_t i, int64_t* off) const {
#pragma unroll
    for (int k = 0; k < N; k++) off[k] = base[k];
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; d--) {
      if (d >= rank) continue;
      const int64_t len = dims[d];
      int64_t q, r;
      if (i <= 0x7fffffff && len <= 0x7fffffff) {
        const uint32_t q32 = static_cast<uint32_t>(i) / static_cast<uint32_t>(len);
        q = q32;
        r = static_cast<int64_t>(static_cast<uint32_t>(i) - q32 * static_cast<uint32_t>(len));
      } else {
        q = i / len;
        r = i - q * len;
      }
      i = q;
#pragma unroll
      for (int k = 0; k < N; k++) off[k] += r * strides[k][d];
    }
  }
};

}  // namespace kiln
