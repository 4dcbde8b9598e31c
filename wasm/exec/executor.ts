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
import { Shape } from "../ir/shape";
import { dtypeSize } from "../ir/dtype";
import { ComputeContext, OP_WRITES_ALL } from "../ops/op";
import { PACK_GEMM_B } from "../ops/linalg";
import { planModule } from "../passes/memory_plan";
import { shareFrom } from "./share";

// @ts-ignore: decorator
@external("env", "now")
declare function hostNow(): f64;

function own(prog: Program, bytes: i32): usize {
  const n: usize = bytes > 0 ? <usize>bytes : 1;
  // not zero-filled: the host writes params, weights and host literals, and run zero-fills
  // every node output before its compute
  const p = heap.alloc(n);
  prog.allocs.push(p);
  return p;
}

function placeValue(prog: Program, m: Module, v: Value): void {
  if (v.shared || v.direct) return;
  if (v.loc == LOC_BUFFER) v.ptr = own(prog, v.shape.bytes());
  else if (v.loc == LOC_ARENA) v.ptr = m.arena + v.offset;
  else if (v.loc == LOC_LITERAL) v.ptr = v.producer!.ptr;
}

/** Points every alias at its source's address (in plan order: an alias of an alias follows its source). */
export function resolveAliases(prog: Program): void {
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
}

/** Plans (if needed), allocates and prepares `prog` for run. */
export function finalizeProgram(prog: Program, root: Program | null = null): bool {
  if (prog.finalized) return true;
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    if (!m.planned) planModule(prog, m, true, 64);
  }
  // a specialization of a dynamic program: weights, host literals and shape-independent
  // prepare outputs stay the root's (exec/share.ts)
  if (root != null) shareFrom(prog, root);
  else if (prog.directPack) markDirect(prog);
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
        if (v.shared || v.direct) continue;
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
      if (ins.kind != K_HOST_LITERAL || ins.outputs[0].shared || ins.outputs[0].direct) continue;
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
  resolveAliases(prog);
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

/** Adds one to counts[key]. */
function bump(counts: Map<i32, i32>, key: i32): void {
  counts.set(key, counts.has(key) ? counts.get(key) + 1 : 1);
}

/**
 * Packed-only values (Program.directPack, docs/internals.md "Packed-only weights"): a weight or
 * host literal of main whose every reader is a kiln.pack_gemm_b prepare node of main (no other
 * node of any module reads it, no module returns it, no other leaf holds its name or host id)
 * keeps no bytes: finalize places none and its pack nodes are `fed`, their outputs written by the
 * host from the source bytes (wasm/index.ts pack_rows), so the prepare step never packs them.
 */
function markDirect(prog: Program): void {
  const readers = new Map<i32, i32>();
  const packers = new Map<i32, i32>();
  const names = new Map<string, i32>();
  const hostIds = new Map<i32, i32>();
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind == K_WEIGHT) names.set(ins.nodeName, names.has(ins.nodeName) ? names.get(ins.nodeName) + 1 : 1);
      if (ins.kind == K_HOST_LITERAL) bump(hostIds, ins.hostId);
      const packs = mi == 0 && ins.kind == K_NODE && ins.opName == PACK_GEMM_B && ins.prepare && !ins.skip &&
        !ins.shared && ins.outputs.length == 1 && ins.outputs[0].loc == LOC_BUFFER && !ins.outputs[0].shared;
      for (let j = 0; j < ins.inputs.length; j++) {
        const x = ins.inputs[j];
        if (x == null) continue;
        bump(readers, x.id);
        if (packs) bump(packers, x.id);
      }
    }
    for (let j = 0; j < m.returns.length; j++) bump(readers, m.returns[j].id);
  }
  const main = prog.main();
  for (let i = 0; i < main.instrs.length; i++) {
    const ins = main.instrs[i];
    if (ins.kind != K_WEIGHT && ins.kind != K_HOST_LITERAL) continue;
    const v = ins.outputs[0];
    if (v.shared || !readers.has(v.id) || !packers.has(v.id) || readers.get(v.id) != packers.get(v.id)) continue;
    if (ins.kind == K_WEIGHT ? names.get(ins.nodeName) != 1 : hostIds.get(ins.hostId) != 1) continue;
    v.direct = true;
  }
  for (let i = 0; i < main.instrs.length; i++) {
    const ins = main.instrs[i];
    if (ins.kind == K_NODE && ins.opName == PACK_GEMM_B && ins.inputs.length > 0 && ins.inputs[0] != null &&
      ins.inputs[0]!.direct) {
      ins.fed = true;
    }
  }
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

