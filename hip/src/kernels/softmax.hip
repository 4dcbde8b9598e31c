// Softmax, LogSoftmax and Hardmax along one axis, on the axis kernel (softmax.h) that
// LpNormalization (norm.hip) and SoftmaxCrossEntropyLoss (loss.hip) run too. Semantics follow the
// ref target (wasm/ops/reduce.ts softmax family, wasm/kernels/reduce.ts softmaxAxis): float32
// exponentials in float, as the ref's float32 rows, sums in double; element types and rows as
// rows.h says.
#include <cmath>
#include <cstring>

#include "device.h"
#include "rows.h"
#include "softmax.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

constexpr double kInf = static_cast<double>(INFINITY);

// ---- block reductions (shared-memory trees over kThreads, a power of two; the others are in rows.h) ----

/** The first index of the largest value above -inf (NaN skipped), -1 for none: Hardmax's pick. */
KILN_DEVICE int64_t blockFirstMax(double v, int64_t i, double* sv, int64_t* si) {
  const int t = static_cast<int>(threadIdx.x);
  sv[t] = v;
  si[t] = i;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {
    if (t < s && si[t + s] >= 0 &&
        (si[t] < 0 || sv[t + s] > sv[t] || (sv[t + s] == sv[t] && si[t + s] < si[t]))) {
      sv[t] = sv[t + s];
      si[t] = si[t + s];
    }
    __syncthreads();
  }
  const int64_t r = si[0];
  __syncthreads();
  return r;
}

// ---- Softmax / LogSoftmax / Hardmax / LpNormalization along one axis: x as [outer, len, inner] ----

/** One row (outer index r, inner index j), by a block (BLOCK) or a thread. */
template <int DT, bool BLOCK>
KILN_DEVICE void axisRow(const AxisParams& p, const void* x, void* o, int64_t row, double* sh, int64_t* si) {
  const int64_t r = row / p.inner, j = row - r * p.inner;
  const int64_t base = r * p.len * p.inner + j;
  const int64_t st = p.inner;
  const int64_t first = BLOCK ? static_cast<int64_t>(threadIdx.x) : 0;
  const int64_t step = BLOCK ? static_cast<int64_t>(blockDim.x) : 1;
  if (p.mode == SM_HARDMAX) {
    double m = -kInf;
    int64_t mi = -1;
    for (int64_t k = first; k < p.len; k += step) {
      const double v = ldE<DT>(x, base + k * st);
      if (v > m) {
        m = v;
        mi = k;
      }
    }
    if (BLOCK) mi = blockFirstMax(m, mi, sh, si);
    if (mi < 0) mi = 0;
    for (int64_t k = first; k < p.len; k += step) stE<DT>(o, base + k * st, k == mi ? 1 : 0);
    return;
  }
  if (p.mode == SM_LP1 || p.mode == SM_LP2) {
    double s = 0;
    for (int64_t k = first; k < p.len; k += step) {
      const double v = ldE<DT>(x, base + k * st);
      s += p.mode == SM_LP1 ? std::fabs(v) : v * v;
    }
    if (BLOCK) s = blockMerge(M_SUM, s, sh);
    const double norm = p.mode == SM_LP1 ? s : std::sqrt(s);
    for (int64_t k = first; k < p.len; k += step) {
      stE<DT>(o, base + k * st, norm == 0 ? 0.0 : ldE<DT>(x, base + k * st) / norm);
    }
    return;
  }
  // softmax / log-softmax: float32 exponentials in float (as the ref's float32 rows), sums in double
  double m = -kInf;
  for (int64_t k = first; k < p.len; k += step) m = nanMax(m, ldE<DT>(x, base + k * st));
  if (BLOCK) m = blockMerge(M_MAX, m, sh);
  double s = 0;
  for (int64_t k = first; k < p.len; k += step) {
    const double v = ldE<DT>(x, base + k * st);
    s += DT == DT_FLOAT ? static_cast<double>(std::exp(static_cast<float>(v) - static_cast<float>(m))) : std::exp(v - m);
  }
  if (BLOCK) s = blockMerge(M_SUM, s, sh);
  if (p.mode == SM_LOG) {
    const double shift = m + std::log(s);
    for (int64_t k = first; k < p.len; k += step) stE<DT>(o, base + k * st, ldE<DT>(x, base + k * st) - shift);
  } else {
    for (int64_t k = first; k < p.len; k += step) {
      const double v = ldE<DT>(x, base + k * st);
      const double e =
          DT == DT_FLOAT ? static_cast<double>(std::exp(static_cast<float>(v) - static_cast<float>(m))) : std::exp(v - m);
      stE<DT>(o, base + k * st, e / s);
    }
  }
}

