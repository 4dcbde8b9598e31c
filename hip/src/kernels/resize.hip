// Resize (opsets 10-19) and the deprecated Upsample; GridSample and AffineGrid are in
// grid_sample.hip. The semantics follow the ref target (wasm/ops/data/resize.ts), in f64 as
// resample.h computes it.
//
// Resize: the host computes, as the ref's makeTaps does, per resized axis and output coordinate
// the source indices and weights (and whether it extrapolates); the tables are the kernel's
// device table (uploaded once, when the program is created). The ref runs one 1-D pass per axis, innermost first, in f64;
// the device evaluates the same sums in one pass per output element, nested the same way
// (the outermost axis's taps outside), so every f64 operation happens in the same order:
//   y = sum_a0 w_a0 * (sum_a1 w_a1 * (... x[i_a0, i_a1, ...])), taps with weight 0 skipped.
// Axes whose taps are the identity are not resized (as the ref skips their passes). nearest
// moves raw elements (every element type); linear and cubic are computed in f64.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "device.h"
#include "resample.h"

#if defined(__clang__) && defined(__HIP__)
#pragma clang fp contract(off)
#endif

namespace kiln {
namespace {

constexpr int kThreads = 256;

// ---- Resize: host side (the ref's resizeMode, resizeSpec and makeTaps) ----------------------

enum : int { MODE_NEAREST = 0, MODE_LINEAR = 1, MODE_CUBIC = 2 };
enum : int {
  CT_HALF_PIXEL = 0,
  CT_ASYMMETRIC,
  CT_ALIGN_CORNERS,
  CT_PYTORCH_HALF_PIXEL,
  CT_TF_HALF_PIXEL_FOR_NN,
  CT_TF_CROP_AND_RESIZE,
  CT_HALF_PIXEL_SYMMETRIC,
};
enum : int { NM_ROUND_PREFER_FLOOR = 0, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };

struct ResizeMode {
  int mode = MODE_NEAREST;
  int coord = CT_HALF_PIXEL;
  int nearest = NM_ROUND_PREFER_FLOOR;
  double cubicA = -0.75;
  bool exclude = false;
  double extrap = 0;
  bool antialias = false;
  std::string err;
};

ResizeMode resizeMode(bool upsample, const NodeView& v) {
  ResizeMode m;
  const std::string mode = v.attrString("mode", "nearest");
  if (mode == "nearest") m.mode = MODE_NEAREST;
  else if (mode == "linear" || mode == "bilinear") m.mode = MODE_LINEAR;
  else if (mode == "cubic" && !upsample) m.mode = MODE_CUBIC;
  else m.err = "mode '" + mode + "'";
  if (upsample || v.s.opset < 11) {
    m.coord = CT_ASYMMETRIC;
    m.nearest = NM_SIMPLE;
    return m;
  }
  const std::string ct = v.attrString("coordinate_transformation_mode", "half_pixel");
  if (ct == "half_pixel") m.coord = CT_HALF_PIXEL;
  else if (ct == "asymmetric") m.coord = CT_ASYMMETRIC;
  else if (ct == "align_corners") m.coord = CT_ALIGN_CORNERS;
  else if (ct == "pytorch_half_pixel") m.coord = CT_PYTORCH_HALF_PIXEL;
  else if (ct == "tf_half_pixel_for_nn") m.coord = CT_TF_HALF_PIXEL_FOR_NN;
  else if (ct == "tf_crop_and_resize") m.coord = CT_TF_CROP_AND_RESIZE;
  else if (ct == "half_pixel_symmetric") m.coord = CT_HALF_PIXEL_SYMMETRIC;
  else m.err = "coordinate_transformation_mode '" + ct + "'";
  const std::string nm = v.attrString("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_floor") m.nearest = NM_ROUND_PREFER_FLOOR;
  else if (nm == "round_prefer_ceil") m.nearest = NM_ROUND_PREFER_CEIL;
  else if (nm == "floor") m.nearest = NM_FLOOR;
  else if (nm == "ceil") m.nearest = NM_CEIL;
  else m.err = "nearest_mode '" + nm + "'";
  m.cubicA = static_cast<double>(v.attrFloat("cubic_coeff_a", -0.75f));
  m.exclude = v.attrInt("exclude_outside", 0) != 0;
  m.extrap = static_cast<double>(v.attrFloat("extrapolation_value", 0.0f));
  m.antialias = v.attrInt("antialias", 0) != 0;
  return m;
}

/** Output lens, per-dim scales and roi ([starts..., ends...]); err on malformed parameters. */
struct ResizeSpec {
  std::vector<int64_t> out;
  std::vector<double> scales, roi;
  std::string err;
};

ResizeSpec resizeSpec(const std::vector<int64_t>& lens, const std::vector<double>* scales,
                      const std::vector<int64_t>* sizes, const std::vector<double>* roi,
                      const std::vector<int64_t>* axes, const std::string& policy, bool crop) {
  constexpr int64_t kMaxLen = int64_t(1) << 30;
  const size_t r = lens.size();
  ResizeSpec sp;
  sp.out = lens;
  sp.scales.assign(r, 1.0);
  sp.roi.assign(2 * r, 0.0);
  for (size_t i = 0; i < r; i++) sp.roi[i + r] = 1.0;
  const size_t k = axes ? axes->size() : r;
  std::vector<size_t> ax(k);
  for (size_t i = 0; i < k; i++) {
    int64_t a = axes ? (*axes)[i] : static_cast<int64_t>(i);
    if (a < 0) a += static_cast<int64_t>(r);
    if (a < 0 || a >= static_cast<int64_t>(r)) {
      sp.err = "axes out of range";
      return sp;
    }
    ax[i] = static_cast<size_t>(a);
  }
  if (roi && !roi->empty()) {
    if (roi->size() != 2 * k) {
      sp.err = "roi of the wrong length";
      return sp;
    }
    for (size_t i = 0; i < k; i++) {
      sp.roi[ax[i]] = (*roi)[i];
      sp.roi[ax[i] + r] = (*roi)[i + k];
    }
  }
  if (sizes) {
    if (sizes->size() != k) {
      sp.err = "sizes of the wrong length";
      return sp;
    }
    if (policy == "stretch") {
      for (size_t i = 0; i < k; i++) {
        const int64_t s = (*sizes)[i];
        if (s < 0 || s > kMaxLen) {
          sp.err = "sizes out of range";
          return sp;
        }
        sp.out[ax[i]] = s;
        sp.scales[ax[i]] = lens[ax[i]] == 0 ? 1.0 : static_cast<double>(s) / static_cast<double>(lens[ax[i]]);
      }
    } else {
      const bool larger = policy == "not_smaller";
      if (!larger && policy != "not_larger") {
        sp.err = "keep_aspect_ratio_policy '" + policy + "'";
        return sp;
      }
      double s = larger ? 0.0 : INFINITY;
      for (size_t i = 0; i < k; i++) {
        const double q = static_cast<double>((*sizes)[i]) / static_cast<double>(lens[ax[i]]);
        s = larger ? (q > s ? q : s) : (q < s ? q : s);
      }
      for (size_t i = 0; i < k; i++) {
        sp.scales[ax[i]] = s;
        const double len = std::floor(s * static_cast<double>(lens[ax[i]]) + 0.5);
        if (!(len >= 0 && len <= static_cast<double>(kMaxLen))) {
          sp.err = "sizes give an output length out of range";
          return sp;
        }
        sp.out[ax[i]] = static_cast<int64_t>(len);
      }
    }
    return sp;
  }
  if (!scales) {
    sp.err = "neither scales nor sizes";
    return sp;
  }
  if (scales->size() != k) {
    sp.err = "scales of the wrong length";
    return sp;
  }
  for (size_t i = 0; i < k; i++) {
    const size_t a = ax[i];
    const double s = (*scales)[i];
    if (!(s > 0)) {
      sp.err = "a scale that is not positive";
      return sp;
    }
    sp.scales[a] = s;
    double len = static_cast<double>(lens[a]) * s;
    if (crop) len *= sp.roi[a + r] - sp.roi[a];
    const double out = std::floor(static_cast<double>(static_cast<float>(len)));
    if (!(out >= 0 && out <= static_cast<double>(kMaxLen))) {
      sp.err = "scales give an output length out of range";
      return sp;
    }
    sp.out[a] = static_cast<int64_t>(out);
  }
  return sp;
}

double coordOf(int ct, double x, double s, int64_t Lin, int64_t Lout, double r0, double r1) {
  const double lin = static_cast<double>(Lin);
  switch (ct) {
    case CT_ASYMMETRIC: return x / s;
    case CT_ALIGN_CORNERS: return Lout == 1 ? 0 : x * static_cast<double>(Lin - 1) / (s * lin - 1);
    case CT_PYTORCH_HALF_PIXEL: return Lout > 1 ? (x + 0.5) / s - 0.5 : 0;
    case CT_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / s;
    case CT_TF_CROP_AND_RESIZE:
      return Lout > 1 ? r0 * static_cast<double>(Lin - 1) + x * (r1 - r0) * static_cast<double>(Lin - 1) / (s * lin - 1)
                      : 0.5 * (r0 + r1) * static_cast<double>(Lin - 1);
    case CT_HALF_PIXEL_SYMMETRIC: {
      const double adj = static_cast<double>(Lout) / (s * lin);
      const double center = lin / 2;
      return center * (1 - adj) + (x + 0.5) / s - 0.5;
    }
    default: return (x + 0.5) / s - 0.5;
  }
}

int32_t clampI(int32_t i, int64_t L) { return i < 0 ? 0 : (i >= L ? static_cast<int32_t>(L - 1) : i); }

double cubicCoeff(double t, double A) {
  const double x = std::fabs(t);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

/** Taps of one axis: T per output index (index, weight), and which outputs extrapolate. */
struct Taps {
  int T = 1;
  std::vector<int32_t> idx;
  std::vector<double> w;
  std::vector<uint8_t> extrap;
  bool identity = true;
  void init(int t, int64_t Lout) {
    T = t;
    idx.assign(static_cast<size_t>(t * Lout), 0);
    w.assign(static_cast<size_t>(t * Lout), 0.0);
    extrap.assign(static_cast<size_t>(Lout), 0);
  }
};

Taps antialiasTaps(const ResizeMode& m, int64_t Lin, int64_t Lout, double s, double r0, double r1) {
  const int32_t start = m.mode == MODE_LINEAR ? static_cast<int32_t>(std::floor(-1 / s)) + 1
                                              : static_cast<int32_t>(std::floor(-2 / s)) + 1;
  const int T = 2 - 2 * start;
  Taps t;
  t.init(T, Lout);
  t.identity = false;
  for (int64_t x = 0; x < Lout; x++) {
    const double xo = coordOf(m.coord, static_cast<double>(x), s, Lin, Lout, r0, r1);
    const size_t b = static_cast<size_t>(x * T);
    if (m.coord == CT_TF_CROP_AND_RESIZE && (xo < 0 || xo > static_cast<double>(Lin - 1))) {
      t.extrap[static_cast<size_t>(x)] = 1;
      continue;
    }
    const int32_t fi = static_cast<int32_t>(std::floor(xo));
    double sum = 0;
    for (int j = 0; j < T; j++) {
      const int32_t src = fi - T / 2 + 1 + j;
      const double arg = (static_cast<double>(src) - xo) * s;
      double w = m.mode == MODE_LINEAR ? std::max(0.0, 1 - std::fabs(arg)) : cubicCoeff(arg, m.cubicA);
      if (m.exclude && (src < 0 || src >= Lin)) w = 0;
      t.idx[b + j] = clampI(src, Lin);
      t.w[b + j] = w;
      sum += w;
    }
    if (sum != 0) {
      for (int j = 0; j < T; j++) t.w[b + j] = t.w[b + j] / sum;
    }
  }
  return t;
}

Taps makeTaps(const ResizeMode& m, int64_t Lin, int64_t Lout, double s, double r0, double r1) {
  if (m.antialias && m.mode != MODE_NEAREST && s < 1) return antialiasTaps(m, Lin, Lout, s, r0, r1);
  const int T = m.mode == MODE_NEAREST ? 1 : (m.mode == MODE_LINEAR ? 2 : 4);
  Taps t;
  t.init(T, Lout);
  for (int64_t x = 0; x < Lout; x++) {
    const double xo = coordOf(m.coord, static_cast<double>(x), s, Lin, Lout, r0, r1);
    const size_t b = static_cast<size_t>(x * T);
    if (m.coord == CT_TF_CROP_AND_RESIZE && (xo < 0 || xo > static_cast<double>(Lin - 1))) {
      t.extrap[static_cast<size_t>(x)] = 1;
      t.identity = false;
      continue;
    }
    const double f = std::floor(xo);
    const int32_t fi = static_cast<int32_t>(f);
    const double ratio = xo - f;
    if (m.mode == MODE_NEAREST) {
      int32_t i;
      switch (m.nearest) {
        case NM_ROUND_PREFER_CEIL: i = ratio < 0.5 ? fi : fi + 1; break;
        case NM_FLOOR: i = fi; break;
        case NM_CEIL: i = ratio == 0 ? fi : fi + 1; break;
        case NM_SIMPLE: i = s < 1 ? static_cast<int32_t>(std::ceil(xo)) : fi; break;
        default: i = ratio <= 0.5 ? fi : fi + 1;
      }
      i = clampI(i, Lin);
      t.idx[b] = i;
      t.w[b] = 1;
      if (i != x) t.identity = false;
    } else if (m.mode == MODE_LINEAR) {
      t.idx[b] = clampI(fi, Lin);
      t.w[b] = 1 - ratio;
      t.idx[b + 1] = clampI(fi + 1, Lin);
      t.w[b + 1] = ratio;
      if (ratio != 0 || fi != x) t.identity = false;
    } else {
      double sum = 0;
      for (int j = 0; j < 4; j++) {
        const int32_t src = fi - 1 + j;
        double w = cubicCoeff(ratio + 1 - static_cast<double>(j), m.cubicA);
        if (m.exclude && (src < 0 || src >= Lin)) w = 0;
        t.idx[b + j] = clampI(src, Lin);
        t.w[b + j] = w;
        sum += w;
      }
      if (m.exclude && sum != 0) {
        for (int j = 0; j < 4; j++) t.w[b + j] = t.w[b + j] / sum;
      }
      if (ratio != 0 || fi != x) t.identity = false;
    }
  }
  if (Lin != Lout) t.identity = false;
  return t;
}

// ---- Resize: device side ---------------------------------------------------------------

/**
 * The output walk and the resized axes ("levels", outermost first). Tables (Kernel::table):
 * weights (f64), then indices (int32), then extrapolation flags (uint8), each level's at its
 * offset, T entries per output coordinate (one flag per coordinate).
 */
struct ResizeParams {
  int rank;
  int levels;
  bool anyExtrap;
  int64_t outDims[kMaxDims];
  int64_t inStride[kMaxDims];
  int levelOf[kMaxDims];  // -1: not resized
  int axis[kMaxDims];
  int T[kMaxDims];
  int64_t wOff[kMaxDims], iOff[kMaxDims], eOff[kMaxDims];
};

template <typename T>
__global__ void resizeNearestKernel(ResizeParams p, const T* in, T* out, T ev, const int32_t* I, const uint8_t* E,
                                    int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t q = i, src = 0;
    bool ex = false;
    for (int d = p.rank - 1; d >= 0; d--) {
      const int64_t len = p.outDims[d];
      const int64_t nq = q / len;
      const int64_t c = q - nq * len;
      q = nq;
      const int l = p.levelOf[d];
      if (l < 0) {
        src += c * p.inStride[d];
      } else {
        if (p.anyExtrap && E[p.eOff[l] + c]) ex = true;
        src += static_cast<int64_t>(I[p.iOff[l] + c]) * p.inStride[d];
      }
    }
    out[i] = ex ? ev : in[src];
  }
}

template <int DT>
KILN_HD double loadT(const void* p, int64_t i) {
  return loadF(p, i, DT);
}

template <int DT>
__global__ void resizeInterpKernel(ResizeParams p, const void* in, void* out, double ev, const double* W,
                                   const int32_t* I, const uint8_t* E, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t coord[kMaxDims];
    int64_t q = i, base = 0;
    for (int d = p.rank - 1; d >= 0; d--) {
      const int64_t len = p.outDims[d];
      const int64_t nq = q / len;
      const int64_t c = q - nq * len;
      q = nq;
      coord[d] = c;
      if (p.levelOf[d] < 0) base += c * p.inStride[d];
    }
    // the outermost level whose coordinate extrapolates: it and everything inside it are ev
    int k = p.levels;
    if (p.anyExtrap) {
      for (int l = 0; l < p.levels; l++) {
        if (E[p.eOff[l] + coord[p.axis[l]]]) {
          k = l;
          break;
        }
      }
    }
    double result;
    if (k == 0) {
      result = ev;
    } else {
      // depth-first over the taps, level 0 outermost; acc[l] sums level l's taps
      int t[kMaxDims + 1];
      int64_t off[kMaxDims + 1];
      int64_t jb[kMaxDims];
      double acc[kMaxDims + 1];
      for (int l = 0; l < k; l++) jb[l] = coord[p.axis[l]] * p.T[l];
      int l = 0;
      t[0] = 0;
      acc[0] = 0;
      off[0] = base;
      for (;;) {
        if (l == k) {
          const double v = k < p.levels ? ev : loadT<DT>(in, off[l]);
          l--;
          acc[l] = dadd(acc[l], dmul(W[p.wOff[l] + jb[l] + t[l]], v));
          t[l]++;
          continue;
        }
        if (t[l] < p.T[l]) {
          const int64_t e = jb[l] + t[l];
          if (W[p.wOff[l] + e] == 0) {
            t[l]++;
            continue;
          }
          off[l + 1] = off[l] + static_cast<int64_t>(I[p.iOff[l] + e]) * p.inStride[p.axis[l]];
          l++;
          t[l] = 0;
          acc[l] = 0;
          continue;
        }
        if (l == 0) break;
        const double v = acc[l];
        l--;
        acc[l] = dadd(acc[l], dmul(W[p.wOff[l] + jb[l] + t[l]], v));
        t[l]++;
      }
      result = acc[0];
    }
    storeF(out, i, DT, result);
  }
}

struct ResizeKernel : Kernel {
  ResizeParams p{};
  bool nearest = true;
  int dt = DT_FLOAT, size = 4;
  uint64_t evBits = 0;
  double ev = 0;
  int32_t in = -1, out = -1;
  int64_t n = 0;
  // where each part of the tables (Kernel::table) starts
  int64_t iAt = 0, eAt = 0;

