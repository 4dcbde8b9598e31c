// Elementwise fusion on the gpu target (tests/util/gpu.ts says which GPU): runs of float32
// elementwise nodes become one kernel each. A tanh-GELU chain with a broadcast bias, a value
// used after the chain (written by the fused kernel), a bool output, IsNaN + Where, and a
// Reshape of a chain value (an alias) must give the same bits as one kernel per node, and match
// the ref target. A Relu right after the Conv whose output only it reads is applied by the Conv's
// bias pass, with the same bits as the two kernels apart.
import assert from "node:assert/strict";
import { compile, parseOnnx, type Program } from "../mod.ts";
import { buildModel, type ModelSpec } from "../core/onnx/writer.ts";
import type { Tensor } from "../core/tensor.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";

const ignore = gpuIgnore("gpu_fusion_test.ts");
const GPU = gpuUnderTest();

/** The chain on x and m of `dims` (3-D); r is gz reshaped to 2-D. */
function _model(dims: number[]): ModelSpec {
  const scalar = (name: string, v: number) => ({ name, dtype: "float32" as const, dims: [], data: [v] });
  const bias = Array.from({ length: dims[2] }, (_, i) => 0.1 * i - 0.3);
  const rDims = [dims[0] * dims[1], dims[2]];
  return {
    opset: 17,
    graph: {
      inputs: [
        { name: "x", dtype: "float32", dims },
        { name: "m", dtype: "float32", dims },
      ],
      outputs: [
        { name: "y", dtype: "float32", dims },
        { name: "h", dtype: "float32", dims },
        { name: "big", dtype: "bool", dims },
        { name: "r", dtype: "float32", dims: rDims },
      ],
      initializers: [
        { name: "bias", dtype: "float32", dims: [dims[2]], data: bias },
        scalar("three", 3),
        scalar("c", 0.044715),
        scalar("k", 0.7978845608028654),
        scalar("one", 1),
        scalar("half", 0.5),
        scalar("zero", 0),
        { name: "shape", dtype: "int64", dims: [2], data: rDims.map(BigInt) },
      ],
      nodes: [
        { op: "Add", name: "bias_add", inputs: ["x", "bias"], outputs: ["h"] },
        { op: "Pow", name: "cube", inputs: ["h", "three"], outputs: ["h3"] },
        { op: "Mul", name: "scale_cube", inputs: ["h3", "c"], outputs: ["t1"] },
        { op: "Add", name: "inner", inputs: ["h", "t1"], outputs: ["t2"] },
        { op: "Mul", name: "scale_inner", inputs: ["t2", "k"], outputs: ["t3"] },
        { op: "Tanh", name: "tanh", inputs: ["t3"], outputs: ["t4"] },
        { op: "Add", name: "one_plus", inputs: ["t4", "one"], outputs: ["t5"] },
        { op: "Mul", name: "half_h", inputs: ["h", "half"], outputs: ["t6"] },
        { op: "Mul", name: "gelu", inputs: ["t6", "t5"], outputs: ["g"] },
        { op: "IsNaN", name: "isnan", inputs: ["g"], outputs: ["nan"] },
        { op: "Where", name: "where", inputs: ["nan", "zero", "g"], outputs: ["gz"] },
        { op: "Greater", name: "greater", inputs: ["h", "zero"], outputs: ["big"] },
        { op: "Mul", name: "times_m", inputs: ["gz", "m"], outputs: ["y"] },
        { op: "Reshape", name: "reshape", inputs: ["gz", "shape"], outputs: ["g2"] },
        { op: "Relu", name: "relu", inputs: ["g2"], outputs: ["r"] },
      ],
    },
  };
}

function _inputs(seed: number, dims: number[]): Record<string, Tensor> {
  const n = dims[0] * dims[1] * dims[2];
  const x = new Float32Array(n), m = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = 3 * Math.sin(i * 0.7 + seed);
    m[i] = Math.cos(i * 0.3 - seed);
  }
  x[5] = NaN; // IsNaN + Where turn it into 0
  return {
    x: { dtype: "float32", dims, data: x },
    m: { dtype: "float32", dims, data: m },
  };
}

Deno.test({
  name: `gpu target (${GPU.name}): fused elementwise kernels give the bits of one kernel per node`,
  ignore,
  async fn(t) {
    // 64 elements (whole groups of four per thread) and 105 (a partial last group)
    for (const dims of [[2, 4, 8], [3, 5, 7]]) {
      await t.step(`dims ${dims.join("x")}`, (t) => _check(t, dims));
    }
  },
});

