/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), C order, every dtype of
 * `core/tensor.ts`: bool as `|b1`, float16 as `<f2`, bfloat16 as `|V2` (raw bits; NumPy has no
 * bfloat16). Big-endian arrays are byte-swapped on read; Fortran-order arrays are refused.
 * @module
 */
import {
  describe,
  dtypeFromNpy,
  type DTypeName,
  dtypeSize,
  elementCount,
  npyDescr,
  type Tensor,
  tensorBytes,
  viewAs,
} from "./tensor.ts";

const _MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** An error reading or writing a .npy file. */
export class NpyError extends Error {
  /** Machine-readable error code. */
  readonly code = "npy";
  constructor(message: string) {
    super(message);
    this.name = "NpyError";
  }
}

interface _Header {
  descr: string;
  fortran: boolean;
  shape: number[];
}

/** Parses the Python dict literal of a .npy header. */
function _parseHeader(text: string, what: string): _Header {
  const str = (key: string) => text.match(new RegExp(`['"]${key}['"]\\s*:\\s*['"]([^'"]*)['"]`))?.[1];
  const descr = str("descr");
  const fortran = text.match(/['"]fortran_order['"]\s*:\s*(True|False)/)?.[1];
  const shape = text.match(/['"]shape['"]\s*:\s*\(([^)]*)\)/)?.[1];
  if (descr === undefined || fortran === undefined || shape === undefined) {
    throw new NpyError(`${what}: malformed header '${text.trim()}'`);
  }
  const dims: number[] = [];
  for (const part of shape.split(",")) {
    const p = part.trim().replace(/L$/, "");
    if (p === "") continue;
    if (!/^\d+$/.test(p)) throw new NpyError(`${what}: bad shape '(${shape})' in header`);
    dims.push(Number(p));
  }
  return { descr, fortran: fortran === "True", shape: dims };
}

/**
 * Reads a .npy file's bytes into a tensor (the data is copied, so it is aligned and owned).
 * @example
 * ```ts
 * import { readNpy, writeNpy } from "./npy.ts";
 * const t = readNpy(writeNpy({ dtype: "float32", dims: [2], data: new Float32Array([1, 2]) }));
 * console.assert(t.dims[0] === 2);
 * ```
 */
export function readNpy(bytes: Uint8Array, what = "npy data"): Tensor {
  if (bytes.length < 10 || _MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError(`${what}: not a .npy file (bad magic)`);
  }
  const major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3) {
    throw new NpyError(`${what}: unsupported .npy format version ${major}.${minor}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenSize) throw new NpyError(`${what}: truncated header`);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + lenSize + headerLen;
  if (bytes.length < start) {
    throw new NpyError(`${what}: truncated header (${bytes.length} bytes, the header ends at ${start})`);
  }
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(8 + lenSize, start));
  const h = _parseHeader(text, what);
  const dtype = dtypeFromNpy(h.descr);
  if (!dtype) throw new NpyError(`${what}: unsupported dtype descr '${h.descr}'`);
  const size = dtypeSize(dtype);
  const bigEndian = h.descr.startsWith(">") && size > 1;
  if (h.fortran && h.shape.filter((d) => d > 1).length > 1) {
    throw new NpyError(
      `${what}: Fortran-order arrays are not supported (${describe(dtype, h.shape)}); save in C order`,
    );
  }
  const nbytes = elementCount(h.shape) * size;
  if (bytes.length - start < nbytes) {
    throw new NpyError(
      `${what}: truncated data: ${describe(dtype, h.shape)} needs ${nbytes} bytes, the file has ${
        bytes.length - start
      }`,
    );
  }
  const data = new Uint8Array(bytes.subarray(start, start + nbytes)); // a copy
  if (bigEndian) _swap(data, size);
  return { dtype, dims: h.shape, data: viewAs(dtype, data) };
}

/** Reverses the bytes of each `size`-byte element in place. */
function _swap(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) b.subarray(i, i + size).reverse();
}

/** Serializes a tensor as .npy (version 1.0, or 2.0 when the header needs it); little-endian, C order. */
export function writeNpy(t: Tensor): Uint8Array {
  const size = dtypeSize(t.dtype);
  const n = elementCount(t.dims);
  if (t.data.length !== n) {
    throw new NpyError(
      `Cannot write ${describe(t.dtype, t.dims)} as .npy: it has ${t.data.length} elements, needs ${n}`,
    );
  }
  const code = npyDescr(t.dtype);
  const descr = (size === 1 || code.startsWith("V") ? "|" : "<") + code;
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  let major = 1;
  let prefix = 10;
  if (header.length + 1 + prefix > 0xffff) {
    major = 2;
    prefix = 12;
  }
  const pad = (64 - ((prefix + header.length + 1) % 64)) % 64;
  header = header + " ".repeat(pad) + "\n";
  const data = tensorBytes(t);
  const out = new Uint8Array(prefix + header.length + data.length);
  out.set(_MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i);
  out.set(data, prefix + header.length);
  return out;
}

/** Reads a .npy file. */
export async function readNpyFile(path: string | URL): Promise<Tensor> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new NpyError(`Cannot read .npy file '${path}': ${(e as Error).message}`);
  }
  return readNpy(bytes, `.npy file '${path}'`);
}

/** Writes a tensor to a .npy file. */
export async function writeNpyFile(path: string | URL, t: Tensor): Promise<void> {
  await Deno.writeFile(path, writeNpy(t));
}

/** The dtypes .npy round-trips (all of core/tensor.ts). */
export const NPY_DTYPES: readonly DTypeName[] = [
  "float32",
  "float16",
  "bfloat16",
  "float64",
  "int8",
  "int16",
  "int32",
  "int64",
  "uint8",
  "uint16",
  "uint32",
  "uint64",
  "bool",
];
