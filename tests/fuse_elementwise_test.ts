// fuse_elementwise (ref): groups of float32 elementwise nodes become one kiln.fused_elementwise
// node that runs the nodes' own row kernels block by block. The fused graph must give the same bits
// as the unfused one (disablePasses: ["fuse_elementwise"]) on 1, 2 and 3 threads, on GPT-2's tanh
// GELU and on seeded random chains and DAGs, match onnxruntime, survive serialize/deserialize, and
// leave alone what it cannot fuse (values read outside the group, broadcast rows, other dtypes).
import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec, type TensorSpec } from "../core/onnx/writer.ts";
import { compile, deserializeProgram, type Program } from "../core/program.ts";
import type { Tensor } from "../core/tensor.ts";
import { threadsUnavailable } from "../core/engine.ts";
import { runOrt } from "./util/ort.ts";
import { geluTanhModel } from "./util/zoo_layers.ts";

const THREADS = threadsUnavailable() === "" ? [1, 2, 3] : [1];
const UNFUSED = { disablePasses: ["fuse_elementwise"] };

function _rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function _input(dims: number[], seed: number, scale = 3): Tensor {
  const r = _rng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: "float32", dims, data: Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale) };
}

function _scalar(name: string, v: number): TensorSpec {
  return { name, dtype: "float32", dims: [], data: new Float32Array([v]) };
}

async function _eval(model: Uint8Array, inputs: Record<string, Tensor>, options: object): Promise<{
  out: Record<string, Tensor>;
  ops: Record<string, number>;
}> {
  const p = compile(await parseOnnx(model), "ref", options);
  try {
    let out = await p.eval(inputs);
    // a later eval (the workers are up by then on more threads) must give the same
    out = await p.eval(inputs);
    return { out, ops: p.info().ops };
  } finally {
    p.dispose();
  }
}

function _sameBits(a: Tensor, b: Tensor, what: string): void {
  const x = a.data as Float32Array, y = b.data as Float32Array;
  assert.equal(x.length, y.length, what);
  for (let i = 0; i < x.length; i++) {
    if (!Object.is(x[i], y[i])) assert.fail(`${what}: element ${i} is ${x[i]}, unfused ${y[i]}`);
  }
}

function _close(got: Tensor, want: Tensor, what: string): void {
  const x = got.data as Float32Array, y = want.data as Float32Array;
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(y[i])) {
      assert.ok(Number.isNaN(x[i]), `${what}: element ${i} is ${x[i]}, onnxruntime NaN`);
      continue;
    }
    assert.ok(
      Math.abs(x[i] - y[i]) <= 1e-5 + 1e-4 * Math.abs(y[i]),
      `${what}: element ${i} is ${x[i]}, onnxruntime gives ${y[i]}`,
    );
  }
}

/** Fused on every thread count gives the unfused bits; returns the fused node count. */
async function _check(model: Uint8Array, inputs: Record<string, Tensor>, label: string): Promise<number> {
  const base = await _eval(model, inputs, { threads: 1, ...UNFUSED });
  assert.equal(base.ops["kiln.fused_elementwise"], undefined);
  let fused = 0;
  for (const threads of THREADS) {
    const f = await _eval(model, inputs, { threads });
    fused = f.ops["kiln.fused_elementwise"] ?? 0;
    for (const name of Object.keys(base.out)) {
      _sameBits(f.out[name], base.out[name], `${label}, ${threads} thread(s), output ${name}`);
    }
  }
  const want = await runOrt(model, inputs);
  for (const name of Object.keys(base.out)) _close(base.out[name], want[name], `${label}, output ${name}`);
  return fused;
}

Deno.test("fuse_elementwise: GPT-2's tanh GELU becomes one node, same bits as unfused on 1-3 threads, matches onnxruntime", async () => {
  for (const dims of [[128, 3072], [3, 1401], [64, 65]]) {
    const model = geluTanhModel(dims);
    const n = await _check(model, { x: _input(dims, dims[1]) }, `GELU ${dims}`);
    assert.equal(n, 1, `GELU ${dims}: one fused node`);
    const { ops } = await _eval(model, { x: _input(dims, 1) }, { threads: 1 });
    assert.deepEqual(Object.keys(ops), ["kiln.fused_elementwise"], `ops left: ${JSON.stringify(ops)}`);
  }
});

Deno.test("fuse_elementwise: a profile names the fused node's ops", async () => {
  const p = compile(await parseOnnx(geluTanhModel([64, 128])), "ref", { threads: 1 });
  try {
    const r = await p.profile({ x: _input([64, 128], 2) });
    assert.deepEqual(r.nodes.map((n) => n.op), ["Fused(Mul+Pow+Mul+Add+Mul+Tanh+Add+Mul)"]);
  } finally {
    p.dispose();
  }
});

Deno.test("fuse_elementwise: a serialized fused program loads and gives the same bits", async () => {
  const model = geluTanhModel([32, 512]);
  const x = { x: _input([32, 512], 5) };
  const p = compile(await parseOnnx(model), "ref", { threads: 1 });
  const programs: Program[] = [p];
  try {
    const want = (await p.eval(x)).y;
    const s = p.serialize();
    const q = deserializeProgram(s.ir, s.hostLiterals, "ref");
    programs.push(q);
    assert.equal(q.info().ops["kiln.fused_elementwise"], 1);
    _sameBits((await q.eval(x)).y, want, "deserialized");
  } finally {
    for (const q of programs) q.dispose();
  }
});

