/**
 * `deno task bench`: kiln's ref target side by side with onnxruntime-web (wasm, SIMD, 1 thread)
 * and onnxruntime-node (1 thread and default threads) on the real exporter graphs in
 * ../shared/models (beside the repository), all on the same seeded weights and inputs, in one process.
 *
 * For each model: seeded weights are written into a temp dir (core/weights/random.ts), every
 * engine is set up and run once untimed (warm-up, its time is reported as "first run"), then
 * the engines are timed in `--runs` rounds of one run each, in rotating order, so that changes
 * in the (shared) machine's load hit all of them alike; medians, minimums and CPU times are
 * printed, with kiln's ratio to each peer. kiln's
 * outputs are checked against onnxruntime-node's (relative L2), so a fast wrong kernel cannot
 * win. The report is printed and appended as a dated section to bench/RESULTS.md.
 *
 * Flags: `--models resnet50,gpt2` (also `bert`), `--runs 5`, `--warmup 1`, `--seed 1`,
 * `--engines kiln,ort-web,ort-node,ort-node-default`, `--max-seconds 120` (per engine: stop
 * timing early once the runs took this long, keeping at least one), `--models-dir DIR`,
 * `--out bench/RESULTS.md`, `--no-write`, `--keep-weights`, `--no-profile` (skip the per-op-type
 * profile of onnxruntime-node), `--kernels` (also time one-node models of the ops that dominate
 * the graphs: Conv, Gemm, MatMul, ...), `--only-kernels`, `--cases REGEX` (kernel cases whose label matches).
 * @module
 */
import { parseArgs } from "node:util";
import { cpuUsage } from "node:process";
import { join } from "node:path";
import { SeededRandom, writeRandomWeights } from "../core/weights/random.ts";
import type { Tensor } from "../core/tensor.ts";
import type * as KilnImportModule from "../core/onnx/import.ts";
import type * as KilnProgramModule from "../core/program.ts";
import { onnx } from "../core/onnx/onnx_pb.js";
import {
  type OpProfile,
  ortNodeOpProfile,
  ortNodeSession,
  ortWebSession,
  type PeerSession,
  peerVersions,
} from "./peers.ts";

/** A benchmark model: file in the models folder and its one input. */
interface ModelSpec {
  file: string;
  input: { name: string; dtype: "float32" | "int64"; dims: number[]; vocab?: number };
}

const MODELS: Record<string, ModelSpec> = {
  resnet50: { file: "resnet50_dynamo.onnx", input: { name: "x", dtype: "float32", dims: [1, 3, 224, 224] } },
  gpt2: { file: "gpt2_dynamo.onnx", input: { name: "ids", dtype: "int64", dims: [1, 128], vocab: 50257 } },
  bert: { file: "bert_dynamo.onnx", input: { name: "ids", dtype: "int64", dims: [1, 128], vocab: 30522 } },
};

const ENGINES = ["ort-node", "ort-node-default", "ort-web", "kiln"] as const;
type EngineId = typeof ENGINES[number];

/** Outputs above this relative L2 distance from onnxruntime-node's count as wrong. */
const REL_L2_TOLERANCE = 1e-3;

/** What one engine did on one model. */
interface EngineResult {
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
}

interface ModelReport {
  model: string;
  weightsMs: number;
  weightBytes: number;
  results: EngineResult[];
  /** onnxruntime-node's time per op type (its optimized graph) */
  ortProfile?: OpProfile;
  skipped?: string;
}

// ---- the kiln API: types from the core, modules loaded at run time so the peers still run
// (and the report says why kiln did not) while the core is incomplete or broken ----

type _KilnProgram = KilnProgramModule.Program;
interface _KilnApi {
  parseOnnx: typeof KilnImportModule.parseOnnx;
  compile: typeof KilnProgramModule.compile;
  /** which builds of the core can run here, best first (empty when the core has no variants) */
  variants(): string[];
  /** selects the build that engines created from now on use ("auto": the best) */
  useVariant(v: string): void;
}

async function _loadKiln(): Promise<_KilnApi> {
  const importer = await import(new URL("../core/onnx/import.ts", import.meta.url).href);
  const program = await import(new URL("../core/program.ts", import.meta.url).href);
  if (typeof importer.parseOnnx !== "function") throw new Error("core/onnx/import.ts exports no parseOnnx");
  if (typeof program.compile !== "function") throw new Error("core/program.ts exports no compile");
  const engine = await import(new URL("../core/engine.ts", import.meta.url).href).catch(() => ({}));
  const variants = typeof engine.availableCoreVariants === "function"
    ? () => engine.availableCoreVariants() as string[]
    : () => [];
  const useVariant = (v: string) => {
    if (typeof engine.useCoreVariant === "function") engine.useCoreVariant(v);
    else if (v !== "auto") throw new Error(`core/engine.ts cannot select the '${v}' core`);
  };
  return { parseOnnx: importer.parseOnnx, compile: program.compile, variants, useVariant };
}

// ---- helpers ----

