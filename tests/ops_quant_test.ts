// The quantized ops (wasm/ops/math/quant.ts, wasm/ops/math/qlinear.ts) on kiln's ref target against
// onnxruntime-node: QuantizeLinear / DequantizeLinear per tensor, per axis (negative too) and
// blocked, 16-bit types; MatMulInteger with batch broadcasting, every int8/uint8 pairing and
// per-column zero points; ConvInteger and QLinearConv with padding, strides, dilations, groups,
// per-channel weight zero points and scales and an int32 bias; QLinearMatMul in 2-D and 3-D with
// per-column scales. Where onnxruntime has no kernel for a case (per-row zero points of A, some
// type pairings) the check is against an exact integer reference written here. Bad input
// (scale of the wrong shape, mismatched zero point types, 4-bit types) must fail to compile
// with a message naming what is wrong. Then Cast to bfloat16 (truncation, hand-checked bits), and
// the gpu target (the CPU emulator in CI) against ref on the same ops.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec } from "../core/onnx/writer.ts";
import { compile } from "../core/program.ts";
import { type DTypeName, elementCount, type Tensor } from "../core/tensor.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { runOrt } from "./util/ort.ts";

/** Deterministic pseudo-random integers in [lo, hi]. */
function _ints(
  dtype: "int8" | "uint8" | "int32",
  dims: number[],
  seed: number,
  lo?: number,
  hi?: number,
): Tensor {
  const l = lo ?? (dtype === "uint8" ? 0 : dtype === "int8" ? -128 : -1000);
  const h = hi ?? (dtype === "uint8" ? 255 : dtype === "int8" ? 127 : 1000);
  let s = seed * 2654435761 % 4294967296;
  const next = () => {
    s = (s * 1664525 + 1013904223) % 4294967296;
    return l + Math.floor((s / 4294967296) * (h - l + 1));
  };
  const n = elementCount(dims);
  const data = dtype === "uint8"
    ? Uint8Array.from({ length: n }, next)
    : dtype === "int8"
    ? Int8Array.from({ length: n }, next)
    : Int32Array.from({ length: n }, next);
  return { dtype, dims, data };
}

function _f32(dims: number[], values: (i: number) => number): Tensor {
  return {
    dtype: "float32",
    dims,
    data: Float32Array.from({ length: elementCount(dims) }, (_, i) => values(i)),
  };
}

function _model(
  op: string,
  inputs: Record<string, Tensor | null>,
  out: DTypeName,
  attrs?: NodeSpec["attrs"],
  opset = 21,
): Uint8Array {
  const names = Object.keys(inputs);
  const given = names.filter((n) => inputs[n] !== null);
  return buildModel({
    opset,
    graph: {
      inputs: given.map((n) => ({ name: n, dtype: inputs[n]!.dtype, dims: inputs[n]!.dims })),
      outputs: [{ name: "y", dtype: out }],
      nodes: [{ op, inputs: names.map((n) => inputs[n] === null ? "" : n), outputs: ["y"], attrs }],
    },
  });
}

function _feeds(inputs: Record<string, Tensor | null>): Record<string, Tensor> {
  const f: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) if (v) f[k] = v;
  return f;
}

async function _kiln(model: Uint8Array, feeds: Record<string, Tensor>): Promise<Tensor> {
  const program = compile(await parseOnnx(model), "ref");
  try {
    return (await program.eval(feeds)).y;
  } finally {
    program.dispose();
  }
}

function _same(got: Tensor, want: Tensor, label: string, atol = 0): void {
  assert.equal(got.dtype, want.dtype, `${label}: dtype`);
  assert.deepEqual(got.dims, want.dims, `${label}: dims`);
  const g = Array.from(got.data as ArrayLike<number>), w = Array.from(want.data as ArrayLike<number>);
  assert.equal(g.length, w.length, `${label}: length`);
  for (let i = 0; i < w.length; i++) {
    assert.ok(Math.abs(g[i] - w[i]) <= atol, `${label}: element ${i} is ${g[i]}, expected ${w[i]}`);
  }
}

/** Runs one node on kiln and onnxruntime-node; the outputs must be equal (floats within atol). */
async function _check(
  op: string,
  inputs: Record<string, Tensor | null>,
  out: DTypeName,
  attrs?: NodeSpec["attrs"],
  atol = 0,
): Promise<void> {
  const model = _model(op, inputs, out, attrs);
  const feeds = _feeds(inputs);
  const want = (await runOrt(model, feeds)).y;
  const got = await _kiln(model, feeds);
  const label = `${op} ${JSON.stringify(attrs ?? {})} ${
    Object.entries(inputs).map(([k, t]) => t ? `${k}:${t.dtype}[${t.dims}]` : `${k}:-`).join(", ")
  }`;
  _same(got, want, label, atol);
}

