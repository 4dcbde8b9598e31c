// kiln_gemm: the one float32 GEMM entry point of the kernel families (MatMul, Gemm, Einsum, Conv).
// It takes Blas::sgemm's arguments (row-major, strided-batched, transA/transB, alpha/beta; a
// stride of 0 broadcasts that operand over the batch) and runs the vendor BLAS when one loaded
// (x.blas), else kiln's own tiled SGEMM kernel (kernels/gemm.hip). Launches on x.stream;
// false with x.err set on failure. Empty problems (m, n or batch 0) launch nothing; k == 0 (or
// alpha == 0) leaves C = beta * C, with beta == 0 writing zeros whatever C held.
#pragma once
#include <cstdint>

#include "../lower.h"

namespace kiln {

bool kiln_gemm(Exec& x, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, int64_t strideA, const float* b, int64_t ldb, int64_t strideB, float beta, float* c,
               int64_t ldc, int64_t strideC, int64_t batch);

/**
 * kiln_gemm with 16-bit operands and float32 sums (precision fp16/bf16): B is given in format
 * `f` (its bits, laid out as a float32 B would be), A is float32 and rounded to `f` to nearest
 * even; C stays float32. The vendor BLAS (when it has a GemmEx call: cuBLAS's
 * cublasGemmStridedBatchedEx, rocBLAS's rocblas_gemm_strided_batched_ex) gets A rounded into
 * x.workspace (gemmHalfWorkspace bytes), else kiln's own kernels round A as they load it: the
 * same arithmetic either way (products of 16-bit values are exact in float32).
 */
bool kiln_gemm_half(Exec& x, HalfFormat f, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, int64_t strideA, const uint16_t* b, int64_t ldb, int64_t strideB,
                    float beta, float* c, int64_t ldc, int64_t strideC, int64_t batch);
/** Workspace bytes kiln_gemm_half needs for A (m x k per batch entry; one entry when A is broadcast). */
inline int64_t gemmHalfWorkspace(int64_t m, int64_t k, int64_t strideA, int64_t batch) {
  return (strideA == 0 ? 1 : batch) * m * k * 2;
}
/** Converts n float32 values to format `f` (round to nearest even; NaN and infinities kept), on x.stream. */
bool kiln_to_half(Exec& x, HalfFormat f, const float* src, uint16_t* dst, int64_t n);

}  // namespace kiln