function _median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function _errText(e: unknown): string {
  const msg = e instanceof Error ? `${e.name === "Error" ? "" : e.name + ": "}${e.message}` : String(e);
  return msg.split("\n").slice(0, 3).join(" / ").slice(0, 300);
}

function _input(spec: ModelSpec, seed: number): Tensor {
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

function _asNumbers(t: Tensor): ArrayLike<number> {
  const d = t.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Array.from(d, Number);
  return d as ArrayLike<number>;
}

/** Max over outputs of ||a - ref|| / ||ref||; Infinity when a value is not finite, or names or sizes differ. */
function _relL2(got: Record<string, Tensor>, ref: Record<string, Tensor>): { value: number; note?: string } {
  let worst = 0;
  for (const [name, r] of Object.entries(ref)) {
    const g = got[name];
    if (!g) return { value: Infinity, note: `output '${name}' missing` };
    const a = _asNumbers(g), b = _asNumbers(r);
    if (a.length !== b.length) {
      return { value: Infinity, note: `output '${name}' has ${a.length} values, not ${b.length}` };
    }
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i], y = b[i];
      if (!Number.isFinite(x)) return { value: Infinity, note: `output '${name}'[${i}] is ${x}` };
      num += (x - y) * (x - y);
      den += y * y;
    }
    const v = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
    if (v > worst) worst = v;
  }
  return { value: worst };
}

function _finiteCheck(outs: Record<string, Tensor>): string | undefined {
  for (const [name, t] of Object.entries(outs)) {
    const a = _asNumbers(t);
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return `output '${name}'[${i}] is ${a[i]}`;
  }
  return undefined;
}

function _fmt(ms: number | undefined, digits = 1): string {
  if (ms === undefined || !Number.isFinite(ms)) return "–";
  return ms >= 1000 ? ms.toFixed(0) : ms.toFixed(digits);
}

// ---- one model ----

/** A set-up engine: a peer session or a compiled kiln program. */
interface _Live {
  res: EngineResult;
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
  /** cumulative timed ms, for --max-seconds */
  spent: number;
  last?: Record<string, Tensor>;
}

async function _benchModel(
  name: string,
  spec: ModelSpec,
  opts: {
    modelsDir: string;
    seed: number;
    runs: number;
    warmup: number;
    maxSeconds: number;
    engines: Set<EngineId>;
    keepWeights: boolean;
    profile: boolean;
    /** core builds to run kiln with ("auto", "relaxed", "simd"), one kiln row each */
    kilnCores: string[];
  },
): Promise<ModelReport> {
  const src = join(opts.modelsDir, spec.file);
  try {
    await Deno.stat(src);
  } catch {
    console.log(`[bench] ${name}: ${src} is absent, skipped`);
    return { model: name, weightsMs: 0, weightBytes: 0, results: [], skipped: `${src} absent` };
  }
  const dir = await Deno.makeTempDir({ prefix: `kiln-bench-${name}-` });
  const live: _Live[] = [];
  try {
    const t0 = performance.now();
    const written = await writeRandomWeights(src, dir, { seed: opts.seed });
    const weightsMs = performance.now() - t0;
    const weightBytes = written.files.reduce((a, f) => a + f.bytes, 0);
    console.log(
      `[bench] ${name}: wrote ${(weightBytes / 1e6).toFixed(1)} MB of seeded weights in ${
        weightsMs.toFixed(0)
      } ms`,
    );
    const modelPath = written.modelPath;
    const feeds = { [spec.input.name]: _input(spec, opts.seed) };
    const results: EngineResult[] = [];

    // 1. set up every engine and run its warm-up runs
    const setUp = async (
      id: EngineId,
      make: (res: EngineResult) => Promise<Omit<_Live, "res" | "spent">>,
    ) => {
      const res: EngineResult = { id, name: id, times: [], cpu: [], notes: [] };
      results.push(res);
      try {
        const l: _Live = { ...(await make(res)), res, spent: 0 };
        live.push(l);
        console.log(
          `[bench] ${name}: ${res.name}: set up in ${res.setupMs?.toFixed(0)} ms (${res.setupNote})`,
        );
        for (let i = 0; i < opts.warmup; i++) {
          const w0 = performance.now();
          l.last = await l.run(feeds);
          if (i === 0) res.firstMs = performance.now() - w0;
        }
      } catch (e) {
        res.error = _errText(e);
        console.log(`[bench] ${name}: ${res.name} failed: ${res.error}`);
      }
    };
    const peer = (make: () => Promise<PeerSession>) => async (res: EngineResult) => {
      const s = await make();
      res.name = s.name;
      res.setupMs = s.createMs;
      res.setupNote = "session create";
      return { run: (f: Record<string, Tensor>) => s.run(f), release: () => s.release() };
    };
    if (opts.engines.has("ort-node")) {
      await setUp("ort-node", peer(() => ortNodeSession(modelPath, { intraOpThreads: 1 })));
    }
    if (opts.engines.has("ort-node-default")) {
      await setUp("ort-node-default", peer(() => ortNodeSession(modelPath, { intraOpThreads: 0 })));
    }
    if (opts.engines.has("ort-web")) await setUp("ort-web", peer(() => ortWebSession(modelPath)));
    if (opts.engines.has("kiln")) {
      for (const v of opts.kilnCores) await setUp("kiln", (res) => _setUpKiln(modelPath, spec, res, v));
    }

    // 2. timed runs in rounds: one run of each engine per round, the order rotating, so that
    // changes in the machine's load hit every engine alike
    for (let round = 0; round < opts.runs; round++) {
      for (let k = 0; k < live.length; k++) {
        const l = live[(round + k) % live.length];
        if (l.res.error || l.spent > opts.maxSeconds * 1000) continue;
        try {
          const c0 = cpuUsage();
          const r0 = performance.now();
          l.last = await l.run(feeds);
          const ms = performance.now() - r0;
          const c = cpuUsage(c0);
          l.res.times.push(ms);
          l.res.cpu.push((c.user + c.system) / 1000);
          l.spent += ms;
        } catch (e) {
          l.res.error = _errText(e);
          console.log(`[bench] ${name}: ${l.res.name} failed: ${l.res.error}`);
        }
      }
    }
    for (const l of live) {
      if (l.res.times.length < opts.runs && !l.res.error) {
        l.res.notes.push(
          `stopped after ${l.res.times.length} of ${opts.runs} runs (--max-seconds ${opts.maxSeconds})`,
        );
      }
    }

    // 3. outputs against onnxruntime-node (1 thread)
    const reference = live.find((l) => l.res.id === "ort-node" && !l.res.error)?.last;
    if (reference) {
      const bad = _finiteCheck(reference);
      if (bad) live.find((l) => l.res.id === "ort-node")!.res.notes.push(`reference not finite: ${bad}`);
    }
    for (const l of live) {
      if (l.res.id === "ort-node" || !l.last) continue;
      if (!reference) {
        if (l.res.id === "kiln") l.res.notes.push("outputs unchecked (ort-node did not run)");
        continue;
      }
      const d = _relL2(l.last, reference);
      l.res.relL2 = d.value;
      if (d.note) l.res.notes.push(d.note);
    }
    for (const r of results) {
      if (r.times.length) console.log(`[bench] ${name}: ${r.name}: median ${_median(r.times).toFixed(1)} ms`);
    }
    for (const l of live.splice(0)) await l.release();

    let ortProfile: OpProfile | undefined;
    if (opts.profile) {
      try {
        ortProfile = await ortNodeOpProfile(modelPath, feeds, 3);
      } catch (e) {
        console.log(`[bench] ${name}: onnxruntime-node profile failed: ${_errText(e)}`);
      }
    }
    return { model: name, weightsMs, weightBytes, results, ortProfile };
  } finally {
    for (const l of live) await l.release();
    if (opts.keepWeights) console.log(`[bench] ${name}: weights kept in ${dir}`);
    else await Deno.remove(dir, { recursive: true });
  }
}

