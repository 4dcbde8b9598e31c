// The gpu target's swap pipeline (hip/src/loader.*): file ranges read by several threads into
// the pinned ring, hashed per chunk and copied on the readers' own streams. A weight of several
// chunks must land whole, in order, whatever the thread count; a file bind and a typed-array bind
// of the same bytes must hash alike (so the second is skipped); a change in any one chunk must be
// seen; and the bind report says where the time went. Swaps stage beside evals: every eval sees one
// weight set whole, and a swap that fails mid-stream leaves the old weights serving.
import assert from "node:assert/strict";
import { compile, parseOnnx, WeightSet } from "../mod.ts";
import { buildModel, type ModelSpec } from "../core/onnx/writer.ts";
import type { Tensor } from "../core/tensor.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";

const ignore = gpuIgnore("gpu_swap_test.ts");
const GPU = gpuUnderTest();
const K = 1024, N = 2560; // W is 10 MiB: two 8 MiB load chunks, the second partial

function _model(): ModelSpec {
  return {
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [1, K] }],
      outputs: [{ name: "y", dtype: "float32", dims: [1, N] }],
      initializers: [
        {
          name: "W",
          dtype: "float32",
          dims: [K, N],
          external: { location: "w.bin", offset: 0, length: K * N * 4 },
        },
        {
          name: "b",
          dtype: "float32",
          dims: [N],
          external: { location: "w.bin", offset: K * N * 4, length: N * 4 },
        },
      ],
      nodes: [
        { op: "MatMul", name: "mm", inputs: ["x", "W"], outputs: ["xw"] },
        { op: "Add", name: "add", inputs: ["xw", "b"], outputs: ["y"] },
      ],
    },
  };
}

function _weights(seed: number): { W: Float32Array; b: Float32Array } {
  const W = new Float32Array(K * N), b = new Float32Array(N);
  for (let i = 0; i < W.length; i++) W[i] = Math.sin(i * 0.013 + seed) * 0.05;
  for (let i = 0; i < N; i++) b[i] = Math.cos(i * 0.7 + seed);
  return { W, b };
}

async function _write(path: string, w: { W: Float32Array; b: Float32Array }): Promise<void> {
  const bytes = new Uint8Array((K * N + N) * 4);
  bytes.set(new Uint8Array(w.W.buffer), 0);
  bytes.set(new Uint8Array(w.b.buffer), K * N * 4);
  await Deno.writeFile(path, bytes);
}

function _expect(x: Float32Array, w: { W: Float32Array; b: Float32Array }): Tensor {
  const y = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    const xk = x[k], row = k * N;
    for (let n = 0; n < N; n++) y[n] += xk * w.W[row + n];
  }
  const out = new Float32Array(N);
  for (let n = 0; n < N; n++) out[n] = y[n] + w.b[n];
  return { dtype: "float32", dims: [1, N], data: out };
}

