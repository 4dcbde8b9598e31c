// The `threads` option (core/threads.ts, wasm/kernels/threads.ts): GEMM, Conv and a zoo-sized
// graph give the same bits on N threads as on one (the split never changes an element's
// summation order), and match onnxruntime-node; a host without shared memory falls back to one
// thread; dispose stops the workers (Deno's sanitizers and the process exit check that); a bad
// `threads` value is refused with a clear error.
import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec, type TensorSpec } from "../core/onnx/writer.ts";
import { compile, programInternals } from "../core/program.ts";
import type { Tensor } from "../core/tensor.ts";
import { simulateNoThreads, threadsUnavailable } from "../core/engine.ts";
import { KilnError } from "../core/errors.ts";
import { runOrt } from "./util/ort.ts";
import { ZOO_BUILDERS } from "./util/zoo.ts";
import { geluTanhModel } from "./util/zoo_layers.ts";
import { runCli, runCliWith } from "./util/cli.ts";

const THREADED = threadsUnavailable() === "";
if (!THREADED) console.log(`threads tests skipped: ${threadsUnavailable()}`);

function _f32(dims: number[], seed: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return {
    dtype: "float32",
    dims,
    data: Float32Array.from(
      { length: n },
      (_, i) => Math.sin(i * 0.7311 + seed * 1.3) * Math.cos(i * 0.137 + seed),
    ),
  };
}

function _init(name: string, t: Tensor): TensorSpec {
  return { name, dtype: "float32", dims: t.dims as number[], data: t.data as Float32Array };
}

/** One-node model; `weights` become initializers (packed once at prepare on ref). */
function _model(
  op: string,
  inputs: Record<string, Tensor>,
  weights: Record<string, Tensor>,
  attrs?: NodeSpec["attrs"],
  opset = 18,
) {
  return buildModel({
    opset,
    graph: {
      inputs: Object.entries(inputs).map(([name, t]) => ({ name, dtype: "float32", dims: t.dims })),
      outputs: [{ name: "y", dtype: "float32" }],
      initializers: Object.entries(weights).map(([n, t]) => _init(n, t)),
      nodes: [{ op, inputs: [...Object.keys(inputs), ...Object.keys(weights)], outputs: ["y"], attrs }],
    },
  });
}

async function _run(
  model: Uint8Array,
  inputs: Record<string, Tensor>,
  threads: number,
): Promise<Float32Array> {
  const p = compile(await parseOnnx(model), "ref", { threads });
  try {
    assert.equal(p.info().threads, THREADED ? threads : 1);
    // the first run starts the workers (it may finish before they are up): run until every
    // worker has taken tasks, so that the result compared is one they took part in
    const internals = programInternals(p);
    let y = (await p.eval(inputs)).y.data as Float32Array;
    const waiting = () => {
      const tasks = internals.tasksRun();
      return threads > 1 && tasks.slice(1).some((n) => n === 0);
    };
    for (let i = 0; i < 400 && waiting(); i++) {
      await new Promise((r) => setTimeout(r, 5));
      y = (await p.eval(inputs)).y.data as Float32Array;
    }
    // every model here is large enough to be split: every worker must have run tasks (the main
    // instance may find them all taken)
    if (threads > 1 && THREADED) {
      assert.ok(
        internals.tasksRun().slice(1).every((n) => n > 0),
        `tasks per thread: ${internals.tasksRun()}`,
      );
    }
    return y;
  } finally {
    p.dispose();
  }
}

/** 1 and 2 and 3 threads give identical bits, and match onnxruntime-node. */
async function _same(model: Uint8Array, inputs: Record<string, Tensor>, label: string): Promise<void> {
  const one = await _run(model, inputs, 1);
  for (const n of [2, 3]) {
    const many = await _run(model, inputs, n);
    assert.equal(many.length, one.length);
    for (let i = 0; i < one.length; i++) {
      if (!Object.is(many[i], one[i])) {
        assert.fail(`${label}, ${n} threads: element ${i} is ${many[i]}, 1 thread gives ${one[i]}`);
      }
    }
  }
  const want = (await runOrt(model, inputs)).y.data as Float32Array;
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(one[i] - want[i]) <= 1e-4 + 1e-4 * Math.abs(want[i]),
      `${label}: element ${i} is ${one[i]}, onnxruntime gives ${want[i]}`,
    );
  }
}

