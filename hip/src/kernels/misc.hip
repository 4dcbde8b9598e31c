// TopK, OneHot, Scatter (the deprecated ScatterElements), and the quantization ops
// (QuantizeLinear, DequantizeLinear per tensor or per axis, DynamicQuantizeLinear). The
// semantics follow the ref target (wasm/ops/indexing.ts, wasm/ops/math/quant.ts):
//   TopK: keys compared as f64 (integers through int64), NaN the largest value, ties to the lower
//     index (a stable sort); each element finds its rank among its line's elements.
//   QuantizeLinear: x / scale divided in float32, rounded half to even, plus the zero point,
//     saturated; DequantizeLinear: (x - zero point) * scale in f64.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "device.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

/** f64 -> int64 as wasm's saturating truncation (NaN -> 0). */
KILN_HD int64_t satI64(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(v);
}

KILN_HD bool isFloatDt(int dt) { return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16 || dt == DT_BFLOAT16; }

/** Element i of type dt as f64 (the ref's getAsF64 / loadF64). */
KILN_HD double loadD(const void* p, int64_t i, int dt) {
  switch (dt) {
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

/** Element i of type dt as int64 (the ref's getAsI64 / loadI64: floats truncate, non-finite 0). */
KILN_HD int64_t loadI(const void* p, int64_t i, int dt) {
  switch (dt) {
    case DT_INT64:
    case DT_UINT64: return static_cast<const int64_t*>(p)[i];
    case DT_INT32: return static_cast<const int32_t*>(p)[i];
    case DT_UINT32: return static_cast<const uint32_t*>(p)[i];
    case DT_INT16: return static_cast<const int16_t*>(p)[i];
    case DT_UINT16: return static_cast<const uint16_t*>(p)[i];
    case DT_INT8: return static_cast<const int8_t*>(p)[i];
    case DT_UINT8:
    case DT_BOOL: return static_cast<const uint8_t*>(p)[i];
    default: {
      const double v = loadD(p, i, dt);
      return v - v == 0 ? satI64(v) : 0;
    }
  }
}

/** Stores integer v as integer type dt (wrapping, as the ref's storeI64). */
KILN_HD void storeI(void* p, int64_t i, int dt, int64_t v) {
  switch (dt) {
    case DT_INT8:
    case DT_UINT8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v & 0xff); break;
    case DT_INT16:
    case DT_UINT16: static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(v & 0xffff); break;
    case DT_INT32:
    case DT_UINT32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v & 0xffffffff); break;
    default: static_cast<int64_t*>(p)[i] = v; break;
  }
}

/** Stores f64 v as float type dt. */
KILN_HD void storeF(void* p, int64_t i, int dt, double v) {
  switch (dt) {
    case DT_FLOAT: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DT_DOUBLE: static_cast<double*>(p)[i] = v; break;
    case DT_FLOAT16: static_cast<uint16_t*>(p)[i] = f32ToF16(static_cast<float>(v)); break;
    default: static_cast<uint16_t*>(p)[i] = f32ToBf16(static_cast<float>(v)); break;
  }
}

int64_t normAxis(int64_t a, int64_t r) { return a < 0 ? a + r : a; }

// ---- TopK ------------------------------------------------------------------------------

/** TopK's sort key (the ref's: floats as f64, everything else through int64). */
KILN_HD double topKey(const void* p, int64_t i, int dt) {
  return isFloatDt(dt) ? loadD(p, i, dt) : static_cast<double>(loadI(p, i, dt));
}

/** a sorts before b (NaN the largest). */
KILN_HD bool sortsBefore(double a, double b, bool largest) {
  if (largest) return a > b || (a != a && b == b);
  return a < b || (b != b && a == a);
}

