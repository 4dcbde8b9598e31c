// A zoo of small, realistic models in the patterns PyTorch's exporters emit (torch.onnx and the
// dynamo exporter; tests/util/zoo*.ts), each with its weights in ONNX external data. Every model is
// compiled and run by kiln and compared with onnxruntime-node on the same inputs and weights; then
// compiled with deferred weights, bound to a second seeded weight set, and baked, and compared
// again. The CLI runs of the zoo are in models_cli_test.ts.
import assert from "node:assert/strict";
import { compile, parseOnnx, replaceOnnxExternalWeights, WeightSet } from "../mod.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { runOrt } from "./util/ort.ts";
import { assertMatch } from "./util/tensors.ts";
import { ZOO_BUILDERS, ZOO_HOST_OP_BUILDERS } from "./util/zoo.ts";

Deno.test("compile/eval: exporter-style models match onnxruntime (API, deferred weights, bake)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_models_" });
  try {
    for (const build of [...ZOO_BUILDERS, ...ZOO_HOST_OP_BUILDERS]) {
      const m = await build(dir);
      await t.step(`${m.name}: eval matches onnxruntime`, async () => {
        for (const c of m.cases) {
          const what = `${m.name} ${JSON.stringify(c.dims)}`;
          const program = compile(await parseOnnx(m.file.path, { inputDims: c.dims }), "ref");
          try {
            assertMatch(await program.eval(c.inputs), await runOrt(m.file.path, c.inputs), what);
          } finally {
            program.dispose();
          }
        }
      });
      await t.step(
        `${m.name}: deferred weights, a second weight set, and bake match onnxruntime`,
        async () => {
          const c = m.cases[m.cases.length - 1];
          const v2 = await writeRandomWeights(m.file.path, `${dir}/${m.name}_v2`, { seed: 9 });
          const want = await runOrt(v2.modelPath, c.inputs);
          const program = compile(
            await parseOnnx(m.file.path, { inputDims: c.dims, deferExternalWeights: true }),
            "ref",
          );
          try {
            assert.ok(program.weights.length > 0, `${m.name}: no deferred weights`);
            await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/${m.name}_v2`));
            assertMatch(await program.eval(c.inputs), want, `${m.name} bound v2`);
            // the original weights, bound again
            await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
            assertMatch(
              await program.eval(c.inputs),
              await runOrt(m.file.path, c.inputs),
              `${m.name} bound v1`,
            );
            const baked = (await replaceOnnxExternalWeights(program, `${dir}/${m.name}_v2`, "ref")).finalize(
              "ref",
            );
            try {
              assert.equal(baked.weights.length, 0);
              assertMatch(await baked.eval(c.inputs), want, `${m.name} baked v2`);
            } finally {
              baked.dispose();
            }
          } finally {
            program.dispose();
          }
        },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
