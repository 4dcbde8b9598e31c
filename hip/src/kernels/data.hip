// Data movement: copies (Identity, Dropout at inference, Reshape and friends when not aliased),
// strided views (Transpose, Slice, Expand, Tile, Concat, Split, DepthToSpace, SpaceToDepth), Pad
// in every mode, the gathers and scatters (Gather, GatherElements, GatherND, ScatterND,
// ScatterElements), and the generators that were not folded (Range, ConstantOfShape, EyeLike,
// Trilu, OneHot, CumSum). Element types are handled by size where only bytes move. Indices out of
// range set the program's status word (lower.h) instead of reading past a buffer.
#include <algorithm>
#include <cstring>

#include "device.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

/** out[dst(i)] = in[src(i)] over dims; src may wrap a dim (mod > 0: Tile). */
struct CopyParams {
  int rank;
  int64_t dims[kMaxDims];
  int64_t src[kMaxDims];
  int64_t dst[kMaxDims];
  int64_t mod[kMaxDims];
  int64_t srcBase, dstBase;
};

template <typename T>
__global__ void copyKernel(CopyParams c, const T* in, T* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t s = c.srcBase, d = c.dstBase, q = i;
    for (int k = c.rank - 1; k >= 0; k--) {
      const int64_t len = c.dims[k];
      const int64_t nq = q / len;
      const int64_t r = q - nq * len;
      q = nq;
      s += (c.mod[k] > 0 ? r % c.mod[k] : r) * c.src[k];
      d += r * c.dst[k];
    }
    out[d] = in[s];
  }
}

template <typename T>
__global__ void fillKernel(T* out, T value, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = value;
}

/** A strided copy of elements of `size` bytes. */
struct StridedCopy : Kernel {
  CopyParams c{};
  int size = 4;
  int32_t in = -1, out = -1;
  int64_t n = 0;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    switch (size) {
      case 1: KILN_LAUNCH(copyKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, c, x.at<const uint8_t>(in), x.at<uint8_t>(out), n); break;
      case 2: KILN_LAUNCH(copyKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, c, x.at<const uint16_t>(in), x.at<uint16_t>(out), n); break;
      case 4: KILN_LAUNCH(copyKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, c, x.at<const uint32_t>(in), x.at<uint32_t>(out), n); break;
      default: KILN_LAUNCH(copyKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, c, x.at<const uint64_t>(in), x.at<uint64_t>(out), n); break;
    }
    return launched(x, "copy");
  }
};

/** A device-to-device copy of a whole value. */
struct WholeCopy : Kernel {
  int32_t in, out;
  int64_t bytes;
  bool run(Exec& x) override {
    if (bytes == 0 || x.ptr(in) == x.ptr(out)) return true;
    return hipCheck(hipMemcpyAsync(x.ptr(out), x.ptr(in), static_cast<size_t>(bytes), hipMemcpyDeviceToDevice, x.stream),
                    "copy", *x.err);
  }
};

/** Fills a value with one element repeated (bytes of `size`). */
struct Fill : Kernel {
  int32_t out;
  int size;
  uint64_t bits = 0;
  int64_t n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    switch (size) {
      case 1: KILN_LAUNCH(fillKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, x.at<uint8_t>(out), static_cast<uint8_t>(bits), n); break;
      case 2: KILN_LAUNCH(fillKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, x.at<uint16_t>(out), static_cast<uint16_t>(bits), n); break;
      case 4: KILN_LAUNCH(fillKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, x.at<uint32_t>(out), static_cast<uint32_t>(bits), n); break;
      default: KILN_LAUNCH(fillKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, x.at<uint64_t>(out), bits, n); break;
    }
    return launched(x, "fill");
  }
};

struct Sequence : Kernel {
  std::vector<std::unique_ptr<Kernel>> parts;
  bool run(Exec& x) override {
    for (auto& k : parts) {
      if (!k->run(x)) return false;
    }
    return true;
  }
};

