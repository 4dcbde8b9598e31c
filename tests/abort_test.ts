// AbortSignal on long calls: parseOnnx, WeightSet reads, bindWeights and eval stop at their next
// step with KilnError "aborted" (the signal's reason in the message), and nothing changes: an
// aborted bind leaves the weights bound before serving (ref, and the gpu target on the test
// device; there an abort that comes while the bind is staged drops the staged buffers, Executor
// `discard`), an aborted eval does not run and the next one does.
import assert from "node:assert/strict";
import { compile, KilnError, parseOnnx, type Program, WeightSet, writeSafetensors } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY = `${ROOT}examples/tinynet`;
const OPTS = { deferExternalWeights: true, inputDims: { x: [1, 3, 16, 16] } };
const X: Tensor = {
  dtype: "float32",
  dims: [1, 3, 16, 16],
  data: new Float32Array(768).map((_, i) => Math.cos(i)),
};

function _aborted(why: string) {
  return (e: unknown) => {
    assert.ok(e instanceof KilnError, String(e));
    assert.equal(e.code, "aborted");
    assert.match(e.message, new RegExp(why));
    return true;
  };
}

async function _v2(p: Program, dir: string): Promise<string> {
  let seed = 3;
  const path = `${dir}/v2.safetensors`;
  await writeSafetensors(
    path,
    p.weights.map((w) => {
      const data = new Float32Array(w.dims.reduce((a, b) => a * b, 1)).map(() => Math.sin(seed++) * 0.2);
      return { name: w.name, dtype: w.dtype, dims: [...w.dims], bytes: new Uint8Array(data.buffer) };
    }),
  );
  return path;
}

async function _abortsAndKeeps(t: Deno.TestContext, target: "ref" | "gpu", gpuOptions = {}) {
  const dir = await Deno.makeTempDir({ prefix: "kiln_abort_" });
  const p = compile(await parseOnnx(`${TINY}/tinynet.onnx`, OPTS), target, { gpu: gpuOptions });
  try {
    await p.bindWeights(await WeightSet.fromOnnxDir(p, TINY));
    const v1 = Array.from((await p.eval({ x: X })).probs.data as Float32Array);
    const v2 = await _v2(p, dir);

    await t.step("an aborted bind switches nothing", async () => {
      const c = new AbortController();
      const set = await WeightSet.fromSafetensors(p, v2);
      c.abort(new Error("the deploy was cancelled"));
      await assert.rejects(
        p.bindWeights(set, { signal: c.signal }),
        _aborted("Binding weights was aborted \\(the deploy was cancelled\\)"),
      );
      assert.deepEqual(
        Array.from((await p.eval({ x: X })).probs.data as Float32Array),
        v1,
        "v1 still serves",
      );
      // the same set binds when not aborted
      await p.bindWeights(set);
      assert.notDeepEqual(Array.from((await p.eval({ x: X })).probs.data as Float32Array), v1);
    });

    await t.step("a weight set read stops at the next tensor", async () => {
      const c = new AbortController();
      let calls = 0;
      await assert.rejects(
        WeightSet.fromSafetensors(p, v2, {
          lazy: false,
          signal: c.signal,
          onProgress: () => {
            calls++;
            c.abort("enough");
          },
        }),
        _aborted("Reading the weight set was aborted \\(enough\\)"),
      );
      assert.equal(calls, 1, "no tensor read after the abort");
    });

    await t.step("an aborted eval does not run; the next one does", async () => {
      const c = new AbortController();
      c.abort();
      await assert.rejects(p.eval({ x: X }, { signal: c.signal }), _aborted("The eval was aborted"));
      assert.equal((await p.eval({ x: X })).probs.dims[1], 10);
    });
  } finally {
    p.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ref: AbortSignal stops parse, weight reads, bind and eval, changing nothing", async (t) => {
  await t.step("parseOnnx", async () => {
    const c = new AbortController();
    c.abort("stop");
    await assert.rejects(
      parseOnnx(`${TINY}/tinynet.onnx`, { ...OPTS, signal: c.signal }),
      _aborted("Parsing"),
    );
  });
  await _abortsAndKeeps(t, "ref");
});

const GPU = gpuUnderTest();
Deno.test({
  name: `gpu target (${GPU.name}): an aborted bind switches nothing; the bound weights keep serving`,
  ignore: gpuIgnore("abort_test.ts"),
  async fn(t) {
    await _abortsAndKeeps(t, "gpu", GPU.options);
  },
});
