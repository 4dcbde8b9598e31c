// Elementwise kernels: a broadcast walker that coalesces dims into rows, typed row kernels for
// binary ops and comparisons, and float32 SIMD paths (same shape, scalar and row broadcast).
import {
  DT_BFLOAT16, DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_FLOAT16, DT_INT16, DT_INT32, DT_INT64, DT_INT8,
  DT_UINT16, DT_UINT32, DT_UINT64, DT_UINT8, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16,
} from "../ir/dtype";

// ---- broadcast walker ----

/**
 * Walks an output of `lens` in rows: dims that broadcast alike are merged, so a same-shape op
 * is one row, [N,C] + [C] is N rows of C, and each input's inner stride is 0 or 1.
 * Usage: `for (r < rows) { kernel(off[k], istr[k], r * inner); next(); }`.
 */
export class Bcast {
  nin: i32;
  rank: i32 = 0;
  lens: StaticArray<i32>;
  /** strides[k * rank + d], in elements. */
  strides: StaticArray<i32>;
  idx: StaticArray<i32>;
  /** Current element offset of each input's row. */
  off: StaticArray<i32>;
  /** Inner (row) stride of each input: 0 or 1. */
  istr: StaticArray<i32>;
  inner: i32 = 1;
  rows: i32 = 1;

  constructor(out: Array<i32>, ins: Array<Array<i32>>) {
    const R = out.length;
    const nin = ins.length;
    this.nin = nin;
    // aligned strides per input
    const s = new StaticArray<i32>(nin * (R > 0 ? R : 1));
    for (let k = 0; k < nin; k++) {
      const l = ins[k];
      const r = l.length;
      let acc: i32 = 1;
      for (let d = R - 1; d >= 0; d--) {
        const ld = d - (R - r);
        if (ld < 0) { s[k * R + d] = 0; continue; }
        const len = l[ld];
        s[k * R + d] = len == 1 ? 0 : acc;
        acc *= len;
      }
    }
    // coalesce, inner first
    const cl = new Array<i32>();
    const cs = new Array<i32>(); // cs[j * nin + k]
    for (let d = R - 1; d >= 0; d--) {
      const len = out[d];
      if (len == 1) continue;
      const j = cl.length;
      let merge = j > 0;
      if (merge) {
        for (let k = 0; k < nin; k++) {
          if (s[k * R + d] != cs[(j - 1) * nin + k] * cl[j - 1]) { merge = false; break; }
        }
      }
      if (merge) {
        cl[j - 1] = cl[j - 1] * len;
      } else {
        cl.push(len);
        for (let k = 0; k < nin; k++) cs.push(s[k * R + d]);
      }
    }
    const cr = cl.length;
    const lens = new StaticArray<i32>(cr);
    const strides = new StaticArray<i32>(nin * (cr > 0 ? cr : 1));
    for (let j = 0; j < cr; j++) {
      const d = cr - 1 - j; // outer-first position
      lens[d] = cl[j];
      for (let k = 0; k < nin; k++) strides[k * cr + d] = cs[j * nin + k];
    }
    const istr = new StaticArray<i32>(nin);
    let inner: i32 = 1;
    let rows: i32 = 1;
    if (cr > 0) {
      inner = lens[cr - 1];
      for (let k = 0; k < nin; k++) istr[k] = strides[k * cr + cr - 1];
      for (let d = 0; d < cr - 1; d++) rows *= lens[d];
    }
    this.rank = cr;
    this.lens = lens;
    this.strides = strides;
    this.idx = new StaticArray<i32>(cr > 0 ? cr : 1);
    this.off = new StaticArray<i32>(nin);
    this.istr = istr;
    this.inner = inner;
    this.rows = rows;
  }