template <typename T>
__global__ void topkKernel(const T* x, int dt, T* vals, int64_t* ind, int64_t L, int64_t k, int64_t inner,
                           bool largest, int64_t n) {
  // one thread per input element: its place in the line's stable sort, written when < k
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t j = e % L;
    const int64_t line = e / L;
    const int64_t s = line % inner, o = line / inner;
    const int64_t base = o * L * inner + s;
    const double kj = topKey(x, base + j * inner, dt);
    int64_t pos = 0;
    for (int64_t i = 0; i < L && pos < k; i++) {
      if (i == j) continue;
      const double ki = topKey(x, base + i * inner, dt);
      if (sortsBefore(ki, kj, largest) || (i < j && !sortsBefore(kj, ki, largest))) pos++;
    }
    if (pos < k) {
      const int64_t dst = o * k * inner + pos * inner + s;
      vals[dst] = x[base + j * inner];
      if (ind) ind[dst] = j;
    }
  }
}

struct TopKKernel : Kernel {
  int size, dt;
  bool largest;
  int32_t in, vals, ind = -1;
  int64_t L, k, inner, n;
  bool run(Exec& x) override {
    if (n == 0 || k == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    int64_t* ip = x.at<int64_t>(ind);
    switch (size) {
      case 1: KILN_LAUNCH(topkKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint8_t>(in), dt, x.at<uint8_t>(vals), ip, L, k, inner, largest, n); break;
      case 2: KILN_LAUNCH(topkKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint16_t>(in), dt, x.at<uint16_t>(vals), ip, L, k, inner, largest, n); break;
      case 4: KILN_LAUNCH(topkKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint32_t>(in), dt, x.at<uint32_t>(vals), ip, L, k, inner, largest, n); break;
      default: KILN_LAUNCH(topkKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, x.at<const uint64_t>(in), dt, x.at<uint64_t>(vals), ip, L, k, inner, largest, n); break;
    }
    return launched(x, "TopK");
  }
};

std::unique_ptr<Kernel> lowerTopK(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& y = v.out(0);
  const int size = dtypeSize(x.dtype);
  if (size <= 0) {
    why = std::string("TopK of ") + dtypeName(x.dtype);
    return nullptr;
  }
  const int64_t r = x.rank();
  const int64_t axis = normAxis(v.attrInt("axis", -1), r);
  if (axis < 0 || axis >= r || y.rank() != r) return nullptr;
  auto k = std::make_unique<TopKKernel>();
  k->size = size;
  k->dt = x.dtype;
  k->largest = v.attrInt("largest", 1) != 0;
  k->in = v.inId(0);
  k->vals = v.outId(0);
  k->ind = v.outputCount() > 1 ? v.outId(1) : -1;
  if (k->ind >= 0 && v.out(1).dtype != DT_INT64) return nullptr;
  k->L = x.dims[static_cast<size_t>(axis)];
  k->k = y.dims[static_cast<size_t>(axis)];
  if (k->k > k->L) return nullptr;
  k->inner = 1;
  for (int64_t a = axis + 1; a < r; a++) k->inner *= x.dims[static_cast<size_t>(a)];
  k->n = x.elements();
  return k;
}

// ---- OneHot ----------------------------------------------------------------------------

template <typename T>
__global__ void oneHotKernel(const void* ind, int idt, const T* vals, T* out, int64_t depth, int64_t post, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t s = i % post;
    const int64_t d = (i / post) % depth;
    const int64_t p = i / (post * depth);
    const int64_t at = p * post + s;
    int64_t v = isFloatDt(idt) ? satI64(loadD(ind, at, idt)) : loadI(ind, at, idt);
    if (v < 0) v += depth;
    out[i] = v == d ? vals[1] : vals[0];
  }
}

struct OneHotKernel : Kernel {
  int size, idt;
  int32_t ind, vals, out;
  int64_t depth, post, n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    const void* ip = x.ptr(ind);
    switch (size) {
      case 1: KILN_LAUNCH(oneHotKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, ip, idt, x.at<const uint8_t>(vals), x.at<uint8_t>(out), depth, post, n); break;
      case 2: KILN_LAUNCH(oneHotKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, ip, idt, x.at<const uint16_t>(vals), x.at<uint16_t>(out), depth, post, n); break;
      case 4: KILN_LAUNCH(oneHotKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, ip, idt, x.at<const uint32_t>(vals), x.at<uint32_t>(out), depth, post, n); break;
      default: KILN_LAUNCH(oneHotKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, ip, idt, x.at<const uint64_t>(vals), x.at<uint64_t>(out), depth, post, n); break;
    }
    return launched(x, "OneHot");
  }
};

