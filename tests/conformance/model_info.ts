/**
 * What the conformance runner needs to know about a backend test model before kiln sees it:
 * its op types, its graph inputs (initializers excluded) and outputs, and whether every one
 * of them is a plain tensor.
 * @module
 */

import { onnx } from "../../core/onnx/onnx_pb.js";

/** A graph input or output of a test model. */
export interface IoInfo {
  name: string;
  /** "tensor", or the other TypeProto case ("sequence_type", "optional_type", ...). */
  kind: string;
  /** ONNX element type code of a tensor (0 when not a tensor). */
  elemType: number;
}

/** A backend test model, summarized. */
export interface ModelInfo {
  /** Distinct op types of the main graph, in order of first use (`domain:Op` outside the default domain). */
  ops: string[];
  inputs: IoInfo[];
  outputs: IoInfo[];
  /** Default-domain opset. */
  opset: number;
}

function _io(v: onnx.IValueInfoProto): IoInfo {
  const t = v.type;
  if (t?.tensor_type) return { name: v.name ?? "", kind: "tensor", elemType: t.tensor_type.elem_type ?? 0 };
  const kind = t?.sequence_type
    ? "sequence"
    : t?.optional_type
    ? "optional"
    : t?.map_type
    ? "map"
    : t?.sparse_tensor_type
    ? "sparse_tensor"
    : "unknown";
  return { name: v.name ?? "", kind, elemType: 0 };
}

/** Reads a model's op types, inputs and outputs. */
export function modelInfo(bytes: Uint8Array): ModelInfo {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph ?? {};
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ""));
  const ops: string[] = [];
  for (const n of g.node ?? []) {
    const op = (n.domain && n.domain !== "ai.onnx" ? `${n.domain}:` : "") + (n.op_type ?? "");
    if (!ops.includes(op)) ops.push(op);
  }
  const opset = Number((m.opset_import ?? []).find((o) => !o.domain || o.domain === "ai.onnx")?.version ?? 0);
  return {
    ops,
    inputs: (g.input ?? []).filter((v) => !inits.has(v.name ?? "")).map(_io),
    outputs: (g.output ?? []).map(_io),
    opset,
  };
}
