// Data movement and shape arithmetic: Reshape Flatten Squeeze Unsqueeze Transpose Concat
// Split Slice Expand Tile Pad Shape Size ConstantOfShape Range Identity Dropout Trilu
// DepthToSpace SpaceToDepth EyeLike. ONNX semantics at the model's opset, every stored
// dtype; contiguous runs move with memory.copy (data/util.ts copyView).
import { Diagnostic, diagnostics, E_UNSUPPORTED_OP } from "../ir/diag";
import { DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_INT64, dtypeName, isFloat } from "../ir/dtype";
import { Shape, broadcastLens } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import {
  ComputeContext, Op, OP_ALIAS_RESHAPE, OP_IDENTITY, OP_SHAPE_ONLY, ShapeContext,
} from "./op";
import { registerOp } from "./registry";
import {
  computeInts, copyAll, copyEl, copyView, fillEl, listStr, movable, normAxis, notConstant,
  product, shapeInts, stridesOf,
} from "./data/util";

// ---------------------------------------------------------------------------------------
// Pure reshapes

class ReshapeOp extends Op {
  constructor() { super("Reshape", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "shape");
    const sh = shapeInts(ctx, 1, "shape");
    if (sh == null) return ctx.fail("the target shape is missing (input 1)");
    const allowzero = ctx.attrs.getInt("allowzero", 0) != 0;
    const out = new Array<i32>(sh.length);
    let inferAt: i32 = -1;
    let known: i64 = 1;
    for (let i = 0; i < sh.length; i++) {
      const v = sh[i];
      if (v == 0 && !allowzero) {
        if (i >= x.rank()) {
          return ctx.fail("cannot reshape " + x.toString() + " to " + listStr(sh) + ": 0 at index " +
            i.toString() + " copies an input dim that does not exist");
        }
        out[i] = x.lens[i];
      } else if (v == -1) {
        if (inferAt >= 0) return ctx.fail("cannot reshape " + x.toString() + " to " + listStr(sh) + ": more than one -1");
        inferAt = i;
        continue;
      } else if (v < 0 || v > 0x7fffffff) {
        return ctx.fail("cannot reshape " + x.toString() + " to " + listStr(sh) + ": dim " + v.toString() + " is invalid");
      } else {
        out[i] = <i32>v;
      }
      known *= <i64>out[i];
    }
    const total = <i64>x.elements();
    if (inferAt >= 0) {
      if (known == 0 || total % known != 0) {
        return ctx.fail("cannot reshape " + x.toString() + " (" + total.toString() + " elements) to " + listStr(sh));
      }
      out[inferAt] = <i32>(total / known);
    } else if (known != total) {
      return ctx.fail("cannot reshape " + x.toString() + " (" + total.toString() + " elements) to " + listStr(sh));
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class FlattenOp extends Op {
  constructor() { super("Flatten", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    let a = ctx.attrs.getInt("axis", 1);
    if (a < 0) a += r;
    if (a < 0 || a > r) return ctx.fail("axis " + ctx.attrs.getInt("axis", 1).toString() + " is out of range for rank " + r.toString());
    const ax = <i32>a;
    ctx.out(Shape.standard(x.dtype, [product(x.lens, 0, ax), product(x.lens, ax, r)]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class SqueezeOp extends Op {
  constructor() { super("Squeeze", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "axes");
    const axes = shapeInts(ctx, 1, "axes");
    const r = x.rank();
    const drop = new Array<bool>(r);
    if (axes == null || axes.length == 0) {
      for (let i = 0; i < r; i++) drop[i] = x.lens[i] == 1;
    } else {
      for (let i = 0; i < axes.length; i++) {
        const a = normAxis(axes[i], r);
        if (a < 0) return ctx.fail("axis " + axes[i].toString() + " is out of range for rank " + r.toString());
        if (x.lens[a] != 1) return ctx.fail("cannot squeeze axis " + axes[i].toString() + " of length " + x.lens[a].toString());
        drop[a] = true;
      }
    }
    const out = new Array<i32>();
    for (let i = 0; i < r; i++) if (!drop[i]) out.push(x.lens[i]);
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class UnsqueezeOp extends Op {
  constructor() { super("Unsqueeze", OP_ALIAS_RESHAPE); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "axes");
    const axes = shapeInts(ctx, 1, "axes");
    if (axes == null) return ctx.fail("axes are missing");
    const r = x.rank() + axes.length;
    const ins = new Array<bool>(r);
    for (let i = 0; i < axes.length; i++) {
      const a = normAxis(axes[i], r);
      if (a < 0) return ctx.fail("axis " + axes[i].toString() + " is out of range for output rank " + r.toString());
      if (ins[a]) return ctx.fail("axis " + axes[i].toString() + " is repeated in " + listStr(axes));
      ins[a] = true;
    }
    const out = new Array<i32>(r);
    let j = 0;
    for (let i = 0; i < r; i++) out[i] = ins[i] ? 1 : x.lens[j++];
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Identity, Dropout

class IdentityOp extends Op {
  constructor() { super("Identity", OP_IDENTITY); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    return true;
  }
}

class DropoutOp extends Op {
  constructor() { super("Dropout", OP_IDENTITY); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (ctx.hasInput(2)) {
      // training mode drops at random: kiln runs inference only, so only ratio 0 is exact
      const tm = ctx.constant(2);
      if (tm == null) return ctx.needConstant(2, "training_mode");
      if (tm.elements() > 0 && tm.getAsF64(0) != 0) {
        let ratio: f64 = 0.5;
        if (ctx.hasInput(1)) {
          const rc = ctx.constant(1);
          if (rc == null) return ctx.needConstant(1, "ratio");
          ratio = rc.getAsF64(0);
        }
        if (ratio != 0) {
          diagnostics.push(new Diagnostic(E_UNSUPPORTED_OP, ctx.nodeName, ctx.opName,
            "training_mode is true with ratio " + ratio.toString() + ": random dropout is not supported (kiln runs inference)", ""));
          return false;
        }
      }
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    if (ctx.numOutputs > 1) ctx.out(Shape.standard(ctx.opset >= 10 ? DT_BOOL : x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    copyAll(ctx.output(0), ctx.input(0));
    if (ctx.outputs.length > 1) {
      const m = ctx.output(1);
      const n = m.elements();
      for (let i = 0; i < n; i++) m.setFromF64(i, 1);
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Transpose, DepthToSpace, SpaceToDepth

class TransposeOp extends Op {
  constructor() { super("Transpose"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    const perm = ctx.attrs.getInts("perm");
    const out = new Array<i32>(r);
    if (perm == null) {
      for (let i = 0; i < r; i++) out[i] = x.lens[r - 1 - i];
    } else {
      if (perm.length != r) return ctx.fail("perm " + listStr(perm) + " has " + perm.length.toString() + " entries for rank " + r.toString());
      const seen = new Array<bool>(r);
      for (let i = 0; i < r; i++) {
        const p = normAxis(perm[i], r);
        if (p < 0 || seen[p]) return ctx.fail("perm " + listStr(perm) + " is not a permutation of rank " + r.toString());
        seen[p] = true;
        out[i] = x.lens[p];
      }
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const st = stridesOf(x.shape.lens);
    const perm = ctx.attrs.getInts("perm");
    const vs = new Array<i32>(r);
    for (let i = 0; i < r; i++) vs[i] = perm == null ? st[r - 1 - i] : st[normAxis(perm[i], r)];
    copyView(y.ptr, x.ptr, x.shape.elementSize(), y.shape.lens, vs, 0);
    return true;
  }
}

/** The largest dim a shape holds (lens are i32). */
const I32_MAX: i64 = 0x7fffffff;

class DepthToSpaceOp extends Op {
  constructor() { super("DepthToSpace"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (x.rank() != 4) return ctx.fail("input must be rank 4 (N,C,H,W), got " + x.toString());
    const b64 = ctx.attrs.getInt("blocksize", 0);
    if (b64 <= 0) return ctx.fail("blocksize " + b64.toString() + " must be positive");
    // blocksize^2 must divide the channels, so it is at most their square root
    if (b64 > <i64>x.lens[1] || b64 * b64 > <i64>x.lens[1] || <i64>x.lens[1] % (b64 * b64) != 0) {
      return ctx.fail("channels " + x.lens[1].toString() + " are not divisible by blocksize^2 = " + (b64 * b64).toString());
    }
    const b = <i32>b64;
    if (<i64>x.lens[2] * b64 > I32_MAX || <i64>x.lens[3] * b64 > I32_MAX) return ctx.fail("output height or width overflows");
    ctx.out(Shape.standard(x.dtype, [x.lens[0], x.lens[1] / (b * b), x.lens[2] * b, x.lens[3] * b]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const b = <i32>ctx.attrs.getInt("blocksize", 0);
    const N = x.shape.lens[0], C = x.shape.lens[1], H = x.shape.lens[2], W = x.shape.lens[3];
    const C2 = C / (b * b);
    const HW = H * W;
    const crd = ctx.attrs.getString("mode", "DCR") == "CRD";
    const lens: Array<i32> = [N, C2, H, b, W, b];
    let strides: Array<i32>;
    if (crd) strides = [C * HW, b * b * HW, W, b * HW, 1, HW];
    else strides = [C * HW, HW, W, b * C2 * HW, 1, C2 * HW];
    copyView(ctx.output(0).ptr, x.ptr, x.shape.elementSize(), lens, strides, 0);
    return true;
  }
}

class SpaceToDepthOp extends Op {
  constructor() { super("SpaceToDepth"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (x.rank() != 4) return ctx.fail("input must be rank 4 (N,C,H,W), got " + x.toString());
    const b64 = ctx.attrs.getInt("blocksize", 0);
    if (b64 <= 0) return ctx.fail("blocksize " + b64.toString() + " must be positive");
    if (b64 > <i64>x.lens[2] || <i64>x.lens[2] % b64 != 0 || <i64>x.lens[3] % b64 != 0) {
      return ctx.fail("height and width are not divisible by blocksize " + b64.toString());
    }
    const b = <i32>b64;
    if (<i64>x.lens[1] * b64 * b64 > I32_MAX) return ctx.fail("output channels overflow");
    ctx.out(Shape.standard(x.dtype, [x.lens[0], x.lens[1] * b * b, x.lens[2] / b, x.lens[3] / b]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const b = <i32>ctx.attrs.getInt("blocksize", 0);
    const N = x.shape.lens[0], C = x.shape.lens[1], H = x.shape.lens[2], W = x.shape.lens[3];
    const HW = H * W;
    // input as [N,C,H/b,b,W/b,b] -> [N,b,b,C,H/b,W/b]
    const lens: Array<i32> = [N, b, b, C, H / b, W / b];
    const strides: Array<i32> = [C * HW, W, 1, HW, b * W, b];
    copyView(ctx.output(0).ptr, x.ptr, x.shape.elementSize(), lens, strides, 0);
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Concat, Split

class ConcatOp extends Op {
  constructor() { super("Concat"); }

  computeShape(ctx: ShapeContext): bool {
    if (ctx.count() == 0 || !ctx.hasInput(0)) return ctx.fail("needs at least one input");
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    if (!ctx.attrs.has("axis")) return ctx.fail("attribute 'axis' is required");
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    if (a < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", 0).toString() + " is out of range for rank " + r.toString());
    const out = x.lens.slice(0);
    let sum: i32 = 0;
    for (let i = 0; i < ctx.count(); i++) {
      if (!ctx.hasInput(i)) return ctx.fail("input " + i.toString() + " is missing");
      const s = ctx.input(i);
      if (s.dtype != x.dtype) return ctx.fail("input " + i.toString() + " is " + dtypeName(s.dtype) + ", input 0 is " + dtypeName(x.dtype));
      if (s.rank() != r) return ctx.fail("input " + i.toString() + " " + s.toString() + " has another rank than input 0 " + x.toString());
      for (let d = 0; d < r; d++) {
        if (d != a && s.lens[d] != x.lens[d]) {
          return ctx.fail("input " + i.toString() + " " + s.toString() + " differs from input 0 " + x.toString() + " outside axis " + a.toString());
        }
      }
      sum += s.lens[a];
    }
    out[a] = sum;
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const y = ctx.output(0);
    const r = y.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    const es = y.shape.elementSize();
    const outer = product(y.shape.lens, 0, a);
    const inner = product(y.shape.lens, a + 1, r) * es;
    const rowOut = <usize>(y.shape.lens[a] * inner);
    let off: usize = 0;
    for (let i = 0; i < ctx.inputs.length; i++) {
      const x = ctx.input(i);
      const chunk = <usize>(x.shape.lens[a] * inner);
      if (chunk == 0) continue;
      if (outer == 1) {
        memory.copy(y.ptr + off, x.ptr, chunk);
      } else {
        for (let o = 0; o < outer; o++) memory.copy(y.ptr + <usize>o * rowOut + off, x.ptr + <usize>o * chunk, chunk);
      }
      off += chunk;
    }
    return true;
  }
}

/** The split sizes of Split, or null after ctx.fail / needConstant. */
function splitSizes(ctx: ShapeContext, len: i32): Array<i32> | null {
  const n = ctx.numOutputs;
  const out = new Array<i32>();
  if (notConstant(ctx, 1)) {
    ctx.needConstant(1, "split");
    return null;
  }
  const sp = shapeInts(ctx, 1, "split");
  if (sp != null && sp.length > 0) {
    if (sp.length != n) {
      ctx.fail("split " + listStr(sp) + " has " + sp.length.toString() + " entries for " + n.toString() + " outputs");
      return null;
    }
    let sum: i64 = 0;
    for (let i = 0; i < sp.length; i++) {
      if (sp[i] < 0) {
        ctx.fail("split " + listStr(sp) + " has a negative size");
        return null;
      }
      sum += sp[i];
      out.push(<i32>sp[i]);
    }
    if (sum != <i64>len) {
      ctx.fail("split " + listStr(sp) + " sums to " + sum.toString() + ", the axis has length " + len.toString());
      return null;
    }
    return out;
  }
  let parts = n;
  if (ctx.attrs.has("num_outputs")) parts = <i32>ctx.attrs.getInt("num_outputs", n);
  if (parts <= 0 || parts != n) {
    ctx.fail("cannot split into " + parts.toString() + " parts for " + n.toString() + " outputs");
    return null;
  }
  if (ctx.opset < 18 && len % parts != 0) {
    ctx.fail("axis of length " + len.toString() + " does not split into " + parts.toString() + " equal parts");
    return null;
  }
  // equal parts; the last one smaller when the length does not divide (opset 18)
  const chunk = (len + parts - 1) / parts;
  let left = len;
  for (let i = 0; i < parts; i++) {
    const c = left < chunk ? left : chunk;
    out.push(c);
    left -= c;
  }
  return out;
}

class SplitOp extends Op {
  constructor() { super("Split"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    if (a < 0) return ctx.fail("axis " + ctx.attrs.getInt("axis", 0).toString() + " is out of range for rank " + r.toString());
    const sizes = splitSizes(ctx, x.lens[a]);
    if (sizes == null) return false;
    for (let i = 0; i < sizes.length; i++) {
      const l = x.lens.slice(0);
      l[a] = sizes[i];
      ctx.out(Shape.standard(x.dtype, l));
    }
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const r = x.shape.rank();
    const a = normAxis(ctx.attrs.getInt("axis", 0), r);
    const es = x.shape.elementSize();
    const outer = product(x.shape.lens, 0, a);
    const inner = product(x.shape.lens, a + 1, r) * es;
    const rowIn = <usize>(x.shape.lens[a] * inner);
    let off: usize = 0;
    for (let i = 0; i < ctx.outputs.length; i++) {
      const y = ctx.output(i);
      const chunk = <usize>(y.shape.lens[a] * inner);
      if (chunk == 0) continue;
      for (let o = 0; o < outer; o++) memory.copy(y.ptr + <usize>o * chunk, x.ptr + <usize>o * rowIn + off, chunk);
      off += chunk;
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Slice

class SliceParams {
  start: Array<i32>;
  step: Array<i32>;
  out: Array<i32>;
  err: string = "";

  constructor(r: i32) {
    this.start = new Array<i32>(r);
    this.step = new Array<i32>(r);
    this.out = new Array<i32>(r);
  }
}

function sliceParams(lens: Array<i32>, starts: Array<i64>, ends: Array<i64>, axes: Array<i64> | null,
  steps: Array<i64> | null): SliceParams {
  const r = lens.length;
  const p = new SliceParams(r);
  for (let d = 0; d < r; d++) {
    p.start[d] = 0;
    p.step[d] = 1;
    p.out[d] = lens[d];
  }
  if (starts.length != ends.length) {
    p.err = "starts " + listStr(starts) + " and ends " + listStr(ends) + " differ in length";
    return p;
  }
  if (axes != null && axes.length != starts.length) {
    p.err = "axes " + listStr(axes) + " and starts " + listStr(starts) + " differ in length";
    return p;
  }
  if (steps != null && steps.length != starts.length) {
    p.err = "steps " + listStr(steps) + " and starts " + listStr(starts) + " differ in length";
    return p;
  }
  const seen = new Array<bool>(r);
  for (let i = 0; i < starts.length; i++) {
    const a = axes == null ? (i < r ? i : -1) : normAxis(axes[i], r);
    if (a < 0) {
      p.err = "axis " + (axes == null ? i.toString() : axes[i].toString()) + " is out of range for rank " + r.toString();
      return p;
    }
    if (seen[a]) {
      p.err = "axis " + a.toString() + " is repeated";
      return p;
    }
    seen[a] = true;
    let step: i64 = steps == null ? 1 : steps[i];
    if (step < -0x7fffffff) step = -0x7fffffff;
    if (step > 0x7fffffff) step = 0x7fffffff;
    if (step == 0) {
      p.err = "step 0 on axis " + a.toString();
      return p;
    }
    const L = <i64>lens[a];
    let s = starts[i];
    let e = ends[i];
    if (s < 0) s += L;
    if (e < 0) e += L;
    let n: i64;
    if (step > 0) {
      s = s < 0 ? 0 : (s > L ? L : s);
      e = e < 0 ? 0 : (e > L ? L : e);
      n = e > s ? 1 + (e - s - 1) / step : 0;
    } else {
      s = s < 0 ? 0 : (s > L - 1 ? L - 1 : s);
      e = e < -1 ? -1 : (e > L - 1 ? L - 1 : e);
      n = s > e ? 1 + (s - e - 1) / -step : 0;
    }
    p.start[a] = <i32>s;
    p.step[a] = <i32>step;
    p.out[a] = <i32>n;
  }
  return p;
}

class SliceOp extends Op {
  constructor() { super("Slice"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "starts");
    if (notConstant(ctx, 2)) return ctx.needConstant(2, "ends");
    if (notConstant(ctx, 3)) return ctx.needConstant(3, "axes");
    if (notConstant(ctx, 4)) return ctx.needConstant(4, "steps");
    const starts = shapeInts(ctx, 1, "starts");
    const ends = shapeInts(ctx, 2, "ends");
    if (starts == null || ends == null) return ctx.fail("starts and ends are required");
    const p = sliceParams(x.lens, starts, ends, shapeInts(ctx, 3, "axes"), shapeInts(ctx, 4, "steps"));
    if (p.err.length > 0) return ctx.fail(p.err);
    ctx.out(Shape.standard(x.dtype, p.out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const starts = computeInts(ctx, 1, "starts");
    const ends = computeInts(ctx, 2, "ends");
    if (starts == null || ends == null) return ctx.fail("starts and ends are required");
    const p = sliceParams(x.shape.lens, starts, ends, computeInts(ctx, 3, "axes"), computeInts(ctx, 4, "steps"));
    if (p.err.length > 0) return ctx.fail(p.err);
    const st = stridesOf(x.shape.lens);
    const r = st.length;
    const vs = new Array<i32>(r);
    let base: i32 = 0;
    for (let d = 0; d < r; d++) {
      base += p.start[d] * st[d];
      vs[d] = p.step[d] * st[d];
    }
    copyView(ctx.output(0).ptr, x.ptr, x.shape.elementSize(), p.out, vs, base);
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Expand, Tile

function toLens(v: Array<i64>): Array<i32> {
  const a = new Array<i32>(v.length);
  for (let i = 0; i < v.length; i++) a[i] = <i32>v[i];
  return a;
}

class ExpandOp extends Op {
  constructor() { super("Expand"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "shape");
    const sh = ctx.constInts(1);
    if (sh == null) return ctx.fail("the target shape is missing (input 1)");
    for (let i = 0; i < sh.length; i++) {
      if (sh[i] < 0) return ctx.fail("cannot expand to " + listStr(sh) + ": negative dim");
    }
    const out = broadcastLens(x.lens, toLens(sh));
    if (out == null) return ctx.fail("cannot broadcast " + x.toString() + " to " + listStr(sh));
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = y.shape.rank();
    const xr = x.shape.rank();
    const st = stridesOf(x.shape.lens);
    const vs = new Array<i32>(r);
    for (let d = 0; d < r; d++) {
      const xd = d - (r - xr);
      vs[d] = xd < 0 || x.shape.lens[xd] == 1 ? 0 : st[xd];
    }
    copyView(y.ptr, x.ptr, x.shape.elementSize(), y.shape.lens, vs, 0);
    return true;
  }
}

class TileOp extends Op {
  constructor() { super("Tile"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "repeats");
    const rep = ctx.constInts(1);
    if (rep == null) return ctx.fail("repeats are missing (input 1)");
    const r = x.rank();
    if (rep.length != r) return ctx.fail("repeats " + listStr(rep) + " has " + rep.length.toString() + " entries for rank " + r.toString());
    const out = new Array<i32>(r);
    for (let i = 0; i < r; i++) {
      if (rep[i] < 0) return ctx.fail("repeats " + listStr(rep) + " has a negative entry");
      out[i] = x.lens[i] * <i32>rep[i];
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const rep = ctx.input(1).toI64Array();
    const st = stridesOf(x.shape.lens);
    // output dim d of length rep*L is the row-major pair (q < rep, i < L): a view [rep0,L0,rep1,L1,..]
    const lens = new Array<i32>(2 * r);
    const vs = new Array<i32>(2 * r);
    for (let d = 0; d < r; d++) {
      lens[2 * d] = <i32>rep[d];
      vs[2 * d] = 0;
      lens[2 * d + 1] = x.shape.lens[d];
      vs[2 * d + 1] = st[d];
    }
    copyView(y.ptr, x.ptr, x.shape.elementSize(), lens, vs, 0);
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Pad

const PAD_CONSTANT: i32 = 0;
const PAD_REFLECT: i32 = 1;
const PAD_EDGE: i32 = 2;
const PAD_WRAP: i32 = 3;

function padMode(s: string): i32 {
  if (s == "constant") return PAD_CONSTANT;
  if (s == "reflect") return PAD_REFLECT;
  if (s == "edge") return PAD_EDGE;
  if (s == "wrap") return PAD_WRAP;
  return -1;
}

/** Source index of padded index i (relative to the unpadded start), or -1 for the constant. */
// @ts-ignore: decorator
@inline
function padSource(i: i32, L: i32, mode: i32): i32 {
  if (i >= 0 && i < L) return i;
  if (mode == PAD_CONSTANT || L == 0) return -1;
  if (mode == PAD_EDGE) return i < 0 ? 0 : L - 1;
  if (mode == PAD_WRAP) {
    const m = i % L;
    return m < 0 ? m + L : m;
  }
  if (L == 1) return 0;
  const period = 2 * (L - 1);
  let m = i % period;
  if (m < 0) m += period;
  return m >= L ? period - m : m;
}

/** Per-dim begin and end pads (length 2*rank), or null with ctx.fail. */
function padsPerDim(pads: Array<i64>, axes: Array<i64> | null, r: i32): Array<i32> | null {
  const out = new Array<i32>(2 * r);
  const k = axes == null ? r : axes.length;
  if (pads.length != 2 * k) return null;
  for (let i = 0; i < k; i++) {
    const a = axes == null ? i : normAxis(axes[i], r);
    if (a < 0) return null;
    out[a] = <i32>pads[i];
    out[a + r] = <i32>pads[i + k];
  }
  return out;
}

class PadOp extends Op {
  constructor() { super("Pad"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    const mode = padMode(ctx.attrs.getString("mode", "constant"));
    if (mode < 0) return ctx.fail("mode '" + ctx.attrs.getString("mode", "") + "' is not one of constant, reflect, edge, wrap");
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "pads");
    if (notConstant(ctx, 3)) return ctx.needConstant(3, "axes");
    const pads = shapeInts(ctx, 1, "pads");
    if (pads == null) return ctx.fail("pads are missing");
    const axes = ctx.hasInput(3) ? ctx.constInts(3) : null;
    const pd = padsPerDim(pads, axes, r);
    if (pd == null) return ctx.fail("pads " + listStr(pads) + " do not match rank " + r.toString() + (axes == null ? "" : " and axes " + listStr(axes)));
    const out = new Array<i32>(r);
    for (let d = 0; d < r; d++) {
      const n = x.lens[d] + pd[d] + pd[d + r];
      if (n < 0) return ctx.fail("pads " + listStr(pads) + " remove more than axis " + d.toString() + " holds");
      if (mode != PAD_CONSTANT && x.lens[d] == 0 && n > 0) return ctx.fail("cannot pad empty axis " + d.toString() + " in mode '" + ctx.attrs.getString("mode", "") + "'");
      out[d] = n;
    }
    ctx.out(Shape.standard(x.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const es = x.shape.elementSize();
    const mode = padMode(ctx.attrs.getString("mode", "constant"));
    const pads = computeInts(ctx, 1, "pads");
    if (pads == null) return ctx.fail("pads are missing");
    const pd = padsPerDim(pads, ctx.hasInput(3) ? ctx.input(3).toI64Array() : null, r);
    if (pd == null) return ctx.fail("pads " + listStr(pads) + " do not match the input rank");
    // the constant, as one element of the output type
    const cv = new Tensor(Shape.scalar(x.shape.dtype), heap.alloc(8));
    store<u64>(cv.ptr, 0);
    if (ctx.hasInput(2) && ctx.input(2).elements() > 0) {
      copyEl(cv.ptr, ctx.input(2).ptr, es);
    } else if (ctx.attrs.has("value")) {
      cv.setFromF64(0, <f64>ctx.attrs.getFloat("value", 0));
    }
    const cvZero = load<u64>(cv.ptr) == 0;
    const total = y.elements();
    if (total == 0) {
      heap.free(cv.ptr);
      return true;
    }
    if (r == 0) {
      copyEl(y.ptr, x.ptr, es);
      heap.free(cv.ptr);
      return true;
    }
    const inL = x.shape.lens;
    const outL = y.shape.lens;
    const st = stridesOf(inL);
    const lastOut = outL[r - 1];
    const lastIn = inL[r - 1];
    const b = pd[r - 1];
    const rows = total / lastOut;
    const cnt = new StaticArray<i32>(r);
    const rowBytes = <usize>(lastOut * es);
    // the in-range run of the last axis: j in [jlo, jhi)
    let jlo = b > 0 ? b : 0;
    let jhi = b + lastIn < lastOut ? b + lastIn : lastOut;
    if (jhi < jlo) jhi = jlo;
    for (let row = 0; row < rows; row++) {
      const d = y.ptr + <usize>row * rowBytes;
      let off: i32 = 0;
      let outside = false;
      for (let k = 0; k < r - 1; k++) {
        const si = padSource(cnt[k] - pd[k], inL[k], mode);
        if (si < 0) {
          outside = true;
          break;
        }
        off += si * st[k];
      }
      if (outside) {
        if (!cvZero) fillEl(d, cv.ptr, es, lastOut);
      } else {
        const sp = x.ptr + <usize>(off * es);
        if (jhi > jlo) memory.copy(d + <usize>(jlo * es), sp + <usize>((jlo - b) * es), <usize>((jhi - jlo) * es));
        for (let j = 0; j < lastOut; j++) {
          if (j == jlo && jhi > jlo) {
            j = jhi - 1;
            continue;
          }
          const si = padSource(j - b, lastIn, mode);
          if (si < 0) {
            if (!cvZero) copyEl(d + <usize>(j * es), cv.ptr, es);
          } else {
            copyEl(d + <usize>(j * es), sp + <usize>(si * es), es);
          }
        }
      }
      for (let k = r - 2; k >= 0; k--) {
        const c = cnt[k] + 1;
        if (c < outL[k]) {
          cnt[k] = c;
          break;
        }
        cnt[k] = 0;
      }
    }
    heap.free(cv.ptr);
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Shape, Size, ConstantOfShape, Range, EyeLike, Trilu

function shapeRange(ctx: ShapeContext, r: i32, which: i32): i32 {
  let s = ctx.attrs.getInt("start", 0);
  let e = ctx.attrs.getInt("end", <i64>r);
  if (s < 0) s += r;
  if (e < 0) e += r;
  s = s < 0 ? 0 : (s > r ? r : s);
  e = e < 0 ? 0 : (e > r ? r : e);
  if (e < s) e = s;
  return which == 0 ? <i32>s : <i32>e;
}

class ShapeOp extends Op {
  constructor() { super("Shape", OP_SHAPE_ONLY); }

  computeShape(ctx: ShapeContext): bool {
    const r = ctx.input(0).rank();
    const s = shapeRange(ctx, r, 0);
    const e = shapeRange(ctx, r, 1);
    ctx.out(Shape.standard(DT_INT64, [e - s]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const lens = ctx.input(0).shape.lens;
    const r = lens.length;
    let s = ctx.attrs.getInt("start", 0);
    let e = ctx.attrs.getInt("end", <i64>r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    s = s < 0 ? 0 : (s > r ? r : s);
    e = e < 0 ? 0 : (e > r ? r : e);
    const y = ctx.output(0);
    for (let i = <i32>s; i < <i32>e; i++) store<i64>(y.ptr + (<usize>(i - <i32>s) << 3), <i64>lens[i]);
    return true;
  }
}

class SizeOp extends Op {
  constructor() { super("Size", OP_SHAPE_ONLY); }

  computeShape(ctx: ShapeContext): bool {
    ctx.out(Shape.scalar(DT_INT64));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    store<i64>(ctx.output(0).ptr, <i64>ctx.input(0).elements());
    return true;
  }
}

class ConstantOfShapeOp extends Op {
  constructor() { super("ConstantOfShape"); }

  computeShape(ctx: ShapeContext): bool {
    if (notConstant(ctx, 0)) return ctx.needConstant(0, "shape");
    const sh = ctx.constInts(0);
    if (sh == null) return ctx.fail("the shape input is missing");
    for (let i = 0; i < sh.length; i++) if (sh[i] < 0) return ctx.fail("shape " + listStr(sh) + " has a negative dim");
    const v = ctx.attrs.getTensor("value");
    const dt = v == null ? DT_FLOAT : v.shape.dtype;
    if (!movable(dt)) return ctx.fail("value has unsupported element type " + dtypeName(dt));
    if (v != null && v.elements() != 1) return ctx.fail("value must hold one element, it holds " + v.elements().toString());
    ctx.out(Shape.standard(dt, toLens(sh)));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const v = ctx.attrs.getTensor("value");
    if (v == null) return true;
    const y = ctx.output(0);
    fillEl(y.ptr, v.ptr, y.shape.elementSize(), y.elements());
    return true;
  }
}

class RangeOp extends Op {
  constructor() { super("Range"); }

  computeShape(ctx: ShapeContext): bool {
    const t = ctx.input(0);
    for (let i = 0; i < 3; i++) {
      if (!ctx.hasInput(i)) return ctx.fail("input " + i.toString() + " is missing");
      if (ctx.input(i).elements() != 1) return ctx.fail("input " + i.toString() + " must be a scalar, got " + ctx.input(i).toString());
      if (ctx.input(i).dtype != t.dtype) return ctx.fail("start, limit and delta must have one element type");
    }
    if (!movable(t.dtype) || t.dtype == DT_BOOL) return ctx.failDtype(0);
    if (notConstant(ctx, 0)) return ctx.needConstant(0, "start");
    if (notConstant(ctx, 1)) return ctx.needConstant(1, "limit");
    if (notConstant(ctx, 2)) return ctx.needConstant(2, "delta");
    const n = rangeCount(changetype<Tensor>(ctx.constant(0)), changetype<Tensor>(ctx.constant(1)), changetype<Tensor>(ctx.constant(2)));
    if (n < 0) return ctx.fail("delta is 0");
    if (n > 0x7fffffff) return ctx.fail("the range holds too many elements (" + n.toString() + ")");
    ctx.out(Shape.standard(t.dtype, [<i32>n]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const s = ctx.input(0);
    const d = ctx.input(2);
    const y = ctx.output(0);
    const n = y.elements();
    if (isFloat(s.shape.dtype)) {
      const a = s.getAsF64(0);
      const b = d.getAsF64(0);
      if (s.shape.dtype == DT_FLOAT) {
        // float32 arithmetic, as numpy.arange and onnxruntime do
        const af = <f32>a;
        const bf = <f32>b;
        for (let i = 0; i < n; i++) store<f32>(y.ptr + (<usize>i << 2), af + <f32>i * bf);
      } else if (s.shape.dtype == DT_DOUBLE) {
        for (let i = 0; i < n; i++) store<f64>(y.ptr + (<usize>i << 3), a + <f64>i * b);
      } else {
        for (let i = 0; i < n; i++) y.setFromF64(i, a + <f64>i * b);
      }
    } else {
      const a = s.getAsI64(0);
      const b = d.getAsI64(0);
      for (let i = 0; i < n; i++) y.setFromI64(i, a + <i64>i * b);
    }
    return true;
  }
}

/** Elements of Range(start, limit, delta); -1 when delta is 0. */
function rangeCount(s: Tensor, l: Tensor, d: Tensor): i64 {
  if (isFloat(s.shape.dtype)) {
    const a = s.getAsF64(0), b = l.getAsF64(0), c = d.getAsF64(0);
    if (c == 0) return -1;
    const n = Math.ceil((b - a) / c);
    return n > 0 ? <i64>n : 0;
  }
  const a = s.getAsI64(0), b = l.getAsI64(0), c = d.getAsI64(0);
  if (c == 0) return -1;
  let n: i64;
  if (c > 0) n = b > a ? (b - a + c - 1) / c : 0;
  else n = a > b ? (a - b - c - 1) / -c : 0;
  return n;
}

class EyeLikeOp extends Op {
  constructor() { super("EyeLike"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (x.rank() != 2) return ctx.fail("input must be rank 2, got " + x.toString());
    const dt = <i32>ctx.attrs.getInt("dtype", <i64>x.dtype);
    if (!movable(dt)) return ctx.fail("dtype " + dtypeName(dt) + " is not supported");
    ctx.out(Shape.standard(dt, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const y = ctx.output(0);
    const R = y.shape.lens[0], C = y.shape.lens[1];
    const k = <i32>ctx.attrs.getInt("k", 0);
    for (let i = 0; i < R; i++) {
      const j = i + k;
      if (j >= 0 && j < C) y.setFromF64(i * C + j, 1);
    }
    return true;
  }
}

class TriluOp extends Op {
  constructor() { super("Trilu"); }

  computeShape(ctx: ShapeContext): bool {
    const x = ctx.input(0);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (x.rank() < 2) return ctx.fail("input must have rank 2 or more, got " + x.toString());
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const y = ctx.output(0);
    const r = x.shape.rank();
    const N = x.shape.lens[r - 2], M = x.shape.lens[r - 1];
    const es = x.shape.elementSize();
    const k: i64 = ctx.hasInput(1) && ctx.input(1).elements() > 0 ? ctx.input(1).getAsI64(0) : 0;
    const upper = ctx.attrs.getInt("upper", 1) != 0;
    const mats = product(x.shape.lens, 0, r - 2);
    const rowBytes = <usize>(M * es);
    for (let m = 0; m < mats; m++) {
      for (let i = 0; i < N; i++) {
        const base = (<usize>m * <usize>N + <usize>i) * rowBytes;
        let lo: i64, hi: i64;
        if (upper) {
          lo = <i64>i + k;
          hi = <i64>M;
        } else {
          lo = 0;
          hi = <i64>i + k + 1;
        }
        if (lo < 0) lo = 0;
        if (hi > <i64>M) hi = <i64>M;
        if (hi > lo) memory.copy(y.ptr + base + <usize>(<i32>lo * es), x.ptr + base + <usize>(<i32>lo * es), <usize>((<i32>hi - <i32>lo) * es));
      }
    }
    return true;
  }
}

export function registerShapeOps(): void {
  registerOp(new ReshapeOp());
  registerOp(new FlattenOp());
  registerOp(new SqueezeOp());
  registerOp(new UnsqueezeOp());
  registerOp(new IdentityOp());
  registerOp(new DropoutOp());
  registerOp(new TransposeOp());
  registerOp(new DepthToSpaceOp());
  registerOp(new SpaceToDepthOp());
  registerOp(new ConcatOp());
  registerOp(new SplitOp());
  registerOp(new SliceOp());
  registerOp(new ExpandOp());
  registerOp(new TileOp());
  registerOp(new PadOp());
  registerOp(new ShapeOp());
  registerOp(new SizeOp());
  registerOp(new ConstantOfShapeOp());
  registerOp(new RangeOp());
  registerOp(new EyeLikeOp());
  registerOp(new TriluOp());
}

