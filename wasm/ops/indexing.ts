// Indexing: Gather GatherElements GatherND Scatter/ScatterElements ScatterND OneHot TopK.
// Resize and Upsample are in data/resize.ts, Einsum in data/einsum.ts, RoiAlign in
// data/roi_align.ts (registered here).
// Index inputs may be int32 or int64; negative indices count from the end; an index out of
// range is a run-time error naming the value and the axis.
import { DT_INT32, DT_INT64, dtypeName, isFloat } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import { ComputeContext, Op, ShapeContext } from "./op";
import { registerOp } from "./registry";
import { copyAll, copyEl, fillEl, movable, normAxis, notConstant, product, shapeInts, stridesOf } from "./data/util";
import { registerResize } from "./data/resize";
import { registerEinsum } from "./data/einsum";
import { registerGridSample } from "./data/grid_sample";
import { registerRoiAlign } from "./data/roi_align";

// @ts-ignore: decorator
@inline
function loadIndex(t: Tensor, i: i32): i64 {
  if (t.shape.dtype == DT_INT64) return load<i64>(t.ptr + (<usize>i << 3));
  return <i64>load<i32>(t.ptr + (<usize>i << 2));
}

function isIndexType(dt: i32): bool {
  return dt == DT_INT64 || dt == DT_INT32;
}

function rangeError(ctx: ComputeContext, v: i64, L: i32, axis: i32): bool {
  return ctx.fail("index " + v.toString() + " is out of range [-" + L.toString() + ", " + L.toString() + ") on axis " + axis.toString());
}

// ---------------------------------------------------------------------------------------
// Gather

