// kiln's own float32 GEMM: the tiled and thin SGEMM kernels, and kiln_gemm (gemm.h), the one
// GEMM entry point of MatMul, Gemm and Einsum (linalg.hip) and Conv (conv.hip), which runs the
// vendor BLAS when one loaded and these kernels otherwise.
//
// kiln's SGEMM: row-major, strided-batched, float32, C = alpha * op(A) * op(B) + beta * C, every
// element accumulated in float with fmaf in k order; beta == 0 never reads C, alpha == 0 (or
// k == 0) reads neither A nor B. Two kinds of kernel:
//   - tiled, 64 x 64 tiles of C per block of 256 threads (32 x 32 per 64 threads when the 64-tiles
//     would not fill about two waves of a large GPU): K walked in 16-deep slices staged in shared
//     memory, op(A) and op(B) read with the index contiguous in memory running across threads (the
//     loads coalesce for either transposition), the next slice read into registers while the
//     current one is multiplied; each thread holds a 4 x 4 sub-tile (rows ty + TM/4 i, columns
//     tx + TN/4 j). Grid: x over column tiles, y over row tiles, z over the batch (y and z loop past
//     the launch limits);
//   - thin (m or n at most 16: GEMV-like products, tiny batched matrices): one thread per element
//     of C, its k loop in registers.
// Both come in three formats (template F): float32, and for kiln_gemm_half (precision fp16/bf16)
// B read as float16 or bfloat16 bits and A rounded to the same format as it is loaded, the sums
// in float32 as before (a product of two 16-bit values is exact in float32, so this is the
// arithmetic of a 16-bit tensor core with float32 accumulation, up to the order of the sums).
#include <algorithm>

#include "../blas.h"
#include "device.h"
#include "gemm.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

// ---- kiln's SGEMM ------------------------------------------------------------------------

constexpr int kTileK = 16;
constexpr int64_t kMaxGridYZ = 65535;
/** Below this many 64 x 64 tiles (about two waves of a large GPU) the 32 x 32 kernel runs. */
constexpr int64_t kSmallTileBelow = 256;
/** GEMMs with m or n at most this run one thread per element of C (sgemmThinKernel). */
constexpr int64_t kThinSide = 16;

struct GemmParams {
  int64_t m, n, k;
  float alpha, beta;
  const float* a;
  int64_t lda, strideA;
  const void* b;  // float32, or 16-bit bits (format F)
  int64_t ldb, strideB;
  float* c;
  int64_t ldc, strideC;
  int64_t batch;
  int64_t tilesM;
};

/**
 * Element q of this thread's share of a ROWS x kTileK slice of op(X) (op(A) for rows of C, or
 * op(B)^T for columns of C): its row and k within the tile. `kFast`: X stores the slice with k
 * contiguous (A row-major, or B transposed), so k runs fastest across threads; else rows do.
 */
template <int ROWS, int NT, bool kFast>
KILN_DEVICE void tileIndex(int tid, int q, int& row, int& kk) {
  const int e = tid + q * NT;
  if (kFast) {
    row = e / kTileK;
    kk = e % kTileK;
  } else {
    kk = e / ROWS;
    row = e % ROWS;
  }
}

/** How an operand's elements are read: float32 as stored, float32 rounded to 16 bits, or 16-bit bits widened. */
enum LoadMode { L_F32 = 0, L_ROUND_F16 = 1, L_ROUND_BF16 = 2, L_F16 = 3, L_BF16 = 4 };
/** A's and B's load modes for format F (H_NONE, H_FP16, H_BF16). */
template <int F>
constexpr int kLoadA = F == H_FP16 ? L_ROUND_F16 : F == H_BF16 ? L_ROUND_BF16 : L_F32;
template <int F>
constexpr int kLoadB = F == H_FP16 ? L_F16 : F == H_BF16 ? L_BF16 : L_F32;

