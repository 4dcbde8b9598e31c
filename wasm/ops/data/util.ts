// Helpers shared by the data-movement ops (shape/*.ts, indexing.ts): axis normalisation,
// int lists from attributes or constant inputs, element copies by size, and the strided
// view copy that Transpose, Slice, Expand, Tile and DepthToSpace are built on.
import { Attrs } from "../../ir/attrs";
import { dtypeSize } from "../../ir/dtype";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, ShapeContext } from "../op";

/** Axis `a` of a rank-`r` tensor in [0, r), or -1 when out of [-r, r). */
export function normAxis(a: i64, r: i32): i32 {
  const v: i64 = a < 0 ? a + <i64>r : a;
  if (v < 0 || v >= <i64>r) return -1;
  return <i32>v;
}

/** "[4,2]" */
export function listStr(a: Array<i64>): string {
  let s = "[";
  for (let i = 0; i < a.length; i++) {
    if (i > 0) s += ",";
    s += a[i].toString();
  }
  return s + "]";
}

export function lensStr(a: Array<i32>): string {
  let s = "[";
  for (let i = 0; i < a.length; i++) {
    if (i > 0) s += ",";
    s += a[i].toString();
  }
  return s + "]";
}

/** An i64 list as dims (Expand's target shape, ConstantOfShape's shape). */
export function toLens(v: Array<i64>): Array<i32> {
  const a = new Array<i32>(v.length);
  for (let i = 0; i < v.length; i++) a[i] = <i32>v[i];
  return a;
}

export function product(lens: Array<i32>, from: i32, to: i32): i32 {
  let n: i32 = 1;
  for (let i = from; i < to; i++) n *= unchecked(lens[i]);
  return n;
}

/**
 * True when input `i` is present but not a compile-time constant (the caller then returns
 * `ctx.needConstant(i, ...)`).
 */
export function notConstant(ctx: ShapeContext, i: i32): bool {
  return ctx.hasInput(i) && ctx.constant(i) == null;
}

/** Ints of constant input `i` when present, else attribute `attr` (null when neither). */
export function shapeInts(ctx: ShapeContext, i: i32, attr: string): Array<i64> | null {
  if (ctx.hasInput(i)) return ctx.constInts(i);
  return ctx.attrs.getInts(attr);
}

/** Ints of input `i` when present, else attribute `attr` (null when neither). */
export function computeInts(ctx: ComputeContext, i: i32, attr: string): Array<i64> | null {
  if (ctx.hasInput(i)) return ctx.input(i).toI64Array();
  return ctx.attrs.getInts(attr);
}

export function attrsInts(attrs: Attrs, name: string): Array<i64> | null {
  return attrs.getInts(name);
}

/** True when the element type can be moved by these ops (stored types only). */
export function movable(dt: i32): bool {
  return dtypeSize(dt) > 0;
}

// @ts-ignore: decorator
@inline
export function copyEl(dst: usize, src: usize, es: i32): void {
  if (es == 4) store<u32>(dst, load<u32>(src));
  else if (es == 8) store<u64>(dst, load<u64>(src));
  else if (es == 2) store<u16>(dst, load<u16>(src));
  else store<u8>(dst, load<u8>(src));
}

/** Fills `n` elements at dst with the element at `src`. */
export function fillEl(dst: usize, src: usize, es: i32, n: i32): void {
  if (n <= 0) return;
  if (es == 1) {
    memory.fill(dst, load<u8>(src), <usize>n);
    return;
  }
  if (es == 4) {
    const v = load<u32>(src);
    for (let j = 0; j < n; j++) store<u32>(dst + (<usize>j << 2), v);
  } else if (es == 8) {
    const v = load<u64>(src);
    for (let j = 0; j < n; j++) store<u64>(dst + (<usize>j << 3), v);
  } else {
    const v = load<u16>(src);
    for (let j = 0; j < n; j++) store<u16>(dst + (<usize>j << 1), v);
  }
}

/**
 * Copies a strided view of `src` into `dst` in standard (row-major) order of `lens`.
 * `strides` are in elements and may be 0 (broadcast) or negative (reversed); `base` is the
 * element offset of the view's first element. Contiguous inner runs use memory.copy.
 */
