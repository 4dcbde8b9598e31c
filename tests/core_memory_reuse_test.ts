// The threaded core's memory is kept when a program is disposed and the next engine starts over
// it (core/engine.ts `coreMemoryReuse`): its pages are already touched, so a compile with weights
// writes them at memory speed instead of faulting each one in. Nothing of the old program may
// survive: the new instance writes its static data again and its allocator takes the rest as free.
import assert from "node:assert/strict";
import { compile, parseOnnx, releaseCoreMemory, WeightSet } from "../mod.ts";
import { coreMemoryReuse, threadsUnavailable } from "../core/engine.ts";
import { programInternals } from "../core/program.ts";
import type { Tensor } from "../core/tensor.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";

const THREADED = !threadsUnavailable();

/** y = Relu(x W + b), x [64, 64], W [64, 300] and b external (the product is split over threads): two seeds give two weight sets. */
async function _write(dir: string, seed: number): Promise<string> {
  const g = new G(seed);
  const w = g.w("W", [64, 300]);
  const b = g.w("b", [300]);
  const h = g.o("MatMul", ["x", w]);
  const a = g.o("Add", [h, b]);
  g.nodes.push({ op: "Relu", inputs: [a], outputs: ["y"], name: "/relu" });
  await Deno.mkdir(`${dir}/v${seed}`, { recursive: true });
  const io = { inputs: [{ name: "x", dims: [64, 64] }], outputs: [{ name: "y" }], opset: 17 };
  return (await writeGraph(`${dir}/v${seed}`, "m", g, io)).path;
}

const _x = (): Record<string, Tensor> => {
  const x = new Float32Array(64 * 64);
  for (let i = 0; i < x.length; i++) x[i] = Math.cos(i * 0.3);
  return { x: { dtype: "float32", dims: [64, 64], data: x } };
};

/** Waits (2 s at most) until a memory is kept: a disposed engine's workers leave their loop first. */
async function _kept(): Promise<void> {
  for (let i = 0; i < 400 && !coreMemoryReuse.idle; i++) await new Promise((r) => setTimeout(r, 5));
}

Deno.test({
  name:
    "coreMemoryReuse: a disposed program's memory serves the next compile, with the same results as fresh memory",
  ignore: !THREADED,
  fn: async () => {
    const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "kiln_reuse_" }));
    const was = coreMemoryReuse.enabled;
    try {
      const paths = [await _write(dir, 1), await _write(dir, 2)];
      // reference outputs, each program on fresh memory
      coreMemoryReuse.enabled = false;
      coreMemoryReuse.idle = null;
      const want: Record<string, Tensor>[] = [];
      for (const path of paths) {
        const p = compile(await parseOnnx(path), "ref", { threads: 2 });
        want.push(await p.eval(_x()));
        p.dispose();
      }
      assert.equal(coreMemoryReuse.idle, null, "nothing kept while disabled");

      coreMemoryReuse.enabled = true;
      const first = compile(await parseOnnx(paths[0]), "ref", { threads: 2 });
      assert.deepEqual(await first.eval(_x()), want[0]);
      assert.equal(programInternals(first).workersRunning, 1, "its product started a worker");
      first.dispose();
      // kept once its worker is out: cancelled while still starting, or out of its loop
      await _kept();
      assert.ok(coreMemoryReuse.idle, "the disposed program's memory is kept once its worker is out");
      await assert.rejects(() => first.eval(_x()), /disposed/);
      const before = coreMemoryReuse.reused;
      // compiled with the other weights over the kept memory (its old weights still in the pages)
      const second = compile(await parseOnnx(paths[1]), "ref", { threads: 2 });
      assert.equal(coreMemoryReuse.reused, before + 1, "the next engine started over it");
      assert.equal(coreMemoryReuse.idle, null, "taken: one engine per memory");
      assert.deepEqual(await second.eval(_x()), want[1], "same bits as on fresh memory");
      // a deferred program over reused memory binds and swaps as on fresh memory
      second.dispose();
      await _kept();
      const deferred = compile(await parseOnnx(paths[0], { deferExternalWeights: true }), "ref", {
        threads: 2,
      });
      assert.equal(coreMemoryReuse.reused, before + 2);
      for (const k of [1, 0, 1]) {
        await deferred.bindWeights(await WeightSet.fromOnnxDir(deferred, `${dir}/v${k + 1}`));
        assert.deepEqual(await deferred.eval(_x()), want[k], `bound to v${k + 1}`);
      }
      // a program that trapped keeps its broken memory to itself (its bound weights are read back
      // from it at the revival), and the revived engine's memory is kept at dispose as usual
      assert.throws(() => programInternals(deferred).debugTrap());
      assert.equal(coreMemoryReuse.idle, null, "a broken engine's memory is not kept");
      assert.deepEqual(await deferred.eval(_x()), want[1], "revived with its bound weights");
      deferred.dispose();
      await _kept();
      assert.ok(coreMemoryReuse.idle, "kept after the revived program's dispose");
      // an embedder done with kiln lets go of it; the next compile starts on fresh memory
      const size = (coreMemoryReuse.idle as WebAssembly.Memory | null)!.buffer.byteLength;
      assert.equal(releaseCoreMemory(), size);
      assert.equal(coreMemoryReuse.idle, null);
      assert.equal(releaseCoreMemory(), 0, "nothing left to let go");
      const reused = coreMemoryReuse.reused;
      const fresh = compile(await parseOnnx(paths[1]), "ref", { threads: 2 });
      assert.equal(coreMemoryReuse.reused, reused, "started on fresh memory");
      assert.deepEqual(await fresh.eval(_x()), want[1]);
      fresh.dispose();
    } finally {
      coreMemoryReuse.enabled = was;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
