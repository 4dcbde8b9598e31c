// Slice: starts, ends, axes and steps (inputs, or attributes before opset 10) clamped as ONNX
// specifies, then one strided view copy.
import { Shape } from "../../ir/shape";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import {
  computeInts, copyView, listStr, movable, normAxis, notConstant, shapeInts, stridesOf,
} from "../data/util";

class SliceParams {
  start: Array<i32>;
  step: Array<i32>;
  out: Array<i32>;
  err: string = "";

  constructor(r: i32) {
    this.start = new Array<i32>(r);
    this.step = new Array<i32>(r);
    this.out = new Array<i32>(r);
  }
}

function sliceParams(lens: Array<i32>, starts: Array<i64>, ends: Array<i64>, axes: Array<i64> | null,
  steps: Array<i64> | null): SliceParams {
  const r = lens.length;
  const p = new SliceParams(r);
  for (let d = 0; d < r; d++) {
    p.start[d] = 0;
    p.step[d] = 1;
    p.out[d] = lens[d];
  }
  if (starts.length != ends.length) {
    p.err = "starts " + listStr(starts) + " and ends " + listStr(ends) + " differ in length";
    return p;
  }
  if (axes != null && axes.length != starts.length) {
    p.err = "axes " + listStr(axes) + " and starts " + listStr(starts) + " differ in length";
    return p;
  }
  if (steps != null && steps.length != starts.length) {
    p.err = "steps " + listStr(steps) + " and starts " + listStr(starts) + " differ in length";
    return p;
  }
  const seen = new Array<bool>(r);
  for (let i = 0; i < starts.length; i++) {
    const a = axes == null ? (i < r ? i : -1) : normAxis(axes[i], r);
    if (a < 0) {
      p.err = "axis " + (axes == null ? i.toString() : axes[i].toString()) + " is out of range for rank " + r.toString();
      return p;
    }
    if (seen[a]) {
      p.err = "axis " + a.toString() + " is repeated";
      return p;
    }
    seen[a] = true;
    let step: i64 = steps == null ? 1 : steps[i];
    if (step < -0x7fffffff) step = -0x7fffffff;
    if (step > 0x7fffffff) step = 0x7fffffff;
    if (step == 0) {
      p.err = "step 0 on axis " + a.toString();
      return p;
    }
    const L = <i64>lens[a];
    let s = starts[i];
    let e = ends[i];
    if (s < 0) s += L;
    if (e < 0) e += L;
    let n: i64;
    if (step > 0) {
      s = s < 0 ? 0 : (s > L ? L : s);
      e = e < 0 ? 0 : (e > L ? L : e);
      n = e > s ? 1 + (e - s - 1) / step : 0;
    } else {
      s = s < 0 ? 0 : (s > L - 1 ? L - 1 : s);
      e = e < -1 ? -1 : (e > L - 1 ? L - 1 : e);
      n = s > e ? 1 + (s - e - 1) / -step : 0;
    }
    p.start[a] = <i32>s;
    p.step[a] = <i32>step;
    p.out[a] = <i32>n;
  }
  return p;
}

class SliceOp extends Op {
  constructor() { super("Slice"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "starts");
    if (notConstant(ctx, 2)) return ctx.needConstant(2, "ends");
    if (notConstant(ctx, 3)) return ctx.needConstant(3, "axes");
    if (notConstant(ctx, 4)) return ctx.needConstant(4, "steps");
    const starts = shapeInts(ctx, 1, "starts");
    const ends = shapeInts(ctx, 2, "ends");
    if (starts == null || ends == null) return ctx.fail("starts and ends are required");
    const p = sliceParams(x.lens, starts, ends, shapeInts(ctx, 3, "axes"), shapeInts(ctx, 4, "steps"));
    if (p.err.length > 0) return ctx.fail(p.err);
    ctx.out(Shape.standard(x.dtype, p.out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const starts = computeInts(ctx, 1, "starts");
    const ends = computeInts(ctx, 2, "ends");
    if (starts == null || ends == null) return ctx.fail("starts and ends are required");
    const p = sliceParams(x.shape.lens, starts, ends, computeInts(ctx, 3, "axes"), computeInts(ctx, 4, "steps"));
    if (p.err.length > 0) return ctx.fail(p.err);
    const st = stridesOf(x.shape.lens);
    const r = st.length;
    const vs = new Array<i32>(r);
    let base: i32 = 0;
    for (let d = 0; d < r; d++) {
      base += p.start[d] * st[d];
      vs[d] = p.step[d] * st[d];
    }
    copyView(ctx.output(0).ptr, x.ptr, x.shape.elementSize(), p.out, vs, base);
    return true;
  }
}

export function registerSliceOps(): void {
  registerOp(new SliceOp());
}
