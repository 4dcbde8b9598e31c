/**
 * Eval latency as `kiln perf` reports it, in the habits of trtexec and `migraphx-driver perf`:
 * warm-up evals, then timed ones (a count or a duration), with min, median, mean, p90, p99, max
 * and throughput, and (gpu) a per-op profile of one eval. Inputs are given or generated: seeded
 * normals for float inputs, zeros for integer and bool inputs (valid indices for any Gather).
 * @module
 */
import { KilnError } from "./errors.ts";
import type { Program } from "./program.ts";
import { elementCount, type Tensor, type TypedArray } from "./tensor.ts";
import { SeededRandom } from "./weights/random.ts";

/** Options of {@linkcode measureEvals}. */
export interface PerfOptions {
  /** untimed evals first (default 5) */
  warmup?: number;
  /** timed evals (default 50); with `durationMs`, the least count */
  iterations?: number;
  /** keep timing until this many milliseconds have passed (after `iterations`) */
  durationMs?: number;
  /** leave every output on the device (gpu: `eval(inputs, { outputs: [] })`); default false */
  outputsOnDevice?: boolean;
  /** called after each timed eval with its index (progress on long runs) */
  onEval?: (i: number, ms: number) => void;
}

/** What {@linkcode measureEvals} measured, milliseconds. */
export interface PerfReport {
  /** the program's target */
  target: string;
  /** where it ran, e.g. "NVIDIA H200 (sm_90)" */
  device: string;
  /** untimed evals run first */
  warmup: number;
  /** timed evals */
  iterations: number;
  /** the outputs stayed on the device */
  outputsOnDevice: boolean;
  /** fastest eval */
  min: number;
  /** the 0.5 quantile (nearest rank) */
  median: number;
  /** the mean */
  mean: number;
  /** the 0.9 quantile (nearest rank) */
  p90: number;
  /** the 0.99 quantile (nearest rank) */
  p99: number;
  /** slowest eval */
  max: number;
  /** evals per second at the mean latency */
  throughput: number;
  /** every timed eval, in order */
  samples: number[];
}

/** The q-quantile of sorted values (nearest rank, as trtexec's percentiles). */
export function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Generated inputs for every input of `program`: seeded normals (floats), zeros (integers, bool). */
export function generateInputs(program: Program, seed = 0): Record<string, Tensor> {
  const rng = new SeededRandom(seed);
  const out: Record<string, Tensor> = {};
  for (const v of program.inputs) {
    // a dynamic program's ranged dims (-1): the range's largest length
    const dims = v.dims.map((d, i) => d === -1 ? v.ranges?.[i]?.max ?? 1 : d);
    const n = elementCount(dims);
    let data: TypedArray;
    switch (v.dtype) {
      case "float32": {
        const f = new Float32Array(n);
        rng.fillNormal(f, 0, 1);
        data = f;
        break;
      }
      case "float64": {
        const f = new Float64Array(n);
        for (let i = 0; i < n; i++) f[i] = rng.normal();
        data = f;
        break;
      }
      case "int64":
      case "uint64":
        data = v.dtype === "int64" ? new BigInt64Array(n) : new BigUint64Array(n);
        break;
      case "int32":
        data = new Int32Array(n);
        break;
      case "int16":
        data = new Int16Array(n);
        break;
      case "int8":
        data = new Int8Array(n);
        break;
      case "uint32":
        data = new Uint32Array(n);
        break;
      case "uint16":
      case "float16":
      case "bfloat16":
        data = new Uint16Array(n); // float16/bfloat16 zeros
        break;
      default:
        data = new Uint8Array(n); // uint8, bool
    }
    out[v.name] = { dtype: v.dtype, dims, data };
  }
  return out;
}

/** Warm-up evals, then timed ones; latency statistics in milliseconds. */
export async function measureEvals(
  program: Program,
  inputs: Record<string, Tensor>,
  options: PerfOptions = {},
): Promise<PerfReport> {
  const warmup = options.warmup ?? 5;
  const iterations = options.iterations ?? 50;
  const durationMs = options.durationMs ?? 0;
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new KilnError("argument", `Cannot measure evals: warmup ${warmup} is not a non-negative integer`);
  }
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new KilnError(
      "argument",
      `Cannot measure evals: iterations ${iterations} is not a positive integer`,
    );
  }
  const evalOptions = options.outputsOnDevice ? { outputs: [] as string[] } : undefined;
  for (let i = 0; i < warmup; i++) await program.eval(inputs, evalOptions);
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < iterations || performance.now() - start < durationMs) {
    const t0 = performance.now();
    await program.eval(inputs, evalOptions);
    const ms = performance.now() - t0;
    samples.push(ms);
    options.onEval?.(samples.length - 1, ms);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  const info = program.info();
  return {
    target: info.target,
    device: info.device,
    warmup,
    iterations: samples.length,
    outputsOnDevice: options.outputsOnDevice ?? false,
    min: sorted[0],
    median: quantile(sorted, 0.5),
    mean,
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1],
    throughput: 1000 / mean,
    samples,
  };
}
