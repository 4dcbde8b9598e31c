// Normalizations: LayerNormalization (float32 SIMD rows), BatchNormalization (inference and
// training mode), InstanceNormalization, LpNormalization, MeanVarianceNormalization.
import { affinePlanesPar, layerNormRowsPar, rowOffsets } from "../kernels/par_eltwise";
import { threadCount } from "../kernels/threads";
import { DT_DOUBLE, DT_FLOAT, dtypeSize, isFloat } from "../ir/dtype";
import { Shape, broadcastLens } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";
import { B_SECOND, Bcast, loadF64, storeF64 } from "../kernels/eltwise";
import { R_MEAN, R_SUMSQUARE, reduceF64 } from "../kernels/reduce";
import { runBinary } from "./elementwise";
import { axisError, normAxis } from "./reduce";

function prod(l: Array<i32>, from: i32, to: i32): i32 {
  let n: i32 = 1;
  for (let i = from; i < to; i++) n *= l[i];
  return n;
}

function requireFloat(ctx: ShapeContext, n: i32): bool {
  for (let i = 0; i < n; i++) {
    if (!ctx.hasInput(i)) return ctx.fail("input " + i.toString() + " is required");
    if (!isFloat(ctx.input(i).dtype)) return ctx.failDtype(i);
  }
  return true;
}

/** p broadcast (numpy, right-aligned) to `lens`, as f64 values (for scale and bias vectors). */
function expandF64(p: Tensor, lens: Array<i32>): StaticArray<f64> {
  const n = prod(lens, 0, lens.length);
  const dt = p.shape.dtype;
  const sz = <usize>dtypeSize(dt);
  const out = new StaticArray<f64>(n);
  // unmanaged scratch: runBinary allocates, and a GC step must not free it meanwhile
  const cnt: usize = n > 0 ? <usize>n : 1;
  const tmp = heap.alloc(cnt * sz);
  const t = new Tensor(Shape.standard(dt, lens), tmp);
  runBinary(B_SECOND, false, t, p, t);
  for (let i = 0; i < n; i++) unchecked(out[i] = loadF64(dt, tmp + <usize>i * sz));
  heap.free(tmp);
  return out;
}

/** Element k of t as f64. */
function loadAt(t: Tensor, k: i32): f64 {
  return loadF64(t.shape.dtype, t.ptr + <usize>k * <usize>dtypeSize(t.shape.dtype));
}

/** Stores v as element k of t. */
function storeAt(t: Tensor, k: i32, v: f64): void {
  storeF64(t.shape.dtype, t.ptr + <usize>k * <usize>dtypeSize(t.shape.dtype), v);
}

function toF32(a: StaticArray<f64>): StaticArray<f32> {
  const out = new StaticArray<f32>(a.length);
  for (let i = 0; i < a.length; i++) unchecked(out[i] = <f32>unchecked(a[i]));
  return out;
}

// @ts-ignore: decorator
@inline
function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Mean of n contiguous floats (SIMD: two lane-wise sums, then the tail). */
function rowMeanF32(px: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let i: i32 = 0;
  let s: f32 = 0;
  for (; i + 8 <= n; i += 8) {
    a0 = f32x4.add(a0, v128.load(px + (<usize>i << 2)));
    a1 = f32x4.add(a1, v128.load(px + (<usize>i << 2) + 16));
  }
  for (; i < n; i++) s += load<f32>(px + (<usize>i << 2));
  return (s + hsum(f32x4.add(a0, a1))) / <f32>n;
}

/** 1/sqrt(var + eps) of n contiguous floats whose mean is `mean` (SIMD, as rowMeanF32). */
function rowInvStdF32(px: usize, n: i32, mean: f32, eps: f32): f32 {
  const vm = f32x4.splat(mean);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let s: f32 = 0;
  let i: i32 = 0;
  for (; i + 8 <= n; i += 8) {
    const d0 = f32x4.sub(v128.load(px + (<usize>i << 2)), vm);
    const d1 = f32x4.sub(v128.load(px + (<usize>i << 2) + 16), vm);
    a0 = f32x4.add(a0, f32x4.mul(d0, d0));
    a1 = f32x4.add(a1, f32x4.mul(d1, d1));
  }
  for (; i < n; i++) {
    const d = load<f32>(px + (<usize>i << 2)) - mean;
    s += d * d;
  }
  const v = (s + hsum(f32x4.add(a0, a1))) / <f32>n;
  return <f32>(1.0 / Math.sqrt(<f64>v + <f64>eps));
}

