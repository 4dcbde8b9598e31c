#include "blas.h"

#include <dlfcn.h>

#include <mutex>

namespace kiln {
namespace {

// cuBLAS (cublas_v2.h): status 0 is success; operations 0 = N, 1 = T; math mode 0 = default
// (strict float32: no TF32 unless asked for).
typedef int (*CublasCreate)(void**);
typedef int (*CublasDestroy)(void*);
typedef int (*CublasSetStream)(void*, hipStream_t);
typedef int (*CublasSetMathMode)(void*, int);
typedef int (*CublasSetWorkspace)(void*, void*, size_t);
typedef int (*CublasSgemmStridedBatched)(void*, int, int, int, int, int, const float*, const float*, int, long long,
                                         const float*, int, long long, const float*, float*, int, long long, int);
// cublasGemmStridedBatchedEx (cublas_api.h): data types (cudaDataType, library_types.h) 0 = 32F,
// 2 = 16F, 14 = 16BF; compute type (cublasComputeType_t) 68 = CUBLAS_COMPUTE_32F (float32 sums,
// no down-conversion); algorithm -1 = CUBLAS_GEMM_DEFAULT.
typedef int (*CublasGemmStridedBatchedEx)(void*, int, int, int, int, int, const void*, const void*, int, int, long long,
                                          const void*, int, int, long long, const void*, void*, int, int, long long,
                                          int, int, int);
constexpr int kCudaR32F = 0, kCudaR16F = 2, kCudaR16BF = 14, kCublasCompute32F = 68, kCublasGemmDefault = -1;
// rocBLAS (rocblas-functions.h): status 0 is success; operations 111 = none, 112 = transpose.
typedef int (*RocblasCreate)(void**);
typedef int (*RocblasDestroy)(void*);
typedef int (*RocblasSetStream)(void*, hipStream_t);
typedef int (*RocblasSgemmStridedBatched)(void*, int, int, int, int, int, const float*, const float*, int, int64_t,
                                          const float*, int, int64_t, const float*, float*, int, int64_t, int);
// rocblas_gemm_strided_batched_ex: D = alpha op(A) op(B) + beta C (D = C here); data types
// (rocblas_datatype) 150 = f16_r, 151 = f32_r, 168 = bf16_r; algo 0 = standard, solution 0, flags 0.
typedef int (*RocblasGemmStridedBatchedEx)(void*, int, int, int, int, int, const void*, const void*, int, int, int64_t,
                                           const void*, int, int, int64_t, const void*, const void*, int, int,
                                           int64_t, void*, int, int, int64_t, int, int, int, int32_t, uint32_t);
constexpr int kRocF16 = 150, kRocF32 = 151, kRocBF16 = 168;

struct Api {
  bool tried = false;
  bool cublas = false;
  std::string file;
  std::string why;
  void* create = nullptr;
  void* destroy = nullptr;
  void* setStream = nullptr;
  void* setMathMode = nullptr;
  void* setWorkspace = nullptr;
  void* gemm = nullptr;
  void* gemmEx = nullptr;  // 16-bit operands, float32 sums (optional)
};

std::mutex g_mutex;
Api g_api;

void* sym(void* lib, const char* name) { return lib ? dlsym(lib, name) : nullptr; }

const Api& api() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_api.tried) return g_api;
  g_api.tried = true;
#if defined(KILN_EMU)
  g_api.why = "the emulator has no vendor BLAS";
#elif defined(KILN_AMD)
  const char* names[] = {"librocblas.so.4", "librocblas.so.3", "librocblas.so.0", "librocblas.so",
                         "/opt/rocm/lib/librocblas.so"};
  for (const char* n : names) {
    void* lib = dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    g_api.create = sym(lib, "rocblas_create_handle");
    g_api.destroy = sym(lib, "rocblas_destroy_handle");
    g_api.setStream = sym(lib, "rocblas_set_stream");
    g_api.gemm = sym(lib, "rocblas_sgemm_strided_batched");
    g_api.gemmEx = sym(lib, "rocblas_gemm_strided_batched_ex");
    if (g_api.create && g_api.destroy && g_api.setStream && g_api.gemm) {
      g_api.file = n;
      return g_api;
    }
    g_api.gemm = nullptr;
  }
  g_api.why = "no rocBLAS library found (librocblas.so)";
#else
  const char* names[] = {"libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.13", "libcublas.so.12",
                         "/usr/local/cuda/lib64/libcublas.so.12", "libcublas.so"};
  for (const char* n : names) {
    void* lib = dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    g_api.create = sym(lib, "cublasCreate_v2");
    g_api.destroy = sym(lib, "cublasDestroy_v2");
    g_api.setStream = sym(lib, "cublasSetStream_v2");
    g_api.setMathMode = sym(lib, "cublasSetMathMode");
    g_api.setWorkspace = sym(lib, "cublasSetWorkspace_v2");
    g_api.gemm = sym(lib, "cublasSgemmStridedBatched");
    g_api.gemmEx = sym(lib, "cublasGemmStridedBatchedEx");
    if (g_api.create && g_api.destroy && g_api.setStream && g_api.gemm) {
      g_api.cublas = true;
      g_api.file = n;
      return g_api;
    }
    g_api.gemm = nullptr;
  }
  g_api.why = "no cuBLAS library found (libcublas.so.13 or .12)";
#endif
  return g_api;
}

}  // namespace

