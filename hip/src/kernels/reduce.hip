// Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare) and ArgMax/ArgMin.
//
// Semantics follow the ref target (wasm/ops/reduce.ts, wasm/kernels/reduce.ts): every element
// type loads as double and accumulates in double, Max/Min propagate NaN (WebAssembly min/max,
// -0 < +0), the empty set gives the operation's identity (-inf for Max, +inf for Min, 1 for
// Prod, 0 for the sums; Mean of nothing is NaN, LogSum and LogSumExp of nothing are -inf), and
// results are stored as the ref's storeF64 does (floats round; integers truncate toward zero,
// saturate at the int64 range, wrap to their width, and non-finite values become 0). ArgMax and
// ArgMin compare the values as doubles like the ref's scan: a NaN first element wins, other
// NaNs are skipped, ties go to the first index (the last with select_last_index).
//
// The input is split into the kept dims (the output's) and the reduced dims, adjacent dims of
// one kind merged. When the innermost merged dim is reduced, one block reduces one output
// element (shared-memory tree, reads coalesced); otherwise one thread reduces one output element
// (neighbouring threads read neighbouring elements), or, with few outputs and a long
// reduction, one block does.
#include <cmath>
#include <cstring>

#include "device.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;
/** Contiguous reductions shorter than this run one per thread rather than one per block. */
constexpr int64_t kBlockMin = 128;

// reduction codes (wasm/kernels/reduce.ts)
enum : int {
  R_SUM = 0, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQUARE,
};

// ---- element access by ONNX type (the ref's loadF64 / storeF64) ----

template <int DT>
KILN_HD double ldE(const void* p, int64_t i) {
  switch (DT) {
    case DT_FLOAT: return static_cast<const float*>(p)[i];
    case DT_DOUBLE: return static_cast<const double*>(p)[i];
    case DT_FLOAT16: return f16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_BFLOAT16: return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DT_INT8: return static_cast<const int8_t*>(p)[i];
    case DT_UINT8:
    case DT_BOOL: return static_cast<const uint8_t*>(p)[i];
    case DT_INT16: return static_cast<const int16_t*>(p)[i];
    case DT_UINT16: return static_cast<const uint16_t*>(p)[i];
    case DT_INT32: return static_cast<const int32_t*>(p)[i];
    case DT_UINT32: return static_cast<const uint32_t*>(p)[i];
    case DT_INT64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DT_UINT64: return static_cast<double>(static_cast<const uint64_t*>(p)[i]);
    default: return 0;
  }
}

template <int DT>
KILN_HD void stE(void* p, int64_t i, double v) {
  switch (DT) {
    case DT_FLOAT: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case DT_DOUBLE: static_cast<double*>(p)[i] = v; return;
    case DT_FLOAT16: static_cast<uint16_t*>(p)[i] = f32ToF16(static_cast<float>(v)); return;
    case DT_BFLOAT16: static_cast<uint16_t*>(p)[i] = f32ToBf16(static_cast<float>(v)); return;
    case DT_BOOL: static_cast<uint8_t*>(p)[i] = v != 0 ? 1 : 0; return;
    default: break;
  }
  int64_t iv = 0;
  if (std::isfinite(v)) {
    if (v >= 9223372036854775807.0) {
      if (DT == DT_UINT64) {
        iv = v >= 18446744073709551615.0 ? static_cast<int64_t>(~0ull)
                                          : static_cast<int64_t>(static_cast<uint64_t>(v));
      } else {
        iv = INT64_MAX;
      }
    } else if (v <= -9223372036854775808.0) {
      iv = INT64_MIN;
    } else {
      iv = static_cast<int64_t>(v);
    }
  }
  switch (DT) {
    case DT_INT8:
    case DT_UINT8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(iv); break;
    case DT_INT16:
    case DT_UINT16: static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(iv); break;
    case DT_INT32:
    case DT_UINT32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(iv); break;
    default: static_cast<int64_t*>(p)[i] = iv; break;
  }
}