  bool run(Exec& x) override {
    if (n == 0) return true;
    const double* W = reinterpret_cast<const double*>(tableDevice);
    const int32_t* I = reinterpret_cast<const int32_t*>(tableDevice + iAt);
    const uint8_t* E = reinterpret_cast<const uint8_t*>(tableDevice + eAt);
    const dim3 g = gridFor(n, kThreads);
    if (nearest) {
      switch (size) {
        case 1: KILN_LAUNCH(resizeNearestKernel<uint8_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint8_t>(in), x.at<uint8_t>(out), static_cast<uint8_t>(evBits), I, E, n); break;
        case 2: KILN_LAUNCH(resizeNearestKernel<uint16_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint16_t>(in), x.at<uint16_t>(out), static_cast<uint16_t>(evBits), I, E, n); break;
        case 4: KILN_LAUNCH(resizeNearestKernel<uint32_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint32_t>(in), x.at<uint32_t>(out), static_cast<uint32_t>(evBits), I, E, n); break;
        default: KILN_LAUNCH(resizeNearestKernel<uint64_t>, g, dim3(kThreads), 0, x.stream, p, x.at<const uint64_t>(in), x.at<uint64_t>(out), evBits, I, E, n); break;
      }
    } else {
      const void* ip = x.ptr(in);
      void* op = x.ptr(out);
      switch (dt) {
        case DT_FLOAT: KILN_LAUNCH(resizeInterpKernel<DT_FLOAT>, g, dim3(kThreads), 0, x.stream, p, ip, op, ev, W, I, E, n); break;
        case DT_DOUBLE: KILN_LAUNCH(resizeInterpKernel<DT_DOUBLE>, g, dim3(kThreads), 0, x.stream, p, ip, op, ev, W, I, E, n); break;
        case DT_FLOAT16: KILN_LAUNCH(resizeInterpKernel<DT_FLOAT16>, g, dim3(kThreads), 0, x.stream, p, ip, op, ev, W, I, E, n); break;
        default: KILN_LAUNCH(resizeInterpKernel<DT_BFLOAT16>, g, dim3(kThreads), 0, x.stream, p, ip, op, ev, W, I, E, n); break;
      }
    }
    return launched(x, "Resize");
  }
};

/** A device-to-device copy (Resize with every axis the identity). */
struct ResizeCopy : Kernel {
  int32_t in, out;
  int64_t bytes;
  bool run(Exec& x) override {
    if (bytes == 0 || x.ptr(in) == x.ptr(out)) return true;
    return hipCheck(hipMemcpyAsync(x.ptr(out), x.ptr(in), static_cast<size_t>(bytes), hipMemcpyDeviceToDevice, x.stream),
                    "Resize copy", *x.err);
  }
};

/** The bytes of one element of type dt holding v, as the ref's setFromF64. */
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
      const int64_t i = std::isfinite(v) ? satI64(v) : 0;
      std::memcpy(&bits, &i, 8);
      break;
    }
  }
  const int size = dtypeSize(dt);
  if (size < 8) bits &= (uint64_t(1) << (size * 8)) - 1;
  return bits;
}

