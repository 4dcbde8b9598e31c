// Signal processing (opset 17+): DFT (opset 17 axis attribute, opset 20 axis input), STFT and
// MelWeightMatrix. Complex values are a trailing dim of 2 (real, imaginary); real input has a
// trailing dim of 1. A one-sided DFT takes real input and keeps bins 0..n/2; an inverse one-sided
// DFT takes those bins and gives the real signal (irfft), as onnxruntime and ONNX shape inference do. Transforms run in float64: a radix-2 FFT when the length is a power of two,
// a direct DFT for other short lengths, Bluestein's chirp-z (through radix-2 FFTs) for longer
// ones; each line along the axis is gathered into scratch arrays, transformed and scattered back.
import { DT_FLOAT, dtypeSize, isFloat, isSupported } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import { loadF64, storeF64 } from "../kernels/eltwise";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";

// ---------------------------------------------------------------- transform core

/**
 * The longest transform (2^22 samples): its tables and Bluestein's length-2^23 scratch take about
 * 450 MiB of the core's 4 GiB.
 */
const MAX_LENGTH: i32 = 1 << 22;

/** Lengths above this that are not powers of two use Bluestein's algorithm instead of a direct DFT. */
const BLUESTEIN_MIN: i32 = 64;

/**
 * A complex transform of one length and direction: X[k] = sum_j x[j] e^{-+2 pi i j k / n} (sign +
 * when inverse; no scaling). A radix-2 FFT for powers of two; for other lengths up to
 * BLUESTEIN_MIN a direct DFT over a twiddle table, above it Bluestein's chirp-z: the transform as a
 * circular convolution of length m (a power of two >= 2n - 1), done with radix-2 FFTs.
 */
class Transform {
  n: i32;
  inverse: bool;
  pow2: bool;
  chirp: bool;
  /** cos/sin of 2*pi*k/n, k < n (radix-2 and direct). */
  cosT: StaticArray<f64>;
  sinT: StaticArray<f64>;
  rev: StaticArray<i32>;
  /** direct DFT scratch */
  tr: StaticArray<f64>;
  ti: StaticArray<f64>;
  /** Bluestein: the chirp w[k] = e^{-+i pi k^2 / n}, the FFT of its conjugate (length m), scratch, the length-m FFT. */
  wr: StaticArray<f64>;
  wi: StaticArray<f64>;
  br: StaticArray<f64>;
  bi: StaticArray<f64>;
  ar: StaticArray<f64>;
  ai: StaticArray<f64>;
  inner: Transform | null = null;

