/**
 * Dynamic programs (docs/internals.md "Dynamic programs"): a program compiled with dim ranges
 * (`inputDims: { ids: [1, { min: 1, max: 1024 }] }`) or with an `If` whose branches differ in
 * shape and whose condition is a small graph input (value-keyed). It keeps the symbolic program
 * (the graph encoding, its ranges and keyed inputs: what a program file stores) and a root
 * program compiled at the smallest dims, which holds the weights. The first eval at new dims (or
 * a new keyed value) compiles a specialization for them into the root's WebAssembly instance,
 * finalized so that it reads the root's weights, host literals and shape-independent prepare
 * outputs (wasm/exec/share.ts): weights are bound once, into the root, and the prepare step runs
 * once per bind; specializations are cached by key, least recently used first out.
 * @module
 */
import type { CoreCompileOptions, CoreInfo, CoreProgram } from "./core_program.ts";
import { KilnError } from "./errors.ts";
import type { DimRange, ValueInfo } from "./onnx/import_types.ts";
import type {
  BindResult,
  BindTensor,
  Executor,
  LiteralSource,
  TargetReport,
  WeightDelta,
} from "./targets/target.ts";
import { describe, dtypeSize, elementCount, setOwn, type Tensor, tensorBytes, viewAs } from "./tensor.ts";

/** The symbolic program of a dynamic program. */
export interface DynamicSpec {
  /** the graph encoding (core/ir/builder.ts `encode`), params at their smallest dims */
  graph: Uint8Array;
  /** every graph input: dims with -1 where `ranges` gives a range */
  inputs: ValueInfo[];
  /** inputs whose value keys a specialization (they decide an If whose branches differ) */
  keyed: string[];
  /** the most specializations kept (default 8) */
  cap?: number;
}

/** One cached specialization, as `Program.info()` reports it. */
export interface SpecializationInfo {
  /** input name -> dims (ranged inputs) or value (keyed inputs), as the key */
  key: string;
  /** bytes of its intermediate-value arenas */
  arenaBytes: number;
  /** prepare nodes it reads from the root instead of running (shape-independent) */
  sharedPrepareNodes: number;
  /** evals it ran */
  evals: number;
  /** time its compile and finalize took, ms */
  compileMs: number;
  /** the root program (compiled at small dims, holding the weights) */
  root: boolean;
}

interface _Spec {
  h: number;
  info: CoreInfo;
  inSlots: { name: string; ptr: number; bytes: number }[];
  outSlots: {
    name: string;
    dtype: Tensor["dtype"];
    dims: number[];
    bytes: number;
    ptr: number;
    index: number;
    bounded?: number;
  }[];
  stale: boolean;
  evals: number;
  compileMs: number;
  shared: number;
  gen: number;
}

/** The key of a specialization: each ranged input's dims and each keyed input's bytes. */
export function specKey(spec: DynamicSpec, inputs: Record<string, Tensor>): string {
  const parts: string[] = [];
  for (const v of spec.inputs) {
    if (v.ranges) parts.push(`${v.name}=${inputs[v.name].dims.join("x")}`);
    if (spec.keyed.includes(v.name)) {
      const b = tensorBytes(inputs[v.name]);
      parts.push(
        `${v.name}=${
          v.dtype === "bool" ? (b.some((x) => x) ? "true" : "false") : viewAs(v.dtype, b.slice()).join(",")
        }`,
      );
    }
  }
  return parts.join(" ");
}

/**
 * The root's inputs: each ranged dim at its smallest length of at least 2 (at 1, a MatMul has a
 * single row and pack_gemm_weights leaves its weight unpacked, so the root would hold no packed
 * weights for the other lengths to share), keyed inputs at zero.
 */
export function rootInputs(spec: DynamicSpec): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const v of spec.inputs) {
    const dims = v.dims.map((d, i) =>
      d >= 0 ? d : Math.min(v.ranges![i]!.max, Math.max(v.ranges![i]!.min, 2))
    );
    const bytes = new Uint8Array(elementCount(dims) * dtypeSize(v.dtype));
    out[v.name] = { dtype: v.dtype, dims, data: viewAs(v.dtype, bytes) };
  }
  return out;
}

