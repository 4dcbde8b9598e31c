// Elementwise ops with numpy broadcasting: unary math and activations, binary arithmetic,
// comparisons and logic, Where, Clip, variadic Sum/Mean/Min/Max, Cast/CastLike. The semantics
// follow the ref target (wasm/ops/elementwise.ts, wasm/ops/math/unary.ts): NaN-propagating
// min/max, Python-style Mod, C-style fmod, integer division truncating with x / 0 = 0, and casts
// of non-finite floats to integers as onnxruntime does on x86-64.
//
// Two kernels: a float32 one (unary and binary, computed in float), and a generic one that loads
// every operand by its element type at run time, computes in double (floats) or int64
// (integers and bool), and stores by the output's type; it serves every other type combination.
#include <cstring>
#include <map>

#include "device.h"

namespace kiln {
namespace {

// unary codes (wasm/ops/math/unary.ts)
enum : int {
  U_RELU = 0, U_NEG, U_ABS, U_SQRT, U_RECIP, U_EXP, U_LOG, U_ERF, U_TANH, U_SIGMOID, U_LEAKY, U_ELU, U_SELU,
  U_CELU, U_GELU, U_GELU_TANH, U_HSIG, U_HSWISH, U_SOFTPLUS, U_SOFTSIGN, U_CLIP, U_NOT, U_SIGN, U_FLOOR, U_CEIL,
  U_ROUND, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH, U_ACOSH, U_ATANH, U_THRELU,
  U_MISH, U_SHRINK, U_ISNAN, U_ISINF, U_BITNOT,
};
// binary codes (wasm/kernels/eltwise.ts); comparisons are offset by 100
enum : int {
  B_ADD = 0, B_SUB, B_MUL, B_DIV, B_POW, B_MOD, B_FMOD, B_MIN, B_MAX, B_PRELU, B_AND, B_OR, B_XOR, B_SHL, B_SHR,
  B_SECOND,
  C_EQ = 100, C_LT, C_GT, C_LE, C_GE,
};
// ternary codes
enum : int { T_WHERE = 0, T_CLIP = 1 };

template <typename T>
KILN_HD T roundHalfEven(T x) {
  const T r = std::rint(x);
  return r;
}

template <typename T>
KILN_HD T softplusT(T x) {
  return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

template <typename T>
KILN_HD T unaryFloat(int code, T x, T p0, T p1) {
  switch (code) {
    case U_RELU: return x < T(0) ? T(0) : x;
    case U_NEG: return -x;
    case U_ABS: return std::fabs(x);
    case U_SQRT: return std::sqrt(x);
    case U_RECIP: return T(1) / x;
    case U_EXP: return std::exp(x);
    case U_LOG: return std::log(x);
    case U_ERF: return std::erf(x);
    case U_TANH: return std::tanh(x);
    case U_SIGMOID: return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
    case U_LEAKY: return x < T(0) ? x * p0 : x;
    case U_ELU: return x < T(0) ? p0 * (std::exp(x) - T(1)) : x;
    case U_SELU: return x <= T(0) ? p1 * (p0 * std::exp(x) - p0) : p1 * x;
    case U_CELU: {
      const T e = p0 * (std::exp(x / p0) - T(1));
      return (x > T(0) ? x : T(0)) + (e < T(0) ? e : T(0));
    }
    case U_GELU: return T(0.5) * x * (T(1) + std::erf(x * T(0.7071067811865476)));
    case U_GELU_TANH:
      return T(0.5) * x * (T(1) + std::tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)));
    case U_HSIG: {
      const T v = p0 * x + p1;
      return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
    }
    case U_HSWISH: {
      const T v = x / T(6) + T(0.5);
      return x * (v < T(0) ? T(0) : (v > T(1) ? T(1) : v));
    }
    case U_SOFTPLUS: return softplusT(x);
    case U_SOFTSIGN: return x / (T(1) + std::fabs(x));
    case U_CLIP: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case U_NOT: return x == T(0) ? T(1) : T(0);
    case U_SIGN: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);
    case U_FLOOR: return std::floor(x);
    case U_CEIL: return std::ceil(x);
    case U_ROUND: return roundHalfEven(x);
    case U_SIN: return std::sin(x);
    case U_COS: return std::cos(x);
    case U_TAN: return std::tan(x);
    case U_ASIN: return std::asin(x);
    case U_ACOS: return std::acos(x);
    case U_ATAN: return std::atan(x);
    case U_SINH: return std::sinh(x);
    case U_COSH: return std::cosh(x);
    case U_ASINH: return std::asinh(x);
    case U_ACOSH: return std::acosh(x);
    case U_ATANH: return std::atanh(x);
    case U_THRELU: return x > p0 ? x : T(0);
    case U_MISH: return x * std::tanh(softplusT(x));
    case U_SHRINK: return x < -p0 ? x + p1 : (x > p0 ? x - p1 : T(0));
    case U_ISNAN: return x != x ? T(1) : T(0);
    case U_ISINF:
      if (std::isinf(x)) return (x > T(0) ? p0 != T(0) : p1 != T(0)) ? T(1) : T(0);
      return T(0);
    default: return x;
  }
}

template <typename T>
KILN_HD T binaryFloat(int code, T a, T b) {
  switch (code) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return std::pow(a, b);
    case B_MOD: {
      T r = std::fmod(a, b);
      if (r != T(0) && ((r < T(0)) != (b < T(0)))) r += b;
      return r;
    }
    case B_FMOD: return std::fmod(a, b);
    case B_MIN: return nanMin(a, b);
    case B_MAX: return nanMax(a, b);
    case B_PRELU: return a < T(0) ? a * b : a;
    case B_SECOND: return b;
    case C_EQ: return a == b ? T(1) : T(0);
    case C_LT: return a < b ? T(1) : T(0);
    case C_GT: return a > b ? T(1) : T(0);
    case C_LE: return a <= b ? T(1) : T(0);
    case C_GE: return a >= b ? T(1) : T(0);
    default: return a;
  }
}

KILN_HD int64_t binaryInt(int code, int64_t a, int64_t b, int bits, bool isUnsigned) {
  switch (code) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
    case B_DIV:
      if (b == 0) return 0;
      if (isUnsigned) return static_cast<int64_t>(static_cast<uint64_t>(a) / static_cast<uint64_t>(b));
      if (b == -1) return -a;
      return a / b;
    case B_POW: return static_cast<int64_t>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    case B_MOD:
    case B_FMOD: {
      if (b == 0) return 0;
      if (isUnsigned) return static_cast<int64_t>(static_cast<uint64_t>(a) % static_cast<uint64_t>(b));
      if (b == -1) return 0;
      int64_t r = a % b;
      if (code == B_MOD && r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    }
    case B_MIN:
      if (isUnsigned) return static_cast<uint64_t>(a) < static_cast<uint64_t>(b) ? a : b;
      return a < b ? a : b;
    case B_MAX:
      if (isUnsigned) return static_cast<uint64_t>(a) > static_cast<uint64_t>(b) ? a : b;
      return a > b ? a : b;
    case B_PRELU: return a < 0 ? a * b : a;
    case B_AND: return a & b;
    case B_OR: return a | b;
    case B_XOR: return a ^ b;
    case B_SHL: return static_cast<uint64_t>(b) >= static_cast<uint64_t>(bits) ? 0 : static_cast<int64_t>(static_cast<uint64_t>(a) << b);
    case B_SHR: return static_cast<uint64_t>(b) >= static_cast<uint64_t>(bits) ? 0 : static_cast<int64_t>(static_cast<uint64_t>(a) >> b);
    case B_SECOND: return b;
    case C_EQ: return a == b;
    case C_LT: return isUnsigned ? static_cast<uint64_t>(a) < static_cast<uint64_t>(b) : a < b;
    case C_GT: return isUnsigned ? static_cast<uint64_t>(a) > static_cast<uint64_t>(b) : a > b;
    case C_LE: return isUnsigned ? static_cast<uint64_t>(a) <= static_cast<uint64_t>(b) : a <= b;
    case C_GE: return isUnsigned ? static_cast<uint64_t>(a) >= static_cast<uint64_t>(b) : a >= b;
    default: return a;
  }
}

