// DFT, STFT, MelWeightMatrix (wasm/ops/signal.ts), MaxUnpool (wasm/ops/conv.ts), ReverseSequence
// (wasm/ops/shape/reverse_sequence.ts) and RoiAlign (wasm/ops/data/roi_align.ts) on kiln's ref
// target against onnxruntime-node: power-of-two and other lengths, dft_length padding and
// truncation, inverse, onesided, complex input, both DFT opsets, windows, every RoiAlign mode,
// and the errors for bad shapes, attributes and indices.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec, type TensorSpec } from "../core/onnx/writer.ts";
import { compile } from "../core/program.ts";
import { KilnError } from "../core/errors.ts";
import { type DTypeName, elementCount, type Tensor } from "../core/tensor.ts";
import { runOrt } from "./util/ort.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";

interface Case {
  op: string;
  /** graph inputs, in the node's input order (a name of `consts`, or "" for an omitted input, is skipped here) */
  inputs: Record<string, Tensor>;
  /** constant inputs (initializers) */
  consts?: Record<string, Tensor>;
  /** the node's input names in order ("" for an omitted optional input) */
  order: string[];
  attrs?: NodeSpec["attrs"];
  opset?: number;
  out?: DTypeName;
  atol?: number;
  rtol?: number;
}

function _f(dims: number[], seed = 1, dtype: "float32" | "float64" = "float32"): Tensor {
  const n = elementCount(dims);
  const v = (i: number) => 2 * Math.sin(i * 0.7311 + seed * 1.3) * Math.cos(i * 0.137 + seed);
  return dtype === "float64"
    ? { dtype, dims, data: Float64Array.from({ length: n }, (_, i) => v(i)) }
    : { dtype, dims, data: Float32Array.from({ length: n }, (_, i) => v(i)) };
}

function _i64(vals: number[], dims: number[] = [vals.length]): Tensor {
  return { dtype: "int64", dims, data: BigInt64Array.from(vals.map(BigInt)) };
}

function _spec(name: string, t: Tensor): TensorSpec {
  return { name, dtype: t.dtype, dims: t.dims, data: t.data };
}

function _model(c: Case): Uint8Array {
  return buildModel({
    opset: c.opset ?? 17,
    graph: {
      inputs: Object.entries(c.inputs).map(([name, t]) => ({ name, dtype: t.dtype, dims: t.dims })),
      initializers: Object.entries(c.consts ?? {}).map(([name, t]) => _spec(name, t)),
      outputs: [{ name: "y", dtype: c.out ?? Object.values(c.inputs)[0]?.dtype ?? "float32" }],
      nodes: [{ op: c.op, name: `${c.op}_node`, inputs: c.order, outputs: ["y"], attrs: c.attrs }],
    },
  });
}

async function _kiln(
  model: Uint8Array,
  inputs: Record<string, Tensor>,
  target: "ref" | "gpu" = "ref",
): Promise<Tensor> {
  const program = compile(
    await parseOnnx(model),
    target,
    target === "gpu" ? { gpu: gpuUnderTest().options } : {},
  );
  try {
    return (await program.eval(inputs)).y;
  } finally {
    program.dispose();
  }
}

async function _check(c: Case): Promise<void> {
  const model = _model(c);
  const want = (await runOrt(model, c.inputs)).y;
  const got = await _kiln(model, c.inputs);
  const label = `${c.op} ${JSON.stringify(c.attrs ?? {})}`;
  assert.equal(got.dtype, want.dtype, `${label}: dtype`);
  assert.deepEqual(got.dims, want.dims, `${label}: dims`);
  // onnxruntime's transforms accumulate in float32 (kiln's in float64): on a 400-point DFT its largest
  // error is 2.7e-5 of the largest output (kiln's 4e-8), so DFT/STFT get a tolerance relative to the
  // largest output; "long DFTs ... float64 DFT" below checks kiln's accuracy itself
  const g = Array.from(got.data as ArrayLike<number | bigint>),
    w = Array.from(want.data as ArrayLike<number | bigint>);
  const big = w.reduce<number>((m, v) => typeof v === "number" ? Math.max(m, Math.abs(v)) : m, 0);
  const atol = c.atol ?? 1e-4 + (c.op === "DFT" || c.op === "STFT" ? 5e-5 * big : 0), rtol = c.rtol ?? 1e-4;
  for (let i = 0; i < w.length; i++) {
    if (typeof w[i] === "bigint") {
      assert.equal(g[i], w[i], `${label}: element ${i}`);
      continue;
    }
    const x = g[i] as number, y = w[i] as number;
    assert.ok(
      Math.abs(x - y) <= atol + rtol * Math.abs(y),
      `${label}: element ${i} is ${x}, onnxruntime gives ${y}`,
    );
  }
}

