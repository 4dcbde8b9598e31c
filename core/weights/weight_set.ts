/**
 * Weight sets: named tensors that fill a program's deferred weights. A set comes from an
 * ONNX external-data directory (the layout the model names), from safetensors files, or from
 * typed arrays. It is checked against the program's weight signature before anything changes,
 * and every problem is reported at once.
 * @module
 */
import { KilnError, throwIfAborted } from "../errors.ts";
import { joinPath, openRegular, readRegular, resolveInside } from "../fs.ts";
import { type FileRange, readRangeFrom, withLazyBytes } from "../io.ts";
import {
  castFloats,
  describe,
  dtypeFromOnnx,
  type DTypeName,
  dtypeSize,
  elementCount,
  type Tensor,
  tensorBytes,
  typedArrayProblem,
} from "../tensor.ts";
import { readSafetensorsIndex, type SafetensorsEntry, safetensorsIndexOf } from "./safetensors.ts";
import { host, type HostFile } from "../host.ts";
import { type ByteSource, byteSourceName, isByteSource, readByteSource } from "../source.ts";
import { decodeModel } from "../onnx/import.ts";
import { ExternalDataReader, parseExternalEntries, resolveExternalRef } from "../onnx/external_data.ts";
import { walkTensors } from "../onnx/external_tensors.ts";
import type { onnx } from "../onnx/onnx_pb.js";
import { isExternal, tensorDims, tensorProtoData } from "../onnx/tensor_proto.ts";
import { fileUrlPath, paths } from "../path.ts";

/** One deferred weight of a program: what a weight set must provide. */
export interface WeightSpec {
  /** the initializer's name in the model */
  name: string;
  /** element type */
  dtype: DTypeName;
  /** static dims */
  dims: number[];
  /** bytes a weight set must provide for it */
  byteLength: number;
  /** where the model stored it (ONNX external data), relative to the model's folder */
  location: string;
  /** byte offset in that file */
  offset: number;
  /** byte length in that file */
  length: number;
  /** SHA-1 hex of the whole file as the model recorded it, "" when none */
  checksum: string;
}

/** A weight signature, or anything that has one (a Program). */
export type SignatureSource = readonly WeightSpec[] | {
  weightSignature(): WeightSpec[];
  readsWeightFiles?: boolean;
};

function _sig(source: SignatureSource): readonly WeightSpec[] {
  return "weightSignature" in source ? source.weightSignature() : source;
}

/** Whether to leave file tensors unread: asked for, or the program's target reads files itself. */
function _lazy(source: SignatureSource, options: WeightSetOptions): boolean {
  if (options.lazy !== undefined) return options.lazy;
  return "weightSignature" in source && source.readsWeightFiles === true;
}

/** A tensor of a weight set: its bytes and where they came from (for error messages). */
export interface WeightTensor {
  /** the weight's name (after any rename map) */
  name: string;
  /** element type */
  dtype: DTypeName;
  /** dims */
  dims: number[];
  /** the tensor's bytes, little-endian, row-major (read from `file` on first use when lazy) */
  readonly bytes: Uint8Array;
  /** where the bytes are, for a lazy tensor (a target that reads files itself never reads them here) */
  readonly file?: FileRange;
  /** e.g. "weights_v1/model.onnx.data @ 4096" or "typed array" */
  source: string;
}

/**
 * Reads byte ranges of the data files a model names, for weight sets that are not on this
 * machine's disk: `httpRangeReader` (HTTP range requests), or the caller's own (object storage,
 * a cache, an archive).
 */
export interface RangeReader {
  /** how messages name it (e.g. the folder's URL) */
  readonly name: string;
  /** bytes `offset`..`offset + length` of `location` (relative, "/"-separated, checked inside) */
  read(location: string, offset: number, length: number): Promise<Uint8Array>;
}

/**
 * A RangeReader over HTTP: each range is one request with a `Range` header under `base` (a
 * folder URL). A server that ignores ranges (status 200) sends the whole file, which is then
 * fetched once and sliced; any other status, or a short answer, is an error naming the URL.
 */
