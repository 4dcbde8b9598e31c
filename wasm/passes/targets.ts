// The targets' pipelines, each readable top to bottom (docs/internals.md "Targets"):
// `compilePasses` compile a program for a target, `planPasses` re-derive a deserialized
// program's plan (no optimization runs again), and `literalPasses` lower baked weights.
import { Cse } from "./cse";
import { Dce } from "./dce";
import { EliminateIdentity } from "./eliminate_identity";
import { FoldConstants } from "./fold_constants";
import { FuseElementwise } from "./fuse_elementwise";
import { HoistPrepare } from "./hoist_prepare";
import { LayoutLiterals } from "./layout_literals";
import { MemoryPlan } from "./memory_plan";
import { PackGemmWeights } from "./pack_gemm_weights";
import { Pass } from "./pass";
import { RefuseBounded } from "./refuse_bounded";
import { ReplaceExternalWeights, WeightTable } from "./replace_external_weights";
import { FOLD_MAX_BYTES } from "../ir/codec";

export const TARGET_REF = "ref";
export const TARGET_GPU = "gpu";

/** ref's SIMD kernels want 64-byte blocks; the gpu wants 256 (coalesced, vector loads, BLAS). */
function alignOf(target: string): usize {
  return target == TARGET_GPU ? 256 : 64;
}

export function isTarget(target: string): bool {
  return target == TARGET_REF || target == TARGET_GPU;
}

/** The compile pipeline of `target` (null for an unknown target). */
export function compilePasses(target: string): Array<Pass> | null {
  if (!isTarget(target)) return null;
  const p = new Array<Pass>();
  p.push(new EliminateIdentity());
  p.push(new FoldConstants(FOLD_MAX_BYTES));
  p.push(new Cse());
  if (target == TARGET_REF) p.push(new PackGemmWeights()); // the gpu's BLAS takes B as it is
  p.push(new Dce());
  if (target == TARGET_REF) p.push(new FuseElementwise()); // the gpu fuses in its own lowering (hip/)
  if (target == TARGET_GPU) p.push(new RefuseBounded(target)); // no run-time extents on the device path
  p.push(new HoistPrepare());
  p.push(new MemoryPlan(alignOf(target), target == TARGET_GPU));
  if (target == TARGET_GPU) p.push(new LayoutLiterals(256));
  return p;
}

/** What deserialize re-runs: the plan is derived from the IR alone, deterministically. */
export function planPasses(target: string): Array<Pass> | null {
  if (!isTarget(target)) return null;
  const p = new Array<Pass>();
  if (target == TARGET_GPU) p.push(new RefuseBounded(target));
  p.push(new HoistPrepare());
  p.push(new MemoryPlan(alignOf(target), target == TARGET_GPU));
  if (target == TARGET_GPU) p.push(new LayoutLiterals(256));
  return p;
}

/**
 * The passes that lower baked weights on `target` (docs/internals.md "Baking"): first
 * replace_external_weights (the weights named in `table` become host literals in place), then
 * hoist_prepare (weight-only work stays in the prepare step), and on gpu layout_literals (the new
 * literals get places in the device literal arena). No folding, dce or re-planning: a compiled
 * program's memory plan is positional.
 */
export function literalPasses(target: string, table: WeightTable): Array<Pass> | null {
  if (!isTarget(target)) return null;
  const p = new Array<Pass>();
  p.push(new ReplaceExternalWeights(table));
  p.push(new HoistPrepare());
  if (target == TARGET_GPU) p.push(new LayoutLiterals(256));
  return p;
}