/**
 * A strided copy from `in` (dims inDims) to `out`: for every index i over `dims`, out at
 * dstBase + sum(i_d * dst_d) = in at srcBase + sum(i_d * src_d). Size-1 dims are dropped and
 * contiguous dims merged; null when more than kMaxDims remain.
 */
std::unique_ptr<StridedCopy> makeCopy(int size, int32_t in, int32_t out, std::vector<int64_t> dims,
                                      std::vector<int64_t> src, std::vector<int64_t> dst, int64_t srcBase,
                                      int64_t dstBase, std::vector<int64_t> mod = {}) {
  if (mod.empty()) mod.assign(dims.size(), 0);
  std::vector<int64_t> d, s, t, m;
  for (size_t k = 0; k < dims.size(); k++) {
    if (dims[k] == 1) continue;
    if (!d.empty() && m.back() == 0 && mod[k] == 0 && s.back() == src[k] * dims[k] && t.back() == dst[k] * dims[k]) {
      d.back() *= dims[k];
      s.back() = src[k];
      t.back() = dst[k];
      continue;
    }
    d.push_back(dims[k]);
    s.push_back(src[k]);
    t.push_back(dst[k]);
    m.push_back(mod[k]);
  }
  if (d.size() > static_cast<size_t>(kMaxDims)) return nullptr;
  auto k = std::make_unique<StridedCopy>();
  k->size = size;
  k->in = in;
  k->out = out;
  k->c.rank = static_cast<int>(d.size());
  k->n = 1;
  for (size_t j = 0; j < d.size(); j++) {
    k->c.dims[j] = d[j];
    k->c.src[j] = s[j];
    k->c.dst[j] = t[j];
    k->c.mod[j] = m[j];
    k->n *= d[j];
  }
  for (int64_t x : dims) {
    if (x == 0) k->n = 0;
  }
  k->c.srcBase = srcBase;
  k->c.dstBase = dstBase;
  return k;
}

int64_t normAxis(int64_t a, int64_t r) { return a < 0 ? a + r : a; }

// ---- copies and views --------------------------------------------------------------------

std::unique_ptr<Kernel> lowerCopy(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  if (v.in(0).bytes != v.out(0).bytes) {
    why = "input and output sizes differ";
    return nullptr;
  }
  auto k = std::make_unique<WholeCopy>();
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->bytes = v.out(0).bytes;
  return k;
}

std::unique_ptr<Kernel> lowerDropout(const NodeView& v, std::string& why) {
  // inference: the output is the input, the optional mask all true
  if (v.hasAttr("seed") && v.has(2)) {
    std::vector<int64_t> training;
    if (!v.constInts(2, training) || (!training.empty() && training[0] != 0)) {
      why = "Dropout in training mode";
      return nullptr;
    }
  } else if (v.has(2)) {
    std::vector<int64_t> training;
    if (!v.constInts(2, training)) {
      why = "Dropout's training_mode is not a constant";
      return nullptr;
    }
    if (!training.empty() && training[0] != 0) {
      why = "Dropout in training mode";
      return nullptr;
    }
  }
  auto seq = std::make_unique<Sequence>();
  auto c = lowerCopy(v, why);
  if (!c) return nullptr;
  seq->parts.push_back(std::move(c));
  if (v.outputCount() > 1 && v.outId(1) >= 0) {
    auto f = std::make_unique<Fill>();
    f->out = v.outId(1);
    f->size = dtypeSize(v.out(1).dtype);
    f->bits = 1;
    f->n = v.out(1).elements();
    seq->parts.push_back(std::move(f));
  }
  return seq;
}

