// The WASM boundary: a flat, C-like API over program handles (docs/internals.md).
// Numbers only; strings and metadata cross as UTF-8 JSON in a result buffer that the host
// reads with result_ptr()/result_len() right after the call. Expected failures return a
// negative (load) or non-zero status and leave diagnostics (diagnostics_json()).
import { clearDiagnostics, diagnostics, diagnosticsJson, E_GRAPH, E_FORMAT, E_OK, E_RUNTIME, jsonString, report } from "./ir/diag";
import { decodeDims, decodeProgram, decodeValues, serializeProgram, serializedLength, setKeepOrphanWeights } from "./ir/codec";
import { lastDeciders } from "./passes/fold_if";
import { cloneProgram } from "./ir/clone";
import { Tensor } from "./ir/tensor";
import { ComputeContext, OP_WRITES_ALL } from "./ops/op";
import { dtypeName } from "./ir/dtype";
import { Shape } from "./ir/shape";
import {
  Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, K_PARAM, K_WEIGHT, LOC_BUFFER, Program, Value,
} from "./ir/program";
import { registerAllOps } from "./ops/all";
import { FUSED_ELEMENTWISE, fusedLabel } from "./ops/fused";
import { opNames } from "./ops/registry";
import { PM_VALIDATE, runPasses } from "./passes/manager";
import { compilePasses, literalPasses, planPasses } from "./passes/targets";
import { decodeWeightTable } from "./passes/replace_external_weights";
import {
  bodyReads, disposeProgram, finalizeProgram, lastPrepareNodes, prepareProgram, resolveAliases, runControlOnHost,
  runModule,
} from "./exec/executor";
import { scheduleLength, writeSchedule } from "./exec/schedule";
import { shareWeights } from "./exec/share";
import { parallelEnd, threadsInit, threadsStop, workerLoop } from "./kernels/threads";
import { packBRows } from "./kernels/gemm";

const programs = new Array<Program | null>();
let resultBuf: ArrayBuffer = new ArrayBuffer(0);
let resultRaw: usize = 0;
let resultRawLen: usize = 0;

function setResultString(s: string): void {
  freeRaw();
  resultBuf = String.UTF8.encode(s);
}

function freeRaw(): void {
  if (resultRaw != 0) heap.free(resultRaw);
  resultRaw = 0;
  resultRawLen = 0;
}

/** Pointer of the last result (JSON or bytes). */
export function result_ptr(): usize {
  return resultRaw != 0 ? resultRaw : changetype<usize>(resultBuf);
}

/** Length in bytes of the last result. */
export function result_len(): usize {
  return resultRaw != 0 ? resultRawLen : <usize>resultBuf.byteLength;
}

export function alloc(n: usize): usize {
  return heap.alloc(n > 0 ? n : 1);
}

export function free(p: usize): void {
  if (p != 0) heap.free(p);
}

/**
 * 1 when the `n` bytes at `a` and at `b` are equal, else 0: the ref target's bind asks whether a
 * weight staged in this memory is already bound. 64 bytes a step, stopping at the first step that
 * differs (new weights differ in their first bytes: a changed tensor costs almost nothing).
 */
export function bytes_equal(a: usize, b: usize, n: usize): i32 {
  let i: usize = 0;
  const n64 = n & ~(<usize>63);
  for (; i < n64; i += 64) {
    const d = v128.or(
      v128.or(v128.xor(v128.load(a + i), v128.load(b + i)), v128.xor(v128.load(a + i + 16), v128.load(b + i + 16))),
      v128.or(v128.xor(v128.load(a + i + 32), v128.load(b + i + 32)), v128.xor(v128.load(a + i + 48), v128.load(b + i + 48))),
    );
    if (v128.any_true(d)) return 0;
  }
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return 0;
  return 1;
}

/** The registered op names as a JSON array in the result buffer. */
export function op_names(): i32 {
  registerAllOps();
  const names = opNames();
  names.sort();
  let s = "[";
  for (let i = 0; i < names.length; i++) {
    if (i > 0) s += ",";
    s += jsonString(names[i]);
  }
  setResultString(s + "]");
  return names.length;
}

/** Traps on purpose (tests of the host's recovery after a core bug). */
export function debug_trap(): void {
  unreachable();
}

