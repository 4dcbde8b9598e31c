// Pad in every mode (constant, reflect, edge, wrap), with optional axes (opset 18): one output
// row at a time, the in-range run of the last axis with memory.copy.
import { Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import {
  computeInts, copyEl, fillEl, listStr, movable, normAxis, notConstant, shapeInts,
  stridesOf,
} from "../data/util";

const PAD_CONSTANT: i32 = 0;
const PAD_REFLECT: i32 = 1;
const PAD_EDGE: i32 = 2;
const PAD_WRAP: i32 = 3;

function padMode(s: string): i32 {
  if (s == "constant") return PAD_CONSTANT;
  if (s == "reflect") return PAD_REFLECT;
  if (s == "edge") return PAD_EDGE;
  if (s == "wrap") return PAD_WRAP;
  return -1;
}

/** Source index of padded index i (relative to the unpadded start), or -1 for the constant. */
// @ts-ignore: decorator
@inline
function padSource(i: i32, L: i32, mode: i32): i32 {
  if (i >= 0 && i < L) return i;
  if (mode == PAD_CONSTANT || L == 0) return -1;
  if (mode == PAD_EDGE) return i < 0 ? 0 : L - 1;
  if (mode == PAD_WRAP) {
    const m = i % L;
    return m < 0 ? m + L : m;
  }
  if (L == 1) return 0;
  const period = 2 * (L - 1);
  let m = i % period;
  if (m < 0) m += period;
  return m >= L ? period - m : m;
}

/** Per-dim begin and end pads (length 2*rank), or null with ctx.fail. */
function padsPerDim(pads: Array<i64>, axes: Array<i64> | null, r: i32): Array<i32> | null {
  const out = new Array<i32>(2 * r);
  const k = axes == null ? r : axes.length;
  if (pads.length != 2 * k) return null;
  for (let i = 0; i < k; i++) {
    const a = axes == null ? i : normAxis(axes[i], r);
    if (a < 0) return null;
    out[a] = <i32>pads[i];
    out[a + r] = <i32>pads[i + k];
  }
  return out;
}

class PadOp extends Op {
  constructor() { super("Pad"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    const mode = padMode(ctx.attrs.getString("mode", "constant"));
    if (mode < 0) return ctx.fail("mode '" + ctx.attrs.getString("mode", "") + "' is not one of constant, reflect, edge, wrap");
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "pads");
    if (notConstant(ctx, 3)) return ctx.needConstant(3, "axes");
    const pads = shapeInts(ctx, 1, "pads");
    if (pads == null) return ctx.fail("pads are missing");
    const axes = ctx.hasInput(3) ? ctx.constInts(3) : null;
    const pd = padsPerDim(pads, axes, r);
    if (pd == null) return ctx.fail("pads " + listStr(pads) + " do not match rank " + r.toString() + (axes == null ? "" : " and axes " + listStr(axes)));
    const out = new Array<i32>(r);
    for (let d = 0; d < r; d++) {
      const n = x.lens[d] + pd[d] + pd[d + r];
      if (n < 0) return ctx.fail("pads " + listStr(pads) + " remove more than axis " + d.toString() + " holds");
      if (mode != PAD_CONSTANT && x.lens[d] == 0 && n > 0) return ctx.fail("cannot pad empty axis " + d.toString() + " in mode '" + ctx.attrs.getString("mode", "") + "'");
      out[d] = n;
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const es = x.shape.elementSize();
    const mode = padMode(ctx.attrs.getString("mode", "constant"));
    const pads = computeInts(ctx, 1, "pads");
    if (pads == null) return ctx.fail("pads are missing");
    const pd = padsPerDim(pads, ctx.hasInput(3) ? ctx.input(3).toI64Array() : null, r);
    if (pd == null) return ctx.fail("pads " + listStr(pads) + " do not match the input rank");
    // the constant, as one element of the output type
    const cv = new Tensor(Shape.scalar(x.shape.dtype), heap.alloc(8));
    store<u64>(cv.ptr, 0);
    if (ctx.hasInput(2) && ctx.input(2).elements() > 0) {
      copyEl(cv.ptr, ctx.input(2).ptr, es);
    } else if (ctx.attrs.has("value")) {
      cv.setFromF64(0, <f64>ctx.attrs.getFloat("value", 0));
    }
    const cvZero = load<u64>(cv.ptr) == 0;
    const total = y.elements();
    if (total == 0) {
      heap.free(cv.ptr);
      return true;
    }
    if (r == 0) {
      copyEl(y.ptr, x.ptr, es);
      heap.free(cv.ptr);
      return true;
    }
    const inL = x.shape.lens;
    const outL = y.shape.lens;
    const st = stridesOf(inL);
    const lastOut = outL[r - 1];
    const lastIn = inL[r - 1];
    const b = pd[r - 1];
    const rows = total / lastOut;
    const cnt = new StaticArray<i32>(r);
    const rowBytes = <usize>(lastOut * es);
    // the in-range run of the last axis: j in [jlo, jhi)
    let jlo = b > 0 ? b : 0;
    let jhi = b + lastIn < lastOut ? b + lastIn : lastOut;
    if (jhi < jlo) jhi = jlo;
    for (let row = 0; row < rows; row++) {
      const d = y.ptr + <usize>row * rowBytes;
      let off: i32 = 0;
      let outside = false;
      for (let k = 0; k < r - 1; k++) {
        const si = padSource(cnt[k] - pd[k], inL[k], mode);
        if (si < 0) {
          outside = true;
          break;
        }
        off += si * st[k];
      }
      if (outside) {
        if (!cvZero) fillEl(d, cv.ptr, es, lastOut);
      } else {
        const sp = x.ptr + <usize>(off * es);
        if (jhi > jlo) memory.copy(d + <usize>(jlo * es), sp + <usize>((jlo - b) * es), <usize>((jhi - jlo) * es));
        for (let j = 0; j < lastOut; j++) {
          if (j == jlo && jhi > jlo) {
            j = jhi - 1;
            continue;
          }
          const si = padSource(j - b, lastIn, mode);
          if (si < 0) {
            if (!cvZero) copyEl(d + <usize>(j * es), cv.ptr, es);
          } else {
            copyEl(d + <usize>(j * es), sp + <usize>(si * es), es);
          }
        }
      }
      for (let k = r - 2; k >= 0; k--) {
        const c = cnt[k] + 1;
        if (c < outL[k]) {
          cnt[k] = c;
          break;
        }
        cnt[k] = 0;
      }
    }
    heap.free(cv.ptr);
    return true;
  }
}

export function registerPadOps(): void {
  registerOp(new PadOp());
}