  /** Advances to the next row. */
  next(): void {
    const cr = this.rank;
    const nin = this.nin;
    for (let d = cr - 2; d >= 0; d--) {
      const i = unchecked(this.idx[d]) + 1;
      const len = unchecked(this.lens[d]);
      if (i < len) {
        unchecked(this.idx[d] = i);
        for (let k = 0; k < nin; k++) {
          unchecked(this.off[k] += unchecked(this.strides[k * cr + d]));
        }
        return;
      }
      unchecked(this.idx[d] = 0);
      for (let k = 0; k < nin; k++) {
        unchecked(this.off[k] -= unchecked(this.strides[k * cr + d]) * (len - 1));
      }
    }
  }
}

// ---- binary op codes ----
export const B_ADD: i32 = 0;
export const B_SUB: i32 = 1;
export const B_MUL: i32 = 2;
export const B_DIV: i32 = 3;
export const B_POW: i32 = 4;
/** Integer mod with the divisor's sign (Python); floats: fmod then adjusted to the divisor's sign. */
export const B_MOD: i32 = 5;
/** C fmod: the dividend's sign. */
export const B_FMOD: i32 = 6;
export const B_MIN: i32 = 7;
export const B_MAX: i32 = 8;
/** x < 0 ? slope * x : x (a = x, b = slope). */
export const B_PRELU: i32 = 9;
export const B_AND: i32 = 10;
export const B_OR: i32 = 11;
export const B_XOR: i32 = 12;
export const B_SHL: i32 = 13;
export const B_SHR: i32 = 14;
/** b (copy the second input, broadcast). */
export const B_SECOND: i32 = 15;
// comparisons (bool out)
export const C_EQ: i32 = 0;
export const C_LT: i32 = 1;
export const C_GT: i32 = 2;
export const C_LE: i32 = 3;
export const C_GE: i32 = 4;

// @ts-ignore: decorator
@inline
function idiv<T>(a: T, b: T): T {
  if (b == <T>0) return <T>0;
  if (isSigned<T>() && sizeof<T>() >= 4 && b == <T>-1) return <T>(<T>0 - a);
  return a / b;
}

// @ts-ignore: decorator
@inline
function imod<T>(a: T, b: T, python: bool): T {
  if (b == <T>0) return <T>0;
  if (isSigned<T>() && sizeof<T>() >= 4 && b == <T>-1) return <T>0;
  let r: T = a % b;
  if (isSigned<T>() && python && r != <T>0 && ((r < <T>0) != (b < <T>0))) r = <T>(r + b);
  return r;
}

// @ts-ignore: decorator
@inline
function fmodF<T>(a: T, b: T, python: bool): T {
  let r: T = a % b;
  if (python && r != <T>0 && ((r < <T>0) != (b < <T>0))) r = <T>(r + b);
  return r;
}

