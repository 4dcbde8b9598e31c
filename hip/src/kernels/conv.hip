// Conv and ConvTranspose, float32, 1-D/2-D/3-D (wasm/ops/conv.ts, wasm/kernels/conv.ts). The
// geometry (kernel, strides, dilations, pads, auto_pad, output_padding, output_shape) is resolved on
// the host exactly as the ref's SpatialPlan does, normalized to 3 spatial dims (d, h, w; 1-D and 2-D
// have unit leading dims), and checked against the compiled output dims.
//
// Conv:
//   - group 1 (and grouped convs with wide groups): im2col of a chunk of images into the workspace
//     ([image][c * kvol][ovol], zeros for taps in the padding), then kiln_gemm: Y_n[M, ovol] =
//     W[M, C*kvol] * col_n (one strided-batched call over the chunk's images, W broadcast; grouped:
//     one call per image batched over the groups). A 1x1, stride-1, unpadded conv reads X in place.
//     The bias is added afterwards (as the ref does, skipping zero biases);
//   - depthwise and narrow grouped convs: a direct kernel, one thread per output element.
// ConvTranspose: a direct gather kernel, one thread per output element: for each kernel tap (in the
// ref's col2im order) the input position it reads from, if any, and the sum over the group's
// channels; the bias is added last.
//
// Other element types (float16, float64, bfloat16: the ref converts through float32) run on the
// host, as do ConvInteger and QLinearConv (no lowering).
#include <algorithm>
#include <string>

#include "../dnn.h"
#include "device.h"
#include "gemm.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;
/** The most workspace the im2col path takes (it chunks the batch to stay under it). */
constexpr int64_t kIm2colBytes = int64_t(256) << 20;

/** Geometry normalized to 3 spatial dims (the ref's ConvGeom). For ConvTranspose i* are the input dims. */
struct Geom {
  int64_t n, c, m, group;
  int64_t id, ih, iw;
  int64_t kd, kh, kw;
  int64_t od, oh, ow;
  int64_t sd, sh, sw;
  int64_t pd, ph, pw;
  int64_t dd, dh, dw;
};

/** Resolved geometry per spatial dim (the ref's SpatialPlan). */
struct Plan {
  std::vector<int64_t> k, s, d, pb, pe, out;
};

constexpr int64_t kGeomMax = int64_t(1) << 24;

bool intsAttr(const NodeView& v, const char* name, size_t r, int64_t dflt, int64_t lo, std::vector<int64_t>& out) {
  if (!v.hasAttr(name)) {
    out.assign(r, dflt);
    return true;
  }
  out = v.attrInts(name);
  if (out.size() != r) return false;
  for (int64_t x : out) {
    if (x < lo || x > kGeomMax) return false;
  }
  return true;
}

bool padsAttr(const NodeView& v, size_t r, std::vector<int64_t>& pads) {
  pads.clear();
  if (!v.hasAttr("pads")) return true;
  pads = v.attrInts("pads");
  if (pads.size() != 2 * r) return false;
  for (int64_t x : pads) {
    if (x < 0 || x > kGeomMax) return false;
  }
  return true;
}

/** wasm/ops/conv.ts planForward (ceil_mode off). */
bool planForward(const NodeView& v, const std::vector<int64_t>& inn, const std::vector<int64_t>& kern, Plan& p) {
  const size_t r = inn.size();
  p.k = kern;
  std::vector<int64_t> pads;
  if (!intsAttr(v, "strides", r, 1, 1, p.s) || !intsAttr(v, "dilations", r, 1, 1, p.d) || !padsAttr(v, r, pads)) {
    return false;
  }
  const std::string autoPad = v.attrString("auto_pad", "NOTSET");
  for (size_t i = 0; i < r; i++) {
    const int64_t s = p.s[i], dl = p.d[i];
    if (p.k[i] < 1) return false;
    const int64_t keff = (p.k[i] - 1) * dl + 1;
    const int64_t n = inn[i];
    int64_t pb = 0, pe = 0, o = 0;
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      o = (n + s - 1) / s;
      int64_t total = (o - 1) * s + keff - n;
      if (total < 0) total = 0;
      if (autoPad == "SAME_UPPER") {
        pb = total / 2;
        pe = total - pb;
      } else {
        pe = total / 2;
        pb = total - pe;
      }
    } else if (autoPad == "VALID") {
      o = n >= keff ? (n - keff) / s + 1 : 0;
    } else if (autoPad == "NOTSET" || autoPad.empty()) {
      if (!pads.empty()) {
        pb = pads[i];
        pe = pads[i + r];
      }
      const int64_t span = n + pb + pe - keff;
      if (span < 0) return false;
      o = span / s + 1;
    } else {
      return false;
    }
    p.pb.push_back(pb);
    p.pe.push_back(pe);
    p.out.push_back(o);
  }
  return true;
}

