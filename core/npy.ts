/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), C order, every dtype of
 * `core/tensor.ts`: bool as `|b1`, float16 as `<f2`, bfloat16 as `|V2` (raw bits; NumPy has no
 * bfloat16). Big-endian arrays are byte-swapped on read; Fortran-order arrays are refused.
 *
 * Files come from elsewhere, so reading is strict and every failure is an {@linkcode NpyError}
 * (a KilnError) naming the file: the header must be a dict of exactly descr, fortran_order and
 * shape, each once; descr a dtype kiln stores, with its byte order; fortran_order False; shape
 * entries integers in 0..2^31 - 1; and the data exactly as long as the shape needs.
 * @module
 */
import { KilnError, type KilnErrorCode } from "./errors.ts";
import { readRegular, writeFileAtomic } from "./fs.ts";
import {
  describe,
  dtypeFromNpy,
  type DTypeName,
  dtypeSize,
  npyDescr,
  type Tensor,
  tensorBytes,
  viewAs,
} from "./tensor.ts";
import { fileUrlPath } from "./path.ts";

const _MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** An error reading or writing a .npy file: a KilnError (code "format", or "io" when the file cannot be read). */
export class NpyError extends KilnError {
  /** An error about a `.npy` file: `message` names the file; `code` "format" (bad contents) or "io". */
  constructor(message: string, code: KilnErrorCode = "format") {
    super(code, message);
    this.name = "NpyError";
  }
}

interface _Header {
  descr: string;
  fortran: boolean;
  shape: number[];
}

/** Largest shape entry kiln reads (2^31 - 1). */
const _MAX_DIM = 0x7fffffff;
/** The most dims a kiln tensor has (the core's limit, wasm/ir/codec.ts). */
const _MAX_RANK = 64;

const _latin1 = new TextDecoder("latin1");
/** The text of header bytes already checked to be ASCII (never spread as arguments: a header may be huge). */
function _ascii(b: Uint8Array): string {
  return _latin1.decode(b);
}

/** A string from a header, cut for a message. */
function _cut(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}...` : s;
}

/** Header text for a one-line message: non-printable bytes escaped, long headers cut. */
function _excerpt(h: Uint8Array): string {
  let end = h.length;
  while (end > 0 && (h[end - 1] === 0x20 || h[end - 1] === 0x0a)) end--; // NumPy's padding
  let out = "";
  for (const b of h.subarray(0, Math.min(end, 160))) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c
      ? String.fromCharCode(b)
      : `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return `'${out}${end > 160 ? "..." : ""}'`;
}

/**
 * Parses the Python dict literal of a .npy header, strictly: exactly the keys descr,
 * fortran_order and shape, each once (Python keeps the last of two, so NumPy would load an
 * ambiguous header: kiln refuses it); descr a string, fortran_order True or False, shape a tuple
 * of non-negative integers up to 2^31 - 1. Only what NumPy writes is read (either quote, any
 * spacing, a trailing comma, Python 2's `L` suffix in versions 1.0 and 2.0), in ASCII.
 */
