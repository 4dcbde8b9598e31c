// Linear algebra ops: MatMul (numpy semantics) and Gemm. float32 runs on the packed SIMD SGEMM
// (kernels/gemm.ts); other numeric types take a generic loop accumulating in f64 (floats) or
// i64 (integers, wrapping like the element type).
import {
  DT_BFLOAT16, DT_DOUBLE, DT_FLOAT, DT_FLOAT16, DT_INT32, DT_INT64, DT_UINT32, DT_UINT64, isFloat,
} from "../ir/dtype";
import { broadcastLens, Shape } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import { packBRows, packedBLength, packWholeB, sgemm, sgemmBatchedOffsets, sgemmPackedB } from "../kernels/gemm";
import { rowOffsets } from "../kernels/par_eltwise";
import { B_SECOND } from "../kernels/eltwise";
import { runBinary } from "./elementwise";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";

function gemmType(dt: i32): bool {
  return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16 || dt == DT_BFLOAT16 || dt == DT_INT32 ||
    dt == DT_INT64 || dt == DT_UINT32 || dt == DT_UINT64;
}

/**
 * Generic C[M x N] (+)= alpha * op(A) * op(B) over Tensor accessors with element offsets,
 * for the non-float32 types. acc: C holds beta*C already and is added to.
 */
function gemmGeneric(transA: bool, transB: bool, M: i32, N: i32, K: i32, alpha: f64, a: Tensor, aOff: i32,
  b: Tensor, bOff: i32, c: Tensor, cOff: i32, acc: bool): void {
  const fl = isFloat(c.shape.dtype);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const ci = cOff + i * N + j;
      if (fl) {
        let s: f64 = 0;
        for (let p = 0; p < K; p++) {
          const av = a.getAsF64(aOff + (transA ? p * M + i : i * K + p));
          const bv = b.getAsF64(bOff + (transB ? j * K + p : p * N + j));
          s += av * bv;
        }
        c.setFromF64(ci, alpha * s + (acc ? c.getAsF64(ci) : 0));
      } else {
        let s: i64 = 0;
        for (let p = 0; p < K; p++) {
          const av = a.getAsI64(aOff + (transA ? p * M + i : i * K + p));
          const bv = b.getAsI64(bOff + (transB ? j * K + p : p * N + j));
          s += av * bv;
        }
        if (alpha != 1) s = <i64>(alpha * <f64>s);
        c.setFromI64(ci, s + (acc ? c.getAsI64(ci) : 0));
      }
    }
  }
}

function lensString(dt: i32, lens: Array<i32>): string {
  return Shape.standard(dt, lens).toString();
}

/** y[M x N] = beta * C broadcast to M x N (C is a scalar, [N], [1 x N], [M x 1] or [M x N]). */
function fillBias(y: Tensor, c: Tensor, M: i32, N: i32, beta: f32): void {
  const dt = y.shape.dtype;
  const cl = c.shape.lens;
  const cr = cl.length;
  const cm: i32 = cr == 2 ? cl[0] : 1;
  const cn: i32 = cr >= 1 ? cl[cr - 1] : 1;
  const sm: i32 = cm == 1 ? 0 : cn;
  const sn: i32 = cn == 1 ? 0 : 1;
  if (dt == DT_FLOAT && beta == 1) {
    // a broadcast copy through the binary SIMD path (split over the threads when large)
    const yv = new Tensor(Shape.standard(DT_FLOAT, [M, N]), y.ptr);
    runBinary(B_SECOND, false, yv, new Tensor(Shape.standard(DT_FLOAT, [cm, cn]), c.ptr), yv);
  } else if (dt == DT_FLOAT) {
    for (let i = 0; i < M; i++) {
      const yrow = y.ptr + (<usize>(i * N) << 2);
      const crow = c.ptr + (<usize>(i * sm) << 2);
      if (sn == 1 && beta == 1) {
        memory.copy(yrow, crow, <usize>N << 2);
      } else {
        for (let j = 0; j < N; j++) store<f32>(yrow + (<usize>j << 2), beta * load<f32>(crow + (<usize>(j * sn) << 2)));
      }
    }
  } else if (isFloat(dt)) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) y.setFromF64(i * N + j, <f64>beta * c.getAsF64(i * sm + j * sn));
    }
  } else {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        const v = c.getAsI64(i * sm + j * sn);
        y.setFromI64(i * N + j, beta == 1 ? v : <i64>(<f64>beta * <f64>v));
      }
    }
  }
}

