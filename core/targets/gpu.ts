/**
 * The `gpu` target: kiln's HIP library (hip/) through Deno FFI (ffi/). The core writes the
 * compiled program's schedule; the library lowers it to device kernels, allocates the device
 * memory and builds its launch lists. Literals and weights go to the device without passing
 * through WebAssembly memory: from the caller's memory, or read by the library straight from
 * file ranges into pinned staging memory. A node without a device kernel runs on the host with
 * the core's reference kernel (its inputs copied out, its outputs copied back), and reports name
 * it. Binds are transactions: staged into fresh device memory, switched when every tensor is in,
 * the prepare step rerun on the device, and on any failure the previous weights restored.
 * @module
 */
import type { CoreProgram } from "../core_program.ts";
import { KilnError } from "../errors.ts";
import { decodeSchedule, type Schedule } from "../schedule.ts";
import { setOwn, type Tensor, tensorBytes, viewAs } from "../tensor.ts";
import { DeviceProgram, type DeviceReport } from "../../ffi/device.ts";
import { openGpuLibrary } from "../../ffi/library.ts";
import { LIST_PREPARE, LIST_RUN } from "../../ffi/symbols.ts";
import type {
  BindResult,
  BindTensor,
  Executor,
  GpuOptions,
  LiteralSource,
  NodeTime,
  PrecisionReport,
  Target,
  TargetReport,
  WeightDelta,
} from "./target.ts";

/** Bytes as a Uint8Array over an ArrayBuffer (what FFI "buffer" parameters take). */
function _buf(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? b as Uint8Array<ArrayBuffer> : new Uint8Array(b);
}

/** info().precision from the library's report. */
function _precision(r: DeviceReport): PrecisionReport {
  const mode = r.precision ?? (r.tf32 ? "tf32" : "float32");
  const p: PrecisionReport = { mode, ...(r.precisionWhy ? { why: r.precisionWhy } : {}) };
  if (
    r.halfGemms !== undefined && (r.halfGemms > 0 || r.floatGemms! > 0 || mode === "fp16" || mode === "bf16")
  ) {
    p.gemms16 = r.halfGemms;
    p.gemms32 = r.floatGemms;
    p.bytes16 = r.halfBytes;
  }
  if (r.convPrecision === "tf32" || r.convPrecision === "float32") p.convs = r.convPrecision;
  return p;
}

class GpuExecutor implements Executor {
  #core: CoreProgram;
  #dev: DeviceProgram;
  #sched: Schedule;
  #slots = new Map<string, number>();
  #bound = new Set<number>();
  /** prepare work pending: slots changed since the last prepare, or "all" (after finalize) */
  #pending: Set<number> | "all" | null;
  #device: string;
  lastPrepareNodes = 0;
  lastPrepareMs = 0;
  /** the schedule has weight-only (prepare) nodes */
  #hasPrepare: boolean;
  /** the tensors of the transaction stage() left staged, which bind() then commits */
  #staged: readonly BindTensor[] | null = null;
  /** resident weight sets by name (their ids in the library), and the one evals read (null: the bound weights) */
  #sets = new Map<string, number>();
  #nextSet = 0;
  #selected: string | null = null;
  /** host-resident weight sets by name: their ids and the (bytes-free) tensor list a bind of them commits */
  #hostSets = new Map<string, { id: number; tensors: BindTensor[] }>();