/** Writes the diagnostics of the last failed call as JSON into the result buffer; returns their count. */
export function diagnostics_json(): i32 {
  setResultString(diagnosticsJson());
  return 1;
}

function get(h: i32): Program | null {
  if (h <= 0 || h > programs.length) return null;
  return programs[h - 1];
}

function badHandle(h: i32): i32 {
  return report(E_GRAPH, "", "", "No program with handle " + h.toString());
}

function addProgram(p: Program): i32 {
  for (let i = 0; i < programs.length; i++) {
    if (programs[i] == null) {
      programs[i] = p;
      return i + 1;
    }
  }
  programs.push(p);
  return programs.length;
}

/** Decodes a graph encoding (GraphBuilder.encode) with shape inference and eager folding. */
export function load_graph(ptr: usize, len: usize): i32 {
  clearDiagnostics();
  registerAllOps();
  lastDeciders.length = 0;
  const p = decodeProgram(ptr, len, E_GRAPH);
  decodeDims.clear();
  decodeValues.clear();
  setKeepOrphanWeights(false);
  if (p == null) return -1;
  return addProgram(p);
}

/**
 * Overrides of main-module params for the next load_graph only (a specialization of a dynamic
 * program, docs/internals.md "Dynamic programs"): u32 count, then per param: u32 name length,
 * name (UTF-8), u8 kind; kind 0: u32 rank, i32 dims (new dims); kind 1: u32 length, bytes (the
 * param becomes a literal of its declared type holding them).
 */
export function set_decode_overrides(ptr: usize, len: usize): i32 {
  clearDiagnostics();
  decodeDims.clear();
  decodeValues.clear();
  setKeepOrphanWeights(true);
  const end = ptr + len;
  let at = ptr;
  if (len < 4) return report(E_GRAPH, "", "", "Bad decode overrides: too short");
  const n = load<u32>(at);
  at += 4;
  for (let i: u32 = 0; i < n; i++) {
    if (at + 4 > end) return report(E_GRAPH, "", "", "Bad decode overrides: truncated");
    const nl = <usize>load<u32>(at);
    at += 4;
    if (at + nl + 5 > end) return report(E_GRAPH, "", "", "Bad decode overrides: truncated");
    const name = String.UTF8.decodeUnsafe(at, nl);
    at += nl;
    const kind = load<u8>(at);
    const count = <usize>load<u32>(at + 1);
    at += 5;
    if (kind == 0) {
      if (at + count * 4 > end) return report(E_GRAPH, "", "", "Bad decode overrides: truncated");
      const dims = new Array<i32>(<i32>count);
      for (let k: usize = 0; k < count; k++) dims[<i32>k] = load<i32>(at + k * 4);
      at += count * 4;
      decodeDims.set(name, dims);
    } else {
      if (at + count > end) return report(E_GRAPH, "", "", "Bad decode overrides: truncated");
      const bytes = new Array<u8>(<i32>count);
      for (let k: usize = 0; k < count; k++) bytes[<i32>k] = load<u8>(at + k);
      at += count;
      decodeValues.set(name, bytes);
    }
  }
  return E_OK;
}

/**
 * The graph inputs that decide the If the last failed load_graph reported as needing a constant
 * condition (newline-separated in the result buffer); returns their count.
 */
export function if_deciders(): i32 {
  setResultString(lastDeciders.join("\n"));
  return lastDeciders.length;
}

/**
 * Finalizes specialization h of the dynamic program whose root is `root` (finalized, in this
 * instance): h's weights, the host literals the root holds and the prepare outputs it shares
 * with the root are placed at the root's memory (exec/share.ts).
 */
export function finalize_shared(h: i32, root: i32): i32 {
  clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  const r = get(root);
  if (r == null) return badHandle(root);
  if (!r.finalized) return report(E_GRAPH, "", "", "The root program is not finalized");
  return finalizeProgram(p, r) ? E_OK : 1;
}

/** How many prepare nodes of finalized program h are shared with its root (not run by its prepare). */
export function shared_prepare_nodes(h: i32): i32 {
  const p = get(h);
  if (p == null) return -1;
  let n = 0;
  const instrs = p.main().instrs;
  for (let i = 0; i < instrs.length; i++) if (instrs[i].shared) n++;
  return n;
}

function unknownTarget(target: string): i32 {
  return report(E_GRAPH, "", "", "Unknown target '" + target + "' (the core's targets: ref, gpu)");
}

