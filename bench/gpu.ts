/**
 * `deno task bench:gpu`: kiln's gpu target and PyTorch side by side on one GPU, in one run.
 *
 * 1. Checks that kiln's HIP library finds a GPU (`gpuLibraryInfo`); with none it says why and
 *    exits 0, writing nothing.
 * 2. Runs bench/gpu_torch.py (its progress printed as it goes), which builds GPT-2, BERT-base and
 *    ResNet-50 from their default configs with seeded random weights, exports each to ONNX with
 *    external data, writes a second weight set (`v2/`), the inputs and PyTorch's float32 outputs
 *    as .npy, times PyTorch (eager, eager with host input and output, CUDA graph, torch.compile,
 *    two weight-swap baselines) and measures the limits (pinned and pageable host-to-device
 *    copies, page-cache reads with 1, 8 and 16 threads), all into `torch.json`.
 *    `--torch-json FILE` reuses an earlier run's folder instead.
 * 3. For each model: compiles the exported graph for the gpu target with deferred weights, binds
 *    the exported weights, checks kiln's output against PyTorch's (relative L2; loud above 1e-4),
 *    times eval (replaying a captured graph, kiln's default, and again launching kernel by kernel;
 *    in TF32, and for GPT-2 and BERT with float16 / bfloat16 weights plus a few swaps there, each
 *    with its relative L2 against PyTorch's float32),
 *    times swaps alternating the two weight sets (with the bind's phases), and times
 *    onnxruntime-node session re-creation on the same files (what a runtime without weight swap
 *    does instead).
 * 4. Prints one table (each row: kiln's median against one PyTorch mode, peer or limit) and
 *    appends it, dated, with the machine, versions and numerics of both sides, to bench/RESULTS.md.
 *
 * A model that fails on either side is reported with its error; the run goes on.
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, isAbsolute, join, resolve } from "node:path";
import {
  Adapter,
  type BindPhases,
  type BindReport,
  compile,
  type GpuLibraryInfo,
  gpuLibraryInfo,
  type GpuOptions,
  type GraphReport,
  KILN_VERSION,
  parseOnnx,
  type PrecisionReport,
  type Program,
  readNpy,
  type Tensor,
  WeightSet,
} from "../mod.ts";
import { SeededRandom } from "../core/weights/random.ts";
import { ortNodeSession, peerVersions } from "./peers.ts";
import { errText, fmtMs, median, relL2, timed } from "./util.ts";

const REL_L2_BAR = 1e-4;
/** The bar for TF32 modes (inputs of the GEMMs rounded to 10-bit mantissas): about 1e-3 is expected. */
const REL_L2_BAR_TF32 = 1e-2;

/**
 * The bars for the 16-bit weight modes, over a whole model against PyTorch's float32 (float16
 * keeps 11 mantissa bits, bfloat16 8; tests/gpu_precision_test.ts bounds one layer at 2e-3 and 1e-2).
 */
const REL_L2_BAR_16 = { fp16: 1e-2, bf16: 5e-2 };

function _bar(options: GpuOptions): number {
  if (options.precision === "fp16" || options.precision === "bf16") return REL_L2_BAR_16[options.precision];
  return options.precision === "tf32" ? REL_L2_BAR_TF32 : REL_L2_BAR;
}

/** A mode whose arithmetic is not float32: its accuracy against float32 is part of its row. */
function _reduced(options: GpuOptions): boolean {
  return options.precision !== undefined && options.precision !== "float32";
}
const PY_SCRIPT = new URL("./gpu_torch.py", import.meta.url).pathname;

// ---------------------------------------------------------------------------------------------
// What bench/gpu_torch.py writes (torch.json); every field may be missing after a failure.

interface _Stat {
  median: number;
  min: number;
  runs: number;
}

interface _TorchModel {
  ok: boolean;
  error?: string;
  input?: { name: string; dtype: string; dims: number[]; npy: string };
  output?: { name: string; dims?: number[]; npy: string; npy_v2?: string };
  onnx?: string;
  weights_v2_dir?: string;
  eval_ms?: Record<string, _Stat>;
  compile_s?: Record<string, number>;
  swap_ms?: Record<string, _Stat>;
  swap_bytes?: number;
  errors?: Record<string, string>;
  tf32_row_settings?: Record<string, unknown>;
  export?: { export_s?: number; weight_bytes?: number; v2_unmatched?: string[] };
}

interface _TorchJson {
  date?: string;
  versions?: Record<string, string | number | null>;
  device?: { name?: string; capability?: string; driver?: string | null };
  cpu?: string;
  settings?: {
    runs?: number;
    warmup?: number;
    compile?: boolean;
    tf32?: Record<string, unknown>;
    tf32_statement?: string;
  };
  models?: Record<string, _TorchModel>;
  limits?: {
    error?: string;
    pinned_h2d_gbps?: number;
    pageable_h2d_gbps?: number;
    h2d_bytes?: number;
    page_cache?: { file: string; bytes: number; chunk_bytes: number; gbps: Record<string, number> };
  };
  seconds?: number;
}

/** PyTorch's eval modes, in table order, with their labels. */
const TORCH_EVALS: [string, string][] = [
  ["eager", "PyTorch eager (input and output on the device)"],
  ["eager_host_io", "PyTorch eager, input from and output to host memory (as kiln's eval)"],
  ["cuda_graph", "PyTorch CUDA graph replay"],
  ["compile_default", "torch.compile (default mode)"],
  ["compile_reduce_overhead", "torch.compile (reduce-overhead: CUDA graphs)"],
  ["eager_tf32_conv", "PyTorch eager with TF32 convolutions (PyTorch's default; not float32-exact)"],
  ["cuda_graph_tf32_conv", "PyTorch CUDA graph replay with TF32 convolutions (PyTorch's default)"],
];

/** PyTorch's weight-swap baselines. */
const TORCH_SWAPS: [string, string][] = [
  ["safetensors_load_state_dict", "PyTorch safetensors load_file(device=cuda) + load_state_dict"],
  ["pinned_copy", "PyTorch param.copy_ from pinned host tensors (no file read)"],
];

// ---------------------------------------------------------------------------------------------
// kiln: how it runs and how it swaps. Each way the API offers is one entry, timed and reported
// alike: an eval mode is a set of GpuOptions (the first is the default, set against every PyTorch
// mode; the others against the PyTorch modes they resemble), a swap mode is a way to build the
// weight set a swap binds. kiln's float32 is strict (docs/gpu.md, Numerics); TF32
// (GpuOptions.precision) is an eval mode here, its accuracy against PyTorch's float32 reported. A
// weight set held resident in host memory, should the API gain one, is a swap mode.