  constructor(core: CoreProgram, literals: readonly LiteralSource[], options: GpuOptions) {
    this.#core = core;
    const schedule = core.schedule();
    this.#sched = decodeSchedule(schedule);
    const lib = openGpuLibrary(options.library);
    const dev = lib.info().devices[options.device ?? 0];
    this.#device = dev ? `${dev.name} (${dev.arch})` : "no device";
    this.#dev = new DeviceProgram(lib, schedule, options);
    try {
      this.#sched.weights.forEach((w, i) => this.#slots.set(w.name, i));
      const done = new Set<number>();
      for (const v of this.#sched.values) {
        if (v.storage !== "literal" || v.hostId < 0 || done.has(v.hostId)) continue;
        done.add(v.hostId);
        const lit = literals[v.hostId];
        if (!lit) {
          throw new KilnError(
            "format",
            `Literal '${v.name}' refers to host literal ${v.hostId}, which was not given`,
          );
        }
        const what = `Cannot upload literal '${lit.name}'`;
        if (lit.file) {
          this.#dev.literalReadFile(
            v.hostId,
            lit.file.path,
            lit.file.offset,
            lit.file.length,
            lit.file.sha1 ?? "",
            what,
          );
        } else {
          this.#dev.literalWrite(v.hostId, _buf(lit.bytes), what);
        }
      }
    } catch (e) {
      this.#dev.dispose();
      throw e;
    }
    // prepare work: the weight-only nodes, the channels-last Conv filters laid out KRSC, and
    // (precision fp16/bf16) the 16-bit weight copies
    const r = this.#dev.report();
    this.#hasPrepare = this.#sched.nodes.some((n) => n.prepare && !n.skip) || r.relayouts > 0 ||
      (r.halfCopies ?? 0) > 0;
    this.#pending = this.#hasPrepare ? "all" : null;
  }

  isBound(name: string): boolean {
    const s = this.#slots.get(name);
    // a selected resident set has every weight
    return s !== undefined && (this.#selected !== null || this.#bound.has(s));
  }

  /** Queues the tensors in a bind transaction and stages them (evals may run meanwhile). */
  async stage(tensors: readonly BindTensor[]): Promise<void> {
    const dev = this.#dev;
    this.#staged = null;
    dev.bindBegin();
    try {
      for (const t of tensors) {
        const slot = this.#slots.get(t.name);
        if (slot === undefined) {
          throw new KilnError("weights", `Cannot bind weights: '${t.name}' is not a weight of this program`);
        }
        const what = `Cannot bind weight '${t.name}' from ${t.source}`;
        if (t.file) dev.bindFile(slot, t.file.path, t.file.offset, t.file.length, what);
        else dev.bindBytes(slot, _buf(t.bytes), what);
      }
      await dev.bindStage(); // the files read into staged buffers; nothing switched
    } catch (e) {
      dev.bindAbort();
      throw e;
    }
    this.#staged = tensors;
  }

  discard(tensors: readonly BindTensor[]): void {
    if (this.#staged !== tensors) return;
    this.#staged = null;
    this.#dev.bindAbort();
  }

  async addSet(name: string, tensors: readonly BindTensor[]): Promise<() => void> {
    if (this.#sets.has(name)) {
      throw new KilnError("weights", `Cannot add weight set '${name}': the program has one of that name`);
    }
    await this.stage(tensors);
    this.#staged = null;
    return () => {
      const id = this.#nextSet++;
      this.#dev.setAdd(id, `Cannot add weight set '${name}'`);
      this.#sets.set(name, id);
    };
  }

  async selectSet(name: string | null): Promise<void> {
    if (name === this.#selected) return;
    const id = name === null ? -1 : this.#sets.get(name);
    if (id === undefined) {
      const known = [...this.#sets.keys()].map((n) => `'${n}'`).join(", ") || "none";
      throw new KilnError("weights", `No weight set '${name}' on this program (resident sets: ${known})`);
    }
    this.#dev.setSelect(id);
    this.#selected = name;
    // the prepare step's outputs derive from the weights: rerun for the set now read
    if (this.#hasPrepare) this.#pending = "all";
    await this.prepare();
  }

  removeSet(name: string): void {
    const id = this.#sets.get(name);
    if (id === undefined) throw new KilnError("weights", `No weight set '${name}' on this program`);
    if (this.#selected === name) {
      this.#selected = null;
      if (this.#hasPrepare) this.#pending = "all";
    }
    this.#dev.setRemove(id);
    this.#sets.delete(name);
  }

  setNames(): string[] {
    return [...this.#sets.keys()];
  }

  addHostSet(name: string, tensors: readonly BindTensor[]): Promise<void> {
    return Promise.resolve().then(() => this.#addHostSet(name, tensors));
  }

  #addHostSet(name: string, tensors: readonly BindTensor[]): void {
    if (this.#hostSets.has(name) || this.#sets.has(name)) {
      throw new KilnError("weights", `Cannot add weight set '${name}': the program has one of that name`);
    }
    const id = this.#nextSet++;
    const what = `Cannot add weight set '${name}'`;
    this.#dev.hostSetCreate(id, what);
    try {
      for (const t of tensors) {
        const slot = this.#slots.get(t.name);
        if (slot === undefined) {
          throw new KilnError("weights", `${what}: '${t.name}' is not a weight of this program`);
        }
        // a file range is read here (lazily, by the weight set), once; every bind of the set then
        // copies from pinned memory
        this.#dev.hostSetPut(id, slot, _buf(t.bytes), `${what}: weight '${t.name}' from ${t.source}`);
      }
    } catch (e) {
      this.#dev.hostSetRemove(id);
      throw e;
    }
    this.#hostSets.set(name, {
      id,
      tensors: tensors.map((t) => ({ name: t.name, bytes: new Uint8Array(0), source: `host set '${name}'` })),
    });
  }

  async stageHostSet(name: string): Promise<readonly BindTensor[]> {
    const h = this.#hostSets.get(name);
    if (!h) {
      const known = [...this.#hostSets.keys()].map((n) => `'${n}'`).join(", ") || "none";
      throw new KilnError("weights", `No host weight set '${name}' on this program (host sets: ${known})`);
    }
    this.#staged = null;
    this.#dev.bindBegin();
    try {
      await this.#dev.hostSetStage(h.id, `Cannot bind weight set '${name}'`);
    } catch (e) {
      this.#dev.bindAbort();
      throw e;
    }
    this.#staged = h.tensors;
    return h.tensors;
  }

  removeHostSet(name: string): void {
    const h = this.#hostSets.get(name);
    if (!h) throw new KilnError("weights", `No host weight set '${name}' on this program`);
    this.#dev.hostSetRemove(h.id);
    this.#hostSets.delete(name);
  }

  hostSetNames(): string[] {
    return [...this.#hostSets.keys()];
  }

  async bind(tensors: readonly BindTensor[]): Promise<BindResult> {
    if (this.#staged !== tensors) await this.stage(tensors);
    this.#staged = null;
    return await this.#commit(tensors);
  }

  async adapt(deltas: readonly WeightDelta[], clear: readonly string[]): Promise<BindResult> {
    const dev = this.#dev;
    this.#staged = null;
    dev.bindBegin();
    try {
      for (const d of deltas) {
        const slot = this.#slots.get(d.name);
        if (slot === undefined || !this.#bound.has(slot)) {
          throw new KilnError("weights", `Cannot apply the adapter: weight '${d.name}' is not bound`);
        }
        dev.bindDelta(slot, d, `Cannot apply the adapter to weight '${d.name}'`);
      }
      for (const name of clear) {
        const slot = this.#slots.get(name);
        if (slot !== undefined) dev.bindDelta(slot, null, `Cannot remove the adapter from weight '${name}'`);
      }
    } catch (e) {
      dev.bindAbort();
      throw e;
    }
    return await this.#commit([]);
  }

  /** Commits the open transaction, reruns the prepare step (switching back if it fails), reports. */
  async #commit(tensors: readonly BindTensor[]): Promise<BindResult> {
    const dev = this.#dev;
    const boundBefore = new Set(this.#bound);
    const r = await dev.bindCommit(); // nothing switched when it throws
    for (const t of tensors) this.#bound.add(this.#slots.get(t.name)!);
    if (r.slots.length > 0 && this.#pending !== "all") {
      this.#pending ??= new Set();
      for (const s of r.slots) this.#pending.add(s);
    }
    const tPrepare = performance.now();
    if (this.#allBound()) {
      try {
        await this.prepare();
      } catch (e) {
        // the derived weights of the new set failed: the previous weights serve again
        dev.bindRevert();
        this.#bound = boundBefore;
        this.#pending = "all";
        try {
          await this.prepare();
        } catch {
          // the previous weights' prepare failed too: it reruns before the next eval
        }
        throw e;
      }
    }
    const prepareMs = performance.now() - tPrepare;
    dev.bindRelease();
    return {
      copied: r.copied,
      skipped: r.skipped,
      adapted: r.adapted || undefined,
      bytesCopied: r.bytesUploaded,
      phases: {
        validateMs: r.validateMs,
        loadMs: r.loadMs,
        readMs: r.preadMs,
        hashMs: r.hashMs,
        uploadTailMs: r.uploadTailMs,
        prepareMs,
        threads: r.threads,
        loadMode: r.loadMode,
        registerMs: r.loadMode === "mmap" ? r.registerMs : undefined,
      },
    };
  }

  #allBound(): boolean {
    return this.#bound.size === this.#sched.weights.length;
  }

  async prepare(): Promise<void> {
    if (this.#pending === null) {
      this.lastPrepareNodes = 0;
      this.lastPrepareMs = 0;
      return;
    }
    if (this.#selected === null && !this.#allBound()) return; // runs once every weight is bound
    const t0 = performance.now();
    const slots = this.#pending === "all" ? null : [...this.#pending];
    this.lastPrepareNodes = this.#dev.prepareSelect(slots);
    await this.#execList(LIST_PREPARE, "prepare");
    this.lastPrepareMs = performance.now() - t0;
    this.#pending = null;
  }

  /** Runs a launch list to its end, running its host steps on the core. */
  async #execList(list: typeof LIST_RUN | typeof LIST_PREPARE, what: string): Promise<void> {
    let pc = 0;
    for (;;) {
      const r = await this.#dev.exec(list, pc, `Cannot ${what} on the GPU`);
      if (r === 0) break;
      this.#runHost(this.#dev.hostNode(list, r - 1));
      pc = r;
    }
  }

  #byId: Map<number, number> | null = null;

  /** IR value id -> schedule value index. */
  #valueById(): Map<number, number> {
    this.#byId ??= new Map(this.#sched.values.map((v, i) => [v.id, i]));
    return this.#byId;
  }

  /**
   * Runs schedule node `index` with the core's reference kernel: inputs copied out, outputs back
   * (a Loop or Scan also gets the values its body reads from elsewhere).
   */
  #runHost(index: number): void {
    const node = this.#sched.nodes[index];
    const engine = this.#core.engine(`run node '${node.name}' on the host`);
    const h = this.#core.handle(`run node '${node.name}' on the host`);
    const values = [...node.inputs, ...node.outputs];
    const ptrs = values.map((
      v,
    ) => (v < 0 ? 0 : engine.call("alloc", () => engine.exports.alloc(this.#sched.values[v].bytes))));
    const table = engine.call("alloc", () => engine.exports.alloc(4 * values.length));
    const placed: number[] = [];
    try {
      const what = `Cannot run node '${node.name}' (${node.op}) on the host`;
      if (node.op === "Loop" || node.op === "Scan") {
        // libkiln_hip's launch lists have branches (If) but no loops: the whole node runs here,
        // its body on the core, with the values the body reads from elsewhere copied from the device
        const n = engine.call(what, () => engine.exports.host_reads(h, node.module, node.instr));
        for (let k = 0; k < n; k++) {
          const id = engine.exports.host_read_id(k);
          const v = this.#valueById().get(id);
          if (v === undefined) throw new KilnError("internal", `${what}: value ${id} is not in the schedule`);
          const bytes = this.#sched.values[v].bytes;
          const at = engine.call("alloc", () => engine.exports.alloc(bytes));
          placed.push(at);
          this.#dev.valueRead(
            v,
            new Uint8Array(engine.exports.memory.buffer as ArrayBuffer, at, bytes),
            what,
          );
          engine.exports.bind_value(h, id, at);
        }
      }
      node.inputs.forEach((v, j) => {
        if (v < 0) return;
        const bytes = this.#sched.values[v].bytes;
        this.#dev.valueRead(
          v,
          new Uint8Array(engine.exports.memory.buffer as ArrayBuffer, ptrs[j], bytes),
          what,
        );
      });
      new Uint32Array(engine.exports.memory.buffer, table, values.length).set(ptrs);
      const status = engine.call(what, () => engine.exports.run_node(h, node.module, node.instr, table));
      if (status !== 0) throw engine.error(`run node '${node.name}' on the host`);
      node.outputs.forEach((v, j) => {
        const at = ptrs[node.inputs.length + j];
        const bytes = this.#sched.values[v].bytes;
        this.#dev.valueWrite(v, new Uint8Array(engine.exports.memory.buffer as ArrayBuffer, at, bytes), what);
      });
    } finally {
      if (!engine.broken) {
        for (const p of ptrs) if (p) engine.free(p);
        for (const p of placed) engine.free(p);
        engine.free(table);
      }
    }
  }

  async run(inputs: Record<string, Tensor>, outputs?: ReadonlySet<string>): Promise<Record<string, Tensor>> {
    await this.prepare();
    this.#sched.inputs.forEach((v, i) => {
      const name = this.#sched.values[v].name;
      this.#dev.inputWrite(i, _buf(tensorBytes(inputs[name])), `Cannot copy input '${name}' to the GPU`);
    });
    await this.#execList(LIST_RUN, "eval");
    const out: Record<string, Tensor> = {};
    this.#sched.outputs.forEach((o, i) => {
      if (outputs && !outputs.has(o.name)) return; // stays on the device
      const v = this.#sched.values[o.value];
      const bytes = new Uint8Array(v.bytes);
      this.#dev.outputRead(i, bytes, `Cannot copy output '${o.name}' from the GPU`);
      setOwn(out, o.name, { dtype: v.dtype, dims: [...v.dims], data: viewAs(v.dtype, bytes) });
    });
    return out;
  }

  async profile(inputs: Record<string, Tensor>): Promise<NodeTime[]> {
    this.#dev.setProfiling(true);
    try {
      await this.run(inputs);
    } finally {
      this.#dev.setProfiling(false);
    }
    return this.#dev.profile().map(([i, ms, label]) => ({
      name: this.#sched.nodes[i].name,
      op: label ?? this.#sched.nodes[i].op,
      ms,
    }));
  }

  report(): TargetReport {
    const r = this.#dev.report();
    return {
      device: this.#device,
      deviceBytes: r.deviceBytes,
      blas: r.blas,
      dnn: {
        library: r.dnn,
        kernels: r.dnnKernels,
        misses: r.dnnMisses,
        graphApi: r.dnnGraphApi,
        ...(r.dnnGraphApi ? { channelsLast: r.channelsLastConvs } : {}),
        ...(r.channelsLastWhy ? { channelsLastWhy: r.channelsLastWhy } : {}),
        ...(r.dnnMissWhy ? { missWhy: r.dnnMissWhy } : {}),
      },
      graphs: {
        enabled: r.graphs,
        ...(r.graphs ? {} : { why: r.graphWhy }),
        captures: r.graphCaptures,
        replays: r.graphReplays,
      },
      fusion: {
        nodes: r.fusedNodes,
        kernels: r.fusedKernels,
        transposes: r.foldedTransposes,
        scalings: r.foldedScalings,
        epilogues: r.convEpilogues,
        residuals: r.residualFolds,
        ...(r.residualMissWhy ? { residualMissWhy: r.residualMissWhy } : {}),
      },
      precision: _precision(r),
      hostNodes: r.hostNodes.map((i, k) => ({
        name: this.#sched.nodes[i].name,
        op: this.#sched.nodes[i].op,
        reason: r.hostReasons[k],
      })),
    };
  }

  dispose(): void {
    this.#dev.dispose();
  }
}

/** The gpu target's compile pipeline, in order (wasm/passes/targets.ts `compilePasses`). */
export const GPU_PASSES: readonly string[] = [
  "eliminate_identity",
  "fold_constants",
  "cse",
  "dce",
  "refuse_bounded",
  "hoist_prepare",
  "memory_plan",
  "layout_literals",
];

/** The GPU target: kiln's HIP library on an NVIDIA or AMD GPU. */
export const gpuTarget: Target = {
  name: "gpu",
  passes: GPU_PASSES,
  literalPasses: ["replace_external_weights", "hoist_prepare", "layout_literals"],
  readsFiles: true,
  threaded: false,
  instantiate(core, literals, options) {
    return new GpuExecutor(core, literals, options);
  },
};