std::unique_ptr<Kernel> lowerOneHot(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(2)) return nullptr;
  const SValue& ind = v.in(0);
  const SValue& vals = v.in(2);
  const SValue& y = v.out(0);
  const int size = dtypeSize(y.dtype);
  if (size <= 0 || dtypeSize(ind.dtype) <= 0 || vals.elements() != 2 || vals.dtype != y.dtype) {
    why = std::string("OneHot of ") + dtypeName(y.dtype);
    return nullptr;
  }
  const int64_t r = y.rank();
  const int64_t axis = normAxis(v.attrInt("axis", -1), r);
  if (axis < 0 || axis >= r || ind.rank() != r - 1) return nullptr;
  auto k = std::make_unique<OneHotKernel>();
  k->size = size;
  k->idt = ind.dtype;
  k->ind = v.inId(0);
  k->vals = v.inId(2);
  k->out = v.outId(0);
  // the depth is the output's axis length (the ref reads it back from there too)
  k->depth = y.dims[static_cast<size_t>(axis)];
  k->post = 1;
  for (int64_t a = axis; a < ind.rank(); a++) k->post *= ind.dims[static_cast<size_t>(a)];
  k->n = y.elements();
  return k;
}

// ---- Scatter (opset < 11: ScatterElements without reduction) ----------------------------

template <typename T>
__global__ void scatterKernel(T* out, const void* idx, bool wide, const T* upd, Walk<1> w, int64_t axisLen,
                              int64_t axisStride, int64_t n, int32_t* status, int32_t tag) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[1];
    w.offsets(i, off);
    int64_t k = wide ? static_cast<const int64_t*>(idx)[i] : static_cast<const int32_t*>(idx)[i];
    if (k < 0) k += axisLen;
    if (k < 0 || k >= axisLen) {
      *status = tag;
      continue;
    }
    out[off[0] + k * axisStride] = upd[i];
  }
}

struct ScatterKernel : Kernel {
  int size;
  bool wide;
  int32_t data, idx, upd, out;
  int64_t bytes, axisLen, axisStride, n;
  Walk<1> w{};
  bool run(Exec& x) override {
    if (x.ptr(out) != x.ptr(data) && bytes > 0 &&
        !hipCheck(hipMemcpyAsync(x.ptr(out), x.ptr(data), static_cast<size_t>(bytes), hipMemcpyDeviceToDevice, x.stream),
                  "Scatter copy", *x.err)) {
      return false;
    }
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    const void* ip = x.ptr(idx);
    switch (size) {
      case 1: KILN_LAUNCH(scatterKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<uint8_t>(out), ip, wide, x.at<const uint8_t>(upd), w, axisLen, axisStride, n, x.status, node + 1); break;
      case 2: KILN_LAUNCH(scatterKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, x.at<uint16_t>(out), ip, wide, x.at<const uint16_t>(upd), w, axisLen, axisStride, n, x.status, node + 1); break;
      case 4: KILN_LAUNCH(scatterKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, x.at<uint32_t>(out), ip, wide, x.at<const uint32_t>(upd), w, axisLen, axisStride, n, x.status, node + 1); break;
      default: KILN_LAUNCH(scatterKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, x.at<uint64_t>(out), ip, wide, x.at<const uint64_t>(upd), w, axisLen, axisStride, n, x.status, node + 1); break;
    }
    return launched(x, "Scatter");
  }
};

