// pack_gemm_weights: float32 MatMul / Gemm whose B depends only on weights read B packed once in
// the prepare step. Checked against a float64 reference and, bit for bit, against the same
// program compiled without the pass; on swapped weights, baked weights and a serialized program.
import assert from "node:assert/strict";
import { GraphBuilder, type ModuleBuilder } from "../core/ir/builder.ts";
import type { HostLiteral, ParsedModel } from "../core/onnx/import.ts";
import { compile, type CompileOptions, deserializeProgram, type Program } from "../core/program.ts";
import type { Tensor } from "../core/tensor.ts";
import { SeededRandom } from "../core/weights/random.ts";
import { programInternals } from "../core/program.ts";

const F32 = 1;
const PASS = "pack_gemm_weights";

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed);
  return Float32Array.from({ length: n }, () => 2 * rng.uniform() - 1);
}

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function model(fn: (m: ModuleBuilder) => void, hostLiterals: HostLiteral[]): ParsedModel {
  const g = new GraphBuilder(18);
  fn(g.main);
  return {
    graph: g,
    hostLiterals,
    inputs: [],
    outputs: [],
    opset: 18,
    fixedWeights: [],
    deferredWeights: [],
  };
}

function both(pm: () => ParsedModel, options: CompileOptions = {}): [Program, Program] {
  return [
    compile(pm(), "ref", options),
    compile(pm(), "ref", { ...options, disablePasses: [PASS] }),
  ];
}

/** y[M x N] = alpha * op(A) * op(B) + beta * bias[N], in float64. */
function reference(
  a: Float32Array,
  b: Float32Array,
  M: number,
  N: number,
  K: number,
  o: { tA?: boolean; tB?: boolean; alpha?: number; beta?: number; bias?: Float32Array } = {},
): Float64Array {
  const y = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) {
        s += a[o.tA ? p * M + i : i * K + p] * b[o.tB ? j * K + p : p * N + j];
      }
      y[i * N + j] = (o.alpha ?? 1) * s + (o.bias ? (o.beta ?? 1) * o.bias[j] : 0);
    }
  }
  return y;
}

function assertClose(got: Float32Array, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length, what);
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  const rel = Math.sqrt(num / den);
  assert.ok(rel < 1e-6, `${what}: relative L2 error ${rel}`);
}

async function out(p: Program, inputs: Record<string, Tensor>, name = "y"): Promise<Float32Array> {
  return (await p.eval(inputs))[name].data as Float32Array;
}

// Shapes that cross every blocking edge of kernels/gemm.ts: K > KC (256) with K - KC not a multiple
// of 4 (the packing's 4-wide transposes), N > NC (2048) and not a multiple of NR (8), M not a
// multiple of MR (6).
const M = 7, K = 302, N = 2051;

Deno.test("pack_gemm_weights: MatMul with a weight B, and with a Transpose of a weight, shared by two nodes", async () => {
  const w = values(K * N, 1); // W [K, N]
  const v = values(N * K, 2); // V [N, K], read as V^T
  const x = values(2 * M * K, 3);
  const pm = () =>
    model((m) => {
      const xv = m.param("x", F32, [2, M, K]);
      const wv = m.hostLiteral("W", F32, [K, N], 0);
      const vv = m.hostLiteral("V", F32, [N, K], 1);
      const [vt] = m.node("Transpose", [vv], { perm: { ints: [1, 0] } }, 1, "/lm_head/Transpose");
      const [y] = m.node("MatMul", [xv, wv], {}, 1, "/fc/MatMul");
      const [z] = m.node("MatMul", [xv, vt], {}, 1, "/lm_head/MatMul");
      const [r] = m.node("Relu", [xv], {}, 1, "/relu");
      const [z2] = m.node("MatMul", [r, vt], {}, 1, "/lm_head2/MatMul");
      m.ret([y, z, z2], ["y", "z", "z2"]);
    }, [
      { name: "W", dtype: "float32", dims: [K, N], bytes: bytes(w) },
      { name: "V", dtype: "float32", dims: [N, K], bytes: bytes(v) },
    ]);
  const [p, q] = both(pm);
  const ops = p.info().ops;
  assert.equal(ops["kiln.gemm_packed_b"], 3, JSON.stringify(ops));
  assert.equal(ops["kiln.pack_gemm_b"], 2, `one packing per weight: ${JSON.stringify(ops)}`);
  assert.equal(ops["Transpose"], undefined, `the Transpose folds into the packing: ${JSON.stringify(ops)}`);
  assert.equal(ops["MatMul"], undefined);
  assert.equal(q.info().ops["MatMul"], 3);
  assert.ok(p.info().prepareCount >= 2, "the packings run in the prepare step");

  const inputs = { x: { dtype: "float32" as const, dims: [2, M, K], data: x } };
  const [py, qy] = [await out(p, inputs), await out(q, inputs)];
  assert.deepEqual(py, qy, "packed and unpacked B give the same bits");
  assertClose(py, reference(x, w, 2 * M, N, K), "x * W");
  assertClose(await out(p, inputs, "z"), reference(x, v, 2 * M, N, K, { tB: true }), "x * V^T");
  const rx = x.map((e) => Math.max(e, 0));
  assertClose(await out(p, inputs, "z2"), reference(rx, v, 2 * M, N, K, { tB: true }), "relu(x) * V^T");
  for (const name of ["z", "z2"]) assert.deepEqual(await out(p, inputs, name), await out(q, inputs, name));
  p.dispose();
  q.dispose();
});

