/**
 * `compile` and `Program`: a parsed model compiled by the WASM core for a target (`ref` or `gpu`)
 * and finalized there. Also `deserializeProgram`, the inverse of `Program.serialize` (the IR
 * section of `.kiln` files). What is target-specific lives behind the target seam
 * (core/targets/): this file checks inputs and weights, and delegates.
 * @module
 */
import { type CoreCompileOptions, type CoreInfo, CoreProgram } from "./core_program.ts";
import {
  describeValue,
  DynamicExecutor,
  type DynamicSpec,
  encodeOverrides,
  rangeProblems,
  rootInputs,
  type SpecializationInfo,
} from "./dynamic.ts";
import { KilnError, throwIfAborted } from "./errors.ts";
import { withLazyBytes } from "./io.ts";
import type { HostLiteral, ParsedModel, ValueInfo } from "./onnx/import.ts";
import { getTarget } from "./targets/registry.ts";
import type {
  BindPhases,
  DnnReport,
  Executor,
  FusionReport,
  GpuOptions,
  GraphReport,
  HostNode,
  NodeTime,
  PrecisionReport,
  StagingPhases,
  Target,
  TargetName,
} from "./targets/target.ts";
import { checkThreads } from "./threads.ts";
import { describe, dtypeSize, elementCount, type Tensor, tensorBytes, typedArrayProblem } from "./tensor.ts";
import { Adapter, type AdapterOptions } from "./weights/adapter.ts";
import { specsOf, WeightSet, type WeightSpec, type WeightTensor } from "./weights/weight_set.ts";

export { REF_PASSES } from "./targets/ref.ts";
export { GPU_PASSES } from "./targets/gpu.ts";

/** Options of `compile`. */
export interface CompileOptions {
  /** Validate the IR after every pass (default true). */
  validate?: boolean;
  /** Record per-pass timings in `program.passTimings` (default false). */
  timings?: boolean;
  /**
   * Pass names to skip (e.g. `["cse"]`; any of the target's pipeline, `REF_PASSES` or
   * `GPU_PASSES`). On ref, `["pack_gemm_weights"]` trades eval speed for memory: weight-only
   * Gemm/MatMul operands are then packed on every run instead of once.
   */
  disablePasses?: string[];
  /** The gpu target's library, device and memory options (ignored on ref). */
  gpu?: GpuOptions;
  /**
   * Compile an `If` whose branches differ in shape and whose condition a small graph input decides
   * as a dynamic program specialized on that input's value (default true); false: refuse it
   * (needs_constant, naming the input to freeze).
   */
  valueKeyed?: boolean;
  /** Specializations a dynamic program keeps (default 8; least recently used out). */
  specializations?: number;
  /**
   * Threads for the ref target's heavy kernels (GEMM, convolution), sharing the core's memory
   * (default: the cores available; 1 runs the single-thread build). Where the host has no
   * shared memory (a browser page without cross-origin isolation) it runs on one thread;
   * `info().threads` says what it got. Results equal the single-thread ones (docs/threads.md).
   * Ignored on gpu (its host-run nodes use one thread).
   */
  threads?: number;
}

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
  /** where it runs: "WebAssembly" on ref, the GPU's name and architecture on gpu */
  device: string;
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
  /** threads its kernels use (ref; 1 on one thread or where the host has no shared memory) */
  threads: number;
  /** nodes without a kernel on the target: they run on the host's reference kernels (gpu) */
  hostNodes: HostNode[];
  /**
   * device memory the program holds, bytes (0 on ref): arenas, literals, the bound weights and, after
   * the second bind, one spare buffer per weight that the next swap stages into
   */
  deviceBytes: number;
  /** how evals launch on the gpu target (a replayed graph, or kernel by kernel and why) */
  graphs?: GraphReport;
  /** gpu: what was fused (elementwise kernels, Transposes folded into MatMuls) */
  fusion?: FusionReport;
  /**
   * gpu: the GEMMs' arithmetic (GpuOptions.precision: "tf32", "fp16" or "bf16" only where asked for
   * and applied; `why` says what does not apply or runs in another precision)
   */
  precision?: PrecisionReport;
  /** gpu: the GEMM library, e.g. "cublas (libcublas.so.13)", or "kiln (why none)" */
  blas?: string;
  /** gpu: the convolution library and the Convs that run on it */
  dnn?: DnnReport;
  /**
   * A dynamic program (dim ranges, or an If specialized on an input's value): the inputs whose
   * value keys a specialization, and the cached specializations, the root (smallest dims, holding
   * the weights) first.
   */
  dynamic?: { keyed: string[]; specializations: SpecializationInfo[] };
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
  /** where the time went (gpu): validate, load (read + hash + upload, overlapped), prepare */
  phases?: BindPhases;
  /** where the time went (ref): read into the core's staging region, compare, switch */
  staging?: StagingPhases;
  /** weights re-adapted because an adapter applies to them (`applyAdapter`) */
  adapted?: number;
}