const UNARY: [string, NodeSpec["attrs"]?][] = [
  ["Tanh"],
  ["Sigmoid"],
  ["Relu"],
  ["Neg"],
  ["Abs"],
  ["Erf"],
  ["Softsign"],
  ["LeakyRelu", { alpha: { f: 0.13 } }],
  ["Elu", { alpha: { f: 0.7 } }],
  ["HardSigmoid", { alpha: { f: 0.3 }, beta: { f: 0.4 } }],
  ["Gelu", { approximate: { s: "tanh" } }],
  ["Gelu"],
];
const BINARY = ["Add", "Sub", "Mul", "Div"];

/**
 * A seeded random DAG of elementwise nodes over `dims`: operands are earlier values (so some are
 * read twice, or by a later group), graph inputs or scalar initializers; some intermediates are
 * also outputs, so only parts of the graph can fuse.
 */
function _randomGraph(seed: number, dims: number[], nodes: number): Uint8Array {
  const r = _rng(seed);
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const values = ["x0", "x1"];
  const inits: TensorSpec[] = [];
  const specs: NodeSpec[] = [];
  const outputs: string[] = [];
  for (let i = 0; i < nodes; i++) {
    const y = `v${i}`;
    // mostly the last value (a chain), sometimes an older one (a DAG)
    const a = r() < 0.6 ? values[values.length - 1] : pick(values);
    const kind = r();
    if (kind < 0.4) {
      const [op, attrs] = pick(UNARY);
      specs.push({ op, inputs: [a], outputs: [y], attrs });
    } else if (kind < 0.5) {
      specs.push({ op: "Pow", inputs: [a, pick(["two", "three"])], outputs: [y] });
    } else {
      const op = pick(BINARY);
      let b: string;
      if (r() < 0.4) {
        b = `c${inits.length}`;
        // Div by a scalar away from 0
        inits.push(_scalar(b, (r() < 0.5 ? -1 : 1) * (0.5 + r() * 2)));
      } else {
        b = op === "Div" ? a : pick(values);
      }
      specs.push({ op, inputs: r() < 0.5 ? [a, b] : [b, a], outputs: [y] });
    }
    values.push(y);
    if (r() < 0.1) outputs.push(y);
  }
  outputs.push(values[values.length - 1]);
  return buildModel({
    opset: 20, // Gelu
    graph: {
      inputs: [{ name: "x0", dtype: "float32", dims }, { name: "x1", dtype: "float32", dims }],
      outputs: [...new Set(outputs)].map((name) => ({ name, dtype: "float32" })),
      initializers: [_scalar("two", 2), _scalar("three", 3), ...inits],
      nodes: specs,
    },
  });
}

Deno.test("fuse_elementwise: seeded random chains and DAGs give the unfused bits on 1-3 threads and match onnxruntime", async () => {
  let fused = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const dims = seed % 3 === 0 ? [256, 1030] : [37, 301];
    const model = _randomGraph(seed, dims, 6 + (seed % 7));
    const inputs = { x0: _input(dims, seed, 1.5), x1: _input(dims, seed + 100, 1.5) };
    fused += await _check(model, inputs, `random graph ${seed} ${dims}`);
  }
  assert.ok(fused >= 6, `only ${fused} fused nodes over the random graphs`);
});

Deno.test("fuse_elementwise: leaves alone values read outside a group, row broadcasts and small graphs", async () => {
  const dims = [64, 128];
  // t is read by y and returned: Tanh and Add cannot become one node, but Add + Mul can
  const shared = buildModel({
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims }],
      outputs: [{ name: "y", dtype: "float32" }, { name: "t", dtype: "float32" }],
      initializers: [_scalar("one", 1)],
      nodes: [
        { op: "Tanh", inputs: ["x"], outputs: ["t"] },
        { op: "Add", inputs: ["t", "one"], outputs: ["u"] },
        { op: "Mul", inputs: ["u", "x"], outputs: ["y"] },
      ],
    },
  });
  const x = { x: _input(dims, 9) };
  assert.equal(await _check(shared, x, "shared"), 1);
  assert.deepEqual((await _eval(shared, x, { threads: 1 })).ops, { "Tanh": 1, "kiln.fused_elementwise": 1 });
  // a bias row [128] broadcast over rows is not fused (only same-shape or single-element operands)
  const row = buildModel({
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims }],
      outputs: [{ name: "y", dtype: "float32" }],
      initializers: [{ name: "b", dtype: "float32", dims: [128], data: new Float32Array(128).fill(0.25) }],
      nodes: [
        { op: "Add", inputs: ["x", "b"], outputs: ["u"] },
        { op: "Tanh", inputs: ["u"], outputs: ["y"] },
      ],
    },
  });
  assert.deepEqual((await _eval(row, x, { threads: 1 })).ops, { "Add": 1, "Tanh": 1 });
  // below 4096 elements nothing fuses
  const small = geluTanhModel([8, 64]);
  assert.equal(
    (await _eval(small, { x: _input([8, 64], 3) }, { threads: 1 })).ops["kiln.fused_elementwise"],
    undefined,
  );
});
