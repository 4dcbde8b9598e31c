/**
 * `compile` and `Program`: a parsed model compiled by the WASM core into a finalized program
 * that evaluates on the `ref` target. Also `deserializeProgram`, the inverse of
 * `Program.serialize` (the IR section of `.kiln` files).
 * @module
 */
import { Engine } from "./engine.ts";
import { KilnError } from "./errors.ts";
import type { HostLiteral, ParsedModel, ValueInfo } from "./onnx/import.ts";
import { specsOf, WeightSet, type WeightSpec } from "./weights/weight_set.ts";
import {
  describe,
  type DTypeName,
  dtypeSize,
  elementCount,
  type Tensor,
  tensorBytes,
  viewAs,
} from "./tensor.ts";

/** Options of `compile`. */
export interface CompileOptions {
  /** Validate the IR after every pass (default true). */
  validate?: boolean;
  /** Record per-pass timings in `program.passTimings` (default false). */
  timings?: boolean;
  /**
   * Pass names to skip (e.g. `["cse"]`; any of `REF_PASSES`). `["pack_gemm_weights"]` trades eval
   * speed for memory: weight-only Gemm/MatMul operands are then packed on every run instead of once.
   */
  disablePasses?: string[];
}

/** The ref target's compile pipeline, in order (wasm/passes/manager.ts `refPasses`). */
export const REF_PASSES: readonly string[] = [
  "eliminate_identity",
  "fold_constants",
  "cse",
  "pack_gemm_weights",
  "dce",
  "memory_plan",
];

/** A deferred weight (`onnx_external_weights`): a named run-time input with its external-data reference. */
export interface WeightInfo extends ValueInfo {
  /** the external-data file the model named, relative to the model's folder */
  location: string;
  /** byte offset in that file */
  offset: number;
  /** byte length in that file */
  length: number;
  /** the model's recorded SHA-1 of that file, "" when none */
  checksum: string;
}

/** What `Program.info()` reports. */
export interface ProgramInfo {
  /** the target it runs on */
  target: string;
  /** opset of the default ONNX domain */
  opset: number;
  /** graph inputs, in order */
  inputs: ValueInfo[];
  /** graph outputs, in order */
  outputs: ValueInfo[];
  /** deferred weights (the weight signature) */
  weights: WeightInfo[];
  /** literal instructions (inline and host) */
  literalCount: number;
  /** bytes of those literals */
  literalBytes: number;
  /** instructions, all modules */
  instructionCount: number;
  /** modules: main and one per If branch */
  moduleCount: number;
  /** nodes that depend only on literals and weights: run once per weight bind, not per eval */
  prepareCount: number;
  /** bytes of the intermediate-value arenas (all modules) */
  arenaBytes: number;
  /** the passes that compiled the program, in order */
  passes: string[];
  /** node count per op name, all modules (internal ops are named `kiln.*`) */
  ops: Record<string, number>;
}

interface _CoreValue {
  name: string;
  dtype: DTypeName;
  dims: number[];
  bytes: number;
}
interface _CoreInfo {
  opset: number;
  inputs: _CoreValue[];
  weights: (_CoreValue & { location: string; offset: number; length: number; checksum: string })[];
  outputs: _CoreValue[];
  hostLiterals: (_CoreValue & { id: number })[];
  literalCount: number;
  literalBytes: number;
  instructionCount: number;
  moduleCount: number;
  prepareCount: number;
  arenaBytes: number;
  passes: string[];
  ops: Record<string, number>;
  timings: { pass: string; ms: number }[];
}

const _FLAG_VALIDATE = 1;
const _FLAG_TIMINGS = 2;

interface _Slot {
  info: ValueInfo;
  bytes: number;
  ptr: number;
  /** index into the core's weight list (weight slots only) */
  index: number;
}

/** Loads `ir` into a fresh engine and finalizes it; returns the engine, handle and info. */
function _instantiate(ir: Uint8Array, hostLiterals: HostLiteral[], what: string) {
  const engine = new Engine();
  const p = engine.put(ir);
  const h = engine.call(what, () => engine.exports.deserialize(p, ir.length));
  engine.free(p);
  if (h <= 0) throw engine.error(what);
  return _finalize(engine, h, hostLiterals, what);
}

