// Convolution kernels (float32, NC + up to 3 spatial dims; 1-D and 2-D are 3-D with unit
// leading dims). Conv: im2col into a grow-only scratch + SGEMM per (image, group); a 1x1
// stride-1 unpadded conv is a direct GEMM on the input; depthwise convs (one input and one
// output channel per group) use a direct kernel. ConvTranspose: GEMM into columns, then
// col2im scatter-add.
import { sgemm } from "./gemm";
import { parallelFor, perTask, taskArgs, TASK_IM2COL, threadCount } from "./threads";

/** Geometry of a conv or pool, normalized to 3 spatial dims (d, h, w). */
export class ConvGeom {
  n: i32 = 1;
  /** Input channels. */
  c: i32 = 1;
  /** Output channels (feature maps). */
  m: i32 = 1;
  group: i32 = 1;
  id: i32 = 1; ih: i32 = 1; iw: i32 = 1;
  kd: i32 = 1; kh: i32 = 1; kw: i32 = 1;
  od: i32 = 1; oh: i32 = 1; ow: i32 = 1;
  sd: i32 = 1; sh: i32 = 1; sw: i32 = 1;
  /** Begin pads. */
  pd: i32 = 0; ph: i32 = 0; pw: i32 = 0;
  /** End pads (pools' count_include_pad and ceil_mode). */
  ed: i32 = 0; eh: i32 = 0; ew: i32 = 0;
  dd: i32 = 1; dh: i32 = 1; dw: i32 = 1;

  ivol(): i32 { return this.id * this.ih * this.iw; }
  ovol(): i32 { return this.od * this.oh * this.ow; }
  kvol(): i32 { return this.kd * this.kh * this.kw; }
}

let scratch: usize = 0;
let scratchCap: usize = 0;

/** A grow-only scratch buffer of at least `bytes` (16-byte aligned). */
export function convScratch(bytes: usize): usize {
  if (bytes > scratchCap) {
    if (scratch != 0) heap.free(scratch);
    scratch = heap.alloc(bytes + 16);
    scratchCap = bytes;
  }
  return (scratch + 15) & ~(<usize>15);
}

/** Bytes of a raw geometry record (geoWrite): id ih iw kd kh kw od oh ow sd sh sw pd ph pw dd dh dw. */
const GEO_BYTES: usize = 18 * 4;

/** Writes the fields im2col reads into a raw record at p (read by code that must not touch managed objects). */
function geoWrite(g: ConvGeom, p: usize): void {
  store<i32>(p, g.id); store<i32>(p, g.ih, 4); store<i32>(p, g.iw, 8);
  store<i32>(p, g.kd, 12); store<i32>(p, g.kh, 16); store<i32>(p, g.kw, 20);
  store<i32>(p, g.od, 24); store<i32>(p, g.oh, 28); store<i32>(p, g.ow, 32);
  store<i32>(p, g.sd, 36); store<i32>(p, g.sh, 40); store<i32>(p, g.sw, 44);
  store<i32>(p, g.pd, 48); store<i32>(p, g.ph, 52); store<i32>(p, g.pw, 56);
  store<i32>(p, g.dd, 60); store<i32>(p, g.dh, 64); store<i32>(p, g.dw, 68);
}

let geoBuf: usize = 0;

/**
 * im2col of one image's channel block [cg, id, ih, iw] at `x` into col[cg*kvol, ovol] at `col`.
 * Out-of-range taps write zeros.
 */
export function im2col(g: ConvGeom, cg: i32, x: usize, col: usize): void {
  if (geoBuf == 0) geoBuf = heap.alloc(GEO_BYTES);
  geoWrite(g, geoBuf);
  im2colRaw(geoBuf, cg, x, col);
}