/** Parses and compiles the model with kiln (setup time, program info and pass timings into `res`). */
async function _setUpKiln(
  modelPath: string,
  spec: ModelSpec,
  res: EngineResult,
  variant: string,
): Promise<Omit<_Live, "res" | "spent">> {
  const kiln = await _loadKiln();
  const core = variant === "auto" ? (kiln.variants()[0] ?? "wasm") : variant;
  res.name = `kiln (ref, ${core} core, 1 thread)`;
  const t0 = performance.now();
  const model = await kiln.parseOnnx(modelPath, { inputDims: { [spec.input.name]: spec.input.dims } });
  const t1 = performance.now();
  let program: _KilnProgram;
  kiln.useVariant(variant);
  try {
    program = kiln.compile(model, "ref", { timings: true, validate: false });
  } finally {
    kiln.useVariant("auto");
  }
  const t2 = performance.now();
  res.setupMs = t2 - t0;
  res.setupNote = `parse ${(t1 - t0).toFixed(0)} + compile ${(t2 - t1).toFixed(0)}`;
  try {
    const info = program.info();
    res.notes.push(
      `${info.instructionCount} instructions after ${info.passes.join(", ")}; ` +
        `arena ${(info.arenaBytes / 1e6).toFixed(1)} MB, ${info.literalCount} literals ${
          (info.literalBytes / 1e6).toFixed(1)
        } MB`,
    );
  } catch (e) {
    res.notes.push(`info() failed: ${_errText(e)}`);
  }
  const passes = [...(program.passTimings ?? [])].sort((a, b) => b.ms - a.ms).slice(0, 4);
  if (passes.length) {
    res.notes.push(`slowest passes: ${passes.map((p) => `${p.pass} ${p.ms.toFixed(0)} ms`).join(", ")}`);
  }
  return {
    run: (f) => program.eval(f),
    release: () => {
      program.dispose();
      return Promise.resolve();
    },
  };
}

// ---- kernels: one-node models of the ops that dominate the two graphs ----

