// LSTM, GRU and RNN (wasm/ops/rnn.ts) on kiln's ref target against onnxruntime-node: forward,
// reverse and bidirectional, sequence_lens (a length of 0 included), initial states, peepholes,
// clip, input_forget, linear_before_reset, non-default activations with alpha/beta, omitted
// outputs, float64, and layout 1 (onnxruntime's CPU kernels support layout 0 only, so a layout 1
// node is checked against the layout 0 node on transposed tensors). Then bad input: weight
// shapes that contradict hidden_size, unknown activations, wrong activation counts, bad
// directions, out-of-range sequence_lens.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec } from "../core/onnx/writer.ts";
import { compile } from "../core/program.ts";
import { elementCount, type Tensor } from "../core/tensor.ts";
import { replaceOnnxExternalWeights, WeightSet } from "../mod.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { runOrt } from "./util/ort.ts";
import { evalOnRef } from "./util/ref.ts";
import { assertMatch } from "./util/tensors.ts";
import { lstmClassifier } from "./util/zoo_rnn.ts";

type Kind = "LSTM" | "GRU" | "RNN";

const GATES: Record<Kind, number> = { LSTM: 4, GRU: 3, RNN: 1 };

interface RnnCase {
  seq: number;
  batch: number;
  input: number;
  hidden: number;
  direction?: "forward" | "reverse" | "bidirectional";
  layout?: 0 | 1;
  bias?: boolean;
  seqLens?: number[];
  initialH?: boolean;
  initialC?: boolean;
  peepholes?: boolean;
  attrs?: NodeSpec["attrs"];
  /** Which outputs the node names (default all): false leaves that output's name empty. */
  outputs?: boolean[];
  dtype?: "float32" | "float64";
  seed?: number;
}

function _rand(dtype: "float32" | "float64", dims: number[], seed: number, scale: number): Tensor {
  const n = elementCount(dims);
  const f = (i: number) => scale * Math.sin(i * 0.7311 + seed * 1.37) * Math.cos(i * 0.1931 + seed * 0.61);
  const data = dtype === "float64" ? Float64Array.from({ length: n }, (_, i) => f(i)) : Float32Array.from(
    { length: n },
    (_, i) => f(i),
  );
  return { dtype, dims, data };
}

/** Permutes a tensor's axes: out dims[i] = dims[perm[i]]. */
function _permute(t: Tensor, perm: number[]): Tensor {
  const dims = perm.map((p) => t.dims[p]);
  const src = t.data as Float32Array | Float64Array;
  const out = new (src.constructor as Float32ArrayConstructor)(src.length);
  const inStrides = t.dims.map((_, i) => elementCount(t.dims.slice(i + 1)));
  const idx = new Array(dims.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let s = 0;
    for (let i = 0; i < dims.length; i++) s += idx[i] * inStrides[perm[i]];
    out[o] = src[s];
    for (let i = dims.length - 1; i >= 0; i--) {
      if (++idx[i] < dims[i]) break;
      idx[i] = 0;
    }
  }
  return { dtype: t.dtype, dims, data: out };
}

