// The ops added for exporter graphs (GroupNormalization, RMSNormalization, GridSample, AffineGrid),
// TopK selection and Cast's handling of non-finite floats, against onnxruntime.
import { compile, parseOnnx } from "../mod.ts";
import { buildModel, type NodeSpec, type TensorSpec } from "../core/onnx/writer.ts";
import type { DTypeName, Tensor } from "../core/tensor.ts";
import { runOrt } from "./util/ort.ts";
import { assertMatch, randn } from "./util/tensors.ts";

Deno.test("GroupNormalization, RMSNormalization, GridSample, AffineGrid, TopK selection and Cast of non-finite floats match onnxruntime", async (t) => {
  const cases: {
    name: string;
    opset: number;
    inputs: Record<string, Tensor>;
    nodes: NodeSpec[];
    inits?: TensorSpec[];
  }[] = [
    {
      name: "GroupNormalization-18 (per-group scale)",
      opset: 18,
      inputs: { x: randn(120, [2, 6, 3, 3]) },
      inits: [
        { name: "s", dtype: "float32", dims: [3], data: [0.5, 1, 2] },
        { name: "b", dtype: "float32", dims: [3], data: [0.1, 0, -0.1] },
      ],
      nodes: [{
        op: "GroupNormalization",
        inputs: ["x", "s", "b"],
        outputs: ["y"],
        attrs: { num_groups: { i: 3 } },
      }],
    },
    {
      name: "RMSNormalization-23 over the last two axes",
      opset: 23,
      inputs: { x: randn(121, [2, 3, 4]) },
      inits: [{ name: "s", dtype: "float32", dims: [4], data: [1, 0.5, 2, -1] }],
      nodes: [{ op: "RMSNormalization", inputs: ["x", "s"], outputs: ["y"], attrs: { axis: { i: 1 } } }],
    },
    ...["bilinear", "nearest", "bicubic"].flatMap((mode) =>
      ["zeros", "border", "reflection"].map((pad) => ({
        name: `GridSample-16 ${mode} ${pad}`,
        opset: 16,
        inputs: { x: randn(122, [1, 2, 4, 5]), grid: randn(123, [1, 3, 4, 2], 0.9) },
        nodes: [{
          op: "GridSample",
          inputs: ["x", "grid"],
          outputs: ["y"],
          attrs: {
            mode: { s: mode },
            padding_mode: { s: pad },
            align_corners: { i: pad === "border" ? 1 : 0 },
          },
        }],
      }))
    ),
    ...[0, 1].map((ac) => ({
      name: `AffineGrid-20 + GridSample (spatial transformer), align_corners ${ac}`,
      opset: 20,
      inputs: { theta: randn(124, [2, 2, 3], 0.5), x: randn(125, [2, 3, 5, 6]) },
      inits: [{ name: "size", dtype: "int64" as const, dims: [4], data: [2, 3, 4, 7] }],
      nodes: [
        {
          op: "AffineGrid",
          inputs: ["theta", "size"],
          outputs: ["grid"],
          attrs: { align_corners: { i: ac } },
        },
        { op: "GridSample", inputs: ["x", "grid"], outputs: ["y"], attrs: { align_corners: { i: ac } } },
      ],
    })),
    ...[[0, 3], [1, 3], [1, 1]].map(([largest, k]) => ({
      name: `TopK k=${k} of 40 with ties (partial selection), largest ${largest}`,
      opset: 18,
      inputs: {
        x: {
          dtype: "float32" as const,
          dims: [2, 40],
          data: Float32Array.from({ length: 80 }, (_, i) => Math.floor(Math.sin(i * 1.7) * 4)),
        },
      },
      inits: [{ name: "k", dtype: "int64" as const, dims: [1], data: [k] }],
      nodes: [{
        op: "TopK",
        inputs: ["x", "k"],
        outputs: ["values", "indices"],
        attrs: { largest: { i: largest } },
      }],
    })),
    {
      name: "Cast of NaN, infinities and out-of-range floats to int64, int32, uint8",
      opset: 18,
      inputs: {
        x: {
          dtype: "float32",
          dims: [6],
          data: Float32Array.from([-Infinity, Infinity, NaN, 1e30, -1e30, -3.9]),
        },
      },
      nodes: [
        { op: "Cast", inputs: ["x"], outputs: ["y"], attrs: { to: { i: 7 } } },
        { op: "Cast", inputs: ["x"], outputs: ["z"], attrs: { to: { i: 6 } } },
        { op: "Cast", inputs: ["x"], outputs: ["w"], attrs: { to: { i: 2 } } },
      ],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const outs = c.nodes.flatMap((n) => n.outputs);
      const build = (types: Record<string, DTypeName>) =>
        buildModel({
          opset: c.opset,
          graph: {
            inputs: Object.entries(c.inputs).map(([name, x]) => ({ name, dtype: x.dtype, dims: x.dims })),
            outputs: outs.map((name) => ({ name, dtype: types[name] ?? "float32" })),
            initializers: c.inits ?? [],
            nodes: c.nodes,
          },
        });
      const program = compile(await parseOnnx(build({})), "ref");
      try {
        const types = Object.fromEntries(program.outputs.map((o) => [o.name, o.dtype]));
        assertMatch(await program.eval(c.inputs), await runOrt(build(types), c.inputs), c.name);
      } finally {
        program.dispose();
      }
    });
  }
});