/** What `applyAdapter` or `removeAdapter` did. */
export interface AdapterReport {
  /** the adapter now applied (null: none) */
  adapter: string | null;
  /** weights whose delta was applied or changed */
  adapted: number;
  /** weights returned to their base (adapted by the previous adapter, not by this one) */
  restored: number;
  /** time it took, milliseconds (on gpu: the factors' upload, one small GEMM per weight, the prepare step) */
  ms: number;
}

/** Options of `Program.eval`. */
export interface EvalOptions {
  /** the outputs to return (default: all); on the gpu target the others stay on the device */
  outputs?: readonly string[];
  /** an eval still waiting (behind a bind or other evals) when it fires does not run: KilnError "aborted" */
  signal?: AbortSignal;
  /**
   * the resident weight set to run with (`addWeightSet`; gpu) for this eval only; default: the
   * one `useWeights` chose, else the bound weights
   */
  weights?: string;
}

/** What `Program.profile` measured: one eval, every node timed (gpu: on the device; ref: wall time on the main thread). */
export interface ProfileReport {
  /** the device, e.g. "NVIDIA H200 (sm_90)" */
  device: string;
  /** the nodes' time summed, ms (gpu: launch gaps excluded) */
  totalMs: number;
  /** every node that ran (gpu: on the device), in launch order */
  nodes: NodeTime[];
  /** the same summed per op, largest first */
  ops: { op: string; count: number; ms: number }[];
}

/** What kiln's own modules, tests and benchmarks reach inside a Program for (not part of the API). */
export interface ProgramInternals {
  /** how many hoisted (prepare) nodes ran before the last eval */
  readonly lastPrepareNodes: number;
  /** how long they took, ms */
  readonly lastPrepareMs: number;
  /** records the fixed weights (compile, load) */
  setFixedWeights(names: readonly string[]): void;
  /** traps inside the core on purpose (tests of recovery) */
  debugTrap(): void;
  /** workers of the core's thread pool running now (tests of threads) */
  readonly workersRunning: number;
  /** kernel tasks each thread has run (index 0: the main instance; empty on one thread) */
  tasksRun(): number[];
}

let _internals: (p: Program) => ProgramInternals;

/** The internals of `p` (kiln's modules, tests and benchmarks; not exported by mod.ts). */
export function programInternals(p: Program): ProgramInternals {
  return _internals(p);
}

