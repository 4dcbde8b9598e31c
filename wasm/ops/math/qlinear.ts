// Integer matrix products and convolutions: MatMulInteger and ConvInteger (int32 out), and
// QLinearMatMul and QLinearConv (requantized to int8/uint8). 8-bit operands minus their zero
// points become int16 and run on the exact i32 GEMM (kernels/igemm.ts); ConvInteger pads with
// the zero point, so padding contributes nothing. Requantization multiplies the i32 sum (plus
// QLinearConv's bias) by a_scale * b_scale / y_scale in float32, rounds half to even, adds the
// output zero point and saturates, as onnxruntime does.
import { DT_INT32, DT_INT8, DT_UINT8, dtypeName, isFloat } from "../../ir/dtype";
import { Attrs } from "../../ir/attrs";
import { broadcastLens, Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ConvGeom } from "../../kernels/conv";
import { loadF64 } from "../../kernels/eltwise";
import { evenK, igemm, packB, packedBBytes } from "../../kernels/igemm";
import { convPlan, SpatialPlan } from "../conv";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { qmax, qmin } from "./quant";

function is8(dt: i32): bool {
  return dt == DT_INT8 || dt == DT_UINT8;
}

/** Element i of an int8/uint8 buffer. */
// @ts-ignore: decorator
@inline
function ld8(signed: bool, p: usize, i: i32): i32 {
  return signed ? <i32>load<i8>(p + <usize>i) : <i32>load<u8>(p + <usize>i);
}

/** Element i of an int8/uint8 tensor, or 0 when absent. */
function zpAt(t: Tensor | null, i: i32): i32 {
  if (t == null) return 0;
  return ld8(t.shape.dtype == DT_INT8, t.ptr, i);
}

function scaleAt(t: Tensor, i: i32): f32 {
  return <f32>loadF64(t.shape.dtype, t.ptr + <usize>i * <usize>t.shape.elementSize());
}

/** Requantizes an i32 sum: round(acc * mult) + zp, saturated to [lo, hi]. */
// @ts-ignore: decorator
@inline
function requant(acc: i32, mult: f32, zp: i32, lo: f32, hi: f32): i32 {
  let v = nearest<f32>(<f32>acc * mult) + <f32>zp;
  if (!(v >= lo)) v = lo;
  if (v > hi) v = hi;
  return <i32>v;
}

// ---- matrix products ----

/** How a zero point or scale of A (per row) or B (per column) is laid out. */
const P_TENSOR: i32 = 0; // one value
const P_VECTOR: i32 = 1; // [M] rows of A / [N] columns of B
const P_BATCHED: i32 = 2; // A: [...batchA, M, 1]; B: [...batchB, 1, N]

/** numpy matmul geometry of A x B. */
class MMPlan {
  error: string = "";
  M: i32 = 1;
  K: i32 = 1;
  N: i32 = 1;
  aBatch: Array<i32> = new Array<i32>();
  bBatch: Array<i32> = new Array<i32>();
  batch: Array<i32> = new Array<i32>();
  out: Array<i32> = new Array<i32>();

  batches(): i32 {
    return count(this.batch);
  }

  /** Index of output batch ob in A's (or B's) own batch, broadcasting dims of 1. */
  ownIndex(ob: i32, own: Array<i32>): i32 {
    let idx: i32 = 0, stride: i32 = 1, rem = ob;
    const off = this.batch.length - own.length;
    for (let d = this.batch.length - 1; d >= 0; d--) {
      const len = this.batch[d];
      const c = rem % len;
      rem /= len;
      if (d >= off) {
        const l = own[d - off];
        if (l != 1) idx += c * stride;
        stride *= l;
      }
    }
    return idx;
  }
}

function count(lens: Array<i32>): i32 {
  let n: i32 = 1;
  for (let i = 0; i < lens.length; i++) n *= lens[i];
  return n;
}

