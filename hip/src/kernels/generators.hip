// The generators that were not folded: Trilu, Range, ConstantOfShape, EyeLike and CumSum (OneHot
// is in misc.hip). Trilu's k and CumSum's axis are read on the device when they are run-time inputs;
// a CumSum axis out of range then sets the program's status word (lower.h).
#include <algorithm>
#include <cstring>

#include "copy.h"
#include "device.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

// ---- generators ------------------------------------------------------------------------

template <typename T>
__global__ void triluKernel(const T* in, T* out, int64_t rows, int64_t cols, int64_t k, const int64_t* kAt, bool upper,
                            int64_t n) {
  if (kAt) k = kAt[0];  // k given at run time
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t c = i % cols;
    const int64_t r = (i / cols) % rows;
    const bool keep = upper ? c - r >= k : c - r <= k;
    out[i] = keep ? in[i] : T(0);
  }
}

struct TriluKernel : Kernel {
  int size;
  int32_t kIn = -1;
  int32_t in, out;
  int64_t rows, cols, k, n;
  bool upper;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    switch (size) {
      case 1: KILN_LAUNCH(triluKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint8_t>(in), x.at<uint8_t>(out), rows, cols, k, x.at<const int64_t>(kIn), upper, n); break;
      case 2: KILN_LAUNCH(triluKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint16_t>(in), x.at<uint16_t>(out), rows, cols, k, x.at<const int64_t>(kIn), upper, n); break;
      case 4: KILN_LAUNCH(triluKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint32_t>(in), x.at<uint32_t>(out), rows, cols, k, x.at<const int64_t>(kIn), upper, n); break;
      default: KILN_LAUNCH(triluKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint64_t>(in), x.at<uint64_t>(out), rows, cols, k, x.at<const int64_t>(kIn), upper, n); break;
    }
    return launched(x, "Trilu");
  }
};

std::unique_ptr<Kernel> lowerTrilu(const NodeView& v, std::string& why) {
  const SValue& x = v.in(0);
  if (x.rank() < 2) return nullptr;
  int64_t kk = 0;
  int32_t kIn = -1;
  if (v.has(1)) {
    std::vector<int64_t> kv;
    if (v.constInts(1, kv) && kv.size() == 1) {
      kk = kv[0];
    } else if (v.in(1).dtype == DT_INT64 && v.in(1).elements() == 1) {
      kIn = v.inId(1);  // read on the device at run time
    } else {
      why = "Trilu's k is not one int64";
      return nullptr;
    }
  }
  auto k = std::make_unique<TriluKernel>();
  k->kIn = kIn;
  k->size = dtypeSize(x.dtype);
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->rows = x.dims[x.dims.size() - 2];
  k->cols = x.dims.back();
  k->k = kk;
  k->upper = v.attrInt("upper", 1) != 0;
  k->n = x.elements();
  return k;
}

template <typename T>
__global__ void rangeKernel(const T* start, const T* delta, T* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = static_cast<T>(start[0] + static_cast<T>(i) * delta[0]);
  }
}

struct RangeKernel : Kernel {
  int dt;
  int32_t start, delta, out;
  int64_t n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    switch (dt) {
      case DT_FLOAT: KILN_LAUNCH(rangeKernel<float>, g, dim3(kThreads), 0, x.stream, x.at<const float>(start), x.at<const float>(delta), x.at<float>(out), n); break;
      case DT_DOUBLE: KILN_LAUNCH(rangeKernel<double>, g, dim3(kThreads), 0, x.stream, x.at<const double>(start), x.at<const double>(delta), x.at<double>(out), n); break;
      case DT_INT32: KILN_LAUNCH(rangeKernel<int32_t>, g, dim3(kThreads), 0, x.stream, x.at<const int32_t>(start), x.at<const int32_t>(delta), x.at<int32_t>(out), n); break;
      default: KILN_LAUNCH(rangeKernel<int64_t>, g, dim3(kThreads), 0, x.stream, x.at<const int64_t>(start), x.at<const int64_t>(delta), x.at<int64_t>(out), n); break;
    }
    return launched(x, "Range");
  }
};