/**
 * A compiled, finalized program.
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
  readonly target: TargetName;
  /** Graph inputs, in order. */
  readonly inputs: ValueInfo[];
  /** Graph outputs with their inferred dims. */
  readonly outputs: ValueInfo[];
  /** Deferred weights (bound with `bindWeights`). */
  readonly weights: WeightInfo[];
  /** Per-pass timings when compiled with `{ timings: true }`. */
  readonly passTimings: { pass: string; ms: number }[];
  #fixed: string[] = [];
  #core: CoreProgram;
  #exec: Executor;
  #target: Target;
  #hostLiterals: HostLiteral[];
  #disposed = false;
  #queue: Promise<unknown> = Promise.resolve();
  #bindQueue: Promise<unknown> = Promise.resolve();
  /** the resident weight set evals read unless told otherwise (useWeights; null: the bound weights) */
  #current: string | null = null;
  /** the applied adapter and the weights it adapts */
  #adapter: { name: string; weights: string[] } | null = null;

  #dynamic: DynamicSpec | null;

  /** @internal use `compile` or `deserializeProgram`. */
  constructor(
    core: CoreProgram,
    hostLiterals: HostLiteral[],
    target: Target,
    options: GpuOptions = {},
    dynamic: DynamicSpec | null = null,
    compileOptions: CoreCompileOptions = {},
  ) {
    this.#dynamic = dynamic;
    this.#core = core;
    this.#target = target;
    this.target = target.name;
    this.#hostLiterals = hostLiterals;
    const info: CoreInfo = core.info;
    this.inputs = dynamic
      ? dynamic.inputs.map((v) => ({
        ...v,
        dims: [...v.dims],
        ...(v.ranges ? { ranges: [...v.ranges] } : {}),
      }))
      : info.inputs.map((v) => ({ name: v.name, dtype: v.dtype, dims: [...v.dims] }));
    this.outputs = info.outputs.map((v) => {
      const bounded = v.dims.map((_, d) => d).filter((d) => ((v.bounded ?? 0) >> d) & 1);
      // a dynamic program's output dims are known per eval
      const dims = dynamic ? v.dims.map(() => -1) : [...v.dims];
      return { name: v.name, dtype: v.dtype, dims, ...(bounded.length ? { bounded } : {}) };
    });
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
    if (dynamic && !target.specializes) {
      throw new KilnError(
        "unsupported",
        `Cannot run a dynamic program (${
          dynamic.keyed.length
            ? `an If specialized on input '${dynamic.keyed[0]}'`
            : "input dims given as ranges"
        }) on the ${target.name} target: its specializations must share one weight store, which only ref ` +
          "can do today; give fixed dims (or freeze the input) to compile for it",
      );
    }
    // a dynamic root's specializations may read its weights unpacked (a single-row MatMul)
    if (dynamic) core.directPack = false;
    const exec = target.instantiate(core, hostLiterals, options);
    this.#exec = dynamic ? new DynamicExecutor(core, hostLiterals, dynamic, exec, compileOptions) : exec;
  }

  /** The symbolic program of a dynamic program (what a program file stores), else null. */
  get dynamicSpec(): DynamicSpec | null {
    return this.#dynamic;
  }

  /** True when the program's target reads weight files itself (a WeightSet then stays unread in JavaScript). */
  get readsWeightFiles(): boolean {
    return this.#target.readsFiles || this.#target.bindsFileRanges === true;
  }

  #check(what: string): void {
    if (this.#disposed) throw new KilnError("disposed", `Cannot ${what}: the program was disposed`);
  }

  /** Runs `fn` after every earlier call of this program has settled (one at a time on a target). */
  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Runs `fn` after every earlier bind has settled (binds stage one at a time, beside evals). */
  #bindSerialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#bindQueue.then(fn, fn);
    this.#bindQueue = next.catch(() => {});
    return next;
  }

  /**
   * Binds deferred weights by name (checked against the weight signature; every mismatch is
   * reported at once and nothing changes on failure). Weights not named keep their values.
   */
  async setWeights(weights: Record<string, Tensor>): Promise<void> {
    await this.bindWeights(weights, { partial: true });
  }

  /**
   * External initializers that stayed literals because the compiler needs their values (shape
   * inputs, If conditions): part of the program, not replaceable by a weight set.
   */
  get fixedWeights(): string[] {
    return [...this.#fixed];
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
   * once; on failure the program keeps the weights it had), then staged and switched in at once.
   * On the gpu target the staging (reading, hashing, uploading) runs beside evals, which keep
   * using the weights bound before; the switch happens between two evals, so every eval sees one
   * weight set whole. A tensor whose content is already bound is not copied again. With
   * `{ partial: true }` (or a partial WeightSet) only the named weights change. With `{ signal }`
   * an abort before the switch (while staging, or waiting for evals to finish) stops the bind
   * with KilnError "aborted" and drops what was staged: the bound weights keep serving.
   *
   * @example
   * ```ts ignore
   * await program.bindWeights(await WeightSet.fromOnnxDir(program, "weights_v2"));
   * ```
   */
  bindWeights(
    weights: WeightSet | Record<string, Tensor | Tensor["data"]> | string,
    options: { partial?: boolean; signal?: AbortSignal } = {},
  ): Promise<BindReport> {
    const what = "Binding weights";
    return this.#bindSerialized(async () => {
      this.#check("bind weights");
      throwIfAborted(options.signal, what);
      const t0 = performance.now();
      if (typeof weights === "string") {
        // a host-resident set (addWeightSet(name, set, { on: "host" })): copied from pinned memory
        const exec = this.#exec;
        if (!exec.stageHostSet) {
          throw new KilnError(
            "unsupported",
            `Cannot bind weight set '${weights}': the ${this.target} target has no host weight sets`,
          );
        }
        const staged = await exec.stageHostSet(weights);
        return this.#serialized(async () => {
          this.#check("bind weights");
          const r = await exec.bind(staged);
          return { ...r, ms: performance.now() - t0 };
        });
      }
      const signature = this.weightSignature();
      const set = weights instanceof WeightSet
        ? weights
        : WeightSet.fromArrays(signature, weights, { partial: options.partial });
      const partial = options.partial ?? set.partial;
      (partial === set.partial ? set : new WeightSet(set.tensors.values(), partial)).validate(
        signature,
        "Cannot bind weights",
      );
      const tensors = [...set.tensors.values()];
      const exec = this.#exec;
      // read and uploaded beside the evals (where the target can), then switched between two evals
      if (exec.stage) await exec.stage(tensors);
      const aborted = () => {
        if (!options.signal?.aborted) return;
        exec.discard?.(tensors);
        throwIfAborted(options.signal, what);
      };
      aborted();
      return this.#serialized(async () => {
        this.#check("bind weights");
        aborted();
        const r = await exec.bind(tensors);
        return { ...r, ms: performance.now() - t0 };
      });
    });
  }

  /**
   * Applies a LoRA adapter (an `Adapter`, or a path that `Adapter.load` reads: a folder PEFT
   * saved, or a safetensors file) to the bound weights: each adapted weight becomes
   * W0 + scale·B·A, computed from the kept base weights W0 (on the device on gpu), so applying
   * another adapter replaces this one instead of adding to it, and `removeAdapter` restores W0
   * exactly. The adapter is checked against the weight signature first (every problem reported
   * at once; nothing changes on failure) and switched in between two evals. It stays applied
   * over weights bound later. Resident weight sets (`addWeightSet`) are not adapted.
   *
   * @example
   * ```ts ignore
   * await program.applyAdapter("adapters/customer-a"); // adapter_model.safetensors + adapter_config.json
   * await program.applyAdapter("adapters/customer-b"); // replaces customer-a
   * await program.removeAdapter(); // the base weights, bit for bit
   * ```
   */
  applyAdapter(adapter: Adapter | string, options?: AdapterOptions): Promise<AdapterReport> {
    return this.#bindSerialized(async () => {
      this.#check("apply an adapter");
      const t0 = performance.now();
      const a = typeof adapter === "string" ? await Adapter.load(adapter, options) : adapter;
      const deltas = a.resolve(this.weightSignature(), "Cannot apply adapter");
      const names = new Set(deltas.map((d) => d.name));
      const restore = (this.#adapter?.weights ?? []).filter((w) => !names.has(w));
      return await this.#serialized(async () => {
        this.#check("apply an adapter");
        await this.#exec.adapt(deltas, restore);
        this.#adapter = { name: a.name, weights: [...names] };
        return {
          adapter: a.name,
          adapted: deltas.length,
          restored: restore.length,
          ms: performance.now() - t0,
        };
      });
    });
  }

  /** Removes the applied adapter: every weight it adapted is its bound base weight again, bit for bit. */
  removeAdapter(): Promise<AdapterReport> {
    return this.#bindSerialized(() =>
      this.#serialized(async () => {
        this.#check("remove the adapter");
        const t0 = performance.now();
        const restore = this.#adapter?.weights ?? [];
        if (restore.length) await this.#exec.adapt([], restore);
        this.#adapter = null;
        return { adapter: null, adapted: 0, restored: restore.length, ms: performance.now() - t0 };
      })
    );
  }

  /** The applied adapter (`applyAdapter`): its name and the weights it adapts; null when none. */
  get adapter(): { name: string; weights: string[] } | null {
    return this.#adapter ? { name: this.#adapter.name, weights: [...this.#adapter.weights] } : null;
  }

  static {
    // the internals kiln's own modules, tests and benchmarks use (programInternals), kept off the
    // public class so they are not part of its API or its documentation
    _internals = (p) => ({
      get lastPrepareNodes() {
        return p.#exec.lastPrepareNodes;
      },
      get lastPrepareMs() {
        return p.#exec.lastPrepareMs;
      },
      setFixedWeights(names) {
        p.#fixed = [...names];
      },
      get workersRunning() {
        return p.#core.engine("count workers").workersRunning;
      },
      tasksRun() {
        return p.#core.engine("count tasks").tasksRun();
      },
      debugTrap() {
        p.#check("trap");
        const engine = p.#core.engine("trap");
        engine.call("debug trap", () => engine.exports.debug_trap());
      },
    });
  }

  /**
   * Runs the program. Inputs are checked by name, dtype and dims. With `{ outputs }` only the
   * named outputs are returned: on the gpu target the others are not copied back to the host
   * (`outputs: []` runs the program and leaves every output on the device).
   *
   * @example
   * ```ts ignore
   * const { logits } = await program.eval({ ids }, { outputs: ["logits"] });
   * ```
   */
  eval(inputs: Record<string, Tensor>, options?: EvalOptions): Promise<Record<string, Tensor>> {
    return this.#serialized(async () => {
      this.#check("eval");
      throwIfAborted(options?.signal, "The eval");
      await this.#selectWeights(options?.weights ?? this.#current, "eval");
      this.#checkEvalInputs(inputs);
      let wanted: Set<string> | undefined;
      if (options?.outputs) {
        wanted = new Set(options.outputs);
        const unknown = [...wanted].filter((n) => !this.outputs.some((o) => o.name === n));
        if (unknown.length) {
          const known = this.outputs.map((o) => `'${o.name}'`).join(", ");
          throw new KilnError(
            "input",
            `Cannot eval: ${unknown.map((n) => `unknown output '${n}'`).join("; ")} (outputs: ${known})`,
          );
        }
      }
      return this.#exec.run(inputs, wanted);
    });
  }

  /** Makes evals read resident set `name` (null: the bound weights), where the target has sets. */
  async #selectWeights(name: string | null, what: string): Promise<void> {
    if (!this.#exec.selectSet) {
      if (name !== null) {
        throw new KilnError(
          "unsupported",
          `Cannot ${what} with weight set '${name}': the ${this.target} target has no resident weight sets`,
        );
      }
      return;
    }
    await this.#exec.selectSet(name);
  }

  /**
   * Keeps a whole weight set resident on the device under `name`, beside the bound weights
   * (gpu). It is checked against the weight signature (every weight needed), read and uploaded
   * while evals go on, and added between two evals; `eval` with `{ weights: name }` or
   * `useWeights(name)` then run with it without copying anything (a switch costs the prepare
   * step's rerun). It holds device memory until `removeWeightSet`.
   *
   * @example
   * ```ts ignore
   * await program.addWeightSet("customer-b", await WeightSet.fromOnnxDir(program, "weights_b"));
   * const { logits } = await program.eval({ ids }, { weights: "customer-b" });
   * ```
   */
  addWeightSet(
    name: string,
    weights: WeightSet | Record<string, Tensor | Tensor["data"]>,
    options?: { on?: "device" | "host" },
  ): Promise<void> {
    return this.#bindSerialized(async () => {
      this.#check("add a weight set");
      const exec = this.#exec;
      const onHost = options?.on === "host";
      if (onHost ? !exec.addHostSet : !exec.addSet) {
        throw new KilnError(
          "unsupported",
          `Cannot add weight set '${name}': the ${this.target} target has no resident weight sets`,
        );
      }
      const signature = this.weightSignature();
      const set = weights instanceof WeightSet ? weights : WeightSet.fromArrays(signature, weights);
      (set.partial ? new WeightSet(set.tensors.values(), false) : set).validate(
        signature,
        `Cannot add weight set '${name}'`,
      );
      if (onHost) {
        await exec.addHostSet!(name, [...set.tensors.values()]);
        return;
      }
      const commit = await exec.addSet!(name, [...set.tensors.values()]);
      await this.#serialized(() => {
        this.#check("add a weight set");
        commit();
        return Promise.resolve();
      });
    });
  }

  /**
   * Makes the resident weight set `name` the one evals read from now on (null: back to the bound
   * weights), between two evals; the prepare step reruns for it here.
   */
  useWeights(name: string | null): Promise<void> {
    return this.#serialized(async () => {
      this.#check("use a weight set");
      await this.#selectWeights(name, "use weights");
      this.#current = name;
    });
  }

  /** Frees resident weight set `name` (device or host); evals that used it go back to the bound weights. */
  removeWeightSet(name: string): Promise<void> {
    if (this.#exec.hostSetNames?.().includes(name)) {
      return this.#bindSerialized(() => {
        this.#exec.removeHostSet!(name);
        return Promise.resolve();
      });
    }
    return this.#serialized(() => {
      this.#check("remove a weight set");
      if (!this.#exec.removeSet) {
        throw new KilnError(
          "unsupported",
          `Cannot remove weight set '${name}': the ${this.target} target has no resident weight sets`,
        );
      }
      this.#exec.removeSet(name);
      if (this.#current === name) this.#current = null;
      return Promise.resolve();
    });
  }

  /**
   * The resident weight sets (gpu): on the device (`names`), in pinned host memory (`host`), and
   * the one evals read (null: the bound weights).
   */
  get weightSets(): { names: string[]; host: string[]; current: string | null } {
    return {
      names: this.#exec.setNames?.() ?? [],
      host: this.#exec.hostSetNames?.() ?? [],
      current: this.#current,
    };
  }

  /**
   * One eval that times every node: the nodes in launch order with their milliseconds, and the
   * same summed per op, largest first. gpu: device time; evals are not replayed as a graph while
   * profiling, so the total is the kernels' time without launch gaps. ref: each node's wall time on
   * the main thread from the host's clock (with threads, waiting for the workers included), so the
   * total is about one eval's time.
   */
  profile(inputs: Record<string, Tensor>): Promise<ProfileReport> {
    return this.#serialized(async () => {
      this.#check("profile");
      const exec = this.#exec;
      if (!exec.profile) {
        throw new KilnError("unsupported", `Cannot profile: the ${this.target} target does not time nodes`);
      }
      await this.#selectWeights(this.#current, "profile");
      this.#checkEvalInputs(inputs);
      const nodes = await exec.profile(inputs);
      const byOp = new Map<string, { op: string; count: number; ms: number }>();
      for (const n of nodes) {
        const o = byOp.get(n.op) ?? { op: n.op, count: 0, ms: 0 };
        o.count++;
        o.ms += n.ms;
        byOp.set(n.op, o);
      }
      return {
        device: exec.report().device,
        totalMs: nodes.reduce((a, n) => a + n.ms, 0),
        nodes,
        ops: [...byOp.values()].sort((a, b) => b.ms - a.ms),
      };
    });
  }

  /** Checks eval inputs by name, dtype and dims, and that every weight is bound (all problems at once). */
  #checkEvalInputs(inputs: Record<string, Tensor>): void {
    const problems: string[] = [];
    for (const v of this.inputs) {
      const t = Object.hasOwn(inputs, v.name) ? inputs[v.name] : undefined;
      if (t === undefined) {
        problems.push(`missing input '${v.name}' (${describeValue(v)})`);
        continue;
      }
      const p = _checkTensor(`input '${v.name}'`, v, t);
      if (p) problems.push(p);
      else if (v.ranges) problems.push(...rangeProblems(v, t));
    }
    for (const name of Object.keys(inputs)) {
      if (!this.inputs.some((v) => v.name === name)) {
        const known = this.inputs.map((v) => `'${v.name}'`).join(", ") || "none";
        problems.push(`unknown input '${name}' (inputs: ${known})`);
      }
    }
    for (const w of this.weights) {
      if (!this.#exec.isBound(w.name)) problems.push(`weight '${w.name}' is not bound (use bindWeights)`);
    }
    if (problems.length) throw new KilnError("input", `Cannot eval: ${problems.join("; ")}`);
  }

  /** The compiled program (IR) and the host literals it references by id. */
  serialize(): { ir: Uint8Array; hostLiterals: HostLiteral[] } {
    this.#check("serialize");
    return { ir: this.#core.serialize(), hostLiterals: [...this.#hostLiterals] };
  }

  /**
   * Bakes weights: a serialized copy of this program in which each given weight is a literal
   * (its bytes appended to the host literal table), lowered by this program's target's literal
   * passes. Weights not given stay deferred. This program is left untouched;
   * `deserializeProgram` finalizes the result.
   *
   * @example
   * ```ts ignore
   * const { ir, hostLiterals } = program.bake({ "fc.weight": w });
   * const baked = deserializeProgram(ir, hostLiterals, "ref");
   * ```
   */
  bake(weights: Record<string, Tensor> | WeightSet): {
    ir: Uint8Array;
    hostLiterals: HostLiteral[];
    literalIds: number[];
  } {
    this.#check("bake weights");
    if (this.#dynamic) {
      // the baked copy would be the root alone, fixed at its dims
      throw new KilnError(
        "unsupported",
        "Cannot bake weights into a dynamic program (its specializations read the bound weights): bind them " +
          "with bindWeights, or compile with fixed dims to bake",
      );
    }
    const tensors: WeightTensor[] = weights instanceof WeightSet
      ? [...weights.tensors.values()]
      : Object.entries(weights).map(([name, t]) => ({
        name,
        dtype: t.dtype,
        dims: t.dims,
        bytes: tensorBytes(t),
        source: "typed array",
      }));
    const problems: string[] = [];
    for (const t of tensors) {
      const w = this.weights.find((x) => x.name === t.name);
      if (!w) problems.push(`'${t.name}' is not a weight of this program`);
      else {
        const p = _checkSpec(`weight '${t.name}'`, w, t);
        if (p) problems.push(p);
      }
    }
    if (problems.length) throw new KilnError("weights", `Cannot bake weights: ${problems.join("; ")}`);
    // each baked weight becomes a new host literal (a file range stays a file range); the weight
    // table (docs/internals.md, "Weight table") maps its name to that id
    const hostLiterals = [...this.#hostLiterals];
    const utf8 = new TextEncoder();
    const entries: { name: Uint8Array; id: number }[] = [];
    for (const t of tensors) {
      const w = this.weights.find((x) => x.name === t.name)!;
      entries.push({ name: utf8.encode(t.name), id: hostLiterals.length });
      const lit = { name: t.name, dtype: w.dtype, dims: [...w.dims] };
      hostLiterals.push(t.file ? withLazyBytes(lit, t.file) : { ...lit, bytes: t.bytes.slice() });
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
    return { ...this.#core.bake(table, this.target), hostLiterals };
  }

  /** The host literal ids the compiled program uses (what a program file stores). */
  usedLiteralIds(): number[] {
    // a dynamic program's specializations may use any literal of its graph
    if (this.#dynamic) return this.#hostLiterals.map((_, i) => i).filter((i) => this.#hostLiterals[i]);
    return this.#core.info.hostLiterals.map((l) => l.id);
  }

  /** Inputs, outputs, weights, literal and instruction counts, the pass list, and where it runs. */
  info(): ProgramInfo {
    this.#check("read info");
    const i = this.#core.info;
    const r = this.#exec.report();
    return {
      target: this.target,
      device: r.device,
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
      threads: this.#core.threads,
      hostNodes: r.hostNodes.map((n) => ({ ...n })),
      deviceBytes: r.deviceBytes,
      ...(r.graphs ? { graphs: { ...r.graphs } } : {}),
      ...(r.fusion ? { fusion: { ...r.fusion } } : {}),
      ...(r.precision ? { precision: { ...r.precision } } : {}),
      ...(r.blas ? { blas: r.blas } : {}),
      ...(r.dnn ? { dnn: { ...r.dnn } } : {}),
      ...(this.#dynamic && this.#exec instanceof DynamicExecutor
        ? { dynamic: { keyed: [...this.#dynamic.keyed], specializations: this.#exec.specializations() } }
        : {}),
    };
  }

  /** Releases the program's memory (WebAssembly instance, device memory). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#exec.dispose();
    this.#core.dispose();
  }
}

function _checkTensor(what: string, want: ValueInfo, t: Tensor): string | undefined {
  if (!t || typeof t !== "object" || !t.data) return `${what} is not a tensor`;
  const bad = typedArrayProblem(t.dtype, t.data);
  if (bad && t.dtype === want.dtype) return `${what}: its data is ${bad}`;
  if (
    t.dtype !== want.dtype || t.dims.length !== want.dims.length ||
    t.dims.some((d, i) => d !== want.dims[i] && want.dims[i] !== -1)
  ) {
    return `${what} is ${describe(t.dtype, t.dims)}, expected ${describeValue(want)}`;
  }
  const need = elementCount(t.dims) * dtypeSize(want.dtype);
  if (t.data.byteLength !== need) {
    return `${what} has ${t.data.byteLength} bytes of data, ${describe(t.dtype, t.dims)} needs ${need}`;
  }
  return undefined;
}

function _checkSpec(what: string, want: ValueInfo, t: WeightTensor): string | undefined {
  if (
    t.dtype !== want.dtype || t.dims.length !== want.dims.length || t.dims.some((d, i) => d !== want.dims[i])
  ) {
    return `${what} is ${describe(t.dtype, t.dims)}, expected ${describe(want.dtype, want.dims)}`;
  }
  const need = elementCount(want.dims) * dtypeSize(want.dtype);
  const have = t.file ? t.file.length : t.bytes.byteLength;
  if (have !== need) return `${what} has ${have} bytes of data, ${describe(t.dtype, t.dims)} needs ${need}`;
  return undefined;
}

/** Builds a Program on `core`, disposing the core when the target cannot instantiate it. */
function _program(
  core: CoreProgram,
  hostLiterals: HostLiteral[],
  target: Target,
  options: GpuOptions,
  dynamic: DynamicSpec | null = null,
  compileOptions: CoreCompileOptions = {},
): Program {
  try {
    return new Program(core, hostLiterals, target, options, dynamic, compileOptions);
  } catch (e) {
    core.dispose();
    throw e;
  }
}

/**
 * Compiles a parsed model for `target`: encodes its graph, decodes it in the WASM core (shape
 * inference, eager folding), runs the target's pipeline (`REF_PASSES` or `GPU_PASSES`) and
 * finalizes it on the target (ref: literals copied into WASM memory; gpu: device memory
 * allocated, literals uploaded, kernels chosen).
 */
export function compile(
  model: ParsedModel,
  target: TargetName = "ref",
  options: CompileOptions = {},
): Program {
  const t = getTarget(target);
  const unknown = (options.disablePasses ?? []).filter((n) => !t.passes.includes(n));
  if (unknown.length) {
    throw new KilnError(
      "options",
      `Unknown pass${unknown.length > 1 ? "es" : ""} ${unknown.map((n) => `'${n}'`).join(", ")} in ` +
        `disablePasses (the ${t.name} pipeline: ${t.passes.join(", ")})`,
    );
  }
  const graph = (model.graph as { encode(): Uint8Array }).encode();
  const threads = t.threaded ? checkThreads(options.threads, "compile") : 1;
  const opts = { ...options, threads };
  let core: CoreProgram;
  let dynamic: DynamicSpec | null = null;
  if (model.inputs.some((v) => v.ranges)) {
    ({ core, dynamic } = _compileDynamic(graph, model, t, opts, []));
  } else {
    try {
      core = CoreProgram.compile(graph, t.name, opts);
    } catch (e) {
      const keyed = _keyable(e, model, opts);
      if (!keyed) throw e;
      ({ core, dynamic } = _compileDynamic(graph, model, t, opts, keyed));
    }
  }
  const program = _program(core, model.hostLiterals, t, options.gpu ?? {}, dynamic, opts);
  programInternals(program).setFixedWeights(model.fixedWeights ?? []);
  return program;
}

/** Largest graph input (bytes) whose value may key specializations. */
const _KEYED_MAX_BYTES = 64;

/**
 * The graph inputs to specialize on when `e` is a needs_constant error for an If whose condition
 * they decide (all small graph inputs), else null.
 */
function _keyable(
  e: unknown,
  model: ParsedModel,
  options: CompileOptions,
  already: string[] = [],
): string[] | null {
  if (options.valueKeyed === false || !(e instanceof KilnError) || e.code !== "needs_constant") return null;
  const deciders = (e as KilnError & { deciders?: string[] }).deciders ?? [];
  if (!deciders.length || deciders.some((n) => already.includes(n))) return null;
  const small = deciders.every((n) => {
    const v = model.inputs.find((x) => x.name === n);
    return v && !v.ranges && elementCount(v.dims) * dtypeSize(v.dtype) <= _KEYED_MAX_BYTES;
  });
  return small ? deciders : null;
}

/** Compiles the root of a dynamic program (smallest dims, keyed inputs at zero), adding keyed inputs as Ifs ask. */
function _compileDynamic(
  graph: Uint8Array,
  model: ParsedModel,
  t: Target,
  options: CompileOptions,
  keyed: string[],
): { core: CoreProgram; dynamic: DynamicSpec } {
  const inputs = model.inputs.map((v) => ({
    name: v.name,
    dtype: v.dtype,
    dims: v.ranges ? v.dims.map((d, i) => v.ranges![i] ? -1 : d) : [...v.dims],
    ...(v.ranges ? { ranges: [...v.ranges] } : {}),
  }));
  for (;;) {
    const dynamic: DynamicSpec = { graph, inputs, keyed, cap: options.specializations };
    try {
      const core = CoreProgram.compile(graph, t.name, options, encodeOverrides(dynamic, rootInputs(dynamic)));
      return { core, dynamic };
    } catch (e) {
      const more = _keyable(e, model, options, keyed);
      if (!more) throw e;
      keyed = [...keyed, ...more];
    }
  }
}

/** A finalized program from `Program.serialize()` output (no optimization pass re-runs). */
export function deserializeProgram(
  ir: Uint8Array,
  hostLiterals: HostLiteral[],
  target: TargetName | string = "ref",
  options: { gpu?: GpuOptions; dynamic?: DynamicSpec; threads?: number } = {},
): Program {
  const t = getTarget(target);
  const threads = t.threaded ? checkThreads(options.threads, "load") : 1;
  return _program(
    CoreProgram.deserialize(ir, t.name, "load program", threads),
    hostLiterals,
    t,
    options.gpu ?? {},
    options.dynamic ?? null,
  );
}
