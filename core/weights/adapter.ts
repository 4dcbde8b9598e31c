/**
 * LoRA adapters: pairs of low-rank factors (A, B) and a scale per adapted weight, applied to a
 * program as W = W0 + scale·B·A from the kept base weights W0, so adapters never pile up and a
 * removed adapter restores W0 exactly. An adapter is read from the layout PEFT saves
 * (`adapter_model.safetensors` with `adapter_config.json` beside it) or built from arrays, and
 * resolved against a program's weight signature at apply time, every problem reported at once.
 * @module
 */
import { KilnError } from "../errors.ts";
import { joinPath, openRegular } from "../fs.ts";
import { readRangeFrom } from "../io.ts";
import { castFloats, describe, type DTypeName } from "../tensor.ts";
import type { WeightDelta } from "../targets/target.ts";
import { readSafetensorsIndex, safetensorsIndexOf } from "./safetensors.ts";
import { WeightSetError, type WeightSpec } from "./weight_set.ts";
import { BytesFile, host } from "../host.ts";
import { type ByteSource, byteSourceName, isByteSource, readByteSource } from "../source.ts";
import { paths } from "../path.ts";

/** The low-rank factors of one adapted module. */
export interface AdapterFactors {
  /** the module's name in the adapter (PEFT's, without `base_model.model.`), e.g. `transformer.h.0.attn.c_attn` */
  module: string;
  /** A: [rank, in] (an embedding's: [rank, rows]), row-major float32 */
  a: Float32Array;
  /** A's dims */
  aDims: [number, number];
  /** B: [out, rank] (an embedding's: [cols, rank]) */
  b: Float32Array;
  /** B's dims */
  bDims: [number, number];
  /** the factor's scale (PEFT: lora_alpha / r, or / sqrt(r) with rsLoRA) */
  scale: number;
  /** an embedding's factors (PEFT's lora_embedding_A/B): the delta is (B·A)ᵀ */
  embedding?: boolean;
}

/** Options for reading an adapter. */
export interface AdapterOptions {
  /** a name for reports (default: the file's or folder's name) */
  name?: string;
  /**
   * adapter_config.json: its path (default: beside the safetensors file, when there is one), or
   * its parsed contents (an adapter given as bytes has no folder to find it in)
   */
  config?: string | Record<string, unknown>;
  /** LoRA alpha for every module (overrides the config's lora_alpha and alpha_pattern) */
  alpha?: number;
  /** the scale for every module, overriding alpha / rank */
  scale?: number;
  /**
   * The delta is (B·A)ᵀ: the adapted weights are stored [in, out] (PEFT's fan_in_fan_out, as for
   * GPT-2's Conv1D, or an exporter that pre-transposed Linear weights). Default: the config's
   * fan_in_fan_out where it is true, else inferred per weight from its shape (a square weight is
   * then taken as [out, in]).
   */
  fanInFanOut?: boolean;
  /**
   * The program weight a module adapts (default: the weight named `<module>.weight`, or the one
   * weight whose name ends in `.<module>.weight`, as exporters prefix module paths).
   */
  weightOf?: (module: string) => string | undefined;
}

/** A LoRA adapter: the factors of every module it adapts. */
export class Adapter {
  /** An adapter from factors in memory (`Adapter.load` reads one from a file). */
  constructor(
    /** a name for reports */
    readonly name: string,
    /** the factors, one entry per adapted module */
    readonly factors: readonly AdapterFactors[],
    /** what it resolves with */
    readonly options: Pick<AdapterOptions, "fanInFanOut" | "weightOf"> = {},
    /** where it came from, for messages */
    readonly source = `adapter '${name}'`,
  ) {}

