/**
 * `save` and `load`: a compiled program to and from a `.kiln` file. `load` returns a
 * finalized program (literals in place, ready to eval) without re-running the compiler. A
 * program with deferred weights is saved *weightless*: its weight signature is kept, and a
 * weight set is bound after loading.
 * @module
 */
import { type BakedProgram, type BakeOptions, loadWeightSet } from "./bake.ts";
import { KilnError } from "./errors.ts";
import { withLazyBytes } from "./io.ts";
import type { HostLiteral } from "./onnx/import.ts";
import { deserializeProgram, type Program, programInternals } from "./program.ts";
import { readProgramFile, writeProgramFile } from "./program_file.ts";
import { getTarget } from "./targets/registry.ts";
import type { GpuOptions } from "./targets/target.ts";
import { KILN_VERSION } from "./version.ts";
import { dynamicFromJson, dynamicToJson } from "./dynamic.ts";
import { type WeightSet, WeightSetError } from "./weights/weight_set.ts";
import { coreReady } from "./engine.ts";
import { type ByteSource, byteSourceName, isByteSource, readByteSource } from "./source.ts";

/** Options of `load`. */
export interface LoadOptions extends BakeOptions {
  /**
   * For a weightless program: a weight set to bind right after loading (an ONNX external-data
   * directory, `.safetensors` file(s), or a WeightSet), validated against the program's weight
   * signature. On any problem nothing is returned and the error names the file and tensors.
   */
  weights?: string | string[] | WeightSet;
  /** The gpu target's library, device and memory options (for a program compiled for gpu). */
  gpu?: GpuOptions;
  /** Threads for the ref target's kernels (default: the cores available; see CompileOptions.threads). */
  threads?: number;
}

/**
 * Writes `program` (compiled, or baked and not yet finalized) to `path` as a `.kiln` file. Only
 * the literals its IR uses are stored; a literal that came from a file is copied from it in
 * chunks.
 * @example
 * ```ts ignore
 * await save(compile(await parseOnnx("model.onnx"), "ref"), "model.kiln");
 * ```
 */
export async function save(program: Program | BakedProgram, path: string): Promise<void> {
  const { ir, hostLiterals } = program.serialize();
  // a dynamic program keeps its symbolic program (graph encoding, ranges, keyed inputs)
  const dynamic = "dynamicSpec" in program ? program.dynamicSpec : null;
  const literals = program.usedLiteralIds().map((id) => {
    const l = hostLiterals[id];
    if (!l) {
      throw new KilnError(
        "internal",
        `Cannot save '${path}': the program uses host literal ${id}, which it does not hold`,
      );
    }
    return {
      id,
      name: l.name,
      dtype: l.dtype,
      dims: l.dims,
      get bytes() {
        return l.bytes;
      },
      file: l.file,
    };
  });
  await writeProgramFile(path, {
    target: program.target,
    kilnVersion: KILN_VERSION,
    ir,
    literals,
    weightless: program.weights.length > 0,
    program: {
      inputs: program.inputs,
      outputs: program.outputs,
      weights: program.weightSignature(),
      fixedWeights: program.fixedWeights,
      ...(dynamic ? { dynamic: dynamicToJson(dynamic) } : {}),
    },
  });
}

/**
 * Reads a `.kiln` file and returns the program finalized for its target. Corrupt, truncated
 * and future-version files fail with a KilnError (code "format") naming the file. With
 * `weights`, a weightless program is refitted on load: the weight set is read, validated and
 * bound before the program is returned. On gpu the literals stream from their aligned offsets
 * in the file straight to the device, their SHA-1s checked as they are read. The file may also
 * be given as bytes, a `Blob`, a fetch `Response` or an `http(s):` URL (read whole; its literals
 * are then uploaded from memory).
 * @example
 * ```ts ignore
 * const program = await load("model.weightless.kiln", { weights: "weights_v2/" });
 * ```
 */
export async function load(source: string | ByteSource, options: LoadOptions = {}): Promise<Program> {
  const path = isByteSource(source) ? byteSourceName(source) : source;
  const mem = isByteSource(source)
    ? { name: path, bytes: await readByteSource(source, "Program file") }
    : undefined;
  const program = await _load(mem ?? path, options.gpu ?? {}, options.threads);
  if (options.weights === undefined) return program;
  try {
    await program.bindWeights(await loadWeightSet(program, options.weights, options), {
      partial: options.partial,
    });
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

async function _load(
  source: string | { name: string; bytes: Uint8Array },
  gpu: GpuOptions,
  threads?: number,
): Promise<Program> {
  await coreReady();
  const path = typeof source === "string" ? source : source.name;
  const head = await readProgramFile(source, { literals: false });
  let target;
  try {
    target = getTarget(head.meta.target);
  } catch {
    throw new KilnError(
      "format",
      `Program file '${path}' targets '${head.meta.target}', which this kiln cannot run`,
    );
  }
  // a target that reads files gets the literals as checked file ranges; the others (and a file
  // held in memory) get bytes
  const ranges = target.readsFiles && typeof source === "string";
  const { meta, ir, literals } = ranges ? head : await readProgramFile(source);
  const hostLiterals: HostLiteral[] = [];
  meta.literals.forEach((e, i) => {
    const id = typeof e.id === "number" ? e.id : i;
    const lit = { name: e.name, dtype: e.dtype, dims: e.dims };
    hostLiterals[id] = ranges
      ? withLazyBytes(lit, { path, offset: e.offset, length: e.length, sha1: e.sha1 })
      : { ...lit, bytes: literals[i] };
  });
  try {
    const dyn = meta.program?.dynamic;
    const dynamic = dyn ? dynamicFromJson(dyn, path) : undefined;
    const program = deserializeProgram(ir, hostLiterals, target.name, { gpu, dynamic, threads });
    const fixed = meta.program?.fixedWeights;
    if (Array.isArray(fixed)) programInternals(program).setFixedWeights(fixed.map(String));
    return program;
  } catch (e) {
    if (e instanceof KilnError) {
      throw new KilnError(e.code, `Cannot load program file '${path}': ${e.message}`, e);
    }
    throw e;
  }
}