/** An exact reference of (A - za) x (B - zb) for 2-D A and B; za per row (or one), zb per column (or one). */
function _refMatMulInteger(a: Tensor, b: Tensor, za: number[], zb: number[]): Tensor {
  const [M, K] = a.dims, N = b.dims[1];
  const av = a.data as ArrayLike<number>, bv = b.data as ArrayLike<number>;
  const y = new Int32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        s += (av[m * K + k] - za[za.length > 1 ? m : 0]) * (bv[k * N + n] - zb[zb.length > 1 ? n : 0]);
      }
      y[m * N + n] = s;
    }
  }
  return { dtype: "int32", dims: [M, N], data: y };
}

/**
 * ConvInteger through onnxruntime's float Conv: (x - xz) and (w - wz[m]) as float32, Conv, Cast
 * to int32. Exact while every sum stays below 2^24 (255 * 255 * 27 taps is 1.76e6); onnxruntime's
 * own ConvInteger takes only a scalar w_zero_point.
 */
async function _convIntegerOracle(
  inputs: { x: Tensor; w: Tensor; xz: Tensor; wz: Tensor },
  attrs: NodeSpec["attrs"],
): Promise<Tensor> {
  const r = inputs.w.dims.length;
  const wz4: Tensor = { ...inputs.wz, dims: [inputs.wz.dims[0] ?? 1, ...Array(r - 1).fill(1)] };
  const to = (dt: number) => ({ to: { i: dt } });
  const model = buildModel({
    opset: 21,
    graph: {
      inputs: [
        { name: "x", dtype: "uint8", dims: inputs.x.dims },
        { name: "w", dtype: inputs.w.dtype, dims: inputs.w.dims },
        { name: "xz", dtype: inputs.xz.dtype, dims: inputs.xz.dims },
        { name: "wz", dtype: wz4.dtype, dims: wz4.dims },
      ],
      outputs: [{ name: "y", dtype: "int32" }],
      nodes: [
        { op: "Cast", inputs: ["x"], outputs: ["xf"], attrs: to(1) },
        { op: "Cast", inputs: ["xz"], outputs: ["xzf"], attrs: to(1) },
        { op: "Sub", inputs: ["xf", "xzf"], outputs: ["xs"] },
        { op: "Cast", inputs: ["w"], outputs: ["wf"], attrs: to(1) },
        { op: "Cast", inputs: ["wz"], outputs: ["wzf"], attrs: to(1) },
        { op: "Sub", inputs: ["wf", "wzf"], outputs: ["ws"] },
        { op: "Conv", inputs: ["xs", "ws"], outputs: ["yf"], attrs },
        { op: "Cast", inputs: ["yf"], outputs: ["y"], attrs: to(6) },
      ],
    },
  });
  return (await runOrt(model, { x: inputs.x, w: inputs.w, xz: inputs.xz, wz: wz4 })).y;
}

