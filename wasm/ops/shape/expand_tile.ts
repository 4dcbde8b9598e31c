// Expand (broadcast to a shape) and Tile (repeat along each axis), both strided views with
// zero strides.
import { Shape, broadcastLens } from "../../ir/shape";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { copyView, listStr, movable, notConstant, stridesOf, toLens } from "../data/util";

class ExpandOp extends Op {
  constructor() { super("Expand"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "shape");
    const sh = ctx.constInts(1);
    if (sh == null) return ctx.fail("the target shape is missing (input 1)");
    for (let i = 0; i < sh.length; i++) {
      if (sh[i] < 0) return ctx.fail("cannot expand to " + listStr(sh) + ": negative dim");
    }
    const out = broadcastLens(x.lens, toLens(sh));
    if (out == null) return ctx.fail("cannot broadcast " + x.toString() + " to " + listStr(sh));
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = y.shape.rank();
    const xr = x.shape.rank();
    const st = stridesOf(x.shape.lens);
    const vs = new Array<i32>(r);
    for (let d = 0; d < r; d++) {
      const xd = d - (r - xr);
      vs[d] = xd < 0 || x.shape.lens[xd] == 1 ? 0 : st[xd];
    }
    copyView(y.ptr, x.ptr, x.shape.elementSize(), y.shape.lens, vs, 0);
    return true;
  }
}

class TileOp extends Op {
  constructor() { super("Tile"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "repeats");
    const rep = ctx.constInts(1);
    if (rep == null) return ctx.fail("repeats are missing (input 1)");
    const r = x.rank();
    if (rep.length != r) return ctx.fail("repeats " + listStr(rep) + " has " + rep.length.toString() + " entries for rank " + r.toString());
    const out = new Array<i32>(r);
    for (let i = 0; i < r; i++) {
      if (rep[i] < 0) return ctx.fail("repeats " + listStr(rep) + " has a negative entry");
      out[i] = x.lens[i] * <i32>rep[i];
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const rep = ctx.input(1).toI64Array();
    const st = stridesOf(x.shape.lens);
    // output dim d of length rep*L is the row-major pair (q < rep, i < L): a view [rep0,L0,rep1,L1,..]
    const lens = new Array<i32>(2 * r);
    const vs = new Array<i32>(2 * r);
    for (let d = 0; d < r; d++) {
      lens[2 * d] = <i32>rep[d];
      vs[2 * d] = 0;
      lens[2 * d + 1] = x.shape.lens[d];
      vs[2 * d + 1] = st[d];
    }
    copyView(y.ptr, x.ptr, x.shape.elementSize(), lens, vs, 0);
    return true;
  }
}

export function registerExpandTileOps(): void {
  registerOp(new ExpandOp());
  registerOp(new TileOp());
}