/** The body submodule of a Loop/Scan node, or null after a diagnostic. */
function bodyOf(prog: Program, ins: Instruction): Module | null {
  const g = ins.attrs.getGraph("body");
  if (g <= 0 || g >= prog.modules.length) {
    report(E_RUNTIME, ins.nodeName, ins.opName, ins.opName + " has no body");
    return null;
  }
  return prog.modules[g];
}

/**
 * Copies the body's returns [from, from + n) into the params [to, to + n) through a scratch
 * buffer: a return may be another carried param (a swap), which must be read before it changes.
 */
function carry(rets: Array<Value>, from: i32, params: Array<Value>, to: i32, n: i32, scratch: usize): void {
  let off: usize = 0;
  for (let k = 0; k < n; k++) {
    const b = <usize>params[to + k].shape.bytes();
    memory.copy(scratch + off, rets[from + k].ptr, b);
    off += b;
  }
  off = 0;
  for (let k = 0; k < n; k++) {
    const b = <usize>params[to + k].shape.bytes();
    memory.copy(params[to + k].ptr, scratch + off, b);
    off += b;
  }
}

function carriedBytes(params: Array<Value>, from: i32, n: i32): usize {
  let total: usize = 0;
  for (let k = 0; k < n; k++) total += <usize>params[from + k].shape.bytes();
  return total;
}

/**
 * Loop: body(iteration, cond, carried...) -> (cond, carried..., scan values...) while the
 * iteration is below M (when given) and cond holds; scan values go to row `iteration` of their
 * outputs, whose static length shape inference proved to be the iteration count.
 */
function runLoop(prog: Program, ins: Instruction): bool {
  const body = bodyOf(prog, ins);
  if (body == null) return false;
  const params = body.params();
  const rets = body.returns;
  const n = ins.inputs.length - 2;
  if (params.length != 2 + n || rets.length < 1 + n) {
    report(E_RUNTIME, ins.nodeName, ins.opName, "Loop body does not match the node");
    return false;
  }
  const mv = ins.inputs[0];
  const cv = ins.inputs[1];
  const trips: i64 = mv != null ? load<i64>(mv.ptr) : i64.MAX_VALUE;
  let cond = cv != null ? load<u8>(cv.ptr) != 0 : true;
  for (let k = 0; k < n; k++) {
    const x = ins.inputs[2 + k]!;
    memory.copy(params[2 + k].ptr, x.ptr, <usize>x.shape.bytes());
  }
  const scratch = heap.alloc(carriedBytes(params, 2, n) + 1);
  let ok = true;
  let i: i64 = 0;
  for (; i < trips && cond; i++) {
    store<i64>(params[0].ptr, i);
    store<u8>(params[1].ptr, 1);
    if (!runModule(prog, body)) {
      ok = false;
      break;
    }
    cond = load<u8>(rets[0].ptr) != 0;
    // scan values first: a return may be a carried param, which carry() overwrites
    for (let j = n; j < ins.outputs.length; j++) {
      const o = ins.outputs[j];
      const r = rets[1 + j];
      const row = <usize>r.shape.bytes();
      if (o.shape.lens.length == 0 || i >= <i64>o.shape.lens[0]) {
        report(E_RUNTIME, ins.nodeName, ins.opName, "Loop ran more iterations than its scan outputs hold (" +
          o.shape.toString() + ")");
        ok = false;
        break;
      }
      memory.copy(o.ptr + <usize>i * row, r.ptr, row);
    }
    if (!ok) break;
    carry(rets, 1, params, 2, n, scratch);
  }
  heap.free(scratch);
  if (!ok) return false;
  for (let j = n; j < ins.outputs.length; j++) {
    const o = ins.outputs[j];
    if (o.shape.lens.length > 0 && i != <i64>o.shape.lens[0]) {
      report(E_RUNTIME, ins.nodeName, ins.opName, "Loop ran " + i.toString() + " iterations; its scan outputs (" +
        o.shape.toString() + ") were planned for " + o.shape.lens[0].toString());
      return false;
    }
  }
  for (let k = 0; k < n && k < ins.outputs.length; k++) {
    memory.copy(ins.outputs[k].ptr, params[2 + k].ptr, <usize>params[2 + k].shape.bytes());
  }
  return true;
}

