/**
 * A compiled program held by a WebAssembly instance of kiln's core: what compile produces and
 * what serialize, schedule, bake and the targets' executors read. It keeps the serialized IR,
 * so that after a trap (a core bug: the instance is unusable) the next use decodes the IR into a
 * fresh instance; `generation` counts those revivals and `brokenMemory` keeps the last broken
 * instance's memory for an executor that must read its bound weights back from it.
 * @module
 */
import { Engine } from "./engine.ts";
import { KilnError } from "./errors.ts";
import type { DTypeName } from "./tensor.ts";

/** A value as the core's `info` reports it. */
export interface CoreValue {
  name: string;
  dtype: DTypeName;
  dims: number[];
  bytes: number;
  /**
   * Outputs only: bit mask of the dims that are an upper bound, the size depending on data
   * (NonZero, Compress, Unique, NonMaxSuppression); each run gives the actual extent.
   */
  bounded?: number;
}

/** The core's `info` JSON (docs/internals.md "Exports"). */
export interface CoreInfo {
  opset: number;
  inputs: CoreValue[];
  weights:
    (CoreValue & { location: string; offset: number; length: number; checksum: string; module: number })[];
  outputs: CoreValue[];
  hostLiterals: (CoreValue & { id: number })[];
  literalCount: number;
  literalBytes: number;
  instructionCount: number;
  moduleCount: number;
  prepareCount: number;
  arenaBytes: number;
  literalArenaBytes: number;
  passes: string[];
  ops: Record<string, number>;
  timings: { pass: string; ms: number }[];
}

/** compile flags (wasm/index.ts `compile`) */
const _FLAG_VALIDATE = 1;
const _FLAG_TIMINGS = 2;

const _enc = new TextEncoder();

/** Options of the core's compile. */
export interface CoreCompileOptions {
  validate?: boolean;
  timings?: boolean;
  disablePasses?: string[];
  /** Threads for the kernels (default 1; the engine falls back to 1 where the host has no shared memory). */
  threads?: number;
}

export class CoreProgram {
  /** The target whose passes compiled (or planned) it. */
  readonly target: string;
  /** Bumped at every revival after a trap. */
  generation = 0;
  /** The memory of the last instance that trapped (until an executor has read what it needs). */
  brokenMemory: ArrayBuffer | null = null;
  /**
   * The ref target keeps weights and host literals that only pack nodes read packed only
   * (docs/internals.md "Packed-only weights"); false for a dynamic program's root, whose
   * specializations may read them unpacked.
   */
  directPack = true;
  #engine: Engine;
  #h: number;
  #ir: Uint8Array;
  #info: CoreInfo;
  #disposed = false;

  private constructor(target: string, engine: Engine, h: number, ir: Uint8Array | null) {
    this.target = target;
    this.#engine = engine;
    this.#h = h;
    this.#info = this.#readInfo("compile");
    this.#ir = ir ?? this.#serialize();
  }

  /** Decodes a graph encoding and runs the target's compile pipeline. */
  static compile(
    graph: Uint8Array,
    target: string,
    options: CoreCompileOptions = {},
    overrides?: Uint8Array,
  ): CoreProgram {
    const engine = new Engine({ threads: options.threads });
    const h = CoreProgram.#load(engine, graph, target, options, overrides);
    return new CoreProgram(target, engine, h, null);
  }

