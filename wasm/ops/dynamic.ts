// Ops whose output size depends on input data: NonZero, Compress, Unique, NonMaxSuppression
// (docs/internals.md "Bounded extents"). With constant inputs shape inference computes the exact
// size (and folding gives literals); otherwise an output's data-dependent dim is an upper bound
// (ShapeContext.outBounded), memory is planned for it, and compute writes its data packed at the
// actual extent from the buffer's start and reports that extent (ComputeContext.setExtent).
// Also TfIdfVectorizer (a static output shape; int64/int32 n-gram pools only).
import { Attrs } from "../ir/attrs";
import { DT_BOOL, DT_FLOAT, DT_INT32, DT_INT64, DT_UINT64, dtypeSize, isFloat } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import { ComputeContext, Op, ShapeContext } from "./op";
import { registerOp } from "./registry";
import { loadF64, loadI64 } from "../kernels/eltwise";
import { normAxis, product } from "./data/util";

// ---------------------------------------------------------------- shared

/** A three-way order on indices: merge sort below sorts an index array by it, stably. */
abstract class Order {
  abstract cmp(a: i32, b: i32): i32;
}

/** Sorts `idx` stably by `order` (bottom-up merge sort, `tmp` of the same length as scratch). */
function mergeSort(idx: Int32Array, tmp: Int32Array, order: Order): void {
  const n = idx.length;
  let src = idx, dst = tmp;
  for (let w = 1; w < n; w <<= 1) {
    for (let lo = 0; lo < n; lo += 2 * w) {
      const mid = min(lo + w, n), hi = min(lo + 2 * w, n);
      let i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        const a = unchecked(src[i]), b = unchecked(src[j]);
        if (order.cmp(b, a) < 0) { unchecked(dst[k++] = b); j++; } else { unchecked(dst[k++] = a); i++; }
      }
      while (i < mid) unchecked(dst[k++] = src[i++]);
      while (j < hi) unchecked(dst[k++] = src[j++]);
    }
    const t = src; src = dst; dst = t;
  }
  if (src !== idx) idx.set(src);
}

/** Normalizes a negative axis; -1 (with a diagnostic) when out of range. */
function checkedAxis(ctx: ShapeContext, a: i64, rank: i32): i32 {
  const axis = normAxis(a, rank == 0 ? 1 : rank);
  if (axis < 0) ctx.fail("axis " + a.toString() + " is out of range for rank " + rank.toString());
  return axis;
}

function lensWith(lens: Array<i32>, axis: i32, n: i32): Array<i32> {
  const o = lens.slice(0);
  o[axis] = n;
  return o;
}

// ---------------------------------------------------------------- NonZero

/** Whether element i of `t` is not zero (a float's sign bit is ignored: -0.0 is zero; NaN is not). */
// @ts-ignore: decorator
@inline function nonZeroAt(p: usize, esz: i32, fl: bool, i: i32): bool {
  if (esz == 1) return load<u8>(p + <usize>i) != 0;
  if (esz == 2) return (load<u16>(p + (<usize>i << 1)) & (fl ? 0x7fff : 0xffff)) != 0;
  if (esz == 4) return (load<u32>(p + (<usize>i << 2)) & (fl ? 0x7fffffff : 0xffffffff)) != 0;
  return (load<u64>(p + (<usize>i << 3)) & (fl ? 0x7fffffffffffffff : 0xffffffffffffffff)) != 0;
}

function countNonZero(x: Tensor): i32 {
  const n = x.elements(), esz = x.shape.elementSize(), fl = isFloat(x.dtype());
  let c = 0;
  for (let i = 0; i < n; i++) if (nonZeroAt(x.ptr, esz, fl, i)) c++;
  return c;
}