Deno.test({
  name:
    "threads: MatMul and Gemm give the same bits on 1, 2 and 3 threads (column and row panels, packed weights)",
  ignore: !THREADED,
  fn: async () => {
    // many columns: split by column panels; A read in place
    await _same(_model("MatMul", { a: _f32([64, 300], 1), b: _f32([300, 517], 2) }, {}), {
      a: _f32([64, 300], 1),
      b: _f32([300, 517], 2),
    }, "MatMul 64x300x517");
    // a weight B (packed at prepare): column panels across NC blocks
    const a = _f32([37, 260], 3);
    await _same(_model("MatMul", { a }, { w: _f32([260, 2100], 4) }), { a }, "MatMul packed 37x260x2100");
    // few columns, many rows: split by row panels
    const tall = _f32([1000, 300], 5);
    await _same(_model("MatMul", { a: tall }, { w: _f32([300, 20], 6) }), { a: tall }, "MatMul 1000x300x20");
    // Gemm with transposes, alpha and beta (packed A panels, scaled C)
    const x = _f32([300, 90], 7);
    await _same(
      _model("Gemm", { x }, { w: _f32([400, 300], 8), c: _f32([400], 9) }, {
        transA: { i: 1 },
        transB: { i: 1 },
        alpha: { f: 0.5 },
        beta: { f: 2 },
      }),
      { x },
      "Gemm transA transB",
    );
    // a bias row (and a bias column) broadcast into C before the product, split by rows
    const h = _f32([300, 200], 10);
    await _same(
      _model("Gemm", { h }, { w: _f32([200, 517], 11), c: _f32([517], 12) }),
      { h },
      "Gemm bias row",
    );
    await _same(
      _model("Gemm", { h }, { w: _f32([200, 517], 11), c: _f32([300, 1], 13) }),
      { h },
      "Gemm bias column",
    );
  },
});

Deno.test({
  name:
    "threads: batched MatMul (whole products per task, or each product split) gives the same bits on 1, 2 and 3 threads",
  ignore: !THREADED,
  fn: async () => {
    // attention-shaped: 12 products of 128x64x128 and 128x128x64, shared out whole
    const q = _f32([1, 12, 128, 64], 1), kt = _f32([1, 12, 64, 128], 2);
    await _same(_model("MatMul", { q, kt }, {}), { q, kt }, "MatMul attention scores");
    const p = _f32([1, 12, 128, 128], 3), v = _f32([1, 12, 128, 64], 4);
    await _same(_model("MatMul", { p, v }, {}), { p, v }, "MatMul attention values");
    // a broadcast batch: A [2, 3, ...] against B [3, ...] (B's products repeat)
    const a = _f32([2, 3, 40, 70], 5), b = _f32([3, 70, 90], 6);
    await _same(_model("MatMul", { a, b }, {}), { a, b }, "MatMul broadcast batch");
    // one-row products (the GEMV path) shared out whole
    const r = _f32([16, 1, 400], 7), w = _f32([16, 400, 300], 8);
    await _same(_model("MatMul", { r, w }, {}), { r, w }, "MatMul batched rows");
    // two large products: too few to share out, each split into panels
    const m1 = _f32([2, 64, 300], 9), m2 = _f32([2, 300, 517], 10);
    await _same(_model("MatMul", { m1, m2 }, {}), { m1, m2 }, "MatMul two products");
  },
});

Deno.test({
  name: "threads: one-row products (GEMV, split by column ranges) give the same bits on 1, 2 and 3 threads",
  ignore: !THREADED,
  fn: async () => {
    // B an input (not packed at prepare): the GEMV paths, axpy over B's rows and dot products
    const a = _f32([1, 1000], 1), b = _f32([1000, 1500], 2);
    await _same(_model("MatMul", { a, b }, {}), { a, b }, "MatMul 1x1000x1500");
    const x = _f32([1, 800], 3), w = _f32([1500, 800], 4), c = _f32([1500], 5);
    await _same(
      _model("Gemm", { x, w, c }, {}, { transB: { i: 1 }, alpha: { f: 0.5 }, beta: { f: 2 } }),
      { x, w, c },
      "Gemm 1x800x1500 transB",
    );
  },
});

/** y = Where(IsNaN(m), -10000, x): the attention mask pattern of exported GPT-2. */
function _maskModel(m: Tensor, x: Tensor) {
  return buildModel({
    opset: 18,
    graph: {
      inputs: [{ name: "m", dtype: "float32", dims: m.dims }, { name: "x", dtype: "float32", dims: x.dims }],
      outputs: [{ name: "y", dtype: "float32" }],
      initializers: [{ name: "fill", dtype: "float32", dims: [], data: new Float32Array([-1e4]) }],
      nodes: [
        { op: "IsNaN", inputs: ["m"], outputs: ["c"] },
        { op: "Where", inputs: ["c", "fill", "x"], outputs: ["y"] },
      ],
    },
  });
}

