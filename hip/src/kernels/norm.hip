// Softmax, LogSoftmax, Hardmax and the normalizations (LayerNormalization, RMSNormalization,
// BatchNormalization, InstanceNormalization, GroupNormalization, LpNormalization,
// MeanVarianceNormalization, LRN), and the losses (NegativeLogLikelihoodLoss,
// SoftmaxCrossEntropyLoss).
//
// Semantics follow the ref target (wasm/ops/reduce.ts softmax family, wasm/kernels/reduce.ts
// softmaxAxis, wasm/ops/norm.ts, wasm/ops/math/loss.ts). Float element types only (float32,
// float64, float16, bfloat16). Sums accumulate in double. Where the ref computes float32 in
// float (LayerNormalization, InstanceNormalization and GroupNormalization statistics and their
// affine step, BatchNormalization's affine step, softmax exponentials) this does too, from
// double sums; everything else computes in double and rounds once on store.
//
// A row (the elements one statistic covers) is reduced by one block with a shared-memory tree
// when it is contiguous or long; rows strided along an inner dim are handled one per thread
// (neighbouring threads read neighbouring elements) when there are many of them.
#include <cmath>
#include <cstring>

#include "device.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;
/** Contiguous rows shorter than this run one per thread rather than one per block. */
constexpr int64_t kBlockMin = 128;

// ---- element access ----

template <int DT>
KILN_HD double ldE(const void* p, int64_t i) {
  switch (DT) {
    case DT_FLOAT: return static_cast<const float*>(p)[i];
    case DT_DOUBLE: return static_cast<const double*>(p)[i];
    case DT_FLOAT16: return f16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_BFLOAT16: return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
    default: return 0;
  }
}

template <int DT>
KILN_HD void stE(void* p, int64_t i, double v) {
  switch (DT) {
    case DT_FLOAT: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DT_DOUBLE: static_cast<double*>(p)[i] = v; break;
    case DT_FLOAT16: static_cast<uint16_t*>(p)[i] = f32ToF16(static_cast<float>(v)); break;
    case DT_BFLOAT16: static_cast<uint16_t*>(p)[i] = f32ToBf16(static_cast<float>(v)); break;
    default: break;
  }
}

/** Element i of a value of run-time type dt (float types, int32/int64) as double. */
KILN_HD double ldAny(const void* p, int64_t i, int dt) {
  switch (dt) {
    case DT_FLOAT: return static_cast<const float*>(p)[i];
    case DT_DOUBLE: return static_cast<const double*>(p)[i];
    case DT_FLOAT16: return f16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_BFLOAT16: return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_INT32: return static_cast<const int32_t*>(p)[i];
    case DT_INT64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    default: return 0;
  }
}

KILN_HD void stAny(void* p, int64_t i, int dt, double v) {
  switch (dt) {
    case DT_FLOAT: stE<DT_FLOAT>(p, i, v); break;
    case DT_DOUBLE: stE<DT_DOUBLE>(p, i, v); break;
    case DT_FLOAT16: stE<DT_FLOAT16>(p, i, v); break;
    case DT_BFLOAT16: stE<DT_BFLOAT16>(p, i, v); break;
    default: break;
  }
}

#define KILN_NORM_TYPES(X) X(DT_FLOAT) X(DT_DOUBLE) X(DT_FLOAT16) X(DT_BFLOAT16)

bool floatType(int dt) { return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16 || dt == DT_BFLOAT16; }

constexpr double kInf = static_cast<double>(INFINITY);

// ---- block reductions (shared-memory trees over kThreads, a power of two) ----

enum : int { M_SUM = 0, M_MAX = 1 };

KILN_DEVICE double blockMerge(int op, double v, double* sh) {
  const int t = static_cast<int>(threadIdx.x);
  sh[t] = v;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] = op == M_MAX ? nanMax(sh[t], sh[t + s]) : sh[t] + sh[t + s];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

/** Two sums at once. */
KILN_DEVICE void blockSum2(double& a, double& b, double* sh) {
  const int t = static_cast<int>(threadIdx.x);
  const int n = static_cast<int>(blockDim.x);
  sh[t] = a;
  sh[n + t] = b;
  __syncthreads();
  for (int s = n / 2; s > 0; s >>= 1) {
    if (t < s) {
      sh[t] += sh[t + s];
      sh[n + t] += sh[n + t + s];
    }
    __syncthreads();
  }
  a = sh[0];
  b = sh[n];
  __syncthreads();
}

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

enum : int { SM_SOFTMAX = 0, SM_LOG = 1, SM_HARDMAX = 2, SM_LP1 = 3, SM_LP2 = 4 };

struct AxisParams {
  int mode;
  int64_t outer, len, inner;
};

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

/** A scalar's softmax family: 1 (0 for LogSoftmax). */
template <int DT>
__global__ void scalarKernel(void* o, double v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) stE<DT>(o, 0, v);
}