KILN_HD bool isFloatType(int dt) { return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16 || dt == DT_BFLOAT16; }
KILN_HD bool isUnsignedType(int dt) {
  return dt == DT_UINT8 || dt == DT_UINT16 || dt == DT_UINT32 || dt == DT_UINT64 || dt == DT_BOOL;
}

KILN_HD double loadD(const char* p, int64_t i, int dt) {
  switch (dt) {
    case DT_FLOAT: return reinterpret_cast<const float*>(p)[i];
    case DT_DOUBLE: return reinterpret_cast<const double*>(p)[i];
    case DT_FLOAT16: return f16ToF32(reinterpret_cast<const uint16_t*>(p)[i]);
    case DT_BFLOAT16: return bf16ToF32(reinterpret_cast<const uint16_t*>(p)[i]);
    case DT_INT8: return reinterpret_cast<const int8_t*>(p)[i];
    case DT_UINT8:
    case DT_BOOL: return reinterpret_cast<const uint8_t*>(p)[i];
    case DT_INT16: return reinterpret_cast<const int16_t*>(p)[i];
    case DT_UINT16: return reinterpret_cast<const uint16_t*>(p)[i];
    case DT_INT32: return reinterpret_cast<const int32_t*>(p)[i];
    case DT_UINT32: return reinterpret_cast<const uint32_t*>(p)[i];
    case DT_INT64: return static_cast<double>(reinterpret_cast<const int64_t*>(p)[i]);
    case DT_UINT64: return static_cast<double>(reinterpret_cast<const uint64_t*>(p)[i]);
    default: return 0;
  }
}

KILN_HD int64_t loadI(const char* p, int64_t i, int dt) {
  switch (dt) {
    case DT_INT8: return reinterpret_cast<const int8_t*>(p)[i];
    case DT_UINT8:
    case DT_BOOL: return reinterpret_cast<const uint8_t*>(p)[i];
    case DT_INT16: return reinterpret_cast<const int16_t*>(p)[i];
    case DT_UINT16: return reinterpret_cast<const uint16_t*>(p)[i];
    case DT_INT32: return reinterpret_cast<const int32_t*>(p)[i];
    case DT_UINT32: return reinterpret_cast<const uint32_t*>(p)[i];
    case DT_INT64:
    case DT_UINT64: return reinterpret_cast<const int64_t*>(p)[i];
    default: return static_cast<int64_t>(loadD(p, i, dt));
  }
}

KILN_HD void storeI(char* p, int64_t i, int dt, int64_t v);

/** A double into any element type; into an integer type: truncated, saturated, non-finite to 0 (the ref's storeF64). */
KILN_HD void storeD(char* p, int64_t i, int dt, double v) {
  switch (dt) {
    case DT_FLOAT: reinterpret_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DT_DOUBLE: reinterpret_cast<double*>(p)[i] = v; break;
    case DT_FLOAT16: reinterpret_cast<uint16_t*>(p)[i] = f32ToF16(static_cast<float>(v)); break;
    case DT_BFLOAT16: reinterpret_cast<uint16_t*>(p)[i] = f32ToBf16(static_cast<float>(v)); break;
    case DT_BOOL: reinterpret_cast<uint8_t*>(p)[i] = v != 0 ? 1 : 0; break;
    default: {
      int64_t iv = 0;
      if (std::isfinite(v)) {
        if (v >= 9223372036854775807.0) iv = dt == DT_UINT64 ? static_cast<int64_t>(static_cast<uint64_t>(v)) : INT64_MAX;
        else if (v <= -9223372036854775808.0) iv = INT64_MIN;
        else iv = static_cast<int64_t>(v);
      }
      storeI(p, i, dt, iv);
    }
  }
}

KILN_HD void storeI(char* p, int64_t i, int dt, int64_t v) {
  switch (dt) {
    case DT_INT8:
    case DT_UINT8: reinterpret_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); break;
    case DT_BOOL: reinterpret_cast<uint8_t*>(p)[i] = v != 0 ? 1 : 0; break;
    case DT_INT16:
    case DT_UINT16: reinterpret_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(v); break;
    case DT_INT32:
    case DT_UINT32: reinterpret_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v); break;
    case DT_INT64:
    case DT_UINT64: reinterpret_cast<int64_t*>(p)[i] = v; break;
    default: storeD(p, i, dt, static_cast<double>(v)); break;
  }
}

/** x86-64 cvttsd2si: NaN and out-of-range to the "integer indefinite" (the type's minimum). */
KILN_HD int64_t floatToI64(double v) {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return INT64_MIN;
  return static_cast<int64_t>(v);
}
KILN_HD int64_t floatToI32(double v) {
  if (!(v > -2147483649.0 && v < 2147483648.0)) return INT32_MIN;
  return static_cast<int32_t>(v);
}

/** Cast semantics of the ref target (castInto). */
KILN_HD void castOne(const char* x, int64_t ix, int si, char* o, int64_t io, int so) {
  if (isFloatType(si) && so != DT_BOOL && !isFloatType(so) && so != DT_UINT64) {
    const double v = loadD(x, ix, si);
    const bool wide = so == DT_INT64 || so == DT_UINT32;
    storeI(o, io, so, wide ? floatToI64(v) : floatToI32(v));
  } else if (si == DT_UINT64 && isFloatType(so)) {
    storeD(o, io, so, static_cast<double>(reinterpret_cast<const uint64_t*>(x)[ix]));
  } else if (so == DT_BFLOAT16 && isFloatType(si)) {
    // truncation to the top 16 bits, NaN kept NaN (the ONNX reference's Cast; castInto on ref)
    const float f = static_cast<float>(loadD(x, ix, si));
    uint32_t b;
    memcpy(&b, &f, 4);
    reinterpret_cast<uint16_t*>(o)[io] = static_cast<uint16_t>((b & 0x7fffffffu) > 0x7f800000u ? (b >> 16) | 0x40u : b >> 16);
  } else if (isFloatType(si) || isFloatType(so)) {
    storeD(o, io, so, loadD(x, ix, si));
  } else {
    storeI(o, io, so, loadI(x, ix, si));
  }
}

struct GenericParams {
  int kind;  // 0 unary, 1 binary, 2 where, 3 clip (ternary), 4 cast
  int code;
  int nin;
  int dt[3];
  int dout;
  double p0, p1;
  int bits;
};

