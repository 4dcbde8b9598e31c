/**
 * The zoo's control-flow model: an If whose branches read the outer graph's weights, then an If
 * on a condition the compiler folds (torch.onnx's batch == 1 checks).
 * @module
 */
import type { NodeSpec } from "../../core/onnx/writer.ts";
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