bool launchAxis(Exec& x, const AxisParams& p, int dt, const void* xp, void* op, const char* what) {
  const int64_t rows = p.outer * p.inner;
  if (rows == 0 || p.len == 0) return true;
  // contiguous rows or few long strided rows: a block per row; else a thread per row
  const bool byBlock = p.inner == 1 ? p.len >= kBlockMin : (rows < 2048 && p.len >= 256);
  const dim3 grid = byBlock ? gridFor(rows, 1) : gridFor(rows, kThreads);
  switch (dt) {
#define KILN_CASE(D)                                                                          \
  case D:                                                                                     \
    if (byBlock) KILN_LAUNCH(axisBlockKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, op); \
    else KILN_LAUNCH(axisThreadKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, op);      \
    break;
    KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
    default: break;
  }
  return launched(x, what);
}

struct AxisKernel : Kernel {
  AxisParams p{};
  int dt = DT_FLOAT;
  bool scalar = false;
  int32_t in = -1, out = -1;
  const char* label = "softmax";
  bool run(Exec& x) override {
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
};

// ---- row normalizations: LayerNormalization, RMSNormalization, InstanceNormalization,
// GroupNormalization. x is [rows, n], every row contiguous. ----

enum : int { N_LAYER = 0, N_RMS = 1, N_INSTANCE = 2, N_GROUP = 3 };

struct NormParams {
  int kind;
  int64_t rows, n;
  float eps;
  /** LayerNormalization / RMSNormalization: row element -> scale (0) and bias (1) element */
  Walk<2> sb;
  /** InstanceNormalization: channels; GroupNormalization: groups */
  int64_t groups;
  int64_t cpg, sp;  // GroupNormalization: channels per group, spatial size
  bool perChannel;  // GroupNormalization from opset 21
  int sdt, bdt;     // scale and bias element types
  int statDt;       // LayerNormalization's Mean / InvStdDev element type
};

KILN_HD void scaleBias(const NormParams& p, int64_t row, int64_t i, int64_t& si, int64_t& bi) {
  switch (p.kind) {
    case N_INSTANCE: si = bi = row % p.groups; return;
    case N_GROUP: {
      const int64_t g = row % p.groups;
      si = bi = p.perChannel ? g * p.cpg + i / p.sp : g;
      return;
    }
    default: {
      if (p.sb.rank == 1) {
        si = i * p.sb.strides[0][0];
        bi = i * p.sb.strides[1][0];
      } else {
        int64_t off[2];
        p.sb.offsets(i, off);
        si = off[0];
        bi = off[1];
      }
    }
  }
}

/** One row, by a block (BLOCK) or a thread. */
template <int DT, bool BLOCK>
KILN_DEVICE void normRow(const NormParams& p, const void* x, const void* scale, const void* bias, void* o, void* mean,
                         void* inv, int64_t row, double* sh) {
  const int64_t t = BLOCK ? static_cast<int64_t>(threadIdx.x) : 0;
  const int64_t step = BLOCK ? static_cast<int64_t>(blockDim.x) : 1;
  const bool leader = !BLOCK || threadIdx.x == 0;
  const int64_t base = row * p.n;
  if (p.kind == N_RMS) {
    double s = 0;
    for (int64_t i = t; i < p.n; i += step) {
      const double v = ldE<DT>(x, base + i);
      s += v * v;
    }
    if (BLOCK) s = blockMerge(M_SUM, s, sh);
    const double r = 1.0 / std::sqrt(s / static_cast<double>(p.n) + static_cast<double>(p.eps));
    for (int64_t i = t; i < p.n; i += step) {
      int64_t si, bi;
      scaleBias(p, row, i, si, bi);
      stE<DT>(o, base + i, ldE<DT>(x, base + i) * r * ldAny(scale, si, p.sdt));
    }
    return;
  }
  double s = 0;
  for (int64_t i = t; i < p.n; i += step) s += ldE<DT>(x, base + i);
  if (BLOCK) s = blockMerge(M_SUM, s, sh);
  const double nd = static_cast<double>(p.n);
  if (DT == DT_FLOAT) {
    // the ref's float32 rows: mean and 1/sqrt(var + eps) as floats, the affine step in float
    const float m = static_cast<float>(s / nd);
    double q = 0;
    for (int64_t i = t; i < p.n; i += step) {
      const float d = static_cast<float>(ldE<DT>(x, base + i)) - m;
      q += static_cast<double>(d) * static_cast<double>(d);
    }
    if (BLOCK) q = blockMerge(M_SUM, q, sh);
    const float r = static_cast<float>(1.0 / std::sqrt(static_cast<double>(static_cast<float>(q / nd)) +
                                                       static_cast<double>(p.eps)));
    for (int64_t i = t; i < p.n; i += step) {
      int64_t si, bi;
      scaleBias(p, row, i, si, bi);
      const float sc = static_cast<float>(ldAny(scale, si, p.sdt));
      const float b = bias ? static_cast<float>(ldAny(bias, bi, p.bdt)) : 0.0f;
      static_cast<float*>(o)[base + i] = (static_cast<const float*>(x)[base + i] - m) * r * sc + b;
    }
    if (leader) {
      if (mean) stAny(mean, row, p.statDt, m);
      if (inv) stAny(inv, row, p.statDt, r);
    }
  } else {
    const double m = s / nd;
    double q = 0;
    for (int64_t i = t; i < p.n; i += step) {
      const double d = ldE<DT>(x, base + i) - m;
      q += d * d;
    }
    if (BLOCK) q = blockMerge(M_SUM, q, sh);
    const double r = 1.0 / std::sqrt(q / nd + static_cast<double>(p.eps));
    for (int64_t i = t; i < p.n; i += step) {
      int64_t si, bi;
      scaleBias(p, row, i, si, bi);
      const double b = bias ? ldAny(bias, bi, p.bdt) : 0.0;
      stE<DT>(o, base + i, (ldE<DT>(x, base + i) - m) * r * ldAny(scale, si, p.sdt) + b);
    }
    if (leader) {
      if (mean) stAny(mean, row, p.statDt, m);
      if (inv) stAny(inv, row, p.statDt, r);
    }
  }
}

template <int DT>
__global__ void normBlockKernel(NormParams p, const void* x, const void* scale, const void* bias, void* o, void* mean,
                                void* inv) {
  __shared__ double sh[kThreads];
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    normRow<DT, true>(p, x, scale, bias, o, mean, inv, row, sh);
  }
}

