// Dynamic programs (core/dynamic.ts, wasm/exec/share.ts): a GPT-2-like block compiled once with
// a symbolic sequence length, its weights bound once, evaluated at several lengths against
// fixed-shape programs and onnxruntime-node; a weight swap seen at two lengths; save/load of the
// symbolic program; out-of-range dims; and an If whose branches differ in shape, specialized on
// the graph inputs that decide it, against onnxruntime both ways.
import assert from "node:assert/strict";
import { compile, KilnError, load, parseOnnx, save, WeightSet } from "../mod.ts";
import { buildModel, type GraphSpec } from "../core/onnx/writer.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { runOrt } from "./util/ort.ts";
import { assertMatch } from "./util/tensors.ts";
import { gpt } from "./util/zoo_transformers.ts";
import { MODE_SR_MODEL as MODEL, modeSrFeeds as feeds } from "./util/zoo_control_flow.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";
import { programInternals } from "../core/program.ts";
import { runCli } from "./util/cli.ts";
import { readNpy, writeNpy } from "../core/npy.ts";

const RANGE = { min: 1, max: 16 };
const DIMS = { input_ids: [1, RANGE], attention_mask: [1, RANGE] };

function gptInputs(s: number): Record<string, Tensor> {
  return {
    input_ids: {
      dtype: "int64",
      dims: [1, s],
      data: BigInt64Array.from({ length: s }, (_, i) => BigInt((i * 7 + 3) % 32)),
    },
    attention_mask: { dtype: "int64", dims: [1, s], data: new BigInt64Array(s).fill(1n) },
  };
}

