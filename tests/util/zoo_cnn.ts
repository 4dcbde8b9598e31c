/**
 * The zoo's convolutional models: a MobileNet block, a ResNet block (torch.onnx style), a UNet
 * decoder, a ConvNeXt/MBConv stage and a diffusion UNet resnet block.
 * @module
 */
import { G, writeGraph } from "./graph_dsl.ts";
import { randn } from "./tensors.ts";
import type { ZooModel } from "./zoo.ts";
import { geluErf, linear } from "./zoo_layers.ts";

export async function mobilenet(dir: string): Promise<ZooModel> {
  const g = new G(1, "/features");
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
  const file = await writeGraph(dir, "mobilenet_block", g, {
    inputs: [{ name: "x", dims: ["batch", 8, 16, 16] }],
    outputs: [{ name: "logits" }],
    opset: 17,
  });
  return {
    name: "mobilenet_block",
    file,
    cases: [1, 3].map((b) => ({
      dims: { x: [b, 8, 16, 16] },
      inputs: { x: randn(10 + b, [b, 8, 16, 16]) },
    })),
  };
}

export async function resnet(dir: string): Promise<ZooModel> {
  // torch.onnx (TorchScript) style at opset 13: Constant nodes, BatchNormalization not folded.
  const g = new G(2, "");
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
  const file = await writeGraph(dir, "resnet_block", g, {
    inputs: [{ name: "x", dims: [1, 4, 12, 12] }],
    outputs: [{ name: "probs" }, { name: "features" }],
    opset: 13,
  });
  return { name: "resnet_block", file, cases: [{ dims: {}, inputs: { x: randn(20, [1, 4, 12, 12]) } }] };
}

export async function unet(dir: string): Promise<ZooModel> {
  const g = new G(3, "/decoder");
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
  const file = await writeGraph(dir, "unet_decoder", g, {
    inputs: [{ name: "x", dims: [1, 8, 4, 4] }, { name: "skip", dims: [1, 4, 8, 8] }],
    outputs: [{ name: "mask" }, { name: "aligned" }],
    opset: 18,
  });
  return {
    name: "unet_decoder",
    file,
    cases: [{ dims: {}, inputs: { x: randn(30, [1, 8, 4, 4]), skip: randn(31, [1, 4, 8, 8]) } }],
  };
}

export async function convnext(dir: string): Promise<ZooModel> {
  // ConvNeXt block (depthwise 7x7, NHWC LayerNorm, layer scale) then an EfficientNet MBConv
  // (SiLU as x * Sigmoid(x), squeeze-excite with ReduceMean) at opset 17
  const g = new G(12, "/stages");
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
  const pw = linear(g, geluErf(g, linear(g, ln, "stages.0.pwconv1", 8, 32)), "stages.0.pwconv2", 32, 8);
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
  const file = await writeGraph(dir, "convnext_mbconv", g, {
    inputs: [{ name: "x", dims: ["N", 8, 8, 8] }],
    outputs: [{ name: "features" }, { name: "logits" }],
    opset: 17,
  });
  return {
    name: "convnext_mbconv",
    file,
    cases: [2].map((bb) => ({ dims: { x: [bb, 8, 8, 8] }, inputs: { x: randn(90 + bb, [bb, 8, 8, 8]) } })),
  };
}

export async function diffusion(dir: string): Promise<ZooModel> {
  // Diffusion UNet resnet block at opset 21: GroupNormalization (per-channel scale), SiLU,
  // time embedding Gemm broadcast over H and W, skip, down/up sampling, then a GridSample warp
  const g = new G(15, "/down_blocks.0/resnets.0");
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
  const file = await writeGraph(dir, "diffusion_resblock", g, {
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
        x: randn(110, [bb, 8, 8, 8]),
        temb: randn(111, [bb, 16]),
        grid: randn(112, [bb, 6, 6, 2], 0.7),
      },
    })),
  };
}
