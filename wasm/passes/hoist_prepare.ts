// hoist_prepare: marks the main module's nodes that depend only on literals and weights as `prepare` (run once per weight bind or finalize, not per run).
//
// The one place that decides prepare work: the compile pipeline runs it before memory_plan (which
// gives marked outputs their own buffers), deserialize re-runs it, and it is a literal pass: after
// baking, a weight is a literal and the work that depends only on it must still be hoisted. On a
// planned module nodes are not moved and the arena is not re-planned: an output of a newly hoisted
// node leaves the arena for its own buffer (its arena block stays reserved and unused); a node no
// longer hoisted keeps its own buffer, which is valid for a node run every time.
import { Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, K_WEIGHT, LOC_ARENA, LOC_BUFFER, Module, Program } from "../ir/program";
import { OP_NO_FOLD } from "../ops/op";
import { Pass } from "./pass";

/**
 * The one rule for weight-only work (hoist_prepare marks it, pack_gemm_weights packs by it): walking a
 * module in order, records in `fixed` the outputs of literals, weights and hoistable nodes, and
 * returns true for a hoistable node (one that runs in the prepare step).
 */
export function trackWeightOnly(ins: Instruction, fixed: Set<i32>): bool {
  if (ins.kind == K_LITERAL || ins.kind == K_HOST_LITERAL || ins.kind == K_WEIGHT) {
    fixed.add(ins.outputs[0].id);
    return false;
  }
  if (!hoistable(ins, fixed)) return false;
  for (let j = 0; j < ins.outputs.length; j++) fixed.add(ins.outputs[j].id);
  return true;
}

/** A node whose inputs are all literals, weights or other hoisted outputs. */
function hoistable(ins: Instruction, fixed: Set<i32>): bool {
  if (ins.kind != K_NODE || ins.op == null || ins.op!.has(OP_NO_FOLD)) return false;
  const names = ins.attrs.names();
  for (let i = 0; i < names.length; i++) if (ins.attrs.getGraph(names[i]) >= 0) return false;
  let any = false;
  for (let j = 0; j < ins.inputs.length; j++) {
    const x = ins.inputs[j];
    if (x == null) continue;
    if (!fixed.has(x.id)) return false;
    any = true;
  }
  return any;
}

export class HoistPrepare extends Pass {
  constructor() {
    super("hoist_prepare");
  }
  apply(prog: Program, m: Module): bool {
    if (m.index != 0) return true;
    const fixed = new Set<i32>();
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      const hoisted = trackWeightOnly(ins, fixed);
      if (ins.kind != K_NODE) continue;
      ins.prepare = hoisted;
      if (!hoisted || !m.planned) continue;
      for (let j = 0; j < ins.outputs.length; j++) {
        const v = ins.outputs[j];
        if (v.loc == LOC_ARENA) v.loc = LOC_BUFFER;
      }
    }
    return true;
  }
}