export function httpRangeReader(base: URL, init: RequestInit = {}): RangeReader {
  const folder = base.href.endsWith("/") ? base : new URL(`${base.href}/`);
  const whole = new Map<string, Promise<Uint8Array>>();
  return {
    name: folder.href,
    async read(location, offset, length) {
      const url = new URL(location, folder);
      const cached = whole.get(url.href);
      if (cached) return (await cached).subarray(offset, offset + length);
      const headers = new Headers(init.headers);
      headers.set("Range", `bytes=${offset}-${offset + length - 1}`);
      let r: Response;
      try {
        r = await fetch(url, { ...init, headers });
      } catch (e) {
        throw new KilnError("io", `Cannot fetch '${url.href}': ${(e as Error).message}`);
      }
      if (r.status === 200) {
        // no range support: the whole file, once
        const all = r.arrayBuffer().then((b) => new Uint8Array(b));
        whole.set(url.href, all);
        return (await all).subarray(offset, offset + length);
      }
      if (r.status !== 206) {
        await r.body?.cancel();
        throw new KilnError(
          "io",
          `Cannot fetch bytes ${offset}..${offset + length} of '${url.href}': HTTP ${r.status}`,
        );
      }
      const range = /^bytes (\d+)-/.exec(r.headers.get("content-range") ?? "");
      const got = new Uint8Array(await r.arrayBuffer());
      if ((range && Number(range[1]) !== offset) || got.byteLength !== length) {
        throw new KilnError(
          "io",
          `'${url.href}' answered bytes ${range?.[1] ?? "?"}.. (${got.byteLength} bytes) for ${offset}..${
            offset + length
          }`,
        );
      }
      return got;
    },
  };
}

/** fromOnnxDir over a RangeReader: each weight's range read, every problem listed at once. */
async function _fromRanges(
  signature: readonly WeightSpec[],
  reader: RangeReader,
  options: WeightSetOptions,
): Promise<WeightSet> {
  const problems: string[] = [];
  const tensors: WeightTensor[] = [];
  const total = signature.reduce((a, s) => a + (s.length || s.byteLength), 0);
  let done = 0;
  for (const s of signature) {
    const length = s.length || s.byteLength;
    if (s.location === "" || !_isInside(s.location)) {
      if (!(s.location === "" && options.partial)) {
        problems.push(
          s.location === ""
            ? `weight '${s.name}' was inline in the model (deferred by size): '${reader.name}' has no file for it`
            : `weight '${s.name}': location '${s.location}' is absolute or escapes '${reader.name}'`,
        );
      }
      continue;
    }
    try {
      const bytes = await reader.read(s.location, s.offset, length);
      if (bytes.byteLength !== length) {
        problems.push(
          `weight '${s.name}': '${reader.name}' gave ${bytes.byteLength} bytes of ${s.location}, ${length} needed`,
        );
        continue;
      }
      tensors.push({
        name: s.name,
        dtype: s.dtype,
        dims: [...s.dims],
        bytes,
        source: `'${reader.name}' ${s.location} @ ${s.offset}`,
      });
    } catch (e) {
      if (!(e instanceof KilnError)) throw e;
      problems.push(`weight '${s.name}': ${e.message}`);
    }
    done += length;
    options.onProgress?.(done, total);
    throwIfAborted(options.signal, "Reading the weight set");
  }
  if (problems.length) throw new WeightSetError(`Cannot read weights from '${reader.name}'`, problems);
  const set = new WeightSet(tensors, options.partial ?? false);
  set.validate(signature, `Weights in '${reader.name}' do not fit the program`);
  return set;
}

/** A safetensors file: its path (or `file:` URL), or its bytes, a Blob, a Response or an http(s) URL. */
export type SafetensorsSource = string | ByteSource;

/** Thrown when a weight set does not fit a program: lists every problem. */
export class WeightSetError extends KilnError {
  /** one line per problem, each naming the tensor (and file where there is one) */
  readonly problems: string[];
  /** `what` heads the message (what failed and where); `problems` follow, one per line. */
  constructor(what: string, problems: string[]) {
    const head = `${what}: ${problems.length} problem${problems.length === 1 ? "" : "s"}`;
    super("weights", [head, ...problems.map((p) => `  - ${p}`)].join("\n"));
    this.problems = problems;
  }
}

