// Convolution and pooling ops: Conv, ConvTranspose, MaxPool, AveragePool, LpPool, the
// global pools and MaxUnpool. Geometry (kernel, strides, dilations, pads, auto_pad, ceil_mode) is resolved
// by one SpatialPlan shared by shape inference and compute; the kernels (kernels/conv.ts,
// kernels/pool.ts) run float32, and float16/bfloat16/float64/int8/uint8 go through float32
// copies.
import { DT_BFLOAT16, DT_DOUBLE, DT_FLOAT, DT_FLOAT16, DT_INT64, DT_INT8, DT_UINT8, dtypeSize } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import { ConvGeom, convForward, convTransposeForward } from "../kernels/conv";
import { avgLpPool, globalPool, maxPool } from "../kernels/pool";
import { Attrs } from "../ir/attrs";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";
import { F32Out, F32View } from "./f32buf";

function floatType(dt: i32): bool {
  return dt == DT_FLOAT || dt == DT_FLOAT16 || dt == DT_DOUBLE || dt == DT_BFLOAT16;
}

function intsToString(a: Array<i32>): string {
  let s = "[";
  for (let i = 0; i < a.length; i++) s += (i > 0 ? "," : "") + a[i].toString();
  return s + "]";
}

/** Resolved spatial geometry of one node (per spatial dim), or an error. */
export class SpatialPlan {
  error: string = "";
  k: Array<i32> = new Array<i32>();
  s: Array<i32> = new Array<i32>();
  d: Array<i32> = new Array<i32>();
  pb: Array<i32> = new Array<i32>();
  pe: Array<i32> = new Array<i32>();
  out: Array<i32> = new Array<i32>();

  /** Into a ConvGeom (spatial dims right-aligned into d, h, w). `inn` are the input spatial lens. */
  geom(n: i32, c: i32, m: i32, group: i32, inn: Array<i32>): ConvGeom {
    const g = new ConvGeom();
    g.n = n; g.c = c; g.m = m; g.group = group;
    const r = inn.length;
    const one = [1, 1, 1];
    const zero = [0, 0, 0];
    const I = one.slice(0), K = one.slice(0), O = one.slice(0), S = one.slice(0), D = one.slice(0);
    const PB = zero.slice(0), PE = zero.slice(0);
    for (let i = 0; i < r; i++) {
      const j = 3 - r + i;
      I[j] = inn[i]; K[j] = this.k[i]; O[j] = this.out[i]; S[j] = this.s[i]; D[j] = this.d[i];
      PB[j] = this.pb[i]; PE[j] = this.pe[i];
    }
    g.id = I[0]; g.ih = I[1]; g.iw = I[2];
    g.kd = K[0]; g.kh = K[1]; g.kw = K[2];
    g.od = O[0]; g.oh = O[1]; g.ow = O[2];
    g.sd = S[0]; g.sh = S[1]; g.sw = S[2];
    g.dd = D[0]; g.dh = D[1]; g.dw = D[2];
    g.pd = PB[0]; g.ph = PB[1]; g.pw = PB[2];
    g.ed = PE[0]; g.eh = PE[1]; g.ew = PE[2];
    return g;
  }
}

/** The largest geometry value kiln accepts (a kernel, stride, dilation or pad), far above any real model's. */
const GEOM_MAX: i64 = 1 << 24;

function intsAttr(attrs: Attrs, name: string, n: i32, def: i32, plan: SpatialPlan, lo: i64 = 1): Array<i32> {
  const r = new Array<i32>(n);
  const v = attrs.getInts(name);
  if (v == null) {
    for (let i = 0; i < n; i++) r[i] = def;
    return r;
  }
  if (v.length != n) {
    plan.error = name + " has " + v.length.toString() + " values, expected " + n.toString();
    return r;
  }
  for (let i = 0; i < n; i++) {
    if (v[i] < lo || v[i] > GEOM_MAX) {
      plan.error = name + " " + v.toString() + " has a value outside [" + lo.toString() + ", " + GEOM_MAX.toString() + "]";
      return r;
    }
    r[i] = <i32>v[i];
  }
  return r;
}

