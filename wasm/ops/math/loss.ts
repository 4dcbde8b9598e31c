// Loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (LogSoftmax over the class
// axis, then the NLL). Inputs are viewed as [N, C, D] with D the product of the trailing dims.
import { DT_INT32, DT_INT64, dtypeSize, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { loadF64, loadI64, storeF64 } from "../../kernels/eltwise";
import { SM_LOG, softmaxAxis } from "../../kernels/reduce";

function checkLossShapes(ctx: ShapeContext): bool {
  if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs 0 (scores) and 1 (target) are required");
  const x = ctx.input(0), t = ctx.input(1);
  if (!isFloat(x.dtype)) return ctx.failDtype(0);
  if (t.dtype != DT_INT32 && t.dtype != DT_INT64) return ctx.failDtype(1);
  if (x.rank() < 2) return ctx.fail("input 0 must have rank 2 or more (N, C, ...), got " + x.toString());
  let ok = t.rank() == x.rank() - 1 && t.lens[0] == x.lens[0];
  for (let i = 1; ok && i < t.rank(); i++) ok = t.lens[i] == x.lens[i + 1];
  if (!ok) return ctx.fail("target " + t.toString() + " must have the dims of " + x.toString() + " without dim 1");
  if (ctx.hasInput(2) && ctx.input(2).elements() != x.lens[1]) {
    return ctx.fail("weight " + ctx.input(2).toString() + " must have " + x.lens[1].toString() + " elements");
  }
  const red = ctx.attrs.getString("reduction", "mean");
  if (red != "mean" && red != "sum" && red != "none") return ctx.fail("unknown reduction '" + red + "'");
  return true;
}

function lossShape(ctx: ShapeContext): Shape {
  const x = ctx.input(0);
  if (ctx.attrs.getString("reduction", "mean") == "none") return Shape.standard(x.dtype, ctx.input(1).lens);
  return Shape.scalar(x.dtype);
}

/** loss = -logp[n, t, d] * w[t] (0 where t == ignore_index), then reduced; logp is [N, C, D]. */
function nll(ctx: ComputeContext, logp: Tensor, out: Tensor): bool {
  const l = logp.shape.lens;
  const nb = l[0], c = l[1];
  let d: i32 = 1;
  for (let i = 2; i < l.length; i++) d *= l[i];
  const t = ctx.input(1);
  const hasW = ctx.hasInput(2);
  const hasIgnore = ctx.attrs.has("ignore_index");
  const ignore = ctx.attrs.getInt("ignore_index", 0);
  const red = ctx.attrs.getString("reduction", "mean");
  const dt = logp.shape.dtype, odt = out.shape.dtype;
  const sz = <usize>dtypeSize(dt), osz = <usize>dtypeSize(odt);
  const tsz = <usize>dtypeSize(t.shape.dtype);
  let sum: f64 = 0, wsum: f64 = 0;
  for (let n = 0; n < nb; n++) {
    for (let j = 0; j < d; j++) {
      const k = n * d + j;
      const cls = loadI64(t.shape.dtype, t.ptr + <usize>k * tsz);
      let loss: f64 = 0, w: f64 = 0;
      if (!(hasIgnore && cls == ignore)) {
        if (cls < 0 || cls >= <i64>c) {
          return ctx.fail("target value " + cls.toString() + " is out of range for " + c.toString() + " classes");
        }
        if (hasW) {
          const wt = ctx.input(2);
          w = loadF64(wt.shape.dtype, wt.ptr + <usize>cls * <usize>dtypeSize(wt.shape.dtype));
        } else {
          w = 1;
        }
        loss = -loadF64(dt, logp.ptr + ((<usize>n * <usize>c + <usize>cls) * <usize>d + <usize>j) * sz) * w;
      }
      if (red == "none") storeF64(odt, out.ptr + <usize>k * osz, loss);
      sum += loss;
      wsum += w;
    }
  }
  if (red == "sum") storeF64(odt, out.ptr, sum);
  else if (red == "mean") storeF64(odt, out.ptr, sum / wsum);
  return true;
}

class NllLossOp extends Op {
  constructor() {
    super("NegativeLogLikelihoodLoss", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!checkLossShapes(ctx)) return false;
    ctx.out(lossShape(ctx));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    return nll(ctx, ctx.input(0), ctx.output(0));
  }
}

class SoftmaxCrossEntropyOp extends Op {
  constructor() {
    super("SoftmaxCrossEntropyLoss", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!checkLossShapes(ctx)) return false;
    ctx.out(lossShape(ctx));
    if (ctx.numOutputs > 1) ctx.out(Shape.standard(ctx.input(0).dtype, ctx.input(0).lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const l = x.shape.lens;
    let d: i32 = 1;
    for (let i = 2; i < l.length; i++) d *= l[i];
    const own = ctx.outputs.length < 2;
    const bytes = <usize>x.shape.bytes();
    const logp = own ? new Tensor(x.shape, heap.alloc(bytes > 0 ? bytes : 1)) : ctx.output(1);
    softmaxAxis(SM_LOG, x, logp, l[0], l[1], d);
    const ok = nll(ctx, logp, ctx.output(0));
    if (own) heap.free(logp.ptr);
    return ok;
  }
}

export function registerLoss(): void {
  registerOp(new NllLossOp());
  registerOp(new SoftmaxCrossEntropyOp());
}