/** wasm/ops/conv.ts planTransposed. */
bool planTransposed(const NodeView& v, const std::vector<int64_t>& inn, const std::vector<int64_t>& kern, Plan& p) {
  const size_t r = inn.size();
  p.k = kern;
  std::vector<int64_t> adj, pads;
  if (!intsAttr(v, "strides", r, 1, 1, p.s) || !intsAttr(v, "dilations", r, 1, 1, p.d) ||
      !intsAttr(v, "output_padding", r, 0, 0, adj) || !padsAttr(v, r, pads)) {
    return false;
  }
  const bool hasOutShape = v.hasAttr("output_shape");
  const std::vector<int64_t> outShape = v.attrInts("output_shape");
  const std::string autoPad = v.attrString("auto_pad", "NOTSET");
  for (size_t i = 0; i < r; i++) {
    const int64_t s = p.s[i];
    if (p.k[i] < 1) return false;
    const int64_t keff = (p.k[i] - 1) * p.d[i] + 1;
    const int64_t full = s * (inn[i] - 1) + adj[i] + keff;
    int64_t pb = 0, pe = 0, o = 0;
    if (hasOutShape || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      if (hasOutShape) {
        if (outShape.size() < r) return false;
        o = outShape[outShape.size() - r + i];
      } else {
        o = inn[i] * s;
      }
      int64_t total = full - o;
      if (total < 0) total = 0;
      if (autoPad == "SAME_UPPER") {
        pb = total / 2;
        pe = total - pb;
      } else {
        pe = total / 2;
        pb = total - pe;
      }
    } else {
      if (!pads.empty() && autoPad != "VALID") {
        pb = pads[i];
        pe = pads[i + r];
      }
      o = full - pb - pe;
    }
    if (o <= 0) return false;
    p.pb.push_back(pb);
    p.pe.push_back(pe);
    p.out.push_back(o);
  }
  return true;
}

/** The plan right-aligned into (d, h, w). */
Geom geomOf(const Plan& p, int64_t n, int64_t c, int64_t m, int64_t group, const std::vector<int64_t>& inn) {
  int64_t I[3] = {1, 1, 1}, K[3] = {1, 1, 1}, O[3] = {1, 1, 1}, S[3] = {1, 1, 1}, D[3] = {1, 1, 1};
  int64_t P[3] = {0, 0, 0};
  const size_t r = inn.size();
  for (size_t i = 0; i < r; i++) {
    const size_t j = 3 - r + i;
    I[j] = inn[i];
    K[j] = p.k[i];
    O[j] = p.out[i];
    S[j] = p.s[i];
    D[j] = p.d[i];
    P[j] = p.pb[i];
  }
  Geom g;
  g.n = n;
  g.c = c;
  g.m = m;
  g.group = group;
  g.id = I[0], g.ih = I[1], g.iw = I[2];
  g.kd = K[0], g.kh = K[1], g.kw = K[2];
  g.od = O[0], g.oh = O[1], g.ow = O[2];
  g.sd = S[0], g.sh = S[1], g.sw = S[2];
  g.pd = P[0], g.ph = P[1], g.pw = P[2];
  g.dd = D[0], g.dh = D[1], g.dw = D[2];
  return g;
}

// ---- kernels ------------------------------------------------------------------------------

/**
 * col[img][c * kvol + tap][o] = x[n0 + img][c][input position of tap at output o], 0 in the padding,
 * for img < images (the output index runs fastest: stores coalesce).
 */