interface _EvalMode {
  /** its name in the table's rows ("" for the default) */
  short: string;
  /** the gpu target's options beside the library */
  options: GpuOptions;
  /** the PyTorch eval modes (TORCH_EVALS keys) it is set against; all when absent */
  peers?: string[];
  /** the outputs `eval` copies back (`EvalOptions.outputs`; all when absent) */
  outputs?: string[];
  /** timed only for models with Convs (it changes nothing else) */
  convsOnly?: boolean;
  /** timed only for models without Convs (the GEMM models: GPT-2, BERT) */
  gemmsOnly?: boolean;
}

const KILN_EVALS: _EvalMode[] = [
  // evals replay a captured graph (GpuOptions.graphs, default true) and copy the output to the host
  { short: "", options: {}, peers: ["eager_host_io"] },
  // the output left on the device, as PyTorch's own modes leave theirs
  {
    short: "output left on the device",
    options: {},
    outputs: [],
    peers: ["eager", "cuda_graph", "compile_default", "compile_reduce_overhead", "eager_tf32_conv"],
  },
  // the TF32 opt-in, against PyTorch's TF32 row (its accuracy against PyTorch's float32 is reported)
  {
    short: "TF32, output left on the device",
    options: { precision: "tf32" },
    outputs: [],
    peers: ["eager_tf32_conv", "cuda_graph_tf32_conv"],
  },
  // 16-bit weights (GpuOptions.precision "fp16" / "bf16": MatMul/Gemm on float16 / bfloat16 copies
  // of their weights made at bind, A rounded per GEMM, float32 sums; attention's products float32),
  // for the GEMM models; PyTorch's side has no 16-bit mode here, so against its float32 rows
  {
    short: "float16 weights, output left on the device",
    options: { precision: "fp16" },
    outputs: [],
    peers: ["cuda_graph", "compile_reduce_overhead"],
    gemmsOnly: true,
  },
  {
    short: "bfloat16 weights, output left on the device",
    options: { precision: "bf16" },
    outputs: [],
    peers: ["cuda_graph", "compile_reduce_overhead"],
    gemmsOnly: true,
  },
  // convolutions on kiln's own kernels (im2col and the GEMM) instead of cuDNN
  {
    short: "kiln's own Conv kernels, output left on the device",
    options: { vendorDnn: false },
    outputs: [],
    peers: ["cuda_graph"],
    convsOnly: true,
  },
  { short: "kernel by kernel", options: { graphs: false }, peers: ["eager", "eager_host_io"] },
  { short: "no fusion", options: { fusion: false }, outputs: [], peers: ["eager", "cuda_graph"] },
];

interface _SwapMode {
  /** what it is, for the log and the details */
  label: string;
  /** its name in the table's rows */
  short: string;
  /** the weight set to bind from a weight folder (the ONNX external-data files) */
  set(program: Program, dir: string): Promise<WeightSet>;
  /** environment the library reads while this mode's swaps run */
  env?: Record<string, string>;
  /** compared with this mode (its `short`) instead of PyTorch */
  versus?: string;
}

const KILN_SWAPS: _SwapMode[] = [
  {
    label: "kiln swap: WeightSet.fromOnnxDir + bindWeights (files read, hashed and uploaded by the library)",
    short: "from files",
    set: (program, dir) => WeightSet.fromOnnxDir(program, dir),
  },
  {
    label: "kiln swap from registered file mappings (KILN_LOAD_MODE=mmap: mmap + hipHostRegister per swap, " +
      "copies straight from the page cache)",
    short: "from files through registered mappings",
    set: (program, dir) => WeightSet.fromOnnxDir(program, dir),
    env: { KILN_LOAD_MODE: "mmap" },
    versus: "from files",
  },
];

interface _EvalResult {
  mode: _EvalMode;
  /** wall ms of each timed eval */
  ms: number[];
  /** relative L2 against PyTorch's output (weights v1) */
  relL2?: number;
  /** how its evals launched (ProgramInfo.graphs) */
  graphs?: GraphReport;
  /** what its precision covers (ProgramInfo.precision; the 16-bit modes) */
  precision?: PrecisionReport;
  /** the 16-bit modes: swaps v2/v1 alternating (bindWeights ms) and their prepare step (the conversions) */
  swapMs?: number[];
  swapPrepareMs?: number[];
}

interface _SwapResult {
  mode: _SwapMode;
  /** the whole swap: building the weight set + bindWeights, ms */
  total: number[];
  /** bindWeights alone (BindReport.ms) */
  bind: number[];
  phases: BindPhases[];
  last?: BindReport;
}

interface _KilnResult {
  name: string;
  /** why the model could not run at all */
  error?: string;
  /** problems of single steps (the rest ran) */
  notes: string[];
  device?: string;
  /** the GEMM and convolution libraries the default mode ran on */
  libraries?: string;
  compileMs?: number;
  hostNodes: string[];
  weightCount?: number;
  weightBytes?: number;
  firstBindMs?: number;
  /** relative L2 against PyTorch's output with weights v1 (the default eval mode) */
  relL2?: number;
  /** the same with weights v2, after a swap */
  relL2v2?: number;
  evals: _EvalResult[];
  swaps: _SwapResult[];
  ortMs: number[];
  /** useWeights between two resident weight sets (v2 kept resident, the bound v1), ms each */
  switchMs: number[];
  /** bindWeights from host-resident sets in pinned memory (v1 and v2 alternating), ms each */
  hostSwapMs: number[];
  /** applyAdapter between two LoRA adapters (alternating), ms each */
  adapterMs: number[];
  /** those adapters: matrices adapted, rank, bytes of factors each */
  adapter?: { weights: number; rank: number; bytes: number };
  /** a swap from files not in the page cache, against one sequential read of the same files, cold */
  cold?: { bytes: number; diskMs: number[]; swapMs: number[]; phases?: BindPhases; why?: string };
}

function _emptyResult(name: string): _KilnResult {
  return {
    name,
    notes: [],
    hostNodes: [],
    evals: [],
    swaps: [],
    ortMs: [],
    switchMs: [],
    hostSwapMs: [],
    adapterMs: [],
  };
}

// ---------------------------------------------------------------------------------------------

function _int(flag: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`Flag --${flag} is '${v}', not an integer >= ${min}`);
  return n;
}

async function _exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Reads a file once, in 8 MiB pieces, so that it is in the page cache. */
async function _warm(path: string): Promise<void> {
  using f = await Deno.open(path);
  const buf = new Uint8Array(8 << 20);
  while ((await f.read(buf)) !== null) { /* read to the end */ }
}

