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
