// Unary math: op codes, the float32 SIMD kernel and the scalar f64 / i64 fallbacks.
import { DT_UINT16, DT_UINT32, DT_UINT64, DT_UINT8 } from "../../ir/dtype";
import { serf, verf, vexp, vgelu, vgeluTanh, vsigmoid, vtanh } from "./vmath";

export const U_RELU: i32 = 0;
export const U_NEG: i32 = 1;
export const U_ABS: i32 = 2;
export const U_SQRT: i32 = 3;
export const U_RECIP: i32 = 4;
export const U_EXP: i32 = 5;
export const U_LOG: i32 = 6;
export const U_ERF: i32 = 7;
export const U_TANH: i32 = 8;
export const U_SIGMOID: i32 = 9;
export const U_LEAKY: i32 = 10;
export const U_ELU: i32 = 11;
export const U_SELU: i32 = 12;
export const U_CELU: i32 = 13;
export const U_GELU: i32 = 14;
export const U_GELU_TANH: i32 = 15;
export const U_HSIG: i32 = 16;
export const U_HSWISH: i32 = 17;
export const U_SOFTPLUS: i32 = 18;
export const U_SOFTSIGN: i32 = 19;
export const U_CLIP: i32 = 20;
export const U_NOT: i32 = 21;
export const U_SIGN: i32 = 22;
export const U_FLOOR: i32 = 23;
export const U_CEIL: i32 = 24;
export const U_ROUND: i32 = 25;
export const U_SIN: i32 = 26;
export const U_COS: i32 = 27;
export const U_TAN: i32 = 28;
export const U_ASIN: i32 = 29;
export const U_ACOS: i32 = 30;
export const U_ATAN: i32 = 31;
export const U_SINH: i32 = 32;
export const U_COSH: i32 = 33;
export const U_ASINH: i32 = 34;
export const U_ACOSH: i32 = 35;
export const U_ATANH: i32 = 36;
export const U_THRELU: i32 = 37;
export const U_MISH: i32 = 38;
export const U_SHRINK: i32 = 39;
export const U_ISNAN: i32 = 40;
export const U_ISINF: i32 = 41;
export const U_BITNOT: i32 = 42;
/** Internal: x * x and x * x * x (Pow with a constant exponent 2 or 3). */
export const U_SQUARE: i32 = 43;
export const U_CUBE: i32 = 44;

/** Whether unaryF32 handles code with SIMD. */
export function unarySimd(code: i32): bool {
  switch (code) {
    case U_RELU: case U_NEG: case U_ABS: case U_SQRT: case U_RECIP: case U_EXP: case U_ERF:
    case U_TANH: case U_SIGMOID: case U_LEAKY: case U_ELU: case U_SELU: case U_CELU: case U_GELU:
    case U_GELU_TANH: case U_HSIG: case U_HSWISH: case U_SOFTSIGN: case U_CLIP: case U_FLOOR:
    case U_CEIL: case U_ROUND: case U_THRELU: case U_SHRINK: case U_SQUARE: case U_CUBE:
      return true;
    default: return false;
  }
}