Deno.test({
  name: `gpu target (${GPU.name}): the swap pipeline reads multi-chunk weights whole with any thread count`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_swap_" });
    const threadsBefore = Deno.env.get("KILN_LOAD_THREADS");
    try {
      await Deno.writeFile(`${dir}/model.onnx`, buildModel(_model()));
      const v1 = _weights(1), v2 = _weights(2);
      await _write(`${dir}/w.bin`, v1);
      await Deno.mkdir(`${dir}/v2`);
      await Deno.copyFile(`${dir}/model.onnx`, `${dir}/v2/model.onnx`);
      await _write(`${dir}/v2/w.bin`, v2);
      const x = new Float32Array(K);
      for (let i = 0; i < K; i++) x[i] = Math.cos(i * 0.31);
      const program = compile(await parseOnnx(`${dir}/model.onnx`, { deferExternalWeights: true }), "gpu", {
        gpu: GPU.options,
      });
      const check = async (want: { W: Float32Array; b: Float32Array }, what: string) => {
        const y = (await program.eval({ x: { dtype: "float32", dims: [1, K], data: x } }))["y"];
        const e = relativeL2(y, _expect(x, want));
        assert.ok(e <= 1e-5, `${what}: relative L2 ${e.toExponential(2)}`);
      };
      const held: number[] = [];
      try {
        await t.step("two reader threads: v1 lands whole; the report has the phases", async () => {
          Deno.env.set("KILN_LOAD_THREADS", "2");
          const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
          assert.equal(r.copied, 2);
          assert.equal(r.bytesCopied, (K * N + N) * 4);
          assert.ok(r.phases, "phases reported on gpu");
          assert.equal(r.phases.threads, 2); // 3 chunks, 2 threads asked for
          for (const k of ["validateMs", "loadMs", "readMs", "prepareMs"] as const) {
            assert.ok(Number.isFinite(r.phases[k]) && r.phases[k] >= 0, `${k} = ${r.phases[k]}`);
          }
          await check(v1, "v1, 2 threads");
          held.push(program.info().deviceBytes);
        });
        await t.step("the same bytes from typed arrays hash alike and are skipped", async () => {
          const r = await program.bindWeights({ W: v1.W, b: v1.b });
          assert.equal(r.copied, 0);
          assert.equal(r.skipped, 2);
        });
        await t.step("one reader thread: v2 lands whole", async () => {
          Deno.env.set("KILN_LOAD_THREADS", "1");
          const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
          assert.equal(r.copied, 2);
          assert.equal(r.phases?.threads, 1);
          await check(v2, "v2, 1 thread");
          held.push(program.info().deviceBytes);
        });
        await t.step("one value changed in the second chunk is seen and uploaded", async () => {
          Deno.env.set("KILN_LOAD_THREADS", "3");
          const v3 = { W: v2.W.slice(), b: v2.b };
          v3.W[K * N - 5] += 1; // in the last, partial chunk
          await _write(`${dir}/v2/w.bin`, v3);
          const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
          assert.equal(r.copied, 1);
          assert.equal(r.skipped, 1);
          await check(v3, "v3, 3 threads");
          held.push(program.info().deviceBytes);
        });
        await t.step(
          "swaps stage into spare buffers: after the second, the device memory held is flat",
          () => {
            assert.equal(held[1] - held[0], (K * N + N) * 4, `held ${held}: one spare per weight`);
            assert.equal(held[2], held[1], `held ${held}: the third swap allocated nothing`);
          },
        );
        await t.step(
          "KILN_LOAD_MODE=mmap: copies from registered file mappings hash and land alike",
          async () => {
            Deno.env.set("KILN_LOAD_MODE", "mmap");
            try {
              const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
              assert.equal(r.copied, 2);
              assert.equal(r.phases?.loadMode, "mmap");
              assert.ok((r.phases?.registerMs ?? -1) >= 0);
              await check(v1, "v1 from mappings");
              // the same bytes from typed arrays hash alike: the mapped hash is the ring's
              const same = await program.bindWeights({ W: v1.W, b: v1.b });
              assert.equal(same.skipped, 2);
              await Deno.writeFile(`${dir}/v2/w.bin`, new Uint8Array(1000)); // shorter than the ranges
              await assert.rejects(
                async () => program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`)),
                /w\.bin/,
              );
              await check(v1, "v1 after a refused bind");
            } finally {
              Deno.env.delete("KILN_LOAD_MODE");
            }
          },
        );
      } finally {
        program.dispose();
      }
    } finally {
      if (threadsBefore === undefined) Deno.env.delete("KILN_LOAD_THREADS");
      else Deno.env.set("KILN_LOAD_THREADS", threadsBefore);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `gpu target (${GPU.name}): swaps stage beside evals and switch between two; a failed swap mid-stream changes nothing`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_concurrent_" });
    try {
      const sets = [_weights(1), _weights(2), _weights(3)];
      for (const [i, w] of sets.entries()) {
        await Deno.mkdir(`${dir}/v${i + 1}`);
        await Deno.writeFile(`${dir}/v${i + 1}/model.onnx`, buildModel(_model()));
        await _write(`${dir}/v${i + 1}/w.bin`, w);
      }
      const xData = new Float32Array(K);
      for (let i = 0; i < K; i++) xData[i] = Math.cos(i * 0.31);
      const x: Tensor = { dtype: "float32", dims: [1, K], data: xData };
      const want = sets.map((w) => _expect(xData, w));
      const program = compile(
        await parseOnnx(`${dir}/v1/model.onnx`, { deferExternalWeights: true }),
        "gpu",
        { gpu: GPU.options },
      );
      /** Which weight set an output came from (1, 2, 3), or 0 for none of them (a mix). */
      const which = async () => {
        const y = (await program.eval({ x }))["y"];
        const i = want.findIndex((w) => relativeL2(y, w) <= 1e-5);
        return i + 1;
      };
      try {
        await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
        assert.equal(await which(), 1);
        for (const [from, to] of [[1, 2], [2, 1], [1, 2]]) {
          await t.step(`v${from} -> v${to} under a stream of evals`, async () => {
            const set = await WeightSet.fromOnnxDir(program, `${dir}/v${to}`);
            let settled = false;
            const swap = program.bindWeights(set).finally(() => settled = true);
            // issued right after the swap: it runs while the swap stages (binds no longer hold evals back)
            const seen = [await which()];
            while (!settled) seen.push(await which());
            await swap;
            seen.push(await which());
            assert.ok(!seen.includes(0), `an output matched no weight set: ${seen}`);
            assert.equal(seen[0], from, `the first eval issued during the swap ran on v${from}: ${seen}`);
            const switched = seen.indexOf(to);
            assert.ok(switched > 0, `v${to} serves after the swap: ${seen}`);
            assert.ok(seen.slice(switched).every((s) => s === to), `once switched, v${to} only: ${seen}`);
          });
        }
        await t.step(
          "a swap that fails while staging leaves the old weights serving through the stream",
          async () => {
            const set = await WeightSet.fromOnnxDir(program, `${dir}/v3`);
            await Deno.truncate(`${dir}/v3/w.bin`, 1000); // the file shrinks after the set was checked
            let settled = false;
            // the failure is taken at once (a rejection left waiting would be reported unhandled)
            const swap = program.bindWeights(set).then(() => null, (e: Error) => e).finally(() =>
              settled = true
            );
            const seen = [await which()];
            while (!settled) seen.push(await which());
            const failure = await swap;
            assert.match(String(failure?.message), /w\.bin/, "the swap fails naming the file");
            seen.push(await which(), await which());
            assert.ok(seen.every((s) => s === 2), `v2 served throughout: ${seen}`);
            // and the next swap works
            await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
            assert.equal(await which(), 1);
          },
        );
        await t.step("concurrent binds run one after the other; the last one issued wins", async () => {
          const s2 = await WeightSet.fromOnnxDir(program, `${dir}/v2`);
          const s1 = await WeightSet.fromOnnxDir(program, `${dir}/v1`);
          const evals = [which(), which()];
          await Promise.all([program.bindWeights(s2), program.bindWeights(s1), ...evals]);
          for (const e of await Promise.all(evals)) assert.ok(e === 1 || e === 2);
          assert.equal(await which(), 1);
        });
      } finally {
        program.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
