/**
 * `WorkerProgram`: a program compiled and evaluated in a module worker, so the caller's thread
 * (a page's main thread, a server's event loop) is never blocked by a compile, a bind or an eval.
 * It runs the ref target (WebAssembly) under Deno and in browsers (a module Web Worker) and in
 * Node (a worker_threads Worker running the bundle's kiln_worker.js). Calls are answered in order; tensors cross by structured
 * clone (outputs are transferred, not copied). An `AbortSignal` on `eval` settles the call at once
 * with KilnError "aborted" (the worker still finishes that eval and drops its result).
 * @module
 */
import { KilnError, type KilnErrorCode, throwIfAborted } from "./errors.ts";
import type { ParseOptions, ValueInfo } from "./onnx/import.ts";
import type { BindReport, WeightInfo } from "./program.ts";
import { isByteSource, readByteSource } from "./source.ts";
import type { Tensor } from "./tensor.ts";
import { fileUrlPath } from "./path.ts";
import { nodeBuiltin } from "./host.ts";

/** Where a worker program's weights come from. */
export type WorkerWeights =
  /** an ONNX external-data folder (Deno: read in the worker, which has the caller's permissions) */
  | { kind: "dir"; path: string }
  /** a safetensors file: a path, an http(s) URL's text, or its bytes */
  | { kind: "safetensors"; source: string | URL | Uint8Array }
  /** typed arrays or tensors by weight name */
  | { kind: "arrays"; arrays: Record<string, Tensor | Tensor["data"]> };

/** @internal what a worker program asks its worker */
export type WorkerRequestBody =
  | { op: "create"; model: string | Uint8Array; parse: Omit<ParseOptions, "signal" | "onProgress"> }
  | { op: "bind"; weights: WorkerWeights; partial?: boolean }
  | { op: "eval"; inputs: Record<string, Tensor>; outputs?: readonly string[] }
  | { op: "dispose" };

/** @internal the messages a worker program sends its worker */
export type WorkerRequest = WorkerRequestBody & { id: number };

interface _Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface _Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { code: KilnErrorCode; message: string; problems?: string[] };
}

/** What WorkerProgram needs of a worker: a Web Worker, or Node's worker_threads Worker adapted. */
interface _WorkerLike {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  terminate(): void;
  onmessage: ((e: { data: _Reply }) => void) | null;
  onerror: ((e: { message: string; preventDefault(): void }) => void) | null;
}

type _NodeWorker = {
  postMessage(m: unknown, transfer?: unknown[]): void;
  terminate(): Promise<number>;
  on(event: "message" | "error", fn: (v: unknown) => void): void;
};

/** A Web Worker (Deno, browsers) or, in Node, a worker_threads Worker behind the same face. */
function _startWorker(url: URL): _WorkerLike {
  if (typeof Worker !== "undefined") return new Worker(url, { type: "module" }) as unknown as _WorkerLike;
  const wt = nodeBuiltin<{ Worker: new (url: URL) => _NodeWorker }>("node:worker_threads");
  if (!wt) {
    throw new KilnError(
      "unsupported",
      "WorkerProgram needs Web Workers or Node's worker_threads; this runtime has neither",
    );
  }
  const w = new wt.Worker(url);
  const face: _WorkerLike = {
    postMessage: (m, transfer) => w.postMessage(m, transfer),
    terminate: () => void w.terminate(),
    onmessage: null,
    onerror: null,
  };
  w.on("message", (data) => face.onmessage?.({ data: data as _Reply }));
  w.on("error", (e) => face.onerror?.({ message: (e as Error).message, preventDefault: () => {} }));
  return face;
}

/** The worker's module: this file's sibling from source; tools/bundle.ts rewrites it to the bundle's. */
const WORKER_MODULE = "./worker_main.ts";

/** Options for `WorkerProgram.create`. */
export interface WorkerProgramOptions {
  /** how to parse the model (as `parseOnnx`; progress callbacks and signals stay on this side) */
  parse?: Omit<ParseOptions, "signal" | "onProgress">;
  /** the worker's module (default: kiln's own, beside this module or the bundle) */
  workerUrl?: URL;
}

/** A program that lives in a module worker: compile, bind and eval never block this thread. */
export class WorkerProgram {
  /** graph inputs, as on `Program` */
  readonly inputs: ValueInfo[];
  /** graph outputs */
  readonly outputs: ValueInfo[];
  /** deferred weights (the weight signature) */
  readonly weights: WeightInfo[];
  #worker: _WorkerLike;
  #next = 1;
  #pending: Map<number, _Pending>;
  #state: { dead?: KilnError };

