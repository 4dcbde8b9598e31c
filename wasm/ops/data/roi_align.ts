// RoiAlign: for each region of interest, an output_height x output_width grid of bins over one
// image of X; each bin averages (mode "avg") or takes the largest (mode "max") of bilinear
// samples on a sampling_ratio x sampling_ratio grid (0: ceil(roi size / bins), per roi).
// coordinate_transformation_mode "half_pixel" shifts the roi by -0.5 pixel; "output_half_pixel"
// (opset 10's only behaviour) does not, and makes every roi at least 1 x 1. Sample rules as in
// onnxruntime: samples more than one pixel outside the image count as 0, others clamp to the
// edge; "max" takes the largest weighted corner of each sample.
import { DT_DOUBLE, DT_INT32, DT_INT64, dtypeSize, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { loadF64, storeF64 } from "../../kernels/eltwise";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "../op";
import { registerOp } from "../registry";

/** v rounded to float32 when `f32`. */
// @ts-ignore: decorator
@inline
function rnd(f32: bool, v: f64): f64 {
  return f32 ? <f64><f32>v : v;
}

function halfPixel(ctx_opset: i32, mode: string): bool {
  return ctx_opset >= 16 && mode == "half_pixel";
}

/** The most sample points one roi may take (its table holds 4 offsets and weights per sample). */
const MAX_SAMPLES: i32 = 1 << 24;

class RoiAlignOp extends Op {
  constructor() {
    super("RoiAlign", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1) || !ctx.hasInput(2)) {
      return ctx.fail("inputs X, rois and batch_indices are required");
    }
    const x = ctx.input(0), rois = ctx.input(1), bi = ctx.input(2);
    if (!isFloat(x.dtype)) return ctx.failDtype(0);
    if (rois.dtype != x.dtype) return ctx.failDtype(1);
    if (bi.dtype != DT_INT64 && bi.dtype != DT_INT32) return ctx.failDtype(2);
    if (x.rank() != 4) return ctx.fail("X must be [N, C, H, W], is " + x.toString());
    if (rois.rank() != 2 || rois.lens[1] != 4) return ctx.fail("rois must be [num_rois, 4], is " + rois.toString());
    if (bi.rank() != 1 || bi.lens[0] != rois.lens[0]) {
      return ctx.fail("batch_indices must be [" + rois.lens[0].toString() + "] (one per roi), is " + bi.toString());
    }
    const mode = ctx.attrs.getString("mode", "avg");
    if (mode != "avg" && mode != "max") return ctx.fail("mode must be 'avg' or 'max', is '" + mode + "'");
    if (ctx.opset >= 16) {
      const ct = ctx.attrs.getString("coordinate_transformation_mode", "half_pixel");
      if (ct != "half_pixel" && ct != "output_half_pixel") {
        return ctx.fail("coordinate_transformation_mode must be 'half_pixel' or 'output_half_pixel', is '" + ct + "'");
      }
    }
    const oh = ctx.attrs.getInt("output_height", 1), ow = ctx.attrs.getInt("output_width", 1);
    if (oh < 1 || ow < 1 || oh > 1 << 20 || ow > 1 << 20) {
      return ctx.fail("output_height and output_width must be from 1 to 2^20, are " + oh.toString() + " and " + ow.toString());
    }
    const sr = ctx.attrs.getInt("sampling_ratio", 0);
    if (sr < 0 || sr > 1 << 16) return ctx.fail("sampling_ratio must be from 0 to 2^16, is " + sr.toString());
    ctx.out(Shape.standard(x.dtype, [rois.lens[0], x.lens[1], <i32>oh, <i32>ow]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), rois = ctx.input(1), bi = ctx.input(2), y = ctx.output(0);
    const N = x.shape.lens[0], C = x.shape.lens[1], H = x.shape.lens[2], W = x.shape.lens[3];
    const R = rois.shape.lens[0], OH = y.shape.lens[2], OW = y.shape.lens[3];
    const isMax = ctx.attrs.getString("mode", "avg") == "max";
    const half = halfPixel(ctx.opset, ctx.attrs.getString("coordinate_transformation_mode", "half_pixel"));
    const scale = <f64>ctx.attrs.getFloat("spatial_scale", 1.0);
    const sr = <i32>ctx.attrs.getInt("sampling_ratio", 0);
    const dt = x.shape.dtype, es = <usize>dtypeSize(dt);
    const off: f64 = half ? 0.5 : 0.0;
    // roi geometry and sample positions in the input's precision, as onnxruntime computes them:
    // an adaptive grid's ceil(roi size / bins) can land on the other side of an integer in float32
    const f32 = dt != DT_DOUBLE;
    const plane = <usize>H * <usize>W;
    // per-roi sample table: 4 corner offsets and weights per sample, shared by every channel
    for (let r = 0; r < R; r++) {
      const b = bi.getAsI64(r);
      if (b < 0 || b >= <i64>N) {
        return ctx.fail("batch_indices[" + r.toString() + "] is " + b.toString() + ", outside [0, " + N.toString() + ")");
      }
      const x1 = rnd(f32, rnd(f32, rois.getAsF64(r * 4) * scale) - off);
      const y1 = rnd(f32, rnd(f32, rois.getAsF64(r * 4 + 1) * scale) - off);
      const x2 = rnd(f32, rnd(f32, rois.getAsF64(r * 4 + 2) * scale) - off);
      const y2 = rnd(f32, rnd(f32, rois.getAsF64(r * 4 + 3) * scale) - off);
      let rw = rnd(f32, x2 - x1), rh = rnd(f32, y2 - y1);
      if (!half) {
        if (rw < 1.0) rw = 1.0;
        if (rh < 1.0) rh = 1.0;
      }
      const bh = rnd(f32, rh / <f64>OH), bw = rnd(f32, rw / <f64>OW);
      // the sample grid: bounded before it is sized (a huge sampling_ratio or roi would overflow it)
      const ghf: f64 = sr > 0 ? <f64>sr : Math.ceil(rnd(f32, rh / <f64>OH));
      const gwf: f64 = sr > 0 ? <f64>sr : Math.ceil(rnd(f32, rw / <f64>OW));
      const samples = <f64>OH * <f64>OW * ghf * gwf;
      if (!(samples <= <f64>MAX_SAMPLES)) {
        return ctx.fail("roi " + r.toString() + " needs " + samples.toString() + " samples (" + ghf.toString() + " x " +
          gwf.toString() + " per bin), more than kiln takes (" + MAX_SAMPLES.toString() + ")");
      }
      const gh = <i32>ghf;
      const gw = <i32>gwf;
      const count: f64 = <f64>(gh * gw > 1 ? gh * gw : 1);
      const ns = OH * OW * gh * gw;
      const pos = new StaticArray<i32>(ns * 4);
      const wt = new StaticArray<f64>(ns * 4);
      let k = 0;
      for (let ph = 0; ph < OH; ph++) {
        for (let pw = 0; pw < OW; pw++) {
          for (let iy = 0; iy < gh; iy++) {
            const yy = rnd(f32, rnd(f32, y1 + rnd(f32, <f64>ph * bh)) + rnd(f32, rnd(f32, (<f64>iy + 0.5) * bh) / <f64>gh));
            for (let ix = 0; ix < gw; ix++) {
              const xx = rnd(f32, rnd(f32, x1 + rnd(f32, <f64>pw * bw)) + rnd(f32, rnd(f32, (<f64>ix + 0.5) * bw) / <f64>gw));
              const q = k * 4;
              k++;
              if (yy < -1.0 || yy > <f64>H || xx < -1.0 || xx > <f64>W) {
                for (let c = 0; c < 4; c++) {
                  unchecked(pos[q + c] = 0);
                  unchecked(wt[q + c] = 0.0);
                }
                continue;
              }
              let sy = yy <= 0 ? 0.0 : yy, sx = xx <= 0 ? 0.0 : xx;
              let yl = <i32>sy, xl = <i32>sx, yh: i32, xh: i32;
              if (yl >= H - 1) { yh = yl = H - 1; sy = <f64>yl; } else yh = yl + 1;
              if (xl >= W - 1) { xh = xl = W - 1; sx = <f64>xl; } else xh = xl + 1;
              const ly = sy - <f64>yl, lx = sx - <f64>xl, hy = 1.0 - ly, hx = 1.0 - lx;
              unchecked(pos[q] = yl * W + xl);
              unchecked(pos[q + 1] = yl * W + xh);
              unchecked(pos[q + 2] = yh * W + xl);
              unchecked(pos[q + 3] = yh * W + xh);
              unchecked(wt[q] = hy * hx);
              unchecked(wt[q + 1] = hy * lx);
              unchecked(wt[q + 2] = ly * hx);
              unchecked(wt[q + 3] = ly * lx);
            }
          }
        }
      }
      const per = gh * gw;
      for (let c = 0; c < C; c++) {
        const src = x.ptr + (<usize>b * <usize>C + <usize>c) * plane * es;
        const dst = y.ptr + ((<usize>r * <usize>C + <usize>c) * <usize>OH * <usize>OW) * es;
        for (let bin = 0; bin < OH * OW; bin++) {
          let acc: f64 = 0;
          for (let s = 0; s < per; s++) {
            const q = (bin * per + s) * 4;
            if (isMax) {
              let m = unchecked(wt[q]) * loadF64(dt, src + <usize>unchecked(pos[q]) * es);
              for (let cc = 1; cc < 4; cc++) {
                const v = unchecked(wt[q + cc]) * loadF64(dt, src + <usize>unchecked(pos[q + cc]) * es);
                if (v > m) m = v;
              }
              acc = s == 0 || m > acc ? m : acc;
            } else {
              for (let cc = 0; cc < 4; cc++) acc += unchecked(wt[q + cc]) * loadF64(dt, src + <usize>unchecked(pos[q + cc]) * es);
            }
          }
          storeF64(dt, dst + <usize>bin * es, isMax ? acc : acc / count);
        }
      }
    }
    return true;
  }
}

export function registerRoiAlign(): void {
  registerOp(new RoiAlignOp());
}