function _finalize(engine: Engine, h: number, hostLiterals: HostLiteral[], what: string) {
  const e = engine.exports;
  if (engine.call(what, () => e.finalize(h)) !== 0) throw engine.error(what);
  if (engine.call(what, () => e.info(h)) !== 0) throw engine.error(what);
  const info = engine.resultJson<_CoreInfo>();
  for (const lit of info.hostLiterals) {
    const src = hostLiterals[lit.id];
    if (!src) {
      throw new KilnError(
        "format",
        `Literal '${lit.name}' refers to host literal ${lit.id}, which was not given`,
      );
    }
    if (src.bytes.length !== lit.bytes) {
      throw new KilnError(
        "format",
        `Literal '${lit.name}' has ${src.bytes.length} bytes, ${
          describe(lit.dtype, lit.dims)
        } needs ${lit.bytes}`,
      );
    }
    const ptr = e.host_literal_ptr(h, lit.id);
    if (!ptr) throw new KilnError("internal", `No memory for literal '${lit.name}'`);
    engine.u8().set(src.bytes, ptr);
  }
  return { engine, h, info };
}

/**
 * A compiled, finalized program on the `ref` target.
 *
 * @example
 * ```ts ignore
 * const program = compile(await parseOnnx("model.onnx"), "ref");
 * const { y } = await program.eval({ x: { dtype: "float32", dims: [1, 4], data: new Float32Array(4) } });
 * program.dispose();
 * ```
 */
export class Program {
  /** Target the program runs on. */
  readonly target: string;
  /** Graph inputs, in order. */
  readonly inputs: ValueInfo[];
  /** Graph outputs with their inferred dims. */
  readonly outputs: ValueInfo[];
  /** Deferred weights (bound with `setWeights`). */
  readonly weights: WeightInfo[];
  /** Per-pass timings when compiled with `{ timings: true }`. */
  readonly passTimings: { pass: string; ms: number }[];
  #fixed: string[] = [];
  #engine: Engine | null;
  #h: number;
  #info: _CoreInfo;
  #hostLiterals: HostLiteral[];
  #ir: Uint8Array | null = null;
  #inSlots: _Slot[] = [];
  #outSlots: _Slot[] = [];
  #weightSlots = new Map<string, _Slot[]>();
  /**
   * Names of the bound weights. Their bytes live only in the core's memory (no host copy is kept:
   * GPT-2 would hold 497 MB twice); a bind compares against them there, and recovery after a
   * trap reads them back from the broken instance's memory, which stays readable.
   */
  #bound = new Set<string>();
  #disposed = false;
  /** All hoisted weight-only nodes must run before the next eval (after finalize or a trap). */
  #prepared = false;
  /** Weights (core indices) bound since the last prepare: their hoisted nodes must rerun. */
  #dirty = new Set<number>();

  /** @internal use `compile` or `deserializeProgram`. */
  constructor(engine: Engine, h: number, info: _CoreInfo, hostLiterals: HostLiteral[], target: string) {
    this.target = target;
    this.#engine = engine;
    this.#h = h;
    this.#info = info;
    this.#hostLiterals = hostLiterals;
    this.inputs = info.inputs.map((v) => ({ name: v.name, dtype: v.dtype, dims: [...v.dims] }));
    this.outputs = info.outputs.map((v) => ({ name: v.name, dtype: v.dtype, dims: [...v.dims] }));
    const seen = new Set<string>();
    this.weights = info.weights.filter((w) => !seen.has(w.name) && seen.add(w.name)).map((w) => ({
      name: w.name,
      dtype: w.dtype,
      dims: [...w.dims],
      location: w.location,
      offset: w.offset,
      length: w.length,
      checksum: w.checksum,
    }));
    this.passTimings = info.timings.map((t) => ({ ...t }));
    this.#bindSlots();
  }

