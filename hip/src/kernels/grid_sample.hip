// GridSample (4-D) and AffineGrid. The semantics follow the ref target
// (wasm/ops/data/grid_sample.ts): coordinates and samples in f64 as resample.h computes it (every
// operation rounded, no FMA contraction), stored in the input's float element type.
#include <cmath>

#include "device.h"
#include "resample.h"

#if defined(__clang__) && defined(__HIP__)
#pragma clang fp contract(off)
#endif

namespace kiln {
namespace {

constexpr int kThreads = 256;

// ---- GridSample ------------------------------------------------------------------------

enum : int { GS_LINEAR = 0, GS_NEAREST = 1, GS_CUBIC = 2 };
enum : int { PAD_ZEROS = 0, PAD_BORDER = 1, PAD_REFLECTION = 2 };

/** Reflects x by the near border until it lies in [lo, hi]. */
KILN_HD double reflectCoord(double x, double lo, double hi) {
  const double range = dsub(hi, lo);
  if (x < lo) {
    const double d = dsub(lo, x);
    const int64_t n = satI64(floor(d / range));
    const double r = dsub(d, dmul(static_cast<double>(n), range));
    return n % 2 == 0 ? dadd(lo, r) : dsub(hi, r);
  }
  if (x > hi) {
    const double d = dsub(x, hi);
    const int64_t n = satI64(floor(d / range));
    const double r = dsub(d, dmul(static_cast<double>(n), range));
    return n % 2 == 0 ? dsub(hi, r) : dadd(lo, r);
  }
  return x;
}

struct GridParams {
  int mode, pad;
  bool align;
  int xdt, gdt;
  int64_t C, h, w, ho, wo;
  double xmin, xmax, ymin, ymax;
};

KILN_HD double gridAt(const GridParams& g, const void* x, int64_t plane, int64_t r, int64_t c) {
  if (g.pad == PAD_ZEROS) {
    if (c < 0 || c >= g.w || r < 0 || r >= g.h) return 0;
  } else if (g.pad == PAD_BORDER) {
    c = c < 0 ? 0 : c >= g.w ? g.w - 1 : c;
    r = r < 0 ? 0 : r >= g.h ? g.h - 1 : r;
  } else {
    c = satI64(reflectCoord(static_cast<double>(c), g.xmin, g.xmax));
    r = satI64(reflectCoord(static_cast<double>(r), g.ymin, g.ymax));
    c = c < 0 ? 0 : c >= g.w ? g.w - 1 : c;
    r = r < 0 ? 0 : r >= g.h ? g.h - 1 : r;
  }
  return loadF(x, plane + r * g.w + c, g.xdt);
}

KILN_HD void cubicCoeffs(double t, double* k) {
  const double a = -0.75;
  const double x = fabs(t);
  const double x1 = dadd(x, 1), x2 = dsub(1, x), x3 = dsub(2, x);
  // ((a * u - 5a) * u + 8a) * u - 4a, and ((a + 2) * u - (a + 3)) * u * u + 1
  k[0] = dsub(dmul(dadd(dmul(dsub(dmul(a, x1), 5 * a), x1), 8 * a), x1), 4 * a);
  k[1] = dadd(dmul(dmul(dsub(dmul(a + 2, x), a + 3), x), x), 1);
  k[2] = dadd(dmul(dmul(dsub(dmul(a + 2, x2), a + 3), x2), x2), 1);
  k[3] = dsub(dmul(dadd(dmul(dsub(dmul(a, x3), 5 * a), x3), 8 * a), x3), 4 * a);
}

__global__ void gridSampleKernel(GridParams g, const void* x, const void* grid, void* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t oplane = g.ho * g.wo;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t p = i % oplane;
    const int64_t nc = i / oplane;
    const int64_t b = nc / g.C;
    const int64_t plane = nc * g.h * g.w;
    const int64_t gp = (b * oplane + p) * 2;
    const double nx = loadF(grid, gp, g.gdt), ny = loadF(grid, gp + 1, g.gdt);
    const double W = static_cast<double>(g.w), H = static_cast<double>(g.h);
    double fx = g.align ? dmul(dadd(nx, 1) / 2, W - 1) : dsub(dmul(dadd(nx, 1), W), 1) / 2;
    double fy = g.align ? dmul(dadd(ny, 1) / 2, H - 1) : dsub(dmul(dadd(ny, 1), H), 1) / 2;
    if (g.mode == GS_NEAREST) {
      fx = rint(fx);
      fy = rint(fy);
    }
    if (fx < g.xmin || fx > g.xmax || fy < g.ymin || fy > g.ymax) {
      if (g.pad == PAD_BORDER && g.mode != GS_CUBIC) {
        fx = nanMin(nanMax(fx, 0.0), W - 1);
        fy = nanMin(nanMax(fy, 0.0), H - 1);
      } else if (g.pad == PAD_REFLECTION) {
        fx = reflectCoord(fx, g.xmin, g.xmax);
        fy = reflectCoord(fy, g.ymin, g.ymax);
      }
    }
    double val;
    if (g.mode == GS_NEAREST) {
      val = gridAt(g, x, plane, satI64(fy), satI64(fx));
    } else if (g.mode == GS_LINEAR) {
      const int64_t x1 = satI64(floor(fx)), y1 = satI64(floor(fy));
      const int64_t x2 = x1 + 1, y2 = y1 + 1;
      const double dx2 = dsub(static_cast<double>(x2), fx), dx1 = dsub(fx, static_cast<double>(x1));
      const double dy2 = dsub(static_cast<double>(y2), fy), dy1 = dsub(fy, static_cast<double>(y1));
      const double top = dadd(dmul(dx2, gridAt(g, x, plane, y1, x1)), dmul(dx1, gridAt(g, x, plane, y1, x2)));
      const double bot = dadd(dmul(dx2, gridAt(g, x, plane, y2, x1)), dmul(dx1, gridAt(g, x, plane, y2, x2)));
      val = dadd(dmul(dy2, top), dmul(dy1, bot));
    } else {
      const int64_t x0 = satI64(floor(fx)) - 1, y0 = satI64(floor(fy)) - 1;
      double k[4], rows[4];
      cubicCoeffs(dsub(dsub(fx, static_cast<double>(x0)), 1), k);
      for (int j = 0; j < 4; j++) {
        double s = dmul(k[0], gridAt(g, x, plane, y0 + j, x0));
        s = dadd(s, dmul(k[1], gridAt(g, x, plane, y0 + j, x0 + 1)));
        s = dadd(s, dmul(k[2], gridAt(g, x, plane, y0 + j, x0 + 2)));
        rows[j] = dadd(s, dmul(k[3], gridAt(g, x, plane, y0 + j, x0 + 3)));
      }
      cubicCoeffs(dsub(dsub(fy, static_cast<double>(y0)), 1), k);
      val = dmul(k[0], rows[0]);
      val = dadd(val, dmul(k[1], rows[1]));
      val = dadd(val, dmul(k[2], rows[2]));
      val = dadd(val, dmul(k[3], rows[3]));
    }
    storeF(y, i, g.xdt, val);
  }
}

struct GridSampleKernel : Kernel {
  GridParams g{};
  int32_t x = -1, grid = -1, y = -1;
  int64_t n = 0;
  bool run(Exec& e) override {
    if (n == 0) return true;
    KILN_LAUNCH(gridSampleKernel, gridFor(n, kThreads), dim3(kThreads), 0, e.stream, g, e.ptr(x), e.ptr(grid), e.ptr(y), n);
    return launched(e, "GridSample");
  }
};

std::unique_ptr<Kernel> lowerGridSample(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(1)) return nullptr;
  const SValue& x = v.in(0);
  const SValue& grid = v.in(1);
  if (!floatType(x.dtype) || !floatType(grid.dtype)) {
    why = std::string("GridSample on ") + dtypeName(x.dtype);
    return nullptr;
  }
  if (x.rank() != 4 || grid.rank() != 4 || grid.dims[0] != x.dims[0] || grid.dims[3] != 2) {
    why = "GridSample other than 4-D";
    return nullptr;
  }
  const std::string mode = v.attrString("mode", v.s.opset >= 20 ? "linear" : "bilinear");
  const std::string pad = v.attrString("padding_mode", "zeros");
  auto k = std::make_unique<GridSampleKernel>();
  GridParams& g = k->g;
  if (mode == "bilinear" || mode == "linear") g.mode = GS_LINEAR;
  else if (mode == "nearest") g.mode = GS_NEAREST;
  else if (mode == "bicubic" || mode == "cubic") g.mode = GS_CUBIC;
  else {
    why = "GridSample mode '" + mode + "'";
    return nullptr;
  }
  if (pad == "zeros") g.pad = PAD_ZEROS;
  else if (pad == "border") g.pad = PAD_BORDER;
  else if (pad == "reflection") g.pad = PAD_REFLECTION;
  else {
    why = "GridSample padding_mode '" + pad + "'";
    return nullptr;
  }
  g.align = v.attrInt("align_corners", 0) != 0;
  g.xdt = x.dtype;
  g.gdt = grid.dtype;
  g.C = x.dims[1];
  g.h = x.dims[2];
  g.w = x.dims[3];
  g.ho = grid.dims[1];
  g.wo = grid.dims[2];
  g.xmin = g.align ? 0 : -0.5;
  g.xmax = g.align ? static_cast<double>(g.w - 1) : static_cast<double>(g.w) - 0.5;
  g.ymin = g.align ? 0 : -0.5;
  g.ymax = g.align ? static_cast<double>(g.h - 1) : static_cast<double>(g.h) - 0.5;
  const SValue& y = v.out(0);
  if (y.dtype != x.dtype || y.dims != std::vector<int64_t>{x.dims[0], x.dims[1], g.ho, g.wo}) {
    why = "GridSample output differs from the compiled one";
    return nullptr;
  }
  k->x = v.inId(0);
  k->grid = v.inId(1);
  k->y = v.outId(0);
  k->n = y.elements();
  return k;
}