__global__ void genericKernel(Walk<4> w, GenericParams q, const char* a, const char* b, const char* c, char* o,
                              int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[4];
    w.offsets(i, off);
    switch (q.kind) {
      case 0: {  // unary
        if (isFloatType(q.dt[0])) {
          const double r = unaryFloat<double>(q.code, loadD(a, off[0], q.dt[0]), q.p0, q.p1);
          if (q.dout == DT_BOOL) storeI(o, i, DT_BOOL, r != 0);
          else storeD(o, i, q.dout, r);
        } else {
          const int64_t x = loadI(a, off[0], q.dt[0]);
          int64_t r;
          const bool u = isUnsignedType(q.dt[0]);
          switch (q.code) {
            case U_RELU: r = !u && x < 0 ? 0 : x; break;
            case U_NEG: r = -x; break;
            case U_ABS: r = !u && x < 0 ? -x : x; break;
            case U_SIGN: r = x == 0 ? 0 : (!u && x < 0 ? -1 : 1); break;
            case U_NOT: r = x == 0 ? 1 : 0; break;
            case U_BITNOT: r = ~x; break;
            default: {
              const double v = unaryFloat<double>(q.code, u ? static_cast<double>(static_cast<uint64_t>(x)) : static_cast<double>(x), q.p0, q.p1);
              r = std::isfinite(v) ? static_cast<int64_t>(v) : 0;
            }
          }
          storeI(o, i, q.dout, r);
        }
        break;
      }
      case 1: {  // binary (and comparisons)
        const bool cmp = q.code >= C_EQ;
        if (isFloatType(q.dt[0]) || isFloatType(q.dt[1])) {
          const double r = binaryFloat<double>(q.code, loadD(a, off[0], q.dt[0]), loadD(b, off[1], q.dt[1]));
          if (cmp) storeI(o, i, DT_BOOL, r != 0);
          else storeD(o, i, q.dout, r);
        } else {
          const int64_t r = binaryInt(q.code, loadI(a, off[0], q.dt[0]), loadI(b, off[1], q.dt[1]), q.bits,
                                      isUnsignedType(q.dt[0]));
          storeI(o, i, cmp ? DT_BOOL : q.dout, r);
        }
        break;
      }
      case 2: {  // where: cond (bool), x, y of one type: copy bytes
        const bool cond = reinterpret_cast<const uint8_t*>(a)[off[0]] != 0;
        const char* src = cond ? b : c;
        const int64_t at = cond ? off[1] : off[2];
        switch (q.bits) {
          case 8: reinterpret_cast<uint8_t*>(o)[i] = reinterpret_cast<const uint8_t*>(src)[at]; break;
          case 16: reinterpret_cast<uint16_t*>(o)[i] = reinterpret_cast<const uint16_t*>(src)[at]; break;
          case 32: reinterpret_cast<uint32_t*>(o)[i] = reinterpret_cast<const uint32_t*>(src)[at]; break;
          default: reinterpret_cast<uint64_t*>(o)[i] = reinterpret_cast<const uint64_t*>(src)[at]; break;
        }
        break;
      }
      case 3: {  // clip with bound inputs (absent bounds: +-inf / the integer limits)
        if (isFloatType(q.dt[0])) {
          const double x = loadD(a, off[0], q.dt[0]);
          const double lo = b ? loadD(b, 0, q.dt[0]) : q.p0;
          const double hi = c ? loadD(c, 0, q.dt[0]) : q.p1;
          storeD(o, i, q.dout, x < lo ? lo : (x > hi ? hi : x));
        } else {
          const int64_t x = loadI(a, off[0], q.dt[0]);
          const bool u = q.dt[0] == DT_UINT64;
          int64_t r = x;
          if (b) {
            const int64_t lo = loadI(b, 0, q.dt[0]);
            if (u ? static_cast<uint64_t>(r) < static_cast<uint64_t>(lo) : r < lo) r = lo;
          }
          if (c) {
            const int64_t hi = loadI(c, 0, q.dt[0]);
            if (u ? static_cast<uint64_t>(r) > static_cast<uint64_t>(hi) : r > hi) r = hi;
          }
          storeI(o, i, q.dout, r);
        }
        break;
      }
      default:  // cast
        castOne(a, off[0], q.dt[0], o, i, q.dout);
        break;
    }
  }
}

__global__ void unaryF32Kernel(int code, const float* x, float* o, int64_t n, float p0, float p1) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    o[i] = unaryFloat<float>(code, x[i], p0, p1);
  }
}

__global__ void binaryF32Kernel(Walk<2> w, int code, const float* a, const float* b, float* o, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[2];
    w.offsets(i, off);
    o[i] = binaryFloat<float>(code, a[off[0]], b[off[1]]);
  }
}

/**
 * binaryF32Kernel four elements per thread: the innermost walked dim is a multiple of 4, and each
 * operand is either contiguous there (read as a float4: `vec` bit k set) or constant along it (one
 * value for the four). One index walk per four elements, 16-byte loads and stores.
 */
__global__ void binaryF32Vec4Kernel(Walk<2> w, int code, const float* a, const float* b, float* o, int64_t n4,
                                    int vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n4; j += stride) {
    int64_t off[2];
    w.offsets(j * 4, off);
    float x[4], y[4];
    if (vec & 1) {
      const float4 v = *reinterpret_cast<const float4*>(a + off[0]);
      x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
    } else {
      x[0] = x[1] = x[2] = x[3] = a[off[0]];
    }
    if (vec & 2) {
      const float4 v = *reinterpret_cast<const float4*>(b + off[1]);
      y[0] = v.x, y[1] = v.y, y[2] = v.z, y[3] = v.w;
    } else {
      y[0] = y[1] = y[2] = y[3] = b[off[1]];
    }
    *reinterpret_cast<float4*>(o + j * 4) =
        make_float4(binaryFloat<float>(code, x[0], y[0]), binaryFloat<float>(code, x[1], y[1]),
                    binaryFloat<float>(code, x[2], y[2]), binaryFloat<float>(code, x[3], y[3]));
  }
}

__global__ void meanScaleKernel(char* o, int dt, int64_t n, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    if (dt == DT_FLOAT) reinterpret_cast<float*>(o)[i] /= static_cast<float>(count);
    else if (isFloatType(dt)) storeD(o, i, dt, loadD(o, i, dt) * (1.0 / static_cast<double>(count)));
    else storeI(o, i, dt, loadI(o, i, dt) / count);
  }
}

// ---- lowering --------------------------------------------------------------------------------

/** Builds a walk over `out` dims for operands of the given dims (numpy broadcasting), merged. */
template <int N>
bool makeWalk(const std::vector<int64_t>& out, const std::vector<std::vector<int64_t>>& ins, Walk<N>& w) {
  const int r = static_cast<int>(out.size());
  std::vector<int64_t> dims(out.begin(), out.end());
  std::vector<std::vector<int64_t>> st(ins.size(), std::vector<int64_t>(static_cast<size_t>(r), 0));
  for (size_t k = 0; k < ins.size(); k++) {
    const auto& d = ins[k];
    if (d.size() > out.size()) return false;
    const int shift = r - static_cast<int>(d.size());
    int64_t s = 1;
    for (int j = static_cast<int>(d.size()) - 1; j >= 0; j--) {
      const int64_t len = d[static_cast<size_t>(j)];
      if (len != 1 && len != out[static_cast<size_t>(j + shift)]) return false;
      st[k][static_cast<size_t>(j + shift)] = len == 1 ? 0 : s;
      s *= len;
    }
  }
  // drop size-1 dims, merge dims that are contiguous for every operand
  std::vector<int64_t> md;
  std::vector<std::vector<int64_t>> ms(ins.size());
  for (int j = 0; j < r; j++) {
    if (dims[static_cast<size_t>(j)] == 1) continue;
    bool merge = !md.empty();
    for (size_t k = 0; k < ins.size() && merge; k++) {
      merge = ms[k].back() == st[k][static_cast<size_t>(j)] * dims[static_cast<size_t>(j)];
    }
    if (merge) {
      md.back() *= dims[static_cast<size_t>(j)];
      for (size_t k = 0; k < ins.size(); k++) ms[k].back() = st[k][static_cast<size_t>(j)];
    } else {
      md.push_back(dims[static_cast<size_t>(j)]);
      for (size_t k = 0; k < ins.size(); k++) ms[k].push_back(st[k][static_cast<size_t>(j)]);
    }
  }
  if (md.size() > static_cast<size_t>(kMaxDims)) return false;
  w.rank = static_cast<int>(md.size());
  for (int j = 0; j < w.rank; j++) {
    w.dims[j] = md[static_cast<size_t>(j)];
    for (size_t k = 0; k < ins.size() && k < static_cast<size_t>(N); k++) w.strides[k][j] = ms[k][static_cast<size_t>(j)];
  }
  for (size_t k = ins.size(); k < static_cast<size_t>(N); k++) {
    for (int j = 0; j < w.rank; j++) w.strides[k][j] = 0;
  }
  for (int k = 0; k < N; k++) w.base[k] = 0;
  return true;
}

