// Ops that reorder elements: Transpose, DepthToSpace, SpaceToDepth (strided views through
// data/util.ts copyView).
import { Shape } from "../../ir/shape";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { copyView, listStr, movable, normAxis, stridesOf } from "../data/util";

class TransposeOp extends Op {
  constructor() { super("Transpose", OP_WRITES_ALL); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    const perm = ctx.attrs.getInts("perm");
    const out = new Array<i32>(r);
    if (perm == null) {
      for (let i = 0; i < r; i++) out[i] = x.lens[r - 1 - i];
    } else {
      if (perm.length != r) return ctx.fail("perm " + listStr(perm) + " has " + perm.length.toString() + " entries for rank " + r.toString());
      const seen = new Array<bool>(r);
      for (let i = 0; i < r; i++) {
        const p = normAxis(perm[i], r);
        if (p < 0 || seen[p]) return ctx.fail("perm " + listStr(perm) + " is not a permutation of rank " + r.toString());
        seen[p] = true;
        out[i] = x.lens[p];
      }
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const st = stridesOf(x.shape.lens);
    const perm = ctx.attrs.getInts("perm");
    const vs = new Array<i32>(r);
    for (let i = 0; i < r; i++) vs[i] = perm == null ? st[r - 1 - i] : st[normAxis(perm[i], r)];
    copyView(y.ptr, x.ptr, x.shape.elementSize(), y.shape.lens, vs, 0);
    return true;
  }
}

/** The largest dim a shape holds (lens are i32). */
const I32_MAX: i64 = 0x7fffffff;

class DepthToSpaceOp extends Op {
  constructor() { super("DepthToSpace"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (x.rank() != 4) return ctx.fail("input must be rank 4 (N,C,H,W), got " + x.toString());
    const b64 = ctx.attrs.getInt("blocksize", 0);
    if (b64 <= 0) return ctx.fail("blocksize " + b64.toString() + " must be positive");
    // blocksize^2 must divide the channels, so it is at most their square root
    if (b64 > <i64>x.lens[1] || b64 * b64 > <i64>x.lens[1] || <i64>x.lens[1] % (b64 * b64) != 0) {
      return ctx.fail("channels " + x.lens[1].toString() + " are not divisible by blocksize^2 = " + (b64 * b64).toString());
    }
    const b = <i32>b64;
    if (<i64>x.lens[2] * b64 > I32_MAX || <i64>x.lens[3] * b64 > I32_MAX) return ctx.fail("output height or width overflows");
    ctx.out(Shape.standard(x.dtype, [x.lens[0], x.lens[1] / (b * b), x.lens[2] * b, x.lens[3] * b]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const b = <i32>ctx.attrs.getInt("blocksize", 0);
    const N = x.shape.lens[0], C = x.shape.lens[1], H = x.shape.lens[2], W = x.shape.lens[3];
    const C2 = C / (b * b);
    const HW = H * W;
    const crd = ctx.attrs.getString("mode", "DCR") == "CRD";
    const lens: Array<i32> = [N, C2, H, b, W, b];
    let strides: Array<i32>;
    if (crd) strides = [C * HW, b * b * HW, W, b * HW, 1, HW];
    else strides = [C * HW, HW, W, b * C2 * HW, 1, C2 * HW];
    copyView(ctx.output(0).ptr, x.ptr, x.shape.elementSize(), lens, strides, 0);
    return true;
  }
}

class SpaceToDepthOp extends Op {
  constructor() { super("SpaceToDepth"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (x.rank() != 4) return ctx.fail("input must be rank 4 (N,C,H,W), got " + x.toString());
    const b64 = ctx.attrs.getInt("blocksize", 0);
    if (b64 <= 0) return ctx.fail("blocksize " + b64.toString() + " must be positive");
    if (b64 > <i64>x.lens[2] || <i64>x.lens[2] % b64 != 0 || <i64>x.lens[3] % b64 != 0) {
      return ctx.fail("height and width are not divisible by blocksize " + b64.toString());
    }
    const b = <i32>b64;
    if (<i64>x.lens[1] * b64 * b64 > I32_MAX) return ctx.fail("output channels overflow");
    ctx.out(Shape.standard(x.dtype, [x.lens[0], x.lens[1] * b * b, x.lens[2] / b, x.lens[3] / b]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const b = <i32>ctx.attrs.getInt("blocksize", 0);
    const N = x.shape.lens[0], C = x.shape.lens[1], H = x.shape.lens[2], W = x.shape.lens[3];
    const HW = H * W;
    // input as [N,C,H/b,b,W/b,b] -> [N,b,b,C,H/b,W/b]
    const lens: Array<i32> = [N, b, b, C, H / b, W / b];
    const strides: Array<i32> = [C * HW, W, 1, HW, b * W, b];
    copyView(ctx.output(0).ptr, x.ptr, x.shape.elementSize(), lens, strides, 0);
    return true;
  }
}

export function registerLayoutOps(): void {
  registerOp(new TransposeOp());
  registerOp(new DepthToSpaceOp());
  registerOp(new SpaceToDepthOp());
}