Deno.test("QuantizeLinear and DequantizeLinear match onnxruntime per tensor, per axis and blocked", async (t) => {
  const x = _f32([2, 3, 8], (i) => Math.sin(i * 0.37) * 40 + (i % 5) - 2.5);
  const cases: [string, Tensor, Tensor | null, NodeSpec["attrs"]?][] = [
    ["per tensor uint8", _f32([], () => 0.25), { dtype: "uint8", dims: [], data: new Uint8Array([128]) }],
    ["per tensor int8, no zero point given as int8", _f32([], () => 0.3), {
      dtype: "int8",
      dims: [],
      data: new Int8Array([-3]),
    }],
    ["per tensor, zero point omitted", _f32([], () => 0.5), null],
    ["per axis 1 int8", _f32([3], (i) => 0.1 + 0.2 * i), _ints("int8", [3], 5, -10, 10), { axis: { i: 1 } }],
    ["per axis -1 uint8", _f32([8], (i) => 0.05 + 0.1 * i), _ints("uint8", [8], 6, 100, 150), {
      axis: { i: -1 },
    }],
    ["per axis 0 int16", _f32([2], (i) => 0.001 + 0.002 * i), {
      dtype: "int16",
      dims: [2],
      data: new Int16Array([-300, 700]),
    }, { axis: { i: 0 } }],
    ["per tensor uint16", _f32([], () => 0.001), {
      dtype: "uint16",
      dims: [],
      data: new Uint16Array([30000]),
    }],
    ["blocked axis 2, block 4", _f32([2, 3, 2], (i) => 0.1 + 0.07 * i), _ints("int8", [2, 3, 2], 7, -5, 5), {
      axis: { i: 2 },
      block_size: { i: 4 },
    }],
    [
      "blocked axis -3, block 2 (ragged: ceil(2/2) = 1)",
      _f32([1, 3, 8], (i) => 0.2 + 0.01 * i),
      _ints(
        "uint8",
        [1, 3, 8],
        8,
        120,
        136,
      ),
      { axis: { i: -3 }, block_size: { i: 2 } },
    ],
    [
      "blocked axis 1, block 2 (ragged: ceil(3/2) = 2)",
      _f32([2, 2, 8], (i) => 0.15 + 0.01 * i),
      _ints(
        "int8",
        [2, 2, 8],
        9,
        -4,
        4,
      ),
      { axis: { i: 1 }, block_size: { i: 2 } },
    ],
  ];
  for (const [name, scale, zp, attrs] of cases) {
    const qt: DTypeName = zp?.dtype ?? "uint8";
    await t.step(`QuantizeLinear ${name}`, () => _check("QuantizeLinear", { x, s: scale, z: zp }, qt, attrs));
    const q = _ints(
      qt === "int16" ? "int32" : qt === "uint16" ? "int32" : qt as "int8" | "uint8",
      x.dims,
      11,
    );
    const qx: Tensor = qt === "int16"
      ? { dtype: "int16", dims: q.dims, data: Int16Array.from(q.data as Int32Array, (v) => v * 20) }
      : qt === "uint16"
      ? { dtype: "uint16", dims: q.dims, data: Uint16Array.from(q.data as Int32Array, (v) => v * 30 + 30000) }
      : q;
    await t.step(
      `DequantizeLinear ${name}`,
      () => _check("DequantizeLinear", { x: qx, s: scale, z: zp }, "float32", attrs),
    );
  }
  await t.step(
    "DequantizeLinear int32 with a per-axis scale",
    () =>
      _check("DequantizeLinear", { x: _ints("int32", [4, 3], 3), s: _f32([3], (i) => 0.5 + i) }, "float32"),
  );
  await t.step("QuantizeLinear saturates and rounds half to even", async () => {
    const xs = _f32([8], (i) => [0.5, 1.5, 2.5, -0.5, -1.5, 1000, -1000, 127.5][i]);
    await _check("QuantizeLinear", {
      x: xs,
      s: _f32([], () => 1),
      z: { dtype: "int8", dims: [], data: new Int8Array([0]) },
    }, "int8");
    const got = await _kiln(
      _model("QuantizeLinear", {
        x: xs,
        s: _f32([], () => 1),
        z: { dtype: "int8", dims: [], data: new Int8Array([0]) },
      }, "int8"),
      { x: xs, s: _f32([], () => 1), z: { dtype: "int8", dims: [], data: new Int8Array([0]) } },
    );
    assert.deepEqual(Array.from(got.data as Int8Array), [0, 2, 2, 0, -2, 127, -128, 127]);
  });
});