/** Options for building a weight set. */
export interface WeightSetOptions {
  /**
   * Take only the tensors present in the source; the others keep their current values on
   * bind. Default false: every weight of the signature must be present.
   */
  partial?: boolean;
  /** Rename source tensors: source name -> weight name (safetensors). */
  nameMap?: Record<string, string>;
  /** Rules that turn source names into weight names (safetensors), after `nameMap`'s exact names. */
  names?: NameRules;
  /**
   * Convert between float32, float16 and bfloat16 where a source tensor's element type differs
   * from the weight's (safetensors; Hugging Face checkpoints are often bfloat16). Off by default:
   * a mismatch is then an error. The conversions made are listed in `WeightSet.casts`.
   */
  cast?: boolean;
  /** Verify the ONNX `checksum` (SHA-1 of the whole data file) where the model records one. */
  verifyChecksums?: boolean;
  /** Called after each tensor is read: bytes read so far and in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Stops the reading at the next tensor (KilnError "aborted"): nothing is returned. */
  signal?: AbortSignal;
  /**
   * Leave tensors in files unread: each records its file range and is read on first use (the
   * gpu target's library reads the ranges itself, into pinned memory, never through JavaScript).
   * Default: true for a program whose target reads files itself, false otherwise.
   */
  lazy?: boolean;
}

/** How source tensor names become weight names (`WeightSetOptions.names`). */
export interface NameRules {
  /** prefixes removed from source names (the first that matches), e.g. "model." */
  stripPrefix?: string[];
  /** a prefix added to source names (after stripping), e.g. an exporter's "m." */
  addPrefix?: string;
  /** regular-expression rewrites `[pattern, replacement]`, applied in order (String.replace syntax) */
  rename?: [string | RegExp, string][];
  /**
   * A name that is no weight's matches the one weight whose name ends in "." + it (exporters
   * prefix module paths: "h.0.attn.c_attn.weight" finds "m.transformer.h.0.attn.c_attn.weight").
   */
  suffix?: boolean;
}

/** A conversion a weight set made (`WeightSetOptions.cast`). */
export interface WeightCast {
  /** the weight */
  name: string;
  /** the source's element type */
  from: DTypeName;
  /** the weight's */
  to: DTypeName;
}

const _CASTABLE = new Set<DTypeName>(["float32", "float16", "bfloat16"]);

/** Source name -> weight name by `rules`; undefined (with a problem) where a suffix match is ambiguous. */
function _applyRules(
  name: string,
  rules: NameRules,
  known: ReadonlySet<string>,
  suffixes: () => Map<string, string[]>,
  problems: string[],
): string | undefined {
  let n = name;
  for (const p of rules.stripPrefix ?? []) {
    if (p && n.startsWith(p)) {
      n = n.slice(p.length);
      break;
    }
  }
  if (rules.addPrefix) n = rules.addPrefix + n;
  for (const [pattern, replacement] of rules.rename ?? []) n = n.replace(pattern, replacement);
  if (rules.suffix && !known.has(n)) {
    const hits = suffixes().get(n) ?? [];
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) {
      problems.push(
        `tensor '${name}' ends ${hits.length} weights' names (${hits.slice(0, 4).join(", ")}): rename it`,
      );
      return undefined;
    }
  }
  return n;
}

/** Every dot-separated tail of each weight name -> the weights that end in it. */
function _suffixIndex(names: Iterable<string>): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const w of names) {
    let at = w.indexOf(".");
    while (at >= 0) {
      const tail = w.slice(at + 1);
      const list = m.get(tail);
      if (list) list.push(w);
      else m.set(tail, [w]);
      at = w.indexOf(".", at + 1);
    }
  }
  return m;
}

function _isInside(location: string): boolean {
  if (
    location === "" || location.startsWith("/") || /^[A-Za-z]:[\\/]/.test(location) || location.includes("\0")
  ) {
    return false;
  }
  const parts: string[] = [];
  for (const p of location.split(/[\\/]+/)) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) return false;
      parts.pop();
    } else parts.push(p);
  }
  return parts.length > 0;
}