Deno.test({
  name:
    "threads: IsNaN (by ranges) and Where (by broadcast rows or ranges) give the same bits on 1, 2 and 3 threads",
  ignore: !THREADED,
  fn: async () => {
    const withNaN = (t: Tensor) => ({
      ...t,
      data: (t.data as Float32Array).map((v, i) => (i % 7 === 3 || v > 0.8 ? NaN : v)),
    });
    // one long row: IsNaN and Where split by element ranges
    const m = withNaN(_f32([3, 70001], 1));
    await _same(_maskModel(m, m), { m, x: m }, "Where(IsNaN) one row");
    // a [1, 1, 128, 128] mask over [1, 12, 128, 128] scores: Where by broadcast rows
    const mask = withNaN(_f32([1, 1, 128, 128], 2)), scores = _f32([1, 12, 128, 128], 3);
    await _same(_maskModel(mask, scores), { m: mask, x: scores }, "Where broadcast rows");
  },
});

Deno.test({
  name: "threads: Conv (im2col split by channel, GEMM by panels) gives the same bits on 1, 2 and 3 threads",
  ignore: !THREADED,
  fn: async () => {
    const x = _f32([2, 16, 30, 30], 1);
    await _same(
      _model("Conv", { x }, { w: _f32([32, 16, 3, 3], 2), b: _f32([32], 3) }, {
        pads: { ints: [1, 1, 1, 1] },
      }),
      { x },
      "Conv 3x3",
    );
    await _same(
      _model("Conv", { x }, { w: _f32([64, 8, 5, 5], 4) }, { group: { i: 2 }, strides: { ints: [2, 2] } }),
      { x },
      "Conv grouped, strided",
    );
  },
});

Deno.test({
  name:
    "threads: large elementwise ops, softmax, LayerNormalization and BatchNormalization (by ranges, rows, planes) give the same bits",
  ignore: !THREADED,
  fn: async () => {
    const x = _f32([3, 70001], 1);
    for (const op of ["Tanh", "Relu", "Sigmoid", "Erf"]) await _same(_model(op, { x }, {}), { x }, op);
    await _same(
      _model("Gelu", { x }, {}, { approximate: { s: "tanh" } }, 20),
      { x },
      "Gelu tanh",
    );
    const a = _f32([300, 517], 2);
    await _same(
      _model("Add", { a, b: _f32([300, 517], 3) }, {}),
      { a, b: _f32([300, 517], 3) },
      "Add same shape",
    );
    await _same(_model("Mul", { a }, { b: _f32([517], 4) }), { a }, "Mul broadcast rows");
    await _same(_model("Sub", { a }, { b: _f32([300, 1], 5) }), { a }, "Sub broadcast columns");
    await _same(_model("Div", { a }, { b: _f32([1], 6) }), { a }, "Div by a scalar");
    const img = _f32([2, 32, 40, 40], 8);
    const pos = (t: Tensor) => ({ ...t, data: (t.data as Float32Array).map((v) => 0.5 + Math.abs(v)) });
    await _same(
      _model("BatchNormalization", { img }, {
        scale: _f32([32], 9),
        bias: _f32([32], 10),
        mean: _f32([32], 11),
        var: pos(_f32([32], 12)),
      }),
      { img },
      "BatchNormalization (inference)",
    );
    const h = _f32([2, 128, 768], 13);
    await _same(
      _model("LayerNormalization", { h }, { scale: _f32([768], 14), bias: _f32([768], 15) }, {
        epsilon: { f: 1e-5 },
      }),
      { h },
      "LayerNormalization (rows)",
    );
    await _same(_model("Pow", { x }, { e: { dtype: "float32", dims: [], data: new Float32Array([3]) } }), {
      x,
    }, "Pow 3");
    const logits = _f32([12, 128, 128], 7);
    await _same(_model("Softmax", { logits }, {}), { logits }, "Softmax (attention-sized rows)");
    await _same(_model("LogSoftmax", { logits }, {}), { logits }, "LogSoftmax");
  },
});