template <int DT>
__global__ void normThreadKernel(NormParams p, const void* x, const void* scale, const void* bias, void* o, void* mean,
                                 void* inv) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < p.rows; row += stride) {
    normRow<DT, false>(p, x, scale, bias, o, mean, inv, row, nullptr);
  }
}

struct NormKernel : Kernel {
  NormParams p{};
  int dt = DT_FLOAT;
  int32_t in = -1, scale = -1, bias = -1, out = -1, mean = -1, inv = -1;
  const char* label = "normalization";
  bool run(Exec& x) override {
    if (p.rows == 0) return true;
    const bool byBlock = p.n >= kBlockMin;
    const dim3 grid = byBlock ? gridFor(p.rows, 1) : gridFor(p.rows, kThreads);
    const void* xp = x.ptr(in);
    const void* sp = x.ptr(scale);
    const void* bp = x.ptr(bias);
    void* op = x.ptr(out);
    void* mp = x.ptr(mean);
    void* ip = x.ptr(inv);
    switch (dt) {
#define KILN_CASE(D)                                                                                         \
  case D:                                                                                                    \
    if (byBlock) KILN_LAUNCH(normBlockKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, sp, bp, op, mp, ip); \
    else KILN_LAUNCH(normThreadKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, sp, bp, op, mp, ip);      \
    break;
      KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
      default: break;
    }
    return launched(x, label);
  }
};

// ---- BatchNormalization (inference): per channel a = scale / sqrt(var + eps), b = bias - mean * a ----

__global__ void bnCoefKernel(const void* scale, const void* bias, const void* mean, const void* var, int sdt, int bdt,
                             int mdt, int vdt, double eps, int64_t c, double* ab) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < c; k += stride) {
    const double a = ldAny(scale, k, sdt) / std::sqrt(ldAny(var, k, vdt) + eps);
    ab[k] = a;
    ab[c + k] = ldAny(bias, k, bdt) - ldAny(mean, k, mdt) * a;
  }
}

template <int DT>
__global__ void bnApplyKernel(const void* x, void* o, const double* ab, int64_t c, int64_t sp, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t k = (i / sp) % c;
    if (DT == DT_FLOAT) {
      static_cast<float*>(o)[i] =
          static_cast<const float*>(x)[i] * static_cast<float>(ab[k]) + static_cast<float>(ab[c + k]);
    } else {
      stE<DT>(o, i, ldE<DT>(x, i) * ab[k] + ab[c + k]);
    }
  }
}

struct BatchNormKernel : Kernel {
  int dt = DT_FLOAT;
  int sdt, bdt, mdt, vdt;
  double eps;
  int64_t c, sp, n;
  int32_t in = -1, scale = -1, bias = -1, mean = -1, var = -1, out = -1;
  int32_t outMean = -1, outVar = -1;
  int64_t meanBytes = 0, varBytes = 0;
  bool run(Exec& x) override {
    // inference: the optional running mean / var outputs are the inputs
    if (outMean >= 0 && meanBytes > 0 &&
        !hipCheck(hipMemcpyAsync(x.ptr(outMean), x.ptr(mean), static_cast<size_t>(meanBytes), hipMemcpyDeviceToDevice,
                                 x.stream),
                  "BatchNormalization (mean)", *x.err)) {
      return false;
    }
    if (outVar >= 0 && varBytes > 0 &&
        !hipCheck(hipMemcpyAsync(x.ptr(outVar), x.ptr(var), static_cast<size_t>(varBytes), hipMemcpyDeviceToDevice,
                                 x.stream),
                  "BatchNormalization (var)", *x.err)) {
      return false;
    }
    if (n == 0 || c == 0) return true;
    double* ab = reinterpret_cast<double*>(x.workspace);
    KILN_LAUNCH(bnCoefKernel, gridFor(c, kThreads), dim3(kThreads), 0, x.stream, x.ptr(scale), x.ptr(bias),
                x.ptr(mean), x.ptr(var), sdt, bdt, mdt, vdt, eps, c, ab);
    if (!launched(x, "BatchNormalization")) return false;
    const dim3 grid = gridFor(n, kThreads);
    const void* xp = x.ptr(in);
    void* op = x.ptr(out);
    switch (dt) {
#define KILN_CASE(D) \
  case D: KILN_LAUNCH(bnApplyKernel<D>, grid, dim3(kThreads), 0, x.stream, xp, op, ab, c, sp, n); break;
      KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
      default: break;
    }
    return launched(x, "BatchNormalization");
  }
};

