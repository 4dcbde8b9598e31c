// Writes a Llama-style decoder graph (the patterns PyTorch's exporter emits: RMSNorm decomposed,
// rotary embeddings from Range positions with Slice/Neg/Concat, causal mask from Trilu, SiLU-gated
// MLP) with every weight in ONNX external data, then (unless --graph-only) a seeded weight set for
// it. The default size has more than 4 GiB of float32 weights: more than kiln's WebAssembly core
// can address, so only the gpu target can run it (issue: models larger than the core).
//   deno run -A tools/make_llama.ts OUT_DIR [--layers 20] [--hidden 2048] [--ffn 5504] [--vocab 32000]
//                                           [--heads 16] [--seq 32] [--seed 1] [--graph-only]
import { parseArgs } from "node:util";
import { buildModel, type NodeSpec, type TensorSpec } from "../core/onnx/writer.ts";
import { writeRandomWeights } from "../core/weights/random.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    layers: { type: "string", default: "20" },
    hidden: { type: "string", default: "2048" },
    ffn: { type: "string", default: "5504" },
    vocab: { type: "string", default: "32000" },
    heads: { type: "string", default: "16" },
    seed: { type: "string", default: "1" },
    "graph-only": { type: "boolean" },
  },
});
if (positionals.length !== 1) {
  console.error("usage: make_llama.ts OUT_DIR [--layers N] [--hidden H] [--ffn F] [--vocab V] [--heads N]");
  Deno.exit(2);
}
const out = positionals[0].replace(/\/+$/, "");
const L = Number(values.layers), H = Number(values.hidden), F = Number(values.ffn), V = Number(values.vocab);
const NH = Number(values.heads), HD = H / NH;

const nodes: NodeSpec[] = [];
const inits: TensorSpec[] = [];
let dataAt = 0;
let k = 0;
const DATA = "llama.onnx.data";

/** An external float32 weight, 4096-aligned in the data file. */
function w(name: string, dims: number[]): string {
  const length = 4 * dims.reduce((a, b) => a * b, 1);
  inits.push({ name, dtype: "float32", dims, external: { location: DATA, offset: dataAt, length } });
  dataAt = Math.ceil((dataAt + length) / 4096) * 4096;
  return name;
}
function c(dtype: "int64" | "float32", vals: number[] | bigint[], dims?: number[]): string {
  const name = `const_${k++}`;
  inits.push({ name, dtype, dims: dims ?? [vals.length], data: vals });
  return name;
}
function o(op: string, inputs: string[], attrs: NodeSpec["attrs"] = {}): string {
  const name = `/${op}_${k++}`;
  const output = `${name.slice(1)}_output_0`;
  nodes.push({ op, inputs, outputs: [output], name, attrs });
  return output;
}

const rms = (x: string, p: string) => {
  const v = o("ReduceMean", [o("Pow", [x, c("float32", [2], [])]), c("int64", [-1])], { keepdims: { i: 1 } });
  const n = o("Mul", [x, o("Reciprocal", [o("Sqrt", [o("Add", [v, c("float32", [1e-6], [])])])])]);
  return o("Mul", [w(`${p}.weight`, [H]), n]);
};
const S = o("Gather", [o("Shape", ["input_ids"]), c("int64", [1], [])], { axis: { i: 0 } });
const pos = o("Cast", [o("Range", [c("int64", [0], []), S, c("int64", [1], [])])], { to: { i: 1 } });
const invFreq = Array.from({ length: HD / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / HD));
const freqs = o("Mul", [o("Unsqueeze", [pos, c("int64", [1])]), c("float32", invFreq, [1, HD / 2])]);
const emb = o("Concat", [freqs, freqs], { axis: { i: -1 } });
const cos = o("Cos", [emb]), sin = o("Sin", [emb]);
const rope = (x: string) => {
  const x1 = o("Slice", [x, c("int64", [0]), c("int64", [HD / 2]), c("int64", [-1])]);
  const x2 = o("Slice", [x, c("int64", [HD / 2]), c("int64", [9223372036854775807n], [1]), c("int64", [-1])]);
  const rot = o("Concat", [o("Neg", [x2]), x1], { axis: { i: -1 } });
  return o("Add", [o("Mul", [x, cos]), o("Mul", [rot, sin])]);
};
const heads = (x: string) =>
  o("Transpose", [o("Reshape", [x, c("int64", [0, 0, NH, HD])])], { perm: { ints: [0, 2, 1, 3] } });
