// The ref target needs no permission beyond reading the model (and its weight directory).
import assert from "node:assert/strict";
import { compile, parseOnnx, replaceOnnxExternalWeights, WeightSet } from "../mod.ts";

const TINY_DIR = new URL("../examples/tinynet", import.meta.url).pathname;

Deno.test({
  name: "ref target: parse, compile, bind, bake and eval with only read access to the model folder",
  permissions: { read: [TINY_DIR], write: false, net: false, env: false, run: false, ffi: false, sys: false },
  async fn() {
    const program = compile(
      await parseOnnx(`${TINY_DIR}/tinynet.onnx`, {
        deferExternalWeights: true,
        inputDims: { x: [1, 3, 16, 16] },
      }),
      "ref",
    );
    await program.bindWeights(await WeightSet.fromOnnxDir(program, TINY_DIR));
    const x = { dtype: "float32" as const, dims: [1, 3, 16, 16], data: new Float32Array(768).fill(0.5) };
    const a = (await program.eval({ x }))["probs"];
    const baked = (await replaceOnnxExternalWeights(program, TINY_DIR, "ref")).finalize("ref");
    const b = (await baked.eval({ x }))["probs"];
    assert.deepEqual(a.data, b.data);
    await assert.rejects(parseOnnx("/etc/hostname"), /hostname/);
    program.dispose();
    baked.dispose();
  },
});
