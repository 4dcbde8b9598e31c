// hoist_prepare: re-marks the main module's nodes that depend only on literals and weights as `prepare` (run once per bind/finalize, not per run).
//
// A literal pass: after baking, a weight is a literal, and the work that depends only on it must
// still be hoisted. It uses memory_plan's own rule (`trackWeightOnly`). Nodes are not moved and the
// arena is not re-planned: an output of a newly hoisted node leaves the arena for its own buffer
// (its arena block stays reserved and unused); a node no longer hoisted keeps its own buffer,
// which is valid for a node run every time. Without a plan (memory_plan disabled), finalize's
// naive plan decides, as for any unplanned module.
import { K_NODE, LOC_ARENA, LOC_BUFFER, Module, Program } from "../ir/program";
import { trackWeightOnly } from "./memory_plan";
import { Pass } from "./pass";

export class HoistPrepare extends Pass {
  constructor() {
    super("hoist_prepare");
  }
  apply(prog: Program, m: Module): bool {
    if (m.index != 0 || !m.planned) return true;
    const fixed = new Set<i32>();
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      const hoisted = trackWeightOnly(ins, fixed);
      if (ins.kind != K_NODE) continue;
      ins.prepare = hoisted;
      if (!hoisted) continue;
      for (let j = 0; j < ins.outputs.length; j++) {
        const v = ins.outputs[j];
        if (v.loc == LOC_ARENA) v.loc = LOC_BUFFER;
      }
    }
    return true;
  }
}
