/**
 * Host-side tensors: element types by name, their ONNX codes, and typed-array views.
 * @module
 */

/** Element types kiln stores. Names follow onnxruntime-web's `Tensor.Type`. */
export type DTypeName =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "bool";

/** The typed arrays a Tensor's data may be (one per element type; float16 and bfloat16 as Uint16Array). */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

/** A dense row-major tensor. float16/bfloat16 are carried as raw bits in a Uint16Array. */
export interface Tensor {
  /** element type */
  dtype: DTypeName;
  /** dims, outermost first ([] for a scalar) */
  dims: number[];
  /** the elements, row-major; its array type matches dtype */
  data: TypedArray;
}

interface DTypeInfo {
  name: DTypeName;
  onnx: number;
  size: number;
  /** numpy `descr` without the byte-order char */
  npy: string;
}

const TABLE: DTypeInfo[] = [
  { name: "float32", onnx: 1, size: 4, npy: "f4" },
  { name: "uint8", onnx: 2, size: 1, npy: "u1" },
  { name: "int8", onnx: 3, size: 1, npy: "i1" },
  { name: "uint16", onnx: 4, size: 2, npy: "u2" },
  { name: "int16", onnx: 5, size: 2, npy: "i2" },
  { name: "int32", onnx: 6, size: 4, npy: "i4" },
  { name: "int64", onnx: 7, size: 8, npy: "i8" },
  { name: "bool", onnx: 9, size: 1, npy: "b1" },
  { name: "float16", onnx: 10, size: 2, npy: "f2" },
  { name: "float64", onnx: 11, size: 8, npy: "f8" },
  { name: "uint32", onnx: 12, size: 4, npy: "u4" },
  { name: "uint64", onnx: 13, size: 8, npy: "u8" },
  { name: "bfloat16", onnx: 16, size: 2, npy: "V2" },
];

const BY_NAME = new Map(TABLE.map((d) => [d.name, d]));
const BY_ONNX = new Map(TABLE.map((d) => [d.onnx, d]));

/** The ONNX TensorProto.DataType code of a dtype name. */
export function onnxCode(name: DTypeName): number {
  return BY_NAME.get(name)!.onnx;
}

/** The dtype name of an ONNX code; throws on codes kiln does not store (string, float8, int4). */
export function dtypeFromOnnx(code: number): DTypeName {
  const d = BY_ONNX.get(code);
  if (!d) throw new Error(`Unsupported ONNX element type ${code}`);
  return d.name;
}

export function isSupportedOnnxType(code: number): boolean {
  return BY_ONNX.has(code);
}

/** Bytes per element. */
export function dtypeSize(name: DTypeName): number {
  return BY_NAME.get(name)!.size;
}

export function npyDescr(name: DTypeName): string {
  return BY_NAME.get(name)!.npy;
}

export function dtypeFromNpy(descr: string): DTypeName | undefined {
  const d = descr.replace(/^[<>|=]/, "");
  return TABLE.find((t) => t.npy === d)?.name;
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** A typed-array view of `bytes` for `dtype` (no copy when aligned; copies otherwise). */
export function viewAs(dtype: DTypeName, bytes: Uint8Array): TypedArray {
  const size = dtypeSize(dtype);
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  const { buffer, byteOffset } = bytes;
  const n = bytes.byteLength / size;
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, byteOffset, n);
    case "float64":
      return new Float64Array(buffer, byteOffset, n);
    case "int8":
      return new Int8Array(buffer, byteOffset, n);
    case "int16":
      return new Int16Array(buffer, byteOffset, n);
    case "int32":
      return new Int32Array(buffer, byteOffset, n);
    case "int64":
      return new BigInt64Array(buffer, byteOffset, n);
    case "uint8":
    case "bool":
      return new Uint8Array(buffer, byteOffset, n);
    case "uint16":
    case "float16":
    case "bfloat16":
      return new Uint16Array(buffer, byteOffset, n);
    case "uint32":
      return new Uint32Array(buffer, byteOffset, n);
    case "uint64":
      return new BigUint64Array(buffer, byteOffset, n);
  }
}

const _ARRAY_OF: Record<DTypeName, string[]> = {
  float32: ["Float32Array"],
  float64: ["Float64Array"],
  float16: ["Uint16Array", "Float16Array"],
  bfloat16: ["Uint16Array"],
  int8: ["Int8Array"],
  int16: ["Int16Array"],
  int32: ["Int32Array"],
  int64: ["BigInt64Array"],
  uint8: ["Uint8Array"],
  bool: ["Uint8Array"],
  uint16: ["Uint16Array"],
  uint32: ["Uint32Array"],
  uint64: ["BigUint64Array"],
};

