/**
 * The WASM engine: compiles kiln's core (build/kiln_wasm.ts) once per process, instantiates
 * it, and wraps its flat boundary (docs/internals.md): memory alloc/free and copies, JSON
 * results, diagnostics -> KilnError. A trap (a core bug) throws KilnError "internal" and marks
 * the instance broken; its owner discards it and makes a fresh one.
 * @module
 */
import { KILN_WASM_BASE64, KILN_WASM_RELAXED_BASE64, KILN_WASM_THREADS_BASE64 } from "../build/kiln_wasm.ts";
import { type Diagnostic, DIAGNOSTIC_CODES, errorFromDiagnostics, KilnError } from "./errors.ts";
import { mainThreadMayBlock, ThreadPool, threadsUnavailableReason, workerModuleBytes } from "./threads.ts";

/**
 * The core's exports (raw bindings: numbers only). The core is wasm32 with up to 4 GiB of memory:
 * every pointer and length is an unsigned 32-bit number (0 to 2^32 - 1). The Engine's exports
 * return those unsigned (WebAssembly hands an i32 to JavaScript signed, negative past 2 GiB) and
 * accept them as they are (JavaScript numbers below 2^32 pass to an i32 parameter unchanged).
 */
export interface CoreExports {
  memory: WebAssembly.Memory;
  /** A new allocation of `n` bytes (unsigned pointer; free with `free`). */
  alloc(n: number): number;
  free(p: number): void;
  /** 1 when the `n` bytes at `a` and `b` are equal, else 0 (a bind's test of a staged weight). */
  bytes_equal(a: number, b: number, n: number): number;
  /** Pointer of the last result (unsigned). */
  result_ptr(): number;
  /** Length in bytes of the last result (unsigned). */
  result_len(): number;
  op_names(): number;
  debug_trap(): void;
  diagnostics_json(): number;
  load_graph(ptr: number, len: number): number;
  /** Runs the compile pipeline of the target named by the UTF-8 bytes at tPtr. */
  compile(h: number, tPtr: number, tLen: number, flags: number, disPtr: number, disLen: number): number;
  finalize(h: number): number;
  /** Overrides of main-module params for the next load_graph (a dynamic program's specialization). */
  set_decode_overrides(ptr: number, len: number): number;
  /** The graph inputs deciding the If the last failed load_graph reported (newline-separated result). */
  if_deciders(): number;
  /** Finalizes specialization h sharing weights, host literals and prepare outputs with `root`. */
  finalize_shared(h: number, root: number): number;
  /** Prepare nodes of h shared with its root. */
  shared_prepare_nodes(h: number): number;
  /** Where the host copies host literal `id` (unsigned; 0 when none). */
  host_literal_ptr(h: number, id: number): number;
  /** Where the host writes input i (unsigned; 0 when none). */
  input_ptr(h: number, i: number): number;
  /** Where the host writes weight i (unsigned; 0 when none). */
  weight_ptr(h: number, i: number): number;
  /** Points weight i at ptr (its bytes already there); returns its previous address (0: refused). */
  set_weight_ptr(h: number, i: number, ptr: number): number;
  /** After set_weight_ptr: aliases and node contexts follow the weights' new addresses. */
  weights_moved(h: number): number;
  /** Before finalize: keep the values only pack nodes read packed only (docs/internals.md "Packed-only weights"). */
  set_direct_pack(h: number, on: number): number;
  /** The packed-only values and their pack nodes (JSON result). */
  direct_json(h: number): number;
  /** Points fed pack node `node`'s output at ptr (packed there); returns its previous address (0: refused). */
  set_packed_ptr(h: number, node: number, ptr: number): number;
  /**
   * Packs `rows` stored rows of B at src into the packed op(B) at dst, split over the threads (mode
   * 0), on this thread only (mode 2), started on the workers (mode 3: returns at once; pack_wait
   * ends it), or (mode 1) unpacks them.
   */
  pack_rows(
    trans: number,
    src: number,
    row0: number,
    rows: number,
    ldb: number,
    k: number,
    n: number,
    dst: number,
    mode: number,
  ): void;
  /** Waits until the packing pack_rows started (mode 3) is done. */
  pack_wait(): void;
  reshare_weights(h: number, root: number): number;
  /** Where the host reads output i (unsigned; 0 when none). */
  output_ptr(h: number, i: number): number;
  /** Dim d of output i after the last run: a bounded dim's actual extent, else its planned length; -1 out of range. */
  output_dim(h: number, i: number, d: number): number;
  run(h: number): number;
  /** `run` timing every node of main; on success the result is JSON: `[{name, op, ms}]`. */
  run_profiled(h: number): number;
  prepare(h: number): number;
  prepare_weights(h: number, idx: number, n: number): number;
  last_prepare_nodes(): number;
  serialize(h: number): number;
  /** Decodes a serialized program and re-derives its plan with the target's plan passes. */
  deserialize(ptr: number, len: number, tPtr: number, tLen: number): number;
  /** The schedule of program h in the result buffer (docs/internals.md "Schedule"). */
  schedule(h: number): number;
  /** Runs instruction ii of module mi with the reference kernel on tensors at the u32 pointers at ptrs. */
  run_node(h: number, mi: number, ii: number, ptrs: number): number;
  /** For a Loop/Scan node run on the host: how many values its body reads from elsewhere (-1: bad node). */
  host_reads(h: number, mi: number, ii: number): number;
  /** The IR id of the k-th of those values. */
  host_read_id(k: number): number;
  /** Where the host placed value `id` (IR id) for the next run_node of a Loop/Scan node. */
  bind_value(h: number, id: number, ptr: number): number;
  info(h: number): number;
  dispose(h: number): void;
  /** Threaded build: shares kernel work among n threads; the control block's address (0: none). */
  threads_init?(n: number, mayBlock: number): number;
  /** Threaded build: makes every worker leave worker_loop. */
  threads_stop?(): void;
  /** Threaded build: runs the start function (exported so that worker instances skip it). */
  _start?(): void;
  /** Copy of program h with the weights in the table (name -> host literal id) baked by a target's literal passes; handle or < 0. */
  bake(h: number, tablePtr: number, tableLen: number, tPtr: number, tLen: number): number;
}