std::unique_ptr<Kernel> lowerResize(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const bool upsample = v.n.op == "Upsample";
  const SValue& x = v.in(0);
  const SValue& y = v.out(0);
  const int size = dtypeSize(x.dtype);
  if (size <= 0) {
    why = std::string("Resize of ") + dtypeName(x.dtype);
    return nullptr;
  }
  const ResizeMode m = resizeMode(upsample, v);
  if (!m.err.empty()) {
    why = "Resize " + m.err;
    return nullptr;
  }
  if (m.mode != MODE_NEAREST && !floatType(x.dtype)) {
    why = std::string("Resize interpolating ") + dtypeName(x.dtype);
    return nullptr;
  }
  if (x.rank() > kMaxDims || x.rank() < 1) {
    why = "Resize rank past 8";
    return nullptr;
  }
  // roi, scales and sizes as the ref reads them (resizeInputs)
  int roiAt = -1, scalesAt = -1, sizesAt = -1;
  if (upsample) {
    if (v.s.opset >= 9) scalesAt = 1;
  } else if (v.s.opset < 11) {
    scalesAt = 1;
  } else {
    roiAt = 1;
    scalesAt = 2;
    sizesAt = 3;
  }
  std::vector<int64_t> sizes;
  std::vector<double> scales, roi;
  bool hasSizes = false, hasScales = false, hasRoi = false;
  if (sizesAt >= 0 && v.has(sizesAt) && v.in(sizesAt).elements() > 0) {
    if (!v.constInts(sizesAt, sizes)) {
      why = "Resize sizes that are not a constant";
      return nullptr;
    }
    hasSizes = true;
  }
  if (!hasSizes) {
    if (scalesAt >= 0) {
      if (v.has(scalesAt) && v.in(scalesAt).elements() > 0) {
        if (!v.constDoubles(scalesAt, scales)) {
          why = "Resize scales that are not a constant";
          return nullptr;
        }
        hasScales = true;
      }
    } else if (v.hasAttr("scales")) {
      for (float f : v.attrFloats("scales")) scales.push_back(static_cast<double>(f));
      hasScales = true;
    }
  }
  const bool crop = m.coord == CT_TF_CROP_AND_RESIZE;
  if (crop && roiAt >= 0 && v.has(roiAt) && v.in(roiAt).elements() > 0) {
    if (!v.constDoubles(roiAt, roi)) {
      why = "Resize roi that is not a constant";
      return nullptr;
    }
    hasRoi = true;
  }
  std::vector<int64_t> axes;
  const bool hasAxes = v.hasAttr("axes");
  if (hasAxes) axes = v.attrInts("axes");
  const ResizeSpec sp = resizeSpec(x.dims, hasScales ? &scales : nullptr, hasSizes ? &sizes : nullptr,
                                   hasRoi ? &roi : nullptr, hasAxes ? &axes : nullptr,
                                   v.attrString("keep_aspect_ratio_policy", "stretch"), crop);
  if (!sp.err.empty()) {
    why = "Resize " + sp.err;
    return nullptr;
  }
  if (sp.out != y.dims) {
    why = "Resize output dims differ from the compiled ones";
    return nullptr;
  }
  const int r = x.rank();
  const int64_t n = y.elements();
  std::vector<Taps> taps;
  std::vector<int> active;
  if (n > 0) {
    for (int a = 0; a < r; a++) {
      const int64_t Lin = x.dims[static_cast<size_t>(a)], Lout = sp.out[static_cast<size_t>(a)];
      if (Lin > INT32_MAX || Lout > INT32_MAX) {
        why = "Resize axis past int32";
        return nullptr;
      }
      Taps t = makeTaps(m, Lin, Lout, sp.scales[static_cast<size_t>(a)], sp.roi[static_cast<size_t>(a)],
                        sp.roi[static_cast<size_t>(a + r)]);
      if (t.identity) continue;
      active.push_back(a);
      taps.push_back(std::move(t));
    }
  }
  if (active.empty()) {
    auto c = std::make_unique<ResizeCopy>();
    c->in = v.inId(0);
    c->out = v.outId(0);
    c->bytes = n > 0 ? y.bytes : 0;
    return c;
  }
  auto k = std::make_unique<ResizeKernel>();
  ResizeParams& p = k->p;
  p.rank = r;
  p.levels = static_cast<int>(active.size());
  p.anyExtrap = false;
  const auto inStr = contiguousStrides(x.dims);
  for (int d = 0; d < r; d++) {
    p.outDims[d] = y.dims[static_cast<size_t>(d)];
    p.inStride[d] = inStr[static_cast<size_t>(d)];
    p.levelOf[d] = -1;
  }
  // table layout: all weights (f64), then all indices (int32), then all flags (uint8)
  int64_t nw = 0, ni = 0, ne = 0;
  for (size_t l = 0; l < active.size(); l++) {
    const Taps& t = taps[l];
    p.axis[l] = active[l];
    p.levelOf[active[l]] = static_cast<int>(l);
    p.T[l] = t.T;
    p.wOff[l] = nw;
    p.iOff[l] = ni;
    p.eOff[l] = ne;
    if (m.mode != MODE_NEAREST) nw += static_cast<int64_t>(t.w.size());
    ni += static_cast<int64_t>(t.idx.size());
    ne += static_cast<int64_t>(t.extrap.size());
    for (uint8_t e : t.extrap) p.anyExtrap = p.anyExtrap || e != 0;
  }
  k->iAt = nw * 8;
  k->eAt = k->iAt + ni * 4;
  const int64_t bytes = k->eAt + (p.anyExtrap ? ne : 0);
  k->table.assign(static_cast<size_t>(bytes), 0);
  for (size_t l = 0; l < active.size(); l++) {
    const Taps& t = taps[l];
    if (m.mode != MODE_NEAREST) {
      std::memcpy(k->table.data() + p.wOff[l] * 8, t.w.data(), t.w.size() * 8);
    }
    std::memcpy(k->table.data() + k->iAt + p.iOff[l] * 4, t.idx.data(), t.idx.size() * 4);
    if (p.anyExtrap) std::memcpy(k->table.data() + k->eAt + p.eOff[l], t.extrap.data(), t.extrap.size());
  }
  k->nearest = m.mode == MODE_NEAREST;
  k->dt = x.dtype;
  k->size = size;
  k->ev = m.extrap;
  k->evBits = elementBits(x.dtype, m.extrap);
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->n = n;
  return k;
}

}  // namespace

void registerResize() {
  registerLowering("Resize", lowerResize);
  registerLowering("Upsample", lowerResize);
}

}  // namespace kiln