/** One input of a one-node model: a graph input (seeded) or an initializer (seeded weights). */
interface _CaseInput {
  dims: number[];
  init?: boolean;
  /** every element this value (default: seeded normals, scaled 1/sqrt(fan_in) for weights) */
  value?: number;
}

/** A one-node model shaped like nodes of a benchmark graph. */
interface KernelCase {
  model: "resnet50" | "gpt2";
  label: string;
  op: string;
  inputs: _CaseInput[];
  attrs?: Record<string, number | number[]>;
  /** input 1 is stored transposed ([N,K]) and goes through a Transpose node first, as in GPT-2's tied lm_head */
  transposeB?: boolean;
  /** floating-point operations of one run (2 per multiply-add), 0 when not a contraction */
  flops: number;
  /** how many such nodes the graph has (approximately, for the same work) */
  count: number;
}

function _conv(
  label: string,
  cin: number,
  cout: number,
  k: number,
  hw: number,
  stride: number,
  count: number,
) {
  const out = Math.floor((hw + 2 * (k >> 1) - k) / stride) + 1;
  const p = k >> 1;
  return {
    model: "resnet50",
    label,
    op: "Conv",
    inputs: [{ dims: [1, cin, hw, hw] }, { dims: [cout, cin, k, k], init: true }],
    attrs: { kernel_shape: [k, k], pads: [p, p, p, p], strides: [stride, stride] },
    flops: 2 * cout * out * out * cin * k * k,
    count,
  } satisfies KernelCase;
}

function _gemm(label: string, m: number, k: number, n: number, count: number): KernelCase {
  return {
    model: "gpt2",
    label,
    op: "Gemm",
    inputs: [{ dims: [m, k] }, { dims: [k, n], init: true }],
    flops: 2 * m * k * n,
    count,
  };
}

const KERNEL_CASES: KernelCase[] = [
  _conv("Conv 7x7/2 3→64 @224", 3, 64, 7, 224, 2, 1),
  _conv("Conv 1x1 256→64 @56", 256, 64, 1, 56, 1, 2),
  _conv("Conv 3x3 64→64 @56", 64, 64, 3, 56, 1, 3),
  _conv("Conv 1x1 64→256 @56", 64, 256, 1, 56, 1, 4),
  _conv("Conv 3x3 128→128 @28", 128, 128, 3, 28, 1, 4),
  _conv("Conv 1x1 512→128 @28", 512, 128, 1, 28, 1, 4),
  _conv("Conv 3x3 256→256 @14", 256, 256, 3, 14, 1, 6),
  _conv("Conv 1x1 1024→256 @14", 1024, 256, 1, 14, 1, 6),
  _conv("Conv 1x1 256→1024 @14", 256, 1024, 1, 14, 1, 7),
  _conv("Conv 3x3 512→512 @7", 512, 512, 3, 7, 1, 3),
  {
    model: "resnet50",
    label: "MaxPool 3x3/2 64×112×112",
    op: "MaxPool",
    inputs: [{ dims: [1, 64, 112, 112] }],
    attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] },
    flops: 0,
    count: 1,
  },
  {
    model: "resnet50",
    label: "Relu 256×56×56 (count: the graph's 49 Relus in elements)",
    op: "Relu",
    inputs: [{ dims: [1, 256, 56, 56] }],
    flops: 0,
    count: 12,
  },
  {
    model: "resnet50",
    label: "Add 256×56×56 (count: the graph's 16 residual Adds in elements)",
    op: "Add",
    inputs: [{ dims: [1, 256, 56, 56] }, { dims: [1, 256, 56, 56] }],
    flops: 0,
    count: 7,
  },
  _gemm("Gemm 128×768 · 768×2304 (qkv)", 128, 768, 2304, 12),
  _gemm("Gemm 128×768 · 768×768 (attn proj)", 128, 768, 768, 12),
  _gemm("Gemm 128×768 · 768×3072 (mlp fc)", 128, 768, 3072, 12),
  _gemm("Gemm 128×3072 · 3072×768 (mlp proj)", 128, 3072, 768, 12),
  {
    model: "gpt2",
    label: "MatMul 12×(128×64 · 64×128) (attention)",
    op: "MatMul",
    inputs: [{ dims: [1, 12, 128, 64] }, { dims: [1, 12, 64, 128] }],
    flops: 2 * 12 * 128 * 64 * 128,
    count: 24,
  },
  {
    model: "gpt2",
    label: "MatMul 128×768 · Transpose(50257×768) (tied lm_head)",
    op: "MatMul",
    inputs: [{ dims: [1, 128, 768] }, { dims: [50257, 768], init: true }],
    transposeB: true,
    flops: 2 * 128 * 768 * 50257,
    count: 1,
  },
  {
    model: "gpt2",
    label: "MatMul 128×768 · 768×50257 (lm_head pre-transposed; not in the graph)",
    op: "MatMul",
    inputs: [{ dims: [1, 128, 768] }, { dims: [768, 50257], init: true }],
    flops: 2 * 128 * 768 * 50257,
    count: 0,
  },
  {
    model: "gpt2",
    label: "Transpose 1×128×12×64 → 1×12×128×64 (heads)",
    op: "Transpose",
    inputs: [{ dims: [1, 128, 12, 64] }],
    attrs: { perm: [0, 2, 1, 3] },
    flops: 0,
    count: 48,
  },
  {
    model: "gpt2",
    label: "Mul 1×128×3072 · scalar (GELU chain: 4 Mul + 2 Add per layer)",
    op: "Mul",
    inputs: [{ dims: [1, 128, 3072] }, { dims: [], init: true, value: 0.5 }],
    flops: 0,
    count: 72,
  },
  {
    model: "gpt2",
    label: "Pow 1×128×3072 ^ 3 (GELU)",
    op: "Pow",
    inputs: [{ dims: [1, 128, 3072] }, { dims: [], init: true, value: 3 }],
    flops: 0,
    count: 12,
  },
  {
    model: "gpt2",
    label: "Tanh 1×128×3072 (GELU)",
    op: "Tanh",
    inputs: [{ dims: [1, 128, 3072] }],
    flops: 0,
    count: 12,
  },
  {
    model: "gpt2",
    label: "LayerNormalization 128×768",
    op: "LayerNormalization",
    inputs: [{ dims: [1, 128, 768] }, { dims: [768], init: true }, { dims: [768], init: true }],
    attrs: { axis: -1 },
    flops: 0,
    count: 25,
  },
  {
    model: "gpt2",
    label: "Softmax 12×128×128",
    op: "Softmax",
    inputs: [{ dims: [1, 12, 128, 128] }],
    attrs: { axis: -1 },
    flops: 0,
    count: 12,
  },
];