/** Which build of the core runs: "relaxed" (relaxed SIMD, fused multiply-add) or "simd". */
export type CoreVariant = "relaxed" | "simd";

/** A 37-byte module whose one function uses f32x4.relaxed_madd: validates iff the host has relaxed SIMD. */
const _RELAXED_PROBE = new Uint8Array([
  0,
  0x61,
  0x73,
  0x6d,
  1,
  0,
  0,
  0, // magic, version
  1,
  8,
  1,
  0x60,
  3,
  0x7b,
  0x7b,
  0x7b,
  1,
  0x7b, // type: (v128, v128, v128) -> v128
  3,
  2,
  1,
  0, // function 0 has type 0
  0x0a,
  0x0d,
  1,
  0x0b,
  0,
  0x20,
  0,
  0x20,
  1,
  0x20,
  2,
  0xfd,
  0x85,
  0x02,
  0x0b, // body: f32x4.relaxed_madd
]);

const _modules = new Map<CoreVariant, WebAssembly.Module>();
let _variant: CoreVariant | undefined;

/** The variants this build can run here (relaxed first when the host supports it). */
export function availableCoreVariants(): CoreVariant[] {
  const out: CoreVariant[] = [];
  if (KILN_WASM_RELAXED_BASE64 && WebAssembly.validate(_RELAXED_PROBE)) out.push("relaxed");
  out.push("simd");
  return out;
}

/** The variant engines use: the best available unless `useCoreVariant` chose one. */
export function coreVariant(): CoreVariant {
  return _variant ?? availableCoreVariants()[0];
}

/** Chooses the core build for engines created from now on (tests compare both). */
export function useCoreVariant(variant: CoreVariant | "auto"): void {
  if (variant !== "auto" && !availableCoreVariants().includes(variant)) {
    throw new KilnError("target", `The '${variant}' build of the core cannot run here`);
  }
  _variant = variant === "auto" ? undefined : variant;
}

