/**
 * `save` and `load`: a compiled program to and from a `.kiln` file. `load` returns a
 * finalized program (literals in place, ready to eval) without re-running the compiler. A
 * program with deferred weights is saved *weightless*: its weight signature is kept, and a
 * weight set is bound after loading.
 * @module
 */
import { type BakedProgram, type BakeOptions, loadWeightSet } from "./bake.ts";
import { KilnError } from "./errors.ts";
import { deserializeProgram, type Program } from "./program.ts";
import { readProgramFile, writeProgramFile } from "./program_file.ts";
import { KILN_VERSION } from "./version.ts";
import { type WeightSet, WeightSetError } from "./weights/weight_set.ts";

/** Options of `load`. */
export interface LoadOptions extends BakeOptions {
  /**
   * For a weightless program: a weight set to bind right after loading (an ONNX external-data
   * directory, `.safetensors` file(s), or a WeightSet), validated against the program's weight
   * signature. On any problem nothing is returned and the error names the file and tensors.
   */
  weights?: string | string[] | WeightSet;
}

/**
 * Writes `program` (compiled, or baked and not yet finalized) to `path` as a `.kiln` file.
 * @example
 * ```ts ignore
 * await save(compile(await parseOnnx("model.onnx"), "ref"), "model.kiln");
 * ```
 */
export async function save(program: Program | BakedProgram, path: string): Promise<void> {
  const { ir, hostLiterals } = program.serialize();
  await writeProgramFile(path, {
    target: program.target,
    kilnVersion: KILN_VERSION,
    ir,
    literals: hostLiterals,
    weightless: program.weights.length > 0,
    program: {
      inputs: program.inputs,
      outputs: program.outputs,
      weights: program.weightSignature(),
      fixedWeights: program.fixedWeights,
    },
  });
}

/**
 * Reads a `.kiln` file and returns the program finalized for its target. Corrupt, truncated
 * and future-version files fail with a KilnError (code "format") naming the file. With
 * `weights`, a weightless program is refitted on load: the weight set is read, validated and
 * bound before the program is returned.
 * @example
 * ```ts ignore
 * const program = await load("model.weightless.kiln", { weights: "weights_v2/" });
 * ```
 */
export async function load(path: string, options: LoadOptions = {}): Promise<Program> {
  const program = await _load(path);
  if (options.weights === undefined) return program;
  try {
    program.bindWeights(await loadWeightSet(program, options.weights, options), { partial: options.partial });
    return program;
  } catch (e) {
    program.dispose();
    if (e instanceof WeightSetError) {
      throw new WeightSetError(`Cannot bind weights to '${path}' on load`, e.problems);
    }
    if (e instanceof KilnError) {
      throw new KilnError(e.code, `Cannot bind weights to '${path}' on load: ${e.message}`, e);
    }
    throw e;
  }
}

async function _load(path: string): Promise<Program> {
  const { meta, ir, literals } = await readProgramFile(path);
  const hostLiterals = meta.literals.map((e, i) => ({
    name: e.name,
    dtype: e.dtype,
    dims: e.dims,
    bytes: literals[i],
  }));
  if (meta.target !== "ref") {
    throw new KilnError(
      "format",
      `Program file '${path}' targets '${meta.target}', which this kiln cannot run`,
    );
  }
  try {
    const program = deserializeProgram(ir, hostLiterals, "ref");
    const fixed = meta.program?.fixedWeights;
    if (Array.isArray(fixed)) program._setFixedWeights(fixed.map(String));
    return program;
  } catch (e) {
    if (e instanceof KilnError) {
      throw new KilnError(e.code, `Cannot load program file '${path}': ${e.message}`, e);
    }
    throw e;
  }
}
