// SGEMM on raw pointers (row-major): C = alpha * op(A) * op(B) + beta * C.
// Goto/BLIS structure: B is packed into KC x NC panels of NR-wide column strips (transposed B
// is handled by the packing); a register-blocked f32x4 micro-kernel (MR x NR = 6 x 8: twelve
// v128 accumulators, k unrolled by 2) walks each B strip, kept in L1, against MR-row strips of A.
// Row-major A with alpha 1 (Conv weights, MatMul) is read in place, six sequential row streams,
// so it is never packed; transposed or scaled A is packed into MR-interleaved strips of MC x KC
// blocks. Edge tiles compute into a small buffer and copy out the valid part. M == 1 takes SIMD
// GEMV paths. Multiply-adds go through madd(): fused relaxed_madd when the build enables
// relaxed-simd, else f32x4 mul + add. Scratch panels are module-level and grow-only on the main
// instance; in the threaded build a large product is split into column (or row) panels run by
// worker instances (threads.ts), each with its own scratch, summing in the same order.
import {
  parallelBegin, parallelFor, perTask, slotScratch, taskArgs, TASK_GEMM, TASK_GEMM_BATCH, TASK_GEMV, TASK_PACK_B, threadCount,
} from "./threads";

/** Rows of the micro-tile. */
export const MR: i32 = 6; // the micro-kernels below are written for 6 x 8
/** Columns of the micro-tile (two f32x4). */
export const NR: i32 = 8;
const KC: i32 = 256;
const MC: i32 = 384;
const NC: i32 = 2048;

let packA: usize = 0;
let packACap: usize = 0;
let packB: usize = 0;
let packBCap: usize = 0;
let edgeBuf: usize = 0;

function ensureA(bytes: usize): usize {
  if (bytes > packACap) {
    if (packA != 0) heap.free(packA);
    packA = heap.alloc(bytes + 64);
    packACap = bytes;
  }
  return (packA + 15) & ~(<usize>15);
}

function ensureB(bytes: usize): usize {
  if (bytes > packBCap) {
    if (packB != 0) heap.free(packB);
    packB = heap.alloc(bytes + 64);
    packBCap = bytes;
  }
  return (packB + 15) & ~(<usize>15);
}

/**
 * Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A), scaled by alpha, into MR-high strips:
 * strip s holds dst[s*MR*kc + p*MR + r] = alpha * op(A)[i0 + s*MR + r][p0 + p] (0 past mc).
 */
function packAPanel(transA: bool, A: usize, lda: i32, i0: i32, p0: i32, mc: i32, kc: i32, alpha: f32,
  dst: usize): void {
  const lda4 = <usize>lda << 2;
  for (let s = 0; s < mc; s += MR) {
    const rows = mc - s < MR ? mc - s : MR;
    const base = dst + (<usize>(s * kc) << 2);
    if (!transA) {
      // A[i][p] at A + (i*lda + p)*4
      const src0 = A + ((<usize>(i0 + s) * <usize>lda + <usize>p0) << 2);
      for (let r = 0; r < MR; r++) {
        let d = base + (<usize>r << 2);
        if (r >= rows) {
          for (let p = 0; p < kc; p++) { store<f32>(d, 0); d += MR * 4; }
          continue;
        }
        let src = src0 + <usize>r * lda4;
        if (alpha == 1) {
          for (let p = 0; p < kc; p++) { store<f32>(d, load<f32>(src)); src += 4; d += MR * 4; }
        } else {
          for (let p = 0; p < kc; p++) { store<f32>(d, alpha * load<f32>(src)); src += 4; d += MR * 4; }
        }
      }
    } else {
      // op(A)[i][p] = A[p][i] at A + (p*lda + i)*4: rows of A are contiguous in i.
      let src = A + ((<usize>p0 * <usize>lda + <usize>(i0 + s)) << 2);
      let d = base;
      for (let p = 0; p < kc; p++) {
        for (let r = 0; r < MR; r++) {
          store<f32>(d + (<usize>r << 2), r < rows ? alpha * load<f32>(src + (<usize>r << 2)) : 0);
        }
        src += lda4; d += MR * 4;
      }
    }
  }
}

/**
 * Packs rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-wide strips:
 * strip t holds dst[t*stride + p*NR + c] = op(B)[p0 + p][j0 + t + c] (0 past nc); stride is
 * kc floats per column, or (packBRows, part of a panel's rows) the whole panel's kc.
 */
