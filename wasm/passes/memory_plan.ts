// memory_plan: gives every value a place: params, weights and main outputs their own buffers,
// literals their bytes, intermediates offsets in one per-module arena by liveness (first fit),
// and OP_ALIAS_RESHAPE outputs their input's bytes when that is safe (the node is then skipped).
// Outputs of nodes that hoist_prepare marked `prepare` (run once per weight bind, not per run)
// get own buffers. `align` is the target's: 64 bytes for ref's SIMD, 256 for gpu's coalesced loads.
// With `epilogues` (gpu), a Conv's inputs stay live through the Relu, or the Add and the Relu, right
// after it, and the Add's other input through that Relu: the gpu target runs those as the Conv's
// epilogue (hip/src/fuse.cpp), writing the Relu's output at the Conv's step, so that output must
// not take the bytes of anything the Conv or its epilogue still reads. Likewise the values up a
// MatMul operand's chain of Transposes, reshapes and scalings stay live until the MatMul, which
// the gpu target may read through strides from the chain's start.
import {
  insertAt, Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, K_PARAM, K_WEIGHT, LOC_ALIAS, LOC_ARENA, LOC_BUFFER,
  LOC_LITERAL, Module, Program, Value,
} from "../ir/program";
import { OP_ALIAS_RESHAPE } from "../ops/op";
import { Pass } from "./pass";

function alignUp(n: usize, align: usize): usize {
  return (n + align - 1) & ~(align - 1);
}

/** Records, for every value used inside the submodules of `ins` (recursively), position `pos`. */
function markSubmoduleUses(prog: Program, ins: Instruction, pos: i32, last: Map<i32, i32>): void {
  const names = ins.attrs.names();
  for (let i = 0; i < names.length; i++) {
    const g = ins.attrs.getGraph(names[i]);
    if (g > 0 && g < prog.modules.length) markModuleUses(prog, prog.modules[g], pos, last);
  }
}

function markModuleUses(prog: Program, sub: Module, pos: i32, last: Map<i32, i32>): void {
  for (let i = 0; i < sub.instrs.length; i++) {
    const ins = sub.instrs[i];
    for (let j = 0; j < ins.inputs.length; j++) {
      const x = ins.inputs[j];
      if (x != null) last.set(x.id, pos);
    }
    if (ins.kind == K_NODE) markSubmoduleUses(prog, ins, pos, last);
  }
  for (let j = 0; j < sub.returns.length; j++) last.set(sub.returns[j].id, pos);
}

/** The next instruction after `i` that runs per eval (a node, not prepared once per bind), or -1. */
function nextRun(m: Module, i: i32): i32 {
  for (let j = i + 1; j < m.instrs.length; j++) {
    const ins = m.instrs[j];
    if (ins.kind == K_NODE && !ins.prepare) return j;
  }
  return -1;
}

function reads(ins: Instruction, v: Value): bool {
  for (let j = 0; j < ins.inputs.length; j++) {
    if (ins.inputs[j] === v) return true;
  }
  return false;
}

function keepUntil(last: Map<i32, i32>, v: Value | null, pos: i32): void {
  if (v == null) return;
  if (!last.has(v.id) || last.get(v.id) < pos) last.set(v.id, pos);
}

/**
 * Conv epilogues as the gpu target fuses them (see the file's head): Conv then Relu, or Conv then
 * Add then Relu, consecutive among the per-eval nodes, each reading the one before.
 */
function keepEpilogueInputs(m: Module, last: Map<i32, i32>): void {
  for (let i = 0; i < m.instrs.length; i++) {
    const c = m.instrs[i];
    if (c.kind != K_NODE || c.prepare || c.opName != "Conv" || c.outputs.length != 1) continue;
    const a = nextRun(m, i);
    if (a < 0) continue;
    const next = m.instrs[a];
    let end = -1;
    let side: Value | null = null;
    if (next.opName == "Relu" && reads(next, c.outputs[0])) {
      end = a;
    } else if (next.opName == "Add" && next.inputs.length == 2 && next.outputs.length == 1 && reads(next, c.outputs[0])) {
      const r = nextRun(m, a);
      if (r >= 0 && m.instrs[r].opName == "Relu" && reads(m.instrs[r], next.outputs[0])) {
        end = r;
        side = next.inputs[0] === c.outputs[0] ? next.inputs[1] : next.inputs[0];
      }
    }
    if (end < 0) continue;
    for (let j = 0; j < c.inputs.length; j++) keepUntil(last, c.inputs[j], end);
    keepUntil(last, side, end);
  }
}

/** The ops a MatMul operand chain passes through on the gpu target (hip/src/fuse.cpp's operandChain). */
function chainStep(p: Instruction): bool {
  const o = p.opName;
  return o == "Transpose" || o == "Mul" || o == "Div" ||
    (p.op != null && p.op!.has(OP_ALIAS_RESHAPE) && p.outputs.length == 1);
}

/**
 * MatMul operands as the gpu target folds them (hip/src/fuse.cpp): an operand reached through
 * Transposes, reshapes and scalings by a constant is read by the GEMM through strides from the
 * chain's start, so every value up the chain stays live until the MatMul. Conservative: the
 * chain is kept whether or not the gpu target then folds it (a little arena at most).
 */
