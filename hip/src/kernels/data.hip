// Data movement: copies (Identity, Dropout at inference, Reshape and friends when not aliased),
// strided views (Transpose, Slice, Expand, Tile, Concat, Split, DepthToSpace, SpaceToDepth) and Pad
// in every mode, and Fill (copy.h), which the generators use too. Element types are handled by size
// where only bytes move. The gathers and scatters are in gather.hip, the generators in
// generators.hip.
#include <algorithm>
#include <cstring>

#include "copy.h"
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

/** 16 bytes moved as one (a vectorized copy's element). */
struct alignas(16) Bytes16 {
  uint64_t lo, hi;
};

/**
 * copyKernel with 32-bit index arithmetic, for copies whose element count and offsets fit: a
 * 64-bit division costs several times a 32-bit one, and the index walk divides once per dim.
 */
template <typename T>
__global__ void copyKernel32(CopyParams c, const T* in, T* out, uint32_t n) {
  const uint32_t stride = gridDim.x * blockDim.x;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    int32_t s = static_cast<int32_t>(c.srcBase), d = static_cast<int32_t>(c.dstBase);
    uint32_t q = i;
    for (int k = c.rank - 1; k >= 0; k--) {
      const uint32_t len = static_cast<uint32_t>(c.dims[k]);
      const uint32_t nq = q / len;
      const uint32_t r = q - nq * len;
      q = nq;
      const uint32_t m = static_cast<uint32_t>(c.mod[k]);
      s += static_cast<int32_t>(m > 0 ? r % m : r) * static_cast<int32_t>(c.src[k]);
      d += static_cast<int32_t>(r) * static_cast<int32_t>(c.dst[k]);
    }
    out[d] = in[s];
  }
}

constexpr int kTile = 32;
constexpr int kTileRows = 8;

/**
 * A copy that swaps its two innermost axes (out[b][i][j] = in[b][j][i], `i` contiguous in the
 * input and `j` in the output), through a 32 x 32 tile in shared memory: reads and writes both
 * coalesced, where the element walk reads or writes with a stride of the row length.
 */
template <typename T>
__global__ void transposeTileKernel(const T* in, T* out, int64_t srcBase, int64_t dstBase, int32_t ni, int32_t nj,
                                    int64_t sb, int64_t sj, int64_t db, int64_t di) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t b = blockIdx.z;
  const int32_t i0 = static_cast<int32_t>(blockIdx.y) * kTile, j0 = static_cast<int32_t>(blockIdx.x) * kTile;
  const T* src = in + srcBase + b * sb;
  T* dst = out + dstBase + b * db;
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int32_t j = j0 + k, i = i0 + static_cast<int32_t>(threadIdx.x);
    if (j < nj && i < ni) tile[k][threadIdx.x] = src[j * sj + i];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int32_t i = i0 + k, j = j0 + static_cast<int32_t>(threadIdx.x);
    if (i < ni && j < nj) dst[i * di + j] = tile[threadIdx.x][k];
  }
}

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

