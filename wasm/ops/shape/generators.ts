// Ops that make values from shapes, scalars or positions: Shape, Size, ConstantOfShape, Range,
// EyeLike, and Trilu (keeps the upper or lower triangle of the last two axes).
import { DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_INT64, dtypeName, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, Op, OP_SHAPE_ONLY, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { fillEl, listStr, movable, notConstant, product, toLens } from "../data/util";

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

export function registerGeneratorOps(): void {
  registerOp(new ShapeOp());
  registerOp(new SizeOp());
  registerOp(new ConstantOfShapeOp());
  registerOp(new RangeOp());
  registerOp(new EyeLikeOp());
  registerOp(new TriluOp());
}