std::unique_ptr<Kernel> lowerTranspose(const NodeView& v, std::string& why) {
  const SValue& x = v.in(0);
  const int64_t r = x.rank();
  std::vector<int64_t> perm = v.attrInts("perm");
  if (perm.empty()) {
    for (int64_t i = r - 1; i >= 0; i--) perm.push_back(i);
  }
  if (static_cast<int64_t>(perm.size()) != r) return nullptr;
  const auto inStr = contiguousStrides(x.dims);
  std::vector<int64_t> dims, src;
  for (int64_t p : perm) {
    dims.push_back(x.dims[static_cast<size_t>(p)]);
    src.push_back(inStr[static_cast<size_t>(p)]);
  }
  auto k = makeCopy(dtypeSize(x.dtype), v.inId(0), v.outId(0), dims, src, contiguousStrides(dims), 0, 0);
  if (!k) why = "rank past 8";
  return k;
}

std::unique_ptr<Kernel> lowerSlice(const NodeView& v, std::string& why) {
  const SValue& x = v.in(0);
  const int64_t r = x.rank();
  std::vector<int64_t> starts, ends, axes, steps;
  if (v.s.opset < 10) {
    starts = v.attrInts("starts");
    ends = v.attrInts("ends");
    axes = v.attrInts("axes");
  } else {
    if (!v.constInts(1, starts) || !v.constInts(2, ends) || (v.has(3) && !v.constInts(3, axes)) ||
        (v.has(4) && !v.constInts(4, steps))) {
      why = "Slice parameters that are not constants";
      return nullptr;
    }
  }
  std::vector<int64_t> start(static_cast<size_t>(r), 0), step(static_cast<size_t>(r), 1), count(x.dims);
  for (size_t i = 0; i < starts.size(); i++) {
    const int64_t a = axes.empty() ? static_cast<int64_t>(i) : normAxis(axes[i], r);
    if (a < 0 || a >= r || i >= ends.size()) return nullptr;
    int64_t st = steps.empty() ? 1 : steps[i];
    if (st == 0) return nullptr;
    const int64_t L = x.dims[static_cast<size_t>(a)];
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += L;
    if (e < 0) e += L;
    int64_t n;
    if (st > 0) {
      s = std::min(std::max<int64_t>(s, 0), L);
      e = std::min(std::max<int64_t>(e, 0), L);
      n = e > s ? 1 + (e - s - 1) / st : 0;
    } else {
      s = std::min(std::max<int64_t>(s, 0), L - 1);
      e = std::min(std::max<int64_t>(e, -1), L - 1);
      n = s > e ? 1 + (s - e - 1) / -st : 0;
    }
    start[static_cast<size_t>(a)] = s;
    step[static_cast<size_t>(a)] = st;
    count[static_cast<size_t>(a)] = n;
  }
  if (count != v.out(0).dims) {
    why = "Slice output dims differ from the compiled ones";
    return nullptr;
  }
  const auto inStr = contiguousStrides(x.dims);
  std::vector<int64_t> src(static_cast<size_t>(r));
  int64_t base = 0;
  for (int64_t d = 0; d < r; d++) {
    src[static_cast<size_t>(d)] = inStr[static_cast<size_t>(d)] * step[static_cast<size_t>(d)];
    base += start[static_cast<size_t>(d)] * inStr[static_cast<size_t>(d)];
  }
  auto k = makeCopy(dtypeSize(x.dtype), v.inId(0), v.outId(0), count, src, contiguousStrides(count), base, 0);
  if (!k) why = "rank past 8";
  return k;
}

/** in broadcast to out dims (Expand), or tiled (Tile: mod). */
std::unique_ptr<Kernel> broadcastCopy(const NodeView& v, bool tile, std::string& why) {
  const SValue& x = v.in(0);
  const SValue& o = v.out(0);
  const size_t r = o.dims.size();
  if (x.dims.size() > r) return nullptr;
  const size_t shift = r - x.dims.size();
  const auto inStr = contiguousStrides(x.dims);
  std::vector<int64_t> src(r, 0), mod(r, 0);
  for (size_t d = shift; d < r; d++) {
    const int64_t L = x.dims[d - shift];
    if (tile) {
      src[d] = inStr[d - shift];
      mod[d] = L == o.dims[d] ? 0 : L;
    } else {
      src[d] = L == 1 ? 0 : inStr[d - shift];
    }
  }
  auto k = makeCopy(dtypeSize(x.dtype), v.inId(0), v.outId(0), o.dims, src, contiguousStrides(o.dims), 0, 0, mod);
  if (!k) why = "rank past 8";
  return k;
}