  /**
   * Reads an adapter saved by PEFT: a folder holding `adapter_model.safetensors` (and
   * `adapter_config.json`), or a safetensors file. Factors in float32, float16 or bfloat16 are
   * read as float32. Every problem in the file is reported at once.
   *
   * @example
   * ```ts ignore
   * const adapter = await Adapter.load("adapters/customer-a");
   * await program.applyAdapter(adapter);
   * ```
   */
  static async load(source: string | ByteSource, options: AdapterOptions = {}): Promise<Adapter> {
    // an adapter in memory (bytes, a Blob, a Response, an http(s) URL): its safetensors file whole
    const held = isByteSource(source) ? await readByteSource(source, "Adapter file") : undefined;
    const path = isByteSource(source) ? byteSourceName(source) : source;
    let file = path;
    let dir = held ? "" : paths.dirname(path);
    if (!held) {
      try {
        if ((await host.stat(path)).isDirectory) {
          file = joinPath(path, "adapter_model.safetensors");
          dir = path;
        }
      } catch {
        // openRegular below names the problem
      }
    }
    const given = options.config;
    const configPath = typeof given === "string"
      ? given
      : given
      ? "the given adapter config"
      : held
      ? ""
      : joinPath(dir, "adapter_config.json");
    const config = typeof given === "object"
      ? (given as _Config)
      : configPath
      ? await _readConfig(configPath, given !== undefined)
      : undefined;
    const what = `Cannot read adapter '${file}'`;
    const problems: string[] = [];
    if (config) {
      if (config.peft_type !== undefined && config.peft_type !== "LORA") {
        problems.push(
          `${configPath}: peft_type is ${JSON.stringify(config.peft_type)}; kiln applies LORA adapters`,
        );
      }
      if (config.use_dora === true) problems.push(`${configPath}: DoRA (use_dora) is not supported`);
    }
    if (!config && options.alpha === undefined && options.scale === undefined) {
      problems.push(
        held
          ? "no adapter config to give lora_alpha (an adapter given as bytes has none beside it): pass { config }, { alpha } or { scale }"
          : `no adapter_config.json beside it (${configPath}) to give lora_alpha: pass { alpha } or { scale }`,
      );
    }
    const index = held ? safetensorsIndexOf(held, file) : await readSafetensorsIndex(file);
    const pairs = new Map<string, { a?: string; b?: string; embedding: boolean }>();
    for (const key of index.entries.keys()) {
      const m = /^(?:base_model\.model\.)?(.+)\.lora_(embedding_)?([AB])(?:\.[^.]+)?(?:\.weight)?$/.exec(key);
      if (!m || (m[2] === undefined && !key.endsWith(".weight"))) {
        problems.push(
          `tensor '${key}' is not a LoRA factor kiln applies (lora_A/lora_B or lora_embedding_A/B)`,
        );
        continue;
      }
      const module = m[1];
      const p = pairs.get(module) ?? { embedding: m[2] !== undefined };
      if (m[3] === "A") p.a = key;
      else p.b = key;
      pairs.set(module, p);
    }
    const factors: AdapterFactors[] = [];
    using fh = held ? new BytesFile(held) : (await openRegular(file, "Adapter file")).file;
    for (const [module, p] of pairs) {
      if (!p.a || !p.b) {
        problems.push(`module '${module}' has lora_${p.a ? "A" : "B"} but no lora_${p.a ? "B" : "A"}`);
        continue;
      }
      const ea = index.entries.get(p.a)!, eb = index.entries.get(p.b)!;
      const bad = [ea, eb].filter((e) => !_FLOATS.has(e.dtype) || e.dims.length !== 2);
      if (bad.length) {
        for (const e of bad) {
          problems.push(
            `tensor '${e.name}' is ${describe(e.dtype, e.dims)}; a LoRA factor is a float matrix`,
          );
        }
        continue;
      }
      const rank = ea.dims[0];
      if (eb.dims[1] !== rank) {
        problems.push(
          `module '${module}': lora_B is [${eb.dims}] and lora_A [${ea.dims}]; their ranks (${
            eb.dims[1]
          } and ${rank}) differ`,
        );
        continue;
      }
      const alpha = options.alpha ?? _pattern(config?.alpha_pattern, module) ?? config?.lora_alpha;
      const scale = options.scale ??
        (typeof alpha === "number" && rank > 0
          ? alpha / (config?.use_rslora === true ? Math.sqrt(rank) : rank)
          : NaN);
      if (!Number.isFinite(scale)) {
        problems.push(
          `module '${module}': no finite scale (lora_alpha ${JSON.stringify(alpha)}, rank ${rank})`,
        );
        continue;
      }
      const a = _toFloat32(ea.dtype, await readRangeFrom(fh, file, ea.offset, ea.length));
      const b = _toFloat32(eb.dtype, await readRangeFrom(fh, file, eb.offset, eb.length));
      factors.push({
        module,
        a,
        aDims: [ea.dims[0], ea.dims[1]],
        b,
        bDims: [eb.dims[0], eb.dims[1]],
        scale,
        embedding: p.embedding || undefined,
      });
    }
    if (!factors.length && !problems.length) problems.push("it holds no LoRA factors");
    if (problems.length) throw new WeightSetError(what, problems);
    const fanInFanOut = options.fanInFanOut ?? (config?.fan_in_fan_out === true ? true : undefined);
    const name = options.name ?? (paths.basename(path) || path);
    return new Adapter(name, factors, { fanInFanOut, weightOf: options.weightOf }, `adapter '${file}'`);
  }