export function copyView(dst: usize, src: usize, es: i32, lens: Array<i32>, strides: Array<i32>, base: i32): void {
  // coalesce: drop unit dims, merge dims that are contiguous with their inner neighbour
  const L = new Array<i32>();
  const S = new Array<i32>();
  for (let i = 0; i < lens.length; i++) {
    const n = unchecked(lens[i]);
    if (n == 0) return;
    if (n == 1) continue;
    const s = unchecked(strides[i]);
    const m = L.length;
    if (m > 0 && unchecked(S[m - 1]) == s * n) {
      unchecked(L[m - 1] = L[m - 1] * n);
      unchecked(S[m - 1] = s);
    } else {
      L.push(n);
      S.push(s);
    }
  }
  const r = L.length;
  const esz = <usize>es;
  if (r == 0) {
    copyEl(dst, src + <usize>(base * es), es);
    return;
  }
  const n = unchecked(L[r - 1]);
  const s = unchecked(S[r - 1]);
  if (s != 1 && s != 0 && r >= 2 && n >= 8) {
    // a transpose: when another dim is contiguous in the source, copy in square tiles
    for (let p = r - 2; p >= 0; p--) {
      if (unchecked(S[p]) == 1 && unchecked(L[p]) >= 8) {
        copyTiled(dst, src, es, L, S, base, p);
        return;
      }
    }
  }
  const rowBytes = <usize>n * esz;
  let rows: i32 = 1;
  for (let i = 0; i < r - 1; i++) rows *= unchecked(L[i]);
  const cnt = new StaticArray<i32>(r > 1 ? r - 1 : 1);
  let off: i32 = base;
  let d = dst;
  for (let row = 0; row < rows; row++) {
    const sp = src + <usize>(off * es);
    if (s == 1) {
      memory.copy(d, sp, rowBytes);
    } else if (s == 0) {
      fillEl(d, sp, es, n);
    } else if (es == 4) {
      const sb = s * 4;
      for (let j = 0; j < n; j++) store<u32>(d + (<usize>j << 2), load<u32>(sp + <usize>(j * sb)));
    } else if (es == 8) {
      const sb = s * 8;
      for (let j = 0; j < n; j++) store<u64>(d + (<usize>j << 3), load<u64>(sp + <usize>(j * sb)));
    } else if (es == 2) {
      const sb = s * 2;
      for (let j = 0; j < n; j++) store<u16>(d + (<usize>j << 1), load<u16>(sp + <usize>(j * sb)));
    } else {
      for (let j = 0; j < n; j++) store<u8>(d + <usize>j, load<u8>(sp + <usize>(j * s)));
    }
    d += rowBytes;
    for (let k = r - 2; k >= 0; k--) {
      const c = unchecked(cnt[k]) + 1;
      off += unchecked(S[k]);
      if (c < unchecked(L[k])) {
        unchecked(cnt[k] = c);
        break;
      }
      unchecked(cnt[k] = 0);
      off -= unchecked(S[k]) * unchecked(L[k]);
    }
  }
}

/** Standard strides (elements) of `lens`. */
export function stridesOf(lens: Array<i32>): Array<i32> {
  const n = lens.length;
  const s = new Array<i32>(n);
  let acc: i32 = 1;
  for (let i = n - 1; i >= 0; i--) {
    unchecked(s[i] = acc);
    acc *= unchecked(lens[i]);
  }
  return s;
}

/** Copies the whole of `src` into `dst` (same byte size). */
export function copyAll(dst: Tensor, src: Tensor): void {
  const n = <usize>src.shape.bytes();
  const m = <usize>dst.shape.bytes();
  memory.copy(dst.ptr, src.ptr, n < m ? n : m);
}

const TILE: i32 = 16;

/**
 * copyView for a view whose last dim q is strided and whose dim p is contiguous in the
 * source: walks the other dims, and copies each (p, q) plane in TILE x TILE tiles so that
 * both the reads and the writes stay within a few cache lines.
 */