std::unique_ptr<Kernel> lowerExpand(const NodeView& v, std::string& why) { return broadcastCopy(v, false, why); }
std::unique_ptr<Kernel> lowerTile(const NodeView& v, std::string& why) { return broadcastCopy(v, true, why); }

std::unique_ptr<Kernel> lowerConcat(const NodeView& v, std::string& why) {
  const SValue& o = v.out(0);
  const int64_t r = o.rank();
  const int64_t axis = normAxis(v.attrInt("axis", 0), r);
  if (axis < 0 || axis >= r) return nullptr;
  const auto outStr = contiguousStrides(o.dims);
  auto seq = std::make_unique<Sequence>();
  int64_t at = 0;
  for (int i = 0; i < v.inputCount(); i++) {
    if (!v.has(i)) continue;
    const SValue& x = v.in(i);
    if (x.rank() != r) return nullptr;
    auto k = makeCopy(dtypeSize(o.dtype), v.inId(i), v.outId(0), x.dims, contiguousStrides(x.dims), outStr, 0,
                      at * outStr[static_cast<size_t>(axis)]);
    if (!k) {
      why = "rank past 8";
      return nullptr;
    }
    seq->parts.push_back(std::move(k));
    at += x.dims[static_cast<size_t>(axis)];
  }
  return seq;
}

std::unique_ptr<Kernel> lowerSplit(const NodeView& v, std::string& why) {
  const SValue& x = v.in(0);
  const int64_t r = x.rank();
  const int64_t axis = normAxis(v.attrInt("axis", 0), r);
  if (axis < 0 || axis >= r) return nullptr;
  const auto inStr = contiguousStrides(x.dims);
  auto seq = std::make_unique<Sequence>();
  int64_t at = 0;
  for (int j = 0; j < v.outputCount(); j++) {
    const SValue& o = v.out(j);
    auto k = makeCopy(dtypeSize(x.dtype), v.inId(0), v.outId(j), o.dims, inStr, contiguousStrides(o.dims),
                      at * inStr[static_cast<size_t>(axis)], 0);
    if (!k) {
      why = "rank past 8";
      return nullptr;
    }
    seq->parts.push_back(std::move(k));
    at += o.dims[static_cast<size_t>(axis)];
  }
  if (at != x.dims[static_cast<size_t>(axis)]) {
    why = "Split outputs do not cover the input";
    return nullptr;
  }
  return seq;
}

std::unique_ptr<Kernel> lowerDepthSpace(const NodeView& v, std::string& why) {
  const SValue& x = v.in(0);
  if (x.rank() != 4) return nullptr;
  const int64_t b = v.attrInt("blocksize", 0);
  if (b <= 0) return nullptr;
  const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  const auto s = contiguousStrides(x.dims);
  std::vector<int64_t> dims, src;
  if (v.n.op == "DepthToSpace") {
    // out[n, c, h*b + i, w*b + j]; the output walked as [N, C/b², H, b, W, b]
    const int64_t c2 = C / (b * b);
    const bool crd = v.attrString("mode", "DCR") == "CRD";
    dims = {N, c2, H, b, W, b};
    // input channel: DCR (i*b + j)*c2 + c; CRD c*b*b + i*b + j
    const int64_t sc = crd ? b * b * s[1] : s[1];
    const int64_t si = crd ? b * s[1] : b * c2 * s[1];
    const int64_t sj = crd ? s[1] : c2 * s[1];
    src = {s[0], sc, s[2], si, s[3], sj};
  } else {
    // out[n, (i*b + j)*C + c, h, w] = in[n, c, h*b + i, w*b + j]; the output walked as [N, b, b, C, H/b, W/b]
    dims = {N, b, b, C, H / b, W / b};
    src = {s[0], s[2], s[3], s[1], b * s[2], b * s[3]};
  }
  auto k = makeCopy(dtypeSize(x.dtype), v.inId(0), v.outId(0), dims, src, contiguousStrides(dims), 0, 0);
  if (!k) why = "rank past 8";
  return k;
}

