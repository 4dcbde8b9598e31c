// The ref executor: finalize places every value in memory (arenas, buffers, literals) and
// prepares one ComputeContext per node; run calls each op's compute in order, with If
// running the chosen submodule and copying its returns to the If outputs.
import { diagnostics, E_MEMORY, E_RUNTIME, report } from "../ir/diag";

const MEMORY_LIMIT: u64 = 0xF0000000;
/** The allocator's largest block (TLSF: 1 GiB less its header). */
const MAX_BLOCK: u64 = (1 << 30) - 64;
import {
  Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, K_PARAM, K_WEIGHT, LOC_ALIAS, LOC_ARENA, LOC_BUFFER,
  LOC_LITERAL, Module, Program, Value,
} from "../ir/program";
import { Tensor } from "../ir/tensor";
import { ComputeContext, OP_WRITES_ALL } from "../ops/op";
import { planModule } from "../passes/memory_plan";

function own(prog: Program, bytes: i32): usize {
  const n: usize = bytes > 0 ? <usize>bytes : 1;
  // not zero-filled: the host writes params, weights and host literals, and run zero-fills
  // every node output before its compute
  const p = heap.alloc(n);
  prog.allocs.push(p);
  return p;
}

function placeValue(prog: Program, m: Module, v: Value): void {
  if (v.loc == LOC_BUFFER) v.ptr = own(prog, v.shape.bytes());
  else if (v.loc == LOC_ARENA) v.ptr = m.arena + v.offset;
  else if (v.loc == LOC_LITERAL) v.ptr = v.producer!.ptr;
}

/** Plans (if needed), allocates and prepares `prog` for run. */
export function finalizeProgram(prog: Program): bool {
  if (prog.finalized) return true;
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    if (!m.planned) planModule(prog, m, true, 64);
  }
  // refuse early (a diagnostic, not a trap) when the program cannot fit in wasm32 memory
  let need: u64 = 0;
  const hostSeen = new Set<i32>();
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    need += <u64>m.arenaBytes;
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind == K_HOST_LITERAL) {
        if (hostSeen.has(ins.hostId)) continue;
        hostSeen.add(ins.hostId);
      }
      for (let j = 0; j < ins.outputs.length; j++) {
        const v = ins.outputs[j];
        if (v.loc == LOC_BUFFER || ins.kind == K_HOST_LITERAL) {
          need += <u64>v.shape.bytes();
          if (<u64>v.shape.bytes() > MAX_BLOCK) {
            report(E_MEMORY, ins.nodeName, ins.opName, "Value '" + v.name + "' (" + v.shape.toString() +
              ") is larger than 1 GiB, the ref target's largest buffer");
            return false;
          }
        }
      }
    }
  }
  for (let mi = 0; mi < prog.modules.length; mi++) {
    if (<u64>prog.modules[mi].arenaBytes > MAX_BLOCK) {
      report(E_MEMORY, "", "", "The intermediate values of module '" + prog.modules[mi].name + "' need " +
        prog.modules[mi].arenaBytes.toString() + " bytes at once, over the ref target's 1 GiB buffer limit");
      return false;
    }
  }
  const have: u64 = <u64>memory.size() << 16;
  if (need + have > MEMORY_LIMIT) {
    report(E_MEMORY, "", "", "The program needs " + need.toString() + " bytes of memory besides the " +
      have.toString() + " in use; the ref target has 4 GiB");
    return false;
  }
  // host literals: one buffer per id, shared by every instruction that names it
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind != K_HOST_LITERAL) continue;
      if (!prog.hostPtrs.has(ins.hostId)) prog.hostPtrs.set(ins.hostId, own(prog, ins.outputs[0].shape.bytes()));
      ins.ptr = prog.hostPtrs.get(ins.hostId);
    }
  }
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    m.arena = own(prog, <i32>m.arenaBytes);
    for (let i = 0; i < m.instrs.length; i++) {
      const outs = m.instrs[i].outputs;
      for (let j = 0; j < outs.length; j++) placeValue(prog, m, outs[j]);
    }
  }
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const outs = m.instrs[i].outputs;
      for (let j = 0; j < outs.length; j++) {
        const v = outs[j];
        if (v.loc == LOC_ALIAS) v.ptr = v.aliasOf!.ptr;
      }
    }
  }
  // contexts
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind != K_NODE) continue;
      const inputs = new Array<Tensor | null>(ins.inputs.length);
      for (let j = 0; j < ins.inputs.length; j++) {
        const x = ins.inputs[j];
        inputs[j] = x == null ? null : new Tensor(x.shape, x.ptr);
      }
      const outputs = new Array<Tensor>(ins.outputs.length);
      for (let j = 0; j < ins.outputs.length; j++) outputs[j] = new Tensor(ins.outputs[j].shape, ins.outputs[j].ptr);
      ins.cctx = new ComputeContext(ins.nodeName, ins.opName, ins.attrs, prog.opset, inputs, outputs);
    }
  }
  prog.inputValues.length = 0;
  prog.weightInstrs.length = 0;
  const main = prog.main();
  for (let i = 0; i < main.instrs.length; i++) {
    if (main.instrs[i].kind == K_PARAM) prog.inputValues.push(main.instrs[i].outputs[0]);
  }
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) if (m.instrs[i].kind == K_WEIGHT) prog.weightInstrs.push(m.instrs[i]);
  }
  prog.finalized = true;
  return true;
}