  #bindSlots(): void {
    const e = this.#engine!.exports;
    const h = this.#h;
    this.#inSlots = this.#info.inputs.map((v, i) => ({
      info: v,
      bytes: v.bytes,
      ptr: e.input_ptr(h, i),
      index: i,
    }));
    this.#outSlots = this.#info.outputs.map((v, i) => ({
      info: v,
      bytes: v.bytes,
      ptr: e.output_ptr(h, i),
      index: i,
    }));
    this.#weightSlots = new Map();
    this.#info.weights.forEach((v, i) => {
      const slot = { info: v, bytes: v.bytes, ptr: e.weight_ptr(h, i), index: i };
      const list = this.#weightSlots.get(v.name);
      if (list) list.push(slot);
      else this.#weightSlots.set(v.name, [slot]);
    });
  }

  #live(what: string): Engine {
    if (this.#disposed) throw new KilnError("disposed", `Cannot ${what}: the program was disposed`);
    if (!this.#engine || this.#engine.broken) this.#revive(what);
    return this.#engine!;
  }

  /** After a trap: a fresh instance from the serialized program, with the same literals and weights. */
  #revive(what: string): void {
    const ir = this.#ir!;
    // the bound weights, copied out of the broken instance's memory (weights are never written
    // by a run, so a trap cannot have changed them)
    const bound: Record<string, Tensor> = {};
    if (this.#engine) {
      const old = new Uint8Array(this.#engine.exports.memory.buffer);
      for (const name of this.#bound) {
        const slot = this.#weightSlots.get(name)![0];
        const w = this.weights.find((x) => x.name === name)!;
        bound[name] = {
          dtype: w.dtype,
          dims: w.dims,
          data: viewAs(w.dtype, old.slice(slot.ptr, slot.ptr + slot.bytes)),
        };
      }
    }
    const { engine, h, info } = _instantiate(ir, this.#hostLiterals, what);
    this.#engine = engine;
    this.#h = h;
    this.#info = info;
    this.#bindSlots();
    this.#bound.clear();
    this.#prepared = false;
    if (Object.keys(bound).length) this.setWeights(bound);
  }

  /** The bytes bound for weight `name`, in the core's memory (a view: valid until the next call). */
  #boundBytes(name: string): Uint8Array {
    const slot = this.#weightSlots.get(name)![0];
    return new Uint8Array(this.#engine!.exports.memory.buffer, slot.ptr, slot.bytes);
  }

  /** @internal traps inside the core on purpose (tests of recovery). */
  _debugTrap(): void {
    const engine = this.#live("trap");
    engine.call("debug trap", () => engine.exports.debug_trap());
  }

  /** @internal keeps the serialized IR for recovery after a trap. */
  _keepIr(): void {
    this.#ir = this.serialize().ir;
  }

  /**
   * Binds deferred weights by name (checked against the weight signature; every mismatch is
   * reported at once and nothing changes on failure).
   */
  setWeights(weights: Record<string, Tensor>): void {
    const engine = this.#live("set weights");
    const problems: string[] = [];
    for (const [name, t] of Object.entries(weights)) {
      const slots = this.#weightSlots.get(name);
      if (!slots) {
        problems.push(`'${name}' is not a weight of this program`);
        continue;
      }
      const p = _checkTensor(`weight '${name}'`, slots[0].info, t);
      if (p) problems.push(p);
    }
    if (problems.length) throw new KilnError("weights", `Cannot bind weights: ${problems.join("; ")}`);
    for (const [name, t] of Object.entries(weights)) {
      const mem = engine.u8();
      for (const slot of this.#weightSlots.get(name)!) {
        mem.set(tensorBytes(t), slot.ptr);
        this.#dirty.add(slot.index);
      }
      this.#bound.add(name);
    }
  }

  /**
   * External initializers that stayed literals because the compiler needs their values (shape
   * inputs, If conditions): part of the program, not replaceable by a weight set.
   */
  get fixedWeights(): string[] {
    return [...this.#fixed];
  }

  /** @internal records the fixed weights (compile, load). */
  _setFixedWeights(names: readonly string[]): void {
    this.#fixed = [...names];
  }

  /**
   * The weight signature: every deferred weight with its element type, dims, byte length and
   * where the model stored it. A weight set must match it to be bound or baked.
   */
  weightSignature(): WeightSpec[] {
    return specsOf(this.weights);
  }

  /**
   * Binds a weight set: checked against the weight signature first (every problem reported at
   * once; on failure the program keeps the weights it had), then copied in. A tensor whose
   * content is unchanged (the same bytes as the bound one, compared exactly) is not copied again.
   * With `{ partial: true }` (or a partial WeightSet) only the named weights change.
   *
   * @example
   * ```ts ignore
   * program.bindWeights(await WeightSet.fromOnnxDir(program, "weights_v2"));
   * ```
   */
  bindWeights(
    weights: WeightSet | Record<string, Tensor | Tensor["data"]>,
    options: { partial?: boolean } = {},
  ): BindReport {
    const t0 = performance.now();
    this.#live("bind weights"); // a fresh instance after a trap, before comparing with its memory
    const signature = this.weightSignature();
    const set = weights instanceof WeightSet
      ? weights
      : WeightSet.fromArrays(signature, weights, { partial: options.partial });
    const partial = options.partial ?? set.partial;
    (partial === set.partial ? set : new WeightSet(set.tensors.values(), partial)).validate(
      signature,
      "Cannot bind weights",
    );
    const changed: Record<string, Tensor> = {};
    const report: BindReport = { copied: 0, skipped: 0, bytesCopied: 0, ms: 0 };
    for (const t of set.tensors.values()) {
      if (this.#bound.has(t.name) && _sameContent(this.#boundBytes(t.name), t.bytes)) {
        report.skipped++;
        continue;
      }
      changed[t.name] = { dtype: t.dtype, dims: t.dims, data: viewAs(t.dtype, t.bytes) };
      report.copied++;
      report.bytesCopied += t.bytes.byteLength;
    }
    if (report.copied) this.setWeights(changed);
    report.ms = performance.now() - t0;
    return report;
  }

  /**
   * Runs the hoisted weight-only nodes that are out of date: all of them after finalize, else
   * only those downstream of the weights bound since (a partial swap re-packs what it changed).
   */
  #prepare(engine: Engine): void {
    const e = engine.exports;
    const t0 = performance.now();
    if (!this.#prepared) {
      if (engine.call("prepare", () => e.prepare(this.#h)) !== 0) throw engine.error("prepare");
    } else if (this.#dirty.size) {
      const idx = new Int32Array([...this.#dirty]);
      const p = engine.put(new Uint8Array(idx.buffer));
      try {
        if (engine.call("prepare", () => e.prepare_weights(this.#h, p, idx.length)) !== 0) {
          throw engine.error("prepare");
        }
      } finally {
        if (!engine.broken) engine.free(p);
      }
    } else {
      this._lastPrepareNodes = 0;
      this._lastPrepareMs = 0;
      return;
    }
    this.#prepared = true;
    this.#dirty.clear();
    this._lastPrepareNodes = e.last_prepare_nodes();
    this._lastPrepareMs = performance.now() - t0;
  }

  /** @internal how many hoisted nodes ran before the last eval (tests). */
  _lastPrepareNodes = 0;
  /** @internal how long they took, ms (benchmarks). */
  _lastPrepareMs = 0;

  /** Runs the program. Inputs are checked by name, dtype and dims. */
  eval(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    try {
      return Promise.resolve(this.#evalSync(inputs));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #evalSync(inputs: Record<string, Tensor>): Record<string, Tensor> {
    const engine = this.#live("eval");
    const problems: string[] = [];
    for (const slot of this.#inSlots) {
      const t = inputs[slot.info.name];
      if (t === undefined) {
        problems.push(`missing input '${slot.info.name}' (${describe(slot.info.dtype, slot.info.dims)})`);
        continue;
      }
      const p = _checkTensor(`input '${slot.info.name}'`, slot.info, t);
      if (p) problems.push(p);
    }
    for (const name of Object.keys(inputs)) {
      if (!this.#inSlots.some((s) => s.info.name === name)) {
        const known = this.#inSlots.map((s) => `'${s.info.name}'`).join(", ") || "none";
        problems.push(`unknown input '${name}' (inputs: ${known})`);
      }
    }
    for (const w of this.weights) {
      if (!this.#bound.has(w.name)) problems.push(`weight '${w.name}' is not bound (use setWeights)`);
    }
    if (problems.length) throw new KilnError("input", `Cannot eval: ${problems.join("; ")}`);
    this.#prepare(engine);
    const mem = engine.u8();
    for (const slot of this.#inSlots) mem.set(tensorBytes(inputs[slot.info.name]), slot.ptr);
    const status = engine.call("eval", () => engine.exports.run(this.#h));
    if (status !== 0) throw engine.error("eval");
    const out: Record<string, Tensor> = {};
    const after = engine.u8();
    for (const slot of this.#outSlots) {
      const bytes = after.slice(slot.ptr, slot.ptr + slot.bytes);
      out[slot.info.name] = {
        dtype: slot.info.dtype,
        dims: [...slot.info.dims],
        data: viewAs(slot.info.dtype, bytes),
      };
    }
    return out;
  }

  /** The compiled program (IR) and the host literals it references by id. */
  serialize(): { ir: Uint8Array; hostLiterals: HostLiteral[] } {
    if (this.#disposed) throw new KilnError("disposed", "Cannot serialize: the program was disposed");
    if (!this.#engine || this.#engine.broken) {
      if (this.#ir) return { ir: this.#ir.slice(), hostLiterals: [...this.#hostLiterals] };
    }
    const engine = this.#engine!;
    const status = engine.call("serialize", () => engine.exports.serialize(this.#h));
    if (status !== 0) throw engine.error("serialize");
    return { ir: engine.resultBytes(), hostLiterals: [...this.#hostLiterals] };
  }

  /**
   * Bakes weights: a serialized copy of this program in which each given weight is a literal
   * (its bytes appended to the host literal table). Weights not given stay deferred. This
   * program is left untouched; `deserializeProgram` finalizes the result.
   *
   * @example
   * ```ts ignore
   * const { ir, hostLiterals } = program.bake({ "fc.weight": w });
   * const baked = deserializeProgram(ir, hostLiterals, "ref");
   * ```
   */
  bake(weights: Record<string, Tensor>): { ir: Uint8Array; hostLiterals: HostLiteral[] } {
    const engine = this.#live("bake weights");
    const problems: string[] = [];
    for (const [name, t] of Object.entries(weights)) {
      const slots = this.#weightSlots.get(name);
      if (!slots) problems.push(`'${name}' is not a weight of this program`);
      else {
        const p = _checkTensor(`weight '${name}'`, slots[0].info, t);
        if (p) problems.push(p);
      }
    }
    if (problems.length) throw new KilnError("weights", `Cannot bake weights: ${problems.join("; ")}`);
    // each baked weight's bytes become a new host literal; the weight table (docs/internals.md,
    // "Weight table") maps its name to that id: u32 count, then per entry str name + i32 id
    const hostLiterals = [...this.#hostLiterals];
    const utf8 = new TextEncoder();
    const entries: { name: Uint8Array; id: number }[] = [];
    for (const [name, t] of Object.entries(weights)) {
      const w = this.weights.find((x) => x.name === name)!;
      entries.push({ name: utf8.encode(name), id: hostLiterals.length });
      hostLiterals.push({ name, dtype: w.dtype, dims: [...w.dims], bytes: tensorBytes(t).slice() });
    }
    const table = new Uint8Array(entries.reduce((n, x) => n + 8 + x.name.length, 4));
    const view = new DataView(table.buffer);
    view.setUint32(0, entries.length, true);
    let at = 4;
    for (const { name, id } of entries) {
      view.setUint32(at, name.length, true);
      table.set(name, at + 4);
      view.setInt32(at + 4 + name.length, id, true);
      at += 8 + name.length;
    }
    // the core copies the program and runs the target's literal passes on the copy
    const e = engine.exports;
    const tp = engine.put(table);
    const copy = engine.call("bake weights", () => e.bake(this.#h, tp, table.length));
    engine.free(tp);
    if (copy <= 0) throw engine.error("bake weights");
    try {
      if (engine.call("bake weights", () => e.serialize(copy)) !== 0) throw engine.error("bake weights");
      return { ir: engine.resultBytes(), hostLiterals };
    } finally {
      if (!engine.broken) e.dispose(copy);
    }
  }

  /** Inputs, outputs, weights, literal and instruction counts, and the pass list. */
  info(): ProgramInfo {
    const i = this.#info;
    return {
      target: this.target,
      opset: i.opset,
      inputs: this.inputs.map((v) => ({ ...v, dims: [...v.dims] })),
      outputs: this.outputs.map((v) => ({ ...v, dims: [...v.dims] })),
      weights: this.weights.map((v) => ({ ...v, dims: [...v.dims] })),
      literalCount: i.literalCount,
      literalBytes: i.literalBytes,
      instructionCount: i.instructionCount,
      moduleCount: i.moduleCount,
      prepareCount: i.prepareCount,
      arenaBytes: i.arenaBytes,
      passes: [...i.passes],
      ops: { ...i.ops },
    };
  }

  /** Releases the program's WASM instance and memory. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const engine = this.#engine;
    this.#engine = null;
    if (engine && !engine.broken) engine.exports.dispose(this.#h);
  }
}

function _checkTensor(what: string, want: ValueInfo, t: Tensor): string | undefined {
  if (!t || typeof t !== "object" || !t.data) return `${what} is not a tensor`;
  if (
    t.dtype !== want.dtype || t.dims.length !== want.dims.length || t.dims.some((d, i) => d !== want.dims[i])
  ) {
    return `${what} is ${describe(t.dtype, t.dims)}, expected ${describe(want.dtype, want.dims)}`;
  }
  const need = elementCount(want.dims) * dtypeSize(want.dtype);
  if (t.data.byteLength !== need) {
    return `${what} has ${t.data.byteLength} bytes of data, ${describe(t.dtype, t.dims)} needs ${need}`;
  }
  return undefined;
}

/**
 * Compiles a parsed model: encodes its graph, decodes it in the WASM core (shape inference,
 * eager folding), runs the ref pipeline (`REF_PASSES`: eliminate_identity, fold_constants, cse,
 * pack_gemm_weights, dce, memory_plan) and finalizes (host literals copied into WASM memory).
 */
export function compile(model: ParsedModel, target: "ref" = "ref", options: CompileOptions = {}): Program {
  if (target !== "ref") {
    throw new KilnError("target", `Unknown target '${target}' (kiln's core targets: 'ref')`);
  }
  const unknown = (options.disablePasses ?? []).filter((n) => !REF_PASSES.includes(n));
  if (unknown.length) {
    throw new KilnError(
      "options",
      `Unknown pass${unknown.length > 1 ? "es" : ""} ${unknown.map((n) => `'${n}'`).join(", ")} in ` +
        `disablePasses (the ref pipeline: ${REF_PASSES.join(", ")})`,
    );
  }
  const graph = model.graph as { encode(): Uint8Array };
  const enc = graph.encode();
  const engine = new Engine();
  const e = engine.exports;
  const p = engine.put(enc);
  const h = engine.call("compile", () => e.load_graph(p, enc.length));
  engine.free(p);
  if (h <= 0) throw engine.error("compile");
  const flags = (options.validate ?? true ? _FLAG_VALIDATE : 0) | (options.timings ? _FLAG_TIMINGS : 0);
  const dis = new TextEncoder().encode((options.disablePasses ?? []).join(","));
  const dp = engine.put(dis);
  const status = engine.call("compile", () => e.compile(h, flags, dp, dis.length));
  engine.free(dp);
  if (status !== 0) throw engine.error("compile");
  const fin = _finalize(engine, h, model.hostLiterals, "compile");
  const program = new Program(fin.engine, fin.h, fin.info, model.hostLiterals, target);
  program._setFixedWeights(model.fixedWeights ?? []);
  program._keepIr();
  return program;
}

/** A finalized program from `Program.serialize()` output (no passes re-run). */
export function deserializeProgram(
  ir: Uint8Array,
  hostLiterals: HostLiteral[],
  target: "ref" | string = "ref",
): Program {
  if (target !== "ref") {
    throw new KilnError("target", `Unknown target '${target}' (kiln's core targets: 'ref')`);
  }
  const { engine, h, info } = _instantiate(ir, hostLiterals, "load program");
  const program = new Program(engine, h, info, hostLiterals, target);
  program._keepIr();
  return program;
}

/** What `bindWeights` did. */
export interface BindReport {
  /** tensors copied in */
  copied: number;
  /** tensors skipped because their content was already bound */
  skipped: number;
  /** bytes copied into the program */
  bytesCopied: number;
  /** time the bind took, milliseconds */
  ms: number;
}

function _sameContent(b: Uint8Array, t: Uint8Array): boolean {
  const n = b.byteLength;
  if (n !== t.byteLength) return false;
  // Cheap probes first: new weights almost always differ in the first bytes sampled.
  for (let k = 0; k < 64; k++) {
    const i = Math.floor((k * (n - 1)) / 63);
    if (b[i] !== t[i]) return false;
  }
  return _equalBytes(b, t);
}

/**
 * Byte-for-byte equality, 4 bytes at a time where both views allow it. Exact, unlike a hash,
 * and 4-5x cheaper than SHA-1 of both sides (GPT-2's 497 MB: about 150 ms against 700 ms on the
 * development VM), which is why kiln compares the bound bytes instead of hashing them.
 */
function _equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.byteLength;
  let i = 0;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const w = n >>> 2;
    const a4 = new Int32Array(a.buffer, a.byteOffset, w);
    const b4 = new Int32Array(b.buffer, b.byteOffset, w);
    for (let k = 0; k < w; k++) if (a4[k] !== b4[k]) return false;
    i = w << 2;
  }
  for (; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
