/**
 * The `ref` target: the WebAssembly core finalizes the compiled program in its own memory
 * (arenas, buffers, host literals copied in) and runs the reference kernels. Bound weights live
 * only in the core's memory; a bind compares new bytes with them and copies what differs. After a
 * trap the core program revives in a fresh instance and this executor re-finalizes it and copies
 * the bound weights back from the broken instance's memory (a run never writes a weight).
 * @module
 */
import type { CoreProgram } from "../core_program.ts";
import type { Engine } from "../engine.ts";
import { KilnError } from "../errors.ts";
import { describe, dtypeSize, elementCount, setOwn, type Tensor, tensorBytes, viewAs } from "../tensor.ts";
import { applyDelta } from "../weights/adapter.ts";
import type {
  BindResult,
  BindTensor,
  Executor,
  LiteralSource,
  Target,
  TargetReport,
  WeightDelta,
} from "./target.ts";

interface _Slot {
  name: string;
  bytes: number;
  ptr: number;
  /** index into the core's weight list */
  index: number;
}

class RefExecutor implements Executor {
  #core: CoreProgram;
  #literals: readonly LiteralSource[];
  #gen = -1;
  #inSlots: (_Slot & { dtype: Tensor["dtype"]; dims: number[] })[] = [];
  #outSlots: (_Slot & { dtype: Tensor["dtype"]; dims: number[]; bounded?: number })[] = [];
  #weightSlots = new Map<string, _Slot[]>();
  #bound = new Set<string>();
  /** All hoisted weight-only nodes must run before the next eval (after finalize or a trap). */
  #prepared = false;
  /** Adapted weights: their base bytes (as bound) and the delta applied over them. */
  #adapted = new Map<string, { base: Uint8Array; delta: WeightDelta }>();
  /** [rows, cols] of each weight, for deltas */
  #dims = new Map<string, number[]>();
  /** Weights (core indices) bound since the last prepare: their hoisted nodes must rerun. */
  #dirty = new Set<number>();
  lastPrepareNodes = 0;
  lastPrepareMs = 0;

  constructor(core: CoreProgram, literals: readonly LiteralSource[]) {
    this.#core = core;
    this.#literals = literals;
    this.#live("finalize");
  }

  /** The engine, finalized; after a revival, finalized again with the bound weights restored. */
  #live(what: string): Engine {
    const engine = this.#core.engine(what);
    if (this.#gen === this.#core.generation) return engine;
    const old = this.#core.brokenMemory;
    const bound = new Map<string, Uint8Array>();
    if (old && this.#gen >= 0) {
      const mem = new Uint8Array(old);
      for (const name of this.#bound) {
        const s = this.#weightSlots.get(name)![0];
        bound.set(name, mem.slice(s.ptr, s.ptr + s.bytes));
      }
    }
    this.#finalize(engine, what);
    this.#gen = this.#core.generation;
    this.#core.brokenMemory = null;
    this.#bound.clear();
    this.#prepared = false;
    this.#dirty.clear();
    for (const [name, bytes] of bound) this.#copyIn(engine, name, bytes);
    return engine;
  }

