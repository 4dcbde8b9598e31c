// The core: GraphBuilder -> WASM decode (shape inference, eager folding) -> passes -> executor,
// on small hand-built graphs.
import assert from "node:assert/strict";
import { GraphBuilder, type ModuleBuilder } from "../core/ir/builder.ts";
import {
  compile,
  type CompileOptions,
  deserializeProgram,
  type Program,
  REF_PASSES,
} from "../core/program.ts";
import { Engine } from "../core/engine.ts";
import { KilnError } from "../core/errors.ts";
import type { HostLiteral, ParsedModel } from "../core/onnx/import.ts";
import type { Tensor } from "../core/tensor.ts";
import { programInternals } from "../core/program.ts";

const F32 = 1;
const I64 = 7;
const BOOL = 9;

function f32(dims: number[], values: number[]): Tensor {
  return { dtype: "float32", dims, data: new Float32Array(values) };
}

function model(g: GraphBuilder, hostLiterals: HostLiteral[] = []): ParsedModel {
  return {
    graph: g,
    hostLiterals,
    inputs: [],
    outputs: [],
    opset: g.opset,
    fixedWeights: [],
    deferredWeights: [],
  };
}

function build(fn: (m: ModuleBuilder, g: GraphBuilder) => void, opset = 18): GraphBuilder {
  const g = new GraphBuilder(opset);
  fn(g.main, g);
  return g;
}

function i64Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function run(p: Program, inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  return p.eval(inputs);
}

function compiled(g: GraphBuilder, options?: CompileOptions, hostLiterals: HostLiteral[] = []): Program {
  return compile(model(g, hostLiterals), "ref", options);
}

/** A model whose graph encodes to the given bytes (malformed-encoding tests). */
function rawModel(g: GraphBuilder, bytes: Uint8Array): ParsedModel {
  const fake = Object.create(g) as GraphBuilder;
  fake.encode = () => bytes;
  return model(fake);
}

function catchKiln(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    return e;
  }
  assert.fail("expected a KilnError");
}

async function catchKilnAsync(fn: () => Promise<unknown>): Promise<KilnError> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    return e;
  }
  assert.fail("expected a KilnError");
}

Deno.test("compile() runs Add and Relu end to end", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2, 3]);
    const b = m.param("b", F32, [3]);
    const [s] = m.node("Add", [x, b], {}, 1, "add");
    const [r] = m.node("Relu", [s], {}, 1, "relu");
    m.ret([r, s], ["relu", "sum"]);
  });
  const p = compiled(g);
  assert.deepEqual(p.inputs.map((v) => v.name), ["x", "b"]);
  assert.deepEqual(p.outputs, [
    { name: "relu", dtype: "float32", dims: [2, 3] },
    { name: "sum", dtype: "float32", dims: [2, 3] },
  ]);
  const out = await run(p, { x: f32([2, 3], [1, -2, 3, -4, 5, -6]), b: f32([3], [0.5, 0.5, 0.5]) });
  assert.deepEqual(Array.from(out.sum.data as Float32Array), [1.5, -1.5, 3.5, -3.5, 5.5, -5.5]);
  assert.deepEqual(Array.from(out.relu.data as Float32Array), [1.5, 0, 3.5, 0, 5.5, 0]);
  // a second eval reuses the arena and gives fresh arrays
  const again = await run(p, { x: f32([2, 3], [0, 0, 0, 0, 0, 1]), b: f32([3], [0, 0, 0]) });
  assert.deepEqual(Array.from(again.relu.data as Float32Array), [0, 0, 0, 0, 0, 1]);
  assert.equal(out.relu.data[0], 1.5);
  p.dispose();
});

