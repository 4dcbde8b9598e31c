// dce: removes node and literal instructions whose outputs nothing uses (no input, no return,
// submodules included). Params and weights stay so that the program's signature is stable.
import { Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, Module, Program, useCounts } from "../ir/program";
import { Pass } from "./pass";

export class Dce extends Pass {
  constructor() {
    super("dce");
  }
  apply(prog: Program, m: Module): bool {
    const uses = useCounts(prog);
    const keep = new Array<bool>(m.instrs.length);
    let removed = false;
    for (let i = m.instrs.length - 1; i >= 0; i--) {
      const ins = m.instrs[i];
      keep[i] = true;
      const removable = ins.kind == K_NODE || ins.kind == K_LITERAL || ins.kind == K_HOST_LITERAL;
      if (!removable) continue;
      let used = false;
      for (let j = 0; j < ins.outputs.length; j++) if (uses.has(ins.outputs[j].id)) used = true;
      if (used) continue;
      keep[i] = false;
      removed = true;
      // its inputs lose a use: later (earlier-positioned) producers may become dead too
      for (let j = 0; j < ins.inputs.length; j++) {
        const x = ins.inputs[j];
        if (x == null || !uses.has(x.id)) continue;
        const c = uses.get(x.id) - 1;
        if (c <= 0) uses.delete(x.id);
        else uses.set(x.id, c);
      }
    }
    if (removed) {
      const kept = new Array<Instruction>();
      for (let i = 0; i < m.instrs.length; i++) if (keep[i]) kept.push(m.instrs[i]);
      m.instrs = kept;
    }
    return true;
  }
}
