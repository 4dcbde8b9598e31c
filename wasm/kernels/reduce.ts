// Reduction kernels: a generic reduce over any set of axes (accumulating in f64, with float32
// SIMD row paths), and the softmax family along one axis.
import { DT_FLOAT, dtypeSize } from "../ir/dtype";
import { Tensor } from "../ir/tensor";
import { Bcast, loadF64, storeF64 } from "./eltwise";
import { vexpNonPos } from "../ops/math/vmath";
import { softmaxRowsPar } from "./par_eltwise";

export const R_SUM: i32 = 0;
export const R_MEAN: i32 = 1;
export const R_MAX: i32 = 2;
export const R_MIN: i32 = 3;
export const R_PROD: i32 = 4;
export const R_L1: i32 = 5;
export const R_L2: i32 = 6;
export const R_LOGSUM: i32 = 7;
export const R_LOGSUMEXP: i32 = 8;
export const R_SUMSQUARE: i32 = 9;
/** Internal: sum of exp(x - m) with m the running max in `shift`. */
const R_SUMEXP: i32 = 10;

function initValue(code: i32): f64 {
  switch (code) {
    case R_MAX: return -Infinity;
    case R_MIN: return Infinity;
    case R_PROD: return 1;
    default: return 0;
  }
}

// @ts-ignore: decorator
@inline
function vsum4(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Reduces n contiguous float32 values at p to one value (code: sum-like, max or min). */
function rowF32(code: i32, p: usize, n: i32): f64 {
  let i: i32 = 0;
  if (code == R_MAX || code == R_MIN) {
    const isMax = code == R_MAX;
    let m: f32 = isMax ? -Infinity : Infinity;
    if (n >= 4) {
      let a = v128.load(p);
      for (i = 4; i + 4 <= n; i += 4) {
        const v = v128.load(p + (<usize>i << 2));
        a = isMax ? f32x4.max(a, v) : f32x4.min(a, v);
      }
      const l0 = f32x4.extract_lane(a, 0), l1 = f32x4.extract_lane(a, 1);
      const l2 = f32x4.extract_lane(a, 2), l3 = f32x4.extract_lane(a, 3);
      m = isMax ? max<f32>(max<f32>(l0, l1), max<f32>(l2, l3)) : min<f32>(min<f32>(l0, l1), min<f32>(l2, l3));
    }
    for (; i < n; i++) {
      const x = load<f32>(p + (<usize>i << 2));
      m = isMax ? max<f32>(m, x) : min<f32>(m, x);
    }
    return <f64>m;
  }
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let s: f64 = 0;
  if (code == R_L1) {
    for (; i + 8 <= n; i += 8) {
      a0 = f32x4.add(a0, f32x4.abs(v128.load(p + (<usize>i << 2))));
      a1 = f32x4.add(a1, f32x4.abs(v128.load(p + (<usize>i << 2) + 16)));
    }
    for (; i < n; i++) s += Math.abs(<f64>load<f32>(p + (<usize>i << 2)));
  } else if (code == R_L2 || code == R_SUMSQUARE) {
    for (; i + 8 <= n; i += 8) {
      const x0 = v128.load(p + (<usize>i << 2)), x1 = v128.load(p + (<usize>i << 2) + 16);
      a0 = f32x4.add(a0, f32x4.mul(x0, x0));
      a1 = f32x4.add(a1, f32x4.mul(x1, x1));
    }
    for (; i < n; i++) {
      const x = <f64>load<f32>(p + (<usize>i << 2));
      s += x * x;
    }
  } else {
    for (; i + 8 <= n; i += 8) {
      a0 = f32x4.add(a0, v128.load(p + (<usize>i << 2)));
      a1 = f32x4.add(a1, v128.load(p + (<usize>i << 2) + 16));
    }
    for (; i < n; i++) s += <f64>load<f32>(p + (<usize>i << 2));
  }
  return s + <f64>vsum4(f32x4.add(a0, a1));
}

/** Whether rowF32 handles code. */
function rowF32Ok(code: i32): bool {
  return code == R_SUM || code == R_MEAN || code == R_MAX || code == R_MIN || code == R_L1 || code == R_L2 ||
    code == R_SUMSQUARE || code == R_LOGSUM;
}

/**
 * Reduces x to `keep` (x's lens with reduced axes set to 1), returning one f64 per output
 * element, finalized (mean divided, L2 rooted, logs taken).
 */
export function reduceF64(code: i32, x: Tensor, keep: Array<i32>): StaticArray<f64> {
  let outN: i32 = 1;
  for (let i = 0; i < keep.length; i++) outN *= keep[i];
  const acc = new StaticArray<f64>(outN);
  if (code == R_LOGSUMEXP) {
    const m = reduceF64(R_MAX, x, keep);
    reduceInto(R_SUMEXP, x, keep, acc, m);
    for (let i = 0; i < outN; i++) {
      const mi = unchecked(m[i]);
      // all -inf: log(0) = -inf; a +inf makes the result +inf
      const s = unchecked(acc[i]);
      unchecked(acc[i] = isFinite(mi) ? Math.log(s) + mi : (mi == Infinity ? Infinity : Math.log(s)));
    }
    return acc;
  }
  reduceInto(code, x, keep, acc, acc);
  const count: i32 = outN > 0 ? x.elements() / outN : 0;
  for (let i = 0; i < outN; i++) {
    const v = unchecked(acc[i]);
    switch (code) {
      case R_MEAN: unchecked(acc[i] = v / <f64>count); break;
      case R_L2: unchecked(acc[i] = Math.sqrt(v)); break;
      case R_LOGSUM: unchecked(acc[i] = Math.log(v)); break;
      default: break;
    }
  }
  return acc;
}

function reduceInto(code: i32, x: Tensor, keep: Array<i32>, acc: StaticArray<f64>, shift: StaticArray<f64>): void {
  const outN = acc.length;
  const init = code == R_SUMEXP ? 0 : initValue(code);
  for (let i = 0; i < outN; i++) unchecked(acc[i] = init);
  if (x.elements() == 0) return;
  const dt = x.shape.dtype;
  const sz = <usize>dtypeSize(dt);
  const bc = new Bcast(x.shape.lens, [x.shape.lens, keep]);
  const inner = bc.inner;
  const sa = unchecked(bc.istr[1]);
  const fast = dt == DT_FLOAT && sa == 0 && rowF32Ok(code);
  if (fast && (bc.rank == 1 || (bc.rank == 2 && unchecked(bc.strides[bc.rank * 1]) == 1))) {
    // trailing axes reduced: output element r is row r
    for (let r = 0; r < bc.rows; r++) {
      const v = rowF32(code, x.ptr + ((<usize>r * <usize>inner) << 2), inner);
      const a = unchecked(acc[r]);
      unchecked(acc[r] = code == R_MAX ? max<f64>(a, v) : (code == R_MIN ? min<f64>(a, v) : a + v));
    }
    return;
  }
  for (let r = 0; r < bc.rows; r++) {
    const px = x.ptr + <usize>r * <usize>inner * sz;
    const ao = unchecked(bc.off[1]);
    if (fast) {
      const v = rowF32(code, px, inner);
      const a = unchecked(acc[ao]);
      unchecked(acc[ao] = code == R_MAX ? max<f64>(a, v) : (code == R_MIN ? min<f64>(a, v) : a + v));
    } else {
      for (let i = 0; i < inner; i++) {
        const v = loadF64(dt, px + <usize>i * sz);
        const ai = ao + i * sa;
        const a = unchecked(acc[ai]);
        let r2: f64 = a;
        switch (code) {
          case R_MAX: r2 = max<f64>(a, v); break;
          case R_MIN: r2 = min<f64>(a, v); break;
          case R_PROD: r2 = a * v; break;
          case R_L1: r2 = a + Math.abs(v); break;
          case R_L2: case R_SUMSQUARE: r2 = a + v * v; break;
          case R_SUMEXP: r2 = a + Math.exp(v - unchecked(shift[ai])); break;
          default: r2 = a + v;
        }
        unchecked(acc[ai] = r2);
      }
    }
    bc.next();
  }
}

// ---- softmax family along one axis: x viewed as [outer, len, inner] ----

export const SM_SOFTMAX: i32 = 0;
export const SM_LOG: i32 = 1;
export const SM_HARDMAX: i32 = 2;

/** Softmax or log-softmax of one contiguous float32 row (SIMD). */
export function softmaxRowF32(px: usize, po: usize, n: i32, log: bool): void {
  // row max with pmax (a NaN in the row makes every output NaN through the sum anyway)
  let m: f32 = -Infinity;
  {
    let j: i32 = 0;
    if (n >= 4) {
      let a = v128.load(px);
      for (j = 4; j + 4 <= n; j += 4) a = f32x4.pmax(a, v128.load(px + (<usize>j << 2)));
      m = max<f32>(max<f32>(f32x4.extract_lane(a, 0), f32x4.extract_lane(a, 1)),
        max<f32>(f32x4.extract_lane(a, 2), f32x4.extract_lane(a, 3)));
    }
    for (; j < n; j++) m = max<f32>(m, load<f32>(px + (<usize>j << 2)));
  }
  const vm = f32x4.splat(m);
  let i: i32 = 0;
  let a0 = f32x4.splat(0);
  let s: f32 = 0;
  if (log) {
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      a0 = f32x4.add(a0, vexpNonPos(f32x4.sub(v128.load(px + o), vm)));
    }
    for (; i < n; i++) s += f32x4.extract_lane(vexpNonPos(f32x4.splat(load<f32>(px + (<usize>i << 2)) - m)), 0);
    s += vsum4(a0);
    const sh = f32x4.splat(m + <f32>Math.log(<f64>s));
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(po + o, f32x4.sub(v128.load(px + o), sh));
    }
    const shs = f32x4.extract_lane(sh, 0);
    for (; i < n; i++) store<f32>(po + (<usize>i << 2), load<f32>(px + (<usize>i << 2)) - shs);
    return;
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const e = vexpNonPos(f32x4.sub(v128.load(px + o), vm));
    v128.store(po + o, e);
    a0 = f32x4.add(a0, e);
  }
  for (; i < n; i++) {
    const e = f32x4.extract_lane(vexpNonPos(f32x4.splat(load<f32>(px + (<usize>i << 2)) - m)), 0);
    store<f32>(po + (<usize>i << 2), e);
    s += e;
  }
  s += vsum4(a0);
  const inv = f32x4.splat(<f32>1.0 / s);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(po + o, f32x4.mul(v128.load(po + o), inv));
  }
  const invs = f32x4.extract_lane(inv, 0);
  for (; i < n; i++) store<f32>(po + (<usize>i << 2), load<f32>(po + (<usize>i << 2)) * invs);
}