async function _sha1OfFile(path: string): Promise<string> {
  const h = host.sha1();
  using f = (await openRegular(path, "Data file")).file;
  const buf = new Uint8Array(1 << 22);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}

/** A set of named weight tensors, validated against a signature. */
export class WeightSet {
  /** the tensors, by weight name */
  readonly tensors: Map<string, WeightTensor>;
  /** true when the set may leave weights out (they keep their current values) */
  readonly partial: boolean;
  /** the element-type conversions it made (`WeightSetOptions.cast`) */
  casts: WeightCast[] = [];

  /** A set of the given tensors (not validated: see `validate` and the `from*` builders). */
  constructor(tensors: Iterable<WeightTensor>, partial = false) {
    this.tensors = new Map([...tensors].map((t) => [t.name, t]));
    this.partial = partial;
  }

  /** Names in the set. */
  names(): string[] {
    return [...this.tensors.keys()];
  }

  /**
   * Checks the set against a signature: missing, unknown, wrong element type, wrong shape,
   * wrong byte length. Throws one WeightSetError listing every problem.
   */
  validate(signature: readonly WeightSpec[], what = "Weight set does not fit the program"): void {
    const problems: string[] = [];
    const known = new Map(signature.map((s) => [s.name, s]));
    for (const s of signature) {
      if (!this.tensors.has(s.name) && !this.partial) {
        problems.push(`missing weight '${s.name}' (${describe(s.dtype, s.dims)})`);
      }
    }
    for (const t of this.tensors.values()) {
      const s = known.get(t.name);
      if (!s) {
        problems.push(
          `unknown weight '${t.name}' from ${t.source}: the program has no deferred weight of that name`,
        );
        continue;
      }
      if (t.dtype !== s.dtype) {
        const hint = _CASTABLE.has(t.dtype) && _CASTABLE.has(s.dtype)
          ? " (bind with { cast: true }, or --cast, to convert it)"
          : "";
        problems.push(
          `weight '${t.name}' from ${t.source}: element type ${t.dtype}, the program needs ${s.dtype}${hint}`,
        );
      }
      if (t.dims.length !== s.dims.length || t.dims.some((d, i) => d !== s.dims[i])) {
        problems.push(
          `weight '${t.name}' from ${t.source}: shape [${t.dims}], the program needs [${s.dims}]`,
        );
      }
      // a lazy tensor's length is its file range's (reading it here would defeat the laziness)
      const have = t.file ? t.file.length : t.bytes.byteLength;
      if (t.dtype === s.dtype && have !== s.byteLength) {
        problems.push(
          `weight '${t.name}' from ${t.source}: ${have} bytes, the program needs ${s.byteLength}`,
        );
      }
    }
    if (problems.length) throw new WeightSetError(what, problems);
  }

  /**
   * A weight set from typed arrays or tensors, keyed by weight name. A bare typed array takes
   * the dims of the signature's weight of that name.
   */
  static fromArrays(
    source: SignatureSource,
    arrays: Record<string, Tensor | Tensor["data"]>,
    options: WeightSetOptions = {},
  ): WeightSet {
    const signature = _sig(source);
    const spec = new Map(signature.map((s) => [s.name, s]));
    const tensors: WeightTensor[] = [];
    const problems: string[] = [];
    for (const [name, v] of Object.entries(arrays)) {
      const isTensor = v !== null && typeof v === "object" && !ArrayBuffer.isView(v) &&
        (v as Tensor).dims !== undefined && (v as Tensor).data !== undefined;
      const data = (isTensor ? (v as Tensor).data : v) as Tensor["data"];
      const dtype = isTensor ? (v as Tensor).dtype : spec.get(name)?.dtype ?? _dtypeOfArray(data);
      // the array must be the one the element type is carried in: never reinterpreted
      const bad = typedArrayProblem(dtype, data);
      if (bad) {
        problems.push(`weight '${name}' from typed array: its data is ${bad}`);
        continue;
      }
      const t: Tensor = isTensor ? v as Tensor : { dtype, dims: spec.get(name)?.dims ?? [data.length], data };
      tensors.push({ name, dtype: t.dtype, dims: [...t.dims], bytes: tensorBytes(t), source: "typed array" });
    }
    const set = new WeightSet(tensors, options.partial ?? false);
    try {
      set.validate(signature);
    } catch (e) {
      if (e instanceof WeightSetError) problems.push(...e.problems);
      else throw e;
    }
    if (problems.length) throw new WeightSetError("Weight set does not fit the program", problems);
    return set;
  }

