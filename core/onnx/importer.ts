/**
 * The model walker of ONNX import: graph inputs -> params, initializers and Constant nodes ->
 * literals (small) or host literals (large), external initializers -> read bytes or deferred
 * `externalWeights` leaves, nodes -> `ModuleBuilder.node` with their attributes, GRAPH
 * attributes -> submodules whose outer-scope names resolve to the parent's values, calls of
 * model-local functions -> their bodies, inlined.
 * @module
 */
import type { Attrs, AttrValue, ModuleBuilder, TensorValue, ValueRef } from "../ir/builder.ts";
import { dtypeFromOnnx, onnxCode, tensorBytes } from "../tensor.ts";
import { importError, inputError } from "./errors.ts";
import { ExternalDataReader } from "./external_data.ts";
import { type ExternalTensor, findExternalTensors, readExternalTensors } from "./external_tensors.ts";
import type { HostLiteral, ParseOptions, ValueInfo } from "./import_types.ts";
import { checkConstantInput, inputInfo } from "./input_info.ts";
import { onnx } from "./onnx_pb.js";
import { isExternal, tensorDims, tensorProtoData } from "./tensor_proto.ts";

const _DEFAULT_LITERAL_LIMIT = 64 * 1024;
/** Ops whose GRAPH attribute is a body the op feeds (its inputs' shapes come from the node). */
const _BINDS_BODY = new Set(["Loop", "Scan"]);
/** Element types the graph encoding carries (a bound param's placeholder type must be one). */
const _SIZED = new Set([1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16]);

/** Name -> value, with the enclosing graph's scope as parent (ONNX outer-scope references). */
class _Scope {
  readonly names = new Map<string, ValueRef>();
  constructor(readonly parent: _Scope | null) {}
  get(name: string): ValueRef | undefined {
    return this.names.get(name) ?? this.parent?.get(name);
  }
}

/** Builds one decoded model into a `ModuleBuilder` tree (see `importModel`). */
export class Importer {
  readonly hostLiterals: HostLiteral[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: { name: string }[] = [];
  fixedWeights: string[] = [];
  deferredWeights: string[] = [];
  reader: ExternalDataReader | null = null;
  readonly #model: onnx.IModelProto;
  readonly #opts: ParseOptions;
  readonly #copyRaw: boolean;
  readonly #limit: number;
  /** external tensors (by proto identity) -> reference and whether they are read now */
  #external = new Map<onnx.ITensorProto, ExternalTensor>();
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
    const found = findExternalTensors(this.#model, this.#functions, this.#opts);
    this.#external = found.tensors;
    this.fixedWeights = found.fixedWeights;
    this.deferredWeights = found.deferredWeights;
    const toRead = [...this.#external.entries()].filter(([, e]) => e.read);
    if (toRead.length === 0) return;
    if (this.#opts.baseDir === undefined) {
      throw importError(
        `Tensor '${toRead[0][1].name}' keeps its data in external file '${toRead[0][1].ref.location}', ` +
          "but the model was given as bytes: pass a path, or options.baseDir",
      );
    }
    this.reader = new ExternalDataReader(this.#opts.baseDir);
    await readExternalTensors(this.reader, toRead, this.#bytes, this.#opts);
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
        checkConstantInput(v, constant);
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
      const info = inputInfo(v, this.#opts.inputDims?.[name]);
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
    const seen = new Map<string, number>();
    (g.initializer ?? []).forEach((t, i) => {
      const name = t.name ?? "";
      const first = seen.get(name);
      if (first !== undefined) {
        // onnxruntime and onnx.checker refuse this; which one a runtime takes is not defined
        throw importError(
          `Graph '${gname}' has two initializers named '${name}' (initializers ${first} and ${i}): one must be renamed`,
        );
      }
      seen.set(name, i);
    });
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
        this.#subgraph(sub, a.g, scope, _BINDS_BODY.has(op));
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

  /**
   * A subgraph (If branch, Loop/Scan body) into its own submodule; outer names resolve through
   * `scope`. A body's inputs (`bound`) take the shapes the node feeds it, whatever it declares.
   */
  #subgraph(sub: ModuleBuilder, g: onnx.IGraphProto, parent: _Scope, bound: boolean): void {
    const scope = new _Scope(parent);
    for (const v of g.input ?? []) {
      if (bound) {
        const declared = v.type?.tensor_type?.elem_type;
        const dtype = declared && _SIZED.has(declared) ? declared : 1;
        scope.names.set(v.name ?? "", sub.boundParam(v.name ?? "", dtype));
        continue;
      }
      const info = inputInfo(v, undefined, `Subgraph '${sub.name}' input`);
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