Deno.test("MatMulInteger matches onnxruntime on broadcasting, type pairings and per-column zero points", async (t) => {
  const cases: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[5, 33], [33, 37]], // odd K, N past one 16-column panel, odd M
    [[4], [4, 6]], // 1-D A
    [[2, 3, 7], [7]], // 1-D B
    [[2, 5, 6], [6, 3]], // batch folded into M
    [[2, 1, 3, 4], [3, 4, 5]], // batch broadcast both ways
    [[3, 4], [2, 4, 5]], // A broadcast over B's batch
    [[1, 64, 96], [96, 80]], // a projection
  ];
  for (const [da, db] of cases) {
    await t.step(`uint8 [${da}] x uint8 [${db}], scalar zero points`, () =>
      _check("MatMulInteger", {
        a: _ints("uint8", da, 1),
        b: _ints("uint8", db, 2),
        az: { dtype: "uint8", dims: [], data: new Uint8Array([131]) },
        bz: { dtype: "uint8", dims: [], data: new Uint8Array([120]) },
      }, "int32"));
  }
  await t.step("uint8 x int8 with per-column b_zero_point", () =>
    _check("MatMulInteger", {
      a: _ints("uint8", [6, 19], 3),
      b: _ints("int8", [19, 21], 4),
      az: { dtype: "uint8", dims: [], data: new Uint8Array([7]) },
      bz: _ints("int8", [21], 5, -20, 20),
    }, "int32"));
  await t.step(
    "uint8 x uint8, zero points omitted",
    () => _check("MatMulInteger", { a: _ints("uint8", [2, 3, 9], 6), b: _ints("uint8", [9, 4], 7) }, "int32"),
  );
  await t.step("int8 x int8 and int8 x uint8 (exact reference)", async () => {
    for (const bt of ["int8", "uint8"] as const) {
      const a = _ints("int8", [7, 23], 8), b = _ints(bt, [23, 18], 9);
      const inputs = { a, b, az: _ints("int8", [], 10), bz: _ints(bt, [18], 11) };
      const got = await _kiln(_model("MatMulInteger", inputs, "int32"), inputs);
      _same(
        got,
        _refMatMulInteger(
          a,
          b,
          Array.from(inputs.az.data as Int8Array),
          Array.from(inputs.bz.data as ArrayLike<number>),
        ),
        `int8 x ${bt}`,
      );
    }
  });
  await t.step("per-row a_zero_point [M] (exact reference; onnxruntime takes only a scalar)", async () => {
    const a = _ints("uint8", [5, 11], 12), b = _ints("uint8", [11, 3], 13);
    const inputs = { a, b, az: _ints("uint8", [5], 14), bz: _ints("uint8", [3], 15) };
    const got = await _kiln(_model("MatMulInteger", inputs, "int32"), inputs);
    _same(
      got,
      _refMatMulInteger(
        a,
        b,
        Array.from(inputs.az.data as Uint8Array),
        Array.from(inputs.bz.data as Uint8Array),
      ),
      "per-row",
    );
  });
  await t.step("batched zero points [B, M, 1] and [B, 1, N] (exact reference)", async () => {
    const [Bt, M, K, N] = [2, 3, 5, 4];
    const a = _ints("uint8", [Bt, M, K], 16), b = _ints("int8", [Bt, K, N], 17);
    const inputs = { a, b, az: _ints("uint8", [Bt, M, 1], 18), bz: _ints("int8", [Bt, 1, N], 19) };
    const got = await _kiln(_model("MatMulInteger", inputs, "int32"), inputs);
    const want = new Int32Array(Bt * M * N);
    for (let i = 0; i < Bt; i++) {
      const ai: Tensor = {
        dtype: "uint8",
        dims: [M, K],
        data: (a.data as Uint8Array).slice(i * M * K, (i + 1) * M * K),
      };
      const bi: Tensor = {
        dtype: "int8",
        dims: [K, N],
        data: (b.data as Int8Array).slice(i * K * N, (i + 1) * K * N),
      };
      const za = Array.from((inputs.az.data as Uint8Array).slice(i * M, (i + 1) * M));
      const zb = Array.from((inputs.bz.data as Int8Array).slice(i * N, (i + 1) * N));
      want.set(_refMatMulInteger(ai, bi, za, zb).data as Int32Array, i * M * N);
    }
    _same(got, { dtype: "int32", dims: [Bt, M, N], data: want }, "batched zero points");
  });
  await t.step("the largest products accumulate exactly in int32 (K = 4096)", async () => {
    const K = 4096;
    const a: Tensor = { dtype: "uint8", dims: [1, K], data: new Uint8Array(K).fill(255) };
    const b: Tensor = { dtype: "int8", dims: [K, 1], data: new Int8Array(K).fill(-128) };
    const inputs = { a, b, az: { dtype: "uint8", dims: [], data: new Uint8Array([0]) } as Tensor };
    const got = await _kiln(_model("MatMulInteger", inputs, "int32"), inputs);
    assert.deepEqual(Array.from(got.data as Int32Array), [255 * -128 * K]);
  });
});

