// `Program.profile` on the ref target: one eval timed node by node on the host's clock (wall time
// on the main thread; with threads, waiting for the workers included), the same report as the gpu
// target's: nodes in run order, the same summed per op, largest first. A profiled eval computes
// what an ordinary one does, and bad inputs are refused as by eval.
import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel } from "../core/onnx/writer.ts";
import { compile } from "../core/program.ts";
import { KilnError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import { threadsUnavailable } from "../core/engine.ts";

function _f32(dims: number[], seed: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return {
    dtype: "float32",
    dims,
    data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 0.5),
  };
}

/** y = Tanh(x·W + b) · 0.5 + x·W: MatMul, Add, Tanh, Mul, Add (x·W read twice). */
function _model(m: number, k: number, n: number): Uint8Array {
  const w = _f32([k, n], 1);
  const b = _f32([n], 2);
  return buildModel({
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [m, k] }],
      outputs: [{ name: "y", dtype: "float32" }],
      initializers: [
        { name: "w", dtype: "float32", dims: [k, n], data: w.data as Float32Array },
        { name: "b", dtype: "float32", dims: [n], data: b.data as Float32Array },
        { name: "half", dtype: "float32", dims: [], data: new Float32Array([0.5]) },
      ],
      nodes: [
        { op: "MatMul", name: "mm", inputs: ["x", "w"], outputs: ["xw"] },
        { op: "Add", name: "bias", inputs: ["xw", "b"], outputs: ["z"] },
        { op: "Tanh", name: "act", inputs: ["z"], outputs: ["t"] },
        { op: "Mul", name: "scale", inputs: ["t", "half"], outputs: ["s"] },
        { op: "Add", name: "residual", inputs: ["s", "xw"], outputs: ["y"] },
      ],
    },
  });
}

for (const threads of [1, 2]) {
  Deno.test(`ref profile(), ${threads} thread(s): every node in run order, summed per op, outputs unchanged`, async () => {
    // unfused, to see every node (fuse_elementwise would make the four elementwise nodes one)
    const p = compile(await parseOnnx(_model(96, 256, 384)), "ref", {
      threads,
      disablePasses: ["fuse_elementwise"],
    });
    try {
      const x = { x: _f32([96, 256], 3) };
      const before = (await p.eval(x)).y.data as Float32Array;
      const t0 = performance.now();
      const r = await p.profile(x);
      const wall = performance.now() - t0;
      assert.equal(r.device, "WebAssembly");
      // MatMul may be lowered (packed weights: kiln.gemm_packed_b); the elementwise nodes keep their ops
      const names = r.nodes.map((n) => n.name);
      assert.deepEqual(names.slice(-4), ["bias", "act", "scale", "residual"]);
      assert.deepEqual(r.nodes.slice(-4).map((n) => n.op), ["Add", "Tanh", "Mul", "Add"]);
      assert.ok(names.includes("mm"), `nodes: ${names}`);
      for (const n of r.nodes) assert.ok(Number.isFinite(n.ms) && n.ms >= 0, `${n.name}: ${n.ms} ms`);
      const sum = r.nodes.reduce((a, n) => a + n.ms, 0);
      assert.ok(Math.abs(r.totalMs - sum) < 1e-9);
      // wall time per node: the nodes together take no longer than the call
      assert.ok(r.totalMs <= wall, `nodes ${r.totalMs} ms, the whole call ${wall} ms`);
      const add = r.ops.find((o) => o.op === "Add")!;
      assert.equal(add.count, 2);
      assert.ok(
        Math.abs(add.ms - r.nodes.filter((n) => n.op === "Add").reduce((a, n) => a + n.ms, 0)) < 1e-9,
      );
      for (let i = 1; i < r.ops.length; i++) assert.ok(r.ops[i - 1].ms >= r.ops[i].ms);
      // the profiled eval left the program as an ordinary one does
      const after = (await p.eval(x)).y.data as Float32Array;
      assert.deepEqual(after, before);
    } finally {
      p.dispose();
    }
  });
}

Deno.test("ref profile(): the GEMM takes most of the time of a GEMM-heavy graph", async () => {
  // 256x512x512 multiply-adds against four passes over 256x512 elements: the profile must say so
  const p = compile(await parseOnnx(_model(256, 512, 512)), "ref", {
    threads: 1,
    disablePasses: ["fuse_elementwise"],
  });
  try {
    const x = { x: _f32([256, 512], 4) };
    await p.eval(x);
    const r = await p.profile(x);
    assert.ok(!["Add", "Tanh", "Mul"].includes(r.ops[0].op), `ops: ${JSON.stringify(r.ops)}`);
  } finally {
    p.dispose();
  }
});

Deno.test("ref profile(): bad inputs are refused as by eval", async () => {
  const p = compile(await parseOnnx(_model(4, 8, 8)), "ref", { threads: 1 });
  try {
    await assert.rejects(
      () => p.profile({ x: _f32([4, 9], 0) }),
      (e: unknown) => e instanceof KilnError && e.code === "input" && /'x'/.test(e.message),
    );
    await assert.rejects(
      () => p.profile({}),
      (e: unknown) => e instanceof KilnError && /missing input 'x'/.test(e.message),
    );
  } finally {
    p.dispose();
  }
});

if (threadsUnavailable() !== "") {
  console.log(`ref profile: 2-thread cases ran on one (${threadsUnavailable()})`);
}
