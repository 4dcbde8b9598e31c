/**
 * safetensors files: an 8-byte little-endian header length N, N bytes of JSON
 * (`{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {...} }`), then
 * the data; offsets are relative to the end of the header. Tensors are read in ranges, one
 * read each, never as a whole-file copy.
 *
 * The header is checked as strictly as the reference implementation (huggingface
 * `safetensors`, Rust) checks it, and a little more strictly where JSON is ambiguous:
 *
 * - the length N is at most 100 MB and the header lies within the file;
 * - the header is UTF-8 JSON (no byte-order mark, no lone surrogates) whose value is an object;
 * - every key appears once (JSON.parse would keep the last of two silently: here they are an
 *   error), at every level;
 * - `__metadata__`, when present, maps strings to strings;
 * - every other key is a tensor whose entry has exactly `dtype` (a safetensors dtype kiln
 *   reads), `shape` (at most 64 non-negative safe integers, written as integers) and
 *   `data_offsets` (two such integers, begin <= end, within the data), and no other field (the
 *   reference ignores unknown fields; kiln refuses what it would not understand), with
 *   end - begin = elements x dtype size, counted in 64 bits as the reference counts (an overflow
 *   is an error even when a later dim is 0);
 * - the tensors, sorted by offset, cover the data exactly: no overlap, no gap, no trailing bytes.
 *
 * Every problem of a header is reported at once, in one {@linkcode SafetensorsError} naming the
 * file and each tensor. Names are kept in Maps, never as keys of plain objects, so a tensor
 * named `constructor` or `__proto__` is a name like any other. `writeSafetensors` writes only
 * files that pass the same checks.
 *
 * Hand-written: the format is 20 lines of spec and the npm readers either load the whole
 * file or pull in a framework.
 * @module
 */
import { KilnError, type KilnErrorCode } from "../errors.ts";
import { openRegular, writeAll, writeAtomic } from "../fs.ts";
import { readRangeFrom } from "../io.ts";
import type { DTypeName } from "../tensor.ts";