  /**
   * A weight set from an ONNX external-data directory: each weight is read from
   * `dir/<location>` at the offset and length the model recorded. All problems (escaping
   * or absolute locations, missing files, short files, checksum mismatches, then signature
   * mismatches) are reported together. `dir` may also be an `http(s):` folder URL (each weight
   * read with an HTTP range request: `httpRangeReader`) or a `RangeReader` of the caller's; over
   * ranges the whole-file checksums are not verified.
   */
  static async fromOnnxDir(
    source: SignatureSource,
    dir: string | URL | RangeReader,
    options: WeightSetOptions = {},
  ): Promise<WeightSet> {
    if (dir instanceof URL && dir.protocol === "file:") dir = fileUrlPath(dir);
    if (typeof dir !== "string") {
      const reader = dir instanceof URL ? httpRangeReader(dir) : dir;
      return await _fromRanges(_sig(source), reader, options);
    }
    const signature = _sig(source);
    const problems: string[] = [];
    const byFile = new Map<string, WeightSpec[]>();
    for (const s of signature) {
      if (s.location === "") {
        if (!options.partial) {
          problems.push(
            `weight '${s.name}' was inline in the model (deferred by size): it has no file in '${dir}'; bind it from the model (WeightSet.fromOnnxModel), safetensors or arrays`,
          );
        }
        continue;
      }
      if (!_isInside(s.location)) {
        problems.push(
          `weight '${s.name}': location '${s.location}' is absolute or escapes the weight directory '${dir}'`,
        );
        continue;
      }
      const list = byFile.get(s.location) ?? [];
      list.push(s);
      byFile.set(s.location, list);
    }
    const tensors: WeightTensor[] = [];
    const lazy = _lazy(source, options);
    const total = signature.reduce((a, s) => a + (s.length || s.byteLength), 0);
    let done = 0;
    for (const [location, specs] of byFile) {
      const shown = joinPath(dir, location);
      const of = `for ${specs.length} weight(s) (first: '${specs[0].name}')`;
      let path: string;
      let opened: { file: HostFile; size: number };
      try {
        // the real path (a symbolic link may not lead out of the folder), a regular file
        path = await resolveInside(dir, location, `weight '${specs[0].name}'`);
        opened = await openRegular(path, "data file", of);
      } catch (e) {
        if (!(e instanceof KilnError)) throw e;
        const missing = / does not exist$/.test(e.message);
        if (missing && options.partial) continue;
        problems.push(missing ? `data file '${shown}' ${of} is missing` : e.message);
        continue;
      }
      using f = opened.file;
      const size = opened.size;
      for (const s of specs) {
        const length = s.length || s.byteLength;
        if (s.offset + length > size) {
          problems.push(
            `weight '${s.name}': file '${path}' has ${size} bytes, the weight needs bytes ${s.offset}..${
              s.offset + length
            }`,
          );
          continue;
        }
        const t = { name: s.name, dtype: s.dtype, dims: [...s.dims], source: `'${path}' @ ${s.offset}` };
        tensors.push(
          lazy
            ? withLazyBytes(t, { path, offset: s.offset, length })
            : { ...t, bytes: await readRangeFrom(f, path, s.offset, length) },
        );
        done += length;
        options.onProgress?.(done, total);
        throwIfAborted(options.signal, "Reading the weight set");
      }
      if (options.verifyChecksums ?? true) {
        const sums = new Set(specs.map((s) => s.checksum).filter((c) => c));
        if (sums.size) {
          const actual = await _sha1OfFile(path);
          for (const want of sums) {
            if (want.toLowerCase() !== actual) {
              const who = specs.filter((s) => s.checksum === want).map((s) => `'${s.name}'`).slice(0, 3).join(
                ", ",
              );
              problems.push(
                `data file '${path}' fails its checksum: SHA-1 ${actual}, the model records ${want} (for ${who})`,
              );
            }
          }
        }
      }
    }
    if (problems.length) throw new WeightSetError(`Cannot read weights from '${dir}'`, problems);
    const set = new WeightSet(tensors, options.partial ?? false);
    set.validate(signature, `Weights in '${dir}' do not fit the program`);
    return set;
  }

