/**
 * Kernel micro-benchmark for the ref target's hot kernels (`wasm/kernels/gemm.ts`, `conv.ts`).
 *
 * Compiles the standalone AssemblyScript entry `wasm/kernels/bench_entry.ts` (release flags of
 * `wasm/asconfig.json`: -O3, SIMD), checks SGEMM against a naive float64 reference on awkward
 * shapes, then reports SGEMM GFLOP/s at GPT-2's shapes and conv GFLOP/s at ResNet-50's.
 *
 * ```sh
 * ./node_modules/.bin/deno run -A bench/kernels.ts [--quick] [--relaxed]
 * ./node_modules/.bin/deno run -A bench/kernels.ts --build-only OUT.wasm [--relaxed]   # compile only
 * ./node_modules/.bin/deno run -A bench/kernels.ts --wasm OUT.wasm                      # run a prebuilt one
 * ```
 * @module
 */
import { parseArgs } from "node:util";

const root = new URL("../", import.meta.url);

interface KernelExports {
  memory: WebAssembly.Memory;
  alloc(n: number): number;
  free(p: number): void;
  sgemm_f32(...a: number[]): void;
  sgemm_naive(...a: number[]): void;
  sgemm_repeat(
    iters: number,
    M: number,
    N: number,
    K: number,
    A: number,
    B: number,
    C: number,
    tB: number,
  ): void;
  conv2d_repeat(...a: number[]): void;
  set_direct_a(on: number): void;
}

/** Compiles bench_entry.ts to `outFile` (flags: relaxed-simd on request). */
async function _build(outFile: string, relaxed: boolean): Promise<void> {
  const { default: asc } = await import("assemblyscript/asc");
  const { error, stderr } = await asc.main([
    new URL("wasm/kernels/bench_entry.ts", root).pathname,
    "--outFile",
    outFile,
    "-O3",
    "--noAssert",
    "--enable",
    relaxed ? "simd,relaxed-simd" : "simd",
    "--runtime",
    "incremental",
    "--bindings",
    "raw",
    "--initialMemory",
    "256",
  ], {});
  if (error) throw new Error(`Building the kernel benchmark failed: ${error.message}\n${stderr.toString()}`);
}

async function _instantiate(file: string): Promise<KernelExports> {
  const bytes = await Deno.readFile(file);
  const { instance } = await WebAssembly.instantiate(bytes, {
    env: {
      abort(_m: number, _f: number, line: number, col: number) {
        throw new Error(`WASM abort at ${line}:${col}`);
      },
    },
  });
  return instance.exports as unknown as KernelExports;
}

function _rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

function _fill(k: KernelExports, p: number, n: number, r: () => number): void {
  const v = new Float32Array(k.memory.buffer, p, n);
  for (let i = 0; i < n; i++) v[i] = r();
}

/** Checks sgemm against the naive reference; returns the max abs error. */
function _check(
  k: KernelExports,
  tA: number,
  tB: number,
  M: number,
  N: number,
  K: number,
  alpha: number,
  beta: number,
) {
  const r = _rand(M * 131 + N * 7 + K);
  const lda = tA ? M + 3 : K + 1;
  const ldb = tB ? K + 2 : N + 5;
  const ldc = N + 1;
  const aN = (tA ? K : M) * lda, bN = (tB ? N : K) * ldb, cN = M * ldc;
  const A = k.alloc(aN * 4), B = k.alloc(bN * 4), C1 = k.alloc(cN * 4), C2 = k.alloc(cN * 4);
  _fill(k, A, aN, r);
  _fill(k, B, bN, r);
  _fill(k, C1, cN, r);
  new Float32Array(k.memory.buffer, C2, cN).set(new Float32Array(k.memory.buffer, C1, cN));
  k.sgemm_f32(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
  k.sgemm_naive(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
  const x = new Float32Array(k.memory.buffer, C1, cN), y = new Float32Array(k.memory.buffer, C2, cN);
  let err = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) err = Math.max(err, Math.abs(x[i * ldc + j] - y[i * ldc + j]));
  }
  for (const p of [A, B, C1, C2]) k.free(p);
  return err;
}

/**
 * Milliseconds per call of `run(iters)`: the best of 7 trials of at least minMs / 7 each (the
 * machine is shared, so the best trial is the one closest to the kernel's own speed).
 */
function _best(minMs: number, run: (iters: number) => void): number {
  let iters = 1;
  for (;;) {
    const t0 = performance.now();
    run(iters);
    if (performance.now() - t0 >= minMs / 7) break;
    iters *= 2;
  }
  let best = Infinity;
  for (let t = 0; t < 7; t++) {
    const t0 = performance.now();
    run(iters);
    best = Math.min(best, (performance.now() - t0) / iters);
  }
  return best;
}

