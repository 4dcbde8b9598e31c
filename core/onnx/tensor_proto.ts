/**
 * onnx.TensorProto -> little-endian standard-layout bytes: raw_data and every typed field
 * (float_data, int32_data, int64_data, double_data, uint64_data), with clear errors for
 * element types kiln does not store.
 * @module
 */
import { onnx } from "./onnx_pb.js";
import {
  dtypeFromOnnx,
  dtypeSize,
  elementCount,
  isSupportedOnnxType,
  type Tensor,
  viewAs,
} from "../tensor.ts";
import { importError } from "./errors.ts";

/** ONNX TensorProto.DataType names, for messages. */
const _ONNX_TYPE_NAMES: Record<number, string> = {
  0: "UNDEFINED",
  8: "STRING",
  14: "COMPLEX64",
  15: "COMPLEX128",
  17: "FLOAT8E4M3FN",
  18: "FLOAT8E4M3FNUZ",
  19: "FLOAT8E5M2",
  20: "FLOAT8E5M2FNUZ",
  21: "UINT4",
  22: "INT4",
  23: "FLOAT4E2M1",
  24: "FLOAT8E8M0",
  25: "UINT2",
  26: "INT2",
};

/** A decoded tensor's element type (ONNX code), dims and bytes. */
export interface TensorData {
  dtype: number;
  dims: number[];
  bytes: Uint8Array;
}

/** `data_location` EXTERNAL. */
export const DATA_LOCATION_EXTERNAL = 1;

/** Names an ONNX element type code for messages: `FLOAT8E4M3FN (17)`. */
export function onnxTypeName(code: number): string {
  const known = _ONNX_TYPE_NAMES[code];
  if (known !== undefined) return `${known} (${code})`;
  return isSupportedOnnxType(code) ? dtypeFromOnnx(code) : `${code}`;
}

/** Checks that `code` is an element type kiln stores; `what` names the tensor or value. */
export function checkElementType(code: number, what: string): void {
  if (!isSupportedOnnxType(code)) {
    throw importError(`${what} has element type ${onnxTypeName(code)}, which kiln does not support`);
  }
}

/** The largest dim kiln takes: 2^31 - 1 (the core's dims are 32-bit signed). */
export const MAX_DIM = 2 ** 31 - 1;

/** True when `d` is a dim kiln takes: an integer number from 0 to 2^31 - 1. */
export function isValidDim(d: unknown): d is number {
  return typeof d === "number" && Number.isInteger(d) && d >= 0 && d <= MAX_DIM;
}

/**
 * Converts decoded int64 dims to numbers, each an integer from 0 to 2^31 - 1 (checked here,
 * before anything narrows them to 32 bits); a negative one, one past 2^31 - 1 or one past 2^53
 * (decoded as a bigint) is an "onnx" KilnError naming the tensor, the dim and its value.
 */
export function tensorDims(t: onnx.ITensorProto, what: string): number[] {
  const dims: number[] = [];
  (t.dims ?? []).forEach((d, i) => {
    if (!isValidDim(d)) {
      throw importError(
        `${what} has an invalid dimension '${d}' (dim ${i}; dims must be integers from 0 to ${MAX_DIM})`,
      );
    }
    dims.push(d);
  });
  return dims;
}

/** True when the tensor's data lives in an external file. */
export function isExternal(t: onnx.ITensorProto): boolean {
  return t.data_location === DATA_LOCATION_EXTERNAL;
}

/**
 * The bytes of a tensor stored inside the protobuf (raw_data or a typed field).
 * `copy: false` keeps raw_data as a view of the decoded buffer (zero-copy, pins it).
 */
