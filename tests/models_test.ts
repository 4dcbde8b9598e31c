// A zoo of small, realistic models in the patterns PyTorch's exporters emit (torch.onnx and the
// dynamo exporter), each with its weights in ONNX external data. Every model is compiled and run
// by kiln (API, and some through the CLI) and compared with onnxruntime-node on the same inputs
// and weights; then compiled with deferred weights, bound to a second seeded weight set, and
// baked, and compared again. Also: the CLI's messages on bad models, and the ops added for
// exporter graphs (GroupNormalization, RMSNormalization, GridSample, AffineGrid) and Cast's
// handling of non-finite floats, against onnxruntime.
import assert from "node:assert/strict";
import { compile, parseOnnx, replaceOnnxExternalWeights, WeightSet } from "../mod.ts";
import { type AttrSpec, buildModel, type NodeSpec, type TensorSpec } from "../core/onnx/writer.ts";
import type { DTypeName, Tensor } from "../core/tensor.ts";
import { readNpyFile, writeNpyFile } from "../core/npy.ts";
import { SeededRandom, writeRandomWeights } from "../core/weights/random.ts";
import { runOrt } from "./util/ort.ts";
import { runCli } from "./util/cli.ts";

const F32_MIN = -3.4028234663852886e38;

// ---------------------------------------------------------------------------------------------
// A small graph DSL over core/onnx/writer.ts

type Attrs = Record<string, AttrSpec>;

/** Builds one graph: float weights go to external data, small constants stay inline. */
class _G {
  readonly nodes: NodeSpec[] = [];
  readonly inits: TensorSpec[] = [];
  readonly weights: { name: string; dims: number[]; data: Float32Array }[] = [];
  readonly rng: SeededRandom;
  #n = 0;
  constructor(seed: number, readonly prefix = "") {
    this.rng = new SeededRandom(seed);
  }
  /** An external float weight, N(0, scale) (default 1/sqrt(fan_in)), or 1 + N(0, 0.05) when `ones`. */
  w(name: string, dims: number[], opts: { scale?: number; ones?: boolean } = {}): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const fanIn = dims.length >= 2 ? dims.slice(1).reduce((a, b) => a * b, 1) : 1;
    const scale = opts.scale ?? (dims.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      data[i] = (opts.ones ? 1 : 0) + this.rng.normal() * (opts.ones ? 0.05 : scale);
    }
    this.weights.push({ name, dims, data });
    return name;
  }
  /** An inline initializer. */
  c(dtype: DTypeName, vals: number[] | bigint[], dims?: number[], name?: string): string {
    const nm = name ?? `const_${this.#n++}`;
    this.inits.push({ name: nm, dtype, dims: dims ?? [vals.length], data: vals });
    return nm;
  }
  i64(vals: number[], dims?: number[]): string {
    return this.c("int64", vals, dims);
  }
  f32(vals: number[], dims?: number[]): string {
    return this.c("float32", vals, dims);
  }
  /** A Constant node (torch.onnx style) holding a tensor. */
  cnode(dtype: DTypeName, vals: number[], dims?: number[]): string {
    const out = `Constant_${this.#n++}_output_0`;
    this.nodes.push({
      op: "Constant",
      inputs: [],
      outputs: [out],
      name: `/Constant_${this.#n}`,
      attrs: { value: { t: { name: "", dtype, dims: dims ?? [vals.length], data: vals } } },
    });
    return out;
  }
  /** A node with one output. */
  o(op: string, inputs: string[], attrs: Attrs = {}, name?: string): string {
    return this.om(op, inputs, 1, attrs, name)[0];
  }
  /** A node with `n` outputs. */
  om(op: string, inputs: string[], n: number, attrs: Attrs = {}, name?: string): string[] {
    const k = this.#n++;
    const nm = name ?? `${this.prefix}/${op}_${k}`;
    const outs = Array.from({ length: n }, (_, i) => `${nm.replace(/^\//, "")}_output_${i}`);
    this.nodes.push({ op, inputs, outputs: outs, name: nm, attrs });
    return outs;
  }
}

interface _Written {
  path: string;
  bytes: Uint8Array;
}

/** Writes `g` as `<dir>/<name>.onnx` with its weights in `<name>.bin` (64-byte aligned offsets). */
async function _write(
  dir: string,
  name: string,
  g: _G,
  io: {
    inputs: { name: string; dtype?: DTypeName; dims: (number | string)[] }[];
    outputs: { name: string; dtype?: DTypeName }[];
    opset: number;
  },
): Promise<_Written> {
  const location = `${name}.bin`;
  let size = 0;
  const ext: TensorSpec[] = [];
  const placed: { offset: number; data: Float32Array }[] = [];
  for (const w of g.weights) {
    const offset = Math.ceil(size / 64) * 64;
    placed.push({ offset, data: w.data });
    ext.push({
      name: w.name,
      dtype: "float32",
      dims: w.dims,
      external: { location, offset, length: w.data.byteLength },
    });
    size = offset + w.data.byteLength;
  }
  const bin = new Uint8Array(size);
  for (const p of placed) bin.set(new Uint8Array(p.data.buffer), p.offset);
  await Deno.writeFile(`${dir}/${location}`, bin);
  const bytes = buildModel({
    opset: io.opset,
    graph: {
      name,
      inputs: io.inputs.map((i) => ({ name: i.name, dtype: i.dtype ?? "float32", dims: i.dims })),
      outputs: io.outputs.map((o) => ({ name: o.name, dtype: o.dtype ?? "float32" })),
      initializers: [...ext, ...g.inits],
      nodes: g.nodes,
    },
  });
  const path = `${dir}/${name}.onnx`;
  await Deno.writeFile(path, bytes);
  return { path, bytes };
}

// ---------------------------------------------------------------------------------------------
// Inputs and comparison

