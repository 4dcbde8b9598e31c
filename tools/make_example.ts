// Writes the bundled demo model, examples/tinynet/: a small CNN classifier whose weights live in
// ONNX external data (`tinynet.onnx.data`, each tensor 4096-aligned), as exporters write it.
//   deno run -A tools/make_example.ts
// The output is committed; rerunning gives identical bytes (seeded).
import { buildModel, type TensorSpec } from "../core/onnx/writer.ts";

const DIR = new URL("../examples/tinynet/", import.meta.url);
const DATA = "tinynet.onnx.data";

/** mulberry32: a tiny seeded PRNG, enough for demo weights. */
function _rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const weights: [string, number[]][] = [
  ["conv1.weight", [8, 3, 3, 3]],
  ["conv1.bias", [8]],
  ["conv2.weight", [16, 8, 3, 3]],
  ["conv2.bias", [16]],
  ["proj.weight", [16, 16]],
  ["proj.bias", [16]],
  ["fc.weight", [10, 16]],
  ["fc.bias", [10]],
];

const rand = _rng(20261125);
let offset = 0;
const chunks: { offset: number; bytes: Uint8Array }[] = [];
const initializers: TensorSpec[] = weights.map(([name, dims]) => {
  const n = dims.reduce((a, b) => a * b, 1);
  const fanIn = dims.length > 1 ? n / dims[0] : 16;
  const scale = dims.length > 1 ? Math.sqrt(3 / fanIn) : 0.1;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * scale;
  const bytes = new Uint8Array(data.buffer);
  chunks.push({ offset, bytes });
  const spec: TensorSpec = {
    name,
    dtype: "float32",
    dims,
    external: { location: DATA, offset, length: bytes.byteLength },
  };
  offset = Math.ceil((offset + bytes.byteLength) / 4096) * 4096;
  return spec;
});
// A small inline initializer the compiler needs as a constant (Reshape's shape).
initializers.push({ name: "flat_shape", dtype: "int64", dims: [2], data: [-1n, 16n] });

const model = buildModel({
  opset: 18,
  graph: {
    name: "tinynet",
    inputs: [{ name: "x", dtype: "float32", dims: ["batch", 3, 16, 16] }],
    outputs: [{ name: "probs", dtype: "float32", dims: ["batch", 10] }],
    initializers,
    nodes: [
      {
        op: "Conv",
        name: "conv1",
        inputs: ["x", "conv1.weight", "conv1.bias"],
        outputs: ["c1"],
        attrs: { pads: { ints: [1, 1, 1, 1] } },
      },
      { op: "Relu", name: "relu1", inputs: ["c1"], outputs: ["r1"] },
      {
        op: "MaxPool",
        name: "pool1",
        inputs: ["r1"],
        outputs: ["p1"],
        attrs: { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } },
      },
      {
        op: "Conv",
        name: "conv2",
        inputs: ["p1", "conv2.weight", "conv2.bias"],
        outputs: ["c2"],
        attrs: { pads: { ints: [1, 1, 1, 1] } },
      },
      { op: "Relu", name: "relu2", inputs: ["c2"], outputs: ["r2"] },
      { op: "GlobalAveragePool", name: "gap", inputs: ["r2"], outputs: ["g"] },
      { op: "Reshape", name: "flatten", inputs: ["g", "flat_shape"], outputs: ["f"] },
      // A weight-only Transpose: with deferred weights it runs once per bind, not per eval.
      {
        op: "Transpose",
        name: "proj_t",
        inputs: ["proj.weight"],
        outputs: ["proj_wt"],
        attrs: { perm: { ints: [1, 0] } },
      },
      { op: "MatMul", name: "proj", inputs: ["f", "proj_wt"], outputs: ["h0"] },
      { op: "Add", name: "proj_bias", inputs: ["h0", "proj.bias"], outputs: ["h1"] },
      { op: "Relu", name: "relu3", inputs: ["h1"], outputs: ["h"] },
      {
        op: "Gemm",
        name: "fc",
        inputs: ["h", "fc.weight", "fc.bias"],
        outputs: ["logits"],
        attrs: { transB: { i: 1 } },
      },
      { op: "Softmax", name: "softmax", inputs: ["logits"], outputs: ["probs"], attrs: { axis: { i: -1 } } },
    ],
  },
});

await Deno.mkdir(DIR, { recursive: true });
await Deno.writeFile(new URL("tinynet.onnx", DIR), model);
const last = chunks[chunks.length - 1];
const data = new Uint8Array(last.offset + last.bytes.byteLength);
for (const c of chunks) data.set(c.bytes, c.offset);
await Deno.writeFile(new URL(DATA, DIR), data);
console.error(`make_example: examples/tinynet/tinynet.onnx (${model.length} B) + ${DATA} (${data.length} B)`);