  /**
   * Resolves the adapter against a program's weight signature: one delta per adapted weight,
   * oriented to the weight's layout. Every module that matches no weight (or several), every
   * shape that fits no orientation, every weight adapted twice is reported at once.
   */
  resolve(signature: readonly WeightSpec[], what: string): WeightDelta[] {
    const byName = new Map(signature.map((w) => [w.name, w]));
    const problems: string[] = [];
    const out: WeightDelta[] = [];
    const seen = new Map<string, string>();
    for (const f of this.factors) {
      const name = this.options.weightOf
        ? this.options.weightOf(f.module)
        : _weightOf(f.module, signature, problems);
      if (name === undefined) {
        if (this.options.weightOf) problems.push(`module '${f.module}': weightOf names no weight for it`);
        continue;
      }
      const w = byName.get(name);
      if (!w) {
        problems.push(`module '${f.module}': '${name}' is not a deferred weight of this program`);
        continue;
      }
      if (seen.has(name)) {
        problems.push(`weight '${name}' is adapted by both '${seen.get(name)}' and '${f.module}'`);
        continue;
      }
      seen.set(name, f.module);
      if (w.dtype !== "float32" || w.dims.length !== 2) {
        problems.push(
          `module '${f.module}': weight '${name}' is ${describe(w.dtype, w.dims)}, not a float32 matrix`,
        );
        continue;
      }
      const [rows, cols] = w.dims;
      const out0 = f.bDims[0], in0 = f.aDims[1]; // B·A is [out0, in0]
      const direct = out0 === rows && in0 === cols, flipped = out0 === cols && in0 === rows;
      const transposed = f.embedding ? true : this.options.fanInFanOut ?? !direct;
      if (transposed ? !flipped : !direct) {
        const shapes = `B·A is [${out0}, ${in0}], weight '${name}' is [${rows}, ${cols}]`;
        problems.push(
          !direct && !flipped
            ? `module '${f.module}': ${shapes}: neither B·A nor its transpose fits`
            : `module '${f.module}': ${shapes}, which fits ${transposed ? "B·A" : "(B·A)ᵀ"}, but ${
              f.embedding ? "an embedding's delta is (B·A)ᵀ" : `fanInFanOut is ${this.options.fanInFanOut}`
            }`,
        );
        continue;
      }
      out.push({ name, a: f.a, b: f.b, rank: f.aDims[0], scale: f.scale, transposed });
    }
    if (problems.length) throw new WeightSetError(`${what}: ${this.source}`, problems);
    return out;
  }
}

const _FLOATS = new Set(["float32", "float16", "bfloat16"]);

interface _Config {
  peft_type?: unknown;
  lora_alpha?: unknown;
  use_rslora?: unknown;
  use_dora?: unknown;
  fan_in_fan_out?: unknown;
  alpha_pattern?: unknown;
}

async function _readConfig(path: string, required: boolean): Promise<_Config | undefined> {
  let text: string;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    if (!required && host.isNotFound(e)) return undefined;
    throw new KilnError("io", `Cannot read adapter config '${path}': ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
    return v as _Config;
  } catch (e) {
    throw new KilnError("weights", `Cannot read adapter config '${path}': ${(e as Error).message}`);
  }
}

/** PEFT's per-module pattern lookup: a key matches a module named `key` or ending in `.key`. */
function _pattern(patterns: unknown, module: string): number | undefined {
  if (typeof patterns !== "object" || patterns === null) return undefined;
  for (const [key, v] of Object.entries(patterns)) {
    if (typeof v !== "number") continue;
    let re: RegExp;
    try {
      re = new RegExp(`^(?:.*\\.)?(?:${key})$`);
    } catch {
      continue;
    }
    if (re.test(module)) return v;
  }
  return undefined;
}

function _weightOf(module: string, signature: readonly WeightSpec[], problems: string[]): string | undefined {
  const exact = `${module}.weight`;
  if (signature.some((w) => w.name === exact)) return exact;
  const hits = signature.filter((w) => w.name.endsWith(`.${exact}`)).map((w) => w.name);
  if (hits.length === 1) return hits[0];
  problems.push(
    hits.length
      ? `module '${module}' matches several weights (${hits.map((h) => `'${h}'`).join(", ")}): pass weightOf`
      : `module '${module}' matches no weight of the program (none is named '${exact}' or ends in '.${exact}')`,
  );
  return undefined;
}

/** Factor bytes as float32 (safetensors is little-endian; float16 and bfloat16 widened). */
function _toFloat32(dtype: DTypeName, bytes: Uint8Array): Float32Array {
  return new Float32Array(castFloats(bytes, dtype, "float32").buffer);
}

/**
 * W0 + scale·B·A (or + scale·(B·A)ᵀ) in float32, for targets that adapt weights on the host
 * (ref). Accumulates each element's rank-r sum in float64, then adds it to W0 once.
 */
export function applyDelta(base: Uint8Array, rows: number, cols: number, d: WeightDelta): Uint8Array {
  const w = new Float32Array(base.byteLength / 4);
  new Uint8Array(w.buffer).set(base);
  const r = d.rank;
  // as a row-major product L (rows x r) · R (r x cols): L = B, R = A; transposed L = Aᵀ, R = Bᵀ
  const left = new Float64Array(rows * r), right = new Float64Array(r * cols);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < r; k++) left[i * r + k] = d.transposed ? d.a[k * rows + i] : d.b[i * r + k];
  }
  for (let k = 0; k < r; k++) {
    for (let j = 0; j < cols; j++) right[k * cols + j] = d.transposed ? d.b[j * r + k] : d.a[k * cols + j];
  }
  const acc = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    for (let k = 0; k < r; k++) {
      const l = left[i * r + k];
      if (l === 0) continue;
      const off = k * cols;
      for (let j = 0; j < cols; j++) acc[j] += l * right[off + j];
    }
    const row = i * cols;
    for (let j = 0; j < cols; j++) w[row + j] += d.scale * acc[j];
  }
  return new Uint8Array(w.buffer);
}