function _timeGemm(k: KernelExports, M: number, N: number, K: number, tB: number, minMs: number): number {
  const A = k.alloc(M * K * 4), B = k.alloc(K * N * 4), C = k.alloc(M * N * 4);
  const r = _rand(1);
  _fill(k, A, M * K, r);
  _fill(k, B, K * N, r);
  k.sgemm_repeat(1, M, N, K, A, B, C, tB);
  const ms = _best(minMs, (iters) => k.sgemm_repeat(iters, M, N, K, A, B, C, tB));
  for (const p of [A, B, C]) k.free(p);
  return (2 * M * N * K) / (ms * 1e6);
}

function _timeConv(
  k: KernelExports,
  C: number,
  H: number,
  M: number,
  kk: number,
  s: number,
  pad: number,
  minMs: number,
) {
  const oh = Math.floor((H + 2 * pad - kk) / s) + 1;
  const X = k.alloc(C * H * H * 4),
    W = k.alloc(M * C * kk * kk * 4),
    B = k.alloc(M * 4),
    Y = k.alloc(M * oh * oh * 4);
  const r = _rand(2);
  _fill(k, X, C * H * H, r);
  _fill(k, W, M * C * kk * kk, r);
  _fill(k, B, M, r);
  k.conv2d_repeat(1, 1, C, H, H, M, kk, s, pad, X, W, B, Y);
  const ms = _best(minMs, (iters) => k.conv2d_repeat(iters, 1, C, H, H, M, kk, s, pad, X, W, B, Y));
  for (const p of [X, W, B, Y]) k.free(p);
  const flops = 2 * M * oh * oh * C * kk * kk;
  return { gflops: flops / (ms * 1e6), ms };
}

if (import.meta.main) {
  const args = parseArgs({
    options: {
      quick: { type: "boolean" },
      relaxed: { type: "boolean" },
      wasm: { type: "string" },
      "build-only": { type: "string" },
      "pack-a": { type: "boolean" },
    },
  }).values;
  const minMs = args.quick ? 150 : 600;
  if (args["build-only"]) {
    await _build(args["build-only"], !!args.relaxed);
    Deno.exit(0);
  }
  let file = args.wasm;
  if (!file) {
    file = new URL("build/kernels_bench.wasm", root).pathname;
    await _build(file, !!args.relaxed);
  }
  const k = await _instantiate(file);
  k.set_direct_a(args["pack-a"] ? 0 : 1);
  // warm-up: V8 runs new wasm code on its baseline tier until the optimized code is ready
  _timeGemm(k, 64, 64, 64, 0, 300);
  _timeConv(k, 8, 16, 8, 3, 1, 1, 300);
  let worst = 0;
  for (
    const [tA, tB, M, N, K, al, be] of [
      [0, 0, 1, 1, 1, 1, 0],
      [0, 0, 5, 7, 3, 1, 0],
      [1, 0, 13, 17, 300, 0.5, 2],
      [0, 1, 33, 9, 257, 1, 1],
      [1, 1, 130, 70, 520, 2, 0],
      [0, 0, 1, 37, 45, 1, 0.5],
      [1, 0, 1, 19, 8, 1, 0],
      [0, 1, 1, 10, 50, 1, 0],
      [0, 0, 129, 2100, 33, 1, 0],
      [1, 1, 1, 9, 40, 2, 0.5],
    ]
  ) {
    const e = _check(k, tA, tB, M, N, K, al, be);
    worst = Math.max(worst, e);
    if (e > 1e-3) console.log(`sgemm mismatch: tA=${tA} tB=${tB} M=${M} N=${N} K=${K}: max abs error ${e}`);
  }
  console.log(`sgemm correctness: max abs error ${worst.toExponential(2)} over 9 shapes`);
  console.log("| SGEMM shape (M x K x N) | GFLOP/s |\n|---|---|");
  for (
    const [M, K, N, tB] of [
      [128, 768, 2304, 0],
      [128, 768, 768, 0],
      [128, 3072, 768, 0],
      [128, 768, 3072, 0],
      [
        512,
        512,
        512,
        0,
      ],
      [128, 768, 768, 1],
      [64, 576, 3136, 0],
      [64, 147, 12544, 0],
      [512, 4608, 49, 0],
    ]
  ) {
    console.log(
      `| ${M} x ${K} x ${N}${tB ? " (B^T)" : ""} | ${_timeGemm(k, M, N, K, tB, minMs).toFixed(1)} |`,
    );
  }
  console.log("| ResNet-50 conv (Cin,H -> Cout, k, stride) | GFLOP/s | ms |\n|---|---|---|");
  for (
    const [C, H, M, kk, s, p] of [
      [3, 224, 64, 7, 2, 3],
      [64, 56, 64, 1, 1, 0],
      [64, 56, 64, 3, 1, 1],
      [64, 56, 256, 1, 1, 0],
      [128, 28, 128, 3, 1, 1],
      [256, 14, 256, 3, 1, 1],
      [512, 7, 512, 3, 1, 1],
      [1024, 14, 2048, 1, 2, 0],
    ]
  ) {
    const r = _timeConv(k, C, H, M, kk, s, p, minMs);
    console.log(`| ${C},${H} -> ${M}, ${kk}x${kk}, s${s} | ${r.gflops.toFixed(1)} | ${r.ms.toFixed(2)} |`);
  }
}