Deno.test("QLinearMatMul matches onnxruntime in 2-D and 3-D with per-column scales", async (t) => {
  const u8 = (v: number): Tensor => ({ dtype: "uint8", dims: [], data: new Uint8Array([v]) });
  const i8 = (v: number): Tensor => ({ dtype: "int8", dims: [], data: new Int8Array([v]) });
  const sc = (v: number): Tensor => _f32([], () => v);
  await t.step("uint8 [5,33] x uint8 [33,20]", () =>
    _check("QLinearMatMul", {
      a: _ints("uint8", [5, 33], 1),
      as: sc(0.02),
      az: u8(128),
      b: _ints("uint8", [33, 20], 2),
      bs: sc(0.01),
      bz: u8(120),
      ys: sc(0.9),
      yz: u8(100),
    }, "uint8"));
  await t.step(
    "uint8 [2,3,17] x int8 [17,6], per-column b_scale and b_zero_point",
    () =>
      _check("QLinearMatMul", {
        a: _ints("uint8", [2, 3, 17], 3),
        as: sc(0.015),
        az: u8(125),
        b: _ints("int8", [17, 6], 4),
        bs: _f32([6], (i) => 0.005 + 0.002 * i),
        bz: _ints("int8", [6], 5, -3, 3),
        ys: sc(0.5),
        yz: u8(7),
      }, "uint8"),
  );
  await t.step(
    "per-row a_scale and a_zero_point [M] (exact reference; onnxruntime takes only scalars)",
    async () => {
      const a = _ints("uint8", [4, 13], 21), b = _ints("uint8", [13, 6], 22);
      const inputs = {
        a,
        as: _f32([4], (i) => 0.01 + 0.004 * i),
        az: _ints("uint8", [4], 23, 100, 150),
        b,
        bs: _f32([6], (i) => 0.02 - 0.002 * i),
        bz: _ints("uint8", [6], 24, 100, 150),
        ys: sc(0.7),
        yz: u8(90),
      };
      const got = await _kiln(_model("QLinearMatMul", inputs, "uint8"), inputs);
      const acc = _refMatMulInteger(
        a,
        b,
        Array.from(inputs.az.data as Uint8Array),
        Array.from(inputs.bz.data as Uint8Array),
      ).data as Int32Array;
      const as = inputs.as.data as Float32Array, bs = inputs.bs.data as Float32Array;
      const f = Math.fround;
      const rne = (v: number) => {
        const r = Math.round(v);
        return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
      };
      const want = Uint8Array.from(acc, (v, i) => {
        const m = Math.floor(i / 6), n = i % 6;
        const mult = f(f(as[m] * bs[n]) / f(0.7));
        return Math.min(255, Math.max(0, rne(f(v * mult)) + 90));
      });
      _same(got, { dtype: "uint8", dims: [4, 6], data: want }, "per-row scales");
    },
  );
  await t.step("int8 [2,4,8] x int8 [2,8,5] (batched B)", () =>
    _check("QLinearMatMul", {
      a: _ints("int8", [2, 4, 8], 6),
      as: sc(0.05),
      az: i8(3),
      b: _ints("int8", [2, 8, 5], 7),
      bs: sc(0.04),
      bz: i8(-2),
      ys: sc(2.5),
      yz: i8(10),
    }, "int8"));
});

