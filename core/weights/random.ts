/**
 * Seeded weight sets for ONNX graphs whose weights live in external data files that are not
 * shipped (the PyTorch exporter graphs in `shared/models`): every external initializer gets
 * deterministic values at its recorded `offset` and `length` inside the file named by its
 * `location`, so onnxruntime and kiln can run the graph on the same weights.
 *
 * The scheme (values depend only on the seed and the initializer's name, never on the order
 * or the offset; each initializer draws from its own xoshiro128** stream seeded by
 * splitmix32 over `seed` and the FNV-1a hash of the name; normals by Box-Muller):
 *
 * | initializer | values |
 * |---|---|
 * | float, rank >= 2, name like an embedding (`emb`, `wte`, `wpe`) | N(0, 0.02) |
 * | float, rank >= 2, otherwise | N(0, 1/sqrt(fan_in)), fan_in = product of the dims after the first |
 * | float, rank <= 1, name like a norm scale (`norm`/`ln`/`bn`/`layernorm` ... `.weight`, `gamma`, `running_var`) | 1 + N(0, 0.02) |
 * | float, rank <= 1, otherwise (biases, shifts) | N(0, 0.02) |
 * | bool whose last two dims are equal | lower-triangular true (a causal mask), broadcast over the leading dims |
 * | other bool | true |
 * | integer types | uniform in {0, 1} (valid indices for any gathered axis, token types included) |
 *
 * float16 values are rounded to nearest even from float32; bfloat16 likewise (top 16 bits).
 * Ranges the graph does not name stay zero; each data file is created at the size its
 * furthest range needs, and the `.onnx` file is copied beside the data files.
 *
 * @example
 * ```ts ignore
 * import { writeRandomWeights } from "./random.ts";
 * const dir = await Deno.makeTempDir();
 * const r = await writeRandomWeights("/work/shared/models/gpt2_dynamo.onnx", dir, { seed: 1 });
 * console.log(r.modelPath, r.tensors.length, r.files); // data file of 497,339,392 bytes
 * ```
 * @module
 */

import { ensureDir, joinPath, readRegular, realPathOrUndefined, writeFileAtomic } from "../fs.ts";
import { onnx } from "../onnx/onnx_pb.js";
import { modelDataFiles, writeOnnxDataDir } from "./layout.ts";
import { specsOf } from "./weight_set.ts";
import {
  dtypeFromOnnx,
  type DTypeName,
  dtypeSize,
  elementCount,
  float32BitsToBfloat16Bits,
  float32ToFloat16Bits,
} from "../tensor.ts";
import { paths } from "../path.ts";

export { float32ToFloat16Bits } from "../tensor.ts";

/** Options of {@linkcode writeRandomWeights}. */
export interface RandomWeightsOptions {
  /** PRNG seed (an unsigned 32-bit integer). Default: 0. */
  seed?: number;
  /** Called after each tensor is written: bytes written so far and in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /**
   * Overwrite the model's own data files when `outDir` is the model's folder (default false:
   * that is refused, naming the file).
   */
  force?: boolean;
}

/** One initializer stored as external data, as the graph records it. */
export interface ExternalInitializer {
  name: string;
  dtype: DTypeName;
  dims: number[];
  /** File name relative to the model's folder. */
  location: string;
  offset: number;
  length: number;
}

/** What {@linkcode writeRandomWeights} wrote. */
export interface RandomWeightsReport {
  /** Path of the copied `.onnx` inside outDir. */
  modelPath: string;
  /** Data files written, with their sizes in bytes. */
  files: { location: string; path: string; bytes: number }[];
  /** Every external initializer that received values. */
  tensors: ExternalInitializer[];
}

/**
 * A small seeded PRNG: xoshiro128** seeded through splitmix32, with Box-Muller normals.
 *
 * @example
 * ```ts
 * const r = new SeededRandom(42);
 * const u = r.uniform(); // [0, 1)
 * const z = r.normal(); // N(0, 1)
 * const k = r.int(10); // 0..9
 * ```
 */
export class SeededRandom {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;
  #spare = NaN;

  /** Seeds the four state words from `seed` with splitmix32. */
  constructor(seed: number) {
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
  }

