/**
 * The kernel cases of `--kernels`: one-node models of the ops that dominate the two graphs
 * (ResNet-50's Conv classes, GPT-2's Gemms, MatMuls, LayerNormalization, Softmax, ...), and
 * their encoding as float32 ONNX models with seeded data.
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import { SeededRandom } from "../core/weights/random.ts";
import { onnx } from "../core/onnx/onnx_pb.js";

/** One input of a one-node model: a graph input (seeded) or an initializer (seeded weights). */
interface _CaseInput {
  dims: number[];
  init?: boolean;
  /** every element this value (default: seeded normals, scaled 1/sqrt(fan_in) for weights) */
  value?: number;
}

/** A one-node model shaped like nodes of a benchmark graph. */
export interface KernelCase {
  model: "resnet50" | "gpt2";
  label: string;
  op: string;
  inputs: _CaseInput[];
  attrs?: Record<string, number | number[]>;
  /** input 1 is stored transposed ([N,K]) and goes through a Transpose node first, as in GPT-2's tied lm_head */
  transposeB?: boolean;
  /** floating-point operations of one run (2 per multiply-add), 0 when not a contraction */
  flops: number;
  /** how many such nodes the graph has (approximately, for the same work) */
  count: number;
}

function _conv(
  label: string,
  cin: number,
  cout: number,
  k: number,
  hw: number,
  stride: number,
  count: number,
) {
  const out = Math.floor((hw + 2 * (k >> 1) - k) / stride) + 1;
  const p = k >> 1;
  return {
    model: "resnet50",
    label,
    op: "Conv",
    inputs: [{ dims: [1, cin, hw, hw] }, { dims: [cout, cin, k, k], init: true }],
    attrs: { kernel_shape: [k, k], pads: [p, p, p, p], strides: [stride, stride] },
    flops: 2 * cout * out * out * cin * k * k,
    count,
  } satisfies KernelCase;
}

function _gemm(label: string, m: number, k: number, n: number, count: number): KernelCase {
  return {
    model: "gpt2",
    label,
    op: "Gemm",
    inputs: [{ dims: [m, k] }, { dims: [k, n], init: true }],
    flops: 2 * m * k * n,
    count,
  };
}

export const KERNEL_CASES: KernelCase[] = [
  _conv("Conv 7x7/2 3→64 @224", 3, 64, 7, 224, 2, 1),
  _conv("Conv 1x1 256→64 @56", 256, 64, 1, 56, 1, 2),
  _conv("Conv 3x3 64→64 @56", 64, 64, 3, 56, 1, 3),
  _conv("Conv 1x1 64→256 @56", 64, 256, 1, 56, 1, 4),
  _conv("Conv 3x3 128→128 @28", 128, 128, 3, 28, 1, 4),
  _conv("Conv 1x1 512→128 @28", 512, 128, 1, 28, 1, 4),
  _conv("Conv 3x3 256→256 @14", 256, 256, 3, 14, 1, 6),
  _conv("Conv 1x1 1024→256 @14", 1024, 256, 1, 14, 1, 6),
  _conv("Conv 1x1 256→1024 @14", 256, 1024, 1, 14, 1, 7),
  _conv("Conv 3x3 512→512 @7", 512, 512, 3, 7, 1, 3),
  {
    model: "resnet50",
    label: "MaxPool 3x3/2 64×112×112",
    op: "MaxPool",
    inputs: [{ dims: [1, 64, 112, 112] }],
    attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] },
    flops: 0,
    count: 1,
  },
  {
    model: "resnet50",
    label: "Relu 256×56×56 (count: the graph's 49 Relus in elements)",
    op: "Relu",
    inputs: [{ dims: [1, 256, 56, 56] }],
    flops: 0,
    count: 12,
  },
  {
    model: "resnet50",
    label: "Add 256×56×56 (count: the graph's 16 residual Adds in elements)",
    op: "Add",
    inputs: [{ dims: [1, 256, 56, 56] }, { dims: [1, 256, 56, 56] }],
    flops: 0,
    count: 7,
  },
  _gemm("Gemm 128×768 · 768×2304 (qkv)", 128, 768, 2304, 12),
  _gemm("Gemm 128×768 · 768×768 (attn proj)", 128, 768, 768, 12),
  _gemm("Gemm 128×768 · 768×3072 (mlp fc)", 128, 768, 3072, 12),
  _gemm("Gemm 128×3072 · 3072×768 (mlp proj)", 128, 3072, 768, 12),
  {
    model: "gpt2",
    label: "MatMul 12×(128×64 · 64×128) (attention)",
    op: "MatMul",
    inputs: [{ dims: [1, 12, 128, 64] }, { dims: [1, 12, 64, 128] }],
    flops: 2 * 12 * 128 * 64 * 128,
    count: 24,
  },
  {
    model: "gpt2",
    label: "MatMul 128×768 · Transpose(50257×768) (tied lm_head)",
    op: "MatMul",
    inputs: [{ dims: [1, 128, 768] }, { dims: [50257, 768], init: true }],
    transposeB: true,
    flops: 2 * 128 * 768 * 50257,
    count: 1,
  },
  {
    model: "gpt2",
    label: "MatMul 128×768 · 768×50257 (lm_head pre-transposed; not in the graph)",
    op: "MatMul",
    inputs: [{ dims: [1, 128, 768] }, { dims: [768, 50257], init: true }],
    flops: 2 * 128 * 768 * 50257,
    count: 0,
  },
  {
    model: "gpt2",
    label: "Transpose 1×128×12×64 → 1×12×128×64 (heads)",
    op: "Transpose",
    inputs: [{ dims: [1, 128, 12, 64] }],
    attrs: { perm: [0, 2, 1, 3] },
    flops: 0,
    count: 48,
  },
  {
    model: "gpt2",
    label: "Mul 1×128×3072 · scalar (GELU chain: 4 Mul + 2 Add per layer)",
    op: "Mul",
    inputs: [{ dims: [1, 128, 3072] }, { dims: [], init: true, value: 0.5 }],
    flops: 0,
    count: 72,
  },
  {
    model: "gpt2",
    label: "Pow 1×128×3072 ^ 3 (GELU)",
    op: "Pow",
    inputs: [{ dims: [1, 128, 3072] }, { dims: [], init: true, value: 3 }],
    flops: 0,
    count: 12,
  },
  {
    model: "gpt2",
    label: "Tanh 1×128×3072 (GELU)",
    op: "Tanh",
    inputs: [{ dims: [1, 128, 3072] }],
    flops: 0,
    count: 12,
  },
  {
    model: "gpt2",
    label: "LayerNormalization 128×768",
    op: "LayerNormalization",
    inputs: [{ dims: [1, 128, 768] }, { dims: [768], init: true }, { dims: [768], init: true }],
    attrs: { axis: -1 },
    flops: 0,
    count: 25,
  },
  {
    model: "gpt2",
    label: "Softmax 12×128×128",
    op: "Softmax",
    inputs: [{ dims: [1, 12, 128, 128] }],
    attrs: { axis: -1 },
    flops: 0,
    count: 12,
  },
];

