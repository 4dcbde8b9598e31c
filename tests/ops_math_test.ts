// Math ops (wasm/ops/{elementwise,reduce,norm}.ts) on kiln's ref target against onnxruntime-node:
// single-node models over the broadcast patterns the kernels special-case (same shape, row,
// column and scalar broadcast, generic strided walks), the fast float32 exp/tanh/erf over wide
// ranges, integer semantics, the softmax family and normalizations on long rows (SIMD tails),
// and shape-inference error messages.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec } from "../core/onnx/writer.ts";
import { compile } from "../core/program.ts";
import type { DTypeName, Tensor } from "../core/tensor.ts";
import { runOrt } from "./util/ort.ts";
import { evalOnRef } from "./util/ref.ts";

interface CaseOptions {
  opset?: number;
  /** Inputs given as initializers (compile-time constants), after the graph inputs. */
  constants?: Record<string, Tensor>;
  attrs?: NodeSpec["attrs"];
  /** Output element types, one per output (default: float32). */
  outputs?: DTypeName[];
  /** Float tolerance: |kiln - ort| <= atol + rtol * |ort| (defaults 1e-6, 1e-5). */
  atol?: number;
  rtol?: number;
}

function _f32(dims: number[], f: (i: number) => number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: "float32", dims, data: Float32Array.from({ length: n }, (_, i) => f(i)) };
}

function _i64(dims: number[], f: (i: number) => number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: "int64", dims, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(f(i))) };
}

/** Deterministic values in [-scale, scale]. */
function _wave(scale: number, seed = 1): (i: number) => number {
  return (i) => scale * Math.sin(i * 0.7311 + seed * 1.3) * Math.cos(i * 0.137 + seed);
}

function _model(op: string, inputs: Record<string, Tensor>, o: CaseOptions): Uint8Array {
  const names = Object.keys(inputs);
  const consts = Object.entries(o.constants ?? {});
  const outs = (o.outputs ?? ["float32"]).map((dtype, i) => ({ name: `y${i}`, dtype }));
  return buildModel({
    opset: o.opset ?? 18,
    graph: {
      inputs: names.map((n) => ({ name: n, dtype: inputs[n].dtype, dims: inputs[n].dims })),
      outputs: outs,
      initializers: consts.map(([name, t]) => ({ name, dtype: t.dtype, dims: t.dims, data: t.data })),
      nodes: [{
        op,
        inputs: [...names, ...consts.map(([n]) => n)],
        outputs: outs.map((x) => x.name),
        attrs: o.attrs,
      }],
    },
  });
}

/** Runs `op` on kiln and onnxruntime-node and compares every output. */
async function _check(op: string, inputs: Record<string, Tensor>, o: CaseOptions = {}): Promise<void> {
  const model = _model(op, inputs, o);
  const want = await runOrt(model, inputs);
  const got = await evalOnRef(model, inputs);
  const atol = o.atol ?? 1e-6, rtol = o.rtol ?? 1e-5;
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    const label = `${op} ${Object.values(inputs).map((t) => `${t.dtype}[${t.dims}]`).join(", ")} -> ${name}`;
    assert.ok(g, `${label}: kiln returned no output`);
    assert.equal(g.dtype, w.dtype, `${label}: dtype`);
    assert.deepEqual(g.dims, w.dims, `${label}: dims`);
    const gv = Array.from(g.data as ArrayLike<number | bigint>),
      wv = Array.from(w.data as ArrayLike<number | bigint>);
    for (let i = 0; i < wv.length; i++) {
      const a = gv[i], b = wv[i];
      if (typeof b === "bigint" || g.dtype !== "float32") {
        assert.equal(a, b, `${label}: element ${i} is ${a}, onnxruntime gives ${b}`);
        continue;
      }
      const x = a as number, y = b as number;
      if (Number.isNaN(y) && Number.isNaN(x)) continue;
      if (x === y) continue;
      assert.ok(
        Math.abs(x - y) <= atol + rtol * Math.abs(y),
        `${label}: element ${i} is ${x}, onnxruntime gives ${y}`,
      );
    }
  }
}