std::unique_ptr<Kernel> lowerRange(const NodeView& v, std::string& why) {
  const SValue& o = v.out(0);
  if (o.dtype != DT_FLOAT && o.dtype != DT_DOUBLE && o.dtype != DT_INT32 && o.dtype != DT_INT64) {
    why = std::string("Range of ") + dtypeName(o.dtype);
    return nullptr;
  }
  auto k = std::make_unique<RangeKernel>();
  k->dt = o.dtype;
  k->start = v.inId(0);
  k->delta = v.inId(2);
  k->out = v.outId(0);
  k->n = o.elements();
  return k;
}

std::unique_ptr<Kernel> lowerConstantOfShape(const NodeView& v, std::string&) {
  const SValue& o = v.out(0);
  auto f = std::make_unique<Fill>();
  f->out = v.outId(0);
  f->size = dtypeSize(o.dtype);
  f->n = o.elements();
  auto it = v.n.attrs.find("value");
  if (it != v.n.attrs.end() && it->second.kind == A_TENSOR && !it->second.tensorBytes.empty()) {
    std::memcpy(&f->bits, it->second.tensorBytes.data(), std::min<size_t>(8, it->second.tensorBytes.size()));
    if (f->size < 8) f->bits &= (uint64_t(1) << (f->size * 8)) - 1;
  }
  return f;
}

template <typename T>
__global__ void eyeKernel(T* out, int64_t rows, int64_t cols, int64_t k, T one, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t c = i % cols, r = i / cols;
    out[i] = c - r == k ? one : T(0);
  }
  (void)rows;
}

struct EyeKernel : Kernel {
  int size;
  uint64_t one;
  int32_t out;
  int64_t rows, cols, k, n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    switch (size) {
      case 1: KILN_LAUNCH(eyeKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<uint8_t>(out), rows, cols, k, static_cast<uint8_t>(one), n); break;
      case 2: KILN_LAUNCH(eyeKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, x.at<uint16_t>(out), rows, cols, k, static_cast<uint16_t>(one), n); break;
      case 4: KILN_LAUNCH(eyeKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, x.at<uint32_t>(out), rows, cols, k, static_cast<uint32_t>(one), n); break;
      default: KILN_LAUNCH(eyeKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, x.at<uint64_t>(out), rows, cols, k, one, n); break;
    }
    return launched(x, "EyeLike");
  }
};

std::unique_ptr<Kernel> lowerEyeLike(const NodeView& v, std::string&) {
  const SValue& o = v.out(0);
  if (o.rank() != 2) return nullptr;
  auto k = std::make_unique<EyeKernel>();
  k->size = dtypeSize(o.dtype);
  k->one = elementBits(o.dtype, 1.0);
  k->out = v.outId(0);
  k->rows = o.dims[0];
  k->cols = o.dims[1];
  k->k = v.attrInt("k", 0);
  k->n = o.elements();
  return k;
}

/** outer/len/inner of a CumSum over `axis` of dims (axis read from the device when given there). */
struct CumDims {
  int rank;
  int64_t dims[kMaxDims];
};

KILN_HD void cumSplit(const CumDims& d, int64_t axis, int64_t& outer, int64_t& len, int64_t& inner) {
  if (axis < 0) axis += d.rank;
  outer = 1;
  inner = 1;
  len = 0;
  if (axis < 0 || axis >= d.rank) return;  // an axis out of range: the status word says so
  for (int a = 0; a < axis; a++) outer *= d.dims[a];
  len = d.dims[axis];
  for (int a = static_cast<int>(axis) + 1; a < d.rank; a++) inner *= d.dims[a];
}

template <typename T>
__global__ void cumsumKernel(const T* in, T* out, int64_t outer, int64_t len, int64_t inner, bool exclusive,
                             bool reverse, CumDims dims, const void* axisAt, bool axisWide, int32_t* status,
                             int32_t tag) {
  if (axisAt) {
    const int64_t a = axisWide ? *static_cast<const int64_t*>(axisAt) : *static_cast<const int32_t*>(axisAt);
    cumSplit(dims, a, outer, len, inner);
    if (len == 0 && (a < -dims.rank || a >= dims.rank)) {
      *status = tag;
      return;
    }
  }
  const int64_t lines = outer * inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t l = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < lines; l += stride) {
    const int64_t o = l / inner, in0 = l % inner;
    const int64_t base = o * len * inner + in0;
    T acc = T(0);
    for (int64_t t = 0; t < len; t++) {
      const int64_t j = reverse ? len - 1 - t : t;
      const int64_t at = base + j * inner;
      if (exclusive) {
        out[at] = acc;
        acc = static_cast<T>(acc + in[at]);
      } else {
        acc = static_cast<T>(acc + in[at]);
        out[at] = acc;
      }
    }
  }
}