class MatMulOp extends Op {
  constructor() {
    super("MatMul", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs A and B are required");
    const a = ctx.input(0);
    const b = ctx.input(1);
    if (!gemmType(a.dtype)) return ctx.failDtype(0);
    if (b.dtype != a.dtype) {
      return ctx.fail("element types differ: " + a.toString() + " x " + b.toString());
    }
    const ra = a.rank();
    const rb = b.rank();
    if (ra == 0 || rb == 0) return ctx.fail("inputs must have rank >= 1: " + a.toString() + " x " + b.toString());
    const ka = a.lens[ra - 1];
    const kb = rb == 1 ? b.lens[0] : b.lens[rb - 2];
    if (ka != kb) return ctx.fail("inner dims differ: " + a.toString() + " x " + b.toString());
    const ab = ra > 2 ? a.lens.slice(0, ra - 2) : new Array<i32>(0);
    const bb = rb > 2 ? b.lens.slice(0, rb - 2) : new Array<i32>(0);
    const batch = broadcastLens(ab, bb);
    if (batch == null) return ctx.fail("batch dims do not broadcast: " + a.toString() + " x " + b.toString());
    const out = batch.slice(0);
    if (ra > 1) out.push(a.lens[ra - 2]);
    if (rb > 1) out.push(b.lens[rb - 1]);
    ctx.out(Shape.standard(a.dtype, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const a = ctx.input(0);
    const b = ctx.input(1);
    const y = ctx.output(0);
    const al = a.shape.lens;
    const bl = b.shape.lens;
    const ra = al.length;
    const rb = bl.length;
    const M = ra > 1 ? al[ra - 2] : 1;
    const K = al[ra - 1];
    const N = rb > 1 ? bl[rb - 1] : 1;
    const ab = ra > 2 ? al.slice(0, ra - 2) : new Array<i32>(0);
    const bb = rb > 2 ? bl.slice(0, rb - 2) : new Array<i32>(0);
    const batchL = broadcastLens(ab, bb);
    if (batchL == null) return ctx.fail("batch dims do not broadcast");
    const batch = changetype<Array<i32>>(batchL);
    const R = batch.length;
    let nb: i32 = 1;
    for (let i = 0; i < R; i++) nb *= batch[i];
    let bBatch: i32 = 1;
    for (let i = 0; i < bb.length; i++) bBatch *= bb[i];
    const dt = a.shape.dtype;
    const f32 = dt == DT_FLOAT;
    if (nb == 0 || M == 0 || N == 0) return true;
    if (bBatch == 1) {
      // B is one matrix: A's batch and rows stack into one GEMM.
      if (f32) sgemm(false, false, nb * M, N, K, 1, a.ptr, K, b.ptr, N, 0, y.ptr, N);
      else gemmGeneric(false, false, nb * M, N, K, 1, a, 0, b, 0, y, 0, false);
      return true;
    }
    // strides of a and b over the broadcast batch dims (0 where broadcast)
    const sa = new Array<i32>(R);
    const sb = new Array<i32>(R);
    let accA: i32 = M * K;
    let accB: i32 = K * N;
    for (let d = R - 1; d >= 0; d--) {
      const da = d - (R - ab.length);
      const db = d - (R - bb.length);
      const la: i32 = da >= 0 ? ab[da] : 1;
      const lb: i32 = db >= 0 ? bb[db] : 1;
      sa[d] = la == 1 ? 0 : accA;
      sb[d] = lb == 1 ? 0 : accB;
      accA *= la;
      accB *= lb;
    }
    const idx = new Array<i32>(R);
    for (let i = 0; i < R; i++) idx[i] = 0;
    let aOff: i32 = 0;
    let bOff: i32 = 0;
    // float32: the products' offsets first, then all of them at once (shared out over the threads)
    const offs: usize = f32 ? rowOffsets(nb) : 0;
    for (let t = 0; t < nb; t++) {
      const yOff = t * M * N;
      if (f32) {
        store<i32>(offs + (<usize>t << 3), aOff);
        store<i32>(offs + (<usize>t << 3), bOff, 4);
      } else {
        gemmGeneric(false, false, M, N, K, 1, a, aOff, b, bOff, y, yOff, false);
      }
      // next batch index
      for (let d = R - 1; d >= 0; d--) {
        idx[d]++;
        aOff += sa[d];
        bOff += sb[d];
        if (idx[d] < batch[d]) break;
        aOff -= sa[d] * idx[d];
        bOff -= sb[d] * idx[d];
        idx[d] = 0;
      }
    }
    if (f32) sgemmBatchedOffsets(nb, M, N, K, a.ptr, K, b.ptr, N, y.ptr, offs);
    return true;
  }
}

class GemmOp extends Op {
  constructor() {
    super("Gemm", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs A and B are required");
    const a = ctx.input(0);
    const b = ctx.input(1);
    if (!gemmType(a.dtype)) return ctx.failDtype(0);
    if (b.dtype != a.dtype) return ctx.fail("element types differ: " + a.toString() + " x " + b.toString());
    if (a.rank() != 2 || b.rank() != 2) {
      return ctx.fail("A and B must be 2-D: " + a.toString() + " x " + b.toString());
    }
    const tA = ctx.attrs.getInt("transA", 0) != 0;
    const tB = ctx.attrs.getInt("transB", 0) != 0;
    const M = tA ? a.lens[1] : a.lens[0];
    const Ka = tA ? a.lens[0] : a.lens[1];
    const Kb = tB ? b.lens[1] : b.lens[0];
    const N = tB ? b.lens[0] : b.lens[1];
    if (Ka != Kb) {
      return ctx.fail("inner dims differ: " + a.toString() + (tA ? "^T" : "") + " x " + b.toString() +
        (tB ? "^T" : ""));
    }
    if (ctx.hasInput(2)) {
      const c = ctx.input(2);
      if (c.dtype != a.dtype) return ctx.fail("element type of C differs: " + c.toString());
      const out = [M, N];
      const bl = broadcastLens(out, c.lens);
      if (c.rank() > 2 || bl == null || bl[0] != M || bl[1] != N) {
        return ctx.fail("C " + c.toString() + " does not broadcast to " + lensString(a.dtype, out));
      }
    }
    ctx.out(Shape.standard(a.dtype, [M, N]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const a = ctx.input(0);
    const b = ctx.input(1);
    const y = ctx.output(0);
    const tA = ctx.attrs.getInt("transA", 0) != 0;
    const tB = ctx.attrs.getInt("transB", 0) != 0;
    const alpha = ctx.attrs.getFloat("alpha", 1);
    const beta = ctx.attrs.getFloat("beta", 1);
    const M = y.shape.lens[0];
    const N = y.shape.lens[1];
    const K = tA ? a.shape.lens[0] : a.shape.lens[1];
    const dt = a.shape.dtype;
    const hasC = ctx.hasInput(2) && beta != 0;
    if (hasC) fillBias(y, ctx.input(2), M, N, beta);
    if (dt == DT_FLOAT) {
      sgemm(tA, tB, M, N, K, alpha, a.ptr, tA ? M : K, b.ptr, tB ? K : N, hasC ? 1 : 0, y.ptr, N);
    } else {
      gemmGeneric(tA, tB, M, N, K, <f64>alpha, a, 0, b, 0, y, 0, hasC);
    }
    return true;
  }
}

/** The internal op that packs a weight-only B operand for sgemmPackedB (pass pack_gemm_weights). */
export const PACK_GEMM_B: string = "kiln.pack_gemm_b";
/** The internal op for MatMul / Gemm whose B is packed by PACK_GEMM_B. */
export const GEMM_PACKED_B: string = "kiln.gemm_packed_b";
/** The internal op for a Gather of rows of a weight that is also packed transposed (a tied embedding). */
export const GATHER_PACKED_ROWS: string = "kiln.gather_packed_rows";

/**
 * kiln.pack_gemm_b {trans_b}: a 2-D float32 B (K x N, or N x K with trans_b) -> float32
 * [packedBLength(K, N)] in the panel layout of kernels/gemm.ts packWholeB. Inserted by the
 * pack_gemm_weights pass on weight-only inputs, so it runs in the prepare step.
 */
class PackGemmBOp extends Op {
  constructor() {
    super(PACK_GEMM_B, OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input B is required");
    const b = ctx.input(0);
    if (b.dtype != DT_FLOAT) return ctx.failDtype(0);
    if (b.rank() != 2) return ctx.fail("B must be 2-D: " + b.toString());
    const tB = ctx.attrs.getInt("trans_b", 0) != 0;
    const K = tB ? b.lens[1] : b.lens[0];
    const N = tB ? b.lens[0] : b.lens[1];
    ctx.out(Shape.standard(DT_FLOAT, [packedBLength(K, N)]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const b = ctx.input(0);
    const tB = ctx.attrs.getInt("trans_b", 0) != 0;
    const K = tB ? b.shape.lens[1] : b.shape.lens[0];
    const N = tB ? b.shape.lens[0] : b.shape.lens[1];
    packWholeB(tB, b.ptr, b.shape.lens[1], K, N, ctx.output(0).ptr);
    return true;
  }
}

/**
 * kiln.gemm_packed_b {k, n, trans_a, alpha, beta}: Y = alpha * op(A) * B + beta * C with B
 * packed by kiln.pack_gemm_b. A is [..., M, K] (its leading dims stack into rows, as MatMul
 * with a 2-D B does) or, with trans_a, [K, M]; C (optional) broadcasts to [M, N] as in Gemm.
 */
class GemmPackedBOp extends Op {
  constructor() {
    super(GEMM_PACKED_B, OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs A and packed B are required");
    const a = ctx.input(0);
    const bp = ctx.input(1);
    const K = <i32>ctx.attrs.getInt("k", 0);
    const N = <i32>ctx.attrs.getInt("n", 0);
    const tA = ctx.attrs.getInt("trans_a", 0) != 0;
    if (a.dtype != DT_FLOAT) return ctx.failDtype(0);
    if (bp.dtype != DT_FLOAT || bp.rank() != 1 || bp.lens[0] != packedBLength(K, N)) {
      return ctx.fail("packed B " + bp.toString() + " does not hold a packed " + K.toString() + " x " +
        N.toString() + " matrix");
    }
    const ra = a.rank();
    if (ra < 2 || (tA && ra != 2)) return ctx.fail("A must be 2-D (or more without trans_a): " + a.toString());
    if ((tA ? a.lens[0] : a.lens[ra - 1]) != K) {
      return ctx.fail("inner dims differ: " + a.toString() + (tA ? "^T" : "") + " x " + K.toString() + "x" +
        N.toString());
    }
    const out = tA ? [a.lens[1], N] : a.lens.slice(0);
    if (!tA) out[ra - 1] = N;
    if (ctx.hasInput(2)) {
      const c = ctx.input(2);
      const M = tA ? a.lens[1] : a.lens[ra - 2];
      const bl = broadcastLens([M, N], c.lens);
      if (ra != 2 || c.dtype != DT_FLOAT || c.rank() > 2 || bl == null || bl[0] != M || bl[1] != N) {
        return ctx.fail("C " + c.toString() + " does not broadcast to " + lensString(DT_FLOAT, out));
      }
    }
    ctx.out(Shape.standard(DT_FLOAT, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const a = ctx.input(0);
    const y = ctx.output(0);
    const K = <i32>ctx.attrs.getInt("k", 0);
    const N = <i32>ctx.attrs.getInt("n", 0);
    const tA = ctx.attrs.getInt("trans_a", 0) != 0;
    const alpha = ctx.attrs.getFloat("alpha", 1);
    const beta = ctx.attrs.getFloat("beta", 1);
    const M = y.shape.elements() / (N > 0 ? N : 1);
    if (M == 0 || N == 0) return true;
    const hasC = ctx.hasInput(2) && beta != 0;
    if (hasC) fillBias(y, ctx.input(2), M, N, beta);
    sgemmPackedB(tA, M, N, K, alpha, a.ptr, tA ? M : K, ctx.input(1).ptr, hasC ? 1 : 0, y.ptr, N);
    return true;
  }
}

/**
 * kiln.gather_packed_rows {k, n}: Gather (axis 0) of rows of E (N x K float32) read out of E's
 * transposed packing (kiln.pack_gemm_b with trans_b: op(B) = E^T, so row v of E is column v of
 * op(B)): indices of any shape (int32 or int64, negative from the end) -> [...indices, K]. Inserted
 * by pack_gemm_weights, so that a tied embedding (GPT-2's wte: gathered, and the LM head's B) needs
 * no raw copy beside its packing.
 */
class GatherPackedRowsOp extends Op {
  constructor() {
    super(GATHER_PACKED_ROWS, OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs packed E and indices are required");
    const bp = ctx.input(0);
    const ind = ctx.input(1);
    const K = <i32>ctx.attrs.getInt("k", 0);
    const N = <i32>ctx.attrs.getInt("n", 0);
    if (bp.dtype != DT_FLOAT || bp.rank() != 1 || bp.lens[0] != packedBLength(K, N)) {
      return ctx.fail("packed E " + bp.toString() + " does not hold a packed " + N.toString() + " x " + K.toString() +
        " matrix");
    }
    if (ind.dtype != DT_INT64 && ind.dtype != DT_INT32) return ctx.failDtype(1);
    const out = ind.lens.slice(0);
    out.push(K);
    ctx.out(Shape.standard(DT_FLOAT, out));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const bp = ctx.input(0);
    const ind = ctx.input(1);
    const K = <i32>ctx.attrs.getInt("k", 0);
    const N = <i32>ctx.attrs.getInt("n", 0);
    const n = ind.shape.elements();
    const i64 = ind.shape.dtype == DT_INT64;
    let d = ctx.output(0).ptr;
    for (let j = 0; j < n; j++) {
      let v: i64 = i64 ? load<i64>(ind.ptr + (<usize>j << 3)) : <i64>load<i32>(ind.ptr + (<usize>j << 2));
      const given = v;
      if (v < 0) v += N;
      if (v < 0 || v >= <i64>N) {
        return ctx.fail("index " + given.toString() + " is out of range [-" + N.toString() + ", " + N.toString() +
          ") on axis 0");
      }
      packBRows(true, d, <i32>v, 1, K, K, N, bp.ptr, true);
      d += <usize>K << 2;
    }
    return true;
  }
}

export function registerLinalg(): void {
  registerOp(new GatherPackedRowsOp());
  registerOp(new MatMulOp());
  registerOp(new GemmOp());
  registerOp(new PackGemmBOp());
  registerOp(new GemmPackedBOp());
}