template <int DT>
__global__ void axisBlockKernel(AxisParams p, const void* x, void* o) {
  __shared__ double sh[kThreads];
  __shared__ int64_t si[kThreads];
  const int64_t rows = p.outer * p.inner;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) axisRow<DT, true>(p, x, o, row, sh, si);
}

template <int DT>
__global__ void axisThreadKernel(AxisParams p, const void* x, void* o) {
  const int64_t rows = p.outer * p.inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows; row += stride) {
    axisRow<DT, false>(p, x, o, row, nullptr, nullptr);
  }
}

/**
 * float32 Softmax along a contiguous last axis of len <= 2048 (a multiple of 4): one row per 32
 * lanes, held in registers as V float4s per lane, lane shuffles instead of block barriers; the
 * arithmetic is axisRow's (exponentials in float, the sum in double).
 */
template <int V>
__global__ void softmaxLanesKernel(const float* x, float* o, int64_t rows, int64_t len) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  const bool live = row < rows;  // every lane shuffles, live or not
  const int n4 = static_cast<int>(len / 4);
  const float4* xr = reinterpret_cast<const float4*>(x + (live ? row : 0) * len);
  float4 v[V];
  double m = -kInf;
#pragma unroll
  for (int k = 0; k < V; k++) {
    const int c = lane + k * 32;
    if (live && c < n4) {
      v[k] = xr[c];
      m = nanMax(m, static_cast<double>(v[k].x));
      m = nanMax(m, static_cast<double>(v[k].y));
      m = nanMax(m, static_cast<double>(v[k].z));
      m = nanMax(m, static_cast<double>(v[k].w));
    } else {
      v[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) m = nanMax(m, kilnShflXor(m, s));
  const float mf = static_cast<float>(m);
  double s = 0;
#pragma unroll
  for (int k = 0; k < V; k++) {
    if (live && lane + k * 32 < n4) {
      v[k] = make_float4(std::exp(v[k].x - mf), std::exp(v[k].y - mf), std::exp(v[k].z - mf), std::exp(v[k].w - mf));
      s += static_cast<double>(v[k].x);
      s += static_cast<double>(v[k].y);
      s += static_cast<double>(v[k].z);
      s += static_cast<double>(v[k].w);
    }
  }
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) s += kilnShflXor(s, d);
  if (!live) return;
  float4* orow = reinterpret_cast<float4*>(o + row * len);
#pragma unroll
  for (int k = 0; k < V; k++) {
    const int c = lane + k * 32;
    if (c >= n4) continue;
    orow[c] = make_float4(static_cast<float>(static_cast<double>(v[k].x) / s),
                          static_cast<float>(static_cast<double>(v[k].y) / s),
                          static_cast<float>(static_cast<double>(v[k].z) / s),
                          static_cast<float>(static_cast<double>(v[k].w) / s));
  }
}

/** A scalar's softmax family: 1 (0 for LogSoftmax). */
template <int DT>
__global__ void scalarKernel(void* o, double v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) stE<DT>(o, 0, v);
}

}  // namespace

