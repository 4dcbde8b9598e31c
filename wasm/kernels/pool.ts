// Pooling kernels (float32, planes of up to 3 spatial dims; geometry in ConvGeom with
// n*c planes). Direct loops over the output: each output walks only the in-range taps
// (ranges clipped per dim), global pools reduce whole planes with f32x4.
import { ConvGeom } from "./conv";

const F32_LOWEST: f32 = -3.4028234663852886e38;

/** First k with 0 <= start + k*dil (k in [0, kn)). */
// @ts-ignore: decorator
@inline
function firstTap(start: i32, dil: i32, kn: i32): i32 {
  if (start >= 0) return 0;
  const k = (-start + dil - 1) / dil;
  return k < kn ? k : kn;
}

/** One past the last k with start + k*dil < len. */
// @ts-ignore: decorator
@inline
function endTap(start: i32, dil: i32, kn: i32, len: i32): i32 {
  if (start >= len) return 0;
  const k = (len - start + dil - 1) / dil;
  return k < kn ? k : kn;
}

/**
 * MaxPool over g.n * g.c planes. `ind` (0 for none) receives int64 flat indices into x,
 * row-major (storageOrder 0) or column-major over the spatial dims (1). Windows with no
 * in-range tap give the lowest float (as onnxruntime does).
 */
export function maxPool(g: ConvGeom, x: usize, y: usize, ind: usize, storageOrder: i32): void {
  if (ind == 0 && g.id == 1 && g.kd == 1 && g.od == 1 && g.dh == 1 && g.dw == 1) {
    maxPool2d(g, x, y);
    return;
  }
  const planes = g.n * g.c;
  const ivol = g.ivol();
  const ihw = g.ih * g.iw;
  let out: usize = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xp = x + ((<usize>pl * <usize>ivol) << 2);
    for (let oz = 0; oz < g.od; oz++) {
      const zs = oz * g.sd - g.pd;
      const z0 = firstTap(zs, g.dd, g.kd);
      const z1 = endTap(zs, g.dd, g.kd, g.id);
      for (let oy = 0; oy < g.oh; oy++) {
        const ys = oy * g.sh - g.ph;
        const y0 = firstTap(ys, g.dh, g.kh);
        const y1 = endTap(ys, g.dh, g.kh, g.ih);
        for (let ox = 0; ox < g.ow; ox++) {
          const xs = ox * g.sw - g.pw;
          const x0 = firstTap(xs, g.dw, g.kw);
          const x1 = endTap(xs, g.dw, g.kw, g.iw);
          let best: f32 = F32_LOWEST;
          let bi: i32 = -1;
          for (let kz = z0; kz < z1; kz++) {
            const iz = zs + kz * g.dd;
            for (let ky = y0; ky < y1; ky++) {
              const iy = ys + ky * g.dh;
              const row = iz * ihw + iy * g.iw;
              for (let kx = x0; kx < x1; kx++) {
                const e = row + xs + kx * g.dw;
                const v = load<f32>(xp + (<usize>e << 2));
                if (v > best || bi < 0) {
                  best = v;
                  bi = e;
                }
              }
            }
          }
          store<f32>(y + (out << 2), best);
          if (ind != 0) {
            let flat: i64 = bi < 0 ? 0 : <i64>bi;
            if (storageOrder != 0 && bi >= 0) {
              const iz = bi / ihw;
              const iy = (bi % ihw) / g.iw;
              const ix = bi % g.iw;
              flat = <i64>(iz + iy * g.id + ix * g.id * g.ih);
            }
            store<i64>(ind + (out << 3), <i64>pl * <i64>ivol + flat);
          }
          out++;
        }
      }
    }
  }
}

let rowBuf: usize = 0;
let rowCap: i32 = 0;

/**
 * 2-D (or 1-D) MaxPool without dilation or indices, separably: per output row, the f32x4 max
 * of the window's input rows into a row buffer, then the max over each output's columns.
 */
function maxPool2d(g: ConvGeom, x: usize, y: usize): void {
  const planes = g.n * g.c;
  const iw = g.iw;
  if (iw > rowCap) {
    if (rowBuf != 0) heap.free(rowBuf);
    rowBuf = heap.alloc(<usize>(iw + 4) << 2);
    rowCap = iw;
  }
  const row = rowBuf;
  const iw4 = iw & ~3;
  const ihw = g.ih * iw;
  let out = y;
  for (let pl = 0; pl < planes; pl++) {
    const xp = x + ((<usize>pl * <usize>ihw) << 2);
    for (let oy = 0; oy < g.oh; oy++) {
      const ys = oy * g.sh - g.ph;
      const y0 = firstTap(ys, 1, g.kh);
      const y1 = endTap(ys, 1, g.kh, g.ih);
      if (y1 <= y0) {
        for (let ox = 0; ox < g.ow; ox++) store<f32>(out + (<usize>ox << 2), F32_LOWEST);
        out += <usize>g.ow << 2;
        continue;
      }
      const r0 = xp + (<usize>((ys + y0) * iw) << 2);
      memory.copy(row, r0, <usize>iw << 2);
      for (let ky = y0 + 1; ky < y1; ky++) {
        const rk = xp + (<usize>((ys + ky) * iw) << 2);
        let i = 0;
        for (; i < iw4; i += 4) {
          const o = <usize>i << 2;
          v128.store(row + o, f32x4.pmax(v128.load(row + o), v128.load(rk + o)));
        }
        for (; i < iw; i++) {
          const o = <usize>i << 2;
          const v = load<f32>(rk + o);
          if (v > load<f32>(row + o)) store<f32>(row + o, v);
        }
      }
      for (let ox = 0; ox < g.ow; ox++) {
        const xs = ox * g.sw - g.pw;
        const x0 = firstTap(xs, 1, g.kw);
        const x1 = endTap(xs, 1, g.kw, iw);
        let best: f32 = F32_LOWEST;
        for (let kx = x0; kx < x1; kx++) {
          const v = load<f32>(row + (<usize>(xs + kx) << 2));
          if (v > best) best = v;
        }
        store<f32>(out + (<usize>ox << 2), best);
      }
      out += <usize>g.ow << 2;
    }
  }
}