/** NonZero: the indices of the non-zero elements, [rank, count] int64 in row-major order (a scalar counts as rank 1). */
class NonZeroOp extends Op {
  constructor() { super("NonZero", 0); }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input X is required");
    const x = ctx.input(0);
    const r = x.rank() == 0 ? 1 : x.rank();
    const c = ctx.constant(0);
    if (c != null) ctx.out(Shape.standard(DT_INT64, [r, countNonZero(c)]));
    else ctx.outBounded(Shape.standard(DT_INT64, [r, x.elements()]), 2);
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), y = ctx.output(0);
    const lens = x.shape.lens;
    const rank = lens.length == 0 ? 1 : lens.length;
    const cnt = countNonZero(x);
    if (cnt > y.shape.lens[1]) return ctx.fail("found " + cnt.toString() + " non-zero elements, over the planned " + y.shape.lens[1].toString());
    const n = x.elements(), esz = x.shape.elementSize(), fl = isFloat(x.dtype());
    const at = new Int32Array(rank);
    const dims = new Int32Array(rank);
    for (let d = 0; d < rank; d++) dims[d] = lens.length == 0 ? 1 : lens[d];
    let k = 0;
    for (let i = 0; i < n; i++) {
      if (nonZeroAt(x.ptr, esz, fl, i)) {
        for (let d = 0; d < rank; d++) store<i64>(y.ptr + ((<usize>d * <usize>cnt + <usize>k) << 3), <i64>unchecked(at[d]));
        k++;
      }
      // row-major counter over the dims
      for (let d = rank - 1; d >= 0; d--) {
        const v = unchecked(at[d]) + 1;
        if (v < unchecked(dims[d])) { unchecked(at[d] = v); break; }
        unchecked(at[d] = 0);
      }
    }
    ctx.setExtent(0, [rank, cnt]);
    return true;
  }
}

// ---------------------------------------------------------------- Compress

class CompressLayout {
  axis: i32 = -1;
  outer: i32 = 1;
  len: i32 = 0;
  inner: i32 = 1;
}

/** The slices Compress selects from: along `axis`, or the flattened input when there is none. */
function compressLayout(lens: Array<i32>, hasAxis: bool, axis: i32): CompressLayout {
  const l = new CompressLayout();
  if (!hasAxis) {
    let n = 1;
    for (let i = 0; i < lens.length; i++) n *= lens[i];
    l.len = n;
    return l;
  }
  l.axis = axis;
  l.outer = product(lens, 0, axis);
  l.len = lens[axis];
  l.inner = product(lens, axis + 1, lens.length);
  return l;
}

/** Trues among the first `valid` entries of the bool condition at `p`. */
function countTrue(p: usize, valid: i32): i32 {
  let c = 0;
  for (let i = 0; i < valid; i++) if (load<u8>(p + <usize>i) != 0) c++;
  return c;
}

/**
 * Compress: the slices of the input along `axis` (or the elements of the flattened input) whose
 * condition entry is true. A condition shorter than the axis selects among its length only; a
 * longer one is read up to the axis length (as onnxruntime does).
 */
class CompressOp extends Op {
  constructor() { super("Compress", 0); }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs input and condition are required");
    const x = ctx.input(0), c = ctx.input(1);
    if (c.dtype != DT_BOOL) return ctx.fail("condition must be bool, not " + c.toString());
    if (c.rank() != 1) return ctx.fail("condition must be 1-D, not " + c.toString());
    const hasAxis = ctx.attrs.has("axis");
    let axis = -1;
    if (hasAxis) {
      if (x.rank() == 0) return ctx.fail("axis is given but the input is a scalar");
      axis = checkedAxis(ctx, ctx.attrs.getInt("axis", 0), x.rank());
      if (axis < 0) return false;
    }
    const l = compressLayout(x.lens, hasAxis, axis);
    const cc = ctx.constant(1);
    let n = l.len;
    if (cc != null) n = countTrue(cc.ptr, min(l.len, c.lens[0]));
    const lens = hasAxis ? lensWith(x.lens, axis, n) : [n];
    if (cc != null) ctx.out(Shape.standard(x.dtype, lens));
    else ctx.outBounded(Shape.standard(x.dtype, lens), hasAxis ? 1 << axis : 1);
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), c = ctx.input(1), y = ctx.output(0);
    const hasAxis = ctx.attrs.has("axis");
    let axis = -1;
    if (hasAxis) {
      const a = <i32>ctx.attrs.getInt("axis", 0);
      axis = a < 0 ? a + x.shape.rank() : a;
    }
    const l = compressLayout(x.shape.lens, hasAxis, axis);
    const valid = min(l.len, c.elements());
    const cnt = countTrue(c.ptr, valid);
    const planned = hasAxis ? y.shape.lens[axis] : y.shape.lens[0];
    if (cnt > planned) return ctx.fail("condition selects " + cnt.toString() + " slices, over the planned " + planned.toString());
    const bytes = <usize>l.inner * <usize>x.shape.elementSize();
    for (let o = 0; o < l.outer; o++) {
      let j = 0;
      const src = x.ptr + <usize>o * <usize>l.len * bytes;
      const dst = y.ptr + <usize>o * <usize>cnt * bytes;
      for (let k = 0; k < valid; k++) {
        if (load<u8>(c.ptr + <usize>k) == 0) continue;
        memory.copy(dst + <usize>j * bytes, src + <usize>k * bytes, bytes);
        j++;
      }
    }
    ctx.setExtent(0, hasAxis ? lensWith(x.shape.lens, axis, cnt) : [cnt]);
    return true;
  }
}

