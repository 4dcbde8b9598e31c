/**
 * kiln: compile an ONNX model once, then run it, and swap or bake its weights without
 * recompiling. The compiler core is WebAssembly; the `ref` target runs anywhere Deno runs.
 *
 * @example
 * ```ts ignore
 * import { compile, parseOnnx, save, load } from "./mod.ts";
 *
 * const model = await parseOnnx("resnet50.onnx", { inputDims: { x: [1, 3, 224, 224] } });
 * const program = compile(model, "ref");
 * const { logits } = await program.eval({ x: { dtype: "float32", dims: [1, 3, 224, 224], data: pixels } });
 * await save(program, "resnet50.kiln");
 * const again = await load("resnet50.kiln"); // finalized, ready to eval
 * ```
 * @module
 */
export { type HostLiteral, parseOnnx, type ParseOptions, type ParsedModel, readTensorProto } from "./core/onnx/import.ts";
export { compile, type CompileOptions, Program } from "./core/program.ts";
export { KilnError } from "./core/errors.ts";
export { load, save } from "./core/save_load.ts";
export { readNpy, writeNpy } from "./core/npy.ts";
export type { DTypeName, Tensor, TypedArray } from "./core/tensor.ts";
export { KILN_VERSION } from "./core/version.ts";