// ---- LRN: x / (bias + alpha / size * sum of x^2 over nearby channels)^beta ----

template <int DT>
__global__ void lrnKernel(const void* x, void* o, int64_t c, int64_t sp, int64_t lo, int64_t hi, double alpha,
                          double beta, double bias, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t s = i % sp;
    const int64_t nc = i / sp;
    const int64_t k = nc % c;
    const int64_t b = nc - k;  // n * c
    const int64_t c0 = k - lo < 0 ? 0 : k - lo;
    const int64_t c1 = k + hi > c - 1 ? c - 1 : k + hi;
    double sum = 0;
    for (int64_t j = c0; j <= c1; j++) {
      const double v = ldE<DT>(x, (b + j) * sp + s);
      sum += v * v;
    }
    stE<DT>(o, i, ldE<DT>(x, i) / std::pow(bias + alpha * sum, beta));
  }
}

struct LrnKernel : Kernel {
  int dt = DT_FLOAT;
  int64_t c, sp, lo, hi, n;
  double alpha, beta, bias;
  int32_t in = -1, out = -1;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 grid = gridFor(n, kThreads);
    const void* xp = x.ptr(in);
    void* op = x.ptr(out);
    switch (dt) {
#define KILN_CASE(D)                                                                                               \
  case D:                                                                                                          \
    KILN_LAUNCH(lrnKernel<D>, grid, dim3(kThreads), 0, x.stream, xp, op, c, sp, lo, hi, alpha, beta, bias, n); \
    break;
      KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
      default: break;
    }
    return launched(x, "LRN");
  }
};

// ---- MeanVarianceNormalization: (x - E[x]) / (sqrt(max(0, E[x^2] - E[x]^2)) + 1e-9) over axes ----

struct MvnParams {
  Walk<1> keep;  // kept index -> input offset
  Walk<1> red;   // reduction index -> input offset
  Walk<1> all;   // input element -> kept index
  int64_t keptN, redN, n;
};

template <int DT, bool BLOCK>
KILN_DEVICE void mvnStatsRow(const MvnParams& p, const void* x, double* st, int64_t row, double* sh) {
  int64_t base;
  p.keep.offsets(row, &base);
  double s = 0, q = 0;
  for (int64_t r = BLOCK ? threadIdx.x : 0; r < p.redN; r += BLOCK ? blockDim.x : 1) {
    int64_t off;
    p.red.offsets(r, &off);
    const double v = ldE<DT>(x, base + off);
    s += v;
    q += v * v;
  }
  if (BLOCK) blockSum2(s, q, sh);
  if (!BLOCK || threadIdx.x == 0) {
    const double cnt = static_cast<double>(p.redN);
    const double m = s / cnt;
    st[row] = m;
    st[p.keptN + row] = std::sqrt(nanMax(0.0, q / cnt - m * m)) + 1e-9;
  }
}

template <int DT>
__global__ void mvnStatsKernel(MvnParams p, const void* x, double* st) {
  __shared__ double sh[2 * kThreads];
  for (int64_t row = blockIdx.x; row < p.keptN; row += gridDim.x) mvnStatsRow<DT, true>(p, x, st, row, sh);
}

template <int DT>
__global__ void mvnStatsThreadKernel(MvnParams p, const void* x, double* st) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < p.keptN; row += stride) {
    mvnStatsRow<DT, false>(p, x, st, row, nullptr);
  }
}

template <int DT>
__global__ void mvnApplyKernel(MvnParams p, const void* x, void* o, const double* st) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) {
    int64_t k;
    p.all.offsets(i, &k);
    stE<DT>(o, i, (ldE<DT>(x, i) - st[k]) / st[p.keptN + k]);
  }
}

struct MvnKernel : Kernel {
  MvnParams p{};
  int dt = DT_FLOAT;
  int32_t in = -1, out = -1;
  bool run(Exec& x) override {
    if (p.n == 0) return true;
    double* st = reinterpret_cast<double*>(x.workspace);
    const void* xp = x.ptr(in);
    void* op = x.ptr(out);
    switch (dt) {
#define KILN_CASE(D)                                                                                      \
  case D:                                                                                                 \
    if (p.redN >= kBlockMin)                                                                              \
      KILN_LAUNCH(mvnStatsKernel<D>, gridFor(p.keptN, 1), dim3(kThreads), 0, x.stream, p, xp, st);        \
    else                                                                                                  \
      KILN_LAUNCH(mvnStatsThreadKernel<D>, gridFor(p.keptN, kThreads), dim3(kThreads), 0, x.stream, p, xp, st); \
    if (!launched(x, "MeanVarianceNormalization")) return false;                                          \
    KILN_LAUNCH(mvnApplyKernel<D>, gridFor(p.n, kThreads), dim3(kThreads), 0, x.stream, p, xp, op, st); \
    break;
      KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
      default: break;
    }
    return launched(x, "MeanVarianceNormalization");
  }
};

// ---- NegativeLogLikelihoodLoss (on log-probabilities [N, C, D]) and SoftmaxCrossEntropyLoss ----

enum : int { RED_NONE = 0, RED_SUM = 1, RED_MEAN = 2 };

