/**
 * Threads for the ref target's kernels: the threaded build of the core (build/kiln.threads.wasm)
 * runs on a shared WebAssembly.Memory; a pool of workers (Web Workers under Deno and in
 * browsers, worker_threads under Node) each instantiate it on that memory and park in its
 * `worker_loop`, taking tasks that the main instance's kernels publish in shared memory
 * (wasm/kernels/threads.ts). No JavaScript runs per task. A worker leaves after 5 s without
 * work and is started again at the next run, so an undisposed program never keeps a process
 * alive for long; `dispose` stops them at once. Where shared memory or workers are missing (a
 * browser page without cross-origin isolation), programs run on one thread. docs/threads.md.
 * @module
 */

import { KilnError } from "./errors.ts";
import { nodeBuiltin } from "./host.ts";

/** Milliseconds a worker waits for work before it leaves (it is restarted on the next run). */
const _IDLE_MS = 5000;
/**
 * The host's Web Worker, taken when this module loads: Emscripten-built libraries loaded later
 * (onnxruntime-web's threaded build) may replace `globalThis.Worker` with Node's worker_threads one.
 */
const _WebWorker: typeof Worker | undefined = typeof globalThis.Worker === "function"
  ? globalThis.Worker
  : undefined;

/** The most threads a program uses (the core's MAX_THREADS). */
export const MAX_THREADS = 64;

/** Why threads cannot run here ("" when they can), given the threaded build is present. */
export function threadsUnavailableReason(): string {
  const g = globalThis as unknown as {
    SharedArrayBuffer?: unknown;
    crossOriginIsolated?: boolean;
    process?: { getBuiltinModule?: (n: string) => unknown };
  };
  if (typeof g.SharedArrayBuffer !== "function") return "this host has no SharedArrayBuffer";
  if (_isNode()) {
    // Node 20 (its relaxed SIMD behind --experimental-wasm-relaxed-simd) computed wrong GEMM results
    // with workers under Liftoff, right ones with --no-liftoff; until Node is validated, one thread
    return "kiln's threads are not validated under Node yet";
  }
  if (g.crossOriginIsolated === false) return "the page is not cross-origin isolated (no shared memory)";
  if (!_WebWorker && !_nodeWorkers()) return "this host has no workers";
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch {
    return "this host's WebAssembly has no shared memory";
  }
  return "";
}

/**
 * Whether this thread may block in Atomics.wait: Deno and Node, and any worker; not a browser
 * page's main thread (where the core spins instead while it waits for the workers' last tasks).
 */
export function mainThreadMayBlock(): boolean {
  const g = globalThis as unknown as { Deno?: unknown; window?: unknown; document?: unknown };
  if (typeof g.Deno !== "undefined" || _isNode()) return true;
  return typeof g.document === "undefined";
}

/** The cores this host reports (navigator.hardwareConcurrency, Node's availableParallelism), at least 1. */
export function availableCores(): number {
  const g = globalThis as unknown as { navigator?: { hardwareConcurrency?: number } };
  let n = g.navigator?.hardwareConcurrency ?? 0;
  if (!n) {
    const os = nodeBuiltin<{ availableParallelism?: () => number }>("node:os");
    n = os?.availableParallelism?.() ?? 1;
  }
  return Math.max(1, Math.min(MAX_THREADS, Math.floor(n)));
}

/** A valid `threads` option (default: the cores available); anything else throws KilnError "options". */
export function checkThreads(threads: number | undefined, what: string): number {
  if (threads === undefined) return availableCores();
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new KilnError(
      "options",
      `Cannot ${what}: 'threads' must be an integer from 1 to ${MAX_THREADS}, got ${String(threads)}`,
    );
  }
  return threads;
}

type _NodeWorkerCtor = new (code: string, opts: { eval: true }) => {
  postMessage(m: unknown): void;
  on(ev: "message" | "error", fn: (v: unknown) => void): void;
  terminate(): Promise<number>;
  unref(): void;
};

function _isNode(): boolean {
  const g = globalThis as unknown as { Deno?: unknown; process?: { versions?: { node?: string } } };
  return typeof g.Deno === "undefined" && typeof g.process?.versions?.node === "string";
}

function _nodeWorkers(): _NodeWorkerCtor | undefined {
  if (!_isNode()) return undefined;
  return nodeBuiltin<{ Worker?: _NodeWorkerCtor }>("node:worker_threads")?.Worker;
}

/**
 * The worker's code: instantiate the module on the shared memory, run worker_loop, report how
 * it ended. A trap in a task (a core bug) is recorded in the control block's failure word, the
 * task counted done, so that the main instance stops waiting and reports it.
 */
const _WORKER_BODY = `
const run = (d, post) => {
  const { module, memory, ctl, slot, idleMs, gate } = d;
  // gate: 0 starting, 1 entering worker_loop, 2 cancelled before (never enters), 3 left it
  const g = new Int32Array(gate);
  if (Atomics.compareExchange(g, 0, 0, 1) !== 0) {
    post(3);
    return;
  }
  let r;
  try {
    const inst = new WebAssembly.Instance(module, { env: {
      memory,
      abort: () => { throw new Error("abort in a kiln worker"); },
      now: () => performance.now(), seed: () => Date.now(), trace: () => {},
    } });
    r = inst.exports.worker_loop(ctl, slot, idleMs);
  } catch (e) {
    const w = new Int32Array(memory.buffer);
    Atomics.store(w, (ctl >>> 2) + 8, 1);
    Atomics.add(w, (ctl >>> 2) + 2, 1);
    Atomics.sub(w, (ctl >>> 2) + 6, 1);
    r = 2;
  }
  Atomics.store(g, 0, 3);
  post(r);
};`;

