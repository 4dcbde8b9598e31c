// Elementwise ops: binary arithmetic and comparisons with numpy broadcasting, variadic
// Min/Max/Sum/Mean, Where, unary math and activations, Cast/CastLike.
import { Attrs } from "../ir/attrs";
import { Tensor } from "../ir/tensor";
import { Shape, broadcastLens } from "../ir/shape";
import {
  DT_BFLOAT16, DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_FLOAT16, DT_INT16, DT_INT32, DT_INT64, DT_INT8,
  DT_UINT16, DT_UINT32, DT_UINT64, DT_UINT8, dtypeName, dtypeSize, isFloat, isSupported,
} from "../ir/dtype";
import { ComputeContext, Op, OP_COMMUTATIVE, OP_ELEMENTWISE, OP_KEEPS_EXTENT, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";
import { registerQuant } from "./math/quant";
import { registerWindows } from "./math/window";
import {
  B_ADD, B_AND, B_DIV, B_FMOD, B_MAX, B_MIN, B_MOD, B_MUL, B_OR, B_POW, B_PRELU, B_SECOND, B_SHL,
  B_SHR, B_SUB, B_XOR, Bcast, binF64, binRow, binRowF32, C_EQ, C_GE, C_GT, C_LE, C_LT, cmpF64, cmpRow,
  f32SimdBinary, loadF64, loadI64, selRowU32, storeF64, storeI64,
} from "../kernels/eltwise";
import { binRowsF32Par, rowOffsets, unaryF32Par, unaryTestF32Par, whereRowsPar } from "../kernels/par_eltwise";
import { threadCount } from "../kernels/threads";
import {
  U_ABS, U_ACOS, U_ACOSH, U_ASIN, U_ASINH, U_ATAN, U_ATANH, U_BITNOT, U_CEIL, U_CELU, U_CLIP, U_COS,
  U_COSH, U_ELU, U_ERF, U_EXP, U_FLOOR, U_GELU, U_GELU_TANH, U_HSIG, U_HSWISH, U_ISINF, U_ISNAN, U_LEAKY,
  U_LOG, U_MISH, U_NEG, U_NOT, U_RECIP, U_RELU, U_ROUND, U_SELU, U_SHRINK, U_SIGMOID, U_SIGN, U_SIN,
  U_SINH, U_SOFTPLUS, U_SOFTSIGN, U_SQRT, U_SQUARE, U_CUBE, U_TAN, U_TANH, U_THRELU,
  unaryF64, unaryI64, unarySimd,
} from "./math/unary";

// ---- helpers shared with other math files ----

/**
 * The broadcast lens of inputs [first, first+count); null after recording
 * "cannot broadcast float32[2,3] with float32[4]".
 */
export function broadcastAll(ctx: ShapeContext, first: i32, count: i32): Array<i32> | null {
  let lens = ctx.input(first).lens;
  for (let i = first + 1; i < first + count; i++) {
    const b = broadcastLens(lens, ctx.input(i).lens);
    if (b == null) {
      ctx.fail("cannot broadcast " + Shape.standard(ctx.input(first).dtype, lens).toString() + " with " +
        ctx.input(i).toString());
      return null;
    }
    lens = b;
  }
  return lens;
}

/** Checks that inputs [first, first+count) share one element type; records a diagnostic if not. */
export function sameDtypes(ctx: ShapeContext, first: i32, count: i32): bool {
  const dt = ctx.input(first).dtype;
  for (let i = first + 1; i < first + count; i++) {
    if (ctx.input(i).dtype != dt) {
      return ctx.fail("element types differ: input " + first.toString() + " is " + dtypeName(dt) + ", input " +
        i.toString() + " is " + dtypeName(ctx.input(i).dtype));
    }
  }
  return true;
}

function requireInputs(ctx: ShapeContext, n: i32): bool {
  for (let i = 0; i < n; i++) {
    if (!ctx.hasInput(i)) return ctx.fail("input " + i.toString() + " is required");
  }
  return true;
}

function binRows<T>(bc: Bcast, op: i32, a: usize, b: usize, o: usize): void {
  const sz = <usize>sizeof<T>();
  const inner = bc.inner;
  const sa = unchecked(bc.istr[0]);
  const sb = unchecked(bc.istr[1]);
  for (let r = 0; r < bc.rows; r++) {
    binRow<T>(op, a + <usize>unchecked(bc.off[0]) * sz, sa, b + <usize>unchecked(bc.off[1]) * sz, sb,
      o + <usize>r * <usize>inner * sz, inner);
    bc.next();
  }
}

function binRowsF32(bc: Bcast, op: i32, a: usize, b: usize, o: usize): void {
  const inner = bc.inner;
  const sa = unchecked(bc.istr[0]);
  const sb = unchecked(bc.istr[1]);
  if (threadCount() > 1 && <i64>bc.rows * <i64>inner >= 65536) {
    // the rows' offsets first (the broadcast iterator runs here), then the rows on every thread
    const offs = rowOffsets(bc.rows);
    for (let r = 0; r < bc.rows; r++) {
      store<i32>(offs + (<usize>r << 3), unchecked(bc.off[0]));
      store<i32>(offs + (<usize>r << 3), unchecked(bc.off[1]), 4);
      bc.next();
    }
    if (binRowsF32Par(op, bc.rows, inner, a, sa, b, sb, o, offs)) return;
  }
  for (let r = 0; r < bc.rows; r++) {
    binRowF32(op, a + (<usize>unchecked(bc.off[0]) << 2), sa, b + (<usize>unchecked(bc.off[1]) << 2), sb,
      o + ((<usize>r * <usize>inner) << 2), inner);
    bc.next();
  }
}

function cmpRows<T>(bc: Bcast, op: i32, a: usize, b: usize, o: usize): void {
  const sz = <usize>sizeof<T>();
  const inner = bc.inner;
  const sa = unchecked(bc.istr[0]);
  const sb = unchecked(bc.istr[1]);
  for (let r = 0; r < bc.rows; r++) {
    cmpRow<T>(op, a + <usize>unchecked(bc.off[0]) * sz, sa, b + <usize>unchecked(bc.off[1]) * sz, sb,
      o + <usize>r * <usize>inner, inner);
    bc.next();
  }
}

/** Generic path: every element through f64 (f16/bf16, mixed types such as Pow(float, int)). */
function binRowsGeneric(bc: Bcast, op: i32, cmp: bool, a: Tensor, b: Tensor, o: Tensor): void {
  const da = a.shape.dtype, db = b.shape.dtype, dout = o.shape.dtype;
  const sa = <usize>dtypeSize(da), sb = <usize>dtypeSize(db), so = <usize>dtypeSize(dout);
  const inner = bc.inner;
  const ia = <usize>bc.istr[0] * sa, ib = <usize>bc.istr[1] * sb;
  let po = o.ptr;
  for (let r = 0; r < bc.rows; r++) {
    let pa = a.ptr + <usize>bc.off[0] * sa;
    let pb = b.ptr + <usize>bc.off[1] * sb;
    for (let i = 0; i < inner; i++) {
      const x = loadF64(da, pa), y = loadF64(db, pb);
      if (cmp) store<u8>(po, cmpF64(op, x, y) ? 1 : 0);
      else storeF64(dout, po, binF64(op, x, y));
      pa += ia; pb += ib; po += so;
    }
    bc.next();
  }
}

/** o = a (op) b with numpy broadcasting; a, b and o may alias elementwise. */
export function runBinary(op: i32, cmp: bool, a: Tensor, b: Tensor, o: Tensor): void {
  const dt = a.shape.dtype;
  const scalarB = b.shape.dtype == DT_FLOAT && b.elements() == 1;
  if (op == B_POW && dt == DT_FLOAT && scalarB && powF32(a, load<f32>(b.ptr), o)) return;
  const bc = new Bcast(o.shape.lens, [a.shape.lens, b.shape.lens]);
  if (dt != b.shape.dtype) { binRowsGeneric(bc, op, cmp, a, b, o); return; }
  if (cmp) {
    switch (dt) {
      case DT_FLOAT: cmpRows<f32>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_DOUBLE: cmpRows<f64>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_INT8: cmpRows<i8>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_UINT8: case DT_BOOL: cmpRows<u8>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_INT16: cmpRows<i16>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_UINT16: cmpRows<u16>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_INT32: cmpRows<i32>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_UINT32: cmpRows<u32>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_INT64: cmpRows<i64>(bc, op, a.ptr, b.ptr, o.ptr); return;
      case DT_UINT64: cmpRows<u64>(bc, op, a.ptr, b.ptr, o.ptr); return;
      default: binRowsGeneric(bc, op, cmp, a, b, o); return;
    }
  }
  switch (dt) {
    case DT_FLOAT: {
      if (f32SimdBinary(op)) binRowsF32(bc, op, a.ptr, b.ptr, o.ptr);
      else binRows<f32>(bc, op, a.ptr, b.ptr, o.ptr);
      return;
    }
    case DT_DOUBLE: binRows<f64>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_INT8: binRows<i8>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_UINT8: case DT_BOOL: binRows<u8>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_INT16: binRows<i16>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_UINT16: binRows<u16>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_INT32: binRows<i32>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_UINT32: binRows<u32>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_INT64: binRows<i64>(bc, op, a.ptr, b.ptr, o.ptr); return;
    case DT_UINT64: binRows<u64>(bc, op, a.ptr, b.ptr, o.ptr); return;
    default: binRowsGeneric(bc, op, cmp, a, b, o); return;
  }
}

/** float32 x^e for the exponents that models use (2, 3, 0.5, 1); false for others. */
function powF32(a: Tensor, e: f32, o: Tensor): bool {
  const same = a.elements() == o.elements();
  if (e == 2 && same) {
    unaryF32Par(U_SQUARE, a.ptr, o.ptr, a.elements(), 0, 0);
  } else if (e == 3 && same) {
    unaryF32Par(U_CUBE, a.ptr, o.ptr, a.elements(), 0, 0);
  } else if (e == 1) {
    runBinary(B_SECOND, false, o, a, o);
  } else if (e == 0.5 && same) {
    unaryF32Par(U_SQRT, a.ptr, o.ptr, a.elements(), 0, 0);
  } else {
    return false;
  }
  return true;
}

// ---- what fuse_elementwise may fuse ----

/** A float32 node as the SIMD kernels run it: unaryF32(code, p0, p1) on input 0, or binRowF32(code). */
export class F32Step {
  binary: bool = false;
  code: i32 = 0;
  p0: f32 = 0;
  p1: f32 = 0;
}

/**
 * How compute runs a float32 node of `op` (attributes `attrs`, opset `opset`) on the SIMD row
 * kernels, so that a fused chain computes each element exactly as the node would: Add, Sub, Mul,
 * Div (binRowF32), the unary ops with a SIMD kernel other than Clip (their parameters from the
 * attributes, as compute reads them), Gelu, and Pow by a literal 2, 3 or 0.5 (`exponent`, NaN when
 * input 1 is not a float32 literal scalar). null for anything else (legacy broadcast attributes
 * included).
 */
export function f32StepOf(op: Op, attrs: Attrs, opset: i32, exponent: f32): F32Step | null {
  const st = new F32Step();
  if (op instanceof BinaryOp) {
    const b = op as BinaryOp;
    if (attrs.has("broadcast") || attrs.has("axis")) return null; // legacy broadcasting
    if (b.code == B_POW) {
      if (exponent == 2) st.code = U_SQUARE;
      else if (exponent == 3) st.code = U_CUBE;
      else if (exponent == 0.5) st.code = U_SQRT;
      else return null;
      return st;
    }
    if (b.cmp || (b.code != B_ADD && b.code != B_SUB && b.code != B_MUL && b.code != B_DIV)) return null;
    st.binary = true;
    st.code = b.code;
    return st;
  }
  if (op instanceof GeluOp) {
    st.code = attrs.getString("approximate", "none") == "tanh" ? U_GELU_TANH : U_GELU;
    return st;
  }
  if (op instanceof UnaryOp) {
    const u = op as UnaryOp;
    const code = u.code;
    if (u.outBool || code == U_CLIP || code == U_ISNAN || code == U_ISINF || !unarySimd(code)) return null;
    const dp = unaryDefaults(code);
    st.code = code;
    st.p0 = <f32><f64>attrs.getFloat(dp.n0, <f32>dp.d0);
    st.p1 = <f32><f64>attrs.getFloat(dp.n1, <f32>dp.d1);
    return st;
  }
  return null;
}

// ---- binary ops ----

// dtype classes accepted by a binary op
const K_NUMERIC: i32 = 0; // numbers (bool rejected)
const K_ANY: i32 = 1; // numbers and bool (Equal)
const K_BOOL: i32 = 2; // bool only (And, Or, Xor)
const K_INT: i32 = 3; // integers (bitwise)
const K_UINT: i32 = 4; // unsigned integers (BitShift)

function dtypeOk(kind: i32, dt: i32): bool {
  if (!isSupported(dt)) return false;
  switch (kind) {
    case K_NUMERIC: return dt != DT_BOOL;
    case K_BOOL: return dt == DT_BOOL;
    case K_INT: return !isFloat(dt);
    case K_UINT: return dt == DT_UINT8 || dt == DT_UINT16 || dt == DT_UINT32 || dt == DT_UINT64;
    default: return true;
  }
}

/**
 * Opset < 7 `broadcast=1, axis=k`: B's dims line up with A's from axis k (padded with 1s to A's
 * rank); null when numpy broadcasting applies.
 */
function legacyLens(attrs: Attrs, opset: i32, a: Array<i32>, b: Array<i32>, prelu: bool = false): Array<i32> | null {
  if (opset >= 7) return null;
  if (prelu) {
    // PRelu-1/6 has no broadcast attribute: a one-dimensional slope of C values applies per
    // channel (axis 1), as PyTorch exported nn.PReLU(C) before opset 7.
    if (b.length != 1 || a.length < 2 || b[0] != a[1] || b[0] == 1) return null;
    const out = new Array<i32>(a.length);
    for (let i = 0; i < a.length; i++) out[i] = i == 1 ? b[0] : 1;
    return out;
  }
  if (attrs.getInt("broadcast", 0) == 0 || !attrs.has("axis")) return null;
  let axis = <i32>attrs.getInt("axis", 0);
  if (axis < 0) axis += a.length;
  if (axis < 0 || axis + b.length > a.length) return null;
  const out = new Array<i32>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = i >= axis && i < axis + b.length ? b[i - axis] : 1;
  return out;
}

class BinaryOp extends Op {
  code: i32;
  cmp: bool;
  kind: i32;

  constructor(name: string, code: i32, cmp: bool, kind: i32, flags: i32) {
    super(name, flags | OP_ELEMENTWISE | OP_WRITES_ALL);
    this.code = code;
    this.cmp = cmp;
    this.kind = kind;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireInputs(ctx, 2)) return false;
    const dt = ctx.input(0).dtype;
    if (!dtypeOk(this.kind, dt)) return ctx.failDtype(0);
    if (this.code == B_POW) {
      if (!dtypeOk(K_NUMERIC, ctx.input(1).dtype)) return ctx.failDtype(1);
    } else if (!sameDtypes(ctx, 0, 2)) return false;
    if (this.code == B_MOD && isFloat(dt) && ctx.attrs.getInt("fmod", 0) == 0) {
      return ctx.fail("fmod must be 1 for floating-point element type " + dtypeName(dt));
    }
    const legacy = legacyLens(ctx.attrs, ctx.opset, ctx.input(0).lens, ctx.input(1).lens, this.code == B_PRELU);
    if (legacy != null) {
      ctx.out(Shape.standard(this.cmp ? DT_BOOL : dt, ctx.input(0).lens));
      return true;
    }
    const lens = broadcastAll(ctx, 0, 2);
    if (lens == null) return false;
    ctx.out(Shape.standard(this.cmp ? DT_BOOL : dt, lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    let op = this.code;
    if (op == B_MOD && ctx.attrs.getInt("fmod", 0) != 0) op = B_FMOD;
    if (op == B_SHL && ctx.attrs.getString("direction", "") == "RIGHT") op = B_SHR;
    const a = ctx.input(0);
    let b = ctx.input(1);
    const legacy = legacyLens(ctx.attrs, ctx.opset, a.shape.lens, b.shape.lens, this.code == B_PRELU);
    if (legacy != null) b = new Tensor(Shape.standard(b.shape.dtype, legacy), b.ptr);
    runBinary(op, this.cmp, a, b, ctx.output(0));
    return true;
  }
}

/** Min, Max, Sum, Mean: one or more inputs, broadcast together. */
class VariadicOp extends Op {
  code: i32;
  mean: bool;

  constructor(name: string, code: i32, mean: bool) {
    super(name, OP_ELEMENTWISE | OP_COMMUTATIVE | OP_WRITES_ALL);
    this.code = code;
    this.mean = mean;
  }

  computeShape(ctx: ShapeContext): bool {
    const n = ctx.count();
    if (n < 1) return ctx.fail("needs at least one input");
    if (!requireInputs(ctx, n)) return false;
    if (!dtypeOk(K_NUMERIC, ctx.input(0).dtype)) return ctx.failDtype(0);
    if (!sameDtypes(ctx, 0, n)) return false;
    const lens = broadcastAll(ctx, 0, n);
    if (lens == null) return false;
    ctx.out(Shape.standard(ctx.input(0).dtype, lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const n = ctx.inputs.length;
    const o = ctx.output(0);
    if (n == 1) {
      runBinary(B_SECOND, false, o, ctx.input(0), o);
    } else {
      runBinary(this.code, false, ctx.input(0), ctx.input(1), o);
      for (let i = 2; i < n; i++) runBinary(this.code, false, o, ctx.input(i), o);
    }
    if (this.mean && n > 1) {
      const dt = o.shape.dtype;
      const sz = <usize>dtypeSize(dt);
      const m = o.elements();
      const inv: f64 = 1.0 / <f64>n;
      if (dt == DT_FLOAT) {
        const f = <f32>n;
        for (let i = 0; i < m; i++) store<f32>(o.ptr + (<usize>i << 2), load<f32>(o.ptr + (<usize>i << 2)) / f);
      } else if (isFloat(dt)) {
        for (let i = 0; i < m; i++) storeF64(dt, o.ptr + <usize>i * sz, loadF64(dt, o.ptr + <usize>i * sz) * inv);
      } else {
        for (let i = 0; i < m; i++) storeI64(dt, o.ptr + <usize>i * sz, loadI64(dt, o.ptr + <usize>i * sz) / n);
      }
    }
    return true;
  }
}

// ---- Where ----

function selRows<T>(bc: Bcast, c: usize, x: usize, y: usize, o: usize): void {
  const sz = <usize>sizeof<T>();
  const inner = bc.inner;
  const dc = <usize>bc.istr[0], dx = <usize>bc.istr[1] * sz, dy = <usize>bc.istr[2] * sz;
  let po = o;
  for (let r = 0; r < bc.rows; r++) {
    let pc = c + <usize>unchecked(bc.off[0]);
    let px = x + <usize>unchecked(bc.off[1]) * sz;
    let py = y + <usize>unchecked(bc.off[2]) * sz;
    for (let i = 0; i < inner; i++) {
      store<T>(po, load<u8>(pc) != 0 ? load<T>(px) : load<T>(py));
      pc += dc; px += dx; py += dy; po += sz;
    }
    bc.next();
  }
}

/** Where on 4-byte elements with SIMD (kernels/eltwise.ts selRowU32), split by rows or ranges when large. */
function selRowsU32(bc: Bcast, c: usize, x: usize, y: usize, o: usize): void {
  const inner = bc.inner;
  const dc = bc.istr[0], dx = bc.istr[1], dy = bc.istr[2];
  if (threadCount() > 1 && <i64>bc.rows * <i64>inner >= 65536) {
    // the rows' offsets first (the broadcast iterator runs here), then the rows on every thread
    const offs = rowOffsets(bc.rows * 2);
    for (let r = 0; r < bc.rows; r++) {
      store<i32>(offs + (<usize>r << 4), unchecked(bc.off[0]));
      store<i32>(offs + (<usize>r << 4), unchecked(bc.off[1]), 4);
      store<i32>(offs + (<usize>r << 4), unchecked(bc.off[2]), 8);
      bc.next();
    }
    if (whereRowsPar(bc.rows, inner, c, dc, x, dx, y, dy, o, offs)) return;
  }
  for (let r = 0; r < bc.rows; r++) {
    selRowU32(c + <usize>unchecked(bc.off[0]), dc, x + (<usize>unchecked(bc.off[1]) << 2), dx,
      y + (<usize>unchecked(bc.off[2]) << 2), dy, o + ((<usize>r * <usize>inner) << 2), inner);
    bc.next();
  }
}

class WhereOp extends Op {
  constructor() {
    super("Where", OP_ELEMENTWISE | OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireInputs(ctx, 3)) return false;
    if (ctx.input(0).dtype != DT_BOOL) return ctx.fail("condition must be bool, got " + dtypeName(ctx.input(0).dtype));
    if (!isSupported(ctx.input(1).dtype)) return ctx.failDtype(1);
    if (!sameDtypes(ctx, 1, 2)) return false;
    const lens = broadcastAll(ctx, 0, 3);
    if (lens == null) return false;
    ctx.out(Shape.standard(ctx.input(1).dtype, lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const o = ctx.output(0);
    const c = ctx.input(0), x = ctx.input(1), y = ctx.input(2);
    const bc = new Bcast(o.shape.lens, [c.shape.lens, x.shape.lens, y.shape.lens]);
    switch (dtypeSize(o.shape.dtype)) {
      case 1: selRows<u8>(bc, c.ptr, x.ptr, y.ptr, o.ptr); break;
      case 2: selRows<u16>(bc, c.ptr, x.ptr, y.ptr, o.ptr); break;
      case 4: selRowsU32(bc, c.ptr, x.ptr, y.ptr, o.ptr); break;
      default: selRows<u64>(bc, c.ptr, x.ptr, y.ptr, o.ptr); break;
    }
    return true;
  }
}

// ---- unary ops ----

// dtype classes for unary ops
const UK_FLOAT: i32 = 0; // float types only
const UK_SIGNED: i32 = 1; // floats and all integers (Neg, Abs, Sign, Relu, Clip)
const UK_BOOL: i32 = 2; // Not
const UK_INT: i32 = 3; // BitwiseNot

/** Whether optional input i is present with at least one element (Clip's min/max). */
function _hasScalar(ctx: ComputeContext, i: i32): bool {
  return ctx.hasInput(i) && ctx.input(i).elements() > 0;
}

class UnaryOp extends Op {
  code: i32;
  kind: i32;
  outBool: bool;

  constructor(name: string, code: i32, kind: i32, outBool: bool = false) {
    super(name, OP_ELEMENTWISE | OP_WRITES_ALL);
    this.code = code;
    this.kind = kind;
    this.outBool = outBool;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireInputs(ctx, 1)) return false;
    const dt = ctx.input(0).dtype;
    let ok = isSupported(dt);
    if (this.kind == UK_FLOAT) ok = ok && isFloat(dt);
    else if (this.kind == UK_SIGNED) ok = ok && dt != DT_BOOL;
    else if (this.kind == UK_BOOL) ok = dt == DT_BOOL;
    else ok = ok && !isFloat(dt) && dt != DT_BOOL;
    if (!ok) return ctx.failDtype(0);
    ctx.out(Shape.standard(this.outBool ? DT_BOOL : dt, ctx.input(0).lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const code = this.code;
    const a = ctx.attrs;
    let p0: f64 = 0, p1: f64 = 0;
    // parameters by op, with the ONNX defaults
    switch (code) {
      case U_CLIP: {
        if (ctx.opset < 11) {
          p0 = <f64>a.getFloat("min", -f32.MAX_VALUE);
          p1 = <f64>a.getFloat("max", f32.MAX_VALUE);
        } else {
          p0 = _hasScalar(ctx, 1) ? loadF64(ctx.input(1).shape.dtype, ctx.input(1).ptr) : -Infinity;
          p1 = _hasScalar(ctx, 2) ? loadF64(ctx.input(2).shape.dtype, ctx.input(2).ptr) : Infinity;
        }
        break;
      }
      default: {
        const dp = unaryDefaults(code);
        p0 = <f64>a.getFloat(dp.n0, <f32>dp.d0);
        p1 = <f64>a.getFloat(dp.n1, <f32>dp.d1);
        if (dp.n0 == "detect_positive") {
          p0 = <f64>a.getInt("detect_positive", 1);
          p1 = <f64>a.getInt("detect_negative", 1);
        }
      }
    }
    const dt = x.shape.dtype;
    const n = x.elements();
    const dout = o.shape.dtype;
    if (dt == DT_FLOAT && (code == U_ISNAN || code == U_ISINF)) {
      unaryTestF32Par(code, x.ptr, o.ptr, n, p0 != 0, p1 != 0);
      return true;
    }
    if (dt == DT_FLOAT && dout == DT_FLOAT && unarySimd(code)) {
      unaryF32Par(code, x.ptr, o.ptr, n, <f32>p0, <f32>p1);
      return true;
    }
    const si = <usize>dtypeSize(dt), so = <usize>dtypeSize(dout);
    if (dt == DT_FLOAT && dout == DT_FLOAT) {
      for (let i = 0; i < n; i++) {
        const q = <usize>i << 2;
        store<f32>(o.ptr + q, <f32>unaryF64(code, <f64>load<f32>(x.ptr + q), p0, p1));
      }
    } else if (isFloat(dt)) {
      for (let i = 0; i < n; i++) {
        storeF64(dout, o.ptr + <usize>i * so, unaryF64(code, loadF64(dt, x.ptr + <usize>i * si), p0, p1));
      }
    } else if (code == U_CLIP) {
      // integer Clip: bounds as integers (inputs are the same integer type)
      const lo: i64 = ctx.opset >= 11 && _hasScalar(ctx, 1) ? loadI64(dt, ctx.input(1).ptr) : i64.MIN_VALUE;
      const hi: i64 = ctx.opset >= 11 && _hasScalar(ctx, 2) ? loadI64(dt, ctx.input(2).ptr) : i64.MAX_VALUE;
      const unsigned = dt == DT_UINT64;
      for (let i = 0; i < n; i++) {
        const v = loadI64(dt, x.ptr + <usize>i * si);
        let r = v;
        if (unsigned) {
          if (<u64>r < <u64>lo && lo != i64.MIN_VALUE) r = lo;
          if (<u64>r > <u64>hi && hi != i64.MAX_VALUE) r = hi;
        } else {
          if (r < lo) r = lo;
          if (r > hi) r = hi;
        }
        storeI64(dout, o.ptr + <usize>i * so, r);
      }
    } else {
      for (let i = 0; i < n; i++) {
        storeI64(dout, o.ptr + <usize>i * so, unaryI64(code, loadI64(dt, x.ptr + <usize>i * si), dt, p0, p1));
      }
    }
    return true;
  }
}

class ParamDefaults {
  n0: string = "";
  d0: f64 = 0;
  n1: string = "";
  d1: f64 = 0;
}


function unaryDefaults(code: i32): ParamDefaults {
  const p = new ParamDefaults();
  switch (code) {
    case U_LEAKY: p.n0 = "alpha"; p.d0 = 0.01; break;
    case U_ELU: p.n0 = "alpha"; p.d0 = 1.0; break;
    case U_CELU: p.n0 = "alpha"; p.d0 = 1.0; break;
    case U_THRELU: p.n0 = "alpha"; p.d0 = 1.0; break;
    case U_SELU: {
      p.n0 = "alpha"; p.d0 = 1.67326319217681884765625;
      p.n1 = "gamma"; p.d1 = 1.05070102214813232421875;
      break;
    }
    case U_HSIG: p.n0 = "alpha"; p.d0 = 0.2; p.n1 = "beta"; p.d1 = 0.5; break;
    case U_SHRINK: p.n0 = "lambd"; p.d0 = 0.5; p.n1 = "bias"; p.d1 = 0.0; break;
    case U_ISINF: p.n0 = "detect_positive"; p.d0 = 1; p.n1 = "detect_negative"; p.d1 = 1; break;
    default: break;
  }
  return p;
}

/** Gelu: approximate = "none" | "tanh". */
class GeluOp extends UnaryOp {
  constructor() {
    super("Gelu", U_GELU, UK_FLOAT);
  }

  compute(ctx: ComputeContext): bool {
    const approx = ctx.attrs.getString("approximate", "none");
    const x = ctx.input(0);
    const o = ctx.output(0);
    const code = approx == "tanh" ? U_GELU_TANH : U_GELU;
    const dt = x.shape.dtype;
    const n = x.elements();
    if (dt == DT_FLOAT) {
      unaryF32Par(code, x.ptr, o.ptr, n, 0, 0);
    } else {
      const sz = <usize>dtypeSize(dt);
      for (let i = 0; i < n; i++) {
        storeF64(dt, o.ptr + <usize>i * sz, unaryF64(code, loadF64(dt, x.ptr + <usize>i * sz), 0, 0));
      }
    }
    return true;
  }
}


// ---- Cast / CastLike ----

/** Converts every element of x into o (element types may differ; same element count). */
/** f64 -> i64 truncating, NaN and out-of-range values to i64.MIN_VALUE (x86-64 cvttsd2si). */
function floatToI64(v: f64): i64 {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return i64.MIN_VALUE;
  return <i64>v;
}

/** f64 -> i32 truncating, NaN and out-of-range values to i32.MIN_VALUE (x86-64 cvttsd2si). */
function floatToI32(v: f64): i32 {
  if (!(v > -2147483649.0 && v < 2147483648.0)) return i32.MIN_VALUE;
  return <i32>v;
}

export function castInto(x: Tensor, o: Tensor): void {
  const si = x.shape.dtype, so = o.shape.dtype;
  const n = x.elements();
  if (si == so) {
    memory.copy(o.ptr, x.ptr, <usize>n * <usize>dtypeSize(si));
    return;
  }
  const zi = <usize>dtypeSize(si), zo = <usize>dtypeSize(so);
  if (si == DT_FLOAT && so == DT_INT64) {
    for (let i = 0; i < n; i++) {
      store<i64>(o.ptr + (<usize>i << 3), floatToI64(<f64>load<f32>(x.ptr + (<usize>i << 2))));
    }
  } else if (isFloat(si) && so != DT_BOOL && !isFloat(so) && so != DT_UINT64) {
    // NaN, infinities and out-of-range values are undefined in ONNX; do what onnxruntime does on
    // x86-64 (static_cast = cvttss2si): the "integer indefinite" INT_MIN of a 32-bit conversion for
    // types up to 32 bits (then the low bits: 0 for int8/uint8/int16/uint16) and of a 64-bit one
    // for int64 and uint32.
    const wide = so == DT_INT64 || so == DT_UINT32;
    for (let i = 0; i < n; i++) {
      const v = loadF64(si, x.ptr + <usize>i * zi);
      storeI64(so, o.ptr + <usize>i * zo, wide ? floatToI64(v) : <i64>floatToI32(v));
    }
  } else if (si == DT_INT64 && so == DT_FLOAT) {
    for (let i = 0; i < n; i++) store<f32>(o.ptr + (<usize>i << 2), <f32>load<i64>(x.ptr + (<usize>i << 3)));
  } else if (si == DT_UINT64 && isFloat(so)) {
    for (let i = 0; i < n; i++) storeF64(so, o.ptr + <usize>i * zo, <f64>load<u64>(x.ptr + <usize>i * zi));
  } else if (so == DT_BFLOAT16 && isFloat(si)) {
    // Cast to bfloat16 truncates the float32 value to its top 16 bits, as the ONNX reference
    // implementation (op_cast.py: float32_to_bfloat16(truncate=True)) and the backend tests do;
    // NaN stays NaN (quiet bit set). Arithmetic that stores bfloat16 rounds to nearest even.
    for (let i = 0; i < n; i++) {
      const b = reinterpret<u32>(<f32>loadF64(si, x.ptr + <usize>i * zi));
      const nan = (b & 0x7fffffff) > 0x7f800000;
      store<u16>(o.ptr + (<usize>i << 1), <u16>(nan ? (b >> 16) | 0x40 : b >> 16));
    }
  } else if (isFloat(si) || isFloat(so)) {
    for (let i = 0; i < n; i++) storeF64(so, o.ptr + <usize>i * zo, loadF64(si, x.ptr + <usize>i * zi));
  } else {
    for (let i = 0; i < n; i++) storeI64(so, o.ptr + <usize>i * zo, loadI64(si, x.ptr + <usize>i * zi));
  }
}

class CastOp extends Op {
  like: bool;

  constructor(name: string, like: bool) {
    super(name, OP_ELEMENTWISE | OP_KEEPS_EXTENT | OP_WRITES_ALL);
    this.like = like;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!requireInputs(ctx, this.like ? 2 : 1)) return false;
    if (!isSupported(ctx.input(0).dtype)) return ctx.failDtype(0);
    let to: i32 = 0;
    if (this.like) {
      to = ctx.input(1).dtype;
    } else {
      if (!ctx.attrs.has("to")) return ctx.fail("attribute 'to' is required");
      to = <i32>ctx.attrs.getInt("to", 0);
    }
    if (!isSupported(to)) return ctx.fail("cannot cast to element type " + dtypeName(to));
    ctx.out(Shape.standard(to, ctx.input(0).lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    castInto(ctx.input(0), ctx.output(0));
    return true;
  }
}


export function registerElementwise(): void {
  registerOp(new BinaryOp("Add", B_ADD, false, K_NUMERIC, OP_COMMUTATIVE));
  registerOp(new BinaryOp("Sub", B_SUB, false, K_NUMERIC, 0));
  registerOp(new BinaryOp("Mul", B_MUL, false, K_NUMERIC, OP_COMMUTATIVE));
  registerOp(new BinaryOp("Div", B_DIV, false, K_NUMERIC, 0));
  registerOp(new BinaryOp("Pow", B_POW, false, K_NUMERIC, 0));
  registerOp(new BinaryOp("Mod", B_MOD, false, K_NUMERIC, 0));
  registerOp(new BinaryOp("PRelu", B_PRELU, false, K_NUMERIC, 0));
  registerOp(new BinaryOp("Equal", C_EQ, true, K_ANY, OP_COMMUTATIVE));
  registerOp(new BinaryOp("Less", C_LT, true, K_NUMERIC, 0));
  registerOp(new BinaryOp("Greater", C_GT, true, K_NUMERIC, 0));
  registerOp(new BinaryOp("LessOrEqual", C_LE, true, K_NUMERIC, 0));
  registerOp(new BinaryOp("GreaterOrEqual", C_GE, true, K_NUMERIC, 0));
  registerOp(new BinaryOp("And", B_AND, false, K_BOOL, OP_COMMUTATIVE));
  registerOp(new BinaryOp("Or", B_OR, false, K_BOOL, OP_COMMUTATIVE));
  registerOp(new BinaryOp("Xor", B_XOR, false, K_BOOL, OP_COMMUTATIVE));
  registerOp(new BinaryOp("BitwiseAnd", B_AND, false, K_INT, OP_COMMUTATIVE));
  registerOp(new BinaryOp("BitwiseOr", B_OR, false, K_INT, OP_COMMUTATIVE));
  registerOp(new BinaryOp("BitwiseXor", B_XOR, false, K_INT, OP_COMMUTATIVE));
  registerOp(new BinaryOp("BitShift", B_SHL, false, K_UINT, 0));
  registerOp(new VariadicOp("Min", B_MIN, false));
  registerOp(new VariadicOp("Max", B_MAX, false));
  registerOp(new VariadicOp("Sum", B_ADD, false));
  registerOp(new VariadicOp("Mean", B_ADD, true));
  registerOp(new WhereOp());

  registerOp(new UnaryOp("Relu", U_RELU, UK_SIGNED));
  registerOp(new UnaryOp("Neg", U_NEG, UK_SIGNED));
  registerOp(new UnaryOp("Abs", U_ABS, UK_SIGNED));
  registerOp(new UnaryOp("Sign", U_SIGN, UK_SIGNED));
  registerOp(new UnaryOp("Clip", U_CLIP, UK_SIGNED));
  registerOp(new UnaryOp("Not", U_NOT, UK_BOOL));
  registerOp(new UnaryOp("BitwiseNot", U_BITNOT, UK_INT));
  registerOp(new UnaryOp("Sqrt", U_SQRT, UK_FLOAT));
  registerOp(new UnaryOp("Reciprocal", U_RECIP, UK_FLOAT));
  registerOp(new UnaryOp("Exp", U_EXP, UK_FLOAT));
  registerOp(new UnaryOp("Log", U_LOG, UK_FLOAT));
  registerOp(new UnaryOp("Erf", U_ERF, UK_SIGNED));
  registerOp(new UnaryOp("Tanh", U_TANH, UK_FLOAT));
  registerOp(new UnaryOp("Sigmoid", U_SIGMOID, UK_FLOAT));
  registerOp(new UnaryOp("LeakyRelu", U_LEAKY, UK_FLOAT));
  registerOp(new UnaryOp("Elu", U_ELU, UK_FLOAT));
  registerOp(new UnaryOp("Selu", U_SELU, UK_FLOAT));
  registerOp(new UnaryOp("Celu", U_CELU, UK_FLOAT));
  registerOp(new GeluOp());
  registerOp(new UnaryOp("HardSigmoid", U_HSIG, UK_FLOAT));
  registerOp(new UnaryOp("HardSwish", U_HSWISH, UK_FLOAT));
  registerOp(new UnaryOp("Softplus", U_SOFTPLUS, UK_FLOAT));
  registerOp(new UnaryOp("Softsign", U_SOFTSIGN, UK_FLOAT));
  registerOp(new UnaryOp("ThresholdedRelu", U_THRELU, UK_FLOAT));
  registerOp(new UnaryOp("Mish", U_MISH, UK_FLOAT));
  registerOp(new UnaryOp("Shrink", U_SHRINK, UK_SIGNED));
  registerOp(new UnaryOp("IsNaN", U_ISNAN, UK_FLOAT, true));
  registerOp(new UnaryOp("IsInf", U_ISINF, UK_FLOAT, true));
  registerOp(new UnaryOp("Floor", U_FLOOR, UK_FLOAT));
  registerOp(new UnaryOp("Ceil", U_CEIL, UK_FLOAT));
  registerOp(new UnaryOp("Round", U_ROUND, UK_FLOAT));
  registerOp(new UnaryOp("Sin", U_SIN, UK_FLOAT));
  registerOp(new UnaryOp("Cos", U_COS, UK_FLOAT));
  registerOp(new UnaryOp("Tan", U_TAN, UK_FLOAT));
  registerOp(new UnaryOp("Asin", U_ASIN, UK_FLOAT));
  registerOp(new UnaryOp("Acos", U_ACOS, UK_FLOAT));
  registerOp(new UnaryOp("Atan", U_ATAN, UK_FLOAT));
  registerOp(new UnaryOp("Sinh", U_SINH, UK_FLOAT));
  registerOp(new UnaryOp("Cosh", U_COSH, UK_FLOAT));
  registerOp(new UnaryOp("Asinh", U_ASINH, UK_FLOAT));
  registerOp(new UnaryOp("Acosh", U_ACOSH, UK_FLOAT));
  registerOp(new UnaryOp("Atanh", U_ATANH, UK_FLOAT));
  registerOp(new CastOp("Cast", false));
  registerOp(new CastOp("CastLike", true));
  registerQuant();
  registerWindows();
}