struct NllParams {
  int64_t nb, c, d;
  int64_t ignore;
  bool hasIgnore;
  int reduction;
  int tdt, wdt;  // target and weight element types
};

/** Loss and weight of target element k; false when its class is out of range. */
template <int DT>
KILN_HD bool nllOne(const NllParams& p, const void* logp, const void* target, const void* weight, int64_t k,
                    double& loss, double& w) {
  const int64_t n = k / p.d, j = k - (k / p.d) * p.d;
  const int64_t cls = p.tdt == DT_INT32 ? static_cast<int64_t>(static_cast<const int32_t*>(target)[k])
                                        : static_cast<const int64_t*>(target)[k];
  loss = 0;
  w = 0;
  if (p.hasIgnore && cls == p.ignore) return true;
  if (cls < 0 || cls >= p.c) return false;
  w = weight ? ldAny(weight, cls, p.wdt) : 1.0;
  loss = -ldE<DT>(logp, (n * p.c + cls) * p.d + j) * w;
  return true;
}

template <int DT>
__global__ void nllNoneKernel(NllParams p, const void* logp, const void* target, const void* weight, void* o,
                              int32_t* status, int32_t tag) {
  const int64_t total = p.nb * p.d;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride) {
    double loss, w;
    if (!nllOne<DT>(p, logp, target, weight, k, loss, w)) *status = tag;
    stE<DT>(o, k, loss);
  }
}

/** The sum or mean: one block. */
template <int DT>
__global__ void nllReduceKernel(NllParams p, const void* logp, const void* target, const void* weight, void* o,
                                int32_t* status, int32_t tag) {
  __shared__ double sh[2 * kThreads];
  if (blockIdx.x != 0) return;
  const int64_t total = p.nb * p.d;
  double sum = 0, wsum = 0;
  for (int64_t k = threadIdx.x; k < total; k += blockDim.x) {
    double loss, w;
    if (!nllOne<DT>(p, logp, target, weight, k, loss, w)) *status = tag;
    sum += loss;
    wsum += w;
  }
  blockSum2(sum, wsum, sh);
  if (threadIdx.x == 0) stE<DT>(o, 0, p.reduction == RED_SUM ? sum : sum / wsum);
}

struct LossKernel : Kernel {
  NllParams p{};
  int dt = DT_FLOAT;
  bool softmax = false;  // SoftmaxCrossEntropyLoss: log-softmax over dim 1 first
  int32_t in = -1, target = -1, weight = -1, out = -1, logProb = -1;
  const char* label = "NegativeLogLikelihoodLoss";
  bool run(Exec& x) override {
    const void* logp = x.ptr(in);
    if (softmax) {
      void* lp = logProb >= 0 ? static_cast<void*>(x.ptr(logProb)) : static_cast<void*>(x.workspace);
      AxisParams a{SM_LOG, p.nb, p.c, p.d};
      if (!launchAxis(x, a, dt, x.ptr(in), lp, label)) return false;
      logp = lp;
    }
    const void* tp = x.ptr(target);
    const void* wp = x.ptr(weight);
    void* op = x.ptr(out);
    const int64_t total = p.nb * p.d;
    if (p.reduction == RED_NONE) {
      if (total == 0) return true;
      const dim3 grid = gridFor(total, kThreads);
      switch (dt) {
#define KILN_CASE(D)                                                                                                 \
  case D:                                                                                                            \
    KILN_LAUNCH(nllNoneKernel<D>, grid, dim3(kThreads), 0, x.stream, p, logp, tp, wp, op, x.status, node + 1); \
    break;
        KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
        default: break;
      }
    } else {
      switch (dt) {
#define KILN_CASE(D)                                                                                                     \
  case D:                                                                                                                \
    KILN_LAUNCH(nllReduceKernel<D>, dim3(1), dim3(kThreads), 0, x.stream, p, logp, tp, wp, op, x.status, node + 1); \
    break;
        KILN_NORM_TYPES(KILN_CASE)
#undef KILN_CASE
        default: break;
      }
    }
    return launched(x, label);
  }
};

// ---- lowering ----------------------------------------------------------------------------------

bool requireFloat(const NodeView& v, int n, std::string& why) {
  for (int i = 0; i < n; i++) {
    if (!v.has(i)) {
      why = "input " + std::to_string(i) + " is absent";
      return false;
    }
    if (!floatType(v.in(i).dtype)) {
      why = std::string("element type ") + dtypeName(v.in(i).dtype);
      return false;
    }
  }
  return true;
}

int64_t prodDims(const std::vector<int64_t>& d, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to && i < d.size(); i++) n *= d[i];
  return n;
}

bool normAxis(int64_t a, int r, int& out) {
  const int64_t v = a < 0 ? a + r : a;
  if (v < 0 || v >= r) return false;
  out = static_cast<int>(v);
  return true;
}

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