  constructor(n: i32, inverse: bool) {
    this.n = n;
    this.inverse = inverse;
    const pow2 = n > 0 && (n & (n - 1)) == 0;
    const chirp = !pow2 && n > BLUESTEIN_MIN;
    this.pow2 = pow2;
    this.chirp = chirp;
    const tab = chirp ? 0 : n;
    const cosT = new StaticArray<f64>(tab);
    const sinT = new StaticArray<f64>(tab);
    for (let k = 0; k < tab; k++) {
      const a = 2.0 * Math.PI * <f64>k / <f64>n;
      unchecked(cosT[k] = Math.cos(a));
      unchecked(sinT[k] = Math.sin(a));
    }
    this.cosT = cosT;
    this.sinT = sinT;
    const rev = new StaticArray<i32>(pow2 ? n : 0);
    if (pow2) {
      let bits = 0;
      while ((1 << bits) < n) bits++;
      for (let i = 0; i < n; i++) {
        let r = 0;
        for (let b = 0; b < bits; b++) if ((i & (1 << b)) != 0) r |= 1 << (bits - 1 - b);
        unchecked(rev[i] = r);
      }
    }
    this.rev = rev;
    const direct = !pow2 && !chirp;
    this.tr = new StaticArray<f64>(direct ? n : 0);
    this.ti = new StaticArray<f64>(direct ? n : 0);
    let m = 0;
    if (chirp) {
      m = 1;
      while (m < 2 * n - 1) m <<= 1;
    }
    const wr = new StaticArray<f64>(chirp ? n : 0), wi = new StaticArray<f64>(chirp ? n : 0);
    const br = new StaticArray<f64>(m), bi = new StaticArray<f64>(m);
    if (chirp) {
      const sg: f64 = inverse ? 1.0 : -1.0;
      const twoN = <i64>n * 2;
      for (let k = 0; k < n; k++) {
        // k^2 mod 2n keeps the angle small, so the chirp stays exact for long signals
        const q = (<i64>k * <i64>k) % twoN;
        const a = Math.PI * <f64>q / <f64>n;
        unchecked(wr[k] = Math.cos(a));
        unchecked(wi[k] = sg * Math.sin(a));
      }
      unchecked(br[0] = wr[0]);
      unchecked(bi[0] = -wi[0]);
      for (let k = 1; k < n; k++) {
        unchecked(br[k] = wr[k]);
        unchecked(bi[k] = -wi[k]);
        unchecked(br[m - k] = wr[k]);
        unchecked(bi[m - k] = -wi[k]);
      }
    }
    this.wr = wr;
    this.wi = wi;
    this.br = br;
    this.bi = bi;
    this.ar = new StaticArray<f64>(m);
    this.ai = new StaticArray<f64>(m);
    if (chirp) {
      const f = new Transform(m, false);
      f.run(br, bi);
      this.inner = f;
    }
  }

  /** Transforms re/im (length n) in place. */
  run(re: StaticArray<f64>, im: StaticArray<f64>): void {
    const n = this.n;
    const sg: f64 = this.inverse ? 1.0 : -1.0;
    if (this.chirp) {
      const f = changetype<Transform>(this.inner);
      const ar = this.ar, ai = this.ai, m = ar.length;
      for (let k = 0; k < n; k++) {
        const xr = unchecked(re[k]), xi = unchecked(im[k]);
        const wr = unchecked(this.wr[k]), wi = unchecked(this.wi[k]);
        unchecked(ar[k] = xr * wr - xi * wi);
        unchecked(ai[k] = xr * wi + xi * wr);
      }
      for (let k = n; k < m; k++) {
        unchecked(ar[k] = 0.0);
        unchecked(ai[k] = 0.0);
      }
      f.run(ar, ai);
      // multiply by B, conjugate: the forward FFT of the conjugate is the conjugated inverse
      for (let k = 0; k < m; k++) {
        const xr = unchecked(ar[k]), xi = unchecked(ai[k]);
        const yr = unchecked(this.br[k]), yi = unchecked(this.bi[k]);
        unchecked(ar[k] = xr * yr - xi * yi);
        unchecked(ai[k] = -(xr * yi + xi * yr));
      }
      f.run(ar, ai);
      const inv = 1.0 / <f64>m;
      for (let k = 0; k < n; k++) {
        const cr = unchecked(ar[k]) * inv, ci = -unchecked(ai[k]) * inv;
        const wr = unchecked(this.wr[k]), wi = unchecked(this.wi[k]);
        unchecked(re[k] = cr * wr - ci * wi);
        unchecked(im[k] = cr * wi + ci * wr);
      }
      return;
    }
    if (this.pow2) {
      for (let i = 0; i < n; i++) {
        const j = unchecked(this.rev[i]);
        if (j > i) {
          const a = unchecked(re[i]);
          unchecked(re[i] = re[j]);
          unchecked(re[j] = a);
          const b = unchecked(im[i]);
          unchecked(im[i] = im[j]);
          unchecked(im[j] = b);
        }
      }
      for (let len = 2; len <= n; len <<= 1) {
        const half = len >> 1;
        const step = n / len;
        for (let s = 0; s < n; s += len) {
          for (let k = 0; k < half; k++) {
            const wr = unchecked(this.cosT[k * step]);
            const wi = sg * unchecked(this.sinT[k * step]);
            const p = s + k, q = p + half;
            const xr = unchecked(re[q]), xi = unchecked(im[q]);
            const vr = xr * wr - xi * wi;
            const vi = xr * wi + xi * wr;
            const ur = unchecked(re[p]), ui = unchecked(im[p]);
            unchecked(re[p] = ur + vr);
            unchecked(im[p] = ui + vi);
            unchecked(re[q] = ur - vr);
            unchecked(im[q] = ui - vi);
          }
        }
      }
      return;
    }
    const tr = this.tr, ti = this.ti;
    for (let k = 0; k < n; k++) {
      let sr: f64 = 0, si: f64 = 0;
      let idx = 0;
      for (let j = 0; j < n; j++) {
        const c = unchecked(this.cosT[idx]);
        const s = sg * unchecked(this.sinT[idx]);
        const xr = unchecked(re[j]), xi = unchecked(im[j]);
        sr += xr * c - xi * s;
        si += xr * s + xi * c;
        idx += k;
        if (idx >= n) idx -= n;
      }
      unchecked(tr[k] = sr);
      unchecked(ti[k] = si);
    }
    for (let k = 0; k < n; k++) {
      unchecked(re[k] = tr[k]);
      unchecked(im[k] = ti[k]);
    }
  }
}

