// refuse_bounded: fails the compile when a value's size depends on data (Value.bounded: NonZero,
// Compress, Unique, NonMaxSuppression with non-constant inputs). The gpu target's pipeline runs
// it: its executor copies outputs back at their planned size and cannot see the actual extent
// the host fallback kernel wrote (docs/internals.md "Bounded extents").
import { E_NEEDS_CONSTANT, report } from "../ir/diag";
import { K_NODE, Module, Program } from "../ir/program";
import { Pass } from "./pass";

export class RefuseBounded extends Pass {
  target: string;
  constructor(target: string) {
    super("refuse_bounded");
    this.target = target;
  }
  apply(prog: Program, m: Module): bool {
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind != K_NODE) continue;
      for (let j = 0; j < ins.outputs.length; j++) {
        const v = ins.outputs[j];
        if (v.bounded == 0) continue;
        report(E_NEEDS_CONSTANT, ins.nodeName, ins.opName, "Node '" + ins.nodeName + "' (" + ins.opName +
          ") gives output '" + v.name + "' a size that depends on data (" + v.shape.toString() +
          " is only an upper bound); the " + this.target + " target does not run such programs: compile for " +
          "ref, or bind the inputs that decide the size as constants");
        return false;
      }
    }
    return true;
  }
}
