// The vendor BLAS, found at run time: cuBLAS on NVIDIA, rocBLAS on AMD, opened with dlopen and
// called through kiln's own declarations of the few functions it uses (the build needs no BLAS
// headers or libraries). When none loads, GEMMs run on kiln's own kernel (kernels/gemm.hip).
#pragma once
#include <cstdint>
#include <string>

#include "common.h"

namespace kiln {

class Blas {
 public:
  /** A BLAS handle bound to `stream`, or null with the reason in `why` (not an error). */
  static Blas* create(hipStream_t stream, std::string& why);
  ~Blas();

  /** "cublas" or "rocblas" and the library file it loaded. */
  const std::string& name() const { return name_; }
  /**
   * cuBLAS's workspace, given explicitly so that GEMMs captured into a graph allocate nothing
   * while capturing (cuBLAS's advice for graphs; 32 MiB is its size for Hopper).
   */
  static constexpr uint64_t kWorkspaceBytes = 32ull << 20;
  bool wantsWorkspace() const;
  /** TF32 tensor-core math for float32 GEMMs (cuBLAS); false when the library has none. */
  bool setTf32();
  bool setWorkspace(void* p, uint64_t bytes);

  /**
   * Row-major, strided-batched, float32:
   * C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], op(A) m x k, op(B) k x n, C m x n, for
   * b < batch; element (i, j) of a matrix X with leading dimension ldX is X[i * ldX + j].
   */
  bool sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             int64_t strideA, const float* b, int64_t ldb, int64_t strideB, float beta, float* c, int64_t ldc,
             int64_t strideC, int64_t batch, Error& err);

  /** The library has a GEMM of 16-bit operands with float32 sums (gemmEx). */
  bool hasGemmEx() const;
  /**
   * As sgemm, with A and B given as float16 bits (bfloat16 when `bf16`) and float32 C and sums:
   * cuBLAS's cublasGemmStridedBatchedEx (compute type CUBLAS_COMPUTE_32F), rocBLAS's
   * rocblas_gemm_strided_batched_ex (compute type f32).
   */
  bool gemmEx(bool bf16, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
              int64_t lda, int64_t strideA, const uint16_t* b, int64_t ldb, int64_t strideB, float beta, float* c,
              int64_t ldc, int64_t strideC, int64_t batch, Error& err);

 private:
  Blas() {}
  void* handle_ = nullptr;
  std::string name_;
};

}  // namespace kiln