/**
 * Runs the compile pipeline of the target named by the UTF-8 bytes at tPtr (passes/targets.ts).
 * flags: 1 validate, 2 timings. disabled: comma-separated pass names (UTF-8).
 */
export function compile(h: i32, tPtr: usize, tLen: usize, flags: i32, disPtr: usize, disLen: usize): i32 {
  clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  const target = String.UTF8.decodeUnsafe(tPtr, tLen);
  const passes = compilePasses(target);
  if (passes == null) return unknownTarget(target);
  const disabled = new Set<string>();
  if (disLen > 0) {
    const names = String.UTF8.decodeUnsafe(disPtr, disLen).split(",");
    for (let i = 0; i < names.length; i++) if (names[i].length > 0) disabled.add(names[i]);
  }
  if (!runPasses(p, passes!, flags, disabled)) return 1;
  // a dynamic program's root keeps the weights of folded-away branches, unused, for its specializations
  const main = p.main();
  const live = new Set<string>();
  for (let mi = 0; mi < p.modules.length; mi++) {
    const m = p.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) if (m.instrs[i].kind == K_WEIGHT) live.add(m.instrs[i].nodeName);
  }
  for (let i = 0; i < p.orphanWeights.length; i++) {
    const w = p.orphanWeights[i];
    if (live.has(w.nodeName)) continue;
    live.add(w.nodeName);
    w.module = 0;
    w.outputs[0].loc = LOC_BUFFER;
    main.instrs.push(w);
  }
  p.orphanWeights.length = 0;
  return E_OK;
}

/** Allocates memory for every value and prepares the executor. Host literal bytes are copied in afterwards. */
export function finalize(h: i32): i32 {
  clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  return finalizeProgram(p) ? E_OK : 1;
}

/** Where the host copies host literal `id` (0 when no instruction uses it; finalize first). */
export function host_literal_ptr(h: i32, id: i32): usize {
  const p = get(h);
  if (p == null || !p.hostPtrs.has(id)) return 0;
  return p.hostPtrs.get(id);
}

export function input_ptr(h: i32, i: i32): usize {
  const p = get(h);
  if (p == null || i < 0 || i >= p.inputValues.length) return 0;
  return p.inputValues[i].ptr;
}

export function weight_ptr(h: i32, i: i32): usize {
  const p = get(h);
  if (p == null || i < 0 || i >= p.weightInstrs.length) return 0;
  return p.weightInstrs[i].outputs[0].ptr;
}

/**
 * Points weight `i` at `ptr`, where the host has already written its bytes (the ref target's swap
 * switches a staged weight in by address instead of copying it); returns the address it had (0 for
 * a bad handle or index, or a program not finalized). Call `weights_moved` after the last one.
 */
export function set_weight_ptr(h: i32, i: i32, ptr: usize): usize {
  const p = get(h);
  if (p == null || !p.finalized || i < 0 || i >= p.weightInstrs.length || ptr == 0) return 0;
  const v = p.weightInstrs[i].outputs[0];
  const old = v.ptr;
  v.ptr = ptr;
  return old;
}

/**
 * After `set_weight_ptr`: every alias re-resolved (in plan order, as finalize does) and every
 * node's context reading its inputs and writing its outputs at their values' addresses.
 */
export function weights_moved(h: i32): i32 {
  const p = get(h);
  if (p == null) return badHandle(h);
  resolveAliases(p);
  for (let mi = 0; mi < p.modules.length; mi++) {
    const m = p.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind != K_NODE || ins.cctx == null) continue;
      const ctx = ins.cctx!;
      for (let j = 0; j < ins.inputs.length && j < ctx.inputs.length; j++) {
        const x = ins.inputs[j];
        const t = ctx.inputs[j];
        if (x != null && t != null) t.ptr = x.ptr;
      }
      for (let j = 0; j < ins.outputs.length && j < ctx.outputs.length; j++) ctx.outputs[j].ptr = ins.outputs[j].ptr;
    }
  }
  return E_OK;
}

/**
 * Before finalize: whether finalize keeps the weights and host literals that only pack nodes read
 * packed only (the ref target, for a program that is not a dynamic root; docs/internals.md
 * "Packed-only weights").
 */
