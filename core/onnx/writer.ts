/**
 * Builds ONNX ModelProto / TensorProto bytes from a small JS description, with the generated
 * encoder: tests use it to make tiny models (subgraphs, external data, every attribute kind).
 * @module
 */
import {
  type DTypeName,
  dtypeSize,
  elementCount,
  onnxCode,
  type Tensor,
  type TypedArray,
} from "../tensor.ts";
import { onnx } from "./onnx_pb.js";

/** A tensor to write: data inline (raw_data by default, or the typed field), or external. */
export interface TensorSpec {
  name: string;
  /** a kiln dtype name, or a raw ONNX code (to write unsupported types in tests) */
  dtype: DTypeName | number;
  dims: number[];
  /** values (number[] / bigint[] are converted to the dtype) or raw little-endian bytes */
  data?: TypedArray | number[] | bigint[];
  /** "raw" (raw_data, default) or "typed" (float_data / int32_data / int64_data / ...) */
  encoding?: "raw" | "typed";
  /**
   * External data: the `external_data` entries, as an object (written in key order location,
   * offset, length, checksum; numbers become decimal strings) or as raw [key, value] pairs.
   */
  external?: { location: string; offset?: number; length?: number; checksum?: string } | [string, string][];
}

/** An attribute: the same shapes as the builder's `AttrValue`, with a graph spec for `g`. */
export type AttrSpec =
  | { i: number | bigint }
  | { f: number }
  | { s: string }
  | { ints: (number | bigint)[] }
  | { floats: number[] }
  | { strings: string[] }
  | { t: TensorSpec }
  | { g: GraphSpec }
  /** in a function body: takes the caller's attribute `ref`, of the given kind */
  | { ref: string; kind: "i" | "f" | "s" | "ints" | "floats" | "strings" | "t" | "g" };

/** A node. */
export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrSpec>;
}

/** A graph input/output; a string dim is symbolic (dim_param), `null` an unknown dim, no `dims` no shape. */
export interface ValueSpec {
  name: string;
  dtype?: DTypeName | number;
  dims?: (number | string | null)[];
}

/** A graph. */
export interface GraphSpec {
  name?: string;
  inputs?: ValueSpec[];
  outputs: ValueSpec[];
  initializers?: TensorSpec[];
  nodes: NodeSpec[];
}

/** A model-local function (FunctionProto). */
export interface FunctionSpec {
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  /** attributes without defaults */
  attributes?: string[];
  /** attributes with defaults */
  defaults?: Record<string, AttrSpec>;
  nodes: NodeSpec[];
  /** default-domain opset of the body (default: the model's) */
  opset?: number;
}

/** A model: the graph, the default-domain opset (default 18), other opset imports, local functions. */
export interface ModelSpec {
  graph: GraphSpec;
  opset?: number;
  irVersion?: number;
  otherOpsets?: { domain: string; version: number }[];
  functions?: FunctionSpec[];
}

function _code(dtype: DTypeName | number): number {
  return typeof dtype === "number" ? dtype : onnxCode(dtype);
}

/** Little-endian bytes of `values` as `dtype`. */
function _bytes(dtype: DTypeName, values: number[] | bigint[]): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(n * dtypeSize(dtype));
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    switch (dtype) {
      case "float32":
        dv.setFloat32(i * 4, Number(v), true);
        break;
      case "float64":
        dv.setFloat64(i * 8, Number(v), true);
        break;
      case "int64":
        dv.setBigInt64(i * 8, BigInt(v), true);
        break;
      case "uint64":
        dv.setBigUint64(i * 8, BigInt(v), true);
        break;
      case "int32":
        dv.setInt32(i * 4, Number(v), true);
        break;
      case "uint32":
        dv.setUint32(i * 4, Number(v), true);
        break;
      case "int16":
        dv.setInt16(i * 2, Number(v), true);
        break;
      case "uint16":
      case "float16":
      case "bfloat16":
        dv.setUint16(i * 2, Number(v), true);
        break;
      case "int8":
        dv.setInt8(i, Number(v));
        break;
      case "uint8":
        dv.setUint8(i, Number(v));
        break;
      case "bool":
        dv.setUint8(i, v ? 1 : 0);
        break;
    }
  }
  return out;
}