// ---- Pad -------------------------------------------------------------------------------

struct PadParams {
  int rank;
  int mode;  // 0 constant, 1 reflect, 2 edge, 3 wrap
  int64_t out[kMaxDims];
  int64_t in[kMaxDims];
  int64_t begin[kMaxDims];
  int64_t inStride[kMaxDims];
};

KILN_HD int64_t padSource(int64_t i, int64_t L, int mode) {
  if (i >= 0 && i < L) return i;
  if (mode == 0 || L == 0) return -1;
  if (mode == 2) return i < 0 ? 0 : L - 1;
  if (mode == 3) {
    const int64_t m = i % L;
    return m < 0 ? m + L : m;
  }
  if (L == 1) return 0;
  const int64_t period = 2 * (L - 1);
  int64_t m = i % period;
  if (m < 0) m += period;
  return m >= L ? period - m : m;
}

template <typename T>
__global__ void padKernel(PadParams p, const T* in, T* out, T value, const T* valueAt, int64_t n) {
  if (valueAt) value = valueAt[0];  // constant_value given at run time
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t q = i, src = 0;
    bool inside = true;
    for (int k = p.rank - 1; k >= 0; k--) {
      const int64_t nq = q / p.out[k];
      const int64_t r = q - nq * p.out[k];
      q = nq;
      const int64_t s = padSource(r - p.begin[k], p.in[k], p.mode);
      if (s < 0) inside = false;
      else src += s * p.inStride[k];
    }
    out[i] = inside ? in[src] : value;
  }
}

struct PadKernel : Kernel {
  PadParams p{};
  int size;
  uint64_t value = 0;
  int32_t valueIn = -1;  // constant_value as a run-time input
  int32_t in, out;
  int64_t n;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    switch (size) {
      case 1: KILN_LAUNCH(padKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint8_t>(in), x.at<uint8_t>(out), static_cast<uint8_t>(value), x.at<const uint8_t>(valueIn), n); break;
      case 2: KILN_LAUNCH(padKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint16_t>(in), x.at<uint16_t>(out), static_cast<uint16_t>(value), x.at<const uint16_t>(valueIn), n); break;
      case 4: KILN_LAUNCH(padKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint32_t>(in), x.at<uint32_t>(out), static_cast<uint32_t>(value), x.at<const uint32_t>(valueIn), n); break;
      default: KILN_LAUNCH(padKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint64_t>(in), x.at<uint64_t>(out), value, x.at<const uint64_t>(valueIn), n); break;
    }
    return launched(x, "Pad");
  }
};

/** The bytes of one element of type dt holding `v` (a constant). */
uint64_t elementBits(int dt, double v) {
  uint64_t bits = 0;
  switch (dt) {
    case DT_FLOAT: {
      const float f = static_cast<float>(v);
      std::memcpy(&bits, &f, 4);
      break;
    }
    case DT_DOUBLE: std::memcpy(&bits, &v, 8); break;
    case DT_FLOAT16: bits = f32ToF16(static_cast<float>(v)); break;
    case DT_BFLOAT16: bits = f32ToBf16(static_cast<float>(v)); break;
    case DT_BOOL: bits = v != 0; break;
    default: {
      const int64_t i = static_cast<int64_t>(v);
      std::memcpy(&bits, &i, 8);
      break;
    }
  }
  const int size = dtypeSize(dt);
  if (size < 8) bits &= (uint64_t(1) << (size * 8)) - 1;
  return bits;
}