export function set_direct_pack(h: i32, on: i32): i32 {
  const p = get(h);
  if (p == null) return badHandle(h);
  if (p.finalized) return report(E_GRAPH, "", "", "The program is already finalized");
  p.directPack = on != 0;
  return E_OK;
}

/**
 * The packed-only values of finalized program h as JSON in the result buffer: per value its weight
 * index (as weight_ptr; -1 for a host literal) or host literal id (-1 for a weight), its stored
 * rows and cols, and its pack nodes: main instruction index, trans_b, K, N, output address, bytes.
 */
export function direct_json(h: i32): i32 {
  clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  const main = p.main();
  let out = "";
  for (let i = 0; i < main.instrs.length; i++) {
    const leaf = main.instrs[i];
    if ((leaf.kind != K_WEIGHT && leaf.kind != K_HOST_LITERAL) || !leaf.outputs[0].direct) continue;
    const v = leaf.outputs[0];
    let packs = "";
    for (let k = 0; k < main.instrs.length; k++) {
      const ins = main.instrs[k];
      if (!ins.fed || ins.inputs[0] != v) continue;
      const trans = ins.attrs.getInt("trans_b", 0) != 0;
      const o = ins.outputs[0];
      if (packs.length > 0) packs += ",";
      packs += "{\"node\":" + k.toString() + ",\"trans\":" + (trans ? "1" : "0") + ",\"k\":" +
        (trans ? v.shape.lens[1] : v.shape.lens[0]).toString() + ",\"n\":" +
        (trans ? v.shape.lens[0] : v.shape.lens[1]).toString() + ",\"ptr\":" + o.ptr.toString() + ",\"bytes\":" +
        o.shape.bytes().toString() + "}";
    }
    if (out.length > 0) out += ",";
    out += "{\"weight\":" + (leaf.kind == K_WEIGHT ? p.weightInstrs.indexOf(leaf) : -1).toString() + ",\"literal\":" +
      (leaf.kind == K_HOST_LITERAL ? leaf.hostId : -1).toString() + ",\"name\":" + jsonString(leaf.nodeName) +
      ",\"rows\":" + v.shape.lens[0].toString() + ",\"cols\":" + v.shape.lens[1].toString() + ",\"packs\":[" + packs +
      "]}";
  }
  setResultString("[" + out + "]");
  return E_OK;
}

/**
 * Points the output of fed pack node `node` (a main instruction index, direct_json) at `ptr`, where
 * the host has packed the new bytes (a swap of a packed-only weight); returns the address it had (0:
 * bad handle, index, or not a fed pack node). Call `weights_moved` after the last one.
 */
export function set_packed_ptr(h: i32, node: i32, ptr: usize): usize {
  const p = get(h);
  if (p == null || !p.finalized || ptr == 0) return 0;
  const main = p.main();
  if (node < 0 || node >= main.instrs.length || !main.instrs[node].fed) return 0;
  const v = main.instrs[node].outputs[0];
  const old = v.ptr;
  v.ptr = ptr;
  return old;
}

/**
 * Packs `rows` stored rows of a 2-D float32 B (row0 first, at src, row stride ldb floats) into
 * their places in the packed op(B) (K x N, transposed when trans) at dst, split over the threads
 * (mode 0), on this thread only (mode 2), or started on the workers (mode 3: the call returns
 * while they pack; pack_wait ends it, and src and dst must stay as they are until then); mode 1
 * copies them back out instead (kernels/gemm.ts packBRows).
 */
export function pack_rows(trans: i32, src: usize, row0: i32, rows: i32, ldb: i32, K: i32, N: i32, dst: usize,
  mode: i32): void {
  packBRows(trans != 0, src, row0, rows, ldb, K, N, dst, mode == 1, mode != 2, mode == 3);
}

/** Waits until the packing pack_rows started (mode 3) is done (at once when none is running). */
export function pack_wait(): void {
  parallelEnd();
}

/**
 * A specialization of a dynamic program (h) after its root's weights moved (a swap switches
 * weights by pointer: set_weight_ptr): its shared weights point at the root's current buffers
 * again, then everything is re-resolved as weights_moved does.
 */
export function reshare_weights(h: i32, root: i32): i32 {
  const p = get(h);
  if (p == null) return badHandle(h);
  const r = get(root);
  if (r == null) return badHandle(root);
  shareWeights(p, r);
  return weights_moved(h);
}