  /**
   * A weight set from an ONNX model's own initializers, matched to weights by name: a fine-tune
   * exported as a whole `.onnx` file (inline initializers, or external data beside it) binds
   * into a program compiled from the base model, inline weights deferred by size
   * (`deferInlineWeightsOver`) included. The model is a path, or its bytes, a Blob, a Response
   * or an http(s) URL (then its external data, if any, is read from `options.baseDir`).
   * Initializers that are not weights of the program are ignored; every problem is reported at once.
   */
  static async fromOnnxModel(
    source: SignatureSource,
    model: string | ByteSource,
    options: WeightSetOptions & { baseDir?: string } = {},
  ): Promise<WeightSet> {
    const signature = _sig(source);
    const name = isByteSource(model) ? byteSourceName(model) : model;
    const bytes = isByteSource(model)
      ? await readByteSource(model, "ONNX model")
      : await readRegular(model, "ONNX model");
    const dir = options.baseDir ??
      (isByteSource(model) ? undefined : paths.dirname(model));
    const proto = decodeModel(bytes, name);
    const inits = new Map<string, onnx.ITensorProto>();
    walkTensors(proto.graph!, (t, isInitializer) => {
      if (isInitializer && t.name && !inits.has(t.name)) inits.set(t.name, t);
    });
    const problems: string[] = [];
    const tensors: WeightTensor[] = [];
    // external data is read as the importer reads it: each file opened once, its checksum verified
    const reader = dir === undefined ? undefined : new ExternalDataReader(dir);
    const lazy = _lazy(source, options);
    try {
      for (const s of signature) {
        const t = inits.get(s.name);
        if (!t) {
          if (!options.partial) problems.push(`weight '${s.name}' is not an initializer of '${name}'`);
          continue;
        }
        const what = `Initializer '${s.name}' of '${name}'`;
        try {
          if (!isExternal(t)) {
            // a model read from its path is this set's own buffer: its raw_data is used in place
            const d = tensorProtoData(t, what, isByteSource(model));
            tensors.push({
              name: s.name,
              dtype: dtypeFromOnnx(t.data_type!),
              dims: d.dims,
              bytes: d.bytes,
              source: `'${name}' (inline)`,
            });
          } else {
            if (!reader || dir === undefined) {
              problems.push(
                `${what} is in external data, and a model given as bytes has no folder: pass baseDir`,
              );
              continue;
            }
            const dims = tensorDims(t, what);
            const dtype = dtypeFromOnnx(t.data_type!);
            const ref = resolveExternalRef(
              s.name,
              parseExternalEntries(s.name, t.external_data ?? []),
              elementCount(dims) * dtypeSize(dtype),
            );
            const w = {
              name: s.name,
              dtype,
              dims,
              source: `'${joinPath(dir, ref.location)}' @ ${ref.offset}`,
            };
            // checked as the importer checks it; left unread where the target reads ranges itself
            tensors.push(
              lazy
                ? withLazyBytes(w, await reader.locate(s.name, ref))
                : { ...w, bytes: await reader.read(s.name, ref) },
            );
          }
        } catch (e) {
          if (!(e instanceof KilnError)) throw e;
          problems.push(e.message);
        }
        throwIfAborted(options.signal, "Reading the weight set");
      }
    } finally {
      reader?.close();
    }
    if (problems.length) throw new WeightSetError(`Cannot read weights from '${name}'`, problems);
    const set = new WeightSet(tensors, options.partial ?? false);
    set.validate(signature, `Weights in '${name}' do not fit the program`);
    return set;
  }

