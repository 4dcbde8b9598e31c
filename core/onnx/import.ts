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
import { GraphBuilder } from "../ir/builder.ts";
import type {
  Attrs,
  AttrValue,
  ExternalDataRef,
  ModuleBuilder,
  TensorValue,
  ValueRef,
} from "../ir/builder.ts";
import {
  describe,
  dtypeFromOnnx,
  type DTypeName,
  dtypeSize,
  elementCount,
  onnxCode,
  type Tensor,
  tensorBytes,
} from "../tensor.ts";
import { importError, inputError } from "./errors.ts";
import { ExternalDataReader, parseExternalEntries, resolveExternalRef } from "./external_data.ts";
import { onnx } from "./onnx_pb.js";
import { checkElementType, isExternal, tensorDims, tensorProtoData } from "./tensor_proto.ts";

export { readTensorProto } from "./tensor_proto.ts";

/** Options of `parseOnnx`. */
export interface ParseOptions {
  /** Static dims for graph inputs (fills symbolic dims; must agree with fixed ones). */
  inputDims?: Record<string, number[]>;
  /** Graph inputs bound as compile-time constants (literals); they are no longer inputs. */
  constantInputs?: Record<string, Tensor>;
  /** Issue 3 (weight replacement): external initializers become onnx_external_weights leaves. */
  deferExternalWeights?: boolean;
  /**
   * Folder that external-data locations are relative to when the model is given as bytes
   * (default: none, so a byte model with external data is an error). Paths and URLs use the
   * model's own folder.
   */
  baseDir?: string;
  /** Initializers up to this many bytes become `literal`s (foldable); larger ones host literals. Default 65536. */
  literalLimit?: number;
  /** Called after each external tensor is read: bytes read so far and in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** A graph input or output: name, element type and static dims. */
export interface ValueInfo {
  /** the name in the model */
  name: string;
  /** element type */
  dtype: DTypeName;
  /** static dims */
  dims: number[];
}

/** A literal whose bytes stay on the host; `hostLiteral` ids index `ParsedModel.hostLiterals`. */
export interface HostLiteral {
  /** the initializer's name */
  name: string;
  /** element type */
  dtype: DTypeName;
  /** dims */
  dims: number[];
  /** its bytes, little-endian, row-major */
  bytes: Uint8Array;
}

/** The graph builder the importer drives (the core's `GraphBuilder`). */
export interface GraphBuilderLike {
  /** opset of the default ONNX domain */
  readonly opset: number;
  /** the main module */
  readonly main: ModuleBuilder;
}

/** The result of `parseOnnx`: the built graph plus what the host keeps. */
export interface ParsedModel {
  /** core/ir/builder.ts GraphBuilder; main module = graph.main */
  graph: GraphBuilder;
  /** bytes of literals kept on the host (hostLiteral ids index this) */
  hostLiterals: HostLiteral[];
  /** graph inputs that remain inputs, with resolved dims */
  inputs: ValueInfo[];
  /** graph output names, in order */
  outputs: { name: string }[];
  /** default-domain opset */
  opset: number;
  /** absolute path when parsed from a file */
  modelPath?: string;
  /**
   * With `deferExternalWeights`: external initializers read at parse time because the compiler
   * needs them as constants (shape inputs, If conditions); they stay literals.
   */
  fixedWeights: string[];
  /** With `deferExternalWeights`: the names of the external initializers left as deferred leaves. */
  deferredWeights: string[];
}

const _DEFAULT_LITERAL_LIMIT = 64 * 1024;

/** TypeProto value kinds other than tensors, for messages. */
const _TYPE_KINDS: Record<string, string> = {
  sequence_type: "a sequence",
  optional_type: "an optional",
  map_type: "a map",
  sparse_tensor_type: "a sparse tensor",
};

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

/**
 * Parses an ONNX model (a path, a `file:` URL or the model's bytes) into kiln's IR.
 * @example
 * ```ts ignore
 * const model = await parseOnnx("gpt2.onnx", { inputDims: { ids: [1, 128] }, deferExternalWeights: true });
 * const program = compile(model);
 * ```
 */
export async function parseOnnx(
  source: string | URL | Uint8Array,
  options: ParseOptions = {},
): Promise<ParsedModel> {
  let bytes: Uint8Array;
  let modelPath: string | undefined;
  let baseDir = options.baseDir;
  if (source instanceof Uint8Array) {
    bytes = source;
  } else {
    modelPath = _absolutePath(source);
    try {
      bytes = await Deno.readFile(modelPath);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound ? "does not exist" : (e as Error).message;
      throw importError(`Cannot read ONNX model '${modelPath}': ${why}`, {}, "io");
    }
    baseDir = modelPath.slice(0, modelPath.lastIndexOf("/")) || "/";
  }
  const model = decodeModel(bytes, modelPath ?? "<bytes>");
  const opset = modelOpset(model);
  const graph = new GraphBuilder(opset);
  const parsed = await importModel(model, graph, { ...options, baseDir }, source instanceof Uint8Array);
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
  const imp = new _Importer(model, options, fromBytes);
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

/** Name -> value, with the enclosing graph's scope as parent (ONNX outer-scope references). */
class _Scope {
  readonly names = new Map<string, ValueRef>();
  constructor(readonly parent: _Scope | null) {}
  get(name: string): ValueRef | undefined {
    return this.names.get(name) ?? this.parent?.get(name);
  }
}

/** A tensor whose bytes come from an external file. */
interface _ExternalTensor {
  name: string;
  ref: ExternalDataRef;
  /** read at parse time (not deferred) */
  read: boolean;
}

class _Importer {
  readonly hostLiterals: HostLiteral[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: { name: string }[] = [];
  readonly fixedWeights: string[] = [];
  readonly deferredWeights: string[] = [];
  reader: ExternalDataReader | null = null;
  readonly #model: onnx.IModelProto;
  readonly #opts: ParseOptions;
  readonly #copyRaw: boolean;
  readonly #limit: number;
  /** external tensors (by proto identity) -> reference and whether they are read now */
  readonly #external = new Map<onnx.ITensorProto, _ExternalTensor>();
  readonly #bytes = new Map<onnx.ITensorProto, Uint8Array>();
  /** model-local functions by `domain:name:overload` */
  readonly #functions = new Map<string, onnx.IFunctionProto>();
  /** functions being inlined (recursion guard) */
  readonly #inlining = new Set<string>();

  constructor(model: onnx.IModelProto, opts: ParseOptions, copyRaw: boolean) {
    this.#model = model;
    this.#opts = opts;
    this.#copyRaw = copyRaw;
    this.#limit = opts.literalLimit ?? _DEFAULT_LITERAL_LIMIT;
    for (const f of model.functions ?? []) {
      this.#functions.set(`${f.domain ?? ""}:${f.name ?? ""}:${f.overload ?? ""}`, f);
    }
  }

  /** Finds every external tensor, decides which are read now, reads those in ranges. */
  async readExternal(): Promise<void> {
    const constNames = new Set<string>();
    _collectConstantInputs(this.#model.graph!.node ?? [], this.#functions, constNames);
    const visit = (t: onnx.ITensorProto, isInitializer: boolean) => {
      if (!isExternal(t)) return;
      const name = t.name ?? "";
      checkElementType(t.data_type ?? 0, `Tensor '${name}'`);
      const dims = tensorDims(t, `Tensor '${name}'`);
      const size = elementCount(dims) * dtypeSize(dtypeFromOnnx(t.data_type!));
      const ref = resolveExternalRef(name, parseExternalEntries(name, t.external_data ?? []), size);
      const fixed = constNames.has(name);
      const read = !this.#opts.deferExternalWeights || !isInitializer || fixed;
      if (this.#opts.deferExternalWeights && isInitializer) {
        (fixed ? this.fixedWeights : this.deferredWeights).push(name);
      }
      this.#external.set(t, { name, ref, read });
    };
    _walkTensors(this.#model.graph!, visit);
    const toRead = [...this.#external.entries()].filter(([, e]) => e.read);
    if (toRead.length === 0) return;
    if (this.#opts.baseDir === undefined) {
      throw importError(
        `Tensor '${toRead[0][1].name}' keeps its data in external file '${toRead[0][1].ref.location}', ` +
          "but the model was given as bytes: pass a path, or options.baseDir",
      );
    }
    this.reader = new ExternalDataReader(this.#opts.baseDir);
    // One pass over each file, in offset order.
    toRead.sort(([, a], [, b]) =>
      a.ref.location < b.ref.location ? -1 : a.ref.location > b.ref.location ? 1 : a.ref.offset - b.ref.offset
    );
    const total = toRead.reduce((a, [, e]) => a + e.ref.length, 0);
    let done = 0;
    for (const [proto, e] of toRead) {
      this.#bytes.set(proto, await this.reader.read(e.name, e.ref));
      done += e.ref.length;
      this.#opts.onProgress?.(done, total);
    }
  }

  buildMain(mod: ModuleBuilder): void {
    const g = this.#model.graph!;
    const initNames = new Set((g.initializer ?? []).map((t) => t.name ?? ""));
    const graphInputs = (g.input ?? []).filter((v) => !initNames.has(v.name ?? ""));
    const inputNames = graphInputs.map((v) => v.name ?? "");
    const list = inputNames.map((n) => `'${n}'`).join(", ") || "none";
    for (const key of Object.keys(this.#opts.inputDims ?? {})) {
      if (!inputNames.includes(key)) {
        throw inputError(`inputDims names '${key}', which is not a graph input (inputs: ${list})`);
      }
    }
    for (const key of Object.keys(this.#opts.constantInputs ?? {})) {
      if (!inputNames.includes(key)) {
        throw inputError(`constantInputs names '${key}', which is not a graph input (inputs: ${list})`);
      }
    }
    const scope = new _Scope(null);
    for (const v of graphInputs) {
      const name = v.name ?? "";
      const constant = this.#opts.constantInputs?.[name];
      if (constant) {
        this.#checkConstantInput(v, constant);
        scope.names.set(
          name,
          this.#constant(mod, name, {
            dtype: onnxCode(constant.dtype),
            dims: [...constant.dims],
            bytes: tensorBytes(constant).slice(),
          }),
        );
        continue;
      }
      const info = this.#inputInfo(v, this.#opts.inputDims?.[name]);
      this.inputs.push(info);
      scope.names.set(name, mod.param(name, onnxCode(info.dtype), info.dims));
    }
    this.#buildGraph(mod, g, scope, true);
    for (const o of g.output ?? []) this.outputs.push({ name: o.name ?? "" });
  }

  /** Initializers, nodes and outputs of a graph into `mod` (inputs already bound in `scope`). */
  #buildGraph(mod: ModuleBuilder, g: onnx.IGraphProto, scope: _Scope, isMain: boolean): void {
    const gname = g.name || (isMain ? "main" : mod.name);
    if ((g.sparse_initializer ?? []).length > 0) {
      throw importError(`Graph '${gname}' has sparse initializers, which kiln does not support`);
    }
    for (const t of g.initializer ?? []) {
      const name = t.name ?? "";
      if (isMain && scope.names.has(name)) continue; // a constantInputs binding overrides it
      scope.names.set(name, this.#tensor(mod, t, name));
    }
    const nodes = g.node ?? [];
    for (let i = 0; i < nodes.length; i++) this.#node(mod, nodes[i], i, scope, gname);
    const values: ValueRef[] = [];
    const names: string[] = [];
    for (const o of g.output ?? []) {
      const name = o.name ?? "";
      const v = scope.get(name);
      if (v === undefined) {
        throw importError(
          `Graph '${gname}' output '${name}' is not produced by any node, input or initializer`,
        );
      }
      values.push(v);
      names.push(name);
    }
    mod.ret(values, names);
  }

  #node(
    mod: ModuleBuilder,
    n: onnx.INodeProto,
    index: number,
    scope: _Scope,
    gname: string,
    prefix = "",
  ): void {
    const op = n.op_type ?? "";
    const nodeName = prefix + (n.name || `${op}_${index}`);
    const ctx = { node: nodeName, op };
    const domain = n.domain ?? "";
    const fn = this.#functions.get(`${domain}:${op}:${n.overload ?? ""}`);
    if (fn) return this.#inline(mod, n, fn, nodeName, scope, gname);
    if (domain !== "" && domain !== "ai.onnx") {
      throw importError(
        `Node '${nodeName}' (${op}) is in domain '${domain}'; kiln supports only the default ONNX domain`,
        ctx,
      );
    }
    const outputs = n.output ?? [];
    if (op === "Constant") {
      if (outputs.length !== 1 || !outputs[0]) {
        throw importError(`Constant node '${nodeName}' must have one output`, ctx);
      }
      scope.names.set(outputs[0], this.#constantNode(mod, n, nodeName, prefix + outputs[0]));
      return;
    }
    const inputs: (ValueRef | null)[] = [];
    for (const name of n.input ?? []) {
      if (name === "") {
        inputs.push(null);
        continue;
      }
      const v = scope.get(name);
      if (v === undefined) {
        throw importError(
          `Node '${nodeName}' (${op}) reads '${name}', which no earlier node, input or initializer of graph '${gname}' defines`,
          ctx,
        );
      }
      inputs.push(v);
    }
    const attrs: Attrs = {};
    for (const a of n.attribute ?? []) {
      const aname = a.name ?? "";
      attrs[aname] = this.#attr(mod, a, nodeName, op, scope);
    }
    const refs = mod.node(op, inputs, attrs, outputs.length, nodeName);
    for (let k = 0; k < outputs.length; k++) if (outputs[k] !== "") scope.names.set(outputs[k], refs[k]);
  }

  /**
   * Inlines a call of a model-local function: its body's nodes go into `mod`, named
   * `<call node>/<body node>`, in a scope that sees only the function's inputs; attributes that
   * refer to the caller's (`ref_attr_name`) take the caller's value or the function's default.
   */
  #inline(
    mod: ModuleBuilder,
    n: onnx.INodeProto,
    f: onnx.IFunctionProto,
    nodeName: string,
    scope: _Scope,
    gname: string,
  ): void {
    const key = `${f.domain ?? ""}:${f.name ?? ""}`;
    const ctx = { node: nodeName, op: n.op_type ?? "" };
    if (this.#inlining.has(key)) {
      throw importError(`Function '${key}' calls itself (node '${nodeName}')`, ctx);
    }
    const fscope = new _Scope(null);
    const ins = n.input ?? [];
    (f.input ?? []).forEach((formal, i) => {
      const actual = ins[i];
      if (!actual) return; // omitted optional input: undefined inside the body
      const v = scope.get(actual);
      if (v === undefined) {
        throw importError(
          `Node '${nodeName}' (${n.op_type}) reads '${actual}', which no earlier node, input or initializer of graph '${gname}' defines`,
          ctx,
        );
      }
      fscope.names.set(formal, v);
    });
    const given = new Map((n.attribute ?? []).map((a) => [a.name ?? "", a]));
    const defaults = new Map((f.attribute_proto ?? []).map((a) => [a.name ?? "", a]));
    this.#inlining.add(key);
    try {
      (f.node ?? []).forEach((body, i) => {
        const attribute: onnx.IAttributeProto[] = [];
        for (const a of body.attribute ?? []) {
          if (!a.ref_attr_name) {
            attribute.push(a);
            continue;
          }
          const src = given.get(a.ref_attr_name) ?? defaults.get(a.ref_attr_name);
          if (src) attribute.push({ ...src, name: a.name });
        }
        this.#node(mod, { ...body, attribute }, i, fscope, `function ${key}`, `${nodeName}/`);
      });
    } finally {
      this.#inlining.delete(key);
    }
    const outs = n.output ?? [];
    (f.output ?? []).forEach((formal, i) => {
      if (!outs[i]) return;
      const v = fscope.get(formal);
      if (v === undefined) {
        throw importError(`Function '${key}' does not produce its output '${formal}'`, ctx);
      }
      scope.names.set(outs[i], v);
    });
  }

  #attr(mod: ModuleBuilder, a: onnx.IAttributeProto, nodeName: string, op: string, scope: _Scope): AttrValue {
    const T = onnx.AttributeProto.AttributeType;
    const name = a.name ?? "";
    const what = `Attribute '${name}' of node '${nodeName}' (${op})`;
    const type = a.type || _inferAttrType(a);
    switch (type) {
      case T.FLOAT:
        return { f: a.f ?? 0 };
      case T.INT:
        return { i: a.i ?? 0 };
      case T.STRING:
        return { s: _utf8(a.s) };
      case T.TENSOR:
        if (!a.t) throw importError(`${what} has type TENSOR but holds no tensor`, { node: nodeName, op });
        return { t: this.#tensorValue(a.t, `${what}`) };
      case T.GRAPH: {
        if (!a.g) throw importError(`${what} has type GRAPH but holds no graph`, { node: nodeName, op });
        const sub = mod.submodule(`${nodeName}.${name}`);
        this.#subgraph(sub, a.g, scope);
        return { g: sub.index };
      }
      case T.FLOATS:
        return { floats: Array.from(a.floats ?? []) };
      case T.INTS:
        return { ints: Array.from(a.ints ?? []) };
      case T.STRINGS:
        return { strings: (a.strings ?? []).map(_utf8) };
      default:
        throw importError(`${what} has type ${T[type] ?? type}, which kiln does not support`, {
          node: nodeName,
          op,
        });
    }
  }

  /** A subgraph (If branch, Loop/Scan body) into its own submodule; outer names resolve through `scope`. */
  #subgraph(sub: ModuleBuilder, g: onnx.IGraphProto, parent: _Scope): void {
    const scope = new _Scope(parent);
    for (const v of g.input ?? []) {
      const info = this.#inputInfo(v, undefined, `Subgraph '${sub.name}' input`);
      scope.names.set(info.name, sub.param(info.name, onnxCode(info.dtype), info.dims));
    }
    this.#buildGraph(sub, g, scope, false);
  }

  #constantNode(mod: ModuleBuilder, n: onnx.INodeProto, nodeName: string, out: string): ValueRef {
    const attrs = n.attribute ?? [];
    const ctx = { node: nodeName, op: "Constant" };
    if (attrs.length !== 1) {
      throw importError(
        `Constant node '${nodeName}' must have exactly one value attribute, has ${attrs.length}`,
        ctx,
      );
    }
    const a = attrs[0];
    const f32 = (vals: number[], dims: number[]): TensorValue => {
      const bytes = new Uint8Array(vals.length * 4);
      const dv = new DataView(bytes.buffer);
      vals.forEach((v, i) => dv.setFloat32(i * 4, v, true));
      return { dtype: onnxCode("float32"), dims, bytes };
    };
    const i64 = (vals: (number | bigint)[], dims: number[]): TensorValue => {
      const bytes = new Uint8Array(vals.length * 8);
      const dv = new DataView(bytes.buffer);
      vals.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
      return { dtype: onnxCode("int64"), dims, bytes };
    };
    let value: TensorValue;
    switch (a.name) {
      case "value":
        if (!a.t) throw importError(`Constant node '${nodeName}' has an empty 'value'`, ctx);
        if (isExternal(a.t)) {
          const t = a.t;
          const d = tensorDims(t, `Constant '${nodeName}'`);
          return this.#constant(mod, out, { dtype: t.data_type!, dims: d, bytes: this.#bytes.get(t)! });
        }
        value = this.#tensorValue(a.t, `Constant node '${nodeName}'`);
        break;
      case "value_float":
        value = f32([a.f ?? 0], []);
        break;
      case "value_floats":
        value = f32(Array.from(a.floats ?? []), [(a.floats ?? []).length]);
        break;
      case "value_int":
        value = i64([a.i ?? 0], []);
        break;
      case "value_ints":
        value = i64(Array.from(a.ints ?? []), [(a.ints ?? []).length]);
        break;
      default:
        throw importError(
          `Constant node '${nodeName}' has attribute '${a.name}', which kiln does not support (string and sparse constants are not stored)`,
          ctx,
        );
    }
    return this.#constant(mod, out, value);
  }

  /** An initializer: external (deferred or read) or inline. */
  #tensor(mod: ModuleBuilder, t: onnx.ITensorProto, name: string): ValueRef {
    const ext = this.#external.get(t);
    if (ext) {
      const dims = tensorDims(t, `Tensor '${name}'`);
      if (!ext.read) return mod.externalWeights(name, t.data_type!, dims, ext.ref);
      return this.#constant(mod, name, { dtype: t.data_type!, dims, bytes: this.#bytes.get(t)! });
    }
    return this.#constant(mod, name, this.#tensorValue(t, `Initializer '${name}'`));
  }

  #tensorValue(t: onnx.ITensorProto, what: string): TensorValue {
    if (isExternal(t)) {
      const bytes = this.#bytes.get(t);
      if (!bytes) throw importError(`${what} keeps its data in an external file, which was not read`);
      return { dtype: t.data_type!, dims: tensorDims(t, what), bytes };
    }
    const d = tensorProtoData(t, what, this.#copyRaw);
    return { dtype: d.dtype, dims: d.dims, bytes: d.bytes };
  }

  /** A constant: `literal` when small (foldable), else a host literal. */
  #constant(mod: ModuleBuilder, name: string, v: TensorValue): ValueRef {
    if (v.bytes.byteLength <= this.#limit) {
      // literal bytes must not alias the decoded file buffer (small: copying is cheap)
      const whole = v.bytes.byteOffset === 0 && v.bytes.byteLength === v.bytes.buffer.byteLength &&
        v.bytes.constructor === Uint8Array;
      const bytes = whole ? v.bytes : new Uint8Array(v.bytes);
      return mod.literal(name, { dtype: v.dtype, dims: v.dims, bytes });
    }
    const id = this.hostLiterals.length;
    this.hostLiterals.push({ name, dtype: dtypeFromOnnx(v.dtype), dims: v.dims, bytes: v.bytes });
    return mod.hostLiteral(name, v.dtype, v.dims, id);
  }

  /** A graph input's dtype and static dims; `given` fills symbolic or missing dims. */
  #inputInfo(v: onnx.IValueInfoProto, given: number[] | undefined, where = "Graph input"): ValueInfo {
    const name = v.name ?? "";
    const tt = v.type?.tensor_type;
    if (!v.type || !tt) {
      const field = v.type ? Object.keys(v.type).find((k) => k.endsWith("_type")) : undefined;
      const kind = field ? `is ${_TYPE_KINDS[field] ?? field}` : "has no type";
      throw importError(
        `${where} '${name}' ${kind}; kiln supports only tensors with a declared element type`,
      );
    }
    const code = tt.elem_type ?? 0;
    checkElementType(code, `${where} '${name}'`);
    const dtype = dtypeFromOnnx(code);
    const declared = tt.shape ? (tt.shape.dim ?? []) : undefined;
    if (given) {
      if (given.some((d) => !Number.isInteger(d) || d < 0)) {
        throw inputError(`inputDims for '${name}' must be non-negative integers, got [${given.join(",")}]`);
      }
      if (declared && declared.length !== given.length) {
        throw inputError(
          `inputDims for '${name}' has rank ${given.length}, the model declares rank ${declared.length} (${
            _dimsText(declared)
          })`,
        );
      }
    }
    if (!declared && !given) {
      throw inputError(
        `${where} '${name}' has no shape; give its dims in options.inputDims` +
          (where === "Graph input" ? ` (command line: --dims ${name}=1x3x224x224, say)` : ""),
      );
    }
    const rank = declared ? declared.length : given!.length;
    const dims: number[] = [];
    for (let i = 0; i < rank; i++) {
      const d = declared?.[i];
      const fixed = d?.dim_value ?? undefined;
      if (typeof fixed === "bigint" || (typeof fixed === "number" && fixed < 0)) {
        throw importError(`${where} '${name}' dim ${i} is invalid (${fixed})`);
      }
      if (typeof fixed === "number") {
        if (given && given[i] !== fixed) {
          throw inputError(
            `inputDims for '${name}' gives dim ${i} = ${given[i]}, but the model fixes it to ${fixed} (${
              _dimsText(declared!)
            })`,
          );
        }
        dims.push(fixed);
      } else if (given) {
        dims.push(given[i]);
      } else {
        const sym = d?.dim_param ? `'${d.dim_param}'` : "unknown";
        throw inputError(
          `${where} '${name}' dim ${i} is ${sym} (${_dimsText(declared!)}); give it in options.inputDims` +
            (where === "Graph input" ? ` (command line: --dims ${name}=${_dimsExample(declared!)})` : ""),
        );
      }
    }
    return { name, dtype, dims };
  }

  #checkConstantInput(v: onnx.IValueInfoProto, t: Tensor): void {
    const name = v.name ?? "";
    const tt = v.type?.tensor_type;
    if (tt?.elem_type && tt.elem_type !== onnxCode(t.dtype)) {
      const want = dtypeFromOnnx(tt.elem_type);
      throw inputError(
        `constantInputs '${name}' is ${describe(t.dtype, t.dims)}, the model declares ${want}`,
      );
    }
    const declared = tt?.shape?.dim;
    if (declared) {
      const bad = declared.length !== t.dims.length ||
        declared.some((d, i) => d.dim_value != null && d.dim_value !== t.dims[i]);
      if (bad) {
        throw inputError(
          `constantInputs '${name}' has dims [${t.dims.join(",")}], the model declares ${
            _dimsText(declared)
          }`,
        );
      }
    }
    if (t.data.length !== elementCount(t.dims)) {
      throw inputError(
        `constantInputs '${name}' has ${t.data.length} elements, dims [${t.dims.join(",")}] need ${
          elementCount(t.dims)
        }`,
      );
    }
  }
}