__global__ void im2colKernel(Geom g, const float* x, float* col, int64_t n0, int64_t total) {
  const int64_t ovol = g.od * g.oh * g.ow;
  const int64_t kvol = g.kd * g.kh * g.kw;
  const int64_t rows = g.c * kvol;
  const int64_t ivol = g.id * g.ih * g.iw;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    int64_t q = e / ovol;
    const int64_t o = e - q * ovol;
    const int64_t img = q / rows;
    const int64_t row = q - img * rows;
    const int64_t c = row / kvol;
    const int64_t t = row - c * kvol;
    const int64_t kx = t % g.kw;
    const int64_t ky = (t / g.kw) % g.kh;
    const int64_t kz = t / (g.kw * g.kh);
    const int64_t ox = o % g.ow;
    const int64_t oy = (o / g.ow) % g.oh;
    const int64_t oz = o / (g.ow * g.oh);
    const int64_t iz = oz * g.sd - g.pd + kz * g.dd;
    const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
    const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
    float v = 0.0f;
    if (iz >= 0 && iz < g.id && iy >= 0 && iy < g.ih && ix >= 0 && ix < g.iw) {
      v = x[((n0 + img) * g.c + c) * ivol + (iz * g.ih + iy) * g.iw + ix];
    }
    col[e] = v;
  }
}

/** The ref's Relu (NaN and -0 pass through). */
KILN_DEVICE float relu(float v) { return v < 0.0f ? 0.0f : v; }

/**
 * y[n][m][i] += bias[m] where bias[m] != 0 (the ref's addBias; bias may be null), then Relu where
 * one was folded into the Conv (`rectify`).
 */
__global__ void addBiasKernel(const float* bias, float* y, int64_t M, int64_t vol, int64_t total, int rectify) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const float b = bias ? bias[(e / vol) % M] : 0.0f;
    float v = y[e];
    if (b != 0.0f) v += b;
    y[e] = rectify ? relu(v) : v;
  }
}

/** addBiasKernel by planes: blockIdx.y is the (image, channel) plane, four elements a thread, no divisions. */
__global__ void addBiasPlaneKernel(const float* bias, float* y, int64_t M, int64_t vol4, int rectify) {
  const int64_t plane = blockIdx.y;
  const float b = bias ? bias[plane % M] : 0.0f;
  float4* p = reinterpret_cast<float4*>(y) + plane * vol4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < vol4; i += stride) {
    float4 v = p[i];
    if (b != 0.0f) {
      v.x += b;
      v.y += b;
      v.z += b;
      v.w += b;
    }
    if (rectify) v = make_float4(relu(v.x), relu(v.y), relu(v.z), relu(v.w));
    p[i] = v;
  }
}

/**
 * Direct conv, one thread per output element y[n][m][oz][oy][ox]: the sum over the group's input
 * channels and the kernel taps (the GEMM's k order). Depthwise (biasFirst) starts from the bias and
 * adds each tap, as the ref's depthwise kernel; otherwise the bias is added last.
 */
__global__ void convDirectKernel(Geom g, const float* x, const float* w, const float* bias, float* y, int biasFirst,
                                 int64_t total) {
  const int64_t ovol = g.od * g.oh * g.ow;
  const int64_t ivol = g.id * g.ih * g.iw;
  const int64_t kvol = g.kd * g.kh * g.kw;
  const int64_t cg = g.c / g.group;
  const int64_t mg = g.m / g.group;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    int64_t q = e / ovol;
    const int64_t o = e - q * ovol;
    const int64_t n = q / g.m;
    const int64_t m = q - n * g.m;
    const int64_t gi = m / mg;
    const int64_t ox = o % g.ow;
    const int64_t oy = (o / g.ow) % g.oh;
    const int64_t oz = o / (g.ow * g.oh);
    const float b = bias != nullptr ? bias[m] : 0.0f;
    float acc = biasFirst ? b : 0.0f;
    const float* wm = w + m * cg * kvol;
    for (int64_t c = 0; c < cg; c++) {
      const float* xc = x + (n * g.c + gi * cg + c) * ivol;
      const float* wc = wm + c * kvol;
      for (int64_t kz = 0; kz < g.kd; kz++) {
        const int64_t iz = oz * g.sd - g.pd + kz * g.dd;
        if (iz < 0 || iz >= g.id) continue;
        for (int64_t ky = 0; ky < g.kh; ky++) {
          const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
          if (iy < 0 || iy >= g.ih) continue;
          const float* xrow = xc + (iz * g.ih + iy) * g.iw;
          const float* wrow = wc + (kz * g.kh + ky) * g.kw;
          for (int64_t kx = 0; kx < g.kw; kx++) {
            const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
            if (ix < 0 || ix >= g.iw) continue;
            acc = fmaf(wrow[kx], xrow[ix], acc);
          }
        }
      }
    }
    if (!biasFirst && b != 0.0f) acc += b;
    y[e] = acc;
  }
}