export function tensorProtoData(t: onnx.ITensorProto, what: string, copy = true): TensorData {
  const code = t.data_type ?? 0;
  checkElementType(code, what);
  if (isExternal(t)) throw importError(`${what} keeps its data in an external file`);
  if (t.segment) throw importError(`${what} is a segment of a chunked tensor, which kiln does not support`);
  const dims = tensorDims(t, what);
  const dtype = dtypeFromOnnx(code);
  const size = dtypeSize(dtype);
  const n = elementCount(dims);
  const nbytes = n * size;
  const raw = t.raw_data;
  if (raw && raw.length > 0) {
    if (raw.length !== nbytes) {
      throw importError(
        `${what} (${dtype}[${dims.join(",")}]) has ${raw.length} bytes of raw_data, needs ${nbytes}`,
      );
    }
    // `new Uint8Array(x)` copies; protobufjs may hand out Node Buffers, whose slice() is a view.
    const bytes = copy ? new Uint8Array(raw) : new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    return { dtype: code, dims, bytes };
  }
  // the typed field's count is checked before the bytes are allocated: dims alone (a few bytes
  // of protobuf) must not make kiln allocate gigabytes
  const [field, count] = _typedField(t, dtype);
  if (count !== n) {
    throw importError(`${what} (${dtype}[${dims.join(",")}]) has ${count} values in ${field}, needs ${n}`);
  }
  const out = new Uint8Array(nbytes);
  const dv = new DataView(out.buffer);
  const fill = (set: (i: number) => void) => {
    for (let i = 0; i < n; i++) set(i);
  };
  switch (dtype) {
    case "float32": {
      const v = t.float_data ?? [];
      fill((i) => dv.setFloat32(i * 4, v[i], true));
      break;
    }
    case "float64": {
      const v = t.double_data ?? [];
      fill((i) => dv.setFloat64(i * 8, v[i], true));
      break;
    }
    case "int64": {
      const v = t.int64_data ?? [];
      fill((i) => dv.setBigInt64(i * 8, BigInt(v[i]), true));
      break;
    }
    case "uint64": {
      const v = t.uint64_data ?? [];
      fill((i) => dv.setBigUint64(i * 8, BigInt.asUintN(64, BigInt(v[i])), true));
      break;
    }
    case "uint32": {
      const v = t.uint64_data ?? [];
      fill((i) => dv.setUint32(i * 4, Number(v[i]), true));
      break;
    }
    case "int32": {
      const v = t.int32_data ?? [];
      fill((i) => dv.setInt32(i * 4, v[i], true));
      break;
    }
    case "int16":
    case "uint16":
    case "float16":
    case "bfloat16": {
      const v = t.int32_data ?? [];
      fill((i) => dv.setUint16(i * 2, v[i] & 0xffff, true));
      break;
    }
    case "int8":
    case "uint8": {
      const v = t.int32_data ?? [];
      fill((i) => dv.setUint8(i, v[i] & 0xff));
      break;
    }
    case "bool": {
      const v = t.int32_data ?? [];
      fill((i) => dv.setUint8(i, v[i] !== 0 ? 1 : 0));
      break;
    }
  }
  return { dtype: code, dims, bytes: out };
}

/** The typed field that holds a `dtype` tensor's values without raw_data, and its count. */
function _typedField(t: onnx.ITensorProto, dtype: string): [string, number] {
  switch (dtype) {
    case "float32":
      return ["float_data", (t.float_data ?? []).length];
    case "float64":
      return ["double_data", (t.double_data ?? []).length];
    case "int64":
      return ["int64_data", (t.int64_data ?? []).length];
    case "uint64":
    case "uint32":
      return ["uint64_data", (t.uint64_data ?? []).length];
    default:
      return ["int32_data", (t.int32_data ?? []).length];
  }
}

/**
 * Decodes a serialized onnx.TensorProto (the backend tests' input_N.pb / output_N.pb files).
 * @example
 * ```ts ignore
 * const t = readTensorProto(await Deno.readFile("test_data_set_0/input_0.pb"));
 * console.log(t.name, t.dtype, t.dims);
 * ```
 */
export function readTensorProto(bytes: Uint8Array): Tensor & { name: string } {
  let t: onnx.TensorProto;
  try {
    t = onnx.TensorProto.decode(bytes);
  } catch (e) {
    throw importError(`Cannot decode TensorProto: ${(e as Error).message}`);
  }
  const name = t.name ?? "";
  const data = tensorProtoData(t, `Tensor '${name}'`);
  const dtype = dtypeFromOnnx(data.dtype);
  return { name, dtype, dims: data.dims, data: viewAs(dtype, data.bytes) };
}