function mmPlan(a: Shape, b: Shape): MMPlan {
  const p = new MMPlan();
  const ra = a.rank(), rb = b.rank();
  if (ra == 0 || rb == 0) {
    p.error = "A and B must have rank >= 1: " + a.toString() + " x " + b.toString();
    return p;
  }
  p.M = ra > 1 ? a.lens[ra - 2] : 1;
  p.K = a.lens[ra - 1];
  const kb = rb > 1 ? b.lens[rb - 2] : b.lens[0];
  p.N = rb > 1 ? b.lens[rb - 1] : 1;
  if (p.K != kb) {
    p.error = "inner dims differ: " + a.toString() + " x " + b.toString();
    return p;
  }
  p.aBatch = ra > 2 ? a.lens.slice(0, ra - 2) : new Array<i32>(0);
  p.bBatch = rb > 2 ? b.lens.slice(0, rb - 2) : new Array<i32>(0);
  const batch = broadcastLens(p.aBatch, p.bBatch);
  if (batch == null) {
    p.error = "batch dims do not broadcast: " + a.toString() + " x " + b.toString();
    return p;
  }
  p.batch = batch;
  p.out = batch.slice(0);
  if (ra > 1) p.out.push(p.M);
  if (rb > 1) p.out.push(p.N);
  return p;
}

/**
 * The layout of a per-row (A) or per-column (B) parameter `s` for operand `x`; -1 when `s`
 * fits none. forA: rows of A (length M, batched shape [..., M, 1]); else columns of B.
 */
function paramKind(s: Shape, x: Shape, forA: bool, p: MMPlan): i32 {
  if (s.elements() == 1) return P_TENSOR;
  const L = forA ? p.M : p.N;
  if (s.rank() == 1 && s.lens[0] == L) return P_VECTOR;
  const r = x.rank();
  if (r >= 2 && s.rank() == r) {
    for (let d = 0; d < r - 2; d++) if (s.lens[d] != x.lens[d]) return -1;
    if (forA && s.lens[r - 2] == L && s.lens[r - 1] == 1) return P_BATCHED;
    if (!forA && s.lens[r - 2] == 1 && s.lens[r - 1] == L) return P_BATCHED;
  }
  return -1;
}

function paramIndex(kind: i32, own: i32, j: i32, L: i32): i32 {
  return kind == P_TENSOR ? 0 : (kind == P_VECTOR ? j : own * L + j);
}

/** Checks one per-row/per-column parameter (input i) of operand x; "" or an error. */
function checkParam(ctx: ShapeContext, i: i32, name: string, x: Shape, xName: string, forA: bool, p: MMPlan): string {
  const s = ctx.input(i);
  if (paramKind(s, x, forA, p) < 0) {
    const L = forA ? p.M : p.N;
    return name + " " + s.toString() + " must be a scalar, a vector of " + L.toString() + (forA ? " (rows of " : " (columns of ") +
      xName + ") or have " + xName + "'s rank with " + (forA ? "[..., M, 1]" : "[..., 1, N]");
  }
  return "";
}

/** Checks that zero point input i is int8/uint8 like operand input xi. */
function checkZeroPoint(ctx: ShapeContext, i: i32, name: string, xi: i32, xName: string): string {
  if (!ctx.hasInput(i)) return "";
  const z = ctx.input(i).dtype, x = ctx.input(xi).dtype;
  if (z != x) return name + "'s element type " + dtypeName(z) + " differs from " + xName + "'s " + dtypeName(x);
  return "";
}

/**
 * acc (i32, [batches, M, N]) = (A - za) x (B - zb) over the broadcast batch; za per row of A,
 * zb per column of B (layouts from paramKind).
 */