function _log(s: string): void {
  console.log(`[bench:gpu] ${s}`);
}

/** The single output to compare (the one PyTorch named, else the program's first). */
function _output(program: Program, outs: Record<string, Tensor>, torchName?: string): Tensor {
  const name = torchName && Object.hasOwn(outs, torchName) ? torchName : program.outputs[0].name;
  return outs[name];
}

async function _compare(
  name: string,
  what: string,
  got: Tensor,
  npyPath: string,
  notes: string[],
  /** false when PyTorch's weights are known to differ (the warning is then a note) */
  same = true,
  limit = REL_L2_BAR,
): Promise<number | undefined> {
  if (!(await _exists(npyPath))) {
    notes.push(`${what}: no PyTorch output to compare with (${npyPath} missing)`);
    return undefined;
  }
  const ref = readNpy(await Deno.readFile(npyPath), npyPath);
  const r = relL2({ y: got }, { y: ref });
  _log(
    `${name}: ${what}: relative L2 vs PyTorch float32 ${r.value.toExponential(2)}${
      r.note ? ` (${r.note})` : ""
    }`,
  );
  if (!(r.value <= limit) && !same) {
    _log(`${name}: ${what}: not comparable: PyTorch's v2 state dict lacks tensors the exporter computed`);
  } else if (!(r.value <= limit)) {
    const bar = "!".repeat(100);
    console.log(
      `\n${bar}\n!!! ${name}: ${what}: kiln's output is FAR from PyTorch's: relative L2 ${r.value} > ${limit}` +
        `${r.note ? ` (${r.note})` : ""}\n!!! its timings below are of a wrong result\n${bar}\n`,
    );
  }
  return r.value;
}

/** kiln on one model that bench/gpu_torch.py exported: every eval mode, every swap mode, then onnxruntime. */
async function _kilnModel(
  name: string,
  m: _TorchModel,
  base: string,
  opts: { library: string; runs: number; warmup: number; ortRuns: number },
): Promise<_KilnResult> {
  const res = _emptyResult(name);
  if (!m.ok || !m.onnx || !m.input) {
    res.error = m.error ? "not exported (PyTorch's error below)" : "not exported by gpu_torch.py";
    return res;
  }
  const at = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const onnxPath = at(m.onnx);
  const dirs = [dirname(onnxPath), at(m.weights_v2_dir ?? join(dirname(m.onnx), "v2"))];
  const input = m.input;
  const torchOut = m.output?.name;
  for (const [i, mode] of KILN_EVALS.entries()) {
    let program: Program | undefined;
    const what = mode.short ? ` (${mode.short})` : "";
    try {
      _log(`${name}${what}: compile ${onnxPath} for the gpu target (deferred weights)`);
      const [compileMs, p] = await timed(async () =>
        compile(
          await parseOnnx(onnxPath, { deferExternalWeights: true, inputDims: { [input.name]: input.dims } }),
          "gpu",
          { gpu: { ...mode.options, library: opts.library } },
        )
      );
      program = p;
      if (mode.convsOnly && !program.info().ops.Conv) continue;
      if (mode.gemmsOnly && program.info().ops.Conv) continue;
      if (program.inputs.length !== 1) {
        throw new Error(`the graph has ${program.inputs.length} inputs, bench/gpu.ts feeds one`);
      }
      const x = readNpy(await Deno.readFile(at(input.npy)), input.npy);
      const feeds = { [program.inputs[0].name]: x };
      if (i === 0) {
        res.compileMs = compileMs;
        const info = program.info();
        res.device = info.device;
        res.libraries = `GEMMs on ${info.blas ?? "?"}` +
          (info.dnn && info.ops.Conv
            ? `, ${info.dnn.kernels} Convs on ${info.dnn.library}` +
              (info.dnn.misses ? ` (${info.dnn.misses} on kiln's kernels: ${info.dnn.missWhy})` : "") +
              `, ${info.fusion?.epilogues} Relus and ${info.fusion?.residuals} residual block ends folded into them` +
              (info.fusion?.residualMissWhy ? ` (not folded: ${info.fusion.residualMissWhy})` : "")
            : "");
        res.hostNodes = info.hostNodes.map((h) => `${h.name} (${h.op}): ${h.reason}`);
        if (res.hostNodes.length) {
          _log(`${name}: ${res.hostNodes.length} node(s) run on the host: ${res.hostNodes[0]}`);
        }
        const sig = program.weightSignature();
        res.weightCount = sig.length;
        res.weightBytes = sig.reduce((a, s) => a + s.byteLength, 0);
        // page cache warm for both weight sets, as on the PyTorch side
        for (const loc of new Set(program.weights.map((w) => w.location))) {
          for (const d of dirs) await _warm(join(d, loc));
        }
      }
      const [bindMs] = await timed(async () =>
        program!.bindWeights(await WeightSet.fromOnnxDir(program!, dirs[0]))
      );
      if (i === 0) res.firstBindMs = bindMs;
      const ev: _EvalResult = { mode, ms: [] };
      res.evals.push(ev);
      const y1 = _output(program, await program.eval(feeds), torchOut);
      if (m.output) {
        ev.relL2 = await _compare(
          name,
          `weights v1${what}`,
          y1,
          at(m.output.npy),
          res.notes,
          true,
          _bar(mode.options),
        );
      }
      if (i === 0) res.relL2 = ev.relL2;

      _log(`${name}${what}: eval, ${opts.warmup} warm-up + ${opts.runs} timed`);
      try {
        const eo = { outputs: mode.outputs };
        for (let k = 0; k < opts.warmup; k++) await program.eval(feeds, eo);
        for (let k = 0; k < opts.runs; k++) ev.ms.push((await timed(() => program!.eval(feeds, eo)))[0]);
      } catch (e) {
        res.notes.push(`eval${what}: ${errText(e)}`);
      }
      ev.graphs = program.info().graphs;
      if (mode.gemmsOnly) {
        // a 16-bit mode: every swap reconverts the GEMM weights in the prepare step
        ev.precision = program.info().precision;
        ev.swapMs = [];
        ev.swapPrepareMs = [];
        try {
          for (let r = 0; r < Math.min(opts.runs, 10); r++) {
            const b = await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[(r + 1) % 2]));
            ev.swapMs.push(b.ms);
            ev.swapPrepareMs.push(b.phases?.prepareMs ?? NaN);
          }
        } catch (e) {
          res.notes.push(`swaps${what}: ${errText(e)}`);
        }
      }
      if (i === 0) {
        for (const sm of KILN_SWAPS) {
          res.swaps.push(await _swaps(name, program, sm, dirs, feeds, m, at, opts.runs, res));
        }
        try {
          // resident weight sets: v2 kept on the device beside the bound weights, switched to and back
          _log(`${name}: resident weight sets, ${opts.runs} switches`);
          await program.addWeightSet("v2", await WeightSet.fromOnnxDir(program, dirs[1]));
          for (let r = 0; r < opts.runs; r++) {
            res.switchMs.push((await timed(() => program!.useWeights(r % 2 === 0 ? "v2" : null)))[0]);
          }
          await program.useWeights(null);
          await program.removeWeightSet("v2");
        } catch (e) {
          res.notes.push(`resident weight sets: ${errText(e)}`);
        }
        try {
          // host-resident weight sets: v1 and v2 in pinned host memory, bound alternately
          _log(`${name}: host-resident weight sets, ${opts.runs} swaps`);
          await program.addWeightSet("h1", await WeightSet.fromOnnxDir(program, dirs[0]), { on: "host" });
          await program.addWeightSet("h2", await WeightSet.fromOnnxDir(program, dirs[1]), { on: "host" });
          await program.bindWeights("h2");
          await program.bindWeights("h1");
          for (let r = 0; r < opts.runs; r++) {
            res.hostSwapMs.push((await timed(() => program!.bindWeights(r % 2 === 0 ? "h2" : "h1")))[0]);
          }
          await program.removeWeightSet("h1");
          await program.removeWeightSet("h2");
        } catch (e) {
          res.notes.push(`host-resident weight sets: ${errText(e)}`);
        }
        try {
          res.cold = await _coldSwap(name, program, dirs, opts.runs >= 10 ? 3 : 1);
        } catch (e) {
          res.notes.push(`cold swap: ${errText(e)}`);
        }
        try {
          // LoRA adapters: two rank-8 adapters over every projection matrix, switched alternately
          const adapters = _benchAdapters(program, 8);
          if (adapters) {
            _log(`${name}: LoRA adapters on ${adapters[0].factors.length} matrices, ${opts.runs} switches`);
            res.adapter = {
              weights: adapters[0].factors.length,
              rank: 8,
              bytes: adapters[0].factors.reduce((a, f) => a + f.a.byteLength + f.b.byteLength, 0),
            };
            await program.applyAdapter(adapters[1]);
            for (let r = 0; r < opts.runs; r++) {
              res.adapterMs.push((await timed(() => program!.applyAdapter(adapters[r % 2])))[0]);
            }
            await program.removeAdapter();
          }
        } catch (e) {
          res.notes.push(`LoRA adapters: ${errText(e)}`);
        }
      }
    } catch (e) {
      if (i === 0) {
        res.error = errText(e);
        _log(`${name}: FAILED: ${res.error}`);
        break; // the other eval modes would fail alike
      }
      res.notes.push(`eval${what}: ${errText(e)}`);
      _log(`${name}${what}: FAILED: ${errText(e)}`);
    } finally {
      program?.dispose();
    }
  }

  const file = onnxPath.split("/").pop()!;
  if (opts.ortRuns > 0 && (await _exists(join(dirs[1], file)))) {
    _log(`${name}: onnxruntime-node session re-creation, ${opts.ortRuns} times`);
    try {
      for (let r = 0; r < opts.ortRuns; r++) {
        const s = await ortNodeSession(join(dirs[(r + 1) % 2], file), { intraOpThreads: 0 });
        res.ortMs.push(s.createMs);
        await s.release();
      }
    } catch (e) {
      res.notes.push(`onnxruntime-node session: ${errText(e)}`);
    }
  }
  return res;
}

