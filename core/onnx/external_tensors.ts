/**
 * Which tensors of a model keep their bytes in external files, and which of those are read at
 * parse time: all of them, or with `deferExternalWeights` only the ones that are not
 * initializers or that the compiler needs as constants (shape inputs, If conditions); then
 * reading them, one pass over each file in offset order.
 * @module
 */
import type { ExternalDataRef } from "../ir/builder.ts";
import type { FileRange } from "../io.ts";
import { dtypeFromOnnx, dtypeSize, elementCount } from "../tensor.ts";
import { type ExternalDataReader, parseExternalEntries, resolveExternalRef } from "./external_data.ts";
import type { ParseOptions } from "./import_types.ts";
import type { onnx } from "./onnx_pb.js";
import { checkElementType, isExternal, tensorDims } from "./tensor_proto.ts";
import { throwIfAborted } from "../errors.ts";

/**
 * Inputs whose values decide shapes or control flow, by op: when such an input is an external
 * initializer, it is read at parse time and stays a literal even with `deferExternalWeights`.
 */
const _CONSTANT_INPUTS: Record<string, number[]> = {
  Reshape: [1],
  Slice: [1, 2, 3, 4],
  Expand: [1],
  Tile: [1],
  ConstantOfShape: [0],
  Range: [0, 1, 2],
  Pad: [1, 3],
  Resize: [1, 2, 3],
  Upsample: [1],
  TopK: [1],
  Split: [1],
  Squeeze: [1],
  Unsqueeze: [1],
  ReduceSum: [1],
  ReduceMean: [1],
  ReduceMax: [1],
  ReduceMin: [1],
  ReduceProd: [1],
  ReduceL1: [1],
  ReduceL2: [1],
  ReduceLogSum: [1],
  ReduceLogSumExp: [1],
  ReduceSumSquare: [1],
  OneHot: [1],
  CumSum: [1],
  Trilu: [1],
  AffineGrid: [1],
  If: [0],
  Loop: [0, 1],
};

/** A tensor whose bytes come from an external file. */
export interface ExternalTensor {
  name: string;
  ref: ExternalDataRef;
  /** read at parse time (not deferred) */
  read: boolean;
}

/** The external tensors of a model, found by `findExternalTensors`. */
export interface ExternalTensors {
  /** external tensors (by proto identity) -> reference and whether they are read now */
  tensors: Map<onnx.ITensorProto, ExternalTensor>;
  /** With `deferExternalWeights`: external initializers read now because the compiler needs them as constants. */
  fixedWeights: string[];
  /** With `deferExternalWeights`: the external initializers left as deferred leaves. */
  deferredWeights: string[];
}

/** Finds every external tensor of the model and decides which are read now. */
export function findExternalTensors(
  model: onnx.IModelProto,
  functions: Map<string, onnx.IFunctionProto>,
  opts: ParseOptions,
): ExternalTensors {
  const found: ExternalTensors = { tensors: new Map(), fixedWeights: [], deferredWeights: [] };
  const constNames = new Set<string>();
  _collectConstantInputs(model.graph!.node ?? [], functions, constNames);
  const inlineOver = opts.deferInlineWeightsOver;
  const visit = (t: onnx.ITensorProto, isInitializer: boolean) => {
    if (!isExternal(t)) {
      // an inline initializer deferred by size: a weight without a file location
      if (inlineOver === undefined || !isInitializer) return;
      const name = t.name ?? "";
      checkElementType(t.data_type ?? 0, `Tensor '${name}'`);
      const size = elementCount(tensorDims(t, `Tensor '${name}'`)) * dtypeSize(dtypeFromOnnx(t.data_type!));
      if (size < inlineOver || size === 0 || constNames.has(name)) return;
      found.deferredWeights.push(name);
      found.tensors.set(t, {
        name,
        ref: { location: "", offset: 0, length: size, checksum: "" },
        read: false,
      });
      return;
    }
    const name = t.name ?? "";
    checkElementType(t.data_type ?? 0, `Tensor '${name}'`);
    const dims = tensorDims(t, `Tensor '${name}'`);
    const size = elementCount(dims) * dtypeSize(dtypeFromOnnx(t.data_type!));
    const ref = resolveExternalRef(name, parseExternalEntries(name, t.external_data ?? []), size);
    const fixed = constNames.has(name);
    const read = !opts.deferExternalWeights || !isInitializer || fixed;
    if (opts.deferExternalWeights && isInitializer) {
      (fixed ? found.fixedWeights : found.deferredWeights).push(name);
    }
    found.tensors.set(t, { name, ref, read });
  };
  walkTensors(model.graph!, visit);
  return found;
}

