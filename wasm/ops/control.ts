// Control flow: If. Its branches are submodules (attributes then_branch / else_branch); the
// executor runs the chosen one and copies its returns to the If outputs, so compute here is
// never called. The leaves (@param, @literal, onnx_external_weights) are instruction kinds in
// wasm/ir/program.ts, not ops.
import { Shape } from "../ir/shape";
import { ComputeContext, Op, OP_NO_FOLD, ShapeContext } from "./op";
import { registerOp } from "./registry";

class IfOp extends Op {
  constructor() {
    super("If", OP_NO_FOLD);
  }
  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("If needs a condition input");
    if (ctx.input(0).elements() != 1) return ctx.fail("If condition must have one element");
    const thenHas = ctx.subgraphOutputs.has("then_branch");
    const elseHas = ctx.subgraphOutputs.has("else_branch");
    if (!thenHas || !elseHas) return ctx.fail("If needs then_branch and else_branch subgraphs");
    const t = ctx.subgraphOutputs.get("then_branch");
    const e = ctx.subgraphOutputs.get("else_branch");
    if (t.length != e.length) {
      return ctx.fail("branches return " + t.length.toString() + " and " + e.length.toString() + " values");
    }
    if (t.length < ctx.numOutputs) {
      return ctx.fail("branches return " + t.length.toString() + " values for " + ctx.numOutputs.toString() + " outputs");
    }
    for (let i = 0; i < ctx.numOutputs; i++) {
      const a = t[i];
      const b = e[i];
      if (a.dtype != b.dtype || !a.sameLens(b)) {
        return ctx.fail("output " + i.toString() + " is " + a.toString() + " in then_branch and " + b.toString() +
          " in else_branch; kiln needs one static shape");
      }
      ctx.out(Shape.standard(a.dtype, a.lens));
    }
    return true;
  }
  compute(ctx: ComputeContext): bool {
    return ctx.fail("If runs only in the executor");
  }
}

export function registerControl(): void {
  registerOp(new IfOp());
}
