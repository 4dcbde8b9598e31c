// Linear quantization: QuantizeLinear, DequantizeLinear (per tensor, per axis or blocked) and
// DynamicQuantizeLinear (uint8, scale and zero point from the data's range). The integer
// matrix products and convolutions are in qlinear.ts.
import { DT_FLOAT, DT_INT16, DT_INT32, DT_INT8, DT_UINT16, DT_UINT8, dtypeName, dtypeSize, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { registerQLinear } from "./qlinear";
import { loadF64, loadI64, storeF64, storeI64 } from "../../kernels/eltwise";

/** The least value of integer type dt (quantization saturates to it). */
export function qmin(dt: i32): f64 {
  switch (dt) {
    case DT_INT8: return -128;
    case DT_INT16: return -32768;
    case DT_INT32: return -2147483648;
    default: return 0;
  }
}

/** The greatest value of integer type dt. */
export function qmax(dt: i32): f64 {
  switch (dt) {
    case DT_INT8: return 127;
    case DT_UINT8: return 255;
    case DT_INT16: return 32767;
    case DT_UINT16: return 65535;
    case DT_INT32: return 2147483647;
    default: return 4294967295;
  }
}

/**
 * Quantizes one value: divide in float32 (as onnxruntime and the ONNX reference do), round half
 * to even, add the zero point, saturate to dt's range.
 */
function quantize(v: f64, scale: f64, zp: f64, dt: i32): f64 {
  const q = <f64>nearest<f32>(<f32>v / <f32>scale) + zp;
  return q < qmin(dt) ? qmin(dt) : (q > qmax(dt) ? qmax(dt) : q);
}

/**
 * Where element i of x finds its scale and zero point: per tensor (index 0), per axis
 * (index = i's coordinate on `axis`) or blocked (opset 21: x's coordinates with the one on
 * `axis` divided by block_size).
 */
class QLayout {
  perTensor: bool = true;
  /** x's dim on axis, and the product of x's dims after it. */
  len: i32 = 1;
  inner: i32 = 1;
  /** block_size (0: per axis) and scale's dim on axis. */
  block: i32 = 0;
  blocks: i32 = 1;

  index(i: i32): i32 {
    if (this.perTensor) return 0;
    const a = (i / this.inner) % this.len;
    if (this.block == 0) return a;
    const o = i / (this.inner * this.len);
    return (o * this.blocks + a / this.block) * this.inner + i % this.inner;
  }
}

function qLayout(x: Shape, scale: Shape, axisAttr: i64, block: i64): QLayout {
  const m = new QLayout();
  if (block <= 0 && scale.elements() <= 1) return m;
  m.perTensor = false;
  const r = x.rank();
  const axis = <i32>(axisAttr < 0 ? axisAttr + r : axisAttr);
  m.len = x.lens[axis];
  for (let i = axis + 1; i < r; i++) m.inner *= x.lens[i];
  if (block > 0) {
    m.block = <i32>block;
    m.blocks = scale.lens[axis];
  }
  return m;
}

/** Checks axis, block_size and the shapes of the scale (input 1) and zero point (input 2) against x. */
function checkLayout(ctx: ShapeContext, scaleName: string, zpName: string): bool {
  const x = ctx.input(0), s = ctx.input(1);
  if (!isFloat(s.dtype)) return ctx.fail(scaleName + " must be a float tensor, got " + s.toString());
  const a = ctx.attrs.getInt("axis", 1);
  const block = ctx.attrs.getInt("block_size", 0);
  if (block < 0) return ctx.fail("block_size " + block.toString() + " is negative");
  if (ctx.hasInput(2)) {
    const z = ctx.input(2);
    if (!(z.sameLens(s) || (z.elements() == 1 && s.elements() == 1))) {
      return ctx.fail(zpName + " " + z.toString() + " must have the shape of " + scaleName + " " + s.toString());
    }
  }
  if (block == 0 && s.elements() <= 1) {
    if (s.elements() == 0) return ctx.fail(scaleName + " " + s.toString() + " is empty");
    return true;
  }
  const r = x.rank();
  const axis = a < 0 ? a + r : a;
  if (axis < 0 || axis >= r) return ctx.fail("axis " + a.toString() + " is out of range for " + x.toString());
  const d = x.lens[<i32>axis];
  if (block == 0) {
    if (s.rank() != 1 || s.lens[0] != d) {
      return ctx.fail(scaleName + " " + s.toString() + " must be a scalar or have " + d.toString() + " elements (x's dim " +
        axis.toString() + ")");
    }
    return true;
  }
  if (block > 0x7fffffff) return ctx.fail("block_size " + block.toString() + " is too large");
  const want = Shape.standard(s.dtype, x.lens);
  want.lens[<i32>axis] = <i32>((<i64>d + block - 1) / block);
  if (!s.sameLens(want)) {
    return ctx.fail(scaleName + " " + s.toString() + " must be " + want.toString() + " for block_size " + block.toString() +
      " on axis " + axis.toString());
  }
  return true;
}

class QuantizeOp extends Op {
  constructor() {
    super("QuantizeLinear", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs x and y_scale are required");
    if (!isFloat(ctx.input(0).dtype) && ctx.input(0).dtype != DT_INT32) return ctx.failDtype(0);
    let to = DT_UINT8;
    const attr = ctx.attrs.has("output_dtype") ? <i32>ctx.attrs.getInt("output_dtype", 0) : 0;
    if (ctx.hasInput(2)) {
      to = ctx.input(2).dtype;
      if (attr != 0 && attr != to) {
        return ctx.fail("output_dtype " + dtypeName(attr) + " differs from y_zero_point's element type " + dtypeName(to));
      }
    } else if (attr != 0) {
      to = attr;
    }
    if (to != DT_UINT8 && to != DT_INT8 && to != DT_UINT16 && to != DT_INT16) {
      return ctx.fail("quantizing to " + dtypeName(to) + " is not supported (kiln quantizes to uint8, int8, uint16 and " +
        "int16; it has no 4-bit or float8 tensors)");
    }
    if (!checkLayout(ctx, "y_scale", "y_zero_point")) return false;
    ctx.out(Shape.standard(to, ctx.input(0).lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), s = ctx.input(1), o = ctx.output(0);
    const zp: Tensor | null = ctx.hasInput(2) ? ctx.input(2) : null;
    const m = qLayout(x.shape, s.shape, ctx.attrs.getInt("axis", 1), ctx.attrs.getInt("block_size", 0));
    const dt = o.shape.dtype, xd = x.shape.dtype, sd = s.shape.dtype;
    const xs = <usize>dtypeSize(xd), os = <usize>dtypeSize(dt), ss = <usize>dtypeSize(sd);
    const n = x.elements();
    for (let i = 0; i < n; i++) {
      const k = m.index(i);
      const z: f64 = zp != null ? <f64>loadI64(dt, zp.ptr + <usize>k * os) : 0;
      const q = quantize(loadF64(xd, x.ptr + <usize>i * xs), loadF64(sd, s.ptr + <usize>k * ss), z, dt);
      storeI64(dt, o.ptr + <usize>i * os, <i64>q);
    }
    return true;
  }
}

class DequantizeOp extends Op {
  constructor() {
    super("DequantizeLinear", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs x and x_scale are required");
    const xd = ctx.input(0).dtype;
    if (xd != DT_UINT8 && xd != DT_INT8 && xd != DT_UINT16 && xd != DT_INT16 && xd != DT_INT32) return ctx.failDtype(0);
    if (ctx.hasInput(2) && ctx.input(2).dtype != xd) {
      return ctx.fail("x_zero_point's element type " + dtypeName(ctx.input(2).dtype) + " differs from x's " + dtypeName(xd));
    }
    if (!checkLayout(ctx, "x_scale", "x_zero_point")) return false;
    ctx.out(Shape.standard(ctx.input(1).dtype, ctx.input(0).lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), s = ctx.input(1), o = ctx.output(0);
    const zp: Tensor | null = ctx.hasInput(2) ? ctx.input(2) : null;
    const m = qLayout(x.shape, s.shape, ctx.attrs.getInt("axis", 1), ctx.attrs.getInt("block_size", 0));
    const xd = x.shape.dtype, sd = s.shape.dtype, od = o.shape.dtype;
    const xs = <usize>dtypeSize(xd), ss = <usize>dtypeSize(sd), os = <usize>dtypeSize(od);
    const n = x.elements();
    for (let i = 0; i < n; i++) {
      const k = m.index(i);
      const z: f64 = zp != null ? <f64>loadI64(xd, zp.ptr + <usize>k * xs) : 0;
      const v = (<f64>loadI64(xd, x.ptr + <usize>i * xs) - z) * loadF64(sd, s.ptr + <usize>k * ss);
      storeF64(od, o.ptr + <usize>i * os, v);
    }
    return true;
  }
}

class DynamicQuantizeOp extends Op {
  constructor() {
    super("DynamicQuantizeLinear", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input x is required");
    if (ctx.input(0).dtype != DT_FLOAT) return ctx.failDtype(0);
    ctx.out(Shape.standard(DT_UINT8, ctx.input(0).lens));
    if (ctx.numOutputs > 1) ctx.out(Shape.scalar(DT_FLOAT));
    if (ctx.numOutputs > 2) ctx.out(Shape.scalar(DT_UINT8));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const n = x.elements();
    let lo: f64 = 0, hi: f64 = 0;
    for (let i = 0; i < n; i++) {
      const v = <f64>load<f32>(x.ptr + (<usize>i << 2));
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const scale = <f64><f32>((hi - lo) / 255.0);
    const zp = scale == 0 ? 0 : quantize(-lo, scale, 0, DT_UINT8);
    const y = ctx.output(0);
    for (let i = 0; i < n; i++) {
      const v = <f64>load<f32>(x.ptr + (<usize>i << 2));
      store<u8>(y.ptr + <usize>i, scale == 0 ? <u8>zp : <u8>quantize(v, scale, zp, DT_UINT8));
    }
    if (ctx.outputs.length > 1) store<f32>(ctx.output(1).ptr, <f32>scale);
    if (ctx.outputs.length > 2) store<u8>(ctx.output(2).ptr, <u8>zp);
    return true;
  }
}

export function registerQuant(): void {
  registerOp(new QuantizeOp());
  registerOp(new DequantizeOp());
  registerOp(new DynamicQuantizeOp());
  registerQLinear();
}
