// fold_if: an If whose condition is a compile-time constant (a literal, say a frozen graph input
// folded through its producers) is replaced by its chosen branch: the branch's instructions move
// into the If's module in place of the If, its nested submodules are re-parented there, and the
// If's outputs become the branch's returns. Both branch modules are left empty. It runs during
// decode, node by node (wasm/ir/codec.ts), so that nodes after the If see the chosen branch's
// shapes and constants, and an If whose branches differ in shape compiles once its condition is
// known. When the condition is not constant and the branches differ, the If stays pending
// (`deferIf`) until decode ends, since a later If may drop the branch it sits in; if it is still
// there, `explainIf` reports which graph inputs decide it, to be frozen.
import { E_GRAPH, E_NEEDS_CONSTANT, report } from "../ir/diag";
import { Instruction, K_NODE, K_PARAM, Module, Program, Value } from "../ir/program";
import { Shape } from "../ir/shape";

/** The module index of subgraph attribute `name`, or -1 when absent or incomplete. */
function branch(prog: Program, ins: Instruction, name: string): i32 {
  const g = ins.attrs.getGraph(name);
  if (g < 0 || g >= prog.modules.length || !prog.modules[g].hasReturn) return -1;
  return g;
}

/** Empties module `mi` and every module within it. */
function clearModule(prog: Program, mi: i32): void {
  for (let i = 0; i < prog.modules.length; i++) {
    if (!prog.isWithin(i, mi)) continue;
    const sub = prog.modules[i];
    sub.instrs = new Array<Instruction>();
    sub.returns = new Array<Value>();
    sub.returnNames = new Array<string>();
  }
}

/** 1 or 0 for an If whose condition is a one-element literal, else -1. */
export function constantCondition(ins: Instruction): i32 {
  if (ins.inputs.length < 1) return -1;
  const c = ins.inputs[0];
  if (c == null) return -1;
  const p = c.producer;
  if (p == null || !p.isConstant() || c.shape.elements() != 1) return -1;
  return p.literalTensor().getAsF64(0) != 0 ? 1 : 0;
}

/**
 * Inlines the chosen branch of an If with a constant condition into `m` (the If itself is not
 * added). Returns the values that replace the If's outputs, or null with a diagnostic when the
 * branch is missing or returns too few values.
 */
export function inlineIf(prog: Program, m: Module, ins: Instruction, cond: bool): Array<Value> | null {
  const t = branch(prog, ins, "then_branch");
  const e = branch(prog, ins, "else_branch");
  if (t < 0 || e < 0) {
    report(E_GRAPH, ins.nodeName, ins.opName, "If needs complete then_branch and else_branch subgraphs");
    return null;
  }
  const ci = cond ? t : e;
  const chosen = prog.modules[ci];
  if (chosen.returns.length < ins.outputs.length) {
    report(E_GRAPH, ins.nodeName, ins.opName, (cond ? "then_branch" : "else_branch") + " returns " +
      chosen.returns.length.toString() + " values for " + ins.outputs.length.toString() + " outputs");
    return null;
  }
  const outs = new Array<Value>(ins.outputs.length);
  for (let i = 0; i < ins.outputs.length; i++) outs[i] = chosen.returns[i];
  for (let i = 0; i < chosen.instrs.length; i++) {
    const x = chosen.instrs[i];
    x.module = m.index;
    m.instrs.push(x);
  }
  chosen.instrs = new Array<Instruction>();
  for (let i = 0; i < prog.modules.length; i++) {
    if (prog.modules[i].parent == ci) prog.modules[i].parent = m.index;
  }
  clearModule(prog, ci);
  clearModule(prog, cond ? e : t);
  return outs;
}

/** Names of the main module's params (graph inputs) that value v depends on. */
function deciders(v: Value): Array<string> {
  const names = new Array<string>();
  const seen = new Set<i32>();
  const stack = new Array<Value>();
  stack.push(v);
  while (stack.length > 0) {
    const x = stack.pop();
    if (seen.has(x.id)) continue;
    seen.add(x.id);
    const p = x.producer;
    if (p == null) continue;
    if (p.kind == K_PARAM && p.module == 0) {
      if (!names.includes(p.nodeName)) names.push(p.nodeName);
    } else if (p.kind == K_NODE) {
      for (let i = 0; i < p.inputs.length; i++) {
        const y = p.inputs[i];
        if (y != null) stack.push(y);
      }
    }
  }
  return names;
}

/** The first output whose shape differs between the If's branches, or -1 (also when a branch is missing). */
export function differingOutput(prog: Program, ins: Instruction): i32 {
  const t = branch(prog, ins, "then_branch");
  const e = branch(prog, ins, "else_branch");
  if (t < 0 || e < 0 || ins.inputs.length < 1 || ins.inputs[0] == null) return -1; // If's own checks report it
  const a = prog.modules[t].returns, b = prog.modules[e].returns;
  for (let i = 0; i < ins.outputs.length && i < a.length && i < b.length; i++) {
    const x = a[i].shape, y = b[i].shape;
    if (x.dtype != y.dtype || !x.sameLens(y)) return i;
  }
  return -1;
}

/**
 * An If with a non-constant condition whose branches differ stays pending while decoding goes on
 * (it may sit in a branch that a later If folds away): its outputs take then_branch's shapes
 * for now, and `explainIf` reports it if it is still there at the end.
 */
export function deferIf(prog: Program, ins: Instruction): void {
  const t = prog.modules[branch(prog, ins, "then_branch")];
  for (let i = 0; i < ins.outputs.length; i++) {
    const s = t.returns[i].shape;
    ins.outputs[i].shape = Shape.standard(s.dtype, s.lens);
  }
}

/** Whether instruction ins is still in a module (not dropped with a folded-away branch). */
export function isLive(prog: Program, ins: Instruction): bool {
  return prog.modules[ins.module].instrs.includes(ins);
}

/**
 * Reports that the If's branches return different shapes and its condition is not constant,
 * naming the graph inputs the condition depends on, to be frozen.
 */
/** The graph inputs that decide the last If `explainIf` reported (index.ts `if_deciders`). */
export const lastDeciders = new Array<string>();

export function explainIf(prog: Program, ins: Instruction): void {
  const i = differingOutput(prog, ins);
  if (i < 0) return;
  const found = deciders(ins.inputs[0]!);
  lastDeciders.length = 0;
  for (let j = 0; j < found.length; j++) lastDeciders.push(found[j]);
  const x = prog.modules[branch(prog, ins, "then_branch")].returns[i].shape;
  const y = prog.modules[branch(prog, ins, "else_branch")].returns[i].shape;
  const names = deciders(ins.inputs[0]!);
  let hint: string;
  if (names.length == 0) {
    hint = "its condition is not a compile-time constant: freeze the graph input that decides it";
  } else {
    let list = "";
    for (let j = 0; j < names.length; j++) list += (j > 0 ? ", " : "") + "'" + names[j] + "'";
    hint = "its condition depends on graph input" + (names.length > 1 ? "s " : " ") + list +
      ": freeze " + (names.length > 1 ? "them" : "it") + " (--freeze " + names[0] + "=VALUE, or the freeze option)" +
      " so that the If folds to one branch";
  }
  report(E_NEEDS_CONSTANT, ins.nodeName, ins.opName, "output " + i.toString() + " is " + x.toString() +
    " in then_branch and " + y.toString() + " in else_branch; kiln needs one static shape, and " + hint);
}