  /** The next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const s1 = this.#s1;
    const r = Math.imul(_rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = _rotl(this.#s3, 11);
    return r;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.#spare)) {
      const s = this.#spare;
      this.#spare = NaN;
      return s;
    }
    const u1 = (this.nextU32() + 1) / 4294967297; // (0, 1]
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const a = 2 * Math.PI * u2;
    this.#spare = r * Math.sin(a);
    return r * Math.cos(a);
  }

  /** Fills `out` with mean + std * N(0, 1) (the generator inlined: this is the hot loop). */
  fillNormal(out: Float32Array | Float64Array, mean: number, std: number): void {
    const n = out.length;
    let s0 = this.#s0, s1 = this.#s1, s2 = this.#s2, s3 = this.#s3;
    let i = 0;
    for (; i + 1 < n; i += 2) {
      let r1 = Math.imul(s1, 5);
      r1 = Math.imul((r1 << 7) | (r1 >>> 25), 9) >>> 0;
      let t = s1 << 9;
      s2 ^= s0, s3 ^= s1, s1 ^= s2, s0 ^= s3, s2 ^= t, s3 = (s3 << 11) | (s3 >>> 21);
      let r2 = Math.imul(s1, 5);
      r2 = Math.imul((r2 << 7) | (r2 >>> 25), 9) >>> 0;
      t = s1 << 9;
      s2 ^= s0, s3 ^= s1, s1 ^= s2, s0 ^= s3, s2 ^= t, s3 = (s3 << 11) | (s3 >>> 21);
      const r = std * Math.sqrt(-2 * Math.log((r1 + 1) / 4294967297));
      const a = 1.4629180792671596e-9 * r2; // 2*pi / 2^32
      out[i] = mean + r * Math.cos(a);
      out[i + 1] = mean + r * Math.sin(a);
    }
    this.#s0 = s0, this.#s1 = s1, this.#s2 = s2, this.#s3 = s3;
    if (i < n) out[i] = mean + std * this.normal();
  }
}