/** Largest header kiln accepts (the reference implementation's cap). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

/** safetensors dtype code -> kiln dtype and element size. */
const ST_TO_DTYPE = new Map<string, { dtype: DTypeName; size: number }>([
  ["F32", { dtype: "float32", size: 4 }],
  ["F16", { dtype: "float16", size: 2 }],
  ["BF16", { dtype: "bfloat16", size: 2 }],
  ["F64", { dtype: "float64", size: 8 }],
  ["I8", { dtype: "int8", size: 1 }],
  ["I16", { dtype: "int16", size: 2 }],
  ["I32", { dtype: "int32", size: 4 }],
  ["I64", { dtype: "int64", size: 8 }],
  ["U8", { dtype: "uint8", size: 1 }],
  ["U16", { dtype: "uint16", size: 2 }],
  ["U32", { dtype: "uint32", size: 4 }],
  ["U64", { dtype: "uint64", size: 8 }],
  ["BOOL", { dtype: "bool", size: 1 }],
]);
const DTYPE_TO_ST = new Map<DTypeName, string>([...ST_TO_DTYPE].map(([k, v]) => [v.dtype, k]));
/** Dtypes of the safetensors format that kiln has no element type for. */
const ST_UNSUPPORTED = new Set(["F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "C64"]);
const ENTRY_FIELDS = new Set(["dtype", "shape", "data_offsets"]);
const U64_MAX = (1n << 64n) - 1n;
/** More problems than this are counted, not listed. */
const MAX_LISTED = 50;

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
  /** its tensors by name, with their byte ranges, in header order */
  entries: Map<string, SafetensorsEntry>;
  /** the header's `__metadata__` (empty when it has none) */
  metadata: Map<string, string>;
}

/** A safetensors file kiln refuses: names the file; `problems` lists each, naming the tensor. */
export class SafetensorsError extends KilnError {
  /** the file */
  readonly path: string;
  /** one line per problem (the first 50, then a count of the rest) */
  readonly problems: string[];
  /**
   * `head` says what failed; more than one problem is listed one per line below it. `total`
   * counts the problems when `problems` lists only some.
   */
  constructor(
    path: string,
    head: string,
    problems: string[],
    total = problems.length,
    code: KilnErrorCode = "weights",
  ) {
    const message = total === 1
      ? `${head}: ${problems[0]}`
      : [`${head}: ${total} problems`, ...problems.map((p) => `  - ${p}`)].join("\n");
    super(code, message);
    this.name = "SafetensorsError";
    this.path = path;
    this.problems = problems;
  }
}

/** A name or string from a file, quoted for a one-line message (control characters escaped, long ones cut). */
function quoteName(s: string): string {
  const cut = s.length > 160 ? `${s.slice(0, 160)}...` : s;
  // deno-lint-ignore no-control-regex
  const odd = /[\u0000-\u001f\u007f-\u009f\u2028\u2029'\\]/g;
  const esc = (c: string) =>
    c === "'" || c === "\\" ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  return `'${cut.replace(odd, esc)}'`;
}

// ---------------------------------------------------------------------------------------------
// A strict JSON reader: keeps duplicate keys (to refuse them), numbers as written (to tell 4 from
// 4.0 and 2^64 from 2^64 + 1), and refuses what serde_json refuses (lone surrogates, control
// characters in strings, nesting deeper than the format needs).

type Json =
  | { t: "object"; entries: [string, Json][] }
  | { t: "array"; items: Json[] }
  | { t: "string"; v: string }
  | { t: "number"; raw: string }
  | { t: "bool"; v: boolean }
  | { t: "null" };

class _JsonSyntax extends Error {
  /** `limit`: valid JSON, but past what a safetensors header can hold */
  constructor(why: string, readonly at: number, readonly limit = false) {
    super(why);
  }
}

const _ESCAPES = new Map([['"', '"'], ["\\", "\\"], ["/", "/"], ["b", "\b"], ["f", "\f"], ["n", "\n"], [
  "r",
  "\r",
], [
  "t",
  "\t",
]]);

/** Deeper than this is refused: a safetensors header nests three levels (object, entry, shape). */
const MAX_DEPTH = 16;
/** Longer arrays are refused as they are read: a header's arrays are shapes and offset pairs. */
const MAX_ITEMS = 1024;
/** The most dims a kiln tensor has (the core's limit, wasm/ir/codec.ts). */
const MAX_RANK = 64;

/**
 * Parses JSON text strictly. With `onMember`, the members of a top-level object are handed to it
 * one by one instead of being kept (a header of a million tensors is never held as one tree).
 */
function _parseJson(s: string, onMember?: (key: string, value: Json) => void): Json {
  let i = 0;
  const n = s.length;
  const fail = (why: string, limit = false): never => {
    throw new _JsonSyntax(why, i, limit);
  };
  const ws = () => {
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    }
  };
  const str = (): string => {
    i++; // the opening quote
    let out = "";
    let from = i;
    let escaped = false;
    for (;;) {
      if (i >= n) fail("unterminated string");
      const c = s.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail("control character in a string");
      if (c !== 0x5c) {
        i++;
        continue;
      }
      escaped = true;
      out += s.slice(from, i);
      const e = s[i + 1];
      const simple = _ESCAPES.get(e);
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === "u") {
        const hex = s.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else {
        fail("bad escape in a string");
      }
      from = i;
    }
    out += s.slice(from, i);
    i++; // the closing quote
    if (escaped && !out.isWellFormed()) fail("a \\u escape makes a lone surrogate");
    return out;
  };
  const num = (): string => {
    const from = i;
    if (s[i] === "-") i++;
    if (s[i] === "0") i++;
    else if (s[i] >= "1" && s[i] <= "9") { while (s[i] >= "0" && s[i] <= "9") i++; }
    else fail("bad number");
    if (s[i] === ".") {
      i++;
      if (!(s[i] >= "0" && s[i] <= "9")) fail("bad number");
      while (s[i] >= "0" && s[i] <= "9") i++;
    }
    if (s[i] === "e" || s[i] === "E") {
      i++;
      if (s[i] === "+" || s[i] === "-") i++;
      if (!(s[i] >= "0" && s[i] <= "9")) fail("bad number");
      while (s[i] >= "0" && s[i] <= "9") i++;
    }
    return s.slice(from, i);
  };
  const value = (depth: number): Json => {
    if (depth > MAX_DEPTH) fail(`nested more than ${MAX_DEPTH} levels deep`);
    ws();
    const c = s[i];
    if (c === "{") {
      i++;
      const entries: [string, Json][] = [];
      ws();
      if (s[i] === "}") {
        i++;
        return { t: "object", entries };
      }
      for (;;) {
        ws();
        if (s[i] !== '"') fail("expected a key (a string)");
        const k = str();
        ws();
        if (s[i] !== ":") fail("expected ':'");
        i++;
        const v = value(depth + 1);
        if (depth === 0 && onMember) onMember(k, v);
        else entries.push([k, v]);
        ws();
        if (s[i] === ",") i++;
        else if (s[i] === "}") {
          i++;
          return { t: "object", entries };
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items: Json[] = [];
      ws();
      if (s[i] === "]") {
        i++;
        return { t: "array", items };
      }
      for (;;) {
        if (items.length === MAX_ITEMS) {
          fail(`holds an array of more than ${MAX_ITEMS} items (a shape has at most ${MAX_RANK} dims)`, true);
        }
        items.push(value(depth + 1));
        ws();
        if (s[i] === ",") i++;
        else if (s[i] === "]") {
          i++;
          return { t: "array", items };
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return { t: "string", v: str() };
    if (c === "-" || (c >= "0" && c <= "9")) return { t: "number", raw: num() };
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (s.startsWith(word, i)) {
        i += word.length;
        return v === null ? { t: "null" } : { t: "bool", v };
      }
    }
    return i >= n ? fail("it ends where a value should be") : fail("unexpected character");
  };
  const root = value(0);
  ws();
  if (i < n) fail("text after the JSON value");
  return root;
}

/** What a JSON value is, for messages: "a string", "the number 1.5", ... */
function _what(v: Json): string {
  switch (v.t) {
    case "object":
      return "an object";
    case "array":
      return "an array";
    case "string":
      return `the string ${quoteName(v.v)}`;
    case "number":
      return `the number ${v.raw.length > 40 ? `${v.raw.slice(0, 40)}...` : v.raw}`;
    case "bool":
      return String(v.v);
    case "null":
      return "null";
  }
}

/** A non-negative safe integer written as one, or why not. */
function _uint(v: Json): number | string {
  if (v.t !== "number") return `${_what(v)}, not an integer`;
  if (v.raw.startsWith("-")) return `${_what(v)}, which is negative`;
  if (!/^\d+$/.test(v.raw)) return `${_what(v)}, which is not written as an integer`;
  const x = Number(v.raw);
  if (!Number.isSafeInteger(x)) return `${_what(v)}, which is above 2^53 - 1`;
  return x;
}

/** Shows a JSON array of numbers compactly, e.g. "[2, 3]". */
function _show(v: Json): string {
  if (v.t !== "array") return _what(v);
  const items = v.items.slice(0, 8).map((x) =>
    x.t === "number" ? x.raw : x.t === "string" ? quoteName(x.v) : x.t
  );
  return `[${items.join(", ")}${v.items.length > 8 ? `, ... (${v.items.length} in all)` : ""}]`;
}

// ---------------------------------------------------------------------------------------------

/** Checks the 8-byte length prefix; returns the header length N. */
function _headerLength(path: string, size: number, prefix: Uint8Array): number {
  if (size < 8) {
    throw new SafetensorsError(path, `'${path}' is not a safetensors file`, [
      `it is only ${size} bytes (the header length alone takes 8)`,
    ]);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(SAFETENSORS_MAX_HEADER)) {
    throw new SafetensorsError(path, `'${path}' is not a safetensors file`, [
      `its header length ${n} exceeds the 100 MB cap`,
    ]);
  }
  if (8n + n > BigInt(size)) {
    throw new SafetensorsError(path, `Safetensors file '${path}' is truncated`, [
      `its header needs ${8n + n} bytes, the file has ${size}`,
    ]);
  }
  return Number(n);
}

/** Parses and checks a header (`n` bytes, the file `size` bytes long); throws listing every problem. */
function _index(path: string, size: number, header: Uint8Array): SafetensorsIndex {
  const notSt = (why: string) => new SafetensorsError(path, `'${path}' is not a safetensors file`, [why]);
  const n = header.byteLength;
  let text: string;
  try {
    // ignoreBOM: a byte-order mark stays in the text, where JSON refuses it (as the reference does)
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(header);
  } catch {
    throw notSt("its header is not valid UTF-8");
  }
  if (n === 0) throw notSt("its header is empty (a safetensors header is a JSON object)");
  const base = 8 + n;
  const dataLen = size - base;
  const problems = new _Problems();
  const entries = new Map<string, SafetensorsEntry>();
  const metadata = new Map<string, string>();
  const seen = new Set<string>();
  const spans: { name: string; b: number; e: number }[] = [];
  let spansComplete = true;
  const member = (name: string, v: Json): void => {
    if (seen.has(name)) {
      problems.push(
        name === "__metadata__"
          ? "'__metadata__' appears more than once in the header"
          : `tensor ${quoteName(name)} appears more than once in the header`,
      );
      spansComplete = false;
      return;
    }
    seen.add(name);
    if (name === "__metadata__") {
      _metadata(v, metadata, problems);
      return;
    }
    const who = `tensor ${quoteName(name)}`;
    if (v.t !== "object") {
      problems.push(`${who}: its entry is ${_what(v)}, not an object of dtype, shape and data_offsets`);
      spansComplete = false;
      return;
    }
    const fields = new Map<string, Json>();
    for (const [k, fv] of v.entries) {
      if (fields.has(k)) problems.push(`${who}: field ${quoteName(k)} appears more than once`);
      else if (!ENTRY_FIELDS.has(k)) {
        problems.push(
          `${who}: unknown field ${quoteName(k)} (an entry has only dtype, shape and data_offsets)`,
        );
      }
      if (!fields.has(k)) fields.set(k, fv);
    }
    let ok = true;
    const bad = (why: string) => {
      problems.push(`${who}: ${why}`);
      ok = false;
    };
    // dtype
    let st: { dtype: DTypeName; size: number } | undefined;
    const dt = fields.get("dtype");
    if (!dt) bad("its entry has no dtype");
    else if (dt.t !== "string") bad(`its dtype is ${_what(dt)}, not a string`);
    else if (ST_UNSUPPORTED.has(dt.v)) bad(`dtype ${dt.v} is not supported by kiln`);
    else if (!(st = ST_TO_DTYPE.get(dt.v))) bad(`dtype ${quoteName(dt.v)} is not a safetensors dtype`);
    // shape
    const sh = fields.get("shape");
    const dims: number[] = [];
    let count: bigint | undefined;
    if (!sh) bad("its entry has no shape");
    else if (sh.t !== "array") bad(`its shape is ${_what(sh)}, not an array`);
    else if (sh.items.length > MAX_RANK) {
      bad(`its shape has ${sh.items.length} dims, kiln's tensors at most ${MAX_RANK}`);
    } else {
      let shapeOk = true;
      sh.items.forEach((d, k) => {
        const x = _uint(d);
        if (typeof x === "string") {
          bad(`shape ${_show(sh)}: dim ${k} is ${x}`);
          shapeOk = false;
        } else dims.push(x);
      });
      if (shapeOk) {
        // in 64 bits, as the reference counts: a product that overflows is an error, even when a
        // later dim is 0
        let c = 1n;
        for (const d of dims) if ((c *= BigInt(d)) > U64_MAX) break;
        if (c > U64_MAX || (st && c * BigInt(st.size) > U64_MAX)) {
          bad(`shape ${_show(sh)}: its element count or byte size overflows 64 bits`);
        } else count = c;
      }
    }
    // data_offsets
    const off = fields.get("data_offsets");
    let b = -1, e = -1;
    if (!off) bad("its entry has no data_offsets");
    else if (off.t !== "array" || off.items.length !== 2) {
      bad(`its data_offsets are ${_show(off)}, not [begin, end]`);
    } else {
      const [x, y] = off.items.map(_uint);
      if (typeof x === "string") bad(`data_offsets ${_show(off)}: begin is ${x}`);
      if (typeof y === "string") bad(`data_offsets ${_show(off)}: end is ${y}`);
      if (typeof x === "number" && typeof y === "number") {
        if (y < x) bad(`data_offsets [${x}, ${y}] end before they begin`);
        else if (y > dataLen) {
          bad(`data_offsets [${x}, ${y}] run past the end of the data (${dataLen} bytes after the header)`);
        } else [b, e] = [x, y];
      }
    }
    if (b < 0) spansComplete = false;
    else spans.push({ name, b, e });
    if (st && count !== undefined && b >= 0 && BigInt(e - b) !== count * BigInt(st.size)) {
      bad(
        `data_offsets [${b}, ${e}] hold ${e - b} bytes, its shape [${dims}] of ${st.dtype} needs ${
          count * BigInt(st.size)
        }`,
      );
    }
    if (ok && st) entries.set(name, { name, dtype: st.dtype, dims, offset: base + b, length: e - b });
  };
  let root: Json;
  try {
    root = _parseJson(text, member);
  } catch (e) {
    if (!(e instanceof _JsonSyntax)) throw e;
    throw notSt(
      e.limit ? `its header ${e.message}` : `its header is not valid JSON: ${e.message} at character ${e.at}`,
    );
  }
  if (root.t !== "object") throw notSt(`its header is ${_what(root)}, not a JSON object`);
  // coverage: sorted by offset, each tensor begins where the one before ends, the last ends at the
  // end of the file (judged only when every tensor's offsets could be read)
  if (spansComplete) {
    spans.sort((x, y) => x.b - y.b || x.e - y.e || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    let at = 0;
    let last: { name: string; b: number; e: number } | undefined;
    for (const s of spans) {
      if (s.b > at) {
        problems.push(
          `data bytes ${at}..${s.b} belong to no tensor (a gap ${
            last ? `after ${quoteName(last.name)} ` : ""
          }before ${quoteName(s.name)})`,
        );
      } else if (s.b < at && last) {
        problems.push(
          `tensor ${quoteName(s.name)} (data bytes ${s.b}..${s.e}) overlaps tensor ${
            quoteName(last.name)
          } (data bytes ${last.b}..${last.e})`,
        );
      }
      if (!last || s.e >= at) last = s;
      at = Math.max(at, s.e);
    }
    if (at < dataLen) {
      problems.push(
        `${
          dataLen - at
        } trailing bytes belong to no tensor (the data has ${dataLen} bytes, the tensors end at ${at})`,
      );
    }
  }
  if (problems.length) {
    throw new SafetensorsError(
      path,
      `Safetensors file '${path}' has an invalid header`,
      problems.listed(),
      problems.length,
    );
  }
  return { path, size, entries, metadata };
}

/** Problems of a header: the first {@linkcode MAX_LISTED} kept, the rest counted. */
class _Problems {
  #list: string[] = [];
  #more = 0;
  push(p: string): void {
    if (this.#list.length < MAX_LISTED) this.#list.push(p);
    else this.#more++;
  }
  get length(): number {
    return this.#list.length + this.#more;
  }
  listed(): string[] {
    return this.#more ? [...this.#list, `... and ${this.#more} more`] : [...this.#list];
  }
}

function _metadata(v: Json, into: Map<string, string>, problems: _Problems): void {
  if (v.t !== "object") {
    problems.push(`'__metadata__' is ${_what(v)}, not an object of strings`);
    return;
  }
  const seen = new Set<string>();
  for (const [k, x] of v.entries) {
    if (seen.has(k)) problems.push(`'__metadata__' key ${quoteName(k)} appears more than once`);
    else if (x.t !== "string") {
      problems.push(`'__metadata__' key ${quoteName(k)} is ${_what(x)}, not a string`);
    } else into.set(k, x.v);
    seen.add(k);
  }
}

/**
 * Checks a whole safetensors file held in memory (as {@linkcode readSafetensorsIndex} checks a
 * file); `path` names it in messages. Entry offsets index `bytes`.
 */
export function safetensorsIndexOf(bytes: Uint8Array, path: string): SafetensorsIndex {
  const n = _headerLength(path, bytes.byteLength, bytes.subarray(0, 8));
  return _index(path, bytes.byteLength, bytes.subarray(8, 8 + n));
}

/** Reads and validates the header of a safetensors file (not the data). */
export async function readSafetensorsIndex(path: string): Promise<SafetensorsIndex> {
  const { file, size } = await openRegular(path, "Safetensors file");
  using f = file;
  const prefix = size >= 8 ? await readRangeFrom(f, path, 0, 8) : new Uint8Array(8);
  const n = _headerLength(path, size, prefix);
  return _index(path, size, await readRangeFrom(f, path, 8, n));
}

/**
 * Writes tensors as one safetensors file, data 8-byte aligned, in the given order. Refuses (listing
 * every problem) what a reader must refuse: a name given twice or named `__metadata__`, a name
 * that is not well-formed Unicode, a dtype without a safetensors code, dims that are not
 * non-negative safe integers, bytes that do not match the dims. The file is written atomically.
 * @example
 * ```ts ignore
 * await writeSafetensors("w.safetensors", [{ name: "fc.weight", dtype: "float32", dims: [2, 2], bytes }]);
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly { name: string; dtype: DTypeName; dims: readonly number[]; bytes: Uint8Array }[],
  metadata: Record<string, string> | ReadonlyMap<string, string> = {},
): Promise<void> {
  const problems: string[] = [];
  const meta = metadata instanceof Map ? [...metadata] : Object.entries(metadata);
  const parts: string[] = [];
  if (meta.length) {
    const kv: string[] = [];
    for (const [k, v] of meta) {
      if (typeof v !== "string") problems.push(`metadata ${quoteName(k)} is ${typeof v}, not a string`);
      else if (!k.isWellFormed() || !v.isWellFormed()) {
        problems.push(`metadata ${quoteName(k)} is not well-formed Unicode`);
      } else kv.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${kv.join(",")}}`);
  }
  const names = new Set<string>();
  let off = 0;
  for (const t of tensors) {
    const who = `tensor ${quoteName(t.name)}`;
    if (t.name === "__metadata__") problems.push(`${who}: the name is reserved for the header's metadata`);
    else if (!t.name.isWellFormed()) problems.push(`${who}: the name is not well-formed Unicode`);
    else if (names.has(t.name)) problems.push(`${who} is given more than once`);
    names.add(t.name);
    const st = DTYPE_TO_ST.get(t.dtype);
    if (!st) problems.push(`${who}: dtype ${t.dtype} has no safetensors code`);
    if (!t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      problems.push(`${who}: dims [${t.dims}] are not non-negative integers`);
    } else if (st) {
      const want = t.dims.reduce((a, d) => a * d, 1) * ST_TO_DTYPE.get(st)!.size;
      if (want !== t.bytes.byteLength) {
        problems.push(
          `${who}: ${t.bytes.byteLength} bytes, its shape [${t.dims}] of ${t.dtype} needs ${want}`,
        );
      }
    }
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${st}","shape":[${t.dims.join(",")}],"data_offsets":[${off},${
        off + t.bytes.byteLength
      }]}`,
    );
    off += t.bytes.byteLength;
  }
  if (problems.length) {
    throw new SafetensorsError(path, `Cannot write safetensors file '${path}'`, problems);
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headBytes = new Uint8Array(json.byteLength + (8 - (json.byteLength % 8)) % 8).fill(0x20); // data 8-aligned
  headBytes.set(json);
  if (headBytes.byteLength > SAFETENSORS_MAX_HEADER) {
    throw new SafetensorsError(path, `Cannot write safetensors file '${path}'`, [
      `its header would be ${headBytes.byteLength} bytes, over the 100 MB cap`,
    ]);
  }
  // what is written passes the reader's checks
  _index(path, 8 + headBytes.byteLength + off, headBytes);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headBytes.byteLength), true);
  await writeAtomic(path, async (f) => {
    for (const chunk of [prefix, headBytes, ...tensors.map((t) => t.bytes)]) await writeAll(f, chunk);
  }, "Safetensors file");
}
