/**
 * The zoo's attention models: a BERT encoder layer, a GPT-2 block, attention written with
 * Einsum, a ViT, T5 attention and a Llama decoder layer.
 * @module
 */
import { G, writeGraph } from "./graph_dsl.ts";
import { ints, mask, randn } from "./tensors.ts";
import type { ZooModel } from "./zoo.ts";
import { F32_MIN, geluErf, geluTanh, heads, layerNorm, linear, merge } from "./zoo_layers.ts";

export async function encoder(dir: string): Promise<ZooModel> {
  const g = new G(4, "/encoder/layer.0");
  const p = "encoder.layer.0";
  const ln0 = layerNorm(g, "x", "embeddings.LayerNorm", 1e-12);
  const q = heads(g, linear(g, ln0, `${p}.attention.self.query`, 16, 16));
  const k = heads(g, linear(g, ln0, `${p}.attention.self.key`, 16, 16), true);
  const v = heads(g, linear(g, ln0, `${p}.attention.self.value`, 16, 16));
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
  const ctx = merge(g, g.o("MatMul", [probs, v]));
  const att = g.o("Add", [linear(g, ctx, `${p}.attention.output.dense`, 16, 16), ln0]);
  const ln1 = layerNorm(g, att, `${p}.attention.output.LayerNorm`, 1e-12);
  const ff = linear(
    g,
    geluErf(g, linear(g, ln1, `${p}.intermediate.dense`, 16, 32)),
    `${p}.output.dense`,
    32,
    16,
  );
  const out = layerNorm(g, g.o("Add", [ff, ln1]), `${p}.output.LayerNorm`, 1e-12);
  g.nodes.push({ op: "Identity", inputs: [out], outputs: ["last_hidden_state"], name: "/Identity" });
  // pooler: first token -> Gemm -> tanh-approximate Gelu
  const cls = g.o("Gather", [out, g.c("int64", [0], [])], { axis: { i: 1 } });
  const pooled = g.o("Gemm", [cls, g.w("pooler.dense.weight", [16, 16]), g.w("pooler.dense.bias", [16])], {
    transB: { i: 1 },
  });
  g.nodes.push({ op: "Identity", inputs: [geluTanh(g, pooled)], outputs: ["pooler_output"], name: "/Id2" });
  const file = await writeGraph(dir, "bert_layer", g, {
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
      inputs: { x: randn(40 + bb, [bb, ss, 16]), attention_mask: mask(bb, ss) },
    })),
  };
}

export async function gpt(dir: string): Promise<ZooModel> {
  const g = new G(5, "/transformer/h.0");
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
  const ln1 = layerNorm(g, h0, "transformer.h.0.ln_1");
  const qkv = linear(g, ln1, "transformer.h.0.attn.c_attn", 16, 48);
  const [q0, k0, v0] = g.om("Split", [qkv, g.i64([16, 16, 16])], 3, { axis: { i: 2 } });
  const q = heads(g, q0), k = heads(g, k0, true), v = heads(g, v0);
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
  const att = linear(g, merge(g, g.o("MatMul", [probs, v])), "transformer.h.0.attn.c_proj", 16, 16);
  const h1 = g.o("Add", [att, h0]);
  const ln2 = layerNorm(g, h1, "transformer.h.0.ln_2");
  const mlp = linear(
    g,
    geluTanh(g, linear(g, ln2, "transformer.h.0.mlp.c_fc", 16, 64)),
    "transformer.h.0.mlp.c_proj",
    64,
    16,
  );
  const hf = layerNorm(g, g.o("Add", [mlp, h1]), "transformer.ln_f");
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
  const file = await writeGraph(dir, "gpt_block", g, {
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
      inputs: { input_ids: ints([bb, ss], (i) => (i * 7 + 3) % V), attention_mask: mask(bb, ss) },
    })),
  };
}

export async function einsum(dir: string): Promise<ZooModel> {
  const g = new G(6, "/attn");
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
  const file = await writeGraph(dir, "einsum_attention", g, {
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
        q: randn(60 + b, [b, 2, 5, 8]),
        k: randn(61 + b, [b, 2, 5, 8]),
        v: randn(62 + b, [b, 2, 5, 8]),
      },
    })),
  };
}