/** A scan input or output seen as [outer, T, inner bytes] around its scan axis. */
class ScanView {
  outer: usize = 1;
  inner: usize = 0;
  t: usize = 0;
  reverse: bool = false;
}

function scanView(s: Shape, axis: i32, reverse: bool): ScanView {
  const v = new ScanView();
  let outer: usize = 1;
  for (let d = 0; d < axis; d++) outer *= <usize>s.lens[d];
  let inner: usize = <usize>dtypeSize(s.dtype);
  for (let d = axis + 1; d < s.lens.length; d++) inner *= <usize>s.lens[d];
  v.outer = outer;
  v.inner = inner;
  v.t = <usize>s.lens[axis];
  v.reverse = reverse;
  return v;
}

/** a[j], or `def` when the list is absent. */
function entry(a: Array<i64> | null, j: i32, def: i64): i64 {
  if (a == null) return def;
  return j < a.length ? a[j] : def;
}

function normAxis(a: i64, rank: i32): i32 {
  return <i32>(a < 0 ? a + <i64>rank : a);
}

/**
 * Scan: per batch (opset 8; one batch from opset 9), the states go into the body's params, and
 * for each step t the scan inputs' slice t (or T-1-t when reversed) along their axis; the body's
 * state returns feed the next step; its scan returns fill slice t of the scan outputs.
 */
function runScan(prog: Program, ins: Instruction): bool {
  const body = bodyOf(prog, ins);
  if (body == null) return false;
  const params = body.params();
  const rets = body.returns;
  const batched = prog.opset < 9;
  const first = batched ? 1 : 0;
  const nscan = <i32>ins.attrs.getInt("num_scan_inputs", 0);
  const nstate = ins.inputs.length - first - nscan;
  if (nstate < 0 || params.length != nstate + nscan || rets.length < nstate) {
    report(E_RUNTIME, ins.nodeName, ins.opName, "Scan body does not match the node");
    return false;
  }
  const inDirs = ins.attrs.getInts(batched ? "directions" : "scan_input_directions");
  const inAxes = ins.attrs.getInts("scan_input_axes");
  const outDirs = ins.attrs.getInts("scan_output_directions");
  const outAxes = ins.attrs.getInts("scan_output_axes");
  const ins2 = new Array<ScanView>(nscan);
  for (let j = 0; j < nscan; j++) {
    const x = ins.inputs[first + nstate + j]!;
    const rev = entry(inDirs, j, 0) != 0;
    // opset 8: per batch, the sequence is axis 0 of [T, ...]
    ins2[j] = batched ? scanView(Shape.standard(x.shape.dtype, x.shape.lens.slice(1)), 0, rev)
      : scanView(x.shape, normAxis(entry(inAxes, j, 0), x.shape.rank()), rev);
  }
  const nout = ins.outputs.length - nstate;
  const outs = new Array<ScanView>(nout > 0 ? nout : 0);
  for (let j = 0; j < nout; j++) {
    const o = ins.outputs[nstate + j].shape;
    const rev = !batched && entry(outDirs, j, 0) != 0;
    outs[j] = batched ? scanView(Shape.standard(o.dtype, o.lens.slice(1)), 0, rev)
      : scanView(o, normAxis(entry(outAxes, j, 0), o.rank()), rev);
  }
  const t: usize = nscan > 0 ? ins2[0].t : 0;
  const batches: i32 = batched && ins.inputs.length > first ? ins.inputs[first]!.shape.lens[0] : 1;
  const scratch = heap.alloc(carriedBytes(params, 0, nstate) + 1);
  let ok = true;
  for (let b = 0; b < batches && ok; b++) {
    for (let k = 0; k < nstate; k++) {
      const sb = <usize>params[k].shape.bytes();
      memory.copy(params[k].ptr, ins.inputs[first + k]!.ptr + <usize>b * sb, sb);
    }
    for (let step: usize = 0; step < t; step++) {
      for (let j = 0; j < nscan; j++) {
        const v = ins2[j];
        const tt = v.reverse ? t - 1 - step : step;
        const src = ins.inputs[first + nstate + j]!.ptr + <usize>b * v.t * v.inner;
        const dst = params[nstate + j].ptr;
        for (let o: usize = 0; o < v.outer; o++) memory.copy(dst + o * v.inner, src + (o * v.t + tt) * v.inner, v.inner);
      }
      if (!runModule(prog, body)) {
        ok = false;
        break;
      }
      for (let j = 0; j < nout; j++) {
        const v = outs[j];
        const tt = v.reverse ? t - 1 - step : step;
        const dst = ins.outputs[nstate + j].ptr + <usize>b * v.t * v.inner;
        const src = rets[nstate + j].ptr;
        for (let o: usize = 0; o < v.outer; o++) memory.copy(dst + (o * v.t + tt) * v.inner, src + o * v.inner, v.inner);
      }
      // after the scan values: a scan return may be a state param, which carry() overwrites
      carry(rets, 0, params, 0, nstate, scratch);
    }
    for (let k = 0; k < nstate && k < ins.outputs.length && ok; k++) {
      const sb = <usize>params[k].shape.bytes();
      memory.copy(ins.outputs[k].ptr + <usize>b * sb, params[k].ptr, sb);
    }
  }
  heap.free(scratch);
  return ok;
}