/** Frees everything finalize allocated, and the literal bytes. */
export function disposeProgram(prog: Program): void {
  for (let i = 0; i < prog.allocs.length; i++) heap.free(prog.allocs[i]);
  prog.allocs.length = 0;
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind == K_LITERAL && ins.ptr != 0) heap.free(ins.ptr);
      ins.ptr = 0;
    }
  }
  prog.finalized = false;
}

function runIf(prog: Program, ins: Instruction): bool {
  const c = ins.inputs[0];
  if (c == null) {
    report(E_RUNTIME, ins.nodeName, ins.opName, "If has no condition");
    return false;
  }
  const cond = load<u8>(c.ptr) != 0;
  const g = ins.attrs.getGraph(cond ? "then_branch" : "else_branch");
  if (g <= 0 || g >= prog.modules.length) {
    report(E_RUNTIME, ins.nodeName, ins.opName, "If has no " + (cond ? "then_branch" : "else_branch"));
    return false;
  }
  const sub = prog.modules[g];
  if (!runModule(prog, sub)) return false;
  for (let j = 0; j < ins.outputs.length && j < sub.returns.length; j++) {
    const o = ins.outputs[j];
    const r = sub.returns[j];
    const n = <usize>o.shape.bytes();
    if (r.ptr != o.ptr && n > 0) memory.copy(o.ptr, r.ptr, n);
  }
  return true;
}

/** Runs module `m` in order; false with diagnostics when a kernel fails. */
export function runModule(prog: Program, m: Module): bool {
  const instrs = m.instrs;
  const n = instrs.length;
  for (let i = 0; i < n; i++) {
    const ins = unchecked(instrs[i]);
    if (ins.kind != K_NODE || ins.skip || ins.prepare) continue;
    if (!runNode(prog, ins)) return false;
  }
  return true;
}

/** Hoisted nodes run by the last prepare (tests of incremental prepare). */
export let lastPrepareNodes: i32 = 0;

/**
 * Runs the hoisted weight-only nodes of main: all of them (`dirty` null: after finalize), or only
 * those downstream of the values in `dirty` (the outputs of the weights a bind changed).
 */
export function prepareProgram(prog: Program, dirty: Set<i32> | null = null): bool {
  const instrs = prog.main().instrs;
  lastPrepareNodes = 0;
  for (let i = 0; i < instrs.length; i++) {
    const ins = instrs[i];
    if (ins.kind != K_NODE || ins.skip || !ins.prepare) continue;
    if (dirty != null) {
      let hit = false;
      for (let j = 0; j < ins.inputs.length && !hit; j++) {
        const x = ins.inputs[j];
        if (x != null && dirty.has(x.id)) hit = true;
      }
      if (!hit) continue;
      for (let j = 0; j < ins.outputs.length; j++) dirty.add(ins.outputs[j].id);
    }
    lastPrepareNodes++;
    if (!runNode(prog, ins)) return false;
  }
  return true;
}

function runNode(prog: Program, ins: Instruction): bool {
  {
    const ctx = ins.cctx!;
    const outs = ctx.outputs;
    if (ins.op == null || !ins.op!.has(OP_WRITES_ALL)) {
      for (let j = 0; j < outs.length; j++) {
        const t = unchecked(outs[j]);
        memory.fill(t.ptr, 0, <usize>t.shape.bytes());
      }
    }
    if (ins.opName == "If") return runIf(prog, ins);
    const before = diagnostics.length;
    if (!ins.op!.compute(ctx)) {
      // make sure a diagnostic names the node even when the op recorded none
      if (diagnostics.length == before) report(E_RUNTIME, ins.nodeName, ins.opName, "Kernel failed at node '" + ins.nodeName + "' (" + ins.opName + ")");
      return false;
    }
    recordExtents(ins, ctx);
  }
  return true;
}

/**
 * Keeps the actual extent of every bounded output of `ins` (docs/internals.md "Bounded extents"):
 * the one its compute reported, or, for an op that passes an extent on (Cast, Identity), its
 * input's. Clears the context's extents for the next run.
 */
function recordExtents(ins: Instruction, ctx: ComputeContext): void {
  const outs = ins.outputs;
  for (let j = 0; j < outs.length; j++) {
    const v = unchecked(outs[j]);
    if (v.bounded == 0) continue;
    const e = ctx.extents[j];
    if (e != null) v.extent = e;
    else {
      const x = ins.inputs.length > 0 ? ins.inputs[0] : null;
      v.extent = x != null && x.bounded != 0 ? x.extent : null;
    }
    ctx.extents[j] = null;
  }
}