function matmulAcc(p: MMPlan, a: Tensor, za: Tensor | null, b: Tensor, zb: Tensor | null, acc: usize): void {
  const M = p.M, K = p.K, N = p.N, K2 = evenK(K);
  const nb = p.batches();
  if (nb == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    memory.fill(acc, 0, <usize>nb * <usize>M * <usize>N << 2);
    return;
  }
  const na = count(p.aBatch), nbb = count(p.bBatch);
  const zaKind = za != null ? paramKind(za.shape, a.shape, true, p) : P_TENSOR;
  const zbKind = zb != null ? paramKind(zb.shape, b.shape, false, p) : P_TENSOR;
  // A - za as int16 rows of K2 (the odd tail zero)
  const aRows = <usize>na * <usize>M;
  const ai = heap.alloc(aRows * <usize>K2 * 2);
  const sa = a.shape.dtype == DT_INT8;
  for (let r = 0; r < <i32>aRows; r++) {
    const z = zpAt(za, paramIndex(zaKind, r / M, r % M, M));
    const src = a.ptr + <usize>r * <usize>K;
    const dst = ai + (<usize>r * <usize>K2 << 1);
    if (sa) for (let k = 0; k < K; k++) store<i16>(dst + (<usize>k << 1), <i16>(<i32>load<i8>(src + <usize>k) - z));
    else for (let k = 0; k < K; k++) store<i16>(dst + (<usize>k << 1), <i16>(<i32>load<u8>(src + <usize>k) - z));
    if (K2 != K) store<i16>(dst + (<usize>K << 1), 0);
  }
  // B - zb, packed per batch of B
  const pb = packedBBytes(K, N);
  const bp = heap.alloc(<usize>nbb * pb);
  const tmp = heap.alloc(<usize>K * <usize>N * 2);
  const sb = b.shape.dtype == DT_INT8;
  const zrow = heap.alloc(<usize>N << 2); // this batch's zero point of each column
  for (let q = 0; q < nbb; q++) {
    for (let n = 0; n < N; n++) store<i32>(zrow + (<usize>n << 2), zpAt(zb, paramIndex(zbKind, q, n, N)));
    const src = b.ptr + <usize>q * <usize>K * <usize>N;
    for (let k = 0; k < K; k++) {
      const row = src + <usize>k * <usize>N, dst = tmp + (<usize>k * <usize>N << 1);
      if (sb) {
        for (let n = 0; n < N; n++) store<i16>(dst + (<usize>n << 1), <i16>(<i32>load<i8>(row + <usize>n) - load<i32>(zrow + (<usize>n << 2))));
      } else {
        for (let n = 0; n < N; n++) store<i16>(dst + (<usize>n << 1), <i16>(<i32>load<u8>(row + <usize>n) - load<i32>(zrow + (<usize>n << 2))));
      }
    }
    packB(tmp, N, K, N, bp + <usize>q * pb);
  }
  heap.free(zrow);
  heap.free(tmp);
  if (nbb == 1 && na == nb) {
    // one B: A's batches stack into one product
    igemm(nb * M, N, K, ai, K2, bp, acc, N);
  } else {
    for (let ob = 0; ob < nb; ob++) {
      const ia = p.ownIndex(ob, p.aBatch), ib = p.ownIndex(ob, p.bBatch);
      igemm(M, N, K, ai + (<usize>ia * <usize>M * <usize>K2 << 1), K2, bp + <usize>ib * pb,
        acc + (<usize>ob * <usize>M * <usize>N << 2), N);
    }
  }
  heap.free(ai);
  heap.free(bp);
}