std::unique_ptr<Kernel> lowerScatter(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(1) || !v.has(2)) return nullptr;
  const SValue& d = v.in(0);
  const SValue& idx = v.in(1);
  const int size = dtypeSize(d.dtype);
  if (idx.dtype != DT_INT64 && idx.dtype != DT_INT32) {
    why = std::string("Scatter indices of type ") + dtypeName(idx.dtype);
    return nullptr;
  }
  if (size <= 0 || v.in(2).dtype != d.dtype) {
    why = std::string("Scatter on ") + dtypeName(d.dtype);
    return nullptr;
  }
  const std::string red = v.attrString("reduction", "none");
  if (red != "none") {
    why = "Scatter with reduction '" + red + "'";
    return nullptr;
  }
  const int64_t r = d.rank();
  const int64_t axis = normAxis(v.attrInt("axis", 0), r);
  if (axis < 0 || axis >= r || idx.rank() != r || r > kMaxDims || v.in(2).dims != idx.dims) return nullptr;
  const auto ds = contiguousStrides(d.dims);
  auto k = std::make_unique<ScatterKernel>();
  k->w.rank = static_cast<int>(r);
  for (int64_t a = 0; a < r; a++) {
    k->w.dims[a] = idx.dims[static_cast<size_t>(a)];
    k->w.strides[0][a] = a == axis ? 0 : ds[static_cast<size_t>(a)];
  }
  k->w.base[0] = 0;
  k->size = size;
  k->wide = idx.dtype == DT_INT64;
  k->data = v.inId(0);
  k->idx = v.inId(1);
  k->upd = v.inId(2);
  k->out = v.outId(0);
  k->bytes = d.bytes;
  k->axisLen = d.dims[static_cast<size_t>(axis)];
  k->axisStride = ds[static_cast<size_t>(axis)];
  k->n = idx.elements();
  k->badData = "Scatter index out of range";
  return k;
}

// ---- QuantizeLinear / DequantizeLinear ----------------------------------------------------

KILN_HD double qmin(int dt) {
  switch (dt) {
    case DT_INT8: return -128;
    case DT_INT16: return -32768;
    case DT_INT32: return -2147483648.0;
    default: return 0;
  }
}
KILN_HD double qmax(int dt) {
  switch (dt) {
    case DT_INT8: return 127;
    case DT_UINT8: return 255;
    case DT_INT16: return 32767;
    case DT_UINT16: return 65535;
    case DT_INT32: return 2147483647;
    default: return 4294967295.0;
  }
}

/** The ref's quantize: divide in float32, round half to even, add the zero point, saturate. */
KILN_HD double quantizeOne(double v, double scale, double zp, int dt) {
  const double q = static_cast<double>(rintf(static_cast<float>(v) / static_cast<float>(scale))) + zp;
  return q < qmin(dt) ? qmin(dt) : (q > qmax(dt) ? qmax(dt) : q);
}

struct QuantParams {
  int xdt, sdt, odt;
  int64_t inner, count, n;
};

__global__ void quantizeKernel(QuantParams q, const void* x, const void* s, const void* zp, void* y) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < q.n; i += stride) {
    const int64_t k = (i / q.inner) % q.count;
    const double z = zp ? static_cast<double>(loadI(zp, k, q.odt)) : 0.0;
    const double r = quantizeOne(loadD(x, i, q.xdt), loadD(s, k, q.sdt), z, q.odt);
    storeI(y, i, q.odt, satI64(r));
  }
}

__global__ void dequantizeKernel(QuantParams q, const void* x, const void* s, const void* zp, void* y) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < q.n; i += stride) {
    const int64_t k = (i / q.inner) % q.count;
    const double z = zp ? static_cast<double>(loadI(zp, k, q.xdt)) : 0.0;
    const double v = (static_cast<double>(loadI(x, i, q.xdt)) - z) * loadD(s, k, q.sdt);
    storeF(y, i, q.odt, v);
  }
}

