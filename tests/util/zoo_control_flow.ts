/**
 * The zoo's control-flow model: an If whose branches read the outer graph's weights, then an If
 * on a condition the compiler folds (torch.onnx's batch == 1 checks).
 * @module
 */
import { buildModel, type GraphSpec, type NodeSpec } from "../../core/onnx/writer.ts";
import type { Tensor } from "../../core/tensor.ts";
import { G, writeGraph } from "./graph_dsl.ts";
import { randn } from "./tensors.ts";
import type { ZooModel } from "./zoo.ts";

export async function ifModel(dir: string): Promise<ZooModel> {
  const g = new G(7, "");
  const w1 = g.w("branch.then.weight", [6, 6]);
  const b2 = g.w("branch.else.bias", [6]);
  const s = g.o("ReduceSum", ["x"], { keepdims: { i: 0 } });
  const cond = g.o("Greater", [s, g.f32([0], [])]);
  const then: NodeSpec[] = [
    { op: "MatMul", inputs: ["x", w1], outputs: ["t0"], name: "/then/MatMul" },
    { op: "Relu", inputs: ["t0"], outputs: ["t1"], name: "/then/Relu" },
  ];
  const els: NodeSpec[] = [
    { op: "Add", inputs: ["x", b2], outputs: ["e0"], name: "/else/Add" },
    { op: "Sigmoid", inputs: ["e0"], outputs: ["e1"], name: "/else/Sigmoid" },
  ];
  const y = g.o("If", [cond], {
    then_branch: { g: { name: "then", outputs: [{ name: "t1", dtype: "float32" }], nodes: then } },
    else_branch: { g: { name: "else", outputs: [{ name: "e1", dtype: "float32" }], nodes: els } },
  });
  // a condition the compiler folds (torch.onnx's batch == 1 checks)
  const one = g.o("Equal", [
    g.o("Gather", [g.o("Shape", ["x"]), g.c("int64", [0], [])]),
    g.c("int64", [1], []),
  ]);
  g.nodes.push({
    op: "If",
    inputs: [one],
    outputs: ["y"],
    name: "/If_batch",
    attrs: {
      then_branch: {
        g: {
          name: "b1",
          outputs: [{ name: "u1", dtype: "float32" }],
          nodes: [{ op: "Mul", inputs: [y, b2], outputs: ["u1"], name: "/b1/Mul" }],
        },
      },
      else_branch: {
        g: {
          name: "bn",
          outputs: [{ name: "u2", dtype: "float32" }],
          nodes: [{ op: "Sub", inputs: [y, b2], outputs: ["u2"], name: "/bn/Sub" }],
        },
      },
    },
  });
  const file = await writeGraph(dir, "if_model", g, {
    inputs: [{ name: "x", dims: ["batch", 6] }],
    outputs: [{ name: "y" }],
    opset: 18,
  });
  const pos = randn(70, [3, 6]);
  (pos.data as Float32Array).forEach((v, i, a) => (a[i] = Math.abs(v)));
  const neg = randn(71, [1, 6]);
  (neg.data as Float32Array).forEach((v, i, a) => (a[i] = -Math.abs(v)));
  const posB1 = randn(72, [1, 6]);
  (posB1.data as Float32Array).forEach((v, i, a) => (a[i] = Math.abs(v)));
  return {
    name: "if_model",
    file,
    cases: [
      { dims: { x: [3, 6] }, inputs: { x: pos } },
      { dims: { x: [1, 6] }, inputs: { x: neg } },
      { dims: { x: [1, 6] }, inputs: { x: posB1 } },
    ],
  };
}

const i64 = (name: string, vals: number[]) => ({
  op: "Constant",
  inputs: [],
  outputs: [name],
  attrs: { value: { t: { name: "", dtype: "int64" as const, dims: [vals.length], data: vals } } },
});

/** then: ReduceSum over axis 1 -> [2], then If(sr > 8000): t * 2 ([2]) or concat(t, t) ([4]). */
const THEN: GraphSpec = {
  name: "then",
  outputs: [{ name: "u", dtype: "float32" }],
  nodes: [
    i64("axes", [1]),
    { op: "ReduceSum", inputs: ["x", "axes"], outputs: ["t"], attrs: { keepdims: { i: 0 } } },
    {
      op: "If",
      inputs: ["wide"],
      outputs: ["u"],
      name: "inner_if",
      attrs: {
        then_branch: {
          g: {
            name: "hi",
            outputs: [{ name: "v", dtype: "float32" }],
            nodes: [{ op: "Mul", inputs: ["t", "two"], outputs: ["v"] }],
          },
        },
        else_branch: {
          g: {
            name: "lo",
            outputs: [{ name: "w", dtype: "float32" }],
            nodes: [{ op: "Concat", inputs: ["t", "t"], outputs: ["w"], attrs: { axis: { i: 0 } } }],
          },
        },
      },
    },
  ],
};

/** else: x reshaped to [6]. */
const ELSE: GraphSpec = {
  name: "else",
  outputs: [{ name: "e", dtype: "float32" }],
  nodes: [i64("six", [6]), { op: "Reshape", inputs: ["x", "six"], outputs: ["e"] }],
};

/**
 * An If on a bool `mode` input whose branches return different shapes ([2] or [4] vs [6]); inside
 * the then branch, a nested If on `sr > 8000`, also of different shapes. Used by freeze_test.ts
 * (frozen each way) and dynamic_shapes_test.ts (specialized on the inputs that decide it).
 */
export const MODE_SR_MODEL: Uint8Array = buildModel({
  opset: 18,
  graph: {
    inputs: [
      { name: "x", dtype: "float32", dims: [2, 3] },
      { name: "mode", dtype: "bool", dims: [] },
      { name: "sr", dtype: "int64", dims: [1] },
    ],
    outputs: [{ name: "z", dtype: "float32" }],
    initializers: [
      { name: "limit", dtype: "int64", dims: [1], data: [8000] },
      { name: "two", dtype: "float32", dims: [1], data: [2] },
      { name: "one", dtype: "float32", dims: [1], data: [1] },
    ],
    nodes: [
      { op: "Greater", inputs: ["sr", "limit"], outputs: ["wide"] },
      {
        op: "If",
        inputs: ["mode"],
        outputs: ["y"],
        name: "mode_if",
        attrs: { then_branch: { g: THEN }, else_branch: { g: ELSE } },
      },
      { op: "Add", inputs: ["y", "one"], outputs: ["z"] },
    ],
  },
});

export const MODE_SR_X: Tensor = {
  dtype: "float32",
  dims: [2, 3],
  data: Float32Array.from([1, -2, 3.5, 4, 0.25, -6]),
};

export function modeSrFeeds(mode: boolean, sr: number): Record<string, Tensor> {
  return {
    x: MODE_SR_X,
    mode: { dtype: "bool", dims: [], data: Uint8Array.from([mode ? 1 : 0]) },
    sr: { dtype: "int64", dims: [1], data: BigInt64Array.from([BigInt(sr)]) },
  };
}