/**
 * Reads the tensors of `toRead` in ranges into `bytes`, reporting progress to `opts.onProgress`.
 * A tensor over `lazyOver` bytes (one that becomes a host literal) is checked but not read: its
 * file range goes into `ranges`, and the target reads it where it goes (the ref target straight
 * into its core's memory), so its bytes cross no JavaScript buffer.
 */
export async function readExternalTensors(
  reader: ExternalDataReader,
  toRead: [onnx.ITensorProto, ExternalTensor][],
  bytes: Map<onnx.ITensorProto, Uint8Array>,
  opts: ParseOptions,
  ranges?: Map<onnx.ITensorProto, FileRange>,
  lazyOver = Infinity,
): Promise<void> {
  // One pass over each file, in offset order.
  toRead.sort(([, a], [, b]) =>
    a.ref.location < b.ref.location ? -1 : a.ref.location > b.ref.location ? 1 : a.ref.offset - b.ref.offset
  );
  const total = toRead.reduce((a, [, e]) => a + e.ref.length, 0);
  let done = 0;
  for (const [proto, e] of toRead) {
    if (ranges && e.ref.length > lazyOver) ranges.set(proto, await reader.locate(e.name, e.ref));
    else bytes.set(proto, await reader.read(e.name, e.ref));
    done += e.ref.length;
    opts.onProgress?.(done, total);
    throwIfAborted(opts.signal, "Parsing the ONNX model");
  }
}

/** Visits every tensor of a graph and its subgraphs: initializers (isInitializer) and attribute tensors. */
export function walkTensors(
  g: onnx.IGraphProto,
  visit: (t: onnx.ITensorProto, isInitializer: boolean) => void,
): void {
  for (const t of g.initializer ?? []) visit(t, true);
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) visit(a.t, false);
      for (const t of a.tensors ?? []) visit(t, false);
      if (a.g) walkTensors(a.g, visit);
      for (const sg of a.graphs ?? []) walkTensors(sg, visit);
    }
  }
}

/** Names used as inputs whose values the compiler needs (see `_CONSTANT_INPUTS`), in all subgraphs. */
function _collectConstantInputs(
  nodes: onnx.INodeProto[],
  functions: Map<string, onnx.IFunctionProto>,
  out: Set<string>,
  calling: Set<onnx.IFunctionProto> = new Set(),
): void {
  for (const n of nodes) {
    const idx = _CONSTANT_INPUTS[n.op_type ?? ""];
    if (idx) { for (const i of idx) if (n.input?.[i]) out.add(n.input[i]); }
    const f = functions.get(`${n.domain ?? ""}:${n.op_type ?? ""}:${n.overload ?? ""}`);
    if (f && !calling.has(f)) {
      // a caller's value feeding a function input that the body needs as a constant
      const inner = new Set<string>();
      calling.add(f);
      _collectConstantInputs(f.node ?? [], functions, inner, calling);
      calling.delete(f);
      (f.input ?? []).forEach((formal, i) => {
        if (inner.has(formal) && n.input?.[i]) out.add(n.input[i]);
      });
    }
    for (const a of n.attribute ?? []) {
      if (a.g) _collectConstantInputs(a.g.node ?? [], functions, out, calling);
      for (const sg of a.graphs ?? []) _collectConstantInputs(sg.node ?? [], functions, out, calling);
    }
  }
}