/**
 * Undefined when `data` is the typed array `dtype` is carried in (float16 and bfloat16 as
 * Uint16Array bits, float16 also as Float16Array), else what is wrong ("an Int32Array, float32
 * needs a Float32Array"). Data of another type is refused, never reinterpreted.
 */
export function typedArrayProblem(dtype: DTypeName, data: unknown): string | undefined {
  const want = _ARRAY_OF[dtype];
  if (!want) return `element type '${dtype}' is not one kiln stores`;
  const name = (data as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof data;
  if (ArrayBuffer.isView(data) && want.includes(name)) return undefined;
  return `${/^[AEIOU]/.test(name) ? "an" : "a"} ${name}, ${dtype} needs a ${want.join(" or a ")}`;
}

/** The bytes of a tensor's data (a view, no copy). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** A tensor over a copy of `bytes`. */
export function tensorFromBytes(dtype: DTypeName, dims: number[], bytes: Uint8Array): Tensor {
  return { dtype, dims: [...dims], data: viewAs(dtype, bytes.slice()) };
}

/** Describes a tensor as `float32[1,3,224,224]`. */
export function describe(dtype: DTypeName, dims: readonly number[]): string {
  return `${dtype}[${dims.join(",")}]`;
}

/**
 * Sets `obj[key] = value` as an own, enumerable property, also for keys such as "__proto__" that
 * an assignment would treat specially (names come from model files).
 */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** bfloat16 bits of a float32 (bits given), rounded to nearest even; NaN stays NaN. */
export function float32BitsToBfloat16Bits(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

const _f32 = new Float32Array(1);
const _u32 = new Uint32Array(_f32.buffer);

/** IEEE binary16 bits of a number, rounded to nearest even (overflow to infinity). */
export function float32ToFloat16Bits(v: number): number {
  _f32[0] = v;
  const x = _u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return h;
}

/** The number IEEE binary16 bits `h` hold (subnormals, infinities and NaN included). */
export function float16BitsToFloat32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The platform's Float16Array where it has one (Deno 2, browsers; not Node 20). */
type Float16ArrayLike = {
  new (n: number | ArrayLike<number> | ArrayBuffer): ArrayLike<number> & { buffer: ArrayBuffer };
};
const _Float16Array = (globalThis as { Float16Array?: Float16ArrayLike }).Float16Array;

/**
 * Converts little-endian float32, float16 or bfloat16 elements to another of those types,
 * rounding to nearest even (NaN stays NaN, overflow becomes infinity). float16 conversions use
 * the platform's Float16Array where there is one (its NaNs are the canonical quiet NaN), else
 * kiln's own bit conversions (tests/tensor_test.ts checks both agree).
 */
export function castFloats(bytes: Uint8Array, from: DTypeName, to: DTypeName): Uint8Array {
  return _castFloats(bytes, from, to, _Float16Array);
}

/** @internal castFloats with a chosen Float16Array (undefined: kiln's own conversions; tests). */
export function _castFloats(
  bytes: Uint8Array,
  from: DTypeName,
  to: DTypeName,
  f16: Float16ArrayLike | undefined,
): Uint8Array {
  const n = bytes.byteLength / dtypeSize(from);
  const src = new Uint8Array(bytes); // an aligned copy: the source may sit at any offset
  const values = from === "float32" ? new Float32Array(src.buffer) : new Float32Array(n);
  if (from !== "float32") {
    const h = new Uint16Array(src.buffer);
    if (from === "bfloat16") {
      const u = new Uint32Array(values.buffer);
      for (let i = 0; i < n; i++) u[i] = h[i] << 16;
    } else if (f16) {
      values.set(new f16(src.buffer));
    } else {
      for (let i = 0; i < n; i++) values[i] = float16BitsToFloat32(h[i]);
    }
  }
  if (to === "float32") return new Uint8Array(values.buffer);
  if (to === "float16" && f16) return new Uint8Array(new f16(values).buffer);
  const out = new Uint16Array(n);
  if (to === "float16") {
    for (let i = 0; i < n; i++) out[i] = float32ToFloat16Bits(values[i]);
  } else {
    const u = new Uint32Array(values.buffer);
    for (let i = 0; i < n; i++) out[i] = float32BitsToBfloat16Bits(u[i]);
  }
  return new Uint8Array(out.buffer);
}