Deno.test("decode folds the exporter's Shape -> Gather -> Concat -> Reshape chain eagerly", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2, 3, 4]);
    const [shape] = m.node("Shape", [x], {}, 1, "shape");
    const idx = m.literal("idx", { dtype: I64, dims: [], bytes: i64Bytes([0]) });
    const [d0] = m.node("Gather", [shape, idx], { axis: { i: 0 } }, 1, "gather");
    const axes = m.literal("axes", { dtype: I64, dims: [1], bytes: i64Bytes([0]) });
    const [d0v] = m.node("Unsqueeze", [d0, axes], {}, 1, "unsq");
    const minus1 = m.literal("m1", { dtype: I64, dims: [1], bytes: i64Bytes([-1]) });
    const [target] = m.node("Concat", [d0v, minus1], { axis: { i: 0 } }, 1, "concat");
    const [y] = m.node("Reshape", [x, target], {}, 1, "reshape");
    m.ret([y], ["y"]);
  });
  const p = compiled(g);
  assert.deepEqual(p.outputs[0].dims, [2, 12]);
  // everything but the param and the reshape folded into literals, then dce dropped the unused ones
  const info = p.info();
  assert.equal(info.instructionCount, 3);
  const x = Array.from({ length: 24 }, (_, i) => i);
  const out = await run(p, { x: f32([2, 3, 4], x) });
  assert.deepEqual(Array.from(out.y.data as Float32Array), x);
  p.dispose();
});

Deno.test("eliminate_identity removes Identity nodes and keeps results", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [4]);
    const [a] = m.node("Identity", [x], {}, 1, "id1");
    const [r] = m.node("Relu", [a], {}, 1, "relu");
    const [b] = m.node("Identity", [r], {}, 1, "id2");
    m.ret([b], ["y"]);
  });
  const on = compiled(g);
  const off = compiled(g, { disablePasses: ["eliminate_identity"] });
  assert.equal(on.info().instructionCount, 2);
  assert.equal(off.info().instructionCount, 4);
  assert.ok(!on.info().passes.includes("eliminate_identity") === false);
  assert.ok(!off.info().passes.includes("eliminate_identity"));
  const x = f32([4], [-1, 2, -3, 4]);
  assert.deepEqual((await run(on, { x })).y.data, (await run(off, { x })).y.data);
  assert.deepEqual(Array.from((await run(on, { x })).y.data as Float32Array), [0, 2, 0, 4]);
  on.dispose();
  off.dispose();
});

Deno.test("cse merges nodes with the same op, attributes and inputs", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [3]);
    const [a] = m.node("Relu", [x], {}, 1, "relu_a");
    const [b] = m.node("Relu", [x], {}, 1, "relu_b");
    const [c] = m.node("LeakyRelu", [x], { alpha: { f: 0.5 } }, 1, "leaky_a");
    const [d] = m.node("LeakyRelu", [x], { alpha: { f: 0.25 } }, 1, "leaky_b");
    const [s] = m.node("Add", [a, b], {}, 1, "add1");
    const [t] = m.node("Add", [c, d], {}, 1, "add2");
    const [u] = m.node("Add", [s, t], {}, 1, "add3");
    m.ret([u], ["y"]);
  });
  const on = compiled(g);
  const off = compiled(g, { disablePasses: ["cse"] });
  assert.equal(off.info().instructionCount - on.info().instructionCount, 1);
  const x = f32([3], [-4, 1, 2]);
  const want = [-4 * 0.5 + -4 * 0.25, 1 + 1 + 1 + 1, 2 + 2 + 2 + 2];
  assert.deepEqual(Array.from((await run(on, { x })).y.data as Float32Array), want);
  assert.deepEqual(Array.from((await run(off, { x })).y.data as Float32Array), want);
  on.dispose();
  off.dispose();
});