#define KILN_REDUCE_TYPES(X) \
  X(DT_FLOAT) X(DT_DOUBLE) X(DT_FLOAT16) X(DT_BFLOAT16) X(DT_INT8) X(DT_UINT8) X(DT_INT16) X(DT_UINT16) \
  X(DT_INT32) X(DT_UINT32) X(DT_INT64) X(DT_UINT64) X(DT_BOOL)

bool reduceType(int dt) {
  switch (dt) {
#define KILN_CASE(D) case D:
    KILN_REDUCE_TYPES(KILN_CASE)
#undef KILN_CASE
    return true;
    default: return false;
  }
}

// ---- the reduction step ----

KILN_HD double initValue(int code) {
  switch (code) {
    case R_MAX: return -static_cast<double>(INFINITY);
    case R_MIN: return static_cast<double>(INFINITY);
    case R_PROD: return 1;
    default: return 0;
  }
}

/** a combined with element v */
KILN_HD double step(int code, double a, double v) {
  switch (code) {
    case R_MAX: return nanMax(a, v);
    case R_MIN: return nanMin(a, v);
    case R_PROD: return a * v;
    case R_L1: return a + std::fabs(v);
    case R_L2:
    case R_SUMSQUARE: return a + v * v;
    default: return a + v;
  }
}

/** two partial results combined */
KILN_HD double merge(int code, double a, double b) {
  switch (code) {
    case R_MAX: return nanMax(a, b);
    case R_MIN: return nanMin(a, b);
    case R_PROD: return a * b;
    default: return a + b;
  }
}

KILN_HD double finish(int code, double a, double count) {
  switch (code) {
    case R_MEAN: return a / count;
    case R_L2: return std::sqrt(a);
    case R_LOGSUM: return std::log(a);
    default: return a;
  }
}

/** The shared-memory tree over a block of kThreads (a power of two); every thread gets the result. */
KILN_DEVICE double blockMerge(int code, double v, double* sh) {
  const int t = static_cast<int>(threadIdx.x);
  sh[t] = v;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] = merge(code, sh[t], sh[t + s]);
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

/** Element offset of index i over a walk (rank 1 without a division). */
KILN_HD int64_t walkOffset(const Walk<1>& w, int64_t i) {
  if (w.rank == 1) return w.base[0] + i * w.strides[0][0];
  int64_t o;
  w.offsets(i, &o);
  return o;
}

struct ReduceParams {
  Walk<1> keep;  // output index -> input offset of its first element
  Walk<1> red;   // reduction index -> input offset from there
  int64_t outN, redN;
  int code;
  double count;  // elements per output (Mean)
};

/** The finalized reduction of one output element: by one block (BLOCK) or one thread. */
template <int DT, bool BLOCK>
KILN_DEVICE double reduceOne(const ReduceParams& p, const void* x, int64_t row, double* sh) {
  const int64_t base = walkOffset(p.keep, row);
  const int64_t first = BLOCK ? static_cast<int64_t>(threadIdx.x) : 0;
  const int64_t stride = BLOCK ? static_cast<int64_t>(blockDim.x) : 1;
  if (p.code == R_LOGSUMEXP) {
    double m = -static_cast<double>(INFINITY);
    for (int64_t r = first; r < p.redN; r += stride) m = nanMax(m, ldE<DT>(x, base + walkOffset(p.red, r)));
    if (BLOCK) m = blockMerge(R_MAX, m, sh);
    double s = 0;
    for (int64_t r = first; r < p.redN; r += stride) s += std::exp(ldE<DT>(x, base + walkOffset(p.red, r)) - m);
    if (BLOCK) s = blockMerge(R_SUM, s, sh);
    // all -inf: log(0) = -inf; a +inf makes the result +inf
    return std::isfinite(m) ? std::log(s) + m : (m == static_cast<double>(INFINITY) ? m : std::log(s));
  }
  double a = initValue(p.code);
  for (int64_t r = first; r < p.redN; r += stride) a = step(p.code, a, ldE<DT>(x, base + walkOffset(p.red, r)));
  if (BLOCK) a = blockMerge(p.code, a, sh);
  return finish(p.code, a, p.count);
}