// @ts-ignore: decorator
@inline
function vun(code: i32, x: v128, p0: v128, p1: v128): v128 {
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  switch (code) {
    case U_RELU: return f32x4.pmax(x, zero);
    case U_NEG: return f32x4.neg(x);
    case U_ABS: return f32x4.abs(x);
    case U_SQRT: return f32x4.sqrt(x);
    case U_RECIP: return f32x4.div(one, x);
    case U_EXP: return vexp(x);
    case U_ERF: return verf(x);
    case U_TANH: return vtanh(x);
    case U_SIGMOID: return vsigmoid(x);
    case U_LEAKY: return v128.bitselect(f32x4.mul(x, p0), x, f32x4.lt(x, zero));
    case U_ELU: return v128.bitselect(f32x4.mul(p0, f32x4.sub(vexp(x), one)), x, f32x4.lt(x, zero));
    case U_SELU: {
      const neg = f32x4.sub(f32x4.mul(p0, vexp(x)), p0);
      return f32x4.mul(p1, v128.bitselect(neg, x, f32x4.le(x, zero)));
    }
    case U_CELU: {
      // max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
      const e = f32x4.mul(p0, f32x4.sub(vexp(f32x4.div(x, p0)), one));
      return f32x4.add(f32x4.max(x, zero), f32x4.min(e, zero));
    }
    case U_GELU: return vgelu(x);
    case U_GELU_TANH: return vgeluTanh(x);
    case U_HSIG: return f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.mul(x, p0), p1), zero), one);
    case U_HSWISH: {
      const h = f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.mul(x, f32x4.splat(1.0 / 6.0)), f32x4.splat(0.5)), zero), one);
      return f32x4.mul(x, h);
    }
    case U_SOFTSIGN: return f32x4.div(x, f32x4.add(one, f32x4.abs(x)));
    case U_CLIP: return f32x4.pmin(f32x4.pmax(x, p0), p1);
    case U_FLOOR: return f32x4.floor(x);
    case U_CEIL: return f32x4.ceil(x);
    case U_ROUND: return f32x4.nearest(x);
    case U_THRELU: return v128.bitselect(x, zero, f32x4.gt(x, p0));
    case U_SHRINK: {
      const lo = v128.bitselect(f32x4.add(x, p1), zero, f32x4.lt(x, f32x4.neg(p0)));
      return v128.bitselect(f32x4.sub(x, p1), lo, f32x4.gt(x, p0));
    }
    case U_SQUARE: return f32x4.mul(x, x);
    case U_CUBE: return f32x4.mul(f32x4.mul(x, x), x);
    default: return x;
  }
}

// @ts-ignore: decorator
@inline
function vtest(isNan: bool, v: v128, pos: v128, neg: v128): v128 {
  if (isNan) return f32x4.ne(v, v);
  return v128.or(v128.and(f32x4.eq(v, f32x4.splat(Infinity)), pos), v128.and(f32x4.eq(v, f32x4.splat(-Infinity)), neg));
}

/** IsNaN / IsInf on n float32 values, writing bool bytes (16 per step). */
export function unaryTestF32(code: i32, px: usize, po: usize, n: i32, detectPos: bool, detectNeg: bool): void {
  const isNan = code == U_ISNAN;
  const pos = i32x4.splat(detectPos ? -1 : 0), neg = i32x4.splat(detectNeg ? -1 : 0);
  const one = i8x16.splat(1);
  let i: i32 = 0;
  for (; i + 16 <= n; i += 16) {
    const p = px + (<usize>i << 2);
    const m0 = vtest(isNan, v128.load(p), pos, neg), m1 = vtest(isNan, v128.load(p + 16), pos, neg);
    const m2 = vtest(isNan, v128.load(p + 32), pos, neg), m3 = vtest(isNan, v128.load(p + 48), pos, neg);
    const a = i16x8.narrow_i32x4_s(m0, m1), b = i16x8.narrow_i32x4_s(m2, m3);
    v128.store(po + <usize>i, v128.and(i8x16.narrow_i16x8_s(a, b), one));
  }
  for (; i < n; i++) {
    const m = vtest(isNan, v128.load32_splat(px + (<usize>i << 2)), pos, neg);
    store<u8>(po + <usize>i, i32x4.extract_lane(m, 0) != 0 ? 1 : 0);
  }
}

/** float32 unary kernel over n contiguous elements (code must satisfy unarySimd). */
export function unaryF32(code: i32, px: usize, po: usize, n: i32, a0: f32, a1: f32): void {
  const p0 = f32x4.splat(a0), p1 = f32x4.splat(a1);
  let i: i32 = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    v128.store(po + o, vun(code, v128.load(px + o), p0, p1));
    v128.store(po + o + 16, vun(code, v128.load(px + o + 16), p0, p1));
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(po + o, vun(code, v128.load(px + o), p0, p1));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(po + o, f32x4.extract_lane(vun(code, v128.load32_splat(px + o), p0, p1), 0));
  }
}