bool launchAxis(Exec& x, const AxisParams& p, int dt, const void* xp, void* op, const char* what) {
  const int64_t rows = p.outer * p.inner;
  if (rows == 0 || p.len == 0) return true;
  // float32 softmax along contiguous rows of up to 2048: one row per 32 lanes, in registers
  const uintptr_t align = reinterpret_cast<uintptr_t>(xp) | reinterpret_cast<uintptr_t>(op);
  if (p.mode == SM_SOFTMAX && dt == DT_FLOAT && p.inner == 1 && p.len % 4 == 0 && p.len <= 2048 &&
      align % 16 == 0) {
    const int64_t per = (p.len / 4 + 31) / 32;
    const dim3 grid = gridFor(rows, 4);
    const float* xf = static_cast<const float*>(xp);
    float* of = static_cast<float*>(op);
    if (per <= 1) KILN_LAUNCH(softmaxLanesKernel<1>, grid, dim3(128), 0, x.stream, xf, of, rows, p.len);
    else if (per <= 2) KILN_LAUNCH(softmaxLanesKernel<2>, grid, dim3(128), 0, x.stream, xf, of, rows, p.len);
    else if (per <= 4) KILN_LAUNCH(softmaxLanesKernel<4>, grid, dim3(128), 0, x.stream, xf, of, rows, p.len);
    else if (per <= 8) KILN_LAUNCH(softmaxLanesKernel<8>, grid, dim3(128), 0, x.stream, xf, of, rows, p.len);
    else KILN_LAUNCH(softmaxLanesKernel<16>, grid, dim3(128), 0, x.stream, xf, of, rows, p.len);
    return launched(x, what);
  }
  // contiguous rows or few long strided rows: a block per row; else a thread per row
  const bool byBlock = p.inner == 1 ? p.len >= kBlockMin : (rows < 2048 && p.len >= 256);
  const dim3 grid = byBlock ? gridFor(rows, 1) : gridFor(rows, kThreads);
  // a block per row sized to the row: about four elements a thread, 32 to kThreads threads (a
  // row of 128, as attention's, took a 256-thread block with half of it idle)
  int blockThreads = 32;
  while (blockThreads < kThreads && blockThreads * 4 < p.len) blockThreads *= 2;
  switch (dt) {
#define KILN_CASE(D)                                                                                  \
  case D:                                                                                             \
    if (byBlock) KILN_LAUNCH(axisBlockKernel<D>, grid, dim3(blockThreads), 0, x.stream, p, xp, op); \
    else KILN_LAUNCH(axisThreadKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, op);              \
    break;
    KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
    default: break;
  }
  return launched(x, what);
}

bool AxisKernel::run(Exec& x) {
  if (scalar) {
    const double v = p.mode == SM_LOG ? 0 : 1;
    switch (dt) {
#define KILN_CASE(D) \
  case D: KILN_LAUNCH(scalarKernel<D>, dim3(1), dim3(1), 0, x.stream, x.ptr(out), v); break;
      KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
      default: break;
    }
    return launched(x, label);
  }
  return launchAxis(x, p, dt, x.ptr(in), x.ptr(out), label);
}

namespace {

// ---- lowering ----------------------------------------------------------------------------------

std::unique_ptr<Kernel> lowerSoftmax(const NodeView& v, std::string& why) {
  if (!requireFloat(v, 1, why)) return nullptr;
  const SValue& x = v.in(0);
  if (v.out(0).dtype != x.dtype) return nullptr;
  auto k = std::make_unique<AxisKernel>();
  const std::string& op = v.n.op;
  k->p.mode = op == "LogSoftmax" ? SM_LOG : op == "Hardmax" ? SM_HARDMAX : SM_SOFTMAX;
  k->label = op == "LogSoftmax" ? "LogSoftmax" : op == "Hardmax" ? "Hardmax" : "Softmax";
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->out = v.outId(0);
  const int r = x.rank();
  if (r == 0) {
    k->scalar = true;
    return k;
  }
  const bool legacy = v.s.opset < 13;
  int axis;
  if (!normAxis(v.attrInt("axis", legacy ? 1 : -1), r, axis)) {
    why = "axis out of range";
    return nullptr;
  }
  k->p.outer = prodDims(x.dims, 0, static_cast<size_t>(axis));
  if (legacy) {  // flattened to 2-D at axis
    k->p.len = prodDims(x.dims, static_cast<size_t>(axis), x.dims.size());
    k->p.inner = 1;
  } else {
    k->p.len = x.dims[static_cast<size_t>(axis)];
    k->p.inner = prodDims(x.dims, static_cast<size_t>(axis) + 1, x.dims.size());
  }
  return k;
}

}  // namespace

void registerSoftmax() {
  registerLowering("Softmax", lowerSoftmax);
  registerLowering("LogSoftmax", lowerSoftmax);
  registerLowering("Hardmax", lowerSoftmax);
}

}  // namespace kiln
