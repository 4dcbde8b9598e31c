// MatMul, Gemm, Conv, ConvTranspose and the pools (wasm/ops/{linalg,conv}.ts) on kiln's ref target
// against onnxruntime-node: shapes that hit the SGEMM's edge tiles, k-blocking and transposed
// packing, numpy batch broadcasting, grouped and depthwise convs, strides, dilations, auto_pad,
// 1-D/3-D, non-float32 types through the generic paths, pooling corner cases, and shape errors.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec } from "../core/onnx/writer.ts";
import { compile } from "../core/program.ts";
import type { DTypeName, Tensor } from "../core/tensor.ts";
import { runOrt } from "./util/ort.ts";
import { evalOnRef } from "./util/ref.ts";

interface CaseOptions {
  opset?: number;
  attrs?: NodeSpec["attrs"];
  /** Output element types, one per output (default: the first input's). */
  outputs?: DTypeName[];
  /** Float tolerance: |kiln - ort| <= atol + rtol * |ort|. */
  atol?: number;
  rtol?: number;
}

function _n(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Deterministic values in [-scale, scale]. */
function _wave(scale: number, seed = 1): (i: number) => number {
  return (i) => scale * Math.sin(i * 0.7311 + seed * 1.3) * Math.cos(i * 0.137 + seed);
}

function _t(dtype: DTypeName, dims: number[], seed = 1): Tensor {
  const f = _wave(2, seed);
  const n = _n(dims);
  switch (dtype) {
    case "float64":
      return { dtype, dims, data: Float64Array.from({ length: n }, (_, i) => f(i)) };
    case "int32":
      return { dtype, dims, data: Int32Array.from({ length: n }, (_, i) => Math.round(5 * f(i))) };
    case "int64":
      return { dtype, dims, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(Math.round(5 * f(i)))) };
    case "uint8":
      return { dtype, dims, data: Uint8Array.from({ length: n }, (_, i) => Math.round(127 + 60 * f(i))) };
    default:
      return { dtype: "float32", dims, data: Float32Array.from({ length: n }, (_, i) => f(i)) };
  }
}

function _model(op: string, inputs: Record<string, Tensor>, o: CaseOptions): Uint8Array {
  const names = Object.keys(inputs);
  const first = inputs[names[0]].dtype;
  const outs = (o.outputs ?? [first]).map((dtype, i) => ({ name: `y${i}`, dtype }));
  return buildModel({
    opset: o.opset ?? 18,
    graph: {
      inputs: names.map((n) => ({ name: n, dtype: inputs[n].dtype, dims: inputs[n].dims })),
      outputs: outs,
      nodes: [{ op, inputs: names, outputs: outs.map((x) => x.name), attrs: o.attrs }],
    },
  });
}

/** Runs `op` on kiln and onnxruntime-node and compares every output. */
async function _check(op: string, inputs: Record<string, Tensor>, o: CaseOptions = {}): Promise<void> {
  const model = _model(op, inputs, o);
  const want = await runOrt(model, inputs);
  const got = await evalOnRef(model, inputs);
  const atol = o.atol ?? 1e-5, rtol = o.rtol ?? 1e-4;
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    const label = `${op} ${JSON.stringify(o.attrs ?? {})} ${
      Object.values(inputs).map((t) => `${t.dtype}[${t.dims}]`).join(", ")
    } -> ${name}`;
    assert.ok(g, `${label}: kiln returned no output`);
    assert.equal(g.dtype, w.dtype, `${label}: dtype`);
    assert.deepEqual(g.dims, w.dims, `${label}: dims`);
    const gv = Array.from(g.data as ArrayLike<number | bigint>),
      wv = Array.from(w.data as ArrayLike<number | bigint>);
    for (let i = 0; i < wv.length; i++) {
      const a = gv[i], b = wv[i];
      if (typeof b === "bigint" || !g.dtype.startsWith("float")) {
        assert.equal(a, b, `${label}: element ${i} is ${a}, onnxruntime gives ${b}`);
        continue;
      }
      const x = a as number, y = b as number;
      assert.ok(
        Math.abs(x - y) <= atol + rtol * Math.abs(y),
        `${label}: element ${i} is ${x}, onnxruntime gives ${y}`,
      );
    }
  }
}

