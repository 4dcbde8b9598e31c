/**
 * The model walker of ONNX import: graph inputs -> params, initializers and Constant nodes ->
 * literals (small) or host literals (large), external initializers -> read bytes or deferred
 * `externalWeights` leaves, nodes -> `ModuleBuilder.node` with their attributes, GRAPH
 * attributes -> submodules whose outer-scope names resolve to the parent's values, calls of
 * model-local functions -> their bodies, inlined.
 * @module
 */
import type { Attrs, AttrValue, ModuleBuilder, TensorValue, ValueRef } from "../ir/builder.ts";
import { dtypeFromOnnx, isSupportedOnnxType, onnxCode, type Tensor, tensorBytes } from "../tensor.ts";
import { importError, inputError } from "./errors.ts";
import { ExternalDataReader } from "./external_data.ts";
import { type FileRange, readRangeSync, withLazyBytes } from "../io.ts";
import { type ExternalTensor, findExternalTensors, readExternalTensors } from "./external_tensors.ts";
import type { HostLiteral, ParseOptions, ValueInfo } from "./import_types.ts";
import { freezeTensor } from "./freeze.ts";
import { checkConstantInput, inputInfo } from "./input_info.ts";
import { splitDims } from "../dynamic.ts";
import { onnx } from "./onnx_pb.js";
import { isExternal, tensorDims, tensorProtoData } from "./tensor_proto.ts";
import {
  hasCompositeOutputs,
  isTensor,
  knownInts,
  Opt,
  readsComposite,
  Seq,
  type SeqHost,
  SEQUENCE_OPS,
  sequenceNode,
  unrollLoop,
  type Val,
} from "./sequences.ts";

const _DEFAULT_LITERAL_LIMIT = 64 * 1024;
/** Ops whose GRAPH attribute is a body the op feeds (its inputs' shapes come from the node). */
const _BINDS_BODY = new Set(["Loop", "Scan"]);