// ---------------------------------------------------------------- Unique

/**
 * The slices of a tensor along an axis (or its elements), ordered lexicographically by their
 * elements in row-major order. Floats compare as numbers with every NaN equal to every other and
 * after all numbers (numpy's `unique`); -0.0 equals 0.0. Integers compare exactly (uint64 too).
 */
class SliceOrder extends Order {
  fl: bool;
  f: Float64Array;
  k: Int64Array;
  n: i32;
  outer: i32;
  inner: i32;

  constructor(x: Tensor, n: i32, outer: i32, inner: i32) {
    super();
    const dt = x.dtype(), total = x.elements();
    const fl = isFloat(dt);
    this.fl = fl;
    this.f = new Float64Array(fl ? total : 0);
    this.k = new Int64Array(fl ? 0 : total);
    this.n = n;
    this.outer = outer;
    this.inner = inner;
    const esz = <usize>dtypeSize(dt);
    for (let i = 0; i < total; i++) {
      const p = x.ptr + <usize>i * esz;
      if (this.fl) unchecked(this.f[i] = loadF64(dt, p));
      // uint64 with its top bit flipped orders like the unsigned value under signed comparison
      else unchecked(this.k[i] = dt == DT_UINT64 ? <i64>(load<u64>(p) ^ 0x8000000000000000) : loadI64(dt, p));
    }
  }

  cmp(a: i32, b: i32): i32 {
    const n = this.n, inner = this.inner;
    for (let o = 0; o < this.outer; o++) {
      const ia = (o * n + a) * inner, ib = (o * n + b) * inner;
      for (let i = 0; i < inner; i++) {
        if (this.fl) {
          const x = unchecked(this.f[ia + i]), y = unchecked(this.f[ib + i]);
          const xn = isNaN(x), yn = isNaN(y);
          if (xn || yn) {
            if (xn && yn) continue;
            return xn ? 1 : -1;
          }
          if (x < y) return -1;
          if (x > y) return 1;
        } else {
          const x = unchecked(this.k[ia + i]), y = unchecked(this.k[ib + i]);
          if (x < y) return -1;
          if (x > y) return 1;
        }
      }
    }
    return 0;
  }
}

/** Unique's result: per output position the first slice and the count; per input slice its output position. */
class UniqueResult {
  count: i32 = 0;
  first: Int32Array = new Int32Array(0);
  counts: Int32Array = new Int32Array(0);
  inverse: Int32Array = new Int32Array(0);
}

function uniqueOf(x: Tensor, n: i32, outer: i32, inner: i32, sorted: bool): UniqueResult {
  const r = new UniqueResult();
  r.inverse = new Int32Array(n);
  if (n == 0) return r;
  const order = new SliceOrder(x, n, outer, inner);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) unchecked(idx[i] = i);
  mergeSort(idx, new Int32Array(n), order);
  // groups of equal slices in sorted order; the stable sort puts each group's first occurrence first
  const group = new Int32Array(n);
  const gFirst = new Int32Array(n), gCount = new Int32Array(n);
  let g = -1;
  for (let i = 0; i < n; i++) {
    const s = unchecked(idx[i]);
    if (i == 0 || order.cmp(unchecked(idx[i - 1]), s) != 0) {
      g++;
      unchecked(gFirst[g] = s);
    }
    unchecked(gCount[g] = gCount[g] + 1);
    unchecked(group[s] = g);
  }
  const groups = g + 1;
  // output position of each group: its sorted rank, or the rank of its first occurrence
  const pos = new Int32Array(groups);
  if (sorted) {
    for (let k = 0; k < groups; k++) unchecked(pos[k] = k);
  } else {
    pos.fill(-1);
    let next = 0;
    for (let s = 0; s < n; s++) {
      const k = unchecked(group[s]);
      if (unchecked(pos[k]) < 0) unchecked(pos[k] = next++);
    }
  }
  r.count = groups;
  r.first = new Int32Array(groups);
  r.counts = new Int32Array(groups);
  for (let k = 0; k < groups; k++) {
    const p = unchecked(pos[k]);
    unchecked(r.first[p] = gFirst[k]);
    unchecked(r.counts[p] = gCount[k]);
  }
  for (let s = 0; s < n; s++) unchecked(r.inverse[s] = pos[group[s]]);
  return r;
}