std::unique_ptr<Kernel> lowerPad(const NodeView& v, std::string& why) {
  const SValue& x = v.in(0);
  const SValue& o = v.out(0);
  const int64_t r = x.rank();
  if (r > kMaxDims) {
    why = "rank past 8";
    return nullptr;
  }
  const std::string mode = v.attrString("mode", "constant");
  std::vector<int64_t> pads, axes;
  double value = 0;
  bool rawValue = false;  // the constant_value input's own bits (exact for every element type)
  uint64_t raw = 0;
  int32_t valueIn = -1;  // or read at run time
  if (v.s.opset < 11) {
    pads = v.attrInts("pads");
    value = v.attrFloat("value", 0.0f);
  } else {
    if (!v.constInts(1, pads)) {
      why = "Pad's pads are not a constant";
      return nullptr;
    }
    if (v.has(2) && v.in(2).elements() > 0) {
      const SValue& c = v.in(2);
      if (c.dtype != x.dtype) {
        why = "Pad's constant_value has another element type";
        return nullptr;
      }
      if (c.storage == S_LITERAL && c.hostId < 0) {
        std::memcpy(&raw, c.inlineBytes.data(), static_cast<size_t>(dtypeSize(c.dtype)));
        rawValue = true;
      } else {
        valueIn = v.inId(2);
      }
    }
    if (v.has(3) && !v.constInts(3, axes)) {
      why = "Pad's axes are not a constant";
      return nullptr;
    }
  }
  std::vector<int64_t> begin(static_cast<size_t>(r), 0);
  if (axes.empty()) {
    if (static_cast<int64_t>(pads.size()) != 2 * r) return nullptr;
    for (int64_t d = 0; d < r; d++) begin[static_cast<size_t>(d)] = pads[static_cast<size_t>(d)];
  } else {
    if (pads.size() != 2 * axes.size()) return nullptr;
    for (size_t i = 0; i < axes.size(); i++) {
      const int64_t a = normAxis(axes[i], r);
      if (a < 0 || a >= r) return nullptr;
      begin[static_cast<size_t>(a)] = pads[i];
    }
  }
  auto k = std::make_unique<PadKernel>();
  k->p.rank = static_cast<int>(r);
  k->p.mode = mode == "reflect" ? 1 : mode == "edge" ? 2 : mode == "wrap" ? 3 : 0;
  if (mode != "constant" && k->p.mode == 0) return nullptr;
  const auto inStr = contiguousStrides(x.dims);
  for (int64_t d = 0; d < r; d++) {
    k->p.out[d] = o.dims[static_cast<size_t>(d)];
    k->p.in[d] = x.dims[static_cast<size_t>(d)];
    k->p.begin[d] = begin[static_cast<size_t>(d)];
    k->p.inStride[d] = inStr[static_cast<size_t>(d)];
  }
  k->size = dtypeSize(x.dtype);
  k->value = rawValue ? raw : elementBits(x.dtype, value);
  k->valueIn = valueIn;
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->n = o.elements();
  return k;
}

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

void registerData() {
  for (const char* op : {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}) registerLowering(op, lowerCopy);
  registerLowering("Dropout", lowerDropout);
  registerLowering("Transpose", lowerTranspose);
  registerLowering("Slice", lowerSlice);
  registerLowering("Expand", lowerExpand);
  registerLowering("Tile", lowerTile);
  registerLowering("Concat", lowerConcat);
  registerLowering("Split", lowerSplit);
  registerLowering("DepthToSpace", lowerDepthSpace);
  registerLowering("SpaceToDepth", lowerDepthSpace);
  registerLowering("Pad", lowerPad);
  registerLowering("Gather", lowerGather);
  registerLowering("GatherElements", lowerGatherElements);
  registerLowering("GatherND", lowerGatherND);
  registerLowering("ScatterND", lowerScatterND);
  registerLowering("ScatterElements", lowerScatterElements);
  registerLowering("Trilu", lowerTrilu);
  registerLowering("Range", lowerRange);
  registerLowering("ConstantOfShape", lowerConstantOfShape);
  registerLowering("EyeLike", lowerEyeLike);
  registerLowering("CumSum", lowerCumSum);
}

}  // namespace kiln
