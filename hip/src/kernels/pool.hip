// MaxPool, AveragePool, LpPool and their Global forms. The semantics follow the ref target
// (wasm/ops/conv.ts PoolOp/GlobalPoolOp, wasm/kernels/pool.ts): the geometry (kernel_shape,
// strides, dilations, pads, auto_pad, ceil_mode) is resolved on the host as planForward does,
// spatial dims right-aligned into (d, h, w); every element type is computed in float32
// (float16/bfloat16/float64/int8/uint8 loaded to float and stored back as the ref's F32Out does).
// A window with no in-range tap gives the lowest float for MaxPool (index: the plane's first
// element) and 0 for AveragePool. MaxPool without Indices, dilation or a 3rd spatial dim follows
// the ref's separable path (a column's max over the window rows first, then the max over the
// columns), which differs from the general one only on NaN and -inf.
#include <algorithm>
#include <cmath>

#include "device.h"

#if defined(__clang__) && defined(__HIP__)
#pragma clang fp contract(off)
#endif

namespace kiln {
namespace {

constexpr int kThreads = 256;
constexpr float kLowest = -3.4028234663852886e38f;

// float ops without FMA contraction (the ref's sums round every step)
KILN_HD float fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
KILN_HD float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

/**
 * powf as the ref's (musl's powf computes in double and rounds once): through the double pow,
 * since the device's own powf may differ from it in the last bit.
 */
KILN_HD float powF(float a, float b) { return static_cast<float>(pow(static_cast<double>(a), static_cast<double>(b))); }

/** float -> int64 as wasm's saturating truncation (NaN -> 0). */
KILN_HD int64_t satI64(float v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0f) return INT64_MAX;
  if (v <= -9223372036854775808.0f) return INT64_MIN;
  return static_cast<int64_t>(v);
}

/** Element access by ONNX type: loads to float, stores from float (as the ref's F32View/F32Out). */
template <int DT>
struct El;
template <>
struct El<DT_FLOAT> {
  static KILN_HD float load(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
  static KILN_HD void store(void* p, int64_t i, float v) { static_cast<float*>(p)[i] = v; }
};
template <>
struct El<DT_DOUBLE> {
  static KILN_HD float load(const void* p, int64_t i) { return static_cast<float>(static_cast<const double*>(p)[i]); }
  static KILN_HD void store(void* p, int64_t i, float v) { static_cast<double*>(p)[i] = v; }
};
template <>
struct El<DT_FLOAT16> {
  static KILN_HD float load(const void* p, int64_t i) { return f16ToF32(static_cast<const uint16_t*>(p)[i]); }
  static KILN_HD void store(void* p, int64_t i, float v) { static_cast<uint16_t*>(p)[i] = f32ToF16(v); }
};
template <>
struct El<DT_BFLOAT16> {
  static KILN_HD float load(const void* p, int64_t i) { return bf16ToF32(static_cast<const uint16_t*>(p)[i]); }
  static KILN_HD void store(void* p, int64_t i, float v) { static_cast<uint16_t*>(p)[i] = f32ToBf16(v); }
};
template <>
struct El<DT_INT8> {
  static KILN_HD float load(const void* p, int64_t i) { return static_cast<const int8_t*>(p)[i]; }
  static KILN_HD void store(void* p, int64_t i, float v) {
    static_cast<int8_t*>(p)[i] = static_cast<int8_t>(static_cast<uint8_t>(satI64(v) & 0xff));
  }
};
template <>
struct El<DT_UINT8> {
  static KILN_HD float load(const void* p, int64_t i) { return static_cast<const uint8_t*>(p)[i]; }
  static KILN_HD void store(void* p, int64_t i, float v) { static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(satI64(v) & 0xff); }
};

enum : int { P_MAX = 0, P_AVG = 1, P_LP = 2 };

/** The geometry of one pool, spatial dims right-aligned into (d, h, w) as the ref's ConvGeom. */
struct PoolParams {
  int64_t planes;
  int32_t id, ih, iw, od, oh, ow;
  int32_t kd, kh, kw, sd, sh, sw, dd, dh, dw;
  int32_t pd, ph, pw, ed, eh, ew;  // begin and end pads
  int mode;
  bool countIncludePad;
  bool separable;  // MaxPool's separable path (no indices, no dilation, one depth)
  int storageOrder;
  float p;
};

/** First k with 0 <= start + k*dil (k in [0, kn)). */
KILN_HD int32_t firstTap(int32_t start, int32_t dil, int32_t kn) {
  if (start >= 0) return 0;
  const int32_t k = (-start + dil - 1) / dil;
  return k < kn ? k : kn;
}

/** One past the last k with start + k*dil < len. */
KILN_HD int32_t endTap(int32_t start, int32_t dil, int32_t kn, int32_t len) {
  if (start >= len) return 0;
  const int32_t k = (len - start + dil - 1) / dil;
  return k < kn ? k : kn;
}

/** Taps of a window within [-pb, len + pe) (count_include_pad's divisor along one dim). */
KILN_HD int32_t paddedTaps(int32_t start, int32_t dil, int32_t kn, int32_t len, int32_t pb, int32_t pe) {
  const int32_t a = firstTap(start + pb, dil, kn);
  const int32_t b = endTap(start + pb, dil, kn, len + pb + pe);
  return b > a ? b - a : 0;
}

template <int DT>
__global__ void poolKernel(PoolParams g, const void* x, void* y, int64_t* ind, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t ihw = static_cast<int64_t>(g.ih) * g.iw;
  const int64_t ivol = ihw * g.id;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t q = i;
    const int32_t ox = static_cast<int32_t>(q % g.ow);
    q /= g.ow;
    const int32_t oy = static_cast<int32_t>(q % g.oh);
    q /= g.oh;
    const int32_t oz = static_cast<int32_t>(q % g.od);
    const int64_t pl = q / g.od;
    const int64_t xp = pl * ivol;
    const int32_t zs = oz * g.sd - g.pd, ys = oy * g.sh - g.ph, xs = ox * g.sw - g.pw;
    const int32_t z0 = firstTap(zs, g.dd, g.kd), z1 = endTap(zs, g.dd, g.kd, g.id);
    const int32_t y0 = firstTap(ys, g.dh, g.kh), y1 = endTap(ys, g.dh, g.kh, g.ih);
    const int32_t x0 = firstTap(xs, g.dw, g.kw), x1 = endTap(xs, g.dw, g.kw, g.iw);
    float r;
    if (g.mode == P_MAX && g.separable) {
      // the ref's maxPool2d: per column the max over the window rows (pmax), then the columns
      float best = kLowest;
      if (y1 > y0) {
        for (int32_t kx = x0; kx < x1; kx++) {
          const int64_t col = xp + xs + kx;
          float c = El<DT>::load(x, col + static_cast<int64_t>(ys + y0) * g.iw);
          for (int32_t ky = y0 + 1; ky < y1; ky++) {
            const float v = El<DT>::load(x, col + static_cast<int64_t>(ys + ky) * g.iw);
            c = c < v ? v : c;
          }
          if (c > best) best = c;
        }
      }
      r = best;
    } else if (g.mode == P_MAX) {
      float best = kLowest;
      int64_t bi = -1;
      for (int32_t kz = z0; kz < z1; kz++) {
        const int32_t iz = zs + kz * g.dd;
        for (int32_t ky = y0; ky < y1; ky++) {
          const int32_t iy = ys + ky * g.dh;
          const int64_t row = static_cast<int64_t>(iz) * ihw + static_cast<int64_t>(iy) * g.iw;
          for (int32_t kx = x0; kx < x1; kx++) {
            const int64_t e = row + xs + kx * g.dw;
            const float v = El<DT>::load(x, xp + e);
            if (v > best || bi < 0) {
              best = v;
              bi = e;
            }
          }
        }
      }
      r = best;
      if (ind) {
        int64_t flat = bi < 0 ? 0 : bi;
        if (g.storageOrder != 0 && bi >= 0) {
          const int64_t iz = bi / ihw;
          const int64_t iy = (bi % ihw) / g.iw;
          const int64_t ix = bi % g.iw;
          flat = iz + iy * g.id + ix * static_cast<int64_t>(g.id) * g.ih;
        }
        ind[i] = pl * ivol + flat;
      }
    } else {
      float s = 0;
      for (int32_t kz = z0; kz < z1; kz++) {
        const int32_t iz = zs + kz * g.dd;
        for (int32_t ky = y0; ky < y1; ky++) {
          const int64_t row = xp + static_cast<int64_t>(iz) * ihw + static_cast<int64_t>(ys + ky * g.dh) * g.iw + xs;
          for (int32_t kx = x0; kx < x1; kx++) {
            const float v = El<DT>::load(x, row + static_cast<int64_t>(kx) * g.dw);
            if (g.mode == P_AVG) {
              s = fadd(s, v);
            } else {
              const float a = fabsf(v);
              s = fadd(s, g.p == 2.0f ? fmul(a, a) : (g.p == 1.0f ? a : powF(a, g.p)));
            }
          }
        }
      }
      if (g.mode == P_AVG) {
        int64_t cnt;
        if (g.countIncludePad) {
          cnt = static_cast<int64_t>(paddedTaps(zs, g.dd, g.kd, g.id, g.pd, g.ed)) *
                paddedTaps(ys, g.dh, g.kh, g.ih, g.ph, g.eh) * paddedTaps(xs, g.dw, g.kw, g.iw, g.pw, g.ew);
        } else {
          cnt = static_cast<int64_t>(z1 - z0) * (y1 - y0) * (x1 - x0);
        }
        r = cnt > 0 ? s / static_cast<float>(cnt) : 0.0f;
      } else {
        r = g.p == 2.0f ? sqrtf(s) : (g.p == 1.0f ? s : powF(s, 1.0f / g.p));
      }
    }
    El<DT>::store(y, i, r);
  }
}

/** The final value of a global pool from its accumulated s (mode 0 average, 1 max, 2 Lp). */
KILN_HD float globalResult(float s, int mode, float p, int64_t vol) {
  if (mode == 0) return vol > 0 ? s / static_cast<float>(vol) : 0.0f;
  if (mode == 1) return s;
  return p == 2.0f ? sqrtf(s) : powF(s, 1.0f / p);
}

/**
 * One thread per plane, in the ref's order (globalPool: the average sums four lanes, element i
 * into lane i % 4, then adds the lanes and the tail), so results are bit for bit the ref's.
 * Used for small planes.
 */
template <int DT>
__global__ void globalPoolSeqKernel(const void* x, void* y, int64_t planes, int64_t vol, int mode, float p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t pl = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pl < planes; pl += stride) {
    const int64_t base = pl * vol;
    float s;
    if (mode == 0) {
      float l0 = 0, l1 = 0, l2 = 0, l3 = 0;
      const int64_t v4 = vol & ~int64_t(3);
      int64_t i = 0;
      for (; i < v4; i += 4) {
        l0 = fadd(l0, El<DT>::load(x, base + i));
        l1 = fadd(l1, El<DT>::load(x, base + i + 1));
        l2 = fadd(l2, El<DT>::load(x, base + i + 2));
        l3 = fadd(l3, El<DT>::load(x, base + i + 3));
      }
      s = fadd(fadd(fadd(l0, l1), l2), l3);
      for (; i < vol; i++) s = fadd(s, El<DT>::load(x, base + i));
    } else if (mode == 1) {
      s = kLowest;
      for (int64_t i = 0; i < vol; i++) {
        const float v = El<DT>::load(x, base + i);
        if (v > s) s = v;
      }
    } else {
      s = 0;
      for (int64_t i = 0; i < vol; i++) {
        const float a = fabsf(El<DT>::load(x, base + i));
        s = fadd(s, p == 2.0f ? fmul(a, a) : powF(a, p));
      }
    }
    El<DT>::store(y, pl, globalResult(s, mode, p, vol));
  }
}