bool supportedType(int dt) { return dtypeSize(dt) > 0; }

constexpr int kThreads = 256;

struct GenericKernel : Kernel {
  Walk<4> w;
  GenericParams q;
  int32_t in[3] = {-1, -1, -1};
  int32_t out = -1;
  int64_t n = 0;
  const char* label = "elementwise";
  bool run(Exec& x) override {
    if (n == 0) return true;
    KILN_LAUNCH(genericKernel, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, w, q, x.ptr(in[0]), x.ptr(in[1]),
                x.ptr(in[2]), x.ptr(out), n);
    return launched(x, label);
  }
};

struct UnaryF32 : Kernel {
  int code;
  float p0, p1;
  int32_t in, out;
  int64_t n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    KILN_LAUNCH(unaryF32Kernel, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, code, x.at<const float>(in),
                x.at<float>(out), n, p0, p1);
    return launched(x, "unary");
  }
};

struct BinaryF32 : Kernel {
  Walk<2> w;
  int code;
  int32_t a, b, out;
  int64_t n;
  int vec = -1;  // >= 0: binaryF32Vec4Kernel, with its operands' float4 bits
  bool run(Exec& x) override {
    if (n == 0) return true;
    if (vec >= 0) {
      KILN_LAUNCH(binaryF32Vec4Kernel, gridFor(n / 4, kThreads), dim3(kThreads), 0, x.stream, w, code,
                  x.at<const float>(a), x.at<const float>(b), x.at<float>(out), n / 4, vec);
      return launched(x, "binary");
    }
    KILN_LAUNCH(binaryF32Kernel, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, w, code, x.at<const float>(a),
                x.at<const float>(b), x.at<float>(out), n);
    return launched(x, "binary");
  }
};

/** Several kernels run in order (variadic ops). */
struct Sequence : Kernel {
  std::vector<std::unique_ptr<Kernel>> parts;
  bool run(Exec& x) override {
    for (auto& k : parts) {
      if (!k->run(x)) return false;
    }
    return true;
  }
};

struct MeanScale : Kernel {
  int32_t out;
  int dt;
  int64_t n, count;
  bool run(Exec& x) override {
    if (n == 0) return true;
    KILN_LAUNCH(meanScaleKernel, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, x.ptr(out), dt, n, count);
    return launched(x, "Mean");
  }
};

int unaryCode(const std::string& op) {
  static const char* names[] = {"Relu",  "Neg",     "Abs",         "Sqrt",        "Reciprocal", "Exp",      "Log",
                                "Erf",   "Tanh",    "Sigmoid",     "LeakyRelu",   "Elu",        "Selu",     "Celu",
                                "Gelu",  "",        "HardSigmoid", "HardSwish",   "Softplus",   "Softsign", "Clip",
                                "Not",   "Sign",    "Floor",       "Ceil",        "Round",      "Sin",      "Cos",
                                "Tan",   "Asin",    "Acos",        "Atan",        "Sinh",       "Cosh",     "Asinh",
                                "Acosh", "Atanh",   "ThresholdedRelu", "Mish",    "Shrink",     "IsNaN",    "IsInf",
                                "BitwiseNot"};
  for (int i = 0; i <= U_BITNOT; i++) {
    if (op == names[i]) return i;
  }
  return -1;
}

bool legacyBroadcast(const NodeView& v) { return v.s.opset < 7 && v.hasAttr("broadcast"); }