Deno.test("dce removes unused nodes and literals but keeps params and weights", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2]);
    const unused = m.param("unused", F32, [2]);
    const w = m.externalWeights("w", F32, [2], { location: "w.bin", offset: 0, length: 8, checksum: "" });
    const lit = m.literal("lit", { dtype: F32, dims: [2], bytes: f32Bytes([1, 2]) });
    m.node("Add", [x, lit], {}, 1, "dead_add");
    m.node("Relu", [w], {}, 1, "dead_relu");
    const [r] = m.node("Relu", [x], {}, 1, "relu");
    void unused;
    m.ret([r], ["y"]);
  });
  const on = compiled(g);
  const off = compiled(g, { disablePasses: ["dce"] });
  // x, unused, w, relu
  assert.equal(on.info().instructionCount, 4);
  assert.equal(off.info().instructionCount, 7);
  assert.deepEqual(on.inputs.map((v) => v.name), ["x", "unused"]);
  assert.deepEqual(on.weights.map((v) => v.name), ["w"]);
  await on.setWeights({ w: f32([2], [0, 0]) });
  const out = await run(on, { x: f32([2], [-1, 1]), unused: f32([2], [0, 0]) });
  assert.deepEqual(Array.from(out.y.data as Float32Array), [0, 1]);
  on.dispose();
  off.dispose();
});

Deno.test("fold_constants never folds onnx_external_weights", async (t) => {
  const g = build((m) => {
    const w = m.externalWeights("fc.weight", F32, [3], {
      location: "model.onnx.data",
      offset: 4096,
      length: 12,
      checksum: "abc",
    });
    const lit = m.literal("one", { dtype: F32, dims: [3], bytes: f32Bytes([1, 1, 1]) });
    const [s] = m.node("Add", [w, lit], {}, 1, "add");
    const [r] = m.node("Relu", [s], {}, 1, "relu");
    m.ret([r], ["y"]);
  });
  const p = compiled(g);
  await t.step("the weight is a named run-time input with its external-data reference", () => {
    assert.deepEqual(p.weights, [{
      name: "fc.weight",
      dtype: "float32",
      dims: [3],
      location: "model.onnx.data",
      offset: 4096,
      length: 12,
      checksum: "abc",
    }]);
    assert.equal(p.info().instructionCount, 4);
  });
  await t.step("eval refuses to run before the weight is bound", async () => {
    await assert.rejects(
      run(p, {}),
      (e: KilnError) => e.code === "input" && /weight 'fc\.weight' is not bound/.test(e.message),
    );
  });
  await t.step("setWeights checks shapes before changing anything", async () => {
    const e = await catchKilnAsync(() =>
      p.setWeights({ "fc.weight": f32([4], [1, 2, 3, 4]), other: f32([1], [0]) })
    );
    assert.equal(e.code, "weights");
    assert.match(e.message, /weight 'fc\.weight' from typed array: shape \[4\], the program needs \[3\]/);
    assert.match(e.message, /unknown weight 'other'/);
  });
  await t.step("bound weights feed the program, and rebinding swaps them", async () => {
    await p.setWeights({ "fc.weight": f32([3], [-5, 0, 2]) });
    assert.deepEqual(Array.from((await run(p, {})).y.data as Float32Array), [0, 1, 3]);
    await p.setWeights({ "fc.weight": f32([3], [1, 1, 1]) });
    assert.deepEqual(Array.from((await run(p, {})).y.data as Float32Array), [2, 2, 2]);
  });
  p.dispose();
});

Deno.test("decode folds all-literal nodes into literals", async () => {
  const g = build((m) => {
    const a = m.literal("a", { dtype: F32, dims: [2], bytes: f32Bytes([1, 2]) });
    const b = m.literal("b", { dtype: F32, dims: [2], bytes: f32Bytes([10, 20]) });
    const [s] = m.node("Add", [a, b], {}, 1, "add");
    const [r] = m.node("Neg", [s], {}, 1, "neg");
    m.ret([r], ["y"]);
  });
  const p = compiled(g);
  const info = p.info();
  assert.equal(info.instructionCount, 1);
  assert.equal(info.literalCount, 1);
  assert.deepEqual(Array.from((await run(p, {})).y.data as Float32Array), [-11, -22]);
  p.dispose();
});

