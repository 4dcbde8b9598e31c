// The gathers and scatters: Gather, GatherElements, GatherND, ScatterND and ScatterElements (the
// deprecated Scatter is in misc.hip). Element types are handled by size where only bytes move (the
// scatters with a reduction by type). Indices out of range set the program's status word (lower.h)
// instead of reading past a buffer.
#include "copy.h"
#include "device.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

// ---- gathers and scatters ------------------------------------------------------------

KILN_HD int64_t loadIndex(const void* p, int64_t i, bool wide) {
  return wide ? reinterpret_cast<const int64_t*>(p)[i] : reinterpret_cast<const int32_t*>(p)[i];
}

template <typename T>
__global__ void gatherKernel(const T* data, const void* idx, bool wide, T* out, int64_t outer, int64_t count,
                             int64_t axisLen, int64_t inner, int64_t n, int32_t* status, int32_t tag) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t in = i % inner;
    const int64_t j = (i / inner) % count;
    const int64_t o = i / (inner * count);
    int64_t k = loadIndex(idx, j, wide);
    if (k < 0) k += axisLen;
    if (k < 0 || k >= axisLen) {
      *status = tag;
      out[i] = T(0);
      continue;
    }
    out[i] = data[(o * axisLen + k) * inner + in];
  }
}

template <typename T>
__global__ void gatherElementsKernel(Walk<1> w, const T* data, const void* idx, bool wide, T* out, int axis,
                                     int64_t axisLen, int64_t axisStride, int64_t n, int32_t* status, int32_t tag) {
  // w walks the output (= indices) dims with the data's strides; the axis stride is 0 there
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[1];
    w.offsets(i, off);
    int64_t k = loadIndex(idx, i, wide);
    if (k < 0) k += axisLen;
    if (k < 0 || k >= axisLen) {
      *status = tag;
      out[i] = T(0);
      continue;
    }
    out[i] = data[off[0] + k * axisStride];
  }
  (void)axis;
}

struct GatherKernel : Kernel {
  int size;
  bool wide;
  int32_t data, idx, out;
  int64_t outer, count, axisLen, inner, n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    const void* ip = x.ptr(idx);
    switch (size) {
      case 1: KILN_LAUNCH(gatherKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint8_t>(data), ip, wide, x.at<uint8_t>(out), outer, count, axisLen, inner, n, x.status, node + 1); break;
      case 2: KILN_LAUNCH(gatherKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint16_t>(data), ip, wide, x.at<uint16_t>(out), outer, count, axisLen, inner, n, x.status, node + 1); break;
      case 4: KILN_LAUNCH(gatherKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint32_t>(data), ip, wide, x.at<uint32_t>(out), outer, count, axisLen, inner, n, x.status, node + 1); break;
      default: KILN_LAUNCH(gatherKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint64_t>(data), ip, wide, x.at<uint64_t>(out), outer, count, axisLen, inner, n, x.status, node + 1); break;
    }
    return launched(x, "Gather");
  }
};

struct GatherElementsKernel : Kernel {
  Walk<1> w{};
  int size;
  bool wide;
  int axis;
  int32_t data, idx, out;
  int64_t axisLen, axisStride, n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    const void* ip = x.ptr(idx);
    switch (size) {
      case 1: KILN_LAUNCH(gatherElementsKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, w, x.at<const uint8_t>(data), ip, wide, x.at<uint8_t>(out), axis, axisLen, axisStride, n, x.status, node + 1); break;
      case 2: KILN_LAUNCH(gatherElementsKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, w, x.at<const uint16_t>(data), ip, wide, x.at<uint16_t>(out), axis, axisLen, axisStride, n, x.status, node + 1); break;
      case 4: KILN_LAUNCH(gatherElementsKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, w, x.at<const uint32_t>(data), ip, wide, x.at<uint32_t>(out), axis, axisLen, axisStride, n, x.status, node + 1); break;
      default: KILN_LAUNCH(gatherElementsKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, w, x.at<const uint64_t>(data), ip, wide, x.at<uint64_t>(out), axis, axisLen, axisStride, n, x.status, node + 1); break;
    }
    return launched(x, "GatherElements");
  }
};

bool indexType(int dt) { return dt == DT_INT64 || dt == DT_INT32; }

