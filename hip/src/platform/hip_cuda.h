// The HIP names kiln uses, mapped onto the CUDA runtime (nvcc builds). HIP on NVIDIA is this
// thin layer over CUDA; Debian's HIP 5.2 headers do not compile against CUDA 13, so kiln keeps
// its own short list. Add a name here when the library starts using it.
#pragma once
#include <cuda_runtime.h>

typedef cudaError_t hipError_t;
typedef cudaStream_t hipStream_t;
typedef cudaEvent_t hipEvent_t;
typedef cudaDeviceProp hipDeviceProp_t;
typedef cudaMemcpyKind hipMemcpyKind;
typedef cudaGraph_t hipGraph_t;
typedef cudaGraphExec_t hipGraphExec_t;
typedef cudaStreamCaptureMode hipStreamCaptureMode;

#define hipSuccess cudaSuccess
#define hipErrorOutOfMemory cudaErrorMemoryAllocation
#define hipErrorNoDevice cudaErrorNoDevice
#define hipErrorInsufficientDriver cudaErrorInsufficientDriver
#define hipMemcpyHostToDevice cudaMemcpyHostToDevice
#define hipMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define hipMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define hipMemcpyDefault cudaMemcpyDefault
#define hipStreamNonBlocking cudaStreamNonBlocking
#define hipHostMallocDefault cudaHostAllocDefault
#define hipHostRegisterReadOnly cudaHostRegisterReadOnly
#define hipStreamCaptureModeThreadLocal cudaStreamCaptureModeThreadLocal

static inline hipError_t hipGetDeviceCount(int* n) { return cudaGetDeviceCount(n); }
static inline hipError_t hipSetDevice(int d) { return cudaSetDevice(d); }
static inline hipError_t hipGetDeviceProperties(hipDeviceProp_t* p, int d) { return cudaGetDeviceProperties(p, d); }
static inline hipError_t hipMemGetInfo(size_t* f, size_t* t) { return cudaMemGetInfo(f, t); }
static inline hipError_t hipMalloc(void** p, size_t n) { return cudaMalloc(p, n); }
static inline hipError_t hipFree(void* p) { return cudaFree(p); }
static inline hipError_t hipHostMalloc(void** p, size_t n, unsigned f) { return cudaHostAlloc(p, n, f); }
static inline hipError_t hipHostFree(void* p) { return cudaFreeHost(p); }
static inline hipError_t hipHostRegister(void* p, size_t n, unsigned f) { return cudaHostRegister(p, n, f); }
static inline hipError_t hipHostUnregister(void* p) { return cudaHostUnregister(p); }
static inline hipError_t hipMemcpy(void* d, const void* s, size_t n, hipMemcpyKind k) { return cudaMemcpy(d, s, n, k); }
static inline hipError_t hipMemcpyAsync(void* d, const void* s, size_t n, hipMemcpyKind k, hipStream_t st) {
  return cudaMemcpyAsync(d, s, n, k, st);
}
static inline hipError_t hipMemsetAsync(void* d, int v, size_t n, hipStream_t st) { return cudaMemsetAsync(d, v, n, st); }
static inline hipError_t hipStreamCreateWithFlags(hipStream_t* s, unsigned f) { return cudaStreamCreateWithFlags(s, f); }
static inline hipError_t hipStreamDestroy(hipStream_t s) { return cudaStreamDestroy(s); }
static inline hipError_t hipStreamSynchronize(hipStream_t s) { return cudaStreamSynchronize(s); }
static inline hipError_t hipEventCreate(hipEvent_t* e) { return cudaEventCreate(e); }
static inline hipError_t hipEventDestroy(hipEvent_t e) { return cudaEventDestroy(e); }
static inline hipError_t hipEventRecord(hipEvent_t e, hipStream_t s) { return cudaEventRecord(e, s); }
static inline hipError_t hipEventSynchronize(hipEvent_t e) { return cudaEventSynchronize(e); }
static inline hipError_t hipEventElapsedTime(float* ms, hipEvent_t a, hipEvent_t b) { return cudaEventElapsedTime(ms, a, b); }
static inline hipError_t hipGetLastError() { return cudaGetLastError(); }
static inline hipError_t hipDeviceSynchronize() { return cudaDeviceSynchronize(); }
static inline const char* hipGetErrorString(hipError_t e) { return cudaGetErrorString(e); }
static inline hipError_t hipStreamBeginCapture(hipStream_t s, hipStreamCaptureMode m) { return cudaStreamBeginCapture(s, m); }
static inline hipError_t hipStreamEndCapture(hipStream_t s, hipGraph_t* g) { return cudaStreamEndCapture(s, g); }
static inline hipError_t hipGraphInstantiateWithFlags(hipGraphExec_t* e, hipGraph_t g, unsigned long long f) {
  return cudaGraphInstantiateWithFlags(e, g, f);
}
static inline hipError_t hipGraphLaunch(hipGraphExec_t e, hipStream_t s) { return cudaGraphLaunch(e, s); }
static inline hipError_t hipGraphExecDestroy(hipGraphExec_t e) { return cudaGraphExecDestroy(e); }
static inline hipError_t hipGraphDestroy(hipGraph_t g) { return cudaGraphDestroy(g); }
/** Updates `e` in place to `g` (same topology, new kernel arguments); false when it cannot. */
static inline bool kilnGraphExecUpdate(hipGraphExec_t e, hipGraph_t g) {
  cudaGraphExecUpdateResultInfo info;
  return cudaGraphExecUpdate(e, g, &info) == cudaSuccess;
}
static inline hipError_t hipDriverGetVersion(int* v) { return cudaDriverGetVersion(v); }
static inline hipError_t hipRuntimeGetVersion(int* v) { return cudaRuntimeGetVersion(v); }