Deno.test("binary float32 ops match onnxruntime on every broadcast pattern", async (t) => {
  const shapes: [number[], number[]][] = [
    [[37], [37]], // same shape, SIMD tail
    [[5, 67], [67]], // row broadcast (bias add)
    [[5, 67], [5, 1]], // column broadcast
    [[3, 5, 7], []], // scalar
    [[], [3, 5, 7]], // scalar first
    [[2, 1, 9], [4, 1]], // both broadcast
    [[2, 3, 4, 5], [2, 1, 1, 5]], // attention-mask pattern
    [[1, 4, 1, 6], [3, 1, 5, 1]], // generic strided walk
  ];
  for (const op of ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"]) {
    await t.step(op, async () => {
      for (const [da, db] of shapes) {
        const a = _f32(da, op === "Pow" ? (i) => 0.5 + Math.abs(_wave(2)(i)) : _wave(3, 1));
        const b = _f32(
          db,
          op === "Div" || op === "Pow" ? (i) => 0.5 + Math.abs(_wave(2, 2)(i)) : _wave(3, 2),
        );
        await _check(op, { a, b });
      }
    });
  }
  await t.step("PRelu with per-channel slope", async () => {
    await _check("PRelu", { x: _f32([2, 3, 4, 5], _wave(2)), slope: _f32([3, 1, 1], (i) => 0.1 * (i + 1)) });
  });
  await t.step("Pow with the constant exponents 2, 3 and 0.5", async () => {
    for (const e of [2, 3, 0.5]) {
      await _check("Pow", { x: _f32([7, 9], (i) => 0.1 + Math.abs(_wave(4)(i))), e: _f32([], () => e) });
    }
  });
});

Deno.test("integer binary ops follow onnxruntime (truncating Div, Python-style Mod, fmod)", async (t) => {
  const a = _i64([4, 6], (i) => (i % 2 ? -1 : 1) * (i * 7 + 3));
  const b = _i64([6], (i) => (i % 3 === 0 ? -1 : 1) * (i + 2));
  for (const op of ["Add", "Sub", "Mul", "Div"]) {
    await t.step(op, () => _check(op, { a, b }, { outputs: ["int64"] }));
  }
  await t.step("Mod fmod=0", () => _check("Mod", { a, b }, { outputs: ["int64"] }));
  await t.step(
    "Mod fmod=1",
    () => _check("Mod", { a, b }, { outputs: ["int64"], attrs: { fmod: { i: 1 } } }),
  );
  await t.step(
    "Mod fmod=1 float32",
    () =>
      _check("Mod", { a: _f32([9], _wave(7)), b: _f32([9], (i) => 1.5 + i) }, { attrs: { fmod: { i: 1 } } }),
  );
});

Deno.test("comparisons and Where broadcast to bool and select", async (t) => {
  const a = _f32([3, 1, 8], _wave(1));
  const b = _f32([4, 8], _wave(1, 3));
  for (const op of ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]) {
    await t.step(op, () => _check(op, { a, b }, { outputs: ["bool"] }));
  }
  await t.step("Where", async () => {
    const c: Tensor = {
      dtype: "bool",
      dims: [1, 4, 8],
      data: Uint8Array.from({ length: 32 }, (_, i) => i % 3 ? 1 : 0),
    };
    await _check("Where", { c, x: _f32([3, 1, 8], _wave(2)), y: _f32([], () => -1e9) });
  });
});

Deno.test("fast float32 exp, tanh, erf, sigmoid and gelu stay within 1e-5 of onnxruntime", async (t) => {
  const n = 4001;
  const x = _f32([n], (i) => -20 + 40 * i / (n - 1));
  const small = _f32([n], (i) => -1 + 2 * i / (n - 1));
  const cases: [string, number][] = [["Exp", 88], ["Tanh", 20], ["Erf", 6], ["Sigmoid", 30], [
    "Softplus",
    20,
  ]];
  for (const [op, r] of cases) {
    await t.step(op, async () => {
      await _check(op, { x: _f32([n], (i) => -r + 2 * r * i / (n - 1)) });
      await _check(op, { x: small });
    });
  }
  await t.step("Gelu (exact and tanh)", async () => {
    await _check("Gelu", { x }, { opset: 20 });
    await _check("Gelu", { x: small }, { opset: 20, attrs: { approximate: { s: "tanh" } } });
  });
  await t.step("Exp overflow, underflow and NaN", async () => {
    const v = [100, 89, 88.5, -88, -100, -Infinity, Infinity, NaN, 0];
    await _check("Exp", { x: _f32([v.length], (i) => v[i]) });
  });
});