/** Indices of `body` and the modules nested in it. */
function modulesWithin(prog: Program, body: Module): Array<i32> {
  const out = new Array<i32>();
  for (let mi = body.index; mi < prog.modules.length; mi++) if (prog.isWithin(mi, body.index)) out.push(mi);
  return out;
}

/**
 * The IR ids of the values a Loop/Scan node's body (and its nested subgraphs) reads that another
 * target holds: values defined outside the body, and the body's own weights and host literals.
 * `runControlOnHost` needs them placed (Program.hostBound). Empty for other nodes.
 */
export function bodyReads(prog: Program, ins: Instruction): Array<i32> {
  const out = new Array<i32>();
  const g = ins.attrs.getGraph("body");
  if ((ins.opName != "Loop" && ins.opName != "Scan") || g <= 0 || g >= prog.modules.length) return out;
  const mods = modulesWithin(prog, prog.modules[g]);
  const inside = new Set<i32>();
  for (let k = 0; k < mods.length; k++) inside.add(mods[k]);
  const seen = new Set<i32>();
  for (let k = 0; k < mods.length; k++) {
    const m = prog.modules[mods[k]];
    for (let i = 0; i < m.instrs.length; i++) {
      const x = m.instrs[i];
      if (x.kind == K_HOST_LITERAL || x.kind == K_WEIGHT) {
        const id = x.outputs[0].id;
        if (!seen.has(id)) {
          seen.add(id);
          out.push(id);
        }
        continue;
      }
      for (let j = 0; j < x.inputs.length; j++) {
        const v = x.inputs[j];
        if (v == null || v.producer == null || inside.has(v.producer!.module) || seen.has(v.id)) continue;
        seen.add(v.id);
        out.push(v.id);
      }
    }
    for (let j = 0; j < m.returns.length; j++) {
      const v = m.returns[j];
      if (v.producer == null || inside.has(v.producer!.module) || seen.has(v.id)) continue;
      seen.add(v.id);
      out.push(v.id);
    }
  }
  return out;
}

/**
 * Runs a Loop/Scan node for a target that keeps its values elsewhere (the gpu target's host
 * fallback): the node's inputs and outputs at the given addresses, the values `bodyReads` named at
 * the addresses in prog.hostBound; the body's own values in WASM memory (arenas and param buffers
 * made on first use, kept with the program).
 */