/** A strided copy of elements of `size` bytes (16: a vectorized copy, see makeCopy). */
struct StridedCopy : Kernel {
  CopyParams c{};
  int size = 4;
  int32_t in = -1, out = -1;
  int64_t n = 0;
  bool narrow = false;  // every index fits 32 bits: copyKernel32
  bool tiled = false;   // swaps the two innermost axes: transposeTileKernel
  template <typename T>
  void launch(Exec& x, dim3 g) {
    if (tiled) {
      const int r = c.rank;
      const int64_t ni = c.dims[r - 2], nj = c.dims[r - 1], nb = r == 3 ? c.dims[0] : 1;
      const dim3 grid(static_cast<unsigned>((nj + kTile - 1) / kTile), static_cast<unsigned>((ni + kTile - 1) / kTile),
                      static_cast<unsigned>(nb));
      KILN_LAUNCH(transposeTileKernel<T>, grid, dim3(kTile, kTileRows), 0, x.stream, x.at<const T>(in), x.at<T>(out),
                  c.srcBase, c.dstBase, static_cast<int32_t>(ni), static_cast<int32_t>(nj), r == 3 ? c.src[0] : 0,
                  c.src[r - 1], r == 3 ? c.dst[0] : 0, c.dst[r - 2]);
      return;
    }
    if (narrow) {
      KILN_LAUNCH(copyKernel32<T>, g, dim3(kThreads), 0, x.stream, c, x.at<const T>(in), x.at<T>(out),
                  static_cast<uint32_t>(n));
    } else {
      KILN_LAUNCH(copyKernel<T>, g, dim3(kThreads), 0, x.stream, c, x.at<const T>(in), x.at<T>(out), n);
    }
  }
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    if (narrow || tiled || size == 16) {
      switch (size) {
        case 1: launch<uint8_t>(x, g); break;
        case 2: launch<uint16_t>(x, g); break;
        case 4: launch<uint32_t>(x, g); break;
        case 8: launch<uint64_t>(x, g); break;
        default: launch<Bytes16>(x, g); break;
      }
      return launched(x, "copy");
    }
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

}  // namespace

// Fill (copy.h): generators.hip's ConstantOfShape runs it too.
bool Fill::run(Exec& x) {
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

namespace {

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
/**
 * Moves 16 bytes per thread where the innermost dim is contiguous on both sides and every offset
 * stays 16-byte aligned (a Transpose that keeps the last axis, a Concat, a Slice of whole rows):
 * a quarter of the index walks for float32. Then picks 32-bit index arithmetic where it fits.
 */
void vectorize(StridedCopy& k) {
  CopyParams& c = k.c;
  const int r = c.rank;
  const int ve = k.size < 16 ? 16 / k.size : 1;
  bool ok = r >= 1 && ve > 1 && c.dims[r - 1] % ve == 0 && c.src[r - 1] == 1 && c.dst[r - 1] == 1 &&
            c.mod[r - 1] == 0 && c.srcBase % ve == 0 && c.dstBase % ve == 0;
  for (int j = 0; ok && j < r - 1; j++) ok = c.src[j] % ve == 0 && c.dst[j] % ve == 0;
  if (ok) {
    c.dims[r - 1] /= ve;
    for (int j = 0; j < r - 1; j++) {
      c.src[j] /= ve;
      c.dst[j] /= ve;
    }
    c.srcBase /= ve;
    c.dstBase /= ve;
    k.size = 16;
    k.n /= ve;
  }
  // the largest offset either side reaches, in elements
  int64_t s = c.srcBase < 0 ? -c.srcBase : c.srcBase, d = c.dstBase < 0 ? -c.dstBase : c.dstBase;
  for (int j = 0; j < r; j++) {
    const int64_t reach = (c.mod[j] > 0 && c.mod[j] < c.dims[j] ? c.mod[j] : c.dims[j]) - 1;
    s += reach * (c.src[j] < 0 ? -c.src[j] : c.src[j]);
    d += (c.dims[j] - 1) * (c.dst[j] < 0 ? -c.dst[j] : c.dst[j]);
  }
  constexpr int64_t kMax32 = 0x7fffffff;
  k.narrow = k.n <= kMax32 && s <= kMax32 && d <= kMax32;
  // the two innermost axes swapped (a batch of matrix transposes): through shared-memory tiles
  bool mods = false;
  for (int j = 0; j < r; j++) mods = mods || c.mod[j] != 0;
  k.tiled = !mods && k.size <= 8 && (r == 2 || r == 3) && c.src[r - 2] == 1 && c.dst[r - 1] == 1 &&
            c.src[r - 1] != 1 && c.dims[r - 2] <= kMax32 && c.dims[r - 1] <= kMax32 &&
            (r == 2 || c.dims[0] <= 65535) && c.dims[r - 2] * c.dims[r - 1] >= 1024;
}

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
  vectorize(*k);
  return k;
}

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
}

}  // namespace kiln