std::unique_ptr<Kernel> lowerLpNorm(const NodeView& v, std::string& why) {
  if (!requireFloat(v, 1, why)) return nullptr;
  const SValue& x = v.in(0);
  const int r = x.rank();
  int axis;
  if (!normAxis(v.attrInt("axis", -1), r, axis)) {
    why = "axis out of range";
    return nullptr;
  }
  const int64_t pp = v.attrInt("p", 2);
  if (pp != 1 && pp != 2) {
    why = "p other than 1 or 2";
    return nullptr;
  }
  auto k = std::make_unique<AxisKernel>();
  k->label = "LpNormalization";
  k->p.mode = pp == 1 ? SM_LP1 : SM_LP2;
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->p.outer = prodDims(x.dims, 0, static_cast<size_t>(axis));
  k->p.len = x.dims[static_cast<size_t>(axis)];
  k->p.inner = prodDims(x.dims, static_cast<size_t>(axis) + 1, x.dims.size());
  return k;
}

/**
 * The walk from an index over the normalized dims `nl` to the elements of scale (operand 0) and
 * bias (operand 1), each broadcast (numpy, right-aligned) to nl; false when one does not.
 */
bool scaleBiasWalk(const std::vector<int64_t>& nl, const std::vector<int64_t>& sd, const std::vector<int64_t>& bd,
                   Walk<2>& w) {
  const std::vector<int64_t>* ops[2] = {&sd, &bd};
  std::vector<std::vector<int64_t>> st(2, std::vector<int64_t>(nl.size(), 0));
  for (int k = 0; k < 2; k++) {
    const std::vector<int64_t>& d = *ops[k];
    int64_t s = 1;
    for (int j = static_cast<int>(d.size()) - 1; j >= 0; j--) {
      const int at = j + static_cast<int>(nl.size()) - static_cast<int>(d.size());
      const int64_t len = d[static_cast<size_t>(j)];
      if (at < 0) {
        if (len != 1) return false;
        continue;
      }
      if (len != 1 && len != nl[static_cast<size_t>(at)]) return false;
      st[static_cast<size_t>(k)][static_cast<size_t>(at)] = len == 1 ? 0 : s;
      s *= len;
    }
  }
  // drop size-1 dims; merge dims contiguous for both operands
  std::vector<int64_t> md;
  std::vector<int64_t> m0, m1;
  for (size_t j = 0; j < nl.size(); j++) {
    if (nl[j] == 1) continue;
    if (!md.empty() && m0.back() == st[0][j] * nl[j] && m1.back() == st[1][j] * nl[j]) {
      md.back() *= nl[j];
      m0.back() = st[0][j];
      m1.back() = st[1][j];
    } else {
      md.push_back(nl[j]);
      m0.push_back(st[0][j]);
      m1.push_back(st[1][j]);
    }
  }
  if (md.size() > static_cast<size_t>(kMaxDims)) return false;
  w.rank = static_cast<int>(md.size());
  for (int j = 0; j < w.rank; j++) {
    w.dims[j] = md[static_cast<size_t>(j)];
    w.strides[0][j] = m0[static_cast<size_t>(j)];
    w.strides[1][j] = m1[static_cast<size_t>(j)];
  }
  w.base[0] = w.base[1] = 0;
  return true;
}

std::unique_ptr<Kernel> lowerLayerNorm(const NodeView& v, std::string& why) {
  const bool rms = v.n.op == "RMSNormalization";
  if (!requireFloat(v, 2, why)) return nullptr;
  if (!rms && v.has(2) && !floatType(v.in(2).dtype)) {
    why = std::string("bias element type ") + dtypeName(v.in(2).dtype);
    return nullptr;
  }
  const SValue& x = v.in(0);
  const int r = x.rank();
  int axis;
  if (!normAxis(v.attrInt("axis", -1), r, axis)) {
    why = "axis out of range";
    return nullptr;
  }
  auto k = std::make_unique<NormKernel>();
  k->label = rms ? "RMSNormalization" : "LayerNormalization";
  NormParams& p = k->p;
  p.kind = rms ? N_RMS : N_LAYER;
  p.rows = prodDims(x.dims, 0, static_cast<size_t>(axis));
  p.n = prodDims(x.dims, static_cast<size_t>(axis), x.dims.size());
  p.eps = v.attrFloat("epsilon", 1e-5f);
  p.sdt = v.in(1).dtype;
  p.bdt = !rms && v.has(2) ? v.in(2).dtype : DT_FLOAT;
  const std::vector<int64_t> nl(x.dims.begin() + axis, x.dims.end());
  const std::vector<int64_t> none;
  if (!scaleBiasWalk(nl, v.in(1).dims, !rms && v.has(2) ? v.in(2).dims : none, p.sb)) {
    why = "scale or bias that does not broadcast to the normalized shape";
    return nullptr;
  }
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->scale = v.inId(1);
  k->bias = !rms && v.has(2) ? v.inId(2) : -1;
  k->out = v.outId(0);
  if (!rms) {
    for (int i = 1; i < v.outputCount() && i < 3; i++) {
      if (v.outId(i) < 0) continue;
      if (!floatType(v.out(i).dtype)) {
        why = std::string("Mean / InvStdDev element type ") + dtypeName(v.out(i).dtype);
        return nullptr;
      }
      p.statDt = v.out(i).dtype;
      (i == 1 ? k->mean : k->inv) = v.outId(i);
    }
  }
  return k;
}