/** im2col on a raw geometry record (geoWrite): no managed objects, safe on worker instances. */
function im2colRaw(geo: usize, cg: i32, x: usize, col: usize): void {
  const id = load<i32>(geo); const ih = load<i32>(geo, 4); const iw = load<i32>(geo, 8);
  const kd = load<i32>(geo, 12); const kh = load<i32>(geo, 16); const kw = load<i32>(geo, 20);
  const od = load<i32>(geo, 24); const oh = load<i32>(geo, 28); const ow = load<i32>(geo, 32);
  const sd = load<i32>(geo, 36); const sh = load<i32>(geo, 40); const sw = load<i32>(geo, 44);
  const pd = load<i32>(geo, 48); const ph = load<i32>(geo, 52); const pw = load<i32>(geo, 56);
  const dd = load<i32>(geo, 60); const dh = load<i32>(geo, 64); const dw = load<i32>(geo, 68);
  const ovol = od * oh * ow;
  const ohw = oh * ow;
  const ihw = ih * iw;
  let dst = col;
  for (let c = 0; c < cg; c++) {
    const xc = x + (<usize>(c * id * ihw) << 2);
    for (let kz = 0; kz < kd; kz++) {
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          let d = dst;
          for (let oz = 0; oz < od; oz++) {
            const iz = oz * sd - pd + kz * dd;
            if (iz < 0 || iz >= id) {
              memory.fill(d, 0, <usize>ohw << 2);
              d += <usize>ohw << 2;
              continue;
            }
            const xz = xc + (<usize>(iz * ihw) << 2);
            for (let oy = 0; oy < oh; oy++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= ih) {
                memory.fill(d, 0, <usize>ow << 2);
                d += <usize>ow << 2;
                continue;
              }
              const xrow = xz + (<usize>(iy * iw) << 2);
              const ix0 = kx * dw - pw;
              if (sw == 1) {
                // valid ox: 0 <= ox + ix0 < iw
                let lo = -ix0;
                if (lo < 0) lo = 0;
                if (lo > ow) lo = ow;
                let hi = iw - ix0;
                if (hi > ow) hi = ow;
                if (hi < lo) hi = lo;
                if (lo > 0) memory.fill(d, 0, <usize>lo << 2);
                if (hi > lo) memory.copy(d + (<usize>lo << 2), xrow + (<usize>(lo + ix0) << 2), <usize>(hi - lo) << 2);
                if (hi < ow) memory.fill(d + (<usize>hi << 2), 0, <usize>(ow - hi) << 2);
              } else {
                // valid ox: 0 <= ox*sw + ix0 < iw
                let lo = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
                if (lo > ow) lo = ow;
                let hi = iw - ix0 <= 0 ? 0 : (iw - ix0 + sw - 1) / sw;
                if (hi > ow) hi = ow;
                if (hi < lo) hi = lo;
                if (lo > 0) memory.fill(d, 0, <usize>lo << 2);
                let src = xrow + (<usize>(lo * sw + ix0) << 2);
                const step = <usize>sw << 2;
                for (let ox = lo; ox < hi; ox++) {
                  store<f32>(d + (<usize>ox << 2), load<f32>(src));
                  src += step;
                }
                if (hi < ow) memory.fill(d + (<usize>hi << 2), 0, <usize>(ow - hi) << 2);
              }
              d += <usize>ow << 2;
            }
          }
          dst += <usize>ovol << 2;
        }
      }
    }
  }
}

/** Below this many floats written, im2col runs on one thread. */
const PAR_MIN_COL: i32 = 1 << 16;

/** im2col, split by input channel over the threads when the columns are large. */
function im2colPar(g: ConvGeom, cg: i32, x: usize, col: usize): void {
  const nt = threadCount();
  const total = cg * g.kvol() * g.ovol();
  if (nt < 2 || cg < 2 || total < PAR_MIN_COL) {
    im2col(g, cg, x, col);
    return;
  }
  const per = perTask(cg, nt);
  const tasks = (cg + per - 1) / per;
  const a = taskArgs();
  geoWrite(g, a + 64);
  store<usize>(a, a + 64);
  store<i32>(a, cg, 4);
  store<usize>(a, x, 8);
  store<usize>(a, col, 12);
  store<i32>(a, per, 16);
  parallelFor(TASK_IM2COL, tasks);
}

/** One task of im2colPar: channels [t*per, (t+1)*per). Reads only linear memory (g's fields). */
export function im2colTask(a: usize, t: i32): void {
  const geo = load<usize>(a);
  const cg = load<i32>(a, 4);
  const per = load<i32>(a, 16);
  const c0 = t * per;
  const n = cg - c0 < per ? cg - c0 : per;
  const ivol = load<i32>(geo) * load<i32>(geo, 4) * load<i32>(geo, 8);
  const kvol = load<i32>(geo, 12) * load<i32>(geo, 16) * load<i32>(geo, 20);
  const ovol = load<i32>(geo, 24) * load<i32>(geo, 28) * load<i32>(geo, 32);
  const x = load<usize>(a, 8) + ((<usize>c0 * <usize>ivol) << 2);
  const col = load<usize>(a, 12) + ((<usize>c0 * <usize>(kvol * ovol)) << 2);
  im2colRaw(geo, n, x, col);
}