Deno.test("unary activations with attributes match onnxruntime", async (t) => {
  const x = _f32([3, 37], _wave(4));
  const cases: [string, CaseOptions][] = [
    ["Relu", {}],
    ["LeakyRelu", { attrs: { alpha: { f: 0.2 } } }],
    ["Elu", { attrs: { alpha: { f: 0.7 } } }],
    ["Selu", {}],
    ["Celu", { attrs: { alpha: { f: 1.5 } } }],
    ["HardSigmoid", { attrs: { alpha: { f: 0.3 }, beta: { f: 0.4 } } }],
    ["HardSwish", {}],
    ["Softsign", {}],
    ["ThresholdedRelu", { attrs: { alpha: { f: 0.5 } } }],
    ["Shrink", { attrs: { lambd: { f: 1.0 }, bias: { f: 0.5 } } }],
    ["Mish", {}],
    ["Round", {}],
    ["Abs", {}],
    ["Neg", {}],
  ];
  for (const [op, o] of cases) await t.step(op, () => _check(op, { x }, o));
  await t.step(
    "Clip with min/max inputs",
    () => _check("Clip", { x, lo: _f32([], () => -1), hi: _f32([], () => 2.5) }, { opset: 13 }),
  );
  await t.step(
    "Clip with attributes (opset 6)",
    () => _check("Clip", { x }, { opset: 6, attrs: { min: { f: -0.5 }, max: { f: 0.5 } } }),
  );
});

Deno.test("reductions over non-contiguous axes, keepdims and ArgMax select_last_index", async (t) => {
  const x = _f32([3, 4, 5, 6], _wave(2));
  const axesSets = [[0, 2], [-1], [1, 3], [0, 1, 2, 3]];
  for (
    const op of [
      "ReduceSum",
      "ReduceMean",
      "ReduceMax",
      "ReduceMin",
      "ReduceL2",
      "ReduceLogSumExp",
      "ReduceSumSquare",
    ]
  ) {
    await t.step(op, async () => {
      for (const axes of axesSets) {
        for (const keepdims of [0, 1]) {
          await _check(op, { x }, {
            constants: { axes: _i64([axes.length], (i) => axes[i]) },
            attrs: { keepdims: { i: keepdims } },
          });
        }
      }
    });
  }
  await t.step("ArgMax / ArgMin with ties", async () => {
    const ties = _f32([4, 6], (i) => Math.round(_wave(2)(i)));
    for (const op of ["ArgMax", "ArgMin"]) {
      for (const last of [0, 1]) {
        await _check(op, { x: ties }, {
          outputs: ["int64"],
          attrs: { axis: { i: 1 }, keepdims: { i: 0 }, select_last_index: { i: last } },
        });
      }
    }
  });
  await t.step(
    "CumSum exclusive reverse",
    () =>
      _check("CumSum", { x: _f32([3, 5], _wave(3)), axis: _i64([], () => 1) }, {
        attrs: { exclusive: { i: 1 }, reverse: { i: 1 } },
      }),
  );
});

Deno.test("softmax family along last and inner axes, opset 11 and 13 semantics", async (t) => {
  for (const op of ["Softmax", "LogSoftmax", "Hardmax"]) {
    await t.step(op, async () => {
      await _check(op, { x: _f32([2, 3, 1001], _wave(8)) }, { opset: 13 });
      await _check(op, { x: _f32([2, 7, 5], _wave(8)) }, { opset: 13, attrs: { axis: { i: 1 } } });
      await _check(op, { x: _f32([2, 7, 5], _wave(8)) }, { opset: 11 });
    });
  }
});

Deno.test("normalizations match onnxruntime", async (t) => {
  await t.step(
    "LayerNormalization last axis with Mean and InvStdDev outputs",
    () =>
      _check("LayerNormalization", {
        x: _f32([2, 5, 771], _wave(3)),
        scale: _f32([771], (i) => 1 + 0.01 * i),
        bias: _f32([771], _wave(0.1)),
      }, { opset: 17, outputs: ["float32", "float32", "float32"] }),
  );
  await t.step("LayerNormalization axis 1", () =>
    _check("LayerNormalization", {
      x: _f32([2, 5, 6], _wave(3)),
      scale: _f32([5, 6], (i) => 1 + 0.01 * i),
    }, { opset: 17, attrs: { axis: { i: 1 }, epsilon: { f: 1e-3 } } }));
  await t.step("BatchNormalization inference", () =>
    _check("BatchNormalization", {
      x: _f32([2, 3, 5, 7], _wave(3)),
      s: _f32([3], (i) => 1 + i),
      b: _f32([3], (i) => i - 1),
      m: _f32([3], (i) => 0.1 * i),
      v: _f32([3], (i) => 0.5 + i),
    }, { opset: 15 }));
  await t.step("InstanceNormalization", () =>
    _check("InstanceNormalization", {
      x: _f32([2, 3, 5, 7], _wave(3)),
      s: _f32([3], (i) => 1 + i),
      b: _f32([3], (i) => i - 1),
    }));
  await t.step("LpNormalization p=1 and p=2", async () => {
    await _check("LpNormalization", { x: _f32([4, 9], _wave(3)) }, { attrs: { p: { i: 1 } } });
    await _check("LpNormalization", { x: _f32([4, 9], _wave(3)) }, { attrs: { axis: { i: 0 } } });
  });
  await t.step(
    "MeanVarianceNormalization",
    () => _check("MeanVarianceNormalization", { x: _f32([2, 3, 4, 5], _wave(3)) }),
  );
});

