/**
 * Baking: `replaceOnnxExternalWeights` turns a compiled program's deferred weights into
 * literals lowered for a target, without recompiling. It copies the program in the core and
 * runs the target's literal passes (`replace_external_weights`, then what the target needs
 * once literals appear) through the pass manager over every module, submodules included.
 * The template program is left untouched; the result is not finalized: `finalize(target)`
 * in process, or `save` then `load`.
 * @module
 */
import { KilnError } from "./errors.ts";
import type { HostLiteral, ValueInfo } from "./onnx/import.ts";
import { deserializeProgram, type Program, programInternals, type WeightInfo } from "./program.ts";
import { getTarget } from "./targets/registry.ts";
import type { GpuOptions, TargetName } from "./targets/target.ts";
import { type NameRules, specsOf, WeightSet, type WeightSpec } from "./weights/weight_set.ts";
import { joinPath } from "./fs.ts";
import { host, type HostFileInfo } from "./host.ts";

/**
 * A program whose weights were baked: serialized, not finalized. `finalize(target)` gives a
 * runnable Program; `save` writes it as a `.kiln` file.
 */
export class BakedProgram {
  /** the target whose literal passes baked it */
  readonly target: TargetName;
  /** graph inputs, in order */
  readonly inputs: ValueInfo[];
  /** graph outputs, in order */
  readonly outputs: ValueInfo[];
  /** weights still deferred (a partial bake leaves some) */
  readonly weights: WeightInfo[];
  /** names of the weights that became literals */
  readonly baked: string[];
  /** external initializers the compiler needed as constants (see Program.fixedWeights) */
  readonly fixedWeights: string[];
  #ir: Uint8Array;
  #hostLiterals: HostLiteral[];
  #literalIds: number[];

  /** @internal use `replaceOnnxExternalWeights`. */
  constructor(
    target: TargetName,
    template: Program,
    baked: string[],
    parts: { ir: Uint8Array; hostLiterals: HostLiteral[]; literalIds: number[] },
  ) {
    this.target = target;
    this.inputs = template.inputs.map((v) => ({ ...v, dims: [...v.dims] }));
    this.outputs = template.outputs.map((v) => ({ ...v, dims: [...v.dims] }));
    const set = new Set(baked);
    this.weights = template.weights.filter((w) => !set.has(w.name)).map((w) => ({ ...w, dims: [...w.dims] }));
    this.baked = [...baked];
    this.fixedWeights = template.fixedWeights;
    this.#ir = parts.ir;
    this.#hostLiterals = parts.hostLiterals;
    this.#literalIds = parts.literalIds;
  }

  /** The weights still deferred, with byte lengths. */
  weightSignature(): WeightSpec[] {
    return specsOf(this.weights);
  }