/**
 * ConvTranspose gather, one thread per output element y[n][m][oz][oy][ox]: x [n, c, id, ih, iw],
 * w [c, m/group, kd, kh, kw]. Output o takes input i through tap k where o = i * s - p + k * d; per
 * tap (in the ref's col2im order) the sum over the group's channels is added.
 */
__global__ void convTransposeKernel(Geom g, const float* x, const float* w, const float* bias, float* y,
                                    int64_t total) {
  const int64_t ovol = g.od * g.oh * g.ow;
  const int64_t ivol = g.id * g.ih * g.iw;
  const int64_t kvol = g.kd * g.kh * g.kw;
  const int64_t cg = g.c / g.group;
  const int64_t mg = g.m / g.group;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    int64_t q = e / ovol;
    const int64_t o = e - q * ovol;
    const int64_t n = q / g.m;
    const int64_t m = q - n * g.m;
    const int64_t gi = m / mg;
    const int64_t mm = m - gi * mg;
    const int64_t ox = o % g.ow;
    const int64_t oy = (o / g.ow) % g.oh;
    const int64_t oz = o / (g.ow * g.oh);
    const float* xg = x + (n * g.c + gi * cg) * ivol;
    const float* wg = w + (gi * cg * mg + mm) * kvol;  // w[gi*cg + c][mm][tap] at wg + c * mg * kvol + tap
    float acc = 0.0f;
    for (int64_t kz = 0; kz < g.kd; kz++) {
      const int64_t zn = oz + g.pd - kz * g.dd;
      if (zn < 0 || zn % g.sd != 0) continue;
      const int64_t iz = zn / g.sd;
      if (iz >= g.id) continue;
      for (int64_t ky = 0; ky < g.kh; ky++) {
        const int64_t yn = oy + g.ph - ky * g.dh;
        if (yn < 0 || yn % g.sh != 0) continue;
        const int64_t iy = yn / g.sh;
        if (iy >= g.ih) continue;
        for (int64_t kx = 0; kx < g.kw; kx++) {
          const int64_t xn = ox + g.pw - kx * g.dw;
          if (xn < 0 || xn % g.sw != 0) continue;
          const int64_t ix = xn / g.sw;
          if (ix >= g.iw) continue;
          const int64_t tap = (kz * g.kh + ky) * g.kw + kx;
          const int64_t at = (iz * g.ih + iy) * g.iw + ix;
          float s = 0.0f;
          for (int64_t c = 0; c < cg; c++) s = fmaf(wg[c * mg * kvol + tap], xg[c * ivol + at], s);
          acc += s;
        }
      }
    }
    if (bias != nullptr && bias[m] != 0.0f) acc += bias[m];
    y[e] = acc;
  }
}

// ---- kernels as lowered ---------------------------------------------------------------------

struct Nothing : Kernel {
  bool run(Exec&) override { return true; }
};

/** Y[n][m] += B[m] (B may be absent), rectified where a Relu was folded in (the ref's addBias, then Relu). */
bool biasPass(Exec& x, const Geom& g, int32_t B, int32_t Y, bool rectify) {
  const int64_t ovol = g.od * g.oh * g.ow;
  const float* bp = B >= 0 ? x.at<const float>(B) : nullptr;
  float* yp = x.at<float>(Y);
  const int64_t planes = g.n * g.m;
  if (ovol % 4 == 0 && planes <= 65535) {
    const int64_t vol4 = ovol / 4;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((vol4 + kThreads - 1) / kThreads, 64)),
                    static_cast<unsigned>(planes));
    KILN_LAUNCH(addBiasPlaneKernel, grid, dim3(kThreads), 0, x.stream, bp, yp, g.m, vol4, rectify ? 1 : 0);
  } else {
    const int64_t total = planes * ovol;
    KILN_LAUNCH(addBiasKernel, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, bp, yp, g.m, ovol, total,
                rectify ? 1 : 0);
  }
  return launched(x, "Conv bias");
}

/** Y[n][...][m] += B[m], rectified where a Relu was folded in: the channels-last bias pass. */
__global__ void addBiasNhwcKernel(const float* bias, float* y, int64_t M, int64_t total, int rectify) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    float v = y[e];
    if (bias) {
      const float b = bias[e % M];
      if (b != 0.0f) v += b;
    }
    y[e] = rectify ? relu(v) : v;
  }
}