/** The softmax family on [outer, len, inner] for any float type. */
export function softmaxAxis(mode: i32, x: Tensor, o: Tensor, outer: i32, len: i32, inner: i32): void {
  const dt = x.shape.dtype;
  if (dt == DT_FLOAT && inner == 1 && mode != SM_HARDMAX) {
    if (softmaxRowsPar(x.ptr, o.ptr, outer, len, mode == SM_LOG)) return;
    for (let r = 0; r < outer; r++) {
      const off = (<usize>r * <usize>len) << 2;
      softmaxRowF32(x.ptr + off, o.ptr + off, len, mode == SM_LOG);
    }
    return;
  }
  const sz = <usize>dtypeSize(dt);
  const step = <usize>inner * sz;
  for (let r = 0; r < outer; r++) {
    for (let j = 0; j < inner; j++) {
      const base = (<usize>r * <usize>len * <usize>inner + <usize>j) * sz;
      const px = x.ptr + base, po = o.ptr + base;
      let m: f64 = -Infinity;
      let mi: i32 = 0;
      for (let k = 0; k < len; k++) {
        const v = loadF64(dt, px + <usize>k * step);
        if (v > m) { m = v; mi = k; }
      }
      if (mode == SM_HARDMAX) {
        for (let k = 0; k < len; k++) storeF64(dt, po + <usize>k * step, k == mi ? 1 : 0);
        continue;
      }
      let s: f64 = 0;
      for (let k = 0; k < len; k++) s += Math.exp(loadF64(dt, px + <usize>k * step) - m);
      if (mode == SM_LOG) {
        const sh = m + Math.log(s);
        for (let k = 0; k < len; k++) storeF64(dt, po + <usize>k * step, loadF64(dt, px + <usize>k * step) - sh);
      } else {
        for (let k = 0; k < len; k++) {
          storeF64(dt, po + <usize>k * step, Math.exp(loadF64(dt, px + <usize>k * step) - m) / s);
        }
      }
    }
  }
}