struct QuantKernel : Kernel {
  bool quantize;
  QuantParams q{};
  int32_t x, s, zp = -1, y;
  bool run(Exec& e) override {
    if (q.n == 0) return true;
    const dim3 g = gridFor(q.n, kThreads);
    if (quantize) {
      KILN_LAUNCH(quantizeKernel, g, dim3(kThreads), 0, e.stream, q, e.ptr(x), e.ptr(s), e.ptr(zp), e.ptr(y));
    } else {
      KILN_LAUNCH(dequantizeKernel, g, dim3(kThreads), 0, e.stream, q, e.ptr(x), e.ptr(s), e.ptr(zp), e.ptr(y));
    }
    return launched(e, quantize ? "QuantizeLinear" : "DequantizeLinear");
  }
};

/** The per-axis layout of a scale (the ref's axisMap/checkAxis); false when malformed. */
bool axisLayout(const NodeView& v, const SValue& x, const SValue& s, QuantParams& q) {
  q.inner = 1;
  q.count = 1;
  if (s.elements() <= 1) return true;
  const int64_t r = x.rank();
  const int64_t axis = normAxis(v.attrInt("axis", 1), r);
  if (axis < 0 || axis >= r || s.rank() != 1 || s.dims[0] != x.dims[static_cast<size_t>(axis)]) return false;
  q.count = x.dims[static_cast<size_t>(axis)];
  for (int64_t a = axis + 1; a < r; a++) q.inner *= x.dims[static_cast<size_t>(a)];
  return true;
}

bool quantType(int dt) {
  return dt == DT_UINT8 || dt == DT_INT8 || dt == DT_UINT16 || dt == DT_INT16 || dt == DT_INT32;
}

std::unique_ptr<Kernel> lowerQuantize(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(1)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& s = v.in(1);
  const SValue& y = v.out(0);
  if ((!isFloatDt(x.dtype) && x.dtype != DT_INT32) || !isFloatDt(s.dtype) || !quantType(y.dtype) ||
      (v.has(2) && v.in(2).dtype != y.dtype)) {
    why = std::string("QuantizeLinear to ") + dtypeName(y.dtype);
    return nullptr;
  }
  auto k = std::make_unique<QuantKernel>();
  if (!axisLayout(v, x, s, k->q) || (v.has(2) && v.in(2).elements() < k->q.count)) {
    why = "QuantizeLinear scale layout";
    return nullptr;
  }
  k->quantize = true;
  k->q.xdt = x.dtype;
  k->q.sdt = s.dtype;
  k->q.odt = y.dtype;
  k->q.n = x.elements();
  k->x = v.inId(0);
  k->s = v.inId(1);
  k->zp = v.has(2) && v.in(2).elements() > 0 ? v.inId(2) : -1;
  k->y = v.outId(0);
  return k;
}

std::unique_ptr<Kernel> lowerDequantize(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(1)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& s = v.in(1);
  const SValue& y = v.out(0);
  if (isFloatDt(x.dtype) || dtypeSize(x.dtype) <= 0 || !isFloatDt(s.dtype) || y.dtype != s.dtype ||
      (v.has(2) && v.in(2).dtype != x.dtype)) {
    why = std::string("DequantizeLinear from ") + dtypeName(x.dtype);
    return nullptr;
  }
  auto k = std::make_unique<QuantKernel>();
  if (!axisLayout(v, x, s, k->q) || (v.has(2) && v.in(2).elements() < k->q.count)) {
    why = "DequantizeLinear scale layout";
    return nullptr;
  }
  k->quantize = false;
  k->q.xdt = x.dtype;
  k->q.sdt = s.dtype;
  k->q.odt = y.dtype;
  k->q.n = x.elements();
  k->x = v.inId(0);
  k->s = v.inId(1);
  k->zp = v.has(2) && v.in(2).elements() > 0 ? v.inId(2) : -1;
  k->y = v.outId(0);
  return k;
}

// ---- DynamicQuantizeLinear --------------------------------------------------------------