Blas* Blas::create(hipStream_t stream, std::string& why) {
  const Api& a = api();
  if (!a.gemm) {
    why = a.why;
    return nullptr;
  }
  void* h = nullptr;
  if (reinterpret_cast<CublasCreate>(a.create)(&h) != 0 || h == nullptr) {
    why = std::string("creating a handle of ") + a.file + " failed";
    return nullptr;
  }
  reinterpret_cast<CublasSetStream>(a.setStream)(h, stream);
  if (a.cublas && a.setMathMode) reinterpret_cast<CublasSetMathMode>(a.setMathMode)(h, 0);
  Blas* b = new Blas();
  b->handle_ = h;
  b->name_ = std::string(a.cublas ? "cublas" : "rocblas") + " (" + a.file + ")";
  return b;
}

Blas::~Blas() {
  if (handle_) reinterpret_cast<CublasDestroy>(api().destroy)(handle_);
}

bool Blas::wantsWorkspace() const { return api().cublas && api().setWorkspace; }

bool Blas::setTf32() {
  // CUBLAS_TF32_TENSOR_OP_MATH (3): float32 inputs rounded to TF32 for the tensor cores, float32
  // accumulation. rocBLAS has no such mode on the archs kiln builds for.
  const Api& a = api();
  return a.cublas && a.setMathMode && reinterpret_cast<CublasSetMathMode>(a.setMathMode)(handle_, 3) == 0;
}

bool Blas::setWorkspace(void* p, uint64_t bytes) {
  const Api& a = api();
  return a.cublas && a.setWorkspace &&
         reinterpret_cast<CublasSetWorkspace>(a.setWorkspace)(handle_, p, static_cast<size_t>(bytes)) == 0;
}

bool Blas::hasGemmEx() const { return api().gemmEx != nullptr; }

bool Blas::gemmEx(bool bf16, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
                  int64_t lda, int64_t strideA, const uint16_t* b, int64_t ldb, int64_t strideB, float beta, float* c,
                  int64_t ldc, int64_t strideC, int64_t batch, Error& err) {
  const Api& x = api();
  const int64_t lim = 0x7fffffff;
  if (!x.gemmEx) return err.fail(KILN_E_KERNEL, name_ + " has no GEMM of 16-bit operands");
  if (m > lim || n > lim || k > lim || lda > lim || ldb > lim || ldc > lim || batch > lim) {
    return err.fail(KILN_E_KERNEL, "GEMM dimensions past 2^31 are not supported by the vendor BLAS call");
  }
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  int status;
  if (x.cublas) {
    const int t16 = bf16 ? kCudaR16BF : kCudaR16F;
    status = reinterpret_cast<CublasGemmStridedBatchedEx>(x.gemmEx)(
        handle_, transB ? 1 : 0, transA ? 1 : 0, int(n), int(m), int(k), &alpha, b, t16, int(ldb), strideB, a, t16,
        int(lda), strideA, &beta, c, kCudaR32F, int(ldc), strideC, int(batch), kCublasCompute32F, kCublasGemmDefault);
  } else {
    const int t16 = bf16 ? kRocBF16 : kRocF16;
    status = reinterpret_cast<RocblasGemmStridedBatchedEx>(x.gemmEx)(
        handle_, transB ? 112 : 111, transA ? 112 : 111, int(n), int(m), int(k), &alpha, b, t16, int(ldb), strideB, a,
        t16, int(lda), strideA, &beta, c, kRocF32, int(ldc), strideC, c, kRocF32, int(ldc), strideC, int(batch), kRocF32,
        0, 0, 0u);
  }
  if (status != 0) {
    return err.fail(KILN_E_KERNEL, name_ + (bf16 ? " bfloat16" : " float16") + " GEMM failed with status " +
                                       std::to_string(status) + " (m " + std::to_string(m) + ", n " +
                                       std::to_string(n) + ", k " + std::to_string(k) + ", batch " +
                                       std::to_string(batch) + ")");
  }
  return true;
}

bool Blas::sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 int64_t strideA, const float* b, int64_t ldb, int64_t strideB, float beta, float* c, int64_t ldc,
                 int64_t strideC, int64_t batch, Error& err) {
  const Api& x = api();
  const int64_t lim = 0x7fffffff;
  if (m > lim || n > lim || k > lim || lda > lim || ldb > lim || ldc > lim || batch > lim) {
    return err.fail(KILN_E_KERNEL, "GEMM dimensions past 2^31 are not supported by the vendor BLAS call");
  }
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  int status;
  if (x.cublas) {
    status = reinterpret_cast<CublasSgemmStridedBatched>(x.gemm)(
        handle_, transB ? 1 : 0, transA ? 1 : 0, int(n), int(m), int(k), &alpha, b, int(ldb), strideB, a, int(lda),
        strideA, &beta, c, int(ldc), strideC, int(batch));
  } else {
    status = reinterpret_cast<RocblasSgemmStridedBatched>(x.gemm)(
        handle_, transB ? 112 : 111, transA ? 112 : 111, int(n), int(m), int(k), &alpha, b, int(ldb), strideB, a,
        int(lda), strideA, &beta, c, int(ldc), strideC, int(batch));
  }
  if (status != 0) {
    return err.fail(KILN_E_KERNEL, name_ + " sgemm failed with status " + std::to_string(status) + " (m " +
                                       std::to_string(m) + ", n " + std::to_string(n) + ", k " + std::to_string(k) +
                                       ", batch " + std::to_string(batch) + ")");
  }
  return true;
}

}  // namespace kiln