function packBPanel(transB: bool, B: usize, ldb: i32, p0: i32, j0: i32, kc: i32, nc: i32, dst: usize,
  stride: i32 = -1): void {
  const ldb4 = <usize>ldb << 2;
  const st = stride < 0 ? kc : stride;
  for (let t = 0; t < nc; t += NR) {
    const cols = nc - t < NR ? nc - t : NR;
    let d = dst + (<usize>(t * st) << 2);
    if (!transB) {
      // B[p][j] at B + (p*ldb + j)*4
      let src = B + ((<usize>p0 * <usize>ldb + <usize>(j0 + t)) << 2);
      if (cols == NR) {
        for (let p = 0; p < kc; p++) {
          v128.store(d, v128.load(src));
          v128.store(d, v128.load(src, 16), 16);
          src += ldb4; d += 32;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          for (let c = 0; c < NR; c++) {
            store<f32>(d + (<usize>c << 2), c < cols ? load<f32>(src + (<usize>c << 2)) : 0);
          }
          src += ldb4; d += 32;
        }
      }
    } else {
      // op(B)[p][j] = B[j][p] at B + (j*ldb + p)*4
      const s0 = B + ((<usize>(j0 + t) * <usize>ldb + <usize>p0) << 2);
      if (cols == NR) {
        let c0 = s0;
        let c1 = c0 + ldb4;
        let c2 = c1 + ldb4;
        let c3 = c2 + ldb4;
        let c4 = c3 + ldb4;
        let c5 = c4 + ldb4;
        let c6 = c5 + ldb4;
        let c7 = c6 + ldb4;
        // four k at a time: two 4x4 transposes of (8 columns of op(B)) x (4 k) in registers
        const kc4 = kc & ~3;
        for (let p = 0; p < kc4; p += 4) {
          transpose4x4Store(v128.load(c0), v128.load(c1), v128.load(c2), v128.load(c3), d);
          transpose4x4Store(v128.load(c4), v128.load(c5), v128.load(c6), v128.load(c7), d + 16);
          c0 += 16; c1 += 16; c2 += 16; c3 += 16; c4 += 16; c5 += 16; c6 += 16; c7 += 16; d += 128;
        }
        for (let p = kc4; p < kc; p++) {
          store<f32>(d, load<f32>(c0));
          store<f32>(d, load<f32>(c1), 4);
          store<f32>(d, load<f32>(c2), 8);
          store<f32>(d, load<f32>(c3), 12);
          store<f32>(d, load<f32>(c4), 16);
          store<f32>(d, load<f32>(c5), 20);
          store<f32>(d, load<f32>(c6), 24);
          store<f32>(d, load<f32>(c7), 28);
          c0 += 4; c1 += 4; c2 += 4; c3 += 4; c4 += 4; c5 += 4; c6 += 4; c7 += 4; d += 32;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          for (let c = 0; c < NR; c++) {
            store<f32>(d + (<usize>c << 2),
              c < cols ? load<f32>(s0 + ((<usize>c * <usize>ldb + <usize>p) << 2)) : 0);
          }
          d += 32;
        }
      }
    }
  }
}

/**
 * Stores the transpose of the 4x4 block with rows r0..r3 as four rows 32 bytes apart from d
 * (row k of the output is [r0[k], r1[k], r2[k], r3[k]]): one half of a packed 8-wide B strip.
 */
// @ts-ignore: decorator
@inline
function transpose4x4Store(r0: v128, r1: v128, r2: v128, r3: v128, d: usize): void {
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(d, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 32);
  v128.store(d, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 64);
  v128.store(d, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 96);
}

/** c + a * b: fused (relaxed_madd) when the build enables relaxed-simd, else mul + add. */
// @ts-ignore: decorator
@inline
function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/** The 6x8 micro-kernel: twelve f32x4 accumulators; pa: kc x 6 packed, pb: kc x 8 packed. */
// @ts-ignore: decorator
@inline
function micro6x8(kc: i32, pa: usize, pb: usize, C: usize, ldc4: usize, acc: bool): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0);
  let c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0);
  let c51 = f32x4.splat(0);
  let k = kc;
  while (k >= 2) {
    let b0 = v128.load(pb);
    let b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(pa, 16);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(pa, 20);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
    b0 = v128.load(pb, 32);
    b1 = v128.load(pb, 48);
    a = v128.load32_splat(pa, 24);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 28);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 32);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 36);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(pa, 40);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(pa, 44);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
    pa += 48;
    pb += 64;
    k -= 2;
  }
  if (k > 0) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(pa, 16);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(pa, 20);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
  }
  let c = C;
  if (acc) {
    v128.store(c, f32x4.add(v128.load(c), c00));
    v128.store(c, f32x4.add(v128.load(c, 16), c01), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c10));
    v128.store(c, f32x4.add(v128.load(c, 16), c11), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c20));
    v128.store(c, f32x4.add(v128.load(c, 16), c21), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c30));
    v128.store(c, f32x4.add(v128.load(c, 16), c31), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c40));
    v128.store(c, f32x4.add(v128.load(c, 16), c41), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c50));
    v128.store(c, f32x4.add(v128.load(c, 16), c51), 16);
  } else {
    v128.store(c, c00);
    v128.store(c, c01, 16);
    c += ldc4;
    v128.store(c, c10);
    v128.store(c, c11, 16);
    c += ldc4;
    v128.store(c, c20);
    v128.store(c, c21, 16);
    c += ldc4;
    v128.store(c, c30);
    v128.store(c, c31, 16);
    c += ldc4;
    v128.store(c, c40);
    v128.store(c, c41, 16);
    c += ldc4;
    v128.store(c, c50);
    v128.store(c, c51, 16);
  }
}

/**
 * The 6x8 micro-kernel reading A in place (row-major, row stride rs bytes, unit k stride): no
 * packing of A, whose six rows stream sequentially; pb: kc x 8 packed.
 */