/** y[m][i] += bias[m] over M planes of `vol` floats. */
export function addBias(M: i32, vol: i32, bias: usize, y: usize): void {
  const v4 = vol & ~3;
  for (let m = 0; m < M; m++) {
    const b = load<f32>(bias + (<usize>m << 2));
    if (b == 0) continue;
    const vb = f32x4.splat(b);
    const row = y + (<usize>m * <usize>vol << 2);
    let i = 0;
    for (; i < v4; i += 4) {
      const p = row + (<usize>i << 2);
      v128.store(p, f32x4.add(v128.load(p), vb));
    }
    for (; i < vol; i++) {
      const p = row + (<usize>i << 2);
      store<f32>(p, load<f32>(p) + b);
    }
  }
}

/**
 * Conv forward: x [n, c, id, ih, iw], w [m, c/group, kd, kh, kw], bias [m] or 0,
 * y [n, m, od, oh, ow] (overwritten).
 */
export function convForward(g: ConvGeom, x: usize, w: usize, bias: usize, y: usize): void {
  const cg = g.c / g.group;
  const mg = g.m / g.group;
  const kvol = g.kvol();
  const K = cg * kvol;
  const ovol = g.ovol();
  const ivol = g.ivol();
  if (cg == 1 && mg == 1 && g.group > 1) {
    depthwise(g, x, w, bias, y);
    return;
  }
  const direct = kvol == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 && g.pd == 0 && g.ph == 0 && g.pw == 0 &&
    ivol == ovol;
  const col = direct ? 0 : convScratch(<usize>K * <usize>ovol << 2);
  for (let n = 0; n < g.n; n++) {
    for (let gi = 0; gi < g.group; gi++) {
      const xg = x + ((<usize>(n * g.c + gi * cg) * <usize>ivol) << 2);
      const wg = w + ((<usize>(gi * mg) * <usize>K) << 2);
      const yg = y + ((<usize>(n * g.m + gi * mg) * <usize>ovol) << 2);
      let b = xg;
      if (!direct) {
        im2colPar(g, cg, xg, col);
        b = col;
      }
      sgemm(false, false, mg, ovol, K, 1, wg, K, b, ovol, 0, yg, ovol);
    }
    if (bias != 0) addBias(g.m, ovol, bias, y + ((<usize>(n * g.m) * <usize>ovol) << 2));
  }
}

/** Depthwise conv: one input channel per group and one output channel per group. */
function depthwise(g: ConvGeom, x: usize, w: usize, bias: usize, y: usize): void {
  const ivol = g.ivol();
  const ovol = g.ovol();
  const kvol = g.kvol();
  const ihw = g.ih * g.iw;
  for (let n = 0; n < g.n; n++) {
    for (let c = 0; c < g.c; c++) {
      const xc = x + ((<usize>(n * g.c + c) * <usize>ivol) << 2);
      const yc = y + ((<usize>(n * g.c + c) * <usize>ovol) << 2);
      const wc = w + ((<usize>c * <usize>kvol) << 2);
      const b: f32 = bias != 0 ? load<f32>(bias + (<usize>c << 2)) : 0;
      // init with bias, then accumulate each tap over output rows
      for (let i = 0; i < ovol; i++) store<f32>(yc + (<usize>i << 2), b);
      for (let kz = 0; kz < g.kd; kz++) {
        for (let ky = 0; ky < g.kh; ky++) {
          for (let kx = 0; kx < g.kw; kx++) {
            const wv = load<f32>(wc + (<usize>((kz * g.kh + ky) * g.kw + kx) << 2));
            const vw = f32x4.splat(wv);
            const ix0 = kx * g.dw - g.pw;
            let lo = -ix0;
            if (lo < 0) lo = 0;
            if (g.sw > 1) lo = (lo + g.sw - 1) / g.sw;
            if (lo > g.ow) lo = g.ow;
            let hi = g.iw - ix0; // ox*sw + ix0 < iw  <=>  ox < ceil((iw - ix0)/sw)
            hi = hi <= 0 ? 0 : (hi + g.sw - 1) / g.sw;
            if (hi > g.ow) hi = g.ow;
            for (let oz = 0; oz < g.od; oz++) {
              const iz = oz * g.sd - g.pd + kz * g.dd;
              if (iz < 0 || iz >= g.id) continue;
              for (let oy = 0; oy < g.oh; oy++) {
                const iy = oy * g.sh - g.ph + ky * g.dh;
                if (iy < 0 || iy >= g.ih) continue;
                const xrow = xc + (<usize>(iz * ihw + iy * g.iw) << 2);
                const yrow = yc + (<usize>((oz * g.oh + oy) * g.ow) << 2);
                let ox = lo;
                if (g.sw == 1) {
                  for (; ox + 4 <= hi; ox += 4) {
                    const yp = yrow + (<usize>ox << 2);
                    v128.store(yp, f32x4.add(v128.load(yp), f32x4.mul(vw, v128.load(xrow + (<usize>(ox + ix0) << 2)))));
                  }
                }
                for (; ox < hi; ox++) {
                  const yp = yrow + (<usize>ox << 2);
                  store<f32>(yp, load<f32>(yp) + wv * load<f32>(xrow + (<usize>(ox * g.sw + ix0) << 2)));
                }
              }
            }
          }
        }
      }
    }
  }
}