/** One scalar integer from constant input i, or null (with a diagnostic) when absent or not constant. */
function scalarInt(ctx: ShapeContext, i: i32, what: string): Array<i64> | null {
  const c = ctx.constInts(i);
  if (c == null) {
    ctx.needConstant(i, what);
    return null;
  }
  if (c.length != 1) {
    ctx.fail(what + " (input " + i.toString() + ") must be a scalar, has " + c.length.toString() + " elements");
    return null;
  }
  return c;
}

// ---------------------------------------------------------------- DFT

/** The DFT's resolved geometry: axis (of the input), transform length, output length on the axis. */
class DftPlan {
  axis: i32 = 0;
  n: i32 = 0;
  nout: i32 = 0;
  /** last dim of the output: 2 (complex), or 1 for an inverse one-sided DFT (real output) */
  outC: i32 = 2;
}

/**
 * The DFT's axis: the attribute (opset 17-19, default 1) or input 2 (opset 20, default -2). Either
 * way it counts over the input's dims, trailing real/complex dim included, and must name a signal
 * dim: [-r, -2] or [0, r - 2] (as ONNX shape inference and onnxruntime check it).
 */
function dftAxis(ctx: ShapeContext, r: i32): i32 {
  let a: i64 = ctx.opset >= 20 ? -2 : ctx.attrs.getInt("axis", 1);
  if (ctx.opset >= 20 && ctx.hasInput(2)) {
    const c = scalarInt(ctx, 2, "axis");
    if (c == null) return -1;
    a = c[0];
  }
  const lo = -<i64>r;
  if (a < lo || a > <i64>(r - 2) || a == -1) {
    ctx.fail("axis " + a.toString() + " is out of range: it must name a signal dim, in [" + lo.toString() + ", -2] or [0, " +
      (r - 2).toString() + "]");
    return -1;
  }
  return <i32>(a < 0 ? a + <i64>r : a);
}

class DftOp extends Op {
  constructor() {
    super("DFT", OP_WRITES_ALL);
  }