std::unique_ptr<Kernel> lowerGather(const NodeView& v, std::string& why) {
  const SValue& d = v.in(0);
  const SValue& idx = v.in(1);
  if (!indexType(idx.dtype)) {
    why = std::string("indices of type ") + dtypeName(idx.dtype);
    return nullptr;
  }
  const int64_t r = d.rank();
  const int64_t axis = normAxis(v.attrInt("axis", 0), r);
  if (axis < 0 || axis >= r) return nullptr;
  auto k = std::make_unique<GatherKernel>();
  k->size = dtypeSize(d.dtype);
  k->wide = idx.dtype == DT_INT64;
  k->data = v.inId(0);
  k->idx = v.inId(1);
  k->out = v.outId(0);
  k->outer = 1;
  for (int64_t a = 0; a < axis; a++) k->outer *= d.dims[static_cast<size_t>(a)];
  k->inner = 1;
  for (int64_t a = axis + 1; a < r; a++) k->inner *= d.dims[static_cast<size_t>(a)];
  k->axisLen = d.dims[static_cast<size_t>(axis)];
  k->count = idx.elements();
  k->n = v.out(0).elements();
  k->badData = "Gather index out of range";
  return k;
}

std::unique_ptr<Kernel> lowerGatherElements(const NodeView& v, std::string& why) {
  const SValue& d = v.in(0);
  const SValue& idx = v.in(1);
  if (!indexType(idx.dtype)) {
    why = std::string("indices of type ") + dtypeName(idx.dtype);
    return nullptr;
  }
  const int64_t r = d.rank();
  const int64_t axis = normAxis(v.attrInt("axis", 0), r);
  if (axis < 0 || axis >= r || idx.rank() != r || r > kMaxDims) return nullptr;
  auto k = std::make_unique<GatherElementsKernel>();
  const auto ds = contiguousStrides(d.dims);
  k->w.rank = static_cast<int>(r);
  for (int64_t a = 0; a < r; a++) {
    k->w.dims[a] = idx.dims[static_cast<size_t>(a)];
    k->w.strides[0][a] = a == axis ? 0 : ds[static_cast<size_t>(a)];
  }
  k->w.base[0] = 0;
  k->size = dtypeSize(d.dtype);
  k->wide = idx.dtype == DT_INT64;
  k->axis = static_cast<int>(axis);
  k->data = v.inId(0);
  k->idx = v.inId(1);
  k->out = v.outId(0);
  k->axisLen = d.dims[static_cast<size_t>(axis)];
  k->axisStride = ds[static_cast<size_t>(axis)];
  k->n = idx.elements();
  k->badData = "GatherElements index out of range";
  return k;
}

// GatherND: out[b..., i..., rest] = data[b..., idx[b..., i..., :], rest]
template <typename T>
__global__ void gatherNdKernel(const T* data, const int64_t* idx, T* out, int64_t batch, int64_t count, int64_t q,
                               int64_t slice, int64_t batchStride, Walk<1> dims, int64_t n, int32_t* status,
                               int32_t tag) {
  // dims.dims[0..q) hold the indexed data dims, dims.strides[0][0..q) their strides
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t e = i % slice;
    const int64_t j = (i / slice) % count;
    const int64_t b = i / (slice * count);
    const int64_t* ix = idx + (b * count + j) * q;
    int64_t off = b * batchStride;
    bool ok = true;
    for (int64_t k = 0; k < q; k++) {
      int64_t t = ix[k];
      const int64_t L = dims.dims[k];
      if (t < 0) t += L;
      if (t < 0 || t >= L) ok = false;
      off += t * dims.strides[0][k];
    }
    if (!ok) {
      *status = tag;
      out[i] = T(0);
      continue;
    }
    out[i] = data[off + e];
  }
}

struct GatherNdKernel : Kernel {
  int size;
  int32_t data, idx, out;
  int64_t batch, count, q, slice, batchStride, n;
  Walk<1> dims{};
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    const int64_t* ip = x.at<const int64_t>(idx);
    switch (size) {
      case 1: KILN_LAUNCH(gatherNdKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint8_t>(data), ip, x.at<uint8_t>(out), batch, count, q, slice, batchStride, dims, n, x.status, node + 1); break;
      case 2: KILN_LAUNCH(gatherNdKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint16_t>(data), ip, x.at<uint16_t>(out), batch, count, q, slice, batchStride, dims, n, x.status, node + 1); break;
      case 4: KILN_LAUNCH(gatherNdKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint32_t>(data), ip, x.at<uint32_t>(out), batch, count, q, slice, batchStride, dims, n, x.status, node + 1); break;
      default: KILN_LAUNCH(gatherNdKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint64_t>(data), ip, x.at<uint64_t>(out), batch, count, q, slice, batchStride, dims, n, x.status, node + 1); break;
    }
    return launched(x, "GatherND");
  }
};