function _coreBytes(variant: CoreVariant | "threads"): Uint8Array<ArrayBuffer> {
  const bin = atob(
    variant === "threads"
      ? KILN_WASM_THREADS_BASE64
      : variant === "relaxed"
      ? KILN_WASM_RELAXED_BASE64
      : KILN_WASM_BASE64,
  );
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** The compiled core module of the current variant (compiled once per process). */
export function coreModule(): WebAssembly.Module {
  const variant = coreVariant();
  let m = _modules.get(variant);
  if (!m) {
    m = new WebAssembly.Module(_coreBytes(variant));
    _modules.set(variant, m);
  }
  return m;
}

// The default variant is compiled asynchronously, starting when this module loads: browsers
// refuse a synchronous compile of a module this size on their main thread. The async entry
// points (parseOnnx, load) wait for it, so compile() finds it ready; a program built another way
// before it is ready compiles synchronously. No top-level await: a worker importing kiln would
// miss the messages sent to it while its modules load. (A variant chosen later with
// useCoreVariant compiles on first use.)
const _defaultVariant = coreVariant();
const _compiling: Promise<void> = WebAssembly.compile(_coreBytes(_defaultVariant)).then(
  (m) => {
    if (!_modules.has(_defaultVariant)) _modules.set(_defaultVariant, m);
  },
  () => {
    // a failed async compile is retried synchronously (and reported) by coreModule()
  },
);

let _threaded: { main: WebAssembly.Module; worker: WebAssembly.Module } | null | undefined;
let _threadedWhyNot = "";

/**
 * Why a program asking for threads runs on one thread here ("" when threads are available):
 * no threaded build, no relaxed SIMD, no shared memory or no workers. Tests may pass a reason to
 * simulate such a host (`null` restores the real check).
 */
export function threadsUnavailable(): string {
  if (_simulatedWhyNot !== null) return _simulatedWhyNot;
  _threadedModules();
  return _threadedWhyNot;
}

let _simulatedWhyNot: string | null = null;

/** Tests: simulate a host without shared memory (`reason`), or the real host again (`null`). */
export function simulateNoThreads(reason: string | null): void {
  _simulatedWhyNot = reason;
}

/** The threaded build compiled for the main instance and, without its data section, for workers. */
function _threadedModules(): { main: WebAssembly.Module; worker: WebAssembly.Module } | null {
  if (_threaded !== undefined) return _threaded;
  let why = "";
  if (!KILN_WASM_THREADS_BASE64) why = "this build of kiln has no threaded core";
  else if (!WebAssembly.validate(_RELAXED_PROBE)) why = "this host's WebAssembly has no relaxed SIMD";
  else why = threadsUnavailableReason();
  _threaded = null;
  if (!why) {
    try {
      const bytes = _coreBytes("threads");
      _threaded = {
        main: new WebAssembly.Module(bytes),
        worker: new WebAssembly.Module(workerModuleBytes(bytes)),
      };
    } catch (e) {
      why = `the threaded core does not compile here (${(e as Error).message})`;
    }
  }
  _threadedWhyNot = why;
  return _threaded;
}

/** Resolves once the core's default build is compiled (async entry points await it). */
export function coreReady(): Promise<void> {
  return _compiling;
}

const _dec = new TextDecoder();
const _utf16 = new TextDecoder("utf-16le");

/** The largest byte count or pointer of the wasm32 core, plus one: 4 GiB. */
const _ADDRESS_SPACE = 2 ** 32;

/** True when `n` is a byte count or pointer the core can hold: an integer in [0, 4 GiB). */
function _isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < _ADDRESS_SPACE;
}

/**
 * The raw exports with every usize result read unsigned (`>>> 0`): WebAssembly returns an i32
 * to JavaScript as a signed number, so a pointer or length past 2 GiB would read negative.
 * `alloc` refuses a size the core cannot address instead of letting it wrap to 32 bits.
 */
function _unsignedExports(raw: CoreExports): CoreExports {
  return {
    ...raw,
    alloc: (n: number) => {
      if (!_isU32(n)) {
        throw new KilnError(
          "memory",
          `Cannot allocate ${n} bytes in the kiln core: it is wasm32, with 4.29 GB (2^32 bytes) of memory at most`,
        );
      }
      return raw.alloc(n) >>> 0;
    },
    result_ptr: () => raw.result_ptr() >>> 0,
    result_len: () => raw.result_len() >>> 0,
    host_literal_ptr: (h: number, id: number) => raw.host_literal_ptr(h, id) >>> 0,
    input_ptr: (h: number, i: number) => raw.input_ptr(h, i) >>> 0,
    weight_ptr: (h: number, i: number) => raw.weight_ptr(h, i) >>> 0,
    set_weight_ptr: (h: number, i: number, ptr: number) => raw.set_weight_ptr(h, i, ptr) >>> 0,
    set_packed_ptr: (h: number, node: number, ptr: number) => raw.set_packed_ptr(h, node, ptr) >>> 0,
    output_ptr: (h: number, i: number) => raw.output_ptr(h, i) >>> 0,
  };
}