std::unique_ptr<Kernel> lowerInstanceGroupNorm(const NodeView& v, std::string& why) {
  const bool group = v.n.op == "GroupNormalization";
  if (!requireFloat(v, 3, why)) return nullptr;
  const SValue& x = v.in(0);
  if (x.rank() < 2) {
    why = "rank below 2";
    return nullptr;
  }
  const int64_t nb = x.dims[0], c = x.dims[1];
  const int64_t sp = prodDims(x.dims, 2, x.dims.size());
  auto k = std::make_unique<NormKernel>();
  k->label = group ? "GroupNormalization" : "InstanceNormalization";
  NormParams& p = k->p;
  p.eps = v.attrFloat("epsilon", 1e-5f);
  p.sdt = v.in(1).dtype;
  p.bdt = v.in(2).dtype;
  p.sp = sp > 0 ? sp : 1;
  if (group) {
    const int64_t g = v.attrInt("num_groups", 0);
    if (g <= 0 || c % g != 0) {
      why = "num_groups that does not divide the channels";
      return nullptr;
    }
    p.kind = N_GROUP;
    p.groups = g;
    p.cpg = c / g;
    p.perChannel = v.s.opset >= 21;
    p.rows = nb * g;
    p.n = p.cpg * sp;
  } else {
    p.kind = N_INSTANCE;
    p.groups = c;
    p.rows = nb * c;
    p.n = sp;
  }
  if (p.groups == 0) p.rows = 0;
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->scale = v.inId(1);
  k->bias = v.inId(2);
  k->out = v.outId(0);
  return k;
}

std::unique_ptr<Kernel> lowerBatchNorm(const NodeView& v, std::string& why) {
  if (!requireFloat(v, 5, why)) return nullptr;
  const SValue& x = v.in(0);
  if (x.rank() < 2) {
    why = "rank below 2";
    return nullptr;
  }
  const uint32_t opset = v.s.opset;
  const bool training = v.attrInt("training_mode", 0) != 0 ||
                        (opset < 9 && v.outputCount() > 1 && v.attrInt("is_test", 0) == 0 && opset >= 7);
  if (training) {
    why = "training mode (batch statistics and running-mean outputs)";
    return nullptr;
  }
  const int64_t c = x.dims[1];
  for (int i = 1; i < 5; i++) {
    if (v.in(i).elements() != c) {
      why = "input " + std::to_string(i) + " without one element per channel";
      return nullptr;
    }
  }
  auto k = std::make_unique<BatchNormKernel>();
  k->dt = x.dtype;
  k->sdt = v.in(1).dtype;
  k->bdt = v.in(2).dtype;
  k->mdt = v.in(3).dtype;
  k->vdt = v.in(4).dtype;
  k->eps = static_cast<double>(v.attrFloat("epsilon", 1e-5f));
  k->c = c;
  k->sp = prodDims(x.dims, 2, x.dims.size());
  k->n = x.elements();
  k->in = v.inId(0);
  k->scale = v.inId(1);
  k->bias = v.inId(2);
  k->mean = v.inId(3);
  k->var = v.inId(4);
  k->out = v.outId(0);
  if (v.outputCount() > 1 && v.outId(1) >= 0) {
    k->outMean = v.outId(1);
    k->meanBytes = v.in(3).bytes < v.out(1).bytes ? v.in(3).bytes : v.out(1).bytes;
  }
  if (v.outputCount() > 2 && v.outId(2) >= 0) {
    k->outVar = v.outId(2);
    k->varBytes = v.in(4).bytes < v.out(2).bytes ? v.in(4).bytes : v.out(2).bytes;
  }
  k->workspace = 2 * c * static_cast<int64_t>(sizeof(double));
  return k;
}

std::unique_ptr<Kernel> lowerLrn(const NodeView& v, std::string& why) {
  if (!requireFloat(v, 1, why)) return nullptr;
  const SValue& x = v.in(0);
  if (x.rank() < 2) {
    why = "rank below 2";
    return nullptr;
  }
  const int64_t size = v.attrInt("size", 0);
  if (size < 1) {
    why = "size below 1";
    return nullptr;
  }
  auto k = std::make_unique<LrnKernel>();
  k->dt = x.dtype;
  k->c = x.dims[1];
  k->sp = prodDims(x.dims, 2, x.dims.size());
  k->lo = (size - 1) / 2;
  k->hi = size - 1 - k->lo;
  k->alpha = static_cast<double>(v.attrFloat("alpha", 1e-4f)) / static_cast<double>(size);
  k->beta = static_cast<double>(v.attrFloat("beta", 0.75f));
  k->bias = static_cast<double>(v.attrFloat("bias", 1.0f));
  k->n = x.elements();
  k->in = v.inId(0);
  k->out = v.outId(0);
  return k;
}