// Cold swaps: the weight files dropped from the page cache (fdatasync, then posix_fadvise
// DONTNEED, through libc by FFI: Deno has no call for it), then read by one sequential reader (the
// disk's rate, as `dd` measures it) or by a swap.
let _libc:
  | Deno.DynamicLibrary<{
    open: { parameters: ["buffer", "i32"]; result: "i32" };
    close: { parameters: ["i32"]; result: "i32" };
    fdatasync: { parameters: ["i32"]; result: "i32" };
    posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"]; result: "i32" };
  }>
  | undefined;

/** Drops `paths` from the page cache; throws when it cannot. */
function _evict(paths: string[]): void {
  _libc ??= Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    fdatasync: { parameters: ["i32"], result: "i32" },
    posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
  });
  const POSIX_FADV_DONTNEED = 4;
  for (const p of paths) {
    const fd = _libc.symbols.open(new TextEncoder().encode(p + "\0"), 0);
    if (fd < 0) throw new Error(`cannot open ${p} to drop it from the page cache`);
    _libc.symbols.fdatasync(fd);
    const r = _libc.symbols.posix_fadvise(fd, 0n, 0n, POSIX_FADV_DONTNEED);
    _libc.symbols.close(fd);
    if (r !== 0) throw new Error(`posix_fadvise(DONTNEED) on ${p} failed (${r})`);
  }
}

/** One sequential reader over `paths`, 8 MiB reads: ms. */
async function _readAll(paths: string[]): Promise<number> {
  const buf = new Uint8Array(8 << 20);
  const t0 = performance.now();
  for (const p of paths) {
    using f = await Deno.open(p);
    while ((await f.read(buf)) !== null) { /* the bytes are not needed */ }
  }
  return performance.now() - t0;
}

async function _coldSwap(
  name: string,
  program: Program,
  dirs: string[],
  runs: number,
): Promise<_KilnResult["cold"]> {
  const files = [...new Set(program.weights.map((w) => w.location))];
  const v2 = files.map((f) => join(dirs[1], f));
  let bytes = 0;
  for (const p of v2) bytes += (await Deno.stat(p)).size;
  const cold: NonNullable<_KilnResult["cold"]> = { bytes, diskMs: [], swapMs: [] };
  _log(`${name}: cold swaps (page cache dropped), ${runs} run(s)`);
  for (let r = 0; r < runs; r++) {
    await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
    _evict(v2);
    cold.diskMs.push(await _readAll(v2));
    _evict(v2);
    const [ms, rep] = await timed(async () =>
      program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[1]))
    );
    cold.swapMs.push(ms);
    cold.phases = rep.phases;
  }
  const gbps = bytes / (median(cold.diskMs) * 1e6);
  if (gbps > 8) {
    cold.why = `the cold read ran at ${gbps.toFixed(1)} GB/s: the page cache was likely not dropped`;
  }
  await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
  return cold;
}

/**
 * Two LoRA adapters of rank `rank` over every float32 matrix of the program but embeddings and
 * the output head (the projections PEFT adapts), with seeded factors; null when there is none.
 */
