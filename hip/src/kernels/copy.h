// What the data-movement families share (data.hip, gather.hip, generators.hip): Fill, a value
// filled with one element repeated (Dropout's mask, ConstantOfShape; its run() is in data.hip),
// elementBits, a constant as the bytes of one element (Pad's value, EyeLike's one), and normAxis.
#pragma once
#include <cstdint>
#include <cstring>

#include "device.h"

namespace kiln {

/** Fills a value with one element repeated (bytes of `size`). */
struct Fill : Kernel {
  int32_t out;
  int size;
  uint64_t bits = 0;
  int64_t n;
  bool run(Exec& x) override;
};

/** The bytes of one element of type dt holding `v` (a constant). */
inline uint64_t elementBits(int dt, double v) {
  uint64_t bits = 0;
  switch (dt) {
    case DT_FLOAT: {
      const float f = static_cast<float>(v);
      std::memcpy(&bits, &f, 4);
      break;
    }
    case DT_DOUBLE: std::memcpy(&bits, &v, 8); break;
    case DT_FLOAT16: bits = f32ToF16(static_cast<float>(v)); break;
    case DT_BFLOAT16: bits = f32ToBf16(static_cast<float>(v)); break;
    case DT_BOOL: bits = v != 0; break;
    default: {
      const int64_t i = static_cast<int64_t>(v);
      std::memcpy(&bits, &i, 8);
      break;
    }
  }
  const int size = dtypeSize(dt);
  if (size < 8) bits &= (uint64_t(1) << (size * 8)) - 1;
  return bits;
}

/** Axis a of rank r counted from 0 (a negative a counts from the end; the caller checks the range). */
inline int64_t normAxis(int64_t a, int64_t r) { return a < 0 ? a + r : a; }

}  // namespace kiln
