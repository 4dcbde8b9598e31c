/**
 * Weight layouts on disk: the weight signature of a model or program file, and writing a
 * weight set in a model's ONNX external-data layout (each tensor at its recorded offset in the
 * file its location names).
 * @module
 */
import { KilnError } from "../errors.ts";
import { ensureDir, joinPath, readRegular, realPathOrUndefined, writeAll, writeAtomic } from "../fs.ts";
import { readProgramFile } from "../program_file.ts";
import { externalInitializers } from "./random.ts";
import { specsOf, type WeightSpec } from "./weight_set.ts";
import { SEEK_START } from "../host.ts";
import { paths } from "../path.ts";

/**
 * The weight signature of a file: an ONNX model (its external initializers) or a `.kiln`
 * program (its deferred weights, from the file's META section; no literal is read).
 */
export async function signatureOfFile(path: string): Promise<WeightSpec[]> {
  if (path.endsWith(".kiln")) {
    const { meta } = await readProgramFile(path, { literals: false });
    const weights = (meta.program?.weights ?? []) as WeightSpec[];
    if (!Array.isArray(weights)) {
      throw new KilnError("format", `Program file '${path}' has no weight signature`);
    }
    return specsOf(weights);
  }
  const bytes = await readRegular(path, "Model");
  try {
    return specsOf(externalInitializers(bytes).map((t) => ({ ...t, checksum: "" })));
  } catch (e) {
    throw new KilnError(
      "onnx",
      `Cannot read the external initializers of '${path}': ${(e as Error).message}`,
    );
  }
}

/** Options of `writeOnnxDataDir`. */
export interface DataDirOptions {
  /**
   * Files that must not be overwritten (real paths): the data files the model itself reads. A
   * write onto one fails unless `force`.
   */
  protect?: ReadonlySet<string>;
  /** Replace protected files anyway (the CLI's `--force`). */
  force?: boolean;
  /** Called after each tensor is written: bytes written so far and in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/**
 * The real paths of the external-data files the ONNX model at `modelPath` reads (those that
 * exist), for `DataDirOptions.protect`.
 */
export async function modelDataFiles(
  modelPath: string,
  signature: readonly WeightSpec[],
): Promise<Set<string>> {
  const dir = paths.dirname(modelPath);
  const out = new Set<string>();
  for (const loc of new Set(signature.map((s) => s.location))) {
    const real = await realPathOrUndefined(joinPath(dir, loc));
    if (real) out.add(real);
  }
  const model = await realPathOrUndefined(modelPath);
  if (model) out.add(model);
  return out;
}

/**
 * Writes tensors into `dir` in the ONNX external-data layout of `signature`: each data file
 * is created at the size its furthest range needs, each tensor written at its offset. Every file
 * is written atomically (a temporary file synced and renamed into place); a file in
 * `options.protect` (a data file the model itself reads) is refused unless `options.force`.
 */
export async function writeOnnxDataDir(
  dir: string,
  signature: readonly WeightSpec[],
  bytesOf: (spec: WeightSpec) => Uint8Array,
  options: DataDirOptions = {},
): Promise<{ path: string; bytes: number }[]> {
  const byFile = new Map<string, WeightSpec[]>();
  for (const s of signature) {
    if (/^([\\/]|[A-Za-z]:)/.test(s.location) || s.location.split(/[\\/]/).includes("..")) {
      throw new KilnError(
        "weights",
        `Weight '${s.name}': location '${s.location}' escapes the output directory`,
      );
    }
    byFile.set(s.location, [...(byFile.get(s.location) ?? []), s]);
  }
  // refuse before anything is written
  for (const location of byFile.keys()) {
    const real = await realPathOrUndefined(joinPath(dir, location));
    if (real && options.protect?.has(real) && !options.force) {
      throw new KilnError(
        "io",
        `Refusing to overwrite '${real}': the model reads its weights from it (write elsewhere, or pass --force to replace it)`,
      );
    }
  }
  const total = signature.reduce((a, s) => a + (s.length || s.byteLength), 0);
  let done = 0;
  const out: { path: string; bytes: number }[] = [];
  for (const [location, specs] of byFile) {
    const path = joinPath(dir, location);
    await ensureDir(paths.dirname(path), "Weight folder");
    const size = Math.max(...specs.map((s) => s.offset + (s.length || s.byteLength)));
    await writeAtomic(path, async (f) => {
      await f.truncate(size);
      for (const s of [...specs].sort((a, b) => a.offset - b.offset)) {
        const bytes = bytesOf(s);
        if (bytes.byteLength !== s.byteLength) {
          throw new KilnError(
            "weights",
            `Weight '${s.name}' has ${bytes.byteLength} bytes, its signature needs ${s.byteLength}`,
          );
        }
        await f.seek(s.offset, SEEK_START);
        await writeAll(f, bytes);
        done += s.byteLength;
        options.onProgress?.(done, total);
      }
    }, "Data file");
    out.push({ path, bytes: size });
  }
  return out;
}
