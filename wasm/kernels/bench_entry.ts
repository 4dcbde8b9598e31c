// A standalone AssemblyScript entry for the kernel micro-benchmark (bench/kernels.ts): raw
// pointer wrappers around the hot kernels, plus naive references for correctness checks.
// Not reachable from wasm/index.ts; bench/kernels.ts compiles it on its own.
import { setDirectA, sgemm } from "./gemm";
import { ConvGeom, convForward } from "./conv";

export function alloc(n: usize): usize {
  return heap.alloc(n > 0 ? n : 1);
}

export function free(p: usize): void {
  heap.free(p);
}

/** sgemm with bools as i32. */
export function sgemm_f32(transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32,
  B: usize, ldb: i32, beta: f32, C: usize, ldc: i32): void {
  sgemm(transA != 0, transB != 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/** Runs the same sgemm `iters` times (timing loop without host call overhead). */
export function sgemm_repeat(iters: i32, M: i32, N: i32, K: i32, A: usize, B: usize, C: usize, transB: i32): void {
  for (let i = 0; i < iters; i++) sgemm(false, transB != 0, M, N, K, 1, A, K, B, transB != 0 ? K : N, 0, C, N);
}

/** The naive reference: C = alpha op(A) op(B) + beta C in f64. */
export function sgemm_naive(transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32,
  B: usize, ldb: i32, beta: f32, C: usize, ldc: i32): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s: f64 = 0;
      for (let p = 0; p < K; p++) {
        const a = load<f32>(A + (<usize>(transA != 0 ? p * lda + i : i * lda + p) << 2));
        const b = load<f32>(B + (<usize>(transB != 0 ? j * ldb + p : p * ldb + j) << 2));
        s += <f64>a * <f64>b;
      }
      const cp = C + (<usize>(i * ldc + j) << 2);
      const prev: f64 = beta == 0 ? 0 : <f64>beta * <f64>load<f32>(cp);
      store<f32>(cp, <f32>(<f64>alpha * s + prev));
    }
  }
}

/** 2-D conv (NCHW, group 1, square kernel/stride/pad) through the kiln kernel, `iters` times. */
export function conv2d_repeat(iters: i32, N: i32, C: i32, H: i32, W: i32, M: i32, k: i32, stride: i32, pad: i32,
  X: usize, Wt: usize, B: usize, Y: usize): void {
  const g = new ConvGeom();
  g.n = N; g.c = C; g.m = M; g.ih = H; g.iw = W; g.kh = k; g.kw = k; g.sh = stride; g.sw = stride;
  g.ph = pad; g.pw = pad; g.eh = pad; g.ew = pad;
  g.oh = (H + 2 * pad - k) / stride + 1;
  g.ow = (W + 2 * pad - k) / stride + 1;
  for (let i = 0; i < iters; i++) convForward(g, X, Wt, B, Y);
}

/** 1: sgemm reads row-major A in place (default); 0: always packs A (for comparison). */
export function set_direct_a(on: i32): void {
  setDirectA(on != 0);
}