Deno.test({
  name:
    "threads: a fused elementwise group (GPT-2's tanh GELU, split by blocks) gives the same bits on 1, 2 and 3 threads",
  ignore: !THREADED,
  fn: async () => {
    const x = _f32([128, 3072], 1);
    const model = geluTanhModel(x.dims);
    const p = compile(await parseOnnx(model), "ref", { threads: 1 });
    try {
      assert.deepEqual(p.info().ops, { "kiln.fused_elementwise": 1 });
    } finally {
      p.dispose();
    }
    await _same(model, { x }, "fused GELU");
  },
});

Deno.test("threads: a host without shared memory runs on one thread, with the same results", async () => {
  const a = _f32([64, 300], 1), b = _f32([300, 517], 2);
  const model = _model("MatMul", { a, b }, {});
  const want = await _run(model, { a, b }, 1);
  simulateNoThreads("this host has no SharedArrayBuffer");
  try {
    const p = compile(await parseOnnx(model), "ref", { threads: 4 });
    try {
      assert.equal(p.info().threads, 1);
      assert.deepEqual((await p.eval({ a, b })).y.data, want);
    } finally {
      p.dispose();
    }
  } finally {
    simulateNoThreads(null);
  }
});

Deno.test({
  name: "threads: workers start at the first run, run tasks, and dispose stops them",
  ignore: !THREADED,
  fn: async () => {
    const a = _f32([64, 300], 1), b = _f32([300, 517], 2);
    const p = compile(await parseOnnx(_model("MatMul", { a, b }, {})), "ref", { threads: 3 });
    const internals = programInternals(p);
    assert.equal(internals.workersRunning, 0, "no worker before the first run");
    await p.eval({ a, b });
    assert.equal(internals.workersRunning, 2);
    // once up, the workers take tasks: wait for them, then run until each has taken some
    for (let i = 0; i < 200 && internals.tasksRun().slice(1).some((n) => n === 0); i++) {
      await new Promise((r) => setTimeout(r, 5));
      await p.eval({ a, b });
    }
    const tasks = internals.tasksRun();
    assert.equal(tasks.length, 3);
    assert.ok(tasks.slice(1).every((n) => n > 0), `every worker ran tasks: ${tasks}`);
    p.dispose();
    // (the test's op sanitizer and the process exit would catch a worker left running)
  },
});

Deno.test("threads: a bad threads value is refused with a clear error", async () => {
  const a = _f32([4, 4], 1);
  const parsed = await parseOnnx(_model("MatMul", { a, b: a }, {}));
  for (const bad of [0, -1, 1.5, 65, NaN]) {
    assert.throws(() => compile(parsed, "ref", { threads: bad }), (e: unknown) => {
      assert.ok(e instanceof KilnError && e.code === "options", String(e));
      assert.match((e as Error).message, /'threads' must be an integer from 1 to 64/);
      return true;
    });
  }
});

Deno.test({
  name: "threads: the exporter-style model zoo gives the same bits on 3 threads as on one",
  ignore: !THREADED,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "kiln_threads_zoo_" });
    try {
      for (const build of ZOO_BUILDERS) {
        const m = await build(dir);
        await t.step(m.name, async () => {
          for (const c of m.cases) {
            const parsed = await parseOnnx(m.file.path, { inputDims: c.dims });
            const one = compile(parsed, "ref", { threads: 1 });
            const many = compile(parsed, "ref", { threads: 3 });
            try {
              const want = await one.eval(c.inputs);
              await many.eval(c.inputs);
              const got = await many.eval(c.inputs);
              for (const [name, w] of Object.entries(want)) {
                assert.deepEqual(got[name].dims, w.dims);
                assert.deepEqual(got[name].data, w.data, `${m.name} ${JSON.stringify(c.dims)} ${name}`);
              }
            } finally {
              one.dispose();
              many.dispose();
            }
          }
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "threads: the CLI's --threads (perf reports the count; a bad value is a usage error); read permission only",
  ignore: !THREADED,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kiln_threads_cli_" });
    try {
      const a = _f32([64, 300], 1), b = _f32([300, 517], 2);
      const path = `${dir}/mm.onnx`;
      await Deno.writeFile(path, _model("MatMul", { a, b }, {}));
      // the ref target with workers needs no permission beyond reading the model (and writing nothing)
      const r = await runCliWith(
        ["--allow-read"],
        "perf",
        path,
        "--threads",
        "2",
        "--iterations",
        "3",
        "--json",
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).threads, 2);
      const one = await runCli("perf", path, "--threads", "1", "--iterations", "1", "--json");
      assert.equal(JSON.parse(one.stdout).threads, 1);
      const bad = await runCli("perf", path, "--threads", "0");
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /Bad --threads '0': an integer from 1 to 64/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
