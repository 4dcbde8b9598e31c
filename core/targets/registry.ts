/**
 * The targets by name: the one place that maps a target's name to its implementation.
 * @module
 */
import { KilnError } from "../errors.ts";
import { gpuTarget } from "./gpu.ts";
import { refTarget } from "./ref.ts";
import type { Target, TargetName } from "./target.ts";

const _TARGETS: Record<TargetName, Target> = { ref: refTarget, gpu: gpuTarget };

/** The names of kiln's targets. */
export const TARGET_NAMES: readonly TargetName[] = Object.keys(_TARGETS) as TargetName[];

/** The target named `name`; a KilnError ("target") for an unknown name. */
export function getTarget(name: string): Target {
  const t = (_TARGETS as Record<string, Target | undefined>)[name];
  if (!t || !Object.hasOwn(_TARGETS, name)) {
    throw new KilnError("target", `Unknown target '${name}' (kiln's targets: ${TARGET_NAMES.join(", ")})`);
  }
  return t;
}
