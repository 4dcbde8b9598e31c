/** Building blocks shared by the zoo's transformer-style models (and ConvNeXt's MLP). @module */
import { buildModel } from "../../core/onnx/writer.ts";
import type { G } from "./graph_dsl.ts";

/** The most negative float32: the additive attention mask's "minus infinity", as HF writes it. */
export const F32_MIN = -3.4028234663852886e38;

/** Transformer helpers shared by the encoder and the GPT block. */
export function layerNorm(g: G, x: string, p: string, eps = 1e-5): string {
  return g.o("LayerNormalization", [x, g.w(`${p}.weight`, [16], { ones: true }), g.w(`${p}.bias`, [16])], {
    axis: { i: -1 },
    epsilon: { f: eps },
  });
}
export function linear(g: G, x: string, p: string, din: number, dout: number): string {
  return g.o("Add", [g.o("MatMul", [x, g.w(`${p}.weight`, [din, dout])]), g.w(`${p}.bias`, [dout])]);
}
/** [B, S, H*D] -> [B, H, S, D] (or [B, H, D, S] with kT) via a Shape -> Gather -> Unsqueeze -> Concat chain. */
export function heads(g: G, x: string, kT = false): string {
  const sh = g.o("Shape", [x]);
  const b = g.o("Unsqueeze", [g.o("Gather", [sh, g.c("int64", [0], [])], { axis: { i: 0 } }), g.i64([0])]);
  const s = g.o("Unsqueeze", [g.o("Gather", [sh, g.c("int64", [1], [])], { axis: { i: 0 } }), g.i64([0])]);
  const shape = g.o("Concat", [b, s, g.i64([2]), g.i64([8])], { axis: { i: 0 } });
  return g.o("Transpose", [g.o("Reshape", [x, shape])], { perm: { ints: kT ? [0, 2, 3, 1] : [0, 2, 1, 3] } });
}
export function merge(g: G, x: string): string {
  const t = g.o("Transpose", [x], { perm: { ints: [0, 2, 1, 3] } });
  const sh = g.o("Shape", [t]);
  const bs = g.o("Slice", [sh, g.i64([0]), g.i64([2])]);
  return g.o("Reshape", [t, g.o("Concat", [bs, g.i64([16])], { axis: { i: 0 } })]);
}
/** Gelu as 0.5 * x * (1 + Erf(x / sqrt 2)). */
export function geluErf(g: G, x: string): string {
  const e = g.o("Erf", [g.o("Div", [x, g.f32([Math.SQRT2], [])])]);
  return g.o("Mul", [g.o("Mul", [x, g.o("Add", [e, g.f32([1], [])])]), g.f32([0.5], [])]);
}
/** Gelu tanh approximation with Pow (GPT-2's NewGELU). */
export function geluTanh(g: G, x: string): string {
  const cube = g.o("Mul", [g.o("Pow", [x, g.f32([3], [])]), g.f32([0.044715], [])]);
  const inner = g.o("Mul", [g.o("Add", [x, cube]), g.f32([Math.sqrt(2 / Math.PI)], [])]);
  const t = g.o("Add", [g.o("Tanh", [inner]), g.f32([1], [])]);
  return g.o("Mul", [g.o("Mul", [g.f32([0.5], []), x]), t]);
}

/**
 * A whole model of GPT-2's tanh GELU as the exporter writes it, x [dims] -> y: 0.5x · (1 + tanh(√(2/π) ·
 * (x + 0.044715 x³))), eight elementwise nodes (Mul, Pow, Mul, Add, Mul, Tanh, Add, Mul), x read three times.
 */
export function geluTanhModel(dims: number[]): Uint8Array {
  const scalar = (name: string, v: number) => ({
    name,
    dtype: "float32" as const,
    dims: [],
    data: new Float32Array([v]),
  });
  return buildModel({
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims }],
      outputs: [{ name: "y", dtype: "float32" }],
      initializers: [
        scalar("half", 0.5),
        scalar("three", 3),
        scalar("c", 0.044715),
        scalar("k", 0.7978845608028654),
        scalar("one", 1),
      ],
      nodes: [
        { op: "Mul", inputs: ["x", "half"], outputs: ["a"] },
        { op: "Pow", inputs: ["x", "three"], outputs: ["b"] },
        { op: "Mul", inputs: ["b", "c"], outputs: ["b2"] },
        { op: "Add", inputs: ["x", "b2"], outputs: ["b3"] },
        { op: "Mul", inputs: ["b3", "k"], outputs: ["b4"] },
        { op: "Tanh", inputs: ["b4"], outputs: ["t"] },
        { op: "Add", inputs: ["t", "one"], outputs: ["t2"] },
        { op: "Mul", inputs: ["a", "t2"], outputs: ["y"] },
      ],
    },
  });
}
