/**
 * The zoo's recurrent model: a 2-layer LSTM classifier as torch.onnx exports `nn.LSTM` (a
 * bidirectional first layer, its Y reshaped to [seq, batch, 2 * hidden] for the second) with a
 * Gemm head on the last hidden state; W, R and B of both layers and the head are external data.
 * It is not in ZOO_BUILDERS: the gpu target has no LSTM kernel and runs it on the host.
 * @module
 */
import { G, writeGraph } from "./graph_dsl.ts";
import { randn } from "./tensors.ts";
import type { ZooModel } from "./zoo.ts";

export async function lstmClassifier(dir: string): Promise<ZooModel> {
  const g = new G(11, "");
  const I = 8, H = 12, C = 5;
  // batch_first input -> [seq, batch, input]
  const xs = g.o("Transpose", ["x"], { perm: { ints: [1, 0, 2] } });
  const [y0] = g.om(
    "LSTM",
    [xs, g.w("lstm.l0.W", [2, 4 * H, I]), g.w("lstm.l0.R", [2, 4 * H, H]), g.w("lstm.l0.B", [2, 8 * H])],
    3,
    {
      hidden_size: { i: H },
      direction: { s: "bidirectional" },
    },
    "/lstm/LSTM",
  );
  // [seq, 2, batch, H] -> [seq, batch, 2, H] -> [seq, batch, 2H]
  const y0t = g.o("Transpose", [y0], { perm: { ints: [0, 2, 1, 3] } });
  const l1in = g.o("Reshape", [y0t, g.i64([0, 0, -1])]);
  const [y1, h1] = g.om(
    "LSTM",
    [
      l1in,
      g.w("lstm.l1.W", [1, 4 * H, 2 * H]),
      g.w("lstm.l1.R", [1, 4 * H, H]),
      g.w("lstm.l1.B", [1, 8 * H]),
    ],
    2,
    { hidden_size: { i: H }, activations: { strings: ["Sigmoid", "Tanh", "Tanh"] } },
    "/lstm/LSTM_1",
  );
  const last = g.o("Squeeze", [h1, g.i64([0])]);
  g.nodes.push({
    op: "Gemm",
    inputs: [last, g.w("head.weight", [C, H]), g.w("head.bias", [C])],
    outputs: ["logits"],
    name: "/head/Gemm",
    attrs: { transB: { i: 1 } },
  });
  g.nodes.push({ op: "Squeeze", inputs: [y1, g.i64([1])], outputs: ["hidden"], name: "/Squeeze_hidden" });
  const file = await writeGraph(dir, "lstm_classifier", g, {
    inputs: [{ name: "x", dims: ["batch", "sequence", I] }],
    outputs: [{ name: "logits" }, { name: "hidden" }],
    opset: 17,
  });
  return {
    name: "lstm_classifier",
    file,
    cases: [[1, 6], [3, 9]].map(([b, s]) => ({
      dims: { x: [b, s, I] },
      inputs: { x: randn(80 + b, [b, s, I]) },
    })),
  };
}