/**
 * ConvTranspose: x [n, c, id, ih, iw] (the g.i* dims are the INPUT dims), w [c, m/group, kd, kh, kw],
 * bias [m] or 0, y [n, m, od, oh, ow] (overwritten). Pads are the begin pads of the output.
 */
export function convTransposeForward(g: ConvGeom, x: usize, w: usize, bias: usize, y: usize): void {
  const cg = g.c / g.group;
  const mg = g.m / g.group;
  const kvol = g.kvol();
  const ivol = g.ivol();
  const ovol = g.ovol();
  const rows = mg * kvol;
  const col = convScratch(<usize>rows * <usize>ivol << 2);
  memory.fill(y, 0, (<usize>g.n * <usize>g.m * <usize>ovol) << 2);
  const ihw = g.ih * g.iw;
  const ohw = g.oh * g.ow;
  for (let n = 0; n < g.n; n++) {
    for (let gi = 0; gi < g.group; gi++) {
      const xg = x + ((<usize>(n * g.c + gi * cg) * <usize>ivol) << 2);
      const wg = w + ((<usize>(gi * cg) * <usize>rows) << 2);
      const yg = y + ((<usize>(n * g.m + gi * mg) * <usize>ovol) << 2);
      // col[rows, ivol] = w_g^T [rows x cg] * x_g [cg x ivol]
      sgemm(true, false, rows, ivol, cg, 1, wg, rows, xg, ivol, 0, col, ivol);
      // col2im
      for (let m = 0; m < mg; m++) {
        const ym = yg + ((<usize>m * <usize>ovol) << 2);
        for (let kz = 0; kz < g.kd; kz++) {
          for (let ky = 0; ky < g.kh; ky++) {
            for (let kx = 0; kx < g.kw; kx++) {
              const r = ((m * g.kd + kz) * g.kh + ky) * g.kw + kx;
              const crow = col + ((<usize>r * <usize>ivol) << 2);
              for (let iz = 0; iz < g.id; iz++) {
                const oz = iz * g.sd - g.pd + kz * g.dd;
                if (oz < 0 || oz >= g.od) continue;
                for (let iy = 0; iy < g.ih; iy++) {
                  const oy = iy * g.sh - g.ph + ky * g.dh;
                  if (oy < 0 || oy >= g.oh) continue;
                  const src = crow + (<usize>(iz * ihw + iy * g.iw) << 2);
                  const dst = ym + (<usize>(oz * ohw + oy * g.ow) << 2);
                  const ox0 = kx * g.dw - g.pw;
                  for (let ix = 0; ix < g.iw; ix++) {
                    const ox = ix * g.sw + ox0;
                    if (ox < 0 || ox >= g.ow) continue;
                    const p = dst + (<usize>ox << 2);
                    store<f32>(p, load<f32>(p) + load<f32>(src + (<usize>ix << 2)));
                  }
                }
              }
            }
          }
        }
      }
    }
    if (bias != 0) addBias(g.m, ovol, bias, y + ((<usize>(n * g.m) * <usize>ovol) << 2));
  }
}