/** Attribute type for IR < 2 models, which leave `type` unset. */
function _inferAttrType(a: onnx.IAttributeProto): number {
  const T = onnx.AttributeProto.AttributeType;
  const own = (k: string) => Object.prototype.hasOwnProperty.call(a, k);
  if (own("t")) return T.TENSOR;
  if (own("g")) return T.GRAPH;
  if ((a.floats ?? []).length) return T.FLOATS;
  if ((a.ints ?? []).length) return T.INTS;
  if ((a.strings ?? []).length) return T.STRINGS;
  if (own("s")) return T.STRING;
  if (own("i")) return T.INT;
  if (own("f")) return T.FLOAT;
  return T.UNDEFINED;
}

const _decoder = new TextDecoder();
function _utf8(b: Uint8Array | null | undefined): string {
  return b ? _decoder.decode(b) : "";
}

/** The declared dims as a `--dims` value, symbolic and unknown dims as `N` (e.g. `Nx3x224x224`). */
function _dimsExample(dims: onnx.TensorShapeProto.IDimension[]): string {
  return dims.map((d) => d.dim_value != null && !d.dim_param ? String(d.dim_value) : "N").join("x");
}

function _dimsText(dims: onnx.TensorShapeProto.IDimension[]): string {
  return `[${
    dims.map((d) => d.dim_param ? d.dim_param : d.dim_value != null ? String(d.dim_value) : "?").join(",")
  }]`;
}

/** Visits every tensor of a graph and its subgraphs: initializers (isInitializer) and attribute tensors. */
function _walkTensors(
  g: onnx.IGraphProto,
  visit: (t: onnx.ITensorProto, isInitializer: boolean) => void,
): void {
  for (const t of g.initializer ?? []) visit(t, true);
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) visit(a.t, false);
      for (const t of a.tensors ?? []) visit(t, false);
      if (a.g) _walkTensors(a.g, visit);
      for (const sg of a.graphs ?? []) _walkTensors(sg, visit);
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

/** An absolute file path from a path string or a `file:` URL. */
function _absolutePath(source: string | URL): string {
  let p: string;
  if (source instanceof URL || source.startsWith("file:")) {
    const url = source instanceof URL ? source : new URL(source);
    if (url.protocol !== "file:") {
      throw importError(`Cannot read ONNX model '${url.href}': only file: URLs are supported`);
    }
    p = decodeURIComponent(url.pathname);
  } else {
    p = source.startsWith("/") ? source : `${Deno.cwd()}/${source}`;
  }
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return "/" + parts.join("/");
}
