/**
 * The `ref` target: the WebAssembly core finalizes the compiled program in its own memory
 * (arenas, buffers, host literals copied in) and runs the reference kernels. Bound weights live
 * only in the core's memory; a bind compares new bytes with them and copies what differs. After a
 * trap the core program revives in a fresh instance and this executor re-finalizes it and copies
 * the bound weights back from the broken instance's memory (a run never writes a weight).
 * @module
 */
import type { CoreProgram } from "../core_program.ts";
import { openRegularSync } from "../fs.ts";
import { type HostFile, SEEK_START } from "../host.ts";
import type { FileRange } from "../io.ts";
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
  /**
   * a buffer of the same size that the weight does not use (0: none yet): the next swap stages
   * its bytes there, and a changed weight is switched in by address, the old buffer becoming spare
   */
  spare?: number;
}

/**
 * The core's memory a bind may grow to with its staging region (wasm32 addresses 4 GiB; headroom
 * kept). Internal (tests lower it to take the host path); not exported by mod.ts.
 */
export const refStaging = { limitBytes: 3.5 * 2 ** 30 };

/** A tensor read into the core for a bind: at `ptr`, a staging allocation or (`inPlace`) its slot. */
interface _Staged {
  name: string;
  ptr: number;
  bytes: number;
  /** read straight into the slot of a weight not bound yet (nothing to free) */
  inPlace: boolean;
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
      const ptr = e.host_literal_ptr(h, lit.id);
      if (!ptr) throw new KilnError("internal", `No memory for literal '${lit.name}'`);
      if (src.file && !src.file.sha1 && src.file.length === lit.bytes) {
        // a range of a file (an external initializer): read straight into the core's memory
        _readInto(engine, src.file, ptr, `literal '${lit.name}'`);
        continue;
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

  /**
   * Binds `tensors`. A tensor that names a file range (a WeightSet for a ref program leaves them
   * unread) is read straight into a staging region in the core's memory: no host copy. Only when
   * every range is in are the staged tensors compared with the bound ones (in the core, stopping
   * at the first 64 bytes that differ) and the changed ones switched in by address (the core's
   * nodes then read the staged buffer; the old one stages the next swap), so a read that fails
   * midway leaves the bound weights as they were. Tensors held in memory (arrays, an
   * adapter's base) are compared and copied as they are.
   */
  bind(tensors: readonly BindTensor[]): Promise<BindResult> {
    try {
      const engine = this.#live("bind weights");
      const result: BindResult = { copied: 0, skipped: 0, bytesCopied: 0 };
      for (const t of tensors) {
        if (!this.#weightSlots.has(t.name)) {
          throw new KilnError("weights", `Cannot bind weights: '${t.name}' is not a weight of this program`);
        }
      }
      // a weight under an adapter needs its base bytes on the host: read as before
      let fromFile = tensors.filter((t) => t.file && !this.#adapted.has(t.name));
      // the staging region must fit the core's memory beside what it holds (wasm32: 4 GiB): a
      // swap that would not is read on the host instead (compared and copied in the same way)
      const need = fromFile.reduce(
        (a, t) =>
          a + (this.#bound.has(t.name) && !this.#weightSlots.get(t.name)![0].spare ? t.file!.length : 0),
        0,
      );
      if (engine.exports.memory.buffer.byteLength + need > refStaging.limitBytes) fromFile = [];
      const staged = new Set(fromFile);
      const held = tensors.filter((t) => !staged.has(t));
      const staging = fromFile.length ? this.#stage(engine, fromFile) : null;
      const changed: BindTensor[] = [];
      // every held tensor read (a lazy one from its file, once) before anything changes
      const bytes: Uint8Array[] = [];
      for (const t of held) {
        const s = this.#weightSlots.get(t.name)![0];
        const adapted = this.#adapted.get(t.name);
        const bound = adapted ? adapted.base : new Uint8Array(engine.exports.memory.buffer, s.ptr, s.bytes);
        const own = t.bytes;
        if (this.#bound.has(t.name) && _sameContent(bound, own)) {
          result.skipped++;
          continue;
        }
        changed.push(t);
        bytes.push(own);
      }
      // a weight bound under an adapter becomes its base, adapted in the same bind
      const adapted = changed.map((t, i) => {
        const a = this.#adapted.get(t.name);
        return a ? this.#delta(t.name, bytes[i], a.delta) : null;
      });
      // the staged tensors that differ from the bound ones
      const t0 = performance.now();
      const switches: _Staged[] = [];
      if (staging) {
        const e = engine.exports;
        for (const st of staging.list) {
          const s = this.#weightSlots.get(st.name)![0];
          if (
            !st.inPlace && this.#bound.has(st.name) && s.bytes === st.bytes &&
            e.bytes_equal(s.ptr, st.ptr, st.bytes) === 1
          ) {
            result.skipped++;
          } else switches.push(st);
        }
      }
      const t1 = performance.now();
      // the switch (nothing above changed a bound weight): a staged weight by address, its old
      // buffer kept as the next swap's staging; a weight read in place as it is; a second slot
      // of the same weight (rare) by copy
      const e = engine.exports;
      const h = this.#core.handle("bind weights");
      let moved = false;
      for (const st of switches) {
        const slots = this.#weightSlots.get(st.name)!;
        if (!st.inPlace) {
          const old = e.set_weight_ptr(h, slots[0].index, st.ptr);
          if (old === 0) throw new KilnError("internal", `Cannot switch weight '${st.name}' in`);
          slots[0].spare = old;
          slots[0].ptr = st.ptr;
          moved = true;
        }
        const mem = engine.u8();
        for (const slot of slots) {
          if (slot.ptr !== st.ptr) mem.copyWithin(slot.ptr, st.ptr, st.ptr + st.bytes);
          this.#dirty.add(slot.index);
        }
        this.#bound.add(st.name);
        result.copied++;
        result.bytesCopied += st.bytes;
      }
      if (moved) {
        if (e.weights_moved(h) !== 0) throw engine.error("bind weights");
        // an output may alias a weight
        for (const slot of this.#outSlots) slot.ptr = e.output_ptr(h, slot.index);
      }
      const t2 = performance.now();
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
      if (staging) {
        result.staging = {
          readMs: staging.readMs,
          compareMs: t1 - t0,
          switchMs: t2 - t1,
          bytesRead: staging.bytesRead,
        };
      }
      return Promise.resolve(result);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Reads each tensor's file range into the staging region in the core's memory: the weight's
   * spare buffer, allocated on its first swap and kept (every allocation made first: growing the
   * memory detaches views; then one fresh view per read). A weight not bound yet is read straight
   * into its slot instead (`inPlace`): it stays unbound, so unusable, until the switch, and needs
   * no spare (a program's first bind). Each file is opened once. On any failure the error is
   * thrown: no bound weight has changed (a spare holds no weight).
   */
  #stage(
    engine: Engine,
    tensors: readonly BindTensor[],
  ): { list: _Staged[]; readMs: number; bytesRead: number } {
    const list: (_Staged & { file: FileRange; source: string })[] = [];
    for (const t of tensors) {
      const file = t.file!;
      const slot = this.#weightSlots.get(t.name)![0];
      if (file.length !== slot.bytes) {
        throw new KilnError(
          "weights",
          `Cannot bind weight '${t.name}' from ${t.source}: ${file.length} bytes, the program needs ${slot.bytes}`,
        );
      }
      const inPlace = !this.#bound.has(t.name); // (its length checked above)
      if (!inPlace && !slot.spare) {
        slot.spare = engine.call("stage weights", () => engine.exports.alloc(file.length));
      }
      const ptr = inPlace ? slot.ptr : slot.spare!;
      list.push({ name: t.name, ptr, bytes: file.length, inPlace, file, source: t.source });
    }
    const t0 = performance.now();
    let bytesRead = 0;
    // grouped by file, in offset order: one open per file, reads that go forward
    const byPath = new Map<string, typeof list>();
    for (const st of list) {
      const l = byPath.get(st.file.path);
      if (l) l.push(st);
      else byPath.set(st.file.path, [st]);
    }
    for (const [path, sts] of byPath) {
      sts.sort((a, b) => a.file.offset - b.file.offset);
      using f = openRegularSync(path, "Weight file", `of weight '${sts[0].name}'`).file;
      for (const st of sts) {
        bytesRead += _readRange(
          engine,
          f,
          st.file,
          st.ptr,
          `Cannot bind weight '${st.name}' from ${st.source}`,
          " (nothing was bound)",
        );
      }
    }
    return { list, readMs: performance.now() - t0, bytesRead };
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

/**
 * Reads `range` of the open file `f` into the core's memory at `ptr` (no host copy); throws
 * KilnError "io", headed by `what` (and `after` at its end), when the file ends first. Returns
 * the bytes read.
 */
function _readRange(
  engine: Engine,
  f: HostFile,
  range: FileRange,
  ptr: number,
  what: string,
  after = "",
): number {
  f.seekSync(range.offset, SEEK_START);
  let got = 0;
  while (got < range.length) {
    // a fresh view per read: nothing here grows the memory, but a view must never outlive a growth
    const n = f.readSync(new Uint8Array(engine.exports.memory.buffer, ptr + got, range.length - got));
    if (n === null) {
      throw new KilnError(
        "io",
        `${what}: file '${range.path}' has ${f.statSync().size} bytes (it changed since it was checked), bytes ${range.offset}..${
          range.offset + range.length
        } were needed${after}`,
      );
    }
    got += n;
  }
  return got;
}

/** `_readRange` of a file opened for it (a literal's range, at finalize). */
function _readInto(engine: Engine, range: FileRange, ptr: number, what: string): void {
  using f = openRegularSync(range.path, "Data file", `of ${what}`).file;
  _readRange(engine, f, range, ptr, `Cannot read ${what}`);
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
  specializes: true,
  bindsFileRanges: true,
  threaded: true,
  instantiate(core, literals) {
    return new RefExecutor(core, literals);
  },
};