/** Encodes a one-node float32 ONNX model (opset 18) of a kernel case, with seeded data. */
export function caseModel(c: KernelCase, seed: number): { bytes: Uint8Array; feeds: Record<string, Tensor> } {
  const r = new SeededRandom(seed);
  const feeds: Record<string, Tensor> = {};
  const inputs: onnx.IValueInfoProto[] = [];
  const initializer: onnx.ITensorProto[] = [];
  const names: string[] = [];
  c.inputs.forEach((inp, i) => {
    const name = `in${i}`;
    names.push(name);
    const n = inp.dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const std = inp.init && inp.dims.length >= 2 ? 1 / Math.sqrt(n / inp.dims[0]) : 1;
    if (inp.value !== undefined) data.fill(inp.value);
    else for (let j = 0; j < n; j++) data[j] = r.normal() * std;
    if (inp.init) {
      initializer.push({ name, data_type: 1, dims: inp.dims, raw_data: new Uint8Array(data.buffer) });
    } else {
      feeds[name] = { dtype: "float32", dims: inp.dims, data };
      const dim = inp.dims.map((d) => ({ dim_value: d }));
      inputs.push({ name, type: { tensor_type: { elem_type: 1, shape: { dim } } } });
    }
  });
  const attribute: onnx.IAttributeProto[] = Object.entries(c.attrs ?? {}).map(([name, v]) =>
    Array.isArray(v) ? { name, type: 7, ints: v } : { name, type: 2, i: v }
  );
  const node: onnx.INodeProto[] = [];
  if (c.transposeB) {
    node.push({
      op_type: "Transpose",
      name: "transposeB",
      input: [names[1]],
      output: ["in1_T"],
      attribute: [],
    });
    names[1] = "in1_T";
    node[0].attribute = [{ name: "perm", type: 7, ints: [1, 0] }];
  }
  node.push({ op_type: c.op, name: "node0", input: names, output: ["out"], attribute });
  const model: onnx.IModelProto = {
    ir_version: 8,
    producer_name: "kiln-bench",
    opset_import: [{ domain: "", version: 18 }],
    graph: {
      name: c.op,
      node,
      input: inputs,
      initializer,
      output: [{ name: "out", type: { tensor_type: { elem_type: 1 } } }],
    },
  };
  return { bytes: onnx.ModelProto.encode(model).finish(), feeds };
}