template <int DT>
__global__ void reduceBlockKernel(ReduceParams p, const void* x, void* o) {
  __shared__ double sh[kThreads];
  for (int64_t row = blockIdx.x; row < p.outN; row += gridDim.x) {
    const double v = reduceOne<DT, true>(p, x, row, sh);
    if (threadIdx.x == 0) stE<DT>(o, row, v);
  }
}

template <int DT>
__global__ void reduceThreadKernel(ReduceParams p, const void* x, void* o) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < p.outN; row += stride) {
    stE<DT>(o, row, reduceOne<DT, false>(p, x, row, nullptr));
  }
}

struct ReduceKernel : Kernel {
  ReduceParams p{};
  int dt = DT_FLOAT;
  bool byBlock = true;
  int32_t in = -1, out = -1;
  bool run(Exec& x) override {
    if (p.outN == 0) return true;
    const dim3 grid = byBlock ? gridFor(p.outN, 1) : gridFor(p.outN, kThreads);
    const void* xp = x.ptr(in);
    void* op = x.ptr(out);
    switch (dt) {
#define KILN_CASE(D)                                                                              \
  case D:                                                                                         \
    if (byBlock) KILN_LAUNCH(reduceBlockKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, op); \
    else KILN_LAUNCH(reduceThreadKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, op);        \
    break;
      KILN_REDUCE_TYPES(KILN_CASE)
#undef KILN_CASE
      default: break;
    }
    return launched(x, "reduce");
  }
};

/** A device-to-device copy (noop_with_empty_axes). */
struct CopyKernel : Kernel {
  int32_t in = -1, out = -1;
  int64_t bytes = 0;
  bool run(Exec& x) override {
    if (bytes == 0 || x.ptr(in) == x.ptr(out)) return true;
    return hipCheck(hipMemcpyAsync(x.ptr(out), x.ptr(in), static_cast<size_t>(bytes), hipMemcpyDeviceToDevice, x.stream),
                    "reduce (copy)", *x.err);
  }
};

// ---- ArgMax / ArgMin ----

struct ArgParams {
  int64_t outer, len, inner;
  bool isMax, last;
};

/** Whether (v, i) beats the current best (b, bi), bi < 0 meaning none yet; v is not NaN. */
KILN_HD bool argBetter(const ArgParams& p, double v, int64_t i, double b, int64_t bi) {
  if (bi < 0) return true;
  if (v == b) return p.last ? i > bi : i < bi;
  return p.isMax ? v > b : v < b;
}

template <int DT>
__global__ void argBlockKernel(ArgParams p, const void* x, int64_t* o) {
  __shared__ double sv[kThreads];
  __shared__ int64_t si[kThreads];
  const int64_t rows = p.outer * p.inner;
  const int t = static_cast<int>(threadIdx.x);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t r = row / p.inner, j = row - (row / p.inner) * p.inner;
    const int64_t base = r * p.len * p.inner + j;
    double b = 0;
    int64_t bi = -1;
    for (int64_t k = t; k < p.len; k += blockDim.x) {
      const double v = ldE<DT>(x, base + k * p.inner);
      if (v == v && argBetter(p, v, k, b, bi)) {
        b = v;
        bi = k;
      }
    }
    sv[t] = b;
    si[t] = bi;
    __syncthreads();
    for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {
      if (t < s && si[t + s] >= 0 && argBetter(p, sv[t + s], si[t + s], sv[t], si[t])) {
        sv[t] = sv[t + s];
        si[t] = si[t + s];
      }
      __syncthreads();
    }
    if (t == 0) {
      // a NaN first element is never beaten in the ref's scan
      const bool nanFirst = p.len > 0 && !(ldE<DT>(x, base) == ldE<DT>(x, base));
      o[row] = nanFirst || si[0] < 0 ? 0 : si[0];
    }
    __syncthreads();
  }
}