Deno.test("MatMul matches onnxruntime on 1-D promotion, batch broadcasting and SGEMM edge tiles", async (t) => {
  const cases: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[4], [4, 5]], // 1-D A
    [[2, 3, 4], [4]], // 1-D B
    [[7], [7]], // dot product
    [[1, 300], [300, 37]], // row vector (gemv path)
    [[2, 5, 6], [6, 3]], // batch folded into M
    [[2, 1, 3, 4], [3, 4, 5]], // batch broadcast both ways
    [[3, 4], [2, 4, 5]], // A broadcast over B's batch
    [[37, 129], [129, 70]], // edge tiles in M and N
    [[130, 600], [600, 19]], // k-blocking (K > 256) and M > 128
    [[1, 12, 16, 64], [1, 12, 64, 16]], // attention scores
    [[1, 128, 768], [768, 300]], // GPT-2 projection rows (A read in place, 2-row edge strip)
    [[20, 64], [64, 2100]], // N > NC: two column panels
  ];
  for (const [da, db] of cases) {
    await t.step(
      `float32 [${da}] x [${db}]`,
      () => _check("MatMul", { a: _t("float32", da), b: _t("float32", db, 2) }),
    );
  }
  for (const dt of ["float64", "int32", "int64"] as DTypeName[]) {
    await t.step(
      `${dt} [2,3,4] x [2,4,5]`,
      () => _check("MatMul", { a: _t(dt, [2, 3, 4]), b: _t(dt, [2, 4, 5], 2) }),
    );
  }
});

Deno.test("Gemm matches onnxruntime for every transA/transB, alpha, beta and C broadcast", async (t) => {
  const M = 13, N = 21, K = 35;
  for (const tA of [0, 1]) {
    for (const tB of [0, 1]) {
      for (const cDims of [null, [N], [M, 1], [1, 1], [M, N]]) {
        const name = `transA=${tA} transB=${tB} C=${cDims ? `[${cDims}]` : "none"}`;
        await t.step(name, async () => {
          const inputs: Record<string, Tensor> = {
            a: _t("float32", tA ? [K, M] : [M, K]),
            b: _t("float32", tB ? [N, K] : [K, N], 2),
          };
          if (cDims) inputs.c = _t("float32", cDims, 3);
          await _check("Gemm", inputs, {
            attrs: { transA: { i: tA }, transB: { i: tB }, alpha: { f: 0.75 }, beta: { f: cDims ? 1.5 : 1 } },
          });
        });
      }
    }
  }
  await t.step(
    "float64 with bias",
    () =>
      _check("Gemm", { a: _t("float64", [4, 6]), b: _t("float64", [5, 6], 2), c: _t("float64", [5], 3) }, {
        attrs: { transB: { i: 1 } },
      }),
  );
  await t.step(
    "classifier head (1 x 2048 x 1000, transB)",
    () =>
      _check("Gemm", {
        a: _t("float32", [1, 2048]),
        b: _t("float32", [1000, 2048], 2),
        c: _t("float32", [1000], 3),
      }, {
        attrs: { transB: { i: 1 } },
      }),
  );
});