/** pads: 2 * r values in [0, GEOM_MAX]; sets plan.error otherwise. */
function checkPads(pads: Array<i64> | null, r: i32, plan: SpatialPlan): void {
  if (pads == null) return;
  if (pads.length != 2 * r) {
    plan.error = "pads has " + pads.length.toString() + " values, expected " + (2 * r).toString();
    return;
  }
  for (let i = 0; i < pads.length; i++) {
    if (pads[i] < 0 || pads[i] > GEOM_MAX) {
      plan.error = "pads " + pads.toString() + " has a value outside [0, " + GEOM_MAX.toString() + "]";
      return;
    }
  }
}

/** The dilated kernel extent (k - 1) * d + 1, or -1 (with plan.error) past GEOM_MAX. */
function effectiveKernel(k: i32, d: i32, plan: SpatialPlan): i32 {
  const keff = (<i64>k - 1) * <i64>d + 1;
  if (keff > GEOM_MAX) {
    plan.error = "kernel " + k.toString() + " dilated by " + d.toString() + " spans more than " + GEOM_MAX.toString();
    return -1;
  }
  return <i32>keff;
}

/**
 * Forward geometry (Conv and pools): `inn` input spatial lens, `kern` kernel lens.
 * ceil: ceil_mode; transposed: ConvTranspose (output_padding, output_shape).
 */
function planForward(attrs: Attrs, inn: Array<i32>, kern: Array<i32>, ceil: bool): SpatialPlan {
  const p = new SpatialPlan();
  const r = inn.length;
  p.k = kern;
  p.s = intsAttr(attrs, "strides", r, 1, p);
  p.d = intsAttr(attrs, "dilations", r, 1, p);
  const pads = attrs.getInts("pads");
  checkPads(pads, r, p);
  if (p.error.length > 0) return p;
  const autoPad = attrs.getString("auto_pad", "NOTSET");
  for (let i = 0; i < r; i++) {
    const s = p.s[i];
    const dl = p.d[i];
    if (s < 1 || dl < 1 || p.k[i] < 1) {
      p.error = "strides, dilations and kernel_shape must be >= 1";
      return p;
    }
    const keff = effectiveKernel(p.k[i], dl, p);
    if (keff < 0) return p;
    const n = inn[i];
    let pb: i32 = 0;
    let pe: i32 = 0;
    let o: i32 = 0;
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      o = (n + s - 1) / s;
      let total = (o - 1) * s + keff - n;
      if (total < 0) total = 0;
      if (autoPad == "SAME_UPPER") { pb = total / 2; pe = total - pb; } else { pe = total / 2; pb = total - pe; }
    } else if (autoPad == "VALID") {
      o = n >= keff ? (n - keff) / s + 1 : 0;
    } else if (autoPad == "NOTSET" || autoPad == "") {
      if (pads != null) { pb = <i32>pads[i]; pe = <i32>pads[i + r]; }
      const span = n + pb + pe - keff;
      if (span < 0) {
        p.error = "kernel " + intsToString(kern) + " (dilated) is larger than the padded input " + intsToString(inn);
        return p;
      }
      o = ceil ? (span + s - 1) / s + 1 : span / s + 1;
      // the last window must start inside the input or its left padding
      if (ceil && (o - 1) * s >= n + pb) o--;
    } else {
      p.error = "auto_pad '" + autoPad + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID";
      return p;
    }
    p.pb.push(pb);
    p.pe.push(pe);
    p.out.push(o);
  }
  return p;
}