class UniqueLayout {
  axis: i32 = -1;
  n: i32 = 0;
  outer: i32 = 1;
  inner: i32 = 1;
}

function uniqueLayout(lens: Array<i32>, axis: i32): UniqueLayout {
  const l = new UniqueLayout();
  l.axis = axis;
  if (axis < 0) {
    let n = 1;
    for (let i = 0; i < lens.length; i++) n *= lens[i];
    l.n = n;
  } else {
    l.n = lens[axis];
    l.outer = product(lens, 0, axis);
    l.inner = product(lens, axis + 1, lens.length);
  }
  return l;
}

/**
 * Unique: the distinct elements (or slices along `axis`), sorted ascending (sorted=1) or in the
 * order of their first occurrence (sorted=0); outputs Y, indices (first occurrence of each),
 * inverse_indices (each input element's or slice's position in Y) and counts.
 */
class UniqueOp extends Op {
  constructor() { super("Unique", 0); }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input X is required");
    const x = ctx.input(0);
    const sorted = ctx.attrs.getInt("sorted", 1);
    if (sorted != 0 && sorted != 1) return ctx.fail("sorted must be 0 or 1, not " + sorted.toString());
    let axis = -1;
    if (ctx.attrs.has("axis")) {
      if (x.rank() == 0) return ctx.fail("axis is given but the input is a scalar");
      axis = checkedAxis(ctx, ctx.attrs.getInt("axis", 0), x.rank());
      if (axis < 0) return false;
    }
    const l = uniqueLayout(x.lens, axis);
    const c = ctx.constant(0);
    const exact = c != null;
    const u = exact ? uniqueOf(c!, l.n, l.outer, l.inner, sorted == 1).count : l.n;
    const yLens = axis < 0 ? [u] : lensWith(x.lens, axis, u);
    if (exact) {
      ctx.out(Shape.standard(x.dtype, yLens));
      ctx.out(Shape.standard(DT_INT64, [u]));
      ctx.out(Shape.standard(DT_INT64, [l.n]));
      ctx.out(Shape.standard(DT_INT64, [u]));
    } else {
      ctx.outBounded(Shape.standard(x.dtype, yLens), axis < 0 ? 1 : 1 << axis);
      ctx.outBounded(Shape.standard(DT_INT64, [u]), 1);
      ctx.out(Shape.standard(DT_INT64, [l.n]));
      ctx.outBounded(Shape.standard(DT_INT64, [u]), 1);
    }
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    let axis = -1;
    if (ctx.attrs.has("axis")) {
      const a = <i32>ctx.attrs.getInt("axis", 0);
      axis = a < 0 ? a + x.shape.rank() : a;
    }
    const l = uniqueLayout(x.shape.lens, axis);
    const r = uniqueOf(x, l.n, l.outer, l.inner, ctx.attrs.getInt("sorted", 1) == 1);
    const u = r.count;
    const y = ctx.output(0);
    const planned = axis < 0 ? y.shape.lens[0] : y.shape.lens[axis];
    if (u > planned) return ctx.fail("found " + u.toString() + " unique values, over the planned " + planned.toString());
    const bytes = <usize>l.inner * <usize>x.shape.elementSize();
    for (let o = 0; o < l.outer; o++) {
      for (let p = 0; p < u; p++) {
        const s = unchecked(r.first[p]);
        memory.copy(y.ptr + (<usize>o * <usize>u + <usize>p) * bytes, x.ptr + (<usize>o * <usize>l.n + <usize>s) * bytes, bytes);
      }
    }
    ctx.setExtent(0, axis < 0 ? [u] : lensWith(x.shape.lens, axis, u));
    const outs = ctx.outputs.length;
    if (outs > 1) {
      const t = ctx.output(1);
      for (let p = 0; p < u; p++) store<i64>(t.ptr + (<usize>p << 3), <i64>unchecked(r.first[p]));
      ctx.setExtent(1, [u]);
    }
    if (outs > 2) {
      const t = ctx.output(2);
      for (let s = 0; s < l.n; s++) store<i64>(t.ptr + (<usize>s << 3), <i64>unchecked(r.inverse[s]));
    }
    if (outs > 3) {
      const t = ctx.output(3);
      for (let p = 0; p < u; p++) store<i64>(t.ptr + (<usize>p << 3), <i64>unchecked(r.counts[p]));
      ctx.setExtent(3, [u]);
    }
    return true;
  }
}