function _parseHeader(h: Uint8Array, major: number, what: string): _Header {
  let i = 0;
  const n = h.length;
  const fail = (why: string): never => {
    throw new NpyError(`${what}: malformed header (${why} at byte ${i} of the header): ${_excerpt(h)}`);
  };
  const ws = () => {
    while (i < n && (h[i] === 0x20 || h[i] === 0x09 || h[i] === 0x0a || h[i] === 0x0d)) i++;
  };
  const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
  const str = (): string => {
    const q = h[i];
    if (q !== 0x27 && q !== 0x22) fail("expected a quoted string");
    const from = ++i;
    while (i < n && h[i] !== q) {
      if (h[i] < 0x20 || h[i] >= 0x7f || h[i] === 0x5c) fail("a string holds a byte kiln does not read");
      i++;
    }
    if (i >= n) fail("unterminated string");
    return _ascii(h.subarray(from, i++));
  };
  const word = (): string => {
    const from = i;
    while (i < n && ((h[i] | 0x20) >= 0x61 && (h[i] | 0x20) <= 0x7a || h[i] === 0x5f)) i++;
    return _ascii(h.subarray(from, i));
  };
  const int = (k: number): number => {
    if (h[i] === 0x2d) fail(`shape entry ${k} is negative`);
    if (!isDigit(h[i])) fail(`shape entry ${k} is not an integer`);
    const from = i;
    while (i < n && isDigit(h[i])) i++;
    const digits = _ascii(h.subarray(from, i));
    if (digits.length > 1 && digits[0] === "0") fail(`shape entry ${k} has a leading zero`);
    if (major <= 2 && (h[i] === 0x4c || h[i] === 0x6c)) i++; // Python 2's long suffix (NumPy reads it in 1.0 and 2.0)
    if (digits.length > 10 || Number(digits) > _MAX_DIM) {
      i = from;
      fail(
        `shape entry ${k} (${digits.length > 20 ? `${digits.slice(0, 20)}...` : digits}) exceeds 2^31 - 1`,
      );
    }
    return Number(digits);
  };
  const tuple = (): number[] => {
    if (h[i] !== 0x28) fail("shape is not a tuple");
    i++;
    const dims: number[] = [];
    let comma = false;
    for (;;) {
      ws();
      if (h[i] === 0x29) break;
      if (dims.length === _MAX_RANK) {
        fail(`the shape has more than ${_MAX_RANK} dims, kiln's tensors at most ${_MAX_RANK}`);
      }
      dims.push(int(dims.length));
      comma = false;
      ws();
      if (h[i] === 0x2c) {
        i++;
        comma = true;
      } else if (h[i] !== 0x29) fail("expected ',' or ')' in the shape");
    }
    i++;
    if (dims.length === 1 && !comma) {
      fail(`shape (${dims[0]}) is an integer, not a tuple: write (${dims[0]},)`);
    }
    return dims;
  };
  const out: Partial<_Header> = {};
  const seen = new Set<string>();
  ws();
  if (h[i] !== 0x7b) fail("expected '{'");
  i++;
  for (;;) {
    ws();
    if (h[i] === 0x7d) break;
    const at = i;
    const key = str();
    if (key !== "descr" && key !== "fortran_order" && key !== "shape") {
      i = at;
      fail(`unexpected key '${_cut(key)}' (a .npy header has exactly descr, fortran_order and shape)`);
    }
    if (seen.has(key)) {
      i = at;
      fail(`key '${key}' appears twice, which is ambiguous`);
    }
    seen.add(key);
    ws();
    if (h[i] !== 0x3a) fail("expected ':'");
    i++;
    ws();
    if (key === "descr") {
      if (h[i] === 0x5b) fail("descr is a list (a structured dtype), which kiln does not read");
      out.descr = str();
    } else if (key === "fortran_order") {
      const w = word();
      if (w !== "True" && w !== "False") fail("fortran_order is not True or False");
      out.fortran = w === "True";
    } else {
      out.shape = tuple();
    }
    ws();
    if (h[i] === 0x2c) i++;
    else if (h[i] !== 0x7d) fail("expected ',' or '}'");
  }
  i++;
  ws();
  if (i < n) fail("text after the dict");
  for (const key of ["descr", "fortran_order", "shape"]) {
    if (!seen.has(key)) fail(`the header has no '${key}'`);
  }
  return out as _Header;
}

/**
 * The dtype of a descr and whether its data is big-endian. A multi-byte number must say its byte
 * order ('<' or '>'); bfloat16's raw bits ('V2') are read as they are with '|' (NumPy's), '<'
 * (ml_dtypes') or none, and swapped with '>'. '=' (the writer's native order) is refused.
 */
function _dtypeOf(descr: string, what: string): { dtype: DTypeName; big: boolean } {
  const m = /^([<>|=]?)([a-zA-Z]\d+)$/.exec(descr);
  const dtype = m ? dtypeFromNpy(m[2]) : undefined;
  if (!m || !dtype) throw new NpyError(`${what}: unsupported dtype descr '${_cut(descr)}'`);
  const order = m[1];
  const size = dtypeSize(dtype);
  if (size > 1 && (order === "=" || (m[2] !== "V2" && order !== "<" && order !== ">"))) {
    throw new NpyError(
      `${what}: dtype descr '${descr}' does not give a byte order kiln reads ('<${m[2]}' or '>${m[2]}')`,
    );
  }
  return { dtype, big: order === ">" && size > 1 };
}

