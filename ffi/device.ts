/**
 * Device contexts and device programs: thin owners of libkiln_hip's handles that turn status
 * codes into KilnErrors with the library's own message. A context is shared by every program on
 * one device of one library (reference counted); a program is released by `dispose()`, with a
 * FinalizationRegistry as the backstop.
 * @module
 */
import { KilnError } from "../core/errors.ts";
import { cString, gpuError, type GpuLibrary, readText } from "./library.ts";
import {
  type LIST_PREPARE,
  type LIST_RUN,
  PROG_BF16,
  PROG_FP16,
  PROG_NO_FUSION,
  PROG_NO_GRAPHS,
  PROG_NO_VENDOR_BLAS,
  PROG_NO_VENDOR_DNN,
  PROG_TF32,
} from "./symbols.ts";

/** What kiln_prog_report says about a program on the device. */
export interface DeviceReport {
  /** device memory the program holds (arenas, buffers, literals, bound and spare weight buffers), bytes */
  deviceBytes: number;
  /** of which spare weight buffers that the next swap stages into */
  spareBytes: number;
  /** of which resident weight sets */
  residentBytes: number;
  residentSets: number;
  /** pinned host memory held by host-resident weight sets (not device memory) */
  hostSetBytes: number;
  arenaBytes: number;
  literalBytes: number;
  weightBytes: number;
  workspaceBytes: number;
  /** the GEMM library in use, e.g. "cublas (libcublas.so.13)" or "kiln (...why)" */
  blas: string;
  /** the convolution library in use, e.g. "cudnn 9.10.2 (libcudnn.so.9)" or "kiln (...why)" */
  dnn: string;
  /** kernels (Convs) that run on it */
  dnnKernels: number;
  /** kernels it refused (they run on kiln's own kernels), and the first one's reason */
  dnnMisses: number;
  dnnMissWhy: string;
  /** of dnnKernels, those planned through cuDNN's graph API */
  dnnGraphApi: number;
  /** Convs run channels-last, why none are (TF32 programs), and the filter relayouts the prepare step runs */
  channelsLastConvs: number;
  channelsLastWhy: string;
  relayouts: number;
  /** nodes with a device kernel */
  kernels: number;
  /** nodes that run inside fused elementwise kernels */
  fusedNodes: number;
  /** the fused kernels they form */
  fusedKernels: number;
  /** Transposes folded into MatMuls (read or written through strides) */
  foldedTransposes: number;
  /** scalar Muls/Divs of MatMul operands applied as the GEMM's alpha */
  foldedScalings: number;
  /** Relus applied by the Conv before them */
  convEpilogues: number;
  /** residual block ends (Conv, Add, Relu) run as one call of the DNN library */
  residualFolds: number;
  /** why the first residual block end found was not folded ("" when all were) */
  residualMissWhy: string;
  /** schedule indices of the nodes that run on the host (no device kernel) */
  hostNodes: number[];
  /** why each of them has none */
  hostReasons: string[];
  /** whether evals replay the run list as a captured graph */
  graphs: boolean;
  /** why they do not ("" when they do) */
  graphWhy: string;
  /** captures so far (one per set of device addresses the run list has run with) */
  graphCaptures: number;
  /** evals that replayed a graph */
  graphReplays: number;
  /** GEMMs run on TF32 tensor cores */
  tf32: boolean;
  /** the GEMMs' arithmetic as it runs (fp16/bf16: where any GEMM reads 16-bit weights) */
  precision?: "float32" | "tf32" | "fp16" | "bf16";
  /** what was asked for and does not apply, or (fp16/bf16) what stays in another precision ("" otherwise) */
  precisionWhy: string;
  /** fp16/bf16: GEMMs that read a 16-bit copy of their weight-only B, and GEMMs left float32 */
  halfGemms?: number;
  floatGemms?: number;
  /** fp16/bf16: the 16-bit weight copies and their device bytes */
  halfCopies?: number;
  halfBytes?: number;
  /** fp16/bf16: the Convs' arithmetic ("tf32" on cuDNN, "float32" on kiln's kernels; "" without Conv) */
  convPrecision?: string;
}