/** Mean and 1/sqrt(var + eps) of n contiguous floats (two passes, SIMD); writes them to res[0..1]. */
function rowStatsF32(px: usize, n: i32, eps: f32, res: StaticArray<f32>): void {
  const mean = rowMeanF32(px, n);
  unchecked(res[0] = mean);
  unchecked(res[1] = rowInvStdF32(px, n, mean, eps));
}

/**
 * One float32 LayerNormalization row r of n elements: y = (x - mean) * inv * scale + bias, and the
 * row's mean and inv into the stash outputs pm, pv (type sdt; 0: absent). Reads and writes linear
 * memory only (a task of par_eltwise.ts runs it on a worker).
 */
export function layerNormRowF32(px: usize, po: usize, n: i32, eps: f32, ps: usize, pb: usize, pm: usize, pv: usize,
  sdt: i32, r: i32): void {
  const off = (<usize>r * <usize>n) << 2;
  const mean = rowMeanF32(px + off, n);
  const inv = rowInvStdF32(px + off, n, mean, eps);
  rowApplyF32(px + off, po + off, n, mean, inv, ps, 1, pb, 1);
  const ssz = <usize>dtypeSize(sdt);
  if (pm != 0) storeF64(sdt, pm + <usize>r * ssz, <f64>mean);
  if (pv != 0) storeF64(sdt, pv + <usize>r * ssz, <f64>inv);
}

/**
 * Mean and 1/sqrt(variance + eps) of n elements of type dt at px (element stride sz), in f64: the
 * path of the non-float32 types. res[0] = mean, res[1] = inv.
 */
function rowStatsF64(dt: i32, px: usize, sz: usize, n: i32, eps: f32, res: StaticArray<f64>): void {
  let s: f64 = 0;
  for (let i = 0; i < n; i++) s += loadF64(dt, px + <usize>i * sz);
  const mean = s / <f64>n;
  let v: f64 = 0;
  for (let i = 0; i < n; i++) {
    const d = loadF64(dt, px + <usize>i * sz) - mean;
    v += d * d;
  }
  unchecked(res[0] = mean);
  unchecked(res[1] = 1.0 / Math.sqrt(v / <f64>n + <f64>eps));
}

/** y = (x - mean) * inv * scale + bias over n floats; scale/bias pointers advance when their step is 1. */
function rowApplyF32(px: usize, po: usize, n: i32, mean: f32, inv: f32, ps: usize, ss: i32, pb: usize, sb: i32): void {
  const vm = f32x4.splat(mean), vi = f32x4.splat(inv);
  let i: i32 = 0;
  if (ss != 0 && sb != 0) {
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const y = f32x4.mul(f32x4.mul(f32x4.sub(v128.load(px + o), vm), vi), v128.load(ps + o));
      v128.store(po + o, f32x4.add(y, v128.load(pb + o)));
    }
  } else {
    const vs = v128.load32_splat(ps), vb = v128.load32_splat(pb);
    if (ss == 0 && sb == 0) {
      for (; i + 4 <= n; i += 4) {
        const o = <usize>i << 2;
        v128.store(po + o, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(v128.load(px + o), vm), vi), vs), vb));
      }
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const s = load<f32>(ps + (ss != 0 ? o : 0));
    const b = load<f32>(pb + (sb != 0 ? o : 0));
    store<f32>(po + o, (load<f32>(px + o) - mean) * inv * s + b);
  }
}

// ---- LayerNormalization ----