/**
 * The memory of the last disposed threaded engine, kept for the next one (docs/internals.md
 * "Memory reuse"). A fresh WebAssembly memory costs a page fault at the first write of each page
 * (measured on the 2-core VM: about 2 GB/s into fresh pages against 8 to 12 GB/s into touched
 * ones, most of a compile with weights); the threaded core imports its memory, so a new instance
 * can start over the pages an old one touched: its start function writes the static data again
 * and its allocator takes everything above it as free, so nothing of the old program survives.
 * At most one memory is kept (the larger); never one whose engine trapped (its bound weights are
 * read back from it). Internal (benchmarks compare, tests check); not exported by mod.ts.
 */
export const coreMemoryReuse = {
  /** Keep the memory of a disposed engine for the next one (default true). */
  enabled: true,
  /** The memory kept now (null: none). */
  idle: null as WebAssembly.Memory | null,
  /** Engines that started on a kept memory (tests). */
  reused: 0,
};

/**
 * Lets go of the memory a disposed program left for the next one (`coreMemoryReuse`), so the
 * process can return it (once nothing else holds it, at the next garbage collection). For an
 * embedder that disposes its last program and wants the memory back rather than a fast next
 * compile. Returns the bytes let go (0 when none was kept).
 */
export function releaseCoreMemory(): number {
  const kept = coreMemoryReuse.idle;
  coreMemoryReuse.idle = null;
  return kept ? kept.buffer.byteLength : 0;
}

/** Byte offset of the thread slots in the control block (wasm/kernels/threads.ts SLOTS). */
const _SLOTS = 64 + 256;

/** Options of an Engine. */
export interface EngineOptions {
  /**
   * Threads for the kernels (default 1): above 1, the threaded build on shared memory with
   * threads - 1 workers, where the host allows it (else one thread; `threads` says which).
   */
  threads?: number;
}

/** One instance of the core with its memory. */
export class Engine {
  /** The core's exports; pointers and lengths they return are unsigned (see `CoreExports`). */
  readonly exports: CoreExports;
  /** True after a trap: the instance must not be used again. */
  broken = false;
  /** Threads its kernels use (1: the single-thread build). */
  readonly threads: number;
  #pool: ThreadPool | null = null;
  #ctl = 0;
  /** The threaded build's shared memory (kept for the next engine at dispose). */
  #memory: WebAssembly.Memory | null = null;