/** The decode overrides (wasm/index.ts `set_decode_overrides`) of a specialization for `inputs`. */
export function encodeOverrides(spec: DynamicSpec, inputs: Record<string, Tensor>): Uint8Array {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  let count = 0;
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    chunks.push(b);
  };
  for (const v of spec.inputs) {
    const keyed = spec.keyed.includes(v.name);
    if (!v.ranges && !keyed) continue;
    count++;
    const name = enc.encode(v.name);
    u32(name.length);
    chunks.push(name);
    if (keyed) {
      const b = tensorBytes(inputs[v.name]);
      chunks.push(new Uint8Array([1]));
      u32(b.length);
      chunks.push(b.slice());
    } else {
      const dims = inputs[v.name].dims;
      chunks.push(new Uint8Array([0]));
      u32(dims.length);
      const d = new Int32Array(dims);
      chunks.push(new Uint8Array(d.buffer));
    }
  }
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, count, true);
  const all = [head, ...chunks];
  const out = new Uint8Array(all.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of all) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Problems with `t` as dynamic input `v`: dims outside their ranges (named, with the range). */
export function rangeProblems(v: ValueInfo, t: Tensor): string[] {
  const out: string[] = [];
  v.ranges?.forEach((r, i) => {
    if (!r) return;
    const d = t.dims[i];
    if (d < r.min || d > r.max) {
      out.push(`input '${v.name}' dim ${i} is ${d}, outside its range ${r.min}..${r.max}`);
    }
  });
  return out;
}

/** Runs a dynamic program on `ref`: the root's executor for its own key, specializations for the others. */
export class DynamicExecutor implements Executor {
  readonly #core: CoreProgram;
  readonly #literals: readonly LiteralSource[];
  readonly #spec: DynamicSpec;
  readonly #root: Executor;
  readonly #rootKey: string;
  readonly #options: CoreCompileOptions;
  readonly #cache = new Map<string, _Spec>();
  #rootEvals = 0;

  constructor(
    core: CoreProgram,
    literals: readonly LiteralSource[],
    spec: DynamicSpec,
    root: Executor,
    options: CoreCompileOptions,
  ) {
    this.#core = core;
    this.#literals = literals;
    this.#spec = spec;
    this.#root = root;
    this.#options = { validate: options.validate ?? false, disablePasses: options.disablePasses };
    this.#rootKey = specKey(spec, rootInputs(spec));
  }

  get lastPrepareNodes(): number {
    return this.#root.lastPrepareNodes;
  }
  get lastPrepareMs(): number {
    return this.#root.lastPrepareMs;
  }

  async bind(tensors: readonly BindTensor[]): Promise<BindResult> {
    const r = await this.#root.bind(tensors);
    if (r.copied) this.#stale();
    return r;
  }

  async adapt(deltas: readonly WeightDelta[], clear: readonly string[]): Promise<BindResult> {
    const r = await this.#root.adapt(deltas, clear);
    this.#stale();
    return r;
  }

  #stale(): void {
    for (const s of this.#cache.values()) s.stale = true;
  }

  isBound(name: string): boolean {
    return this.#root.isBound(name);
  }

  prepare(): Promise<void> {
    return this.#root.prepare();
  }