function keepMatMulChainSources(m: Module, last: Map<i32, i32>): void {
  for (let i = 0; i < m.instrs.length; i++) {
    const c = m.instrs[i];
    if (c.kind != K_NODE || c.prepare || c.opName != "MatMul" || c.inputs.length != 2) continue;
    // a Transpose right after the MatMul, of its output, is written by the GEMM through strides:
    // what the MatMul reads stays live through that Transpose too
    let end = i;
    const t = nextRun(m, i);
    if (t >= 0 && m.instrs[t].opName == "Transpose" && c.outputs.length == 1 && reads(m.instrs[t], c.outputs[0])) {
      end = t;
    }
    for (let j = 0; j < 2; j++) {
      keepUntil(last, c.inputs[j], end);
      let cur = c.inputs[j];
      for (let guard = 0; guard < 16 && cur != null; guard++) {
        const p = cur.producer;
        if (p == null || p.kind != K_NODE || p.prepare || p.module != m.index || !chainStep(p)) break;
        let next: Value | null = null;
        for (let k = 0; k < p.inputs.length; k++) {
          const x = p.inputs[k];
          if (x == null) continue;
          keepUntil(last, x, end);
          // the chain goes on through the input of the output's size (a scaling's other input
          // is the scalar, a reshape's the shape)
          if (next == null && x.shape.elements() == cur.shape.elements()) next = x;
        }
        cur = next;
      }
    }
  }
}

class Block {
  offset: usize;
  size: usize;
  value: Value;
  constructor(offset: usize, size: usize, value: Value) {
    this.offset = offset;
    this.size = size;
    this.value = value;
  }
}

/**
 * Plans module `m`; with `naive`, every intermediate gets its own arena slot (no reuse, no
 * aliasing). Blocks are `align`-byte aligned. The `prepare` marks are read, never changed.
 */
export function planModule(prog: Program, m: Module, naive: bool, align: usize, epilogues: bool = false): void {
  const n = m.instrs.length;
  const last = new Map<i32, i32>();
  const isMain = m.index == 0;
  for (let i = 0; i < n; i++) {
    const ins = m.instrs[i];
    for (let j = 0; j < ins.inputs.length; j++) {
      const x = ins.inputs[j];
      if (x != null) last.set(x.id, i);
    }
    if (ins.kind == K_NODE) markSubmoduleUses(prog, ins, i, last);
  }
  if (epilogues) {
    keepEpilogueInputs(m, last);
    keepMatMulChainSources(m, last);
  }
  const returned = new Set<i32>();
  for (let j = 0; j < m.returns.length; j++) {
    returned.add(m.returns[j].id);
    last.set(m.returns[j].id, n);
  }
  const active = new Array<Block>();
  let arenaEnd: usize = 0;
  for (let i = 0; i < n; i++) {
    const ins = m.instrs[i];
    ins.skip = false;
    if (ins.kind == K_PARAM || ins.kind == K_WEIGHT) {
      ins.outputs[0].loc = LOC_BUFFER;
      continue;
    }
    if (ins.kind == K_LITERAL || ins.kind == K_HOST_LITERAL) {
      ins.outputs[0].loc = LOC_LITERAL;
      continue;
    }
    // aliasing reshape: output 0 reads input 0's bytes
    if (!naive && ins.op != null && ins.op!.has(OP_ALIAS_RESHAPE) && ins.outputs.length == 1 &&
      ins.inputs.length > 0 && ins.inputs[0] != null) {
      const out = ins.outputs[0];
      let root = ins.inputs[0]!;
      if (root.loc == LOC_ALIAS) root = root.aliasOf!;
      const sameBytes = root.shape.bytes() == out.shape.bytes();
      if (sameBytes && !returned.has(out.id) && root.loc != 0) {
        out.loc = LOC_ALIAS;
        out.aliasOf = root;
        ins.skip = true;
        if (root.loc == LOC_ARENA && root.producer != null && root.producer!.module == m.index) {
          const lo = last.has(out.id) ? last.get(out.id) : i;
          const lr = last.has(root.id) ? last.get(root.id) : i;
          if (lo > lr) last.set(root.id, lo);
        }
        continue;
      }
    }
    for (let j = 0; j < ins.outputs.length; j++) {
      const v = ins.outputs[j];
      v.aliasOf = null;
      if ((isMain && returned.has(v.id)) || ins.prepare) {
        v.loc = LOC_BUFFER;
        continue;
      }
      const size = alignUp(v.shape.bytes() > 0 ? <usize>v.shape.bytes() : 1, align);
      v.loc = LOC_ARENA;
      if (naive) {
        v.offset = arenaEnd;
        arenaEnd += size;
        continue;
      }
      // first fit between the live blocks (kept sorted by offset)
      let off: usize = 0;
      let at = 0;
      for (; at < active.length; at++) {
        const b = active[at];
        if (b.offset >= off + size) break;
        const e = b.offset + b.size;
        if (e > off) off = e;
      }
      v.offset = off;
      insertAt<Block>(active, at, new Block(off, size, v));
      if (off + size > arenaEnd) arenaEnd = off + size;
    }
    if (naive) continue;
    // free blocks whose last use is this instruction (outputs were placed first, so an
    // output never shares bytes with an input of the same node)
    for (let k = active.length - 1; k >= 0; k--) {
      const v = active[k].value;
      const lu = last.has(v.id) ? last.get(v.id) : -1;
      if (lu <= i) active.splice(k, 1);
    }
  }
  m.arenaBytes = arenaEnd;
  m.planned = true;
}

export class MemoryPlan extends Pass {
  align: usize;
  epilogues: bool;
  constructor(align: usize, epilogues: bool = false) {
    super("memory_plan");
    this.align = align;
    this.epilogues = epilogues;
  }
  apply(prog: Program, m: Module): bool {
    planModule(prog, m, false, this.align, this.epilogues);
    return true;
  }
}