const ss = o("Concat", [o("Unsqueeze", [S, c("int64", [0])]), o("Unsqueeze", [S, c("int64", [0])])], {
  axis: { i: 0 },
});
const causal = o("Trilu", [
  o("ConstantOfShape", [ss], {
    value: { t: { name: "", dtype: "float32", dims: [1], data: [-3.4028234663852886e38] } },
  }),
  c("int64", [1], []),
], { upper: { i: 1 } });

let h = o("Gather", [w("model.embed_tokens.weight", [V, H]), "input_ids"]);
for (let l = 0; l < L; l++) {
  const p = `model.layers.${l}`;
  const n1 = rms(h, `${p}.input_layernorm`);
  const q = rope(heads(o("MatMul", [n1, w(`${p}.self_attn.q_proj.weight`, [H, H])])));
  const kk = rope(heads(o("MatMul", [n1, w(`${p}.self_attn.k_proj.weight`, [H, H])])));
  const v = heads(o("MatMul", [n1, w(`${p}.self_attn.v_proj.weight`, [H, H])]));
  const scores = o("Add", [
    o("Mul", [
      o("MatMul", [q, o("Transpose", [kk], { perm: { ints: [0, 1, 3, 2] } })]),
      c("float32", [1 / Math.sqrt(HD)], []),
    ]),
    causal,
  ]);
  const ctx = o("Reshape", [
    o("Transpose", [o("MatMul", [o("Softmax", [scores], { axis: { i: -1 } }), v])], {
      perm: { ints: [0, 2, 1, 3] },
    }),
    c("int64", [0, 0, H]),
  ]);
  h = o("Add", [h, o("MatMul", [ctx, w(`${p}.self_attn.o_proj.weight`, [H, H])])]);
  const n2 = rms(h, `${p}.post_attention_layernorm`);
  const gate = o("MatMul", [n2, w(`${p}.mlp.gate_proj.weight`, [H, F])]);
  const act = o("Mul", [
    o("Mul", [gate, o("Sigmoid", [gate])]),
    o("MatMul", [n2, w(`${p}.mlp.up_proj.weight`, [H, F])]),
  ]);
  h = o("Add", [h, o("MatMul", [act, w(`${p}.mlp.down_proj.weight`, [F, H])])]);
}
nodes.push({
  op: "MatMul",
  inputs: [rms(h, "model.norm"), w("lm_head.weight", [H, V])],
  outputs: ["logits"],
  name: "/lm_head/MatMul",
});

await Deno.mkdir(out, { recursive: true });
const model = buildModel({
  opset: 18,
  graph: {
    name: "llama",
    inputs: [{ name: "input_ids", dtype: "int64", dims: ["batch", "seq"] }],
    outputs: [{ name: "logits", dtype: "float32" }],
    initializers: inits,
    nodes,
  },
});
await Deno.writeFile(`${out}/llama.onnx`, model);
const params = inits.filter((t) => t.external).reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);
console.error(
  `make_llama: ${out}/llama.onnx: ${L} layers, hidden ${H}, ${(params / 1e9).toFixed(2)} B parameters, ` +
    `${(dataAt / 2 ** 30).toFixed(2)} GiB of float32 weights in ${DATA}`,
);
if (!values["graph-only"]) {
  const t0 = performance.now();
  await writeRandomWeights(`${out}/llama.onnx`, out, { seed: Number(values.seed) });
  console.error(
    `make_llama: seeded weights (seed ${values.seed}) written in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
}