template <int DT>
__global__ void argThreadKernel(ArgParams p, const void* x, int64_t* o) {
  const int64_t rows = p.outer * p.inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows; row += stride) {
    const int64_t r = row / p.inner, j = row - (row / p.inner) * p.inner;
    const int64_t base = r * p.len * p.inner + j;
    int64_t bi = 0;
    if (p.len > 0) {
      double best = ldE<DT>(x, base);
      for (int64_t k = 1; k < p.len; k++) {
        const double v = ldE<DT>(x, base + k * p.inner);
        const bool better = p.isMax ? (p.last ? v >= best : v > best) : (p.last ? v <= best : v < best);
        if (better) {
          best = v;
          bi = k;
        }
      }
    }
    o[row] = bi;
  }
}

struct ArgKernel : Kernel {
  ArgParams p{};
  int dt = DT_FLOAT;
  bool byBlock = true;
  int32_t in = -1, out = -1;
  bool run(Exec& x) override {
    const int64_t rows = p.outer * p.inner;
    if (rows == 0) return true;
    const dim3 grid = byBlock ? gridFor(rows, 1) : gridFor(rows, kThreads);
    const void* xp = x.ptr(in);
    int64_t* op = x.at<int64_t>(out);
    switch (dt) {
#define KILN_CASE(D)                                                                           \
  case D:                                                                                      \
    if (byBlock) KILN_LAUNCH(argBlockKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, op); \
    else KILN_LAUNCH(argThreadKernel<D>, grid, dim3(kThreads), 0, x.stream, p, xp, op);        \
    break;
      KILN_REDUCE_TYPES(KILN_CASE)
#undef KILN_CASE
      default: break;
    }
    return launched(x, p.isMax ? "ArgMax" : "ArgMin");
  }
};

// ---- lowering ----------------------------------------------------------------------------------

int reduceCode(const std::string& op) {
  static const char* names[] = {"ReduceSum", "ReduceMean",   "ReduceMax",      "ReduceMin",      "ReduceProd",
                                "ReduceL1",  "ReduceL2",     "ReduceLogSum",   "ReduceLogSumExp", "ReduceSumSquare"};
  for (int i = 0; i <= R_SUMSQUARE; i++) {
    if (op == names[i]) return i;
  }
  return -1;
}

/** One walk over `dims` with element `strides`; false when the rank passes kMaxDims. */
bool makeWalk(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides, Walk<1>& w) {
  if (dims.size() > static_cast<size_t>(kMaxDims)) return false;
  w.rank = static_cast<int>(dims.size());
  for (int j = 0; j < w.rank; j++) {
    w.dims[j] = dims[static_cast<size_t>(j)];
    w.strides[0][j] = strides[static_cast<size_t>(j)];
  }
  w.base[0] = 0;
  return true;
}