// ---------------------------------------------------------------- NonMaxSuppression

/** Descending score, ties in box order. */
class ScoreOrder extends Order {
  p: usize = 0;
  cmp(a: i32, b: i32): i32 {
    const x = load<f32>(this.p + (<usize>a << 2)), y = load<f32>(this.p + (<usize>b << 2));
    if (x > y) return -1;
    if (x < y) return 1;
    return a < b ? -1 : (a > b ? 1 : 0);
  }
}

class Corners {
  x0: f32 = 0;
  y0: f32 = 0;
  x1: f32 = 0;
  y1: f32 = 0;
}

/** Box i of the [N, 4] boxes at p as min/max corners: [y1, x1, y2, x2] in any corner order, or [xc, yc, w, h]. */
function corners(p: usize, i: i32, center: bool, c: Corners): void {
  const b = p + (<usize>i << 4);
  const a0 = load<f32>(b), a1 = load<f32>(b, 4), a2 = load<f32>(b, 8), a3 = load<f32>(b, 12);
  if (center) {
    const hw = a2 / 2, hh = a3 / 2;
    c.x0 = a0 - hw; c.x1 = a0 + hw; c.y0 = a1 - hh; c.y1 = a1 + hh;
  } else {
    c.y0 = min(a0, a2); c.y1 = max(a0, a2); c.x0 = min(a1, a3); c.x1 = max(a1, a3);
  }
}

/** Whether two boxes overlap by more than `iou` (intersection over union, in float32 as onnxruntime). */
function suppresses(a: Corners, b: Corners, iou: f32): bool {
  const ix0 = max(a.x0, b.x0), ix1 = min(a.x1, b.x1);
  if (ix1 <= ix0) return false;
  const iy0 = max(a.y0, b.y0), iy1 = min(a.y1, b.y1);
  if (iy1 <= iy0) return false;
  const inter: f32 = (ix1 - ix0) * (iy1 - iy0);
  if (inter <= 0) return false;
  const areaA: f32 = (a.x1 - a.x0) * (a.y1 - a.y0);
  const areaB: f32 = (b.x1 - b.x0) * (b.y1 - b.y0);
  const union: f32 = areaA + areaB - inter;
  if (areaA <= 0 || areaB <= 0 || union <= 0) return false;
  return inter / union > iou;
}

class NmsParams {
  maxOut: i64 = 0;
  iou: f32 = 0;
  hasScore: bool = false;
  score: f32 = 0;
}

/**
 * Runs NMS on boxes [B, N, 4] and scores [B, C, N] (float32 at bp, sp), writing (batch, class,
 * box) triples as int64 at out (when out != 0, at most `cap` of them); returns how many were selected.
 */
function nms(bp: usize, sp: usize, B: i32, C: i32, N: i32, center: bool, prm: NmsParams, out: usize, cap: i32): i32 {
  if (prm.maxOut <= 0 || N == 0) return 0;
  const maxOut = <i32>min<i64>(prm.maxOut, <i64>N);
  const cand = new Int32Array(N);
  const tmp = new Int32Array(N);
  const sel = new Int32Array(maxOut);
  const order = new ScoreOrder();
  const boxes = new Array<Corners>(N);
  for (let i = 0; i < N; i++) boxes[i] = new Corners();
  let total = 0;
  for (let b = 0; b < B; b++) {
    const bb = bp + <usize>b * <usize>N * 16;
    for (let i = 0; i < N; i++) corners(bb, i, center, unchecked(boxes[i]));
    for (let c = 0; c < C; c++) {
      const s = sp + (<usize>(b * C + c) * <usize>N << 2);
      let n = 0;
      for (let i = 0; i < N; i++) {
        if (!prm.hasScore || load<f32>(s + (<usize>i << 2)) > prm.score) unchecked(cand[n++] = i);
      }
      order.p = s;
      const cs = cand.subarray(0, n);
      mergeSort(cs, tmp.subarray(0, n), order);
      let k = 0;
      for (let j = 0; j < n && k < maxOut; j++) {
        const i = unchecked(cs[j]);
        let keep = true;
        for (let q = 0; q < k && keep; q++) {
          if (suppresses(unchecked(boxes[sel[q]]), unchecked(boxes[i]), prm.iou)) keep = false;
        }
        if (!keep) continue;
        unchecked(sel[k++] = i);
        if (out != 0 && total < cap) {
          const o = out + <usize>total * 24;
          store<i64>(o, <i64>b);
          store<i64>(o, <i64>c, 8);
          store<i64>(o, <i64>i, 16);
        }
        total++;
      }
    }
  }
  return total;
}

