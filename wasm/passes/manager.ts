// The pass manager: runs a list of passes over every module (main first), validating the IR
// after each pass when asked and timing each pass through the host's clock.
import { Module, Program } from "../ir/program";
import { Cse } from "./cse";
import { Dce } from "./dce";
import { EliminateIdentity } from "./eliminate_identity";
import { FoldConstants } from "./fold_constants";
import { HoistPrepare } from "./hoist_prepare";
import { MemoryPlan } from "./memory_plan";
import { PackGemmWeights } from "./pack_gemm_weights";
import { Pass } from "./pass";
import { ReplaceExternalWeights, WeightTable } from "./replace_external_weights";
import { validateModule } from "./validate";
import { FOLD_MAX_BYTES } from "../ir/codec";

// @ts-ignore: decorator
@external("env", "now")
declare function hostNow(): f64;

export const PM_VALIDATE: i32 = 1;
export const PM_TIMINGS: i32 = 2;

/** The ref target's pipeline, top to bottom. */
export function refPasses(): Array<Pass> {
  const p = new Array<Pass>();
  p.push(new EliminateIdentity());
  p.push(new FoldConstants(FOLD_MAX_BYTES));
  p.push(new Cse());
  p.push(new PackGemmWeights());
  p.push(new Dce());
  p.push(new MemoryPlan());
  return p;
}

/**
 * The passes that lower literals on `target` (baking, docs/internals.md "Baking"): first
 * replace_external_weights (the weights named in `table` become host literals in place), then
 * what the target needs once literals appear. For `ref`: hoist_prepare (weight-only work stays
 * in the prepare step). No folding, dce or re-planning: a compiled program's plan is positional.
 * Null for an unknown target.
 */
export function literalPasses(target: string, table: WeightTable): Array<Pass> | null {
  if (target != "ref") return null;
  const p = new Array<Pass>();
  p.push(new ReplaceExternalWeights(table));
  p.push(new HoistPrepare());
  return p;
}

/** Runs `passes` over every module of `prog`, skipping names in `disabled`; false on failure. */
export function runPasses(prog: Program, passes: Array<Pass>, flags: i32, disabled: Set<string>): bool {
  const validate = (flags & PM_VALIDATE) != 0;
  const timings = (flags & PM_TIMINGS) != 0;
  if (validate) {
    for (let mi = 0; mi < prog.modules.length; mi++) {
      if (!validateModule(prog, prog.modules[mi], "decode")) return false;
    }
  }
  for (let pi = 0; pi < passes.length; pi++) {
    const pass = passes[pi];
    if (disabled.has(pass.name)) continue;
    const t0 = timings ? hostNow() : 0;
    for (let mi = 0; mi < prog.modules.length; mi++) {
      const m: Module = prog.modules[mi];
      if (!pass.apply(prog, m)) return false;
    }
    if (timings) {
      prog.timingNames.push(pass.name);
      prog.timingMs.push(hostNow() - t0);
    }
    prog.passes.push(pass.name);
    if (validate) {
      for (let mi = 0; mi < prog.modules.length; mi++) {
        if (!validateModule(prog, prog.modules[mi], pass.name)) return false;
      }
    }
  }
  return true;
}
