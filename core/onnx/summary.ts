/**
 * What an ONNX file holds, without importing it (`kiln inspect model.onnx`): opsets, inputs and
 * outputs with their declared dims (symbolic ones by name), op counts (subgraphs included),
 * initializers inline and in external data, by file. Nothing is read from the external-data
 * files and nothing is compiled.
 * @module
 */
import { readRegular } from "../fs.ts";
import { dtypeFromOnnx, isSupportedOnnxType } from "../tensor.ts";
import { decodeModel } from "./import.ts";
import type { onnx } from "./onnx_pb.js";

/** A graph input or output as the file declares it. */
export interface OnnxValueSummary {
  /** its name */
  name: string;
  /** its element type ("type 23" for one kiln has no name for; "" when undeclared) */
  dtype: string;
  /** its dims: numbers, names of symbolic dims, null for unknown; null when no shape is declared */
  dims: (number | string | null)[] | null;
}

/** One external-data file the initializers name. */
export interface ExternalFileSummary {
  /** the `location`, relative to the model's folder */
  location: string;
  /** initializers stored there */
  tensors: number;
  /** their bytes (the declared lengths) */
  bytes: number;
}

/** What {@linkcode summarizeOnnx} found. */
export interface OnnxSummary {
  /** the file, or "<bytes>" */
  source: string;
  /** ONNX IR version */
  irVersion: number;
  /** opset version by domain ("" is the default domain) */
  opsets: Record<string, number>;
  /** the producer, e.g. "pytorch 2.11.0" */
  producer: string;
  /** graph inputs that are not initializers */
  inputs: OnnxValueSummary[];
  /** graph outputs */
  outputs: OnnxValueSummary[];
  /** nodes, subgraphs included */
  nodes: number;
  /** node count by op ("domain.Op" outside the default domain), subgraphs included */
  ops: Record<string, number>;
  /** initializers of the main graph */
  initializers: {
    /** all of them */
    count: number;
    /** those stored in the model file */
    inline: number;
    /** their bytes */
    inlineBytes: number;
    /** those stored in external data */
    external: number;
    /** their bytes (declared lengths) */
    externalBytes: number;
    /** by file */
    files: ExternalFileSummary[];
  };
  /** functions the model defines */
  functions: string[];
}

function _dtype(code: number | null | undefined): string {
  if (!code) return "";
  return isSupportedOnnxType(code) ? dtypeFromOnnx(code) : `type ${code}`;
}

function _value(v: onnx.IValueInfoProto): OnnxValueSummary {
  const t = v.type?.tensor_type;
  const dims = t?.shape
    ? (t.shape.dim ?? []).map((d) =>
      d.dim_value != null ? Number(d.dim_value) : d.dim_param ? d.dim_param : null
    )
    : null;
  return { name: v.name ?? "", dtype: _dtype(t?.elem_type), dims };
}

function _countNodes(g: onnx.IGraphProto | null | undefined, ops: Record<string, number>): number {
  let n = 0;
  for (const node of g?.node ?? []) {
    n++;
    const domain = node.domain && node.domain !== "ai.onnx" ? `${node.domain}.` : "";
    const op = `${domain}${node.op_type ?? "?"}`;
    ops[op] = (ops[op] ?? 0) + 1;
    for (const a of node.attribute ?? []) {
      if (a.g) n += _countNodes(a.g, ops);
      for (const sg of a.graphs ?? []) n += _countNodes(sg, ops);
    }
  }
  return n;
}

function _bytesOf(t: onnx.ITensorProto): number {
  if (t.raw_data && t.raw_data.length) return t.raw_data.length;
  const counts = [t.float_data, t.int32_data, t.int64_data, t.double_data, t.uint64_data, t.string_data];
  const sizes = [4, 4, 8, 8, 8, 0];
  let n = 0;
  counts.forEach((c, i) => {
    if (c && c.length) n += c.length * sizes[i];
  });
  return n;
}

/** Summarizes an ONNX model file (or its bytes) without importing or compiling it. */
export async function summarizeOnnx(source: string | Uint8Array): Promise<OnnxSummary> {
  const what = typeof source === "string" ? source : "<bytes>";
  const bytes = typeof source === "string" ? await readRegular(source, "ONNX model") : source;
  const model = decodeModel(bytes, what);
  const g = model.graph!;
  const opsets: Record<string, number> = {};
  for (const o of model.opset_import ?? []) opsets[o.domain ?? ""] = Number(o.version ?? 0);
  const inits = g.initializer ?? [];
  const initNames = new Set(inits.map((t) => t.name ?? ""));
  const files = new Map<string, ExternalFileSummary>();
  let inline = 0, inlineBytes = 0, external = 0, externalBytes = 0;
  for (const t of inits) {
    if (t.data_location === 1) {
      const kv = new Map((t.external_data ?? []).map((e) => [e.key ?? "", e.value ?? ""]));
      const location = kv.get("location") ?? "";
      const length = Number(kv.get("length") ?? 0);
      external++;
      externalBytes += length;
      const f = files.get(location) ?? { location, tensors: 0, bytes: 0 };
      f.tensors++;
      f.bytes += length;
      files.set(location, f);
    } else {
      inline++;
      inlineBytes += _bytesOf(t);
    }
  }
  const ops: Record<string, number> = {};
  const nodes = _countNodes(g, ops);
  return {
    source: what,
    irVersion: Number(model.ir_version ?? 0),
    opsets,
    producer: [model.producer_name, model.producer_version].filter((x) => x).join(" "),
    inputs: (g.input ?? []).filter((v) => !initNames.has(v.name ?? "")).map(_value),
    outputs: (g.output ?? []).map(_value),
    nodes,
    ops,
    initializers: {
      count: inits.length,
      inline,
      inlineBytes,
      external,
      externalBytes,
      files: [...files.values()],
    },
    functions: (model.functions ?? []).map((f) => `${f.domain ? `${f.domain}.` : ""}${f.name ?? "?"}`),
  };
}