function _randn(seed: number, dims: number[], scale = 1): Tensor {
  const r = new SeededRandom(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = r.normal() * scale;
  return { dtype: "float32", dims, data };
}

function _ints(dims: number[], f: (i: number) => number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new BigInt64Array(n);
  for (let i = 0; i < n; i++) data[i] = BigInt(f(i));
  return { dtype: "int64", dims, data };
}

/** A [batch, seq] attention mask with right padding: row b keeps seq - b tokens (at least 1). */
function _mask(batch: number, seq: number): Tensor {
  return _ints([batch, seq], (i) => ((i % seq) < Math.max(1, seq - Math.floor(i / seq)) ? 1 : 0));
}

function _relL2(got: Tensor, want: Tensor): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.data.length; i++) {
    const g = Number(got.data[i]), w = Number(want.data[i]);
    if (Number.isNaN(g) !== Number.isNaN(w)) return Infinity;
    if (Number.isNaN(w)) continue;
    num += (g - w) ** 2;
    den += w ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Asserts every output of `want` matches `got` (relative L2 <= 1e-4 for floats, exact otherwise). */
function _assertMatch(got: Record<string, Tensor>, want: Record<string, Tensor>, what: string): void {
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    assert.ok(g, `${what}: kiln has no output '${name}' (has ${Object.keys(got).join(", ")})`);
    assert.equal(g.dtype, w.dtype, `${what}: output '${name}' dtype`);
    assert.deepEqual(g.dims, w.dims, `${what}: output '${name}' dims`);
    if (w.dtype.startsWith("float")) {
      const err = _relL2(g, w);
      assert.ok(err <= 1e-4, `${what}: output '${name}' relative L2 ${err}`);
    } else {
      assert.deepEqual(Array.from(g.data, String), Array.from(w.data, String), `${what}: output '${name}'`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The zoo

interface _Case {
  dims: Record<string, number[]>;
  inputs: Record<string, Tensor>;
}
interface _Model {
  name: string;
  file: _Written;
  cases: _Case[];
}

/** Transformer helpers shared by the encoder and the GPT block. */
function _layerNorm(g: _G, x: string, p: string, eps = 1e-5): string {
  return g.o("LayerNormalization", [x, g.w(`${p}.weight`, [16], { ones: true }), g.w(`${p}.bias`, [16])], {
    axis: { i: -1 },
    epsilon: { f: eps },
  });
}
function _linear(g: _G, x: string, p: string, din: number, dout: number): string {
  return g.o("Add", [g.o("MatMul", [x, g.w(`${p}.weight`, [din, dout])]), g.w(`${p}.bias`, [dout])]);
}
/** [B, S, H*D] -> [B, H, S, D] (or [B, H, D, S] with kT) via a Shape -> Gather -> Unsqueeze -> Concat chain. */
function _heads(g: _G, x: string, kT = false): string {
  const sh = g.o("Shape", [x]);
  const b = g.o("Unsqueeze", [g.o("Gather", [sh, g.c("int64", [0], [])], { axis: { i: 0 } }), g.i64([0])]);
  const s = g.o("Unsqueeze", [g.o("Gather", [sh, g.c("int64", [1], [])], { axis: { i: 0 } }), g.i64([0])]);
  const shape = g.o("Concat", [b, s, g.i64([2]), g.i64([8])], { axis: { i: 0 } });
  return g.o("Transpose", [g.o("Reshape", [x, shape])], { perm: { ints: kT ? [0, 2, 3, 1] : [0, 2, 1, 3] } });
}
function _merge(g: _G, x: string): string {
  const t = g.o("Transpose", [x], { perm: { ints: [0, 2, 1, 3] } });
  const sh = g.o("Shape", [t]);
  const bs = g.o("Slice", [sh, g.i64([0]), g.i64([2])]);
  return g.o("Reshape", [t, g.o("Concat", [bs, g.i64([16])], { axis: { i: 0 } })]);
}
/** Gelu as 0.5 * x * (1 + Erf(x / sqrt 2)). */
function _geluErf(g: _G, x: string): string {
  const e = g.o("Erf", [g.o("Div", [x, g.f32([Math.SQRT2], [])])]);
  return g.o("Mul", [g.o("Mul", [x, g.o("Add", [e, g.f32([1], [])])]), g.f32([0.5], [])]);
}
/** Gelu tanh approximation with Pow (GPT-2's NewGELU). */
function _geluTanh(g: _G, x: string): string {
  const cube = g.o("Mul", [g.o("Pow", [x, g.f32([3], [])]), g.f32([0.044715], [])]);
  const inner = g.o("Mul", [g.o("Add", [x, cube]), g.f32([Math.sqrt(2 / Math.PI)], [])]);
  const t = g.o("Add", [g.o("Tanh", [inner]), g.f32([1], [])]);
  return g.o("Mul", [g.o("Mul", [g.f32([0.5], []), x]), t]);
}

async function _mobilenet(dir: string): Promise<_Model> {
  const g = new _G(1, "/features");
  const lo = g.f32([0], []), hi = g.f32([6], []);
  const conv = (x: string, p: string, cin: number, cout: number, k: number, s = 1, group = 1) =>
    g.o("Conv", [x, g.w(`${p}.weight`, [cout, cin / group, k, k]), g.w(`${p}.bias`, [cout])], {
      kernel_shape: { ints: [k, k] },
      strides: { ints: [s, s] },
      pads: { ints: Array(4).fill(Math.floor(k / 2)) },
      group: { i: group },
      dilations: { ints: [1, 1] },
    });
  const e = g.o("Clip", [conv("x", "features.1.conv.0.0", 8, 16, 1), lo, hi]);
  const d = g.o("Clip", [conv(e, "features.1.conv.1.0", 16, 16, 3, 1, 16), lo, hi]);
  const res = g.o("Add", [conv(d, "features.1.conv.2", 16, 8, 1), "x"]);
  const hs = g.o("HardSwish", [res]);
  const c3 = g.o("HardSwish", [conv(hs, "features.2.0", 8, 16, 3, 2)]);
  const dw = conv(c3, "features.2.1", 16, 16, 5, 2, 16);
  // squeeze-excite
  const se = g.o("GlobalAveragePool", [dw]);
  const se1 = g.o("Relu", [conv(se, "features.2.se.fc1", 16, 4, 1)]);
  const se2 = g.o("HardSigmoid", [conv(se1, "features.2.se.fc2", 4, 16, 1)], {
    alpha: { f: 1 / 6 },
    beta: { f: 0.5 },
  });
  const scaled = g.o("Mul", [dw, se2]);
  const pooled = g.o("Flatten", [g.o("GlobalAveragePool", [scaled])], { axis: { i: 1 } });
  g.nodes.push({
    op: "Gemm",
    inputs: [pooled, g.w("classifier.weight", [10, 16]), g.w("classifier.bias", [10])],
    outputs: ["logits"],
    name: "/classifier/Gemm",
    attrs: { alpha: { f: 1 }, beta: { f: 1 }, transB: { i: 1 } },
  });
  const file = await _write(dir, "mobilenet_block", g, {
    inputs: [{ name: "x", dims: ["batch", 8, 16, 16] }],
    outputs: [{ name: "logits" }],
    opset: 17,
  });
  return {
    name: "mobilenet_block",
    file,
    cases: [1, 3].map((b) => ({
      dims: { x: [b, 8, 16, 16] },
      inputs: { x: _randn(10 + b, [b, 8, 16, 16]) },
    })),
  };
}

async function _resnet(dir: string): Promise<_Model> {
  // torch.onnx (TorchScript) style at opset 13: Constant nodes, BatchNormalization not folded.
  const g = new _G(2, "");
  const conv = (x: string, p: string, cin: number, cout: number, k: number, s = 1) =>
    g.o("Conv", [x, g.w(`${p}.weight`, [cout, cin, k, k])], {
      kernel_shape: { ints: [k, k] },
      strides: { ints: [s, s] },
      pads: { ints: Array(4).fill(Math.floor(k / 2)) },
    });
  const bn = (x: string, p: string, c: number) =>
    g.o("BatchNormalization", [
      x,
      g.w(`${p}.weight`, [c], { ones: true }),
      g.w(`${p}.bias`, [c]),
      g.w(`${p}.running_mean`, [c]),
      g.w(`${p}.running_var`, [c], { ones: true }),
    ], { epsilon: { f: 1e-5 }, momentum: { f: 0.9 } });
  const stem = g.o("Relu", [bn(conv("x", "conv1", 4, 8, 3), "bn1", 8)]);
  const mp = g.o("MaxPool", [stem], {
    kernel_shape: { ints: [3, 3] },
    strides: { ints: [2, 2] },
    pads: { ints: [1, 1, 1, 1] },
  });
  const b1 = g.o("Relu", [bn(conv(mp, "layer1.0.conv1", 8, 8, 3), "layer1.0.bn1", 8)]);
  const r1 = g.o("Relu", [g.o("Add", [bn(conv(b1, "layer1.0.conv2", 8, 8, 3), "layer1.0.bn2", 8), mp])]);
  const down = bn(conv(r1, "layer2.0.downsample.0", 8, 16, 1, 2), "layer2.0.downsample.1", 16);
  const m1 = g.o("Relu", [bn(conv(r1, "layer2.0.conv1", 8, 16, 3, 2), "layer2.0.bn1", 16)]);
  const r2 = g.o("Relu", [g.o("Add", [bn(conv(m1, "layer2.0.conv2", 16, 16, 3), "layer2.0.bn2", 16), down])]);
  const ap = g.o("AveragePool", [r2], { kernel_shape: { ints: [2, 2] }, strides: { ints: [1, 1] } });
  const feat = g.o("ReduceMean", [ap], { axes: { ints: [2, 3] }, keepdims: { i: 0 } });
  // LayerNorm decomposed as torch.onnx writes it before opset 17
  const mean = g.o("ReduceMean", [feat], { axes: { ints: [-1] } });
  const dlt = g.o("Sub", [feat, mean]);
  const vr = g.o("ReduceMean", [g.o("Pow", [dlt, g.cnode("float32", [2], [])])], { axes: { ints: [-1] } });
  const nrm = g.o("Div", [dlt, g.o("Sqrt", [g.o("Add", [vr, g.cnode("float32", [1e-5], [])])])]);
  const ln = g.o("Add", [
    g.o("Mul", [nrm, g.w("norm.weight", [16], { ones: true })]),
    g.w("norm.bias", [16]),
  ]);
  const fc = g.o("Add", [g.o("MatMul", [ln, g.w("fc.weight_t", [16, 5])]), g.w("fc.bias", [5])]);
  const un = g.o("Unsqueeze", [fc, g.cnode("int64", [0])]);
  const sq = g.o("Squeeze", [un, g.cnode("int64", [0])]);
  g.nodes.push({
    op: "Softmax",
    inputs: [sq],
    outputs: ["probs"],
    name: "/Softmax",
    attrs: { axis: { i: -1 } },
  });
  g.nodes.push({ op: "Identity", inputs: [ln], outputs: ["features"], name: "/Identity" });
  const file = await _write(dir, "resnet_block", g, {
    inputs: [{ name: "x", dims: [1, 4, 12, 12] }],
    outputs: [{ name: "probs" }, { name: "features" }],
    opset: 13,
  });
  return { name: "resnet_block", file, cases: [{ dims: {}, inputs: { x: _randn(20, [1, 4, 12, 12]) } }] };
}

async function _unet(dir: string): Promise<_Model> {
  const g = new _G(3, "/decoder");
  const up = g.o("ConvTranspose", ["x", g.w("up.weight", [8, 4, 2, 2]), g.w("up.bias", [4])], {
    kernel_shape: { ints: [2, 2] },
    strides: { ints: [2, 2] },
  });
  const cat = g.o("Concat", [up, "skip"], { axis: { i: 1 } });
  const c = g.o("Relu", [
    g.o("Conv", [cat, g.w("conv.weight", [4, 8, 3, 3]), g.w("conv.bias", [4])], {
      kernel_shape: { ints: [3, 3] },
      pads: { ints: [1, 1, 1, 1] },
    }),
  ]);
  const ct2 = g.o("ConvTranspose", [c, g.w("up2.weight", [4, 4, 3, 3]), g.w("up2.bias", [4])], {
    kernel_shape: { ints: [3, 3] },
    strides: { ints: [2, 2] },
    pads: { ints: [1, 1, 1, 1] },
    output_padding: { ints: [1, 1] },
  });
  // nearest x2 with sizes from a Shape -> Slice -> Concat chain (dynamo), and with scales (torch.onnx)
  const nc = g.o("Concat", [g.o("Slice", [g.o("Shape", [c]), g.i64([0]), g.i64([2])]), g.i64([16, 16])], {
    axis: { i: 0 },
  });
  const rn = g.o("Resize", [c, "", "", nc], {
    mode: { s: "nearest" },
    coordinate_transformation_mode: { s: "asymmetric" },
    nearest_mode: { s: "floor" },
  });
  const rn2 = g.o("Resize", [c, "", g.f32([1, 1, 2, 2])], {
    mode: { s: "nearest" },
    coordinate_transformation_mode: { s: "asymmetric" },
    nearest_mode: { s: "floor" },
  });
  const a = g.o("Add", [g.o("Add", [ct2, rn]), rn2]);
  const rl = g.o("Resize", [a, "", "", g.i64([1, 4, 24, 24])], {
    mode: { s: "linear" },
    coordinate_transformation_mode: { s: "pytorch_half_pixel" },
  });
  const rl2 = g.o("Resize", [a, "", g.f32([1, 1, 1.5, 1.5])], {
    mode: { s: "linear" },
    coordinate_transformation_mode: { s: "half_pixel" },
  });
  g.nodes.push({
    op: "Resize",
    inputs: [a, "", "", g.i64([1, 4, 20, 20])],
    outputs: ["aligned"],
    name: "/Resize_align",
    attrs: { mode: { s: "linear" }, coordinate_transformation_mode: { s: "align_corners" } },
  });
  const head = g.o("Conv", [g.o("Concat", [rl, rl2], { axis: { i: 1 } }), g.w("head.weight", [2, 8, 1, 1])], {
    kernel_shape: { ints: [1, 1] },
  });
  g.nodes.push({ op: "Sigmoid", inputs: [head], outputs: ["mask"], name: "/Sigmoid" });
  const file = await _write(dir, "unet_decoder", g, {
    inputs: [{ name: "x", dims: [1, 8, 4, 4] }, { name: "skip", dims: [1, 4, 8, 8] }],
    outputs: [{ name: "mask" }, { name: "aligned" }],
    opset: 18,
  });
  return {
    name: "unet_decoder",
    file,
    cases: [{ dims: {}, inputs: { x: _randn(30, [1, 8, 4, 4]), skip: _randn(31, [1, 4, 8, 8]) } }],
  };
}

async function _encoder(dir: string): Promise<_Model> {
  const g = new _G(4, "/encoder/layer.0");
  const p = "encoder.layer.0";
  const ln0 = _layerNorm(g, "x", "embeddings.LayerNorm", 1e-12);
  const q = _heads(g, _linear(g, ln0, `${p}.attention.self.query`, 16, 16));
  const k = _heads(g, _linear(g, ln0, `${p}.attention.self.key`, 16, 16), true);
  const v = _heads(g, _linear(g, ln0, `${p}.attention.self.value`, 16, 16));
  const scores = g.o("Div", [g.o("MatMul", [q, k]), g.f32([Math.sqrt(8)], [])]);
  // HF _prepare_4d_attention_mask: mask[:, None, None, :].expand(b, 1, s, s); 1 - m; masked_fill(min)
  const sh = g.o("Shape", ["attention_mask"]);
  const b = g.o("Slice", [sh, g.i64([0]), g.i64([1])]);
  const s = g.o("Slice", [sh, g.i64([1]), g.i64([2])]);
  const m4 = g.o("Unsqueeze", ["attention_mask", g.i64([1, 2])]);
  const ex = g.o("Expand", [m4, g.o("Concat", [b, g.i64([1]), s, s], { axis: { i: 0 } })]);
  const inv = g.o("Sub", [g.f32([1], []), g.o("Cast", [ex], { to: { i: 1 } })]);
  const ext = g.o("Where", [g.o("Cast", [inv], { to: { i: 9 } }), g.f32([F32_MIN], []), inv]);
  const probs = g.o("Softmax", [g.o("Add", [scores, ext])], { axis: { i: -1 } });
  const ctx = _merge(g, g.o("MatMul", [probs, v]));
  const att = g.o("Add", [_linear(g, ctx, `${p}.attention.output.dense`, 16, 16), ln0]);
  const ln1 = _layerNorm(g, att, `${p}.attention.output.LayerNorm`, 1e-12);
  const ff = _linear(
    g,
    _geluErf(g, _linear(g, ln1, `${p}.intermediate.dense`, 16, 32)),
    `${p}.output.dense`,
    32,
    16,
  );
  const out = _layerNorm(g, g.o("Add", [ff, ln1]), `${p}.output.LayerNorm`, 1e-12);
  g.nodes.push({ op: "Identity", inputs: [out], outputs: ["last_hidden_state"], name: "/Identity" });
  // pooler: first token -> Gemm -> tanh-approximate Gelu
  const cls = g.o("Gather", [out, g.c("int64", [0], [])], { axis: { i: 1 } });
  const pooled = g.o("Gemm", [cls, g.w("pooler.dense.weight", [16, 16]), g.w("pooler.dense.bias", [16])], {
    transB: { i: 1 },
  });
  g.nodes.push({ op: "Identity", inputs: [_geluTanh(g, pooled)], outputs: ["pooler_output"], name: "/Id2" });
  const file = await _write(dir, "bert_layer", g, {
    inputs: [
      { name: "x", dims: ["batch", "sequence", 16] },
      { name: "attention_mask", dtype: "int64", dims: ["batch", "sequence"] },
    ],
    outputs: [{ name: "last_hidden_state" }, { name: "pooler_output" }],
    opset: 18,
  });
  return {
    name: "bert_layer",
    file,
    cases: [[1, 4], [3, 5]].map(([bb, ss]) => ({
      dims: { x: [bb, ss, 16], attention_mask: [bb, ss] },
      inputs: { x: _randn(40 + bb, [bb, ss, 16]), attention_mask: _mask(bb, ss) },
    })),
  };
}

async function _gpt(dir: string): Promise<_Model> {
  const g = new _G(5, "/transformer/h.0");
  const V = 32;
  const wte = g.w("transformer.wte.weight", [V, 16], { scale: 0.3 });
  // Range-based ids and an HF-style cumsum position ids
  const T = g.o("Gather", [g.o("Shape", ["input_ids"]), g.c("int64", [1], [])], { axis: { i: 0 } });
  const r = g.o("Range", [g.c("int64", [0], []), T, g.c("int64", [1], [])]);
  const cum = g.o("Sub", [g.o("CumSum", ["attention_mask", g.c("int64", [1], [])]), g.c("int64", [1], [])]);
  const pos = g.o("Where", [
    g.o("Equal", ["attention_mask", g.c("int64", [0], [])]),
    g.c("int64", [1], []),
    cum,
  ]);
  const h0 = g.o("Add", [
    g.o("Gather", [wte, "input_ids"]),
    g.o("Gather", [g.w("transformer.wpe.weight", [16, 16], { scale: 0.3 }), pos]),
  ]);
  const ln1 = _layerNorm(g, h0, "transformer.h.0.ln_1");
  const qkv = _linear(g, ln1, "transformer.h.0.attn.c_attn", 16, 48);
  const [q0, k0, v0] = g.om("Split", [qkv, g.i64([16, 16, 16])], 3, { axis: { i: 2 } });
  const q = _heads(g, q0), k = _heads(g, k0, true), v = _heads(g, v0);
  const scores = g.o("Mul", [g.o("MatMul", [q, k]), g.f32([1 / Math.sqrt(8)], [])]);
  // causal: Range comparison AND Trilu of a ConstantOfShape; key padding from attention_mask
  const causalR = g.o("GreaterOrEqual", [
    g.o("Unsqueeze", [r, g.i64([1])]),
    g.o("Unsqueeze", [r, g.i64([0])]),
  ]);
  const tt = g.o("Concat", [g.o("Unsqueeze", [T, g.i64([0])]), g.o("Unsqueeze", [T, g.i64([0])])], {
    axis: { i: 0 },
  });
  const ones = g.o("ConstantOfShape", [tt], {
    value: { t: { name: "", dtype: "float32", dims: [1], data: [1] } },
  });
  const tri = g.o("Cast", [g.o("Trilu", [ones, g.c("int64", [0], [])], { upper: { i: 0 } })], {
    to: { i: 9 },
  });
  const pad = g.o("Cast", [g.o("Unsqueeze", ["attention_mask", g.i64([1, 2])])], { to: { i: 9 } });
  const keep = g.o("And", [g.o("And", [causalR, tri]), pad]);
  const probs = g.o("Softmax", [g.o("Where", [keep, scores, g.f32([F32_MIN], [])])], { axis: { i: -1 } });
  const att = _linear(g, _merge(g, g.o("MatMul", [probs, v])), "transformer.h.0.attn.c_proj", 16, 16);
  const h1 = g.o("Add", [att, h0]);
  const ln2 = _layerNorm(g, h1, "transformer.h.0.ln_2");
  const mlp = _linear(
    g,
    _geluTanh(g, _linear(g, ln2, "transformer.h.0.mlp.c_fc", 16, 64)),
    "transformer.h.0.mlp.c_proj",
    64,
    16,
  );
  const hf = _layerNorm(g, g.o("Add", [mlp, h1]), "transformer.ln_f");
  // tied lm_head
  g.nodes.push({
    op: "MatMul",
    inputs: [hf, g.o("Transpose", [wte], { perm: { ints: [1, 0] } })],
    outputs: ["logits"],
    name: "/lm_head/MatMul",
  });
  g.nodes.push({
    op: "ArgMax",
    inputs: ["logits"],
    outputs: ["next_ids"],
    name: "/ArgMax",
    attrs: { axis: { i: -1 }, keepdims: { i: 0 } },
  });
  const last = g.o("Gather", ["logits", g.c("int64", [-1], [])], { axis: { i: 1 } });
  g.nodes.push({
    op: "TopK",
    inputs: [last, g.i64([3])],
    outputs: ["top_values", "top_indices"],
    name: "/TopK",
    attrs: { axis: { i: -1 } },
  });
  const sl = g.o("Slice", ["logits", g.i64([-1]), g.c("int64", [9223372036854775807n], [1]), g.i64([1])]);
  g.nodes.push({
    op: "Softmax",
    inputs: [sl],
    outputs: ["last_probs"],
    name: "/Softmax_last",
    attrs: { axis: { i: -1 } },
  });
  const file = await _write(dir, "gpt_block", g, {
    inputs: [
      { name: "input_ids", dtype: "int64", dims: ["batch", "seq"] },
      { name: "attention_mask", dtype: "int64", dims: ["batch", "seq"] },
    ],
    outputs: [
      { name: "logits" },
      { name: "next_ids", dtype: "int64" },
      { name: "top_values" },
      { name: "top_indices", dtype: "int64" },
      { name: "last_probs" },
    ],
    opset: 18,
  });
  return {
    name: "gpt_block",
    file,
    cases: [[1, 7], [3, 6]].map(([bb, ss]) => ({
      dims: { input_ids: [bb, ss], attention_mask: [bb, ss] },
      inputs: { input_ids: _ints([bb, ss], (i) => (i * 7 + 3) % V), attention_mask: _mask(bb, ss) },
    })),
  };
}

async function _einsum(dir: string): Promise<_Model> {
  const g = new _G(6, "/attn");
  const scores = g.o("Mul", [
    g.o("Einsum", ["q", "k"], { equation: { s: "bhid,bhjd->bhij" } }),
    g.f32([1 / Math.sqrt(8)], []),
  ]);
  const p = g.o("Softmax", [scores], { axis: { i: -1 } });
  const ctx = g.o("Einsum", [p, "v"], { equation: { s: "bhij,bhjd->bhid" } });
  g.nodes.push({
    op: "Einsum",
    inputs: [ctx, g.w("out_proj.weight", [2, 8, 16])],
    outputs: ["out"],
    name: "/attn/Einsum_out",
    attrs: { equation: { s: "bhsd,hde->bse" } },
  });
  const file = await _write(dir, "einsum_attention", g, {
    inputs: ["q", "k", "v"].map((name) => ({ name, dims: ["batch", 2, 5, 8] })),
    outputs: [{ name: "out" }],
    opset: 17,
  });
  return {
    name: "einsum_attention",
    file,
    cases: [1, 3].map((b) => ({
      dims: { q: [b, 2, 5, 8], k: [b, 2, 5, 8], v: [b, 2, 5, 8] },
      inputs: {
        q: _randn(60 + b, [b, 2, 5, 8]),
        k: _randn(61 + b, [b, 2, 5, 8]),
        v: _randn(62 + b, [b, 2, 5, 8]),
      },
    })),
  };
}

async function _ifModel(dir: string): Promise<_Model> {
  const g = new _G(7, "");
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
  const file = await _write(dir, "if_model", g, {
    inputs: [{ name: "x", dims: ["batch", 6] }],
    outputs: [{ name: "y" }],
    opset: 18,
  });
  const pos = _randn(70, [3, 6]);
  (pos.data as Float32Array).forEach((v, i, a) => (a[i] = Math.abs(v)));
  const neg = _randn(71, [1, 6]);
  (neg.data as Float32Array).forEach((v, i, a) => (a[i] = -Math.abs(v)));
  const posB1 = _randn(72, [1, 6]);
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

async function _vit(dir: string): Promise<_Model> {
  // ViT: patch Conv, class token Expand-ed to the batch, position embedding, pre-norm encoder layer
  const g = new _G(11, "/vit");
  const patches = g.o("Conv", [
    "pixel_values",
    g.w("patch_embed.proj.weight", [16, 3, 4, 4]),
    g.w("patch_embed.proj.bias", [16]),
  ], {
    kernel_shape: { ints: [4, 4] },
    strides: { ints: [4, 4] },
  });
  const sh = g.o("Shape", ["pixel_values"]);
  const b = g.o("Slice", [sh, g.i64([0]), g.i64([1])]);
  const flat = g.o("Reshape", [patches, g.o("Concat", [b, g.i64([16, -1])], { axis: { i: 0 } })]);
  const tokens = g.o("Transpose", [flat], { perm: { ints: [0, 2, 1] } });
  const cls = g.o("Expand", [
    g.w("cls_token", [1, 1, 16], { scale: 0.02 }),
    g.o("Concat", [b, g.i64([1, 1])], { axis: { i: 0 } }),
  ]);
  const x0 = g.o("Add", [
    g.o("Concat", [cls, tokens], { axis: { i: 1 } }),
    g.w("pos_embed", [1, 17, 16], { scale: 0.02 }),
  ]);
  const p = "blocks.0";
  const n1 = _layerNorm(g, x0, `${p}.norm1`, 1e-6);
  const qkv = _linear(g, n1, `${p}.attn.qkv`, 16, 48);
  const [q0, k0, v0] = g.om("Split", [qkv, g.i64([16, 16, 16])], 3, { axis: { i: -1 } });
  const scores = g.o("Mul", [
    g.o("MatMul", [_heads(g, q0), _heads(g, k0, true)]),
    g.f32([1 / Math.sqrt(8)], []),
  ]);
  const ctx = _merge(g, g.o("MatMul", [g.o("Softmax", [scores], { axis: { i: -1 } }), _heads(g, v0)]));
  const x1 = g.o("Add", [x0, _linear(g, ctx, `${p}.attn.proj`, 16, 16)]);
  const n2 = _layerNorm(g, x1, `${p}.norm2`, 1e-6);
  const x2 = g.o("Add", [
    x1,
    _linear(g, _geluErf(g, _linear(g, n2, `${p}.mlp.fc1`, 16, 32)), `${p}.mlp.fc2`, 32, 16),
  ]);
  const nf = _layerNorm(g, x2, "norm", 1e-6);
  const clsOut = g.o("Squeeze", [g.o("Slice", [nf, g.i64([0]), g.i64([1]), g.i64([1])]), g.i64([1])]);
  g.nodes.push({
    op: "Gemm",
    inputs: [clsOut, g.w("head.weight", [10, 16]), g.w("head.bias", [10])],
    outputs: ["logits"],
    name: "/head/Gemm",
    attrs: { transB: { i: 1 } },
  });
  const file = await _write(dir, "vit_tiny", g, {
    inputs: [{ name: "pixel_values", dims: ["batch_size", 3, 16, 16] }],
    outputs: [{ name: "logits" }],
    opset: 18,
  });
  return {
    name: "vit_tiny",
    file,
    cases: [1, 3].map((bb) => ({
      dims: { pixel_values: [bb, 3, 16, 16] },
      inputs: { pixel_values: _randn(80 + bb, [bb, 3, 16, 16]) },
    })),
  };
}

async function _convnext(dir: string): Promise<_Model> {
  // ConvNeXt block (depthwise 7x7, NHWC LayerNorm, layer scale) then an EfficientNet MBConv
  // (SiLU as x * Sigmoid(x), squeeze-excite with ReduceMean) at opset 17
  const g = new _G(12, "/stages");
  const dw = g.o(
    "Conv",
    ["x", g.w("stages.0.dwconv.weight", [8, 1, 7, 7]), g.w("stages.0.dwconv.bias", [8])],
    {
      group: { i: 8 },
      kernel_shape: { ints: [7, 7] },
      pads: { ints: [3, 3, 3, 3] },
    },
  );
  const nhwc = g.o("Transpose", [dw], { perm: { ints: [0, 2, 3, 1] } });
  const ln = g.o("LayerNormalization", [
    nhwc,
    g.w("stages.0.norm.weight", [8], { ones: true }),
    g.w("stages.0.norm.bias", [8]),
  ], {
    axis: { i: -1 },
    epsilon: { f: 1e-6 },
  });
  const pw = _linear(g, _geluErf(g, _linear(g, ln, "stages.0.pwconv1", 8, 32)), "stages.0.pwconv2", 32, 8);
  const ls = g.o("Mul", [pw, g.w("stages.0.gamma", [8], { scale: 0.5 })]);
  const x1 = g.o("Add", ["x", g.o("Transpose", [ls], { perm: { ints: [0, 3, 1, 2] } })]);
  const silu = (t: string) => g.o("Mul", [t, g.o("Sigmoid", [t])]);
  const bn = (t: string, p: string, c: number) =>
    g.o("BatchNormalization", [
      t,
      g.w(`${p}.weight`, [c], { ones: true }),
      g.w(`${p}.bias`, [c]),
      g.w(`${p}.running_mean`, [c]),
      g.w(`${p}.running_var`, [c], { ones: true }),
    ], { epsilon: { f: 1e-3 } });
  const conv = (t: string, p: string, cin: number, cout: number, k: number, s = 1, group = 1) =>
    g.o("Conv", [t, g.w(`${p}.weight`, [cout, cin / group, k, k])], {
      kernel_shape: { ints: [k, k] },
      strides: { ints: [s, s] },
      pads: { ints: Array(4).fill(Math.floor(k / 2)) },
      group: { i: group },
    });
  const e = silu(bn(conv(x1, "mb.expand", 8, 16, 1), "mb.bn0", 16));
  const d = silu(bn(conv(e, "mb.depthwise", 16, 16, 3, 2, 16), "mb.bn1", 16));
  const se = g.o("ReduceMean", [d], { axes: { ints: [2, 3] }, keepdims: { i: 1 } });
  const se1 = silu(
    g.o("Conv", [se, g.w("mb.se.reduce.weight", [4, 16, 1, 1]), g.w("mb.se.reduce.bias", [4])]),
  );
  const se2 = g.o("Sigmoid", [
    g.o("Conv", [se1, g.w("mb.se.expand.weight", [16, 4, 1, 1]), g.w("mb.se.expand.bias", [16])]),
  ]);
  const proj = bn(conv(g.o("Mul", [d, se2]), "mb.project", 16, 8, 1), "mb.bn2", 8);
  g.nodes.push({ op: "Identity", inputs: [proj], outputs: ["features"], name: "/Identity" });
  const pooled = g.o("Flatten", [g.o("GlobalAveragePool", [proj])]);
  g.nodes.push({
    op: "Gemm",
    inputs: [pooled, g.w("classifier.weight", [8, 5]), g.w("classifier.bias", [5])],
    outputs: ["logits"],
    name: "/classifier/Gemm",
    attrs: { alpha: { f: 0.5 }, beta: { f: 2 } },
  });
  const file = await _write(dir, "convnext_mbconv", g, {
    inputs: [{ name: "x", dims: ["N", 8, 8, 8] }],
    outputs: [{ name: "features" }, { name: "logits" }],
    opset: 17,
  });
  return {
    name: "convnext_mbconv",
    file,
    cases: [2].map((bb) => ({ dims: { x: [bb, 8, 8, 8] }, inputs: { x: _randn(90 + bb, [bb, 8, 8, 8]) } })),
  };
}

async function _t5(dir: string): Promise<_Model> {
  // T5 self-attention: RMSNorm (Pow, ReduceMean, Sqrt, Reciprocal), relative position buckets
  // computed from Range with Log/Cast/Min/Where (all folded), bias Gather, no scaling
  const g = new _G(13, "/encoder/block.0/layer.0");
  const xx = g.o("Mul", [
    "hidden_states",
    g.o("Reciprocal", [g.o("Sqrt", [g.o("Add", [
      g.o("ReduceMean", [g.o("Pow", ["hidden_states", g.f32([2], [])]), g.i64([-1])], { keepdims: { i: 1 } }),
      g.f32([1e-6], []),
    ])])]),
  ]);
  const normed = g.o("Mul", [g.w("encoder.block.0.layer.0.layer_norm.weight", [16], { ones: true }), xx]);
  const lin = (t: string, p: string) =>
    g.o("MatMul", [t, g.w(`encoder.block.0.layer.0.SelfAttention.${p}.weight`, [16, 16])]);
  const q = _heads(g, lin(normed, "q")),
    k = _heads(g, lin(normed, "k"), true),
    v = _heads(g, lin(normed, "v"));
  const S = g.o("Gather", [g.o("Shape", ["hidden_states"]), g.c("int64", [1], [])], { axis: { i: 0 } });
  const r = g.o("Range", [g.c("int64", [0], []), S, g.c("int64", [1], [])]);
  const rel = g.o("Sub", [g.o("Unsqueeze", [r, g.i64([0])]), g.o("Unsqueeze", [r, g.i64([1])])]);
  const sign = g.o("Mul", [
    g.o("Cast", [g.o("Greater", [rel, g.c("int64", [0], [])])], { to: { i: 7 } }),
    g.c("int64", [4], []),
  ]);
  const n = g.o("Abs", [rel]);
  const small = g.o("Less", [n, g.c("int64", [2], [])]);
  const logv = g.o("Div", [
    g.o("Log", [g.o("Div", [g.o("Cast", [n], { to: { i: 1 } }), g.f32([2], [])])]),
    g.f32([Math.log(8)], []),
  ]);
  const large = g.o("Min", [
    g.o("Add", [g.o("Cast", [g.o("Mul", [logv, g.f32([2], [])])], { to: { i: 7 } }), g.c("int64", [2], [])]),
    g.o("ConstantOfShape", [g.o("Shape", [rel])], {
      value: { t: { name: "", dtype: "int64", dims: [1], data: [3] } },
    }),
  ]);
  const bucket = g.o("Add", [sign, g.o("Where", [small, n, large])]);
  const bias = g.o("Unsqueeze", [
    g.o("Transpose", [
      g.o("Gather", [
        g.w("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", [8, 2]),
        bucket,
      ]),
    ], {
      perm: { ints: [2, 0, 1] },
    }),
    g.i64([0]),
  ]);
  g.nodes.push({ op: "Identity", inputs: [bias], outputs: ["position_bias"], name: "/Identity" });
  const probs = g.o("Softmax", [g.o("Add", [g.o("MatMul", [q, k]), bias])], { axis: { i: -1 } });
  const out = g.o("Add", ["hidden_states", lin(_merge(g, g.o("MatMul", [probs, v])), "o")]);
  g.nodes.push({ op: "Identity", inputs: [out], outputs: ["last_hidden_state"], name: "/Identity_1" });
  const file = await _write(dir, "t5_attention", g, {
    inputs: [{ name: "hidden_states", dims: ["batch", "seq", 16] }],
    outputs: [{ name: "last_hidden_state" }, { name: "position_bias" }],
    opset: 18,
  });
  return {
    name: "t5_attention",
    file,
    cases: [[2, 9]].map(([bb, ss]) => ({
      dims: { hidden_states: [bb, ss, 16] },
      inputs: { hidden_states: _randn(100 + bb, [bb, ss, 16]) },
    })),
  };
}

async function _llama(dir: string): Promise<_Model> {
  // Llama decoder layer as dynamo writes it: RMSNorm decomposed (Pow, ReduceMean, Sqrt,
  // Reciprocal), rotary embeddings (Range positions, Slice/Neg/Concat rotate_half), grouped-query
  // attention (KV heads Expand-ed), a causal mask from Trilu of a ConstantOfShape(min), SiLU-gated MLP
  const g = new _G(14, "/model/layers.0");
  const V = 24;
  const rms = (x: string, p: string) => {
    const v = g.o("ReduceMean", [g.o("Pow", [x, g.f32([2], [])]), g.i64([-1])], { keepdims: { i: 1 } });
    const n = g.o("Mul", [x, g.o("Reciprocal", [g.o("Sqrt", [g.o("Add", [v, g.f32([1e-6], [])])])])]);
    return g.o("Mul", [g.w(`${p}.weight`, [16], { ones: true }), n]);
  };
  const proj = (x: string, p: string, din: number, dout: number) =>
    g.o("MatMul", [x, g.w(`${p}.weight`, [din, dout])]);
  const h0 = g.o("Gather", [g.w("model.embed_tokens.weight", [V, 16], { scale: 0.5 }), "input_ids"]);
  const S = g.o("Gather", [g.o("Shape", ["input_ids"]), g.c("int64", [1], [])], { axis: { i: 0 } });
  const pos = g.o("Cast", [g.o("Range", [g.c("int64", [0], []), S, g.c("int64", [1], [])])], {
    to: { i: 1 },
  });
  const freqs = g.o("Mul", [g.o("Unsqueeze", [pos, g.i64([1])]), g.f32([1, 0.1, 0.01, 0.001], [1, 4])]);
  const emb = g.o("Concat", [freqs, freqs], { axis: { i: -1 } });
  const cos = g.o("Cos", [emb]), sin = g.o("Sin", [emb]);
  const rope = (x: string) => {
    const x1 = g.o("Slice", [x, g.i64([0]), g.i64([4]), g.i64([-1])]);
    const x2 = g.o("Slice", [x, g.i64([4]), g.c("int64", [9223372036854775807n], [1]), g.i64([-1])]);
    const rot = g.o("Concat", [g.o("Neg", [x2]), x1], { axis: { i: -1 } });
    return g.o("Add", [g.o("Mul", [x, cos]), g.o("Mul", [rot, sin])]);
  };
  const n1 = rms(h0, "model.layers.0.input_layernorm");
  const q = rope(_heads(g, proj(n1, "model.layers.0.self_attn.q_proj", 16, 16)));
  const kv = (p: string) => {
    const t = g.o("Transpose", [g.o("Unsqueeze", [proj(n1, p, 16, 8), g.i64([1])])], {
      perm: { ints: [0, 1, 2, 3] },
    });
    return t; // [B, 1, S, 8]: one KV head
  };
  const b = g.o("Slice", [g.o("Shape", ["input_ids"]), g.i64([0]), g.i64([1])]);
  const rep = (t: string) => {
    const sh5 = g.o("Concat", [b, g.i64([1, 2]), g.o("Unsqueeze", [S, g.i64([0])]), g.i64([8])], {
      axis: { i: 0 },
    });
    const e = g.o("Expand", [g.o("Unsqueeze", [t, g.i64([2])]), sh5]);
    return g.o("Reshape", [
      e,
      g.o("Concat", [b, g.i64([2]), g.o("Unsqueeze", [S, g.i64([0])]), g.i64([8])], { axis: { i: 0 } }),
    ]);
  };
  const k = rep(rope(kv("model.layers.0.self_attn.k_proj")));
  const v = rep(kv("model.layers.0.self_attn.v_proj"));
  const ss = g.o("Concat", [g.o("Unsqueeze", [S, g.i64([0])]), g.o("Unsqueeze", [S, g.i64([0])])], {
    axis: { i: 0 },
  });
  const minm = g.o("ConstantOfShape", [ss], {
    value: { t: { name: "", dtype: "float32", dims: [1], data: [F32_MIN] } },
  });
  const causal = g.o("Trilu", [minm, g.c("int64", [1], [])], { upper: { i: 1 } });
  const scores = g.o("Add", [
    g.o("Mul", [
      g.o("MatMul", [q, g.o("Transpose", [k], { perm: { ints: [0, 1, 3, 2] } })]),
      g.f32([1 / Math.sqrt(8)], []),
    ]),
    causal,
  ]);
  const ctx = _merge(g, g.o("MatMul", [g.o("Softmax", [scores], { axis: { i: -1 } }), v]));
  const h1 = g.o("Add", [h0, proj(ctx, "model.layers.0.self_attn.o_proj", 16, 16)]);
  const n2 = rms(h1, "model.layers.0.post_attention_layernorm");
  const gate = proj(n2, "model.layers.0.mlp.gate_proj", 16, 32);
  const act = g.o("Mul", [
    g.o("Mul", [gate, g.o("Sigmoid", [gate])]),
    proj(n2, "model.layers.0.mlp.up_proj", 16, 32),
  ]);
  const h2 = g.o("Add", [h1, proj(act, "model.layers.0.mlp.down_proj", 32, 16)]);
  g.nodes.push({
    op: "MatMul",
    inputs: [rms(h2, "model.norm"), g.w("lm_head.weight_t", [16, V])],
    outputs: ["logits"],
    name: "/lm_head/MatMul",
  });
  g.nodes.push({
    op: "ArgMax",
    inputs: ["logits"],
    outputs: ["next"],
    name: "/ArgMax",
    attrs: { axis: { i: -1 } },
  });
  const file = await _write(dir, "llama_layer", g, {
    inputs: [{ name: "input_ids", dtype: "int64", dims: ["batch", "seq"] }],
    outputs: [{ name: "logits" }, { name: "next", dtype: "int64" }],
    opset: 18,
  });
  return {
    name: "llama_layer",
    file,
    cases: [[1, 5], [2, 7]].map(([bb, sq]) => ({
      dims: { input_ids: [bb, sq] },
      inputs: { input_ids: _ints([bb, sq], (i) => (i * 5 + 1) % V) },
    })),
  };
}

async function _diffusion(dir: string): Promise<_Model> {
  // Diffusion UNet resnet block at opset 21: GroupNormalization (per-channel scale), SiLU,
  // time embedding Gemm broadcast over H and W, skip, down/up sampling, then a GridSample warp
  const g = new _G(15, "/down_blocks.0/resnets.0");
  const p = "down_blocks.0.resnets.0";
  const silu = (t: string) => g.o("Mul", [t, g.o("Sigmoid", [t])]);
  const gn = (t: string, q: string) =>
    g.o("GroupNormalization", [t, g.w(`${q}.weight`, [8], { ones: true }), g.w(`${q}.bias`, [8])], {
      num_groups: { i: 4 },
      epsilon: { f: 1e-5 },
    });
  const conv = (t: string, q: string, k: number, s = 1) =>
    g.o("Conv", [t, g.w(`${q}.weight`, [8, 8, k, k]), g.w(`${q}.bias`, [8])], {
      kernel_shape: { ints: [k, k] },
      strides: { ints: [s, s] },
      pads: { ints: Array(4).fill(Math.floor(k / 2)) },
    });
  const h = conv(silu(gn("x", `${p}.norm1`)), `${p}.conv1`, 3);
  const t = g.o("Gemm", [
    silu("temb"),
    g.w(`${p}.time_emb_proj.weight`, [8, 16]),
    g.w(`${p}.time_emb_proj.bias`, [8]),
  ], {
    transB: { i: 1 },
  });
  const h1 = g.o("Add", [h, g.o("Unsqueeze", [t, g.i64([2, 3])])]);
  const h2 = g.o("Add", [
    conv(silu(gn(h1, `${p}.norm2`)), `${p}.conv2`, 3),
    conv("x", `${p}.conv_shortcut`, 1),
  ]);
  const down = conv(h2, "down_blocks.0.downsamplers.0.conv", 3, 2);
  const up = conv(
    g.o("Resize", [down, "", g.f32([1, 1, 2, 2])], { mode: { s: "nearest" } }),
    "up_blocks.0.upsamplers.0.conv",
    3,
  );
  g.nodes.push({
    op: "GridSample",
    inputs: [g.o("Add", [up, h2]), "grid"],
    outputs: ["sample"],
    name: "/warp/GridSample",
    attrs: { mode: { s: "linear" }, padding_mode: { s: "border" }, align_corners: { i: 0 } },
  });
  const file = await _write(dir, "diffusion_resblock", g, {
    inputs: [
      { name: "x", dims: ["batch", 8, 8, 8] },
      { name: "temb", dims: ["batch", 16] },
      { name: "grid", dims: ["batch", 6, 6, 2] },
    ],
    outputs: [{ name: "sample" }],
    opset: 21,
  });
  return {
    name: "diffusion_resblock",
    file,
    cases: [2].map((bb) => ({
      dims: { x: [bb, 8, 8, 8], temb: [bb, 16], grid: [bb, 6, 6, 2] },
      inputs: {
        x: _randn(110, [bb, 8, 8, 8]),
        temb: _randn(111, [bb, 16]),
        grid: _randn(112, [bb, 6, 6, 2], 0.7),
      },
    })),
  };
}

const _BUILDERS = [
  _mobilenet,
  _resnet,
  _unet,
  _encoder,
  _gpt,
  _einsum,
  _ifModel,
  _vit,
  _convnext,
  _t5,
  _llama,
  _diffusion,
];

// ---------------------------------------------------------------------------------------------
// The tests

Deno.test("compile/eval: exporter-style models match onnxruntime (API, deferred weights, bake)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_models_" });
  try {
    for (const build of _BUILDERS) {
      const m = await build(dir);
      await t.step(`${m.name}: eval matches onnxruntime`, async () => {
        for (const c of m.cases) {
          const what = `${m.name} ${JSON.stringify(c.dims)}`;
          const program = compile(await parseOnnx(m.file.path, { inputDims: c.dims }), "ref");
          try {
            _assertMatch(await program.eval(c.inputs), await runOrt(m.file.path, c.inputs), what);
          } finally {
            program.dispose();
          }
        }
      });
      await t.step(
        `${m.name}: deferred weights, a second weight set, and bake match onnxruntime`,
        async () => {
          const c = m.cases[m.cases.length - 1];
          const v2 = await writeRandomWeights(m.file.path, `${dir}/${m.name}_v2`, { seed: 9 });
          const want = await runOrt(v2.modelPath, c.inputs);
          const program = compile(
            await parseOnnx(m.file.path, { inputDims: c.dims, deferExternalWeights: true }),
            "ref",
          );
          try {
            assert.ok(program.weights.length > 0, `${m.name}: no deferred weights`);
            program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/${m.name}_v2`));
            _assertMatch(await program.eval(c.inputs), want, `${m.name} bound v2`);
            // the original weights, bound again
            program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
            _assertMatch(
              await program.eval(c.inputs),
              await runOrt(m.file.path, c.inputs),
              `${m.name} bound v1`,
            );
            const baked = (await replaceOnnxExternalWeights(program, `${dir}/${m.name}_v2`, "ref")).finalize(
              "ref",
            );
            try {
              assert.equal(baked.weights.length, 0);
              _assertMatch(await baked.eval(c.inputs), want, `${m.name} baked v2`);
            } finally {
              baked.dispose();
            }
          } finally {
            program.dispose();
          }
        },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln CLI: exporter-style models compile, run, defer, bake and match onnxruntime", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_models_cli_" });
  try {
    const run = async (prog: string, c: _Case, out: string, extra: string[] = []) => {
      const args = ["run", prog, ...extra];
      for (const [name, x] of Object.entries(c.inputs)) {
        await writeNpyFile(`${dir}/${name}.npy`, x);
        args.push("--input", `${name}=${dir}/${name}.npy`);
      }
      const r = await runCli(...args, "--output", out);
      assert.equal(r.code, 0, r.stderr);
    };
    const read = async (out: string, names: string[]) => {
      const res: Record<string, Tensor> = {};
      for (const n of names) res[n] = await readNpyFile(`${out}/${n}.npy`);
      return res;
    };
    const dimsArgs = (c: _Case) =>
      Object.entries(c.dims).flatMap(([n, d]) => ["--dims", `${n}=${d.join("x")}`]);
    for (const build of [_mobilenet, _unet]) {
      const m = await build(dir);
      await t.step(`${m.name}: compile and run`, async () => {
        const c = m.cases[m.cases.length - 1];
        const prog = `${dir}/${m.name}.kiln`;
        const r = await runCli("compile", m.file.path, ...dimsArgs(c), "-o", prog);
        assert.equal(r.code, 0, r.stderr);
        await run(prog, c, `${dir}/${m.name}_out`);
        const want = await runOrt(m.file.path, c.inputs);
        _assertMatch(await read(`${dir}/${m.name}_out`, Object.keys(want)), want, `${m.name} CLI`);
      });
    }
    const m = await _gpt(dir);
    await t.step(`${m.name}: compile --defer-weights, weights random, run --weights, bake`, async () => {
      const c = m.cases[m.cases.length - 1];
      const prog = `${dir}/gpt_weightless.kiln`;
      let r = await runCli("compile", m.file.path, "--defer-weights", ...dimsArgs(c), "-o", prog);
      assert.equal(r.code, 0, r.stderr);
      r = await runCli("weights", "random", m.file.path, "--seed", "5", "-o", `${dir}/w5`);
      assert.equal(r.code, 0, r.stderr);
      const want = await runOrt(`${dir}/w5/gpt_block.onnx`, c.inputs);
      await run(prog, c, `${dir}/o1`, ["--weights", `${dir}/w5`]);
      _assertMatch(await read(`${dir}/o1`, Object.keys(want)), want, "gpt CLI run --weights");
      r = await runCli("bake", prog, "--weights", `${dir}/w5`, "-o", `${dir}/gpt5.kiln`);
      assert.equal(r.code, 0, r.stderr);
      await run(`${dir}/gpt5.kiln`, c, `${dir}/o2`);
      _assertMatch(await read(`${dir}/o2`, Object.keys(want)), want, "gpt CLI baked");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln CLI: bad models give one line naming the node, op, shapes or dim", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_models_bad_" });
  try {
    const one = async (file: string, args: string[], patterns: RegExp[]) => {
      const r = await runCli("compile", file, ...args, "-o", `${dir}/bad.kiln`);
      assert.notEqual(r.code, 0, "exit 0");
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
      assert.match(lines[0], /^kiln: error: /);
      for (const p of patterns) assert.match(lines[0], p);
    };
    await t.step("an op kiln lacks (LSTM) names the node and op", async () => {
      const g = new _G(8);
      g.nodes.push({
        op: "LSTM",
        inputs: ["x", g.w("lstm.W", [1, 16, 3]), g.w("lstm.R", [1, 16, 4])],
        outputs: ["y"],
        name: "/rnn/LSTM",
        attrs: { hidden_size: { i: 4 } },
      });
      const f = await _write(dir, "lstm", g, {
        inputs: [{ name: "x", dims: [5, 1, 3] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, [], [/'\/rnn\/LSTM'/, /LSTM/]);
    });
    await t.step("a shape mismatch names the node, op and shapes", async () => {
      const g = new _G(9);
      g.nodes.push({
        op: "MatMul",
        inputs: ["x", g.w("fc.weight", [5, 4])],
        outputs: ["y"],
        name: "/fc/MatMul",
      });
      const f = await _write(dir, "mismatch", g, {
        inputs: [{ name: "x", dims: [2, 3] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, [], [/'\/fc\/MatMul'/, /MatMul/, /\[2,3\]/, /\[5,4\]/]);
    });
    await t.step("a Conv channel mismatch names the node, op and both input shapes", async () => {
      const g = new _G(11);
      g.nodes.push({
        op: "Conv",
        inputs: ["x", g.w("conv1.weight", [4, 2, 3, 3])],
        outputs: ["y"],
        name: "/conv1/Conv",
      });
      const f = await _write(dir, "conv_mismatch", g, {
        inputs: [{ name: "x", dims: [1, 3, 8, 8] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, [], [/'\/conv1\/Conv'/, /Conv/, /float32\[1,3,8,8\]/, /float32\[4,2,3,3\]/]);
    });
    await t.step("a broadcast mismatch names the node, op and shapes", async () => {
      const g = new _G(10);
      g.nodes.push({ op: "Add", inputs: ["x", g.w("bias", [4])], outputs: ["y"], name: "/Add_bias" });
      const f = await _write(dir, "bcast", g, {
        inputs: [{ name: "x", dims: ["batch", 3] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, ["--dims", "x=2x3"], [/'\/Add_bias'/, /Add/, /\[2,3\]/, /\[4\]/]);
    });
    await t.step("a symbolic dim not given names the input and dim", async () => {
      const m = await _encoder(dir);
      await one(m.file.path, ["--dims", "x=1x4x16"], [
        /'attention_mask'/,
        /'batch'/,
        /--dims attention_mask=NxN/,
      ]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

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
      inputs: { x: _randn(120, [2, 6, 3, 3]) },
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
      inputs: { x: _randn(121, [2, 3, 4]) },
      inits: [{ name: "s", dtype: "float32", dims: [4], data: [1, 0.5, 2, -1] }],
      nodes: [{ op: "RMSNormalization", inputs: ["x", "s"], outputs: ["y"], attrs: { axis: { i: 1 } } }],
    },
    ...["bilinear", "nearest", "bicubic"].flatMap((mode) =>
      ["zeros", "border", "reflection"].map((pad) => ({
        name: `GridSample-16 ${mode} ${pad}`,
        opset: 16,
        inputs: { x: _randn(122, [1, 2, 4, 5]), grid: _randn(123, [1, 3, 4, 2], 0.9) },
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
      inputs: { theta: _randn(124, [2, 2, 3], 0.5), x: _randn(125, [2, 3, 5, 6]) },
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
        _assertMatch(await program.eval(c.inputs), await runOrt(build(types), c.inputs), c.name);
      } finally {
        program.dispose();
      }
    });
  }
});