Deno.test("Conv matches onnxruntime on groups, depthwise, strides, dilations, auto_pad and 1-D/3-D", async (t) => {
  const cases: [string, number[], number[], NodeSpec["attrs"], boolean][] = [
    ["3x3 pad 1 with bias", [2, 3, 9, 11], [5, 3, 3, 3], { pads: { ints: [1, 1, 1, 1] } }, true],
    ["1x1 stride 1 (direct GEMM)", [1, 16, 7, 9], [24, 16, 1, 1], {}, true],
    ["1x1 stride 2", [1, 8, 9, 9], [12, 8, 1, 1], { strides: { ints: [2, 2] } }, false],
    ["7x7 stride 2 pad 3", [1, 3, 20, 18], [8, 3, 7, 7], {
      strides: { ints: [2, 2] },
      pads: { ints: [3, 3, 3, 3] },
    }, true],
    ["group 2", [1, 6, 8, 8], [4, 3, 3, 3], { group: { i: 2 }, pads: { ints: [0, 1, 2, 1] } }, true],
    ["depthwise stride 2", [2, 8, 11, 10], [8, 1, 3, 3], {
      group: { i: 8 },
      strides: { ints: [2, 2] },
      pads: { ints: [1, 1, 1, 1] },
    }, true],
    ["depthwise stride 1 wide", [1, 4, 6, 23], [4, 1, 3, 5], {
      group: { i: 4 },
      pads: { ints: [1, 2, 1, 2] },
    }, true],
    ["depthwise multiplier 2", [1, 3, 7, 7], [6, 1, 3, 3], { group: { i: 3 } }, true],
    ["dilations 2", [1, 2, 12, 12], [3, 2, 3, 3], {
      dilations: { ints: [2, 2] },
      pads: { ints: [2, 2, 2, 2] },
    }, false],
    ["SAME_LOWER stride 2", [1, 2, 10, 9], [3, 2, 4, 4], {
      auto_pad: { s: "SAME_LOWER" },
      strides: { ints: [2, 2] },
    }, false],
    ["SAME_UPPER", [1, 2, 7, 8], [3, 2, 2, 3], { auto_pad: { s: "SAME_UPPER" } }, false],
    ["VALID", [1, 2, 7, 8], [3, 2, 3, 3], { auto_pad: { s: "VALID" }, strides: { ints: [2, 1] } }, false],
    ["1-D", [2, 3, 20], [4, 3, 5], { strides: { ints: [3] }, pads: { ints: [2, 1] } }, true],
    ["3-D", [1, 2, 5, 6, 7], [3, 2, 3, 2, 3], { pads: { ints: [1, 0, 1, 1, 1, 0] } }, true],
  ];
  for (const [name, xd, wd, attrs, bias] of cases) {
    await t.step(name, () => {
      const inputs: Record<string, Tensor> = { x: _t("float32", xd), w: _t("float32", wd, 2) };
      if (bias) inputs.b = _t("float32", [wd[0]], 3);
      return _check("Conv", inputs, { attrs });
    });
  }
  await t.step("float64 (onnxruntime has no float64 Conv: compared with its float32 result)", async () => {
    const attrs = { pads: { ints: [1, 1, 1, 1] } };
    const x = _t("float64", [1, 2, 6, 6]), w = _t("float64", [3, 2, 3, 3], 2);
    const x32 = _t("float32", [1, 2, 6, 6]), w32 = _t("float32", [3, 2, 3, 3], 2);
    const got = await evalOnRef(_model("Conv", { x, w }, { attrs }), { x, w });
    const want = await runOrt(_model("Conv", { x: x32, w: w32 }, { attrs }), { x: x32, w: w32 });
    assert.equal(got.y0.dtype, "float64");
    assert.deepEqual(got.y0.dims, want.y0.dims);
    const g = got.y0.data as Float64Array, e = want.y0.data as Float32Array;
    for (let i = 0; i < e.length; i++) {
      assert.ok(Math.abs(g[i] - e[i]) < 1e-4, `element ${i}: ${g[i]} vs ${e[i]}`);
    }
  });
});

Deno.test("ConvTranspose matches onnxruntime on strides, groups, output_padding, output_shape and dilations", async (t) => {
  const cases: [string, number[], number[], NodeSpec["attrs"], boolean][] = [
    ["stride 2 with bias", [1, 3, 5, 4], [3, 2, 3, 3], { strides: { ints: [2, 2] } }, true],
    ["pads and output_padding", [2, 2, 4, 5], [2, 3, 3, 3], {
      strides: { ints: [2, 3] },
      pads: { ints: [1, 0, 1, 2] },
      output_padding: { ints: [1, 1] },
    }, false],
    ["group 2", [1, 4, 3, 3], [4, 2, 2, 2], { group: { i: 2 }, strides: { ints: [2, 2] } }, true],
    ["dilations", [1, 2, 4, 4], [2, 2, 3, 3], { dilations: { ints: [2, 2] } }, false],
    ["output_shape", [1, 1, 3, 3], [1, 2, 3, 3], {
      strides: { ints: [3, 2] },
      output_shape: { ints: [10, 8] },
    }, false],
    ["1-D", [1, 2, 6], [2, 3, 4], { strides: { ints: [2] } }, true],
  ];
  for (const [name, xd, wd, attrs, bias] of cases) {
    await t.step(name, () => {
      const inputs: Record<string, Tensor> = { x: _t("float32", xd), w: _t("float32", wd, 2) };
      if (bias) inputs.b = _t("float32", [wd[1] * ((attrs?.group as { i: number })?.i ?? 1)], 3);
      return _check("ConvTranspose", inputs, { attrs });
    });
  }
});

