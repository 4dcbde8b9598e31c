// A CPU emulator of the HIP subset kiln uses (KILN_EMU builds, with g++): device memory is host
// memory with a capacity, streams and events run in order at once, and a kernel launch runs
// every block, one after another, on the calling thread. Each thread of a block is a fiber
// (ucontext), so __syncthreads() and shared memory behave as on a device: every thread runs up
// to the barrier before any goes past it. A block whose first thread finishes without reaching
// a barrier runs its other threads as plain calls. It exists so that CI, which has no GPU, runs
// the gpu target end to end: the executor, uploads, bind transactions and every kernel.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float4 {
  float x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

extern thread_local dim3 threadIdx;
extern thread_local dim3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __launch_bounds__(...)
#define __restrict__ __restrict

void __syncthreads();

static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
static inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = old + v;
  return old;
}
static inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p = old + v;
  return old;
}

typedef int hipError_t;
enum {
  hipSuccess = 0,
  hipErrorInvalidValue = 1,
  hipErrorOutOfMemory = 2,
  hipErrorNoDevice = 100,
  hipErrorInvalidDevice = 101,
  hipErrorLaunchFailure = 719,
  hipErrorStreamCaptureUnsupported = 900,
};
enum hipMemcpyKind {
  hipMemcpyHostToHost = 0,
  hipMemcpyHostToDevice = 1,
  hipMemcpyDeviceToHost = 2,
  hipMemcpyDeviceToDevice = 3,
  hipMemcpyDefault = 4,
};
#define hipStreamNonBlocking 1u
#define hipHostMallocDefault 0u
#define hipHostRegisterReadOnly 8u

struct kiln_emu_stream;
struct kiln_emu_event;
typedef kiln_emu_stream* hipStream_t;
typedef kiln_emu_event* hipEvent_t;
// Graphs: a stream being captured records its launches, copies and memsets instead of running
// them; a graph is that list, and launching its executable form runs the list in order.
struct kiln_emu_graph;
typedef kiln_emu_graph* hipGraph_t;
typedef kiln_emu_graph* hipGraphExec_t;
enum hipStreamCaptureMode { hipStreamCaptureModeGlobal = 0, hipStreamCaptureModeThreadLocal = 1 };

struct hipDeviceProp_t {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int multiProcessorCount;
  int major;
  int minor;
  int warpSize;
  char gcnArchName[256];
};

hipError_t hipGetDeviceCount(int* n);
hipError_t hipSetDevice(int d);
hipError_t hipGetDeviceProperties(hipDeviceProp_t* p, int d);
hipError_t hipMemGetInfo(size_t* free, size_t* total);
hipError_t hipMalloc(void** p, size_t n);
hipError_t hipFree(void* p);
hipError_t hipHostMalloc(void** p, size_t n, unsigned flags);
hipError_t hipHostFree(void* p);
hipError_t hipHostRegister(void* p, size_t n, unsigned flags);
hipError_t hipHostUnregister(void* p);
hipError_t hipMemcpy(void* dst, const void* src, size_t n, hipMemcpyKind kind);
hipError_t hipMemcpyAsync(void* dst, const void* src, size_t n, hipMemcpyKind kind, hipStream_t s);
hipError_t hipMemsetAsync(void* dst, int value, size_t n, hipStream_t s);
hipError_t hipStreamCreateWithFlags(hipStream_t* s, unsigned flags);
hipError_t hipStreamDestroy(hipStream_t s);
hipError_t hipStreamSynchronize(hipStream_t s);
hipError_t hipEventCreate(hipEvent_t* e);
hipError_t hipEventDestroy(hipEvent_t e);
hipError_t hipEventRecord(hipEvent_t e, hipStream_t s);
hipError_t hipEventSynchronize(hipEvent_t e);
hipError_t hipEventElapsedTime(float* ms, hipEvent_t a, hipEvent_t b);
hipError_t hipGetLastError();
hipError_t hipDeviceSynchronize();
const char* hipGetErrorString(hipError_t e);
hipError_t hipStreamBeginCapture(hipStream_t s, hipStreamCaptureMode mode);
hipError_t hipStreamEndCapture(hipStream_t s, hipGraph_t* g);
hipError_t hipGraphInstantiateWithFlags(hipGraphExec_t* e, hipGraph_t g, unsigned long long flags);
hipError_t hipGraphLaunch(hipGraphExec_t e, hipStream_t s);
hipError_t hipGraphExecDestroy(hipGraphExec_t e);
hipError_t hipGraphDestroy(hipGraph_t g);
bool kilnGraphExecUpdate(hipGraphExec_t e, hipGraph_t g);
hipError_t hipDriverGetVersion(int* v);
hipError_t hipRuntimeGetVersion(int* v);

namespace kiln_emu {
/**
 * Runs `body` once per thread of every block of the grid (see the file comment), or records the
 * launch when `stream` is being captured.
 */
void launch(hipStream_t stream, dim3 grid, dim3 block, size_t sharedBytes, const std::function<void()>& body);
/** The current block's dynamic shared memory. */
void* dynamicShared();
}  // namespace kiln_emu

#define KILN_LAUNCH(kernel, grid, block, shared, stream, ...) \
  kiln_emu::launch((stream), (grid), (block), (shared), [=]() { kernel(__VA_ARGS__); })
#define KILN_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(kiln_emu::dynamicShared())