/** The little-endian bytes a tensor spec's data stands for. */
export function specBytes(spec: TensorSpec): Uint8Array {
  const d = spec.data;
  if (d === undefined) return new Uint8Array(0);
  if (Array.isArray(d)) {
    if (typeof spec.dtype === "number") {
      throw new Error(`Tensor '${spec.name}': give raw bytes for ONNX type ${spec.dtype}`);
    }
    return _bytes(spec.dtype, d);
  }
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
}

/** An onnx.TensorProto for a spec. */
export function tensorProto(spec: TensorSpec): onnx.TensorProto {
  const t = new onnx.TensorProto({ name: spec.name, dims: spec.dims, data_type: _code(spec.dtype) });
  if (spec.external) {
    t.data_location = onnx.TensorProto.DataLocation.EXTERNAL;
    const pairs: [string, string][] = Array.isArray(spec.external) ? spec.external : [];
    if (!Array.isArray(spec.external)) {
      const e = spec.external;
      pairs.push(["location", e.location]);
      if (e.offset !== undefined) pairs.push(["offset", String(e.offset)]);
      if (e.length !== undefined) pairs.push(["length", String(e.length)]);
      if (e.checksum !== undefined) pairs.push(["checksum", e.checksum]);
    }
    t.external_data = pairs.map(([key, value]) => new onnx.StringStringEntryProto({ key, value }));
    return t;
  }
  const bytes = specBytes(spec);
  if (spec.encoding !== "typed" || typeof spec.dtype === "number") {
    t.raw_data = bytes;
    return t;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = elementCount(spec.dims);
  const ints = (get: (i: number) => number) => Array.from({ length: n }, (_, i) => get(i));
  switch (spec.dtype) {
    case "float32":
      t.float_data = ints((i) => dv.getFloat32(i * 4, true));
      break;
    case "float64":
      t.double_data = ints((i) => dv.getFloat64(i * 8, true));
      break;
    case "int64":
      t.int64_data = Array.from({ length: n }, (_, i) => _int(dv.getBigInt64(i * 8, true)));
      break;
    case "uint64":
      t.uint64_data = Array.from({ length: n }, (_, i) => _int(dv.getBigUint64(i * 8, true)));
      break;
    case "uint32":
      t.uint64_data = ints((i) => dv.getUint32(i * 4, true));
      break;
    case "int32":
      t.int32_data = ints((i) => dv.getInt32(i * 4, true));
      break;
    case "int16":
      t.int32_data = ints((i) => dv.getInt16(i * 2, true));
      break;
    case "uint16":
    case "float16":
    case "bfloat16":
      t.int32_data = ints((i) => dv.getUint16(i * 2, true));
      break;
    case "int8":
      t.int32_data = ints((i) => dv.getInt8(i));
      break;
    case "uint8":
    case "bool":
      t.int32_data = ints((i) => dv.getUint8(i));
      break;
  }
  return t;
}

/** A bigint as a number when exact (the generated encoder takes both). */
function _int(v: bigint): number | bigint {
  return v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v;
}

function _valueInfo(v: ValueSpec): onnx.ValueInfoProto {
  const tensor = new onnx.TypeProto.Tensor({ elem_type: _code(v.dtype ?? "float32") });
  if (v.dims) {
    tensor.shape = new onnx.TensorShapeProto({
      dim: v.dims.map((d) =>
        typeof d === "number"
          ? new onnx.TensorShapeProto.Dimension({ dim_value: d })
          : typeof d === "string"
          ? new onnx.TensorShapeProto.Dimension({ dim_param: d })
          : new onnx.TensorShapeProto.Dimension({})
      ),
    });
  }
  return new onnx.ValueInfoProto({ name: v.name, type: new onnx.TypeProto({ tensor_type: tensor }) });
}

const _KIND_TYPES: Record<string, number> = {
  f: 1,
  i: 2,
  s: 3,
  t: 4,
  g: 5,
  floats: 6,
  ints: 7,
  strings: 8,
};

function _node(n: NodeSpec): onnx.NodeProto {
  return new onnx.NodeProto({
    op_type: n.op,
    input: n.inputs,
    output: n.outputs,
    name: n.name ?? "",
    domain: n.domain ?? "",
    attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => _attr(k, v)),
  });
}

