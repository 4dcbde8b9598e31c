// Real and exporter-style models on the gpu target (tests/util/gpu.ts says which GPU). Every node
// of them must have a device kernel (no host fallback). The zoo of small exporter-style models
// runs on whichever GPU is under test, compiled once with deferred weights, bound to a seeded
// weight set and compared with onnxruntime-node; the shared GPT-2, BERT and ResNet-50 graphs are
// compared with onnxruntime-node on the real device (the emulator checks their kernels only:
// running them on a CPU emulator would take minutes).
import assert from "node:assert/strict";
import { compile, parseOnnx, replaceOnnxExternalWeights, WeightSet } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { SeededRandom, writeRandomWeights } from "../core/weights/random.ts";
import { allFinite, relativeL2 } from "./conformance/compare.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { SHARED_MODELS } from "./util/models.ts";
import { runOrt } from "./util/ort.ts";
import { assertMatch } from "./util/tensors.ts";
import { ZOO_BUILDERS } from "./util/zoo.ts";

const ignore = gpuIgnore("gpu_models_test.ts");
const GPU = gpuUnderTest();
const REL_L2_BAR = 1e-4;

Deno.test({
  name: `gpu target (${GPU.name}): exporter-style models run with no host node and match onnxruntime`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_zoo_" });
    try {
      for (const build of ZOO_BUILDERS) {
        const m = await build(dir);
        await t.step(`${m.name}: compiled once, bound to a second weight set, baked`, async () => {
          const c = m.cases[m.cases.length - 1];
          const v2 = await writeRandomWeights(m.file.path, `${dir}/${m.name}_v2`, { seed: 9 });
          const want = await runOrt(v2.modelPath, c.inputs);
          const program = compile(
            await parseOnnx(m.file.path, { inputDims: c.dims, deferExternalWeights: true }),
            "gpu",
            { gpu: GPU.options },
          );
          try {
            const host = program.info().hostNodes;
            assert.deepEqual(
              host.map((h) => `${h.name} (${h.op}): ${h.reason}`),
              [],
              `${m.name}: host nodes`,
            );
            await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/${m.name}_v2`));
            assertMatch(await program.eval(c.inputs), want, `${m.name} on gpu, bound v2`);
            const baked = (await replaceOnnxExternalWeights(program, `${dir}/${m.name}_v2`, "gpu")).finalize(
              "gpu",
              {
                gpu: GPU.options,
              },
            );
            try {
              assertMatch(await baked.eval(c.inputs), want, `${m.name} on gpu, baked v2`);
            } finally {
              baked.dispose();
            }
          } finally {
            program.dispose();
          }
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

interface _Shared {
  file: string;
  input: string;
  dims: number[];
  vocab?: number;
}

const SHARED: _Shared[] = [
  { file: "gpt2_dynamo.onnx", input: "ids", dims: [1, 128], vocab: 50257 },
  { file: "bert_dynamo.onnx", input: "ids", dims: [1, 128], vocab: 30522 },
  { file: "resnet50_dynamo.onnx", input: "x", dims: [1, 3, 224, 224] },
];

function _input(m: _Shared): Tensor {
  const rng = new SeededRandom(99);
  const n = m.dims.reduce((a, b) => a * b, 1);
  if (m.vocab) {
    const ids = new BigInt64Array(n);
    for (let i = 0; i < n; i++) ids[i] = BigInt(rng.int(m.vocab));
    return { dtype: "int64", dims: m.dims, data: ids };
  }
  const x = new Float32Array(n);
  rng.fillNormal(x, 0, 1);
  return { dtype: "float32", dims: m.dims, data: x };
}

for (const m of SHARED) {
  const path = `${SHARED_MODELS}/${m.file}`;
  let present = false;
  try {
    present = Deno.statSync(path).isFile;
  } catch { /* absent */ }
  if (!present) console.log(`gpu_models_test.ts: ${m.file} skipped: ${path} not found`);
  Deno.test({
    name: `gpu target (${GPU.name}): ${m.file} runs every node on the device${
      GPU.kind === "device" ? " and matches onnxruntime-node on two seeded weight sets" : ""
    }`,
    ignore: ignore || !present,
    sanitizeResources: false,
    async fn() {
      const model = await parseOnnx(path, { deferExternalWeights: true, inputDims: { [m.input]: m.dims } });
      const program = compile(model, "gpu", { gpu: GPU.options });
      try {
        const host = program.info().hostNodes;
        assert.deepEqual(host.map((h) => `${h.name} (${h.op}): ${h.reason}`), [], `${m.file}: host nodes`);
        if (GPU.kind !== "device") return;
        const x = _input(m);
        const seen: Record<string, Tensor>[] = [];
        for (const seed of [2024, 2025]) {
          const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_shared_" });
          try {
            const { modelPath } = await writeRandomWeights(path, dir, { seed });
            const want = await runOrt(modelPath, { [m.input]: x });
            const t0 = performance.now();
            const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
            const t1 = performance.now();
            const got = await program.eval({ [m.input]: x });
            const t2 = performance.now();
            for (const [name, ref] of Object.entries(want)) {
              assert.ok(allFinite(got[name]), `${m.file}: output '${name}' is not finite`);
              const e = relativeL2(got[name], ref);
              console.log(
                `${m.file} on ${GPU.name}, seed ${seed}: '${name}' rel L2 ${
                  e.toExponential(2)
                } (bind ${r.copied} ` +
                  `tensors ${(t1 - t0).toFixed(0)} ms: load ${
                    r.phases?.loadMs.toFixed(1)
                  } ms over ${r.phases?.threads} ` +
                  `threads, prepare ${r.phases?.prepareMs.toFixed(1)} ms; first eval ${
                    (t2 - t1).toFixed(1)
                  } ms)`,
              );
              assert.ok(e <= REL_L2_BAR, `${m.file}: '${name}' relative L2 ${e} > ${REL_L2_BAR}`);
            }
            seen.push(got);
            if (seed === 2025) {
              // the TF32 opt-in on the same weights: its accuracy against onnxruntime's float32
              const tf32 = compile(model, "gpu", { gpu: { ...GPU.options, precision: "tf32" } });
              try {
                await tf32.bindWeights(await WeightSet.fromOnnxDir(tf32, dir));
                const y = await tf32.eval({ [m.input]: x });
                for (const [name, ref] of Object.entries(want)) {
                  const e = relativeL2(y[name], ref);
                  console.log(
                    `${m.file} with ${tf32.info().precision?.mode} GEMMs: '${name}' rel L2 ${
                      e.toExponential(2)
                    }`,
                  );
                  assert.ok(e <= 1e-2, `${m.file} TF32: '${name}' relative L2 ${e}`);
                }
              } finally {
                tf32.dispose();
              }
            }
          } finally {
            await Deno.remove(dir, { recursive: true });
          }
        }
        for (const name of Object.keys(seen[0])) {
          assert.ok(relativeL2(seen[0][name], seen[1][name]) > 1e-2, `swapping did not change '${name}'`);
        }
      } finally {
        program.dispose();
      }
    },
  });
}
