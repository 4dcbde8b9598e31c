// Ops whose output is their input's bytes unchanged: the pure reshapes (Reshape, Flatten,
// Squeeze, Unsqueeze: OP_ALIAS_RESHAPE) and Identity, Dropout (OP_IDENTITY, inference only).
import { Diagnostic, diagnostics, E_UNSUPPORTED_OP } from "../../ir/diag";
import { DT_BOOL } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { ComputeContext, Op, OP_ALIAS_RESHAPE, OP_IDENTITY, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { copyAll, listStr, movable, normAxis, notConstant, product, shapeInts } from "../data/util";

// ---------------------------------------------------------------------------------------
// Pure reshapes

class ReshapeOp extends Op {
  constructor() { super("Reshape", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "shape");
    const sh = shapeInts(ctx, 1, "shape");
    if (sh == null) return ctx.fail("the target shape is missing (input 1)");
    const allowzero = ctx.attrs.getInt("allowzero", 0) != 0;
    const out = new Array<i32>(sh.length);
    let inferAt: i32 = -1;
    let known: i64 = 1;
    for (let i = 0; i < sh.length; i++) {
      const v = sh[i];
      if (v == 0 && !allowzero) {
        if (i >= x.rank()) {
          return ctx.fail("cannot reshape " + x.toString() + " to " + listStr(sh) + ": 0 at index " +
            i.toString() + " copies an input dim that does not exist");
        }
        out[i] = x.lens[i];
      } else if (v == -1) {
        if (inferAt >= 0) return ctx.fail("cannot reshape " + x.toString() + " to " + listStr(sh) + ": more than one -1");
        inferAt = i;
        continue;
      } else if (v < 0 || v > 0x7fffffff) {
        return ctx.fail("cannot reshape " + x.toString() + " to " + listStr(sh) + ": dim " + v.toString() + " is invalid");
      } else {
        out[i] = <i32>v;
      }
      known *= <i64>out[i];
    }
    const total = <i64>x.elements();
    if (inferAt >= 0) {
      if (known == 0 || total % known != 0) {
        return ctx.fail("cannot reshape " + x.toString() + " (" + total.toString() + " elements) to " + listStr(sh));
      }
      out[inferAt] = <i32>(total / known);
    } else if (known != total) {
      return ctx.fail("cannot reshape " + x.toString() + " (" + total.toString() + " elements) to " + listStr(sh));
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class FlattenOp extends Op {
  constructor() { super("Flatten", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    let a = ctx.attrs.getInt("axis", 1);
    if (a < 0) a += r;
    if (a < 0 || a > r) return ctx.fail("axis " + ctx.attrs.getInt("axis", 1).toString() + " is out of range for rank " + r.toString());
    const ax = <i32>a;
    ctx.out(Shape.standard(x.dtype, [product(x.lens, 0, ax), product(x.lens, ax, r)]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class SqueezeOp extends Op {
  constructor() { super("Squeeze", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "axes");
    const axes = shapeInts(ctx, 1, "axes");
    const r = x.rank();
    const drop = new Array<bool>(r);
    if (axes == null || axes.length == 0) {
      for (let i = 0; i < r; i++) drop[i] = x.lens[i] == 1;
    } else {
      for (let i = 0; i < axes.length; i++) {
        const a = normAxis(axes[i], r);
        if (a < 0) return ctx.fail("axis " + axes[i].toString() + " is out of range for rank " + r.toString());
        if (x.lens[a] != 1) return ctx.fail("cannot squeeze axis " + axes[i].toString() + " of length " + x.lens[a].toString());
        drop[a] = true;
      }
    }
    const out = new Array<i32>();
    for (let i = 0; i < r; i++) if (!drop[i]) out.push(x.lens[i]);
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class UnsqueezeOp extends Op {
  constructor() { super("Unsqueeze", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "axes");
    const axes = shapeInts(ctx, 1, "axes");
    if (axes == null) return ctx.fail("axes are missing");
    const r = x.rank() + axes.length;
    const ins = new Array<bool>(r);
    for (let i = 0; i < axes.length; i++) {
      const a = normAxis(axes[i], r);
      if (a < 0) return ctx.fail("axis " + axes[i].toString() + " is out of range for output rank " + r.toString());
      if (ins[a]) return ctx.fail("axis " + axes[i].toString() + " is repeated in " + listStr(axes));
      ins[a] = true;
    }
    const out = new Array<i32>(r);
    let j = 0;
    for (let i = 0; i < r; i++) out[i] = ins[i] ? 1 : x.lens[j++];
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Identity, Dropout

class IdentityOp extends Op {
  constructor() { super("Identity", OP_IDENTITY); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class DropoutOp extends Op {
  constructor() { super("Dropout", OP_IDENTITY); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (ctx.hasInput(2)) {
      // training mode drops at random: kiln runs inference only, so only ratio 0 is exact
      const tm = ctx.constant(2);
      if (tm == null) return ctx.needConstant(2, "training_mode");
      if (tm.elements() > 0 && tm.getAsF64(0) != 0) {
        let ratio: f64 = 0.5;
        if (ctx.hasInput(1)) {
          const rc = ctx.constant(1);
          if (rc == null) return ctx.needConstant(1, "ratio");
          ratio = rc.getAsF64(0);
        }
        if (ratio != 0) {
          diagnostics.push(new Diagnostic(E_UNSUPPORTED_OP, ctx.nodeName, ctx.opName,
            "training_mode is true with ratio " + ratio.toString() + ": random dropout is not supported (kiln runs inference)", ""));
          return false;
        }
      }
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    if (ctx.numOutputs > 1) ctx.out(Shape.standard(ctx.opset >= 10 ? DT_BOOL : x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    if (ctx.outputs.length > 1) {
      const m = ctx.output(1);
      const n = m.elements();
      for (let i = 0; i < n; i++) m.setFromF64(i, 1);
    }
    return true;
  }
}

export function registerReshapeOps(): void {
  registerOp(new ReshapeOp());
  registerOp(new FlattenOp());
  registerOp(new SqueezeOp());
  registerOp(new UnsqueezeOp());
  registerOp(new IdentityOp());
  registerOp(new DropoutOp());
}