/** What a committed bind transaction did (kiln_bind_commit). */
export interface DeviceBindReport {
  copied: number;
  skipped: number;
  bytesRead: number;
  bytesUploaded: number;
  /** file work from the first check to the last byte on the device */
  readMs: number;
  /** checking every file range */
  validateMs: number;
  /** the loader's wall time (reads, hashes and copies overlapped) */
  loadMs: number;
  /** time in pread, summed over the reader threads */
  preadMs: number;
  /** hashing what was read (and starting its copies), summed over the reader threads */
  hashMs: number;
  /** waiting for a ring slot's copy, summed over the reader threads */
  ringWaitMs: number;
  /** waiting for the copies in flight after the last read */
  uploadTailMs: number;
  /** reader threads (0 when no file was read) */
  threads: number;
  /** weights whose low-rank delta was applied, changed or cleared */
  adapted: number;
  /** "ring" (pread into the pinned ring) or "mmap" (KILN_LOAD_MODE=mmap: registered file mappings) */
  loadMode: "ring" | "mmap";
  /** the mmap mode: mapping and registering the files, ms */
  registerMs: number;
  /** the weight slots that changed */
  slots: number[];
}

class _Context {
  refs = 0;
  constructor(readonly lib: GpuLibrary, readonly index: number, readonly handle: Deno.PointerObject) {}
}

const _contexts = new Map<string, _Context>();

function _context(lib: GpuLibrary, index: number, memoryLimit: number): _Context {
  const key = `${lib.path}#${index}#${memoryLimit}`;
  let c = _contexts.get(key);
  if (!c) {
    const h = lib.symbols.kiln_ctx_create(index, BigInt(memoryLimit));
    if (h === null) throw new KilnError("no_gpu", lib.lastError() || `Cannot open GPU ${index}`);
    c = new _Context(lib, index, h);
    _contexts.set(key, c);
  }
  c.refs++;
  return c;
}

function _releaseContext(c: _Context): void {
  if (--c.refs > 0) return;
  for (const [k, v] of _contexts) {
    if (v === c) _contexts.delete(k);
  }
  c.lib.symbols.kiln_ctx_destroy(c.handle);
}

const _registry = new FinalizationRegistry<() => void>((release) => release());

/** Options for placing a program on a device. */
export interface DeviceOptions {
  /** device index (default 0) */
  device?: number;
  /** cap on the device memory kiln's programs on this device may hold, bytes (default: none) */
  memoryLimit?: number;
  /** use the vendor BLAS where one loads (default true); false runs kiln's own GEMM kernel */
  vendorBlas?: boolean;
  /**
   * run convolutions on the vendor DNN library (cuDNN) where one loads (default true); false
   * runs kiln's own Conv kernels (im2col and the GEMM)
   */
  vendorDnn?: boolean;
  /**
   * replay each eval as a captured HIP/CUDA graph (default true: one launch per eval instead of
   * one per kernel); false launches kernel by kernel
   */
  graphs?: boolean;
  /**
   * fuse runs of elementwise nodes into one kernel each (default true; results are
   * bit-identical); false runs one kernel per node
   */
  fusion?: boolean;
  /**
   * The GEMMs' arithmetic (docs/gpu.md "Numerics"); `info().precision` says what applies:
   * - "float32" (default): strict, as onnxruntime's CPU and PyTorch with TF32 off;
   * - "tf32": MatMul, Gemm and Conv GEMMs on TF32 tensor cores (inputs rounded to 10-bit
   *   mantissas, float32 accumulation), where the vendor BLAS has them;
   * - "fp16" / "bf16": MatMul and Gemm whose B comes from weights and literals only read a
   *   float16 / bfloat16 copy of it, made once per bind or weight-set switch (round to nearest
   *   even), with A rounded to the same format per GEMM and float32 accumulation (cuBLAS/rocBLAS
   *   GemmEx, or kiln's own kernel with the same arithmetic); GEMMs whose B is computed in each
   *   eval (attention's products) stay float32, Convs run with TF32 math on cuDNN (float32 on
   *   kiln's kernels). The float32 weights stay on the device: the copies add half their size.
   */
  precision?: "float32" | "tf32" | "fp16" | "bf16";
}