export function runControlOnHost(prog: Program, ins: Instruction, inPtrs: Array<usize>, outPtrs: Array<usize>): bool {
  const body = bodyOf(prog, ins);
  if (body == null) return false;
  for (let j = 0; j < ins.inputs.length; j++) {
    const x = ins.inputs[j];
    if (x != null) x.ptr = inPtrs[j];
  }
  for (let j = 0; j < ins.outputs.length; j++) ins.outputs[j].ptr = outPtrs[j];
  const bound = prog.hostBound;
  const mods = modulesWithin(prog, body);
  for (let k = 0; k < mods.length; k++) {
    const m = prog.modules[mods[k]];
    if (m.arena == 0) m.arena = own(prog, <i32>m.arenaBytes);
    for (let i = 0; i < m.instrs.length; i++) {
      const x = m.instrs[i];
      for (let j = 0; j < x.inputs.length; j++) {
        const v = x.inputs[j];
        if (v != null && bound.has(v.id)) v.ptr = bound.get(v.id);
      }
      for (let j = 0; j < x.outputs.length; j++) {
        const v = x.outputs[j];
        if (bound.has(v.id)) v.ptr = bound.get(v.id);
        else if (v.loc == LOC_BUFFER) {
          if (v.ptr == 0) v.ptr = own(prog, v.shape.bytes());
        } else if (v.loc == LOC_ARENA) v.ptr = m.arena + v.offset;
        else if (v.loc == LOC_LITERAL) v.ptr = v.producer!.ptr;
      }
    }
    for (let j = 0; j < m.returns.length; j++) {
      const v = m.returns[j];
      if (bound.has(v.id)) v.ptr = bound.get(v.id);
    }
  }
  for (let k = 0; k < mods.length; k++) {
    const m = prog.modules[mods[k]];
    for (let i = 0; i < m.instrs.length; i++) {
      const outs = m.instrs[i].outputs;
      for (let j = 0; j < outs.length; j++) if (outs[j].loc == LOC_ALIAS && !bound.has(outs[j].id)) outs[j].ptr = outs[j].aliasOf!.ptr;
    }
  }
  for (let k = 0; k < mods.length; k++) {
    const m = prog.modules[mods[k]];
    for (let i = 0; i < m.instrs.length; i++) {
      const x = m.instrs[i];
      if (x.kind != K_NODE) continue;
      const inputs = new Array<Tensor | null>(x.inputs.length);
      for (let j = 0; j < x.inputs.length; j++) {
        const v = x.inputs[j];
        if (v != null && v.ptr == 0) {
          report(E_RUNTIME, x.nodeName, x.opName, "Value '" + v.name + "' read in the body of node '" + ins.nodeName +
            "' was not placed");
          return false;
        }
        inputs[j] = v == null ? null : new Tensor(v.shape, v.ptr);
      }
      const outputs = new Array<Tensor>(x.outputs.length);
      for (let j = 0; j < x.outputs.length; j++) outputs[j] = new Tensor(x.outputs[j].shape, x.outputs[j].ptr);
      x.cctx = new ComputeContext(x.nodeName, x.opName, x.attrs, prog.opset, inputs, outputs);
    }
  }
  return ins.opName == "Loop" ? runLoop(prog, ins) : runScan(prog, ins);
}

/**
 * Runs module `m` in order; false with diagnostics when a kernel fails. With `times` (a profiled
 * eval, one slot per instruction of `m`), adds each node's wall time in milliseconds on this
 * thread (waiting for the workers included) from the host's clock; without, no clock is read.
 */
export function runModule(prog: Program, m: Module, times: StaticArray<f64> | null = null): bool {
  const instrs = m.instrs;
  const n = instrs.length;
  for (let i = 0; i < n; i++) {
    const ins = unchecked(instrs[i]);
    if (ins.kind != K_NODE || ins.skip || ins.prepare) continue;
    if (times != null) {
      const t0 = hostNow();
      const ok = runNode(prog, ins);
      times[i] += hostNow() - t0;
      if (!ok) return false;
    } else if (!runNode(prog, ins)) return false;
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
    if (ins.kind != K_NODE) continue;
    if (ins.skip) {
      // an aliasing reshape runs no kernel, but its output is the changed bytes too: nodes
      // downstream of it are out of date
      if (dirty != null && ins.inputs.length > 0 && ins.inputs[0] != null && dirty.has(ins.inputs[0]!.id)) {
        for (let j = 0; j < ins.outputs.length; j++) dirty.add(ins.outputs[j].id);
      }
      continue;
    }
    if (!ins.prepare || ins.shared) continue;
    if (dirty != null) {
      let hit = false;
      for (let j = 0; j < ins.inputs.length && !hit; j++) {
        const x = ins.inputs[j];
        if (x != null && dirty.has(x.id)) hit = true;
      }
      if (!hit) continue;
      for (let j = 0; j < ins.outputs.length; j++) dirty.add(ins.outputs[j].id);
    }
    if (ins.fed) continue; // the host packed it (markDirect)
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
    if (ins.opName == "Loop") return runLoop(prog, ins);
    if (ins.opName == "Scan") return runScan(prog, ins);
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