Deno.test("memory_plan reuses arena space and aliases reshapes", async (t) => {
  const n = 1024;
  const ops = ["Neg", "Relu", "Abs", "Neg", "Relu", "Neg"];
  const ref: Record<string, (v: number) => number> = {
    Neg: (v) => -v,
    Relu: (v) => Math.max(0, v),
    Abs: (v) => Math.abs(v),
  };
  const g = build((m) => {
    let v = m.param("x", F32, [n]);
    ops.forEach((op, i) => [v] = m.node(op, [v], {}, 1, `n${i}`));
    const shape = m.literal("shape", { dtype: I64, dims: [2], bytes: i64Bytes([32, 32]) });
    const [r] = m.node("Reshape", [v, shape], {}, 1, "reshape");
    const [y] = m.node("Neg", [r], {}, 1, "last");
    m.ret([y], ["y"]);
  });
  const planned = compiled(g);
  const naive = compiled(g, { disablePasses: ["memory_plan"] });
  await t.step("liveness keeps two buffers where the naive plan keeps seven", () => {
    assert.equal(planned.info().arenaBytes, 2 * n * 4);
    assert.equal(naive.info().arenaBytes, 7 * n * 4);
  });
  await t.step("both plans compute the same values", async () => {
    const xs = Array.from({ length: n }, (_, i) => (i - 512) / 8);
    const x = f32([n], xs);
    const a = (await run(planned, { x })).y;
    const b = (await run(naive, { x })).y;
    assert.deepEqual(a.dims, [32, 32]);
    const want = xs.map((v) => -ops.reduce((acc, op) => ref[op](acc), v) + 0);
    assert.deepEqual(Array.from(a.data as Float32Array, (v) => v + 0), want);
    assert.deepEqual(Array.from(b.data as Float32Array, (v) => v + 0), want);
  });
  planned.dispose();
  naive.dispose();
});

Deno.test("If runs the chosen branch, which reads outer-scope values", async () => {
  const g = new GraphBuilder(18);
  const m = g.main;
  const cond = m.param("cond", BOOL, []);
  const x = m.param("x", F32, [3]);
  const [outer] = m.node("Relu", [x], {}, 1, "outer_relu");
  const thenB = m.submodule("then");
  const [tn] = thenB.node("Neg", [outer], {}, 1, "then_neg");
  thenB.ret([tn], ["t"]);
  const elseB = m.submodule("else");
  const ten = elseB.literal("ten", { dtype: F32, dims: [3], bytes: f32Bytes([10, 10, 10]) });
  const [ea] = elseB.node("Add", [outer, ten], {}, 1, "else_add");
  elseB.ret([ea], ["e"]);
  const [y] = m.node(
    "If",
    [cond],
    { then_branch: { g: thenB.index }, else_branch: { g: elseB.index } },
    1,
    "if",
  );
  const [z] = m.node("Add", [y, x], {}, 1, "after");
  m.ret([z], ["z"]);
  const p = compiled(g);
  assert.equal(p.info().moduleCount, 3);
  const xs = f32([3], [1, -2, 3]);
  const yes = await run(p, { cond: { dtype: "bool", dims: [], data: new Uint8Array([1]) }, x: xs });
  assert.deepEqual(Array.from(yes.z.data as Float32Array), [0, -2, 0]);
  const no = await run(p, { cond: { dtype: "bool", dims: [], data: new Uint8Array([0]) }, x: xs });
  assert.deepEqual(Array.from(no.z.data as Float32Array), [12, 8, 16]);
  // submodules survive serialization
  const { ir, hostLiterals } = p.serialize();
  const q = deserializeProgram(ir, hostLiterals);
  assert.equal(q.info().moduleCount, 3);
  const no2 = await run(q, { cond: { dtype: "bool", dims: [], data: new Uint8Array([0]) }, x: xs });
  assert.deepEqual(no2.z.data, no.z.data);
  const yes2 = await run(q, { cond: { dtype: "bool", dims: [], data: new Uint8Array([1]) }, x: xs });
  assert.deepEqual(yes2.z.data, yes.z.data);
  q.dispose();
  p.dispose();
});