function micro6x8Direct(kc: i32, a0: usize, rs: usize, pb: usize, C: usize, ldc4: usize, acc: bool): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0);
  let c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0);
  let c51 = f32x4.splat(0);
  const a1 = a0 + rs;
  const a2 = a1 + rs;
  const a3 = a2 + rs;
  const a4 = a3 + rs;
  const a5 = a4 + rs;
  const end = <usize>kc << 2;
  const end2 = <usize>(kc & ~1) << 2;
  let o: usize = 0;
  for (; o < end2; o += 8) {
    let b0 = v128.load(pb);
    let b1 = v128.load(pb, 16);
    let a = v128.load32_splat(a0 + o);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(a1 + o);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(a2 + o);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(a3 + o);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(a4 + o);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(a5 + o);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
    b0 = v128.load(pb, 32);
    b1 = v128.load(pb, 48);
    a = v128.load32_splat(a0 + o, 4);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(a1 + o, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(a2 + o, 4);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(a3 + o, 4);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(a4 + o, 4);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(a5 + o, 4);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
    pb += 64;
  }
  if (o < end) {
    let b0 = v128.load(pb);
    let b1 = v128.load(pb, 16);
    let a = v128.load32_splat(a0 + o);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(a1 + o);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(a2 + o);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(a3 + o);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(a4 + o);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(a5 + o);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
  }
  let c = C;
  if (acc) {
    v128.store(c, f32x4.add(v128.load(c), c00));
    v128.store(c, f32x4.add(v128.load(c, 16), c01), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c10));
    v128.store(c, f32x4.add(v128.load(c, 16), c11), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c20));
    v128.store(c, f32x4.add(v128.load(c, 16), c21), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c30));
    v128.store(c, f32x4.add(v128.load(c, 16), c31), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c40));
    v128.store(c, f32x4.add(v128.load(c, 16), c41), 16);
    c += ldc4;
    v128.store(c, f32x4.add(v128.load(c), c50));
    v128.store(c, f32x4.add(v128.load(c, 16), c51), 16);
  } else {
    v128.store(c, c00);
    v128.store(c, c01, 16);
    c += ldc4;
    v128.store(c, c10);
    v128.store(c, c11, 16);
    c += ldc4;
    v128.store(c, c20);
    v128.store(c, c21, 16);
    c += ldc4;
    v128.store(c, c30);
    v128.store(c, c31, 16);
    c += ldc4;
    v128.store(c, c40);
    v128.store(c, c41, 16);
    c += ldc4;
    v128.store(c, c50);
    v128.store(c, c51, 16);
  }
}

/** Whether sgemm reads A in place (no packing) when A is row-major and alpha is 1. */
let directA: bool = true;

/** Benchmark switch: read A in place where possible (default) or always pack it. */
export function setDirectA(on: bool): void {
  directA = on;
}

/**
 * A short tile of R <= 4 rows (even R, rows past the edge are zero in the packing) x 8 columns
 * from an MR-interleaved packed strip, written to e (row stride NR floats).
 */
// @ts-ignore: decorator
@inline
function microShort(R: i32, kc: i32, pa: usize, pb: usize, e: usize): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    if (R > 2) {
      a = v128.load32_splat(pa, 8);
      c20 = madd(a, b0, c20);
      c21 = madd(a, b1, c21);
      a = v128.load32_splat(pa, 12);
      c30 = madd(a, b0, c30);
      c31 = madd(a, b1, c31);
    }
    pa += MR * 4;
    pb += 32;
  }
  v128.store(e, c00);
  v128.store(e, c01, 16);
  v128.store(e, c10, 32);
  v128.store(e, c11, 48);
  if (R > 2) {
    v128.store(e, c20, 64);
    v128.store(e, c21, 80);
    v128.store(e, c30, 96);
    v128.store(e, c31, 112);
  }
}

function microKernel(kc: i32, pa: usize, pb: usize, C: usize, ldc: i32, rows: i32, cols: i32, acc: bool,
  e: usize): void {
  if (rows == MR && cols == NR) {
    micro6x8(kc, pa, pb, C, <usize>ldc << 2, acc);
    return;
  }
  if (rows <= 2) microShort(2, kc, pa, pb, e);
  else if (rows <= 4) microShort(4, kc, pa, pb, e);
  else micro6x8(kc, pa, pb, e, NR * 4, false);
  copyEdge(e, C, ldc, rows, cols, acc);
}

/** Copies (or adds, acc) the valid rows x cols of an MR x NR edge tile into C. */
function copyEdge(e: usize, C: usize, ldc: i32, rows: i32, cols: i32, acc: bool): void {
  for (let r = 0; r < rows; r++) {
    const crow = C + (<usize>(r * ldc) << 2);
    const erow = e + (<usize>(r * NR) << 2);
    for (let c = 0; c < cols; c++) {
      const cp = crow + (<usize>c << 2);
      const v = load<f32>(erow + (<usize>c << 2));
      store<f32>(cp, acc ? load<f32>(cp) + v : v);
    }
  }
}

/** C[m][n] *= beta over an M x N block with row stride ldc (beta == 0 writes zeros, ignoring NaN in C). */
function scaleC(M: i32, N: i32, beta: f32, C: usize, ldc: i32): void {
  for (let i = 0; i < M; i++) {
    const row = C + (<usize>(i * ldc) << 2);
    if (beta == 0) {
      memory.fill(row, 0, <usize>N << 2);
    } else {
      for (let j = 0; j < N; j++) {
        const p = row + (<usize>j << 2);
        store<f32>(p, beta * load<f32>(p));
      }
    }
  }
}

/**
 * Single-precision GEMM on raw pointers, row-major:
 * C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C, where op(A) = A (M x K, row stride
 * lda) or A^T (A is K x M, row stride lda) and likewise for B (K x N or N x K, row stride ldb).
 * C has row stride ldc. beta == 0 overwrites C (NaN in C is not propagated).
 */
export function sgemm(transA: bool, transB: bool, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32,
  B: usize, ldb: i32, beta: f32, C: usize, ldc: i32): void {
  sgemmImpl(transA, transB, M, N, K, alpha, A, lda, B, ldb, 0, beta, C, ldc);
}