/** ConvTranspose geometry (pads are the output's). */
function planTransposed(attrs: Attrs, inn: Array<i32>, kern: Array<i32>): SpatialPlan {
  const p = new SpatialPlan();
  const r = inn.length;
  p.k = kern;
  p.s = intsAttr(attrs, "strides", r, 1, p);
  p.d = intsAttr(attrs, "dilations", r, 1, p);
  const adj = intsAttr(attrs, "output_padding", r, 0, p, 0);
  const pads = attrs.getInts("pads");
  checkPads(pads, r, p);
  if (p.error.length > 0) return p;
  const outShape = attrs.getInts("output_shape");
  const autoPad = attrs.getString("auto_pad", "NOTSET");
  for (let i = 0; i < r; i++) {
    const s = p.s[i];
    if (p.k[i] < 1) {
      p.error = "kernel_shape must be >= 1";
      return p;
    }
    const keff = effectiveKernel(p.k[i], p.d[i], p);
    if (keff < 0) return p;
    const full64 = <i64>s * (<i64>inn[i] - 1) + <i64>adj[i] + <i64>keff;
    if (full64 > GEOM_MAX * 4) {
      p.error = "output spatial size " + full64.toString() + " is too large";
      return p;
    }
    const full = <i32>full64;
    let pb: i32 = 0;
    let pe: i32 = 0;
    let o: i32 = 0;
    if (outShape != null || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      if (outShape != null) {
        if (outShape.length < r) {
          p.error = "output_shape " + outShape.toString() + " has fewer than " + r.toString() + " values";
          return p;
        }
        const want = outShape[outShape.length - r + i];
        if (want < 1 || want > GEOM_MAX) {
          p.error = "output_shape " + outShape.toString() + " has a value outside [1, " + GEOM_MAX.toString() + "]";
          return p;
        }
        o = <i32>want;
      } else {
        o = inn[i] * s;
      }
      let total = full - o;
      if (total < 0) total = 0;
      if (autoPad == "SAME_UPPER") { pb = total / 2; pe = total - pb; } else { pe = total / 2; pb = total - pe; }
    } else {
      if (pads != null && autoPad != "VALID") { pb = <i32>pads[i]; pe = <i32>pads[i + r]; }
      o = full - pb - pe;
    }
    if (o <= 0) {
      p.error = "output spatial size " + o.toString() + " is not positive";
      return p;
    }
    p.pb.push(pb);
    p.pe.push(pe);
    p.out.push(o);
  }
  return p;
}

function spatial(lens: Array<i32>): Array<i32> {
  return lens.slice(2);
}

/** Shared checks of conv-like ops' X and W; returns "" or an error. */
function checkConvInputs(x: Shape, w: Shape): string {
  if (x.rank() < 3 || x.rank() > 5) return "X must have 1 to 3 spatial dims, got " + x.toString();
  if (w.rank() != x.rank()) return "W " + w.toString() + " must have the rank of X " + x.toString();
  if (w.dtype != x.dtype) return "element types of X and W differ";
  return "";
}

function kernelOf(ctx_attrs: Attrs, w: Shape, plan: SpatialPlan): Array<i32> {
  const k = spatial(w.lens);
  const ks = ctx_attrs.getInts("kernel_shape");
  if (ks != null) {
    let same = ks.length == k.length;
    for (let i = 0; same && i < k.length; i++) if (<i32>ks[i] != k[i]) same = false;
    if (!same) plan.error = "kernel_shape does not match W " + w.toString();
  }
  return k;
}

/**
 * Conv's geometry for X and W: the kernel from W (checked against kernel_shape), strides,
 * dilations, pads and auto_pad. Shared with the quantized convs (math/qlinear.ts).
 */
export function convPlan(attrs: Attrs, x: Shape, w: Shape): SpatialPlan {
  const pre = new SpatialPlan();
  const k = kernelOf(attrs, w, pre);
  if (pre.error.length > 0) return pre;
  return planForward(attrs, spatial(x.lens), k, false);
}

class ConvOp extends Op {
  constructor() {
    super("Conv");
  }

  plan(attrs: Attrs, x: Shape, w: Shape): SpatialPlan {
    return convPlan(attrs, x, w);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs X and W are required");
    const x = ctx.input(0);
    const w = ctx.input(1);
    if (!floatType(x.dtype)) return ctx.failDtype(0);
    const e = checkConvInputs(x, w);
    if (e.length > 0) return ctx.fail(e);
    const group = <i32>ctx.attrs.getInt("group", 1);
    const C = x.lens[1];
    const M = w.lens[0];
    if (group < 1 || C % group != 0 || M % group != 0) {
      return ctx.fail("group " + group.toString() + " does not divide channels " + C.toString() + " and feature maps " +
        M.toString());
    }
    if (w.lens[1] * group != C) {
      return ctx.fail("X has " + C.toString() + " channels but W " + w.toString() + " expects " +
        (w.lens[1] * group).toString() + " (group " + group.toString() + ")");
    }
    if (ctx.hasInput(2)) {
      const b = ctx.input(2);
      if (b.dtype != x.dtype || b.rank() != 1 || b.lens[0] != M) return ctx.fail("B must be " + dtName(x) + "[" + M.toString() + "], got " + b.toString());
    }
    const p = this.plan(ctx.attrs, x, w);
    if (p.error.length > 0) return ctx.fail(p.error);
    for (let i = 0; i < p.out.length; i++) {
      if (p.out[i] <= 0) return ctx.fail("output spatial dims " + intsToString(p.out) + " are not positive");
    }
    const out = [x.lens[0], M];
    for (let i = 0; i < p.out.length; i++) out.push(p.out[i]);
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const w = ctx.input(1);
    const y = ctx.output(0);
    const p = this.plan(ctx.attrs, x.shape, w.shape);
    if (p.error.length > 0) return ctx.fail(p.error);
    const group = <i32>ctx.attrs.getInt("group", 1);
    const g = p.geom(x.shape.lens[0], x.shape.lens[1], w.shape.lens[0], group, spatial(x.shape.lens));
    if (y.elements() == 0) return true;
    const xv = new F32View(x);
    const wv = new F32View(w);
    const bv = new F32View(ctx.hasInput(2) ? ctx.input(2) : null);
    const yo = new F32Out(y);
    convForward(g, xv.ptr, wv.ptr, bv.ptr, yo.ptr);
    yo.finish();
    xv.release();
    wv.release();
    bv.release();
    return true;
  }
}