std::unique_ptr<Kernel> lowerReduce(const NodeView& v, std::string& why) {
  const int code = reduceCode(v.n.op);
  if (code < 0 || !v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& o = v.out(0);
  if (!reduceType(x.dtype) || o.dtype != x.dtype) {
    why = std::string("element type ") + dtypeName(x.dtype);
    return nullptr;
  }
  const uint32_t axesInputFrom = code == R_SUM ? 13 : 18;
  std::vector<int64_t> raw;
  if (v.s.opset >= axesInputFrom) {
    if (v.has(1) && !v.constInts(1, raw)) {
      why = "axes that are not a compile-time constant";
      return nullptr;
    }
  } else {
    raw = v.attrInts("axes");
  }
  const int r = x.rank();
  std::vector<bool> mask(static_cast<size_t>(r), false);
  if (raw.empty()) {
    if (v.attrInt("noop_with_empty_axes", 0) != 0) {
      auto k = std::make_unique<CopyKernel>();
      k->in = v.inId(0);
      k->out = v.outId(0);
      k->bytes = x.bytes < o.bytes ? x.bytes : o.bytes;
      return k;
    }
    for (int i = 0; i < r; i++) mask[static_cast<size_t>(i)] = true;
  } else {
    for (int64_t a : raw) {
      const int64_t n = a < 0 ? a + r : a;
      if (n < 0 || n >= r) {
        why = "axis " + std::to_string(a) + " out of range";
        return nullptr;
      }
      mask[static_cast<size_t>(n)] = true;
    }
  }
  auto k = std::make_unique<ReduceKernel>();
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->out = v.outId(0);
  ReduceParams& p = k->p;
  p.code = code;
  p.outN = o.elements();
  const int64_t total = x.elements();
  p.redN = p.outN > 0 ? total / p.outN : 0;
  p.count = static_cast<double>(p.redN);
  // split into merged kept and reduced segments
  const std::vector<int64_t> strides = contiguousStrides(x.dims);
  std::vector<int64_t> kd, ks, rd, rs;
  int lastKind = -1;  // 0 kept, 1 reduced
  if (total > 0) {
    for (int j = 0; j < r; j++) {
      const int64_t len = x.dims[static_cast<size_t>(j)];
      if (len == 1) continue;
      const int kind = mask[static_cast<size_t>(j)] ? 1 : 0;
      std::vector<int64_t>& d = kind ? rd : kd;
      std::vector<int64_t>& s = kind ? rs : ks;
      if (kind == lastKind) {
        d.back() *= len;
        s.back() = strides[static_cast<size_t>(j)];
      } else {
        d.push_back(len);
        s.push_back(strides[static_cast<size_t>(j)]);
      }
      lastKind = kind;
    }
  } else {
    p.redN = 0;  // nothing to read: every output is the empty reduction
  }
  if (!makeWalk(kd, ks, p.keep) || !makeWalk(rd, rs, p.red)) {
    why = "more than 8 alternating kept and reduced dims";
    return nullptr;
  }
  // innermost dim reduced (or all reduced): a block per output unless the reductions are short;
  // else a thread per output unless the outputs are few and the reductions long
  k->byBlock = lastKind != 0 ? p.redN >= kBlockMin : (p.outN < 2048 && p.redN >= 256);
  return k;
}

std::unique_ptr<Kernel> lowerArg(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& o = v.out(0);
  if (!reduceType(x.dtype)) {
    why = std::string("element type ") + dtypeName(x.dtype);
    return nullptr;
  }
  if (o.dtype != DT_INT64) {
    why = std::string("output element type ") + dtypeName(o.dtype);
    return nullptr;
  }
  const int r = x.rank();
  const int64_t a = v.attrInt("axis", 0);
  const int64_t axis = a < 0 ? a + r : a;
  if (axis < 0 || axis >= r) {
    why = "axis " + std::to_string(a) + " out of range";
    return nullptr;
  }
  auto k = std::make_unique<ArgKernel>();
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->out = v.outId(0);
  ArgParams& p = k->p;
  p.isMax = v.n.op == "ArgMax";
  p.last = v.attrInt("select_last_index", 0) != 0;
  p.outer = 1;
  p.inner = 1;
  for (int i = 0; i < axis; i++) p.outer *= x.dims[static_cast<size_t>(i)];
  for (int i = static_cast<int>(axis) + 1; i < r; i++) p.inner *= x.dims[static_cast<size_t>(i)];
  p.len = x.dims[static_cast<size_t>(axis)];
  const int64_t rows = p.outer * p.inner;
  k->byBlock = p.inner == 1 ? p.len >= kBlockMin : (rows < 2048 && p.len >= 256);
  return k;
}

}  // namespace

void registerReduce() {
  const char* ops[] = {"ReduceSum", "ReduceMean",   "ReduceMax",      "ReduceMin",      "ReduceProd",
                       "ReduceL1",  "ReduceL2",     "ReduceLogSum",   "ReduceLogSumExp", "ReduceSumSquare"};
  for (const char* op : ops) registerLowering(op, lowerReduce);
  registerLowering("ArgMax", lowerArg);
  registerLowering("ArgMin", lowerArg);
}

}  // namespace kiln
