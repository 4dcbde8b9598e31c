// Linear quantization: QuantizeLinear, DequantizeLinear (per tensor or per axis) and
// DynamicQuantizeLinear (uint8, scale and zero point from the data's range).
import { DT_FLOAT, DT_INT16, DT_INT32, DT_INT8, DT_UINT16, DT_UINT8, dtypeSize, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { loadF64, loadI64, storeF64, storeI64 } from "../../kernels/eltwise";

function qmin(dt: i32): f64 {
  switch (dt) {
    case DT_INT8: return -128;
    case DT_INT16: return -32768;
    case DT_INT32: return -2147483648;
    default: return 0;
  }
}

function qmax(dt: i32): f64 {
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

/** The per-axis layout of a scale: element i of x uses scale[(i / inner) % count]. */
class AxisMap {
  inner: i32 = 1;
  count: i32 = 1;
}

function axisMap(x: Shape, scale: Shape, axisAttr: i64): AxisMap {
  const m = new AxisMap();
  if (scale.elements() <= 1) return m;
  const r = x.rank();
  const axis = <i32>(axisAttr < 0 ? axisAttr + r : axisAttr);
  m.count = x.lens[axis];
  for (let i = axis + 1; i < r; i++) m.inner *= x.lens[i];
  return m;
}

function checkAxis(ctx: ShapeContext): bool {
  const x = ctx.input(0), s = ctx.input(1);
  if (s.elements() <= 1) return true;
  const a = ctx.attrs.getInt("axis", 1);
  const axis = a < 0 ? a + x.rank() : a;
  if (axis < 0 || axis >= x.rank()) return ctx.fail("axis " + a.toString() + " is out of range for " + x.toString());
  if (s.rank() != 1 || s.lens[0] != x.lens[<i32>axis]) {
    return ctx.fail("scale " + s.toString() + " must be a scalar or have " + x.lens[<i32>axis].toString() + " elements");
  }
  return true;
}

class QuantizeOp extends Op {
  constructor() {
    super("QuantizeLinear", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs x and y_scale are required");
    if (!isFloat(ctx.input(0).dtype) && ctx.input(0).dtype != DT_INT32) return ctx.failDtype(0);
    let to = DT_UINT8;
    if (ctx.hasInput(2)) to = ctx.input(2).dtype;
    else if (ctx.attrs.has("output_dtype")) to = <i32>ctx.attrs.getInt("output_dtype", DT_UINT8);
    if (to != DT_UINT8 && to != DT_INT8 && to != DT_UINT16 && to != DT_INT16 && to != DT_INT32) {
      return ctx.fail("unsupported quantized element type " + to.toString());
    }
    if (!checkAxis(ctx)) return false;
    ctx.out(Shape.standard(to, ctx.input(0).lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), s = ctx.input(1), o = ctx.output(0);
    const zp: Tensor | null = ctx.hasInput(2) ? ctx.input(2) : null;
    const m = axisMap(x.shape, s.shape, ctx.attrs.getInt("axis", 1));
    const dt = o.shape.dtype, xd = x.shape.dtype, sd = s.shape.dtype;
    const xs = <usize>dtypeSize(xd), os = <usize>dtypeSize(dt), ss = <usize>dtypeSize(sd);
    const n = x.elements();
    for (let i = 0; i < n; i++) {
      const k = (i / m.inner) % m.count;
      const z: f64 = zp != null ? <f64>loadI64(dt, zp.ptr + <usize>k * os) : 0;
      const q = quantize(loadF64(xd, x.ptr + <usize>i * xs), loadF64(sd, s.ptr + <usize>k * ss), z, dt);
      storeI64(dt, o.ptr + <usize>i * os, <i64>q);
    }
    return true;
  }
}

class DequantizeOp extends Op {
  constructor() {
    super("DequantizeLinear", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs x and x_scale are required");
    if (isFloat(ctx.input(0).dtype)) return ctx.failDtype(0);
    if (!isFloat(ctx.input(1).dtype)) return ctx.failDtype(1);
    if (!checkAxis(ctx)) return false;
    ctx.out(Shape.standard(ctx.input(1).dtype, ctx.input(0).lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), s = ctx.input(1), o = ctx.output(0);
    const zp: Tensor | null = ctx.hasInput(2) ? ctx.input(2) : null;
    const m = axisMap(x.shape, s.shape, ctx.attrs.getInt("axis", 1));
    const xd = x.shape.dtype, sd = s.shape.dtype, od = o.shape.dtype;
    const xs = <usize>dtypeSize(xd), ss = <usize>dtypeSize(sd), os = <usize>dtypeSize(od);
    const n = x.elements();
    for (let i = 0; i < n; i++) {
      const k = (i / m.inner) % m.count;
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
}