/** Floats in the whole-matrix packing of a K x N op(B) (packWholeB): K rows of N padded to NR. */
export function packedBLength(K: i32, N: i32): i32 {
  return K * ((N + NR - 1) / NR * NR);
}

/**
 * Packs all of op(B) (K x N) once, in the order sgemm visits its panels: for each NC-column
 * block j0 and KC-row block p0, the panel packBPanel writes, at dst + (j0*K + p0*ncPad) floats
 * (every block before the last is NC wide, a multiple of NR). dst holds packedBLength(K, N)
 * floats. A weight packed at prepare time saves sgemmPackedB the packing on every run.
 */
export function packWholeB(transB: bool, B: usize, ldb: i32, K: i32, N: i32, dst: usize): void {
  for (let j0 = 0; j0 < N; j0 += NC) {
    const nc = N - j0 < NC ? N - j0 : NC;
    const ncPad = (nc + NR - 1) / NR * NR;
    for (let p0 = 0; p0 < K; p0 += KC) {
      const kc = K - p0 < KC ? K - p0 : KC;
      packBPanel(transB, B, ldb, p0, j0, kc, nc, dst + (<usize>(j0 * K + p0 * ncPad) << 2));
    }
  }
}

/**
 * Packs `rows` consecutive rows of the stored B, row0 first, held at `src` (row stride ldb
 * floats), into their places in packWholeB's layout of op(B) (K x N) at dst: the same bytes
 * packWholeB writes there, so a weight read in chunks is packed chunk by chunk while the chunk is
 * in cache. Stored rows are k (op(B) = B) or n (transB, op(B) = B^T: row0 and rows then
 * multiples of NR, except a last chunk that ends at N). unpack: the inverse, dst's bytes back
 * into the rows at src (an adapter's base, docs/internals.md "Packed-only weights"). split: on the
 * threaded core, the chunk's strips are split over the threads (false: all on this one); begin:
 * the split packing is only started (parallelBegin: the workers pack while this thread reads the
 * next chunk into another buffer; parallelEnd, the core's pack_wait, ends it). Below the split's
 * size, or on one thread, it runs at once either way.
 */
export function packBRows(transB: bool, src: usize, row0: i32, rows: i32, ldb: i32, K: i32, N: i32, dst: usize,
  unpack: bool, split: bool = true, begin: bool = false): void {
  if (unpack) {
    unpackBRows(transB, src, row0, rows, ldb, K, N, dst);
    return;
  }
  // the columns of op(B) the chunk writes: all of them, or (transB) its own strips
  const lo = transB ? row0 : 0;
  const hi = transB ? row0 + rows : N;
  const strips = (hi - lo + NR - 1) / NR;
  const nt = threadCount();
  if (split && nt > 1 && <i64>rows * <i64>(transB ? K : N) >= PAR_MIN_PACK) {
    // each task packs whole strips (their bytes in dst are disjoint): the same bytes as on one thread
    const per = perTask(strips, nt);
    const a = taskArgs();
    store<i32>(a, transB ? 1 : 0);
    store<usize>(a, src, 4);
    store<i32>(a, row0, 8);
    store<i32>(a, rows, 12);
    store<i32>(a, ldb, 16);
    store<i32>(a, K, 20);
    store<i32>(a, N, 24);
    store<usize>(a, dst, 28);
    store<i32>(a, lo, 32);
    store<i32>(a, hi, 36);
    store<i32>(a, per * NR, 40);
    if (begin) parallelBegin(TASK_PACK_B, (strips + per - 1) / per);
    else parallelFor(TASK_PACK_B, (strips + per - 1) / per);
    return;
  }
  packBRowsCols(transB, src, row0, rows, ldb, K, N, dst, lo, hi);
}

/** Below this many stored elements a chunk's packing runs on one thread (a dispatch costs more). */
const PAR_MIN_PACK: i64 = 65536;

/** One task of a split packBRows: columns [lo + t*span, lo + (t+1)*span) of op(B), clipped to hi. */
export function packBTask(a: usize, t: i32): void {
  const lo = load<i32>(a, 32);
  const hi = load<i32>(a, 36);
  const span = load<i32>(a, 40);
  const c0 = lo + t * span;
  const c1 = hi - c0 < span ? hi : c0 + span;
  packBRowsCols(load<i32>(a) != 0, load<usize>(a, 4), load<i32>(a, 8), load<i32>(a, 12), load<i32>(a, 16),
    load<i32>(a, 20), load<i32>(a, 24), load<usize>(a, 28), c0, c1);
}

/**
 * packBRows for the columns [c0, c1) of op(B) only (c0 a multiple of NR; c1 too, or N): the
 * bytes packWholeB writes for those columns' strips.
 */