Deno.test("dynamic shapes: one GPT-2-like program, weights bound once, evaluated at several lengths", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_dyn_" });
  try {
    const m = await gpt(dir);
    const v2 = await writeRandomWeights(m.file.path, `${dir}/v2`, { seed: 9 });
    const program = compile(
      await parseOnnx(m.file.path, { inputDims: DIMS, deferExternalWeights: true }),
      "ref",
    );
    try {
      await t.step("inputs report their ranges; outputs are known per eval", () => {
        const ids = program.inputs.find((v) => v.name === "input_ids")!;
        assert.deepEqual(ids.dims, [1, -1]);
        assert.deepEqual(ids.ranges, [null, RANGE]);
        assert.ok(program.outputs.every((o) => o.dims.every((d) => d === -1)));
      });
      const bind = await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
      assert.ok(bind.copied > 0);
      await t.step("each length matches a fixed-shape program and onnxruntime", async () => {
        for (const s of [1, 5, 16, 5, 9]) {
          const inputs = gptInputs(s);
          const got = await program.eval(inputs);
          assertMatch(got, await runOrt(m.file.path, inputs), `length ${s} vs onnxruntime`);
          const fixed = compile(
            await parseOnnx(m.file.path, { inputDims: { input_ids: [1, s], attention_mask: [1, s] } }),
            "ref",
          );
          try {
            assertMatch(got, await fixed.eval(inputs), `length ${s} vs the fixed-shape program`);
          } finally {
            fixed.dispose();
          }
        }
        const dyn = program.info().dynamic!;
        assert.deepEqual(dyn.keyed, []);
        const keys = dyn.specializations.map((s) => s.key);
        assert.equal(
          keys[0],
          "input_ids=1x2 attention_mask=1x2",
          "the root: the smallest length of at least 2",
        );
        assert.deepEqual(keys.slice(1).sort(), [
          "input_ids=1x1 attention_mask=1x1",
          "input_ids=1x16 attention_mask=1x16",
          "input_ids=1x5 attention_mask=1x5",
          "input_ids=1x9 attention_mask=1x9",
        ]);
        const five = dyn.specializations.find((s) => s.key.includes("1x5"))!;
        assert.equal(five.evals, 2, "the second eval at length 5 reuses its specialization");
        assert.ok(five.sharedPrepareNodes > 0, "the packed weights are the root's, not prepared again");
        assert.equal(
          five.sharedPrepareNodes,
          program.info().prepareCount,
          "every prepare output of the root is shared",
        );
      });
      await t.step(
        "a weight swap is seen at every length",
        async () => {
          const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
          assert.ok(r.copied > 0);
          for (const s of [5, 12]) {
            const inputs = gptInputs(s);
            assertMatch(await program.eval(inputs), await runOrt(v2.modelPath, inputs), `v2 at length ${s}`);
          }
        },
      );
      await t.step(
        "dims out of range, or a wrong fixed dim, are input errors naming input, dim and range",
        async () => {
          await assert.rejects(program.eval(gptInputs(17)), (e: unknown) => {
            assert.ok(e instanceof KilnError);
            assert.equal(e.code, "input");
            assert.match(e.message, /input 'input_ids' dim 1 is 17, outside its range 1\.\.16/);
            return true;
          });
          const bad = gptInputs(4);
          bad.input_ids = { dtype: "int64", dims: [2, 2], data: new BigInt64Array(4) };
          await assert.rejects(
            program.eval(bad),
            /input 'input_ids' is int64\[2,2\], expected int64\[1,1\.\.16\]/,
          );
        },
      );
      await t.step(
        "after a trap in the core, the root revives and the specializations are rebuilt",
        async () => {
          const before = await program.eval(gptInputs(6));
          assert.throws(() => programInternals(program).debugTrap());
          assertMatch(await program.eval(gptInputs(6)), before, "length 6 after a trap");
          assertMatch(
            await program.eval(gptInputs(2)),
            await runOrt(v2.modelPath, gptInputs(2)),
            "the root after a trap",
          );
        },
      );
      await t.step("baking a dynamic program is refused (it would fix the root's dims)", () => {
        assert.throws(() => program.bake({}), /Cannot bake weights into a dynamic program/);
      });
      await t.step("save/load keeps the symbolic program", async () => {
        const path = `${dir}/gpt.kiln`;
        await save(program, path);
        const back = await load(path, { weights: `${dir}/v2` });
        try {
          assert.deepEqual(back.inputs.find((v) => v.name === "input_ids")!.ranges, [null, RANGE]);
          for (const s of [3, 14]) {
            const inputs = gptInputs(s);
            assertMatch(await back.eval(inputs), await runOrt(v2.modelPath, inputs), `loaded, length ${s}`);
          }
        } finally {
          back.dispose();
        }
      });
      await t.step("the cache keeps `specializations` shapes, least recently used out", async () => {
        const small = compile(await parseOnnx(m.file.path, { inputDims: DIMS }), "ref", {
          specializations: 2,
        });
        try {
          for (const s of [3, 4, 5, 3]) {
            assertMatch(
              await small.eval(gptInputs(s)),
              await runOrt(m.file.path, gptInputs(s)),
              `cap 2, length ${s}`,
            );
          }
          const keys = small.info().dynamic!.specializations.map((x) => x.key);
          assert.deepEqual(keys, [
            "input_ids=1x2 attention_mask=1x2",
            "input_ids=1x5 attention_mask=1x5",
            "input_ids=1x3 attention_mask=1x3",
          ]);
        } finally {
          small.dispose();
        }
      });
      await t.step("a range on a dim the model fixes is refused, naming it", async () => {
        await assert.rejects(
          parseOnnx(MODEL, { inputDims: { x: [2, { min: 1, max: 8 }] } }),
          /inputDims for 'x' gives dim 1 the range 1\.\.8, but the model fixes it to 3/,
        );
      });
      await t.step("bad ranges are refused when parsing", async () => {
        await assert.rejects(
          parseOnnx(m.file.path, {
            inputDims: { input_ids: [1, { min: 4, max: 2 }], attention_mask: [1, 2] },
          }),
          /inputDims for 'input_ids' dim 1 must be a number or \{ min, max \}/,
        );
      });
    } finally {
      program.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln compile --dims NAME=1x1..16: one program file, run at two lengths, inspect shows the range", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_dyn_" });
  try {
    const m = await gpt(dir);
    const prog = `${dir}/gpt.kiln`;
    const comp = await runCli(
      "compile",
      m.file.path,
      "--dims",
      "input_ids=1x1..16",
      "--dims",
      "attention_mask=1x1..16",
      "-o",
      prog,
    );
    assert.equal(comp.code, 0, comp.stderr);
    for (const s of [4, 11]) {
      const inputs = gptInputs(s);
      for (const [name, t] of Object.entries(inputs)) await Deno.writeFile(`${dir}/${name}.npy`, writeNpy(t));
      const out = `${dir}/out_${s}`;
      const run = await runCli(
        "run",
        prog,
        "--input",
        `input_ids=${dir}/input_ids.npy`,
        "--input",
        `attention_mask=${dir}/attention_mask.npy`,
        "--output",
        out,
      );
      assert.equal(run.code, 0, run.stderr);
      const want = await runOrt(m.file.path, inputs);
      assertMatch(
        { logits: readNpy(await Deno.readFile(`${out}/logits.npy`)) },
        { logits: want.logits },
        `cli ${s}`,
      );
    }
    const inspect = await runCli("inspect", prog);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, /input_ids: int64\[1,1\.\.16\]/);
    const bad = await runCli("compile", m.file.path, "--dims", "input_ids=1x9..2", "-o", `${dir}/bad.kiln`);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /dim 1 of 'input_ids' is the range 9\.\.2; it needs MIN <= MAX/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dynamic shapes: the gpu target refuses a dynamic program with a clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_dyn_" });
  try {
    const m = await gpt(dir);
    const model = await parseOnnx(m.file.path, { inputDims: DIMS });
    assert.throws(() => compile(model, "gpu"), /Cannot run a dynamic program .*on the gpu target/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dynamic shapes: an If whose branches differ is specialized on the inputs that decide it", async () => {
  const program = compile(await parseOnnx(MODEL), "ref");
  try {
    assert.deepEqual(program.inputs.map((v) => v.name), ["x", "mode", "sr"]);
    for (const [mode, sr] of [[true, 16000], [true, 4000], [false, 16000], [true, 16000]] as const) {
      const got = await program.eval(feeds(mode, sr));
      assertMatch(got, await runOrt(MODEL, feeds(mode, sr)), `mode=${mode} sr=${sr}`);
    }
    const dyn = program.info().dynamic!;
    assert.deepEqual([...dyn.keyed].sort(), ["mode", "sr"]);
    assert.equal(dyn.specializations.length, 4, "root plus three specializations");
  } finally {
    program.dispose();
  }
  // asked not to specialize: the old refusal, naming the input to freeze
  await assert.rejects(
    (async () => compile(await parseOnnx(MODEL), "ref", { valueKeyed: false }))(),
    /depends on graph input '(mode|sr)'.*--freeze (mode|sr)=VALUE/,
  );
});

Deno.test("dynamic shapes: an If decided by a large input is still refused, naming the input to freeze", async () => {
  const model = buildModel({
    opset: 18,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [4, 8] }],
      outputs: [{ name: "y", dtype: "float32" }],
      initializers: [{ name: "zero", dtype: "float32", dims: [], data: [0] }],
      nodes: [
        { op: "ReduceSum", inputs: ["x"], outputs: ["s"], attrs: { keepdims: { i: 0 } } },
        { op: "Greater", inputs: ["s", "zero"], outputs: ["c"] },
        {
          op: "If",
          inputs: ["c"],
          outputs: ["y"],
          name: "big_if",
          attrs: {
            then_branch: {
              g: {
                name: "t",
                outputs: [{ name: "a", dtype: "float32" }],
                nodes: [{ op: "Identity", inputs: ["x"], outputs: ["a"] }],
              },
            },
            else_branch: {
              g: {
                name: "e",
                outputs: [{ name: "b", dtype: "float32" }],
                nodes: [{ op: "ReduceSum", inputs: ["x"], outputs: ["b"], attrs: { keepdims: { i: 0 } } }],
              },
            },
          },
        },
      ],
    },
  });
  await assert.rejects(
    (async () => compile(await parseOnnx(model), "ref"))(),
    (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, "needs_constant");
      assert.match(e.message, /big_if.*depends on graph input 'x'.*--freeze x=VALUE/);
      return true;
    },
  );
});