/** Encodes a one-node float32 ONNX model (opset 18) of a kernel case, with seeded data. */
function _caseModel(c: KernelCase, seed: number): { bytes: Uint8Array; feeds: Record<string, Tensor> } {
  const r = new SeededRandom(seed);
  const feeds: Record<string, Tensor> = {};
  const inputs: onnx.IValueInfoProto[] = [];
  const initializer: onnx.ITensorProto[] = [];
  const names: string[] = [];
  c.inputs.forEach((inp, i) => {
    const name = `in${i}`;
    names.push(name);
    const n = inp.dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const std = inp.init && inp.dims.length >= 2 ? 1 / Math.sqrt(n / inp.dims[0]) : 1;
    if (inp.value !== undefined) data.fill(inp.value);
    else for (let j = 0; j < n; j++) data[j] = r.normal() * std;
    if (inp.init) {
      initializer.push({ name, data_type: 1, dims: inp.dims, raw_data: new Uint8Array(data.buffer) });
    } else {
      feeds[name] = { dtype: "float32", dims: inp.dims, data };
      const dim = inp.dims.map((d) => ({ dim_value: d }));
      inputs.push({ name, type: { tensor_type: { elem_type: 1, shape: { dim } } } });
    }
  });
  const attribute: onnx.IAttributeProto[] = Object.entries(c.attrs ?? {}).map(([name, v]) =>
    Array.isArray(v) ? { name, type: 7, ints: v } : { name, type: 2, i: v }
  );
  const node: onnx.INodeProto[] = [];
  if (c.transposeB) {
    node.push({
      op_type: "Transpose",
      name: "transposeB",
      input: [names[1]],
      output: ["in1_T"],
      attribute: [],
    });
    names[1] = "in1_T";
    node[0].attribute = [{ name: "perm", type: 7, ints: [1, 0] }];
  }
  node.push({ op_type: c.op, name: "node0", input: names, output: ["out"], attribute });
  const model: onnx.IModelProto = {
    ir_version: 8,
    producer_name: "kiln-bench",
    opset_import: [{ domain: "", version: 18 }],
    graph: {
      name: c.op,
      node,
      input: inputs,
      initializer,
      output: [{ name: "out", type: { tensor_type: { elem_type: 1 } } }],
    },
  };
  return { bytes: onnx.ModelProto.encode(model).finish(), feeds };
}

interface KernelResult {
  c: KernelCase;
  kilnMs?: number;
  webMs?: number;
  nodeMs?: number;
  relL2?: number;
  error?: string;
}

/** Median process CPU time (user + system) of `runs` runs after one warm-up, ms. */
async function _medianCpuOf(run: () => Promise<unknown>, runs: number): Promise<number> {
  await run();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = cpuUsage();
    await run();
    const c = cpuUsage(c0);
    ts.push((c.user + c.system) / 1000);
  }
  return _median(ts);
}

