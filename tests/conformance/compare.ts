/**
 * Output comparison for the conformance suite and the oracle tests.
 *
 * Tolerances: ONNX's backend runner compares with `np.testing.assert_allclose(out, ref, rtol,
 * atol)`, i.e. `|out - ref| <= atol + rtol * |ref|` elementwise, NaN equal to NaN, with
 * `rtol = 1e-3, atol = 1e-7` by default for node tests (onnx/backend/test/loader/__init__.py,
 * onnx/backend/test/runner/__init__.py `assert_similar_outputs`). onnxruntime runs the same
 * suite with `rtol = 1e-3, atol = 1e-5` (onnxruntime/test/python/onnx_backend_test_series.py,
 * `OrtBackendTest.assert_similar_outputs`), which absorbs float32 reassociation near zero; kiln
 * uses onnxruntime's figures. Integer and bool outputs must match exactly; element types and
 * dims must match exactly.
 * @module
 */

import type { Tensor } from "../../core/tensor.ts";
import { describe } from "../../core/tensor.ts";

/** assert_allclose tolerances. */
export interface Tolerance {
  rtol: number;
  atol: number;
}

/** onnxruntime's backend-test tolerances (see the module doc). */
export const ONNX_TOLERANCE: Tolerance = { rtol: 1e-3, atol: 1e-5 };

/** The outcome of comparing one output. */
export interface CompareResult {
  ok: boolean;
  /** Why it failed (dtype, dims, values). */
  reason?: string;
  /** Largest |actual - expected| over the elements (0 for exact matches; Infinity on NaN/inf mismatch). */
  maxAbsError: number;
  /** Elements out of tolerance. */
  mismatches: number;
}

/** Whether a dtype is compared with tolerances. */
export function isFloat(dtype: string): boolean {
  return dtype === "float32" || dtype === "float64" || dtype === "float16" || dtype === "bfloat16";
}

/** The values of a float tensor as numbers (float16/bfloat16 decoded from their bits). */
export function floatValues(t: Tensor): Float64Array | Float32Array {
  if (t.dtype === "float32") return t.data as Float32Array;
  if (t.dtype === "float64") return t.data as Float64Array;
  const bits = t.data as Uint16Array;
  const out = new Float32Array(bits.length);
  if (t.dtype === "bfloat16") {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  } else {
    for (let i = 0; i < bits.length; i++) out[i] = float16BitsToNumber(bits[i]);
  }
  return out;
}

/** Decodes IEEE binary16 bits. */
export function float16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Compares `actual` with `expected` like the ONNX backend tests: same dtype, same dims, floats
 * within `tol` (NaN equals NaN, infinities must match), everything else exactly.
 */
export function compareTensors(
  actual: Tensor,
  expected: Tensor,
  tol: Tolerance = ONNX_TOLERANCE,
): CompareResult {
  if (actual.dtype !== expected.dtype) {
    return {
      ok: false,
      reason: `type ${describe(actual.dtype, actual.dims)}, expected ${
        describe(expected.dtype, expected.dims)
      }`,
      maxAbsError: Infinity,
      mismatches: -1,
    };
  }
  if (actual.dims.length !== expected.dims.length || actual.dims.some((d, i) => d !== expected.dims[i])) {
    return {
      ok: false,
      reason: `dims [${actual.dims.join(",")}], expected [${expected.dims.join(",")}]`,
      maxAbsError: Infinity,
      mismatches: -1,
    };
  }
  if (actual.data.length !== expected.data.length) {
    return {
      ok: false,
      reason: `${actual.data.length} elements, expected ${expected.data.length}`,
      maxAbsError: Infinity,
      mismatches: -1,
    };
  }
  let maxAbs = 0, bad = 0, firstBad = -1;
  if (isFloat(expected.dtype)) {
    const a = floatValues(actual), e = floatValues(expected);
    for (let i = 0; i < e.length; i++) {
      const x = a[i], y = e[i];
      if (Number.isNaN(y) || Number.isNaN(x)) {
        if (Number.isNaN(x) !== Number.isNaN(y)) {
          maxAbs = Infinity;
          bad++;
          if (firstBad < 0) firstBad = i;
        }
        continue;
      }
      if (x === y) continue;
      const d = Math.abs(x - y); // x !== y here, so an infinity on either side is a mismatch
      if (!Number.isFinite(d) || !(d <= tol.atol + tol.rtol * Math.abs(y))) {
        bad++;
        if (firstBad < 0) firstBad = i;
      }
      if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
    }
    if (bad) {
      return {
        ok: false,
        reason: `${bad} of ${e.length} values out of tolerance, max abs error ${
          _fmt(maxAbs)
        } (first at ${firstBad}: ${a[firstBad]} vs ${e[firstBad]})`,
        maxAbsError: maxAbs,
        mismatches: bad,
      };
    }
    return { ok: true, maxAbsError: maxAbs, mismatches: 0 };
  }
  const a = actual.data, e = expected.data;
  for (let i = 0; i < e.length; i++) {
    if (a[i] !== e[i]) {
      const d = Math.abs(Number(a[i]) - Number(e[i]));
      if (d > maxAbs) maxAbs = d;
      bad++;
      if (firstBad < 0) firstBad = i;
    }
  }
  if (bad) {
    return {
      ok: false,
      reason: `${bad} of ${e.length} values differ, max abs error ${_fmt(maxAbs)} (first at ${firstBad}: ${
        a[firstBad]
      } vs ${e[firstBad]})`,
      maxAbsError: maxAbs,
      mismatches: bad,
    };
  }
  return { ok: true, maxAbsError: 0, mismatches: 0 };
}

/** Relative L2 error ||a - b|| / ||b|| of two float tensors of the same size (b is the reference). */
export function relativeL2(a: Tensor, b: Tensor): number {
  const x = floatValues(a), y = floatValues(b);
  if (x.length !== y.length) throw new Error(`Cannot compare ${x.length} values with ${y.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < y.length; i++) {
    const d = x[i] - y[i];
    num += d * d;
    den += y[i] * y[i];
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Whether every value of a float tensor is finite (true for non-float tensors). */
export function allFinite(t: Tensor): boolean {
  if (!isFloat(t.dtype)) return true;
  for (const v of floatValues(t)) if (!Number.isFinite(v)) return false;
  return true;
}

function _fmt(x: number): string {
  return x === Infinity ? "inf" : x.toPrecision(3);
}
