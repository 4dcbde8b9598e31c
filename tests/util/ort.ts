/**
 * onnxruntime-node glue for kiln's tests: run a model file (or bytes) on kiln host tensors and
 * get kiln host tensors back. `import * as ort from "onnxruntime-node"` loads as is in Deno 2.9
 * with `"nodeModulesDir": "manual"` (the N-API binding in node_modules/onnxruntime-node/bin
 * works; checked with onnxruntime-node 1.30.0). float16 tensors cross as raw bits in a
 * Uint16Array (see {@linkcode _float16AsBits}); bfloat16 has no onnxruntime JS type.
 * @module
 */

import * as ort from "onnxruntime-node";
import type { DTypeName, Tensor, TypedArray } from "../../core/tensor.ts";

/**
 * onnxruntime-common maps "float16" to `Float16Array` when the runtime has one (Deno 2.9 does),
 * but onnxruntime-node's binding reads a Float16Array as empty ("not enough space: expected 6,
 * got 0"). The mapping is chosen once, at the first tensor: make that choice with Float16Array
 * hidden, so float16 tensors stay Uint16Array bits both ways. Restores the global at once.
 */
function _float16AsBits(): void {
  const g = globalThis as { Float16Array?: unknown };
  const saved = g.Float16Array;
  if (saved === undefined) return;
  try {
    g.Float16Array = undefined;
    new ort.Tensor("float16", new Uint16Array(1), [1]);
  } finally {
    g.Float16Array = saved;
  }
}
_float16AsBits();

/** Options of {@linkcode runOrt} and {@linkcode ortSession}. */
export interface OrtRunOptions {
  /** Intra-op threads (default 1: deterministic, and the machine is shared). */
  threads?: number;
  /** Graph optimization level (default "all", onnxruntime's own default). */
  optimization?: "disabled" | "basic" | "extended" | "all";
}

/** Opens an onnxruntime-node session on a model file path or serialized model bytes. */
export function ortSession(
  model: string | Uint8Array,
  options: OrtRunOptions = {},
): Promise<ort.InferenceSession> {
  const opts: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: options.threads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: options.optimization ?? "all",
    executionProviders: ["cpu"],
    logSeverityLevel: 3, // errors only: the backend tests' old opsets make onnxruntime warn on stderr
  };
  return typeof model === "string"
    ? ort.InferenceSession.create(model, opts)
    : ort.InferenceSession.create(model, opts);
}

/** A kiln host tensor as an onnxruntime tensor (no copy; float16 as raw bits). */
export function toOrt(t: Tensor): ort.Tensor {
  switch (t.dtype) {
    case "bfloat16":
      throw new Error(`Tensor of type 'bfloat16' cannot be passed to onnxruntime-node`);
    case "bool":
      return new ort.Tensor("bool", t.data as Uint8Array, t.dims);
    default:
      return new ort.Tensor(t.dtype, t.data as Exclude<TypedArray, never>, t.dims);
  }
}

/** An onnxruntime tensor as a kiln host tensor (copies the data). */
export function fromOrt(t: ort.Tensor): Tensor {
  const dims = t.dims.map(Number);
  const type = t.type as string;
  const src = t.data as unknown as ArrayBufferView;
  const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength).slice();
  const dtype = _ORT_TO_KILN[type];
  if (!dtype) throw new Error(`onnxruntime output of type '${type}' has no kiln tensor type`);
  const b = bytes.buffer;
  let data: TypedArray;
  switch (dtype) {
    case "float32":
      data = new Float32Array(b);
      break;
    case "float64":
      data = new Float64Array(b);
      break;
    case "float16":
    case "uint16":
      data = new Uint16Array(b);
      break;
    case "int8":
      data = new Int8Array(b);
      break;
    case "int16":
      data = new Int16Array(b);
      break;
    case "int32":
      data = new Int32Array(b);
      break;
    case "int64":
      data = new BigInt64Array(b);
      break;
    case "uint32":
      data = new Uint32Array(b);
      break;
    case "uint64":
      data = new BigUint64Array(b);
      break;
    default:
      data = new Uint8Array(b);
  }
  return { dtype, dims, data };
}

const _ORT_TO_KILN: Record<string, DTypeName> = {
  float32: "float32",
  float64: "float64",
  float16: "float16",
  int8: "int8",
  int16: "int16",
  int32: "int32",
  int64: "int64",
  uint8: "uint8",
  uint16: "uint16",
  uint32: "uint32",
  uint64: "uint64",
  bool: "bool",
};

/**
 * Runs a model with onnxruntime-node on kiln tensors and returns every graph output by name.
 * The session is released before returning.
 */
export async function runOrt(
  model: string | Uint8Array,
  inputs: Record<string, Tensor>,
  options: OrtRunOptions = {},
): Promise<Record<string, Tensor>> {
  const session = await ortSession(model, options);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(inputs)) feeds[k] = toOrt(v);
    const out = await session.run(feeds);
    const res: Record<string, Tensor> = {};
    for (const name of session.outputNames) res[name] = fromOrt(out[name]);
    return res;
  } finally {
    await session.release();
  }
}
