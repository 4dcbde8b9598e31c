// fold_constants: a node whose inputs are all literals (or whose op only reads shapes) and whose
// outputs are small becomes literals. Never folds onnx_external_weights or OP_NO_FOLD ops.
import { insertAt, Instruction, K_LITERAL, K_NODE, Module, Program } from "../ir/program";
import { Tensor } from "../ir/tensor";
import { ComputeContext, OP_NO_FOLD, OP_SHAPE_ONLY } from "../ops/op";
import { Pass } from "./pass";

/**
 * Folds `ins` (an instruction of `m`) into literals when it can; false only when compute
 * failed (a diagnostic is recorded).
 */
export function foldInstruction(prog: Program, m: Module, ins: Instruction, maxBytes: i32): bool {
  if (ins.kind != K_NODE || ins.op == null) return true;
  const op = ins.op!;
  if (op.has(OP_NO_FOLD)) return true;
  const names = ins.attrs.names();
  for (let i = 0; i < names.length; i++) if (ins.attrs.getGraph(names[i]) >= 0) return true;
  const shapeOnly = op.has(OP_SHAPE_ONLY);
  const n = ins.inputs.length;
  const inputs = new Array<Tensor | null>(n);
  for (let i = 0; i < n; i++) {
    const x = ins.inputs[i];
    if (x == null) {
      inputs[i] = null;
      continue;
    }
    const p = x.producer;
    if (p != null && p.isConstant()) inputs[i] = p.literalTensor();
    else if (shapeOnly) inputs[i] = new Tensor(x.shape, 0);
    else return true;
  }
  for (let i = 0; i < ins.outputs.length; i++) {
    if (ins.outputs[i].shape.bytes() > maxBytes) return true;
  }
  const outs = new Array<Tensor>(ins.outputs.length);
  for (let i = 0; i < ins.outputs.length; i++) outs[i] = Tensor.alloc(ins.outputs[i].shape);
  const ctx = new ComputeContext(ins.nodeName, ins.opName, ins.attrs, prog.opset, inputs, outs);
  if (!op.compute(ctx)) {
    for (let i = 0; i < outs.length; i++) heap.free(outs[i].ptr);
    return false;
  }
  const at = m.instrs.lastIndexOf(ins);
  const lits = new Array<Instruction>();
  for (let i = 0; i < ins.outputs.length; i++) {
    const v = ins.outputs[i];
    const lit = new Instruction(K_LITERAL, "@literal", v.name.length > 0 ? v.name : ins.nodeName, m.index);
    lit.ptr = outs[i].ptr;
    v.producer = lit;
    v.index = 0;
    lit.outputs.push(v);
    lits.push(lit);
  }
  if (at >= 0) {
    m.instrs.splice(at, 1);
    for (let i = lits.length - 1; i >= 0; i--) insertAt<Instruction>(m.instrs, at, lits[i]);
  }
  return true;
}

export class FoldConstants extends Pass {
  maxBytes: i32;
  constructor(maxBytes: i32) {
    super("fold_constants");
    this.maxBytes = maxBytes;
  }
  apply(prog: Program, m: Module): bool {
    // instructions are in topological order: one sweep folds whole constant chains
    const snapshot = m.instrs.slice(0);
    for (let i = 0; i < snapshot.length; i++) {
      if (!foldInstruction(prog, m, snapshot[i], this.maxBytes)) return false;
    }
    return true;
  }
}
