/**
 * `freeze`: graph inputs fixed to a value at compile time, given as plain numbers, bigints,
 * booleans, arrays or typed arrays. Each value is turned into a tensor of the input's declared
 * element type and dims (symbolic dims from `inputDims`, or a rank-1 input's length from the
 * value), then bound as a `constantInputs` literal, so that shape inference and constant folding
 * see it (an `If` on it folds to one branch).
 * @module
 */
import {
  describe,
  dtypeFromOnnx,
  type DTypeName,
  dtypeSize,
  elementCount,
  float32BitsToBfloat16Bits,
  float32ToFloat16Bits,
  type Tensor,
  type TypedArray,
  viewAs,
} from "../tensor.ts";
import { inputError } from "./errors.ts";
import type { onnx } from "./onnx_pb.js";
import { isValidDim } from "./tensor_proto.ts";

/** A value to freeze an input to: a scalar, or the elements in row-major order. */
export type FreezeValue =
  | number
  | bigint
  | boolean
  | readonly (number | bigint | boolean)[]
  | TypedArray;

const _INT_RANGE: Partial<Record<DTypeName, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
};

const _f32 = new Float32Array(1);
const _u32 = new Uint32Array(_f32.buffer);

function _elements(name: string, value: FreezeValue): (number | bigint | boolean)[] {
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return [value];
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    return Array.from(value as ArrayLike<number | bigint | boolean>);
  }
  throw inputError(
    `freeze '${name}' must be a number, bigint, boolean, array or typed array, got ${
      value === null ? "null" : typeof value
    }`,
  );
}

/** The dims to freeze input `v` at: declared dims, symbolic ones from `given` or (rank 1) from `count`. */
function _dims(v: onnx.IValueInfoProto, given: number[] | undefined, count: number): number[] {
  const name = v.name ?? "";
  const declared = v.type?.tensor_type?.shape?.dim;
  if (!declared) {
    if (given) return [...given];
    return count === 1 ? [] : [count];
  }
  return declared.map((d, i) => {
    const fixed = d.dim_value;
    if (typeof fixed === "number" && isValidDim(fixed) && !d.dim_param) return fixed;
    if (given && isValidDim(given[i])) return given[i];
    if (declared.length === 1) return count;
    throw inputError(
      `freeze '${name}': dim ${i} of the input is ${
        d.dim_param ? `'${d.dim_param}'` : "unknown"
      }; give its dims in inputDims (command line: --dims ${name}=...)`,
    );
  });
}

/** Converts one element to dtype's representation, or throws naming the input and element. */
function _convert(name: string, dtype: DTypeName, x: number | bigint | boolean, i: number): number | bigint {
  const where = `freeze '${name}' element ${i} (${String(x)})`;
  if (typeof x !== "number" && typeof x !== "bigint" && typeof x !== "boolean") {
    throw inputError(`${where} is ${typeof x}; values must be numbers, bigints or booleans`);
  }
  if (dtype === "bool") {
    if (typeof x === "boolean") return x ? 1 : 0;
    if (x === 0 || x === 1 || x === 0n || x === 1n) return Number(x);
    throw inputError(`${where} must be true, false, 0 or 1 for the bool input`);
  }
  const n = typeof x === "boolean" ? (x ? 1 : 0) : x;
  if (dtype === "float32" || dtype === "float64" || dtype === "float16" || dtype === "bfloat16") {
    return Number(n);
  }
  if (typeof n === "number" && !Number.isInteger(n)) {
    throw inputError(`${where} is not an integer; the input is ${dtype}`);
  }
  if (dtype === "int64" || dtype === "uint64") {
    const b = BigInt(n);
    const ok = dtype === "int64" ? b >= -(1n << 63n) && b < (1n << 63n) : b >= 0n && b < (1n << 64n);
    if (!ok) throw inputError(`${where} is out of range for ${dtype}`);
    return b;
  }
  const [lo, hi] = _INT_RANGE[dtype]!;
  const v = Number(n);
  if (v < lo || v > hi) throw inputError(`${where} is out of range for ${dtype} [${lo}, ${hi}]`);
  return v;
}

/** The tensor that freezes graph input `v` (declared type and dims) to `value`. */
export function freezeTensor(
  v: onnx.IValueInfoProto,
  value: FreezeValue,
  given: number[] | undefined,
): Tensor {
  const name = v.name ?? "";
  const code = v.type?.tensor_type?.elem_type ?? 0;
  if (!v.type?.tensor_type || !code) {
    throw inputError(`freeze '${name}': the input is not a tensor with a declared element type`);
  }
  const dtype = dtypeFromOnnx(code);
  const els = _elements(name, value);
  const dims = _dims(v, given, els.length);
  const need = elementCount(dims);
  if (els.length !== need) {
    throw inputError(
      `freeze '${name}' gives ${els.length} value${els.length === 1 ? "" : "s"}, the input ${
        describe(dtype, dims)
      } needs ${need}`,
    );
  }
  const vals = els.map((x, i) => _convert(name, dtype, x, i));
  // the dtype's typed array (float16 and bfloat16 as bits); the values are range-checked above
  const data = viewAs(dtype, new Uint8Array(need * dtypeSize(dtype)));
  if (dtype === "float16") vals.forEach((x, i) => data[i] = float32ToFloat16Bits(x as number));
  else if (dtype === "bfloat16") {
    vals.forEach((x, i) => {
      _f32[0] = x as number;
      data[i] = float32BitsToBfloat16Bits(_u32[0]);
    });
  } else (data as { set(v: ArrayLike<number | bigint>): void }).set(vals);
  return { dtype, dims, data };
}

/**
 * Parses a command-line freeze value: a number, `true`/`false`, or a comma-separated list of them
 * (integers beyond 2^53 stay exact as bigints).
 */
export function parseFreezeValue(text: string): FreezeValue {
  const parts = text.split(",").map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === "")) {
    throw inputError(
      `--freeze value '${text}' must be a number, true, false, or a comma-separated list of them`,
    );
  }
  const out = parts.map((p): number | bigint | boolean => {
    if (p === "true") return true;
    if (p === "false") return false;
    if (/^[-+]?\d+$/.test(p) && !Number.isSafeInteger(Number(p))) return BigInt(p);
    if (/^[-+]?inf(inity)?$/i.test(p)) return p.startsWith("-") ? -Infinity : Infinity;
    if (/^nan$/i.test(p)) return NaN;
    const n = Number(p);
    if (Number.isNaN(n)) throw inputError(`--freeze value '${text}': '${p}' is not a number, true or false`);
    return n;
  });
  return out.length === 1 ? out[0] : out;
}