function packBRowsCols(transB: bool, src: usize, row0: i32, rows: i32, ldb: i32, K: i32, N: i32, dst: usize,
  c0: i32, c1: i32): void {
  const r1 = row0 + rows;
  for (let j0 = 0; j0 < N; j0 += NC) {
    const nc = N - j0 < NC ? N - j0 : NC;
    // this panel's columns in [c0, c1)
    const js = j0 > c0 ? j0 : c0;
    const je = j0 + nc < c1 ? j0 + nc : c1;
    if (js >= je) continue;
    const ncPad = (nc + NR - 1) / NR * NR;
    for (let p0 = 0; p0 < K; p0 += KC) {
      const kc = K - p0 < KC ? K - p0 : KC;
      const base = dst + (<usize>(j0 * K + p0 * ncPad) << 2);
      if (!transB) {
        // stored rows are k: the part of this panel's rows in the chunk, its strips in [js, je)
        const ps = p0 > row0 ? p0 : row0;
        const pe = p0 + kc < r1 ? p0 + kc : r1;
        if (ps >= pe) continue;
        packBPanel(false, src, ldb, ps - row0, js, pe - ps, je - js,
          base + (<usize>((ps - p0) * NR + (js - j0) * kc) << 2), kc);
      } else {
        // stored rows are n: the chunk's column strips of this panel in [js, je), every k
        packBPanel(true, src, ldb, p0, js - row0, kc, je - js, base + (<usize>((js - j0) * kc) << 2));
      }
    }
  }
}

/** packBRows' inverse: op(B)'s packed elements of the stored rows [row0, row0+rows) back into src. */
function unpackBRows(transB: bool, src: usize, row0: i32, rows: i32, ldb: i32, K: i32, N: i32, dst: usize): void {
  const cols = transB ? K : N;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = transB ? c : row0 + r;
      const n = transB ? row0 + r : c;
      const j0 = n / NC * NC;
      const nc = N - j0 < NC ? N - j0 : NC;
      const ncPad = (nc + NR - 1) / NR * NR;
      const p0 = k / KC * KC;
      const kc = K - p0 < KC ? K - p0 : KC;
      const jn = n - j0;
      const at = j0 * K + p0 * ncPad + (jn / NR * NR) * kc + (k - p0) * NR + jn % NR;
      store<f32>(src + (<usize>(r * ldb + c) << 2), load<f32>(dst + (<usize>at << 2)));
    }
  }
}

/**
 * sgemm with op(B) already packed by packWholeB (Bp, 16-byte aligned): the same blocking and
 * micro-kernels, so the results equal sgemm's bit for bit, without the per-call packing of B.
 */
export function sgemmPackedB(transA: bool, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32, Bp: usize,
  beta: f32, C: usize, ldc: i32): void {
  sgemmImpl(transA, false, M, N, K, alpha, A, lda, 0, 0, Bp, beta, C, ldc);
}

/** Bytes of the per-thread scratch a GEMM task needs: A panel, B panel, edge tile. */
export const GEMM_SCRATCH_A: usize = <usize>(MC * KC) << 2;
export const GEMM_SCRATCH_B: usize = <usize>(NC * KC) << 2;
export const GEMM_SCRATCH_E: usize = <usize>(MR * NR) << 2;

/**
 * Column panels per thread of a split GEMM (at least 4 strips each): many, unlike perTask's four,
 * so that a thread running faster (warmer caches, not interrupted) takes more panels and the
 * threads finish together. A panel adds almost no work: it packs only its own columns of B, and
 * reads A in place (a transposed or scaled A is packed per panel: at most 1/32 of its
 * multiply-adds); taking one is a compare-and-swap. In four interleaved A/B runs of GPT-2 on 2
 * threads (a busy machine) 16 per thread was 0.5 to 6 % faster than four, never slower.
 */
const COL_TASKS_PER_THREAD: i32 = 16;

/** Below this many multiply-adds (M*N*K) a GEMM runs on one thread: the dispatch would cost more. */
const PAR_MIN_MADDS: f64 = 1048576;