/** Per block, the min and max of x (both starting at 0, NaN skipped) into part[2b], part[2b+1]. */
__global__ void minMaxKernel(const float* x, int64_t n, float* part) {
  __shared__ float lo[kThreads];
  __shared__ float hi[kThreads];
  const int t = static_cast<int>(threadIdx.x);
  float a = 0, b = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + t; i < n; i += stride) {
    const float v = x[i];
    if (v < a) a = v;
    if (v > b) b = v;
  }
  lo[t] = a;
  hi[t] = b;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {
    if (t < s) {
      if (lo[t + s] < lo[t]) lo[t] = lo[t + s];
      if (hi[t + s] > hi[t]) hi[t] = hi[t + s];
    }
    __syncthreads();
  }
  if (t == 0) {
    part[2 * blockIdx.x] = lo[0];
    part[2 * blockIdx.x + 1] = hi[0];
  }
}

/** One thread: the partials' min and max -> scale and zero point (params[0], params[1]) and the outputs. */
__global__ void dynScaleKernel(const float* part, int blocks, float* params, float* yScale, uint8_t* yZp) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  float a = 0, b = 0;
  for (int i = 0; i < blocks; i++) {
    if (part[2 * i] < a) a = part[2 * i];
    if (part[2 * i + 1] > b) b = part[2 * i + 1];
  }
  const double lo = a, hi = b;
  const double scale = static_cast<double>(static_cast<float>((hi - lo) / 255.0));
  const double zp = scale == 0 ? 0.0 : quantizeOne(-lo, scale, 0, DT_UINT8);
  params[0] = static_cast<float>(scale);
  params[1] = static_cast<float>(zp);
  if (yScale) *yScale = static_cast<float>(scale);
  if (yZp) *yZp = static_cast<uint8_t>(zp);
}

__global__ void dynQuantizeKernel(const float* x, const float* params, uint8_t* y, int64_t n) {
  const double scale = params[0], zp = params[1];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    y[i] = static_cast<uint8_t>(scale == 0 ? zp : quantizeOne(x[i], scale, zp, DT_UINT8));
  }
}

struct DynQuantKernel : Kernel {
  int32_t x, y, yScale = -1, yZp = -1;
  int64_t n;
  int blocks;
  bool run(Exec& e) override {
    float* part = reinterpret_cast<float*>(e.workspace);
    float* params = part + 2 * blocks;
    KILN_LAUNCH(minMaxKernel, dim3(blocks), dim3(kThreads), 0, e.stream, e.at<const float>(x), n, part);
    if (!launched(e, "DynamicQuantizeLinear range")) return false;
    KILN_LAUNCH(dynScaleKernel, dim3(1), dim3(1), 0, e.stream, part, blocks, params, e.at<float>(yScale),
                e.at<uint8_t>(yZp));
    if (!launched(e, "DynamicQuantizeLinear scale")) return false;
    if (n == 0) return true;
    KILN_LAUNCH(dynQuantizeKernel, gridFor(n, kThreads), dim3(kThreads), 0, e.stream, e.at<const float>(x), params,
                e.at<uint8_t>(y), n);
    return launched(e, "DynamicQuantizeLinear");
  }
};

std::unique_ptr<Kernel> lowerDynQuantize(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  if (x.dtype != DT_FLOAT) {
    why = std::string("DynamicQuantizeLinear of ") + dtypeName(x.dtype);
    return nullptr;
  }
  auto k = std::make_unique<DynQuantKernel>();
  k->x = v.inId(0);
  k->y = v.outId(0);
  k->yScale = v.outputCount() > 1 ? v.outId(1) : -1;
  k->yZp = v.outputCount() > 2 ? v.outId(2) : -1;
  k->n = x.elements();
  k->blocks = std::min<int>(static_cast<int>(gridFor(k->n, kThreads).x), 1024);
  k->workspace = static_cast<int64_t>(2 * k->blocks + 2) * 4;
  return k;
}

}  // namespace

void registerMisc() {
  registerLowering("TopK", lowerTopK);
  registerLowering("OneHot", lowerOneHot);
  registerLowering("Scatter", lowerScatter);
  registerLowering("QuantizeLinear", lowerQuantize);
  registerLowering("DequantizeLinear", lowerDequantize);
  registerLowering("DynamicQuantizeLinear", lowerDynQuantize);
}

}  // namespace kiln