function _attr(name: string, a: AttrSpec): onnx.AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  const enc = new TextEncoder();
  let fields: Record<string, unknown>;
  if ("ref" in a) fields = { type: _KIND_TYPES[a.kind], ref_attr_name: a.ref };
  else if ("i" in a) fields = { type: T.INT, i: a.i };
  else if ("f" in a) fields = { type: T.FLOAT, f: a.f };
  else if ("s" in a) fields = { type: T.STRING, s: enc.encode(a.s) };
  else if ("ints" in a) fields = { type: T.INTS, ints: a.ints };
  else if ("floats" in a) fields = { type: T.FLOATS, floats: a.floats };
  else if ("strings" in a) fields = { type: T.STRINGS, strings: a.strings.map((s) => enc.encode(s)) };
  else if ("t" in a) fields = { type: T.TENSOR, t: tensorProto(a.t) };
  else fields = { type: T.GRAPH, g: graphProto(a.g) };
  return new onnx.AttributeProto({ name, ...fields });
}

/** An onnx.GraphProto for a spec. */
export function graphProto(g: GraphSpec): onnx.GraphProto {
  return new onnx.GraphProto({
    name: g.name ?? "graph",
    input: (g.inputs ?? []).map(_valueInfo),
    output: g.outputs.map(_valueInfo),
    initializer: (g.initializers ?? []).map(tensorProto),
    node: g.nodes.map(_node),
  });
}

/**
 * Serializes a model.
 * @example
 * ```ts
 * import { buildModel } from "./writer.ts";
 * const bytes = buildModel({
 *   graph: {
 *     inputs: [{ name: "x", dtype: "float32", dims: [2] }],
 *     outputs: [{ name: "y", dtype: "float32", dims: [2] }],
 *     nodes: [{ op: "Relu", inputs: ["x"], outputs: ["y"] }],
 *   },
 * });
 * console.assert(bytes.length > 0);
 * ```
 */
export function buildModel(spec: ModelSpec): Uint8Array {
  const model = new onnx.ModelProto({
    ir_version: spec.irVersion ?? 10,
    producer_name: "kiln-writer",
    opset_import: [
      new onnx.OperatorSetIdProto({ domain: "", version: spec.opset ?? 18 }),
      ...(spec.otherOpsets ?? []).map((o) => new onnx.OperatorSetIdProto(o)),
    ],
    graph: graphProto(spec.graph),
    functions: (spec.functions ?? []).map((f) =>
      new onnx.FunctionProto({
        domain: f.domain,
        name: f.name,
        input: f.inputs,
        output: f.outputs,
        attribute: f.attributes ?? [],
        attribute_proto: Object.entries(f.defaults ?? {}).map(([k, v]) => _attr(k, v)),
        node: f.nodes.map(_node),
        opset_import: [new onnx.OperatorSetIdProto({ domain: "", version: f.opset ?? spec.opset ?? 18 })],
      })
    ),
  });
  return _plain(onnx.ModelProto.encode(model).finish());
}

/** Serializes a host tensor as an onnx.TensorProto (raw_data), like the backend tests' .pb files. */
export function writeTensorProto(t: Tensor, name = ""): Uint8Array {
  return _plain(
    onnx.TensorProto.encode(tensorProto({ name, dtype: t.dtype, dims: t.dims, data: t.data })).finish(),
  );
}

/** A plain Uint8Array copy (protobufjs returns a Node Buffer under Deno, whose slice() is a view). */
function _plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}