std::unique_ptr<Kernel> lowerGatherND(const NodeView& v, std::string& why) {
  const SValue& d = v.in(0);
  const SValue& idx = v.in(1);
  if (idx.dtype != DT_INT64) {
    why = "GatherND indices other than int64";
    return nullptr;
  }
  const int64_t bd = v.attrInt("batch_dims", 0);
  const int64_t r = d.rank(), qr = idx.rank();
  if (qr < 1 || bd < 0 || bd >= qr || bd > r) return nullptr;
  const int64_t q = idx.dims.back();
  if (q < 1 || bd + q > r || q > kMaxDims) {
    why = "GatherND index depth out of range";
    return nullptr;
  }
  const auto ds = contiguousStrides(d.dims);
  auto k = std::make_unique<GatherNdKernel>();
  k->batch = 1;
  for (int64_t a = 0; a < bd; a++) k->batch *= d.dims[static_cast<size_t>(a)];
  k->count = 1;
  for (int64_t a = bd; a < qr - 1; a++) k->count *= idx.dims[static_cast<size_t>(a)];
  k->slice = 1;
  for (int64_t a = bd + q; a < r; a++) k->slice *= d.dims[static_cast<size_t>(a)];
  k->batchStride = bd > 0 ? ds[static_cast<size_t>(bd - 1)] : 0;
  k->q = q;
  k->dims.rank = static_cast<int>(q);
  for (int64_t a = 0; a < q; a++) {
    k->dims.dims[a] = d.dims[static_cast<size_t>(bd + a)];
    k->dims.strides[0][a] = ds[static_cast<size_t>(bd + a)];
  }
  k->size = dtypeSize(d.dtype);
  k->data = v.inId(0);
  k->idx = v.inId(1);
  k->out = v.outId(0);
  k->n = v.out(0).elements();
  k->badData = "GatherND index out of range";
  return k;
}

// ScatterND / ScatterElements: out = data, then updates written (or reduced) at the indices.
// Duplicate indices under "none" are undefined in ONNX; the device writes one of them.
template <typename T>
KILN_DEVICE void reduceInto(T* p, T u, int red) {
  switch (red) {
    case 1: *p = static_cast<T>(*p + u); break;
    case 2: *p = static_cast<T>(*p * u); break;
    case 3: *p = *p > u ? *p : u; break;
    case 4: *p = *p < u ? *p : u; break;
    default: *p = u; break;
  }
}

template <typename T>
__global__ void scatterNdKernel(T* out, const int64_t* idx, const T* upd, int64_t count, int64_t q, int64_t slice,
                                Walk<1> dims, int red, int32_t* status, int32_t tag) {
  // one thread per slice element, updates applied in order by one thread per slice element
  // position so that reductions over duplicate indices are deterministic
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < slice; e += stride) {
    for (int64_t j = 0; j < count; j++) {
      const int64_t* ix = idx + j * q;
      int64_t off = 0;
      bool ok = true;
      for (int64_t k = 0; k < q; k++) {
        int64_t t = ix[k];
        const int64_t L = dims.dims[k];
        if (t < 0) t += L;
        if (t < 0 || t >= L) ok = false;
        off += t * dims.strides[0][k];
      }
      if (!ok) {
        *status = tag;
        continue;
      }
      reduceInto(out + off + e, upd[j * slice + e], red);
    }
  }
}

int reductionOf(const std::string& s) {
  if (s == "add") return 1;
  if (s == "mul") return 2;
  if (s == "max") return 3;
  if (s == "min") return 4;
  return s == "none" ? 0 : -1;
}