/** The node's inputs (layout 0 shapes, or layout 1 where the case says) and the model bytes. */
function _build(
  kind: Kind,
  c: RnnCase,
  layout: 0 | 1,
): { model: Uint8Array; inputs: Record<string, Tensor> } {
  const dt = c.dtype ?? "float32";
  const nd = c.direction === "bidirectional" ? 2 : 1;
  const G = GATES[kind], H = c.hidden, seed = c.seed ?? 1;
  const inputs: Record<string, Tensor> = {};
  const names: string[] = [];
  const add = (name: string, t: Tensor | null) => {
    names.push(t ? name : "");
    if (t) inputs[name] = t;
  };
  const x = _rand(dt, [c.seq, c.batch, c.input], seed, 1.5);
  add("X", layout === 1 ? _permute(x, [1, 0, 2]) : x);
  add("W", _rand(dt, [nd, G * H, c.input], seed + 1, 0.6));
  add("R", _rand(dt, [nd, G * H, H], seed + 2, 0.6));
  add("B", c.bias ? _rand(dt, [nd, 2 * G * H], seed + 3, 0.5) : null);
  add(
    "sequence_lens",
    c.seqLens ? { dtype: "int32", dims: [c.batch], data: Int32Array.from(c.seqLens) } : null,
  );
  const state = (s: number) => {
    const t = _rand(dt, [nd, c.batch, H], s, 0.8);
    return layout === 1 ? _permute(t, [1, 0, 2]) : t;
  };
  add("initial_h", c.initialH ? state(seed + 4) : null);
  if (kind === "LSTM") {
    add("initial_c", c.initialC ? state(seed + 5) : null);
    add("P", c.peepholes ? _rand(dt, [nd, 3 * H], seed + 6, 0.5) : null);
  }
  while (names.length > 0 && names[names.length - 1] === "") names.pop();
  const outNames = ["Y", "Y_h", "Y_c"].slice(0, kind === "LSTM" ? 3 : 2);
  const outs = outNames.map((n, i) => (c.outputs?.[i] ?? true) ? n : "");
  const attrs: NodeSpec["attrs"] = { hidden_size: { i: H }, ...c.attrs };
  if (c.direction) attrs.direction = { s: c.direction };
  if (layout === 1) attrs.layout = { i: 1 };
  const model = buildModel({
    opset: 22,
    graph: {
      inputs: Object.entries(inputs).map(([name, t]) => ({ name, dtype: t.dtype, dims: t.dims })),
      outputs: outs.filter((o) => o !== "").map((name) => ({ name, dtype: dt })),
      nodes: [{ op: kind, inputs: names, outputs: outs, name: `${kind}_node`, attrs }],
    },
  });
  return { model, inputs };
}

function _assertClose(
  got: Tensor | undefined,
  want: Tensor,
  label: string,
  atol: number,
  rtol: number,
): void {
  assert.ok(got, `${label}: kiln returned no output`);
  assert.equal(got.dtype, want.dtype, `${label}: dtype`);
  assert.deepEqual(got.dims, want.dims, `${label}: dims`);
  const g = got.data as Float32Array, w = want.data as Float32Array;
  for (let i = 0; i < w.length; i++) {
    assert.ok(
      Math.abs(g[i] - w[i]) <= atol + rtol * Math.abs(w[i]),
      `${label}: element ${i} is ${g[i]}, onnxruntime gives ${w[i]}`,
    );
  }
}

/**
 * Runs `kind` on kiln and onnxruntime-node and compares every output. A layout 1 case runs on
 * onnxruntime as the layout 0 node on the same data, its outputs transposed to layout 1.
 */