/** sgemm's body; Bp != 0 reads packWholeB's layout of op(B) instead of packing B. */
function sgemmImpl(transA: bool, transB: bool, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32,
  B: usize, ldb: i32, Bp: usize, beta: f32, C: usize, ldc: i32): void {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0) {
    if (beta != 1) scaleC(M, N, beta, C, ldc);
    return;
  }
  if (M == 1 && Bp == 0) {
    // a row vector times B: stream B with SIMD, no packing; on several threads, by column ranges
    // (each output element is computed alone, so the ranges give the same bits)
    let a = A;
    let lda1 = lda;
    if (transB && transA && lda != 1) {
      // gather the strided column of A into contiguous scratch
      a = ensureA(<usize>K << 2);
      for (let p = 0; p < K; p++) store<f32>(a + (<usize>p << 2), load<f32>(A + ((<usize>p * <usize>lda) << 2)));
      lda1 = 1;
    }
    const nt = threadCount();
    if (nt > 1 && N >= 16 * nt && <f64>N * <f64>K >= PAR_MIN_MADDS) {
      const chunk = (perTask(N, nt) + 7) & ~7;
      const t = taskArgs();
      store<i32>(t, transA ? 1 : 0);
      store<i32>(t, transB ? 1 : 0, 4);
      store<i32>(t, N, 8);
      store<i32>(t, K, 12);
      store<f32>(t, alpha, 16);
      store<usize>(t, a, 20);
      store<i32>(t, lda1, 24);
      store<usize>(t, B, 28);
      store<i32>(t, ldb, 32);
      store<f32>(t, beta, 36);
      store<usize>(t, C, 40);
      store<i32>(t, chunk, 44);
      parallelFor(TASK_GEMV, (N + chunk - 1) / chunk);
      return;
    }
    if (transB) gemvDot(N, K, alpha, a, B, ldb, beta, C, 0, N);
    else gemvRow(transA, N, K, alpha, A, lda, B, ldb, beta, C, 0, N);
    return;
  }
  const nt = threadCount();
  if (nt > 1 && <f64>M * <f64>N * <f64>K >= PAR_MIN_MADDS) {
    // column panels when there are enough (each task packs only its own columns of B), else row
    // panels (each task packs all of B unless it is pre-packed). Either way every element of C
    // sums the same products in the same order as on one thread: the results are identical.
    const colStrips = (N + NR - 1) / NR;
    const rowStrips = (M + MR - 1) / MR;
    let byCols = colStrips >= 4 * nt;
    let chunk = 0;
    let tasks = 0;
    if (byCols) {
      let per = (colStrips + COL_TASKS_PER_THREAD * nt - 1) / (COL_TASKS_PER_THREAD * nt);
      if (per < 4) per = 4;
      chunk = per * NR;
      tasks = (N + chunk - 1) / chunk;
    } else {
      let per = perTask(rowStrips, nt);
      const least = Bp != 0 ? 2 : 8;
      if (per < least) per = least;
      chunk = per * MR;
      tasks = (M + chunk - 1) / chunk;
    }
    if (tasks >= 2 && tasks <= 0xffff) {
      const a = taskArgs();
      store<i32>(a, transA ? 1 : 0);
      store<i32>(a, transB ? 1 : 0, 4);
      store<i32>(a, M, 8);
      store<i32>(a, N, 12);
      store<i32>(a, K, 16);
      store<f32>(a, alpha, 20);
      store<usize>(a, A, 24);
      store<i32>(a, lda, 28);
      store<usize>(a, B, 32);
      store<i32>(a, ldb, 36);
      store<usize>(a, Bp, 40);
      store<f32>(a, beta, 44);
      store<usize>(a, C, 48);
      store<i32>(a, ldc, 52);
      store<i32>(a, chunk, 56);
      store<i32>(a, byCols ? 1 : 0, 60);
      store<i32>(a, directA ? 1 : 0, 64);
      parallelFor(TASK_GEMM, tasks);
      return;
    }
  }
  if (edgeBuf == 0) edgeBuf = heap.alloc(MR * NR * 4 + 16);
  sgemmRange(transA, transB, M, N, K, alpha, A, lda, B, ldb, Bp, beta, C, ldc, 0, N, 0, 0,
    (edgeBuf + 15) & ~(<usize>15), directA);
}

/**
 * One task of a split GEMM (threads.ts): the column panel [t*chunk, (t+1)*chunk) or the row
 * panel of the same rows, with the scratch of thread slot `slot`. Reads only linear memory.
 */
export function gemmTask(c: usize, a: usize, t: i32, slot: i32): void {
  const transA = load<i32>(a) != 0;
  const transB = load<i32>(a, 4) != 0;
  let M = load<i32>(a, 8);
  const N = load<i32>(a, 12);
  const K = load<i32>(a, 16);
  const alpha = load<f32>(a, 20);
  let A = load<usize>(a, 24);
  const lda = load<i32>(a, 28);
  const B = load<usize>(a, 32);
  const ldb = load<i32>(a, 36);
  const Bp = load<usize>(a, 40);
  const beta = load<f32>(a, 44);
  let C = load<usize>(a, 48);
  const ldc = load<i32>(a, 52);
  const chunk = load<i32>(a, 56);
  const byCols = load<i32>(a, 60) != 0;
  const direct = load<i32>(a, 64) != 0;
  const pa = slotScratch(c, slot, 0);
  const pb = slotScratch(c, slot, 1);
  const e = slotScratch(c, slot, 2);
  const lo = t * chunk;
  if (byCols) {
    const hi = N - lo < chunk ? N : lo + chunk;
    sgemmRange(transA, transB, M, N, K, alpha, A, lda, B, ldb, Bp, beta, C, ldc, lo, hi, pa, pb, e, direct);
  } else {
    const rows = M - lo < chunk ? M - lo : chunk;
    A += transA ? <usize>lo << 2 : (<usize>lo * <usize>lda) << 2;
    C += (<usize>lo * <usize>ldc) << 2;
    M = rows;
    sgemmRange(transA, transB, M, N, K, alpha, A, lda, B, ldb, Bp, beta, C, ldc, 0, N, pa, pb, e, direct);
  }
}

/**
 * The blocked GEMM over the columns [jBeg, jEnd) of C (jBeg a multiple of NR), with the same
 * NC/KC blocking as the whole product (so each element's sum is the same whatever the range).
 * paBuf/pbBuf: scratch for the A and B panels (0: the module's grow-only buffers); e: an
 * aligned MR x NR edge tile.
 */