  /**
   * A weight set from one or more safetensors files; tensor names are matched to weight names,
   * through `options.nameMap` where given. A name found in two files is an error. A file is a
   * path (or `file:` URL; a `model.safetensors.index.json` names shards), or its bytes, a `Blob`,
   * a fetch `Response` or an `http(s):` URL (fetched whole; messages name it by its URL).
   */
  static async fromSafetensors(
    source: SignatureSource,
    files: SafetensorsSource | SafetensorsSource[],
    options: WeightSetOptions = {},
  ): Promise<WeightSet> {
    const signature = _sig(source);
    // sources that are not paths are read into memory and named by their URL (or what they are)
    const memory = new Map<string, Uint8Array>();
    const given: string[] = [];
    for (const [i, f] of (Array.isArray(files) ? files : [files]).entries()) {
      if (typeof f === "string") given.push(f);
      else if (f instanceof URL && f.protocol === "file:") given.push(fileUrlPath(f));
      else if (isByteSource(f)) {
        const base = byteSourceName(f);
        const name = memory.has(base) || given.includes(base) ? `${base} (#${i + 1})` : base;
        memory.set(name, await readByteSource(f, "Safetensors file"));
        given.push(name);
      } else {
        throw new KilnError(
          "input",
          `Safetensors source #${i + 1} is not a path, URL, Blob, Response or bytes`,
        );
      }
    }
    const problems: string[] = [];
    // a sharded checkpoint's index (model.safetensors.index.json) names its shard files
    const list: string[] = [];
    const mapped = new Map<string, string>(); // tensor -> the shard the index puts it in
    for (const f of given) {
      if (!f.endsWith(".json") || memory.has(f)) {
        list.push(f);
        continue;
      }
      const shards = await _readShardIndex(f, problems);
      for (const [tensor, shard] of shards) {
        mapped.set(tensor, shard);
        if (!list.includes(shard)) list.push(shard);
      }
    }
    if (problems.length) {
      throw new WeightSetError(`Cannot read the safetensors index ${given.join(", ")}`, problems);
    }
    const chosen = new Map<string, { path: string; e: SafetensorsEntry }>();
    const rename = options.nameMap ?? {};
    const known = new Set(signature.map((s) => s.name));
    // string patterns compiled once, not once per tensor
    const rules: NameRules | undefined = options.names && {
      ...options.names,
      rename: (options.names.rename ?? []).map(([p, r]) => [typeof p === "string" ? new RegExp(p) : p, r]),
    };
    let suffixes: Map<string, string[]> | undefined;
    const suffixIndex = () => (suffixes ??= _suffixIndex(known));
    for (const path of list) {
      const held = memory.get(path);
      const index = held ? safetensorsIndexOf(held, path) : await readSafetensorsIndex(path);
      for (const e of index.entries.values()) {
        const shard = mapped.get(e.name);
        if (shard !== undefined && shard !== path) {
          problems.push(`tensor '${e.name}' is in '${path}', the index puts it in '${shard}'`);
          continue;
        }
        // own keys only: a tensor named "constructor" or "__proto__" is a name like any other
        const name = Object.hasOwn(rename, e.name)
          ? rename[e.name]
          : rules
          ? _applyRules(e.name, rules, known, suffixIndex, problems)
          : e.name;
        if (name === undefined) continue;
        const prev = chosen.get(name);
        if (prev) problems.push(`weight '${name}' is in both '${prev.path}' and '${path}'`);
        else chosen.set(name, { path, e });
      }
    }
    for (const from of Object.keys(rename)) {
      if (![...chosen.values()].some((c) => c.e.name === from)) {
        problems.push(`nameMap names '${from}', which no safetensors file contains`);
      }
    }
    if (problems.length) {
      throw new WeightSetError(`Cannot read weights from ${list.map((p) => `'${p}'`).join(", ")}`, problems);
    }
    const spec = new Map(signature.map((s) => [s.name, s]));
    // the conversions asked for: castable element types that differ from the weight's
    const casts: WeightCast[] = [];
    if (options.cast) {
      for (const [name, { e }] of chosen) {
        const s = spec.get(name);
        if (s && s.dtype !== e.dtype && _CASTABLE.has(s.dtype) && _CASTABLE.has(e.dtype)) {
          casts.push({ name, from: e.dtype, to: s.dtype });
        }
      }
    }
    const castTo = new Map(casts.map((c) => [c.name, c]));
    // Validate names/dtypes/shapes from the headers before reading any data.
    const headerOnly = new WeightSet(
      [...chosen].map(([name, { path, e }]) => ({
        name,
        dtype: castTo.get(name)?.to ?? e.dtype,
        dims: e.dims,
        bytes: new Uint8Array(0),
        source: `'${path}'`,
      })),
      options.partial ?? false,
    );
    try {
      headerOnly.validate(
        signature.map((s) => ({ ...s, byteLength: 0 })),
        "Safetensors weights do not fit the program",
      );
    } catch (e) {
      if (e instanceof WeightSetError) {
        throw new WeightSetError("Safetensors weights do not fit the program", e.problems);
      }
      throw e;
    }
    const tensors: WeightTensor[] = [];
    const lazy = _lazy(source, options);
    const open = new Map<string, HostFile>();
    const total = [...chosen].filter(([n]) => spec.has(n)).reduce((a, [, c]) => a + c.e.length, 0);
    let done = 0;
    try {
      for (const [name, { path, e }] of chosen) {
        if (!spec.has(name)) continue;
        const cast = castTo.get(name);
        const t = {
          name,
          dtype: cast?.to ?? e.dtype,
          dims: e.dims,
          source: `'${path}' @ ${e.offset}${cast ? ` (${cast.from} cast to ${cast.to})` : ""}`,
        };
        const held = memory.get(path);
        if (held) {
          const raw = held.subarray(e.offset, e.offset + e.length);
          tensors.push({ ...t, bytes: cast ? castFloats(raw, cast.from, cast.to) : raw });
          done += e.length;
          options.onProgress?.(done, total);
          throwIfAborted(options.signal, "Reading the weight set");
          continue;
        }
        if (lazy && !cast) {
          tensors.push(withLazyBytes(t, { path, offset: e.offset, length: e.length }));
          continue;
        }
        let f = open.get(path);
        if (!f) {
          f = (await openRegular(path, "safetensors file")).file;
          open.set(path, f);
        }
        const raw = await readRangeFrom(f, path, e.offset, e.length);
        tensors.push({ ...t, bytes: cast ? castFloats(raw, cast.from, cast.to) : raw });
        done += e.length;
        options.onProgress?.(done, total);
        throwIfAborted(options.signal, "Reading the weight set");
      }
    } finally {
      for (const f of open.values()) f.close();
    }
    const set = new WeightSet(tensors, options.partial ?? false);
    set.casts = casts;
    return set;
  }
}

