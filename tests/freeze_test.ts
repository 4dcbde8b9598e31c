// `freeze` (parse option and `--freeze NAME=VALUE`): graph inputs fixed at compile time, and the
// If folding it enables (wasm/passes/fold_if.ts). The model has an If on a bool mode flag whose
// branches return different shapes, and inside the then branch a nested If on `sr > 8000`, also
// of different shapes; frozen each way, kiln's outputs match onnxruntime-node's on the original
// model fed the same values. Error cases: unknown names, wrong counts and types, and the compile
// error naming the input to freeze when the condition is left free.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { compile } from "../core/program.ts";
import { readNpy, writeNpy } from "../core/npy.ts";
import type { Tensor } from "../core/tensor.ts";
import { KilnError } from "../core/errors.ts";
import { runOrt } from "./util/ort.ts";
import { runCli } from "./util/cli.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { MODE_SR_MODEL as MODEL, MODE_SR_X as X, modeSrFeeds as _ortFeeds } from "./util/zoo_control_flow.ts";

async function _kiln(freeze: Record<string, number | boolean | bigint>): Promise<Tensor> {
  const program = compile(await parseOnnx(MODEL, { freeze }), "ref");
  try {
    const info = program.info();
    assert.deepEqual(info.inputs.map((v) => v.name), ["x"], "frozen inputs are no longer inputs");
    assert.equal(info.ops.If, undefined, "both Ifs are folded away");
    return (await program.eval({ x: X })).z;
  } finally {
    program.dispose();
  }
}

const CASES: { mode: boolean; sr: number; dims: number[] }[] = [
  { mode: true, sr: 16000, dims: [2] },
  { mode: true, sr: 4000, dims: [4] },
  { mode: false, sr: 16000, dims: [6] },
];

for (const c of CASES) {
  Deno.test(`freeze: mode=${c.mode}, sr=${c.sr} folds the Ifs to ${JSON.stringify(c.dims)}, as onnxruntime computes`, async () => {
    const want = (await runOrt(MODEL, _ortFeeds(c.mode, c.sr))).z;
    assert.deepEqual(want.dims, c.dims);
    const got = await _kiln({ mode: c.mode, sr: c.sr });
    assert.deepEqual(got.dims, want.dims);
    assert.deepEqual(Array.from(got.data as Float32Array), Array.from(want.data as Float32Array));
  });
}

Deno.test("freeze: mode=false drops the then branch, so sr need not be frozen", async () => {
  const program = compile(await parseOnnx(MODEL, { freeze: { mode: false } }), "ref");
  try {
    const z =
      (await program.eval({ x: X, sr: { dtype: "int64", dims: [1], data: BigInt64Array.from([1n]) } })).z;
    const want = (await runOrt(MODEL, _ortFeeds(false, 1))).z;
    assert.deepEqual(z.dims, [6]);
    assert.deepEqual(Array.from(z.data as Float32Array), Array.from(want.data as Float32Array));
  } finally {
    program.dispose();
  }
});

Deno.test("freeze: values given as 1/0, bigint, arrays and typed arrays", async () => {
  for (const sr of [16000n, [16000], BigInt64Array.from([16000n])] as const) {
    const program = compile(await parseOnnx(MODEL, { freeze: { mode: 1 as unknown as boolean, sr } }), "ref");
    try {
      assert.deepEqual((await program.eval({ x: X })).z.dims, [2]);
    } finally {
      program.dispose();
    }
  }
});

async function _parseError(opts: Parameters<typeof parseOnnx>[1]): Promise<KilnError> {
  try {
    // valueKeyed: false, the refusal (by default such an If specializes on the input: dynamic_shapes_test.ts)
    compile(await parseOnnx(MODEL, opts), "ref", { valueKeyed: false }).dispose();
  } catch (e) {
    assert.ok(e instanceof KilnError, String(e));
    return e;
  }
  throw new Error("expected an error");
}

Deno.test("freeze: an unfrozen condition whose branches differ names the input to freeze", async () => {
  const e = await _parseError({ freeze: { sr: 16000 } });
  assert.equal(e.code, "needs_constant");
  assert.match(e.message, /mode_if/);
  assert.match(e.message, /float32\[2\] in then_branch and float32\[6\] in else_branch/);
  assert.match(e.message, /depends on graph input 'mode'.*--freeze mode=VALUE/);
  const inner = await _parseError({ freeze: { mode: true } });
  assert.match(inner.message, /inner_if/);
  assert.match(inner.message, /graph input 'sr'/);
  const both = await _parseError({});
  assert.match(both.message, /freeze/);
});