function sgemmRange(transA: bool, transB: bool, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32,
  B: usize, ldb: i32, Bp: usize, beta: f32, C: usize, ldc: i32, jBeg: i32, jEnd: i32, paBuf: usize,
  pbBuf: usize, e: usize, directA: bool): void {
  // beta other than 0/1: scale C once, then accumulate.
  let firstAcc = beta != 0;
  if (beta != 0 && beta != 1) scaleC(M, jEnd - jBeg, beta, C + (<usize>jBeg << 2), ldc);
  // balanced M blocks of at most MC rows, a multiple of MR
  const mBlocks = (M + MC - 1) / MC;
  const mcStep = ((M + mBlocks - 1) / mBlocks + MR - 1) / MR * MR;
  for (let j0 = 0; j0 < jEnd; j0 += NC) {
    const nc = N - j0 < NC ? N - j0 : NC;
    const ncPad = (nc + NR - 1) / NR * NR;
    const ja = j0 > jBeg ? j0 : jBeg;
    const jb = j0 + nc < jEnd ? j0 + nc : jEnd;
    if (ja >= jb) continue;
    const w = jb - ja;
    for (let p0 = 0; p0 < K; p0 += KC) {
      const kc = K - p0 < KC ? K - p0 : KC;
      const acc = p0 > 0 || firstAcc;
      let pb: usize;
      if (Bp != 0) {
        pb = Bp + (<usize>(j0 * K + p0 * ncPad) << 2) + (<usize>((ja - j0) * kc) << 2);
      } else {
        const wPad = (w + NR - 1) / NR * NR;
        pb = pbBuf != 0 ? pbBuf : ensureB(<usize>(wPad * kc) << 2);
        packBPanel(transB, B, ldb, p0, ja, kc, w, pb);
      }
      for (let i0 = 0; i0 < M; i0 += mcStep) {
        const mc = M - i0 < mcStep ? M - i0 : mcStep;
        const mcPad = (mc + MR - 1) / MR * MR;
        const pa = paBuf != 0 ? paBuf : ensureA(<usize>(mcPad * kc) << 2);
        // direct: full 6-row strips read A in place; only a partial last strip is packed
        const direct = directA && !transA && alpha == 1;
        const mFull = direct ? mc / MR * MR : 0;
        if (!direct) packAPanel(transA, A, lda, i0, p0, mc, kc, alpha, pa);
        else if (mFull < mc) packAPanel(false, A, lda, i0 + mFull, p0, mc - mFull, kc, 1, pa + (<usize>(mFull * kc) << 2));
        const rs = <usize>lda << 2;
        for (let jr = 0; jr < w; jr += NR) {
          const cols = w - jr < NR ? w - jr : NR;
          const bstrip = pb + (<usize>(jr * kc) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = mc - ir < MR ? mc - ir : MR;
            const cptr = C + ((<usize>(i0 + ir) * <usize>ldc + <usize>(ja + jr)) << 2);
            if (ir < mFull && cols == NR) {
              micro6x8Direct(kc, A + ((<usize>(i0 + ir) * <usize>lda + <usize>p0) << 2), rs, bstrip, cptr,
                <usize>ldc << 2, acc);
            } else if (ir < mFull) {
              micro6x8Direct(kc, A + ((<usize>(i0 + ir) * <usize>lda + <usize>p0) << 2), rs, bstrip, e, NR * 4, false);
              copyEdge(e, cptr, ldc, rows, cols, acc);
            } else {
              microKernel(kc, pa + (<usize>(ir * kc) << 2), bstrip, cptr, ldc, rows, cols, acc, e);
            }
          }
        }
      }
    }
  }
}

/**
 * C[1 x N] = alpha * a[1 x K] * B[K x N] + beta * C over the columns [j0, j1): axpy over B's rows
 * (each element: beta * C, then + av * B[p][j] for every p, multiply then add).
 */
function gemvRow(transA: bool, N: i32, K: i32, alpha: f32, A: usize, lda: i32, B: usize, ldb: i32, beta: f32,
  C: usize, j0: i32, j1: i32): void {
  scaleC(1, j1 - j0, beta, C + (<usize>j0 << 2), N);
  const astep: usize = transA ? <usize>lda << 2 : 4;
  const n4 = j0 + ((j1 - j0) & ~3);
  for (let p = 0; p < K; p++) {
    const av = alpha * load<f32>(A + <usize>p * astep);
    if (av == 0) continue;
    const va = f32x4.splat(av);
    const brow = B + ((<usize>p * <usize>ldb) << 2);
    let j = j0;
    for (; j < n4; j += 4) {
      const o = <usize>j << 2;
      v128.store(C + o, f32x4.add(v128.load(C + o), f32x4.mul(va, v128.load(brow + o))));
    }
    for (; j < j1; j++) {
      const o = <usize>j << 2;
      store<f32>(C + o, load<f32>(C + o) + av * load<f32>(brow + o));
    }
  }
}

/**
 * C[1 x N] = alpha * a[1 x K] * B^T (B is N x K) + beta * C over the columns [j0, j1): one SIMD dot
 * product per row of B; a is contiguous (sgemmImpl gathers a strided A first).
 */
function gemvDot(N: i32, K: i32, alpha: f32, a: usize, B: usize, ldb: i32, beta: f32, C: usize, j0: i32,
  j1: i32): void {
  const k4 = K & ~3;
  for (let j = j0; j < j1; j++) {
    const brow = B + ((<usize>j * <usize>ldb) << 2);
    let acc = f32x4.splat(0);
    let p = 0;
    for (; p < k4; p += 4) {
      const o = <usize>p << 2;
      acc = madd(v128.load(a + o), v128.load(brow + o), acc);
    }
    let s: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) +
      f32x4.extract_lane(acc, 3);
    for (; p < K; p++) s += load<f32>(a + (<usize>p << 2)) * load<f32>(brow + (<usize>p << 2));
    const cp = C + (<usize>j << 2);
    store<f32>(cp, alpha * s + (beta == 0 ? 0 : beta * load<f32>(cp)));
  }
}