/**
 * The shards a `model.safetensors.index.json` names: tensor -> shard path (resolved beside the
 * index; a shard outside its folder is refused, as an external-data location would be).
 */
async function _readShardIndex(path: string, problems: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let json: unknown;
  try {
    json = JSON.parse(await host.readTextFile(path));
  } catch (e) {
    problems.push(`'${path}': ${(e as Error).message}`);
    return out;
  }
  const map = (json as { weight_map?: unknown })?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    problems.push(`'${path}' has no "weight_map" object`);
    return out;
  }
  const dir = paths.dirname(path);
  for (const [tensor, file] of Object.entries(map)) {
    if (typeof file !== "string" || !_isInside(file)) {
      problems.push(
        `'${path}': tensor '${tensor}' maps to ${JSON.stringify(file)}, not a file inside its folder`,
      );
      continue;
    }
    out.set(tensor, joinPath(dir, file));
  }
  return out;
}

function _dtypeOfArray(a: Tensor["data"]): DTypeName {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Int8Array) return "int8";
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Int16Array) return "int16";
  if (a instanceof Uint16Array) return "uint16";
  if (a instanceof Uint32Array) return "uint32";
  return "uint64";
}

/** The byte length a spec needs. */
export function specBytes(dtype: DTypeName, dims: readonly number[]): number {
  return elementCount(dims) * dtypeSize(dtype);
}

/** Weight specs from a program's weight list (adds each byte length). */
export function specsOf(weights: readonly Omit<WeightSpec, "byteLength">[]): WeightSpec[] {
  return weights.map((w) => ({ ...w, dims: [...w.dims], byteLength: specBytes(w.dtype, w.dims) }));
}
