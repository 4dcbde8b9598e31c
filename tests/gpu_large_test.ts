// A model whose weights do not fit kiln's WebAssembly core (more than 4 GiB of float32 weights):
// a Llama-style decoder of about 1.15 B parameters made by tools/make_llama.ts, compiled with
// deferred weights, bound from its data file, run, baked, saved and loaded on the gpu target, and
// compared with onnxruntime-node. It needs a real GPU and about 10 GB of disk, so it runs only
// under `KILN_TEST_GPU=device KILN_TEST_LARGE=1` (the GPU machine) and says so elsewhere.
import assert from "node:assert/strict";
import { compile, load, parseOnnx, replaceOnnxExternalWeights, save, WeightSet } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { gpuUnderTest } from "./util/gpu.ts";
import { runOrt } from "./util/ort.ts";

const GPU = gpuUnderTest();
function _env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}
const skip = GPU.kind !== "device" ? "needs a real GPU (KILN_TEST_GPU=device)" : GPU.skip ??
  (_env("KILN_TEST_LARGE") ? undefined : "set KILN_TEST_LARGE=1 to run it (about 10 GB of disk)");
if (skip) console.log(`gpu_large_test.ts: skipped: ${skip}`);

Deno.test({
  name:
    "gpu target: a Llama-style decoder with more than 4 GiB of weights compiles, binds, runs, bakes and loads",
  ignore: skip !== undefined,
  sanitizeResources: false,
  async fn() {
    const dir = _env("KILN_TEST_LARGE_DIR") ?? await Deno.makeTempDir({ prefix: "kiln_large_" });
    try {
      const t0 = performance.now();
      const make = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../tools/make_llama.ts", import.meta.url).pathname, dir],
        stderr: "inherit",
      }).output();
      assert.ok(make.success, "tools/make_llama.ts failed");
      const dataBytes = (await Deno.stat(`${dir}/llama.onnx.data`)).size;
      assert.ok(dataBytes > 4 * 2 ** 30, `${dataBytes} bytes of weights: more than 4 GiB`);
      const ids: Tensor = {
        dtype: "int64",
        dims: [1, 32],
        data: BigInt64Array.from({ length: 32 }, (_, i) => BigInt((i * 977 + 13) % 32000)),
      };
      const t1 = performance.now();
      const want = (await runOrt(`${dir}/llama.onnx`, { input_ids: ids }, { threads: 16 }))["logits"];
      const t2 = performance.now();
      const model = await parseOnnx(`${dir}/llama.onnx`, {
        deferExternalWeights: true,
        inputDims: { input_ids: [1, 32] },
      });
      const program = compile(model, "gpu", { gpu: GPU.options });
      try {
        assert.deepEqual(program.info().hostNodes, []);
        const total = program.weightSignature().reduce((a, w) => a + w.byteLength, 0);
        assert.ok(total > 4 * 2 ** 30, `the weight signature holds ${total} bytes`);
        const t3 = performance.now();
        const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
        const t4 = performance.now();
        const got = (await program.eval({ input_ids: ids }))["logits"];
        const t5 = performance.now();
        const e = relativeL2(got, want);
        console.log(
          `llama ${(total / 2 ** 30).toFixed(2)} GiB on ${GPU.name}: rel L2 ${
            e.toExponential(2)
          } against onnxruntime; ` +
            `make ${((t1 - t0) / 1000).toFixed(1)} s, onnxruntime ${
              ((t2 - t1) / 1000).toFixed(1)
            } s, bind ${r.copied} ` +
            `tensors ${((t4 - t3) / 1000).toFixed(2)} s (${
              (total / 1e9 / ((t4 - t3) / 1000)).toFixed(1)
            } GB/s), eval ${(t5 - t4).toFixed(1)} ms`,
        );
        assert.ok(e <= 1e-4, `relative L2 ${e}`);
        // the swap pipeline again with the files page-cached: each bind reads, hashes and uploads
        // every byte (unchanged tensors are then dropped), so this is its full rate
        for (let i = 0; i < 3; i++) {
          const again = await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
          const p = again.phases!;
          console.log(
            `llama rebind ${i + 1}: ${again.ms.toFixed(0)} ms in all; load ${p.loadMs.toFixed(0)} ms = ${
              (total / 1e9 / (p.loadMs / 1000)).toFixed(1)
            } GB/s over ${p.threads} threads (read ${p.readMs.toFixed(0)} ms summed, upload tail ${
              p.uploadTailMs.toFixed(1)
            } ms), validate ${p.validateMs.toFixed(1)} ms, prepare ${p.prepareMs.toFixed(1)} ms`,
          );
        }
        const baked = await replaceOnnxExternalWeights(program, dir, "gpu");
        await save(baked, `${dir}/llama.kiln`);
        const loaded = await load(`${dir}/llama.kiln`, { gpu: GPU.options });
        try {
          const again = (await loaded.eval({ input_ids: ids }))["logits"];
          assert.ok(relativeL2(again, got) <= 1e-6, "baked, saved and loaded: the same logits");
        } finally {
          loaded.dispose();
        }
      } finally {
        program.dispose();
      }
    } finally {
      if (!_env("KILN_TEST_LARGE_DIR")) await Deno.remove(dir, { recursive: true });
    }
  },
});