  private constructor(
    worker: _WorkerLike,
    pending: Map<number, _Pending>,
    state: { dead?: KilnError },
    info: { inputs: ValueInfo[]; outputs: ValueInfo[]; weights: WeightInfo[] },
  ) {
    this.#worker = worker;
    this.#pending = pending;
    this.#state = state;
    this.inputs = info.inputs;
    this.outputs = info.outputs;
    this.weights = info.weights;
  }

  /**
   * Parses and compiles `model` (a path, a file: URL, bytes, a Blob, a Response or an http(s)
   * URL; sources other than paths are read on this side and handed over) in a new worker.
   * @example
   * ```ts ignore
   * const p = await WorkerProgram.create("model.onnx", { parse: { deferExternalWeights: true } });
   * await p.bindWeights({ kind: "dir", path: "weights_v1" });
   * const { probs } = await p.eval({ x });
   * p.dispose();
   * ```
   */
  static async create(
    model: string | URL | Uint8Array | Blob | Response,
    options: WorkerProgramOptions = {},
  ): Promise<WorkerProgram> {
    const source: string | Uint8Array = isByteSource(model)
      ? await readByteSource(model, "ONNX model")
      : typeof model === "string"
      ? model
      : fileUrlPath(model as URL);
    const url = options.workerUrl ?? new URL(WORKER_MODULE, import.meta.url);
    const worker = _startWorker(url);
    // shared with the instance: replies may come before it exists (the create call's)
    const pending = new Map<number, _Pending>();
    const state: { dead?: KilnError } = {};
    worker.onmessage = (e: { data: _Reply }) => {
      const r = e.data;
      const p = pending.get(r.id);
      if (!p) return;
      pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else {
        const err = new KilnError(r.error!.code, r.error!.message);
        if (r.error!.problems) (err as KilnError & { problems?: string[] }).problems = r.error!.problems;
        p.reject(err);
      }
    };
    worker.onerror = (e: { message: string; preventDefault(): void }) => {
      e.preventDefault();
      state.dead = new KilnError("internal", `The kiln worker failed: ${e.message}`);
      for (const p of pending.values()) p.reject(state.dead);
      pending.clear();
    };
    const info = await new Promise<{ inputs: ValueInfo[]; outputs: ValueInfo[]; weights: WeightInfo[] }>(
      (resolve, reject) => {
        pending.set(0, { resolve: resolve as (v: unknown) => void, reject });
        worker.postMessage(
          { id: 0, op: "create", model: source, parse: options.parse ?? {} } as WorkerRequest,
        );
      },
    ).catch((e) => {
      worker.terminate();
      throw e;
    });
    return new WorkerProgram(worker, pending, state, info);
  }

  #call<T>(
    request: WorkerRequestBody,
    signal?: AbortSignal,
    transfer: Transferable[] = [],
  ): Promise<T> {
    if (this.#state.dead) return Promise.reject(this.#state.dead);
    return new Promise<T>((resolve, reject) => {
      const id = this.#next++;
      const onAbort = () => {
        if (!this.#pending.delete(id)) return;
        try {
          throwIfAborted(signal, "The eval");
        } catch (e) {
          reject(e);
        }
      };
      this.#pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(v as T);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#worker.postMessage({ ...request, id } as WorkerRequest, transfer);
    });
  }

  /** Binds weights in the worker (checked against the weight signature there, as `Program.bindWeights`). */
  async bindWeights(weights: WorkerWeights, options: { partial?: boolean } = {}): Promise<BindReport> {
    const w = weights.kind === "safetensors" && weights.source instanceof URL
      ? weights.source.protocol === "file:"
        ? { kind: "safetensors" as const, source: fileUrlPath(weights.source) }
        : { kind: "safetensors" as const, source: await readByteSource(weights.source, "Safetensors file") }
      : weights;
    return await this.#call<BindReport>({ op: "bind", weights: w, partial: options.partial });
  }

  /** Evaluates in the worker; with `signal`, an abort settles the call at once ("aborted"). */
  eval(
    inputs: Record<string, Tensor>,
    options?: { outputs?: readonly string[]; signal?: AbortSignal },
  ): Promise<Record<string, Tensor>> {
    try {
      throwIfAborted(options?.signal, "The eval");
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#call({ op: "eval", inputs, outputs: options?.outputs }, options?.signal);
  }

  /** Releases the program and stops the worker. */
  dispose(): void {
    if (this.#state.dead) return;
    const dead = (this.#state.dead = new KilnError("disposed", "The worker program was disposed"));
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(dead);
    this.#pending.clear();
  }
}