async function _error(c: Case, inputs = c.inputs): Promise<KilnError> {
  try {
    await _kiln(_model(c), inputs);
  } catch (e) {
    assert.ok(e instanceof KilnError, String(e));
    return e;
  }
  throw new Error(`${c.op}: expected an error`);
}

Deno.test("DFT matches onnxruntime: lengths, dft_length, inverse, onesided, complex input, axes, opsets", async (t) => {
  const cases: [string, Case][] = [];
  for (const len of [8, 12, 7, 1, 97, 400, 1024]) {
    cases.push([`real [2,${len},1] axis 1`, { op: "DFT", inputs: { x: _f([2, len, 1]) }, order: ["x"] }]);
  }
  cases.push(["real [2,6,5,1] axis 2", {
    op: "DFT",
    inputs: { x: _f([2, 6, 5, 1]) },
    order: ["x"],
    attrs: { axis: { i: 2 } },
  }]);
  cases.push(["real [2,4,3,1] axis -2 (counts over the input's dims)", {
    op: "DFT",
    inputs: { x: _f([2, 4, 3, 1]) },
    order: ["x"],
    attrs: { axis: { i: -2 }, onesided: { i: 1 } },
  }]);
  cases.push(["complex [3,16,2] inverse", {
    op: "DFT",
    inputs: { x: _f([3, 16, 2]) },
    order: ["x"],
    attrs: { inverse: { i: 1 } },
  }]);
  cases.push(["complex [2,10,2] inverse, non power of two", {
    op: "DFT",
    inputs: { x: _f([2, 10, 2]) },
    order: ["x"],
    attrs: { inverse: { i: 1 } },
  }]);
  cases.push(["complex [2,130,2] inverse, Bluestein length", {
    op: "DFT",
    inputs: { x: _f([2, 130, 2]) },
    order: ["x"],
    attrs: { inverse: { i: 1 } },
  }]);
  cases.push(["complex [2,8,2] inverse onesided (real output of 14)", {
    op: "DFT",
    inputs: { x: _f([2, 8, 2]) },
    order: ["x"],
    attrs: { inverse: { i: 1 }, onesided: { i: 1 } },
  }]);
  for (const dl of [14, 15]) {
    cases.push([`complex [2,8,3,2] inverse onesided dft_length ${dl}`, {
      op: "DFT",
      inputs: { x: _f([2, 8, 3, 2]) },
      consts: { n: _i64([dl], []) },
      order: ["x", "n"],
      attrs: { inverse: { i: 1 }, onesided: { i: 1 } },
    }]);
  }
  cases.push(["real [2,9,1] onesided", {
    op: "DFT",
    inputs: { x: _f([2, 9, 1]) },
    order: ["x"],
    attrs: { onesided: { i: 1 } },
  }]);
  for (const dl of [16, 5, 13]) {
    cases.push([`real [2,8,3,1] dft_length ${dl}`, {
      op: "DFT",
      inputs: { x: _f([2, 8, 3, 1]) },
      consts: { n: _i64([dl], []) },
      order: ["x", "n"],
    }]);
  }
  cases.push(["float64 [2,6,1]", { op: "DFT", inputs: { x: _f([2, 6, 1], 3, "float64") }, order: ["x"] }]);
  for (const axis of [-2, 1, 0, -3]) {
    cases.push([`opset 20 [4,6,1] ... axis ${axis}`, {
      op: "DFT",
      opset: 20,
      inputs: { x: _f([4, 6, 5, 1]) },
      consts: { axis: _i64([axis], []) },
      order: ["x", "", "axis"],
    }]);
  }
  cases.push(["opset 20 default axis, dft_length 8, onesided", {
    op: "DFT",
    opset: 20,
    inputs: { x: _f([3, 6, 1]) },
    consts: { n: _i64([8], []) },
    order: ["x", "n"],
    attrs: { onesided: { i: 1 } },
  }]);
  for (const [name, c] of cases) await t.step(name, () => _check(c));
});