function softplus(x: f64): f64 {
  // log(1 + e^x) without overflow
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** A unary op on one float value (float64, float16, bfloat16 and float32 ops without SIMD). */
export function unaryF64(code: i32, x: f64, p0: f64, p1: f64): f64 {
  switch (code) {
    case U_RELU: return x < 0 ? 0 : x;
    case U_NEG: return -x;
    case U_ABS: return Math.abs(x);
    case U_SQRT: return Math.sqrt(x);
    case U_RECIP: return 1.0 / x;
    case U_EXP: return Math.exp(x);
    case U_LOG: return Math.log(x);
    case U_ERF: return <f64>serf(<f32>x);
    case U_TANH: return Math.tanh(x);
    case U_SIGMOID: return x >= 0 ? 1.0 / (1.0 + Math.exp(-x)) : Math.exp(x) / (1.0 + Math.exp(x));
    case U_LEAKY: return x < 0 ? x * p0 : x;
    case U_ELU: return x < 0 ? p0 * (Math.exp(x) - 1.0) : x;
    case U_SELU: return x <= 0 ? p1 * (p0 * Math.exp(x) - p0) : p1 * x;
    case U_CELU: return max<f64>(0, x) + min<f64>(0, p0 * (Math.exp(x / p0) - 1.0));
    case U_GELU: return 0.5 * x * (1.0 + <f64>serf(<f32>(x * 0.7071067811865476)));
    case U_GELU_TANH: return 0.5 * x * (1.0 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case U_HSIG: return max<f64>(0, min<f64>(1, p0 * x + p1));
    case U_HSWISH: return x * max<f64>(0, min<f64>(1, x / 6.0 + 0.5));
    case U_SOFTPLUS: return softplus(x);
    case U_SOFTSIGN: return x / (1.0 + Math.abs(x));
    case U_CLIP: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case U_NOT: return x == 0 ? 1 : 0;
    case U_SIGN: return x > 0 ? 1 : (x < 0 ? -1 : (x == 0 ? 0 : x));
    case U_FLOOR: return Math.floor(x);
    case U_CEIL: return Math.ceil(x);
    case U_ROUND: return nearest<f64>(x);
    case U_SIN: return Math.sin(x);
    case U_COS: return Math.cos(x);
    case U_TAN: return Math.tan(x);
    case U_ASIN: return Math.asin(x);
    case U_ACOS: return Math.acos(x);
    case U_ATAN: return Math.atan(x);
    case U_SINH: return Math.sinh(x);
    case U_COSH: return Math.cosh(x);
    case U_ASINH: return Math.asinh(x);
    case U_ACOSH: return Math.acosh(x);
    case U_ATANH: return Math.atanh(x);
    case U_THRELU: return x > p0 ? x : 0;
    case U_MISH: return x * Math.tanh(softplus(x));
    case U_SHRINK: return x < -p0 ? x + p1 : (x > p0 ? x - p1 : 0);
    case U_SQUARE: return x * x;
    case U_CUBE: return x * x * x;
    case U_ISNAN: return isNaN(x) ? 1 : 0;
    case U_ISINF: {
      if (x == Infinity) return p0 != 0 ? 1 : 0;
      if (x == -Infinity) return p1 != 0 ? 1 : 0;
      return 0;
    }
    default: return x;
  }
}

function isUnsigned(dt: i32): bool {
  return dt == DT_UINT8 || dt == DT_UINT16 || dt == DT_UINT32 || dt == DT_UINT64;
}

/** A unary op on one integer value of element type dt (stored back with wrap-around). */
export function unaryI64(code: i32, x: i64, dt: i32, p0: f64, p1: f64): i64 {
  const u = isUnsigned(dt);
  switch (code) {
    case U_RELU: return !u && x < 0 ? 0 : x;
    case U_NEG: return -x;
    case U_ABS: return !u && x < 0 ? -x : x;
    case U_SIGN: return x == 0 ? 0 : (!u && x < 0 ? -1 : 1);
    case U_NOT: return x == 0 ? 1 : 0;
    case U_BITNOT: return ~x;
    default: {
      const v = unaryF64(code, u ? <f64><u64>x : <f64>x, p0, p1);
      return isFinite(v) ? <i64>v : 0;
    }
  }
}