/** Taps of a window within [-pb, len + pe) (count_include_pad's divisor along one dim). */
// @ts-ignore: decorator
@inline
function paddedTaps(start: i32, dil: i32, kn: i32, len: i32, pb: i32, pe: i32): i32 {
  const a = firstTap(start + pb, dil, kn);
  const b = endTap(start + pb, dil, kn, len + pb + pe);
  return b > a ? b - a : 0;
}

/**
 * AveragePool (mode 0) or LpPool (mode 1, exponent p) over g.n * g.c planes.
 * countIncludePad: divide by the taps inside the padded input instead of the valid taps.
 */
export function avgLpPool(g: ConvGeom, x: usize, y: usize, countIncludePad: bool, mode: i32, p: f32): void {
  const planes = g.n * g.c;
  const ivol = g.ivol();
  const ihw = g.ih * g.iw;
  let out: usize = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xp = x + ((<usize>pl * <usize>ivol) << 2);
    for (let oz = 0; oz < g.od; oz++) {
      const zs = oz * g.sd - g.pd;
      const z0 = firstTap(zs, g.dd, g.kd);
      const z1 = endTap(zs, g.dd, g.kd, g.id);
      const zp = paddedTaps(zs, g.dd, g.kd, g.id, g.pd, g.ed);
      for (let oy = 0; oy < g.oh; oy++) {
        const ys = oy * g.sh - g.ph;
        const y0 = firstTap(ys, g.dh, g.kh);
        const y1 = endTap(ys, g.dh, g.kh, g.ih);
        const yp = paddedTaps(ys, g.dh, g.kh, g.ih, g.ph, g.eh);
        for (let ox = 0; ox < g.ow; ox++) {
          const xs = ox * g.sw - g.pw;
          const x0 = firstTap(xs, g.dw, g.kw);
          const x1 = endTap(xs, g.dw, g.kw, g.iw);
          let s: f32 = 0;
          for (let kz = z0; kz < z1; kz++) {
            const iz = zs + kz * g.dd;
            for (let ky = y0; ky < y1; ky++) {
              const rowp = xp + (<usize>(iz * ihw + (ys + ky * g.dh) * g.iw + xs) << 2);
              if (mode == 0) {
                if (g.dw == 1) {
                  for (let kx = x0; kx < x1; kx++) s += load<f32>(rowp + (<usize>kx << 2));
                } else {
                  for (let kx = x0; kx < x1; kx++) s += load<f32>(rowp + (<usize>(kx * g.dw) << 2));
                }
              } else {
                for (let kx = x0; kx < x1; kx++) {
                  const v = Mathf.abs(load<f32>(rowp + (<usize>(kx * g.dw) << 2)));
                  s += p == 2 ? v * v : (p == 1 ? v : Mathf.pow(v, p));
                }
              }
            }
          }
          let r: f32;
          if (mode == 0) {
            const cnt = countIncludePad ? zp * yp * paddedTaps(xs, g.dw, g.kw, g.iw, g.pw, g.ew)
              : (z1 - z0) * (y1 - y0) * (x1 - x0);
            r = cnt > 0 ? s / <f32>cnt : 0;
          } else {
            r = p == 2 ? Mathf.sqrt(s) : (p == 1 ? s : Mathf.pow(s, 1 / p));
          }
          store<f32>(y + (out << 2), r);
          out++;
        }
      }
    }
  }
}

/** Global pools over `planes` planes of `vol` floats: mode 0 average, 1 max, 2 Lp (exponent p). */
export function globalPool(planes: i32, vol: i32, x: usize, y: usize, mode: i32, p: f32): void {
  const v4 = vol & ~3;
  for (let pl = 0; pl < planes; pl++) {
    const xp = x + ((<usize>pl * <usize>vol) << 2);
    let r: f32;
    if (mode == 0) {
      let acc = f32x4.splat(0);
      let i = 0;
      for (; i < v4; i += 4) acc = f32x4.add(acc, v128.load(xp + (<usize>i << 2)));
      let s: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) +
        f32x4.extract_lane(acc, 3);
      for (; i < vol; i++) s += load<f32>(xp + (<usize>i << 2));
      r = vol > 0 ? s / <f32>vol : 0;
    } else if (mode == 1) {
      let best: f32 = F32_LOWEST;
      for (let i = 0; i < vol; i++) {
        const v = load<f32>(xp + (<usize>i << 2));
        if (v > best) best = v;
      }
      r = best;
    } else {
      let s: f32 = 0;
      for (let i = 0; i < vol; i++) {
        const v = Mathf.abs(load<f32>(xp + (<usize>i << 2)));
        s += p == 2 ? v * v : Mathf.pow(v, p);
      }
      r = p == 2 ? Mathf.sqrt(s) : Mathf.pow(s, 1 / p);
    }
    store<f32>(y + (<usize>pl << 2), r);
  }
}
