// WorkerProgram (core/worker.ts): a program compiled, bound and evaluated in a module worker
// computes what the same program does on this thread; this thread keeps running meanwhile (a
// timer fires while a long eval runs in the worker); errors come back as KilnErrors with their
// code and every problem; an aborted eval settles at once with "aborted"; a disposed worker
// program refuses calls.
import assert from "node:assert/strict";
import { compile, KilnError, parseOnnx, WeightSet, WorkerProgram } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY = `${ROOT}examples/tinynet`;
const PARSE = { deferExternalWeights: true, inputDims: { x: [1, 3, 16, 16] } };
const X: Tensor = {
  dtype: "float32",
  dims: [1, 3, 16, 16],
  data: new Float32Array(768).map((_, i) => Math.sin(i)),
};

Deno.test("WorkerProgram: compile, bind and eval in a worker, as on this thread", async (t) => {
  const local = compile(await parseOnnx(`${TINY}/tinynet.onnx`, PARSE), "ref");
  const w = await WorkerProgram.create(`${TINY}/tinynet.onnx`, { parse: PARSE });
  try {
    await local.bindWeights(await WeightSet.fromOnnxDir(local, TINY));
    const want = Array.from((await local.eval({ x: X })).probs.data as Float32Array);

    await t.step("the same signature and outputs", async () => {
      assert.deepEqual(w.inputs, local.inputs);
      assert.deepEqual(w.weights.map((x) => x.name), local.weights.map((x) => x.name));
      const r = await w.bindWeights({ kind: "dir", path: TINY });
      assert.equal(r.copied, 8);
      const y = await w.eval({ x: X });
      assert.deepEqual(Array.from(y.probs.data as Float32Array), want);
      assert.ok(y.probs.data instanceof Float32Array);
    });

    await t.step("this thread runs while the worker evaluates", async () => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const runs = Array.from({ length: 200 }, () => w.eval({ x: X }));
      await Promise.all(runs);
      clearInterval(timer);
      assert.ok(ticks > 0, "a timer fired during 200 evals in the worker");
    });

    await t.step("errors keep their code and problems", async () => {
      await assert.rejects(
        w.bindWeights({ kind: "arrays", arrays: { nope: new Float32Array(3) } }),
        (e: unknown) => {
          assert.ok(e instanceof KilnError);
          assert.equal(e.code, "weights");
          assert.ok((e as KilnError & { problems: string[] }).problems.some((p) => /nope/.test(p)));
          return true;
        },
      );
      await assert.rejects(
        WorkerProgram.create(`${TINY}/missing.onnx`),
        (e: unknown) => e instanceof KilnError && e.code === "io" && /missing\.onnx/.test(e.message),
      );
    });

    await t.step("an aborted eval settles at once; the next one runs", async () => {
      const c = new AbortController();
      const pending = w.eval({ x: X }, { signal: c.signal });
      c.abort("not needed");
      await assert.rejects(pending, (e: unknown) => e instanceof KilnError && e.code === "aborted");
      assert.deepEqual(Array.from((await w.eval({ x: X })).probs.data as Float32Array), want);
    });
  } finally {
    w.dispose();
    local.dispose();
  }
  await assert.rejects(w.eval({ x: X }), (e: unknown) => e instanceof KilnError && e.code === "disposed");
});