/** Reads the optional scalar inputs 2..4 from tensors (or literals at shape time). */
function nmsParams(maxT: Tensor | null, iouT: Tensor | null, scoreT: Tensor | null): NmsParams {
  const p = new NmsParams();
  if (maxT != null && maxT.elements() > 0) p.maxOut = maxT.getAsI64(0);
  if (iouT != null && iouT.elements() > 0) p.iou = <f32>iouT.getAsF64(0);
  if (scoreT != null && scoreT.elements() > 0) {
    p.hasScore = true;
    p.score = <f32>scoreT.getAsF64(0);
  }
  return p;
}

/**
 * NonMaxSuppression: per batch and class, boxes in descending score order (ties: lower box index
 * first) that score above score_threshold (when given) and overlap no box already selected by
 * more than iou_threshold, up to max_output_boxes_per_class (absent or 0: none). Output
 * selected_indices [count, 3] int64 of (batch, class, box).
 */
class NmsOp extends Op {
  constructor() { super("NonMaxSuppression", 0); }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs boxes and scores are required");
    const bx = ctx.input(0), sc = ctx.input(1);
    if (bx.dtype != DT_FLOAT || sc.dtype != DT_FLOAT) return ctx.fail("boxes and scores must be float32");
    if (bx.rank() != 3 || bx.lens[2] != 4) return ctx.fail("boxes must be [num_batches, spatial_dimension, 4], not " + bx.toString());
    if (sc.rank() != 3) return ctx.fail("scores must be [num_batches, num_classes, spatial_dimension], not " + sc.toString());
    if (bx.lens[0] != sc.lens[0] || bx.lens[1] != sc.lens[2]) {
      return ctx.fail("boxes " + bx.toString() + " and scores " + sc.toString() + " disagree on batches or boxes");
    }
    const cpb = ctx.attrs.getInt("center_point_box", 0);
    if (cpb != 0 && cpb != 1) return ctx.fail("center_point_box must be 0 or 1, not " + cpb.toString());
    if (ctx.hasInput(2) && (ctx.input(2).dtype != DT_INT64 || ctx.input(2).elements() != 1)) {
      return ctx.fail("max_output_boxes_per_class must be one int64, not " + ctx.input(2).toString());
    }
    for (let i = 3; i < 5; i++) {
      if (ctx.hasInput(i) && (ctx.input(i).dtype != DT_FLOAT || ctx.input(i).elements() != 1)) {
        return ctx.fail((i == 3 ? "iou_threshold" : "score_threshold") + " must be one float32, not " + ctx.input(i).toString());
      }
    }
    const B = bx.lens[0], N = bx.lens[1], C = sc.lens[1];
    let allConst = ctx.constant(0) != null && ctx.constant(1) != null;
    for (let i = 2; i < 5; i++) if (ctx.hasInput(i) && ctx.constant(i) == null) allConst = false;
    const maxC = ctx.hasInput(2) ? ctx.constant(2) : null;
    if (!ctx.hasInput(2) || (maxC != null && maxC.getAsI64(0) <= 0)) {
      ctx.out(Shape.standard(DT_INT64, [0, 3]));
      return true;
    }
    if (allConst) {
      const prm = nmsParams(ctx.constant(2), ctx.hasInput(3) ? ctx.constant(3) : null, ctx.hasInput(4) ? ctx.constant(4) : null);
      if (prm.iou < 0 || prm.iou > 1) return ctx.fail("iou_threshold " + prm.iou.toString() + " is not in [0, 1]");
      const n = nms(ctx.constant(0)!.ptr, ctx.constant(1)!.ptr, B, C, N, cpb == 1, prm, 0, 0);
      ctx.out(Shape.standard(DT_INT64, [n, 3]));
      return true;
    }
    const perClass: i64 = maxC != null ? min<i64>(maxC.getAsI64(0), <i64>N) : <i64>N;
    const bound = perClass * <i64>C * <i64>B;
    if (bound > 0x7fffffff) return ctx.fail("the bound of " + bound.toString() + " selected boxes is too large");
    ctx.outBounded(Shape.standard(DT_INT64, [<i32>bound, 3]), 1);
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const bx = ctx.input(0), sc = ctx.input(1), y = ctx.output(0);
    const prm = nmsParams(ctx.hasInput(2) ? ctx.input(2) : null, ctx.hasInput(3) ? ctx.input(3) : null,
      ctx.hasInput(4) ? ctx.input(4) : null);
    if (prm.iou < 0 || prm.iou > 1) return ctx.fail("iou_threshold " + prm.iou.toString() + " is not in [0, 1]");
    const cap = y.shape.lens[0];
    const n = nms(bx.ptr, sc.ptr, bx.shape.lens[0], sc.shape.lens[1], bx.shape.lens[1],
      ctx.attrs.getInt("center_point_box", 0) == 1, prm, y.ptr, cap);
    if (n > cap) return ctx.fail("selected " + n.toString() + " boxes, over the planned " + cap.toString());
    ctx.setExtent(0, [n, 3]);
    return true;
  }
}