/** One task of a split GEMV (sgemmImpl, M == 1): the columns [t*chunk, (t+1)*chunk). */
export function gemvTask(a: usize, t: i32): void {
  const transA = load<i32>(a) != 0;
  const transB = load<i32>(a, 4) != 0;
  const N = load<i32>(a, 8);
  const K = load<i32>(a, 12);
  const alpha = load<f32>(a, 16);
  const A = load<usize>(a, 20);
  const lda = load<i32>(a, 24);
  const B = load<usize>(a, 28);
  const ldb = load<i32>(a, 32);
  const beta = load<f32>(a, 36);
  const C = load<usize>(a, 40);
  const chunk = load<i32>(a, 44);
  const j0 = t * chunk;
  const j1 = N - j0 < chunk ? N : j0 + chunk;
  if (transB) gemvDot(N, K, alpha, A, B, ldb, beta, C, j0, j1);
  else gemvRow(transA, N, K, alpha, A, lda, B, ldb, beta, C, j0, j1);
}

/**
 * One whole product on this thread with the scratch of a thread slot: what sgemmImpl does for it
 * when it does not split it, so its bits are the same as sgemm's on one thread.
 */
function sgemmOnSlot(M: i32, N: i32, K: i32, A: usize, lda: i32, B: usize, ldb: i32, C: usize, ldc: i32,
  pa: usize, pb: usize, e: usize, direct: bool): void {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scaleC(M, N, 0, C, ldc);
    return;
  }
  if (M == 1) {
    gemvRow(false, N, K, 1, A, lda, B, ldb, 0, C, 0, N);
    return;
  }
  sgemmRange(false, false, M, N, K, 1, A, lda, B, ldb, 0, 0, C, ldc, 0, N, pa, pb, e, direct);
}

/**
 * `batch` products C_t = A_t * B_t (row-major M x K times K x N, C_t overwritten), A_t and B_t at
 * the element offsets offs[2t] and offs[2t + 1] (i32 pairs) from A and B, C_t at C + t*M*N. On
 * several threads, when there are enough products to share out evenly, each task computes whole
 * products (one job instead of one per product); otherwise each goes through sgemm, which may
 * split it. Either way every product's bits are those of sgemm on one thread.
 */
export function sgemmBatchedOffsets(batch: i32, M: i32, N: i32, K: i32, A: usize, lda: i32, B: usize, ldb: i32,
  C: usize, offs: usize): void {
  const nt = threadCount();
  const mn = <usize>M * <usize>N;
  if (nt > 1 && batch >= 2 * nt && (batch % nt == 0 || batch >= 4 * nt) &&
    <f64>batch * <f64>M * <f64>N * <f64>K >= PAR_MIN_MADDS) {
    let per = (batch + 16 * nt - 1) / (16 * nt);
    if (per < 1) per = 1;
    const a = taskArgs();
    store<i32>(a, M);
    store<i32>(a, N, 4);
    store<i32>(a, K, 8);
    store<usize>(a, A, 12);
    store<i32>(a, lda, 16);
    store<usize>(a, B, 20);
    store<i32>(a, ldb, 24);
    store<usize>(a, C, 28);
    store<usize>(a, offs, 32);
    store<i32>(a, batch, 36);
    store<i32>(a, per, 40);
    store<i32>(a, directA ? 1 : 0, 44);
    parallelFor(TASK_GEMM_BATCH, (batch + per - 1) / per);
    return;
  }
  for (let t = 0; t < batch; t++) {
    const p = offs + (<usize>t << 3);
    sgemm(false, false, M, N, K, 1, A + (<usize>load<i32>(p) << 2), lda, B + (<usize>load<i32>(p, 4) << 2), ldb, 0,
      C + ((<usize>t * mn) << 2), N);
  }
}

/** One task of sgemmBatchedOffsets: products [t*per, (t+1)*per), each whole, on slot `slot`'s scratch. */
export function gemmBatchTask(c: usize, a: usize, t: i32, slot: i32): void {
  const M = load<i32>(a);
  const N = load<i32>(a, 4);
  const K = load<i32>(a, 8);
  const A = load<usize>(a, 12);
  const lda = load<i32>(a, 16);
  const B = load<usize>(a, 20);
  const ldb = load<i32>(a, 24);
  const C = load<usize>(a, 28);
  const offs = load<usize>(a, 32);
  const batch = load<i32>(a, 36);
  const per = load<i32>(a, 40);
  const direct = load<i32>(a, 44) != 0;
  const mn = <usize>M * <usize>N;
  const b0 = t * per;
  const b1 = batch - b0 < per ? batch : b0 + per;
  for (let b = b0; b < b1; b++) {
    const p = offs + (<usize>b << 3);
    sgemmOnSlot(M, N, K, A + (<usize>load<i32>(p) << 2), lda, B + (<usize>load<i32>(p, 4) << 2), ldb,
      C + ((<usize>b * mn) << 2), N, slotScratch(c, slot, 0), slotScratch(c, slot, 1), slotScratch(c, slot, 2),
      direct);
  }
}

/**
 * Strided batched SGEMM: for b in [0, batch): the b-th problem's A, B, C start at
 * A + b*strideA, B + b*strideB, C + b*strideC (strides in elements; 0 broadcasts).
 */
export function sgemmBatched(batch: i32, transA: bool, transB: bool, M: i32, N: i32, K: i32, alpha: f32,
  A: usize, lda: i32, strideA: i32, B: usize, ldb: i32, strideB: i32, beta: f32, C: usize, ldc: i32,
  strideC: i32): void {
  for (let b = 0; b < batch; b++) {
    sgemm(transA, transB, M, N, K, alpha, A + (<usize>(b * strideA) << 2), lda, B + (<usize>(b * strideB) << 2),
      ldb, beta, C + (<usize>(b * strideC) << 2), ldc);
  }
}