/** A float64 DFT of complex lines [outer, n] (re, im interleaved), for checking kiln's exactness. */
function _dft64(x: Float64Array, outer: number, n: number, inverse: boolean): Float64Array {
  const y = new Float64Array(outer * n * 2);
  const sg = inverse ? 1 : -1;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      let re = 0, im = 0;
      for (let j = 0; j < n; j++) {
        const a = sg * 2 * Math.PI * ((j * k) % n) / n;
        const xr = x[(o * n + j) * 2], xi = x[(o * n + j) * 2 + 1];
        re += xr * Math.cos(a) - xi * Math.sin(a);
        im += xr * Math.sin(a) + xi * Math.cos(a);
      }
      y[(o * n + k) * 2] = inverse ? re / n : re;
      y[(o * n + k) * 2 + 1] = inverse ? im / n : im;
    }
  }
  return y;
}

Deno.test("long DFTs (radix-2, direct and Bluestein lengths) agree with a float64 DFT to 1e-12", async (t) => {
  for (
    const [n, inverse] of [[64, false], [63, true], [97, false], [400, true], [1000, false], [
      2048,
      true,
    ]] as const
  ) {
    await t.step(`n=${n}${inverse ? " inverse" : ""}`, async () => {
      const x = _f([3, n, 2], n, "float64");
      const model = _model({
        op: "DFT",
        inputs: { x },
        order: ["x"],
        attrs: { inverse: { i: inverse ? 1 : 0 } },
      });
      const got = (await _kiln(model, { x })).data as Float64Array;
      const want = _dft64(x.data as Float64Array, 3, n, inverse);
      let err = 0, big = 0;
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]));
        big = Math.max(big, Math.abs(want[i]));
      }
      assert.ok(err <= 1e-12 * big, `largest error ${err}, largest value ${big}`);
    });
  }
});

Deno.test("STFT matches onnxruntime with and without a window, onesided or not", async (t) => {
  const cases: [string, Case][] = [
    ["window 16, step 8", {
      op: "STFT",
      inputs: { s: _f([2, 128, 1]), w: _f([16], 4) },
      consts: { step: _i64([8], []) },
      order: ["s", "step", "w"],
    }],
    ["window 400, step 160 (Whisper's frames)", {
      op: "STFT",
      inputs: { s: _f([1, 2000, 1]), w: _f([400], 6) },
      consts: { step: _i64([160], []) },
      order: ["s", "step", "w"],
    }],
    ["frame_length 10, step 3, no window", {
      op: "STFT",
      inputs: { s: _f([1, 50, 1]) },
      consts: { step: _i64([3], []), fl: _i64([10], []) },
      order: ["s", "step", "", "fl"],
    }],
    ["window 12 and frame_length 12, two-sided", {
      op: "STFT",
      inputs: { s: _f([2, 40, 1]), w: _f([12], 5) },
      consts: { step: _i64([5], []), fl: _i64([12], []) },
      order: ["s", "step", "w", "fl"],
      attrs: { onesided: { i: 0 } },
    }],
  ];
  for (const [name, c] of cases) await t.step(name, () => _check(c));
});

Deno.test("MelWeightMatrix matches onnxruntime", async (t) => {
  const f32 = (v: number): Tensor => ({ dtype: "float32", dims: [], data: Float32Array.from([v]) });
  const cases: [number, number, number, number, number][] = [
    [8, 16, 8192, 0, 4096],
    [20, 512, 16000, 20, 8000],
    [40, 400, 16000, 0, 8000],
    [5, 64, 22050, 300, 3000],
  ];
  for (const [bins, len, rate, lo, hi] of cases) {
    await t.step(`${bins} bins, dft_length ${len}, ${rate} Hz, ${lo}-${hi} Hz`, () =>
      _check({
        op: "MelWeightMatrix",
        inputs: { lo: f32(lo), hi: f32(hi) },
        consts: { bins: _i64([bins], []), len: _i64([len], []), rate: _i64([rate], []) },
        order: ["bins", "len", "rate", "lo", "hi"],
        out: "float32",
      }));
  }
});