Deno.test("Cast through float16 and int64 matches onnxruntime", async () => {
  const x = _f32([40], (i) => (i - 20) * 1.37 + 0.001 * i);
  const model = buildModel({
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [40] }],
      outputs: [{ name: "h", dtype: "float32" }, { name: "l", dtype: "int64" }],
      nodes: [
        { op: "Cast", inputs: ["x"], outputs: ["x16"], attrs: { to: { i: 10 } } },
        { op: "Cast", inputs: ["x16"], outputs: ["h"], attrs: { to: { i: 1 } } },
        { op: "Cast", inputs: ["x"], outputs: ["l"], attrs: { to: { i: 7 } } },
      ],
    },
  });
  const want = await runOrt(model, { x });
  const got = await evalOnRef(model, { x });
  assert.deepEqual(Array.from(got.h.data as Float32Array), Array.from(want.h.data as Float32Array));
  assert.deepEqual(Array.from(got.l.data as BigInt64Array), Array.from(want.l.data as BigInt64Array));
});

Deno.test("Add reports incompatible shapes with both shapes in the message", async () => {
  const model = _model("Add", { a: _f32([2, 3], () => 0), b: _f32([4], () => 0) }, {});
  const parsed = await parseOnnx(model);
  assert.throws(() => compile(parsed, "ref"), (e: Error) => {
    assert.match(e.message, /cannot broadcast float32\[2,3\] with float32\[4\]/);
    return true;
  });
});

Deno.test("Add at opset 6 honours legacy broadcast=1 with axis", async () => {
  const a = _f32([2, 3, 4], (i) => i);
  const b = _f32([3], (i) => 100 * (i + 1));
  const model = _model("Add", { a, b }, { opset: 6, attrs: { broadcast: { i: 1 }, axis: { i: 1 } } });
  const { y0 } = await evalOnRef(model, { a, b });
  assert.deepEqual(y0.dims, [2, 3, 4]);
  const want = Array.from({ length: 24 }, (_, i) => i + 100 * (Math.floor(i / 4) % 3 + 1));
  assert.deepEqual(Array.from(y0.data as Float32Array), want);
});

Deno.test("loss, LRN and linear quantization ops match onnxruntime", async (t) => {
  const scores = _f32([3, 5, 2], _wave(2));
  const target = _i64([3, 2], (i) => (i * 3) % 5);
  await t.step("NegativeLogLikelihoodLoss with weights and ignore_index", async () => {
    for (const reduction of ["none", "sum", "mean"]) {
      await _check("NegativeLogLikelihoodLoss", { scores, target, w: _f32([5], (i) => 0.5 + i) }, {
        opset: 13,
        attrs: { reduction: { s: reduction }, ignore_index: { i: 1 } },
      });
    }
  });
  await t.step(
    "SoftmaxCrossEntropyLoss with log_prob output",
    () =>
      _check("SoftmaxCrossEntropyLoss", { scores, target }, { opset: 13, outputs: ["float32", "float32"] }),
  );
  await t.step("LRN", () =>
    _check("LRN", { x: _f32([2, 7, 3, 3], _wave(2)) }, {
      attrs: { size: { i: 3 }, alpha: { f: 0.01 }, beta: { f: 0.6 }, bias: { f: 1.5 } },
    }));
  await t.step("QuantizeLinear per tensor and per axis, DequantizeLinear", async () => {
    const x = _f32([2, 3, 4], _wave(5));
    await _check("QuantizeLinear", { x }, {
      outputs: ["uint8"],
      constants: { s: _f32([], () => 0.05), z: { dtype: "uint8", dims: [], data: Uint8Array.from([128]) } },
    });
    await _check("QuantizeLinear", { x }, {
      outputs: ["int8"],
      attrs: { axis: { i: 1 } },
      constants: {
        s: _f32([3], (i) => 0.02 * (i + 1)),
        z: { dtype: "int8", dims: [3], data: Int8Array.from([0, 5, -5]) },
      },
    });
    const q: Tensor = { dtype: "uint8", dims: [2, 3], data: Uint8Array.from([0, 1, 127, 128, 200, 255]) };
    await _check("DequantizeLinear", { q }, {
      constants: { s: _f32([], () => 0.1), z: { dtype: "uint8", dims: [], data: Uint8Array.from([128]) } },
    });
  });
});
