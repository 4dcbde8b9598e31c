// The losses: NegativeLogLikelihoodLoss, on log-probabilities [N, C, D], and
// SoftmaxCrossEntropyLoss, a log-softmax over dim 1 (softmax.hip's axis kernel) first. Semantics
// follow the ref target (wasm/ops/math/loss.ts); element types as rows.h says. A target class out
// of range sets the program's status word (lower.h).
#include <cmath>
#include <cstring>

#include "device.h"
#include "rows.h"
#include "softmax.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

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

void registerLoss() {
  registerLowering("NegativeLogLikelihoodLoss", lowerLoss);
  registerLowering("SoftmaxCrossEntropyLoss", lowerLoss);
}

}  // namespace kiln