const _WEB_WORKER = `${_WORKER_BODY}
self.onmessage = (e) => run(e.data, (r) => self.postMessage(r));`;

const _NODE_WORKER = `${_WORKER_BODY}
const { parentPort } = require("node:worker_threads");
parentPort.once("message", (d) => run(d, (r) => parentPort.postMessage(r)));`;

interface _Slot {
  terminate(): void;
  /** the worker's gate (see _WORKER_BODY): 0 starting, 1 entering worker_loop, 2 cancelled, 3 left it */
  gate: Int32Array;
}

/** The workers of one threaded engine (slots 1..threads-1; slot 0 is the main instance). */
export class ThreadPool {
  readonly threads: number;
  #module: WebAssembly.Module;
  #memory: WebAssembly.Memory;
  #ctl: number;
  #slots: (_Slot | null)[];
  #stop: () => void;
  #disposed = false;
  /** Called once every worker has left worker_loop after `stopThen` (none touches the memory after). */
  #onEmpty: (() => void) | null = null;

  /**
   * @param module the worker module (the threaded core without its data section)
   * @param stop makes every worker leave worker_loop (the core's threads_stop)
   */
  constructor(
    threads: number,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    ctl: number,
    stop: () => void,
  ) {
    this.threads = threads;
    this.#module = module;
    this.#memory = memory;
    this.#ctl = ctl;
    this.#stop = stop;
    this.#slots = new Array(threads).fill(null);
  }

  /** Starts the workers that are not running (each takes work as soon as it is up). */
  ensure(): void {
    if (this.#disposed) return;
    for (let s = 1; s < this.threads; s++) if (!this.#slots[s]) this.#slots[s] = this.#spawn(s);
  }

  /** Workers running now. */
  get running(): number {
    return this.#slots.filter((s) => s).length;
  }

  #spawn(slot: number): _Slot {
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const msg = {
      module: this.#module,
      memory: this.#memory,
      ctl: this.#ctl,
      slot,
      idleMs: _IDLE_MS,
      gate: gate.buffer,
    };
    const ended = () => {
      // it left worker_loop (idle, or a trap already recorded): end it; the next run restarts it
      if (this.#slots[slot] === handle) this.#slots[slot] = null;
      handle.terminate();
      if (this.#onEmpty && this.running === 0) {
        const done = this.#onEmpty;
        this.#onEmpty = null;
        done();
      }
    };
    let handle: _Slot;
    const NodeWorker = _nodeWorkers();
    if (NodeWorker) {
      const w = new NodeWorker(_NODE_WORKER, { eval: true });
      w.unref();
      w.on("message", ended);
      w.on("error", ended);
      w.postMessage(msg);
      handle = { terminate: () => void w.terminate(), gate };
    } else {
      const url = `data:text/javascript,${encodeURIComponent(_WEB_WORKER)}`;
      const w = new _WebWorker!(url, { type: "module" });
      w.onmessage = ended;
      w.onerror = (e) => {
        e.preventDefault();
        ended();
      };
      w.postMessage(msg);
      handle = { terminate: () => w.terminate(), gate };
    }
    return handle;
  }

  /**
   * Asks every worker to leave worker_loop and calls `done` once each has (at once when none is
   * running): from then on no worker reads or writes the shared memory, which another engine may
   * then take (core/engine.ts `coreMemoryReuse`). Each worker ends when it reports.
   */
  stopThen(done: () => void): void {
    if (this.#disposed) return;
    // a worker still starting is cancelled (it will never enter worker_loop); one inside leaves it
    // at once when asked: wait for that here (50 ms at most), then end them all now, as dispose
    // does, so that neither their start nor their teardown lands in what the caller does next
    this.#stop();
    const live = this.#slots.filter((s): s is _Slot => s !== null);
    for (const s of live) Atomics.compareExchange(s.gate, 0, 0, 2);
    if (mainThreadMayBlock()) {
      const t0 = performance.now();
      while (live.some((s) => Atomics.load(s.gate, 0) === 1) && performance.now() - t0 < 50) { /* spin */ }
    }
    if (live.every((s) => Atomics.load(s.gate, 0) !== 1)) {
      this.dispose();
      done();
      return;
    }
    this.#disposed = true;
    this.#stop();
    if (this.running === 0) done();
    else this.#onEmpty = done;
  }

  /** Stops every worker now (they leave worker_loop first, so none is left blocked). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#stop();
    for (let s = 1; s < this.threads; s++) {
      this.#slots[s]?.terminate();
      this.#slots[s] = null;
    }
  }
}

/**
 * The threaded core's bytes without the data section (and its count): a worker instance must
 * not write the static data again over the shared memory the main instance already uses.
 */
export function workerModuleBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let i = 8;
  while (i < bytes.length) {
    const start = i;
    const id = bytes[i++];
    let size = 0;
    let shift = 0;
    let b: number;
    do {
      b = bytes[i++];
      size += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    const end = i + size;
    if (id !== 11 && id !== 12) parts.push(bytes.subarray(start, end));
    i = end;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
