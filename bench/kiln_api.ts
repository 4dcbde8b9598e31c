/**
 * The kiln API as the benchmark uses it: types from the core, modules loaded at run time so the
 * peers still run (and the report says why kiln did not) while the core is incomplete or broken.
 * @module
 */
import type * as KilnImportModule from "../core/onnx/import.ts";
import type * as KilnProgramModule from "../core/program.ts";

export type KilnProgram = KilnProgramModule.Program;
export interface KilnApi {
  parseOnnx: typeof KilnImportModule.parseOnnx;
  compile: typeof KilnProgramModule.compile;
  /** which builds of the core can run here, best first (empty when the core has no variants) */
  variants(): string[];
  /** selects the build that engines created from now on use ("auto": the best) */
  useVariant(v: string): void;
}

export async function loadKiln(): Promise<KilnApi> {
  const importer = await import(new URL("../core/onnx/import.ts", import.meta.url).href);
  const program = await import(new URL("../core/program.ts", import.meta.url).href);
  if (typeof importer.parseOnnx !== "function") throw new Error("core/onnx/import.ts exports no parseOnnx");
  if (typeof program.compile !== "function") throw new Error("core/program.ts exports no compile");
  const engine = await import(new URL("../core/engine.ts", import.meta.url).href).catch(() => ({}));
  const variants = typeof engine.availableCoreVariants === "function"
    ? () => engine.availableCoreVariants() as string[]
    : () => [];
  const useVariant = (v: string) => {
    if (typeof engine.useCoreVariant === "function") engine.useCoreVariant(v);
    else if (v !== "auto") throw new Error(`core/engine.ts cannot select the '${v}' core`);
  };
  return { parseOnnx: importer.parseOnnx, compile: program.compile, variants, useVariant };
}