Deno.test("ConvInteger and QLinearConv match onnxruntime on padding, strides, dilations, groups and per-channel weights", async (t) => {
  const geoms: [string, number[], number[], NodeSpec["attrs"]][] = [
    ["3x3 no padding", [1, 3, 7, 8], [4, 3, 3, 3], {}],
    ["3x3 pad 1", [2, 3, 6, 6], [5, 3, 3, 3], { pads: { ints: [1, 1, 1, 1] } }],
    ["1x1 (direct)", [1, 16, 5, 7], [8, 16, 1, 1], {}],
    ["stride 2 asymmetric pads", [1, 2, 9, 10], [3, 2, 3, 2], {
      strides: { ints: [2, 2] },
      pads: { ints: [0, 1, 2, 1] },
    }],
    ["dilations 2", [1, 2, 10, 10], [3, 2, 3, 3], {
      dilations: { ints: [2, 2] },
      pads: { ints: [2, 2, 2, 2] },
    }],
    ["group 2", [1, 6, 8, 8], [4, 3, 3, 3], { group: { i: 2 }, pads: { ints: [1, 1, 1, 1] } }],
    ["depthwise", [1, 4, 6, 6], [4, 1, 3, 3], { group: { i: 4 }, pads: { ints: [1, 1, 1, 1] } }],
    ["SAME_UPPER stride 2", [1, 3, 7, 9], [4, 3, 3, 3], {
      auto_pad: { s: "SAME_UPPER" },
      strides: { ints: [2, 2] },
    }],
    ["1-D", [2, 3, 20], [4, 3, 5], { pads: { ints: [2, 2] } }],
  ];
  for (const [name, dx, dw, attrs] of geoms) {
    const M = dw[0];
    await t.step(`ConvInteger ${name}`, () =>
      _check(
        "ConvInteger",
        {
          x: _ints("uint8", dx, 1),
          w: _ints("uint8", dw, 2),
          xz: { dtype: "uint8", dims: [], data: new Uint8Array([121]) },
          wz: { dtype: "uint8", dims: [], data: new Uint8Array([130]) },
        },
        "int32",
        attrs,
      ));
    await t.step(`ConvInteger ${name}, per-channel w_zero_point (float Conv oracle)`, async () => {
      const inputs = {
        x: _ints("uint8", dx, 11),
        w: _ints("uint8", dw, 12),
        xz: { dtype: "uint8", dims: [], data: new Uint8Array([119]) } as Tensor,
        wz: _ints("uint8", [M], 13, 120, 136),
      };
      const got = await _kiln(_model("ConvInteger", inputs, "int32", attrs), inputs);
      _same(got, await _convIntegerOracle(inputs, attrs), `ConvInteger ${name} per channel`);
    });
    await t.step(`QLinearConv ${name}, uint8 x, int8 per-channel w, bias`, () =>
      _check(
        "QLinearConv",
        {
          x: _ints("uint8", dx, 4),
          xs: _f32([], () => 0.02),
          xz: { dtype: "uint8", dims: [], data: new Uint8Array([128]) },
          w: _ints("int8", dw, 5),
          ws: _f32([M], (i) => 0.003 + 0.001 * i),
          wz: { dtype: "int8", dims: [M], data: new Int8Array(M) },
          ys: _f32([], () => 0.4),
          yz: { dtype: "uint8", dims: [], data: new Uint8Array([110]) },
          b: _ints("int32", [M], 6, -5000, 5000),
        },
        "uint8",
        attrs,
      ));
  }
  await t.step("ConvInteger with x_zero_point omitted, scalar w_zero_point", () =>
    _check("ConvInteger", {
      x: _ints("uint8", [1, 2, 5, 5], 7),
      w: _ints("uint8", [3, 2, 2, 2], 8),
      xz: null,
      wz: { dtype: "uint8", dims: [], data: new Uint8Array([127]) },
    }, "int32"));
  await t.step(
    "QLinearConv uint8 weights with a scalar scale and no bias, int8 out",
    () =>
      _check(
        "QLinearConv",
        {
          x: _ints("int8", [1, 3, 6, 5], 9),
          xs: _f32([], () => 0.05),
          xz: { dtype: "int8", dims: [], data: new Int8Array([-4]) },
          w: _ints("int8", [2, 3, 3, 3], 10),
          ws: _f32([], () => 0.01),
          wz: { dtype: "int8", dims: [], data: new Int8Array([0]) },
          ys: _f32([], () => 0.3),
          yz: { dtype: "int8", dims: [], data: new Int8Array([5]) },
        },
        "int8",
        { pads: { ints: [1, 1, 1, 1] } },
      ),
  );
});