/**
 * Reads a .npy file's bytes into a tensor (the data is copied, so it is aligned and owned).
 * Everything is checked: magic, version (1.0, 2.0, 3.0), header (see the module doc), and the
 * data, whose length must be exactly the shape's (no missing, no trailing bytes); bool elements
 * must be 0 or 1. `what` names the file in messages.
 * @example
 * ```ts
 * import { readNpy, writeNpy } from "./npy.ts";
 * const t = readNpy(writeNpy({ dtype: "float32", dims: [2], data: new Float32Array([1, 2]) }));
 * console.assert(t.dims[0] === 2);
 * ```
 */
export function readNpy(bytes: Uint8Array, what = "npy data"): Tensor {
  if (bytes.length < 6 || _MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError(`${what}: not a .npy file (bad magic)`);
  }
  if (bytes.length < 8) throw new NpyError(`${what}: truncated header (${bytes.length} bytes)`);
  const major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3 || minor !== 0) {
    throw new NpyError(
      `${what}: unsupported .npy format version ${major}.${minor} (kiln reads 1.0, 2.0 and 3.0)`,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenSize) throw new NpyError(`${what}: truncated header (${bytes.length} bytes)`);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + lenSize + headerLen;
  if (bytes.length < start) {
    throw new NpyError(`${what}: truncated header (${bytes.length} bytes, the header ends at ${start})`);
  }
  const h = _parseHeader(bytes.subarray(8 + lenSize, start), major, what);
  const { dtype, big } = _dtypeOf(h.descr, what);
  const size = dtypeSize(dtype);
  if (h.fortran) {
    throw new NpyError(
      `${what}: Fortran-order arrays are not supported (${
        describe(dtype, h.shape)
      }): kiln reads C order; save numpy.ascontiguousarray(a)`,
    );
  }
  // exact, in BigInt: a shape of many large dims does not round
  const need = h.shape.reduce((a, d) => a * BigInt(d), BigInt(size));
  const have = bytes.length - start;
  if (BigInt(have) !== need) {
    throw new NpyError(
      BigInt(have) < need
        ? `${what}: truncated data: ${describe(dtype, h.shape)} needs ${need} bytes, the file has ${have}`
        : `${what}: ${describe(dtype, h.shape)} needs ${need} bytes of data, the file has ${have} (${
          BigInt(have) - need
        } trailing bytes)`,
    );
  }
  const data = new Uint8Array(bytes.subarray(start)); // a copy
  if (dtype === "bool") {
    const k = data.findIndex((b) => b > 1);
    if (k >= 0) throw new NpyError(`${what}: bool element ${k} is ${data[k]}, not 0 or 1`);
  }
  if (big) _swap(data, size);
  return { dtype, dims: h.shape, data: viewAs(dtype, data) };
}

/** Reverses the bytes of each `size`-byte element in place. */
function _swap(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) b.subarray(i, i + size).reverse();
}

/** Serializes a tensor as .npy (version 1.0, or 2.0 when the header needs it); little-endian, C order. */
export function writeNpy(t: Tensor): Uint8Array {
  const size = dtypeSize(t.dtype);
  const n = t.dims.reduce((a, d) => a * d, 1);
  if (!t.dims.every((d) => Number.isSafeInteger(d) && d >= 0 && d <= _MAX_DIM)) {
    throw new NpyError(
      `Cannot write ${describe(t.dtype, t.dims)} as .npy: its dims are not integers in 0..2^31 - 1`,
    );
  }
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
  let data = tensorBytes(t);
  if (t.dtype === "bool" && data.some((b) => b > 1)) data = data.map((b) => b ? 1 : 0); // true is 1 in a file
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
  const p = path instanceof URL ? fileUrlPath(path) : path;
  // a regular file only: a FIFO or a directory fails at once, naming it
  let bytes: Uint8Array;
  try {
    bytes = await readRegular(p, ".npy file");
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new NpyError(`Cannot read .npy file '${p}': ${(e as Error).message}`, "io"); // e.g. too large to hold
  }
  return readNpy(bytes, `.npy file '${p}'`);
}

/** Writes a tensor to a .npy file. */
export async function writeNpyFile(path: string | URL, t: Tensor): Promise<void> {
  const p = path instanceof URL ? fileUrlPath(path) : path;
  await writeFileAtomic(p, writeNpy(t), ".npy file");
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