std::unique_ptr<Kernel> lowerUnary(const NodeView& v, std::string& why) {
  int code = unaryCode(v.n.op);
  if (code < 0 || !v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& o = v.out(0);
  if (!supportedType(x.dtype) || !supportedType(o.dtype)) {
    why = std::string("element type ") + dtypeName(x.dtype);
    return nullptr;
  }
  if (code == U_GELU && v.attrString("approximate", "none") == "tanh") code = U_GELU_TANH;
  double p0 = 0, p1 = 0;
  switch (code) {
    case U_LEAKY: p0 = v.attrFloat("alpha", 0.01f); break;
    case U_ELU:
    case U_CELU:
    case U_THRELU: p0 = v.attrFloat("alpha", 1.0f); break;
    case U_SELU:
      p0 = v.attrFloat("alpha", 1.67326319217681884765625f);
      p1 = v.attrFloat("gamma", 1.05070102214813232421875f);
      break;
    case U_HSIG:
      p0 = v.attrFloat("alpha", 0.2f);
      p1 = v.attrFloat("beta", 0.5f);
      break;
    case U_SHRINK:
      p0 = v.attrFloat("lambd", 0.5f);
      p1 = v.attrFloat("bias", 0.0f);
      break;
    case U_ISINF:
      p0 = static_cast<double>(v.attrInt("detect_positive", 1));
      p1 = static_cast<double>(v.attrInt("detect_negative", 1));
      break;
    default: break;
  }
  const int64_t n = o.elements();
  if (code == U_CLIP) {
    auto k = std::make_unique<GenericKernel>();
    k->label = "Clip";
    k->q = GenericParams{3, code, 1, {x.dtype, x.dtype, x.dtype}, o.dtype, 0, 0, 0};
    if (v.s.opset < 11) {
      k->q.kind = 0;
      k->q.p0 = v.attrFloat("min", -3.4028234663852886e38f);
      k->q.p1 = v.attrFloat("max", 3.4028234663852886e38f);
    } else {
      k->q.p0 = -INFINITY;
      k->q.p1 = INFINITY;
      for (int i = 1; i <= 2; i++) {
        if (v.has(i) && v.in(i).elements() > 0) {
          if (v.in(i).dtype != x.dtype) {
            why = "Clip bounds of another element type";
            return nullptr;
          }
          k->in[i] = v.inId(i);
        }
      }
    }
    if (!isFloatType(x.dtype) && v.s.opset < 11) {
      why = "integer Clip before opset 11";
      return nullptr;
    }
    if (!makeWalk<4>(o.dims, {x.dims}, k->w)) {
      why = "rank past 8";
      return nullptr;
    }
    k->in[0] = v.inId(0);
    k->out = v.outId(0);
    k->n = n;
    return k;
  }
  if (x.dtype == DT_FLOAT && o.dtype == DT_FLOAT) {
    auto k = std::make_unique<UnaryF32>();
    k->code = code;
    k->p0 = static_cast<float>(p0);
    k->p1 = static_cast<float>(p1);
    k->in = v.inId(0);
    k->out = v.outId(0);
    k->n = n;
    return k;
  }
  auto k = std::make_unique<GenericKernel>();
  k->label = "unary";
  k->q = GenericParams{0, code, 1, {x.dtype, 0, 0}, o.dtype, p0, p1, 0};
  makeWalk<4>(o.dims, {x.dims}, k->w);
  k->in[0] = v.inId(0);
  k->out = v.outId(0);
  k->n = n;
  return k;
}

int binaryCode(const NodeView& v) {
  const std::string& op = v.n.op;
  if (op == "Add") return B_ADD;
  if (op == "Sub") return B_SUB;
  if (op == "Mul") return B_MUL;
  if (op == "Div") return B_DIV;
  if (op == "Pow") return B_POW;
  if (op == "Mod") return v.attrInt("fmod", 0) != 0 ? B_FMOD : B_MOD;
  if (op == "PRelu") return B_PRELU;
  if (op == "Equal") return C_EQ;
  if (op == "Less") return C_LT;
  if (op == "Greater") return C_GT;
  if (op == "LessOrEqual") return C_LE;
  if (op == "GreaterOrEqual") return C_GE;
  if (op == "And" || op == "BitwiseAnd") return B_AND;
  if (op == "Or" || op == "BitwiseOr") return B_OR;
  if (op == "Xor" || op == "BitwiseXor") return B_XOR;
  if (op == "BitShift") return v.attrString("direction", "") == "RIGHT" ? B_SHR : B_SHL;
  return -1;
}

/** One binary kernel: out = a (op) b, broadcast. */
std::unique_ptr<Kernel> binaryKernel(int code, const SValue& a, int32_t aId, const SValue& b, int32_t bId,
                                     const SValue& o, int32_t oId, std::string& why) {
  const int64_t n = o.elements();
  if (a.dtype == DT_FLOAT && b.dtype == DT_FLOAT && o.dtype == DT_FLOAT && code < C_EQ) {
    auto k = std::make_unique<BinaryF32>();
    if (!makeWalk<2>(o.dims, {a.dims, b.dims}, k->w)) {
      why = "rank past 8 or shapes that do not broadcast";
      return nullptr;
    }
    k->code = code;
    k->a = aId;
    k->b = bId;
    k->out = oId;
    k->n = n;
    // four per thread where the innermost walked dim allows it (values start 256-byte aligned)
    const int r = k->w.rank;
    if (r >= 1 && k->w.dims[r - 1] % 4 == 0) {
      int vec = 0;
      bool ok = true;
      for (int op = 0; op < 2 && ok; op++) {
        const int64_t inner = k->w.strides[op][r - 1];
        if (inner == 1) {
          vec |= 1 << op;
          for (int j = 0; j < r - 1; j++) ok = ok && k->w.strides[op][j] % 4 == 0;
        } else {
          ok = inner == 0;
        }
      }
      if (ok) k->vec = vec;
    }
    return k;
  }
  auto k = std::make_unique<GenericKernel>();
  k->label = "binary";
  if (!makeWalk<4>(o.dims, {a.dims, b.dims}, k->w)) {
    why = "rank past 8 or shapes that do not broadcast";
    return nullptr;
  }
  k->q = GenericParams{1, code, 2, {a.dtype, b.dtype, 0}, o.dtype, 0, 0, dtypeSize(a.dtype) * 8};
  k->in[0] = aId;
  k->in[1] = bId;
  k->out = oId;
  k->n = n;
  return k;
}

std::unique_ptr<Kernel> lowerBinary(const NodeView& v, std::string& why) {
  const int code = binaryCode(v);
  if (code < 0 || !v.has(0) || !v.has(1)) return nullptr;
  if (legacyBroadcast(v)) {
    why = "legacy (opset < 7) broadcast";
    return nullptr;
  }
  const SValue& a = v.in(0);
  const SValue& b = v.in(1);
  if (!supportedType(a.dtype) || !supportedType(b.dtype)) {
    why = std::string("element type ") + dtypeName(a.dtype);
    return nullptr;
  }
  if (code == B_PRELU && b.dims.size() == 1 && a.dims.size() >= 2 && b.dims[0] == a.dims[1] && b.dims[0] != a.dims.back()) {
    why = "PRelu slope per channel (pre-opset-7 broadcast)";
    return nullptr;
  }
  return binaryKernel(code, a, v.inId(0), b, v.inId(1), v.out(0), v.outId(0), why);
}

std::unique_ptr<Kernel> lowerVariadic(const NodeView& v, std::string& why) {
  const std::string& op = v.n.op;
  const int code = op == "Min" ? B_MIN : op == "Max" ? B_MAX : B_ADD;
  const int n = v.inputCount();
  const SValue& o = v.out(0);
  if (n < 1 || !supportedType(o.dtype)) return nullptr;
  for (int i = 0; i < n; i++) {
    if (!v.has(i)) return nullptr;
  }
  auto seq = std::make_unique<Sequence>();
  if (n == 1) {
    auto k = binaryKernel(B_SECOND, o, v.outId(0), v.in(0), v.inId(0), o, v.outId(0), why);
    if (!k) return nullptr;
    seq->parts.push_back(std::move(k));
  } else {
    auto k = binaryKernel(code, v.in(0), v.inId(0), v.in(1), v.inId(1), o, v.outId(0), why);
    if (!k) return nullptr;
    seq->parts.push_back(std::move(k));
    for (int i = 2; i < n; i++) {
      auto k2 = binaryKernel(code, o, v.outId(0), v.in(i), v.inId(i), o, v.outId(0), why);
      if (!k2) return nullptr;
      seq->parts.push_back(std::move(k2));
    }
  }
  if (op == "Mean" && n > 1) {
    auto m = std::make_unique<MeanScale>();
    m->out = v.outId(0);
    m->dt = o.dtype;
    m->n = o.elements();
    m->count = n;
    seq->parts.push_back(std::move(m));
  }
  return seq;
}

std::unique_ptr<Kernel> lowerWhere(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(1) || !v.has(2)) return nullptr;
  const SValue& o = v.out(0);
  auto k = std::make_unique<GenericKernel>();
  k->label = "Where";
  if (!makeWalk<4>(o.dims, {v.in(0).dims, v.in(1).dims, v.in(2).dims}, k->w)) {
    why = "rank past 8";
    return nullptr;
  }
  k->q = GenericParams{2, 0, 3, {DT_BOOL, o.dtype, o.dtype}, o.dtype, 0, 0, dtypeSize(o.dtype) * 8};
  for (int i = 0; i < 3; i++) k->in[i] = v.inId(i);
  k->out = v.outId(0);
  k->n = o.elements();
  return k;
}

std::unique_ptr<Kernel> lowerCast(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& o = v.out(0);
  if (!supportedType(x.dtype) || !supportedType(o.dtype)) {
    why = std::string("element type ") + dtypeName(x.dtype);
    return nullptr;
  }
  auto k = std::make_unique<GenericKernel>();
  k->label = "Cast";
  makeWalk<4>(o.dims, {x.dims}, k->w);
  k->q = GenericParams{4, 0, 1, {x.dtype, 0, 0}, o.dtype, 0, 0, 0};
  k->in[0] = v.inId(0);
  k->out = v.outId(0);
  k->n = o.elements();
  return k;
}

// ---- fused elementwise regions (lower.h) ----------------------------------------------------
// A small accumulator program per element: each node is one step whose result goes into the
// accumulator, computed with the same functions as the single-op kernels above (float32 math in
// float, so results are bit-identical to running the nodes one by one). Operands are the
// accumulator, one of four slots (where a value still needed later is saved before the
// accumulator is overwritten) or an outside input loaded at its use (bool as 0/1); values read
// outside the region are stored as soon as they are computed. There is no register array: an
// array indexed at run time would live in local memory, and its traffic made the first fused
// kernel slower than the unfused ones on the H200. The step switch calls unaryFloat/binaryFloat
// with constant codes, so each case compiles to its one formula. Inputs of the output's shape are
// read at the element's own index and one-element inputs at 0; only broadcast inputs walk the
// (merged) dims, in 32-bit indices (regions of 2^31 elements or more are not fused).

enum : uint8_t { F_UNARY = 0, F_BINARY = 1, F_WHERE = 2 };
enum : uint8_t { IN_FULL = 0, IN_SCALAR = 1, IN_WALK = 2 };