/**
 * One block per plane (grid-stride over planes), a tree reduction: for large planes, where the
 * sums round in another order than the ref's (float32, a few ulps).
 */
template <int DT>
__global__ void globalPoolKernel(const void* x, void* y, int64_t planes, int64_t vol, int mode, float p) {
  __shared__ float red[kThreads];
  const int t = static_cast<int>(threadIdx.x);
  const int nt = static_cast<int>(blockDim.x);
  for (int64_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
    const int64_t base = pl * vol;
    float acc = mode == 1 ? kLowest : 0.0f;
    for (int64_t i = t; i < vol; i += nt) {
      const float v = El<DT>::load(x, base + i);
      if (mode == 0) {
        acc = fadd(acc, v);
      } else if (mode == 1) {
        if (v > acc) acc = v;
      } else {
        const float a = fabsf(v);
        acc = fadd(acc, p == 2.0f ? fmul(a, a) : powF(a, p));
      }
    }
    red[t] = acc;
    __syncthreads();
    for (int s = nt / 2; s > 0; s >>= 1) {
      if (t < s) {
        const float o = red[t + s];
        if (mode == 1) {
          if (o > red[t]) red[t] = o;
        } else {
          red[t] = fadd(red[t], o);
        }
      }
      __syncthreads();
    }
    if (t == 0) El<DT>::store(y, pl, globalResult(red[0], mode, p, vol));
    __syncthreads();
  }
}