async function _check(kind: Kind, c: RnnCase): Promise<void> {
  const layout = c.layout ?? 0;
  const f64 = c.dtype === "float64";
  const label = `${kind} ${JSON.stringify(c)}`;
  // onnxruntime's CPU recurrent kernels are float32 only: a float64 case is checked against the
  // float32 node on the same values (rounded to float32)
  const ref = _build(kind, { ...c, dtype: "float32" }, 0);
  let want = await runOrt(ref.model, ref.inputs);
  if (f64) {
    want = Object.fromEntries(
      Object.entries(want).map((
        [k, v],
      ) => [k, { ...v, dtype: "float64", data: Float64Array.from(v.data as Float32Array) }]),
    );
  }
  const mine = layout === 1 || f64 ? _build(kind, c, layout) : ref;
  if (layout === 1) {
    want = Object.fromEntries(
      Object.entries(want).map(([k, v]) => [k, _permute(v, k === "Y" ? [2, 0, 1, 3] : [1, 0, 2])]),
    );
  }
  const got = await evalOnRef(mine.model, mine.inputs);
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${label}: output names`);
  const atol = f64 ? 1e-4 : 2e-5;
  for (const [name, w] of Object.entries(want)) _assertClose(got[name], w, `${label} -> ${name}`, atol, 1e-4);
}

Deno.test("LSTM matches onnxruntime: directions, sequence_lens, states, peepholes, clip, activations, layout 1", async (t) => {
  const cases: [string, RnnCase][] = [
    ["forward, bias and initial states", {
      seq: 5,
      batch: 3,
      input: 4,
      hidden: 6,
      bias: true,
      initialH: true,
      initialC: true,
    }],
    ["no optional inputs", { seq: 3, batch: 2, input: 3, hidden: 5 }],
    [
      "bidirectional, peepholes, sequence_lens with a 0",
      {
        seq: 6,
        batch: 4,
        input: 3,
        hidden: 5,
        direction: "bidirectional",
        bias: true,
        peepholes: true,
        initialH: true,
        initialC: true,
        seqLens: [6, 2, 0, 4],
      },
    ],
    [
      "reverse, sequence_lens",
      {
        seq: 5,
        batch: 3,
        input: 4,
        hidden: 7,
        direction: "reverse",
        bias: true,
        initialH: true,
        seqLens: [3, 5, 1],
      },
    ],
    [
      "clip and input_forget",
      {
        seq: 6,
        batch: 2,
        input: 3,
        hidden: 4,
        bias: true,
        peepholes: true,
        initialC: true,
        attrs: { clip: { f: 0.7 }, input_forget: { i: 1 } },
      },
    ],
    [
      "bidirectional, non-default activations with alpha and beta",
      {
        seq: 4,
        batch: 2,
        input: 3,
        hidden: 5,
        direction: "bidirectional",
        bias: true,
        initialH: true,
        attrs: {
          activations: { strings: ["HardSigmoid", "LeakyRelu", "Softsign", "Sigmoid", "ScaledTanh", "Elu"] },
          activation_alpha: { floats: [0.3, 0.05, 0.9, 1.3] },
          activation_beta: { floats: [0.4, 0.7] },
        },
      },
    ],
    [
      "Affine, ThresholdedRelu, Softplus, Relu",
      {
        seq: 3,
        batch: 2,
        input: 3,
        hidden: 4,
        bias: true,
        initialC: true,
        attrs: {
          activations: { strings: ["Sigmoid", "Affine", "Softplus"] },
          activation_alpha: { floats: [0.5] },
          activation_beta: { floats: [-0.1] },
        },
      },
    ],
    [
      "layout 1, bidirectional, sequence_lens, states",
      {
        seq: 5,
        batch: 3,
        input: 4,
        hidden: 6,
        layout: 1,
        direction: "bidirectional",
        bias: true,
        peepholes: true,
        initialH: true,
        initialC: true,
        seqLens: [5, 3, 2],
      },
    ],
    ["only Y_h and Y_c", { seq: 4, batch: 2, input: 3, hidden: 5, bias: true, outputs: [false, true, true] }],
    ["only Y", {
      seq: 4,
      batch: 2,
      input: 3,
      hidden: 5,
      direction: "reverse",
      outputs: [true, false, false],
    }],
    [
      "float64, bidirectional",
      {
        seq: 4,
        batch: 2,
        input: 3,
        hidden: 4,
        direction: "bidirectional",
        bias: true,
        initialH: true,
        dtype: "float64",
      },
    ],
    [
      "batch 1, bidirectional (GEMV steps)",
      {
        seq: 5,
        batch: 1,
        input: 6,
        hidden: 9,
        direction: "bidirectional",
        bias: true,
        peepholes: true,
        initialC: true,
      },
    ],
    [
      "every sequence shorter than seq_length",
      { seq: 6, batch: 3, input: 3, hidden: 4, direction: "bidirectional", bias: true, seqLens: [2, 4, 1] },
    ],
    ["hidden 40, batch 9 (SGEMM edge tiles)", {
      seq: 7,
      batch: 9,
      input: 33,
      hidden: 40,
      bias: true,
      initialH: true,
    }],
  ];
  for (const [what, c] of cases) await t.step(what, () => _check("LSTM", c));
});

Deno.test("GRU matches onnxruntime: linear_before_reset, directions, sequence_lens, clip, activations, layout 1", async (t) => {
  const cases: [string, RnnCase][] = [
    ["forward, bias and initial_h", { seq: 5, batch: 3, input: 4, hidden: 6, bias: true, initialH: true }],
    [
      "linear_before_reset, bidirectional, sequence_lens with a 0",
      {
        seq: 6,
        batch: 4,
        input: 3,
        hidden: 5,
        direction: "bidirectional",
        bias: true,
        initialH: true,
        seqLens: [6, 0, 3, 1],
        attrs: { linear_before_reset: { i: 1 } },
      },
    ],
    [
      "reverse, sequence_lens, clip",
      {
        seq: 5,
        batch: 3,
        input: 4,
        hidden: 7,
        direction: "reverse",
        bias: true,
        seqLens: [2, 5, 4],
        attrs: { clip: { f: 0.5 } },
      },
    ],
    [
      "non-default activations with alpha and beta",
      {
        seq: 4,
        batch: 2,
        input: 3,
        hidden: 5,
        direction: "bidirectional",
        bias: true,
        initialH: true,
        attrs: {
          activations: { strings: ["HardSigmoid", "ScaledTanh", "Sigmoid", "LeakyRelu"] },
          activation_alpha: { floats: [0.25, 0.8, 0.2] },
          activation_beta: { floats: [0.45, 1.2] },
        },
      },
    ],
    [
      "layout 1, linear_before_reset, sequence_lens",
      {
        seq: 5,
        batch: 3,
        input: 2,
        hidden: 4,
        layout: 1,
        direction: "bidirectional",
        bias: true,
        initialH: true,
        seqLens: [1, 5, 3],
        attrs: { linear_before_reset: { i: 1 } },
      },
    ],
    ["only Y_h", { seq: 4, batch: 2, input: 3, hidden: 5, bias: true, outputs: [false, true] }],
    [
      "float64, linear_before_reset",
      {
        seq: 4,
        batch: 2,
        input: 3,
        hidden: 4,
        bias: true,
        dtype: "float64",
        attrs: { linear_before_reset: { i: 1 } },
      },
    ],
    ["hidden 33, batch 7", { seq: 6, batch: 7, input: 20, hidden: 33, bias: true, initialH: true }],
    [
      "batch 1, reverse (GEMV steps)",
      { seq: 5, batch: 1, input: 4, hidden: 10, direction: "reverse", bias: true, initialH: true },
    ],
    [
      "every sequence shorter than seq_length, reverse",
      {
        seq: 6,
        batch: 3,
        input: 3,
        hidden: 4,
        direction: "reverse",
        bias: true,
        initialH: true,
        seqLens: [3, 2, 5],
      },
    ],
  ];
  for (const [what, c] of cases) await t.step(what, () => _check("GRU", c));
});

Deno.test("RNN matches onnxruntime: directions, sequence_lens, clip, activations, layout 1", async (t) => {
  const cases: [string, RnnCase][] = [
    ["forward, bias and initial_h", { seq: 5, batch: 3, input: 4, hidden: 6, bias: true, initialH: true }],
    [
      "bidirectional Relu / Softplus, sequence_lens with a 0",
      {
        seq: 6,
        batch: 4,
        input: 3,
        hidden: 5,
        direction: "bidirectional",
        bias: true,
        initialH: true,
        seqLens: [6, 0, 3, 2],
        attrs: { activations: { strings: ["Relu", "Softplus"] } },
      },
    ],
    [
      "reverse, clip, ThresholdedRelu",
      {
        seq: 5,
        batch: 3,
        input: 4,
        hidden: 7,
        direction: "reverse",
        bias: true,
        seqLens: [2, 5, 4],
        attrs: {
          clip: { f: 0.9 },
          activations: { strings: ["ThresholdedRelu"] },
          activation_alpha: { floats: [0.1] },
        },
      },
    ],
    [
      "Affine and Elu",
      {
        seq: 4,
        batch: 2,
        input: 3,
        hidden: 4,
        direction: "bidirectional",
        bias: true,
        attrs: {
          activations: { strings: ["Affine", "Elu"] },
          activation_alpha: { floats: [0.6, 0.7] },
          activation_beta: { floats: [0.2] },
        },
      },
    ],
    [
      "layout 1, bidirectional, sequence_lens",
      {
        seq: 4,
        batch: 3,
        input: 3,
        hidden: 5,
        layout: 1,
        direction: "bidirectional",
        bias: true,
        initialH: true,
        seqLens: [4, 1, 2],
      },
    ],
  ];
  for (const [what, c] of cases) await t.step(what, () => _check("RNN", c));
});

Deno.test("LSTM / GRU / RNN refuse bad input with an error naming the node", async (t) => {
  const cases: [string, Kind, RnnCase, RegExp][] = [
    [
      "W that contradicts hidden_size",
      "LSTM",
      { seq: 3, batch: 2, input: 3, hidden: 4, attrs: { hidden_size: { i: 5 } } },
      /LSTM_node.*W float32\[1,16,3\] must be \[1, 4\*5, 3\]/,
    ],
    [
      "unknown activation",
      "GRU",
      { seq: 3, batch: 2, input: 3, hidden: 4, attrs: { activations: { strings: ["Sigmoid", "Swish"] } } },
      /GRU_node.*unknown activation 'Swish'/,
    ],
    [
      "activation count",
      "RNN",
      {
        seq: 3,
        batch: 2,
        input: 3,
        hidden: 4,
        direction: "bidirectional",
        attrs: { activations: { strings: ["Tanh"] } },
      },
      /RNN_node.*'activations' has 1 names, expected 2/,
    ],
    [
      "direction",
      "RNN",
      { seq: 3, batch: 2, input: 3, hidden: 4, attrs: { direction: { s: "sideways" } } },
      /RNN_node.*direction 'sideways' is not one of forward, reverse, bidirectional/,
    ],
    [
      "non-positive clip",
      "LSTM",
      { seq: 3, batch: 2, input: 3, hidden: 4, attrs: { clip: { f: -1 } } },
      /LSTM_node.*clip -1\.0 must be positive/,
    ],
  ];
  for (const [what, kind, c, re] of cases) {
    await t.step(what, async () => {
      const { model } = _build(kind, c, c.layout ?? 0);
      const parsed = await parseOnnx(model);
      assert.throws(() => compile(parsed, "ref"), (e: Error) => {
        assert.match(e.message, re);
        return true;
      });
    });
  }
  // element types: every input but sequence_lens has X's float type; sequence_lens is int32
  const typed: [string, Record<string, Tensor>, RegExp][] = [
    [
      "W of another float type",
      {
        X: _rand("float32", [3, 2, 3], 1, 1),
        W: _rand("float64", [1, 4, 3], 2, 1),
        R: _rand("float32", [1, 4, 4], 3, 1),
      },
      /RNN_node.*input 1 has element type float64, X has float32/,
    ],
    [
      "int64 sequence_lens",
      {
        X: _rand("float32", [3, 2, 3], 1, 1),
        W: _rand("float32", [1, 4, 3], 2, 1),
        R: _rand("float32", [1, 4, 4], 3, 1),
        B: _rand("float32", [1, 8], 4, 1),
        L: { dtype: "int64", dims: [2], data: BigInt64Array.from([3n, 2n]) },
      },
      /RNN_node.*sequence_lens must be int32, got int64/,
    ],
    [
      "integer X",
      {
        X: { dtype: "int32", dims: [3, 2, 3], data: new Int32Array(18) },
        W: _rand("float32", [1, 4, 3], 2, 1),
        R: _rand("float32", [1, 4, 4], 3, 1),
      },
      /RNN_node.*element type int32 of input 0 is not supported/,
    ],
  ];
  for (const [what, inputs, re] of typed) {
    await t.step(what, async () => {
      const model = buildModel({
        opset: 22,
        graph: {
          inputs: Object.entries(inputs).map(([name, v]) => ({ name, dtype: v.dtype, dims: v.dims })),
          outputs: [{ name: "Y", dtype: "float32" }],
          nodes: [{ op: "RNN", inputs: Object.keys(inputs), outputs: ["Y"], name: "RNN_node" }],
        },
      });
      const parsed = await parseOnnx(model);
      assert.throws(() => compile(parsed, "ref"), (e: Error) => {
        assert.match(e.message, re);
        return true;
      });
    });
  }
  await t.step("sequence_lens past seq_length", async () => {
    const { model, inputs } = _build("GRU", { seq: 3, batch: 2, input: 3, hidden: 4, seqLens: [3, 4] }, 0);
    const program = compile(await parseOnnx(model), "ref");
    try {
      await assert.rejects(
        () => program.eval(inputs),
        /GRU_node.*sequence_lens\[1\] = 4 is outside \[0, 3\]/,
      );
    } finally {
      program.dispose();
    }
  });
});

function _f32(dims: number[], vals: number[]): Tensor {
  return { dtype: "float32", dims, data: Float32Array.from(vals) };
}

Deno.test("LSTM clip bounds the gate inputs but not the cell state before h (as onnxruntime)", async () => {
  // every gate's input is 2 * 3 = 6, clipped to 0.3; the cell state grows past 0.3 and h sees it whole
  const H = 3;
  const inputs = {
    X: _f32([2, 1, 1], [3, 3]),
    W: _f32([1, 4 * H, 1], new Array(4 * H).fill(2)),
    R: _f32([1, 4 * H, H], new Array(4 * H * H).fill(0)),
    C0: _f32([1, 1, H], [5, -5, 0.1]),
  };
  const model = buildModel({
    opset: 14,
    graph: {
      inputs: Object.entries(inputs).map(([name, t]) => ({ name, dtype: t.dtype, dims: t.dims })),
      outputs: ["Y", "Y_h", "Y_c"].map((name) => ({ name, dtype: "float32" })),
      nodes: [{
        op: "LSTM",
        inputs: ["X", "W", "R", "", "", "", "C0"],
        outputs: ["Y", "Y_h", "Y_c"],
        attrs: { hidden_size: { i: H }, clip: { f: 0.3 } },
      }],
    },
  });
  const want = await runOrt(model, inputs);
  const got = await evalOnRef(model, inputs);
  for (const [name, w] of Object.entries(want)) _assertClose(got[name], w, `clip -> ${name}`, 2e-5, 1e-4);
  // hand check of step 0, unit 0: i = o = f = sigmoid(0.3), c~ = tanh(0.3), C = f * 5 + i * c~, H = o * tanh(C)
  const s = 1 / (1 + Math.exp(-0.3)), c = s * 5 + s * Math.tanh(0.3);
  assert.ok(Math.abs((got.Y.data as Float32Array)[0] - s * Math.tanh(c)) < 1e-6);
});

Deno.test("RNN activations without alpha/beta take the defaults of the ONNX ops of those names", async (t) => {
  // one step, W = identity, R = 0, no bias: Y = f(X)
  const x = [-1.5, -0.25, 0.5, 2];
  const cases: [string, (v: number) => number][] = [
    ["Affine", (v) => v],
    ["LeakyRelu", (v) => v >= 0 ? v : 0.01 * v],
    ["ThresholdedRelu", (v) => v > 1 ? v : 0],
    ["ScaledTanh", (v) => Math.tanh(v)],
    ["HardSigmoid", (v) => Math.max(0, Math.min(1, 0.2 * v + 0.5))],
    ["Elu", (v) => v >= 0 ? v : Math.exp(v) - 1],
    ["Softsign", (v) => v / (1 + Math.abs(v))],
    ["Softplus", (v) => Math.log(1 + Math.exp(v))],
    ["Relu", (v) => Math.max(0, v)],
    ["Sigmoid", (v) => 1 / (1 + Math.exp(-v))],
  ];
  const eye = Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0));
  const inputs = {
    X: _f32([1, 1, 4], x),
    W: _f32([1, 4, 4], eye),
    R: _f32([1, 4, 4], new Array(16).fill(0)),
  };
  for (const [name, f] of cases) {
    await t.step(name, async () => {
      const model = buildModel({
        opset: 14,
        graph: {
          inputs: Object.entries(inputs).map(([n, v]) => ({ name: n, dtype: v.dtype, dims: v.dims })),
          outputs: [{ name: "Y", dtype: "float32" }],
          nodes: [{
            op: "RNN",
            inputs: ["X", "W", "R"],
            outputs: ["Y"],
            attrs: { activations: { strings: [name] } },
          }],
        },
      });
      const y = (await evalOnRef(model, inputs)).Y.data as Float32Array;
      x.forEach((v, i) =>
        assert.ok(Math.abs(y[i] - f(v)) < 1e-6, `${name}(${v}) = ${y[i]}, expected ${f(v)}`)
      );
    });
  }
});

Deno.test({
  name:
    `gpu target (${gpuUnderTest().name}): the LSTM zoo model runs its LSTM nodes on the host and matches onnxruntime`,
  ignore: gpuIgnore("ops_rnn_test.ts"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kiln_rnn_gpu_" });
    try {
      const gpu = gpuUnderTest();
      const m = await lstmClassifier(dir);
      const c = m.cases[m.cases.length - 1];
      const v2 = await writeRandomWeights(m.file.path, `${dir}/v2`, { seed: 5 });
      const program = compile(
        await parseOnnx(m.file.path, { inputDims: c.dims, deferExternalWeights: true }),
        "gpu",
        { gpu: gpu.options },
      );
      try {
        assert.deepEqual(program.info().hostNodes.map((h) => h.op).sort(), ["LSTM", "LSTM"]);
        await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
        assertMatch(await program.eval(c.inputs), await runOrt(m.file.path, c.inputs), "gpu, bound v1");
        await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
        const want = await runOrt(v2.modelPath, c.inputs);
        assertMatch(await program.eval(c.inputs), want, "gpu, bound v2");
        const baked = (await replaceOnnxExternalWeights(program, `${dir}/v2`, "gpu")).finalize("gpu", {
          gpu: gpu.options,
        });
        try {
          assertMatch(await baked.eval(c.inputs), want, "gpu, baked v2");
        } finally {
          baked.dispose();
        }
      } finally {
        program.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