async function _check(t: Deno.TestContext, dims: number[]): Promise<void> {
  {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_fusion_" });
    const programs: Program[] = [];
    try {
      await Deno.writeFile(`${dir}/model.onnx`, buildModel(_model(dims)));
      const model = await parseOnnx(`${dir}/model.onnx`);
      const fused = compile(model, "gpu", { gpu: GPU.options });
      const unfused = compile(model, "gpu", { gpu: { ...GPU.options, fusion: false } });
      const ref = compile(model, "ref");
      programs.push(fused, unfused, ref);

      await t.step("the chain runs as fused kernels; fusion off runs one kernel per node", () => {
        const f = fused.info().fusion!;
        assert.ok(f.nodes >= 12, `fused nodes ${f.nodes}`);
        // the chain up to Greater (12 nodes, 8 outside inputs); the last Mul would be a 9th input
        assert.equal(f.kernels, 1, `fused kernels ${f.kernels}`);
        assert.deepEqual(unfused.info().fusion, {
          nodes: 0,
          kernels: 0,
          transposes: 0,
          scalings: 0,
          epilogues: 0,
          residuals: 0,
        });
        assert.deepEqual(fused.info().hostNodes, []);
      });

      await t.step("outputs equal the unfused kernels bit for bit and match the ref target", async () => {
        for (const seed of [0, 1]) {
          const inputs = _inputs(seed, dims);
          const a = await fused.eval(inputs);
          const b = await unfused.eval(inputs);
          const want = await ref.eval(inputs);
          for (const name of ["y", "h", "big", "r"]) {
            assert.deepEqual(a[name].data, b[name].data, `${name}, seed ${seed}: fused vs unfused`);
            if (name === "h") {
              // the NaN of x stays in h: compare the rest
              const got = Array.from(a[name].data as Float32Array),
                exp = Array.from(want[name].data as Float32Array);
              assert.ok(Number.isNaN(got[5]) && Number.isNaN(exp[5]));
              got[5] = exp[5] = 0;
              const e = relativeL2(
                { dtype: "float32", dims: [64], data: new Float32Array(got) },
                { dtype: "float32", dims: [64], data: new Float32Array(exp) },
              );
              assert.ok(e <= 1e-6, `h, seed ${seed}: rel L2 ${e} against ref`);
              continue;
            }
            assert.ok(
              relativeL2(a[name], want[name]) <= 1e-6,
              `${name}, seed ${seed}: rel L2 ${relativeL2(a[name], want[name])} against ref`,
            );
          }
          const y = a["y"].data as Float32Array;
          assert.ok(y.every(Number.isFinite), "the NaN input became 0 through IsNaN and Where");
        }
      });

      await t.step("a profile names the fused kernel by its ops", async () => {
        const r = await fused.profile(_inputs(0, dims));
        const labels = r.nodes.map((n) => n.op).filter((op) => op.startsWith("Fused("));
        assert.ok(labels.length >= 1, `profile ops: ${r.nodes.map((n) => n.op).join(", ")}`);
        assert.equal(labels[0], "Fused(Add+Pow+Mul+Add+Mul+Tanh+Add+Mul+Mul+IsNaN+Where+Greater)");
      });
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  }
}

/** Outputs of the folded program within 1e-6 of the ref target's and of the program with fusion off. */
async function _foldedMatches(
  folded: Program,
  copied: Program,
  ref: Program,
  inputs: Record<string, Tensor>,
  names: string[],
): Promise<void> {
  const a = await folded.eval(inputs), c = await copied.eval(inputs), want = await ref.eval(inputs);
  for (const name of names) {
    const e = relativeL2(a[name], want[name]);
    assert.ok(e <= 1e-6, `${name}: rel L2 ${e} vs ref`);
    assert.ok(relativeL2(a[name], c[name]) <= 1e-6, `${name}: folded vs copied`);
  }
}

/** Attention's layout dance: heads transposed into two batched MatMuls and the result transposed back. */
function _attention(b: number): ModelSpec {
  const v = (name: string, dims: number[]) => ({ name, dtype: "float32" as const, dims });
  return {
    opset: 17,
    graph: {
      inputs: [v("q", [b, 6, 4, 8]), v("k", [b, 6, 4, 8]), v("v", [b, 6, 4, 8])],
      // qt is also an output: that Transpose stays a copy
      outputs: [v("y", [b, 6, 4, 8]), v("qt", [b, 4, 6, 8])],
      nodes: [
        {
          op: "Transpose",
          name: "tq",
          inputs: ["q"],
          outputs: ["qt"],
          attrs: { perm: { ints: [0, 2, 1, 3] } },
        },
        {
          op: "Transpose",
          name: "tk",
          inputs: ["k"],
          outputs: ["kt"],
          attrs: { perm: { ints: [0, 2, 3, 1] } },
        },
        {
          op: "Transpose",
          name: "tv",
          inputs: ["v"],
          outputs: ["vt"],
          attrs: { perm: { ints: [0, 2, 1, 3] } },
        },
        { op: "MatMul", name: "scores", inputs: ["qt", "kt"], outputs: ["s"] },
        { op: "Softmax", name: "softmax", inputs: ["s"], outputs: ["p"], attrs: { axis: { i: -1 } } },
        { op: "MatMul", name: "mix", inputs: ["p", "vt"], outputs: ["o"] },
        {
          op: "Transpose",
          name: "back",
          inputs: ["o"],
          outputs: ["y"],
          attrs: { perm: { ints: [0, 2, 1, 3] } },
        },
      ],
    },
  };
}

Deno.test({
  name: `gpu target (${GPU.name}): Transposes around attention's MatMuls fold into the GEMMs`,
  ignore,
  async fn(t) {
    // batch 1: each GEMM's batch is the heads, one strided call; batch 2: the batch and head
    // strides do not collapse into one, and a copy is cheaper than a call per batch index
    for (const [b, folds] of [[1, 3], [2, 0]]) {
      await t.step(`batch ${b}: ${folds} folded`, async () => {
        const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_fold_" });
        const programs: Program[] = [];
        try {
          await Deno.writeFile(`${dir}/model.onnx`, buildModel(_attention(b)));
          const model = await parseOnnx(`${dir}/model.onnx`);
          const folded = compile(model, "gpu", { gpu: GPU.options });
          const copied = compile(model, "gpu", { gpu: { ...GPU.options, fusion: false } });
          const ref = compile(model, "ref");
          programs.push(folded, copied, ref);
          assert.equal(
            folded.info().fusion!.transposes,
            folds,
            "k and v into the MatMuls, the result out of one",
          );
          const inputs: Record<string, Tensor> = {};
          ["q", "k", "v"].forEach((name, j) => {
            const data = new Float32Array(b * 6 * 4 * 8);
            for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + j) * (1 + j);
            inputs[name] = { dtype: "float32", dims: [b, 6, 4, 8], data };
          });
          await _foldedMatches(folded, copied, ref, inputs, ["y", "qt"]);
        } finally {
          for (const p of programs) p.dispose();
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
  },
});

/**
 * GPT-2's attention as torch.onnx exports it: one projection split into q, k and v, each reshaped
 * into heads and transposed; k through a second Transpose between Reshapes; q and k scaled by a
 * constant before the scores MatMul; the mix transposed back and reshaped.
 */
function _exportedAttention(s: number, h: number, d: number, scaleOutput: boolean): ModelSpec {
  const e = h * d;
  const v = (name: string, dims: number[]) => ({ name, dtype: "float32" as const, dims });
  const shape = (name: string, dims: number[]) => ({
    name,
    dtype: "int64" as const,
    dims: [dims.length],
    data: dims,
  });
  const t = (name: string, input: string, output: string, perm: number[]) => ({
    op: "Transpose",
    name,
    inputs: [input],
    outputs: [output],
    attrs: { perm: { ints: perm } },
  });
  const r = (name: string, input: string, to: string, output: string) => ({
    op: "Reshape",
    name,
    inputs: [input, to],
    outputs: [output],
  });
  return {
    opset: 17,
    graph: {
      inputs: [v("x", [1, s, 3 * e])],
      outputs: scaleOutput ? [v("y", [1, s, e]), v("qs", [1, h, s, d])] : [v("y", [1, s, e])],
      initializers: [
        shape("heads", [1, s, h, d]),
        shape("hsd", [h, s, d]),
        shape("khds", [1, h, d, s]),
        shape("back", [1, s, e]),
        { name: "c", dtype: "float32", dims: [], data: [1 / Math.sqrt(Math.sqrt(d))] },
      ],
      nodes: [
        { op: "Split", name: "split", inputs: ["x"], outputs: ["q0", "k0", "v0"], attrs: { axis: { i: 2 } } },
        r("rq", "q0", "heads", "q1"),
        t("tq", "q1", "q2", [0, 2, 1, 3]),
        { op: "Mul", name: "sq", inputs: ["q2", "c"], outputs: ["qs"] },
        r("rk", "k0", "heads", "k1"),
        t("tk", "k1", "k2", [0, 2, 1, 3]),
        r("rk2", "k2", "hsd", "k3"),
        t("tk2", "k3", "k4", [0, 2, 1]),
        r("rk3", "k4", "khds", "k5"),
        { op: "Mul", name: "sk", inputs: ["c", "k5"], outputs: ["ks"] },
        r("rv", "v0", "heads", "v1"),
        t("tv", "v1", "v2", [0, 2, 1, 3]),
        { op: "MatMul", name: "scores", inputs: ["qs", "ks"], outputs: ["sc"] },
        { op: "Softmax", name: "softmax", inputs: ["sc"], outputs: ["p"], attrs: { axis: { i: -1 } } },
        { op: "MatMul", name: "mix", inputs: ["p", "v2"], outputs: ["o"] },
        t("to", "o", "o2", [0, 2, 1, 3]),
        r("ro", "o2", "back", "y"),
      ],
    },
  };
}

Deno.test({
  name: `gpu target (${GPU.name}): exported attention's Transpose chains and scalings fold into the GEMMs`,
  ignore,
  async fn(t) {
    // q: one Transpose and its scaling; k: two Transposes through three Reshapes and its scaling;
    // v and the output: one Transpose each. With q's scaled value also a program output, q's chain
    // stays as it is (the Mul's output is read outside the chain).
    for (const [scaleOutput, transposes, scalings] of [[false, 5, 2], [true, 4, 1]] as const) {
      await t.step(
        `${
          scaleOutput ? "q's scaling is an output" : "all chains"
        }: ${transposes} Transposes and ${scalings} scalings folded`,
        async () => {
          const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_chain_" });
          const programs: Program[] = [];
          try {
            await Deno.writeFile(`${dir}/model.onnx`, buildModel(_exportedAttention(6, 3, 8, scaleOutput)));
            const model = await parseOnnx(`${dir}/model.onnx`);
            const folded = compile(model, "gpu", { gpu: GPU.options });
            const copied = compile(model, "gpu", { gpu: { ...GPU.options, fusion: false } });
            const ref = compile(model, "ref");
            programs.push(folded, copied, ref);
            const fusion = folded.info().fusion!;
            assert.equal(fusion.transposes, transposes, "Transposes folded");
            assert.equal(fusion.scalings, scalings, "scalings folded");
            const data = new Float32Array(6 * 72);
            for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.29) * 2;
            const inputs: Record<string, Tensor> = { x: { dtype: "float32", dims: [1, 6, 72], data } };
            // the scaling applied to the sum instead of to each operand: rounding differences only
            await _foldedMatches(folded, copied, ref, inputs, scaleOutput ? ["y", "qs"] : ["y"]);
          } finally {
            for (const p of programs) p.dispose();
            await Deno.remove(dir, { recursive: true });
          }
        },
      );
    }
  },
});

Deno.test({
  name: `gpu target (${GPU.name}): a Relu after a Conv is applied by the Conv, bit for bit`,
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_convrelu_" });
    const programs: Program[] = [];
    try {
      const g = new G(21);
      // conv -> relu (folded, biased, planes of 8 x 8: four a thread)
      const a = g.o("Relu", [g.o("Conv", ["x", g.w("w1", [6, 3, 3, 3]), g.w("b1", [6])], { pads: pads1 })]);
      // no bias, odd plane (7 x 7): the relu-only pass, one element a thread
      const b = g.o("Relu", [g.o("Conv", [a, g.w("w2", [5, 6, 2, 2])])]);
      // the Conv's output read twice: no fold
      const c1 = g.o("Conv", [b, g.w("w3", [4, 5, 1, 1]), g.w("b3", [4])]);
      const c = g.o("Add", [g.o("Relu", [c1]), c1]);
      const w = await writeGraph(dir, "convrelu", g, {
        inputs: [{ name: "x", dims: [2, 3, 8, 8] }],
        outputs: [{ name: a }, { name: b }, { name: c }],
        opset: 17,
      });
      const x: Tensor = {
        dtype: "float32",
        dims: [2, 3, 8, 8],
        data: Float32Array.from({ length: 384 }, (_, i) => Math.sin(i * 0.41) * 2),
      };
      const fused = compile(await parseOnnx(w.path), "gpu", { gpu: GPU.options });
      const plain = compile(await parseOnnx(w.path), "gpu", { gpu: { ...GPU.options, fusion: false } });
      const ref = compile(await parseOnnx(w.path), "ref");
      programs.push(fused, plain, ref);
      assert.equal(
        fused.info().fusion!.epilogues,
        2,
        "two Relus folded; the third's Conv output has two readers",
      );
      const got = await fused.eval({ x }), same = await plain.eval({ x }), want = await ref.eval({ x });
      for (const name of [a, b, c]) {
        assert.deepEqual(got[name].data, same[name].data, `${name}: as the Conv and Relu kernels apart`);
        assert.ok(relativeL2(got[name], want[name]) <= 1e-6, `${name} against the ref target`);
      }
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const pads1 = { ints: [1, 1, 1, 1] };