/**
 * The separable MaxPool on channels-last float32 data (planes = images, C channels innermost):
 * the same taps in the same order as poolKernel's separable path, so the same result bit for bit.
 */
__global__ void maxPoolNhwcKernel(PoolParams g, int64_t C, const float* x, float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t c = i % C;
    int64_t q = i / C;
    const int32_t ox = static_cast<int32_t>(q % g.ow);
    q /= g.ow;
    const int32_t oy = static_cast<int32_t>(q % g.oh);
    const int64_t img = q / g.oh;
    const int32_t ys = oy * g.sh - g.ph, xs = ox * g.sw - g.pw;
    const int32_t y0 = firstTap(ys, g.dh, g.kh), y1 = endTap(ys, g.dh, g.kh, g.ih);
    const int32_t x0 = firstTap(xs, g.dw, g.kw), x1 = endTap(xs, g.dw, g.kw, g.iw);
    const float* base = x + img * static_cast<int64_t>(g.ih) * g.iw * C + c;
    float best = kLowest;
    if (y1 > y0) {
      for (int32_t kx = x0; kx < x1; kx++) {
        const int64_t col = xs + kx;
        float v0 = base[(static_cast<int64_t>(ys + y0) * g.iw + col) * C];
        for (int32_t ky = y0 + 1; ky < y1; ky++) {
          const float v = base[(static_cast<int64_t>(ys + ky) * g.iw + col) * C];
          v0 = v0 < v ? v : v0;
        }
        if (v0 > best) best = v0;
      }
    }
    y[i] = best;
  }
}