class MatMulIntegerOp extends Op {
  constructor() {
    super("MatMulInteger", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs A and B are required");
    const a = ctx.input(0), b = ctx.input(1);
    if (!is8(a.dtype)) return ctx.failDtype(0);
    if (!is8(b.dtype)) return ctx.failDtype(1);
    const p = mmPlan(a, b);
    if (p.error.length > 0) return ctx.fail(p.error);
    let e = checkZeroPoint(ctx, 2, "a_zero_point", 0, "A");
    if (e.length == 0) e = checkZeroPoint(ctx, 3, "b_zero_point", 1, "B");
    if (e.length == 0 && ctx.hasInput(2)) e = checkParam(ctx, 2, "a_zero_point", a, "A", true, p);
    if (e.length == 0 && ctx.hasInput(3)) e = checkParam(ctx, 3, "b_zero_point", b, "B", false, p);
    if (e.length > 0) return ctx.fail(e);
    ctx.out(Shape.standard(DT_INT32, p.out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const a = ctx.input(0), b = ctx.input(1);
    const p = mmPlan(a.shape, b.shape);
    if (p.error.length > 0) return ctx.fail(p.error);
    matmulAcc(p, a, ctx.hasInput(2) ? ctx.input(2) : null, b, ctx.hasInput(3) ? ctx.input(3) : null, ctx.output(0).ptr);
    return true;
  }
}

/** Checks that input i is a float scale of one element; "" or an error. */
function checkScalarScale(ctx: ShapeContext, i: i32, name: string): string {
  if (!ctx.hasInput(i)) return "input " + name + " is required";
  const s = ctx.input(i);
  if (!isFloat(s.dtype)) return name + " must be a float tensor, got " + s.toString();
  if (s.elements() != 1) return name + " " + s.toString() + " must be a scalar";
  return "";
}

/** Output zero point (input i): required, one int8/uint8 element. */
function checkOutputZeroPoint(ctx: ShapeContext, i: i32): string {
  if (!ctx.hasInput(i)) return "input y_zero_point is required (it sets the output type)";
  const z = ctx.input(i);
  if (!is8(z.dtype)) return "y_zero_point must be int8 or uint8, got " + z.toString();
  if (z.elements() != 1) return "y_zero_point " + z.toString() + " must be a scalar";
  return "";
}

class QLinearMatMulOp extends Op {
  constructor() {
    super("QLinearMatMul", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(3)) return ctx.fail("inputs a and b are required");
    const a = ctx.input(0), b = ctx.input(3);
    if (!is8(a.dtype)) return ctx.failDtype(0);
    if (!is8(b.dtype)) return ctx.failDtype(3);
    const p = mmPlan(a, b);
    if (p.error.length > 0) return ctx.fail(p.error);
    let e = "";
    if (!ctx.hasInput(1) || !ctx.hasInput(4)) e = "inputs a_scale and b_scale are required";
    else if (!isFloat(ctx.input(1).dtype)) e = "a_scale must be a float tensor, got " + ctx.input(1).toString();
    else if (!isFloat(ctx.input(4).dtype)) e = "b_scale must be a float tensor, got " + ctx.input(4).toString();
    if (e.length == 0) e = checkParam(ctx, 1, "a_scale", a, "a", true, p);
    if (e.length == 0) e = checkParam(ctx, 4, "b_scale", b, "b", false, p);
    if (e.length == 0) e = checkZeroPoint(ctx, 2, "a_zero_point", 0, "a");
    if (e.length == 0) e = checkZeroPoint(ctx, 5, "b_zero_point", 3, "b");
    if (e.length == 0 && ctx.hasInput(2)) e = checkParam(ctx, 2, "a_zero_point", a, "a", true, p);
    if (e.length == 0 && ctx.hasInput(5)) e = checkParam(ctx, 5, "b_zero_point", b, "b", false, p);
    if (e.length == 0) e = checkScalarScale(ctx, 6, "y_scale");
    if (e.length == 0) e = checkOutputZeroPoint(ctx, 7);
    if (e.length > 0) return ctx.fail(e);
    ctx.out(Shape.standard(ctx.input(7).dtype, p.out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const a = ctx.input(0), b = ctx.input(3), y = ctx.output(0);
    const p = mmPlan(a.shape, b.shape);
    if (p.error.length > 0) return ctx.fail(p.error);
    const nb = p.batches(), M = p.M, N = p.N;
    const total = <usize>nb * <usize>M * <usize>N;
    if (total == 0) return true;
    const acc = heap.alloc(total << 2);
    matmulAcc(p, a, ctx.hasInput(2) ? ctx.input(2) : null, b, ctx.hasInput(5) ? ctx.input(5) : null, acc);
    const as = ctx.input(1), bs = ctx.input(4);
    const ak = paramKind(as.shape, a.shape, true, p), bk = paramKind(bs.shape, b.shape, false, p);
    const ys = scaleAt(ctx.input(6), 0);
    const yd = y.shape.dtype;
    const yz = zpAt(ctx.input(7), 0);
    const lo = <f32>qmin(yd), hi = <f32>qmax(yd);
    const signed = yd == DT_INT8;
    // the multiplier of column n for rows of one A scale: (a_scale * b_scale[n]) / y_scale
    const mult = heap.alloc(<usize>N << 2);
    let i: i32 = 0;
    for (let ob = 0; ob < nb; ob++) {
      const ia = p.ownIndex(ob, p.aBatch), ib = p.ownIndex(ob, p.bBatch);
      for (let m = 0; m < M; m++) {
        const sa = scaleAt(as, paramIndex(ak, ia, m, M));
        if (m == 0 || ak != P_TENSOR) {
          for (let n = 0; n < N; n++) store<f32>(mult + (<usize>n << 2), (sa * scaleAt(bs, paramIndex(bk, ib, n, N))) / ys);
        }
        for (let n = 0; n < N; n++, i++) {
          const q = requant(load<i32>(acc + (<usize>i << 2)), load<f32>(mult + (<usize>n << 2)), yz, lo, hi);
          if (signed) store<i8>(y.ptr + <usize>i, <i8>q);
          else store<u8>(y.ptr + <usize>i, <u8>q);
        }
      }
    }
    heap.free(mult);
    heap.free(acc);
    return true;
  }
}

// ---- convolutions ----

/** Shared shape checks of ConvInteger / QLinearConv: x (input xi) and w (input wi). "" or an error. */
function checkIntConv(ctx: ShapeContext, xi: i32, wi: i32): string {
  const x = ctx.input(xi), w = ctx.input(wi);
  if (x.rank() < 3 || x.rank() > 5) return "x must have 1 to 3 spatial dims, got " + x.toString();
  if (w.rank() != x.rank()) return "w " + w.toString() + " must have the rank of x " + x.toString();
  const group = ctx.attrs.getInt("group", 1);
  const C = x.lens[1], M = w.lens[0];
  if (group < 1 || group > 0x7fffffff || C % <i32>group != 0 || M % <i32>group != 0) {
    return "group " + group.toString() + " does not divide channels " + C.toString() + " and feature maps " + M.toString();
  }
  if (<i64>w.lens[1] * group != <i64>C) {
    return "x has " + C.toString() + " channels but w " + w.toString() + " expects " + (<i64>w.lens[1] * group).toString() +
      " (group " + group.toString() + ")";
  }
  return "";
}

/** Output shape of an integer conv, or null (with ctx.fail) on a geometry error. */
function convOut(ctx: ShapeContext, attrs: Attrs, x: Shape, w: Shape, dt: i32): Shape | null {
  const p = convPlan(attrs, x, w);
  if (p.error.length > 0) {
    ctx.fail(p.error);
    return null;
  }
  const out = [x.lens[0], w.lens[0]];
  for (let i = 0; i < p.out.length; i++) {
    if (p.out[i] <= 0) {
      ctx.fail("output spatial dims are not positive");
      return null;
    }
    out.push(p.out[i]);
  }
  return Shape.standard(dt, out);
}

/** Weight zero point or scale (input i): one value or one per output channel (M). "" or an error. */
function checkPerChannel(ctx: ShapeContext, i: i32, name: string, M: i32): string {
  const s = ctx.input(i);
  if (s.elements() == 1 || (s.rank() == 1 && s.lens[0] == M)) return "";
  return name + " " + s.toString() + " must be a scalar or have " + M.toString() + " elements (one per output channel)";
}

function geomOf(p: SpatialPlan, x: Shape, w: Shape, group: i32): ConvGeom {
  return p.geom(x.lens[0], x.lens[1], w.lens[0], group, x.lens.slice(2));
}

/** im2col of one group's int16 channels [cg, id, ih, iw] into col[cg * kvol, ovol]; outside taps are 0. */
function im2col16(g: ConvGeom, cg: i32, x: usize, col: usize): void {
  const ihw = g.ih * g.iw;
  let d = col;
  for (let c = 0; c < cg; c++) {
    const xc = x + (<usize>(c * g.id * ihw) << 1);
    for (let kz = 0; kz < g.kd; kz++) {
      for (let ky = 0; ky < g.kh; ky++) {
        for (let kx = 0; kx < g.kw; kx++) {
          const ix0 = kx * g.dw - g.pw;
          // valid ox: 0 <= ox * sw + ix0 < iw
          let lo = ix0 >= 0 ? 0 : (-ix0 + g.sw - 1) / g.sw;
          if (lo > g.ow) lo = g.ow;
          let hi = g.iw - ix0 <= 0 ? 0 : (g.iw - ix0 + g.sw - 1) / g.sw;
          if (hi > g.ow) hi = g.ow;
          if (hi < lo) hi = lo;
          for (let oz = 0; oz < g.od; oz++) {
            const iz = oz * g.sd - g.pd + kz * g.dd;
            for (let oy = 0; oy < g.oh; oy++) {
              const iy = oy * g.sh - g.ph + ky * g.dh;
              if (iz < 0 || iz >= g.id || iy < 0 || iy >= g.ih) {
                memory.fill(d, 0, <usize>g.ow << 1);
              } else {
                const row = xc + (<usize>(iz * ihw + iy * g.iw) << 1);
                if (lo > 0) memory.fill(d, 0, <usize>lo << 1);
                if (g.sw == 1) {
                  memory.copy(d + (<usize>lo << 1), row + (<usize>(lo + ix0) << 1), <usize>(hi - lo) << 1);
                } else {
                  for (let ox = lo; ox < hi; ox++) {
                    store<i16>(d + (<usize>ox << 1), load<i16>(row + (<usize>(ox * g.sw + ix0) << 1)));
                  }
                }
                if (hi < g.ow) memory.fill(d + (<usize>hi << 1), 0, <usize>(g.ow - hi) << 1);
              }
              d += <usize>g.ow << 1;
            }
          }
        }
      }
    }
  }
}

/** acc (i32, [n, m, ovol]) = conv(x - xz, w - wz[m]); xz one value, wz one or one per output channel. */
function convAcc(g: ConvGeom, x: Tensor, xz: i32, w: Tensor, wz: Tensor | null, acc: usize): void {
  const cg = g.c / g.group, mg = g.m / g.group;
  const kvol = g.kvol(), K = cg * kvol, K2 = evenK(K);
  const ovol = g.ovol(), ivol = g.ivol();
  const perChannel = wz != null && wz.elements() > 1;
  // w - wz as int16 rows of K2
  const wi = heap.alloc(<usize>g.m * <usize>K2 * 2);
  const sw = w.shape.dtype == DT_INT8;
  for (let m = 0; m < g.m; m++) {
    const z = zpAt(wz, perChannel ? m : 0);
    const dst = wi + (<usize>m * <usize>K2 << 1);
    for (let k = 0; k < K; k++) store<i16>(dst + (<usize>k << 1), <i16>(ld8(sw, w.ptr, m * K + k) - z));
    if (K2 != K) store<i16>(dst + (<usize>K << 1), 0);
  }
  const direct = kvol == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 && g.pd == 0 && g.ph == 0 && g.pw == 0 && ivol == ovol;
  const xi = heap.alloc(<usize>g.c * <usize>ivol * 2);
  const col = direct ? 0 : heap.alloc(<usize>K * <usize>ovol * 2);
  const bp = heap.alloc(packedBBytes(K, ovol));
  const sx = x.shape.dtype == DT_INT8;
  const cv = g.c * ivol;
  for (let n = 0; n < g.n; n++) {
    const src = x.ptr + <usize>n * <usize>cv;
    for (let i = 0; i < cv; i++) store<i16>(xi + (<usize>i << 1), <i16>(ld8(sx, src, i) - xz));
    for (let gi = 0; gi < g.group; gi++) {
      const xg = xi + (<usize>gi * <usize>cg * <usize>ivol << 1);
      if (direct) {
        packB(xg, ovol, K, ovol, bp);
      } else {
        im2col16(g, cg, xg, col);
        packB(col, ovol, K, ovol, bp);
      }
      igemm(mg, ovol, K, wi + (<usize>gi * <usize>mg * <usize>K2 << 1), K2, bp,
        acc + ((<usize>(n * g.m + gi * mg) * <usize>ovol) << 2), ovol);
    }
  }
  heap.free(wi);
  heap.free(xi);
  if (col != 0) heap.free(col);
  heap.free(bp);
}

class ConvIntegerOp extends Op {
  constructor() {
    super("ConvInteger", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs x and w are required");
    const x = ctx.input(0), w = ctx.input(1);
    if (!is8(x.dtype)) return ctx.failDtype(0);
    if (!is8(w.dtype)) return ctx.failDtype(1);
    let e = checkIntConv(ctx, 0, 1);
    if (e.length == 0) e = checkZeroPoint(ctx, 2, "x_zero_point", 0, "x");
    if (e.length == 0) e = checkZeroPoint(ctx, 3, "w_zero_point", 1, "w");
    if (e.length == 0 && ctx.hasInput(2) && ctx.input(2).elements() != 1) {
      e = "x_zero_point " + ctx.input(2).toString() + " must be a scalar";
    }
    if (e.length == 0 && ctx.hasInput(3)) e = checkPerChannel(ctx, 3, "w_zero_point", w.lens[0]);
    if (e.length > 0) return ctx.fail(e);
    const out = convOut(ctx, ctx.attrs, x, w, DT_INT32);
    if (out == null) return false;
    ctx.out(out);
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), w = ctx.input(1), y = ctx.output(0);
    const p = convPlan(ctx.attrs, x.shape, w.shape);
    if (p.error.length > 0) return ctx.fail(p.error);
    if (y.elements() == 0) return true;
    const g = geomOf(p, x.shape, w.shape, <i32>ctx.attrs.getInt("group", 1));
    const xz = zpAt(ctx.hasInput(2) ? ctx.input(2) : null, 0);
    convAcc(g, x, xz, w, ctx.hasInput(3) ? ctx.input(3) : null, y.ptr);
    return true;
  }
}

class QLinearConvOp extends Op {
  constructor() {
    super("QLinearConv", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(3)) return ctx.fail("inputs x and w are required");
    const x = ctx.input(0), w = ctx.input(3);
    if (!is8(x.dtype)) return ctx.failDtype(0);
    if (!is8(w.dtype)) return ctx.failDtype(3);
    const M = w.rank() > 0 ? w.lens[0] : 0;
    let e = checkIntConv(ctx, 0, 3);
    if (e.length == 0) e = checkScalarScale(ctx, 1, "x_scale");
    if (e.length == 0) e = checkZeroPoint(ctx, 2, "x_zero_point", 0, "x");
    if (e.length == 0 && ctx.hasInput(2) && ctx.input(2).elements() != 1) {
      e = "x_zero_point " + ctx.input(2).toString() + " must be a scalar";
    }
    if (e.length == 0) {
      if (!ctx.hasInput(4)) e = "input w_scale is required";
      else if (!isFloat(ctx.input(4).dtype)) e = "w_scale must be a float tensor, got " + ctx.input(4).toString();
      else e = checkPerChannel(ctx, 4, "w_scale", M);
    }
    if (e.length == 0) e = checkZeroPoint(ctx, 5, "w_zero_point", 3, "w");
    if (e.length == 0 && ctx.hasInput(5)) e = checkPerChannel(ctx, 5, "w_zero_point", M);
    if (e.length == 0) e = checkScalarScale(ctx, 6, "y_scale");
    if (e.length == 0) e = checkOutputZeroPoint(ctx, 7);
    if (e.length == 0 && ctx.hasInput(8)) {
      const b = ctx.input(8);
      if (b.dtype != DT_INT32 || b.rank() != 1 || b.lens[0] != M) e = "B must be int32[" + M.toString() + "], got " + b.toString();
    }
    if (e.length > 0) return ctx.fail(e);
    const out = convOut(ctx, ctx.attrs, x, w, ctx.input(7).dtype);
    if (out == null) return false;
    ctx.out(out);
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), w = ctx.input(3), y = ctx.output(0);
    const p = convPlan(ctx.attrs, x.shape, w.shape);
    if (p.error.length > 0) return ctx.fail(p.error);
    const total = y.elements();
    if (total == 0) return true;
    const g = geomOf(p, x.shape, w.shape, <i32>ctx.attrs.getInt("group", 1));
    const acc = heap.alloc(<usize>total << 2);
    convAcc(g, x, zpAt(ctx.hasInput(2) ? ctx.input(2) : null, 0), w, ctx.hasInput(5) ? ctx.input(5) : null, acc);
    const xs = scaleAt(ctx.input(1), 0), ws = ctx.input(4), ys = scaleAt(ctx.input(6), 0);
    const perChannel = ws.elements() > 1;
    const bias: Tensor | null = ctx.hasInput(8) ? ctx.input(8) : null;
    const yd = y.shape.dtype, yz = zpAt(ctx.input(7), 0), lo = <f32>qmin(yd), hi = <f32>qmax(yd);
    const signed = yd == DT_INT8;
    const ovol = g.ovol();
    let i: i32 = 0;
    for (let n = 0; n < g.n; n++) {
      for (let m = 0; m < g.m; m++) {
        const mult: f32 = (xs * scaleAt(ws, perChannel ? m : 0)) / ys;
        const b: i32 = bias != null ? load<i32>(bias.ptr + (<usize>m << 2)) : 0;
        for (let v = 0; v < ovol; v++, i++) {
          const q = requant(load<i32>(acc + (<usize>i << 2)) + b, mult, yz, lo, hi);
          if (signed) store<i8>(y.ptr + <usize>i, <i8>q);
          else store<u8>(y.ptr + <usize>i, <u8>q);
        }
      }
    }
    heap.free(acc);
    return true;
  }
}

export function registerQLinear(): void {
  registerOp(new MatMulIntegerOp());
  registerOp(new ConvIntegerOp());
  registerOp(new QLinearMatMulOp());
  registerOp(new QLinearConvOp());
}