  constructor(options: EngineOptions = {}) {
    const holder: { mem?: WebAssembly.Memory } = {};
    // an AssemblyScript string: UTF-16 code units at ptr, their byte length (u32) at ptr - 4
    const readAsString = (at: number): string => {
      const mem = holder.mem;
      const ptr = at >>> 0;
      if (!ptr || !mem || ptr < 4 || ptr > mem.buffer.byteLength) return "";
      const len = new DataView(mem.buffer).getUint32(ptr - 4, true);
      return _utf16.decode(
        new Uint8Array(mem.buffer, ptr, Math.min(len, mem.buffer.byteLength - ptr)).slice(),
      );
    };
    const imports = {
      env: {
        abort: (msg: number, file: number, line: number, col: number) => {
          throw new WebAssembly.RuntimeError(
            `abort: ${readAsString(msg)} at ${readAsString(file)}:${line >>> 0}:${col >>> 0}`,
          );
        },
        now: () => performance.now(),
        seed: () => Date.now(),
        trace: () => {},
      },
    };
    const want = options.threads ?? 1;
    const threaded = want > 1 && !threadsUnavailable() ? _threadedModules() : null;
    if (threaded) {
      // the memory the main instance and every worker share (the core's initial and maximum pages)
      const kept = coreMemoryReuse.enabled ? coreMemoryReuse.idle : null;
      if (kept) {
        coreMemoryReuse.idle = null;
        coreMemoryReuse.reused++;
      }
      const memory = kept ?? new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
      this.#memory = memory;
      const inst = new WebAssembly.Instance(threaded.main, { env: { ...imports.env, memory } });
      const raw = inst.exports as unknown as CoreExports;
      holder.mem = memory;
      raw._start!();
      const ctl = raw.threads_init!(want, mainThreadMayBlock() ? 1 : 0) >>> 0;
      const pool = new ThreadPool(want, threaded.worker, memory, ctl, () => raw.threads_stop!());
      this.#pool = pool;
      this.#ctl = ctl;
      this.threads = want;
      // Workers start (asynchronously) after the first run in which a kernel split its work (the
      // job sequence number, the control block's first word, moved): a program of small kernels
      // never starts any (a process compiling thousands of them would otherwise spawn a pool for
      // each). Until they are up the main instance takes every task.
      // (a shared memory's buffer is never detached: one view serves for its whole life)
      const jobSeq = new Int32Array(memory.buffer, ctl, 1);
      let split = false;
      const around = (f: () => number): number => {
        if (split) {
          pool.ensure();
          return f();
        }
        const before = Atomics.load(jobSeq, 0);
        const r = f();
        if (Atomics.load(jobSeq, 0) !== before) {
          split = true;
          pool.ensure();
        }
        return r;
      };
      this.exports = _unsignedExports({
        ...raw,
        run: (h: number) => around(() => raw.run(h)),
        run_profiled: (h: number) => around(() => raw.run_profiled(h)),
        run_node: (h: number, mi: number, ii: number, ptrs: number) =>
          around(() => raw.run_node(h, mi, ii, ptrs)),
        // a bind's packing of a staged chunk is split over the threads too
        pack_rows: (...a: Parameters<CoreExports["pack_rows"]>) => {
          around(() => {
            raw.pack_rows(...a);
            return 0;
          });
        },
      });
    } else {
      const inst = new WebAssembly.Instance(coreModule(), imports);
      this.exports = _unsignedExports(inst.exports as unknown as CoreExports);
      holder.mem = this.exports.memory;
      this.threads = 1;
    }
  }