struct PoolKernel : Kernel {
  PoolParams g{};
  int dt;
  int32_t in, out, indices = -1;
  int64_t n;
  int64_t channels = 0;  // set when switched to channels-last
  int layoutKind() const override {
    return dt == DT_FLOAT && g.mode == P_MAX && g.separable && indices < 0 ? L_POOL : L_NONE;
  }
  bool setChannelsLast(Dnn*, bool, bool xIn, bool yOut, std::string& why) override {
    if (layoutKind() != L_POOL || !xIn || !yOut) {
      why = "channels-last pooling reads and writes channels-last";
      return false;
    }
    channels = c;
    return true;
  }
  int64_t c = 0;  // the input's channels (dim 1)
  int32_t layoutOutput() const override { return out; }
  bool run(Exec& x) override {
    if (n == 0) return true;
    if (channels > 0) {
      KILN_LAUNCH(maxPoolNhwcKernel, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, g, channels,
                  x.at<const float>(in), x.at<float>(out), n);
      return launched(x, "pool (channels-last)");
    }
    const dim3 grid = gridFor(n, kThreads);
    const void* xp = x.ptr(in);
    void* yp = x.ptr(out);
    int64_t* ip = x.at<int64_t>(indices);
    switch (dt) {
      case DT_FLOAT: KILN_LAUNCH(poolKernel<DT_FLOAT>, grid, dim3(kThreads), 0, x.stream, g, xp, yp, ip, n); break;
      case DT_DOUBLE: KILN_LAUNCH(poolKernel<DT_DOUBLE>, grid, dim3(kThreads), 0, x.stream, g, xp, yp, ip, n); break;
      case DT_FLOAT16: KILN_LAUNCH(poolKernel<DT_FLOAT16>, grid, dim3(kThreads), 0, x.stream, g, xp, yp, ip, n); break;
      case DT_BFLOAT16: KILN_LAUNCH(poolKernel<DT_BFLOAT16>, grid, dim3(kThreads), 0, x.stream, g, xp, yp, ip, n); break;
      case DT_INT8: KILN_LAUNCH(poolKernel<DT_INT8>, grid, dim3(kThreads), 0, x.stream, g, xp, yp, ip, n); break;
      default: KILN_LAUNCH(poolKernel<DT_UINT8>, grid, dim3(kThreads), 0, x.stream, g, xp, yp, ip, n); break;
    }
    return launched(x, "pool");
  }
};