Deno.test("pack_gemm_weights: Gemm with transA, transB, alpha, beta and a bias", async (t) => {
  const a = values(K * M, 4); // A [K, M] read as A^T
  const b = values(N * K, 5); // B [N, K] read as B^T
  const bias = values(N, 6);
  for (const [tA, tB] of [[false, false], [true, true], [false, true]]) {
    await t.step(`transA=${+tA} transB=${+tB}`, async () => {
      const pm = () =>
        model((m) => {
          const av = m.param("a", F32, tA ? [K, M] : [M, K]);
          const bv = m.hostLiteral("B", F32, tB ? [N, K] : [K, N], 0);
          const cv = m.hostLiteral("C", F32, [N], 1);
          const attrs = { transA: { i: +tA }, transB: { i: +tB }, alpha: { f: 0.5 }, beta: { f: -2 } };
          const [y] = m.node("Gemm", [av, bv, cv], attrs, 1, "/classifier/Gemm");
          m.ret([y], ["y"]);
        }, [
          { name: "B", dtype: "float32", dims: tB ? [N, K] : [K, N], bytes: bytes(b) },
          { name: "C", dtype: "float32", dims: [N], bytes: bytes(bias) },
        ]);
      const [p, q] = both(pm);
      assert.equal(p.info().ops["kiln.gemm_packed_b"], 1);
      const inputs = { a: { dtype: "float32" as const, dims: tA ? [K, M] : [M, K], data: a } };
      const py = await out(p, inputs);
      assert.deepEqual(py, await out(q, inputs));
      assertClose(py, reference(a, b, M, N, K, { tA, tB, alpha: 0.5, beta: -2, bias }), "Gemm");
      p.dispose();
      q.dispose();
    });
  }
});

Deno.test("pack_gemm_weights leaves single-row products and products of activations alone", async () => {
  const w = values(8 * 4, 7);
  const x = values(8, 8);
  const x2 = values(3 * 8, 9);
  const p = compile(
    model((m) => {
      const xv = m.param("x", F32, [1, 8]);
      const x2v = m.param("x2", F32, [3, 8]);
      const wv = m.hostLiteral("W", F32, [8, 4], 0);
      const [y] = m.node("MatMul", [xv, wv], {}, 1, "/row/MatMul");
      const [x2t] = m.node("Transpose", [x2v], { perm: { ints: [1, 0] } }, 1, "/act/Transpose");
      const [z] = m.node("MatMul", [x2v, x2t], {}, 1, "/act/MatMul");
      m.ret([y, z], ["y", "z"]);
    }, [{ name: "W", dtype: "float32", dims: [8, 4], bytes: bytes(w) }]),
    "ref",
  );
  const ops = p.info().ops;
  assert.equal(ops["MatMul"], 2, JSON.stringify(ops));
  assert.equal(ops["kiln.pack_gemm_b"], undefined);
  const o = await p.eval({
    x: { dtype: "float32", dims: [1, 8], data: x },
    x2: { dtype: "float32", dims: [3, 8], data: x2 },
  });
  assertClose(o.y.data as Float32Array, reference(x, w, 1, 4, 8), "x * W");
  assertClose(o.z.data as Float32Array, reference(x2, x2, 3, 3, 8, { tB: true }), "x2 * x2^T");
  p.dispose();
});

/** y = x * W^T + b with deferred W [N, K] (a Linear layer as Gemm transB=1) and deferred b. */
function linearModel(): ParsedModel {
  return model((m) => {
    const xv = m.param("x", F32, [M, K]);
    const ref = (offset: number, length: number) => ({
      location: "linear.bin",
      offset,
      length,
      checksum: "",
    });
    const wv = m.externalWeights("W", F32, [N, K], ref(0, N * K * 4));
    const bv = m.externalWeights("b", F32, [N], ref(N * K * 4, N * 4));
    const [y] = m.node("Gemm", [xv, wv, bv], { transB: { i: 1 } }, 1, "/linear/Gemm");
    m.ret([y], ["y"]);
  }, []);
}