template <int MODE>
KILN_DEVICE float loadElem(const void* X, int64_t i) {
  if constexpr (MODE == L_F16) {
    return f16ToF32(static_cast<const uint16_t*>(X)[i]);
  } else if constexpr (MODE == L_BF16) {
    return bf16ToF32(static_cast<const uint16_t*>(X)[i]);
  } else {
    const float v = static_cast<const float*>(X)[i];
    if constexpr (MODE == L_ROUND_F16) return f16ToF32(f32ToF16(v));
    if constexpr (MODE == L_ROUND_BF16) return bf16ToF32(f32ToBf16(v));
    return v;
  }
}

/** Loads this thread's share of rows [r0, r0 + ROWS) x k [p0, p0 + kTileK) of op(X) (zeros outside). */
template <int ROWS, int NT, bool kFast, int MODE>
KILN_DEVICE void loadSlice(const void* X, int64_t ld, int64_t rows, int64_t k, int64_t r0, int64_t p0, int tid,
                           float* reg) {
  for (int q = 0; q < ROWS * kTileK / NT; q++) {
    int row, kk;
    tileIndex<ROWS, NT, kFast>(tid, q, row, kk);
    const int64_t gr = r0 + row, gp = p0 + kk;
    float v = 0.0f;
    if (gr < rows && gp < k) v = loadElem<MODE>(X, kFast ? gr * ld + gp : gp * ld + gr);
    reg[q] = v;
  }
}

template <int ROWS, int NT, bool kFast>
KILN_DEVICE void storeSlice(float (*S)[ROWS + 1], int tid, const float* reg) {
  for (int q = 0; q < ROWS * kTileK / NT; q++) {
    int row, kk;
    tileIndex<ROWS, NT, kFast>(tid, q, row, kk);
    S[kk][row] = reg[q];
  }
}

/**
 * A TM x TN tile of C per block of (TM/4) * (TN/4) threads, each computing rows ty + (TM/4) i and
 * columns tx + (TN/4) j (i, j < 4). The next k slice is read into registers while the current one
 * is multiplied out of shared memory.
 */
template <int TM, int TN, bool TA, bool TB, int F>
__global__ void __launch_bounds__((TM / 4) * (TN / 4)) sgemmKernel(GemmParams p) {
  constexpr int MA = kLoadA<F>, MB = kLoadB<F>;
  constexpr int64_t bBytes = F == H_NONE ? 4 : 2;
  constexpr int TX = TN / 4;
  constexpr int TY = TM / 4;
  constexpr int NT = TX * TY;
  __shared__ float As[kTileK][TM + 1];
  __shared__ float Bs[kTileK][TN + 1];
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % TX;
  const int ty = tid / TX;
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * TN;
  const int64_t kTotal = p.alpha != 0.0f ? p.k : 0;  // alpha == 0: C = beta * C, A and B unread
  float ra[TM * kTileK / NT];
  float rb[TN * kTileK / NT];
  for (int64_t bz = blockIdx.z; bz < p.batch; bz += gridDim.z) {
    const float* A = p.a + bz * p.strideA;
    const void* B = static_cast<const char*>(p.b) + bz * p.strideB * bBytes;
    float* C = p.c + bz * p.strideC;
    for (int64_t ti = blockIdx.y; ti < p.tilesM; ti += gridDim.y) {
      const int64_t i0 = ti * TM;
      float acc[4][4];
      for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
      }
      if (kTotal > 0) {
        loadSlice<TM, NT, !TA, MA>(A, p.lda, p.m, kTotal, i0, 0, tid, ra);
        loadSlice<TN, NT, TB, MB>(B, p.ldb, p.n, kTotal, j0, 0, tid, rb);
      }
      for (int64_t p0 = 0; p0 < kTotal; p0 += kTileK) {
        storeSlice<TM, NT, !TA>(As, tid, ra);
        storeSlice<TN, NT, TB>(Bs, tid, rb);
        __syncthreads();
        if (p0 + kTileK < kTotal) {
          loadSlice<TM, NT, !TA, MA>(A, p.lda, p.m, kTotal, i0, p0 + kTileK, tid, ra);
          loadSlice<TN, NT, TB, MB>(B, p.ldb, p.n, kTotal, j0, p0 + kTileK, tid, rb);
        }
#pragma unroll
        for (int kk = 0; kk < kTileK; kk++) {
          float av[4], bv[4];
          for (int i = 0; i < 4; i++) {
            av[i] = As[kk][ty + TY * i];
            bv[i] = Bs[kk][tx + TX * i];
          }
          for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
          }
        }
        __syncthreads();
      }
      for (int i = 0; i < 4; i++) {
        const int64_t gi = i0 + ty + TY * i;
        if (gi >= p.m) continue;
        for (int j = 0; j < 4; j++) {
          const int64_t gj = j0 + tx + TX * j;
          if (gj >= p.n) continue;
          float* cp = C + gi * p.ldc + gj;
          float v = p.alpha * acc[i][j];
          if (p.beta != 0.0f) v += p.beta * *cp;
          *cp = v;
        }
      }
    }
  }
}