/** Planes up to this many elements are pooled one thread per plane, in the ref's order. */
constexpr int64_t kSeqVol = 1024;
constexpr int kSeqThreads = 64;  // small blocks: planes spread over more multiprocessors

/**
 * GlobalAveragePool / GlobalMaxPool of channels-last float32 data: one thread per (image, channel),
 * summing in globalPoolSeqKernel's order (four running sums over the plane), so the same result bit
 * for bit; neighbouring threads read neighbouring channels.
 */
__global__ void globalPoolNhwcKernel(const float* x, float* y, int64_t planes, int64_t C, int64_t vol, int mode) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t pl = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pl < planes; pl += stride) {
    const int64_t c = pl % C;
    const float* base = x + (pl / C) * vol * C + c;
    float s;
    if (mode == 0) {
      float l0 = 0, l1 = 0, l2 = 0, l3 = 0;
      const int64_t v4 = vol & ~int64_t(3);
      int64_t i = 0;
      for (; i < v4; i += 4) {
        l0 = fadd(l0, base[i * C]);
        l1 = fadd(l1, base[(i + 1) * C]);
        l2 = fadd(l2, base[(i + 2) * C]);
        l3 = fadd(l3, base[(i + 3) * C]);
      }
      s = fadd(fadd(fadd(l0, l1), l2), l3);
      for (; i < vol; i++) s = fadd(s, base[i * C]);
    } else {
      s = kLowest;
      for (int64_t i = 0; i < vol; i++) {
        const float v = base[i * C];
        if (v > s) s = v;
      }
    }
    y[pl] = globalResult(s, mode, 0.0f, vol);
  }
}

struct GlobalPoolKernel : Kernel {
  int dt, mode, threads;
  float p;
  int32_t in, out;
  int64_t planes, vol;
  int64_t c = 0;         // the input's channels (dim 1)
  bool nhwc = false;     // switched to channels-last
  int32_t layoutOutput() const override { return out; }
  int layoutKind() const override { return dt == DT_FLOAT && mode <= 1 && vol <= kSeqVol ? L_GLOBAL_POOL : L_NONE; }
  bool setChannelsLast(Dnn*, bool, bool xIn, bool yOut, std::string& why) override {
    if (layoutKind() != L_GLOBAL_POOL || !xIn || yOut) {
      why = "a channels-last global pool reads channels-last and writes N x C";
      return false;
    }
    nhwc = true;
    return true;
  }
  bool run(Exec& x) override {
    if (planes == 0) return true;
    if (nhwc) {
      KILN_LAUNCH(globalPoolNhwcKernel, gridFor(planes, kThreads), dim3(kThreads), 0, x.stream,
                  x.at<const float>(in), x.at<float>(out), planes, c, vol, mode);
      return launched(x, "global pool (channels-last)");
    }
    const void* xp = x.ptr(in);
    void* yp = x.ptr(out);
    if (vol <= kSeqVol) {
      const dim3 grid = gridFor(planes, kSeqThreads), block(kSeqThreads);
      switch (dt) {
        case DT_FLOAT: KILN_LAUNCH(globalPoolSeqKernel<DT_FLOAT>, grid, block, 0, x.stream, xp, yp, planes, vol, mode, p); break;
        case DT_DOUBLE: KILN_LAUNCH(globalPoolSeqKernel<DT_DOUBLE>, grid, block, 0, x.stream, xp, yp, planes, vol, mode, p); break;
        case DT_FLOAT16: KILN_LAUNCH(globalPoolSeqKernel<DT_FLOAT16>, grid, block, 0, x.stream, xp, yp, planes, vol, mode, p); break;
        default: KILN_LAUNCH(globalPoolSeqKernel<DT_BFLOAT16>, grid, block, 0, x.stream, xp, yp, planes, vol, mode, p); break;
      }
      return launched(x, "global pool");
    }
    const dim3 grid = gridFor(planes * threads, threads);
    switch (dt) {
      case DT_FLOAT: KILN_LAUNCH(globalPoolKernel<DT_FLOAT>, grid, dim3(threads), 0, x.stream, xp, yp, planes, vol, mode, p); break;
      case DT_DOUBLE: KILN_LAUNCH(globalPoolKernel<DT_DOUBLE>, grid, dim3(threads), 0, x.stream, xp, yp, planes, vol, mode, p); break;
      case DT_FLOAT16: KILN_LAUNCH(globalPoolKernel<DT_FLOAT16>, grid, dim3(threads), 0, x.stream, xp, yp, planes, vol, mode, p); break;
      default: KILN_LAUNCH(globalPoolKernel<DT_BFLOAT16>, grid, dim3(threads), 0, x.stream, xp, yp, planes, vol, mode, p); break;
    }
    return launched(x, "global pool");
  }
};

