/**
 * ONNX import: decodes a ModelProto with the generated static protobufjs module and builds
 * kiln's IR through the core's `GraphBuilder` (main module + one submodule per subgraph).
 *
 * - graph inputs (minus initializers) -> `param`, dims from the ValueInfo and `inputDims`
 * - `constantInputs` and initializers -> `literal` (small) or `hostLiteral` (large)
 * - external initializers -> read in ranges, or, with `deferExternalWeights`,
 *   `externalWeights` leaves (except the small ones the compiler needs as constants)
 * - Constant nodes -> literals; attributes by name; GRAPH attributes -> submodules whose
 *   outer-scope names resolve to the parent's values
 * - calls of model-local functions (ModelProto.functions) -> their bodies, inlined
 * - nodes of any other domain, non-tensor values and element types kiln does not store
 *   (string, float8, int4, complex) -> KilnError naming the node or tensor
 * @module
 */
import { readRegular } from "../fs.ts";
import { GraphBuilder } from "../ir/builder.ts";
import { importError } from "./errors.ts";
import type { GraphBuilderLike, ParsedModel, ParseOptions } from "./import_types.ts";
import { Importer } from "./importer.ts";
import { onnx } from "./onnx_pb.js";
import { host } from "../host.ts";
import { byteSourceName, isByteSource, readByteSource } from "../source.ts";
import { throwIfAborted } from "../errors.ts";
import { coreReady } from "../engine.ts";
import { fileUrlPath, paths } from "../path.ts";

export type {
  DimRange,
  GraphBuilderLike,
  HostLiteral,
  ParsedModel,
  ParseOptions,
  ValueInfo,
} from "./import_types.ts";
export type { FreezeValue } from "./freeze.ts";
export { readTensorProto } from "./tensor_proto.ts";

/**
 * Parses an ONNX model (a path, a `file:` URL, the model's bytes, a `Blob`, a fetch `Response` or an
 * `http(s):` URL, fetched) into kiln's IR. A model given other than by path has no folder: its
 * external data is read from `options.baseDir` when given, else deferred weights are bound later.
 * @example
 * ```ts ignore
 * const model = await parseOnnx("gpt2.onnx", { inputDims: { ids: [1, 128] }, deferExternalWeights: true });
 * const program = compile(model);
 * ```
 */
export async function parseOnnx(
  source: string | URL | Uint8Array | Blob | Response,
  options: ParseOptions = {},
): Promise<ParsedModel> {
  let bytes: Uint8Array;
  let modelPath: string | undefined;
  let baseDir = options.baseDir;
  let name = "<bytes>";
  throwIfAborted(options.signal, "Parsing the ONNX model");
  await coreReady(); // compile() then finds the WebAssembly core compiled
  const fromBytes = isByteSource(source);
  if (fromBytes) {
    // bytes, a Blob, a Response or an http(s) URL: no folder for external data unless baseDir says one
    name = byteSourceName(source);
    bytes = await readByteSource(source, "ONNX model");
  } else {
    modelPath = _absolutePath(source as string | URL);
    try {
      bytes = await readRegular(modelPath, "ONNX model");
    } catch (e) {
      // "Cannot read ONNX model '/m.onnx': does not exist" / "...: is a directory, not a regular file"
      const why = (e as Error).message.replace(`ONNX model '${modelPath}' `, "");
      throw importError(`Cannot read ONNX model '${modelPath}': ${why}`, {}, "io");
    }
    baseDir = paths.dirname(modelPath);
  }
  throwIfAborted(options.signal, "Parsing the ONNX model");
  const model = decodeModel(bytes, modelPath ?? name);
  const opset = modelOpset(model);
  const graph = new GraphBuilder(opset);
  const parsed = await importModel(model, graph, { ...options, baseDir }, fromBytes);
  return { ...parsed, graph, modelPath };
}

/** Decodes ModelProto bytes; `what` names the source in errors. */
export function decodeModel(bytes: Uint8Array, what = "<bytes>"): onnx.ModelProto {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw importError(`Cannot decode ONNX model '${what}': ${(e as Error).message}`);
  }
  if (!model.graph) throw importError(`ONNX model '${what}' has no graph`);
  return model;
}

/** The model's default-domain ("" or "ai.onnx") opset version. */
export function modelOpset(model: onnx.IModelProto): number {
  for (const o of model.opset_import ?? []) {
    if (o.domain === "" || o.domain === "ai.onnx" || o.domain == null) {
      const v = o.version ?? 0;
      if (typeof v !== "number" || v < 1) throw importError(`ONNX model has an invalid opset version '${v}'`);
      return v;
    }
  }
  if (typeof model.ir_version === "number" && model.ir_version < 3) return 1;
  const other = (model.graph?.node ?? []).find((n) => n.domain && n.domain !== "ai.onnx");
  if (other) {
    const nodeName = other.name || `${other.op_type}_${model.graph!.node!.indexOf(other)}`;
    throw importError(
      `Node '${nodeName}' (${other.op_type}) is in domain '${other.domain}'; kiln supports only the default ONNX domain`,
      { node: nodeName, op: other.op_type ?? "" },
    );
  }
  throw importError("ONNX model imports no default-domain opset (opset_import has no '' or 'ai.onnx' entry)");
}

/**
 * Builds a decoded model into `graph` (the part of `parseOnnx` after decoding). `fromBytes`:
 * the caller's buffer backs the decoded tensors, so raw data is copied rather than viewed.
 */
export async function importModel(
  model: onnx.IModelProto,
  graph: GraphBuilderLike,
  options: ParseOptions = {},
  fromBytes = true,
): Promise<Omit<ParsedModel, "graph" | "modelPath">> {
  const imp = new Importer(model, options, fromBytes);
  try {
    await imp.readExternal();
  } finally {
    imp.reader?.close();
  }
  imp.buildMain(graph.main);
  return {
    hostLiterals: imp.hostLiterals,
    inputs: imp.inputs,
    outputs: imp.outputs,
    opset: graph.opset,
    fixedWeights: imp.fixedWeights,
    deferredWeights: imp.deferredWeights,
  };
}

/** An absolute file path from a path string or a `file:` URL. */
function _absolutePath(source: string | URL): string {
  let p: string;
  if (source instanceof URL || source.startsWith("file:")) {
    const url = source instanceof URL ? source : new URL(source);
    if (url.protocol !== "file:") {
      throw importError(`Cannot read ONNX model '${url.href}': only file: URLs are supported`);
    }
    p = fileUrlPath(url);
  } else {
    p = source;
  }
  return paths.absolute(p, host.cwd());
}
