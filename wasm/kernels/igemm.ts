// Exact integer GEMM for the quantized ops (MatMulInteger, ConvInteger, QLinearMatMul,
// QLinearConv): C[M x N] (i32) = A[M x K] * B[K x N], where A and B hold int16 values (8-bit
// data minus its zero point lies in [-255, 255]). B is packed into 16-column panels with
// pairs of k interleaved so that one i32x4.dot_i16x8_s does two multiply-adds per lane;
// products and sums stay in i32 (exact until 2^31, then wrapping like onnxruntime's).

/** Columns per packed panel of B. */
const NP: i32 = 16;

/** K rounded up to even: the row length (in i16) of A rows and of B's k pairs. */
export function evenK(K: i32): i32 {
  return (K + 1) & ~1;
}

/** Bytes packB writes for a K x N matrix. */
export function packedBBytes(K: i32, N: i32): usize {
  const panels = (N + NP - 1) / NP;
  return <usize>panels * <usize>evenK(K) * <usize>NP * 2;
}

/**
 * Packs B (i16, K x N, row stride ldb elements) at `b` into `dst` (packedBBytes(K, N) bytes):
 * panel p, pair q holds, for columns j = 0..15, the i16 pair (B[2q][16p + j], B[2q + 1][16p + j]).
 * Missing rows and columns are zero.
 */
export function packB(b: usize, ldb: i32, K: i32, N: i32, dst: usize): void {
  const K2 = evenK(K);
  const panels = (N + NP - 1) / NP;
  memory.fill(dst, 0, packedBBytes(K, N));
  for (let p = 0; p < panels; p++) {
    const j0 = p * NP;
    const w = N - j0 < NP ? N - j0 : NP;
    const panel = dst + <usize>p * <usize>K2 * <usize>NP * 2;
    for (let k = 0; k < K; k++) {
      const src = b + ((<usize>k * <usize>ldb + <usize>j0) << 1);
      const d = panel + (<usize>(k >> 1) * <usize>NP << 2) + (<usize>(k & 1) << 1);
      for (let j = 0; j < w; j++) store<i16>(d + (<usize>j << 2), load<i16>(src + (<usize>j << 1)));
    }
  }
}

/**
 * C (i32, row stride ldc) = A * B for M rows. A: i16 rows of stride lda (even) whose entries
 * K..evenK(K)-1 are zero; Bp: B packed by packB(…, K, N, …).
 */
export function igemm(M: i32, N: i32, K: i32, a: usize, lda: i32, bp: usize, c: usize, ldc: i32): void {
  const K2 = evenK(K);
  const pairs = K2 >> 1;
  const panels = (N + NP - 1) / NP;
  const panelBytes = <usize>K2 * <usize>NP * 2;
  let m = 0;
  for (; m + 2 <= M; m += 2) {
    const a0 = a + (<usize>m * <usize>lda << 1);
    const a1 = a0 + (<usize>lda << 1);
    for (let p = 0; p < panels; p++) {
      let b = bp + <usize>p * panelBytes;
      let c00 = i32x4.splat(0), c01 = i32x4.splat(0), c02 = i32x4.splat(0), c03 = i32x4.splat(0);
      let c10 = i32x4.splat(0), c11 = i32x4.splat(0), c12 = i32x4.splat(0), c13 = i32x4.splat(0);
      for (let q = 0; q < pairs; q++) {
        const x0 = i32x4.splat(load<i32>(a0 + (<usize>q << 2)));
        const x1 = i32x4.splat(load<i32>(a1 + (<usize>q << 2)));
        const b0 = v128.load(b), b1 = v128.load(b, 16), b2 = v128.load(b, 32), b3 = v128.load(b, 48);
        c00 = i32x4.add(c00, i32x4.dot_i16x8_s(x0, b0));
        c01 = i32x4.add(c01, i32x4.dot_i16x8_s(x0, b1));
        c02 = i32x4.add(c02, i32x4.dot_i16x8_s(x0, b2));
        c03 = i32x4.add(c03, i32x4.dot_i16x8_s(x0, b3));
        c10 = i32x4.add(c10, i32x4.dot_i16x8_s(x1, b0));
        c11 = i32x4.add(c11, i32x4.dot_i16x8_s(x1, b1));
        c12 = i32x4.add(c12, i32x4.dot_i16x8_s(x1, b2));
        c13 = i32x4.add(c13, i32x4.dot_i16x8_s(x1, b3));
        b += 64;
      }
      const j0 = p * NP;
      storeRow(c + ((<usize>m * <usize>ldc + <usize>j0) << 2), N - j0, c00, c01, c02, c03);
      storeRow(c + ((<usize>(m + 1) * <usize>ldc + <usize>j0) << 2), N - j0, c10, c11, c12, c13);
    }
  }
  for (; m < M; m++) {
    const a0 = a + (<usize>m * <usize>lda << 1);
    for (let p = 0; p < panels; p++) {
      let b = bp + <usize>p * panelBytes;
      let c00 = i32x4.splat(0), c01 = i32x4.splat(0), c02 = i32x4.splat(0), c03 = i32x4.splat(0);
      for (let q = 0; q < pairs; q++) {
        const x0 = i32x4.splat(load<i32>(a0 + (<usize>q << 2)));
        c00 = i32x4.add(c00, i32x4.dot_i16x8_s(x0, v128.load(b)));
        c01 = i32x4.add(c01, i32x4.dot_i16x8_s(x0, v128.load(b, 16)));
        c02 = i32x4.add(c02, i32x4.dot_i16x8_s(x0, v128.load(b, 32)));
        c03 = i32x4.add(c03, i32x4.dot_i16x8_s(x0, v128.load(b, 48)));
        b += 64;
      }
      const j0 = p * NP;
      storeRow(c + ((<usize>m * <usize>ldc + <usize>j0) << 2), N - j0, c00, c01, c02, c03);
    }
  }
}

/** Stores the first min(w, 16) lanes of four i32x4 at c. */
// @ts-ignore: decorator
@inline
function storeRow(c: usize, w: i32, v0: v128, v1: v128, v2: v128, v3: v128): void {
  if (w >= NP) {
    v128.store(c, v0);
    v128.store(c, v1, 16);
    v128.store(c, v2, 32);
    v128.store(c, v3, 48);
    return;
  }
  for (let j = 0; j < w; j++) {
    const q = j >> 2;
    const v = q == 0 ? v0 : (q == 1 ? v1 : (q == 2 ? v2 : v3));
    let x: i32 = 0;
    switch (j & 3) {
      case 0: x = i32x4.extract_lane(v, 0); break;
      case 1: x = i32x4.extract_lane(v, 1); break;
      case 2: x = i32x4.extract_lane(v, 2); break;
      default: x = i32x4.extract_lane(v, 3);
    }
    store<i32>(c + (<usize>j << 2), x);
  }
}
