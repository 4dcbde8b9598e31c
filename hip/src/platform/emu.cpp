// The CPU emulator's runtime (see emu.h).
#include "emu.h"

#include <ucontext.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace {

// "device memory": host memory with a capacity, so that out-of-memory paths can be exercised
constexpr size_t kCapacity = size_t(8) << 30;
std::mutex g_memMutex;
std::unordered_map<void*, size_t> g_allocs;
size_t g_used = 0;
thread_local hipError_t g_lastError = hipSuccess;

constexpr size_t kStackBytes = 64 * 1024;

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  dim3 tid;
  bool done = false;
  bool blocked = false;  // stopped at a barrier
};

thread_local ucontext_t g_scheduler;
thread_local Fiber* g_current = nullptr;
thread_local const std::function<void()>* g_body = nullptr;
thread_local std::vector<unsigned char> g_shared;
thread_local std::vector<Fiber*> g_fibers;

void fiberMain() {
  Fiber* f = g_current;
  threadIdx = f->tid;
  (*g_body)();
  f->done = true;
  swapcontext(&f->ctx, &g_scheduler);
}

Fiber* fiberAt(size_t i) {
  while (g_fibers.size() <= i) {
    Fiber* f = new Fiber();
    f->stack.resize(kStackBytes);
    g_fibers.push_back(f);
  }
  return g_fibers[i];
}

void startFiber(Fiber* f, dim3 tid) {
  f->tid = tid;
  f->done = false;
  f->blocked = false;
  getcontext(&f->ctx);
  f->ctx.uc_stack.ss_sp = f->stack.data();
  f->ctx.uc_stack.ss_size = f->stack.size();
  f->ctx.uc_link = nullptr;
  makecontext(&f->ctx, fiberMain, 0);
}

void resume(Fiber* f) {
  g_current = f;
  threadIdx = f->tid;
  swapcontext(&g_scheduler, &f->ctx);
  g_current = nullptr;
}

dim3 threadOf(unsigned t, dim3 block) {
  return dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
}

}  // namespace

void __syncthreads() {
  Fiber* f = g_current;
  if (f == nullptr) return;  // a single-thread block run outside a fiber has nothing to wait for
  f->blocked = true;
  swapcontext(&f->ctx, &g_scheduler);
  threadIdx = f->tid;
}

struct kiln_emu_graph {
  std::vector<std::function<void()>> ops;
};
struct kiln_emu_stream {
  /** the graph being captured, or null */
  kiln_emu_graph* capture = nullptr;
};
struct kiln_emu_event {
  std::chrono::steady_clock::time_point at;
};

namespace {

void runGrid(dim3 grid, dim3 block, size_t sharedBytes, const std::function<void()>& body);

}  // namespace

namespace kiln_emu {

void* dynamicShared() { return g_shared.data(); }

void launch(hipStream_t stream, dim3 grid, dim3 block, size_t sharedBytes, const std::function<void()>& body) {
  if (stream && stream->capture) {
    stream->capture->ops.push_back([=]() { runGrid(grid, block, sharedBytes, body); });
    return;
  }
  runGrid(grid, block, sharedBytes, body);
}

}  // namespace kiln_emu

namespace {

void runGrid(dim3 grid, dim3 block, size_t sharedBytes, const std::function<void()>& body) {
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  if (g_shared.size() < sharedBytes) g_shared.resize(sharedBytes);
  const std::function<void()>* savedBody = g_body;
  g_body = &body;
  gridDim = grid;
  blockDim = block;
  for (unsigned bz = 0; bz < grid.z; bz++) {
    for (unsigned by = 0; by < grid.y; by++) {
      for (unsigned bx = 0; bx < grid.x; bx++) {
        blockIdx = dim3(bx, by, bz);
        Fiber* first = fiberAt(0);
        startFiber(first, threadOf(0, block));
        resume(first);
        if (first->done) {
          // no barrier in this kernel: the other threads need no fibers
          for (unsigned t = 1; t < threads; t++) {
            threadIdx = threadOf(t, block);
            body();
          }
          continue;
        }
        for (unsigned t = 1; t < threads; t++) {
          Fiber* f = fiberAt(t);
          startFiber(f, threadOf(t, block));
          resume(f);
        }
        // phases: every live thread runs to its next barrier (or its end)
        for (;;) {
          bool any = false;
          for (unsigned t = 0; t < threads; t++) {
            Fiber* f = g_fibers[t];
            if (f->done) continue;
            any = true;
            f->blocked = false;
            resume(f);
          }
          if (!any) break;
        }
      }
    }
  }
  g_body = savedBody;
}

}  // namespace

static hipError_t setError(hipError_t e) {
  if (e != hipSuccess) g_lastError = e;
  return e;
}

