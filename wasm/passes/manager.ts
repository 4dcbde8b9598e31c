// The pass manager: runs a list of passes over every module (main first), validating the IR
// after each pass when asked and timing each pass through the host's clock. The targets'
// pipelines are in targets.ts.
import { Module, Program } from "../ir/program";
import { Pass } from "./pass";
import { validateModule } from "./validate";

// @ts-ignore: decorator
@external("env", "now")
declare function hostNow(): f64;

export const PM_VALIDATE: i32 = 1;
export const PM_TIMINGS: i32 = 2;

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