/**
 * addBiasNhwcKernel four channels a thread (M a multiple of 4), in 32-bit indices (fewer than 2^31
 * groups of four: the channel is a 32-bit remainder, not a 64-bit one, on this memory-bound pass).
 */
__global__ void addBiasNhwc4Kernel(const float* bias, float* y, int32_t M4, int32_t total4, int rectify) {
  const int32_t stride = static_cast<int32_t>(gridDim.x * blockDim.x);
  float4* p = reinterpret_cast<float4*>(y);
  const float4* b4 = reinterpret_cast<const float4*>(bias);
  for (int32_t i = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x); i < total4; i += stride) {
    float4 v = p[i];
    if (bias) {
      const float4 b = b4[i % M4];
      if (b.x != 0.0f) v.x += b.x;
      if (b.y != 0.0f) v.y += b.y;
      if (b.z != 0.0f) v.z += b.z;
      if (b.w != 0.0f) v.w += b.w;
    }
    if (rectify) v = make_float4(relu(v.x), relu(v.y), relu(v.z), relu(v.w));
    p[i] = v;
  }
}

/** A KCRS filter (output channel, input channel, taps) laid out KRSC (output channel, taps, input channel). */
__global__ void filterKrscKernel(const float* w, float* out, int64_t C, int64_t taps, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t c = e % C;
    const int64_t t = (e / C) % taps;
    const int64_t m = e / (C * taps);
    out[e] = w[(m * C + c) * taps + t];
  }
}

/** The channels-last bias pass: Y's channels innermost. */
bool biasPassNhwc(Exec& x, const Geom& g, int32_t B, int32_t Y, bool rectify) {
  const int64_t total = g.n * g.m * g.od * g.oh * g.ow;
  const float* bp = B >= 0 ? x.at<const float>(B) : nullptr;
  float* yp = x.at<float>(Y);
  if (g.m % 4 == 0 && total / 4 < (int64_t(1) << 30)) {
    KILN_LAUNCH(addBiasNhwc4Kernel, gridFor(total / 4, kThreads), dim3(kThreads), 0, x.stream, bp, yp,
                static_cast<int32_t>(g.m / 4), static_cast<int32_t>(total / 4), rectify ? 1 : 0);
  } else {
    KILN_LAUNCH(addBiasNhwcKernel, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, bp, yp, g.m, total,
                rectify ? 1 : 0);
  }
  return launched(x, "Conv bias (channels-last)");
}

struct ConvKernel;

/** Lays a channels-last Conv's filter out KRSC in the program's block (the prepare step; ConvKernel::krsc). */
struct FilterRelayout : Kernel {
  ConvKernel* conv = nullptr;
  bool run(Exec& x) override;
  void place(char* p) override;
};

/**
 * A forward Conv: kiln's own kernels (runOwn), or the vendor DNN library once attached (cuDNN:
 * the convolution there, then kiln's bias pass, rectifying where a Relu was folded in).
 */
struct ConvKernel : Kernel {
  ConvKernel() { dnn = true; }
  Geom g{};
  int32_t X = -1, W = -1, B = -1, Y = -1;
  bool rectify = false;  // a Relu folded in: Y is the Relu's output (lowerConvRelu)
  /** a residual added before the Relu (lowerConvResidual; the DNN library's fused call only) */
  int32_t Z = -1;
  DnnConvShape shape{};
  std::unique_ptr<DnnConv> plan;

  virtual bool runOwn(Exec& x) = 0;

  bool dnnGraph() const override { return plan && plan->graphApi; }

  int layoutKind() const override {
    return plan && plan->graphApi && !plan->fused && Z < 0 && g.group == 1 ? L_CONV : L_NONE;
  }
  int32_t layoutOutput() const override { return Y; }

  bool setChannelsLast(Dnn* d, bool tf32, bool xIn, bool yOut, std::string& why) override {
    if (layoutKind() != L_CONV || d == nullptr) {
      why = "not a graph-API convolution";
      return false;
    }
    DnnConvShape s = shape;
    s.xNhwc = xIn;
    s.yNhwc = yOut;
    std::unique_ptr<DnnConv> p = d->plan(s, tf32, why);
    if (!p) return false;
    shape = s;
    plan = std::move(p);
    workspace = static_cast<int64_t>(plan->workspaceBytes);
    return true;
  }