class LayerNormOp extends Op {
  constructor() {
    super("LayerNormalization", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 2)) return false;
    const x = ctx.input(0);
    const a = ctx.attrs.getInt("axis", -1);
    const axis = normAxis(a, x.rank());
    if (axis < 0) return ctx.fail(axisError(a, x));
    const nl = x.lens.slice(axis);
    for (let i = 1; i < 3; i++) {
      if (!ctx.hasInput(i)) continue;
      const b = broadcastLens(ctx.input(i).lens, nl);
      if (b == null || prod(b, 0, b.length) != prod(nl, 0, nl.length)) {
        return ctx.fail((i == 1 ? "scale " : "bias ") + ctx.input(i).toString() +
          " does not broadcast to the normalized shape " + Shape.standard(x.dtype, nl).toString());
      }
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    const stash = ctx.attrs.getInt("stash_type", 1) == 11 ? DT_DOUBLE : DT_FLOAT;
    const sl = new Array<i32>(x.rank());
    for (let i = 0; i < x.rank(); i++) sl[i] = i < axis ? x.lens[i] : 1;
    for (let i = 1; i < ctx.numOutputs; i++) ctx.out(Shape.standard(stash, sl));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const axis = normAxis(ctx.attrs.getInt("axis", -1), l.length);
    const eps = ctx.attrs.getFloat("epsilon", 1e-5);
    const outer = prod(l, 0, axis), n = prod(l, axis, l.length);
    const nl = l.slice(axis);
    const scale = expandF64(ctx.input(1), nl);
    const hasB = ctx.hasInput(2);
    const bias = hasB ? expandF64(ctx.input(2), nl) : new StaticArray<f64>(n);
    const pm: usize = ctx.outputs.length > 1 ? ctx.output(1).ptr : 0;
    const pv: usize = ctx.outputs.length > 2 ? ctx.output(2).ptr : 0;
    const sdt = ctx.outputs.length > 1 ? ctx.output(1).shape.dtype : DT_FLOAT;
    const ssz = <usize>dtypeSize(sdt);
    const dt = x.shape.dtype;
    if (dt == DT_FLOAT) {
      const s32 = toF32(scale), b32 = toF32(bias);
      const ps = changetype<usize>(s32), pb = changetype<usize>(b32);
      if (layerNormRowsPar(x.ptr, o.ptr, outer, n, eps, ps, pb, pm, pv, sdt)) return true;
      for (let r = 0; r < outer; r++) layerNormRowF32(x.ptr, o.ptr, n, eps, ps, pb, pm, pv, sdt, r);
      return true;
    }
    const sz = <usize>dtypeSize(dt);
    const st64 = new StaticArray<f64>(2);
    for (let r = 0; r < outer; r++) {
      const base = <usize>r * <usize>n * sz;
      rowStatsF64(dt, x.ptr + base, sz, n, eps, st64);
      const mean = unchecked(st64[0]), inv = unchecked(st64[1]);
      for (let i = 0; i < n; i++) {
        const p = base + <usize>i * sz;
        storeF64(dt, o.ptr + p, (loadF64(dt, x.ptr + p) - mean) * inv * unchecked(scale[i]) + unchecked(bias[i]));
      }
      if (pm != 0) storeF64(sdt, pm + <usize>r * ssz, mean);
      if (pv != 0) storeF64(sdt, pv + <usize>r * ssz, inv);
    }
    return true;
  }
}

// ---- RMSNormalization ----

/**
 * RMSNormalization (opset 23): Y = X / sqrt(mean(X^2 over axes [axis, rank)) + epsilon) * scale,
 * scale broadcast to the normalized shape; the statistics in f64.
 */