/**
 * One thread per element of C (batch, i, j), the k loop in registers: the GEMMs with a side of at
 * most kThinSide (GEMV-like rows or columns, tiny batched matrices), where a tile would stay mostly
 * empty. The same fmaf sequence in k order as the tiled kernel.
 */
template <int F>
__global__ void sgemmThinKernel(GemmParams p, int transA, int transB, int64_t total) {
  constexpr int MA = kLoadA<F>, MB = kLoadB<F>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t kTotal = p.alpha != 0.0f ? p.k : 0;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t q = e / p.n;
    const int64_t j = e - q * p.n;
    const int64_t bz = q / p.m;
    const int64_t i = q - bz * p.m;
    const int64_t as = transA ? p.lda : 1, bs = transB ? 1 : p.ldb;
    const int64_t a0 = bz * p.strideA + (transA ? i : i * p.lda);
    const int64_t b0 = bz * p.strideB + (transB ? j * p.ldb : j);
    float acc = 0.0f;
    for (int64_t kk = 0; kk < kTotal; kk++) {
      acc = fmaf(loadElem<MA>(p.a, a0 + kk * as), loadElem<MB>(p.b, b0 + kk * bs), acc);
    }
    float* cp = p.c + bz * p.strideC + i * p.ldc + j;
    float v = p.alpha * acc;
    if (p.beta != 0.0f) v += p.beta * *cp;
    *cp = v;
  }
}

template <int TM, int TN, int F>
bool launchGemm(Exec& x, GemmParams p, bool transA, bool transB) {
  constexpr int NT = (TM / 4) * (TN / 4);
  p.tilesM = (p.m + TM - 1) / TM;
  const int64_t tilesN = (p.n + TN - 1) / TN;
  if (tilesN > 0x7fffffff) {
    return x.err->fail(KILN_E_KERNEL, "sgemm: n " + std::to_string(p.n) + " is past the kernel's grid");
  }
  const dim3 grid(static_cast<unsigned>(tilesN), static_cast<unsigned>(std::min(p.tilesM, kMaxGridYZ)),
                  static_cast<unsigned>(std::min(p.batch, kMaxGridYZ)));
  void (*kernel)(GemmParams) =
      transA ? (transB ? sgemmKernel<TM, TN, true, true, F> : sgemmKernel<TM, TN, true, false, F>)
             : (transB ? sgemmKernel<TM, TN, false, true, F> : sgemmKernel<TM, TN, false, false, F>);
  KILN_LAUNCH(kernel, grid, dim3(NT), 0, x.stream, p);
  return launched(x, "sgemm");
}

/** kiln's own kernels for format F (b: float32, or 16-bit bits). */
template <int F>
bool ownGemm(Exec& x, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, int64_t strideA, const void* b, int64_t ldb, int64_t strideB, float beta, float* c,
             int64_t ldc, int64_t strideC, int64_t batch) {
  GemmParams p;
  p.m = m;
  p.n = n;
  p.k = k < 0 ? 0 : k;
  p.alpha = alpha;
  p.beta = beta;
  p.a = a;
  p.lda = lda;
  p.strideA = strideA;
  p.b = b;
  p.ldb = ldb;
  p.strideB = strideB;
  p.c = c;
  p.ldc = ldc;
  p.strideC = strideC;
  p.batch = batch;
  p.tilesM = 0;
  if (m <= kThinSide || n <= kThinSide) {
    const int64_t total = batch * m * n;
    KILN_LAUNCH(sgemmThinKernel<F>, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, p, transA ? 1 : 0,
                transB ? 1 : 0, total);
    return launched(x, "sgemm");
  }
  const int64_t tiles64 = ((m + 63) / 64) * ((n + 63) / 64) * batch;
  if (tiles64 < kSmallTileBelow) return launchGemm<32, 32, F>(x, p, transA, transB);
  return launchGemm<64, 64, F>(x, p, transA, transB);
}