function dtName(s: Shape): string {
  const t = s.toString();
  return t.substring(0, t.indexOf("["));
}

class ConvTransposeOp extends Op {
  constructor() {
    super("ConvTranspose");
  }

  plan(attrs: Attrs, x: Shape, w: Shape): SpatialPlan {
    const pre = new SpatialPlan();
    const k = kernelOf(attrs, w, pre);
    if (pre.error.length > 0) return pre;
    return planTransposed(attrs, spatial(x.lens), k);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs X and W are required");
    const x = ctx.input(0);
    const w = ctx.input(1);
    if (!floatType(x.dtype)) return ctx.failDtype(0);
    const e = checkConvInputs(x, w);
    if (e.length > 0) return ctx.fail(e);
    const group = <i32>ctx.attrs.getInt("group", 1);
    const C = x.lens[1];
    if (group < 1 || C % group != 0) return ctx.fail("group " + group.toString() + " does not divide channels " + C.toString());
    if (w.lens[0] != C) return ctx.fail("X has " + C.toString() + " channels but W " + w.toString() + " expects " + w.lens[0].toString());
    const M = w.lens[1] * group;
    if (ctx.hasInput(2)) {
      const b = ctx.input(2);
      if (b.dtype != x.dtype || b.rank() != 1 || b.lens[0] != M) return ctx.fail("B must be " + dtName(x) + "[" + M.toString() + "], got " + b.toString());
    }
    const p = this.plan(ctx.attrs, x, w);
    if (p.error.length > 0) return ctx.fail(p.error);
    const out = [x.lens[0], M];
    for (let i = 0; i < p.out.length; i++) out.push(p.out[i]);
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const w = ctx.input(1);
    const y = ctx.output(0);
    const p = this.plan(ctx.attrs, x.shape, w.shape);
    if (p.error.length > 0) return ctx.fail(p.error);
    const group = <i32>ctx.attrs.getInt("group", 1);
    const g = p.geom(x.shape.lens[0], x.shape.lens[1], w.shape.lens[1] * group, group, spatial(x.shape.lens));
    if (y.elements() == 0) return true;
    const xv = new F32View(x);
    const wv = new F32View(w);
    const bv = new F32View(ctx.hasInput(2) ? ctx.input(2) : null);
    const yo = new F32Out(y);
    convTransposeForward(g, xv.ptr, wv.ptr, bv.ptr, yo.ptr);
    yo.finish();
    xv.release();
    wv.release();
    bv.release();
    return true;
  }
}

const POOL_MAX: i32 = 0;
const POOL_AVG: i32 = 1;
const POOL_LP: i32 = 2;

class PoolOp extends Op {
  kind: i32;
  constructor(name: string, kind: i32) {
    super(name);
    this.kind = kind;
  }

