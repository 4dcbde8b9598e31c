// Resize (opset 10+) and the deprecated Upsample (7-9), through the same code: one 1-D pass
// per resized axis, innermost axis first (the order of the ONNX reference, which matters only
// for tf_crop_and_resize extrapolation). nearest moves raw elements (every dtype); linear and
// cubic interpolate in f64.
import { Attrs } from "../../ir/attrs";
import { isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { copyEl, fillEl, listStr, movable, normAxis, product } from "./util";

const MODE_NEAREST: i32 = 0;
const MODE_LINEAR: i32 = 1;
const MODE_CUBIC: i32 = 2;

const CT_HALF_PIXEL: i32 = 0;
const CT_ASYMMETRIC: i32 = 1;
const CT_ALIGN_CORNERS: i32 = 2;
const CT_PYTORCH_HALF_PIXEL: i32 = 3;
const CT_TF_HALF_PIXEL_FOR_NN: i32 = 4;
const CT_TF_CROP_AND_RESIZE: i32 = 5;
const CT_HALF_PIXEL_SYMMETRIC: i32 = 6;

const NM_ROUND_PREFER_FLOOR: i32 = 0;
const NM_ROUND_PREFER_CEIL: i32 = 1;
const NM_FLOOR: i32 = 2;
const NM_CEIL: i32 = 3;
/** Resize-10 and Upsample: floor, or ceil when downsampling (onnxruntime's "simple"). */
const NM_SIMPLE: i32 = 4;

class ResizeMode {
  mode: i32 = MODE_NEAREST;
  coord: i32 = CT_HALF_PIXEL;
  nearest: i32 = NM_ROUND_PREFER_FLOOR;
  cubicA: f64 = -0.75;
  exclude: bool = false;
  extrap: f64 = 0;
  antialias: bool = false;
  err: string = "";
}

function resizeMode(upsample: bool, attrs: Attrs, opset: i32): ResizeMode {
  const m = new ResizeMode();
  const mode = attrs.getString("mode", "nearest");
  if (mode == "nearest") m.mode = MODE_NEAREST;
  else if (mode == "linear" || mode == "bilinear") m.mode = MODE_LINEAR;
  else if (mode == "cubic" && !upsample) m.mode = MODE_CUBIC;
  else m.err = "mode '" + mode + "' is not supported";
  if (upsample || opset < 11) {
    m.coord = CT_ASYMMETRIC;
    m.nearest = NM_SIMPLE;
    return m;
  }
  const ct = attrs.getString("coordinate_transformation_mode", "half_pixel");
  if (ct == "half_pixel") m.coord = CT_HALF_PIXEL;
  else if (ct == "asymmetric") m.coord = CT_ASYMMETRIC;
  else if (ct == "align_corners") m.coord = CT_ALIGN_CORNERS;
  else if (ct == "pytorch_half_pixel") m.coord = CT_PYTORCH_HALF_PIXEL;
  else if (ct == "tf_half_pixel_for_nn") m.coord = CT_TF_HALF_PIXEL_FOR_NN;
  else if (ct == "tf_crop_and_resize") m.coord = CT_TF_CROP_AND_RESIZE;
  else if (ct == "half_pixel_symmetric") m.coord = CT_HALF_PIXEL_SYMMETRIC;
  else m.err = "coordinate_transformation_mode '" + ct + "' is not supported";
  const nm = attrs.getString("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_floor") m.nearest = NM_ROUND_PREFER_FLOOR;
  else if (nm == "round_prefer_ceil") m.nearest = NM_ROUND_PREFER_CEIL;
  else if (nm == "floor") m.nearest = NM_FLOOR;
  else if (nm == "ceil") m.nearest = NM_CEIL;
  else m.err = "nearest_mode '" + nm + "' is not supported";
  m.cubicA = <f64>attrs.getFloat("cubic_coeff_a", -0.75);
  m.exclude = attrs.getInt("exclude_outside", 0) != 0;
  m.extrap = <f64>attrs.getFloat("extrapolation_value", 0);
  m.antialias = attrs.getInt("antialias", 0) != 0;
  return m;
}

/** Output lens, per-dim scales and per-dim roi ([starts..., ends...]). */
class ResizeSpec {
  out: Array<i32>;
  scales: Array<f64>;
  roi: Array<f64>;
  err: string = "";

  constructor(lens: Array<i32>) {
    const r = lens.length;
    this.out = lens.slice(0);
    this.scales = new Array<f64>(r);
    this.roi = new Array<f64>(2 * r);
    for (let i = 0; i < r; i++) {
      this.scales[i] = 1;
      this.roi[i] = 0;
      this.roi[i + r] = 1;
    }
  }
}

/** The longest output axis Resize computes (the core is wasm32: 2^30 elements of anything is past its memory). */
const MAX_LEN: i64 = 1 << 30;

function resizeSpec(lens: Array<i32>, scales: Array<f64> | null, sizes: Array<i64> | null, roi: Array<f64> | null,
  axes: Array<i64> | null, policy: string, crop: bool): ResizeSpec {
  const r = lens.length;
  const sp = new ResizeSpec(lens);
  const k = axes == null ? r : axes.length;
  const ax = new Array<i32>(k);
  for (let i = 0; i < k; i++) {
    ax[i] = axes == null ? i : normAxis(axes[i], r);
    if (ax[i] < 0) {
      sp.err = "axes " + listStr(changetype<Array<i64>>(axes)) + " are out of range for rank " + r.toString();
      return sp;
    }
  }
  if (roi != null && roi.length > 0) {
    if (roi.length != 2 * k) {
      sp.err = "roi has " + roi.length.toString() + " values, needs " + (2 * k).toString();
      return sp;
    }
    for (let i = 0; i < k; i++) {
      sp.roi[ax[i]] = roi[i];
      sp.roi[ax[i] + r] = roi[i + k];
    }
  }
  if (sizes != null) {
    if (sizes.length != k) {
      sp.err = "sizes " + listStr(sizes) + " has " + sizes.length.toString() + " values, needs " + k.toString();
      return sp;
    }
    if (policy == "stretch") {
      for (let i = 0; i < k; i++) {
        if (sizes[i] < 0 || sizes[i] > MAX_LEN) {
          sp.err = "sizes " + listStr(sizes) + " has a value outside [0, " + MAX_LEN.toString() + "]";
          return sp;
        }
        sp.out[ax[i]] = <i32>sizes[i];
        sp.scales[ax[i]] = lens[ax[i]] == 0 ? 1 : <f64>sizes[i] / <f64>lens[ax[i]];
      }
    } else {
      const larger = policy == "not_smaller";
      if (!larger && policy != "not_larger") {
        sp.err = "keep_aspect_ratio_policy '" + policy + "' is not one of stretch, not_larger, not_smaller";
        return sp;
      }
      let s: f64 = larger ? 0 : Infinity;
      for (let i = 0; i < k; i++) {
        const v = <f64>sizes[i] / <f64>lens[ax[i]];
        s = larger ? (v > s ? v : s) : (v < s ? v : s);
      }
      for (let i = 0; i < k; i++) {
        sp.scales[ax[i]] = s;
        const len = Math.floor(s * <f64>lens[ax[i]] + 0.5);
        if (!(len >= 0 && len <= <f64>MAX_LEN)) {
          sp.err = "sizes " + listStr(sizes) + " give an output length of " + len.toString() + " on axis " +
            ax[i].toString();
          return sp;
        }
        sp.out[ax[i]] = <i32>len;
      }
    }
    return sp;
  }
  if (scales == null) {
    sp.err = "one of scales and sizes is required";
    return sp;
  }
  if (scales.length != k) {
    sp.err = "scales has " + scales.length.toString() + " values, needs " + k.toString();
    return sp;
  }
  for (let i = 0; i < k; i++) {
    const a = ax[i];
    const s = scales[i];
    if (!(s > 0)) {
      sp.err = "scale " + s.toString() + " on axis " + a.toString() + " must be positive";
      return sp;
    }
    sp.scales[a] = s;
    let len = <f64>lens[a] * s;
    if (crop) len *= sp.roi[a + r] - sp.roi[a];
    // float32 products, as the scales are float32 (2.4000001 -> 2)
    const out = Math.floor(<f64><f32>len);
    if (!(out >= 0 && out <= <f64>MAX_LEN)) {
      sp.err = "scale " + s.toString() + " gives an output length of " + out.toString() + " on axis " + a.toString();
      return sp;
    }
    sp.out[a] = <i32>out;
  }
  return sp;
}

/** A float input's values, or null when absent or empty. */
function floatsOf(t: Tensor | null): Array<f64> | null {
  if (t == null || t.elements() == 0) return null;
  const n = t.elements();
  const a = new Array<f64>(n);
  for (let i = 0; i < n; i++) a[i] = t.getAsF64(i);
  return a;
}

function intsOf(t: Tensor | null): Array<i64> | null {
  if (t == null || t.elements() == 0) return null;
  return t.toI64Array();
}

/** Input positions of roi, scales and sizes for this op and opset (-1: none). */
class ResizeInputs {
  roi: i32 = -1;
  scales: i32 = -1;
  sizes: i32 = -1;
}

function resizeInputs(upsample: bool, opset: i32): ResizeInputs {
  const p = new ResizeInputs();
  if (upsample) {
    if (opset >= 9) p.scales = 1;
  } else if (opset < 11) {
    p.scales = 1;
  } else {
    p.roi = 1;
    p.scales = 2;
    p.sizes = 3;
  }
  return p;
}

function attrScales(attrs: Attrs): Array<f64> | null {
  const f = attrs.getFloats("scales");
  if (f == null) return null;
  const a = new Array<f64>(f.length);
  for (let i = 0; i < f.length; i++) a[i] = <f64>f[i];
  return a;
}

// ---- 1-D taps ----

function coordOf(ct: i32, x: f64, s: f64, Lin: i32, Lout: i32, r0: f64, r1: f64): f64 {
  switch (ct) {
    case CT_ASYMMETRIC: return x / s;
    // the ONNX reference divides by the float output width (scale * Lin), not Lout
    case CT_ALIGN_CORNERS: return Lout == 1 ? 0 : x * <f64>(Lin - 1) / (s * <f64>Lin - 1);
    case CT_PYTORCH_HALF_PIXEL: return Lout > 1 ? (x + 0.5) / s - 0.5 : 0;
    case CT_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / s;
    case CT_TF_CROP_AND_RESIZE:
      return Lout > 1 ? r0 * <f64>(Lin - 1) + x * (r1 - r0) * <f64>(Lin - 1) / (s * <f64>Lin - 1) : 0.5 * (r0 + r1) * <f64>(Lin - 1);
    case CT_HALF_PIXEL_SYMMETRIC: {
      const adj = <f64>Lout / (s * <f64>Lin);
      const center = <f64>Lin / 2;
      return center * (1 - adj) + (x + 0.5) / s - 0.5;
    }
    default: return (x + 0.5) / s - 0.5;
  }
}

function clampI(i: i32, L: i32): i32 {
  return i < 0 ? 0 : (i >= L ? L - 1 : i);
}

/** Taps of one axis: T per output index (index, weight), and which outputs extrapolate. */
class Taps {
  T: i32;
  idx: StaticArray<i32>;
  w: StaticArray<f64>;
  extrap: StaticArray<bool>;
  identity: bool = true;

  constructor(T: i32, Lout: i32) {
    this.T = T;
    this.idx = new StaticArray<i32>(T * Lout);
    this.w = new StaticArray<f64>(T * Lout);
    this.extrap = new StaticArray<bool>(Lout);
  }
}

function cubicCoeff(t: f64, A: f64): f64 {
  const x = Math.abs(t);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

/**
 * Antialiased linear/cubic taps when downsampling (opset 18 `antialias`): the kernel is
 * stretched by 1/scale, evaluated at (i - x) * scale over the n nearest inputs, normalised.
 */
function antialiasTaps(m: ResizeMode, Lin: i32, Lout: i32, s: f64, r0: f64, r1: f64): Taps {
  const start = m.mode == MODE_LINEAR ? <i32>Math.floor(-1 / s) + 1 : <i32>Math.floor(-2 / s) + 1;
  const T = 2 - 2 * start;
  const t = new Taps(T, Lout);
  t.identity = false;
  for (let x = 0; x < Lout; x++) {
    const xo = coordOf(m.coord, <f64>x, s, Lin, Lout, r0, r1);
    const b = x * T;
    if (m.coord == CT_TF_CROP_AND_RESIZE && (xo < 0 || xo > <f64>(Lin - 1))) {
      t.extrap[x] = true;
      continue;
    }
    const fi = <i32>Math.floor(xo);
    let sum: f64 = 0;
    for (let j = 0; j < T; j++) {
      const src = fi - T / 2 + 1 + j;
      const arg = (<f64>src - xo) * s;
      let w: f64 = m.mode == MODE_LINEAR ? max(0, 1 - Math.abs(arg)) : cubicCoeff(arg, m.cubicA);
      if (m.exclude && (src < 0 || src >= Lin)) w = 0;
      t.idx[b + j] = clampI(src, Lin);
      t.w[b + j] = w;
      sum += w;
    }
    if (sum != 0) for (let j = 0; j < T; j++) t.w[b + j] = t.w[b + j] / sum;
  }
  return t;
}

function makeTaps(m: ResizeMode, Lin: i32, Lout: i32, s: f64, r0: f64, r1: f64): Taps {
  if (m.antialias && m.mode != MODE_NEAREST && s < 1) return antialiasTaps(m, Lin, Lout, s, r0, r1);
  const T = m.mode == MODE_NEAREST ? 1 : (m.mode == MODE_LINEAR ? 2 : 4);
  const t = new Taps(T, Lout);
  for (let x = 0; x < Lout; x++) {
    const xo = coordOf(m.coord, <f64>x, s, Lin, Lout, r0, r1);
    const b = x * T;
    if (m.coord == CT_TF_CROP_AND_RESIZE && (xo < 0 || xo > <f64>(Lin - 1))) {
      t.extrap[x] = true;
      t.identity = false;
      continue;
    }
    const f = Math.floor(xo);
    const fi = <i32>f;
    const ratio = xo - f;
    if (m.mode == MODE_NEAREST) {
      let i: i32;
      switch (m.nearest) {
        case NM_ROUND_PREFER_CEIL: i = ratio < 0.5 ? fi : fi + 1; break;
        case NM_FLOOR: i = fi; break;
        case NM_CEIL: i = ratio == 0 ? fi : fi + 1; break;
        case NM_SIMPLE: i = s < 1 ? <i32>Math.ceil(xo) : fi; break;
        default: i = ratio <= 0.5 ? fi : fi + 1;
      }
      i = clampI(i, Lin);
      t.idx[b] = i;
      t.w[b] = 1;
      if (i != x) t.identity = false;
    } else if (m.mode == MODE_LINEAR) {
      t.idx[b] = clampI(fi, Lin);
      t.w[b] = 1 - ratio;
      t.idx[b + 1] = clampI(fi + 1, Lin);
      t.w[b + 1] = ratio;
      if (ratio != 0 || fi != x) t.identity = false;
    } else {
      let sum: f64 = 0;
      for (let j = 0; j < 4; j++) {
        const src = fi - 1 + j;
        let w = cubicCoeff(ratio + 1 - <f64>j, m.cubicA);
        if (m.exclude && (src < 0 || src >= Lin)) w = 0;
        t.idx[b + j] = clampI(src, Lin);
        t.w[b + j] = w;
        sum += w;
      }
      if (m.exclude && sum != 0) for (let j = 0; j < 4; j++) t.w[b + j] = t.w[b + j] / sum;
      if (ratio != 0 || fi != x) t.identity = false;
    }
  }
  if (Lin != Lout) t.identity = false;
  return t;
}

// ---- the op ----

class ResizeOp extends Op {
  upsample: bool;

  constructor(name: string, upsample: bool) {
    super(name);
    this.upsample = upsample;
  }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const m = resizeMode(this.upsample, ctx.attrs, ctx.opset);
    if (m.err.length > 0) return ctx.fail(m.err);
    if (m.mode != MODE_NEAREST && !isFloat(x.dtype)) return ctx.failDtype(0);
    const p = resizeInputs(this.upsample, ctx.opset);
    let scales: Array<f64> | null = null;
    let sizes: Array<i64> | null = null;
    let roi: Array<f64> | null = null;
    if (p.sizes >= 0 && ctx.hasInput(p.sizes)) {
      if (ctx.constant(p.sizes) == null) return ctx.needConstant(p.sizes, "sizes");
      sizes = intsOf(ctx.constant(p.sizes));
    }
    if (sizes == null && p.scales >= 0 && ctx.hasInput(p.scales)) {
      if (ctx.constant(p.scales) == null) return ctx.needConstant(p.scales, "scales");
      scales = floatsOf(ctx.constant(p.scales));
    }
    if (p.scales < 0) scales = attrScales(ctx.attrs);
    const crop = m.coord == CT_TF_CROP_AND_RESIZE;
    if (crop && p.roi >= 0 && ctx.hasInput(p.roi)) {
      if (ctx.constant(p.roi) == null) return ctx.needConstant(p.roi, "roi");
      roi = floatsOf(ctx.constant(p.roi));
    }
    const sp = resizeSpec(x.lens, scales, sizes, roi, ctx.attrs.getInts("axes"),
      ctx.attrs.getString("keep_aspect_ratio_policy", "stretch"), crop);
    if (sp.err.length > 0) return ctx.fail(sp.err);
    ctx.out(Shape.standard(x.dtype, sp.out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const m = resizeMode(this.upsample, ctx.attrs, ctx.opset);
    const p = resizeInputs(this.upsample, ctx.opset);
    const sizes = p.sizes >= 0 && ctx.hasInput(p.sizes) ? intsOf(ctx.input(p.sizes)) : null;
    let scales = p.scales >= 0 ? (ctx.hasInput(p.scales) ? floatsOf(ctx.input(p.scales)) : null) : attrScales(ctx.attrs);
    const roi = p.roi >= 0 && ctx.hasInput(p.roi) ? floatsOf(ctx.input(p.roi)) : null;
    const crop = m.coord == CT_TF_CROP_AND_RESIZE;
    const sp = resizeSpec(x.shape.lens, scales, sizes, roi, ctx.attrs.getInts("axes"),
      ctx.attrs.getString("keep_aspect_ratio_policy", "stretch"), crop);
    if (sp.err.length > 0) return ctx.fail(sp.err);
    const r = x.shape.rank();
    const es = x.shape.elementSize();
    if (y.elements() == 0) return true;
    const cur = x.shape.lens.slice(0);
    if (m.mode == MODE_NEAREST) {
      // raw elements; extrapolated outputs get the extrapolation value in the output type
      const ev = new Tensor(Shape.scalar(x.shape.dtype), heap.alloc(8));
      ev.setFromF64(0, m.extrap);
      let src = x.ptr;
      let owned = false;
      for (let a = r - 1; a >= 0; a--) {
        const Lin = cur[a], Lout = sp.out[a];
        const t = makeTaps(m, Lin, Lout, sp.scales[a], sp.roi[a], sp.roi[a + r]);
        if (t.identity) continue;
        const outer = product(cur, 0, a);
        const innerB = <usize>(product(cur, a + 1, r) * es);
        const dst = heap.alloc(<usize>outer * <usize>Lout * innerB + 1);
        let d = dst;
        for (let o = 0; o < outer; o++) {
          const sb = src + <usize>o * <usize>Lin * innerB;
          for (let j = 0; j < Lout; j++) {
            if (unchecked(t.extrap[j])) fillEl(d, ev.ptr, es, <i32>(innerB / <usize>es));
            else if (innerB == <usize>es) copyEl(d, sb + <usize>unchecked(t.idx[j]) * innerB, es);
            else memory.copy(d, sb + <usize>unchecked(t.idx[j]) * innerB, innerB);
            d += innerB;
          }
        }
        if (owned) heap.free(src);
        src = dst;
        owned = true;
        cur[a] = Lout;
      }
      memory.copy(y.ptr, src, <usize>y.shape.bytes());
      if (owned) heap.free(src);
      heap.free(ev.ptr);
      return true;
    }
    // linear / cubic in f64
    const n0 = x.elements();
    let src = heap.alloc(<usize>n0 * 8 + 8);
    if (x.shape.dtype == 1) {
      for (let i = 0; i < n0; i++) store<f64>(src + (<usize>i << 3), <f64>load<f32>(x.ptr + (<usize>i << 2)));
    } else {
      for (let i = 0; i < n0; i++) store<f64>(src + (<usize>i << 3), x.getAsF64(i));
    }
    for (let a = r - 1; a >= 0; a--) {
      const Lin = cur[a], Lout = sp.out[a];
      const t = makeTaps(m, Lin, Lout, sp.scales[a], sp.roi[a], sp.roi[a + r]);
      if (t.identity) continue;
      const outer = product(cur, 0, a);
      const inner = product(cur, a + 1, r);
      const total = <usize>outer * <usize>Lout * <usize>inner;
      const dst = heap.alloc(total * 8 + 8);
      memory.fill(dst, 0, total * 8);
      const T = t.T;
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < Lout; j++) {
          const db = dst + ((<usize>o * <usize>Lout + <usize>j) * <usize>inner << 3);
          if (unchecked(t.extrap[j])) {
            for (let i = 0; i < inner; i++) store<f64>(db + (<usize>i << 3), m.extrap);
            continue;
          }
          for (let k = 0; k < T; k++) {
            const w = unchecked(t.w[j * T + k]);
            if (w == 0) continue;
            const sb = src + ((<usize>o * <usize>Lin + <usize>unchecked(t.idx[j * T + k])) * <usize>inner << 3);
            for (let i = 0; i < inner; i++) {
              const q = <usize>i << 3;
              store<f64>(db + q, load<f64>(db + q) + w * load<f64>(sb + q));
            }
          }
        }
      }
      heap.free(src);
      src = dst;
      cur[a] = Lout;
    }
    const n = y.elements();
    if (y.shape.dtype == 1) {
      for (let i = 0; i < n; i++) store<f32>(y.ptr + (<usize>i << 2), <f32>load<f64>(src + (<usize>i << 3)));
    } else {
      for (let i = 0; i < n; i++) y.setFromF64(i, load<f64>(src + (<usize>i << 3)));
    }
    heap.free(src);
    scales = null;
    return true;
  }
}

export function registerResize(): void {
  registerOp(new ResizeOp("Resize", false));
  registerOp(new ResizeOp("Upsample", true));
}
