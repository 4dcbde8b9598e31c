// Reductions: Reduce* (axes as attribute or input by opset), ArgMax/ArgMin, the softmax
// family (Softmax, LogSoftmax, Hardmax) and CumSum.
import { DT_BOOL, DT_INT64, dtypeSize, isFloat, isSupported } from "../ir/dtype";
import { Attrs } from "../ir/attrs";
import { Shape } from "../ir/shape";
import { ComputeContext, Op, OP_REDUCTION, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";
import { registerLoss } from "./math/loss";
import { registerDet } from "./math/det";
import { loadF64, loadI64, storeF64, storeI64 } from "../kernels/eltwise";
import {
  R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_MAX, R_MEAN, R_MIN, R_PROD, R_SUM, R_SUMSQUARE, reduceF64,
  SM_HARDMAX, SM_LOG, SM_SOFTMAX, softmaxAxis,
} from "../kernels/reduce";

/** Normalizes axis a for rank r; -1 when out of range. */
export function normAxis(a: i64, r: i32): i32 {
  const v = a < 0 ? a + <i64>r : a;
  return v < 0 || v >= <i64>r ? -1 : <i32>v;
}

/** "axis 3 is out of range for float32[2,3]" */
export function axisError(a: i64, s: Shape): string {
  return "axis " + a.toString() + " is out of range for " + s.toString();
}

function prod(l: Array<i32>, from: i32, to: i32): i32 {
  let n: i32 = 1;
  for (let i = from; i < to; i++) n *= l[i];
  return n;
}

// ---- Reduce* ----

/** The reduce mask for one node; `error` is set (and mask empty) on a bad axis. */
class ReduceAxes {
  mask: Array<bool> = new Array<bool>();
  noop: bool = false;
  error: string = "";
}

function reduceAxes(raw: Array<i64> | null, attrs: Attrs, x: Shape): ReduceAxes {
  const r = x.rank();
  const res = new ReduceAxes();
  res.mask = new Array<bool>(r);
  if (raw == null || raw.length == 0) {
    if (attrs.getInt("noop_with_empty_axes", 0) != 0) {
      res.noop = true;
    } else {
      for (let i = 0; i < r; i++) res.mask[i] = true;
    }
    return res;
  }
  for (let i = 0; i < raw.length; i++) {
    const a = normAxis(raw[i], r);
    if (a < 0) { res.error = axisError(raw[i], x); return res; }
    res.mask[a] = true;
  }
  return res;
}

class ReduceOp extends Op {
  code: i32;
  /** Opset from which axes are an input. */
  axesInputFrom: i32;

  constructor(name: string, code: i32, axesInputFrom: i32) {
    super(name, OP_REDUCTION);
    this.code = code;
    this.axesInputFrom = axesInputFrom;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input 0 is required");
    const x = ctx.input(0);
    if (!isSupported(x.dtype) || (x.dtype == DT_BOOL && this.code != R_MAX && this.code != R_MIN)) {
      return ctx.failDtype(0);
    }
    let raw: Array<i64> | null = null;
    if (ctx.opset >= this.axesInputFrom) {
      if (ctx.hasInput(1)) {
        raw = ctx.constInts(1);
        if (raw == null) return ctx.needConstant(1, "axes");
      }
    } else {
      raw = ctx.attrs.getInts("axes");
    }
    const ax = reduceAxes(raw, ctx.attrs, x);
    if (ax.error.length > 0) return ctx.fail(ax.error);
    if (ax.noop) { ctx.out(Shape.standard(x.dtype, x.lens)); return true; }
    const keep = ctx.attrs.getInt("keepdims", 1) != 0;
    const lens = new Array<i32>();
    for (let i = 0; i < x.rank(); i++) {
      if (!ax.mask[i]) lens.push(x.lens[i]);
      else if (keep) lens.push(1);
    }
    ctx.out(Shape.standard(x.dtype, lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    let raw: Array<i64> | null = null;
    if (ctx.opset >= this.axesInputFrom) {
      if (ctx.hasInput(1)) raw = ctx.input(1).toI64Array();
    } else {
      raw = ctx.attrs.getInts("axes");
    }
    const ax = reduceAxes(raw, ctx.attrs, x.shape);
    if (ax.error.length > 0) return ctx.fail(ax.error);
    const dt = x.shape.dtype;
    if (ax.noop) {
      memory.copy(o.ptr, x.ptr, <usize>x.shape.bytes());
      return true;
    }
    const keep = new Array<i32>(x.shape.rank());
    for (let i = 0; i < keep.length; i++) keep[i] = ax.mask[i] ? 1 : x.shape.lens[i];
    const acc = reduceF64(this.code, x, keep);
    const sz = <usize>dtypeSize(dt);
    for (let i = 0; i < acc.length; i++) storeF64(dt, o.ptr + <usize>i * sz, unchecked(acc[i]));
    return true;
  }
}

// ---- ArgMax / ArgMin ----

class ArgOp extends Op {
  isMax: bool;

  constructor(name: string, isMax: bool) {
    super(name, OP_REDUCTION);
    this.isMax = isMax;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input 0 is required");
    const x = ctx.input(0);
    if (!isSupported(x.dtype)) return ctx.failDtype(0);
    const a = ctx.attrs.getInt("axis", 0);
    const axis = normAxis(a, x.rank());
    if (axis < 0) return ctx.fail(axisError(a, x));
    const keep = ctx.attrs.getInt("keepdims", 1) != 0;
    const lens = new Array<i32>();
    for (let i = 0; i < x.rank(); i++) {
      if (i != axis) lens.push(x.lens[i]);
      else if (keep) lens.push(1);
    }
    ctx.out(Shape.standard(DT_INT64, lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const axis = normAxis(ctx.attrs.getInt("axis", 0), l.length);
    const last = ctx.attrs.getInt("select_last_index", 0) != 0;
    const outer = prod(l, 0, axis), len = l[axis], inner = prod(l, axis + 1, l.length);
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const isMax = this.isMax;
    for (let r = 0; r < outer; r++) {
      for (let j = 0; j < inner; j++) {
        const base = x.ptr + (<usize>r * <usize>len * <usize>inner + <usize>j) * sz;
        let best = loadF64(dt, base);
        let bi: i32 = 0;
        for (let k = 1; k < len; k++) {
          const v = loadF64(dt, base + <usize>k * <usize>inner * sz);
          const better = isMax ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
          if (better) { best = v; bi = k; }
        }
        store<i64>(o.ptr + ((<usize>r * <usize>inner + <usize>j) << 3), <i64>bi);
      }
    }
    return true;
  }
}

// ---- Softmax / LogSoftmax / Hardmax ----

class SoftmaxOp extends Op {
  mode: i32;

  constructor(name: string, mode: i32) {
    super(name, OP_WRITES_ALL);
    this.mode = mode;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input 0 is required");
    const x = ctx.input(0);
    if (!isFloat(x.dtype)) return ctx.failDtype(0);
    const a = ctx.attrs.getInt("axis", ctx.opset < 13 ? 1 : -1);
    if (x.rank() > 0 && normAxis(a, x.rank()) < 0) return ctx.fail(axisError(a, x));
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const l = x.shape.lens;
    if (l.length == 0) {
      storeF64(x.shape.dtype, ctx.output(0).ptr, this.mode == SM_LOG ? 0 : 1);
      return true;
    }
    const axis = normAxis(ctx.attrs.getInt("axis", ctx.opset < 13 ? 1 : -1), l.length);
    const outer = prod(l, 0, axis);
    if (ctx.opset < 13) {
      softmaxAxis(this.mode, x, ctx.output(0), outer, prod(l, axis, l.length), 1);
    } else {
      softmaxAxis(this.mode, x, ctx.output(0), outer, l[axis], prod(l, axis + 1, l.length));
    }
    return true;
  }
}

// ---- CumSum ----

class CumSumOp extends Op {
  constructor() {
    super("CumSum", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs x and axis are required");
    const x = ctx.input(0);
    if (!isSupported(x.dtype) || x.dtype == DT_BOOL) return ctx.failDtype(0);
    if (ctx.input(1).elements() != 1) return ctx.fail("axis must be a scalar, got " + ctx.input(1).toString());
    const c = ctx.constInts(1);
    if (c != null && normAxis(c[0], x.rank()) < 0) return ctx.fail(axisError(c[0], x));
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const a = ctx.input(1).getAsI64(0);
    const axis = normAxis(a, l.length);
    if (axis < 0) return ctx.fail(axisError(a, x.shape));
    const excl = ctx.attrs.getInt("exclusive", 0) != 0;
    const rev = ctx.attrs.getInt("reverse", 0) != 0;
    const outer = prod(l, 0, axis), len = l[axis], inner = prod(l, axis + 1, l.length);
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const fl = isFloat(dt);
    const step = <isize>inner * <isize>sz;
    for (let r = 0; r < outer; r++) {
      for (let j = 0; j < inner; j++) {
        const base = (<usize>r * <usize>len * <usize>inner + <usize>j) * sz;
        let px = x.ptr + base, po = o.ptr + base;
        let d = step;
        if (rev) {
          px += <usize>(len - 1) * <usize>step;
          po += <usize>(len - 1) * <usize>step;
          d = -step;
        }
        let sf: f64 = 0;
        let si: i64 = 0;
        for (let k = 0; k < len; k++) {
          if (fl) {
            const v = loadF64(dt, px);
            if (excl) { storeF64(dt, po, sf); sf += v; } else { sf += v; storeF64(dt, po, sf); }
          } else {
            const v = loadI64(dt, px);
            if (excl) { storeI64(dt, po, si); si += v; } else { si += v; storeI64(dt, po, si); }
          }
          px += d; po += d;
        }
      }
    }
    return true;
  }
}

export function registerReduce(): void {
  registerOp(new ReduceOp("ReduceSum", R_SUM, 13));
  registerOp(new ReduceOp("ReduceMean", R_MEAN, 18));
  registerOp(new ReduceOp("ReduceMax", R_MAX, 18));
  registerOp(new ReduceOp("ReduceMin", R_MIN, 18));
  registerOp(new ReduceOp("ReduceProd", R_PROD, 18));
  registerOp(new ReduceOp("ReduceL1", R_L1, 18));
  registerOp(new ReduceOp("ReduceL2", R_L2, 18));
  registerOp(new ReduceOp("ReduceLogSum", R_LOGSUM, 18));
  registerOp(new ReduceOp("ReduceLogSumExp", R_LOGSUMEXP, 18));
  registerOp(new ReduceOp("ReduceSumSquare", R_SUMSQUARE, 18));
  registerOp(new ArgOp("ArgMax", true));
  registerOp(new ArgOp("ArgMin", false));
  registerOp(new SoftmaxOp("Softmax", SM_SOFTMAX));
  registerOp(new SoftmaxOp("LogSoftmax", SM_LOG));
  registerOp(new SoftmaxOp("Hardmax", SM_HARDMAX));
  registerOp(new CumSumOp());
  registerLoss();
  registerDet();
}