  plan(ctx: ShapeContext): DftPlan | null {
    const x = ctx.input(0);
    const r = x.rank();
    if (r < 2) {
      ctx.fail("input must have rank 2 or more ([..., signal, 1 or 2]), is " + x.toString());
      return null;
    }
    const c = x.lens[r - 1];
    if (c != 1 && c != 2) {
      ctx.fail("the last dim must be 1 (real) or 2 (complex), is " + c.toString());
      return null;
    }
    const axis = dftAxis(ctx, r);
    if (axis < 0) return null;
    const onesided = ctx.attrs.getInt("onesided", 0);
    const inverse = ctx.attrs.getInt("inverse", 0);
    if ((onesided != 0 && onesided != 1) || (inverse != 0 && inverse != 1)) {
      ctx.fail("onesided and inverse must be 0 or 1, are " + onesided.toString() + " and " + inverse.toString());
      return null;
    }
    if (onesided != 0 && inverse == 0 && c == 2) {
      ctx.fail("a one-sided DFT needs real input (last dim 1); this input is complex");
      return null;
    }
    if (onesided != 0 && inverse != 0 && c == 1) {
      ctx.fail("an inverse one-sided DFT needs complex input (last dim 2), the one-sided spectrum; this input is real");
      return null;
    }
    const c2r = onesided != 0 && inverse != 0;
    const p = new DftPlan();
    p.axis = axis;
    // an inverse one-sided DFT takes bins 0..n/2 of a real signal of length n, by default 2 * (bins - 1)
    p.n = c2r ? 2 * (x.lens[axis] - 1) : x.lens[axis];
    if (ctx.hasInput(1)) {
      const d = scalarInt(ctx, 1, "dft_length");
      if (d == null) return null;
      if (d[0] < 1 || d[0] > <i64>MAX_LENGTH) {
        ctx.fail("dft_length must be from 1 to " + MAX_LENGTH.toString() + ", is " + d[0].toString());
        return null;
      }
      p.n = <i32>d[0];
    }
    if (p.n < 1) {
      ctx.fail("the signal dim " + axis.toString() + " has too few samples for a transform; give a dft_length of 1 or more");
      return null;
    }
    if (c2r && (p.n >> 1) + 1 != x.lens[axis]) {
      // numpy's irfft would pad or cut the bins to dft_length / 2 + 1; onnxruntime does otherwise
      ctx.fail("an inverse one-sided DFT of length " + p.n.toString() + " needs " + ((p.n >> 1) + 1).toString() +
        " bins on axis " + axis.toString() + ", the input has " + x.lens[axis].toString() +
        "; kiln supports only dft_length 2 * (bins - 1) or 2 * bins - 1");
      return null;
    }
    if (p.n > MAX_LENGTH) {
      ctx.fail("the signal dim " + axis.toString() + " has " + p.n.toString() + " samples; kiln transforms at most " +
        MAX_LENGTH.toString() + " (give a dft_length to truncate)");
      return null;
    }
    p.nout = onesided != 0 && !c2r ? (p.n >> 1) + 1 : p.n;
    p.outC = c2r ? 1 : 2;
    return p;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input is required");
    if (!isFloat(ctx.input(0).dtype)) return ctx.failDtype(0);
    const p = this.plan(ctx);
    if (p == null) return false;
    const x = ctx.input(0);
    const lens = x.lens.slice(0);
    lens[p.axis] = p.nout;
    lens[lens.length - 1] = p.outC;
    ctx.out(Shape.standard(x.dtype, lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), o = ctx.output(0);
    const r = x.shape.rank();
    const xl = x.shape.lens, ol = o.shape.lens;
    // the output's axis is the one whose length changed, or found again from the input's
    let axis = ctx.opset >= 20 ? -2 : <i32>ctx.attrs.getInt("axis", 1);
    if (ctx.opset >= 20 && ctx.hasInput(2)) axis = <i32>ctx.input(2).getAsI64(0);
    if (axis < 0) axis += r;
    const inverse = ctx.attrs.getInt("inverse", 0) != 0;
    const c2r = inverse && ctx.attrs.getInt("onesided", 0) != 0;
    const n = ctx.hasInput(1) ? <i32>ctx.input(1).getAsI64(0) : (c2r ? 2 * (xl[axis] - 1) : xl[axis]);
    dftLines(x, o, axis, n, ol[axis], inverse, c2r);
    return true;
  }
}

/**
 * Transforms every line of x along `axis` (length zero-padded or truncated to n) into o, whose
 * axis holds the first `nout` bins; the inverse scales by 1/n. `c2r`: x holds bins 0..n/2 of a
 * real signal's spectrum (padded or truncated to them); the rest are their conjugates, and o gets
 * the real part only (the imaginary parts of the DC and Nyquist bins drop out, as in irfft).
 */
function dftLines(x: Tensor, o: Tensor, axis: i32, n: i32, nout: i32, inverse: bool, c2r: bool): void {
  const r = x.shape.rank();
  const xl = x.shape.lens;
  const c = xl[r - 1];
  let outer: i32 = 1, inner: i32 = 1;
  for (let d = 0; d < axis; d++) outer *= xl[d];
  for (let d = axis + 1; d < r - 1; d++) inner *= xl[d];
  const L = xl[axis];
  const half = n >> 1;
  const m = c2r ? (L < half + 1 ? L : half + 1) : (L < n ? L : n);
  const oc = c2r ? 1 : 2;
  const dt = x.shape.dtype, od = o.shape.dtype;
  const es = <usize>dtypeSize(dt), os = <usize>dtypeSize(od);
  const t = new Transform(n, inverse);
  const re = new StaticArray<f64>(n), im = new StaticArray<f64>(n);
  const scale: f64 = inverse ? 1.0 / <f64>n : 1.0;
  for (let a = 0; a < outer; a++) {
    for (let b = 0; b < inner; b++) {
      const xbase = (<usize>a * <usize>L * <usize>inner + <usize>b) * <usize>c;
      for (let j = 0; j < n; j++) {
        if (j < m) {
          const p = x.ptr + (xbase + <usize>j * <usize>inner * <usize>c) * es;
          unchecked(re[j] = loadF64(dt, p));
          unchecked(im[j] = c == 2 ? loadF64(dt, p + es) : 0.0);
        } else {
          unchecked(re[j] = 0.0);
          unchecked(im[j] = 0.0);
        }
      }
      if (c2r) {
        for (let j = half + 1; j < n; j++) {
          unchecked(re[j] = re[n - j]);
          unchecked(im[j] = -im[n - j]);
        }
      }
      t.run(re, im);
      const obase = (<usize>a * <usize>nout * <usize>inner + <usize>b) * <usize>oc;
      for (let k = 0; k < nout; k++) {
        const p = o.ptr + (obase + <usize>k * <usize>inner * <usize>oc) * os;
        storeF64(od, p, unchecked(re[k]) * scale);
        if (!c2r) storeF64(od, p + os, unchecked(im[k]) * scale);
      }
    }
  }
}

// ---------------------------------------------------------------- STFT

class StftPlan {
  step: i32 = 0;
  frameLength: i32 = 0;
  frames: i32 = 0;
  bins: i32 = 0;
}

class StftOp extends Op {
  constructor() {
    super("STFT", OP_WRITES_ALL);
  }

