// kiln's ref target against onnxruntime-node on the same inputs and weights: small models built
// here with the importer's writer (conv net, transformer block), and the real exporter graphs
// (GPT-2, BERT, ResNet-50 from shared/models, skipped when absent) with seeded weight sets.
// Bar: every output finite and relative L2 error ||kiln - ort|| / ||ort|| <= 1e-4.

import { SHARED_MODELS } from "./util/models.ts";
import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type ModelSpec, type TensorSpec } from "../core/onnx/writer.ts";
import { compile } from "../core/program.ts";
import { readRange } from "../core/io.ts";
import { type Tensor, viewAs } from "../core/tensor.ts";
import { externalInitializers, SeededRandom, writeRandomWeights } from "../core/weights/random.ts";
import { onnx } from "../core/onnx/onnx_pb.js";
import { allFinite, floatValues, relativeL2 } from "./conformance/compare.ts";
import { runOrt } from "./util/ort.ts";

const REL_L2_BAR = 1e-4;

function _normal(rng: SeededRandom, dims: number[], std = 1): Float32Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  rng.fillNormal(out, 0, std);
  return out;
}

function _weight(rng: SeededRandom, name: string, dims: number[], std?: number): TensorSpec {
  const fanIn = dims.slice(1).reduce((a, b) => a * b, 1) || 1;
  return { name, dtype: "float32", dims, data: _normal(rng, dims, std ?? 1 / Math.sqrt(fanIn)) };
}

/** Runs kiln (ref) and onnxruntime-node on the same inputs; asserts the bar on every output. */
async function _compare(
  label: string,
  model: string | Uint8Array,
  inputs: Record<string, Tensor>,
): Promise<Record<string, number>> {
  const ort = await runOrt(model, inputs);
  const inputDims: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(inputs)) inputDims[k] = v.dims;
  const t0 = performance.now();
  const parsed = await parseOnnx(model, { inputDims });
  const program = compile(parsed, "ref");
  const t1 = performance.now();
  let kiln: Record<string, Tensor>;
  try {
    kiln = await program.eval(inputs);
  } finally {
    program.dispose();
  }
  const t2 = performance.now();
  const errors: Record<string, number> = {};
  for (const [name, want] of Object.entries(ort)) {
    const got = kiln[name];
    assert.ok(got, `${label}: kiln returned no output '${name}'`);
    assert.equal(got.dtype, want.dtype, `${label}: output '${name}' dtype`);
    assert.deepEqual(got.dims, want.dims, `${label}: output '${name}' dims`);
    assert.ok(allFinite(want), `${label}: onnxruntime's output '${name}' is not finite (weights too wild)`);
    assert.ok(allFinite(got), `${label}: kiln's output '${name}' has non-finite values`);
    const ref = floatValues(want);
    assert.ok(
      ref.some((v) => v !== ref[0]),
      `${label}: onnxruntime's output '${name}' is constant (a degenerate check)`,
    );
    const e = relativeL2(got, want);
    errors[name] = e;
    console.log(
      `${label}: output '${name}' ${want.dtype}[${want.dims.join(",")}] rel L2 ${e.toExponential(2)} ` +
        `(parse+compile ${(t1 - t0).toFixed(0)} ms, eval ${(t2 - t1).toFixed(0)} ms)`,
    );
    assert.ok(e <= REL_L2_BAR, `${label}: output '${name}' relative L2 error ${e} > ${REL_L2_BAR}`);
  }
  return errors;
}

Deno.test("oracle: conv net (Conv+Relu+MaxPool+Flatten+Gemm) matches onnxruntime-node", async () => {
  const rng = new SeededRandom(11);
  const spec: ModelSpec = {
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [2, 3, 16, 16] }],
      outputs: [{ name: "y", dtype: "float32", dims: [2, 10] }],
      initializers: [
        _weight(rng, "c1.w", [8, 3, 3, 3]),
        _weight(rng, "c1.b", [8], 0.1),
        _weight(rng, "c2.w", [16, 8, 3, 3]),
        _weight(rng, "c2.b", [16], 0.1),
        _weight(rng, "fc.w", [10, 16 * 4 * 4]),
        _weight(rng, "fc.b", [10], 0.1),
      ],
      nodes: [
        {
          op: "Conv",
          inputs: ["x", "c1.w", "c1.b"],
          outputs: ["a1"],
          attrs: { pads: { ints: [1, 1, 1, 1] } },
        },
        { op: "Relu", inputs: ["a1"], outputs: ["r1"] },
        {
          op: "MaxPool",
          inputs: ["r1"],
          outputs: ["p1"],
          attrs: { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } },
        },
        {
          op: "Conv",
          inputs: ["p1", "c2.w", "c2.b"],
          outputs: ["a2"],
          attrs: { pads: { ints: [1, 1, 1, 1] }, strides: { ints: [2, 2] } },
        },
        { op: "Relu", inputs: ["a2"], outputs: ["r2"] },
        { op: "Flatten", inputs: ["r2"], outputs: ["f"], attrs: { axis: { i: 1 } } },
        { op: "Gemm", inputs: ["f", "fc.w", "fc.b"], outputs: ["y"], attrs: { transB: { i: 1 } } },
      ],
    },
  };
  const x: Tensor = { dtype: "float32", dims: [2, 3, 16, 16], data: _normal(rng, [2, 3, 16, 16]) };
  await _compare("conv net", buildModel(spec), { x });
});

