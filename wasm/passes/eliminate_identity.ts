// eliminate_identity: removes OP_IDENTITY nodes (Identity, inference Dropout), using input 0
// in place of output 0 (a Dropout mask output keeps the node).
import { Instruction, K_NODE, Module, Program, replaceUses, useCounts } from "../ir/program";
import { OP_IDENTITY } from "../ops/op";
import { Pass } from "./pass";

export class EliminateIdentity extends Pass {
  constructor() {
    super("eliminate_identity");
  }
  apply(prog: Program, m: Module): bool {
    const uses = useCounts(prog);
    const keep = new Array<bool>(m.instrs.length);
    let removed = false;
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      keep[i] = true;
      if (ins.kind != K_NODE || ins.op == null || !ins.op!.has(OP_IDENTITY)) continue;
      if (ins.inputs.length < 1 || ins.inputs[0] == null) continue;
      let extraUsed = false;
      for (let j = 1; j < ins.outputs.length; j++) {
        if (uses.has(ins.outputs[j].id)) extraUsed = true;
      }
      if (extraUsed) continue;
      const src = ins.inputs[0]!;
      const out = ins.outputs[0];
      if (!src.shape.sameLens(out.shape) || src.shape.dtype != out.shape.dtype) continue;
      replaceUses(prog, out, src);
      keep[i] = false;
      removed = true;
    }
    if (removed) {
      const kept = new Array<Instruction>();
      for (let i = 0; i < m.instrs.length; i++) if (keep[i]) kept.push(m.instrs[i]);
      m.instrs = kept;
    }
    return true;
  }
}