  #finalize(engine: Engine, what: string): void {
    const e = engine.exports;
    const h = this.#core.handle(what);
    if (engine.call(what, () => e.finalize(h)) !== 0) throw engine.error(what);
    const info = this.#core.refreshInfo(what);
    for (const lit of info.hostLiterals) {
      const src = this.#literals[lit.id];
      if (!src) {
        throw new KilnError(
          "format",
          `Literal '${lit.name}' refers to host literal ${lit.id}, which was not given`,
        );
      }
      const bytes = src.bytes;
      if (bytes.length !== lit.bytes) {
        throw new KilnError(
          "format",
          `Literal '${lit.name}' has ${bytes.length} bytes, ${
            describe(lit.dtype, lit.dims)
          } needs ${lit.bytes}`,
        );
      }
      const ptr = e.host_literal_ptr(h, lit.id);
      if (!ptr) throw new KilnError("internal", `No memory for literal '${lit.name}'`);
      engine.u8().set(bytes, ptr);
    }
    this.#inSlots = info.inputs.map((v, i) => ({ ...v, ptr: e.input_ptr(h, i), index: i }));
    this.#outSlots = info.outputs.map((v, i) => ({ ...v, ptr: e.output_ptr(h, i), index: i }));
    this.#weightSlots = new Map();
    info.weights.forEach((v, i) => {
      this.#dims.set(v.name, [...v.dims]);
      const slot = { name: v.name, bytes: v.bytes, ptr: e.weight_ptr(h, i), index: i };
      const list = this.#weightSlots.get(v.name);
      if (list) list.push(slot);
      else this.#weightSlots.set(v.name, [slot]);
    });
  }

  #copyIn(engine: Engine, name: string, bytes: Uint8Array): void {
    const mem = engine.u8();
    for (const slot of this.#weightSlots.get(name)!) {
      mem.set(bytes, slot.ptr);
      this.#dirty.add(slot.index);
    }
    this.#bound.add(name);
  }

  isBound(name: string): boolean {
    return this.#bound.has(name);
  }

  bind(tensors: readonly BindTensor[]): Promise<BindResult> {
    try {
      const engine = this.#live("bind weights");
      const result: BindResult = { copied: 0, skipped: 0, bytesCopied: 0 };
      const changed: BindTensor[] = [];
      for (const t of tensors) {
        if (!this.#weightSlots.has(t.name)) {
          throw new KilnError("weights", `Cannot bind weights: '${t.name}' is not a weight of this program`);
        }
        const s = this.#weightSlots.get(t.name)![0];
        const adapted = this.#adapted.get(t.name);
        const bound = adapted ? adapted.base : new Uint8Array(engine.exports.memory.buffer, s.ptr, s.bytes);
        if (this.#bound.has(t.name) && _sameContent(bound, t.bytes)) {
          result.skipped++;
          continue;
        }
        changed.push(t);
      }
      // every tensor read (a lazy one from its file) before anything changes
      const bytes = changed.map((t) => t.bytes);
      // a weight bound under an adapter becomes its base, adapted in the same bind
      const adapted = changed.map((t, i) => {
        const a = this.#adapted.get(t.name);
        return a ? this.#delta(t.name, bytes[i], a.delta) : null;
      });
      changed.forEach((t, i) => {
        const a = adapted[i];
        if (a) {
          this.#adapted.set(t.name, { base: bytes[i].slice(), delta: this.#adapted.get(t.name)!.delta });
          result.adapted = (result.adapted ?? 0) + 1;
        }
        this.#copyIn(engine, t.name, a ?? bytes[i]);
        result.copied++;
        result.bytesCopied += bytes[i].byteLength;
      });
      return Promise.resolve(result);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #delta(name: string, base: Uint8Array, d: WeightDelta): Uint8Array {
    const dims = this.#dims.get(name)!;
    return applyDelta(base, dims[0], dims[1], d);
  }

  adapt(deltas: readonly WeightDelta[], clear: readonly string[]): Promise<BindResult> {
    try {
      const engine = this.#live("apply an adapter");
      const mem = engine.u8();
      // every delta computed before anything changes
      const writes: {
        name: string;
        bytes: Uint8Array;
        base: Uint8Array | null;
        delta: WeightDelta | null;
      }[] = [];
      for (const d of deltas) {
        const slot = this.#weightSlots.get(d.name)?.[0];
        if (!slot || !this.#bound.has(d.name)) {
          throw new KilnError("weights", `Cannot apply the adapter: weight '${d.name}' is not bound`);
        }
        const base = this.#adapted.get(d.name)?.base ?? mem.slice(slot.ptr, slot.ptr + slot.bytes);
        writes.push({ name: d.name, bytes: this.#delta(d.name, base, d), base, delta: d });
      }
      for (const name of clear) {
        const a = this.#adapted.get(name);
        if (a) writes.push({ name, bytes: a.base, base: null, delta: null });
      }
      for (const w of writes) {
        this.#copyIn(engine, w.name, w.bytes);
        if (w.delta) this.#adapted.set(w.name, { base: w.base!, delta: w.delta });
        else this.#adapted.delete(w.name);
      }
      return Promise.resolve({ copied: 0, skipped: 0, bytesCopied: 0, adapted: writes.length });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Runs the out-of-date hoisted nodes: all after finalize, else those downstream of the bound weights. */
  prepare(): Promise<void> {
    try {
      this.#prepareSync(this.#live("prepare"));
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #prepareSync(engine: Engine): void {
    const e = engine.exports;
    const h = this.#core.handle("prepare");
    const t0 = performance.now();
    if (!this.#prepared) {
      if (engine.call("prepare", () => e.prepare(h)) !== 0) throw engine.error("prepare");
    } else if (this.#dirty.size) {
      const idx = new Int32Array([...this.#dirty]);
      const p = engine.put(new Uint8Array(idx.buffer));
      try {
        if (engine.call("prepare", () => e.prepare_weights(h, p, idx.length)) !== 0) {
          throw engine.error("prepare");
        }
      } finally {
        if (!engine.broken) engine.free(p);
      }
    } else {
      this.lastPrepareNodes = 0;
      this.lastPrepareMs = 0;
      return;
    }
    this.#prepared = true;
    this.#dirty.clear();
    this.lastPrepareNodes = e.last_prepare_nodes();
    this.lastPrepareMs = performance.now() - t0;
  }

  run(inputs: Record<string, Tensor>, outputs?: ReadonlySet<string>): Promise<Record<string, Tensor>> {
    try {
      const engine = this.#live("eval");
      this.#prepareSync(engine);
      const mem = engine.u8();
      for (const slot of this.#inSlots) mem.set(tensorBytes(inputs[slot.name]), slot.ptr);
      const h = this.#core.handle("eval");
      if (engine.call("eval", () => engine.exports.run(h)) !== 0) throw engine.error("eval");
      const out: Record<string, Tensor> = {};
      const after = engine.u8();
      for (const slot of this.#outSlots) {
        if (outputs && !outputs.has(slot.name)) continue;
        let dims = [...slot.dims];
        let n = slot.bytes;
        if (slot.bounded) {
          // a data-dependent size: the actual extent, its data packed at the start of the bound
          dims = dims.map((_, d) => engine.exports.output_dim(h, slot.index, d));
          n = elementCount(dims) * dtypeSize(slot.dtype);
        }
        const bytes = after.slice(slot.ptr, slot.ptr + n);
        setOwn(out, slot.name, { dtype: slot.dtype, dims, data: viewAs(slot.dtype, bytes) });
      }
      return Promise.resolve(out);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  report(): TargetReport {
    return { device: "WebAssembly", hostNodes: [], deviceBytes: 0 };
  }

  dispose(): void {
    this.#weightSlots.clear();
  }
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
 * development VM), which is why the ref target compares the bound bytes instead of hashing them.
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

/** The ref target's compile pipeline, in order (wasm/passes/targets.ts `compilePasses`). */
export const REF_PASSES: readonly string[] = [
  "eliminate_identity",
  "fold_constants",
  "cse",
  "pack_gemm_weights",
  "dce",
  "hoist_prepare",
  "memory_plan",
];

/** The reference target: the WebAssembly core, no permission beyond reading the model. */
export const refTarget: Target = {
  name: "ref",
  passes: REF_PASSES,
  literalPasses: ["replace_external_weights", "hoist_prepare"],
  readsFiles: false,
  threaded: true,
  instantiate(core, literals) {
    return new RefExecutor(core, literals);
  },
};
