// kiln.fused_elementwise: a group of float32 elementwise nodes made one by fuse_elementwise (ref
// target). The steps run block by block (kernels/par_eltwise.ts fusedF32Par), each with the row
// kernel its node ran on, so every element is computed exactly as the unfused nodes compute it.
import { DT_FLOAT } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { B_ADD, B_DIV, B_MUL, B_SUB } from "../kernels/eltwise";
import { fusedF32Par } from "../kernels/par_eltwise";
import { U_CLIP, unarySimd } from "./math/unary";
import { ComputeContext, Op, OP_ELEMENTWISE, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";

export const FUSED_ELEMENTWISE: string = "kiln.fused_elementwise";
/** At most this many nodes in one fused node. */
export const FUSED_MAX_STEPS: i32 = 32;

/** Main instance: the run's step, parameter and input tables (grow-only). */
let tables: usize = 0;
let tablesCap: usize = 0;

/**
 * kiln.fused_elementwise {steps, params, shape, ops}: `steps` holds 4 ints per step (kind: 0 unary
 * on operand a, 1 binary a op b; the kernel's code; operands a and b: r >= 0 is step r's result,
 * r < 0 is input -r-1), `params` 2 floats per step (a unary kernel's parameters), `shape` the output
 * lens, `ops` the fused nodes' ops ("Mul+Pow+Mul", what a profile shows). Every input is float32 of
 * the output's lens or a single element (broadcast); the last step's result is the output.
 */
class FusedElementwiseOp extends Op {
  constructor() {
    super(FUSED_ELEMENTWISE, OP_ELEMENTWISE | OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    const steps = ctx.attrs.getInts("steps");
    const params = ctx.attrs.getFloats("params");
    const lens = ctx.attrs.getInts("shape");
    if (steps == null || params == null || lens == null) return ctx.fail("attributes steps, params and shape are required");
    const ns = steps.length >> 2;
    if (ns < 1 || ns > FUSED_MAX_STEPS || steps.length != ns << 2 || params.length != ns << 1) {
      return ctx.fail("steps (" + steps.length.toString() + " ints) and params (" + params.length.toString() +
        " floats) do not describe 1 to " + FUSED_MAX_STEPS.toString() + " steps");
    }
    const dims = new Array<i32>(lens.length);
    for (let d = 0; d < lens.length; d++) {
      if (lens[d] < 0 || lens[d] > i32.MAX_VALUE) return ctx.fail("bad output dim " + lens[d].toString());
      dims[d] = <i32>lens[d];
    }
    const out = Shape.standard(DT_FLOAT, dims);
    for (let i = 0; i < ctx.count(); i++) {
      if (!ctx.hasInput(i)) return ctx.fail("input " + i.toString() + " is required");
      const x = ctx.input(i);
      if (x.dtype != DT_FLOAT) return ctx.failDtype(i);
      if (!x.sameLens(out) && x.elements() != 1) {
        return ctx.fail("input " + i.toString() + " " + x.toString() + " is neither " + out.toString() +
          " nor one element");
      }
    }
    for (let s = 0; s < ns; s++) {
      const kind = steps[s << 2];
      const code = steps[(s << 2) + 1];
      if (kind != 0 && kind != 1) return ctx.fail("step " + s.toString() + " has kind " + kind.toString());
      // only the kernels fuse_elementwise emits (a program file could hold anything)
      const okCode = kind == 0
        ? code >= 0 && code <= i32.MAX_VALUE && unarySimd(<i32>code) && code != U_CLIP
        : code == B_ADD || code == B_SUB || code == B_MUL || code == B_DIV;
      if (!okCode) return ctx.fail("step " + s.toString() + " has no kernel " + code.toString());
      let full = false;
      for (let k = 0; k < (kind == 0 ? 1 : 2); k++) {
        const r = steps[(s << 2) + 2 + k];
        if (r >= <i64>s || -r - 1 >= <i64>ctx.count()) {
          return ctx.fail("step " + s.toString() + " reads " + (r >= 0 ? "step " + r.toString() : "input " +
            (-r - 1).toString()) + ", which it cannot");
        }
        if (r >= 0 || ctx.input(<i32>(-r - 1)).sameLens(out)) full = true;
      }
      // a unary step, and at least one operand of a binary step, reads whole blocks
      if (!full && out.elements() != 1) return ctx.fail("step " + s.toString() + " reads only single elements");
      if (kind == 0 && !full) return ctx.fail("step " + s.toString() + " reads a single element");
    }
    ctx.out(out);
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const steps = ctx.attrs.getInts("steps")!;
    const params = ctx.attrs.getFloats("params")!;
    const ns = steps.length >> 2;
    const ni = ctx.inputs.length;
    const o = ctx.output(0);
    const need = (<usize>ns << 4) + (<usize>ns << 3) + (<usize>ni << 3);
    if (need > tablesCap) {
      if (tables != 0) heap.free(tables);
      tables = heap.alloc(need);
      tablesCap = need;
    }
    const pSteps = tables, pParams = tables + (<usize>ns << 4), pIns = pParams + (<usize>ns << 3);
    for (let k = 0; k < steps.length; k++) store<i32>(pSteps + (<usize>k << 2), <i32>steps[k]);
    for (let k = 0; k < params.length; k++) store<f32>(pParams + (<usize>k << 2), params[k]);
    const n = o.elements();
    for (let i = 0; i < ni; i++) {
      const x = ctx.input(i);
      store<usize>(pIns + (<usize>i << 3), x.ptr);
      // a single element broadcast over a larger output reads with stride 0
      store<i32>(pIns + (<usize>i << 3), x.elements() == n ? 1 : 0, 4);
    }
    fusedF32Par(pSteps, ns, pParams, pIns, o.ptr, n);
    return true;
  }
}

/** The label a profile gives a fused node (its `ops` attribute): "Fused(Mul+Pow+Mul)". */
export function fusedLabel(ops: string): string {
  return "Fused(" + ops + ")";
}

export function registerFused(): void {
  registerOp(new FusedElementwiseOp());
}