export async function vit(dir: string): Promise<ZooModel> {
  // ViT: patch Conv, class token Expand-ed to the batch, position embedding, pre-norm encoder layer
  const g = new G(11, "/vit");
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
  const n1 = layerNorm(g, x0, `${p}.norm1`, 1e-6);
  const qkv = linear(g, n1, `${p}.attn.qkv`, 16, 48);
  const [q0, k0, v0] = g.om("Split", [qkv, g.i64([16, 16, 16])], 3, { axis: { i: -1 } });
  const scores = g.o("Mul", [
    g.o("MatMul", [heads(g, q0), heads(g, k0, true)]),
    g.f32([1 / Math.sqrt(8)], []),
  ]);
  const ctx = merge(g, g.o("MatMul", [g.o("Softmax", [scores], { axis: { i: -1 } }), heads(g, v0)]));
  const x1 = g.o("Add", [x0, linear(g, ctx, `${p}.attn.proj`, 16, 16)]);
  const n2 = layerNorm(g, x1, `${p}.norm2`, 1e-6);
  const x2 = g.o("Add", [
    x1,
    linear(g, geluErf(g, linear(g, n2, `${p}.mlp.fc1`, 16, 32)), `${p}.mlp.fc2`, 32, 16),
  ]);
  const nf = layerNorm(g, x2, "norm", 1e-6);
  const clsOut = g.o("Squeeze", [g.o("Slice", [nf, g.i64([0]), g.i64([1]), g.i64([1])]), g.i64([1])]);
  g.nodes.push({
    op: "Gemm",
    inputs: [clsOut, g.w("head.weight", [10, 16]), g.w("head.bias", [10])],
    outputs: ["logits"],
    name: "/head/Gemm",
    attrs: { transB: { i: 1 } },
  });
  const file = await writeGraph(dir, "vit_tiny", g, {
    inputs: [{ name: "pixel_values", dims: ["batch_size", 3, 16, 16] }],
    outputs: [{ name: "logits" }],
    opset: 18,
  });
  return {
    name: "vit_tiny",
    file,
    cases: [1, 3].map((bb) => ({
      dims: { pixel_values: [bb, 3, 16, 16] },
      inputs: { pixel_values: randn(80 + bb, [bb, 3, 16, 16]) },
    })),
  };
}

export async function t5(dir: string): Promise<ZooModel> {
  // T5 self-attention: RMSNorm (Pow, ReduceMean, Sqrt, Reciprocal), relative position buckets
  // computed from Range with Log/Cast/Min/Where (all folded), bias Gather, no scaling
  const g = new G(13, "/encoder/block.0/layer.0");
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
  const q = heads(g, lin(normed, "q")),
    k = heads(g, lin(normed, "k"), true),
    v = heads(g, lin(normed, "v"));
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
  const out = g.o("Add", ["hidden_states", lin(merge(g, g.o("MatMul", [probs, v])), "o")]);
  g.nodes.push({ op: "Identity", inputs: [out], outputs: ["last_hidden_state"], name: "/Identity_1" });
  const file = await writeGraph(dir, "t5_attention", g, {
    inputs: [{ name: "hidden_states", dims: ["batch", "seq", 16] }],
    outputs: [{ name: "last_hidden_state" }, { name: "position_bias" }],
    opset: 18,
  });
  return {
    name: "t5_attention",
    file,
    cases: [[2, 9]].map(([bb, ss]) => ({
      dims: { hidden_states: [bb, ss, 16] },
      inputs: { hidden_states: randn(100 + bb, [bb, ss, 16]) },
    })),
  };
}

export async function llama(dir: string): Promise<ZooModel> {
  // Llama decoder layer as dynamo writes it: RMSNorm decomposed (Pow, ReduceMean, Sqrt,
  // Reciprocal), rotary embeddings (Range positions, Slice/Neg/Concat rotate_half), grouped-query
  // attention (KV heads Expand-ed), a causal mask from Trilu of a ConstantOfShape(min), SiLU-gated MLP
  const g = new G(14, "/model/layers.0");
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
  const q = rope(heads(g, proj(n1, "model.layers.0.self_attn.q_proj", 16, 16)));
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
  const ctx = merge(g, g.o("MatMul", [g.o("Softmax", [scores], { axis: { i: -1 } }), v]));
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
  const file = await writeGraph(dir, "llama_layer", g, {
    inputs: [{ name: "input_ids", dtype: "int64", dims: ["batch", "seq"] }],
    outputs: [{ name: "logits" }, { name: "next", dtype: "int64" }],
    opset: 18,
  });
  return {
    name: "llama_layer",
    file,
    cases: [[1, 5], [2, 7]].map(([bb, sq]) => ({
      dims: { input_ids: [bb, sq] },
      inputs: { input_ids: ints([bb, sq], (i) => (i * 5 + 1) % V) },
    })),
  };
}