Deno.test("quantized ops refuse bad input with a message naming the node and the problem", async (t) => {
  const u8 = (dims: number[]): Tensor => _ints("uint8", dims, 1);
  const i8 = (dims: number[]): Tensor => _ints("int8", dims, 1);
  const cases: [string, string, Record<string, Tensor | null>, DTypeName, RegExp, NodeSpec["attrs"]?][] = [
    [
      "QuantizeLinear scale of the wrong length",
      "QuantizeLinear",
      { x: _f32([2, 3], () => 1), s: _f32([2], () => 1), z: null },
      "uint8",
      /y_scale float32\[2\] must be a scalar or have 3 elements/,
    ],
    [
      "QuantizeLinear zero point shape differs from scale",
      "QuantizeLinear",
      { x: _f32([2, 3], () => 1), s: _f32([3], () => 1), z: u8([]) },
      "uint8",
      /y_zero_point uint8\[\] must have the shape of y_scale float32\[3\]/,
    ],
    [
      "QuantizeLinear output_dtype against the zero point",
      "QuantizeLinear",
      { x: _f32([2, 3], () => 1), s: _f32([], () => 1), z: u8([]) },
      "uint8",
      /output_dtype int8 differs from y_zero_point's element type uint8/,
      { output_dtype: { i: 3 } },
    ],
    [
      "QuantizeLinear to int4",
      "QuantizeLinear",
      { x: _f32([2, 4], () => 1), s: _f32([], () => 1), z: null },
      "uint8",
      /quantizing to dtype\(22\) is not supported/,
      { output_dtype: { i: 22 } },
    ],
    [
      "QuantizeLinear blocked scale of the wrong shape",
      "QuantizeLinear",
      { x: _f32([2, 6], () => 1), s: _f32([2, 2], () => 1), z: null },
      "uint8",
      /y_scale float32\[2,2\] must be float32\[2,3\] for block_size 2 on axis 1/,
      { axis: { i: 1 }, block_size: { i: 2 } },
    ],
    [
      "DequantizeLinear zero point of another type",
      "DequantizeLinear",
      { x: u8([4]), s: _f32([], () => 1), z: i8([]) },
      "float32",
      /x_zero_point's element type int8 differs from x's uint8/,
    ],
    [
      "DequantizeLinear axis out of range",
      "DequantizeLinear",
      { x: u8([2, 3]), s: _f32([3], () => 1), z: null },
      "float32",
      /axis 2 is out of range for uint8\[2,3\]/,
      { axis: { i: 2 } },
    ],
    [
      "MatMulInteger zero point of another type",
      "MatMulInteger",
      { a: u8([2, 3]), b: u8([3, 4]), az: i8([]), bz: null },
      "int32",
      /a_zero_point's element type int8 differs from A's uint8/,
    ],
    [
      "MatMulInteger b_zero_point of the wrong length",
      "MatMulInteger",
      { a: u8([2, 3]), b: u8([3, 4]), az: null, bz: u8([3]) },
      "int32",
      /b_zero_point uint8\[3\] must be a scalar, a vector of 4 \(columns of B\)/,
    ],
    [
      "MatMulInteger float input",
      "MatMulInteger",
      { a: _f32([2, 3], () => 1), b: u8([3, 4]) },
      "int32",
      /element type float32 of input 0 is not supported/,
    ],
    [
      "MatMulInteger inner dims",
      "MatMulInteger",
      { a: u8([2, 3]), b: u8([4, 4]) },
      "int32",
      /inner dims differ/,
    ],
    [
      "ConvInteger w_zero_point of the wrong length",
      "ConvInteger",
      { x: u8([1, 2, 5, 5]), w: u8([3, 2, 3, 3]), xz: null, wz: u8([2]) },
      "int32",
      /w_zero_point uint8\[2\] must be a scalar or have 3 elements \(one per output channel\)/,
    ],
    [
      "ConvInteger x_zero_point per channel",
      "ConvInteger",
      { x: u8([1, 2, 5, 5]), w: u8([3, 2, 3, 3]), xz: u8([2]), wz: null },
      "int32",
      /x_zero_point uint8\[2\] must be a scalar/,
    ],
    [
      "ConvInteger group past int32",
      "ConvInteger",
      { x: u8([1, 2, 5, 5]), w: u8([2, 1, 3, 3]) },
      "int32",
      /group 1099511627776 does not divide channels 2/,
      { group: { i: 2 ** 40 } },
    ],
    [
      "ConvInteger channels",
      "ConvInteger",
      { x: u8([1, 4, 5, 5]), w: u8([3, 2, 3, 3]) },
      "int32",
      /x has 4 channels but w uint8\[3,2,3,3\] expects 2/,
    ],
    [
      "QLinearConv w_scale of the wrong length",
      "QLinearConv",
      {
        x: u8([1, 2, 5, 5]),
        xs: _f32([], () => 1),
        xz: u8([]),
        w: i8([3, 2, 3, 3]),
        ws: _f32([2], () => 1),
        wz: i8([]),
        ys: _f32([], () => 1),
        yz: u8([]),
      },
      "uint8",
      /w_scale float32\[2\] must be a scalar or have 3 elements/,
    ],
    [
      "QLinearConv bias of another type",
      "QLinearConv",
      {
        x: u8([1, 2, 5, 5]),
        xs: _f32([], () => 1),
        xz: u8([]),
        w: i8([3, 2, 3, 3]),
        ws: _f32([], () => 1),
        wz: i8([]),
        ys: _f32([], () => 1),
        yz: u8([]),
        b: _f32([3], () => 1),
      },
      "uint8",
      /B must be int32\[3\], got float32\[3\]/,
    ],
    [
      "QLinearMatMul y_scale not a scalar",
      "QLinearMatMul",
      {
        a: u8([2, 3]),
        as: _f32([], () => 1),
        az: u8([]),
        b: u8([3, 4]),
        bs: _f32([], () => 1),
        bz: u8([]),
        ys: _f32([2], () => 1),
        yz: u8([]),
      },
      "uint8",
      /y_scale float32\[2\] must be a scalar/,
    ],
  ];
  for (const [name, op, inputs, out, re, attrs] of cases) {
    await t.step(name, async () => {
      const parsed = await parseOnnx(_model(op, inputs, out, attrs));
      assert.throws(() => compile(parsed, "ref"), (e: Error) => {
        assert.match(e.message, re);
        assert.match(e.message, new RegExp(op));
        return true;
      });
    });
  }
});

