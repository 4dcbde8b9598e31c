// Both builds of the core (SIMD, and SIMD + relaxed SIMD where the host has it) give the same
// results as onnxruntime: the baseline build keeps hosts without relaxed SIMD (Node 20) honest.
import assert from "node:assert/strict";
import { availableCoreVariants, coreVariant, useCoreVariant } from "../core/engine.ts";
import { compile, parseOnnx } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { runOrt } from "./util/ort.ts";

const TINY = new URL("../examples/tinynet/tinynet.onnx", import.meta.url).pathname;

Deno.test("core variants: each available build matches onnxruntime on tinynet", async (t) => {
  const variants = availableCoreVariants();
  assert.ok(variants.includes("simd"), "the baseline SIMD build is always there");
  console.log(`core variants here: ${variants.join(", ")} (default: ${coreVariant()})`);
  const x: Tensor = {
    dtype: "float32",
    dims: [2, 3, 16, 16],
    data: new Float32Array(1536).map((_, i) => Math.cos(i)),
  };
  const want = (await runOrt(TINY, { x }))["probs"];
  try {
    for (const v of variants) {
      await t.step(v, async () => {
        useCoreVariant(v);
        assert.equal(coreVariant(), v);
        const p = compile(await parseOnnx(TINY, { inputDims: { x: [2, 3, 16, 16] } }), "ref");
        const got = (await p.eval({ x }))["probs"].data as Float32Array;
        p.dispose();
        let num = 0, den = 0;
        for (let i = 0; i < got.length; i++) {
          num += (got[i] - Number(want.data[i])) ** 2;
          den += Number(want.data[i]) ** 2;
        }
        assert.ok(Math.sqrt(num / den) <= 1e-5, `${v}: rel L2 ${Math.sqrt(num / den)}`);
      });
    }
  } finally {
    useCoreVariant("auto");
  }
});