Deno.test("dynamic shapes: deferred weights used by one branch only are bound once and read by that branch's specialization", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_dyn_" });
  try {
    const g = new G(3);
    const wa = g.w("Wa", [3, 4]);
    const wb = g.w("Wb", [3, 2]);
    const branch = (name: string, w: string): GraphSpec => ({
      name,
      outputs: [{ name: `${name}_y`, dtype: "float32" }],
      nodes: [{ op: "MatMul", inputs: ["x", w], outputs: [`${name}_y`] }],
    });
    g.nodes.push({
      op: "If",
      inputs: ["mode"],
      outputs: ["y"],
      name: "mode_if",
      attrs: { then_branch: { g: branch("a", wa) }, else_branch: { g: branch("b", wb) } },
    });
    const file = await writeGraph(dir, "branchy", g, {
      inputs: [{ name: "x", dims: [2, 3] }, { name: "mode", dtype: "bool", dims: [] }],
      outputs: [{ name: "y" }],
      opset: 18,
    });
    const program = compile(await parseOnnx(file.path, { deferExternalWeights: true }), "ref");
    try {
      assert.deepEqual(
        program.weights.map((w) => w.name).sort(),
        ["Wa", "Wb"],
        "the root holds both branches' weights",
      );
      await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
      for (const mode of [true, false, true]) {
        const feeds = {
          x: { dtype: "float32" as const, dims: [2, 3], data: Float32Array.from([1, 2, 3, -1, 0.5, 2]) },
          mode: { dtype: "bool" as const, dims: [], data: Uint8Array.from([mode ? 1 : 0]) },
        };
        assertMatch(await program.eval(feeds), await runOrt(file.path, feeds), `mode=${mode}`);
      }
      await save(program, `${dir}/branchy.kiln`);
      const back = await load(`${dir}/branchy.kiln`, { weights: dir });
      try {
        for (const mode of [false, true]) {
          const feeds = {
            x: { dtype: "float32" as const, dims: [2, 3], data: Float32Array.from([0.5, -2, 1, 3, 1, -1]) },
            mode: { dtype: "bool" as const, dims: [], data: Uint8Array.from([mode ? 1 : 0]) },
          };
          assertMatch(await back.eval(feeds), await runOrt(file.path, feeds), `loaded, mode=${mode}`);
        }
      } finally {
        back.dispose();
      }
    } finally {
      program.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