/** Name -> value, with the enclosing graph's scope as parent (ONNX outer-scope references). */
class _Scope {
  readonly names = new Map<string, Val>();
  constructor(readonly parent: _Scope | null) {}
  get(name: string): Val | undefined {
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
  /** external tensors large enough to be host literals: checked, left unread (their file ranges) */
  readonly #ranges = new Map<onnx.ITensorProto, FileRange>();
  /** model-local functions by `domain:name:overload` */
  readonly #functions = new Map<string, onnx.IFunctionProto>();
  /** functions being inlined (recursion guard) */
  readonly #inlining = new Set<string>();
  /** small constants' values and known dims, for what is resolved at import (sequences, optionals) */
  readonly #known = new Map<ValueRef, TensorValue>();
  readonly #dims = new Map<ValueRef, number[]>();
  readonly #opset: number;
  readonly #seqHost: SeqHost;

  constructor(model: onnx.IModelProto, opts: ParseOptions, copyRaw: boolean) {
    this.#model = model;
    this.#opts = opts;
    this.#copyRaw = copyRaw;
    this.#limit = opts.literalLimit ?? _DEFAULT_LITERAL_LIMIT;
    for (const f of model.functions ?? []) {
      this.#functions.set(`${f.domain ?? ""}:${f.name ?? ""}:${f.overload ?? ""}`, f);
    }
    const def = (model.opset_import ?? []).find((o) => !o.domain || o.domain === "ai.onnx");
    this.#opset = Number(def?.version ?? 1);
    this.#seqHost = {
      opset: this.#opset,
      constant: (mod, name, v) => this.#constant(mod, name, v),
      known: (ref) => this.#known.get(ref),
      dims: (ref) => this.#dims.get(ref) ?? this.#known.get(ref)?.dims,
      inline: (mod, g, inputs, prefix, scope) => this.#inlineGraph(mod, g, inputs, prefix, scope as _Scope),
    };
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
    await readExternalTensors(this.reader, toRead, this.#bytes, this.#opts, this.#ranges, this.#limit);
  }

  buildMain(mod: ModuleBuilder): void {
    const g = this.#model.graph!;
    const initNames = new Set((g.initializer ?? []).map((t) => t.name ?? ""));
    const graphInputs = (g.input ?? []).filter((v) => !initNames.has(v.name ?? ""));
    const inputNames = graphInputs.map((v) => v.name ?? "");
    const list = inputNames.map((n) => `'${n}'`).join(", ") || "none";
    const seqNames = graphInputs.filter((v) => v.type?.sequence_type || v.type?.optional_type).map((v) =>
      v.name ?? ""
    );
    const isElement = (key: string) =>
      seqNames.some((nm) => key.startsWith(`${nm}.`) && /^\d+$/.test(key.slice(nm.length + 1)));
    for (const key of Object.keys(this.#opts.inputDims ?? {})) {
      if (!inputNames.includes(key) && !isElement(key)) {
        throw inputError(`inputDims names '${key}', which is not a graph input (inputs: ${list})`);
      }
    }
    for (const key of Object.keys(this.#opts.constantInputs ?? {})) {
      if (!inputNames.includes(key)) {
        throw inputError(`constantInputs names '${key}', which is not a graph input (inputs: ${list})`);
      }
    }
    const frozen = this.#frozen(graphInputs, inputNames, list);
    const scope = new _Scope(null);
    for (const v of graphInputs) {
      const name = v.name ?? "";
      const constant = this.#opts.constantInputs?.[name] ?? frozen.get(name);
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
      if (v.type?.sequence_type || v.type?.optional_type) {
        scope.names.set(name, this.#compositeInput(mod, v));
        continue;
      }
      // a range ({ min, max }) builds the param at its smallest dims; a dynamic program
      // specializes on the actual dims (core/dynamic.ts)
      const given = this.#opts.inputDims?.[name];
      const split = given ? splitDims(name, given) : null;
      const fixed = v.type?.tensor_type?.shape?.dim ?? [];
      split?.ranges?.forEach((r, i) => {
        const d = fixed[i]?.dim_value;
        if (r && typeof d === "number" && !fixed[i]?.dim_param) {
          throw inputError(
            `inputDims for '${name}' gives dim ${i} the range ${r.min}..${r.max}, but the model fixes it to ${d}: ` +
              "only a symbolic dim can take a range (export the model with that dim dynamic)",
          );
        }
      });
      const info = inputInfo(v, split?.dims);
      if (split?.ranges) info.ranges = split.ranges;
      this.inputs.push(info);
      const ref = mod.param(name, onnxCode(info.dtype), info.dims);
      if (!split?.ranges) this.#dims.set(ref, info.dims);
      scope.names.set(name, ref);
    }
    this.#buildGraph(mod, g, scope, true);
  }

  /**
   * A sequence (or optional) graph input: its elements are the inputs `<name>.0`, `<name>.1`, ...
   * whose count `sequenceLengths[name]` gives; an optional is absent when `absentInputs` names it.
   */
  #compositeInput(mod: ModuleBuilder, v: onnx.IValueInfoProto): Val {
    const name = v.name ?? "";
    let t = v.type!;
    if (t.optional_type) {
      if ((this.#opts.absentInputs ?? []).includes(name)) return new Opt(null);
      const inner = t.optional_type.elem_type;
      if (inner?.tensor_type) {
        const info = inputInfo({ name, type: inner }, this.#opts.inputDims?.[name] as number[] | undefined);
        this.inputs.push(info);
        const ref = mod.param(name, onnxCode(info.dtype), info.dims);
        this.#dims.set(ref, info.dims);
        return new Opt(ref);
      }
      if (!inner?.sequence_type) {
        throw inputError(`Graph input '${name}' is an optional of an unsupported type`);
      }
      t = inner;
    }
    const elem = t.sequence_type?.elem_type;
    if (!elem?.tensor_type) {
      throw inputError(`Graph input '${name}' is a sequence of non-tensors, which kiln does not support`);
    }
    const len = this.#opts.sequenceLengths?.[name];
    if (len === undefined || !Number.isInteger(len) || len < 0) {
      throw inputError(
        `Graph input '${name}' is a sequence: kiln compiles a sequence as a list of tensors whose length is known ` +
          `when compiling; give it as options.sequenceLengths['${name}'] (its elements are then the inputs ` +
          `'${name}.0', '${name}.1', ... with their dims in inputDims)`,
      );
    }
    const items: ValueRef[] = [];
    for (let i = 0; i < len; i++) {
      const en = `${name}.${i}`;
      const info = inputInfo({ name: en, type: elem }, this.#opts.inputDims?.[en] as number[] | undefined);
      this.inputs.push(info);
      const ref = mod.param(en, onnxCode(info.dtype), info.dims);
      this.#dims.set(ref, info.dims);
      items.push(ref);
    }
    const seq = new Seq(items);
    return v.type!.optional_type ? new Opt(seq) : seq;
  }

  /** `freeze` values as tensors of their inputs' declared types and dims (see freeze.ts). */
  #frozen(graphInputs: onnx.IValueInfoProto[], inputNames: string[], list: string): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const freeze = this.#opts.freeze ?? {};
    for (const key of Object.keys(freeze)) {
      if (!inputNames.includes(key)) {
        throw inputError(`freeze names '${key}', which is not a graph input (inputs: ${list})`);
      }
      if (this.#opts.constantInputs?.[key]) {
        throw inputError(`'${key}' is given both in freeze and in constantInputs; give it once`);
      }
      const v = graphInputs.find((x) => x.name === key)!;
      out.set(key, freezeTensor(v, freeze[key], this.#opts.inputDims?.[key] as number[] | undefined));
    }
    return out;
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
    const add = (name: string, v: Val) => {
      if (isTensor(v)) {
        values.push(v);
        names.push(name);
      } else if (!isMain) {
        throw importError(
          `Graph '${gname}' output '${name}' is a sequence or optional: kiln resolves those when compiling, ` +
            "so the node running this subgraph must be resolved too (an If needs a constant condition)",
        );
      } else if (v instanceof Seq) v.items.forEach((x, i) => add(`${name}.${i}`, x));
      else if (v.value !== null) add(name, v.value); // an absent optional output is no output
    };
    for (const o of g.output ?? []) {
      const name = o.name ?? "";
      const v = scope.get(name);
      if (v === undefined) {
        throw importError(
          `Graph '${gname}' output '${name}' is not produced by any node, input or initializer`,
        );
      }
      add(name, v);
    }
    if (isMain) { for (const nm of names) this.outputs.push({ name: nm }); }
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
    const raw: (Val | null)[] = [];
    for (const name of n.input ?? []) {
      if (name === "") {
        raw.push(null);
        continue;
      }
      const v = scope.get(name);
      if (v === undefined) {
        throw importError(
          `Node '${nodeName}' (${op}) reads '${name}', which no earlier node, input or initializer of graph '${gname}' defines`,
          ctx,
        );
      }
      raw.push(v);
    }
    if (this.#resolveAtImport(mod, n, nodeName, raw, scope)) return;
    const inputs: (ValueRef | null)[] = raw.map((v, i) => {
      if (v === null || isTensor(v)) return v;
      throw importError(
        `Node '${nodeName}' (${op}) reads the ${v instanceof Seq ? "sequence" : "optional"} '${
          n.input![i]
        }' as a tensor`,
        ctx,
      );
    });
    const attrs: Attrs = {};
    for (const a of n.attribute ?? []) {
      const aname = a.name ?? "";
      attrs[aname] = this.#attr(mod, a, nodeName, op, scope);
    }
    const refs = mod.node(op, inputs, attrs, outputs.length, nodeName);
    for (let k = 0; k < outputs.length; k++) if (outputs[k] !== "") scope.names.set(outputs[k], refs[k]);
    // what the import-time resolution reads through: Identity and Not of known constants
    const k0 = inputs[0] != null ? this.#known.get(inputs[0]) : undefined;
    if (k0 && op === "Identity") this.#known.set(refs[0], k0);
    if (k0 && op === "Not" && k0.dtype === 9) {
      this.#known.set(refs[0], { ...k0, bytes: k0.bytes.map((b) => (b ? 0 : 1)) });
    }
  }

  /**
   * Nodes resolved while importing (sequences and optionals, see sequences.ts): the sequence
   * ops, Identity of a sequence or optional, an If returning them (its condition must be a
   * constant: the chosen branch is inlined) and a Loop carrying them (unrolled: constant trip
   * count, a condition known every iteration). False for every other node.
   */
  #resolveAtImport(
    mod: ModuleBuilder,
    n: onnx.INodeProto,
    nodeName: string,
    raw: (Val | null)[],
    scope: _Scope,
  ): boolean {
    const op = n.op_type ?? "";
    const outputs = n.output ?? [];
    const ctx = { node: nodeName, op };
    const set = (vals: Val[]) => vals.forEach((v, k) => outputs[k] && scope.names.set(outputs[k], v));
    if (SEQUENCE_OPS.has(op)) {
      set(sequenceNode(this.#seqHost, mod, n, nodeName, raw, scope));
      return true;
    }
    const composite = raw.some((v) => v !== null && !isTensor(v));
    if (op === "Identity" && composite) {
      set([raw[0]!]);
      return true;
    }
    const graph = (name: string) => (n.attribute ?? []).find((a) => a.name === name)?.g;
    const makes = (g: onnx.IGraphProto | null | undefined) =>
      hasCompositeOutputs(g) || readsComposite(g, scope);
    if (op === "If" && (makes(graph("then_branch")) || makes(graph("else_branch")))) {
      const c = raw[0];
      const cv = isTensor(c) ? knownInts(this.#seqHost, c) : undefined;
      if (!cv) {
        throw importError(
          `Node '${nodeName}' (If) returns a sequence or optional, which kiln resolves when compiling: its ` +
            "condition must be a compile-time constant",
          ctx,
          "needs_constant",
        );
      }
      const branch = cv[0] ? "then_branch" : "else_branch";
      set(this.#inlineGraph(mod, graph(branch)!, [], `${nodeName}/${branch}/`, scope));
      return true;
    }
    if (op === "Loop" && (composite || makes(graph("body")))) {
      set(unrollLoop(this.#seqHost, mod, graph("body"), nodeName, raw, scope));
      return true;
    }
    return false;
  }

  /** Inlines graph `g` into `mod`: its inputs bound to `inputs`, outer names through `parent`; its outputs. */
  #inlineGraph(
    mod: ModuleBuilder,
    g: onnx.IGraphProto,
    inputs: Val[],
    prefix: string,
    parent: _Scope,
  ): Val[] {
    const scope = new _Scope(parent);
    const gname = g.name || prefix;
    (g.input ?? []).forEach((v, k) => {
      if (k >= inputs.length) {
        throw importError(
          `Graph '${gname}' takes ${(g.input ?? []).length} inputs; it is given ${inputs.length}`,
        );
      }
      scope.names.set(v.name ?? "", inputs[k]);
    });
    for (const t of g.initializer ?? []) {
      scope.names.set(t.name ?? "", this.#tensor(mod, t, prefix + (t.name ?? "")));
    }
    (g.node ?? []).forEach((node, i) => this.#node(mod, node, i, scope, gname, prefix));
    return (g.output ?? []).map((o) => {
      const v = scope.get(o.name ?? "");
      if (v === undefined) {
        throw importError(
          `Graph '${gname}' output '${o.name}' is not produced by any node, input or initializer`,
        );
      }
      return v;
    });
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
        // a placeholder type the graph encoding carries (the node gives the real one)
        const declared = v.type?.tensor_type?.elem_type;
        const dtype = declared && isSupportedOnnxType(declared) ? declared : 1;
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
          const range = this.#ranges.get(t);
          if (range) return this.#fileLiteral(mod, out, t.data_type!, d, range);
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
      const range = this.#ranges.get(t);
      if (range) return this.#fileLiteral(mod, name, t.data_type!, dims, range);
      return this.#constant(mod, name, { dtype: t.data_type!, dims, bytes: this.#bytes.get(t)! });
    }
    return this.#constant(mod, name, this.#tensorValue(t, `Initializer '${name}'`));
  }

  #tensorValue(t: onnx.ITensorProto, what: string): TensorValue {
    if (isExternal(t)) {
      const range = this.#ranges.get(t);
      const bytes = range ? readRangeSync(range) : this.#bytes.get(t);
      if (!bytes) throw importError(`${what} keeps its data in an external file, which was not read`);
      return { dtype: t.data_type!, dims: tensorDims(t, what), bytes };
    }
    const d = tensorProtoData(t, what, this.#copyRaw);
    return { dtype: d.dtype, dims: d.dims, bytes: d.bytes };
  }

  /**
   * A host literal whose bytes stay in their file (checked by `ExternalDataReader.locate`): the
   * target reads the range where it goes (ref: straight into the core's memory at finalize).
   */
  #fileLiteral(mod: ModuleBuilder, name: string, dtype: number, dims: number[], range: FileRange): ValueRef {
    const id = this.hostLiterals.length;
    this.hostLiterals.push(withLazyBytes({ name, dtype: dtypeFromOnnx(dtype), dims }, range));
    return mod.hostLiteral(name, dtype, dims, id);
  }

  /** A constant: `literal` when small (foldable), else a host literal. */
  #constant(mod: ModuleBuilder, name: string, v: TensorValue): ValueRef {
    if (v.bytes.byteLength <= this.#limit) {
      // literal bytes must not alias the decoded file buffer (small: copying is cheap)
      const whole = v.bytes.byteOffset === 0 && v.bytes.byteLength === v.bytes.buffer.byteLength &&
        v.bytes.constructor === Uint8Array;
      const bytes = whole ? v.bytes : new Uint8Array(v.bytes);
      const ref = mod.literal(name, { dtype: v.dtype, dims: v.dims, bytes });
      this.#known.set(ref, { dtype: v.dtype, dims: v.dims, bytes });
      return ref;
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