/** rows x cols matrices at a (row stride lda, batch stride strideA) rounded to format F, packed at out. */
template <int F>
__global__ void roundMatricesKernel(const float* a, int64_t lda, int64_t strideA, int64_t rows, int64_t cols,
                                    uint16_t* out, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t q = e / cols;
    const int64_t j = e - q * cols;
    const int64_t bz = q / rows;
    const int64_t i = q - bz * rows;
    const float v = a[bz * strideA + i * lda + j];
    out[e] = F == H_BF16 ? f32ToBf16(v) : f32ToF16(v);
  }
}

template <int F>
__global__ void toHalfKernel(const float* src, uint16_t* dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    dst[e] = F == H_BF16 ? f32ToBf16(src[e]) : f32ToF16(src[e]);
  }
}

}  // namespace

bool kiln_gemm(Exec& x, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, int64_t strideA, const float* b, int64_t ldb, int64_t strideB, float beta, float* c,
               int64_t ldc, int64_t strideC, int64_t batch) {
  if (m <= 0 || n <= 0 || batch <= 0) return true;
  if (x.blas != nullptr && k > 0) {
    return x.blas->sgemm(transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC,
                         batch, *x.err);
  }
  return ownGemm<H_NONE>(x, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC,
                         batch);
}

bool kiln_gemm_half(Exec& x, HalfFormat f, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, int64_t strideA, const uint16_t* b, int64_t ldb, int64_t strideB,
                    float beta, float* c, int64_t ldc, int64_t strideC, int64_t batch) {
  if (m <= 0 || n <= 0 || batch <= 0) return true;
  if (x.blas != nullptr && x.blas->hasGemmEx() && k > 0) {
    // A rounded into the workspace, packed: rows x cols per batch entry as stored (op() unchanged)
    const int64_t rows = transA ? k : m, cols = transA ? m : k;
    const int64_t count = strideA == 0 ? 1 : batch;
    const int64_t total = count * rows * cols;
    uint16_t* a16 = reinterpret_cast<uint16_t*>(x.workspace);
    if (lda == cols && (count == 1 || strideA == rows * cols)) {
      // contiguous (the usual case): a flat conversion, no index arithmetic per element
      if (!kiln_to_half(x, f, a, a16, total)) return false;
    } else if (f == H_BF16) {
      KILN_LAUNCH(roundMatricesKernel<H_BF16>, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, a, lda, strideA,
                  rows, cols, a16, total);
    } else {
      KILN_LAUNCH(roundMatricesKernel<H_FP16>, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, a, lda, strideA,
                  rows, cols, a16, total);
    }
    if (!launched(x, "rounding a GEMM's A to 16 bits")) return false;
    return x.blas->gemmEx(f == H_BF16, transA, transB, m, n, k, alpha, a16, cols, strideA == 0 ? 0 : rows * cols, b,
                          ldb, strideB, beta, c, ldc, strideC, batch, *x.err);
  }
  if (f == H_BF16) {
    return ownGemm<H_BF16>(x, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC,
                           batch);
  }
  return ownGemm<H_FP16>(x, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC,
                         batch);
}

bool kiln_to_half(Exec& x, HalfFormat f, const float* src, uint16_t* dst, int64_t n) {
  if (n <= 0) return true;
  if (f == H_BF16) {
    KILN_LAUNCH(toHalfKernel<H_BF16>, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, src, dst, n);
  } else {
    KILN_LAUNCH(toHalfKernel<H_FP16>, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, src, dst, n);
  }
  return launched(x, "converting a GEMM weight to 16 bits");
}

}  // namespace kiln