// operand sources: the accumulator, a slot, or an outside input
enum : uint8_t { SRC_ACC = 0, SRC_SLOT = 1, SRC_INPUT = 16 };
constexpr int kFuseSlots = 4;

struct FuseOp {
  uint8_t kind;
  uint8_t a, b, c;  // sources: SRC_ACC, SRC_SLOT + s, SRC_INPUT + k
  int8_t save;      // before the step: the accumulator into this slot (-1: none)
  int8_t store;     // after the step: the accumulator to this output (-1: none)
  int16_t code;
};

struct FuseParams {
  int nin, nout, nops, rank;
  int32_t dims[kMaxDims];
  int32_t strides[kFuseMaxInputs][kMaxDims];
  uint8_t inMode[kFuseMaxInputs];
  uint8_t inBool[kFuseMaxInputs];
  uint8_t outBool[kFuseMaxOutputs];
  FuseOp ops[kFuseMaxOps];
};

/** The region's buffers, read through switches (an array indexed at run time would be copied to local memory). */
struct FusePointers {
  const char *in0, *in1, *in2, *in3, *in4, *in5, *in6, *in7;
  char *out0, *out1, *out2, *out3;

  KILN_HD const char* in(int k) const {
    switch (k) {
      case 0: return in0;
      case 1: return in1;
      case 2: return in2;
      case 3: return in3;
      case 4: return in4;
      case 5: return in5;
      case 6: return in6;
      default: return in7;
    }
  }
  KILN_HD char* out(int k) const {
    switch (k) {
      case 0: return out0;
      case 1: return out1;
      case 2: return out2;
      default: return out3;
    }
  }
  void set(int k, const char* p) {
    const char** at[kFuseMaxInputs] = {&in0, &in1, &in2, &in3, &in4, &in5, &in6, &in7};
    *at[k] = p;
  }
  void setOut(int k, char* p) {
    char** at[kFuseMaxOutputs] = {&out0, &out1, &out2, &out3};
    *at[k] = p;
  }
};
static_assert(kFuseMaxInputs == 8 && kFuseMaxOutputs == 4, "FusePointers has 8 inputs and 4 outputs");


// Four elements per thread (kFuseVec): each step is decoded once for four elements, and the
// switch on its code sits outside the loop over them.
constexpr int kFuseVec = 4;

#define KILN_FUSE_UNARY(c)                                                      \
  case c:                                                                       \
    for (int e = 0; e < kFuseVec; e++) y[e] = unaryFloat<float>(c, x[e], 0.0f, 0.0f); \
    break;
KILN_DEVICE void fuseUnary(int code, const float* x, float* y) {
  switch (code) {
    KILN_FUSE_UNARY(U_RELU)
    KILN_FUSE_UNARY(U_NEG)
    KILN_FUSE_UNARY(U_ABS)
    KILN_FUSE_UNARY(U_SQRT)
    KILN_FUSE_UNARY(U_RECIP)
    KILN_FUSE_UNARY(U_EXP)
    KILN_FUSE_UNARY(U_LOG)
    KILN_FUSE_UNARY(U_ERF)
    KILN_FUSE_UNARY(U_TANH)
    KILN_FUSE_UNARY(U_SIGMOID)
    KILN_FUSE_UNARY(U_GELU)
    KILN_FUSE_UNARY(U_GELU_TANH)
    KILN_FUSE_UNARY(U_SOFTPLUS)
    KILN_FUSE_UNARY(U_SOFTSIGN)
    KILN_FUSE_UNARY(U_NOT)
    KILN_FUSE_UNARY(U_SIGN)
    KILN_FUSE_UNARY(U_FLOOR)
    KILN_FUSE_UNARY(U_CEIL)
    KILN_FUSE_UNARY(U_ROUND)
    KILN_FUSE_UNARY(U_SIN)
    KILN_FUSE_UNARY(U_COS)
    KILN_FUSE_UNARY(U_ISNAN)
    default:
      for (int e = 0; e < kFuseVec; e++) y[e] = x[e];
      break;
  }
}
#undef KILN_FUSE_UNARY

/** The unary codes fuseUnary has. */
bool fusedUnaryCode(int code) {
  switch (code) {
    case U_RELU: case U_NEG: case U_ABS: case U_SQRT: case U_RECIP: case U_EXP: case U_LOG: case U_ERF: case U_TANH:
    case U_SIGMOID: case U_GELU: case U_GELU_TANH: case U_SOFTPLUS: case U_SOFTSIGN: case U_NOT: case U_SIGN:
    case U_FLOOR: case U_CEIL: case U_ROUND: case U_SIN: case U_COS: case U_ISNAN: return true;
    default: return false;
  }
}

#define KILN_FUSE_BINARY(c)                                                    \
  case c:                                                                      \
    for (int e = 0; e < kFuseVec; e++) y[e] = binaryFloat<float>(c, x0[e], x1[e]); \
    break;
KILN_DEVICE void fuseBinary(int code, const float* x0, const float* x1, float* y) {
  switch (code) {
    KILN_FUSE_BINARY(B_ADD)
    KILN_FUSE_BINARY(B_SUB)
    KILN_FUSE_BINARY(B_MUL)
    KILN_FUSE_BINARY(B_DIV)
    KILN_FUSE_BINARY(B_POW)
    KILN_FUSE_BINARY(B_MOD)
    KILN_FUSE_BINARY(B_FMOD)
    KILN_FUSE_BINARY(C_EQ)
    KILN_FUSE_BINARY(C_LT)
    KILN_FUSE_BINARY(C_GT)
    KILN_FUSE_BINARY(C_LE)
    KILN_FUSE_BINARY(C_GE)
    default:
      for (int e = 0; e < kFuseVec; e++) y[e] = x0[e];
      break;
  }
}
#undef KILN_FUSE_BINARY

/** The binary codes fuseBinary has. */
bool fusedBinaryCode(int code) {
  switch (code) {
    case B_ADD: case B_SUB: case B_MUL: case B_DIV: case B_POW: case B_MOD: case B_FMOD: case C_EQ: case C_LT:
    case C_GT: case C_LE: case C_GE: return true;
    default: return false;
  }
}

/** The offset of element i in broadcast input k (IN_WALK). */
KILN_DEVICE int32_t fuseWalk(const FuseParams* __restrict__ q, int k, int32_t i) {
  int32_t off = 0;
  for (int d = q->rank - 1; d >= 0; d--) {
    const int32_t len = q->dims[d];
    const int32_t qd = i / len;
    off += (i - qd * len) * q->strides[k][d];
    i = qd;
  }
  return off;
}

/** Input k at elements i0 .. i0 + kFuseVec - 1 (those below n). */
KILN_DEVICE void fuseLoad(const FuseParams* __restrict__ q, const FusePointers& p, int k, int32_t i0, int32_t n,
                          float* v) {
  const uint8_t mode = q->inMode[k];
  const char* base = p.in(k);
  if (q->inBool[k]) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(base);
    for (int e = 0; e < kFuseVec; e++) {
      const int32_t i = i0 + e < n ? i0 + e : n - 1;
      const int32_t off = mode == IN_SCALAR ? 0 : mode == IN_FULL ? i : fuseWalk(q, k, i);
      v[e] = b[off] != 0 ? 1.0f : 0.0f;
    }
    return;
  }
  const float* f = reinterpret_cast<const float*>(base);
  if (mode == IN_SCALAR) {
    const float x = f[0];
    for (int e = 0; e < kFuseVec; e++) v[e] = x;
  } else if (mode == IN_FULL && i0 + kFuseVec <= n && (reinterpret_cast<uintptr_t>(f + i0) & 15) == 0) {
    const float4 x = *reinterpret_cast<const float4*>(f + i0);
    v[0] = x.x;
    v[1] = x.y;
    v[2] = x.z;
    v[3] = x.w;
  } else if (mode == IN_WALK && i0 + kFuseVec <= n && q->rank > 0 && q->dims[q->rank - 1] % kFuseVec == 0) {
    // the four elements lie in one innermost row (i0 is a multiple of 4): one walk for them
    const int32_t off = fuseWalk(q, k, i0), st = q->strides[k][q->rank - 1];
    for (int e = 0; e < kFuseVec; e++) v[e] = f[off + e * st];
  } else {
    for (int e = 0; e < kFuseVec; e++) {
      const int32_t i = i0 + e < n ? i0 + e : n - 1;
      v[e] = f[mode == IN_FULL ? i : fuseWalk(q, k, i)];
    }
  }
}