  plan(attrs: Attrs, x: Shape): SpatialPlan {
    const r = x.rank() - 2;
    const ks = attrs.getInts("kernel_shape");
    if (ks == null || ks.length != r) {
      const p = new SpatialPlan();
      p.error = "kernel_shape must have " + r.toString() + " values";
      return p;
    }
    const k = new Array<i32>(r);
    for (let i = 0; i < r; i++) {
      if (ks[i] < 1 || ks[i] > GEOM_MAX) {
        const p = new SpatialPlan();
        p.error = "kernel_shape " + ks.toString() + " has a value outside [1, " + GEOM_MAX.toString() + "]";
        return p;
      }
      k[i] = <i32>ks[i];
    }
    return planForward(attrs, spatial(x.lens), k, attrs.getInt("ceil_mode", 0) != 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input X is required");
    const x = ctx.input(0);
    const dt = x.dtype;
    if (!floatType(dt) && !(this.kind == POOL_MAX && (dt == DT_INT8 || dt == DT_UINT8))) return ctx.failDtype(0);
    if (x.rank() < 3 || x.rank() > 5) return ctx.fail("X must have 1 to 3 spatial dims, got " + x.toString());
    const p = this.plan(ctx.attrs, x);
    if (p.error.length > 0) return ctx.fail(p.error);
    for (let i = 0; i < p.out.length; i++) {
      if (p.out[i] <= 0) return ctx.fail("output spatial dims " + intsToString(p.out) + " are not positive");
    }
    const out = [x.lens[0], x.lens[1]];
    for (let i = 0; i < p.out.length; i++) out.push(p.out[i]);
    ctx.out(Shape.standard(dt, out));
    if (this.kind == POOL_MAX && ctx.numOutputs > 1) ctx.out(Shape.standard(DT_INT64, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const p = this.plan(ctx.attrs, x.shape);
    if (p.error.length > 0) return ctx.fail(p.error);
    const C = x.shape.lens[1];
    const g = p.geom(x.shape.lens[0], C, C, 1, spatial(x.shape.lens));
    if (y.elements() == 0) return true;
    const xv = new F32View(x);
    const yo = new F32Out(y);
    if (this.kind == POOL_MAX) {
      const ind: usize = ctx.outputs.length > 1 ? ctx.output(1).ptr : 0;
      maxPool(g, xv.ptr, yo.ptr, ind, <i32>ctx.attrs.getInt("storage_order", 0));
    } else if (this.kind == POOL_AVG) {
      avgLpPool(g, xv.ptr, yo.ptr, ctx.attrs.getInt("count_include_pad", 0) != 0, 0, 0);
    } else {
      avgLpPool(g, xv.ptr, yo.ptr, false, 1, <f32>ctx.attrs.getInt("p", 2));
    }
    yo.finish();
    xv.release();
    return true;
  }
}

/**
 * MaxUnpool: scatters X into a zero tensor at MaxPool's flat indices (batch and channel
 * included) of the unpooled shape, whose spatial dims are (in - 1) * stride + kernel - pads. A
 * constant output_shape input at least that large pads each dim at its end (as the ONNX
 * reference does).
 */
class MaxUnpoolOp extends Op {
  constructor() {
    super("MaxUnpool", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs X and I are required");
    const x = ctx.input(0), ind = ctx.input(1);
    if (x.rank() < 3) return ctx.fail("X must have rank 3 or more ([N, C, spatial...]), is " + x.toString());
    if (ind.dtype != DT_INT64) return ctx.failDtype(1);
    if (!ind.sameLens(x)) return ctx.fail("I " + ind.toString() + " must have X's dims " + x.toString());
    const r = x.rank() - 2;
    const ks = ctx.attrs.getInts("kernel_shape");
    if (ks == null) return ctx.fail("attribute kernel_shape is required");
    const p = new SpatialPlan();
    if (ks.length != r) return ctx.fail("kernel_shape has " + ks.length.toString() + " values, expected " + r.toString());
    const k = intsAttr(ctx.attrs, "kernel_shape", r, 1, p);
    const s = intsAttr(ctx.attrs, "strides", r, 1, p);
    const pads = ctx.attrs.getInts("pads");
    checkPads(pads, r, p);
    if (p.error.length > 0) return ctx.fail(p.error);
    const out = [x.lens[0], x.lens[1]];
    for (let i = 0; i < r; i++) {
      const pad = pads == null ? 0 : <i64>(pads[i] + pads[i + r]);
      const d = (<i64>x.lens[i + 2] - 1) * <i64>s[i] + <i64>k[i] - pad;
      if (d < 0 || d > GEOM_MAX) return ctx.fail("output spatial dim " + i.toString() + " would be " + d.toString());
      out.push(<i32>d);
    }
    if (ctx.hasInput(2)) {
      const os = ctx.constInts(2);
      if (os == null) return ctx.needConstant(2, "output_shape");
      if (os.length != x.rank()) {
        return ctx.fail("output_shape has " + os.length.toString() + " values, X has rank " + x.rank().toString());
      }
      for (let i = 0; i < os.length; i++) {
        if (i < 2 && os[i] != <i64>x.lens[i]) {
          return ctx.fail("output_shape " + os.toString() + " must keep X's batch and channel dims");
        }
        if (i >= 2 && (os[i] < <i64>out[i] || os[i] > GEOM_MAX)) {
          return ctx.fail("output_shape " + os.toString() + " is smaller than the unpooled dims " + intsToString(out));
        }
        out[i] = <i32>os[i];
      }
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), ind = ctx.input(1), y = ctx.output(0);
    const es = <usize>dtypeSize(x.shape.dtype);
    const r = x.shape.rank();
    // the indices address the unpooled shape; output_shape (when larger) pads it at the end of each dim
    const inf = y.shape.lens.slice(0);
    const k = ctx.attrs.getInts("kernel_shape")!;
    const s = ctx.attrs.getInts("strides");
    const pads = ctx.attrs.getInts("pads");
    let same = true;
    for (let i = 2; i < r; i++) {
      const pad = pads == null ? 0 : <i32>(pads[i - 2] + pads[i - 2 + r - 2]);
      inf[i] = (x.shape.lens[i] - 1) * (s == null ? 1 : <i32>s[i - 2]) + <i32>k[i - 2] - pad;
      if (inf[i] != y.shape.lens[i]) same = false;
    }
    let total: i64 = 1;
    for (let i = 0; i < r; i++) total *= <i64>inf[i];
    memory.fill(y.ptr, 0, <usize>y.shape.bytes());
    const ystr = y.shape.strides;
    const n = x.elements();
    for (let i = 0; i < n; i++) {
      const j = load<i64>(ind.ptr + (<usize>i << 3));
      if (j < 0 || j >= total) {
        return ctx.fail("index " + j.toString() + " at position " + i.toString() + " is outside the unpooled tensor's " +
          total.toString() + " elements");
      }
      let o: i64 = j;
      if (!same) {
        o = 0;
        let rest = j;
        for (let d = r - 1; d >= 0; d--) {
          const l = <i64>inf[d];
          o += (rest % l) * <i64>ystr[d];
          rest /= l;
        }
      }
      memory.copy(y.ptr + <usize>o * es, x.ptr + <usize>i * es, es);
    }
    return true;
  }
}

class GlobalPoolOp extends Op {
  kind: i32;
  constructor(name: string, kind: i32) {
    super(name);
    this.kind = kind;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input X is required");
    const x = ctx.input(0);
    if (!floatType(x.dtype)) return ctx.failDtype(0);
    if (x.rank() < 2) return ctx.fail("X must have rank >= 2, got " + x.toString());
    const out = [x.lens[0], x.lens[1]];
    for (let i = 2; i < x.rank(); i++) out.push(1);
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const planes = x.shape.lens[0] * x.shape.lens[1];
    if (planes == 0) return true;
    const vol = x.elements() / planes;
    const xv = new F32View(x);
    const yo = new F32Out(y);
    const mode = this.kind == POOL_AVG ? 0 : (this.kind == POOL_MAX ? 1 : 2);
    globalPool(planes, vol, xv.ptr, yo.ptr, mode, <f32>ctx.attrs.getInt("p", 2));
    yo.finish();
    xv.release();
    return true;
  }
}

export function registerConv(): void {
  registerOp(new ConvOp());
  registerOp(new ConvTransposeOp());
  registerOp(new PoolOp("MaxPool", POOL_MAX));
  registerOp(new PoolOp("AveragePool", POOL_AVG));
  registerOp(new PoolOp("LpPool", POOL_LP));
  registerOp(new GlobalPoolOp("GlobalAveragePool", POOL_AVG));
  registerOp(new GlobalPoolOp("GlobalMaxPool", POOL_MAX));
  registerOp(new GlobalPoolOp("GlobalLpPool", POOL_LP));
  registerOp(new MaxUnpoolOp());
}