function _benchAdapters(program: Program, rank: number): [Adapter, Adapter] | null {
  const mats = program.weightSignature().filter((w) =>
    w.dtype === "float32" && w.dims.length === 2 &&
    !/emb|wte|wpe|lm_head|classifier|\bfc\.weight/.test(w.name)
  );
  if (!mats.length) return null;
  const make = (seed: number) => {
    const rnd = new SeededRandom(seed);
    const f = (n: number) => Float32Array.from({ length: n }, () => (rnd.uniform() - 0.5) * 0.02);
    return new Adapter(
      `bench-${seed}`,
      mats.map((w) => ({
        module: w.name,
        a: f(rank * w.dims[1]),
        aDims: [rank, w.dims[1]] as [number, number],
        b: f(w.dims[0] * rank),
        bDims: [w.dims[0], rank] as [number, number],
        scale: 2,
      })),
      { weightOf: (m) => m, fanInFanOut: false },
    );
  };
  return [make(1), make(2)];
}

/** Times `runs` swaps of one swap mode, alternating v2 and v1; checks the output after the first. */
async function _swaps(
  name: string,
  program: Program,
  mode: _SwapMode,
  dirs: string[],
  feeds: Record<string, Tensor>,
  m: _TorchModel,
  at: (p: string) => string,
  runs: number,
  res: _KilnResult,
): Promise<_SwapResult> {
  _log(`${name}: ${mode.label}, ${runs} swaps alternating v1 and v2`);
  const s: _SwapResult = { mode, total: [], bind: [], phases: [] };
  for (const [k, v] of Object.entries(mode.env ?? {})) Deno.env.set(k, v);
  try {
    // the first swap stages into new device buffers (spares from then on): untimed
    await program.bindWeights(await mode.set(program, dirs[1]));
    const y2 = _output(program, await program.eval(feeds), m.output?.name);
    if (m.output?.npy_v2 && res.relL2v2 === undefined) {
      const same = !m.export?.v2_unmatched?.length;
      res.relL2v2 = await _compare(
        name,
        "weights v2 (after a swap)",
        y2,
        at(m.output.npy_v2),
        res.notes,
        same,
      );
    }
    await program.bindWeights(await mode.set(program, dirs[0]));
    for (let r = 0; r < runs; r++) {
      const [ms, rep] = await timed(async () =>
        program.bindWeights(await mode.set(program, dirs[(r + 1) % 2]))
      );
      s.total.push(ms);
      s.bind.push(rep.ms);
      if (rep.phases) s.phases.push(rep.phases);
      s.last = rep;
    }
  } catch (e) {
    res.notes.push(`${mode.label}: ${errText(e)}`);
  } finally {
    for (const k of Object.keys(mode.env ?? {})) Deno.env.delete(k);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// The report

function _ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !(b > 0) || !Number.isFinite(a)) return "–";
  return `${(a / b).toFixed(2)}×`;
}

function _mb(bytes: number): string {
  const mb = bytes / 1e6;
  return `${mb.toFixed(mb >= 100 ? 0 : mb >= 1 ? 1 : 3)} MB`;
}

function _gbps(v: number | undefined): string {
  return v === undefined ? "–" : `${v.toFixed(1)} GB/s`;
}

function _versionOf(v: number): string {
  // CUDA numbers 13000 as 13.0; HIP numbers differ: shown as is
  return v >= 1000 && v < 100000 ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : String(v);
}

function _phaseMedians(ps: BindPhases[]): string {
  if (!ps.length) return "";
  const m = (f: (p: BindPhases) => number) => fmtMs(median(ps.map(f)));
  return `validate ${m((p) => p.validateMs)} / load ${m((p) => p.loadMs)} (read ${m((p) => p.readMs)}, hash ${
    m((p) => p.hashMs ?? 0)
  } summed over ` +
    `${ps[0].threads} threads; upload tail ${m((p) => p.uploadTailMs)}) / prepare ${
      m((p) => p.prepareMs)
    } ms`;
}

/** A table row: a swap of `bytes` against the time the pinned host-to-device link needs for them. */
function _pinnedLimitRow(what: string, k: number, bytes: number, gbps: number): string {
  const l = bytes / (gbps * 1e9) * 1e3;
  return `| ${what} | ${fmtMs(k)} | limit: bytes ÷ pinned host-to-device rate (${_gbps(gbps)}) | ${
    fmtMs(l)
  } | ${_ratio(k, l)} |`;
}