/** A geometry attribute of n values (default `def` when absent); false when malformed. */
bool geomInts(const NodeView& v, const char* name, size_t n, int64_t def, int64_t lo, std::vector<int64_t>& out) {
  constexpr int64_t kGeomMax = int64_t(1) << 24;
  if (!v.hasAttr(name)) {
    out.assign(n, def);
    return true;
  }
  out = v.attrInts(name);
  if (out.size() != n) return false;
  for (int64_t x : out) {
    if (x < lo || x > kGeomMax) return false;
  }
  return true;
}

std::unique_ptr<Kernel> lowerPool(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  const std::string& op = v.n.op;
  const int mode = op == "MaxPool" ? P_MAX : op == "AveragePool" ? P_AVG : P_LP;
  const bool typed = floatType(x.dtype) || (mode == P_MAX && (x.dtype == DT_INT8 || x.dtype == DT_UINT8));
  if (!typed) {
    why = std::string(op) + " on " + dtypeName(x.dtype);
    return nullptr;
  }
  if (x.rank() < 3 || x.rank() > 5) {
    why = "pooling with other than 1 to 3 spatial dims";
    return nullptr;
  }
  const size_t r = static_cast<size_t>(x.rank() - 2);
  std::vector<int64_t> k, s, d, pads;
  if (!geomInts(v, "kernel_shape", r, 0, 1, k) || !v.hasAttr("kernel_shape") || !geomInts(v, "strides", r, 1, 1, s) ||
      !geomInts(v, "dilations", r, 1, 1, d)) {
    why = "malformed pooling geometry";
    return nullptr;
  }
  if (v.hasAttr("pads")) {
    pads = v.attrInts("pads");
    if (pads.size() != 2 * r) {
      why = "malformed pads";
      return nullptr;
    }
  }
  const std::string autoPad = v.attrString("auto_pad", "NOTSET");
  const bool ceil = v.attrInt("ceil_mode", 0) != 0;
  // planForward (wasm/ops/conv.ts)
  std::vector<int64_t> pb(r, 0), pe(r, 0), o(r, 0);
  for (size_t i = 0; i < r; i++) {
    const int64_t n = x.dims[i + 2];
    const int64_t keff = (k[i] - 1) * d[i] + 1;
    if (keff > (int64_t(1) << 24)) {
      why = "dilated kernel too large";
      return nullptr;
    }
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      o[i] = (n + s[i] - 1) / s[i];
      int64_t total = (o[i] - 1) * s[i] + keff - n;
      if (total < 0) total = 0;
      if (autoPad == "SAME_UPPER") {
        pb[i] = total / 2;
        pe[i] = total - pb[i];
      } else {
        pe[i] = total / 2;
        pb[i] = total - pe[i];
      }
    } else if (autoPad == "VALID") {
      o[i] = n >= keff ? (n - keff) / s[i] + 1 : 0;
    } else if (autoPad == "NOTSET" || autoPad.empty()) {
      if (!pads.empty()) {
        pb[i] = pads[i];
        pe[i] = pads[i + r];
      }
      const int64_t span = n + pb[i] + pe[i] - keff;
      if (span < 0) {
        why = "kernel larger than the padded input";
        return nullptr;
      }
      o[i] = ceil ? (span + s[i] - 1) / s[i] + 1 : span / s[i] + 1;
      if (ceil && (o[i] - 1) * s[i] >= n + pb[i]) o[i]--;
    } else {
      why = "auto_pad '" + autoPad + "'";
      return nullptr;
    }
  }
  const SValue& y = v.out(0);
  std::vector<int64_t> want = {x.dims[0], x.dims[1]};
  want.insert(want.end(), o.begin(), o.end());
  if (want != y.dims) {
    why = "pool output dims differ from the compiled ones";
    return nullptr;
  }
  for (int64_t dim : y.dims) {
    if (dim > INT32_MAX) {
      why = "pool dims past int32";
      return nullptr;
    }
  }
  auto kern = std::make_unique<PoolKernel>();
  PoolParams& g = kern->g;
  int64_t I[3] = {1, 1, 1}, K[3] = {1, 1, 1}, O[3] = {1, 1, 1}, S[3] = {1, 1, 1}, D[3] = {1, 1, 1};
  int64_t PB[3] = {0, 0, 0}, PE[3] = {0, 0, 0};
  for (size_t i = 0; i < r; i++) {
    const size_t j = 3 - r + i;
    I[j] = x.dims[i + 2];
    K[j] = k[i];
    O[j] = o[i];
    S[j] = s[i];
    D[j] = d[i];
    PB[j] = pb[i];
    PE[j] = pe[i];
  }
  g.planes = x.dims[0] * x.dims[1];
  g.id = static_cast<int32_t>(I[0]);
  g.ih = static_cast<int32_t>(I[1]);
  g.iw = static_cast<int32_t>(I[2]);
  g.od = static_cast<int32_t>(O[0]);
  g.oh = static_cast<int32_t>(O[1]);
  g.ow = static_cast<int32_t>(O[2]);
  g.kd = static_cast<int32_t>(K[0]);
  g.kh = static_cast<int32_t>(K[1]);
  g.kw = static_cast<int32_t>(K[2]);
  g.sd = static_cast<int32_t>(S[0]);
  g.sh = static_cast<int32_t>(S[1]);
  g.sw = static_cast<int32_t>(S[2]);
  g.dd = static_cast<int32_t>(D[0]);
  g.dh = static_cast<int32_t>(D[1]);
  g.dw = static_cast<int32_t>(D[2]);
  g.pd = static_cast<int32_t>(PB[0]);
  g.ph = static_cast<int32_t>(PB[1]);
  g.pw = static_cast<int32_t>(PB[2]);
  g.ed = static_cast<int32_t>(PE[0]);
  g.eh = static_cast<int32_t>(PE[1]);
  g.ew = static_cast<int32_t>(PE[2]);
  g.mode = mode;
  g.countIncludePad = v.attrInt("count_include_pad", 0) != 0;
  g.storageOrder = static_cast<int>(v.attrInt("storage_order", 0));
  g.p = static_cast<float>(v.attrInt("p", 2));
  const bool hasIndices = mode == P_MAX && v.outputCount() > 1 && v.outId(1) >= 0;
  // the ref's maxPool2d path; for a 3-D pool with one output depth the ref's path reads
  // planes of ih*iw elements (a ref bug when id > 1), so it is taken only when id == 1
  g.separable = mode == P_MAX && !hasIndices && g.kd == 1 && g.od == 1 && g.dh == 1 && g.dw == 1 && g.id == 1;
  kern->dt = x.dtype;
  kern->in = v.inId(0);
  kern->out = v.outId(0);
  kern->indices = hasIndices ? v.outId(1) : -1;
  kern->n = y.elements();
  kern->c = x.dims[1];
  return kern;
}