Deno.test("freeze: bad names, counts and types are input errors naming the input", async () => {
  const cases: [Parameters<typeof parseOnnx>[1], RegExp][] = [
    [
      { freeze: { rate: 1 } },
      /freeze names 'rate', which is not a graph input \(inputs: 'x', 'mode', 'sr'\)/,
    ],
    [{ freeze: { sr: [1, 2] } }, /freeze 'sr' gives 2 values, the input int64\[1\] needs 1/],
    [{ freeze: { sr: 1.5 } }, /freeze 'sr' element 0 \(1.5\) is not an integer; the input is int64/],
    [{ freeze: { mode: 2 } }, /freeze 'mode' element 0 \(2\) must be true, false, 0 or 1/],
    [{ freeze: { mode: "yes" as unknown as boolean } }, /freeze 'mode' must be a number, bigint, boolean/],
    [
      {
        freeze: { sr: 1 },
        constantInputs: { sr: { dtype: "int64", dims: [1], data: BigInt64Array.from([1n]) } },
      },
      /'sr' is given both in freeze and in constantInputs/,
    ],
  ];
  for (const [opts, re] of cases) {
    const e = await _parseError(opts);
    assert.equal(e.code, "input", e.message);
    assert.match(e.message, re);
  }
});

Deno.test("kiln compile --freeze: the frozen program runs with `kiln run` and matches onnxruntime", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.onnx`, MODEL);
    await Deno.writeFile(`${dir}/x.npy`, writeNpy(X));
    for (const c of CASES) {
      const prog = `${dir}/m_${c.dims[0]}.kiln`;
      const comp = await runCli(
        "compile",
        `${dir}/m.onnx`,
        "--freeze",
        `mode=${c.mode}`,
        "--freeze",
        `sr=${c.sr}`,
        "-o",
        prog,
      );
      assert.equal(comp.code, 0, comp.stderr);
      const out = `${dir}/out_${c.dims[0]}`;
      const run = await runCli("run", prog, "--input", `x=${dir}/x.npy`, "--output", out);
      assert.equal(run.code, 0, run.stderr);
      const got = readNpy(await Deno.readFile(`${out}/z.npy`));
      const want = (await runOrt(MODEL, _ortFeeds(c.mode, c.sr))).z;
      assert.deepEqual(got.dims, want.dims);
      assert.deepEqual(Array.from(got.data as Float32Array), Array.from(want.data as Float32Array));
    }
    // mode left free: a dynamic program specialized on mode's value at run time (dynamic_shapes_test.ts)
    const free = await runCli("compile", `${dir}/m.onnx`, "--freeze", "sr=16000", "-o", `${dir}/free.kiln`);
    assert.equal(free.code, 0, free.stderr);
    const bad = await runCli("compile", `${dir}/m.onnx`, "--freeze", "mode", "-o", `${dir}/bad.kiln`);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Bad --freeze 'mode': expected NAME=VALUE/);
    const twice = await runCli(
      "compile",
      `${dir}/m.onnx`,
      "--freeze",
      "sr=1",
      "--freeze",
      "sr=2",
      "-o",
      `${dir}/b.kiln`,
    );
    assert.match(twice.stderr, /Input 'sr' is frozen twice/);
    const nan = await runCli("compile", `${dir}/m.onnx`, "--freeze", "sr=abc", "-o", `${dir}/b.kiln`);
    assert.match(nan.stderr, /Bad --freeze 'sr=abc': 'abc' is not a number, true or false/);
    const help = await runCli("compile", "--help");
    assert.match(help.stdout + help.stderr, /--freeze NAME=VALUE/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln perf --freeze compiles the frozen model", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.onnx`, MODEL);
    const r = await runCli(
      "perf",
      `${dir}/m.onnx`,
      "--freeze",
      "mode=true",
      "--freeze",
      "sr=16000",
      "--warmup",
      "0",
      "--iterations",
      "1",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    `gpu target (${gpuUnderTest().name}): the frozen model compiles with its Ifs folded and matches onnxruntime`,
  ignore: gpuIgnore("freeze_test.ts"),
  async fn() {
    for (const c of CASES) {
      const program = compile(await parseOnnx(MODEL, { freeze: { mode: c.mode, sr: c.sr } }), "gpu", {
        gpu: gpuUnderTest().options,
      });
      try {
        assert.equal(program.info().ops.If, undefined);
        const got = (await program.eval({ x: X })).z;
        const want = (await runOrt(MODEL, _ortFeeds(c.mode, c.sr))).z;
        assert.deepEqual(got.dims, want.dims);
        const g = got.data as Float32Array, w = want.data as Float32Array;
        for (let i = 0; i < w.length; i++) {
          assert.ok(Math.abs(g[i] - w[i]) <= 1e-6 * (1 + Math.abs(w[i])), `element ${i}`);
        }
      } finally {
        program.dispose();
      }
    }
  },
});