Deno.test("compile() errors name the node, the op and the problem", async (t) => {
  await t.step("unsupported op", () => {
    const g = build((m) => {
      const x = m.param("x", F32, [2]);
      const [y] = m.node("NoSuchOp", [x], {}, 1, "weird_1");
      m.ret([y], ["y"]);
    });
    const e = catchKiln(() => compiled(g));
    assert.equal(e.code, "unsupported_op");
    assert.equal(e.node, "weird_1");
    assert.equal(e.op, "NoSuchOp");
    assert.match(e.message, /Unsupported op 'NoSuchOp' at node 'weird_1'/);
  });
  await t.step("shape inference", () => {
    const g = build((m) => {
      const a = m.param("a", F32, [2, 3]);
      const b = m.param("b", F32, [4]);
      const [y] = m.node("Add", [a, b], {}, 1, "Add_7");
      m.ret([y], ["y"]);
    });
    const e = catchKiln(() => compiled(g));
    assert.equal(e.code, "shape");
    assert.equal(e.node, "Add_7");
    assert.match(e.message, /^Shape inference failed at node 'Add_7' \(Add\): /);
    assert.equal(e.shapes, "float32[2,3], float32[4]");
    assert.equal(e.diagnostics.length, 1);
  });
  await t.step("shape input that is not a constant", () => {
    const g = build((m) => {
      const x = m.param("x", F32, [2, 3]);
      const s = m.param("s", I64, [1]);
      const [y] = m.node("Reshape", [x, s], {}, 1, "Reshape_12");
      m.ret([y], ["y"]);
    });
    const e = catchKiln(() => compiled(g));
    assert.equal(e.code, "needs_constant");
    assert.match(
      e.message,
      /node 'Reshape_12' \(Reshape\).*input 1 \(shape\) must be a compile-time constant/,
    );
  });
  await t.step("a malformed encoding is a graph error, never a trap", () => {
    const g = build((m) => {
      const x = m.param("x", F32, [2]);
      const [y] = m.node("Relu", [x], {}, 1, "relu");
      m.ret([y], ["y"]);
    });
    const bytes = g.encode();
    for (const cut of [3, 20, bytes.length - 5, bytes.length - 1]) {
      const e = catchKiln(() => compile(rawModel(g, bytes.slice(0, cut))));
      assert.equal(e.code, "graph", `cut at ${cut}: ${e.message}`);
      assert.match(e.message, /Bad encoding/);
    }
    const bad = bytes.slice();
    bad[0] ^= 0xff;
    assert.match(catchKiln(() => compile(rawModel(g, bad))).message, /magic/);
    // flipped bytes anywhere: a clean error or a program, never an internal error
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
    for (let k = 0; k < 300; k++) {
      const f = bytes.slice();
      for (let j = 0; j < 1 + rand(3); j++) f[rand(f.length)] = rand(256);
      try {
        compile(rawModel(g, f)).dispose();
      } catch (e) {
        assert.ok(e instanceof KilnError && e.code !== "internal", `flip ${k}: ${e}`);
      }
    }
  });
  await t.step("a failing kernel at run time", async () => {
    const g = build((m) => {
      const data = m.literal("data", { dtype: F32, dims: [3], bytes: f32Bytes([1, 2, 3]) });
      const idx = m.param("idx", I64, [1]);
      const [y] = m.node("Gather", [data, idx], { axis: { i: 0 } }, 1, "Gather_3");
      m.ret([y], ["y"]);
    });
    const p = compiled(g);
    const ok = await run(p, { idx: { dtype: "int64", dims: [1], data: new BigInt64Array([2n]) } });
    assert.deepEqual(Array.from(ok.y.data as Float32Array), [3]);
    await assert.rejects(
      run(p, { idx: { dtype: "int64", dims: [1], data: new BigInt64Array([7n]) } }),
      (e: KilnError) => e.code === "runtime" && e.node === "Gather_3",
    );
    // the program keeps working after a run-time error
    const again = await run(p, { idx: { dtype: "int64", dims: [1], data: new BigInt64Array([0n]) } });
    assert.deepEqual(Array.from(again.y.data as Float32Array), [1]);
    p.dispose();
  });
});

