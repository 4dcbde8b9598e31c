/**
 * The benchmark's peers: onnxruntime-node (native CPU) and onnxruntime-web (WebAssembly, SIMD,
 * one thread, no proxy worker), both driven from Deno on kiln's host tensors.
 *
 * onnxruntime-web is imported through its `./wasm` export, which resolves to
 * `dist/ort.wasm.bundle.min.mjs` (the SIMD build with the `.wasm` embedded), so no `wasmPaths`
 * are needed. It is imported when first used (bench:gpu runs on machines that carry only
 * onnxruntime-node). It cannot read files: the model is given as bytes and every external-data file
 * the model names is passed through the `externalData` session option.
 * @module
 */
import * as ortNode from "onnxruntime-node";
import type * as OrtWeb from "onnxruntime-web/wasm";
import { dirname, join } from "node:path";
import { onnx } from "../core/onnx/onnx_pb.js";
import type { DTypeName, Tensor, TypedArray } from "../core/tensor.ts";

/** A created inference session of one peer. */
export interface PeerSession {
  /** e.g. "ort-node (1 thread)" */
  readonly name: string;
  /** wall time of session creation (reading external data included), ms */
  readonly createMs: number;
  /** Runs the model once; outputs by name as kiln host tensors. */
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

/** Options for {@link ortNodeSession}. */
export interface OrtNodeOptions {
  /** intra-op threads; 0 lets onnxruntime choose (one per core). Default 1. */
  intraOpThreads?: number;
}

type _OrtTensor = { type: string; dims: readonly number[]; data: unknown };

function _toHost(t: _OrtTensor): Tensor {
  return { dtype: t.type as DTypeName, dims: [...t.dims], data: t.data as TypedArray };
}

function _outputs(r: Record<string, _OrtTensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(r)) out[k] = _toHost(v);
  return out;
}

/** Creates an onnxruntime-node session for a model file (external data is read beside it) or model bytes. */
export async function ortNodeSession(
  model: string | Uint8Array,
  options: OrtNodeOptions = {},
): Promise<PeerSession> {
  const threads = options.intraOpThreads ?? 1;
  const t0 = performance.now();
  const opts: ortNode.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  };
  const session = typeof model === "string"
    ? await ortNode.InferenceSession.create(model, opts)
    : await ortNode.InferenceSession.create(model, opts);
  const createMs = performance.now() - t0;
  return {
    name: threads === 0
      ? "ort-node (default threads)"
      : `ort-node (${threads} thread${threads === 1 ? "" : "s"})`,
    createMs,
    async run(feeds) {
      const f: Record<string, ortNode.Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) {
        f[k] = new ortNode.Tensor(v.dtype as ortNode.Tensor.Type, v.data as ortNode.Tensor.DataType, v.dims);
      }
      return _outputs(await session.run(f) as unknown as Record<string, _OrtTensor>);
    },
    release: () => session.release(),
  };
}

/** Time spent per op type over some runs, from a profiler. */
export interface OpProfile {
  /** op type -> { ms: total over the runs, count: node executions } */
  byOp: Map<string, { ms: number; count: number }>;
  runs: number;
}

/**
 * Profiles onnxruntime-node (1 thread) over `runs` runs after one warm-up: per op type of the
 * graph onnxruntime actually runs (after its fusions, e.g. Conv+Relu is one "Conv"), from
 * the `enableProfiling` trace (events of category "Node" named "*_kernel_time").
 */
