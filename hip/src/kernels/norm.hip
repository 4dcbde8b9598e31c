// The normalizations: LayerNormalization, RMSNormalization, BatchNormalization (inference),
// InstanceNormalization, GroupNormalization, LpNormalization (on softmax.hip's axis kernel),
// MeanVarianceNormalization and LRN. Semantics follow the ref target (wasm/ops/norm.ts); element
// types, float32 arithmetic and rows as rows.h says.
#include <cmath>
#include <cstring>

#include "device.h"
#include "rows.h"
#include "softmax.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

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

/** Sums v over the 32 lanes of each group (every lane gets the sum). */
KILN_DEVICE double laneSum(double v) {
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) v += kilnShflXor(v, m);
  return v;
}

/**
 * float32 LayerNormalization, one row per 32 lanes (4 rows per block), the row held in registers
 * as V float4s per lane: one read and one write of the row, lane shuffles instead of block-wide
 * barriers. The arithmetic is normRow's (sums in double, mean and 1/sqrt(var + eps) as floats).
 * Rows of n <= 2048, n a multiple of 4, scale and bias contiguous float32.
 */
template <int V>
__global__ void layerNormLanesKernel(NormParams p, const float* x, const float* scale, const float* bias, float* o,
                                     void* mean, void* inv) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  const bool live = row < p.rows;  // every lane shuffles, live or not
  const int n4 = static_cast<int>(p.n / 4);
  const float4* xr = reinterpret_cast<const float4*>(x + (live ? row : 0) * p.n);
  float4 v[V];
  double s = 0;
#pragma unroll
  for (int k = 0; k < V; k++) {
    const int c = lane + k * 32;
    if (live && c < n4) {
      v[k] = xr[c];
      s += static_cast<double>(v[k].x);
      s += static_cast<double>(v[k].y);
      s += static_cast<double>(v[k].z);
      s += static_cast<double>(v[k].w);
    } else {
      v[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
  s = laneSum(s);
  const double nd = static_cast<double>(p.n);
  const float m = static_cast<float>(s / nd);
  double q = 0;
#pragma unroll
  for (int k = 0; k < V; k++) {
    if (live && lane + k * 32 < n4) {
      const float d0 = v[k].x - m, d1 = v[k].y - m, d2 = v[k].z - m, d3 = v[k].w - m;
      q += static_cast<double>(d0) * static_cast<double>(d0);
      q += static_cast<double>(d1) * static_cast<double>(d1);
      q += static_cast<double>(d2) * static_cast<double>(d2);
      q += static_cast<double>(d3) * static_cast<double>(d3);
    }
  }
  q = laneSum(q);
  const float r = static_cast<float>(1.0 / std::sqrt(static_cast<double>(static_cast<float>(q / nd)) +
                                                     static_cast<double>(p.eps)));
  if (!live) return;
  const float4* sc4 = reinterpret_cast<const float4*>(scale);
  const float4* b4 = reinterpret_cast<const float4*>(bias);
  float4* orow = reinterpret_cast<float4*>(o + row * p.n);
#pragma unroll
  for (int k = 0; k < V; k++) {
    const int c = lane + k * 32;
    if (c >= n4) continue;
    const float4 sc = sc4[c];
    const float4 b = bias ? b4[c] : make_float4(0.f, 0.f, 0.f, 0.f);
    orow[c] = make_float4((v[k].x - m) * r * sc.x + b.x, (v[k].y - m) * r * sc.y + b.y,
                          (v[k].z - m) * r * sc.z + b.z, (v[k].w - m) * r * sc.w + b.w);
  }
  if (lane == 0) {
    if (mean) stAny(mean, row, p.statDt, m);
    if (inv) stAny(inv, row, p.statDt, r);
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
  int lanesV = 0;  // > 0: layerNormLanesKernel<lanesV> (float4s per lane)
  bool run(Exec& x) override {
    if (p.rows == 0) return true;
    if (lanesV > 0) {
      const dim3 grid = gridFor(p.rows, 4);
      const float* xp = x.at<const float>(in);
      const float* sp = x.at<const float>(scale);
      const float* bp = bias >= 0 ? x.at<const float>(bias) : nullptr;
      float* op = x.at<float>(out);
      void* mp = x.ptr(mean);
      void* ip = x.ptr(inv);
      switch (lanesV) {
#define KILN_LANES(V) \
  case V: KILN_LAUNCH(layerNormLanesKernel<V>, grid, dim3(128), 0, x.stream, p, xp, sp, bp, op, mp, ip); break;
        KILN_LANES(1) KILN_LANES(2) KILN_LANES(4) KILN_LANES(6) KILN_LANES(8) KILN_LANES(12) KILN_LANES(16)
#undef KILN_LANES
        default: break;
      }
      return launched(x, label);
    }
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

// ---- lowering ----------------------------------------------------------------------------------

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
  // float32 rows of up to 2048 with a contiguous scale and bias: one row per 32 lanes, in registers
  const bool contiguous =
      p.sb.rank == 1 && p.sb.strides[0][0] == 1 && (k->bias < 0 || p.sb.strides[1][0] == 1);
  if (!rms && x.dtype == DT_FLOAT && p.sdt == DT_FLOAT && (k->bias < 0 || p.bdt == DT_FLOAT) && contiguous &&
      p.n > 0 && p.n % 4 == 0 && p.n <= 2048) {
    const int64_t per = (p.n / 4 + 31) / 32;
    for (int lanes : {1, 2, 4, 6, 8, 12, 16}) {
      if (lanes >= per) {
        k->lanesV = lanes;
        break;
      }
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

}  // namespace

void registerNorm() {
  registerLowering("LpNormalization", lowerLpNorm);
  registerLowering("LayerNormalization", lowerLayerNorm);
  registerLowering("RMSNormalization", lowerLayerNorm);
  registerLowering("InstanceNormalization", lowerInstanceGroupNorm);
  registerLowering("GroupNormalization", lowerInstanceGroupNorm);
  registerLowering("BatchNormalization", lowerBatchNorm);
  registerLowering("LRN", lowerLrn);
  registerLowering("MeanVarianceNormalization", lowerMvn);
}

}  // namespace kiln