  std::unique_ptr<Kernel> relayout(int32_t& reads, uint64_t& bytes) override {
    reads = -1;
    bytes = 0;
    if (!shape.channelsLast()) return nullptr;
    auto k = std::make_unique<FilterRelayout>();
    k->conv = this;
    k->node = node;
    k->label = "Conv filter to KRSC";
    reads = W;
    bytes = static_cast<uint64_t>(g.m * g.c * g.kd * g.kh * g.kw) * sizeof(float);
    return k;
  }

  /** The KRSC filter a channels-last Conv reads, in the program's block (FilterRelayout::place). */
  const float* krsc = nullptr;

  bool attachDnn(Dnn& d, bool tf32, std::string& why) override {
    if (plan) return true;  // attached when it was lowered (a residual fold)
    // the library's fused call takes a bias: a Conv without one but with an epilogue gets zeros (a
    // table, uploaded once); a bare Conv runs the plain call
    shape.bias = B >= 0 || rectify || Z >= 0;
    shape.relu = rectify;
    plan = d.plan(shape, tf32, why);
    if (!plan) return false;
    workspace = static_cast<int64_t>(plan->workspaceBytes);
    blas = false;
    if (plan->fused && B < 0) table.assign(static_cast<size_t>(g.m) * sizeof(float), 0);
    return true;
  }

  bool run(Exec& x) override {
    if (!plan) return runOwn(x);
    if (x.dnn == nullptr) return x.err->fail(KILN_E_KERNEL, "a Conv planned on the DNN library ran without it");
    const float* xp = x.at<const float>(X);
    const float* wp = shape.channelsLast() ? krsc : x.at<const float>(W);
    float* yp = x.at<float>(Y);
    if (plan->fused) {
      const float* bias = B >= 0 ? x.at<const float>(B) : reinterpret_cast<const float*>(tableDevice);
      return x.dnn->forwardFused(*plan, xp, wp, bias, x.at<const float>(Z), yp, x.workspace, *x.err);
    }
    if (!x.dnn->forward(*plan, xp, wp, yp, x.workspace, *x.err)) return false;
    if (!(B >= 0 || rectify)) return true;
    return shape.yNhwc ? biasPassNhwc(x, g, B, Y, rectify) : biasPass(x, g, B, Y, rectify);
  }
};

bool FilterRelayout::run(Exec& x) {
  const Geom& g = conv->g;
  const int64_t taps = g.kd * g.kh * g.kw;
  const int64_t total = g.m * g.c * taps;
  KILN_LAUNCH(filterKrscKernel, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, x.at<const float>(conv->W),
              const_cast<float*>(conv->krsc), g.c, taps, total);
  return launched(x, "Conv filter to KRSC");
}

void FilterRelayout::place(char* p) { conv->krsc = reinterpret_cast<const float*>(p); }

/** Conv through im2col (or X in place) and kiln_gemm. */
struct ConvGemm : ConvKernel {
  ConvGemm() { blas = true; }
  bool direct = false;  // 1x1 stride 1 unpadded: X is the column matrix
  int64_t chunk = 1;    // images per im2col pass
  bool runOwn(Exec& x) override {
    const int64_t ovol = g.od * g.oh * g.ow;
    const int64_t kvol = g.kd * g.kh * g.kw;
    const int64_t cg = g.c / g.group, mg = g.m / g.group;
    const int64_t K = cg * kvol;
    const int64_t colImage = g.c * kvol * ovol;  // one image's columns (all groups)
    const float* xp = x.at<const float>(X);
    const float* wp = x.at<const float>(W);
    float* yp = x.at<float>(Y);
    float* col = reinterpret_cast<float*>(x.workspace);
    for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
      const int64_t images = std::min(chunk, g.n - n0);
      const float* src = xp + n0 * colImage;
      if (!direct) {
        const int64_t total = images * colImage;
        KILN_LAUNCH(im2colKernel, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, g, xp, col, n0, total);
        if (!launched(x, "Conv im2col")) return false;
        src = col;
      }
      float* yn = yp + n0 * g.m * ovol;
      if (g.group == 1) {
        if (!kiln_gemm(x, false, false, g.m, ovol, K, 1.0f, wp, K, 0, src, ovol, colImage, 0.0f, yn, ovol, g.m * ovol,
                       images)) {
          return false;
        }
      } else {
        for (int64_t i = 0; i < images; i++) {
          if (!kiln_gemm(x, false, false, mg, ovol, K, 1.0f, wp, K, mg * K, src + i * colImage, ovol, K * ovol, 0.0f,
                         yn + i * g.m * ovol, ovol, mg * ovol, g.group)) {
            return false;
          }
        }
      }
    }
    return B >= 0 || rectify ? biasPass(x, g, B, Y, rectify) : true;
  }
};

