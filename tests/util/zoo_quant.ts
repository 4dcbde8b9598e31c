/**
 * A BERT-style encoder layer in the form onnxruntime's dynamic quantization (`quantize_dynamic`)
 * emits: every linear layer is DynamicQuantizeLinear on the activation, MatMulInteger with
 * quantized weights and their zero points, Cast to float, Mul by the product of the two scales
 * and Add of the float bias; LayerNorm, attention (float MatMul), Softmax and Gelu stay float.
 * Weights, their scales and (per-column) zero points live in external data, so two seeds give two
 * weight sets for the same graph bytes.
 * @module
 */
import { G, writeGraph } from "./graph_dsl.ts";
import { mask, randn } from "./tensors.ts";
import type { ZooModel } from "./zoo.ts";
import { F32_MIN, geluErf, heads, layerNorm, merge } from "./zoo_layers.ts";

/** Float weights of a [din, dout] layer, N(0, 1/sqrt(din)). */
function _float(g: G, din: number, dout: number): Float32Array {
  const w = new Float32Array(din * dout);
  for (let i = 0; i < w.length; i++) w[i] = g.rng.normal() / Math.sqrt(din);
  return w;
}

/**
 * A dynamically quantized linear layer. `int8`: symmetric per-tensor int8 weights (zero point 0,
 * inline); `uint8`: asymmetric per-column uint8 weights with external scales and zero points.
 */
function qlinear(g: G, x: string, p: string, din: number, dout: number, kind: "int8" | "uint8"): string {
  return qlinearAcc(g, x, p, din, dout, kind)[0];
}

/** qlinear, also returning the MatMulInteger's int32 output. */
function qlinearAcc(
  g: G,
  x: string,
  p: string,
  din: number,
  dout: number,
  kind: "int8" | "uint8",
): [string, string] {
  const w = _float(g, din, dout);
  let wq: string, scale: string, zp: string;
  if (kind === "int8") {
    const s = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127;
    wq = g.wv(`${p}.weight_quantized`, [din, dout], Int8Array.from(w, (v) => Math.round(v / s)));
    scale = g.wv(`${p}.weight_scale`, [], new Float32Array([s]));
    zp = g.c("int8", [0], [], `${p}.weight_zero_point`);
  } else {
    const q = new Uint8Array(din * dout), scales = new Float32Array(dout), zps = new Uint8Array(dout);
    for (let n = 0; n < dout; n++) {
      let lo = 0, hi = 0;
      for (let k = 0; k < din; k++) {
        lo = Math.min(lo, w[k * dout + n]);
        hi = Math.max(hi, w[k * dout + n]);
      }
      const s = Math.fround((hi - lo) / 255);
      const z = Math.min(255, Math.max(0, Math.round(-lo / s)));
      scales[n] = s;
      zps[n] = z;
      for (let k = 0; k < din; k++) {
        q[k * dout + n] = Math.min(255, Math.max(0, Math.round(w[k * dout + n] / s) + z));
      }
    }
    wq = g.wv(`${p}.weight_quantized`, [din, dout], q);
    scale = g.wv(`${p}.weight_scale`, [dout], scales);
    zp = g.wv(`${p}.weight_zero_point`, [dout], zps);
  }
  const [xq, xs, xz] = g.om("DynamicQuantizeLinear", [x], 3);
  const acc = g.o("MatMulInteger", [xq, wq, xz, zp]);
  const f = g.o("Cast", [acc], { to: { i: 1 } });
  const y = g.o("Mul", [f, g.o("Mul", [xs, scale])]);
  return [g.o("Add", [y, g.w(`${p}.bias`, [dout])]), acc];
}

/**
 * The quantized encoder layer; `seed` picks the weights (the graph is the same for every seed).
 * Outputs: `last_hidden_state` and `q_int32`, the query projection's exact int32 sums.
 */
export async function qbert(dir: string, seed = 4): Promise<ZooModel> {
  const g = new G(seed, "/encoder/layer.0");
  const p = "encoder.layer.0";
  const ln0 = layerNorm(g, "x", "embeddings.LayerNorm", 1e-12);
  const [q, qAcc] = qlinearAcc(g, ln0, `${p}.attention.self.query`, 16, 16, "int8");
  g.nodes.push({ op: "Identity", inputs: [qAcc], outputs: ["q_int32"], name: "/Id0" });
  const k = qlinear(g, ln0, `${p}.attention.self.key`, 16, 16, "uint8");
  const v = qlinear(g, ln0, `${p}.attention.self.value`, 16, 16, "int8");
  const scores = g.o("Div", [g.o("MatMul", [heads(g, q), heads(g, k, true)]), g.f32([Math.sqrt(8)], [])]);
  const m4 = g.o("Unsqueeze", ["attention_mask", g.i64([1, 2])]);
  const inv = g.o("Sub", [g.f32([1], []), g.o("Cast", [m4], { to: { i: 1 } })]);
  const probs = g.o("Softmax", [g.o("Add", [scores, g.o("Mul", [inv, g.f32([F32_MIN], [])])])], {
    axis: { i: -1 },
  });
  const ctx = merge(g, g.o("MatMul", [probs, heads(g, v)]));
  const att = g.o("Add", [qlinear(g, ctx, `${p}.attention.output.dense`, 16, 16, "uint8"), ln0]);
  const ln1 = layerNorm(g, att, `${p}.attention.output.LayerNorm`, 1e-12);
  const inter = geluErf(g, qlinear(g, ln1, `${p}.intermediate.dense`, 16, 32, "uint8"));
  const ff = qlinear(g, inter, `${p}.output.dense`, 32, 16, "int8");
  const out = layerNorm(g, g.o("Add", [ff, ln1]), `${p}.output.LayerNorm`, 1e-12);
  g.nodes.push({ op: "Identity", inputs: [out], outputs: ["last_hidden_state"], name: "/Identity" });
  const file = await writeGraph(dir, "qbert_layer", g, {
    inputs: [
      { name: "x", dims: ["batch", "sequence", 16] },
      { name: "attention_mask", dtype: "int64", dims: ["batch", "sequence"] },
    ],
    outputs: [{ name: "last_hidden_state" }, { name: "q_int32", dtype: "int32" }],
    opset: 17,
  });
  return {
    name: "qbert_layer",
    file,
    cases: [[1, 4], [2, 5]].map(([bb, ss]) => ({
      dims: { x: [bb, ss, 16], attention_mask: [bb, ss] },
      inputs: { x: randn(60 + bb, [bb, ss, 16]), attention_mask: mask(bb, ss) },
    })),
  };
}