function _table(results: _KilnResult[], torch: _TorchJson): string[] {
  const rows: string[] = [
    "| what | kiln ms | compared with | its ms | kiln ÷ it |",
    "| --- | --: | --- | --: | --: |",
  ];
  const lim = torch.limits ?? {};
  const pc16 = lim.page_cache?.gbps?.["16"];
  for (const r of results) {
    const tm = torch.models?.[r.name];
    if (r.error && !r.evals.some((e) => e.ms.length)) {
      rows.push(`| ${r.name} | – | kiln failed: ${r.error.replaceAll("|", "/")} | – | – |`);
    }
    for (const ev of r.evals) {
      if (!ev.ms.length) continue;
      const k = median(ev.ms);
      const tags = [
        ev.mode.short,
        ev.relL2 !== undefined && !(ev.relL2 <= _bar(ev.mode.options)) ? "**WRONG output**" : "",
        _reduced(ev.mode.options) && ev.relL2 !== undefined
          ? `rel L2 ${ev.relL2.toExponential(1)} vs float32`
          : "",
      ]
        .filter(Boolean);
      const what = `${r.name} eval${tags.length ? ` (${tags.join(", ")})` : ""}`;
      let n = 0;
      for (const [key, label] of TORCH_EVALS) {
        const t = tm?.eval_ms?.[key];
        if (!t || (ev.mode.peers && !ev.mode.peers.includes(key))) continue;
        rows.push(`| ${what} | ${fmtMs(k, 2)} | ${label} | ${fmtMs(t.median, 2)} | ${_ratio(k, t.median)} |`);
        n++;
      }
      if (!n) rows.push(`| ${what} | ${fmtMs(k, 2)} | no PyTorch time | – | – |`);
    }
    const bytes = r.weightBytes ?? 0;
    if (r.switchMs.length) {
      const k = median(r.switchMs);
      const pinned = tm?.swap_ms?.["pinned_copy"];
      const what = `${r.name} switch between resident weight sets (useWeights, prepare step included)`;
      if (pinned) {
        rows.push(
          `| ${what} | ${fmtMs(k, 2)} | PyTorch param.copy_ from pinned host tensors (no file read) | ${
            fmtMs(pinned.median)
          } | ${_ratio(k, pinned.median)} |`,
        );
      } else {
        rows.push(`| ${what} | ${fmtMs(k, 2)} | – | – | – |`);
      }
    }
    if (r.hostSwapMs.length) {
      const k = median(r.hostSwapMs);
      const what = `${r.name} swap from a host-resident set (pinned memory), ${_mb(bytes)}`;
      const pinned = tm?.swap_ms?.["pinned_copy"];
      if (pinned) {
        rows.push(
          `| ${what} | ${fmtMs(k)} | PyTorch param.copy_ from pinned host tensors (no file read) | ${
            fmtMs(pinned.median)
          } | ${_ratio(k, pinned.median)} |`,
        );
      }
      if (lim.pinned_h2d_gbps) rows.push(_pinnedLimitRow(what, k, bytes, lim.pinned_h2d_gbps));
    }
    if (r.cold?.swapMs.length) {
      const c = r.cold;
      const k = median(c.swapMs), d = median(c.diskMs);
      const rate = (ms: number) => `${(c.bytes / (ms * 1e6)).toFixed(2)} GB/s`;
      rows.push(
        `| ${r.name} cold swap from files (page cache dropped), ${_mb(c.bytes)}: ${rate(k)} | ${
          fmtMs(k)
        } | limit: one sequential read of the same files, cold (${rate(d)}${c.why ? `; ${c.why}` : ""}) | ${
          fmtMs(d)
        } | ${_ratio(k, d)} |`,
      );
    }
    if (r.adapterMs.length && r.adapter) {
      const k = median(r.adapterMs);
      const a = r.adapter;
      const what = `${r.name} switch LoRA adapters (applyAdapter: rank ${a.rank} on ${a.weights} matrices, ${
        _mb(a.bytes)
      } of factors)`;
      if (lim.pinned_h2d_gbps) {
        const l = a.bytes / (lim.pinned_h2d_gbps * 1e9) * 1e3;
        rows.push(
          `| ${what} | ${
            fmtMs(k, 2)
          } | limit: factor bytes ÷ pinned host-to-device rate (GEMMs not counted) | ${fmtMs(l, 2)} | ${
            _ratio(k, l)
          } |`,
        );
      } else rows.push(`| ${what} | ${fmtMs(k, 2)} | – | – | – |`);
    }
    for (const s of r.swaps) {
      if (!s.total.length) continue;
      const k = median(s.total);
      const what = `${r.name} swap ${s.mode.short}, ${_mb(bytes)}`;
      if (s.mode.versus) {
        const o = r.swaps.find((x) => x.mode.short === s.mode.versus && x.total.length);
        const reg = s.phases.map((p) => p.registerMs ?? 0);
        if (o) {
          rows.push(
            `| ${what} (registering ${fmtMs(median(reg))} ms of it) | ${
              fmtMs(k)
            } | kiln swap ${o.mode.short} ` +
              `(the pinned ring) | ${fmtMs(median(o.total))} | ${_ratio(k, median(o.total))} |`,
          );
        }
        continue;
      }
      for (const [key, label] of TORCH_SWAPS) {
        const t = tm?.swap_ms?.[key];
        if (t) {
          rows.push(`| ${what} | ${fmtMs(k)} | ${label} | ${fmtMs(t.median)} | ${_ratio(k, t.median)} |`);
        }
      }
      if (r.ortMs.length) {
        const o = median(r.ortMs);
        rows.push(
          `| ${what} | ${fmtMs(k)} | onnxruntime-node session re-creation (CPU, ${r.ortMs.length} runs) | ${
            fmtMs(o)
          } | ${_ratio(k, o)} |`,
        );
      }
      if (lim.pinned_h2d_gbps) rows.push(_pinnedLimitRow(what, k, bytes, lim.pinned_h2d_gbps));
      if (pc16) {
        const l = bytes / (pc16 * 1e9) * 1e3;
        rows.push(
          `| ${what} | ${fmtMs(k)} | limit: bytes ÷ page-cache read rate into pinned memory, 16 threads (${
            _gbps(pc16)
          }) | ${fmtMs(l)} | ${_ratio(k, l)} |`,
        );
      }
    }
  }
  return rows;
}