export function output_ptr(h: i32, i: i32): usize {
  const p = get(h);
  if (p == null) return 0;
  const m = p.main();
  if (i < 0 || i >= m.returns.length) return 0;
  return m.returns[i].ptr;
}

/**
 * Dim d of main output i as the last run left it: a bounded dim (an output whose size depends on
 * data) gives its actual extent, any other dim its planned length; -1 when out of range.
 */
export function output_dim(h: i32, i: i32, d: i32): i32 {
  const p = get(h);
  if (p == null) return -1;
  const m = p.main();
  if (i < 0 || i >= m.returns.length) return -1;
  const v = m.returns[i];
  if (d < 0 || d >= v.shape.lens.length) return -1;
  const e = v.extent;
  return v.bounded != 0 && e != null && d < e.length ? e[d] : v.shape.lens[d];
}

/** Runs the finalized program on the bytes at the input/weight pointers. */
export function run(h: i32): i32 {
  if (diagnostics.length > 0) clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  if (!p.finalized) return report(E_GRAPH, "", "", "Program is not finalized");
  return runModule(p, p.main()) ? E_OK : 1;
}

/**
 * `run` timing every node of main on the host's clock (wall time on this thread, waiting for the
 * workers included). On success the result buffer holds JSON, the nodes that ran in order:
 * `[{"name":..,"op":..,"ms":..}]`.
 */
export function run_profiled(h: i32): i32 {
  if (diagnostics.length > 0) clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  if (!p.finalized) return report(E_GRAPH, "", "", "Program is not finalized");
  const m = p.main();
  const times = new StaticArray<f64>(m.instrs.length);
  if (!runModule(p, m, times)) return 1;
  let json = "";
  for (let i = 0; i < m.instrs.length; i++) {
    const ins = m.instrs[i];
    if (ins.kind != K_NODE || ins.skip || ins.prepare) continue;
    if (json.length > 0) json += ",";
    json += "{\"name\":" + jsonString(ins.nodeName) + ",\"op\":" + jsonString(profileLabel(ins)) + ",\"ms\":" +
      times[i].toString() + "}";
  }
  setResultString("[" + json + "]");
  return E_OK;
}

/** What a profile calls node `ins`: its op, or for a fused chain the ops it runs ("Fused(Mul+Tanh)"). */
function profileLabel(ins: Instruction): string {
  return ins.opName == FUSED_ELEMENTWISE ? fusedLabel(ins.attrs.getString("ops", "")) : ins.opName;
}

/** Runs the hoisted weight-only nodes once (after finalize and after every weight bind). */
export function prepare(h: i32): i32 {
  if (diagnostics.length > 0) clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  if (!p.finalized) return report(E_GRAPH, "", "", "Program is not finalized");
  return prepareProgram(p) ? E_OK : 1;
}

/**
 * Runs only the hoisted nodes downstream of the weights at `n` i32 indices (into the weight
 * list, as weight_ptr) at `idx`: after a bind that changed those weights.
 */
export function prepare_weights(h: i32, idx: usize, n: i32): i32 {
  if (diagnostics.length > 0) clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  if (!p.finalized) return report(E_GRAPH, "", "", "Program is not finalized");
  const dirty = new Set<i32>();
  for (let k = 0; k < n; k++) {
    const i = load<i32>(idx + (<usize>k << 2));
    if (i < 0 || i >= p.weightInstrs.length) return report(E_GRAPH, "", "", "Weight index " + i.toString() + " out of range");
    dirty.add(p.weightInstrs[i].outputs[0].id);
  }
  return prepareProgram(p, dirty) ? E_OK : 1;
}

/** How many hoisted nodes the last prepare ran. */
export function last_prepare_nodes(): i32 {
  return lastPrepareNodes;
}

/** Serializes the compiled program into the result buffer. */
export function serialize(h: i32): i32 {
  clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  freeRaw();
  resultRaw = serializeProgram(p);
  resultRawLen = serializedLength;
  return E_OK;
}

/**
 * Decodes a serialized program (shape inference only, no optimization pass) and re-derives its
 * plan with the target's plan passes (prepare marks, memory plan, literal layout).
 */
