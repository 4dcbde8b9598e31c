// A dynamically quantized encoder layer (tests/util/zoo_quant.ts: DynamicQuantizeLinear,
// MatMulInteger with int8 and uint8 weights, per-column zero points and scales in external data)
// through the weight workflow on ref, compared with onnxruntime-node given the same weights: eval
// with inline-loaded weights, then compiled once with deferred weights, bound to a second weight
// set, swapped back, bound to a seeded set and through safetensors, baked, and saved and loaded.
import assert from "node:assert/strict";
import { compile, load, parseOnnx, replaceOnnxExternalWeights, save, WeightSet } from "../mod.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { writeSafetensors } from "../core/weights/safetensors.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { runOrt } from "./util/ort.ts";
import { assertMatch } from "./util/tensors.ts";
import { qbert } from "./util/zoo_quant.ts";

Deno.test("a quantized transformer layer matches onnxruntime: eval, deferred integer weights, swap, bake", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_quant_" });
  try {
    await Deno.mkdir(`${dir}/v1`);
    await Deno.mkdir(`${dir}/v2`);
    const m1 = await qbert(`${dir}/v1`, 4);
    const m2 = await qbert(`${dir}/v2`, 11);
    assert.deepEqual(m1.file.bytes, m2.file.bytes, "both weight sets share one graph");
    const c = m1.cases[m1.cases.length - 1];
    const want1 = await runOrt(m1.file.path, c.inputs);
    const want2 = await runOrt(m2.file.path, c.inputs);
    assert.notDeepEqual(want1.q_int32.data, want2.q_int32.data, "the two weight sets must differ");

    await t.step("eval with the weights loaded at parse time matches onnxruntime", async () => {
      for (const m of [m1, m2]) {
        for (const cs of m.cases) {
          const program = compile(await parseOnnx(m.file.path, { inputDims: cs.dims }), "ref");
          try {
            assertMatch(
              await program.eval(cs.inputs),
              await runOrt(m.file.path, cs.inputs),
              `${m.file.path}`,
            );
          } finally {
            program.dispose();
          }
        }
      }
    });

    const program = compile(
      await parseOnnx(m1.file.path, { inputDims: c.dims, deferExternalWeights: true }),
      "ref",
    );
    try {
      await t.step("the int8 and uint8 weights, scales and zero points are deferred", () => {
        const types = new Set(program.weights.map((w) => w.dtype));
        assert.ok(types.has("int8") && types.has("uint8") && types.has("float32"), [...types].join(", "));
        assert.ok(program.weights.some((w) => w.name.endsWith(".weight_zero_point")));
      });
      await t.step("bind v2, then v1 again: each matches onnxruntime", async () => {
        await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
        assertMatch(await program.eval(c.inputs), want2, "bound v2");
        await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
        assertMatch(await program.eval(c.inputs), want1, "bound v1");
      });
      await t.step("bind a seeded weight set (writeRandomWeights: integer weights in {0, 1})", async () => {
        const v3 = await writeRandomWeights(m1.file.path, `${dir}/v3`, { seed: 9 });
        await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v3`));
        assertMatch(await program.eval(c.inputs), await runOrt(v3.modelPath, c.inputs), "bound v3 (random)");
      });
      await t.step("bind v2 through safetensors", async () => {
        const set2 = await WeightSet.fromOnnxDir(program, `${dir}/v2`);
        await writeSafetensors(`${dir}/v2.safetensors`, [...set2.tensors.values()]);
        await program.bindWeights(await WeightSet.fromSafetensors(program, `${dir}/v2.safetensors`));
        assertMatch(await program.eval(c.inputs), want2, "bound v2 (safetensors)");
      });
      await t.step(
        "an int8 weight bound alone as a typed array; a wrong integer type is refused",
        async () => {
          await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
          const name = "encoder.layer.0.attention.self.query.weight_quantized";
          const t1 = (await WeightSet.fromOnnxDir(program, `${dir}/v1`)).tensors.get(name)!;
          assert.equal(t1.dtype, "int8");
          // zero weights (zero point 0): the query projection's sums are all 0
          await program.bindWeights({ [name]: new Int8Array(16 * 16) }, { partial: true });
          assert.ok((await program.eval(c.inputs)).q_int32.data.every((v) => v === 0));
          await program.bindWeights({ [name]: new Int8Array(t1.bytes.slice().buffer) }, { partial: true });
          assertMatch(await program.eval(c.inputs), want1, "v1 with its query weights bound again");
          await assert.rejects(
            program.bindWeights({ [name]: new Uint8Array(16 * 16) }, { partial: true }),
            /weight_quantized/,
          );
        },
      );
      await t.step("bake v2 and save/load the baked program", async () => {
        const baked = (await replaceOnnxExternalWeights(program, `${dir}/v2`, "ref")).finalize("ref");
        try {
          assert.equal(baked.weights.length, 0);
          assertMatch(await baked.eval(c.inputs), want2, "baked v2");
          const path = `${dir}/qbert.kiln`;
          await save(baked, path);
          const loaded = await load(path);
          try {
            assertMatch(await loaded.eval(c.inputs), want2, "baked v2, loaded");
          } finally {
            loaded.dispose();
          }
        } finally {
          baked.dispose();
        }
      });
    } finally {
      program.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "the quantized layer on the gpu target: deferred integer weights bound, swapped and baked",
  ignore: gpuIgnore("models_quant_test.ts"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const GPU = gpuUnderTest();
    const dir = await Deno.makeTempDir({ prefix: "kiln_quant_gpu_" });
    try {
      await Deno.mkdir(`${dir}/v1`);
      await Deno.mkdir(`${dir}/v2`);
      const m1 = await qbert(`${dir}/v1`, 4);
      await qbert(`${dir}/v2`, 11);
      const c = m1.cases[m1.cases.length - 1];
      const want1 = await runOrt(m1.file.path, c.inputs);
      const want2 = await runOrt(`${dir}/v2/qbert_layer.onnx`, c.inputs);
      const program = compile(
        await parseOnnx(m1.file.path, { inputDims: c.dims, deferExternalWeights: true }),
        "gpu",
        { gpu: GPU.options },
      );
      try {
        await t.step("bind v1, swap to v2", async () => {
          await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
          assertMatch(await program.eval(c.inputs), want1, "gpu bound v1");
          await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
          assertMatch(await program.eval(c.inputs), want2, "gpu bound v2");
        });
        await t.step("bake v1 for gpu", async () => {
          const baked = (await replaceOnnxExternalWeights(program, `${dir}/v1`, "gpu")).finalize("gpu", {
            gpu: GPU.options,
          });
          try {
            assert.equal(baked.weights.length, 0);
            assertMatch(await baked.eval(c.inputs), want1, "gpu baked v1");
          } finally {
            baked.dispose();
          }
        });
      } finally {
        program.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