struct ScatterNdKernel : Kernel {
  int dt;
  int red;
  int32_t data, idx, upd, out;
  int64_t bytes, count, q, slice;
  Walk<1> dims{};
  bool run(Exec& x) override {
    if (x.ptr(out) != x.ptr(data) && bytes > 0 &&
        !hipCheck(hipMemcpyAsync(x.ptr(out), x.ptr(data), static_cast<size_t>(bytes), hipMemcpyDeviceToDevice, x.stream),
                  "ScatterND copy", *x.err)) {
      return false;
    }
    if (slice == 0 || count == 0) return true;
    const dim3 g = gridFor(slice, kThreads);
    const int64_t* ip = x.at<const int64_t>(idx);
    switch (dt) {
      case DT_FLOAT: KILN_LAUNCH(scatterNdKernel<float>, g, dim3(kThreads), 0, x.stream, x.at<float>(out), ip, x.at<const float>(upd), count, q, slice, dims, red, x.status, node + 1); break;
      case DT_INT64: KILN_LAUNCH(scatterNdKernel<int64_t>, g, dim3(kThreads), 0, x.stream, x.at<int64_t>(out), ip, x.at<const int64_t>(upd), count, q, slice, dims, red, x.status, node + 1); break;
      case DT_INT32: KILN_LAUNCH(scatterNdKernel<int32_t>, g, dim3(kThreads), 0, x.stream, x.at<int32_t>(out), ip, x.at<const int32_t>(upd), count, q, slice, dims, red, x.status, node + 1); break;
      case DT_DOUBLE: KILN_LAUNCH(scatterNdKernel<double>, g, dim3(kThreads), 0, x.stream, x.at<double>(out), ip, x.at<const double>(upd), count, q, slice, dims, red, x.status, node + 1); break;
      default: KILN_LAUNCH(scatterNdKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<uint8_t>(out), ip, x.at<const uint8_t>(upd), count, q, slice, dims, red, x.status, node + 1); break;
    }
    return launched(x, "ScatterND");
  }
};

std::unique_ptr<Kernel> lowerScatterND(const NodeView& v, std::string& why) {
  const SValue& d = v.in(0);
  const SValue& idx = v.in(1);
  const int red = reductionOf(v.attrString("reduction", "none"));
  const bool typed = d.dtype == DT_FLOAT || d.dtype == DT_INT64 || d.dtype == DT_INT32 || d.dtype == DT_DOUBLE ||
                     ((d.dtype == DT_BOOL || d.dtype == DT_UINT8) && red == 0);
  if (idx.dtype != DT_INT64 || red < 0 || !typed) {
    why = std::string("ScatterND on ") + dtypeName(d.dtype);
    return nullptr;
  }
  const int64_t r = d.rank(), q = idx.dims.empty() ? 0 : idx.dims.back();
  if (q < 1 || q > r || q > kMaxDims) return nullptr;
  const auto ds = contiguousStrides(d.dims);
  auto k = std::make_unique<ScatterNdKernel>();
  k->dt = d.dtype;
  k->red = red;
  k->data = v.inId(0);
  k->idx = v.inId(1);
  k->upd = v.inId(2);
  k->out = v.outId(0);
  k->bytes = d.bytes;
  k->q = q;
  k->count = idx.elements() / q;
  k->slice = 1;
  for (int64_t a = q; a < r; a++) k->slice *= d.dims[static_cast<size_t>(a)];
  k->dims.rank = static_cast<int>(q);
  for (int64_t a = 0; a < q; a++) {
    k->dims.dims[a] = d.dims[static_cast<size_t>(a)];
    k->dims.strides[0][a] = ds[static_cast<size_t>(a)];
  }
  k->badData = "ScatterND index out of range";
  return k;
}

template <typename T>
__global__ void scatterElementsKernel(T* out, const void* idx, bool wide, const T* upd, Walk<1> w, int64_t axisLen,
                                      int64_t axisStride, int64_t n, int red, int32_t* status, int32_t tag) {
  // sequential over updates (one thread) when reducing, so duplicates apply in order
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[1];
    w.offsets(i, off);
    int64_t k = loadIndex(idx, i, wide);
    if (k < 0) k += axisLen;
    if (k < 0 || k >= axisLen) {
      *status = tag;
      continue;
    }
    reduceInto(out + off[0] + k * axisStride, upd[i], red);
  }
}