export function deserialize(ptr: usize, len: usize, tPtr: usize, tLen: usize): i32 {
  clearDiagnostics();
  registerAllOps();
  const target = String.UTF8.decodeUnsafe(tPtr, tLen);
  const plan = planPasses(target);
  if (plan == null) return -unknownTarget(target);
  const p = decodeProgram(ptr, len, E_FORMAT);
  if (p == null) return -1;
  for (let k = 0; k < plan!.length; k++) {
    for (let i = 0; i < p.modules.length; i++) {
      if (!plan![k].apply(p, p.modules[i])) return -1; // refuse_bounded on gpu: a diagnostic says why
    }
  }
  return addProgram(p);
}

/**
 * The schedule of program h (exec/schedule.ts; docs/internals.md "Schedule") in the result
 * buffer: what a native executor needs to run the compiled program.
 */
export function schedule(h: i32): i32 {
  clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  const buf = writeSchedule(p);
  if (buf == 0) return 1;
  freeRaw();
  resultRaw = buf;
  resultRawLen = scheduleLength;
  return E_OK;
}

let hostReads = new Array<i32>();

/**
 * For a Loop/Scan node (instruction ii of module mi) run on the host by another target: how many
 * values its body reads from elsewhere; host_read_id(k) gives their IR ids. The host places each
 * (bind_value) before run_node. -1 on a bad handle or instruction.
 */
export function host_reads(h: i32, mi: i32, ii: i32): i32 {
  if (diagnostics.length > 0) clearDiagnostics();
  const p = get(h);
  if (p == null) return -1;
  if (mi < 0 || mi >= p.modules.length || ii < 0 || ii >= p.modules[mi].instrs.length) return -1;
  hostReads = bodyReads(p, p.modules[mi].instrs[ii]);
  return hostReads.length;
}

export function host_read_id(k: i32): i32 {
  return k >= 0 && k < hostReads.length ? hostReads[k] : -1;
}

/** Where the host placed value `id` for the next run_node of a Loop/Scan node. */
export function bind_value(h: i32, id: i32, ptr: usize): i32 {
  const p = get(h);
  if (p == null) return badHandle(h);
  p.hostBound.set(id, ptr);
  return E_OK;
}

/**
 * Runs one node with the reference kernel on tensors the host placed: instruction `ii` of module
 * `mi`, its inputs and then its outputs at the u32 pointers at `ptrs` (0 for an omitted input).
 * The gpu target's fallback for ops without a device kernel. Outputs are zero-filled first
 * (unless the op writes every element). Not for If (the executor runs branches).
 */
export function run_node(h: i32, mi: i32, ii: i32, ptrs: usize): i32 {
  if (diagnostics.length > 0) clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  if (mi < 0 || mi >= p.modules.length || ii < 0 || ii >= p.modules[mi].instrs.length) {
    return report(E_GRAPH, "", "", "No instruction " + ii.toString() + " in module " + mi.toString());
  }
  const ins = p.modules[mi].instrs[ii];
  if (ins.kind != K_NODE || ins.op == null || ins.opName == "If") {
    return report(E_GRAPH, ins.nodeName, ins.opName, "Instruction " + ii.toString() + " cannot run alone");
  }
  if (ins.opName == "Loop" || ins.opName == "Scan") {
    // the body runs here, on the values the host placed (host_reads, bind_value)
    const inPtrs = new Array<usize>(ins.inputs.length);
    for (let j = 0; j < ins.inputs.length; j++) inPtrs[j] = <usize>load<u32>(ptrs + (<usize>j << 2));
    const outPtrs = new Array<usize>(ins.outputs.length);
    for (let j = 0; j < ins.outputs.length; j++) {
      outPtrs[j] = <usize>load<u32>(ptrs + (<usize>(ins.inputs.length + j) << 2));
      memory.fill(outPtrs[j], 0, <usize>ins.outputs[j].shape.bytes());
    }
    const ok = runControlOnHost(p, ins, inPtrs, outPtrs);
    p.hostBound.clear();
    if (!ok) {
      if (diagnostics.length == 0) report(E_RUNTIME, ins.nodeName, ins.opName, "Node '" + ins.nodeName + "' failed");
      return 1;
    }
    return E_OK;
  }
  const inputs = new Array<Tensor | null>(ins.inputs.length);
  for (let j = 0; j < ins.inputs.length; j++) {
    const x = ins.inputs[j];
    const at = <usize>load<u32>(ptrs + (<usize>j << 2));
    inputs[j] = x == null || at == 0 ? null : new Tensor(x.shape, at);
  }
  const outputs = new Array<Tensor>(ins.outputs.length);
  for (let j = 0; j < ins.outputs.length; j++) {
    const at = <usize>load<u32>(ptrs + (<usize>(ins.inputs.length + j) << 2));
    outputs[j] = new Tensor(ins.outputs[j].shape, at);
    if (!ins.op!.has(OP_WRITES_ALL)) memory.fill(at, 0, <usize>ins.outputs[j].shape.bytes());
  }
  const ctx = new ComputeContext(ins.nodeName, ins.opName, ins.attrs, p.opset, inputs, outputs);
  const before = diagnostics.length;
  if (!ins.op!.compute(ctx)) {
    if (diagnostics.length == before) {
      report(E_RUNTIME, ins.nodeName, ins.opName, "Kernel failed at node '" + ins.nodeName + "' (" + ins.opName + ")");
    }
    return 1;
  }
  return E_OK;
}