  /**
   * Decodes `graph` with `overrides` (wasm/index.ts `set_decode_overrides`) and compiles it in
   * `engine`; a needs_constant error carries `deciders`, the graph inputs deciding the If.
   */
  static #load(
    engine: Engine,
    graph: Uint8Array,
    target: string,
    options: CoreCompileOptions,
    overrides?: Uint8Array,
  ): number {
    const e = engine.exports;
    if (overrides) {
      const o = engine.put(overrides);
      const st = engine.call("compile", () => e.set_decode_overrides(o, overrides.length));
      engine.free(o);
      if (st !== 0) throw engine.error("compile");
    }
    const p = engine.put(graph);
    const h = engine.call("compile", () => e.load_graph(p, graph.length));
    engine.free(p);
    if (h <= 0) {
      const n = e.if_deciders();
      const deciders = n > 0 ? new TextDecoder().decode(engine.resultBytes()).split("\n") : [];
      throw Object.assign(engine.error("compile"), { deciders });
    }
    const flags = (options.validate ?? true ? _FLAG_VALIDATE : 0) | (options.timings ? _FLAG_TIMINGS : 0);
    const t = _enc.encode(target);
    const dis = _enc.encode((options.disablePasses ?? []).join(","));
    const tp = engine.put(t);
    const dp = engine.put(dis);
    const status = engine.call("compile", () => e.compile(h, tp, t.length, flags, dp, dis.length));
    engine.free(tp);
    engine.free(dp);
    if (status !== 0) {
      const err = engine.error("compile");
      e.dispose(h);
      throw err;
    }
    return h;
  }

  /**
   * Compiles `graph` with `overrides` into this program's instance and finalizes it sharing this
   * program's weights, host literals and shape-independent prepare outputs (a specialization of a
   * dynamic program; core/dynamic.ts). Returns its handle and info; dispose with `disposeHandle`.
   */
  specialize(
    graph: Uint8Array,
    overrides: Uint8Array,
    options: CoreCompileOptions,
  ): { h: number; info: CoreInfo } {
    const engine = this.engine("specialize");
    const h = CoreProgram.#load(engine, graph, this.target, options, overrides);
    const e = engine.exports;
    try {
      if (engine.call("specialize", () => e.finalize_shared(h, this.#h)) !== 0) {
        throw engine.error("specialize");
      }
      if (engine.call("specialize", () => e.info(h)) !== 0) throw engine.error("specialize");
      return { h, info: engine.resultJson<CoreInfo>() };
    } catch (err) {
      if (!engine.broken) e.dispose(h);
      throw err;
    }
  }

  /** Frees a specialization's handle (in the live instance only: a revived one never had it). */
  disposeHandle(h: number, generation: number): void {
    if (this.#disposed || this.generation !== generation || this.#engine.broken) return;
    this.#engine.exports.dispose(h);
  }

  /** Decodes a serialized program and re-derives its plan with the target's plan passes. */
  static deserialize(ir: Uint8Array, target: string, what = "load program", threads = 1): CoreProgram {
    const engine = new Engine({ threads });
    const h = CoreProgram.#decode(engine, ir, target, what);
    return new CoreProgram(target, engine, h, ir.slice());
  }

  static #decode(engine: Engine, ir: Uint8Array, target: string, what: string): number {
    const p = engine.put(ir);
    const t = _enc.encode(target);
    const tp = engine.put(t);
    const h = engine.call(what, () => engine.exports.deserialize(p, ir.length, tp, t.length));
    engine.free(p);
    engine.free(tp);
    if (h <= 0) throw engine.error(what);
    return h;
  }

  /** The live engine (a fresh one, decoded from the IR, after a trap). */
  engine(what: string): Engine {
    if (this.#disposed) throw new KilnError("disposed", `Cannot ${what}: the program was disposed`);
    if (this.#engine.broken) {
      const old = this.#engine;
      old.dispose();
      const engine = new Engine({ threads: old.threads });
      this.#h = CoreProgram.#decode(engine, this.#ir, this.target, what);
      this.#engine = engine;
      this.brokenMemory = old.exports.memory.buffer as ArrayBuffer;
      this.generation++;
    }
    return this.#engine;
  }

  /** The program's handle in the live engine. */
  handle(what: string): number {
    this.engine(what);
    return this.#h;
  }

  /** What the core reports about the program (read at compile or load). */
  get info(): CoreInfo {
    return this.#info;
  }

  /** Re-reads the core's info (after finalize, for instance). */
  refreshInfo(what: string): CoreInfo {
    this.#info = this.#readInfo(what);
    return this.#info;
  }

  #readInfo(what: string): CoreInfo {
    const engine = this.#engine;
    if (engine.call(what, () => engine.exports.info(this.#h)) !== 0) throw engine.error(what);
    return engine.resultJson<CoreInfo>();
  }

  #serialize(): Uint8Array {
    const engine = this.#engine;
    if (engine.call("serialize", () => engine.exports.serialize(this.#h)) !== 0) {
      throw engine.error("serialize");
    }
    return engine.resultBytes();
  }

  /** The compiled program's bytes (the IR section of `.kiln` files). */
  serialize(): Uint8Array {
    if (this.#disposed) throw new KilnError("disposed", "Cannot serialize: the program was disposed");
    return this.#ir.slice();
  }

  /** The schedule: the compiled program as data for a native executor (docs/internals.md "Schedule"). */
  schedule(): Uint8Array<ArrayBuffer> {
    const engine = this.engine("write the schedule");
    if (engine.call("schedule", () => engine.exports.schedule(this.#h)) !== 0) throw engine.error("schedule");
    return engine.resultBytes() as Uint8Array<ArrayBuffer>;
  }

  /**
   * A serialized copy in which the weights of `table` (docs/internals.md "Weight table") are
   * host literals, lowered by `target`'s literal passes; this program is left untouched.
   */
  bake(table: Uint8Array, target: string): { ir: Uint8Array; literalIds: number[] } {
    const engine = this.engine("bake weights");
    const e = engine.exports;
    const tp = engine.put(table);
    const t = _enc.encode(target);
    const np = engine.put(t);
    const copy = engine.call("bake weights", () => e.bake(this.#h, tp, table.length, np, t.length));
    engine.free(tp);
    engine.free(np);
    if (copy <= 0) throw engine.error("bake weights");
    try {
      if (engine.call("bake weights", () => e.info(copy)) !== 0) throw engine.error("bake weights");
      const literalIds = engine.resultJson<CoreInfo>().hostLiterals.map((l) => l.id);
      if (engine.call("bake weights", () => e.serialize(copy)) !== 0) throw engine.error("bake weights");
      return { ir: engine.resultBytes(), literalIds };
    } finally {
      if (!engine.broken) e.dispose(copy);
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (!this.#engine.broken) this.#engine.exports.dispose(this.#h);
    this.#engine.dispose(true);
  }

  /** Threads its kernels use (1: the single-thread build). */
  get threads(): number {
    return this.#engine.threads;
  }
}