Deno.test("oracle: transformer block (LayerNorm, attention with Softmax, MLP with Gelu) matches onnxruntime-node", async () => {
  const rng = new SeededRandom(12);
  const S = 16, D = 32, H = 2, Dh = D / H, F = 64;
  const i64 = (v: number[]): TensorSpec["data"] => BigInt64Array.from(v.map(BigInt));
  const spec: ModelSpec = {
    opset: 20, // Gelu is an opset-20 op
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [1, S, D] }],
      outputs: [{ name: "y", dtype: "float32", dims: [1, S, D] }],
      initializers: [
        { name: "ln1.g", dtype: "float32", dims: [D], data: _normal(rng, [D], 0.02).map((v) => 1 + v) },
        _weight(rng, "ln1.b", [D], 0.02),
        _weight(rng, "wq", [D, D]),
        _weight(rng, "wk", [D, D]),
        _weight(rng, "wv", [D, D]),
        _weight(rng, "wo", [D, D]),
        _weight(rng, "bq", [D], 0.02),
        { name: "heads", dtype: "int64", dims: [4], data: i64([1, S, H, Dh]) },
        { name: "merged", dtype: "int64", dims: [3], data: i64([1, S, D]) },
        { name: "scale", dtype: "float32", dims: [], data: new Float32Array([1 / Math.sqrt(Dh)]) },
        { name: "ln2.g", dtype: "float32", dims: [D], data: _normal(rng, [D], 0.02).map((v) => 1 + v) },
        _weight(rng, "ln2.b", [D], 0.02),
        _weight(rng, "w1", [D, F]),
        _weight(rng, "b1", [F], 0.02),
        _weight(rng, "w2", [F, D]),
      ],
      nodes: [
        {
          op: "LayerNormalization",
          inputs: ["x", "ln1.g", "ln1.b"],
          outputs: ["h"],
          attrs: { axis: { i: -1 } },
        },
        { op: "MatMul", inputs: ["h", "wq"], outputs: ["q0"] },
        { op: "Add", inputs: ["q0", "bq"], outputs: ["q1"] },
        { op: "MatMul", inputs: ["h", "wk"], outputs: ["k0"] },
        { op: "MatMul", inputs: ["h", "wv"], outputs: ["v0"] },
        { op: "Reshape", inputs: ["q1", "heads"], outputs: ["q2"] },
        { op: "Reshape", inputs: ["k0", "heads"], outputs: ["k2"] },
        { op: "Reshape", inputs: ["v0", "heads"], outputs: ["v2"] },
        { op: "Transpose", inputs: ["q2"], outputs: ["q"], attrs: { perm: { ints: [0, 2, 1, 3] } } },
        { op: "Transpose", inputs: ["k2"], outputs: ["kt"], attrs: { perm: { ints: [0, 2, 3, 1] } } },
        { op: "Transpose", inputs: ["v2"], outputs: ["v"], attrs: { perm: { ints: [0, 2, 1, 3] } } },
        { op: "MatMul", inputs: ["q", "kt"], outputs: ["s0"] },
        { op: "Mul", inputs: ["s0", "scale"], outputs: ["s"] },
        { op: "Softmax", inputs: ["s"], outputs: ["p"], attrs: { axis: { i: -1 } } },
        { op: "MatMul", inputs: ["p", "v"], outputs: ["o0"] },
        { op: "Transpose", inputs: ["o0"], outputs: ["o1"], attrs: { perm: { ints: [0, 2, 1, 3] } } },
        { op: "Reshape", inputs: ["o1", "merged"], outputs: ["o2"] },
        { op: "MatMul", inputs: ["o2", "wo"], outputs: ["o"] },
        { op: "Add", inputs: ["x", "o"], outputs: ["r1"] },
        {
          op: "LayerNormalization",
          inputs: ["r1", "ln2.g", "ln2.b"],
          outputs: ["h2"],
          attrs: { axis: { i: -1 } },
        },
        { op: "MatMul", inputs: ["h2", "w1"], outputs: ["m0"] },
        { op: "Add", inputs: ["m0", "b1"], outputs: ["m1"] },
        { op: "Gelu", inputs: ["m1"], outputs: ["m2"], attrs: { approximate: { s: "tanh" } } },
        { op: "MatMul", inputs: ["m2", "w2"], outputs: ["m3"] },
        { op: "Add", inputs: ["r1", "m3"], outputs: ["y"] },
      ],
    },
  };
  const x: Tensor = { dtype: "float32", dims: [1, S, D], data: _normal(rng, [1, S, D]) };
  await _compare("transformer block", buildModel(spec), { x });
});