/** One row of a binary op on element type T (not f16/bf16). Strides sa, sb are 0 or 1. */
export function binRow<T>(op: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize, n: i32): void {
  const da: usize = sa != 0 ? sizeof<T>() : 0;
  const db: usize = sb != 0 ? sizeof<T>() : 0;
  const dz: usize = sizeof<T>();
  const end = po + <usize>n * dz;
  switch (op) {
    case B_ADD: {
      for (; po < end; po += dz, pa += da, pb += db) store<T>(po, <T>(load<T>(pa) + load<T>(pb)));
      break;
    }
    case B_SUB: {
      for (; po < end; po += dz, pa += da, pb += db) store<T>(po, <T>(load<T>(pa) - load<T>(pb)));
      break;
    }
    case B_MUL: {
      for (; po < end; po += dz, pa += da, pb += db) store<T>(po, <T>(load<T>(pa) * load<T>(pb)));
      break;
    }
    case B_DIV: {
      if (isFloat<T>()) {
        for (; po < end; po += dz, pa += da, pb += db) store<T>(po, <T>(load<T>(pa) / load<T>(pb)));
      } else {
        for (; po < end; po += dz, pa += da, pb += db) store<T>(po, idiv<T>(load<T>(pa), load<T>(pb)));
      }
      break;
    }
    case B_POW: {
      for (; po < end; po += dz, pa += da, pb += db) {
        store<T>(po, <T>Math.pow(<f64>load<T>(pa), <f64>load<T>(pb)));
      }
      break;
    }
    case B_MOD:
    case B_FMOD: {
      const py = op == B_MOD;
      if (isFloat<T>()) {
        for (; po < end; po += dz, pa += da, pb += db) store<T>(po, fmodF<T>(load<T>(pa), load<T>(pb), py));
      } else {
        for (; po < end; po += dz, pa += da, pb += db) store<T>(po, imod<T>(load<T>(pa), load<T>(pb), py));
      }
      break;
    }
    case B_MIN: {
      for (; po < end; po += dz, pa += da, pb += db) store<T>(po, min<T>(load<T>(pa), load<T>(pb)));
      break;
    }
    case B_MAX: {
      for (; po < end; po += dz, pa += da, pb += db) store<T>(po, max<T>(load<T>(pa), load<T>(pb)));
      break;
    }
    case B_PRELU: {
      for (; po < end; po += dz, pa += da, pb += db) {
        const x = load<T>(pa);
        store<T>(po, x < <T>0 ? <T>(x * load<T>(pb)) : x);
      }
      break;
    }
    case B_SECOND: {
      for (; po < end; po += dz, pb += db) store<T>(po, load<T>(pb));
      break;
    }
    default: {
      if (!isFloat<T>()) {
        const bits: T = <T>(sizeof<T>() * 8);
        switch (op) {
          case B_AND: {
            for (; po < end; po += dz, pa += da, pb += db) store<T>(po, <T>(load<T>(pa) & load<T>(pb)));
            break;
          }
          case B_OR: {
            for (; po < end; po += dz, pa += da, pb += db) store<T>(po, <T>(load<T>(pa) | load<T>(pb)));
            break;
          }
          case B_XOR: {
            for (; po < end; po += dz, pa += da, pb += db) store<T>(po, <T>(load<T>(pa) ^ load<T>(pb)));
            break;
          }
          case B_SHL: {
            for (; po < end; po += dz, pa += da, pb += db) {
              const s = load<T>(pb);
              store<T>(po, s >= bits ? <T>0 : <T>(load<T>(pa) << s));
            }
            break;
          }
          case B_SHR: {
            for (; po < end; po += dz, pa += da, pb += db) {
              const s = load<T>(pb);
              store<T>(po, s >= bits ? <T>0 : <T>(load<T>(pa) >> s));
            }
            break;
          }
          default: break;
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline
function vbin(op: i32, a: v128, b: v128): v128 {
  switch (op) {
    case B_ADD: return f32x4.add(a, b);
    case B_SUB: return f32x4.sub(a, b);
    case B_MUL: return f32x4.mul(a, b);
    case B_DIV: return f32x4.div(a, b);
    case B_MIN: return f32x4.min(a, b);
    case B_MAX: return f32x4.max(a, b);
    case B_PRELU: {
      const neg = f32x4.lt(a, f32x4.splat(0));
      return v128.bitselect(f32x4.mul(a, b), a, neg);
    }
    default: return b; // B_SECOND
  }
}

/** Whether the f32 SIMD row kernel handles op. */
export function f32SimdBinary(op: i32): bool {
  return op == B_ADD || op == B_SUB || op == B_MUL || op == B_DIV || op == B_MIN || op == B_MAX ||
    op == B_PRELU || op == B_SECOND;
}

/** One float32 row with SIMD (op must satisfy f32SimdBinary). */
export function binRowF32(op: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize, n: i32): void {
  let i: i32 = 0;
  if (sa != 0 && sb != 0) {
    for (; i + 8 <= n; i += 8) {
      const o = <usize>i << 2;
      v128.store(po + o, vbin(op, v128.load(pa + o), v128.load(pb + o)));
      v128.store(po + o + 16, vbin(op, v128.load(pa + o + 16), v128.load(pb + o + 16)));
    }
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(po + o, vbin(op, v128.load(pa + o), v128.load(pb + o)));
    }
  } else if (sa != 0) {
    const vb = v128.load32_splat(pb);
    for (; i + 8 <= n; i += 8) {
      const o = <usize>i << 2;
      v128.store(po + o, vbin(op, v128.load(pa + o), vb));
      v128.store(po + o + 16, vbin(op, v128.load(pa + o + 16), vb));
    }
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(po + o, vbin(op, v128.load(pa + o), vb));
    }
  } else if (sb != 0) {
    const va = v128.load32_splat(pa);
    for (; i + 8 <= n; i += 8) {
      const o = <usize>i << 2;
      v128.store(po + o, vbin(op, va, v128.load(pb + o)));
      v128.store(po + o + 16, vbin(op, va, v128.load(pb + o + 16)));
    }
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(po + o, vbin(op, va, v128.load(pb + o)));
    }
  }
  for (; i < n; i++) {
    const a = v128.load32_splat(pa + (sa != 0 ? <usize>i << 2 : 0));
    const b = v128.load32_splat(pb + (sb != 0 ? <usize>i << 2 : 0));
    store<f32>(po + (<usize>i << 2), f32x4.extract_lane(vbin(op, a, b), 0));
  }
}

/** One row of a comparison on element type T; writes bool bytes. */
export function cmpRow<T>(op: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize, n: i32): void {
  const da: usize = sa != 0 ? sizeof<T>() : 0;
  const db: usize = sb != 0 ? sizeof<T>() : 0;
  const end = po + <usize>n;
  switch (op) {
    case C_EQ: {
      for (; po < end; po++, pa += da, pb += db) store<u8>(po, <u8>(load<T>(pa) == load<T>(pb)));
      break;
    }
    case C_LT: {
      for (; po < end; po++, pa += da, pb += db) store<u8>(po, <u8>(load<T>(pa) < load<T>(pb)));
      break;
    }
    case C_GT: {
      for (; po < end; po++, pa += da, pb += db) store<u8>(po, <u8>(load<T>(pa) > load<T>(pb)));
      break;
    }
    case C_LE: {
      for (; po < end; po++, pa += da, pb += db) store<u8>(po, <u8>(load<T>(pa) <= load<T>(pb)));
      break;
    }
    default: {
      for (; po < end; po++, pa += da, pb += db) store<u8>(po, <u8>(load<T>(pa) >= load<T>(pb)));
      break;
    }
  }
}

// ---- per-element conversions for the generic (f16/bf16, mixed-type) paths ----

/** Element at p of type dt, as f64. */
export function loadF64(dt: i32, p: usize): f64 {
  switch (dt) {
    case DT_FLOAT: return <f64>load<f32>(p);
    case DT_DOUBLE: return load<f64>(p);
    case DT_FLOAT16: return <f64>f16ToF32(load<u16>(p));
    case DT_BFLOAT16: return <f64>bf16ToF32(load<u16>(p));
    case DT_INT8: return <f64>load<i8>(p);
    case DT_UINT8: return <f64>load<u8>(p);
    case DT_BOOL: return <f64>load<u8>(p);
    case DT_INT16: return <f64>load<i16>(p);
    case DT_UINT16: return <f64>load<u16>(p);
    case DT_INT32: return <f64>load<i32>(p);
    case DT_UINT32: return <f64>load<u32>(p);
    case DT_INT64: return <f64>load<i64>(p);
    case DT_UINT64: return <f64>load<u64>(p);
    default: return 0;
  }
}

/** Stores v at p as type dt (floats round, integers truncate toward zero and wrap). */
export function storeF64(dt: i32, p: usize, v: f64): void {
  switch (dt) {
    case DT_FLOAT: store<f32>(p, <f32>v); break;
    case DT_DOUBLE: store<f64>(p, v); break;
    case DT_FLOAT16: store<u16>(p, f32ToF16(<f32>v)); break;
    case DT_BFLOAT16: store<u16>(p, f32ToBf16(<f32>v)); break;
    case DT_BOOL: store<u8>(p, v != 0 ? 1 : 0); break;
    default: {
      let iv: i64 = 0;
      if (isFinite(v)) {
        if (v >= 9223372036854775807.0) iv = dt == DT_UINT64 ? <i64><u64>v : i64.MAX_VALUE;
        else if (v <= -9223372036854775808.0) iv = i64.MIN_VALUE;
        else iv = <i64>v;
      }
      storeI64(dt, p, iv);
    }
  }
}

/** Element at p of integer/bool type dt as i64 (floats truncate). */
export function loadI64(dt: i32, p: usize): i64 {
  switch (dt) {
    case DT_INT64: return load<i64>(p);
    case DT_UINT64: return <i64>load<u64>(p);
    case DT_INT32: return <i64>load<i32>(p);
    case DT_UINT32: return <i64>load<u32>(p);
    case DT_INT16: return <i64>load<i16>(p);
    case DT_UINT16: return <i64>load<u16>(p);
    case DT_INT8: return <i64>load<i8>(p);
    case DT_UINT8: return <i64>load<u8>(p);
    case DT_BOOL: return <i64>load<u8>(p);
    default: {
      const v = loadF64(dt, p);
      return isFinite(v) ? <i64>v : 0;
    }
  }
}

export function storeI64(dt: i32, p: usize, v: i64): void {
  switch (dt) {
    case DT_INT64: store<i64>(p, v); break;
    case DT_UINT64: store<u64>(p, <u64>v); break;
    case DT_INT32: store<i32>(p, <i32>v); break;
    case DT_UINT32: store<u32>(p, <u32>v); break;
    case DT_INT16: store<i16>(p, <i16>v); break;
    case DT_UINT16: store<u16>(p, <u16>v); break;
    case DT_INT8: store<i8>(p, <i8>v); break;
    case DT_UINT8: store<u8>(p, <u8>v); break;
    case DT_BOOL: store<u8>(p, v != 0 ? 1 : 0); break;
    default: storeF64(dt, p, <f64>v);
  }
}

/** A binary op on f64 values (the generic path for f16/bf16 and mixed types). */
export function binF64(op: i32, a: f64, b: f64): f64 {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return Math.pow(a, b);
    case B_MOD: return fmodF<f64>(a, b, true);
    case B_FMOD: return fmodF<f64>(a, b, false);
    case B_MIN: return min<f64>(a, b);
    case B_MAX: return max<f64>(a, b);
    case B_PRELU: return a < 0 ? a * b : a;
    default: return b;
  }
}

export function cmpF64(op: i32, a: f64, b: f64): bool {
  switch (op) {
    case C_EQ: return a == b;
    case C_LT: return a < b;
    case C_GT: return a > b;
    case C_LE: return a <= b;
    default: return a >= b;
  }
}

/**
 * One row of Where on 4-byte elements: o[i] = c[i*dc] ? x[i*dx] : y[i*dy] for i < n (strides 0
 * or 1; SIMD where the condition advances, its bytes widened to lane masks).
 */
export function selRowU32(pc: usize, dc: i32, px: usize, dx: i32, py: usize, dy: i32, po: usize, n: i32): void {
  let i: i32 = 0;
  if (dc != 0) {
    const vx0 = v128.load32_splat(px), vy0 = v128.load32_splat(py);
    for (; i + 4 <= n; i += 4) {
      const cb = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(pc + <usize>i)));
      const m = i32x4.ne(cb, i32x4.splat(0));
      const vx = dx != 0 ? v128.load(px + (<usize>i << 2)) : vx0;
      const vy = dy != 0 ? v128.load(py + (<usize>i << 2)) : vy0;
      v128.store(po + (<usize>i << 2), v128.bitselect(vx, vy, m));
    }
  }
  for (; i < n; i++) {
    const cv = load<u8>(pc + <usize>(i * dc));
    const src = cv != 0 ? px + (<usize>(i * dx) << 2) : py + (<usize>(i * dy) << 2);
    store<u32>(po + (<usize>i << 2), load<u32>(src));
  }
}