Deno.test("pack_gemm_weights on deferred weights: every swap re-packs; bake and serialize keep the packing", async (t) => {
  const x = values(M * K, 10);
  const inputs = { x: { dtype: "float32" as const, dims: [M, K], data: x } };
  const sets = [1, 2].map((seed) => ({
    W: { dtype: "float32" as const, dims: [N, K], data: values(N * K, 100 + seed) },
    b: { dtype: "float32" as const, dims: [N], data: values(N, 200 + seed) },
  }));
  const want = sets.map((s) => reference(x, s.W.data, M, N, K, { tB: true, bias: s.b.data }));
  const [p, q] = both(linearModel);
  assert.equal(p.info().ops["kiln.pack_gemm_b"], 1);

  await t.step("bind v1, swap to v2, swap back: each eval reads the packing of the bound W", async () => {
    for (const k of [0, 1, 0]) {
      await p.setWeights(sets[k]);
      await q.setWeights(sets[k]);
      const py = await out(p, inputs);
      assertClose(py, want[k], `weight set v${k + 1}`);
      assert.deepEqual(py, await out(q, inputs));
    }
  });

  await t.step("a partial swap re-runs only the prepare work of the weights it changed", async () => {
    await p.setWeights({ W: sets[1].W });
    const mixed = reference(x, sets[1].W.data, M, N, K, { tB: true, bias: sets[0].b.data });
    assertClose(await out(p, inputs), mixed, "W of v2, b of v1");
    // W is read only by its packing: packed only, packed by the bind itself (no prepare work left)
    assert.equal(programInternals(p).lastPrepareNodes, 0, "W was packed by the bind");
    await p.setWeights({ b: sets[1].b });
    assertClose(await out(p, inputs), want[1], "b of v2 too");
    assert.equal(programInternals(p).lastPrepareNodes, 0, "b feeds no prepare work");
    await out(p, inputs);
    assert.equal(programInternals(p).lastPrepareNodes, 0, "nothing to prepare without a bind");
  });

  await t.step("baked v2 runs the packing at finalize", async () => {
    const { ir, hostLiterals } = p.bake(sets[1]);
    const baked = deserializeProgram(ir, hostLiterals, "ref");
    assert.equal(baked.weights.length, 0);
    assert.equal(baked.info().ops["kiln.pack_gemm_b"], 1);
    assertClose(await out(baked, inputs), want[1], "baked v2");
    baked.dispose();
  });

  await t.step("a serialized program with the packing decodes and runs", async () => {
    const { ir, hostLiterals } = p.serialize();
    const r = deserializeProgram(ir, hostLiterals, "ref");
    await r.setWeights(sets[0]);
    assertClose(await out(r, inputs), want[0], "round-tripped, v1");
    r.dispose();
  });
  p.dispose();
  q.dispose();
});

Deno.test("incremental prepare follows chains of weight-only nodes", async () => {
  const k = 16, n = 24, m = 4;
  const x = values(m * k, 20);
  const sets = [1, 2].map((seed) => ({
    W: { dtype: "float32" as const, dims: [k, n], data: values(k * n, 300 + seed) },
    V: { dtype: "float32" as const, dims: [k, n], data: values(k * n, 400 + seed) },
  }));
  const p = compile(
    model((mb) => {
      const xv = mb.param("x", F32, [m, k]);
      const ref = (offset: number) => ({ location: "w.bin", offset, length: k * n * 4, checksum: "" });
      const wv = mb.externalWeights("W", F32, [k, n], ref(0));
      const vv = mb.externalWeights("V", F32, [k, n], ref(k * n * 4));
      const two = mb.literal("two", { dtype: F32, dims: [], bytes: bytes(new Float32Array([2])) });
      const [w2] = mb.node("Mul", [wv, two], {}, 1, "/scale_w"); // weight-only: prepare
      const [y] = mb.node("MatMul", [xv, w2], {}, 1, "/w/MatMul"); // packs w2: prepare
      const [z] = mb.node("MatMul", [xv, vv], {}, 1, "/v/MatMul"); // packs V: prepare
      mb.ret([y, z], ["y", "z"]);
    }, []),
    "ref",
  );
  const inputs = { x: { dtype: "float32" as const, dims: [m, k], data: x } };
  await p.setWeights(sets[0]);
  await out(p, inputs);
  // V is read only by its packing: packed only, packed by the bind itself, never by the prepare step
  assert.equal(programInternals(p).lastPrepareNodes, 2, "after the first bind W's scale and its packing run");
  await p.setWeights({ W: sets[1].W });
  const y = await out(p, inputs);
  assert.equal(
    programInternals(p).lastPrepareNodes,
    2,
    "W's scale and its packing rerun",
  );
  assertClose(y, reference(x, sets[1].W.data.map((e) => 2 * e), m, n, k), "2 W of v2");
  assertClose(await out(p, inputs, "z"), reference(x, sets[0].V.data, m, n, k), "V of v1 still");
  await p.setWeights({ V: sets[1].V });
  assertClose(await out(p, inputs, "z"), reference(x, sets[1].V.data, m, n, k), "V of v2");
  assert.equal(programInternals(p).lastPrepareNodes, 0, "V's packing was done by the bind");
  p.dispose();
});