// ---- Real exporter graphs with seeded weights ----

const MODELS = SHARED_MODELS;

interface RealModel {
  file: string;
  input: string;
  dims: number[];
}

const REAL: RealModel[] = [
  { file: "resnet50_dynamo.onnx", input: "x", dims: [1, 3, 224, 224] },
  { file: "bert_dynamo.onnx", input: "ids", dims: [1, 128] },
  { file: "gpt2_dynamo.onnx", input: "ids", dims: [1, 128] },
];

const _LAYOUT_OPS = new Set(["Reshape", "Cast", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Expand"]);

/** The number of rows of the embedding table that the int64 graph input indexes (via Gather). */
function _vocab(modelBytes: Uint8Array, input: string): number {
  const g = onnx.ModelProto.decode(modelBytes).graph!;
  const ext = new Map(externalInitializers(modelBytes).map((t) => [t.name, t.dims]));
  // The ids may pass through layout ops (Reshape, Cast, ...) before the Gather.
  const ids = new Set([input]);
  for (const n of g.node ?? []) {
    const ins = n.input ?? [];
    if (n.op_type === "Gather" && ids.has(ins[1]) && ext.has(ins[0])) return ext.get(ins[0])![0];
    if (_LAYOUT_OPS.has(n.op_type ?? "") && ids.has(ins[0])) { for (const o of n.output ?? []) ids.add(o); }
  }
  throw new Error(`No Gather of an embedding initializer by '${input}' found`);
}

for (const m of REAL) {
  const path = `${MODELS}/${m.file}`;
  let present = false;
  try {
    present = Deno.statSync(path).isFile;
  } catch { /* absent */ }
  if (!present) console.log(`oracle test of ${m.file} skipped: ${path} not found`);
  Deno.test({
    name: `oracle: ${m.file} with seeded weights matches onnxruntime-node (rel L2 <= 1e-4)`,
    ignore: !present,
    sanitizeResources: false,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "kiln_oracle_" });
      try {
        const { modelPath } = await writeRandomWeights(path, dir, { seed: 2024 });
        const rng = new SeededRandom(99);
        let x: Tensor;
        if (m.input === "ids") {
          const vocab = _vocab(await Deno.readFile(modelPath), m.input);
          const ids = new BigInt64Array(m.dims.reduce((a, b) => a * b, 1));
          for (let i = 0; i < ids.length; i++) ids[i] = BigInt(rng.int(vocab));
          x = { dtype: "int64", dims: m.dims, data: ids };
          console.log(`${m.file}: token ids drawn from [0, ${vocab})`);
        } else {
          x = { dtype: "float32", dims: m.dims, data: _normal(rng, m.dims) };
        }
        await _compare(m.file, modelPath, { [m.input]: x });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

// ---- Deferred weights swapped at run time, against onnxruntime on each weight set ----

/** Reads a program's deferred weights from a weight-set folder (the seeded data files). */
async function _loadWeights(
  program: ReturnType<typeof compile>,
  dir: string,
): Promise<Record<string, Tensor>> {
  const out: Record<string, Tensor> = {};
  for (const w of program.weights) {
    const bytes = await readRange(`${dir}/${w.location}`, w.offset, w.length);
    out[w.name] = { dtype: w.dtype, dims: [...w.dims], data: viewAs(w.dtype, bytes) };
  }
  return out;
}

/**
 * Writes two seeded weight sets for `model`, compiles kiln once with deferred weights, and for
 * each set binds it (no recompilation) and compares with onnxruntime run on that set.
 */
async function _swapCheck(label: string, model: string, inputs: Record<string, Tensor>): Promise<void> {
  const dirs = [
    await Deno.makeTempDir({ prefix: "kiln_swap_a_" }),
    await Deno.makeTempDir({ prefix: "kiln_swap_b_" }),
  ];
  let program: ReturnType<typeof compile> | null = null;
  try {
    const paths: string[] = [];
    for (const [i, d] of dirs.entries()) {
      paths.push((await writeRandomWeights(model, d, { seed: 100 + i })).modelPath);
    }
    const inputDims: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(inputs)) inputDims[k] = v.dims;
    program = compile(await parseOnnx(paths[0], { inputDims, deferExternalWeights: true }), "ref");
    assert.ok(program.weights.length > 0, `${label}: no deferred weights`);
    const seen: Record<string, Tensor>[] = [];
    for (const [i, d] of dirs.entries()) {
      const want = await runOrt(paths[i], inputs);
      await program.setWeights(await _loadWeights(program, d));
      const got = await program.eval(inputs);
      for (const [name, ref] of Object.entries(want)) {
        assert.ok(allFinite(got[name]), `${label}: weight set ${i}: output '${name}' not finite`);
        const e = relativeL2(got[name], ref);
        console.log(
          `${label}: weight set ${i} (${program.weights.length} deferred weights): '${name}' rel L2 ${
            e.toExponential(2)
          }`,
        );
        assert.ok(
          e <= REL_L2_BAR,
          `${label}: weight set ${i}: output '${name}' relative L2 error ${e} > ${REL_L2_BAR}`,
        );
      }
      seen.push(got);
    }
    for (const name of Object.keys(seen[0])) {
      assert.ok(
        relativeL2(seen[0][name], seen[1][name]) > 1e-2,
        `${label}: swapping weights did not change '${name}'`,
      );
    }
  } finally {
    program?.dispose();
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
}

Deno.test("oracle: deferred weights swapped at run time match onnxruntime-node on each weight set (conv net)", async () => {
  const src = await Deno.makeTempDir({ prefix: "kiln_swap_src_" });
  try {
    const ext = (name: string, dims: number[], offset: number): TensorSpec => ({
      name,
      dtype: "float32",
      dims,
      external: { location: "net.bin", offset, length: 4 * dims.reduce((a, b) => a * b, 1) },
    });
    const spec: ModelSpec = {
      opset: 18,
      graph: {
        inputs: [{ name: "x", dtype: "float32", dims: [1, 3, 8, 8] }],
        outputs: [{ name: "y", dtype: "float32", dims: [1, 5] }],
        initializers: [
          ext("conv.weight", [4, 3, 3, 3], 0),
          ext("conv.bias", [4], 4096),
          ext("fc.weight", [5, 4 * 8 * 8], 8192),
          ext("fc.bias", [5], 16384),
        ],
        nodes: [
          {
            op: "Conv",
            inputs: ["x", "conv.weight", "conv.bias"],
            outputs: ["c"],
            attrs: { pads: { ints: [1, 1, 1, 1] } },
          },
          { op: "Relu", inputs: ["c"], outputs: ["r"] },
          { op: "Flatten", inputs: ["r"], outputs: ["f"] },
          { op: "Gemm", inputs: ["f", "fc.weight", "fc.bias"], outputs: ["y"], attrs: { transB: { i: 1 } } },
        ],
      },
    };
    await Deno.writeFile(`${src}/net.onnx`, buildModel(spec));
    const x: Tensor = {
      dtype: "float32",
      dims: [1, 3, 8, 8],
      data: _normal(new SeededRandom(5), [1, 3, 8, 8]),
    };
    await _swapCheck("conv net (swap)", `${src}/net.onnx`, { x });
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});

const RESNET = `${MODELS}/resnet50_dynamo.onnx`;
let resnetPresent = false;
try {
  resnetPresent = Deno.statSync(RESNET).isFile;
} catch { /* absent */ }
if (!resnetPresent) console.log(`swap oracle test of ResNet-50 skipped: ${RESNET} not found`);

Deno.test({
  name:
    "oracle: resnet50_dynamo.onnx compiled once with deferred weights matches onnxruntime-node on two weight sets",
  ignore: !resnetPresent,
  sanitizeResources: false,
  async fn() {
    const x: Tensor = {
      dtype: "float32",
      dims: [1, 3, 224, 224],
      data: _normal(new SeededRandom(6), [1, 3, 224, 224]),
    };
    await _swapCheck("resnet50 (swap)", RESNET, { x });
  },
});

Deno.test("oracle: 3-D MaxPool with a depth-1 kernel over an input deeper than 1 matches onnxruntime-node", async () => {
  // a depth stride past the input keeps one output plane per channel; the planar fast path must not
  // be taken for it (it stepped planes by H*W instead of D*H*W)
  const rng = new SeededRandom(5);
  const x: Tensor = { dtype: "float32", dims: [1, 2, 4, 5, 5], data: _normal(rng, [1, 2, 4, 5, 5]) };
  const spec: ModelSpec = {
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [1, 2, 4, 5, 5] }],
      outputs: [{ name: "y", dtype: "float32", dims: [1, 2, 1, 4, 4] }],
      nodes: [{
        op: "MaxPool",
        inputs: ["x"],
        outputs: ["y"],
        attrs: { kernel_shape: { ints: [1, 2, 2] }, strides: { ints: [4, 1, 1] } },
      }],
    },
  };
  await _compare("3-D MaxPool", buildModel(spec), { x });
});