std::unique_ptr<Kernel> lowerGlobalPool(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const SValue& x = v.in(0);
  if (!floatType(x.dtype)) {
    why = v.n.op + " on " + dtypeName(x.dtype);
    return nullptr;
  }
  if (x.rank() < 2) return nullptr;
  const std::string& op = v.n.op;
  auto k = std::make_unique<GlobalPoolKernel>();
  k->dt = x.dtype;
  k->mode = op == "GlobalAveragePool" ? 0 : op == "GlobalMaxPool" ? 1 : 2;
  k->p = static_cast<float>(v.attrInt("p", 2));
  k->in = v.inId(0);
  k->out = v.outId(0);
  k->planes = x.dims[0] * x.dims[1];
  k->c = x.dims[1];
  k->vol = k->planes > 0 ? x.elements() / k->planes : 0;
  int t = 32;
  while (t < kThreads && t < k->vol) t *= 2;
  k->threads = t;
  return k;
}

}  // namespace

void registerPool() {
  registerLowering("MaxPool", lowerPool);
  registerLowering("AveragePool", lowerPool);
  registerLowering("LpPool", lowerPool);
  registerLowering("GlobalAveragePool", lowerGlobalPool);
  registerLowering("GlobalMaxPool", lowerGlobalPool);
  registerLowering("GlobalLpPool", lowerGlobalPool);
}

}  // namespace kiln
