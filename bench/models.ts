/**
 * The benchmark's models (files in the models folder and their one input), the engines it
 * compares, and what it records per engine and model.
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import { SeededRandom } from "../core/weights/random.ts";
import type { OpProfile } from "./peers.ts";

/** A benchmark model: file in the models folder and its one input. */
export interface ModelSpec {
  file: string;
  input: { name: string; dtype: "float32" | "int64"; dims: number[]; vocab?: number };
}

export const MODELS: Record<string, ModelSpec> = {
  resnet50: { file: "resnet50_dynamo.onnx", input: { name: "x", dtype: "float32", dims: [1, 3, 224, 224] } },
  gpt2: { file: "gpt2_dynamo.onnx", input: { name: "ids", dtype: "int64", dims: [1, 128], vocab: 50257 } },
  bert: { file: "bert_dynamo.onnx", input: { name: "ids", dtype: "int64", dims: [1, 128], vocab: 30522 } },
};

export const ENGINES = ["ort-node", "ort-node-default", "ort-web", "kiln"] as const;
export type EngineId = typeof ENGINES[number];

/** Outputs above this relative L2 distance from onnxruntime-node's count as wrong. */
export const REL_L2_TOLERANCE = 1e-3;

/** What one engine did on one model. */
export interface EngineResult {
  id: EngineId;
  name: string;
  /** setup wall time (session create, or kiln parse + compile), ms */
  setupMs?: number;
  setupNote?: string;
  firstMs?: number;
  times: number[];
  /** process CPU time (user + system) of each timed run, ms: less disturbed than wall time on a busy machine */
  cpu: number[];
  error?: string;
  /** max relative L2 distance of the outputs from ort-node (1 thread) */
  relL2?: number;
  notes: string[];
  /** kiln: the threads its kernels ran on */
  threads?: number;
}

export interface ModelReport {
  model: string;
  weightsMs: number;
  weightBytes: number;
  results: EngineResult[];
  /** onnxruntime-node's time per op type (its optimized graph) */
  ortProfile?: OpProfile;
  /** kiln's time per op type (wall time per node on the main thread), one per kiln row profiled */
  kilnProfiles?: { who: string; profile: OpProfile }[];
  skipped?: string;
}

/** The seeded input of a model: normals for float32, token ids below `vocab` for int64. */
export function modelInput(spec: ModelSpec, seed: number): Tensor {
  const r = new SeededRandom(seed ^ 0x5eed);
  const n = spec.input.dims.reduce((a, b) => a * b, 1);
  if (spec.input.dtype === "float32") {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = r.normal();
    return { dtype: "float32", dims: [...spec.input.dims], data };
  }
  const data = new BigInt64Array(n);
  for (let i = 0; i < n; i++) data[i] = BigInt(r.int(spec.input.vocab ?? 2));
  return { dtype: "int64", dims: [...spec.input.dims], data };
}