// ---------------------------------------------------------------- TfIdfVectorizer

/** The pool's n-grams as a trie: node 0 is the root; ids are 1-based n-gram numbers, 0 for a prefix only. */
class NgramTrie {
  ids: Array<i32> = [0];
  kids: Array<Map<i64, i32>> = [new Map<i64, i32>()];

  child(node: i32, key: i64, make: bool): i32 {
    const m = unchecked(this.kids[node]);
    if (m.has(key)) return m.get(key);
    if (!make) return -1;
    const k = this.ids.length;
    this.ids.push(0);
    this.kids.push(new Map<i64, i32>());
    m.set(key, k);
    return k;
  }
}

class TfIdfSpec {
  mode: i32 = 0; // 1 TF, 2 IDF, 3 TFIDF
  minN: i32 = 1;
  maxN: i32 = 1;
  maxSkip: i32 = 0;
  outSize: i32 = 0;
  indexes: Array<i64> = new Array<i64>();
  weights: Array<f32> | null = null;
  trie: NgramTrie = new NgramTrie();
  error: string = "";
}

/** Reads and checks the attributes, building the trie of the n-grams in [min, max] length. */
function tfidfSpec(attrs: Attrs): TfIdfSpec {
  const s = new TfIdfSpec();
  if (attrs.has("pool_strings")) {
    s.error = "pool_strings is not supported: kiln's IR has no string tensors (use pool_int64s)";
    return s;
  }
  const mode = attrs.getString("mode", "");
  s.mode = mode == "TF" ? 1 : (mode == "IDF" ? 2 : (mode == "TFIDF" ? 3 : 0));
  if (s.mode == 0) {
    s.error = "mode must be TF, IDF or TFIDF, not '" + mode + "'";
    return s;
  }
  const minN = attrs.getInt("min_gram_length", 0);
  const maxN = attrs.getInt("max_gram_length", 0);
  const maxSkip = attrs.getInt("max_skip_count", 0);
  if (minN < 1 || maxN < minN || maxN > 0x7fffffff) {
    s.error = "min_gram_length " + minN.toString() + " and max_gram_length " + maxN.toString() + " must satisfy 1 <= min <= max";
    return s;
  }
  if (maxSkip < 0 || maxSkip > 0x7fffffff) {
    s.error = "max_skip_count " + maxSkip.toString() + " is out of range";
    return s;
  }
  s.minN = <i32>minN;
  s.maxN = <i32>maxN;
  s.maxSkip = <i32>maxSkip;
  const pool = attrs.getInts("pool_int64s");
  const counts = attrs.getInts("ngram_counts");
  const idx = attrs.getInts("ngram_indexes");
  if (pool == null || counts == null || idx == null || idx.length == 0) {
    s.error = "pool_int64s, ngram_counts and ngram_indexes are required";
    return s;
  }
  s.indexes = idx;
  let maxIdx: i64 = -1;
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] < 0 || idx[i] >= 0x7fffffff) {
      s.error = "ngram_indexes[" + i.toString() + "] = " + idx[i].toString() + " is out of range";
      return s;
    }
    if (idx[i] > maxIdx) maxIdx = idx[i];
  }
  s.outSize = <i32>(maxIdx + 1);
  const total = pool.length;
  let id = 1;
  for (let i = 0; i < counts.length; i++) {
    const start = counts[i];
    const end: i64 = i + 1 < counts.length ? counts[i + 1] : <i64>total;
    if (start < 0 || end < start || end > <i64>total) {
      s.error = "ngram_counts " + start.toString() + ".." + end.toString() + " do not fit a pool of " + total.toString();
      return s;
    }
    const size = i + 1;
    const grams = <i32>((end - start) / <i64>size);
    if (size < s.minN || size > s.maxN) {
      id += grams;
      continue;
    }
    let at = <i32>start;
    for (let g = 0; g < grams; g++) {
      let node = 0;
      for (let k = 0; k < size; k++) node = s.trie.child(node, pool[at++], true);
      s.trie.ids[node] = id++;
    }
  }
  if (id - 1 > idx.length) {
    s.error = "ngram_indexes has " + idx.length.toString() + " entries for " + (id - 1).toString() + " n-grams in the pool";
    return s;
  }
  const w = attrs.getFloats("weights");
  if (w != null && w.length > 0) {
    if (w.length < s.outSize) {
      s.error = "weights has " + w.length.toString() + " entries for an output of " + s.outSize.toString();
      return s;
    }
    s.weights = w;
  }
  return s;
}

