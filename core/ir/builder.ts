/**
 * GraphBuilder: the host side of the WASM boundary's graph encoding. The ONNX importer
 * (core/onnx) builds a program with it; `encode()` gives the bytes that the core decodes
 * (`docs/internals.md`, "Graph encoding"). Value ids are assigned here, in order, across
 * all modules.
 *
 * Contract (importer <-> core):
 * - module 0 is the main module; `submodule()` adds one (If branches) and returns its builder.
 * - A submodule may take values of its parent modules as inputs (ONNX outer-scope refs).
 * - `null` in a node's inputs is an omitted optional input.
 * - Literal bytes are little-endian, standard layout, `dims` product * element size long.
 * - `externalWeights` is the deferred weight leaf (`onnx_external_weights`): no bytes.
 * - Dims are integers from 0 to 2^31 - 1 (the encoding's dims are i32); every 32-bit field is
 *   range-checked as it is written, never wrapped.
 */
import { KilnError } from "../errors.ts";

/** ONNX TensorProto.DataType codes. */
export type DType = number;

/** A value of the graph being built (its id). */
export type ValueRef = number;

/** A literal tensor's value. */
export interface TensorValue {
  /** element type (ONNX DataType code) */
  dtype: DType;
  /** dims */
  dims: number[];
  /** little-endian standard-layout bytes */
  bytes: Uint8Array;
}

/** One node attribute, as in ONNX: an int, float, string, lists of them, a tensor or a subgraph. */
export type AttrValue =
  | { i: number | bigint }
  | { f: number }
  | { s: string }
  | { ints: (number | bigint)[] }
  | { floats: number[] }
  | { strings: string[] }
  | { t: TensorValue }
  /** a subgraph: index of a submodule made with ModuleBuilder.submodule() */
  | { g: number };

/** A node's attributes by name. */
export type Attrs = Record<string, AttrValue>;

/** Where a deferred weight's bytes are: an ONNX external-data reference. */
export interface ExternalDataRef {
  /** path relative to the model's folder */
  location: string;
  /** byte offset in the file */
  offset: number;
  /** byte length */
  length: number;
  /** SHA1 hex of the whole file, "" when the model gives none */
  checksum: string;
}

/** Builds one module of a graph (main, or an If branch). */
export interface ModuleBuilder {
  /** module index: 0 for main */
  readonly index: number;
  /** the module's name */
  readonly name: string;
  /** A named program input with static dims. */
  param(name: string, dtype: DType, dims: number[]): ValueRef;
  /**
   * A param of a Loop/Scan body whose shape the node running the body decides when shapes are
   * inferred (the body's declared input types may be partial or absent). `dtype` is a placeholder.
   */
  boundParam(name: string, dtype?: DType): ValueRef;
  /**
   * A constant. `bytes` lands in WASM memory at decode time when it is small (the compiler
   * may fold it); `hostLiteral` keeps large ones on the host until finalize.
   */
  literal(name: string, value: TensorValue): ValueRef;
  /** A constant whose bytes stay on the host (id into the host literal table). */
  hostLiteral(name: string, dtype: DType, dims: number[], hostId: number): ValueRef;
  /** A deferred external weight: `onnx_external_weights{name, shape, location, offset, length, checksum}`. */
  externalWeights(name: string, dtype: DType, dims: number[], ref: ExternalDataRef): ValueRef;
  /** An op node. Returns one ValueRef per output. */
  node(
    op: string,
    inputs: (ValueRef | null)[],
    attrs: Attrs,
    numOutputs: number,
    nodeName: string,
  ): ValueRef[];
  /** The module's outputs, with their names. Call once, last. */
  ret(values: ValueRef[], names: string[]): void;
  /** A new submodule (for an If branch); pass its index as a `{ g: index }` attribute. */
  submodule(name: string): ModuleBuilder;
}

// ---------------------------------------------------------------- GraphBuilder

/** Record kinds of the graph encoding (docs/internals.md). */
const _R_PARAM = 1;
const _R_LITERAL = 2;
const _R_HOST_LITERAL = 3;
const _R_WEIGHT = 4;
const _R_NODE = 5;
const _R_RETURN = 6;
const _R_PARAM_BOUND = 7;
/** "KGE1" little-endian. */
export const GRAPH_MAGIC = 0x3145474b;
export const GRAPH_VERSION = 1;