// ---- AffineGrid ------------------------------------------------------------------------

struct AffineParams {
  int r;  // spatial rank, 2 or 3
  int dt;
  bool align;
  int64_t sz[3];  // spatial sizes, innermost (x) first
  int64_t count;  // output points per batch
};

__global__ void affineGridKernel(AffineParams a, const void* theta, void* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t j = i % a.r;
    const int64_t pt = i / a.r;
    const int64_t p = pt % a.count;
    const int64_t b = pt / a.count;
    double base[4];
    int64_t rem = p;
    for (int d = 0; d < a.r; d++) {
      const int64_t len = a.sz[d];
      const int64_t k = rem % len;
      rem /= len;
      double c;
      if (a.align) c = len == 1 ? -1.0 : dadd(-1.0, 2 * static_cast<double>(k) / static_cast<double>(len - 1));
      else c = dadd(-1.0, (2 * static_cast<double>(k) + 1) / static_cast<double>(len));
      base[d] = c;
    }
    base[a.r] = 1;
    const int64_t tp = b * a.r * (a.r + 1) + j * (a.r + 1);
    double acc = 0;
    for (int d = 0; d <= a.r; d++) acc = dadd(acc, dmul(loadF(theta, tp + d, a.dt), base[d]));
    storeF(out, i, a.dt, acc);
  }
}

