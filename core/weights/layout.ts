/**
 * Weight layouts on disk: the weight signature of a model or program file, and writing a
 * weight set in a model's ONNX external-data layout (each tensor at its recorded offset in the
 * file its location names).
 * @module
 */
import { KilnError } from "../errors.ts";
import { readProgramFile } from "../program_file.ts";
import { externalInitializers } from "./random.ts";
import { specsOf, type WeightSpec } from "./weight_set.ts";

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
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new KilnError("io", `Cannot read model '${path}': ${(e as Error).message}`);
  }
  try {
    return specsOf(externalInitializers(bytes).map((t) => ({ ...t, checksum: "" })));
  } catch (e) {
    throw new KilnError(
      "onnx",
      `Cannot read the external initializers of '${path}': ${(e as Error).message}`,
    );
  }
}

/**
 * Writes tensors into `dir` in the ONNX external-data layout of `signature`: each data file
 * is created at the size its furthest range needs, each tensor written at its offset.
 */
export async function writeOnnxDataDir(
  dir: string,
  signature: readonly WeightSpec[],
  bytesOf: (spec: WeightSpec) => Uint8Array,
): Promise<{ path: string; bytes: number }[]> {
  const byFile = new Map<string, WeightSpec[]>();
  for (const s of signature) {
    if (s.location.startsWith("/") || s.location.split(/[\\/]/).includes("..")) {
      throw new KilnError(
        "weights",
        `Weight '${s.name}': location '${s.location}' escapes the output directory`,
      );
    }
    byFile.set(s.location, [...(byFile.get(s.location) ?? []), s]);
  }
  const out: { path: string; bytes: number }[] = [];
  for (const [location, specs] of byFile) {
    const path = `${dir.replace(/\/+$/, "")}/${location}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const size = Math.max(...specs.map((s) => s.offset + (s.length || s.byteLength)));
    using f = await Deno.open(path, { write: true, create: true, truncate: true });
    await f.truncate(size);
    for (const s of [...specs].sort((a, b) => a.offset - b.offset)) {
      const bytes = bytesOf(s);
      if (bytes.byteLength !== s.byteLength) {
        throw new KilnError(
          "weights",
          `Weight '${s.name}' has ${bytes.byteLength} bytes, its signature needs ${s.byteLength}`,
        );
      }
      await f.seek(s.offset, Deno.SeekMode.Start);
      let w = 0;
      while (w < bytes.byteLength) w += await f.write(bytes.subarray(w));
    }
    out.push({ path, bytes: size });
  }
  return out;
}