function copyTiled(dst: usize, src: usize, es: i32, L: Array<i32>, S: Array<i32>, base: i32, p: i32): void {
  const r = L.length;
  const q = r - 1;
  const os = stridesOf(L);
  const Lp = unchecked(L[p]), Lq = unchecked(L[q]);
  const sq = unchecked(S[q]);
  const dp = unchecked(os[p]);
  // the other dims, outermost first
  const OL = new Array<i32>();
  const OS = new Array<i32>();
  const OD = new Array<i32>();
  for (let i = 0; i < q; i++) {
    if (i == p) continue;
    OL.push(unchecked(L[i]));
    OS.push(unchecked(S[i]));
    OD.push(unchecked(os[i]));
  }
  const m = OL.length;
  let planes: i32 = 1;
  for (let i = 0; i < m; i++) planes *= unchecked(OL[i]);
  const cnt = new StaticArray<i32>(m > 0 ? m : 1);
  let so: i32 = base;
  let dof: i32 = 0;
  const esz = <usize>es;
  for (let pl = 0; pl < planes; pl++) {
    for (let p0 = 0; p0 < Lp; p0 += TILE) {
      const p1 = min(p0 + TILE, Lp);
      for (let q0 = 0; q0 < Lq; q0 += TILE) {
        const q1 = min(q0 + TILE, Lq);
        let pStart = p0;
        if (es == 4 && q1 - q0 == TILE && p1 - p0 == TILE) {
          // full tile of 32-bit elements: 4x4 blocks transposed in registers
          for (let pi = p0; pi < p1; pi += 4) {
            const sp = src + (<usize>(so + pi) << 2);
            const d0 = dst + (<usize>(dof + pi * dp) << 2);
            const dstep = <usize>dp << 2;
            for (let qi = q0; qi < q1; qi += 4) {
              const a = v128.load(sp + (<usize>(qi * sq) << 2));
              const b = v128.load(sp + (<usize>((qi + 1) * sq) << 2));
              const c = v128.load(sp + (<usize>((qi + 2) * sq) << 2));
              const e = v128.load(sp + (<usize>((qi + 3) * sq) << 2));
              const t0 = v128.shuffle<i32>(a, b, 0, 4, 1, 5);
              const t1 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
              const t2 = v128.shuffle<i32>(c, e, 0, 4, 1, 5);
              const t3 = v128.shuffle<i32>(c, e, 2, 6, 3, 7);
              const d = d0 + (<usize>qi << 2);
              v128.store(d, v128.shuffle<i32>(t0, t2, 0, 1, 4, 5));
              v128.store(d + dstep, v128.shuffle<i32>(t0, t2, 2, 3, 6, 7));
              v128.store(d + 2 * dstep, v128.shuffle<i32>(t1, t3, 0, 1, 4, 5));
              v128.store(d + 3 * dstep, v128.shuffle<i32>(t1, t3, 2, 3, 6, 7));
            }
          }
          pStart = p1;
        }
        for (let pi = pStart; pi < p1; pi++) {
          const d = dst + <usize>(dof + pi * dp) * esz;
          const sp = src + <usize>(so + pi) * esz;
          if (es == 4) {
            for (let qi = q0; qi < q1; qi++) store<u32>(d + (<usize>qi << 2), load<u32>(sp + (<usize>(qi * sq) << 2)));
          } else if (es == 8) {
            for (let qi = q0; qi < q1; qi++) store<u64>(d + (<usize>qi << 3), load<u64>(sp + (<usize>(qi * sq) << 3)));
          } else if (es == 2) {
            for (let qi = q0; qi < q1; qi++) store<u16>(d + (<usize>qi << 1), load<u16>(sp + (<usize>(qi * sq) << 1)));
          } else {
            for (let qi = q0; qi < q1; qi++) store<u8>(d + <usize>qi, load<u8>(sp + <usize>(qi * sq)));
          }
        }
      }
    }
    for (let k = m - 1; k >= 0; k--) {
      const c = unchecked(cnt[k]) + 1;
      so += unchecked(OS[k]);
      dof += unchecked(OD[k]);
      if (c < unchecked(OL[k])) {
        unchecked(cnt[k] = c);
        break;
      }
      unchecked(cnt[k] = 0);
      so -= unchecked(OS[k]) * unchecked(OL[k]);
      dof -= unchecked(OD[k]) * unchecked(OL[k]);
    }
  }
}