async function _benchKernels(cases: KernelCase[], runs: number, seed: number, engines: Set<EngineId>) {
  const out: KernelResult[] = [];
  let kiln: _KilnApi | undefined;
  let kilnError = "";
  try {
    if (engines.has("kiln")) kiln = await _loadKiln();
  } catch (e) {
    kilnError = _errText(e);
  }
  for (const c of cases) {
    const res: KernelResult = { c };
    out.push(res);
    const { bytes, feeds } = _caseModel(c, seed);
    let ref: Record<string, Tensor> | undefined;
    const errs: string[] = [];
    for (
      const [id, make] of [["ort-node", () => ortNodeSession(bytes)], [
        "ort-web",
        () => ortWebSession(bytes),
      ]] as const
    ) {
      if (!engines.has(id)) continue;
      let s: PeerSession | undefined;
      try {
        s = await make();
        const ms = await _medianCpuOf(async () => {
          const o = await s!.run(feeds);
          if (id === "ort-node") ref = o;
        }, runs);
        if (id === "ort-node") res.nodeMs = ms;
        else res.webMs = ms;
      } catch (e) {
        errs.push(`${id}: ${_errText(e)}`);
      } finally {
        await s?.release();
      }
    }
    if (kiln) {
      let program: _KilnProgram | undefined;
      try {
        program = kiln.compile(await kiln.parseOnnx(bytes, {}), "ref", { validate: false });
        let got: Record<string, Tensor> = {};
        const p = program;
        res.kilnMs = await _medianCpuOf(async () => {
          got = await p.eval(feeds);
        }, runs);
        if (ref) res.relL2 = _relL2(got, ref).value;
      } catch (e) {
        errs.push(`kiln: ${_errText(e)}`);
      } finally {
        program?.dispose();
      }
    } else if (engines.has("kiln")) {
      errs.push(`kiln: ${kilnError}`);
    }
    if (errs.length) res.error = errs.join("; ");
    console.log(
      `[bench] kernel ${c.label}: kiln ${_fmt(res.kilnMs, 2)} ms, ort-web ${_fmt(res.webMs, 2)} ms, ` +
        `ort-node ${_fmt(res.nodeMs, 2)} ms${res.error ? ` (${res.error})` : ""}`,
    );
  }
  return out;
}