export async function ortNodeOpProfile(
  modelPath: string,
  feeds: Record<string, Tensor>,
  runs: number,
): Promise<OpProfile> {
  const dir = await Deno.makeTempDir({ prefix: "kiln-bench-prof-" });
  try {
    const session = await ortNode.InferenceSession.create(modelPath, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      enableProfiling: true,
      profileFilePrefix: join(dir, "ort"),
    });
    const f: Record<string, ortNode.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      f[k] = new ortNode.Tensor(v.dtype as ortNode.Tensor.Type, v.data as ortNode.Tensor.DataType, v.dims);
    }
    await session.run(f);
    for (let i = 0; i < runs; i++) await session.run(f);
    session.endProfiling();
    await session.release();
    const events = await _readProfile(dir);
    // the first run (warm-up) is the first 1/(runs+1) of the kernel events
    const perRun = events.length / (runs + 1);
    const byOp = new Map<string, { ms: number; count: number }>();
    for (const e of events.slice(Math.round(perRun))) {
      const op = e.op;
      const cur = byOp.get(op) ?? { ms: 0, count: 0 };
      cur.ms += e.us / 1000;
      cur.count++;
      byOp.set(op, cur);
    }
    return { byOp, runs };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function _readProfile(dir: string): Promise<{ op: string; us: number }[]> {
  const out: { op: string; us: number }[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".json")) continue;
    const trace = JSON.parse(await Deno.readTextFile(join(dir, e.name))) as {
      cat?: string;
      name?: string;
      dur?: number;
      args?: { op_name?: string };
    }[];
    for (const ev of trace) {
      if (ev.cat === "Node" && ev.name?.endsWith("_kernel_time") && typeof ev.dur === "number") {
        out.push({ op: ev.args?.op_name ?? "?", us: ev.dur });
      }
    }
  }
  return out;
}

/** The distinct external-data file names a model's initializers refer to. */
export function externalDataLocations(modelBytes: Uint8Array): string[] {
  const model = onnx.ModelProto.decode(modelBytes);
  const locations = new Set<string>();
  for (const t of model.graph?.initializer ?? []) {
    for (const e of t.external_data ?? []) if (e.key === "location" && e.value) locations.add(e.value);
  }
  return [...locations];
}

let _webConfigured = false;

/**
 * Creates an onnxruntime-web session (wasm backend, SIMD, `threads` threads (default 1), no
 * proxy) from a model file, with every external-data file it names read from the model's
 * folder, or from model bytes without external data. onnxruntime-web sets its thread count
 * once per process (the first session's wins; a later different count throws).
 */
export async function ortWebSession(model: string | Uint8Array, threads = 1): Promise<PeerSession> {
  // threads: the package's main entry with the threaded build's files named by file URL (the
  // `./wasm` bundle starts its pthread workers from blob: URLs, which Deno's Node-compatible
  // worker_threads refuses)
  const ortWeb = _ortWeb ??= threads > 1
    ? await import("onnxruntime-web") as unknown as typeof OrtWeb
    : await import("onnxruntime-web/wasm");
  if (_webConfigured && ortWeb.env.wasm.numThreads !== threads) {
    throw new Error(
      `onnxruntime-web already runs with ${ortWeb.env.wasm.numThreads} thread(s) in this process, not ${threads}`,
    );
  }
  if (!_webConfigured) {
    ortWeb.env.wasm.numThreads = threads;
    if (threads > 1) {
      const dist = new URL(".", import.meta.resolve("onnxruntime-web/wasm"));
      ortWeb.env.wasm.wasmPaths = {
        mjs: new URL("ort-wasm-simd-threaded.mjs", dist).href,
        wasm: new URL("ort-wasm-simd-threaded.wasm", dist).href,
      };
    }
    ortWeb.env.wasm.simd = true;
    ortWeb.env.wasm.proxy = false;
    _webConfigured = true;
  }
  const t0 = performance.now();
  const modelBytes = typeof model === "string" ? await Deno.readFile(model) : model;
  const externalData: { path: string; data: Uint8Array }[] = [];
  if (typeof model === "string") {
    for (const loc of externalDataLocations(modelBytes)) {
      externalData.push({ path: loc, data: await Deno.readFile(join(dirname(model), loc)) });
    }
  }
  const session = await ortWeb.InferenceSession.create(modelBytes, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
    externalData,
  });
  const createMs = performance.now() - t0;
  return {
    name: `ort-web (wasm, ${threads} thread${threads > 1 ? "s" : ""})`,
    createMs,
    async run(feeds) {
      const f: Record<string, OrtWeb.Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) {
        f[k] = new ortWeb.Tensor(v.dtype as OrtWeb.Tensor.Type, v.data as OrtWeb.Tensor.DataType, v.dims);
      }
      return _outputs(await session.run(f) as unknown as Record<string, _OrtTensor>);
    },
    release: () => session.release(),
  };
}

let _ortWeb: typeof OrtWeb | undefined;

/** The onnxruntime versions in use (onnxruntime-web's once a session of it was created). */
export function peerVersions(): { node: string; web: string } {
  return { node: ortNode.env.versions.node ?? "?", web: _ortWeb?.env.versions.web ?? "?" };
}