Deno.test("MaxUnpool matches onnxruntime, with and without pads; indices past the end are a run-time error", async (t) => {
  // indices of a 2x2/stride-2 MaxPool of a [2,3,4,W] tensor: one per window, flat over the whole tensor
  const indices = (W: number, pick: (c: number, i: number, j: number, n: number) => [number, number]) => {
    const out: number[] = [];
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < 3; c++) {
        for (let i = 0; i < 2; i++) {
          for (let j = 0; j < 2; j++) {
            const [h, w] = pick(c, i, j, n);
            out.push(((n * 3 + c) * 4 + h) * W + w);
          }
        }
      }
    }
    return _i64(out, [2, 3, 2, 2]);
  };
  const base: Case = {
    op: "MaxUnpool",
    inputs: {
      x: _f([2, 3, 2, 2]),
      i: indices(4, (c, i, j, n) => [2 * i + ((n + c + j) % 2), 2 * j + ((c + i) % 2)]),
    },
    order: ["x", "i"],
    attrs: { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } },
  };
  await t.step("inferred shape [2,3,4,4]", () => _check(base));
  await t.step("pads shrink it to [2,3,4,3]", () =>
    _check({
      ...base,
      inputs: { x: base.inputs.x, i: indices(3, (c, i, j, n) => [2 * i + ((n + c + j) % 2), 2 * j]) },
      attrs: { ...base.attrs, pads: { ints: [0, 0, 0, 1] } },
    }));
  await t.step("1-D", () =>
    _check({
      op: "MaxUnpool",
      inputs: { x: _f([1, 2, 3]), i: _i64([1, 2, 5, 7, 9, 10], [1, 2, 3]) },
      order: ["x", "i"],
      attrs: { kernel_shape: { ints: [2] }, strides: { ints: [2] } },
    }));
  const far = _i64(Array.from(base.inputs.i.data as BigInt64Array, (v) => Number(v) + 96), [2, 3, 2, 2]);
  const e = await _error({ ...base, inputs: { ...base.inputs, i: far } });
  assert.equal(e.code, "runtime");
  assert.match(e.message, /index \d+ at position 0 is outside the unpooled tensor's 96 elements/);
});

Deno.test("MaxUnpool with output_shape pads the unpooled tensor at the end of each dim", async () => {
  // the ONNX reference's semantics (the backend test test_maxunpool_export_with_output_shape)
  const model = _model({
    op: "MaxUnpool",
    inputs: { x: _f([1, 1, 2, 2]), i: _i64([5, 7, 13, 15], [1, 1, 2, 2]) },
    consts: { shape: _i64([1, 1, 5, 5]) },
    order: ["x", "i", "shape"],
    attrs: { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } },
  });
  const x = _f([1, 1, 2, 2]);
  const y = await _kiln(model, { x, i: _i64([5, 7, 13, 15], [1, 1, 2, 2]) });
  assert.deepEqual(y.dims, [1, 1, 5, 5]);
  const want = new Float32Array(25);
  const xs = x.data as Float32Array;
  [[1, 1], [1, 3], [3, 1], [3, 3]].forEach(([h, w], k) => want[h * 5 + w] = xs[k]);
  assert.deepEqual(Array.from(y.data as Float32Array), Array.from(want));
});

Deno.test("ReverseSequence matches onnxruntime on both axis orders and inner dims", async (t) => {
  await t.step("time-major [5,3,2]", () =>
    _check({
      op: "ReverseSequence",
      inputs: { x: _f([5, 3, 2]), l: _i64([5, 1, 3]) },
      order: ["x", "l"],
      attrs: { time_axis: { i: 0 }, batch_axis: { i: 1 } },
    }));
  await t.step("batch-major [4,6,3]", () =>
    _check({
      op: "ReverseSequence",
      inputs: { x: _f([4, 6, 3]), l: _i64([6, 2, 1, 4]) },
      order: ["x", "l"],
      attrs: { time_axis: { i: 1 }, batch_axis: { i: 0 } },
    }));
  const bad = await _error({
    op: "ReverseSequence",
    inputs: { x: _f([3, 2]), l: _i64([4, 1]) },
    order: ["x", "l"],
  });
  assert.equal(bad.code, "runtime");
  assert.match(bad.message, /sequence_lens\[0\] is 4, outside \[0, 3\]/);
  const axes = await _error({
    op: "ReverseSequence",
    inputs: { x: _f([3, 2]), l: _i64([1, 1]) },
    order: ["x", "l"],
    attrs: { time_axis: { i: 1 }, batch_axis: { i: 1 } },
  });
  assert.match(axes.message, /batch_axis and time_axis must be 0 and 1/);
});