Deno.test("Cast and CastLike to bfloat16 truncate as the ONNX reference does; NaN stays NaN", async () => {
  const bits = new Uint32Array([0x3ef5f0ff, 0x3f808000, 0xbf80ffff, 0x7f800001, 0xff800000, 0x00018000]);
  const x: Tensor = { dtype: "float32", dims: [6], data: new Float32Array(bits.buffer) };
  // the top 16 bits (round to nearest even would give 0x3ef6, 0x3f80, 0xbf81, ...); a NaN whose
  // payload is only in the low bits keeps a quiet bit rather than becoming infinity
  const want = [0x3ef5, 0x3f80, 0xbf80, 0x7fc0, 0xff80, 0x0001];
  const cast = await _kiln(_model("Cast", { x }, "bfloat16", { to: { i: 16 } }), { x });
  assert.equal(cast.dtype, "bfloat16");
  assert.deepEqual(Array.from(cast.data as Uint16Array), want);
  const like: Tensor = { dtype: "bfloat16", dims: [1], data: new Uint16Array(1) };
  const castLike = await _kiln(_model("CastLike", { x, like }, "bfloat16"), { x, like });
  assert.deepEqual(Array.from(castLike.data as Uint16Array), want);
  const x64: Tensor = { dtype: "float64", dims: [2], data: new Float64Array([0.48033667, -2.5]) };
  const cast64 = await _kiln(_model("Cast", { x: x64 }, "bfloat16", { to: { i: 16 } }), { x: x64 });
  assert.deepEqual(Array.from(cast64.data as Uint16Array), [0x3ef5, 0xc020]);
});

Deno.test({
  name: "the quantized ops give ref's results on the gpu target (device kernels or the host)",
  ignore: gpuIgnore("ops_quant_test.ts"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const u8 = (v: number): Tensor => ({ dtype: "uint8", dims: [], data: new Uint8Array([v]) });
    const cases: [string, string, Record<string, Tensor | null>, DTypeName, NodeSpec["attrs"]?][] = [
      ["QuantizeLinear per axis", "QuantizeLinear", {
        x: _f32([2, 3, 4], (i) => i * 0.7 - 8),
        s: _f32([3], (i) => 0.1 + i * 0.05),
        z: _ints("int8", [3], 1, -3, 3),
      }, "int8"],
      [
        "QuantizeLinear blocked",
        "QuantizeLinear",
        {
          x: _f32([2, 6], (i) => i * 0.9 - 5),
          s: _f32([2, 3], (i) => 0.2 + i * 0.01),
          z: _ints("uint8", [2, 3], 2, 100, 140),
        },
        "uint8",
        { axis: { i: 1 }, block_size: { i: 2 } },
      ],
      [
        "DequantizeLinear blocked",
        "DequantizeLinear",
        {
          x: _ints("int8", [4, 5], 3),
          s: _f32([2, 5], (i) => 0.03 + i * 0.01),
          z: _ints("int8", [2, 5], 4, -5, 5),
        },
        "float32",
        { axis: { i: 0 }, block_size: { i: 3 } },
      ],
      ["MatMulInteger", "MatMulInteger", {
        a: _ints("uint8", [2, 3, 9], 5),
        b: _ints("int8", [9, 20], 6),
        az: u8(120),
        bz: _ints("int8", [20], 7, -4, 4),
      }, "int32"],
      [
        "QLinearConv",
        "QLinearConv",
        {
          x: _ints("uint8", [1, 4, 6, 6], 8),
          xs: _f32([], () => 0.02),
          xz: u8(128),
          w: _ints("int8", [6, 2, 3, 3], 9),
          ws: _f32([6], (i) => 0.004 + 0.001 * i),
          wz: { dtype: "int8", dims: [6], data: new Int8Array(6) },
          ys: _f32([], () => 0.3),
          yz: u8(120),
          b: _ints("int32", [6], 10, -3000, 3000),
        },
        "uint8",
        { group: { i: 2 }, pads: { ints: [1, 1, 1, 1] } },
      ],
      ["Cast to bfloat16", "Cast", { x: _f32([8], (i) => 0.48033667 * (i - 3.7)) }, "bfloat16", {
        to: { i: 16 },
      }],
    ];
    for (const [name, op, inputs, out, attrs] of cases) {
      await t.step(name, async () => {
        const parsed = await parseOnnx(_model(op, inputs, out, attrs));
        const feeds = _feeds(inputs);
        const want = await _kiln(_model(op, inputs, out, attrs), feeds);
        const program = compile(parsed, "gpu", { gpu: gpuUnderTest().options });
        try {
          _same((await program.eval(feeds)).y, want, `${name} on gpu`);
        } finally {
          program.dispose();
        }
      });
    }
  },
});