function _rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** FNV-1a over the UTF-16 code units of `s`, mixed with `seed`. */
function _hash(seed: number, s: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The seeded stream of the initializer `name` under `seed`. */
export function streamFor(seed: number, name: string): SeededRandom {
  return new SeededRandom(_hash(seed >>> 0, name));
}

const NORM_SCALE = /(^|[._/])(ln\w*|bn\d*|\w*norm\w*)[._/](weight|scale|gamma)$|gamma$|running_var$/i;
const EMBEDDING = /emb|(^|[._/])(wte|wpe)([._/]|$)/i;

/** Which distribution an initializer gets (see the module doc). */
export function weightKind(
  name: string,
  dtype: DTypeName,
  dims: readonly number[],
): "embedding" | "fan_in" | "norm_scale" | "bias" | "causal_mask" | "true" | "small_int" {
  if (dtype === "bool") {
    const r = dims.length;
    return r >= 2 && dims[r - 1] === dims[r - 2] ? "causal_mask" : "true";
  }
  if (dtype === "float32" || dtype === "float64" || dtype === "float16" || dtype === "bfloat16") {
    if (dims.length >= 2) return EMBEDDING.test(name) ? "embedding" : "fan_in";
    return NORM_SCALE.test(name) ? "norm_scale" : "bias";
  }
  return "small_int";
}

/**
 * Seeded values for one initializer, as the bytes its external range holds (little endian).
 *
 * @example
 * ```ts
 * const bytes = randomWeightBytes(0, "fc.weight", "float32", [10, 4]); // 160 bytes, N(0, 0.5)
 * ```
 */
export function randomWeightBytes(seed: number, name: string, dtype: DTypeName, dims: number[]): Uint8Array {
  const n = elementCount(dims);
  const rng = streamFor(seed, name);
  const kind = weightKind(name, dtype, dims);
  const out = new Uint8Array(n * dtypeSize(dtype));
  switch (kind) {
    case "embedding":
    case "fan_in":
    case "norm_scale":
    case "bias": {
      const fanIn = dims.length >= 2 ? elementCount(dims.slice(1)) : 1;
      const std = kind === "fan_in" ? 1 / Math.sqrt(Math.max(1, fanIn)) : 0.02;
      const mean = kind === "norm_scale" ? 1 : 0;
      if (dtype === "float64") {
        rng.fillNormal(new Float64Array(out.buffer), mean, std);
      } else if (dtype === "float32") {
        rng.fillNormal(new Float32Array(out.buffer), mean, std);
      } else {
        const f = new Float32Array(n);
        rng.fillNormal(f, mean, std);
        const h = new Uint16Array(out.buffer);
        const bits = new Uint32Array(f.buffer);
        if (dtype === "bfloat16") {
          for (let i = 0; i < n; i++) h[i] = float32BitsToBfloat16Bits(bits[i]);
        } else {
          for (let i = 0; i < n; i++) h[i] = float32ToFloat16Bits(f[i]);
        }
      }
      return out;
    }
    case "causal_mask": {
      const r = dims.length;
      const rows = dims[r - 2], cols = dims[r - 1];
      const plane = rows * cols;
      for (let b = 0; b < n; b += plane) {
        for (let i = 0; i < rows; i++) out.fill(1, b + i * cols, b + i * cols + i + 1);
      }
      return out;
    }
    case "true":
      return out.fill(1);
    case "small_int": {
      const size = dtypeSize(dtype);
      for (let i = 0; i < n; i++) out[i * size] = rng.nextU32() & 1; // little endian: low byte
      return out;
    }
  }
}

/**
 * The initializers of an ONNX graph (main graph and subgraphs) stored as external data.
 * Throws when an entry lacks a location or escapes the model's folder.
 *
 * @example
 * ```ts ignore
 * const list = externalInitializers(await Deno.readFile("model.onnx"));
 * ```
 */
export function externalInitializers(modelBytes: Uint8Array): ExternalInitializer[] {
  const model = onnx.ModelProto.decode(modelBytes);
  const out: ExternalInitializer[] = [];
  const graphs: onnx.IGraphProto[] = model.graph ? [model.graph] : [];
  while (graphs.length) {
    const g = graphs.pop()!;
    for (const t of g.initializer ?? []) {
      if (t.data_location !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
      out.push(_externalEntry(t));
    }
    for (const node of g.node ?? []) {
      for (const a of node.attribute ?? []) {
        if (a.g) graphs.push(a.g);
        for (const sg of a.graphs ?? []) graphs.push(sg);
      }
    }
  }
  return out;
}

function _externalEntry(t: onnx.ITensorProto): ExternalInitializer {
  const name = t.name ?? "";
  const kv = new Map((t.external_data ?? []).map((e) => [e.key ?? "", e.value ?? ""]));
  const location = kv.get("location");
  if (!location) throw new Error(`Initializer '${name}' is external but has no 'location'`);
  if (/^([\\/]|[A-Za-z]:)/.test(location) || location.split(/[\\/]/).includes("..")) {
    throw new Error(`Initializer '${name}': location '${location}' escapes the model's folder`);
  }
  const dtype = dtypeFromOnnx(t.data_type ?? 0);
  const dims = (t.dims ?? []).map((d) => Number(d));
  const natural = elementCount(dims) * dtypeSize(dtype);
  const offset = kv.has("offset") ? Number(kv.get("offset")) : 0;
  const length = kv.has("length") ? Number(kv.get("length")) : natural;
  if (!Number.isSafeInteger(offset) || offset < 0 || length !== natural) {
    throw new Error(
      `Initializer '${name}': external range offset '${kv.get("offset")}' length '${
        kv.get("length")
      }' does not fit ${dtype}[${dims.join(",")}] (${natural} bytes)`,
    );
  }
  return { name, dtype, dims, location, offset, length };
}

/**
 * Writes a seeded weight set for the ONNX graph at `modelPath` into `outDir` (created if
 * missing): one data file per external `location`, each at the size its furthest range
 * needs, every external initializer's values at its `offset`, and a copy of the `.onnx`
 * beside them, so `outDir/<model file name>` runs in onnxruntime and kiln.
 * Deterministic in `seed` (see the module doc for the distributions).
 *
 * @example
 * ```ts ignore
 * const dir = await Deno.makeTempDir();
 * const { modelPath } = await writeRandomWeights("/work/shared/models/resnet50_dynamo.onnx", dir, { seed: 7 });
 * ```
 */
export async function writeRandomWeights(
  modelPath: string,
  outDir: string,
  options: RandomWeightsOptions = {},
): Promise<RandomWeightsReport> {
  const seed = (options.seed ?? 0) >>> 0;
  const modelBytes = await readRegular(modelPath, "Model");
  const tensors = externalInitializers(modelBytes);
  await ensureDir(outDir, "Weight folder");
  const base = paths.basename(modelPath);
  const outModel = joinPath(outDir, base);
  const signature = specsOf(tensors.map((t) => ({ ...t, checksum: "" })));
  // the model's own data files are never overwritten by accident (see writeOnnxDataDir)
  const protect = await modelDataFiles(modelPath, signature);
  const written = await writeOnnxDataDir(
    outDir,
    signature,
    (s) => randomWeightBytes(seed, s.name, s.dtype, s.dims),
    { protect, force: options.force, onProgress: options.onProgress },
  );
  // the graph beside them (unless it is the same file)
  if ((await realPathOrUndefined(outModel)) !== (await realPathOrUndefined(modelPath))) {
    await writeFileAtomic(outModel, modelBytes, "Model copy");
  }
  const files = written.map((w) => ({
    location: w.path.slice(outDir.replace(/\/+$/, "").length + 1),
    path: w.path,
    bytes: w.bytes,
  }));
  return { modelPath: outModel, files, tensors };
}
