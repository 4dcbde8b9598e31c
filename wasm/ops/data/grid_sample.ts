// GridSample (opset 16, 20) on 4-D inputs: X [N, C, H, W] sampled at grid [N, Hout, Wout, 2]
// ((x, y) normalized to [-1, 1]) -> Y [N, C, Hout, Wout]. Modes bilinear/linear, nearest,
// bicubic/cubic; padding zeros, border, reflection; align_corners. The arithmetic follows
// onnxruntime's CPU kernel (denormalize, reflect by the near border, Keys cubic with a = -0.75,
// nearest by round-half-to-even), in f64.
import { dtypeSize, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { loadF64, storeF64 } from "../../kernels/eltwise";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";

const GS_LINEAR: i32 = 0;
const GS_NEAREST: i32 = 1;
const GS_CUBIC: i32 = 2;
const PAD_ZEROS: i32 = 0;
const PAD_BORDER: i32 = 1;
const PAD_REFLECTION: i32 = 2;

function modeOf(s: string): i32 {
  if (s == "bilinear" || s == "linear") return GS_LINEAR;
  if (s == "nearest") return GS_NEAREST;
  if (s == "bicubic" || s == "cubic") return GS_CUBIC;
  return -1;
}

function padOf(s: string): i32 {
  if (s == "zeros") return PAD_ZEROS;
  if (s == "border") return PAD_BORDER;
  if (s == "reflection") return PAD_REFLECTION;
  return -1;
}

/** Reflects x by the near border until it lies in [lo, hi]. */
function reflect(x: f64, lo: f64, hi: f64): f64 {
  const range = hi - lo;
  if (x < lo) {
    const d = lo - x;
    const n = <i64>Math.floor(d / range);
    const r = d - <f64>n * range;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const d = x - hi;
    const n = <i64>Math.floor(d / range);
    const r = d - <f64>n * range;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

/** Sampling state of one (n, c) image. */
class Sampler {
  ptr: usize = 0;
  dt: i32 = 0;
  sz: usize = 0;
  h: i64 = 0;
  w: i64 = 0;
  pad: i32 = 0;
  xmin: f64 = 0;
  xmax: f64 = 0;
  ymin: f64 = 0;
  ymax: f64 = 0;

  at(r0: i64, c0: i64): f64 {
    let r = r0, c = c0;
    if (this.pad == PAD_ZEROS) {
      if (c < 0 || c >= this.w || r < 0 || r >= this.h) return 0;
    } else if (this.pad == PAD_BORDER) {
      c = c < 0 ? 0 : c >= this.w ? this.w - 1 : c;
      r = r < 0 ? 0 : r >= this.h ? this.h - 1 : r;
    } else {
      c = <i64>reflect(<f64>c, this.xmin, this.xmax);
      r = <i64>reflect(<f64>r, this.ymin, this.ymax);
      // a reflected index can still fall out of [0, size) for size-1 axes without align_corners
      c = c < 0 ? 0 : c >= this.w ? this.w - 1 : c;
      r = r < 0 ? 0 : r >= this.h ? this.h - 1 : r;
    }
    return loadF64(this.dt, this.ptr + <usize>(r * this.w + c) * this.sz);
  }
}

function cubicCoeffs(t: f64, k: StaticArray<f64>): void {
  const a: f64 = -0.75;
  const x = Math.abs(t);
  unchecked(k[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a);
  unchecked(k[1] = ((a + 2) * x - (a + 3)) * x * x + 1);
  unchecked(k[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1);
  unchecked(k[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a);
}

class GridSampleOp extends Op {
  constructor() {
    super("GridSample", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs X and grid are required");
    const x = ctx.input(0), g = ctx.input(1);
    if (!isFloat(x.dtype)) return ctx.failDtype(0);
    if (!isFloat(g.dtype)) return ctx.failDtype(1);
    if (x.rank() != 4) {
      return ctx.fail("kiln supports 4-D X [N,C,H,W] only, got " + x.toString());
    }
    if (g.rank() != 4 || g.lens[0] != x.lens[0] || g.lens[3] != 2) {
      return ctx.fail("grid must be [N,Hout,Wout,2] with N = " + x.lens[0].toString() + ", got " + g.toString());
    }
    const mode = ctx.attrs.getString("mode", ctx.opset >= 20 ? "linear" : "bilinear");
    if (modeOf(mode) < 0) return ctx.fail("unknown mode '" + mode + "'");
    const pad = ctx.attrs.getString("padding_mode", "zeros");
    if (padOf(pad) < 0) return ctx.fail("unknown padding_mode '" + pad + "'");
    const out = new Array<i32>(4);
    out[0] = x.lens[0];
    out[1] = x.lens[1];
    out[2] = g.lens[1];
    out[3] = g.lens[2];
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), g = ctx.input(1), o = ctx.output(0);
    const mode = modeOf(ctx.attrs.getString("mode", ctx.opset >= 20 ? "linear" : "bilinear"));
    const align = ctx.attrs.getInt("align_corners", 0) != 0;
    const s = new Sampler();
    s.dt = x.shape.dtype;
    s.sz = <usize>dtypeSize(s.dt);
    s.pad = padOf(ctx.attrs.getString("padding_mode", "zeros"));
    const nb = x.shape.lens[0], nc = x.shape.lens[1];
    const h = x.shape.lens[2], w = x.shape.lens[3];
    const ho = g.shape.lens[1], wo = g.shape.lens[2];
    s.h = h;
    s.w = w;
    s.xmin = align ? 0 : -0.5;
    s.xmax = align ? <f64>(w - 1) : <f64>w - 0.5;
    s.ymin = align ? 0 : -0.5;
    s.ymax = align ? <f64>(h - 1) : <f64>h - 0.5;
    const gdt = g.shape.dtype, gsz = <usize>dtypeSize(gdt);
    const odt = o.shape.dtype, osz = <usize>dtypeSize(odt);
    const k = new StaticArray<f64>(4);
    const v = new StaticArray<f64>(4);
    const plane = <usize>h * <usize>w;
    const oplane = <usize>ho * <usize>wo;
    for (let n = 0; n < nb; n++) {
      for (let c = 0; c < nc; c++) {
        s.ptr = x.ptr + ((<usize>n * <usize>nc + <usize>c) * plane) * s.sz;
        const obase = o.ptr + ((<usize>n * <usize>nc + <usize>c) * oplane) * osz;
        for (let p: usize = 0; p < oplane; p++) {
          const gp = g.ptr + ((<usize>n * oplane + p) * 2) * gsz;
          const nx = loadF64(gdt, gp), ny = loadF64(gdt, gp + gsz);
          let fx = align ? (nx + 1) / 2 * <f64>(w - 1) : ((nx + 1) * <f64>w - 1) / 2;
          let fy = align ? (ny + 1) / 2 * <f64>(h - 1) : ((ny + 1) * <f64>h - 1) / 2;
          if (mode == GS_NEAREST) {
            fx = nearest<f64>(fx); // round half to even, as std::nearbyint
            fy = nearest<f64>(fy);
          }
          if (fx < s.xmin || fx > s.xmax || fy < s.ymin || fy > s.ymax) {
            // border: clamp the point (linear, nearest); cubic keeps it and clamps only the 4x4
            // taps, as onnxruntime and the ONNX reference do
            if (s.pad == PAD_BORDER && mode != GS_CUBIC) {
              fx = Math.min(Math.max(fx, 0), <f64>(w - 1));
              fy = Math.min(Math.max(fy, 0), <f64>(h - 1));
            } else if (s.pad == PAD_REFLECTION) {
              fx = reflect(fx, s.xmin, s.xmax);
              fy = reflect(fy, s.ymin, s.ymax);
            }
          }
          let val: f64 = 0;
          if (mode == GS_NEAREST) {
            val = s.at(<i64>fy, <i64>fx);
          } else if (mode == GS_LINEAR) {
            const x1 = <i64>Math.floor(fx), y1 = <i64>Math.floor(fy);
            const x2 = x1 + 1, y2 = y1 + 1;
            const dx2 = <f64>x2 - fx, dx1 = fx - <f64>x1;
            const dy2 = <f64>y2 - fy, dy1 = fy - <f64>y1;
            val = dy2 * (dx2 * s.at(y1, x1) + dx1 * s.at(y1, x2)) + dy1 * (dx2 * s.at(y2, x1) + dx1 * s.at(y2, x2));
          } else {
            const x0 = <i64>Math.floor(fx) - 1, y0 = <i64>Math.floor(fy) - 1;
            cubicCoeffs(fx - <f64>x0 - 1, k);
            for (let i: i64 = 0; i < 4; i++) {
              unchecked(v[<i32>i] = unchecked(k[0]) * s.at(y0 + i, x0) + unchecked(k[1]) * s.at(y0 + i, x0 + 1) +
                unchecked(k[2]) * s.at(y0 + i, x0 + 2) + unchecked(k[3]) * s.at(y0 + i, x0 + 3));
            }
            cubicCoeffs(fy - <f64>y0 - 1, k);
            val = unchecked(k[0]) * unchecked(v[0]) + unchecked(k[1]) * unchecked(v[1]) +
              unchecked(k[2]) * unchecked(v[2]) + unchecked(k[3]) * unchecked(v[3]);
          }
          storeF64(odt, obase + p * osz, val);
        }
      }
    }
    return true;
  }
}

/**
 * AffineGrid (opset 20): theta [N, 2, 3] (or [N, 3, 4]) and a constant size [N, C, H, W] (or
 * [N, C, D, H, W]) -> grid [N, H, W, 2] (or [N, D, H, W, 3]): the normalized base coordinates
 * (x, y[, z], 1) of every output pixel times theta^T, as the ONNX reference computes them.
 */
class AffineGridOp extends Op {
  constructor() {
    super("AffineGrid", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs theta and size are required");
    const th = ctx.input(0);
    if (!isFloat(th.dtype)) return ctx.failDtype(0);
    const size = ctx.constInts(1);
    if (size == null) return ctx.needConstant(1, "size");
    const r = size.length - 2; // spatial rank
    if (r != 2 && r != 3) return ctx.fail("size must have 4 or 5 elements, got " + size.length.toString());
    if (th.rank() != 3 || <i64>th.lens[0] != size[0] || th.lens[1] != r || th.lens[2] != r + 1) {
      return ctx.fail("theta must be [N," + r.toString() + "," + (r + 1).toString() + "] with N = " +
        size[0].toString() + ", got " + th.toString());
    }
    const out = new Array<i32>(r + 2);
    out[0] = <i32>size[0];
    for (let i = 0; i < r; i++) {
      if (size[2 + i] <= 0) return ctx.fail("size dims must be positive");
      out[1 + i] = <i32>size[2 + i];
    }
    out[r + 1] = r;
    ctx.out(Shape.standard(th.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const th = ctx.input(0), o = ctx.output(0);
    const align = ctx.attrs.getInt("align_corners", 0) != 0;
    const ol = o.shape.lens;
    const r = ol.length - 2;
    const nb = ol[0];
    // spatial sizes, innermost (x) first
    const sz = new StaticArray<i32>(3);
    for (let i = 0; i < r; i++) unchecked(sz[i] = ol[r - i]);
    const tdt = th.shape.dtype, tsz = <usize>dtypeSize(tdt);
    const odt = o.shape.dtype, osz = <usize>dtypeSize(odt);
    const base = new StaticArray<f64>(4);
    let count: i32 = 1;
    for (let i = 0; i < r; i++) count *= unchecked(sz[i]);
    let op = o.ptr;
    for (let n = 0; n < nb; n++) {
      const tp = th.ptr + <usize>n * <usize>(r * (r + 1)) * tsz;
      for (let p = 0; p < count; p++) {
        let rem = p;
        // p runs with x fastest: decompose innermost first
        for (let i = 0; i < r; i++) {
          const len = unchecked(sz[i]);
          const k = rem % len;
          rem /= len;
          let c: f64 = 0;
          if (align) c = len == 1 ? -1 : -1 + 2 * <f64>k / <f64>(len - 1);
          else c = -1 + (2 * <f64>k + 1) / <f64>len;
          unchecked(base[i] = c);
        }
        unchecked(base[r] = 1);
        for (let j = 0; j < r; j++) {
          let acc: f64 = 0;
          for (let i = 0; i <= r; i++) acc += loadF64(tdt, tp + <usize>(j * (r + 1) + i) * tsz) * unchecked(base[i]);
          storeF64(odt, op, acc);
          op += osz;
        }
      }
    }
    return true;
  }
}

export function registerGridSample(): void {
  registerOp(new GridSampleOp());
  registerOp(new AffineGridOp());
}