class GatherOp extends Op {
  constructor() { super("Gather"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (!isIndexType(ind.dtype)) return ctx.failDtype(1);
    const r = x.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    if (a < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", 0).toString() + " is out of range for rank " + r.toString());
    const out = new Array<i32>();
    for (let i = 0; i < a; i++) out.push(x.lens[i]);
    for (let i = 0; i < ind.rank(); i++) out.push(ind.lens[i]);
    for (let i = a + 1; i < r; i++) out.push(x.lens[i]);
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    const es = x.shape.elementSize();
    const outer = product(x.shape.lens, 0, a);
    const L = x.shape.lens[a];
    const innerB = <usize>(product(x.shape.lens, a + 1, r) * es);
    const n = ind.elements();
    let d = y.ptr;
    for (let o = 0; o < outer; o++) {
      const base = x.ptr + <usize>o * <usize>L * innerB;
      for (let j = 0; j < n; j++) {
        let v = loadIndex(ind, j);
        if (v < 0) v += L;
        if (v < 0 || v >= <i64>L) return rangeError(ctx, loadIndex(ind, j), L, a);
        if (innerB == 4) store<u32>(d, load<u32>(base + (<usize>v << 2)));
        else memory.copy(d, base + <usize>v * innerB, innerB);
        d += innerB;
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// GatherElements, ScatterElements

class GatherElementsOp extends Op {
  constructor() { super("GatherElements"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (!isIndexType(ind.dtype)) return ctx.failDtype(1);
    const r = x.rank();
    if (ind.rank() != r) return ctx.fail("indices " + ind.toString() + " must have the rank of data " + x.toString());
    if (normAxis(ctx.attrs.getInt("axis", 0), r) < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", 0).toString() + " is out of range for rank " + r.toString());
    ctx.out(Shape.standard(x.dtype, ind.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    const es = x.shape.elementSize();
    const xs = stridesOf(x.shape.lens);
    const il = ind.shape.lens;
    const n = ind.elements();
    const L = x.shape.lens[a];
    const cnt = new StaticArray<i32>(r);
    for (let i = 0; i < n; i++) {
      let v = loadIndex(ind, i);
      if (v < 0) v += L;
      if (v < 0 || v >= <i64>L) return rangeError(ctx, loadIndex(ind, i), L, a);
      let off: i32 = 0;
      for (let d = 0; d < r; d++) off += (d == a ? <i32>v : cnt[d]) * xs[d];
      copyEl(y.ptr + <usize>(i * es), x.ptr + <usize>(off * es), es);
      for (let d = r - 1; d >= 0; d--) {
        if (++cnt[d] < il[d]) break;
        cnt[d] = 0;
      }
    }
    return true;
  }
}

const RED_NONE: i32 = 0;
const RED_ADD: i32 = 1;
const RED_MUL: i32 = 2;
const RED_MAX: i32 = 3;
const RED_MIN: i32 = 4;

function reduction(s: string): i32 {
  if (s == "none") return RED_NONE;
  if (s == "add") return RED_ADD;
  if (s == "mul") return RED_MUL;
  if (s == "max") return RED_MAX;
  if (s == "min") return RED_MIN;
  return -1;
}

/** y[dst] = reduce(y[dst], u[src]) (element indices). */
function scatterOne(y: Tensor, dst: i32, u: Tensor, src: i32, red: i32, es: i32): void {
  if (red == RED_NONE) {
    copyEl(y.ptr + <usize>(dst * es), u.ptr + <usize>(src * es), es);
    return;
  }
  if (isFloat(y.shape.dtype)) {
    const a = y.getAsF64(dst), b = u.getAsF64(src);
    let v: f64;
    if (red == RED_ADD) v = a + b;
    else if (red == RED_MUL) v = a * b;
    else if (red == RED_MAX) v = a > b ? a : b;
    else v = a < b ? a : b;
    y.setFromF64(dst, v);
  } else {
    const a = y.getAsI64(dst), b = u.getAsI64(src);
    let v: i64;
    if (red == RED_ADD) v = a + b;
    else if (red == RED_MUL) v = a * b;
    else if (red == RED_MAX) v = a > b ? a : b;
    else v = a < b ? a : b;
    y.setFromI64(dst, v);
  }
}

class ScatterElementsOp extends Op {
  constructor(name: string) { super(name); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    const u = ctx.input(2);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (!isIndexType(ind.dtype)) return ctx.failDtype(1);
    if (u.dtype != x.dtype) return ctx.fail("updates are " + dtypeName(u.dtype) + ", data is " + dtypeName(x.dtype));
    if (!ind.sameLens(u)) return ctx.fail("indices " + ind.toString() + " and updates " + u.toString() + " differ in shape");
    const r = x.rank();
    if (ind.rank() != r) return ctx.fail("indices " + ind.toString() + " must have the rank of data " + x.toString());
    if (normAxis(ctx.attrs.getInt("axis", 0), r) < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", 0).toString() + " is out of range for rank " + r.toString());
    if (reduction(ctx.attrs.getString("reduction", "none")) < 0) return ctx.fail("reduction '" + ctx.attrs.getString("reduction", "") + "' is not one of none, add, mul, max, min");
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    const u = ctx.input(2);
    const y = ctx.output(0);
    copyAll(y, x);
    const r = x.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    const red = reduction(ctx.attrs.getString("reduction", "none"));
    const es = x.shape.elementSize();
    const xs = stridesOf(x.shape.lens);
    const il = ind.shape.lens;
    const n = ind.elements();
    const L = x.shape.lens[a];
    const cnt = new StaticArray<i32>(r);
    for (let i = 0; i < n; i++) {
      let v = loadIndex(ind, i);
      if (v < 0) v += L;
      if (v < 0 || v >= <i64>L) return rangeError(ctx, loadIndex(ind, i), L, a);
      let off: i32 = 0;
      for (let d = 0; d < r; d++) off += (d == a ? <i32>v : cnt[d]) * xs[d];
      scatterOne(y, off, u, i, red, es);
      for (let d = r - 1; d >= 0; d--) {
        if (++cnt[d] < il[d]) break;
        cnt[d] = 0;
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// GatherND, ScatterND

class GatherNDOp extends Op {
  constructor() { super("GatherND"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (!isIndexType(ind.dtype)) return ctx.failDtype(1);
    const b = <i32>ctx.attrs.getInt("batch_dims", 0);
    const r = x.rank(), q = ind.rank();
    if (q < 1) return ctx.fail("indices must have rank 1 or more");
    const k = ind.lens[q - 1];
    if (b < 0 || b >= q || b >= r) return ctx.fail("batch_dims " + b.toString() + " is out of range");
    if (k < 1 || k > r - b) return ctx.fail("index tuples of length " + k.toString() + " do not fit data " + x.toString() + " with batch_dims " + b.toString());
    for (let i = 0; i < b; i++) {
      if (x.lens[i] != ind.lens[i]) return ctx.fail("batch dims of data " + x.toString() + " and indices " + ind.toString() + " differ");
    }
    const out = new Array<i32>();
    for (let i = 0; i < q - 1; i++) out.push(ind.lens[i]);
    for (let i = b + k; i < r; i++) out.push(x.lens[i]);
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    const y = ctx.output(0);
    const b = <i32>ctx.attrs.getInt("batch_dims", 0);
    const r = x.shape.rank(), q = ind.shape.rank();
    const k = ind.shape.lens[q - 1];
    const es = x.shape.elementSize();
    const xs = stridesOf(x.shape.lens);
    const batches = product(x.shape.lens, 0, b);
    const batchStride = product(x.shape.lens, b, r);
    const tuples = product(ind.shape.lens, b, q - 1);
    const sliceB = <usize>(product(x.shape.lens, b + k, r) * es);
    let d = y.ptr;
    let t: i32 = 0;
    for (let bi = 0; bi < batches; bi++) {
      for (let j = 0; j < tuples; j++) {
        let off = bi * batchStride;
        for (let m = 0; m < k; m++) {
          const L = x.shape.lens[b + m];
          let v = loadIndex(ind, t * k + m);
          if (v < 0) v += L;
          if (v < 0 || v >= <i64>L) return rangeError(ctx, loadIndex(ind, t * k + m), L, b + m);
          off += <i32>v * xs[b + m];
        }
        memory.copy(d, x.ptr + <usize>(off * es), sliceB);
        d += sliceB;
        t++;
      }
    }
    return true;
  }
}

class ScatterNDOp extends Op {
  constructor() { super("ScatterND"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    const u = ctx.input(2);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (!isIndexType(ind.dtype)) return ctx.failDtype(1);
    if (u.dtype != x.dtype) return ctx.fail("updates are " + dtypeName(u.dtype) + ", data is " + dtypeName(x.dtype));
    const r = x.rank(), q = ind.rank();
    if (q < 1) return ctx.fail("indices must have rank 1 or more");
    const k = ind.lens[q - 1];
    if (k > r) return ctx.fail("index tuples of length " + k.toString() + " do not fit data " + x.toString());
    // updates: indices.shape[:-1] + data.shape[k:]
    let ok = u.rank() == q - 1 + r - k;
    for (let i = 0; ok && i < q - 1; i++) ok = u.lens[i] == ind.lens[i];
    for (let i = k; ok && i < r; i++) ok = u.lens[q - 1 + i - k] == x.lens[i];
    if (!ok) return ctx.fail("updates " + u.toString() + " do not match indices " + ind.toString() + " and data " + x.toString());
    if (reduction(ctx.attrs.getString("reduction", "none")) < 0) return ctx.fail("reduction '" + ctx.attrs.getString("reduction", "") + "' is not one of none, add, mul, max, min");
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const ind = ctx.input(1);
    const u = ctx.input(2);
    const y = ctx.output(0);
    copyAll(y, x);
    const r = x.shape.rank(), q = ind.shape.rank();
    const k = ind.shape.lens[q - 1];
    const es = x.shape.elementSize();
    const red = reduction(ctx.attrs.getString("reduction", "none"));
    const xs = stridesOf(x.shape.lens);
    const tuples = product(ind.shape.lens, 0, q - 1);
    const slice = product(x.shape.lens, k, r);
    for (let t = 0; t < tuples; t++) {
      let off: i32 = 0;
      for (let m = 0; m < k; m++) {
        const L = x.shape.lens[m];
        let v = loadIndex(ind, t * k + m);
        if (v < 0) v += L;
        if (v < 0 || v >= <i64>L) return rangeError(ctx, loadIndex(ind, t * k + m), L, m);
        off += <i32>v * xs[m];
      }
      if (red == RED_NONE) {
        memory.copy(y.ptr + <usize>(off * es), u.ptr + <usize>(t * slice * es), <usize>(slice * es));
      } else {
        for (let i = 0; i < slice; i++) scatterOne(y, off + i, u, t * slice + i, red, es);
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// OneHot

class OneHotOp extends Op {
  constructor() { super("OneHot"); }

  computeShape(ctx: ShapeContext): bool {
    const ind = ctx.input(0);
    const vals = ctx.input(2);
    if (!movable(vals.dtype)) return ctx.failDtype(2);
    if (vals.elements() != 2) return ctx.fail("values must hold [off, on], got " + vals.toString());
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "depth");
    const dv = ctx.constInts(1);
    if (dv == null || dv.length != 1) return ctx.fail("depth must be a scalar");
    const depth = dv[0];
    if (depth <= 0 || depth > 0x7fffffff) return ctx.fail("depth " + depth.toString() + " must be positive");
    const r = ind.rank() + 1;
    const a = normAxis(ctx.attrs.getInt("axis", -1), r);
    if (a < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", -1).toString() + " is out of range for output rank " + r.toString());
    const out = new Array<i32>();
    for (let i = 0; i < r; i++) {
      if (i == a) out.push(<i32>depth);
      else out.push(ind.lens[i < a ? i : i - 1]);
    }
    ctx.out(Shape.standard(vals.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const ind = ctx.input(0);
    const vals = ctx.input(2);
    const y = ctx.output(0);
    const r = y.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", -1), r);
    const depth = y.shape.lens[a];
    const es = y.shape.elementSize();
    fillEl(y.ptr, vals.ptr, es, y.elements());
    const pre = product(ind.shape.lens, 0, a);
    const post = product(ind.shape.lens, a, ind.shape.rank());
    const on = vals.ptr + <usize>es;
    for (let p = 0; p < pre; p++) {
      for (let s = 0; s < post; s++) {
        let v: i64 = isFloat(ind.shape.dtype) ? <i64>ind.getAsF64(p * post + s) : ind.getAsI64(p * post + s);
        if (v < 0) v += depth;
        if (v < 0 || v >= <i64>depth) continue;
        copyEl(y.ptr + <usize>(((p * depth + <i32>v) * post + s) * es), on, es);
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// TopK: stable, ties broken by the lower index

let gKeys = new StaticArray<f64>(0);
let gLargest = true;

// @ts-ignore: decorator
@inline
function before(a: i32, b: i32): bool {
  const x = unchecked(gKeys[a]), y = unchecked(gKeys[b]);
  // NaN sorts as the largest value
  if (gLargest) return x > y || (x != x && y == y);
  return x < y || (y != y && x == x);
}

/**
 * The first k of a stable sort of 0..n by `before`, into idx[0..k) (k small against n): one pass
 * keeping the best k sorted; an element equal to a kept one never passes it (it comes later),
 * so ties keep the lower index as the sort does.
 */
function selectTop(idx: StaticArray<i32>, n: i32, k: i32): void {
  let m: i32 = 0;
  for (let j = 0; j < n; j++) {
    if (m == k && !before(j, unchecked(idx[k - 1]))) continue;
    let p = m < k ? m++ : k - 1;
    while (p > 0 && before(j, unchecked(idx[p - 1]))) {
      unchecked(idx[p] = idx[p - 1]);
      p--;
    }
    unchecked(idx[p] = j);
  }
}

/** Stable bottom-up merge sort of idx[0..n) by `before`. */
function mergeSort(idx: StaticArray<i32>, tmp: StaticArray<i32>, n: i32): void {
  let src = idx, dst = tmp;
  for (let w = 1; w < n; w <<= 1) {
    for (let lo = 0; lo < n; lo += 2 * w) {
      const mid = min(lo + w, n), hi = min(lo + 2 * w, n);
      let i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        if (before(unchecked(src[j]), unchecked(src[i]))) unchecked(dst[k++] = src[j++]);
        else unchecked(dst[k++] = src[i++]);
      }
      while (i < mid) unchecked(dst[k++] = src[i++]);
      while (j < hi) unchecked(dst[k++] = src[j++]);
    }
    const t = src;
    src = dst;
    dst = t;
  }
  if (src != idx) for (let i = 0; i < n; i++) unchecked(idx[i] = src[i]);
}

class TopKOp extends Op {
  constructor() { super("TopK"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    const a = normAxis(ctx.attrs.getInt("axis", -1), r);
    if (a < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", -1).toString() + " is out of range for rank " + r.toString());
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "k");
    const kv = shapeInts(ctx, 1, "k");
    if (kv == null || kv.length != 1) return ctx.fail("k must be one value");
    const k = kv[0];
    if (k < 0 || k > <i64>x.lens[a]) return ctx.fail("k " + k.toString() + " is out of range for axis " + a.toString() + " of length " + x.lens[a].toString());
    const out = x.lens.slice(0);
    out[a] = <i32>k;
    ctx.out(Shape.standard(x.dtype, out));
    ctx.out(Shape.standard(DT_INT64, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const yv = ctx.output(0);
    const r = x.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", -1), r);
    const k = yv.shape.lens[a];
    const L = x.shape.lens[a];
    const es = x.shape.elementSize();
    const outer = product(x.shape.lens, 0, a);
    const inner = product(x.shape.lens, a + 1, r);
    gLargest = ctx.attrs.getInt("largest", 1) != 0;
    gKeys = new StaticArray<f64>(L);
    const idx = new StaticArray<i32>(L);
    const tmp = new StaticArray<i32>(L);
    const yi = ctx.outputs.length > 1 ? ctx.output(1) : null;
    const asInt = !isFloat(x.shape.dtype);
    for (let o = 0; o < outer; o++) {
      for (let s = 0; s < inner; s++) {
        const base = o * L * inner + s;
        for (let j = 0; j < L; j++) {
          const e = base + j * inner;
          unchecked(gKeys[j] = asInt ? <f64>x.getAsI64(e) : x.getAsF64(e));
          unchecked(idx[j] = j);
        }
        if (<i64>k * 8 <= <i64>L) selectTop(idx, L, k);
        else mergeSort(idx, tmp, L);
        const ob = o * k * inner + s;
        for (let j = 0; j < k; j++) {
          const src = base + unchecked(idx[j]) * inner;
          const dst = ob + j * inner;
          copyEl(yv.ptr + <usize>(dst * es), x.ptr + <usize>(src * es), es);
          if (yi != null) store<i64>(yi.ptr + (<usize>dst << 3), <i64>unchecked(idx[j]));
        }
      }
    }
    return true;
  }
}

export function registerIndexing(): void {
  registerOp(new GatherOp());
  registerOp(new GatherElementsOp());
  registerOp(new GatherNDOp());
  registerOp(new ScatterElementsOp("ScatterElements"));
  registerOp(new ScatterElementsOp("Scatter"));
  registerOp(new ScatterNDOp());
  registerOp(new OneHotOp());
  registerOp(new TopKOp());
  registerResize();
  registerEinsum();
  registerGridSample();
  registerRoiAlign();
}