Deno.test("Program.eval() checks input names, dtypes and dims", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2, 2]);
    const [y] = m.node("Relu", [x], {}, 1, "relu");
    m.ret([y], ["y"]);
  });
  const p = compiled(g);
  const check = (inputs: Record<string, Tensor>, re: RegExp) =>
    assert.rejects(
      run(p, inputs),
      (e: KilnError) => e instanceof KilnError && e.code === "input" && re.test(e.message),
    );
  await check({}, /missing input 'x' \(float32\[2,2\]\)/);
  await check({ x: f32([4], [1, 2, 3, 4]) }, /input 'x' is float32\[4\], expected float32\[2,2\]/);
  await check({ x: { dtype: "int32", dims: [2, 2], data: new Int32Array(4) } }, /input 'x' is int32\[2,2\]/);
  await check({ x: f32([2, 2], [1, 2, 3]) }, /input 'x' has 12 bytes of data, float32\[2,2\] needs 16/);
  await check({ x: f32([2, 2], [1, 2, 3, 4]), z: f32([1], [0]) }, /unknown input 'z' \(inputs: 'x'\)/);
  p.dispose();
  assert.throws(() => p.info().inputs && p.serialize(), (e: KilnError) => e.code === "disposed");
});

Deno.test("Program.serialize() and deserializeProgram() round-trip without re-running passes", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2, 2]);
    const big = m.hostLiteral("big", F32, [2, 2], 0);
    const small = m.literal("small", { dtype: F32, dims: [2], bytes: f32Bytes([100, 200]) });
    const [a] = m.node("Add", [x, big], {}, 1, "add");
    const [b] = m.node("Add", [a, small], {}, 1, "add2");
    const [c] = m.node("Identity", [b], {}, 1, "id");
    m.ret([c], ["y"]);
  });
  const hostLiterals: HostLiteral[] = [{
    name: "big",
    dtype: "float32",
    dims: [2, 2],
    bytes: f32Bytes([1, 2, 3, 4]),
  }];
  const p = compiled(g, { timings: true }, hostLiterals);
  assert.deepEqual(p.passTimings.map((t) => t.pass), [
    "eliminate_identity",
    "fold_constants",
    "cse",
    "pack_gemm_weights",
    "dce",
    "fuse_elementwise",
    "hoist_prepare",
    "memory_plan",
  ]);
  assert.deepEqual(p.passTimings.map((t) => t.pass), [...REF_PASSES], "REF_PASSES names the pipeline");
  const x = f32([2, 2], [0, 0, 1, 1]);
  const want = Array.from((await run(p, { x })).y.data as Float32Array);
  assert.deepEqual(want, [101, 202, 104, 205]);
  const { ir, hostLiterals: lits } = p.serialize();
  assert.equal(lits.length, 1);
  const q = deserializeProgram(ir, lits, "ref");
  assert.deepEqual(q.info().passes, p.info().passes);
  assert.equal(q.info().instructionCount, p.info().instructionCount);
  assert.deepEqual(q.outputs, p.outputs);
  assert.deepEqual(Array.from((await run(q, { x })).y.data as Float32Array), want);
  // serializing the loaded program gives the same bytes
  assert.deepEqual(q.serialize().ir, ir);
  const short = catchKiln(() => deserializeProgram(ir, [{ ...lits[0], bytes: new Uint8Array(3) }]));
  assert.equal(short.code, "format");
  assert.match(short.message, /Literal 'big' has 3 bytes/);
  const corrupt = ir.slice(0, ir.length - 7);
  assert.equal(catchKiln(() => deserializeProgram(corrupt, lits)).code, "format");
  p.dispose();
  q.dispose();
});