struct AffineGridKernel : Kernel {
  AffineParams a{};
  int32_t theta = -1, out = -1;
  int64_t n = 0;
  bool run(Exec& x) override {
    if (n == 0) return true;
    KILN_LAUNCH(affineGridKernel, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, a, x.ptr(theta), x.ptr(out), n);
    return launched(x, "AffineGrid");
  }
};

std::unique_ptr<Kernel> lowerAffineGrid(const NodeView& v, std::string& why) {
  if (!v.has(0)) return nullptr;
  const SValue& th = v.in(0);
  const SValue& o = v.out(0);
  if (!floatType(th.dtype) || o.dtype != th.dtype) {
    why = std::string("AffineGrid on ") + dtypeName(th.dtype);
    return nullptr;
  }
  const int r = o.rank() - 2;
  if ((r != 2 && r != 3) || o.dims.back() != r || th.rank() != 3 || th.dims[0] != o.dims[0] || th.dims[1] != r ||
      th.dims[2] != r + 1) {
    why = "AffineGrid shapes";
    return nullptr;
  }
  auto k = std::make_unique<AffineGridKernel>();
  k->a.r = r;
  k->a.dt = th.dtype;
  k->a.align = v.attrInt("align_corners", 0) != 0;
  k->a.count = 1;
  for (int i = 0; i < r; i++) {
    k->a.sz[i] = o.dims[static_cast<size_t>(r - i)];
    k->a.count *= k->a.sz[i];
  }
  k->theta = v.inId(0);
  k->out = v.outId(0);
  k->n = o.elements();
  return k;
}

}  // namespace

void registerGridSample() {
  registerLowering("GridSample", lowerGridSample);
  registerLowering("AffineGrid", lowerAffineGrid);
}

}  // namespace kiln