/**
 * TfIdfVectorizer: counts the pool's n-grams (lengths min..max, with up to max_skip_count items
 * skipped between their elements; unigrams counted once) in each row of an int32/int64 input
 * [C] or [B, C], into float32 [out] or [B, out] at ngram_indexes, weighted by mode: TF counts,
 * IDF the weight (1 without weights) where the count is non-zero, TFIDF count times weight.
 */
class TfIdfOp extends Op {
  constructor() { super("TfIdfVectorizer", 0); }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input X is required");
    const x = ctx.input(0);
    if (x.dtype != DT_INT32 && x.dtype != DT_INT64) return ctx.failDtype(0);
    const s = tfidfSpec(ctx.attrs);
    if (s.error.length > 0) return ctx.fail(s.error);
    if (x.rank() > 2) return ctx.fail("input must be [C] or [B, C], not " + x.toString());
    if (x.rank() == 2 && x.lens[0] < 1) return ctx.fail("input [B, C] needs B > 0, not " + x.toString());
    ctx.out(Shape.standard(DT_FLOAT, x.rank() == 2 ? [x.lens[0], s.outSize] : [s.outSize]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const s = tfidfSpec(ctx.attrs);
    if (s.error.length > 0) return ctx.fail(s.error);
    const x = ctx.input(0), y = ctx.output(0);
    const rows = x.shape.rank() == 2 ? x.shape.lens[0] : 1;
    const C = x.shape.rank() == 0 ? 1 : x.shape.lens[x.shape.rank() - 1];
    const out = s.outSize;
    const freq = new Int32Array(out);
    const dt = x.dtype();
    const esz = <usize>dtypeSize(dt);
    const trie = s.trie;
    for (let r = 0; r < rows; r++) {
      freq.fill(0);
      const row = x.ptr + <usize>r * <usize>C * esz;
      let startN = s.minN;
      // a skip of C or more fits no n-gram longer than one: no need to go further
      const lastSkip = min(s.maxSkip, C) + 1;
      for (let skip = 1; skip <= lastSkip; skip++) {
        for (let start = 0; start < C; start++) {
          if (<i64>start + <i64>skip * <i64>(startN - 1) >= <i64>C) break;
          let node = 0;
          let item = start;
          for (let n = 1; n <= s.maxN && item < C; n++) {
            if (unchecked(trie.kids[node]).size == 0) break;
            const v = dt == DT_INT64 ? load<i64>(row + (<usize>item << 3)) : <i64>load<i32>(row + (<usize>item << 2));
            node = trie.child(node, v, false);
            if (node < 0) break;
            const id = unchecked(trie.ids[node]);
            if (n >= startN && id != 0) {
              const o = <i32>unchecked(s.indexes[id - 1]);
              unchecked(freq[o] = freq[o] + 1);
            }
            item += skip;
          }
        }
        // unigrams do not depend on the skip: count them once
        if (startN == 1) {
          startN++;
          if (startN > s.maxN) break;
        }
      }
      const w = s.weights;
      const yr = y.ptr + (<usize>r * <usize>out << 2);
      for (let i = 0; i < out; i++) {
        const f = <f32>unchecked(freq[i]);
        const wi: f32 = w != null ? unchecked(w[i]) : 1;
        let v: f32 = f;
        if (s.mode == 2) v = f > 0 ? wi : 0;
        else if (s.mode == 3) v = f * wi;
        store<f32>(yr + (<usize>i << 2), v);
      }
    }
    return true;
  }
}

export function registerDynamic(): void {
  registerOp(new NonZeroOp());
  registerOp(new CompressOp());
  registerOp(new UniqueOp());
  registerOp(new NmsOp());
  registerOp(new TfIdfOp());
}
