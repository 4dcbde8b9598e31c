// Concat and Split along one axis: contiguous chunks moved with memory.copy.
import { dtypeName } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { listStr, movable, normAxis, notConstant, product, shapeInts } from "../data/util";

class ConcatOp extends Op {
  constructor() { super("Concat", OP_WRITES_ALL); }

  computeShape(ctx: ShapeContext): bool {
    if (ctx.count() == 0 || !ctx.hasInput(0)) return ctx.fail("needs at least one input");
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    if (!ctx.attrs.has("axis")) return ctx.fail("attribute 'axis' is required");
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    if (a < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", 0).toString() + " is out of range for rank " + r.toString());
    const out = x.lens.slice(0);
    let sum: i32 = 0;
    for (let i = 0; i < ctx.count(); i++) {
      if (!ctx.hasInput(i)) return ctx.fail("input " + i.toString() + " is missing");
      const s = ctx.input(i);
      if (s.dtype != x.dtype) return ctx.fail("input " + i.toString() + " is " + dtypeName(s.dtype) + ", input 0 is " + dtypeName(x.dtype));
      if (s.rank() != r) return ctx.fail("input " + i.toString() + " " + s.toString() + " has another rank than input 0 " + x.toString());
      for (let d = 0; d < r; d++) {
        if (d != a && s.lens[d] != x.lens[d]) {
          return ctx.fail("input " + i.toString() + " " + s.toString() + " differs from input 0 " + x.toString() + " outside axis " + a.toString());
        }
      }
      sum += s.lens[a];
    }
    out[a] = sum;
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const y = ctx.output(0);
    const r = y.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    const es = y.shape.elementSize();
    const outer = product(y.shape.lens, 0, a);
    const inner = product(y.shape.lens, a + 1, r) * es;
    const rowOut = <usize>(y.shape.lens[a] * inner);
    let off: usize = 0;
    for (let i = 0; i < ctx.inputs.length; i++) {
      const x = ctx.input(i);
      const chunk = <usize>(x.shape.lens[a] * inner);
      if (chunk == 0) continue;
      if (outer == 1) {
        memory.copy(y.ptr + off, x.ptr, chunk);
      } else {
        for (let o = 0; o < outer; o++) memory.copy(y.ptr + <usize>o * rowOut + off, x.ptr + <usize>o * chunk, chunk);
      }
      off += chunk;
    }
    return true;
  }
}

/** The split sizes of Split, or null after ctx.fail / needConstant. */
function splitSizes(ctx: ShapeContext, len: i32): Array<i32> | null {
  const n = ctx.numOutputs;
  const out = new Array<i32>();
  if (notConstant(ctx, 1)) {
    ctx.needConstant(1, "split");
    return null;
  }
  const sp = shapeInts(ctx, 1, "split");
  if (sp != null && sp.length > 0) {
    if (sp.length != n) {
      ctx.fail("split " + listStr(sp) + " has " + sp.length.toString() + " entries for " + n.toString() + " outputs");
      return null;
    }
    let sum: i64 = 0;
    for (let i = 0; i < sp.length; i++) {
      if (sp[i] < 0) {
        ctx.fail("split " + listStr(sp) + " has a negative size");
        return null;
      }
      sum += sp[i];
      out.push(<i32>sp[i]);
    }
    if (sum != <i64>len) {
      ctx.fail("split " + listStr(sp) + " sums to " + sum.toString() + ", the axis has length " + len.toString());
      return null;
    }
    return out;
  }
  let parts = n;
  if (ctx.attrs.has("num_outputs")) parts = <i32>ctx.attrs.getInt("num_outputs", n);
  if (parts <= 0 || parts != n) {
    ctx.fail("cannot split into " + parts.toString() + " parts for " + n.toString() + " outputs");
    return null;
  }
  if (ctx.opset < 18 && len % parts != 0) {
    ctx.fail("axis of length " + len.toString() + " does not split into " + parts.toString() + " equal parts");
    return null;
  }
  // equal parts; the last one smaller when the length does not divide (opset 18)
  const chunk = (len + parts - 1) / parts;
  let left = len;
  for (let i = 0; i < parts; i++) {
    const c = left < chunk ? left : chunk;
    out.push(c);
    left -= c;
  }
  return out;
}

class SplitOp extends Op {
  constructor() { super("Split", OP_WRITES_ALL); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    if (a < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", 0).toString() + " is out of range for rank " + r.toString());
    const sizes = splitSizes(ctx, x.lens[a]);
    if (sizes == null) return false;
    for (let i = 0; i < sizes.length; i++) {
      const l = x.lens.slice(0);
      l[a] = sizes[i];
      ctx.out(Shape.standard(x.dtype, l));
    }
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const r = x.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    const es = x.shape.elementSize();
    const outer = product(x.shape.lens, 0, a);
    const inner = product(x.shape.lens, a + 1, r) * es;
    const rowIn = <usize>(x.shape.lens[a] * inner);
    let off: usize = 0;
    for (let i = 0; i < ctx.outputs.length; i++) {
      const y = ctx.output(i);
      const chunk = <usize>(y.shape.lens[a] * inner);
      if (chunk == 0) continue;
      for (let o = 0; o < outer; o++) memory.copy(y.ptr + <usize>o * chunk, x.ptr + <usize>o * rowIn + off, chunk);
      off += chunk;
    }
    return true;
  }
}

export function registerConcatSplitOps(): void {
  registerOp(new ConcatOp());
  registerOp(new SplitOp());
}