  /** Tasks each thread has run so far (index 0: this one; empty on one thread). */
  tasksRun(): number[] {
    if (!this.#pool) return [];
    const v = new DataView(this.exports.memory.buffer);
    return Array.from({ length: this.threads }, (_, s) => v.getInt32(this.#ctl + _SLOTS + s * 16 + 12, true));
  }

  /** Workers running now (0 on one thread, or before the first run, or after they went idle). */
  get workersRunning(): number {
    return this.#pool?.running ?? 0;
  }

  /**
   * Stops the workers (a threaded engine); the instance itself stays usable on one thread.
   * With `release`, the owner is done with the instance: a threaded engine that did not trap hands
   * its memory to the next engine (`coreMemoryReuse`), and must not be used again.
   */
  dispose(release = false): void {
    const pool = this.#pool;
    this.#pool = null;
    const memory = this.#memory;
    this.#memory = null;
    if (!release || !memory || !pool || this.broken || !coreMemoryReuse.enabled) {
      pool?.dispose();
      return;
    }
    this.broken = true; // (its memory is no longer its own)
    // kept once no worker of this engine can touch it any more (each has left worker_loop)
    pool.stopThen(() => {
      if (!coreMemoryReuse.enabled) return;
      const kept = coreMemoryReuse.idle;
      if (!kept || kept.buffer.byteLength < memory.buffer.byteLength) coreMemoryReuse.idle = memory;
    });
  }

  /** The names of the ops the core registers, sorted. */
  opNames(): string[] {
    this.call("op names", () => this.exports.op_names());
    return this.resultJson<string[]>();
  }

  /** Bytes of WASM memory (a fresh view: memory growth detaches old ones). */
  u8(): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer);
  }

  /** Copies `bytes` into a new WASM allocation; returns its pointer, unsigned (free with `free`). */
  put(bytes: Uint8Array): number {
    const p = this.call("alloc", () => this.exports.alloc(bytes.length));
    this.u8().set(bytes, p);
    return p;
  }

  /** Copies `len` bytes at `ptr` (unsigned) out of WASM memory; a range outside it is an internal error. */
  get(ptr: number, len: number): Uint8Array {
    const mem = this.u8();
    if (!_isU32(ptr) || !Number.isInteger(len) || len < 0 || ptr + len > mem.length) {
      throw new KilnError(
        "internal",
        `Internal error: ${len} bytes at ${ptr} lie outside the kiln core's ${mem.length} bytes of memory`,
      );
    }
    return mem.slice(ptr, ptr + len);
  }

  free(p: number): void {
    this.call("free", () => this.exports.free(p));
  }

  /** The last result as bytes (copied). */
  resultBytes(): Uint8Array {
    return this.get(this.exports.result_ptr(), this.exports.result_len());
  }

  /** The last result as parsed JSON. */
  resultJson<T>(): T {
    const e = this.exports;
    // (copied: TextDecoder refuses views of the threaded build's shared memory)
    return JSON.parse(
      _dec.decode(new Uint8Array(e.memory.buffer, e.result_ptr(), e.result_len()).slice()),
    ) as T;
  }

  /** The diagnostics of the last failed call. */
  diagnostics(): Diagnostic[] {
    this.call("diagnostics", () => this.exports.diagnostics_json());
    const raw = this.resultJson<
      { code: number; node: string; op: string; message: string; shapes: string }[]
    >();
    // a code this host does not know (a newer core) is "internal", its number kept in the message
    return raw.map((d) => {
      const code = DIAGNOSTIC_CODES[d.code];
      return code
        ? { ...d, code }
        : { ...d, code: "internal" as const, message: `${d.message} (core code ${d.code})` };
    });
  }

  /** The KilnError for the last failed call. */
  error(what: string): KilnError {
    const diags = this.diagnostics();
    const d = diags[0];
    // a shape or type error names the node's input shapes when its message lacks the first one
    if (d && (d.code === "shape" || d.code === "dtype") && d.shapes) {
      const first = d.shapes.split(", ").find((s) => s !== "<none>");
      if (first && !d.message.includes(first)) {
        diags[0] = { ...d, message: `${d.message} (inputs: ${d.shapes})` };
      }
    }
    return errorFromDiagnostics(diags, `${what} failed without a diagnostic`);
  }

  /**
   * A trap as a KilnError. Running out of the core's memory is the user's limit, not a kiln bug:
   * the core is wasm32 (4 GiB at most) and its allocator takes at most 1 GiB per buffer. AssemblyScript's
   * allocator aborts with "Allocation too large" on the second and traps with `unreachable` when
   * memory.grow fails, which only happens near the 4 GiB limit; both become code "memory".
   */
  #trapError(what: string, message: string): KilnError {
    const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;
    const used = this.exports.memory.buffer.byteLength;
    if (/Allocation too large/.test(message)) {
      return new KilnError(
        "memory",
        `Out of memory during ${what}: a single buffer over 1.07 GB (2^30 bytes) does not fit the ref target's core ` +
          `(its allocator's limit per buffer; a weight or intermediate that large needs another target)`,
      );
    }
    if (/unreachable/.test(message) && used >= 2 ** 31) {
      return new KilnError(
        "memory",
        `Out of memory during ${what}: the ref target's core has ${gb(used)} of WebAssembly memory in use ` +
          `and cannot grow past 4.29 GB (2^32 bytes); the program's weights, packed weights and buffers do not fit ` +
          `(compiling without weight packing saves the packed copies: \`--disable-pass pack_gemm_weights\`, ` +
          `or disablePasses: ["pack_gemm_weights"])`,
      );
    }
    return new KilnError("internal", `Internal error in the kiln core during ${what}: ${message}`);
  }

  /** Runs `fn` (a call into the core); a trap marks the engine broken and throws KilnError "internal" (or "memory"). */
  call<T>(what: string, fn: () => T): T {
    if (this.broken) throw new KilnError("internal", `The kiln core instance is broken; cannot ${what}`);
    try {
      return fn();
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError || e instanceof RangeError) {
        this.broken = true;
        throw this.#trapError(what, e.message);
      }
      throw e;
    }
  }
}