std::unique_ptr<Kernel> lowerMvn(const NodeView& v, std::string& why) {
  if (!requireFloat(v, 1, why)) return nullptr;
  const SValue& x = v.in(0);
  const int r = x.rank();
  std::vector<int64_t> axes = v.hasAttr("axes") ? v.attrInts("axes") : std::vector<int64_t>{0, 2, 3};
  std::vector<bool> mask(static_cast<size_t>(r), false);
  for (int64_t a : axes) {
    int n;
    if (!normAxis(a, r, n)) {
      why = "axis out of range";
      return nullptr;
    }
    mask[static_cast<size_t>(n)] = true;
  }
  auto k = std::make_unique<MvnKernel>();
  MvnParams& p = k->p;
  p.n = x.elements();
  const std::vector<int64_t> strides = contiguousStrides(x.dims);
  std::vector<int64_t> kd, ks, rd, rs, keptStride(static_cast<size_t>(r), 0);
  int64_t keptN = 1, redN = 1;
  for (int j = r - 1; j >= 0; j--) {
    if (!mask[static_cast<size_t>(j)]) {
      keptStride[static_cast<size_t>(j)] = keptN;
      keptN *= x.dims[static_cast<size_t>(j)];
    } else {
      redN *= x.dims[static_cast<size_t>(j)];
    }
  }
  for (int j = 0; j < r; j++) {
    const int64_t len = x.dims[static_cast<size_t>(j)];
    if (len == 1) continue;
    (mask[static_cast<size_t>(j)] ? rd : kd).push_back(len);
    (mask[static_cast<size_t>(j)] ? rs : ks).push_back(strides[static_cast<size_t>(j)]);
  }
  if (kd.size() > static_cast<size_t>(kMaxDims) || rd.size() > static_cast<size_t>(kMaxDims) || r > kMaxDims) {
    why = "rank past 8";
    return nullptr;
  }
  p.keptN = keptN;
  p.redN = redN;
  p.keep.rank = static_cast<int>(kd.size());
  p.red.rank = static_cast<int>(rd.size());
  p.all.rank = r;
  for (size_t j = 0; j < kd.size(); j++) {
    p.keep.dims[j] = kd[j];
    p.keep.strides[0][j] = ks[j];
  }
  for (size_t j = 0; j < rd.size(); j++) {
    p.red.dims[j] = rd[j];
    p.red.strides[0][j] = rs[j];
  }
  for (int j = 0; j < r; j++) {
    p.all.dims[j] = x.dims[static_cast<size_t>(j)];
    p.all.strides[0][j] = keptStride[static_cast<size_t>(j)];
  }
  p.keep.base[0] = p.red.base[0] = p.all.base[0] = 0;
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->workspace = 2 * keptN * static_cast<int64_t>(sizeof(double));
  return k;
}

std::unique_ptr<Kernel> lowerLoss(const NodeView& v, std::string& why) {
  const bool sce = v.n.op == "SoftmaxCrossEntropyLoss";
  if (!requireFloat(v, 1, why) || !v.has(1)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& t = v.in(1);
  if (t.dtype != DT_INT32 && t.dtype != DT_INT64) {
    why = std::string("target element type ") + dtypeName(t.dtype);
    return nullptr;
  }
  if (v.has(2) && !floatType(v.in(2).dtype)) {
    why = std::string("weight element type ") + dtypeName(v.in(2).dtype);
    return nullptr;
  }
  if (x.rank() < 2) {
    why = "rank below 2";
    return nullptr;
  }
  const std::string red = v.attrString("reduction", "mean");
  auto k = std::make_unique<LossKernel>();
  NllParams& p = k->p;
  if (red == "none") p.reduction = RED_NONE;
  else if (red == "sum") p.reduction = RED_SUM;
  else if (red == "mean") p.reduction = RED_MEAN;
  else {
    why = "reduction '" + red + "'";
    return nullptr;
  }
  p.nb = x.dims[0];
  p.c = x.dims[1];
  p.d = prodDims(x.dims, 2, x.dims.size());
  p.hasIgnore = v.hasAttr("ignore_index");
  p.ignore = v.attrInt("ignore_index", 0);
  p.tdt = t.dtype;
  p.wdt = v.has(2) ? v.in(2).dtype : DT_FLOAT;
  if (p.d == 0) p.nb = 0;
  k->dt = x.dtype;
  k->softmax = sce;
  k->label = sce ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss";
  k->badData = std::string(k->label) + ": a target class is out of range";
  k->in = v.inId(0);
  k->target = v.inId(1);
  k->weight = v.has(2) ? v.inId(2) : -1;
  k->out = v.outId(0);
  if (v.out(0).dtype != x.dtype) {
    why = std::string("output element type ") + dtypeName(v.out(0).dtype);
    return nullptr;
  }
  if (sce) {
    if (v.outputCount() > 1 && v.outId(1) >= 0) {
      k->logProb = v.outId(1);
    } else {
      k->workspace = x.bytes;
    }
  }
  return k;
}

}  // namespace

void registerNorm() {
  registerLowering("Softmax", lowerSoftmax);
  registerLowering("LogSoftmax", lowerSoftmax);
  registerLowering("Hardmax", lowerSoftmax);
  registerLowering("LpNormalization", lowerLpNorm);
  registerLowering("LayerNormalization", lowerLayerNorm);
  registerLowering("RMSNormalization", lowerLayerNorm);
  registerLowering("InstanceNormalization", lowerInstanceGroupNorm);
  registerLowering("GroupNormalization", lowerInstanceGroupNorm);
  registerLowering("BatchNormalization", lowerBatchNorm);
  registerLowering("LRN", lowerLrn);
  registerLowering("MeanVarianceNormalization", lowerMvn);
  registerLowering("NegativeLogLikelihoodLoss", lowerLoss);
  registerLowering("SoftmaxCrossEntropyLoss", lowerLoss);
}

}  // namespace kiln