/**
 * Bakes weights: copies program h (h is left untouched) and runs the literal passes of the target
 * named by the UTF-8 bytes at tPtr (passes/targets.ts `literalPasses`: replace_external_weights
 * with the table, hoist_prepare, and the target's own) on the copy through the pass manager, over
 * every module. The table (docs/internals.md, "Weight table") maps weight names to host literal
 * ids; a name that is not a weight of h is an E_GRAPH error. Returns the copy's handle, not
 * finalized, or a negative status.
 */
export function bake(h: i32, tablePtr: usize, tableLen: usize, tPtr: usize, tLen: usize): i32 {
  clearDiagnostics();
  registerAllOps();
  const p = get(h);
  if (p == null) return -badHandle(h);
  const target = String.UTF8.decodeUnsafe(tPtr, tLen);
  const table = decodeWeightTable(tablePtr, tableLen);
  if (table == null) return -E_GRAPH;
  const weights = new Set<string>();
  for (let mi = 0; mi < p.modules.length; mi++) {
    const m = p.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      if (m.instrs[i].kind == K_WEIGHT) weights.add(m.instrs[i].nodeName);
    }
  }
  const names = table.keys();
  let unknown = 0;
  for (let i = 0; i < names.length; i++) {
    if (weights.has(names[i])) continue;
    report(E_GRAPH, names[i], "onnx_external_weights", "Cannot bake '" + names[i] +
      "': the program has no weight of that name");
    unknown++;
  }
  if (unknown > 0) return -E_GRAPH;
  const passes = literalPasses(target, table);
  if (passes == null) return -unknownTarget(target);
  const q = cloneProgram(p);
  if (q == null) return -E_FORMAT;
  if (!runPasses(q, passes!, PM_VALIDATE, new Set<string>())) {
    disposeProgram(q);
    return -(diagnostics.length > 0 ? diagnostics[0].code : E_GRAPH);
  }
  return addProgram(q);
}

export function dispose(h: i32): void {
  const p = get(h);
  if (p == null) return;
  disposeProgram(p);
  programs[h - 1] = null;
}

// ---------------------------------------------------------------- info JSON

function dimsJson(s: Shape): string {
  let o = "[";
  for (let i = 0; i < s.lens.length; i++) {
    if (i > 0) o += ",";
    o += s.lens[i].toString();
  }
  return o + "]";
}

function valueJson(name: string, v: Value): string {
  return "{\"name\":" + jsonString(name) + ",\"dtype\":\"" + dtypeName(v.shape.dtype) + "\",\"dims\":" +
    dimsJson(v.shape) + ",\"bytes\":" + v.shape.bytes().toString();
}