  /** The host literal ids the baked program uses (what a program file stores). */
  usedLiteralIds(): number[] {
    return [...this.#literalIds];
  }

  /** The serialized program and its host literals (what `save` writes). */
  serialize(): { ir: Uint8Array; hostLiterals: HostLiteral[] } {
    return { ir: this.#ir, hostLiterals: this.#hostLiterals };
  }

  /** True when the target reads weight files itself (a WeightSet for this program then stays unread). */
  get readsWeightFiles(): boolean {
    return getTarget(this.target).readsFiles;
  }

  /**
   * Finalizes for `target` in process: allocates memory, places literals (on gpu: uploads them,
   * from their files where they came from files) and returns a runnable Program (no compiler pass
   * runs).
   */
  finalize(target: string = this.target, options: { gpu?: GpuOptions } = {}): Program {
    if (target !== this.target) {
      throw new KilnError(
        "target",
        `Cannot finalize for '${target}': the weights were baked with the literal passes of '${this.target}'`,
      );
    }
    const program = deserializeProgram(this.#ir, this.#hostLiterals, target, options);
    programInternals(program).setFixedWeights(this.fixedWeights);
    return program;
  }
}

/** Options of `replaceOnnxExternalWeights`. */
export interface BakeOptions {
  /** Bake only the weights the source has; the others stay deferred. Default false. */
  partial?: boolean;
  /** Verify ONNX checksums of data files (default true). */
  verifyChecksums?: boolean;
  /** Rename map for safetensors sources. */
  nameMap?: Record<string, string>;
  /** Name rules for safetensors sources (prefixes, rewrites, suffix matching). */
  names?: NameRules;
  /** Convert float32/float16/bfloat16 safetensors tensors to the weights' element types. */
  cast?: boolean;
  /** Called after each tensor is read: bytes read so far and in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/**
 * Replaces a compiled program's `onnx_external_weights` instructions, in place, by literals
 * from `source` (an ONNX external-data directory, a `.safetensors` file, or a WeightSet),
 * lowered for `target`. The weight set is validated first; on failure nothing changes.
 *
 * @example
 * ```ts ignore
 * const baked = await replaceOnnxExternalWeights(program, "weights_v1", "ref");
 * await save(baked, "model_v1.kiln");
 * const ready = baked.finalize("ref");
 * ```
 */
export async function replaceOnnxExternalWeights(
  program: Program,
  source: string | WeightSet,
  target: string = program.target,
  options: BakeOptions = {},
): Promise<BakedProgram> {
  const t = getTarget(target);
  if (t.name !== program.target) {
    throw new KilnError(
      "target",
      `Cannot bake for '${t.name}': the program was compiled for '${program.target}', and baking runs only the ` +
        `literal passes of the program's own target (compile it with target '${t.name}')`,
    );
  }
  if (program.weights.length === 0) {
    throw new KilnError(
      "weights",
      "Cannot bake: the program has no deferred weights (parse with { deferExternalWeights: true })",
    );
  }
  const set = await loadWeightSet(program, source, options);
  const parts = program.bake(set);
  return new BakedProgram(t.name, program, set.names(), parts);
}

/**
 * A weight set for `program` from a directory (ONNX external data), a `.safetensors` file,
 * or a WeightSet (validated against the program's signature).
 */
export async function loadWeightSet(
  program: Program | BakedProgram,
  source: string | string[] | WeightSet,
  options: BakeOptions = {},
): Promise<WeightSet> {
  const signature = program.weightSignature();
  if (source instanceof WeightSet) {
    source.validate(signature);
    return source;
  }
  const files = Array.isArray(source) ? source : [source];
  const safetensors = (f: string) => f.endsWith(".safetensors") || f.endsWith(".safetensors.index.json");
  if (files.every(safetensors)) {
    return await WeightSet.fromSafetensors(signature, files, options);
  }
  if (files.length === 1 && files[0].endsWith(".onnx")) {
    // a whole model (a fine-tune exported with its weights): its initializers by name
    return await WeightSet.fromOnnxModel(signature, files[0], options);
  }
  if (files.length !== 1) {
    throw new KilnError(
      "weights",
      `Give one weight directory, one .onnx model or .safetensors files, not ${files.join(", ")}`,
    );
  }
  let stat: HostFileInfo;
  try {
    stat = await host.stat(files[0]);
  } catch {
    throw new KilnError("io", `Weight source '${files[0]}' does not exist`);
  }
  if (!stat.isDirectory) {
    throw new KilnError(
      "weights",
      `Weight source '${
        files[0]
      }' is neither a directory (ONNX external data), an .onnx model nor a .safetensors file`,
    );
  }
  // a Hugging Face checkpoint folder: its sharded index, or its one model.safetensors, unless the
  // folder holds the model's own external-data files
  const dir = files[0];
  const has = async (name: string) => {
    try {
      return (await host.stat(joinPath(dir, name))).isFile;
    } catch {
      return false;
    }
  };
  let onnxData = false;
  for (const loc of new Set(signature.map((s) => s.location))) onnxData ||= loc !== "" && await has(loc);
  if (!onnxData) {
    if (await has("model.safetensors.index.json")) {
      return await WeightSet.fromSafetensors(
        signature,
        joinPath(dir, "model.safetensors.index.json"),
        options,
      );
    }
    if (await has("model.safetensors")) {
      return await WeightSet.fromSafetensors(signature, joinPath(dir, "model.safetensors"), options);
    }
  }
  return await WeightSet.fromOnnxDir(signature, dir, options);
}