struct ConvDirect : ConvKernel {
  bool biasFirst = false;
  int64_t total = 0;
  bool runOwn(Exec& x) override {
    KILN_LAUNCH(convDirectKernel, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, g, x.at<const float>(X),
                x.at<const float>(W), x.at<const float>(B), x.at<float>(Y), biasFirst ? 1 : 0, total);
    return launched(x, "Conv direct");
  }
};

struct ConvTransposeDirect : Kernel {
  Geom g{};
  int32_t X = -1, W = -1, B = -1, Y = -1;
  int64_t total = 0;
  bool run(Exec& x) override {
    KILN_LAUNCH(convTransposeKernel, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, g, x.at<const float>(X),
                x.at<const float>(W), x.at<const float>(B), x.at<float>(Y), total);
    return launched(x, "ConvTranspose");
  }
};

// ---- lowering ---------------------------------------------------------------------------------

/** The convolution as the DNN library takes it (padding at the start of each dim: see Dnn::plan). */
DnnConvShape dnnShapeOf(const Geom& g, size_t spatial) {
  DnnConvShape s;
  s.spatial = static_cast<int>(spatial);
  s.n = g.n;
  s.c = g.c;
  s.m = g.m;
  s.group = g.group;
  const int64_t in[3] = {g.id, g.ih, g.iw}, k[3] = {g.kd, g.kh, g.kw}, o[3] = {g.od, g.oh, g.ow};
  const int64_t st[3] = {g.sd, g.sh, g.sw}, p[3] = {g.pd, g.ph, g.pw}, d[3] = {g.dd, g.dh, g.dw};
  for (int i = 0; i < 3; i++) {
    s.in[i] = in[i];
    s.kernel[i] = k[i];
    s.out[i] = o[i];
    s.stride[i] = st[i];
    s.pad[i] = p[i];
    s.dilation[i] = d[i];
  }
  return s;
}

/** Shared checks of X, W and B; false with why set for element types without a device kernel. */
bool convInputs(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(1)) return false;
  const SValue& x = v.in(0);
  const SValue& w = v.in(1);
  if (x.dtype != DT_FLOAT || w.dtype != DT_FLOAT || v.out(0).dtype != DT_FLOAT ||
      (v.has(2) && v.in(2).dtype != DT_FLOAT)) {
    why = v.n.op + " of " + dtypeName(x.dtype) + " (the device kernels are float32)";
    return false;
  }
  if (x.rank() < 3 || x.rank() > 5 || w.rank() != x.rank()) return false;
  return true;
}