function _kernelTable(results: KernelResult[], runs: number, kilnCore: string): string[] {
  const gf = (flops: number, ms?: number) => (ms && flops ? (flops / ms / 1e6).toFixed(1) : "–");
  const lines = [
    `### kernels (one-node models, median CPU time of ${runs} runs after a warm-up)`,
    "",
    `kiln runs its ${kilnCore} core here.`,
    "Times are process CPU time (user + system) per run, all engines single-threaded, so other load on",
    'the machine disturbs them less than wall time. GFLOP/s count 2 per multiply-add. "× count" is kiln\'s time for the case times the number of',
    "such nodes in the graph: a rough share of kiln's whole-model time.",
    "",
    "| case | nodes in graph | kiln ms | ort-web ms | ort-node ms | kiln GFLOP/s | ort-web GFLOP/s | kiln ÷ ort-web | kiln ms × count | rel. L2 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  const sums = new Map<string, { kiln: number; web: number }>();
  for (const r of results) {
    const c = r.c;
    const ratio = r.kilnMs !== undefined && r.webMs ? `${(r.kilnMs / r.webMs).toFixed(2)}×` : "–";
    const l2 = r.relL2 === undefined
      ? "–"
      : Number.isFinite(r.relL2)
      ? `${r.relL2.toExponential(1)} ${r.relL2 <= REL_L2_TOLERANCE ? "ok" : "**WRONG**"}`
      : "**WRONG**";
    const share = r.kilnMs !== undefined ? _fmt(r.kilnMs * c.count) : "–";
    lines.push(
      `| ${c.label} | ${c.count} | ${_fmt(r.kilnMs, 2)} | ${_fmt(r.webMs, 2)} | ${_fmt(r.nodeMs, 2)} | ` +
        `${gf(c.flops, r.kilnMs)} | ${gf(c.flops, r.webMs)} | ${ratio} | ${share} | ${l2} |`,
    );
    const s = sums.get(c.model) ?? { kiln: 0, web: 0 };
    s.kiln += (r.kilnMs ?? NaN) * c.count;
    s.web += (r.webMs ?? NaN) * c.count;
    sums.set(c.model, s);
  }
  lines.push("");
  for (const [m, s] of sums) {
    lines.push(`- ${m} cases × count: kiln ${_fmt(s.kiln)} ms, ort-web ${_fmt(s.web)} ms.`);
  }
  for (const r of results) if (r.error) lines.push(`- ${r.c.label}: ${r.error}`);
  lines.push("");
  return lines;
}

// ---- report ----

async function _machine(): Promise<string[]> {
  const read = async (p: string) => {
    try {
      return await Deno.readTextFile(p);
    } catch {
      return "";
    }
  };
  const cpu = (await read("/proc/cpuinfo")).match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU";
  const memKb = Number((await read("/proc/meminfo")).match(/^MemTotal:\s*(\d+)/m)?.[1] ?? 0);
  const v = peerVersions();
  return [
    `- CPU: ${cpu}, ${navigator.hardwareConcurrency} cores; memory ${(memKb / 1048576).toFixed(1)} GiB; ` +
    `${Deno.build.os} ${Deno.osRelease()}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); onnxruntime-node ${v.node}, onnxruntime-web ${v.web}`,
  ];
}

async function _loadavg(): Promise<string> {
  try {
    return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

function _table(rep: ModelReport): string[] {
  const kiln = rep.results.find((r) => r.id === "kiln");
  const kMed = kiln && kiln.times.length ? _median(kiln.times) : undefined;
  const kCpu = kiln && kiln.cpu.length ? _median(kiln.cpu) : undefined;
  const kilnWrong = kiln?.relL2 !== undefined && !(kiln.relL2 <= REL_L2_TOLERANCE);
  const lines = [
    "| engine | setup ms | first run ms | median ms | min ms | CPU ms | runs | kiln ÷ engine | rel. L2 vs ort-node |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const r of rep.results) {
    if (r.error) {
      lines.push(`| ${r.name} | failed: ${r.error.replaceAll("|", "\\|")} | | | | | | | |`);
      continue;
    }
    const med = r.times.length ? _median(r.times) : undefined;
    const min = r.times.length ? Math.min(...r.times) : undefined;
    const cpu = r.cpu.length ? _median(r.cpu) : undefined;
    let ratio = "";
    if (r.id !== "kiln" && kMed !== undefined && med) {
      ratio = `${(kMed / med).toFixed(2)}×`;
      if (r.id !== "ort-node-default" && kCpu !== undefined && cpu) {
        ratio += ` (CPU ${(kCpu / cpu).toFixed(2)}×)`;
      }
      if (kilnWrong) ratio += " (kiln output wrong)";
    }
    let l2 = r.id === "ort-node" ? "reference" : "–";
    if (r.relL2 !== undefined) {
      l2 = Number.isFinite(r.relL2)
        ? `${r.relL2.toExponential(1)} ${r.relL2 <= REL_L2_TOLERANCE ? "ok" : "**WRONG**"}`
        : "**WRONG**";
    }
    const setup = r.setupMs === undefined ? "–" : `${_fmt(r.setupMs, 0)} (${r.setupNote})`;
    lines.push(
      `| ${r.name} | ${setup} | ${_fmt(r.firstMs)} | ${_fmt(med)} | ${_fmt(min)} | ${
        _fmt(cpu)
      } | ${r.times.length} | ${ratio} | ${l2} |`,
    );
  }
  return lines;
}

/** One line: the op types that take most of the time, with their share and ms per run. */
function _opMix(who: string, p: OpProfile): string {
  const rows = [...p.byOp.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((a, [, v]) => a + v.ms, 0);
  const top = rows.slice(0, 6).map(([op, v]) =>
    `${op} ${(100 * v.ms / total).toFixed(0)}% (${(v.ms / p.runs).toFixed(1)} ms, ${v.count / p.runs} nodes)`
  );
  return `Time per op type, ${who}, per run: ${top.join(", ")}; total ${(total / p.runs).toFixed(1)} ms.`;
}

function _report(reports: ModelReport[], header: string[], opts: { runs: number; seed: number }): string {
  const out = [...header, ""];
  for (const rep of reports) {
    out.push(`### ${rep.model}`, "");
    if (rep.skipped) {
      out.push(`Skipped: ${rep.skipped}.`, "");
      continue;
    }
    const spec = MODELS[rep.model];
    out.push(
      `Input ${spec.input.name} ${spec.input.dtype}[${spec.input.dims.join(",")}], seeded weights ` +
        `(${(rep.weightBytes / 1e6).toFixed(1)} MB, seed ${opts.seed}, written in ${
          rep.weightsMs.toFixed(0)
        } ms); ` +
        `median and min of ${opts.runs} timed runs after the warm-up run, taken in rounds (one run of each ` +
        `engine per round, in rotating order, all engines set up at once). CPU ms is the median process ` +
        `CPU time per run (less disturbed by other load than wall time); kiln ÷ engine compares wall ` +
        `medians, CPU medians in parentheses.`,
      "",
      ..._table(rep),
      "",
    );
    const web = rep.results.find((r) => r.id === "ort-web");
    for (const kiln of rep.results.filter((r) => r.id === "kiln")) {
      if (!web || !kiln.times.length || !web.times.length) continue;
      const q = _median(kiln.times) / _median(web.times);
      out.push(
        `${kiln.name} ÷ ort-web = **${q.toFixed(2)}×** (goal ≤ 2×: ${q <= 2 ? "met" : "not met"}` +
          `${
            kiln.relL2 !== undefined && !(kiln.relL2 <= REL_L2_TOLERANCE)
              ? ", but kiln's output is wrong"
              : ""
          }).`,
        "",
      );
    }
    for (const r of rep.results) for (const n of r.notes) out.push(`- ${r.name}: ${n}`);
    if (rep.results.some((r) => r.notes.length)) out.push("");
    if (rep.ortProfile) out.push(_opMix("onnxruntime-node (1 thread; its fused graph)", rep.ortProfile), "");
  }
  return out.join("\n");
}

// ---- main ----

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      models: { type: "string", default: "resnet50,gpt2" },
      runs: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      seed: { type: "string", default: "1" },
      engines: { type: "string", default: ENGINES.join(",") },
      "max-seconds": { type: "string", default: "120" },
      "models-dir": { type: "string", default: new URL("../../shared/models", import.meta.url).pathname },
      out: { type: "string", default: new URL("./RESULTS.md", import.meta.url).pathname },
      "no-write": { type: "boolean", default: false },
      "keep-weights": { type: "boolean", default: false },
      "no-profile": { type: "boolean", default: false },
      kernels: { type: "boolean", default: false },
      "only-kernels": { type: "boolean", default: false },
      cases: { type: "string", default: "" },
      "kiln-core": { type: "string", default: "auto" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "deno task bench [--models resnet50,gpt2,bert] [--runs 5] [--warmup 1] [--seed 1]\n" +
        "  [--engines kiln,ort-web,ort-node,ort-node-default] [--max-seconds 120]\n" +
        "  [--models-dir ../shared/models] [--out bench/RESULTS.md] [--no-write] [--keep-weights] [--no-profile] [--kernels] [--only-kernels] [--cases REGEX]\n" +
        "  [--kiln-core auto|relaxed|simd|relaxed,simd]",
    );
    return;
  }
  const int = (flag: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new Error(`Flag --${flag} is '${v}', not an integer >= ${min}`);
    }
    return n;
  };
  const runs = int("runs", values.runs, 1);
  const warmup = int("warmup", values.warmup, 0);
  const seed = int("seed", values.seed, 0);
  const maxSeconds = int("max-seconds", values["max-seconds"], 1);
  const models = values.models.split(",").map((s) => s.trim()).filter(Boolean);
  const kernels = values.kernels || values["only-kernels"];
  const kilnCores = values["kiln-core"].split(",").map((s) => s.trim()).filter(Boolean);
  for (const c of kilnCores) {
    if (!["auto", "relaxed", "simd"].includes(c)) {
      throw new Error(`Unknown core '${c}' in --kiln-core; known: auto, relaxed, simd`);
    }
  }
  for (const m of models) {
    if (!MODELS[m]) {
      throw new Error(`Unknown model '${m}' in --models; known: ${Object.keys(MODELS).join(", ")}`);
    }
  }
  const engines = new Set<EngineId>();
  for (const e of values.engines.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (!(ENGINES as readonly string[]).includes(e)) {
      throw new Error(`Unknown engine '${e}' in --engines; known: ${ENGINES.join(", ")}`);
    }
    engines.add(e as EngineId);
  }

  const started = new Date();
  const loadStart = await _loadavg();
  const reports: ModelReport[] = [];
  for (const m of values["only-kernels"] ? [] : models) {
    reports.push(
      await _benchModel(m, MODELS[m], {
        modelsDir: values["models-dir"],
        seed,
        runs,
        warmup,
        maxSeconds,
        engines,
        keepWeights: values["keep-weights"],
        profile: !values["no-profile"],
        kilnCores,
      }),
    );
  }
  let kernelLines: string[] = [];
  if (kernels) {
    const re = new RegExp(values.cases, "i");
    const cases = KERNEL_CASES.filter((c) => models.includes(c.model) && re.test(c.label));
    let core = "default";
    try {
      core = (await _loadKiln()).variants()[0] ?? core;
    } catch {
      // the kernel table says why kiln did not run
    }
    kernelLines = _kernelTable(
      await _benchKernels(cases, Math.max(runs, 5), seed, engines),
      Math.max(runs, 5),
      core,
    );
  }
  const loadEnd = await _loadavg();
  const stamp = started.toISOString().replace("T", " ").slice(0, 16) + " UTC";
  const header = [
    `## ${stamp}`,
    "",
    ...(await _machine()),
    `- load average (1/5/15 min) at start ${loadStart}, at end ${loadEnd} (the machine is shared)`,
    `- \`deno task bench --models ${models.join(",")} --runs ${runs} --warmup ${warmup} --seed ${seed}` +
    `${values["only-kernels"] ? " --only-kernels" : kernels ? " --kernels" : ""}` +
    `${values["kiln-core"] !== "auto" ? ` --kiln-core ${values["kiln-core"]}` : ""}\``,
  ];
  const text = _report(reports, header, { runs, seed }) +
    (kernelLines.length ? "\n" + kernelLines.join("\n") : "");
  console.log("\n" + text);
  if (!values["no-write"]) {
    const path = values.out;
    let old = "";
    try {
      old = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (!old) {
      old = "# kiln benchmark results\n\nDated sections, newest last, appended by `deno task bench` " +
        "(see bench/README.md).\n";
    }
    await Deno.writeTextFile(path, old.replace(/\n*$/, "\n\n") + text + "\n");
    // keep the file as `deno fmt` wants it (the gate runs `deno fmt --check`)
    try {
      const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path], stdout: "null" })
        .output();
      if (!fmt.success) {
        console.log(`[bench] deno fmt ${path} failed: ${new TextDecoder().decode(fmt.stderr).trim()}`);
      }
    } catch (e) {
      console.log(`[bench] deno fmt ${path} failed: ${_errText(e)}`);
    }
    console.log(`[bench] appended to ${path}`);
  }
}

if (import.meta.main) await main();