Deno.test("hoist_prepare is the one pass that marks prepare work: disabled, nothing is hoisted and results agree", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [3, 2]);
    const w = m.externalWeights("w", F32, [2, 3], {
      location: "m.data",
      offset: 0,
      length: 24,
      checksum: "",
    });
    const [wt] = m.node("Transpose", [w], { perm: { ints: [1, 0] } }, 1, "transpose_w");
    const [xw] = m.node("Mul", [x, wt], {}, 1, "mul_x"); // reads an input: never hoisted
    const [y] = m.node("Neg", [xw], {}, 1, "neg");
    m.ret([y], ["y"]);
  });
  const on = compiled(g);
  const off = compiled(g, { disablePasses: ["hoist_prepare"] });
  assert.equal(on.info().prepareCount, 1, "only the weight's Transpose");
  assert.equal(off.info().prepareCount, 0);
  const x = f32([3, 2], [1, 2, 3, 4, 5, 6]);
  for (const p of [on, off]) await p.setWeights({ w: f32([2, 3], [1, 0, 2, 0, 3, 1]) });
  assert.deepEqual((await run(on, { x })).y.data, (await run(off, { x })).y.data);
  assert.equal(programInternals(on).lastPrepareNodes, 1);
  assert.equal(programInternals(off).lastPrepareNodes, 0);
  on.dispose();
  off.dispose();
});

Deno.test("memory_plan hoists weight-only work into prepare, rerun after each bind", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [3, 2]);
    const w = m.externalWeights("w", F32, [2, 3], {
      location: "m.data",
      offset: 0,
      length: 24,
      checksum: "",
    });
    const [wt] = m.node("Transpose", [w], { perm: { ints: [1, 0] } }, 1, "transpose_w");
    const [wn] = m.node("Neg", [wt], {}, 1, "neg_w");
    const [y] = m.node("Add", [x, wn], {}, 1, "add");
    m.ret([y], ["y"]);
  });
  const p = compiled(g);
  assert.equal(p.info().prepareCount, 2);
  const x = f32([3, 2], [0, 0, 0, 0, 0, 0]);
  await p.setWeights({ w: f32([2, 3], [1, 2, 3, 4, 5, 6]) });
  assert.deepEqual(Array.from((await run(p, { x })).y.data as Float32Array), [-1, -4, -2, -5, -3, -6]);
  assert.deepEqual(
    Array.from((await run(p, { x: f32([3, 2], [1, 1, 1, 1, 1, 1]) })).y.data as Float32Array),
    [
      0,
      -3,
      -1,
      -4,
      -2,
      -5,
    ],
  );
  await p.setWeights({ w: f32([2, 3], [0, 0, 0, 0, 0, 1]) });
  assert.deepEqual(Array.from((await run(p, { x })).y.data as Float32Array).map((v) => v + 0), [
    0,
    0,
    0,
    0,
    0,
    -1,
  ]);
  p.dispose();
});