  plan(ctx: ShapeContext): StftPlan | null {
    const x = ctx.input(0);
    if (x.rank() != 3 || (x.lens[2] != 1 && x.lens[2] != 2)) {
      ctx.fail("signal must be [batch, length, 1 or 2], is " + x.toString());
      return null;
    }
    if (!ctx.hasInput(1)) {
      ctx.fail("input frame_step is required");
      return null;
    }
    const s = scalarInt(ctx, 1, "frame_step");
    if (s == null) return null;
    if (s[0] < 1 || s[0] > 2147483647) {
      ctx.fail("frame_step must be 1 or more, is " + s[0].toString());
      return null;
    }
    const p = new StftPlan();
    p.step = <i32>s[0];
    let fl: i64 = -1;
    if (ctx.hasInput(3)) {
      const f = scalarInt(ctx, 3, "frame_length");
      if (f == null) return null;
      fl = f[0];
      if (fl < 1) {
        ctx.fail("frame_length must be at least 1, is " + fl.toString());
        return null;
      }
    }
    if (ctx.hasInput(2)) {
      const w = ctx.input(2);
      if (w.rank() != 1) {
        ctx.fail("window must have rank 1, is " + w.toString());
        return null;
      }
      if (fl >= 0 && fl != <i64>w.lens[0]) {
        ctx.fail("frame_length " + fl.toString() + " differs from the window's length " + w.lens[0].toString());
        return null;
      }
      fl = w.lens[0];
    }
    if (fl < 0) fl = x.lens[1];
    if (fl > <i64>MAX_LENGTH) {
      ctx.fail("frame_length " + fl.toString() + " is more than kiln transforms, " + MAX_LENGTH.toString());
      return null;
    }
    if (fl < 1 || fl > <i64>x.lens[1]) {
      ctx.fail("frame_length " + fl.toString() + " must be from 1 to the signal length " + x.lens[1].toString());
      return null;
    }
    const onesided = ctx.attrs.getInt("onesided", 1);
    if (onesided != 0 && onesided != 1) {
      ctx.fail("onesided must be 0 or 1, is " + onesided.toString());
      return null;
    }
    p.frameLength = <i32>fl;
    p.frames = 1 + (x.lens[1] - p.frameLength) / p.step;
    p.bins = onesided != 0 ? (p.frameLength >> 1) + 1 : p.frameLength;
    return p;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input signal is required");
    const dt = ctx.input(0).dtype;
    if (!isFloat(dt)) return ctx.failDtype(0);
    if (ctx.hasInput(2) && !isFloat(ctx.input(2).dtype)) return ctx.failDtype(2);
    const p = this.plan(ctx);
    if (p == null) return false;
    ctx.out(Shape.standard(dt, [ctx.input(0).lens[0], p.frames, p.bins, 2]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), o = ctx.output(0);
    const batch = x.shape.lens[0], L = x.shape.lens[1], c = x.shape.lens[2];
    const frames = o.shape.lens[1], bins = o.shape.lens[2];
    const step = <i32>ctx.input(1).getAsI64(0);
    const hasW = ctx.hasInput(2);
    const n = hasW ? ctx.input(2).elements() : (ctx.hasInput(3) ? <i32>ctx.input(3).getAsI64(0) : L);
    const win = new StaticArray<f64>(n);
    for (let j = 0; j < n; j++) unchecked(win[j] = hasW ? ctx.input(2).getAsF64(j) : 1.0);
    const dt = x.shape.dtype, od = o.shape.dtype;
    const es = <usize>dtypeSize(dt), os = <usize>dtypeSize(od);
    const t = new Transform(n, false);
    const re = new StaticArray<f64>(n), im = new StaticArray<f64>(n);
    for (let b = 0; b < batch; b++) {
      for (let f = 0; f < frames; f++) {
        const start = f * step;
        for (let j = 0; j < n; j++) {
          const p = x.ptr + ((<usize>b * <usize>L + <usize>(start + j)) * <usize>c) * es;
          const w = unchecked(win[j]);
          unchecked(re[j] = loadF64(dt, p) * w);
          unchecked(im[j] = c == 2 ? loadF64(dt, p + es) * w : 0.0);
        }
        t.run(re, im);
        const obase = ((<usize>b * <usize>frames + <usize>f) * <usize>bins) * 2;
        for (let k = 0; k < bins; k++) {
          const p = o.ptr + (obase + <usize>k * 2) * os;
          storeF64(od, p, unchecked(re[k]));
          storeF64(od, p + os, unchecked(im[k]));
        }
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------- MelWeightMatrix

class MelOp extends Op {
  constructor() {
    super("MelWeightMatrix", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    for (let i = 0; i < 5; i++) {
      if (!ctx.hasInput(i)) {
        return ctx.fail("inputs num_mel_bins, dft_length, sample_rate, lower_edge_hertz and upper_edge_hertz are required");
      }
      if (ctx.input(i).elements() != 1) return ctx.fail("input " + i.toString() + " must be a scalar");
    }
    const bins = scalarInt(ctx, 0, "num_mel_bins");
    if (bins == null) return false;
    const len = scalarInt(ctx, 1, "dft_length");
    if (len == null) return false;
    if (bins[0] < 1 || bins[0] > 1 << 20) return ctx.fail("num_mel_bins must be from 1 to 2^20, is " + bins[0].toString());
    if (len[0] < 1 || len[0] > 1 << 28) return ctx.fail("dft_length must be from 1 to 2^28, is " + len[0].toString());
    const dt = <i32>ctx.attrs.getInt("output_datatype", DT_FLOAT);
    if (!isSupported(dt)) return ctx.fail("unsupported output_datatype " + dt.toString());
    ctx.out(Shape.standard(dt, [<i32>(len[0] >> 1) + 1, <i32>bins[0]]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const o = ctx.output(0);
    const nbins = o.shape.lens[0], nmel = o.shape.lens[1];
    const dftLength = <f64>ctx.input(1).getAsI64(0);
    const rate = ctx.input(2).getAsF64(0);
    const lo = ctx.input(3).getAsF64(0), hi = ctx.input(4).getAsF64(0);
    if (rate <= 0) return ctx.fail("sample_rate must be positive, is " + rate.toString());
    if (!(lo >= 0 && hi >= lo && hi <= rate / 2)) {
      return ctx.fail("the edges must satisfy 0 <= lower_edge_hertz <= upper_edge_hertz <= sample_rate / 2, are " +
        lo.toString() + " and " + hi.toString());
    }
    // band edges: nmel + 2 points evenly spaced in mel (step over nmel + 2 intervals, as the ONNX
    // reference and onnxruntime do), back to hertz, to spectrogram bins
    const loMel = 2595.0 * Math.log10(1.0 + lo / 700.0);
    const hiMel = 2595.0 * Math.log10(1.0 + hi / 700.0);
    const stepMel = (hiMel - loMel) / <f64>(nmel + 2);
    const edge = new StaticArray<i32>(nmel + 2);
    for (let i = 0; i < nmel + 2; i++) {
      const hz = 700.0 * (Math.pow(10.0, (<f64>i * stepMel + loMel) / 2595.0) - 1.0);
      unchecked(edge[i] = <i32>Math.floor((dftLength + 1.0) * hz / rate));
    }
    const od = o.shape.dtype;
    const os = <usize>dtypeSize(od);
    memory.fill(o.ptr, 0, <usize>o.shape.bytes());
    for (let i = 0; i < nmel; i++) {
      const left = unchecked(edge[i]), center = unchecked(edge[i + 1]), right = unchecked(edge[i + 2]);
      if (left < 0 || right >= nbins) {
        return ctx.fail("mel band " + i.toString() + " spans bins " + left.toString() + " to " + right.toString() +
          ", outside the " + nbins.toString() + " spectrogram bins");
      }
      const up = center - left;
      if (up == 0) {
        storeF64(od, o.ptr + (<usize>center * <usize>nmel + <usize>i) * os, 1.0);
      } else {
        for (let j = left; j <= center; j++) {
          storeF64(od, o.ptr + (<usize>j * <usize>nmel + <usize>i) * os, <f64>(j - left) / <f64>up);
        }
      }
      const down = right - center;
      for (let j = center; j < right; j++) {
        storeF64(od, o.ptr + (<usize>j * <usize>nmel + <usize>i) * os, <f64>(right - j) / <f64>down);
      }
    }
    return true;
  }
}

export function registerSignal(): void {
  registerOp(new DftOp());
  registerOp(new StftOp());
  registerOp(new MelOp());
}