Deno.test("pools match onnxruntime (ceil_mode, dilations, count_include_pad, Indices, Lp, global)", async (t) => {
  const x = _t("float32", [2, 3, 9, 8]);
  const k3 = { kernel_shape: { ints: [3, 3] } };
  await t.step(
    "MaxPool 3x3 s2 pad 1 (ResNet stem)",
    () =>
      _check("MaxPool", { x }, { attrs: { ...k3, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } } }),
  );
  await t.step("MaxPool ceil_mode with dilations", () =>
    _check("MaxPool", { x }, {
      attrs: { ...k3, strides: { ints: [2, 2] }, dilations: { ints: [2, 1] }, ceil_mode: { i: 1 } },
    }));
  await t.step("MaxPool with Indices", () =>
    _check("MaxPool", { x }, {
      attrs: { kernel_shape: { ints: [2, 3] }, strides: { ints: [2, 2] }, pads: { ints: [0, 1, 1, 1] } },
      outputs: ["float32", "int64"],
    }));
  await t.step(
    "MaxPool uint8 SAME_UPPER",
    () =>
      _check("MaxPool", { x: _t("uint8", [1, 2, 7, 7]) }, {
        attrs: { ...k3, auto_pad: { s: "SAME_UPPER" } },
      }),
  );
  for (const cip of [0, 1]) {
    await t.step(`AveragePool ceil_mode count_include_pad=${cip}`, () =>
      _check("AveragePool", { x }, {
        attrs: {
          ...k3,
          strides: { ints: [2, 2] },
          pads: { ints: [1, 1, 1, 1] },
          ceil_mode: { i: 1 },
          count_include_pad: { i: cip },
        },
      }));
  }
  await t.step("AveragePool 1-D and 3-D", async () => {
    await _check("AveragePool", { x: _t("float32", [1, 2, 11]) }, {
      attrs: { kernel_shape: { ints: [4] }, strides: { ints: [3] } },
    });
    await _check("AveragePool", { x: _t("float32", [1, 2, 5, 6, 4]) }, {
      attrs: { kernel_shape: { ints: [2, 3, 2] } },
    });
  });
  for (const p of [1, 2, 3]) {
    await t.step(
      `LpPool p=${p}`,
      () =>
        _check("LpPool", { x }, { attrs: { ...k3, p: { i: p }, pads: { ints: [1, 1, 1, 1] } }, rtol: 1e-4 }),
    );
  }
  for (const op of ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"]) {
    await t.step(op, () => _check(op, { x: _t("float32", [2, 5, 7, 9]) }));
  }
});

Deno.test("MatMul, Gemm and Conv report shape errors with the shapes involved", async (t) => {
  const cases: [string, Record<string, Tensor>, RegExp, NodeSpec["attrs"]?][] = [
    [
      "MatMul",
      { a: _t("float32", [2, 3]), b: _t("float32", [4, 5]) },
      /inner dims differ: float32\[2,3\] x float32\[4,5\]/,
    ],
    ["MatMul", { a: _t("float32", [2, 2, 3]), b: _t("float32", [3, 3, 4]) }, /batch dims do not broadcast/],
    ["Gemm", { a: _t("float32", [2, 3]), b: _t("float32", [2, 4]) }, /inner dims differ/],
    [
      "Gemm",
      { a: _t("float32", [2, 3]), b: _t("float32", [3, 4]), c: _t("float32", [3]) },
      /does not broadcast to float32\[2,4\]/,
    ],
    [
      "Conv",
      { x: _t("float32", [1, 4, 5, 5]), w: _t("float32", [2, 3, 3, 3]) },
      /X has 4 channels but W float32\[2,3,3,3\] expects 3/,
    ],
    [
      "Conv",
      { x: _t("float32", [1, 3, 2, 2]), w: _t("float32", [2, 3, 3, 3]) },
      /kernel \[3,3\] \(dilated\) is larger/,
    ],
  ];
  for (const [op, inputs, re, attrs] of cases) {
    await t.step(`${op}: ${re.source}`, async () => {
      const parsed = await parseOnnx(_model(op, inputs, { attrs }));
      assert.throws(() => compile(parsed, "ref"), (e: Error) => {
        assert.match(e.message, re);
        return true;
      });
    });
  }
});