const _ATTR_INT = 1;
const _ATTR_FLOAT = 2;
const _ATTR_STRING = 3;
const _ATTR_INTS = 4;
const _ATTR_FLOATS = 5;
const _ATTR_STRINGS = 6;
const _ATTR_TENSOR = 7;
const _ATTR_GRAPH = 8;

const _SIZES: Record<number, number> = {
  1: 4,
  2: 1,
  3: 1,
  4: 2,
  5: 2,
  6: 4,
  7: 8,
  9: 1,
  10: 2,
  11: 8,
  12: 4,
  13: 8,
  16: 2,
};

type _Record =
  | { kind: "leaf"; write: (w: _Writer) => void }
  | { kind: "node"; subs: number[]; write: (w: _Writer) => void }
  | { kind: "return"; write: (w: _Writer) => void };

/** A growable little-endian byte writer. */
class _Writer {
  #buf = new Uint8Array(4096);
  #view = new DataView(this.#buf.buffer);
  #len = 0;
  #enc = new TextEncoder();

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let c = this.#buf.length * 2;
    while (c < this.#len + n) c *= 2;
    const b = new Uint8Array(c);
    b.set(this.#buf.subarray(0, this.#len));
    this.#buf = b;
    this.#view = new DataView(b.buffer);
  }
  u8(v: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
  }
  u32(v: number): void {
    _checkRange(v, 0, 0xffffffff, "an unsigned 32-bit");
    this.#reserve(4);
    this.#view.setUint32(this.#len, v, true);
    this.#len += 4;
  }
  i32(v: number): void {
    _checkRange(v, -(2 ** 31), 2 ** 31 - 1, "a signed 32-bit");
    this.#reserve(4);
    this.#view.setInt32(this.#len, v, true);
    this.#len += 4;
  }
  i64(v: number | bigint): void {
    this.#reserve(8);
    this.#view.setBigInt64(this.#len, BigInt.asIntN(64, BigInt(v)), true);
    this.#len += 8;
  }
  f32(v: number): void {
    this.#reserve(4);
    this.#view.setFloat32(this.#len, v, true);
    this.#len += 4;
  }
  bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  str(s: string): void {
    const b = this.#enc.encode(s);
    this.u32(b.length);
    this.bytes(b);
  }
  shape(dtype: number, dims: number[]): void {
    this.i32(dtype);
    this.u32(dims.length);
    for (const d of dims) this.i32(d);
  }
  patchU32(at: number, v: number): void {
    _checkRange(v, 0, 0xffffffff, "an unsigned 32-bit");
    this.#view.setUint32(at, v, true);
  }
  get length(): number {
    return this.#len;
  }
  result(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** The largest dim the graph encoding holds: 2^31 - 1 (dims are i32). */
const _MAX_DIM = 2 ** 31 - 1;

/** A number for a 32-bit field of the encoding: an integer in [lo, hi], else a KilnError (never wrapped). */
function _checkRange(v: number, lo: number, hi: number, field: string): void {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new KilnError("graph", `Graph encoding: ${v} does not fit ${field} field`);
  }
}

function _checkShape(what: string, dtype: number, dims: number[]): void {
  if (_SIZES[dtype] === undefined) throw new Error(`${what} has unsupported element type ${dtype}`);
  if (!Array.isArray(dims)) throw new KilnError("graph", `${what} has dims ${dims}, not an array`);
  dims.forEach((d, i) => {
    if (typeof d !== "number" || !Number.isInteger(d) || d < 0 || d > _MAX_DIM) {
      throw new KilnError(
        "graph",
        `${what} has dim ${i} = ${d}; kiln needs static non-negative integer dims up to ${_MAX_DIM} (2^31 - 1)`,
      );
    }
  });
}

function _byteLength(dtype: number, dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1) * _SIZES[dtype];
}

class _Module implements ModuleBuilder {
  readonly index: number;
  readonly name: string;
  readonly parent: number;
  readonly records: _Record[] = [];
  returned = false;
  readonly #g: GraphBuilder;

  constructor(g: GraphBuilder, index: number, name: string, parent: number) {
    this.#g = g;
    this.index = index;
    this.name = name;
    this.parent = parent;
  }