/** Program info as JSON in the result buffer (inputs, weights, outputs, literals, passes, timings). */
export function info(h: i32): i32 {
  clearDiagnostics();
  const p = get(h);
  if (p == null) return badHandle(h);
  const main = p.main();
  let inputs = "";
  let weights = "";
  let hostLits = "";
  let litCount = 0;
  let litBytes: i64 = 0;
  let instrCount = 0;
  let prepCount = 0;
  const opCounts = new Map<string, i32>();
  const seenHost = new Set<i32>();
  for (let mi = 0; mi < p.modules.length; mi++) {
    const m = p.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins: Instruction = m.instrs[i];
      instrCount++;
      if (ins.prepare && !ins.skip) prepCount++;
      if (ins.kind == K_NODE) opCounts.set(ins.opName, opCounts.has(ins.opName) ? opCounts.get(ins.opName) + 1 : 1);
      const v = ins.outputs[0];
      if (ins.kind == K_PARAM && mi == 0) {
        if (inputs.length > 0) inputs += ",";
        inputs += valueJson(ins.nodeName, v) + ",\"kind\":\"param\"}";
      } else if (ins.kind == K_WEIGHT) {
        if (weights.length > 0) weights += ",";
        weights += valueJson(ins.nodeName, v) + ",\"kind\":\"weight\",\"location\":" + jsonString(ins.location) + ",\"offset\":" +
          ins.extOffset.toString() + ",\"length\":" + ins.extLength.toString() + ",\"checksum\":" +
          jsonString(ins.checksum) + ",\"module\":" + mi.toString() + "}";
      } else if (ins.kind == K_LITERAL) {
        litCount++;
        litBytes += v.shape.bytes();
      } else if (ins.kind == K_HOST_LITERAL) {
        litCount++;
        if (!seenHost.has(ins.hostId)) {
          seenHost.add(ins.hostId);
          litBytes += v.shape.bytes();
          if (hostLits.length > 0) hostLits += ",";
          hostLits += valueJson(ins.nodeName, v) + ",\"id\":" + ins.hostId.toString() + "}";
        }
      }
    }
  }
  let outputs = "";
  for (let i = 0; i < main.returns.length; i++) {
    if (i > 0) outputs += ",";
    outputs += valueJson(i < main.returnNames.length ? main.returnNames[i] : "", main.returns[i]) + ",\"bounded\":" +
      main.returns[i].bounded.toString() + "}";
  }
  let passes = "";
  for (let i = 0; i < p.passes.length; i++) {
    if (i > 0) passes += ",";
    passes += jsonString(p.passes[i]);
  }
  let timings = "";
  for (let i = 0; i < p.timingNames.length; i++) {
    if (i > 0) timings += ",";
    timings += "{\"pass\":" + jsonString(p.timingNames[i]) + ",\"ms\":" + p.timingMs[i].toString() + "}";
  }
  const opNamesSorted = opCounts.keys();
  opNamesSorted.sort();
  let ops = "";
  for (let i = 0; i < opNamesSorted.length; i++) {
    if (i > 0) ops += ",";
    ops += jsonString(opNamesSorted[i]) + ":" + opCounts.get(opNamesSorted[i]).toString();
  }
  let arena: i64 = 0;
  for (let mi = 0; mi < p.modules.length; mi++) arena += <i64>p.modules[mi].arenaBytes;
  setResultString("{\"opset\":" + p.opset.toString() + ",\"inputs\":[" + inputs + "],\"weights\":[" + weights +
    "],\"outputs\":[" + outputs + "],\"hostLiterals\":[" + hostLits + "],\"literalCount\":" + litCount.toString() +
    ",\"literalBytes\":" + litBytes.toString() + ",\"instructionCount\":" + instrCount.toString() +
    ",\"moduleCount\":" + p.modules.length.toString() + ",\"prepareCount\":" + prepCount.toString() + ",\"arenaBytes\":" + arena.toString() + ",\"literalArenaBytes\":" + p.literalArenaBytes.toString() + ",\"passes\":[" +
    passes + "],\"ops\":{" + ops + "},\"timings\":[" + timings + "]}");
  return E_OK;
}

/**
 * Threaded build, main instance: shares kernel work among `n` threads (this one included);
 * mayBlock: whether this thread may sleep in memory.atomic.wait (not a browser page's main thread);
 * returns the control block's address for the workers (0: no threads here, n < 2 or a build
 * without threads).
 */
export function threads_init(n: i32, mayBlock: i32): usize {
  return threadsInit(n, mayBlock != 0);
}

/**
 * Threaded build, worker instance (start not run, no managed heap): runs tasks from the control
 * block `ctl` with the scratch of `slot` until threads_stop (0) or `idleMs` without work (1).
 */
export function worker_loop(ctl: usize, slot: i32, idleMs: i32): i32 {
  return workerLoop(ctl, slot, idleMs);
}

/** Threaded build, main instance: makes every worker leave worker_loop; kernels run here after. */
export function threads_stop(): void {
  threadsStop();
}