// The program (FuseParams) is the kernel's device table, read through a pointer: uniform loads
// that the caches serve, where a by-value parameter indexed at run time would be copied per thread.
__global__ void fusedKernel(const FuseParams* __restrict__ q, FusePointers p, int32_t n) {
  const int32_t groups = (n + kFuseVec - 1) / kFuseVec;
  const int32_t stride = static_cast<int32_t>(gridDim.x * blockDim.x);
  const int nops = q->nops;
  for (int32_t g = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x); g < groups; g += stride) {
    const int32_t i0 = g * kFuseVec;
    float acc[kFuseVec] = {0, 0, 0, 0}, s0[kFuseVec], s1[kFuseVec], s2[kFuseVec], s3[kFuseVec];
    float a[kFuseVec], b[kFuseVec], c[kFuseVec];
    auto fetch = [&](uint8_t src, float* v) {
      if (src >= SRC_INPUT) {
        fuseLoad(q, p, src - SRC_INPUT, i0, n, v);
        return;
      }
      // a copy per source, never a pointer chosen at run time: that would put every array of
      // the program in local memory instead of registers
      switch (src) {
        case SRC_SLOT + 0: for (int e = 0; e < kFuseVec; e++) v[e] = s0[e]; break;
        case SRC_SLOT + 1: for (int e = 0; e < kFuseVec; e++) v[e] = s1[e]; break;
        case SRC_SLOT + 2: for (int e = 0; e < kFuseVec; e++) v[e] = s2[e]; break;
        case SRC_SLOT + 3: for (int e = 0; e < kFuseVec; e++) v[e] = s3[e]; break;
        default: for (int e = 0; e < kFuseVec; e++) v[e] = acc[e]; break;
      }
    };
    for (int j = 0; j < nops; j++) {
      const FuseOp o = q->ops[j];
      switch (o.save) {
        case 0: for (int e = 0; e < kFuseVec; e++) s0[e] = acc[e]; break;
        case 1: for (int e = 0; e < kFuseVec; e++) s1[e] = acc[e]; break;
        case 2: for (int e = 0; e < kFuseVec; e++) s2[e] = acc[e]; break;
        case 3: for (int e = 0; e < kFuseVec; e++) s3[e] = acc[e]; break;
        default: break;
      }
      fetch(o.a, a);
      if (o.kind == F_UNARY) {
        fuseUnary(o.code, a, acc);
      } else if (o.kind == F_BINARY) {
        fetch(o.b, b);
        fuseBinary(o.code, a, b, acc);
      } else {
        fetch(o.b, b);
        fetch(o.c, c);
        for (int e = 0; e < kFuseVec; e++) acc[e] = a[e] != 0.0f ? b[e] : c[e];
      }
      if (o.store >= 0) {
        char* out = p.out(o.store);
        if (q->outBool[o.store]) {
          for (int e = 0; e < kFuseVec; e++) {
            if (i0 + e < n) reinterpret_cast<uint8_t*>(out)[i0 + e] = acc[e] != 0.0f ? 1 : 0;
          }
        } else {
          float* f = reinterpret_cast<float*>(out);
          if (i0 + kFuseVec <= n && (reinterpret_cast<uintptr_t>(f + i0) & 15) == 0) {
            *reinterpret_cast<float4*>(f + i0) = make_float4(acc[0], acc[1], acc[2], acc[3]);
          } else {
            for (int e = 0; e < kFuseVec; e++) {
              if (i0 + e < n) f[i0 + e] = acc[e];
            }
          }
        }
      }
    }
  }
}

struct FusedKernel : Kernel {
  FuseParams q{};
  int32_t in[kFuseMaxInputs] = {-1, -1, -1, -1, -1, -1, -1, -1};
  int32_t out[kFuseMaxOutputs] = {-1, -1, -1, -1};
  int64_t n = 0;
  bool run(Exec& x) override {
    if (n == 0) return true;
    FusePointers p{};
    for (int k = 0; k < q.nin; k++) p.set(k, x.ptr(in[k]));
    for (int k = 0; k < q.nout; k++) p.setOut(k, x.ptr(out[k]));
    const FuseParams* program = reinterpret_cast<const FuseParams*>(tableDevice);
    KILN_LAUNCH(fusedKernel, gridFor((n + kFuseVec - 1) / kFuseVec, kThreads), dim3(kThreads), 0, x.stream, program, p,
                static_cast<int32_t>(n));
    return launched(x, "fused elementwise");
  }
};

/** One node as a step of a fused kernel, or false (not a float32 elementwise case the kernel has). */
bool fuseStep(const NodeView& v, FuseOp& op, int& arity) {
  if (v.outputCount() != 1) return false;
  const std::string& name = v.n.op;
  const SValue& o = v.out(0);
  op = FuseOp{};
  if (name == "Where") {
    if (!v.has(0) || !v.has(1) || !v.has(2) || v.inputCount() != 3) return false;
    if (v.in(0).dtype != DT_BOOL || v.in(1).dtype != DT_FLOAT || v.in(2).dtype != DT_FLOAT || o.dtype != DT_FLOAT) {
      return false;
    }
    op.kind = F_WHERE;
    arity = 3;
    return true;
  }
  const int b = binaryCode(v);
  if (b >= 0) {
    if (!v.has(0) || !v.has(1) || v.inputCount() != 2 || legacyBroadcast(v)) return false;
    if (v.in(0).dtype != DT_FLOAT || v.in(1).dtype != DT_FLOAT) return false;
    const bool cmp = b >= C_EQ;
    if (!fusedBinaryCode(b)) return false;
    if (o.dtype != (cmp ? DT_BOOL : DT_FLOAT)) return false;
    op.kind = F_BINARY;
    op.code = static_cast<int16_t>(b);
    arity = 2;
    return true;
  }
  int u = unaryCode(name);
  if (u < 0 || !v.has(0) || v.inputCount() != 1) return false;
  if (u == U_GELU && v.attrString("approximate", "none") == "tanh") u = U_GELU_TANH;
  // parameterless and cheap codes only (see fuseUnary)
  if (!fusedUnaryCode(u)) return false;
  const int dx = v.in(0).dtype;
  if (u == U_NOT) {
    if (dx != DT_BOOL || o.dtype != DT_BOOL) return false;
  } else if (u == U_ISNAN) {
    if (dx != DT_FLOAT || o.dtype != DT_BOOL) return false;
  } else if (dx != DT_FLOAT || o.dtype != DT_FLOAT) {
    return false;
  }
  op.kind = F_UNARY;
  op.code = static_cast<int16_t>(u);
  arity = 1;
  return true;
}

}  // namespace

bool fusableElementwise(const NodeView& v) {
  FuseOp op;
  int arity = 0;
  return fuseStep(v, op, arity);
}