/** Conv; with reluOut >= 0, the Conv and the Relu after it, writing the Relu's output (GEMM path only). */
std::unique_ptr<Kernel> lowerConvImpl(const NodeView& v, int32_t reluOut, std::string& why) {
  if (!convInputs(v, why)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& w = v.in(1);
  const SValue& o = v.out(0);
  const int64_t group = v.attrInt("group", 1);
  const int64_t N = x.dims[0], C = x.dims[1], M = w.dims[0];
  if (group < 1 || C % group != 0 || M % group != 0 || w.dims[1] * group != C) return nullptr;
  if (v.has(2) && (v.in(2).rank() != 1 || v.in(2).dims[0] != M)) return nullptr;
  const std::vector<int64_t> inn(x.dims.begin() + 2, x.dims.end());
  const std::vector<int64_t> kern(w.dims.begin() + 2, w.dims.end());
  Plan p;
  if (!planForward(v, inn, kern, p)) {
    why = "Conv geometry the device plan does not accept";
    return nullptr;
  }
  std::vector<int64_t> want{N, M};
  want.insert(want.end(), p.out.begin(), p.out.end());
  if (want != o.dims) {
    why = "Conv output dims differ from the compiled ones";
    return nullptr;
  }
  if (o.elements() == 0) return reluOut >= 0 ? nullptr : std::make_unique<Nothing>();
  const Geom g = geomOf(p, N, C, M, group, inn);
  const int64_t cg = C / group, mg = M / group;
  const int64_t kvol = g.kd * g.kh * g.kw;
  const int64_t ivol = g.id * g.ih * g.iw, ovol = g.od * g.oh * g.ow;
  // depthwise and narrow groups: the direct kernel; group 1 and wide groups: the GEMM
  if (group > 1 && (cg == 1 || mg < 16 || cg * kvol < 16)) {
    if (reluOut >= 0) {
      why = "the direct Conv kernel takes no Relu";
      return nullptr;
    }
    auto k = std::make_unique<ConvDirect>();
    k->g = g;
    k->X = v.inId(0);
    k->W = v.inId(1);
    k->B = v.inId(2);
    k->Y = v.outId(0);
    k->biasFirst = cg == 1 && mg == 1;  // the ref's depthwise kernel
    k->total = o.elements();
    k->shape = dnnShapeOf(g, inn.size());
    return k;
  }
  auto k = std::make_unique<ConvGemm>();
  k->g = g;
  k->X = v.inId(0);
  k->W = v.inId(1);
  k->B = v.inId(2);
  k->Y = reluOut >= 0 ? reluOut : v.outId(0);
  k->rectify = reluOut >= 0;
  k->shape = dnnShapeOf(g, inn.size());
  k->direct = kvol == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 && g.pd == 0 && g.ph == 0 && g.pw == 0 && ivol == ovol;
  if (!k->direct) {
    const int64_t perImage = C * kvol * ovol * 4;
    k->chunk = std::max<int64_t>(1, std::min<int64_t>(N, kIm2colBytes / std::max<int64_t>(perImage, 1)));
    k->workspace = k->chunk * perImage;
  } else {
    k->chunk = N;
  }
  return k;
}

std::unique_ptr<Kernel> lowerConv(const NodeView& v, std::string& why) { return lowerConvImpl(v, -1, why); }

std::unique_ptr<Kernel> lowerConvTranspose(const NodeView& v, std::string& why) {
  if (!convInputs(v, why)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& w = v.in(1);
  const SValue& o = v.out(0);
  const int64_t group = v.attrInt("group", 1);
  const int64_t N = x.dims[0], C = x.dims[1];
  if (group < 1 || C % group != 0 || w.dims[0] != C) return nullptr;
  const int64_t M = w.dims[1] * group;
  if (v.has(2) && (v.in(2).rank() != 1 || v.in(2).dims[0] != M)) return nullptr;
  const std::vector<int64_t> inn(x.dims.begin() + 2, x.dims.end());
  const std::vector<int64_t> kern(w.dims.begin() + 2, w.dims.end());
  Plan p;
  if (!planTransposed(v, inn, kern, p)) {
    why = "ConvTranspose geometry the device plan does not accept";
    return nullptr;
  }
  std::vector<int64_t> want{N, M};
  want.insert(want.end(), p.out.begin(), p.out.end());
  if (want != o.dims) {
    why = "ConvTranspose output dims differ from the compiled ones";
    return nullptr;
  }
  if (o.elements() == 0) return std::make_unique<Nothing>();
  auto k = std::make_unique<ConvTransposeDirect>();
  k->g = geomOf(p, N, C, M, group, inn);
  k->X = v.inId(0);
  k->W = v.inId(1);
  k->B = v.inId(2);
  k->Y = v.outId(0);
  k->total = o.elements();
  return k;
}

}  // namespace

std::unique_ptr<Kernel> lowerConvRelu(const NodeView& conv, int32_t reluOut, std::string& why) {
  return lowerConvImpl(conv, reluOut, why);
}

std::unique_ptr<Kernel> lowerConvResidual(const NodeView& conv, int32_t residual, int32_t reluOut, Dnn& dnn, bool tf32,
                                          std::string& why) {
  std::unique_ptr<Kernel> k = lowerConvImpl(conv, reluOut, why);
  auto* c = dynamic_cast<ConvKernel*>(k.get());
  if (c == nullptr) return nullptr;
  c->Z = residual;
  if (!c->attachDnn(dnn, tf32, why)) return nullptr;
  if (!c->plan->fused) {
    why = "the DNN library does not fuse this Conv's epilogue";
    return nullptr;
  }
  return k;
}

void registerConv() {
  registerLowering("Conv", lowerConv);
  registerLowering("ConvTranspose", lowerConvTranspose);
}

}  // namespace kiln