struct ScatterElementsKernel : Kernel {
  int dt;
  int red;
  bool wide;
  int32_t data, idx, upd, out;
  int64_t bytes, axisLen, axisStride, n;
  Walk<1> w{};
  bool run(Exec& x) override {
    if (x.ptr(out) != x.ptr(data) && bytes > 0 &&
        !hipCheck(hipMemcpyAsync(x.ptr(out), x.ptr(data), static_cast<size_t>(bytes), hipMemcpyDeviceToDevice, x.stream),
                  "ScatterElements copy", *x.err)) {
      return false;
    }
    if (n == 0) return true;
    // reductions run on one thread so that duplicate indices combine in order
    const dim3 g = red == 0 ? gridFor(n, kThreads) : dim3(1);
    const dim3 b = red == 0 ? dim3(kThreads) : dim3(1);
    const void* ip = x.ptr(idx);
    switch (dt) {
      case DT_FLOAT: KILN_LAUNCH(scatterElementsKernel<float>, g, b, 0, x.stream, x.at<float>(out), ip, wide, x.at<const float>(upd), w, axisLen, axisStride, n, red, x.status, node + 1); break;
      case DT_INT64: KILN_LAUNCH(scatterElementsKernel<int64_t>, g, b, 0, x.stream, x.at<int64_t>(out), ip, wide, x.at<const int64_t>(upd), w, axisLen, axisStride, n, red, x.status, node + 1); break;
      case DT_INT32: KILN_LAUNCH(scatterElementsKernel<int32_t>, g, b, 0, x.stream, x.at<int32_t>(out), ip, wide, x.at<const int32_t>(upd), w, axisLen, axisStride, n, red, x.status, node + 1); break;
      case DT_DOUBLE: KILN_LAUNCH(scatterElementsKernel<double>, g, b, 0, x.stream, x.at<double>(out), ip, wide, x.at<const double>(upd), w, axisLen, axisStride, n, red, x.status, node + 1); break;
      default: KILN_LAUNCH(scatterElementsKernel<uint8_t>, g, b, 0, x.stream, x.at<uint8_t>(out), ip, wide, x.at<const uint8_t>(upd), w, axisLen, axisStride, n, red, x.status, node + 1); break;
    }
    return launched(x, "ScatterElements");
  }
};

std::unique_ptr<Kernel> lowerScatterElements(const NodeView& v, std::string& why) {
  const SValue& d = v.in(0);
  const SValue& idx = v.in(1);
  const int red = reductionOf(v.attrString("reduction", "none"));
  const bool typed = d.dtype == DT_FLOAT || d.dtype == DT_INT64 || d.dtype == DT_INT32 || d.dtype == DT_DOUBLE ||
                     ((d.dtype == DT_BOOL || d.dtype == DT_UINT8) && red == 0);
  if (!indexType(idx.dtype) || red < 0 || !typed) {
    why = std::string("ScatterElements on ") + dtypeName(d.dtype);
    return nullptr;
  }
  const int64_t r = d.rank();
  const int64_t axis = normAxis(v.attrInt("axis", 0), r);
  if (axis < 0 || axis >= r || idx.rank() != r || r > kMaxDims) return nullptr;
  const auto ds = contiguousStrides(d.dims);
  auto k = std::make_unique<ScatterElementsKernel>();
  k->w.rank = static_cast<int>(r);
  for (int64_t a = 0; a < r; a++) {
    k->w.dims[a] = idx.dims[static_cast<size_t>(a)];
    k->w.strides[0][a] = a == axis ? 0 : ds[static_cast<size_t>(a)];
  }
  k->w.base[0] = 0;
  k->dt = d.dtype;
  k->red = red;
  k->wide = idx.dtype == DT_INT64;
  k->data = v.inId(0);
  k->idx = v.inId(1);
  k->upd = v.inId(2);
  k->out = v.outId(0);
  k->bytes = d.bytes;
  k->axisLen = d.dims[static_cast<size_t>(axis)];
  k->axisStride = ds[static_cast<size_t>(axis)];
  k->n = idx.elements();
  k->badData = "ScatterElements index out of range";
  return k;
}

}  // namespace

void registerGather() {
  registerLowering("Gather", lowerGather);
  registerLowering("GatherElements", lowerGatherElements);
  registerLowering("GatherND", lowerGatherND);
  registerLowering("ScatterND", lowerScatterND);
  registerLowering("ScatterElements", lowerScatterElements);
}

}  // namespace kiln