function _details(results: _KilnResult[], torch: _TorchJson): string[] {
  const out: string[] = [];
  const lim = torch.limits;
  if (lim?.error) out.push(`- Limits: not measured: ${lim.error}`);
  else if (lim) {
    const pc = lim.page_cache;
    out.push(
      `- Limits (bench/gpu_torch.py, this run): host-to-device copy of ${
        ((lim.h2d_bytes ?? 0) / 2 ** 30).toFixed(0)
      } GiB, pinned ${_gbps(lim.pinned_h2d_gbps)}, pageable ${_gbps(lim.pageable_h2d_gbps)}` +
        (pc
          ? `; page-cache reads of ${pc.file} (${_mb(pc.bytes)}) into pinned memory, ${
            (pc.chunk_bytes / 2 ** 20).toFixed(0)
          } MiB chunks, two per thread: ` +
            Object.entries(pc.gbps).map(([n, v]) => `${n} thread${n === "1" ? "" : "s"} ${_gbps(v)}`).join(
              ", ",
            )
          : "") +
        " (GB = 1e9 bytes).",
    );
  }
  for (const r of results) {
    const tm = torch.models?.[r.name];
    const bits: string[] = [];
    if (r.compileMs !== undefined) bits.push(`parse + compile ${fmtMs(r.compileMs, 0)} ms`);
    if (r.libraries) bits.push(r.libraries);
    if (r.weightCount !== undefined) {
      bits.push(`${r.weightCount} deferred weights, ${_mb(r.weightBytes ?? 0)}`);
    }
    if (r.firstBindMs !== undefined) {
      bits.push(`first bind ${fmtMs(r.firstBindMs, 0)} ms (pins the loader's ring)`);
    }
    if (r.compileMs !== undefined) {
      bits.push(
        r.hostNodes.length
          ? `${r.hostNodes.length} node(s) on the host: ${r.hostNodes.slice(0, 3).join("; ")}`
          : "every node on the device",
      );
    }
    for (const ev of r.evals) {
      if (!ev.ms.length) continue;
      const g = ev.graphs;
      const how = !g
        ? ""
        : g.enabled
        ? `, a captured graph replayed (${g.captures} capture(s), ${g.replays} replays)`
        : `, kernel by kernel${g.why ? ` (${g.why})` : ""}`;
      const acc = ev.mode.short && ev.relL2 !== undefined ? `, relative L2 ${ev.relL2.toExponential(1)}` : "";
      const p = ev.precision;
      const prec = p && (p.mode === "fp16" || p.mode === "bf16")
        ? `; ${p.gemms16} GEMMs on ${p.mode} weights (copies ${
          (p.bytes16! / 1e6).toFixed(0)
        } MB), ${p.gemms32} ` +
          `float32${p.why ? ` (${p.why})` : ""}`
        : p
        ? `; precision ${p.mode}${p.why ? ` (${p.why})` : ""}`
        : "";
      const swaps = ev.swapMs?.length
        ? `; ${ev.swapMs.length} swaps v1/v2 median ${
          fmtMs(median(ev.swapMs), 2)
        } ms, of which the prepare step ` +
          `(16-bit conversions) ${fmtMs(median(ev.swapPrepareMs!), 2)} ms`
        : "";
      bits.push(
        `eval${ev.mode.short ? ` (${ev.mode.short})` : ""} median ${fmtMs(median(ev.ms), 2)} ms, min ${
          fmtMs(Math.min(...ev.ms), 2)
        } ms${how}${acc}${prec}${swaps}`,
      );
    }
    const torchTimes = Object.keys(tm?.eval_ms ?? {}).length || Object.keys(tm?.swap_ms ?? {}).length;
    if (!r.evals.some((e) => e.ms.length) && torchTimes) {
      // no kiln row to set them against in the table: PyTorch's medians here
      const all = { ...tm?.eval_ms, ...tm?.swap_ms };
      bits.push(
        `PyTorch medians: ${Object.entries(all).map(([k, v]) => `${k} ${fmtMs(v.median, 2)} ms`).join(", ")}`,
      );
    }
    const unmatched = tm?.export?.v2_unmatched ?? [];
    const acc = (v: number | undefined, same = true) =>
      v === undefined ? "–" : `${v.toExponential(1)}${v <= REL_L2_BAR || !same ? "" : " **above 1e-4**"}`;
    if (r.relL2 !== undefined || r.relL2v2 !== undefined) {
      bits.push(
        `relative L2 vs PyTorch float32: ${acc(r.relL2)} (v1), ${
          acc(r.relL2v2, !unmatched.length)
        } (v2, after a swap` +
          `${
            unmatched.length
              ? `; not comparable: PyTorch's v2 lacks ${unmatched.length} tensor(s) the exporter computed`
              : ""
          })`,
      );
    }
    for (const s of r.swaps) {
      if (!s.total.length) continue;
      bits.push(
        `swap ${s.mode.short} median ${fmtMs(median(s.total))} ms = weight set ${
          fmtMs(median(s.total) - median(s.bind))
        } + bindWeights ${fmtMs(median(s.bind))} (${_phaseMedians(s.phases)}); ${
          s.last?.copied ?? "?"
        } tensors, ${_mb(s.last?.bytesCopied ?? 0)} copied per swap`,
      );
    }
    if (tm?.compile_s) {
      bits.push(
        `torch.compile first calls ${
          Object.entries(tm.compile_s).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(", ")
        }`,
      );
    }
    const errs = [
      ...(r.error ? [`kiln: ${r.error}`] : []),
      ...r.notes.map((n) => `kiln: ${n}`),
      ...(tm?.error ? [`PyTorch: ${tm.error}`] : []),
      ...Object.entries(tm?.errors ?? {}).map(([k, v]) => `PyTorch ${k}: ${v}`),
    ];
    if (errs.length) bits.push(`errors: ${errs.join("; ")}`);
    out.push(`- ${r.name}: ${bits.join("; ")}.`);
  }
  return out;
}

async function _header(
  lib: GpuLibraryInfo,
  torch: _TorchJson,
  command: string,
  models: string[],
  runs: number,
  warmup: number,
): Promise<string[]> {
  const read = async (p: string) => await Deno.readTextFile(p).catch(() => "");
  const cpu = (await read("/proc/cpuinfo")).match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU";
  const memKb = Number((await read("/proc/meminfo")).match(/^MemTotal:\s*(\d+)/m)?.[1] ?? 0);
  const d = lib.devices[0];
  const v = torch.versions ?? {};
  const s = torch.settings ?? {};
  const tf = s.tf32 ?? {};
  const stamp = new Date().toISOString().replace("T", " ").slice(0, 16) + " UTC";
  const pyRuns = s.runs !== undefined && (s.runs !== runs || s.warmup !== warmup)
    ? ` (PyTorch's side: ${s.runs} runs after ${s.warmup})`
    : "";
  return [
    `## GPU: kiln vs PyTorch side by side (bench/gpu.ts), ${d.name}, ${stamp}`,
    "",
    `- GPU: ${d.name} (${d.arch}), ${
      (d.memoryBytes / 2 ** 30).toFixed(1)
    } GiB, ${d.multiprocessors} multiprocessors` +
    `${
      torch.device?.driver ? `; driver ${torch.device.driver}` : ""
    }; kiln's library ${lib.path} (${lib.platform} runtime ` +
    `${_versionOf(lib.runtimeVersion)}, driver API ${_versionOf(lib.driverVersion)})`,
    `- CPU: ${cpu}, ${navigator.hardwareConcurrency} cores; memory ${(memKb / 1048576).toFixed(1)} GiB; ` +
    `${Deno.build.os} ${Deno.osRelease()}`,
    `- Deno ${Deno.version.deno}, kiln ${KILN_VERSION}; PyTorch ${v.torch ?? "?"} (CUDA ${
      v.cuda ?? "?"
    }, cuDNN ${v.cudnn ?? "?"}), transformers ${v.transformers ?? "?"}, torchvision ${
      v.torchvision ?? "?"
    }, safetensors ${v.safetensors ?? "?"}, onnx ${v.onnx ?? "?"}, Python ${
      v.python ?? "?"
    }; onnxruntime-node ${peerVersions().node}`,
    `- Numerics: kiln is strict float32 (cuBLAS in its default math mode, float32 accumulation) except the rows ` +
    `that say TF32 (GpuOptions.precision = "tf32": GEMMs and convolutions on TF32 tensor cores) or float16 / ` +
    `bfloat16 weights (precision "fp16" / "bf16": MatMul and Gemm with weight-only B on 16-bit copies of it, A ` +
    `rounded per GEMM, float32 sums (cuBLAS GemmEx, CUBLAS_COMPUTE_32F); GEMMs of two activations float32; ` +
    `PyTorch has no 16-bit row here). PyTorch: float32 with TF32 off (torch.backends.cuda.matmul.allow_tf32 = ` +
    `${tf.matmul_allow_tf32 ?? "?"}, torch.backends.cudnn.allow_tf32 = ${tf.cudnn_allow_tf32 ?? "?"}, ` +
    `float32 matmul precision '${tf.float32_matmul_precision ?? "?"}'), except the row that says TF32.`,
    `- Timing: medians of ${runs} runs after ${warmup} warm-up run(s)${pyRuns}. PyTorch synchronizes before and after ` +
    `each run. kiln's eval takes and returns host tensors (input copied to the device, output back), as the ` +
    `"host memory" PyTorch row does; the other PyTorch rows keep input and output on the device. kiln's evals ` +
    `replay a captured graph (its default) unless the row says kernel by kernel (GpuOptions.graphs = false).`,
    `- Swaps: the exported weights (v1) and a perturbed copy (v2, every float32 tensor changed) alternate, page ` +
    `cache warm. kiln: a WeightSet of the ONNX external-data folder + bindWeights (validate, read + hash + upload ` +
    `by the library's reader threads, prepare). PyTorch: safetensors files of the same weights.`,
    `- Models: ${
      models.map((n) => {
        const m = torch.models?.[n];
        return m?.input ? `${n} (${m.input.name} ${m.input.dtype} [${m.input.dims.join(",")}])` : n;
      }).join(", ")
    }; default configs, seeded random weights, exported by torch.onnx.export(dynamo=True, external_data=True, ` +
    `opset_version=18)${torch.date ? ` (PyTorch's side ran at ${torch.date})` : ""}.`,
    `- \`${command}\``,
  ];
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      python: { type: "string", default: "python3" },
      work: { type: "string" },
      runs: { type: "string", default: "50" },
      warmup: { type: "string", default: "10" },
      models: { type: "string", default: "gpt2,bert,resnet50" },
      "no-compile": { type: "boolean", default: false },
      "no-write": { type: "boolean", default: false },
      out: { type: "string", default: new URL("./RESULTS.md", import.meta.url).pathname },
      "torch-json": { type: "string" },
      "ort-runs": { type: "string", default: "5" },
      "gpu-library": { type: "string" },
      "keep-work": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "deno task bench:gpu [--models gpt2,bert,resnet50] [--runs 50] [--warmup 10] [--no-compile]\n" +
        "  [--python python3] [--work DIR] [--keep-work] [--torch-json FILE] [--ort-runs 5]\n" +
        "  [--gpu-library PATH] [--out bench/RESULTS.md] [--no-write]",
    );
    return 0;
  }
  const runs = _int("runs", values.runs, 1);
  const warmup = _int("warmup", values.warmup, 0);
  const ortRuns = _int("ort-runs", values["ort-runs"], 0);
  const models = values.models.split(",").map((s) => s.trim()).filter(Boolean);

  let lib: GpuLibraryInfo;
  try {
    lib = gpuLibraryInfo(values["gpu-library"]);
  } catch (e) {
    console.log(`bench:gpu: no GPU, nothing run or written: ${(e as Error).message}`);
    return 0;
  }
  if (!lib.devices.length) {
    console.log(
      `bench:gpu: no GPU, nothing run or written: ${lib.path}: the ${lib.platform} runtime found none` +
        `${lib.error ? ` (${lib.error})` : ""}`,
    );
    return 0;
  }
  _log(`kiln's library ${lib.path} finds ${lib.devices.map((d) => `${d.name} (${d.arch})`).join(", ")}`);

  const tempWork = values["torch-json"] || values.work
    ? undefined
    : await Deno.makeTempDir({ prefix: "kiln-bench-gpu-" });
  try {
    const pyArgs = ["--runs", `${runs}`, "--warmup", `${warmup}`, "--models", models.join(",")];
    if (values["no-compile"]) pyArgs.push("--no-compile");
    const jsonPath = values["torch-json"] ?? await _runTorch(values.python, values.work ?? tempWork!, pyArgs);
    if (!jsonPath) return 1;
    const torch = JSON.parse(await Deno.readTextFile(jsonPath)) as _TorchJson;
    const base = dirname(resolve(jsonPath));

    const results: _KilnResult[] = [];
    for (const name of models) {
      const m = torch.models?.[name];
      if (!m) {
        _log(`${name}: not in ${jsonPath}: skipped`);
        const error = `not in ${jsonPath}`;
        results.push({ ..._emptyResult(name), error });
        continue;
      }
      results.push(await _kilnModel(name, m, base, { library: lib.path, runs, warmup, ortRuns }));
    }

    const command = `deno task bench:gpu ${Deno.args.join(" ")}`.trim();
    const text = [
      ...(await _header(lib, torch, command, models, runs, warmup)),
      "",
      ..._table(results, torch),
      "",
      ..._details(results, torch),
    ].join("\n");
    console.log("\n" + text + "\n");
    if (!values["no-write"]) await _append(values.out, text);
    if (!tempWork || values["keep-work"]) _log(`exports and torch.json kept in ${base}`);
    return 0;
  } finally {
    if (tempWork && !values["keep-work"]) await Deno.remove(tempWork, { recursive: true });
  }
}

/** Runs bench/gpu_torch.py into `work`, its output shown as it goes; the torch.json it wrote, or undefined. */
async function _runTorch(python: string, work: string, pyArgs: string[]): Promise<string | undefined> {
  await Deno.mkdir(work, { recursive: true });
  const jsonPath = join(resolve(work), "torch.json");
  const args = [PY_SCRIPT, "--out", work, ...pyArgs];
  _log(`${python} ${args.join(" ")}`);
  let code: number;
  try {
    code =
      (await new Deno.Command(python, { args, stdout: "inherit", stderr: "inherit" }).spawn().status).code;
  } catch (e) {
    console.error(`bench:gpu: cannot run '${python}': ${errText(e)} (name another with --python)`);
    return undefined;
  }
  if (!(await _exists(jsonPath))) {
    console.error(`bench:gpu: ${PY_SCRIPT} exited with ${code} and wrote no ${jsonPath}`);
    return undefined;
  }
  if (code !== 0) _log(`WARNING: ${PY_SCRIPT} exited with ${code}; using what it wrote`);
  return jsonPath;
}

/** Appends a section to the results file, then formats it as `deno fmt` wants (the gate checks it). */
async function _append(path: string, text: string): Promise<void> {
  let old = "";
  try {
    old = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (!old) old = "# kiln benchmark results\n";
  await Deno.writeTextFile(path, old.replace(/\n*$/, "\n\n") + text + "\n");
  try {
    const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path], stdout: "null" })
      .output();
    if (!fmt.success) _log(`deno fmt ${path} failed: ${new TextDecoder().decode(fmt.stderr).trim()}`);
  } catch (e) {
    _log(`deno fmt ${path} failed: ${errText(e)}`);
  }
  _log(`appended to ${path}`);
}

if (import.meta.main) Deno.exit(await main());