  async run(inputs: Record<string, Tensor>, outputs?: ReadonlySet<string>): Promise<Record<string, Tensor>> {
    const key = specKey(this.#spec, inputs);
    if (key === this.#rootKey) {
      this.#rootEvals++;
      return this.#root.run(inputs, outputs);
    }
    // the root's prepare step first: the specializations read its prepare outputs
    await this.#root.prepare();
    const gen = this.#core.generation;
    for (const [k, s] of this.#cache) if (s.gen !== gen) this.#cache.delete(k); // a revived instance
    let s = this.#cache.get(key);
    if (s) this.#cache.delete(key); // most recently used last
    else s = this.#specialize(key, inputs);
    this.#cache.set(key, s);
    this.#evict();
    const engine = this.#core.engine("eval");
    const e = engine.exports;
    if (s.stale) {
      // a swap may have switched the root's weights to other buffers (core/targets/ref.ts)
      const root = this.#core.handle("eval");
      if (e.reshare_weights(s.h, root) !== 0) throw engine.error("eval");
      if (engine.call("prepare", () => e.prepare(s.h)) !== 0) throw engine.error("prepare");
      s.stale = false;
    }
    const mem = engine.u8();
    for (const slot of s.inSlots) mem.set(tensorBytes(inputs[slot.name]), slot.ptr);
    if (engine.call("eval", () => e.run(s.h)) !== 0) throw engine.error("eval");
    s.evals++;
    const out: Record<string, Tensor> = {};
    const after = engine.u8();
    for (const slot of s.outSlots) {
      if (outputs && !outputs.has(slot.name)) continue;
      let dims = [...slot.dims];
      let n = slot.bytes;
      if (slot.bounded) {
        dims = dims.map((_, d) => e.output_dim(s.h, slot.index, d));
        n = elementCount(dims) * dtypeSize(slot.dtype);
      }
      setOwn(out, slot.name, {
        dtype: slot.dtype,
        dims,
        data: viewAs(slot.dtype, after.slice(slot.ptr, slot.ptr + n)),
      });
    }
    return out;
  }

  #specialize(key: string, inputs: Record<string, Tensor>): _Spec {
    const t0 = performance.now();
    let made: { h: number; info: CoreInfo };
    try {
      made = this.#core.specialize(this.#spec.graph, encodeOverrides(this.#spec, inputs), this.#options);
    } catch (err) {
      if (err instanceof KilnError) {
        throw new KilnError(err.code, `Cannot specialize the program for ${key}: ${err.message}`, err);
      }
      throw err;
    }
    const { h, info } = made;
    const gen = this.#core.generation;
    const engine = this.#core.engine("specialize");
    const e = engine.exports;
    try {
      const rootWeights = new Set(this.#core.info.weights.map((w) => w.name));
      const own = info.weights.filter((w) => !rootWeights.has(w.name)).map((w) => `'${w.name}'`);
      if (own.length) {
        throw new KilnError(
          "unsupported",
          `Cannot specialize the program for ${key}: weight${own.length > 1 ? "s" : ""} ${own.join(", ")} ` +
            "appear only in this specialization (a branch the root folded away); bake them, or freeze the input",
        );
      }
      for (const lit of info.hostLiterals) {
        const ptr = e.host_literal_ptr(h, lit.id);
        if (!ptr) continue; // the root's copy
        const src = this.#literals[lit.id];
        if (!src || src.bytes.length !== lit.bytes) {
          throw new KilnError(
            "format",
            `Literal '${lit.name}' (${describe(lit.dtype, lit.dims)}) was not given`,
          );
        }
        engine.u8().set(src.bytes, ptr);
      }
      const names = new Set(this.#spec.inputs.map((v) => v.name));
      const inSlots = info.inputs.map((v, i) => ({ name: v.name, ptr: e.input_ptr(h, i), bytes: v.bytes }))
        .filter((x) => names.has(x.name));
      const outSlots = info.outputs.map((v, i) => ({ ...v, ptr: e.output_ptr(h, i), index: i }));
      return {
        h,
        info,
        inSlots,
        outSlots,
        stale: true,
        evals: 0,
        compileMs: performance.now() - t0,
        shared: e.shared_prepare_nodes(h),
        gen,
      };
    } catch (err) {
      this.#core.disposeHandle(h, gen);
      throw err;
    }
  }

  #evict(): void {
    const cap = Math.max(1, this.#spec.cap ?? 8);
    while (this.#cache.size > cap) {
      const [k, s] = this.#cache.entries().next().value!;
      this.#cache.delete(k);
      this.#core.disposeHandle(s.h, s.gen);
    }
  }

  /** The cached specializations, the root first, then least recently used first. */
  specializations(): SpecializationInfo[] {
    const root: SpecializationInfo = {
      key: this.#rootKey,
      arenaBytes: this.#core.info.arenaBytes,
      sharedPrepareNodes: 0,
      evals: this.#rootEvals,
      compileMs: 0,
      root: true,
    };
    return [
      root,
      ...[...this.#cache].map(([key, s]) => ({
        key,
        arenaBytes: s.info.arenaBytes,
        sharedPrepareNodes: s.shared,
        evals: s.evals,
        compileMs: s.compileMs,
        root: false,
      })),
    ];
  }

  report(): TargetReport {
    return this.#root.report();
  }

  dispose(): void {
    for (const s of this.#cache.values()) this.#core.disposeHandle(s.h, s.gen);
    this.#cache.clear();
    this.#root.dispose();
  }
}

/** `inputDims` entries -> static dims (a range's min) and the ranges (null: fixed); throws on a bad range. */
export function splitDims(
  name: string,
  given: (number | DimRange)[],
): { dims: number[]; ranges: (DimRange | null)[] | null } {
  if (!Array.isArray(given)) return { dims: given, ranges: null };
  let any = false;
  const ranges = given.map((d, i) => {
    if (typeof d === "number") return null;
    const r = d as DimRange;
    if (
      !r || typeof r !== "object" || !Number.isInteger(r.min) || !Number.isInteger(r.max) || r.min < 0 ||
      r.max < r.min || r.max > 2 ** 31 - 1
    ) {
      throw new KilnError(
        "input",
        `inputDims for '${name}' dim ${i} must be a number or { min, max } with integers 0 <= min <= max, got ${
          JSON.stringify(d)
        }`,
      );
    }
    any = true;
    return { min: r.min, max: r.max };
  });
  const dims = given.map((d) => typeof d === "number" ? d : (d as DimRange).min);
  return { dims, ranges: any ? ranges : null };
}

/** A dynamic program's symbolic program as program-file metadata (the graph encoding in base64). */
export function dynamicToJson(spec: DynamicSpec): Record<string, unknown> {
  let bin = "";
  for (let i = 0; i < spec.graph.length; i += 0x8000) {
    bin += String.fromCharCode(...spec.graph.subarray(i, i + 0x8000));
  }
  return { graph: btoa(bin), inputs: spec.inputs, keyed: spec.keyed, ...(spec.cap ? { cap: spec.cap } : {}) };
}

/** The inverse of `dynamicToJson`; a malformed entry is a "format" error naming the file. */
export function dynamicFromJson(j: unknown, path: string): DynamicSpec {
  const o = j as { graph?: unknown; inputs?: unknown; keyed?: unknown; cap?: unknown };
  if (!o || typeof o.graph !== "string" || !Array.isArray(o.inputs) || !Array.isArray(o.keyed)) {
    throw new KilnError("format", `Program file '${path}' has a malformed dynamic program entry`);
  }
  let graph: Uint8Array;
  try {
    graph = Uint8Array.from(atob(o.graph), (c) => c.charCodeAt(0));
  } catch {
    throw new KilnError("format", `Program file '${path}' has a malformed dynamic program graph`);
  }
  return {
    graph,
    inputs: o.inputs as ValueInfo[],
    keyed: (o.keyed as unknown[]).map(String),
    ...(typeof o.cap === "number" ? { cap: o.cap } : {}),
  };
}

/** `int64[1,1..1024]`: a value's type with its ranged dims as MIN..MAX and per-eval dims (-1) as `?`. */
export function describeValue(v: ValueInfo): string {
  const dims = v.dims.map((d, i) => {
    const r = v.ranges?.[i];
    return r ? `${r.min}..${r.max}` : d === -1 ? "?" : String(d);
  });
  return `${v.dtype}[${dims.join(",")}]`;
}