/** A lowering whose kernels index every operand alike (Kernel::elementwise). */
template <std::unique_ptr<Kernel> (*Lower)(const NodeView&, std::string&)>
std::unique_ptr<Kernel> elementwise(const NodeView& v, std::string& why) {
  std::unique_ptr<Kernel> k = Lower(v, why);
  if (k) k->elementwise = true;
  return k;
}

std::unique_ptr<Kernel> lowerFusedElementwise(const Schedule& s, const FusedRegion& r, std::string& why) {
  if (r.inputs.size() > static_cast<size_t>(kFuseMaxInputs) || r.outputs.size() > static_cast<size_t>(kFuseMaxOutputs) ||
      r.nodes.size() > static_cast<size_t>(kFuseMaxOps) || r.outputs.empty()) {
    why = "region past the fused kernel's limits";
    return nullptr;
  }
  int64_t total = 1;
  for (int64_t d : r.dims) total *= d;
  if (total >= (int64_t(1) << 31) - kFuseVec) {
    why = "2^31 elements or more";
    return nullptr;
  }
  auto k = std::make_unique<FusedKernel>();
  std::map<int32_t, int> reg;
  std::vector<std::vector<int64_t>> inDims;
  k->q.nin = static_cast<int>(r.inputs.size());
  for (size_t i = 0; i < r.inputs.size(); i++) {
    const SValue& x = s.values[static_cast<size_t>(r.inputs[i])];
    reg[r.inputs[i]] = static_cast<int>(i);
    inDims.push_back(x.dims);
    k->in[i] = r.inputs[i];
    if (x.dtype != DT_FLOAT && x.dtype != DT_BOOL) {
      why = "an input of another element type";
      return nullptr;
    }
    k->q.inBool[i] = x.dtype == DT_BOOL ? 1 : 0;
    k->q.inMode[i] = x.elements() == 1 ? IN_SCALAR : x.elements() == total ? IN_FULL : IN_WALK;
  }
  Walk<kFuseMaxInputs> w;
  if (!makeWalk<kFuseMaxInputs>(r.dims, inDims, w)) {
    why = "rank past 8 or shapes that do not broadcast";
    return nullptr;
  }
  k->q.rank = w.rank;
  for (int d = 0; d < w.rank; d++) {
    k->q.dims[d] = static_cast<int32_t>(w.dims[d]);
    for (int i = 0; i < kFuseMaxInputs; i++) k->q.strides[i][d] = static_cast<int32_t>(w.strides[i][d]);
  }
  // where each value lives while the steps run, and how many later steps still read it
  std::map<int32_t, int> uses;
  for (int32_t ni : r.nodes) {
    for (int32_t x : s.nodes[static_cast<size_t>(ni)].inputs) {
      if (x >= 0) uses[x]++;
    }
  }
  std::map<int32_t, int> outIndex;
  for (size_t i = 0; i < r.outputs.size(); i++) {
    outIndex[r.outputs[i]] = static_cast<int>(i);
    k->q.outBool[i] = s.values[static_cast<size_t>(r.outputs[i])].dtype == DT_BOOL ? 1 : 0;
    k->out[i] = r.outputs[i];
  }
  int32_t inAcc = -1;
  int32_t slot[kFuseSlots] = {-1, -1, -1, -1};
  std::string label;
  for (size_t j = 0; j < r.nodes.size(); j++) {
    const SNode& n = s.nodes[static_cast<size_t>(r.nodes[j])];
    NodeView v{s, n};
    FuseOp op;
    int arity = 0;
    if (!fuseStep(v, op, arity)) {
      why = "node '" + n.name + "' is not a fusable elementwise node";
      return nullptr;
    }
    op.save = -1;
    op.store = -1;
    // the accumulator's value, when a later step reads it, moves to a free slot first
    if (inAcc >= 0) {
      int later = uses[inAcc];
      for (int a = 0; a < arity; a++) later -= v.inId(a) == inAcc ? 1 : 0;
      if (later > 0) {
        int free = -1;
        for (int t = 0; t < kFuseSlots && free < 0; t++) {
          if (slot[t] < 0) free = t;
        }
        if (free < 0) {
          why = "more than four values live at once";
          return nullptr;
        }
        slot[free] = inAcc;
        op.save = static_cast<int8_t>(free);
      }
    }
    uint8_t* args[3] = {&op.a, &op.b, &op.c};
    for (int a = 0; a < arity; a++) {
      const int32_t x = v.inId(a);
      auto in = reg.find(x);
      if (in != reg.end()) {
        *args[a] = static_cast<uint8_t>(SRC_INPUT + in->second);
      } else if (x == inAcc) {
        *args[a] = SRC_ACC;
      } else {
        int at = -1;
        for (int t = 0; t < kFuseSlots; t++) {
          if (slot[t] == x) at = t;
        }
        if (at < 0) {
          why = "node '" + n.name + "' reads a value the region does not have";
          return nullptr;
        }
        *args[a] = static_cast<uint8_t>(SRC_SLOT + at);
      }
    }
    for (int a = 0; a < arity; a++) {
      const int32_t x = v.inId(a);
      if (--uses[x] == 0) {
        for (int t = 0; t < kFuseSlots; t++) {
          if (slot[t] == x) slot[t] = -1;
        }
      }
    }
    inAcc = v.outId(0);
    auto o = outIndex.find(inAcc);
    if (o != outIndex.end()) op.store = static_cast<int8_t>(o->second);
    k->q.ops[j] = op;
    label += (j ? "+" : "") + n.op;
  }
  k->q.nops = static_cast<int>(r.nodes.size());
  k->q.nout = static_cast<int>(r.outputs.size());
  for (int32_t y : r.outputs) {
    bool computed = false;
    for (int32_t ni : r.nodes) computed = computed || s.nodes[static_cast<size_t>(ni)].outputs[0] == y;
    if (!computed) {
      why = "an output the region does not compute";
      return nullptr;
    }
  }
  int64_t n = 1;
  for (int64_t d : r.dims) n *= d;
  k->n = n;
  k->label = "Fused(" + label + ")";
  // the program goes to the device once, as the kernel's table (Kernel::table)
  k->table.resize(sizeof(FuseParams));
  std::memcpy(k->table.data(), &k->q, sizeof(FuseParams));
  k->elementwise = true;
  return k;
}

void registerEltwise() {
  const char* unary[] = {"Relu",  "Neg",   "Abs",       "Sqrt",      "Reciprocal", "Exp",  "Log",   "Erf",  "Tanh",
                         "Sigmoid", "LeakyRelu", "Elu", "Selu",      "Celu",       "Gelu", "HardSigmoid", "HardSwish",
                         "Softplus", "Softsign", "Clip", "Not",      "Sign",       "Floor", "Ceil", "Round", "Sin",
                         "Cos",   "Tan",   "Asin",      "Acos",      "Atan",       "Sinh", "Cosh",  "Asinh", "Acosh",
                         "Atanh", "ThresholdedRelu", "Mish", "Shrink", "IsNaN",    "IsInf", "BitwiseNot"};
  for (const char* op : unary) registerLowering(op, elementwise<lowerUnary>);
  const char* binary[] = {"Add",   "Sub",  "Mul", "Div",        "Pow",        "Mod",        "PRelu",
                          "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or",
                          "Xor",   "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift"};
  for (const char* op : binary) registerLowering(op, elementwise<lowerBinary>);
  for (const char* op : {"Sum", "Mean", "Min", "Max"}) registerLowering(op, elementwise<lowerVariadic>);
  registerLowering("Where", lowerWhere);
  registerLowering("Cast", lowerCast);
  registerLowering("CastLike", lowerCast);
}

}  // namespace kiln
