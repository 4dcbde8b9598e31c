// The model zoo (tests/util/zoo*.ts) through kiln's CLI: compile, run, defer, bake, compared with
// onnxruntime-node; and the CLI's messages on bad models.
import assert from "node:assert/strict";
import type { Tensor } from "../core/tensor.ts";
import { readNpyFile, writeNpyFile } from "../core/npy.ts";
import { runOrt } from "./util/ort.ts";
import { runCli } from "./util/cli.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";
import { assertMatch } from "./util/tensors.ts";
import type { ZooCase } from "./util/zoo.ts";
import { mobilenet, unet } from "./util/zoo_cnn.ts";
import { encoder, gpt } from "./util/zoo_transformers.ts";

Deno.test("kiln CLI: exporter-style models compile, run, defer, bake and match onnxruntime", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_models_cli_" });
  try {
    const run = async (prog: string, c: ZooCase, out: string, extra: string[] = []) => {
      const args = ["run", prog, ...extra];
      for (const [name, x] of Object.entries(c.inputs)) {
        await writeNpyFile(`${dir}/${name}.npy`, x);
        args.push("--input", `${name}=${dir}/${name}.npy`);
      }
      const r = await runCli(...args, "--output", out);
      assert.equal(r.code, 0, r.stderr);
    };
    const read = async (out: string, names: string[]) => {
      const res: Record<string, Tensor> = {};
      for (const n of names) res[n] = await readNpyFile(`${out}/${n}.npy`);
      return res;
    };
    const dimsArgs = (c: ZooCase) =>
      Object.entries(c.dims).flatMap(([n, d]) => ["--dims", `${n}=${d.join("x")}`]);
    for (const build of [mobilenet, unet]) {
      const m = await build(dir);
      await t.step(`${m.name}: compile and run`, async () => {
        const c = m.cases[m.cases.length - 1];
        const prog = `${dir}/${m.name}.kiln`;
        const r = await runCli("compile", m.file.path, ...dimsArgs(c), "-o", prog);
        assert.equal(r.code, 0, r.stderr);
        await run(prog, c, `${dir}/${m.name}_out`);
        const want = await runOrt(m.file.path, c.inputs);
        assertMatch(await read(`${dir}/${m.name}_out`, Object.keys(want)), want, `${m.name} CLI`);
      });
    }
    const m = await gpt(dir);
    await t.step(`${m.name}: compile --defer-weights, weights random, run --weights, bake`, async () => {
      const c = m.cases[m.cases.length - 1];
      const prog = `${dir}/gpt_weightless.kiln`;
      let r = await runCli("compile", m.file.path, "--defer-weights", ...dimsArgs(c), "-o", prog);
      assert.equal(r.code, 0, r.stderr);
      r = await runCli("weights", "random", m.file.path, "--seed", "5", "-o", `${dir}/w5`);
      assert.equal(r.code, 0, r.stderr);
      const want = await runOrt(`${dir}/w5/gpt_block.onnx`, c.inputs);
      await run(prog, c, `${dir}/o1`, ["--weights", `${dir}/w5`]);
      assertMatch(await read(`${dir}/o1`, Object.keys(want)), want, "gpt CLI run --weights");
      r = await runCli("bake", prog, "--weights", `${dir}/w5`, "-o", `${dir}/gpt5.kiln`);
      assert.equal(r.code, 0, r.stderr);
      await run(`${dir}/gpt5.kiln`, c, `${dir}/o2`);
      assertMatch(await read(`${dir}/o2`, Object.keys(want)), want, "gpt CLI baked");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln CLI: bad models give one line naming the node, op, shapes or dim", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_models_bad_" });
  try {
    const one = async (file: string, args: string[], patterns: RegExp[]) => {
      const r = await runCli("compile", file, ...args, "-o", `${dir}/bad.kiln`);
      assert.notEqual(r.code, 0, "exit 0");
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
      assert.match(lines[0], /^kiln: error: /);
      for (const p of patterns) assert.match(lines[0], p);
    };
    await t.step("an op kiln lacks (Bernoulli: random sampling) names the node and op", async () => {
      const g = new G(8);
      g.nodes.push({ op: "Bernoulli", inputs: ["x"], outputs: ["y"], name: "/drop/Bernoulli" });
      const f = await writeGraph(dir, "bernoulli", g, {
        inputs: [{ name: "x", dims: [5, 1, 3] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, [], [/'\/drop\/Bernoulli'/, /Bernoulli/]);
    });
    await t.step("a shape mismatch names the node, op and shapes", async () => {
      const g = new G(9);
      g.nodes.push({
        op: "MatMul",
        inputs: ["x", g.w("fc.weight", [5, 4])],
        outputs: ["y"],
        name: "/fc/MatMul",
      });
      const f = await writeGraph(dir, "mismatch", g, {
        inputs: [{ name: "x", dims: [2, 3] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, [], [/'\/fc\/MatMul'/, /MatMul/, /\[2,3\]/, /\[5,4\]/]);
    });
    await t.step("a Conv channel mismatch names the node, op and both input shapes", async () => {
      const g = new G(11);
      g.nodes.push({
        op: "Conv",
        inputs: ["x", g.w("conv1.weight", [4, 2, 3, 3])],
        outputs: ["y"],
        name: "/conv1/Conv",
      });
      const f = await writeGraph(dir, "conv_mismatch", g, {
        inputs: [{ name: "x", dims: [1, 3, 8, 8] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, [], [/'\/conv1\/Conv'/, /Conv/, /float32\[1,3,8,8\]/, /float32\[4,2,3,3\]/]);
    });
    await t.step("a broadcast mismatch names the node, op and shapes", async () => {
      const g = new G(10);
      g.nodes.push({ op: "Add", inputs: ["x", g.w("bias", [4])], outputs: ["y"], name: "/Add_bias" });
      const f = await writeGraph(dir, "bcast", g, {
        inputs: [{ name: "x", dims: ["batch", 3] }],
        outputs: [{ name: "y" }],
        opset: 17,
      });
      await one(f.path, ["--dims", "x=2x3"], [/'\/Add_bias'/, /Add/, /\[2,3\]/, /\[4\]/]);
    });
    await t.step("a symbolic dim not given names the input and dim", async () => {
      const m = await encoder(dir);
      await one(m.file.path, ["--dims", "x=1x4x16"], [
        /'attention_mask'/,
        /'batch'/,
        /--dims attention_mask=NxN/,
      ]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
