// LoRA adapters on the gpu target (tests/util/gpu.ts says which GPU; tests/util/adapter_suite.ts
// the checks): the deltas computed on the device from the kept base weights, every output checked
// against the ref target bound with W0 + scale·B·A. On a real device, also GPT-2 (the shared
// exporter graph) with an adapter on every attention projection, checked against the same
// program bound with the adapted weights computed on the host.
import assert from "node:assert/strict";
import { Adapter, compile, parseOnnx, WeightSet } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { SeededRandom, writeRandomWeights } from "../core/weights/random.ts";
import { applyDelta } from "../core/weights/adapter.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { adapterSuite } from "./util/adapter_suite.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { hasSharedModel, SHARED_MODELS } from "./util/models.ts";

const ignore = gpuIgnore("gpu_adapter_test.ts");
const GPU = gpuUnderTest();

Deno.test({
  name: `gpu target (${GPU.name}): LoRA adapters over the kept base weights`,
  ignore,
  fn: (t) => adapterSuite(t, "gpu", GPU.options),
});

const GPT2 = "gpt2_dynamo.onnx";
const gpt2Ignore = ignore || GPU.kind !== "device" || !hasSharedModel(GPT2);
if (!ignore && GPU.kind === "device" && !hasSharedModel(GPT2)) {
  console.log(`gpu_adapter_test.ts: GPT-2 step skipped: ${SHARED_MODELS}/${GPT2} not found`);
}

Deno.test({
  name: `gpu target (${GPU.name}): a rank-8 adapter on GPT-2's attention, switched in a few milliseconds`,
  ignore: gpt2Ignore,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_adapter_" });
    const path = `${SHARED_MODELS}/${GPT2}`;
    const program = compile(
      await parseOnnx(path, { deferExternalWeights: true, inputDims: { ids: [1, 128] } }),
      "gpu",
      { gpu: GPU.options },
    );
    try {
      await writeRandomWeights(path, dir, { seed: 7 });
      const set = await WeightSet.fromOnnxDir(program, dir, { lazy: false });
      await program.bindWeights(set);
      const rnd = new SeededRandom(3);
      const ids = new BigInt64Array(128).map(() => BigInt(rnd.int(50257)));
      const x: Tensor = { dtype: "int64", dims: [1, 128], data: ids };
      const out = program.outputs[0].name;
      const eval1 = async () => (await program.eval({ ids: x }, { outputs: [out] }))[out];
      const base = await eval1();
      // c_attn is GPT-2's Conv1D, stored [in 768, out 2304]: PEFT's B·A is [2304, 768], transposed
      const mats = program.weightSignature().filter((w) => /attn\.c_attn\.weight$/.test(w.name));
      assert.equal(mats.length, 12);
      const f = (n: number) => Float32Array.from({ length: n }, () => (rnd.uniform() - 0.5) * 0.05);
      const adapter = new Adapter(
        "gpt2-attn",
        mats.map((w) => ({
          module: w.name.replace(/\.weight$/, ""),
          a: f(8 * 768),
          aDims: [8, 768] as [number, number],
          b: f(2304 * 8),
          bDims: [2304, 8] as [number, number],
          scale: 2,
        })),
      );
      await program.applyAdapter(adapter); // the first stages into new buffers
      await program.removeAdapter();
      const t0 = performance.now();
      const r = await program.applyAdapter(adapter);
      const ms = performance.now() - t0;
      assert.equal(r.adapted, 12);
      const adapted = await eval1();
      // the reference: the same program bound with W0 + 2·(B·A)ᵀ computed on the host
      await program.removeAdapter();
      assert.deepEqual(await eval1(), base, "removeAdapter restores GPT-2 bit for bit");
      const deltas = adapter.resolve(program.weightSignature(), "test");
      const replaced: Record<string, Tensor> = {};
      for (const d of deltas) {
        const w0 = set.tensors.get(d.name)!.bytes;
        const bytes = applyDelta(w0, 768, 2304, d);
        replaced[d.name] = { dtype: "float32", dims: [768, 2304], data: new Float32Array(bytes.buffer) };
      }
      await program.setWeights(replaced);
      const want = await eval1();
      const e = relativeL2(adapted, want);
      const moved = relativeL2(base, want);
      console.log(
        `GPT-2 on ${GPU.name}: adapter on 12 c_attn (rank 8) applied in ${ms.toFixed(2)} ms; ` +
          `rel L2 ${e.toExponential(2)} against host-adapted weights (the adapter moves the output by ${
            moved.toExponential(2)
          })`,
      );
      assert.ok(e <= 1e-5, `rel L2 ${e}`);
      assert.ok(moved > 1e-3, "the adapter changes the output");
    } finally {
      program.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
