/**
 * kiln: compile an ONNX model once, then run it, and swap or bake its weights without
 * recompiling. The compiler core is WebAssembly; the `ref` target runs anywhere Deno runs, and
 * the `gpu` target runs kiln's HIP library on an NVIDIA or AMD GPU through Deno FFI.
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
 *
 * Weight replacement: compile once with deferred weights, then bind or bake weight sets.
 *
 * ```ts ignore
 * import { compile, parseOnnx, replaceOnnxExternalWeights, save, WeightSet } from "./mod.ts";
 *
 * const program = compile(await parseOnnx("model.onnx", { deferExternalWeights: true }), "ref");
 * program.bindWeights(await WeightSet.fromOnnxDir(program, "weights_v1")); // validated, copied once
 * program.bindWeights(await WeightSet.fromSafetensors(program, "v2.safetensors")); // swap, no recompile
 * const baked = await replaceOnnxExternalWeights(program, "weights_v1", "ref"); // not finalized
 * await save(baked, "model_v1.kiln");
 * const ready = baked.finalize("ref");
 * ```
 * @module
 */
export {
  type DimRange,
  type FreezeValue,
  type HostLiteral,
  type ParsedModel,
  parseOnnx,
  type ParseOptions,
  readTensorProto,
  type ValueInfo,
} from "./core/onnx/import.ts";
export type {
  Attrs,
  AttrValue,
  DType,
  ExternalDataRef,
  GraphBuilder,
  ModuleBuilder,
  TensorValue,
  ValueRef,
} from "./core/ir/builder.ts";
export {
  type AdapterReport,
  type BindReport,
  compile,
  type CompileOptions,
  deserializeProgram,
  type EvalOptions,
  GPU_PASSES,
  type ProfileReport,
  Program,
  type ProgramInfo,
  REF_PASSES,
  type WeightInfo,
} from "./core/program.ts";
export type {
  BindPhases,
  DnnReport,
  FusionReport,
  GpuOptions,
  GraphReport,
  HostNode,
  NodeTime,
  PrecisionReport,
  StagingPhases,
  TargetName,
  WeightDelta,
} from "./core/targets/target.ts";
export { Adapter, type AdapterFactors, type AdapterOptions } from "./core/weights/adapter.ts";
export type { DeviceOptions } from "./ffi/device.ts";
export type { FileRange } from "./core/io.ts";
export { TARGET_NAMES } from "./core/targets/registry.ts";
export { type GpuDevice, type GpuLibraryInfo, gpuLibraryInfo } from "./ffi/library.ts";
export { BakedProgram, type BakeOptions, loadWeightSet, replaceOnnxExternalWeights } from "./core/bake.ts";
export {
  httpRangeReader,
  type NameRules,
  type RangeReader,
  type SafetensorsSource,
  type WeightCast,
  WeightSet,
  WeightSetError,
  type WeightSetOptions,
  type WeightSpec,
  type WeightTensor,
} from "./core/weights/weight_set.ts";
export {
  readSafetensorsIndex,
  type SafetensorsEntry,
  SafetensorsError,
  type SafetensorsIndex,
  writeSafetensors,
} from "./core/weights/safetensors.ts";
export type { ByteSource } from "./core/source.ts";
export { type Diagnostic, KilnError, type KilnErrorCode, type KilnErrorContext } from "./core/errors.ts";
export { load, type LoadOptions, save } from "./core/save_load.ts";
export type { DynamicSpec, SpecializationInfo } from "./core/dynamic.ts";
export { externalizeOnnx, type ExternalizeOptions, type ExternalizeReport } from "./core/onnx/externalize.ts";
export {
  type ExternalFileSummary,
  type OnnxSummary,
  type OnnxValueSummary,
  summarizeOnnx,
} from "./core/onnx/summary.ts";
export { generateInputs, measureEvals, type PerfOptions, type PerfReport } from "./core/perf.ts";
export { NpyError, readNpy, writeNpy } from "./core/npy.ts";
export type { DTypeName, Tensor, TypedArray } from "./core/tensor.ts";
export { castFloats } from "./core/tensor.ts";
export { KILN_VERSION } from "./core/version.ts";
export { releaseCoreMemory } from "./core/engine.ts";
export { WorkerProgram, type WorkerProgramOptions, type WorkerWeights } from "./core/worker.ts";