const _PRECISIONS: readonly string[] = ["float32", "tf32", "fp16", "bf16"];

/** A program lowered onto a device. */
export class DeviceProgram {
  readonly lib: GpuLibrary;
  #ctx: _Context;
  #h: Deno.PointerObject | null;
  #token = {};
  /** nonblocking calls running now, a handle disposed while they ran, and whether its release waits */
  #calls = 0;
  #dying: Deno.PointerObject | null = null;
  #releaseDeferred = false;

  constructor(lib: GpuLibrary, schedule: Uint8Array<ArrayBuffer>, options: DeviceOptions = {}) {
    if (options.precision !== undefined && !_PRECISIONS.includes(options.precision)) {
      throw new KilnError(
        "argument",
        `GpuOptions.precision is ${_PRECISIONS.map((p) => `'${p}'`).join(", ")}, not '${options.precision}'`,
      );
    }
    this.lib = lib;
    this.#ctx = _context(lib, options.device ?? 0, options.memoryLimit ?? 0);
    const flags = (options.vendorBlas === false ? PROG_NO_VENDOR_BLAS : 0) |
      (options.graphs === false ? PROG_NO_GRAPHS : 0) | (options.fusion === false ? PROG_NO_FUSION : 0) |
      (options.precision === "tf32" ? PROG_TF32 : 0) | (options.precision === "fp16" ? PROG_FP16 : 0) |
      (options.precision === "bf16" ? PROG_BF16 : 0) | (options.vendorDnn === false ? PROG_NO_VENDOR_DNN : 0);
    const h = lib.symbols.kiln_prog_create(this.#ctx.handle, schedule, BigInt(schedule.length), flags);
    if (h === null) {
      const msg = lib.lastError();
      _releaseContext(this.#ctx);
      throw new KilnError(
        /out of device memory/i.test(msg) ? "memory" : "gpu",
        msg || "Cannot create the program",
      );
    }
    this.#h = h;
    const ctx = this.#ctx;
    _registry.register(this, () => {
      lib.symbols.kiln_prog_destroy(h);
      _releaseContext(ctx);
    }, this.#token);
  }

  get #handle(): Deno.PointerObject {
    if (this.#h === null) throw new KilnError("disposed", "The device program was disposed");
    return this.#h;
  }

  /** The program's last error text. */
  errorText(): string {
    const h = this.#handle;
    return readText((b, c) => this.lib.symbols.kiln_prog_error(h, b, c));
  }

  /** Throws the program's error for a failed status (`what` heads the message). */
  check(status: number | bigint, what: string): void {
    const s = Number(status);
    if (s >= 0) return;
    const text = this.errorText();
    throw gpuError(s, `${what}: ${text || `status ${s}`}`);
  }

  /** check() for bind calls, whose failures the library keeps apart (binds run beside evals). */
  checkBind(status: number | bigint, what: string): void {
    const s = Number(status);
    if (s >= 0) return;
    const h = this.#handle;
    const text = readText((b, c) => this.lib.symbols.kiln_bind_error(h, b, c));
    throw gpuError(s, `${what}: ${text || `status ${s}`}`);
  }

  /**
   * Runs a nonblocking call with the program's handle kept alive until it returns: dispose()
   * while it runs defers the release (the call is on another thread, using the handle).
   */
  async #inFlight<T>(call: (h: Deno.PointerObject) => Promise<T>): Promise<T> {
    const h = this.#handle;
    this.#calls++;
    try {
      return await call(h);
    } finally {
      if (--this.#calls === 0 && this.#releaseDeferred) this.#release();
    }
  }

  report(): DeviceReport {
    const h = this.#handle;
    return JSON.parse(readText((b, c) => this.lib.symbols.kiln_prog_report(h, b, c))) as DeviceReport;
  }

  literalWrite(id: number, bytes: Uint8Array<ArrayBuffer>, what: string): void {
    this.check(this.lib.symbols.kiln_literal_write(this.#handle, id, bytes, BigInt(bytes.length)), what);
  }

  literalReadFile(
    id: number,
    path: string,
    offset: number,
    length: number,
    sha1: string,
    what: string,
  ): void {
    const s = this.lib.symbols.kiln_literal_read_file_sync(
      this.#handle,
      id,
      cString(path),
      BigInt(offset),
      BigInt(length),
      cString(sha1),
    );
    this.check(s, what);
  }

  async literalReadFileAsync(
    id: number,
    path: string,
    offset: number,
    length: number,
    sha1: string,
    what: string,
  ): Promise<void> {
    const s = await this.#inFlight((h) =>
      this.lib.symbols.kiln_literal_read_file(
        h,
        id,
        cString(path),
        BigInt(offset),
        BigInt(length),
        cString(sha1),
      )
    );
    this.check(s, what);
  }

  bindBegin(): void {
    this.checkBind(this.lib.symbols.kiln_bind_begin(this.#handle), "Cannot bind weights");
  }

  bindBytes(slot: number, bytes: Uint8Array<ArrayBuffer>, what: string): void {
    this.checkBind(this.lib.symbols.kiln_bind_bytes(this.#handle, slot, bytes, BigInt(bytes.length)), what);
  }

  bindFile(slot: number, path: string, offset: number, length: number, what: string): void {
    this.checkBind(
      this.lib.symbols.kiln_bind_file(this.#handle, slot, cString(path), BigInt(offset), BigInt(length)),
      what,
    );
  }

  /**
   * Sets (or, with `delta` null, clears) weight slot `slot`'s low-rank delta in the open
   * transaction: at commit it becomes its base weight plus scale·B·A (transposed: (B·A)ᵀ).
   */
  bindDelta(
    slot: number,
    delta: { b: Float32Array; a: Float32Array; rank: number; scale: number; transposed: boolean } | null,
    what: string,
  ): void {
    const f = this.lib.symbols.kiln_bind_delta;
    const u8 = (x: Float32Array) => new Uint8Array(x.buffer as ArrayBuffer, x.byteOffset, x.byteLength);
    const s = delta
      ? f(
        this.#handle,
        slot,
        u8(delta.b),
        BigInt(delta.b.byteLength),
        u8(delta.a),
        BigInt(delta.a.byteLength),
        delta.rank,
        delta.scale,
        delta.transposed ? 1 : 0,
      )
      : f(this.#handle, slot, null, 0n, null, 0n, 0, 0, 0);
    this.checkBind(s, what);
  }

  /** Reads the queued file ranges into staged buffers; evals may run meanwhile. */
  async bindStage(): Promise<void> {
    const s = await this.#inFlight((h) => this.lib.symbols.kiln_bind_stage(h));
    this.checkBind(s, "Cannot bind weights");
  }

  async bindCommit(): Promise<DeviceBindReport> {
    const buf = new Uint8Array(1 << 16);
    const n = await this.#inFlight((h) => this.lib.symbols.kiln_bind_commit(h, buf, BigInt(buf.length)));
    this.checkBind(n, "Cannot bind weights");
    return JSON.parse(new TextDecoder().decode(buf.subarray(0, Number(n)))) as DeviceBindReport;
  }

  /** Keeps the staged transaction as resident weight set `id` instead of switching to it. */
  setAdd(id: number, what: string): void {
    this.checkBind(this.lib.symbols.kiln_set_add(this.#handle, id), what);
  }

  /** Evals read resident set `id` from now on (-1: the bound weights). */
  setSelect(id: number): void {
    this.check(this.lib.symbols.kiln_set_select(this.#handle, id), "Cannot select a weight set");
  }

  setRemove(id: number): void {
    this.checkBind(this.lib.symbols.kiln_set_remove(this.#handle, id), "Cannot remove a weight set");
  }

  hostSetCreate(id: number, what: string): void {
    this.checkBind(this.lib.symbols.kiln_hostset_create(this.#handle, id), what);
  }

  hostSetPut(id: number, slot: number, bytes: Uint8Array<ArrayBuffer>, what: string): void {
    this.checkBind(
      this.lib.symbols.kiln_hostset_put(this.#handle, id, slot, bytes, BigInt(bytes.length)),
      what,
    );
  }

  /** Inside a bind transaction: stages every weight from host set `id` (evals may run meanwhile). */
  async hostSetStage(id: number, what: string): Promise<void> {
    const s = await this.#inFlight((h) => this.lib.symbols.kiln_hostset_stage(h, id));
    this.checkBind(s, what);
  }

  hostSetRemove(id: number): void {
    this.checkBind(this.lib.symbols.kiln_hostset_remove(this.#handle, id), "Cannot remove a host weight set");
  }

  bindAbort(): void {
    if (this.#h !== null) this.lib.symbols.kiln_bind_abort(this.#h);
  }

  bindRevert(): void {
    this.checkBind(this.lib.symbols.kiln_bind_revert(this.#handle), "Cannot restore the previous weights");
  }

  bindRelease(): void {
    this.checkBind(this.lib.symbols.kiln_bind_release(this.#handle), "Cannot release the previous weights");
  }

  inputWrite(index: number, bytes: Uint8Array<ArrayBuffer>, what: string): void {
    this.check(this.lib.symbols.kiln_input_write(this.#handle, index, bytes, BigInt(bytes.length)), what);
  }

  outputRead(index: number, into: Uint8Array<ArrayBuffer>, what: string): void {
    this.check(this.lib.symbols.kiln_output_read(this.#handle, index, into, BigInt(into.length)), what);
  }

  valueRead(value: number, into: Uint8Array<ArrayBuffer>, what: string): void {
    this.check(this.lib.symbols.kiln_value_read(this.#handle, value, into, BigInt(into.length)), what);
  }

  valueWrite(value: number, bytes: Uint8Array<ArrayBuffer>, what: string): void {
    this.check(this.lib.symbols.kiln_value_write(this.#handle, value, bytes, BigInt(bytes.length)), what);
  }

  /** Chooses the prepare nodes downstream of `slots` (all of them when null); returns how many. */
  prepareSelect(slots: number[] | null): number {
    const arr = new Int32Array(slots ?? []);
    const n = this.lib.symbols.kiln_prepare_select(
      this.#handle,
      new Uint8Array(arr.buffer),
      slots ? arr.length : -1,
    );
    this.check(n, "Cannot select the prepare step");
    return n;
  }

  /** Runs list `list` from `pc`: 0 when done, else pc + 1 of a host step. */
  async exec(list: typeof LIST_RUN | typeof LIST_PREPARE, pc: number, what: string): Promise<number> {
    const r = await this.#inFlight((h) => this.lib.symbols.kiln_exec(h, list, pc));
    this.check(r, what);
    return r;
  }

  /** Records each kernel's device time in the next evals (no graph replay meanwhile). */
  setProfiling(on: boolean): void {
    this.check(this.lib.symbols.kiln_prog_set_profiling(this.#handle, on ? 1 : 0), "Cannot set profiling");
  }

  /**
   * Device milliseconds per schedule node of the last profiled eval, in launch order, with the
   * kernel's label where it is not the node's op (a fused kernel).
   */
  profile(): [node: number, ms: number, label?: string][] {
    const h = this.#handle;
    const r = JSON.parse(readText((b, c) => this.lib.symbols.kiln_prog_profile(h, b, c))) as {
      steps: [number, number, string?][];
    };
    return r.steps;
  }

  /** The schedule node of host step `pc`. */
  hostNode(list: number, pc: number): number {
    const r = this.lib.symbols.kiln_host_node(this.#handle, list, pc);
    this.check(r, "Cannot find a host step");
    return r;
  }

  /** Releases the program; a call still running on another thread finishes first. */
  dispose(): void {
    if (this.#h === null) return;
    _registry.unregister(this.#token);
    this.#dying = this.#h;
    this.#h = null;
    if (this.#calls > 0) this.#releaseDeferred = true;
    else this.#release();
  }

  #release(): void {
    if (this.#dying === null) return;
    this.lib.symbols.kiln_prog_destroy(this.#dying);
    this.#dying = null;
    this.#releaseDeferred = false;
    _releaseContext(this.#ctx);
  }
}