Deno.test("Program.bake() turns weights into literals in a copy", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2]);
    const w = m.externalWeights("w", F32, [2], { location: "m.data", offset: 0, length: 8, checksum: "" });
    const v = m.externalWeights("v", F32, [2], { location: "m.data", offset: 8, length: 8, checksum: "" });
    const [a] = m.node("Mul", [x, w], {}, 1, "mul");
    const [y] = m.node("Add", [a, v], {}, 1, "add");
    m.ret([y], ["y"]);
  });
  const p = compiled(g);
  const x = f32([2], [1, 2]);
  const { ir, hostLiterals } = p.bake({ w: f32([2], [10, 100]) });
  assert.deepEqual(hostLiterals.map((l) => l.name), ["w"]);
  const baked = deserializeProgram(ir, hostLiterals);
  assert.deepEqual(baked.weights.map((w) => w.name), ["v"]);
  assert.equal(baked.info().literalCount, 1);
  await baked.setWeights({ v: f32([2], [0.5, 0.5]) });
  assert.deepEqual(Array.from((await run(baked, { x })).y.data as Float32Array), [10.5, 200.5]);
  // the template keeps both weights deferred
  assert.deepEqual(p.weights.map((w) => w.name), ["w", "v"]);
  await p.setWeights({ w: f32([2], [1, 1]), v: f32([2], [0, 0]) });
  assert.deepEqual(Array.from((await run(p, { x })).y.data as Float32Array), [1, 2]);
  assert.equal(catchKiln(() => p.bake({ w: f32([3], [1, 2, 3]) })).code, "weights");
  p.dispose();
  baked.dispose();
});

Deno.test("Program recovers on a fresh instance after a trap in the core", async () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2]);
    const w = m.externalWeights("w", F32, [2], { location: "w.bin", offset: 0, length: 8, checksum: "" });
    const [y] = m.node("Mul", [x, w], {}, 1, "mul");
    m.ret([y], ["y"]);
  });
  const p = compiled(g);
  const w = f32([2], [3, 4]);
  await p.setWeights({ w });
  (w.data as Float32Array).fill(-1); // the program keeps no host copy: this must not leak in
  const e = catchKiln(() => programInternals(p).debugTrap());
  assert.equal(e.code, "internal");
  const out = await run(p, { x: f32([2], [1, 2]) });
  assert.deepEqual(Array.from(out.y.data as Float32Array), [3, 8], "the bound weights survive the trap");
  const r = await p.bindWeights({ w: new Float32Array([3, 4]) });
  assert.deepEqual([r.copied, r.skipped], [0, 1], "the same bytes are not copied again");
  p.dispose();
});

Deno.test("compile refuses unknown pass names in disablePasses, naming the pipeline", () => {
  const g = build((m) => {
    const x = m.param("x", F32, [2]);
    const [y] = m.node("Relu", [x], {}, 1, "relu");
    m.ret([y], ["y"]);
  });
  const e = catchKiln(() => compiled(g, { disablePasses: ["cse", "pack_weights"] }));
  assert.equal(e.code, "options");
  assert.match(
    e.message,
    /Unknown pass 'pack_weights' in disablePasses \(the ref pipeline: eliminate_identity, /,
  );
});

Deno.test("running out of the core's memory is a 'memory' error, not an internal one", async (t) => {
  await t.step("a buffer over the allocator's 1 GiB limit", () => {
    const engine = new Engine();
    const e = catchKiln(() => engine.call("finalize", () => engine.exports.alloc(2 ** 30 + 4096)));
    assert.equal(e.code, "memory");
    assert.match(e.message, /Out of memory during finalize: a single buffer over 1.07 GB \(2\^30 bytes\)/);
    assert.ok(engine.broken);
  });
  await t.step("the 4 GiB address space (memory is reserved, not touched)", () => {
    const engine = new Engine();
    let e: KilnError | undefined;
    for (let i = 0; i < 8 && !e; i++) {
      try {
        engine.call("finalize", () => engine.exports.alloc(2 ** 30 - 2 ** 20));
      } catch (err) {
        e = err as KilnError;
      }
    }
    assert.ok(e instanceof KilnError, "allocating 8 GiB must fail");
    assert.equal(e.code, "memory");
    assert.match(
      e.message,
      /Out of memory during finalize: .* GB of WebAssembly memory in use .* 4.29 GB \(2\^32 bytes\)/,
    );
  });
});