  #leaf(kind: number, name: string, dtype: number, dims: number[], tail: (w: _Writer) => void): ValueRef {
    this.#open();
    _checkShape(`Value '${name}'`, dtype, dims);
    const id = _graphOps.newId(this.#g);
    const m = this.index;
    this.records.push({
      kind: "leaf",
      write: (w) => {
        w.u8(kind);
        w.u32(m);
        w.u32(id);
        w.str(name);
        w.shape(dtype, dims);
        tail(w);
      },
    });
    return id;
  }

  #open(): void {
    if (this.returned) throw new Error(`Module '${this.name}' already has its return`);
  }

  param(name: string, dtype: DType, dims: number[]): ValueRef {
    return this.#leaf(_R_PARAM, name, dtype, [...dims], () => {});
  }

  boundParam(name: string, dtype: DType = 1): ValueRef {
    if (this.index === 0) throw new Error(`Param '${name}': the main module's params cannot be bound`);
    return this.#leaf(_R_PARAM_BOUND, name, dtype, [], () => {});
  }

  literal(name: string, value: TensorValue): ValueRef {
    const need = _byteLength(value.dtype, value.dims);
    if (value.bytes.length !== need) {
      throw new Error(`Literal '${name}' has ${value.bytes.length} bytes, dims [${value.dims}] need ${need}`);
    }
    const bytes = value.bytes;
    return this.#leaf(_R_LITERAL, name, value.dtype, [...value.dims], (w) => {
      w.u32(bytes.length);
      w.bytes(bytes);
    });
  }

  hostLiteral(name: string, dtype: DType, dims: number[], hostId: number): ValueRef {
    return this.#leaf(_R_HOST_LITERAL, name, dtype, [...dims], (w) => w.i32(hostId));
  }

  externalWeights(name: string, dtype: DType, dims: number[], ref: ExternalDataRef): ValueRef {
    return this.#leaf(_R_WEIGHT, name, dtype, [...dims], (w) => {
      w.str(ref.location);
      w.i64(ref.offset);
      w.i64(ref.length);
      w.str(ref.checksum);
    });
  }

  node(
    op: string,
    inputs: (ValueRef | null)[],
    attrs: Attrs,
    numOutputs: number,
    nodeName: string,
  ): ValueRef[] {
    this.#open();
    const outs: ValueRef[] = [];
    for (let i = 0; i < numOutputs; i++) outs.push(_graphOps.newId(this.#g));
    const subs: number[] = [];
    for (const [k, a] of Object.entries(attrs)) {
      if ("g" in a) {
        if (!Number.isInteger(a.g) || a.g <= 0 || a.g >= _graphOps.moduleCount(this.#g)) {
          throw new Error(`Attribute '${k}' of node '${nodeName}' (${op}) names unknown module ${a.g}`);
        }
        subs.push(a.g);
      }
    }
    const m = this.index;
    const ins = [...inputs];
    const attrEntries = Object.entries(attrs);
    this.records.push({
      kind: "node",
      subs,
      write: (w) => {
        w.u8(_R_NODE);
        w.u32(m);
        w.str(op);
        w.str(nodeName);
        w.u32(ins.length);
        for (const x of ins) w.i32(x === null ? -1 : x);
        w.u32(outs.length);
        for (let i = 0; i < outs.length; i++) {
          w.u32(outs[i]);
          w.str(`${nodeName}:${i}`);
        }
        w.u32(attrEntries.length);
        for (const [k, a] of attrEntries) _writeAttr(w, k, a);
      },
    });
    return outs;
  }

  ret(values: ValueRef[], names: string[]): void {
    this.#open();
    if (names.length !== values.length) {
      throw new Error(
        `Return of module '${this.name}' has ${values.length} values and ${names.length} names`,
      );
    }
    const m = this.index;
    const vs = [...values];
    const ns = [...names];
    this.records.push({
      kind: "return",
      write: (w) => {
        w.u8(_R_RETURN);
        w.u32(m);
        w.u32(vs.length);
        for (const v of vs) w.u32(v);
        for (const n of ns) w.str(n);
      },
    });
    this.returned = true;
  }

  submodule(name: string): ModuleBuilder {
    return _graphOps.addModule(this.#g, name, this.index);
  }
}

function _writeAttr(w: _Writer, name: string, a: AttrValue): void {
  w.str(name);
  if ("i" in a) {
    w.u8(_ATTR_INT);
    w.i64(a.i);
  } else if ("f" in a) {
    w.u8(_ATTR_FLOAT);
    w.f32(a.f);
  } else if ("s" in a) {
    w.u8(_ATTR_STRING);
    w.str(a.s);
  } else if ("ints" in a) {
    w.u8(_ATTR_INTS);
    w.u32(a.ints.length);
    for (const v of a.ints) w.i64(v);
  } else if ("floats" in a) {
    w.u8(_ATTR_FLOATS);
    w.u32(a.floats.length);
    for (const v of a.floats) w.f32(v);
  } else if ("strings" in a) {
    w.u8(_ATTR_STRINGS);
    w.u32(a.strings.length);
    for (const v of a.strings) w.str(v);
  } else if ("t" in a) {
    w.u8(_ATTR_TENSOR);
    _checkShape(`Tensor attribute '${name}'`, a.t.dtype, a.t.dims);
    const need = _byteLength(a.t.dtype, a.t.dims);
    if (a.t.bytes.length !== need) {
      throw new Error(
        `Tensor attribute '${name}' has ${a.t.bytes.length} bytes, dims [${a.t.dims}] need ${need}`,
      );
    }
    w.shape(a.t.dtype, a.t.dims);
    w.u32(a.t.bytes.length);
    w.bytes(a.t.bytes);
  } else if ("g" in a) {
    w.u8(_ATTR_GRAPH);
    w.i32(a.g);
  } else {
    throw new Error(`Attribute '${name}' has no value`);
  }
}

let _graphOps: {
  newId(g: GraphBuilder): number;
  moduleCount(g: GraphBuilder): number;
  addModule(g: GraphBuilder, name: string, parent: number): ModuleBuilder;
};

/**
 * Builds a kiln program (main module + submodules) and encodes it for the WASM core.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "./builder.ts";
 * const g = new GraphBuilder(18);
 * const x = g.main.param("x", 1, [2, 3]);
 * const [y] = g.main.node("Relu", [x], {}, 1, "relu");
 * g.main.ret([y], ["y"]);
 * const bytes = g.encode();
 * ```
 */
export class GraphBuilder {
  /** Default-domain opset of the model. */
  readonly opset: number;
  readonly #modules: _Module[] = [];
  #nextId = 0;

  /** An empty graph (a main module) for the given opset of the default ONNX domain. */
  constructor(opset: number) {
    this.opset = opset;
    this.#modules.push(new _Module(this, 0, "main", -1));
  }

  /** Module 0. */
  get main(): ModuleBuilder {
    return this.#modules[0];
  }

  /** All modules, main first. */
  modules(): ModuleBuilder[] {
    return [...this.#modules];
  }

  static {
    // what the module builders ask their graph for, kept off the public class
    _graphOps = {
      newId: (g) => g.#nextId++,
      moduleCount: (g) => g.#modules.length,
      addModule: (g, name, parent) => {
        const m = new _Module(g, g.#modules.length, name, parent);
        g.#modules.push(m);
        return m;
      },
    };
  }

  /**
   * The graph encoding the WASM core decodes (docs/internals.md): a submodule's records come
   * right before the first node that names it, so shapes infer in one forward sweep.
   */
  encode(): Uint8Array {
    for (const m of this.#modules) {
      if (!m.returned) throw new Error(`Module '${m.name}' has no return (call ret() last)`);
    }
    const w = new _Writer();
    w.u32(GRAPH_MAGIC);
    w.u32(GRAPH_VERSION);
    w.u32(0);
    w.i32(this.opset);
    w.u32(this.#modules.length);
    w.u32(this.#nextId);
    for (const m of this.#modules) {
      w.str(m.name);
      w.i32(m.parent);
    }
    w.u32(0); // pass list: none yet
    const countAt = w.length;
    w.u32(0);
    let count = 0;
    const done = new Set<number>();
    const emit = (m: _Module) => {
      if (done.has(m.index)) return;
      done.add(m.index);
      for (const r of m.records) {
        if (r.kind === "node") { for (const s of r.subs) emit(this.#modules[s]); }
        r.write(w);
        count++;
      }
    };
    for (const m of this.#modules) emit(m);
    w.patchU32(countAt, count);
    return w.result();
  }
}