class RmsNormOp extends Op {
  constructor() {
    super("RMSNormalization", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 2)) return false;
    const x = ctx.input(0);
    const a = ctx.attrs.getInt("axis", -1);
    const axis = normAxis(a, x.rank());
    if (axis < 0) return ctx.fail(axisError(a, x));
    const nl = x.lens.slice(axis);
    const b = broadcastLens(ctx.input(1).lens, nl);
    if (b == null || prod(b, 0, b.length) != prod(nl, 0, nl.length)) {
      return ctx.fail("scale " + ctx.input(1).toString() + " does not broadcast to the normalized shape " +
        Shape.standard(x.dtype, nl).toString());
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const axis = normAxis(ctx.attrs.getInt("axis", -1), l.length);
    const eps = <f64>ctx.attrs.getFloat("epsilon", 1e-5);
    const outer = prod(l, 0, axis), n = prod(l, axis, l.length);
    const scale = expandF64(ctx.input(1), l.slice(axis));
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    for (let r = 0; r < outer; r++) {
      const base = <usize>r * <usize>n * sz;
      let s: f64 = 0;
      for (let i = 0; i < n; i++) {
        const v = loadF64(dt, x.ptr + base + <usize>i * sz);
        s += v * v;
      }
      const inv = 1.0 / Math.sqrt(s / <f64>n + eps);
      for (let i = 0; i < n; i++) {
        const p = base + <usize>i * sz;
        storeF64(dt, o.ptr + p, loadF64(dt, x.ptr + p) * inv * unchecked(scale[i]));
      }
    }
    return true;
  }
}

// ---- BatchNormalization ----