struct CumSumKernel : Kernel {
  int dt;
  int32_t in, out;
  int32_t axisIn = -1;  // the axis as a run-time input
  bool axisWide = true;
  CumDims dims{};
  int64_t outer, len, inner;
  bool exclusive, reverse;
  bool run(Exec& x) override {
    const int64_t total = [&] {
      int64_t t = 1;
      for (int a = 0; a < dims.rank; a++) t *= dims.dims[a];
      return t;
    }();
    if (total == 0) return true;
    // with a run-time axis, enough threads for the most lines any axis gives
    const int64_t lines = axisIn >= 0 ? total : outer * inner;
    if (axisIn < 0 && (lines == 0 || len == 0)) return true;
    const dim3 g = gridFor(lines, kThreads);
    const void* axisAt = x.ptr(axisIn);
    switch (dt) {
      case DT_FLOAT: KILN_LAUNCH(cumsumKernel<float>, g, dim3(kThreads), 0, x.stream, x.at<const float>(in), x.at<float>(out), outer, len, inner, exclusive, reverse, dims, axisAt, axisWide, x.status, node + 1); break;
      case DT_DOUBLE: KILN_LAUNCH(cumsumKernel<double>, g, dim3(kThreads), 0, x.stream, x.at<const double>(in), x.at<double>(out), outer, len, inner, exclusive, reverse, dims, axisAt, axisWide, x.status, node + 1); break;
      case DT_INT32: KILN_LAUNCH(cumsumKernel<int32_t>, g, dim3(kThreads), 0, x.stream, x.at<const int32_t>(in), x.at<int32_t>(out), outer, len, inner, exclusive, reverse, dims, axisAt, axisWide, x.status, node + 1); break;
      default: KILN_LAUNCH(cumsumKernel<int64_t>, g, dim3(kThreads), 0, x.stream, x.at<const int64_t>(in), x.at<int64_t>(out), outer, len, inner, exclusive, reverse, dims, axisAt, axisWide, x.status, node + 1); break;
    }
    return launched(x, "CumSum");
  }
};

std::unique_ptr<Kernel> lowerCumSum(const NodeView& v, std::string& why) {
  const SValue& x = v.in(0);
  if (x.dtype != DT_FLOAT && x.dtype != DT_DOUBLE && x.dtype != DT_INT32 && x.dtype != DT_INT64) {
    why = std::string("CumSum of ") + dtypeName(x.dtype);
    return nullptr;
  }
  const int64_t r = x.rank();
  if (r > kMaxDims || r == 0) return nullptr;
  auto k = std::make_unique<CumSumKernel>();
  k->dims.rank = static_cast<int>(r);
  for (int64_t a = 0; a < r; a++) k->dims.dims[a] = x.dims[static_cast<size_t>(a)];
  std::vector<int64_t> ax;
  int64_t axis = 0;
  if (v.constInts(1, ax) && ax.size() == 1) {
    axis = normAxis(ax[0], r);
    if (axis < 0 || axis >= r) return nullptr;
  } else if ((v.in(1).dtype == DT_INT64 || v.in(1).dtype == DT_INT32) && v.in(1).elements() == 1) {
    k->axisIn = v.inId(1);  // read on the device at run time
    k->axisWide = v.in(1).dtype == DT_INT64;
    k->badData = "CumSum axis out of range";
  } else {
    why = "CumSum's axis is not one integer";
    return nullptr;
  }
  k->dt = x.dtype;
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->outer = 1;
  for (int64_t a = 0; a < axis; a++) k->outer *= x.dims[static_cast<size_t>(a)];
  k->len = x.dims[static_cast<size_t>(axis)];
  k->inner = 1;
  for (int64_t a = axis + 1; a < r; a++) k->inner *= x.dims[static_cast<size_t>(a)];
  k->exclusive = v.attrInt("exclusive", 0) != 0;
  k->reverse = v.attrInt("reverse", 0) != 0;
  return k;
}

}  // namespace

void registerGenerators() {
  registerLowering("Trilu", lowerTrilu);
  registerLowering("Range", lowerRange);
  registerLowering("ConstantOfShape", lowerConstantOfShape);
  registerLowering("EyeLike", lowerEyeLike);
  registerLowering("CumSum", lowerCumSum);
}

}  // namespace kiln
