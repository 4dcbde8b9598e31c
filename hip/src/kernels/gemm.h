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

}  // namespace kiln