class BatchNormOp extends Op {
  constructor() {
    super("BatchNormalization", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 5)) return false;
    const x = ctx.input(0);
    if (x.rank() < 2) return ctx.fail("input X must have rank 2 or more, got " + x.toString());
    const c = x.lens[1];
    for (let i = 1; i < 5; i++) {
      if (ctx.input(i).elements() != c) {
        return ctx.fail("input " + i.toString() + " must have " + c.toString() + " elements (channels), got " +
          ctx.input(i).toString());
      }
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    for (let i = 1; i < ctx.numOutputs; i++) ctx.out(Shape.standard(ctx.input(i < 3 ? i + 2 : 3).dtype, [c]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const nb = l[0], c = l[1], sp = prod(l, 2, l.length);
    const eps = <f64>ctx.attrs.getFloat("epsilon", 1e-5);
    const mom = <f64>ctx.attrs.getFloat("momentum", 0.9);
    const training = ctx.attrs.getInt("training_mode", 0) != 0 || (ctx.opset < 9 && ctx.outputs.length > 1 &&
      ctx.attrs.getInt("is_test", 0) == 0 && ctx.opset >= 7);
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const sc = ctx.input(1), bi = ctx.input(2), mi = ctx.input(3), vi = ctx.input(4);
    const mean = new StaticArray<f64>(c), vr = new StaticArray<f64>(c);
    for (let k = 0; k < c; k++) {
      mean[k] = loadAt(mi, k);
      vr[k] = loadAt(vi, k);
    }
    if (training) {
      const cnt = <f64>nb * <f64>sp;
      for (let k = 0; k < c; k++) {
        let s: f64 = 0, s2: f64 = 0;
        for (let b = 0; b < nb; b++) {
          const base = x.ptr + (<usize>b * <usize>c + <usize>k) * <usize>sp * sz;
          for (let i = 0; i < sp; i++) {
            const v = loadF64(dt, base + <usize>i * sz);
            s += v;
            s2 += v * v;
          }
        }
        const m = s / cnt;
        const v = s2 / cnt - m * m;
        // outputs: running mean/var (and, before opset 14, saved mean/var)
        const no = ctx.outputs.length;
        if (no > 1) storeAt(ctx.output(1), k, mean[k] * mom + m * (1 - mom));
        if (no > 2) storeAt(ctx.output(2), k, vr[k] * mom + v * (1 - mom));
        if (no > 3) storeAt(ctx.output(3), k, m);
        if (no > 4) storeAt(ctx.output(4), k, v);
        mean[k] = m;
        vr[k] = v;
      }
    } else {
      for (let i = 1; i < ctx.outputs.length; i++) {
        const src = i == 1 ? mi : vi;
        if (i <= 2) memory.copy(ctx.output(i).ptr, src.ptr, <usize>src.shape.bytes());
      }
    }
    if (dt == DT_FLOAT && threadCount() > 1) {
      // the same per-channel a, b (as f32) and arithmetic, the planes split over the threads
      const ab = rowOffsets(c);
      for (let k = 0; k < c; k++) {
        const a = loadAt(sc, k) / Math.sqrt(vr[k] + eps);
        store<f32>(ab + (<usize>k << 3), <f32>a);
        store<f32>(ab + (<usize>k << 3), <f32>(loadAt(bi, k) - mean[k] * a), 4);
      }
      if (affinePlanesPar(x.ptr, o.ptr, nb * c, c, sp, ab)) return true;
    }
    for (let k = 0; k < c; k++) {
      const a = loadAt(sc, k) / Math.sqrt(vr[k] + eps);
      const b = loadAt(bi, k) - mean[k] * a;
      for (let n = 0; n < nb; n++) {
        const off = (<usize>n * <usize>c + <usize>k) * <usize>sp * sz;
        if (dt == DT_FLOAT) {
          const va = f32x4.splat(<f32>a), vb = f32x4.splat(<f32>b);
          const px = x.ptr + off, po = o.ptr + off;
          let i: i32 = 0;
          for (; i + 4 <= sp; i += 4) {
            v128.store(po + (<usize>i << 2), f32x4.add(f32x4.mul(v128.load(px + (<usize>i << 2)), va), vb));
          }
          for (; i < sp; i++) store<f32>(po + (<usize>i << 2), load<f32>(px + (<usize>i << 2)) * <f32>a + <f32>b);
        } else {
          for (let i = 0; i < sp; i++) {
            const p = off + <usize>i * sz;
            storeF64(dt, o.ptr + p, loadF64(dt, x.ptr + p) * a + b);
          }
        }
      }
    }
    return true;
  }
}

// ---- InstanceNormalization ----

class InstanceNormOp extends Op {
  constructor() {
    super("InstanceNormalization", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 3)) return false;
    const x = ctx.input(0);
    if (x.rank() < 2) return ctx.fail("input X must have rank 2 or more, got " + x.toString());
    const c = x.lens[1];
    if (ctx.input(1).elements() != c || ctx.input(2).elements() != c) {
      return ctx.fail("scale and B must have " + c.toString() + " elements (channels)");
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const nb = l[0], c = l[1], sp = prod(l, 2, l.length);
    const eps = ctx.attrs.getFloat("epsilon", 1e-5);
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const sc = ctx.input(1), bi = ctx.input(2);
    const st = new StaticArray<f32>(2);
    const st64 = new StaticArray<f64>(2);
    const sb = new StaticArray<f32>(2); // scale and bias of the current channel
    for (let n = 0; n < nb; n++) {
      for (let k = 0; k < c; k++) {
        const s = loadAt(sc, k);
        const b = loadAt(bi, k);
        const off = (<usize>n * <usize>c + <usize>k) * <usize>sp * sz;
        if (dt == DT_FLOAT) {
          rowStatsF32(x.ptr + off, sp, eps, st);
          unchecked(sb[0] = <f32>s);
          unchecked(sb[1] = <f32>b);
          const psb = changetype<usize>(sb);
          rowApplyF32(x.ptr + off, o.ptr + off, sp, st[0], st[1], psb, 0, psb + 4, 0);
          continue;
        }
        rowStatsF64(dt, x.ptr + off, sz, sp, eps, st64);
        const m = unchecked(st64[0]), inv = unchecked(st64[1]);
        for (let i = 0; i < sp; i++) {
          const p = off + <usize>i * sz;
          storeF64(dt, o.ptr + p, (loadF64(dt, x.ptr + p) - m) * inv * s + b);
        }
      }
    }
    return true;
  }
}

// ---- GroupNormalization ----

/**
 * GroupNormalization (opset 18, 21): X [N, C, ...] normalized over each group of C / num_groups
 * channels and the spatial dims. scale and bias are per group before opset 21 and per channel
 * from opset 21 (the spec's fix); stats in f32 for float32 (as InstanceNormalization), else f64.
 */
class GroupNormOp extends Op {
  constructor() {
    super("GroupNormalization", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 3)) return false;
    const x = ctx.input(0);
    if (x.rank() < 2) return ctx.fail("input X must have rank 2 or more, got " + x.toString());
    if (!ctx.attrs.has("num_groups")) return ctx.fail("attribute num_groups is required");
    const g = ctx.attrs.getInt("num_groups", 0);
    const c = x.lens[1];
    if (g <= 0 || c % <i32>g != 0) {
      return ctx.fail("num_groups " + g.toString() + " must be positive and divide the " + c.toString() +
        " channels of " + x.toString());
    }
    const want = ctx.opset >= 21 ? c : <i32>g;
    if (ctx.input(1).elements() != want || ctx.input(2).elements() != want) {
      return ctx.fail("scale and bias must have " + want.toString() + (ctx.opset >= 21 ? " elements (channels)" :
        " elements (num_groups, before opset 21)") + ", got " + ctx.input(1).toString() + " and " +
        ctx.input(2).toString());
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const nb = l[0], c = l[1], sp = prod(l, 2, l.length);
    const g = <i32>ctx.attrs.getInt("num_groups", 1);
    const cpg = c / g;
    const perChannel = ctx.opset >= 21;
    const eps = ctx.attrs.getFloat("epsilon", 1e-5);
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const sc = ctx.input(1), bi = ctx.input(2);
    const st = new StaticArray<f32>(2);
    const st64 = new StaticArray<f64>(2);
    const sb = new StaticArray<f32>(2);
    const blk = cpg * sp;
    for (let n = 0; n < nb; n++) {
      for (let k = 0; k < g; k++) {
        const off = (<usize>n * <usize>c + <usize>k * <usize>cpg) * <usize>sp * sz;
        let m: f64 = 0, inv: f64 = 0;
        if (dt == DT_FLOAT) {
          rowStatsF32(x.ptr + off, blk, eps, st);
        } else {
          rowStatsF64(dt, x.ptr + off, sz, blk, eps, st64);
          m = unchecked(st64[0]);
          inv = unchecked(st64[1]);
        }
        for (let j = 0; j < cpg; j++) {
          const ch = perChannel ? k * cpg + j : k;
          const s = loadAt(sc, ch);
          const b = loadAt(bi, ch);
          const coff = off + <usize>j * <usize>sp * sz;
          if (dt == DT_FLOAT) {
            unchecked(sb[0] = <f32>s);
            unchecked(sb[1] = <f32>b);
            const psb = changetype<usize>(sb);
            rowApplyF32(x.ptr + coff, o.ptr + coff, sp, st[0], st[1], psb, 0, psb + 4, 0);
            continue;
          }
          for (let i = 0; i < sp; i++) {
            const p = coff + <usize>i * sz;
            storeF64(dt, o.ptr + p, (loadF64(dt, x.ptr + p) - m) * inv * s + b);
          }
        }
      }
    }
    return true;
  }
}

// ---- LpNormalization ----

class LpNormOp extends Op {
  constructor() {
    super("LpNormalization", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 1)) return false;
    const x = ctx.input(0);
    const a = ctx.attrs.getInt("axis", -1);
    if (normAxis(a, x.rank()) < 0) return ctx.fail(axisError(a, x));
    const p = ctx.attrs.getInt("p", 2);
    if (p != 1 && p != 2) return ctx.fail("p must be 1 or 2, got " + p.toString());
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const axis = normAxis(ctx.attrs.getInt("axis", -1), l.length);
    const p1 = ctx.attrs.getInt("p", 2) == 1;
    const outer = prod(l, 0, axis), len = l[axis], inner = prod(l, axis + 1, l.length);
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const step = <usize>inner * sz;
    for (let r = 0; r < outer; r++) {
      for (let j = 0; j < inner; j++) {
        const base = (<usize>r * <usize>len * <usize>inner + <usize>j) * sz;
        let s: f64 = 0;
        for (let k = 0; k < len; k++) {
          const v = loadF64(dt, x.ptr + base + <usize>k * step);
          s += p1 ? Math.abs(v) : v * v;
        }
        const norm = p1 ? s : Math.sqrt(s);
        for (let k = 0; k < len; k++) {
          const q = base + <usize>k * step;
          storeF64(dt, o.ptr + q, norm == 0 ? 0 : loadF64(dt, x.ptr + q) / norm);
        }
      }
    }
    return true;
  }
}

// ---- MeanVarianceNormalization: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over axes ----

class MvnOp extends Op {
  constructor() {
    super("MeanVarianceNormalization", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 1)) return false;
    const x = ctx.input(0);
    const axes = ctx.attrs.getInts("axes");
    if (axes != null) {
      for (let i = 0; i < axes.length; i++) {
        if (normAxis(axes[i], x.rank()) < 0) return ctx.fail(axisError(axes[i], x));
      }
    } else if (x.rank() < 4) {
      return ctx.fail("default axes [0,2,3] need rank 4 or more, got " + x.toString());
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    let axes = ctx.attrs.getInts("axes");
    if (axes == null) axes = [0, 2, 3];
    const keep = l.slice(0);
    for (let i = 0; i < axes.length; i++) keep[normAxis(axes[i], l.length)] = 1;
    const mean = reduceF64(R_MEAN, x, keep);
    const sq = reduceF64(R_SUMSQUARE, x, keep);
    const cnt: f64 = mean.length > 0 ? <f64>x.elements() / <f64>mean.length : 1;
    const den = new StaticArray<f64>(mean.length);
    for (let i = 0; i < mean.length; i++) {
      const m = mean[i];
      den[i] = Math.sqrt(max<f64>(0, sq[i] / cnt - m * m)) + 1e-9;
    }
    const bc = new Bcast(l, [l, keep]);
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const inner = bc.inner;
    const sa = bc.istr[1];
    for (let r = 0; r < bc.rows; r++) {
      const ao = bc.off[1];
      for (let i = 0; i < inner; i++) {
        const q = (<usize>r * <usize>inner + <usize>i) * sz;
        const ai = ao + i * sa;
        storeF64(dt, o.ptr + q, (loadF64(dt, x.ptr + q) - unchecked(mean[ai])) / unchecked(den[ai]));
      }
      bc.next();
    }
    return true;
  }
}

// ---- LRN: x / (bias + alpha / size * sum of x^2 over nearby channels)^beta ----

class LrnOp extends Op {
  constructor() {
    super("LRN", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireFloat(ctx, 1)) return false;
    const x = ctx.input(0);
    if (x.rank() < 2) return ctx.fail("input X must have rank 2 or more, got " + x.toString());
    if (ctx.attrs.getInt("size", 0) < 1) return ctx.fail("attribute 'size' must be a positive integer");
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const l = x.shape.lens;
    const nb = l[0], c = l[1], sp = prod(l, 2, l.length);
    const size = <i32>ctx.attrs.getInt("size", 1);
    const alpha = <f64>ctx.attrs.getFloat("alpha", 1e-4) / <f64>size;
    const beta = <f64>ctx.attrs.getFloat("beta", 0.75);
    const bias = <f64>ctx.attrs.getFloat("bias", 1.0);
    const lo = (size - 1) / 2, hi = size - 1 - lo;
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    for (let n = 0; n < nb; n++) {
      for (let k = 0; k < c; k++) {
        const c0 = max<i32>(0, k - lo), c1 = min<i32>(c - 1, k + hi);
        for (let i = 0; i < sp; i++) {
          let s: f64 = 0;
          for (let j = c0; j <= c1; j++) {
            const v = loadF64(dt, x.ptr + ((<usize>n * <usize>c + <usize>j) * <usize>sp + <usize>i) * sz);
            s += v * v;
          }
          const q = ((<usize>n * <usize>c + <usize>k) * <usize>sp + <usize>i) * sz;
          storeF64(dt, o.ptr + q, loadF64(dt, x.ptr + q) / Math.pow(bias + alpha * s, beta));
        }
      }
    }
    return true;
  }
}

export function registerNorm(): void {
  registerOp(new LrnOp());
  registerOp(new LayerNormOp());
  registerOp(new GroupNormOp());
  registerOp(new RmsNormOp());
  registerOp(new BatchNormOp());
  registerOp(new InstanceNormOp());
  registerOp(new LpNormOp());
  registerOp(new MvnOp());
}
