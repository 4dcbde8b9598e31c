// The HIP subset kiln's library uses, on three platforms chosen at build time:
//   AMD (hipcc, HIP_PLATFORM=amd): HIP itself;
//   NVIDIA (nvcc): cuda.h, with the HIP names mapped to CUDA's (hip_cuda.h), since Debian's
//     HIP 5.2 headers do not compile against CUDA 13;
//   KILN_EMU (g++): a CPU emulator of the same subset (emu.h), so that the executor, the
//     uploads and every kernel run in CI, where no GPU exists. It is a test device, never
//     picked unless asked for by path.
// Kernels are launched with KILN_LAUNCH(kernel, grid, block, sharedBytes, stream, args...), and
// dynamic shared memory is declared with KILN_DYNAMIC_SHARED(type, name).
#pragma once

#if defined(KILN_EMU)
#include "emu.h"
#define KILN_PLATFORM_NAME "emulator"
#elif defined(KILN_AMD) || defined(__HIP_PLATFORM_AMD__) || defined(__HIP_PLATFORM_HCC__)
#ifndef KILN_AMD
#define KILN_AMD 1
#endif
#include <hip/hip_runtime.h>
#ifndef hipHostRegisterReadOnly
#define hipHostRegisterReadOnly 0x08  // ROCm's value; older headers (Debian's 5.2) lack the name
#endif
#define KILN_PLATFORM_NAME "hip"
#define KILN_LAUNCH(kernel, grid, block, shared, stream, ...) \
  hipLaunchKernelGGL(kernel, grid, block, shared, stream, __VA_ARGS__)
#define KILN_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
/** Updates `e` in place to `g` (same topology, new kernel arguments); false when it cannot. */
static inline bool kilnGraphExecUpdate(hipGraphExec_t e, hipGraph_t g) {
  hipGraphNode_t errorNode = nullptr;
  hipGraphExecUpdateResult result;
  return hipGraphExecUpdate(e, g, &errorNode, &result) == hipSuccess;
}
#else
#include "hip_cuda.h"
#define KILN_PLATFORM_NAME "cuda"
#define KILN_LAUNCH(kernel, grid, block, shared, stream, ...) \
  kernel<<<(grid), (block), (shared), (stream)>>>(__VA_ARGS__)
#define KILN_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

#include <cstdint>

#if defined(KILN_EMU)
#define KILN_HD inline
#define KILN_DEVICE inline
#else
#define KILN_HD __host__ __device__ __forceinline__
#define KILN_DEVICE __device__ __forceinline__
#endif

/**
 * kilnShflXor(v, m): v of the lane `lane ^ m` within groups of 32 lanes (m < 32), every thread of
 * the block calling it together. 32 lanes on every platform (AMD's 64-lane wavefronts shuffle
 * within halves), so a kernel written for 32-lane groups runs alike everywhere.
 */
#if defined(KILN_EMU)
// The emulator's threads are fibers of one OS thread per block: an exchange through a buffer
// between two barriers.
template <typename T>
inline T kilnShflXor(T v, int m) {
  static thread_local unsigned char xch[1024 * 8];
  const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  std::memcpy(xch + tid * 8, &v, sizeof(T));
  __syncthreads();
  T r;
  std::memcpy(&r, xch + (tid ^ static_cast<unsigned>(m)) * 8, sizeof(T));
  __syncthreads();
  return r;
}
#elif defined(KILN_AMD)
template <typename T>
__device__ __forceinline__ T kilnShflXor(T v, int m) {
  return __shfl_xor(v, m, 32);
}
#else
template <typename T>
__device__ __forceinline__ T kilnShflXor(T v, int m) {
  return __shfl_xor_sync(0xffffffffu, v, m, 32);
}
#endif