Deno.test("RoiAlign matches onnxruntime: avg and max, both coordinate modes, fixed and adaptive sampling", async (t) => {
  const rois: Tensor = {
    dtype: "float32",
    dims: [4, 4],
    data: Float32Array.from([0, 0, 9, 9, 0, 5, 4, 9, 5.5, 5.5, 9, 9, -2, 1.5, 13, 7.25]),
  };
  const inputs = { x: _f([2, 3, 10, 12]), rois, b: _i64([0, 1, 1, 0]) };
  for (const mode of ["avg", "max"]) {
    for (const ct of ["half_pixel", "output_half_pixel"]) {
      for (const sr of [0, 2]) {
        await t.step(`${mode} ${ct} sampling_ratio ${sr}`, () =>
          _check({
            op: "RoiAlign",
            opset: 16,
            inputs,
            order: ["x", "rois", "b"],
            attrs: {
              mode: { s: mode },
              coordinate_transformation_mode: { s: ct },
              sampling_ratio: { i: sr },
              output_height: { i: 3 },
              output_width: { i: 4 },
              spatial_scale: { f: 0.8 },
            },
          }));
      }
    }
  }
  await t.step(
    "opset 10 (output_half_pixel, defaults)",
    () => _check({ op: "RoiAlign", opset: 10, inputs, order: ["x", "rois", "b"] }),
  );
  const bad = await _error({
    op: "RoiAlign",
    opset: 16,
    inputs,
    order: ["x", "rois", "b"],
    attrs: { mode: { s: "mean" } },
  });
  assert.match(
    bad.message,
    /mode must be 'avg' or 'max', is 'mean'/,
  );
  assert.equal(bad.node, "RoiAlign_node");
  const idx = await _error({
    op: "RoiAlign",
    opset: 16,
    inputs: { ...inputs, b: _i64([0, 2, 0, 0]) },
    order: ["x", "rois", "b"],
  });
  assert.match(idx.message, /batch_indices\[1\] is 2, outside \[0, 2\)/);
});

