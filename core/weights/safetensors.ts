/**
 * safetensors files: an 8-byte little-endian header length N, N bytes of JSON
 * (`{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {...} }`), then
 * the data; offsets are relative to the end of the header. Tensors are read in ranges, one
 * read each, never as a whole-file copy.
 *
 * Hand-written: the format is 20 lines of spec and the npm readers either load the whole
 * file or pull in a framework.
 * @module
 */
import { KilnError } from "../errors.ts";
import { type DTypeName, dtypeSize, elementCount } from "../tensor.ts";
import { readRange } from "../io.ts";

/** Largest header kiln accepts (the reference implementation's cap). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

const ST_TO_DTYPE: Record<string, DTypeName> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  F64: "float64",
  I8: "int8",
  I16: "int16",
  I32: "int32",
  I64: "int64",
  U8: "uint8",
  U16: "uint16",
  U32: "uint32",
  U64: "uint64",
  BOOL: "bool",
};
const DTYPE_TO_ST: Record<string, string> = Object.fromEntries(
  Object.entries(ST_TO_DTYPE).map(([k, v]) => [v, k]),
);

/** One tensor's entry in a safetensors header, with absolute file offsets. */
export interface SafetensorsEntry {
  /** the tensor's name in the file */
  name: string;
  /** element type */
  dtype: DTypeName;
  /** dims */
  dims: number[];
  /** absolute offset in the file */
  offset: number;
  /** byte length */
  length: number;
}

/** The parsed header of a safetensors file. */
export interface SafetensorsIndex {
  /** the file */
  path: string;
  /** its size in bytes */
  size: number;
  /** its tensors by name, with their byte ranges */
  entries: Map<string, SafetensorsEntry>;
  /** the header's `__metadata__` */
  metadata: Record<string, string>;
}

/** Reads and validates the header of a safetensors file (not the data). */
export async function readSafetensorsIndex(path: string): Promise<SafetensorsIndex> {
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch (e) {
    throw new KilnError("io", `Cannot read safetensors file '${path}': ${(e as Error).message}`);
  }
  if (size < 8) {
    throw new KilnError("weights", `'${path}' is not a safetensors file: it is only ${size} bytes`);
  }
  const lenBytes = await readRange(path, 0, 8);
  const n = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
  if (n > SAFETENSORS_MAX_HEADER) {
    throw new KilnError(
      "weights",
      `'${path}' is not a safetensors file: header length ${n} exceeds the 100 MB cap`,
    );
  }
  if (8 + n > size) {
    throw new KilnError(
      "weights",
      `Safetensors file '${path}' is truncated: its header needs ${8 + n} bytes, the file has ${size}`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await readRange(path, 8, n)));
  } catch {
    throw new KilnError("weights", `'${path}' is not a safetensors file: its header is not valid JSON`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new KilnError("weights", `'${path}' is not a safetensors file: its header is not a JSON object`);
  }
  const base = 8 + n;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: string; shape?: number[]; data_offsets?: number[] };
    const dtype = ST_TO_DTYPE[e?.dtype ?? ""];
    if (!dtype) {
      throw new KilnError(
        "weights",
        `Tensor '${name}' in '${path}' has unsupported safetensors dtype '${e?.dtype}'`,
      );
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new KilnError("weights", `Tensor '${name}' in '${path}' has an invalid shape`);
    }
    const [b, end] = e.data_offsets ?? [];
    if (!Number.isInteger(b) || !Number.isInteger(end) || end < b) {
      throw new KilnError("weights", `Tensor '${name}' in '${path}' has invalid data_offsets`);
    }
    const want = elementCount(e.shape) * dtypeSize(dtype);
    if (end - b !== want) {
      throw new KilnError(
        "weights",
        `Tensor '${name}' in '${path}' has ${end - b} bytes, its shape [${e.shape}] (${dtype}) needs ${want}`,
      );
    }
    entries.set(name, { name, dtype, dims: e.shape, offset: base + b, length: end - b });
  }
  return { path, size, entries, metadata };
}

/**
 * Writes tensors as one safetensors file, 8-byte aligned, data in the given order.
 * @example
 * ```ts ignore
 * await writeSafetensors("w.safetensors", [{ name: "fc.weight", dtype: "float32", dims: [2, 2], bytes }]);
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: { name: string; dtype: DTypeName; dims: number[]; bytes: Uint8Array }[],
  metadata: Record<string, string> = {},
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const st = DTYPE_TO_ST[t.dtype];
    if (!st) {
      throw new KilnError("weights", `Cannot write '${t.name}': dtype ${t.dtype} has no safetensors code`);
    }
    header[t.name] = { dtype: st, shape: t.dims, data_offsets: [off, off + t.bytes.byteLength] };
    off += t.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // data starts 8-byte aligned
  const headBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headBytes.byteLength), true);
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (const chunk of [prefix, headBytes, ...tensors.map((t) => t.bytes)]) {
    let w = 0;
    while (w < chunk.byteLength) w += await f.write(chunk.subarray(w));
  }
}