hipError_t hipGetDeviceCount(int* n) {
  *n = 1;
  return hipSuccess;
}
hipError_t hipSetDevice(int d) { return setError(d == 0 ? hipSuccess : hipErrorInvalidDevice); }
hipError_t hipGetDeviceProperties(hipDeviceProp_t* p, int d) {
  if (d != 0) return setError(hipErrorInvalidDevice);
  std::memset(p, 0, sizeof(*p));
  std::strcpy(p->name, "kiln CPU emulator");
  std::strcpy(p->gcnArchName, "emulator");
  p->totalGlobalMem = kCapacity;
  p->sharedMemPerBlock = 48 * 1024;
  p->multiProcessorCount = 4;
  p->warpSize = 32;
  return hipSuccess;
}
hipError_t hipMemGetInfo(size_t* free, size_t* total) {
  std::lock_guard<std::mutex> lock(g_memMutex);
  *total = kCapacity;
  *free = kCapacity - g_used;
  return hipSuccess;
}
hipError_t hipMalloc(void** p, size_t n) {
  std::lock_guard<std::mutex> lock(g_memMutex);
  if (n > kCapacity - g_used) {
    *p = nullptr;
    return setError(hipErrorOutOfMemory);
  }
  void* q = std::malloc(n > 0 ? n : 1);
  if (q == nullptr) return setError(hipErrorOutOfMemory);
  g_allocs[q] = n;
  g_used += n;
  *p = q;
  return hipSuccess;
}
hipError_t hipFree(void* p) {
  if (p == nullptr) return hipSuccess;
  std::lock_guard<std::mutex> lock(g_memMutex);
  auto it = g_allocs.find(p);
  if (it == g_allocs.end()) return setError(hipErrorInvalidValue);
  g_used -= it->second;
  g_allocs.erase(it);
  std::free(p);
  return hipSuccess;
}
hipError_t hipHostMalloc(void** p, size_t n, unsigned) {
  *p = std::malloc(n > 0 ? n : 1);
  return *p ? hipSuccess : setError(hipErrorOutOfMemory);
}
hipError_t hipHostFree(void* p) {
  std::free(p);
  return hipSuccess;
}
hipError_t hipHostRegister(void*, size_t, unsigned) { return hipSuccess; }  // host memory is all the emulator has
hipError_t hipHostUnregister(void*) { return hipSuccess; }
hipError_t hipMemcpy(void* dst, const void* src, size_t n, hipMemcpyKind) {
  if (n) std::memmove(dst, src, n);
  return hipSuccess;
}
hipError_t hipMemcpyAsync(void* dst, const void* src, size_t n, hipMemcpyKind kind, hipStream_t s) {
  if (s && s->capture) {
    // as on a device, a captured copy involving host memory is not supported
    if (kind != hipMemcpyDeviceToDevice) return setError(hipErrorStreamCaptureUnsupported);
    s->capture->ops.push_back([=]() {
      if (n) std::memmove(dst, src, n);
    });
    return hipSuccess;
  }
  return hipMemcpy(dst, src, n, kind);
}
hipError_t hipMemsetAsync(void* dst, int value, size_t n, hipStream_t s) {
  if (s && s->capture) {
    s->capture->ops.push_back([=]() {
      if (n) std::memset(dst, value, n);
    });
    return hipSuccess;
  }
  if (n) std::memset(dst, value, n);
  return hipSuccess;
}
hipError_t hipStreamCreateWithFlags(hipStream_t* s, unsigned) {
  *s = new kiln_emu_stream();
  return hipSuccess;
}
hipError_t hipStreamDestroy(hipStream_t s) {
  delete s->capture;
  delete s;
  return hipSuccess;
}
hipError_t hipStreamSynchronize(hipStream_t s) {
  return setError(s && s->capture ? hipErrorStreamCaptureUnsupported : hipSuccess);
}
hipError_t hipStreamBeginCapture(hipStream_t s, hipStreamCaptureMode) {
  if (s == nullptr || s->capture) return setError(hipErrorInvalidValue);
  s->capture = new kiln_emu_graph();
  return hipSuccess;
}
hipError_t hipStreamEndCapture(hipStream_t s, hipGraph_t* g) {
  if (s == nullptr || s->capture == nullptr) return setError(hipErrorInvalidValue);
  *g = s->capture;
  s->capture = nullptr;
  return hipSuccess;
}
hipError_t hipGraphInstantiateWithFlags(hipGraphExec_t* e, hipGraph_t g, unsigned long long) {
  *e = new kiln_emu_graph(*g);
  return hipSuccess;
}
hipError_t hipGraphLaunch(hipGraphExec_t e, hipStream_t s) {
  if (s && s->capture) return setError(hipErrorStreamCaptureUnsupported);
  for (const auto& op : e->ops) op();
  return hipSuccess;
}
hipError_t hipGraphExecDestroy(hipGraphExec_t e) {
  delete e;
  return hipSuccess;
}
hipError_t hipGraphDestroy(hipGraph_t g) {
  delete g;
  return hipSuccess;
}
bool kilnGraphExecUpdate(hipGraphExec_t e, hipGraph_t g) {
  if (e->ops.size() != g->ops.size()) return false;
  e->ops = g->ops;
  return true;
}
hipError_t hipEventCreate(hipEvent_t* e) {
  *e = new kiln_emu_event();
  return hipSuccess;
}
hipError_t hipEventDestroy(hipEvent_t e) {
  delete e;
  return hipSuccess;
}
hipError_t hipEventRecord(hipEvent_t e, hipStream_t) {
  e->at = std::chrono::steady_clock::now();
  return hipSuccess;
}
hipError_t hipEventSynchronize(hipEvent_t) { return hipSuccess; }
hipError_t hipEventElapsedTime(float* ms, hipEvent_t a, hipEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return hipSuccess;
}
hipError_t hipGetLastError() {
  const hipError_t e = g_lastError;
  g_lastError = hipSuccess;
  return e;
}
hipError_t hipDeviceSynchronize() { return hipSuccess; }
const char* hipGetErrorString(hipError_t e) {
  switch (e) {
    case hipSuccess: return "no error";
    case hipErrorInvalidValue: return "invalid argument";
    case hipErrorOutOfMemory: return "out of memory";
    case hipErrorNoDevice: return "no device";
    case hipErrorInvalidDevice: return "invalid device ordinal";
    case hipErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    default: return "unknown error";
  }
}
hipError_t hipDriverGetVersion(int* v) {
  *v = 0;
  return hipSuccess;
}
hipError_t hipRuntimeGetVersion(int* v) {
  *v = 0;
  return hipSuccess;
}