Deno.test("signal ops refuse bad shapes, attributes and non-constant shape inputs with clear errors", async () => {
  const dft = (x: Tensor, attrs: NodeSpec["attrs"] = {}) =>
    _error({ op: "DFT", inputs: { x }, order: ["x"], attrs });
  let e = await dft(_f([2, 8, 3]));
  assert.equal(e.node, "DFT_node");
  assert.match(e.message, /the last dim must be 1 \(real\) or 2 \(complex\), is 3/);
  e = await dft(_f([2, 8, 1]), { axis: { i: 2 } });
  assert.match(e.message, /axis 2 is out of range/);
  e = await dft(_f([2, 8, 1]), { axis: { i: -1 } });
  assert.match(e.message, /axis -1 is out of range: it must name a signal dim, in \[-3, -2\] or \[0, 1\]/);
  e = await dft(_f([2, 8, 2]), { onesided: { i: 1 } });
  assert.match(e.message, /a one-sided DFT needs real input \(last dim 1\); this input is complex/);
  e = await _error({
    op: "DFT",
    inputs: { x: _f([2, 8, 2]) },
    consts: { n: _i64([10], []) },
    order: ["x", "n"],
    attrs: { inverse: { i: 1 }, onesided: { i: 1 } },
  });
  assert.match(e.message, /an inverse one-sided DFT of length 10 needs 6 bins on axis 1, the input has 8/);
  e = await dft(_f([2, 8, 1]), { onesided: { i: 1 }, inverse: { i: 1 } });
  assert.match(e.message, /an inverse one-sided DFT needs complex input \(last dim 2\)/);
  e = await dft(_f([2, 8, 1]), { inverse: { i: 2 } });
  assert.match(e.message, /onesided and inverse must be 0 or 1/);
  e = await _error({
    op: "DFT",
    opset: 20,
    inputs: { x: _f([2, 8, 1]) },
    consts: { a: _i64([-1], []) },
    order: ["x", "", "a"],
  });
  assert.match(e.message, /axis -1 is out of range: it must name a signal dim/);
  e = await _error({
    op: "DFT",
    inputs: { x: _f([1, 8, 1]) },
    consts: { n: _i64([1 << 23], []) },
    order: ["x", "n"],
  });
  assert.match(e.message, /dft_length must be from 1 to 4194304, is 8388608/);
  e = await _error({ op: "DFT", inputs: { x: _f([2, 8, 1]), n: _i64([4], []) }, order: ["x", "n"] });
  assert.equal(e.code, "needs_constant");
  assert.match(e.message, /dft_length/);
  e = await _error({
    op: "STFT",
    inputs: { s: _f([1, 40, 1]), w: _f([8]) },
    consts: { step: _i64([4], []), fl: _i64([10], []) },
    order: ["s", "step", "w", "fl"],
  });
  assert.match(e.message, /frame_length 10 differs from the window's length 8/);
  e = await _error({
    op: "STFT",
    inputs: { s: _f([1, 40, 1]) },
    consts: { step: _i64([0], []) },
    order: ["s", "step"],
  });
  assert.match(e.message, /frame_step must be 1 or more, is 0/);
  e = await _error({
    op: "MelWeightMatrix",
    inputs: { bins: _i64([8], []) },
    consts: {
      len: _i64([16], []),
      rate: _i64([8000], []),
      lo: { dtype: "float32", dims: [], data: Float32Array.from([0]) },
      hi: { dtype: "float32", dims: [], data: Float32Array.from([4000]) },
    },
    order: ["bins", "len", "rate", "lo", "hi"],
    out: "float32",
  });
  assert.equal(e.code, "needs_constant");
  assert.match(e.message, /num_mel_bins/);
});

Deno.test({
  name: `gpu target (${gpuUnderTest().name}): the signal ops run on the host, as on ref`,
  ignore: gpuIgnore("ops_signal_test.ts"),
  async fn(t) {
    const f32 = (v: number): Tensor => ({ dtype: "float32", dims: [], data: Float32Array.from([v]) });
    const cases: [string, Case][] = [
      ["DFT", { op: "DFT", inputs: { x: _f([2, 130, 2]) }, order: ["x"], attrs: { inverse: { i: 1 } } }],
      ["STFT", {
        op: "STFT",
        inputs: { s: _f([1, 200, 1]), w: _f([40], 2) },
        consts: { step: _i64([16], []) },
        order: ["s", "step", "w"],
      }],
      ["MelWeightMatrix", {
        op: "MelWeightMatrix",
        inputs: { lo: f32(20), hi: f32(8000) },
        consts: { bins: _i64([20], []), len: _i64([512], []), rate: _i64([16000], []) },
        order: ["bins", "len", "rate", "lo", "hi"],
        out: "float32",
      }],
      ["MaxUnpool", {
        op: "MaxUnpool",
        inputs: { x: _f([1, 2, 3]), i: _i64([1, 2, 5, 7, 9, 10], [1, 2, 3]) },
        order: ["x", "i"],
        attrs: { kernel_shape: { ints: [2] }, strides: { ints: [2] } },
      }],
      ["ReverseSequence", {
        op: "ReverseSequence",
        inputs: { x: _f([5, 3, 2]), l: _i64([5, 1, 3]) },
        order: ["x", "l"],
      }],
      ["RoiAlign", {
        op: "RoiAlign",
        opset: 16,
        inputs: {
          x: _f([1, 2, 8, 8]),
          rois: { dtype: "float32", dims: [2, 4], data: Float32Array.from([0, 0, 7, 7, 1.5, 2, 6, 5.5]) },
          b: _i64([0, 0]),
        },
        order: ["x", "rois", "b"],
        attrs: { mode: { s: "max" }, output_height: { i: 2 }, output_width: { i: 3 } },
      }],
    ];
    for (const [name, c] of cases) {
      await t.step(name, async () => {
        const model = _model(c);
        const want = await _kiln(model, c.inputs, "ref");
        const got = await _kiln(model, c.inputs, "gpu");
        assert.deepEqual(got.dims, want.dims);
        assert.deepEqual(Array.from(got.data as Float32Array), Array.from(want.data as Float32Array));
      });
    }
  },
});
