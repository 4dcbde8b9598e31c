// Evals on the gpu target replay the run list as a captured graph (tests/util/gpu.ts says which
// GPU: the CPU emulator in CI, whose streams record captures as a device's do, or the real
// device): outputs equal kernel-by-kernel launches bit for bit, a swap captures the new
// addresses (a stale graph would read the old weights), swapping back replays the cached graph,
// a program that needs the host launches kernel by kernel and says why, and `profile` times
// every node.
import assert from "node:assert/strict";
import { compile, KilnError, parseOnnx, type Program, WeightSet } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY_DIR = `${ROOT}examples/tinynet`;
const TINY = `${TINY_DIR}/tinynet.onnx`;
const DIMS = { x: [1, 3, 16, 16] };
const ignore = gpuIgnore("gpu_graph_test.ts");
const GPU = gpuUnderTest();

function _x(seed: number): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

async function _probs(p: Program, x: Tensor): Promise<Float32Array> {
  return (await p.eval({ x }))["probs"].data as Float32Array;
}

Deno.test({
  name: `gpu target (${GPU.name}): evals replay a captured graph, swaps recapture, profile times nodes`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_graph_" });
    const programs: Program[] = [];
    try {
      await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
      const make = async (graphs: boolean) => {
        const p = compile(
          await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }),
          "gpu",
          { gpu: { ...GPU.options, graphs } },
        );
        programs.push(p);
        return p;
      };
      const graphed = await make(true);
      const stepped = await make(false);
      const v1 = (p: Program) => WeightSet.fromOnnxDir(p, TINY_DIR);
      const v2 = (p: Program) => WeightSet.fromOnnxDir(p, `${dir}/v2`);

      await t.step("graphs are on by default and off when asked", () => {
        assert.deepEqual(graphed.info().graphs, { enabled: true, captures: 0, replays: 0 });
        const g = stepped.info().graphs!;
        assert.equal(g.enabled, false);
        assert.match(g.why!, /disabled by the caller/);
      });
      await graphed.bindWeights(await v1(graphed));
      await stepped.bindWeights(await v1(stepped));

      await t.step(
        "replayed evals equal kernel-by-kernel launches bit for bit, new inputs included",
        async () => {
          for (const seed of [0, 1, 2]) {
            const x = _x(seed);
            assert.deepEqual(await _probs(graphed, x), await _probs(stepped, x), `input seed ${seed}`);
          }
          const g = graphed.info().graphs!;
          assert.equal(g.captures, 1, "one capture for one set of addresses");
          assert.equal(g.replays, 3);
        },
      );

      await t.step("a swap captures the new addresses: outputs follow the new weights", async () => {
        const x = _x(5);
        const before = await _probs(graphed, x);
        await graphed.bindWeights(await v2(graphed));
        await stepped.bindWeights(await v2(stepped));
        const after = await _probs(graphed, x);
        assert.deepEqual(after, await _probs(stepped, x));
        assert.ok(
          relativeL2(
            { dtype: "float32", dims: [after.length], data: after },
            { dtype: "float32", dims: [before.length], data: before },
          ) > 1e-3,
          "v2's outputs differ from v1's",
        );
        assert.equal(graphed.info().graphs!.captures, 2);
      });

      await t.step("swapping back replays the graph cached for those addresses", async () => {
        await graphed.bindWeights(await v1(graphed));
        await stepped.bindWeights(await v1(stepped));
        const x = _x(7);
        assert.deepEqual(await _probs(graphed, x), await _probs(stepped, x));
        const g = graphed.info().graphs!;
        assert.equal(g.captures, 2, "v1's buffers came back from the spares: no new capture");
        assert.equal(g.enabled, true);
      });

      await t.step("profile times every node on the device and sums them per op", async () => {
        const replays = graphed.info().graphs!.replays;
        const r = await graphed.profile({ x: _x(0) });
        assert.match(r.device, GPU.kind === "emulator" ? /emulator/ : /./);
        assert.ok(r.nodes.length > 0);
        const ops = new Set(r.nodes.map((n) => n.op));
        assert.ok(ops.has("Conv"), `tinynet's convolutions are timed (ops: ${[...ops].join(", ")})`);
        for (const n of r.nodes) assert.ok(n.ms >= 0 && Number.isFinite(n.ms), `${n.name}: ${n.ms} ms`);
        const sum = r.ops.reduce((a, o) => a + o.ms, 0);
        assert.ok(Math.abs(sum - r.totalMs) <= 1e-6 * Math.max(1, r.totalMs));
        assert.equal(r.ops.reduce((a, o) => a + o.count, 0), r.nodes.length);
        for (let i = 1; i < r.ops.length; i++) {
          assert.ok(r.ops[i - 1].ms >= r.ops[i].ms, "ops sorted by time");
        }
        assert.equal(graphed.info().graphs!.replays, replays, "a profiled eval replays no graph");
        // and the eval after it replays again, with the same outputs
        assert.deepEqual(await _probs(graphed, _x(3)), await _probs(stepped, _x(3)));
        assert.equal(graphed.info().graphs!.replays, replays + 1);
      });

      await t.step("eval returns only the outputs asked for; unknown names are refused", async () => {
        const ref = compile(await parseOnnx(TINY, { inputDims: DIMS }), "ref");
        programs.push(ref);
        const names = graphed.outputs.map((o) => o.name);
        assert.ok(names.includes("probs"));
        for (const p of [graphed, ref]) {
          assert.deepEqual(Object.keys(await p.eval({ x: _x(1) }, { outputs: [] })), []);
          assert.deepEqual(Object.keys(await p.eval({ x: _x(1) }, { outputs: ["probs"] })), ["probs"]);
          await assert.rejects(
            () => p.eval({ x: _x(1) }, { outputs: ["probs", "nope"] }),
            (e: unknown) =>
              e instanceof KilnError && e.code === "input" && /unknown output 'nope'/.test(e.message),
          );
        }
        // outputs left on the device are still what a full eval reads back
        await graphed.eval({ x: _x(4) }, { outputs: [] });
        assert.deepEqual(await _probs(graphed, _x(4)), await _probs(stepped, _x(4)));
      });

      await t.step("profile on the ref target gives the same shape of report (host wall time)", async () => {
        const ref = compile(await parseOnnx(TINY, { inputDims: DIMS }), "ref");
        programs.push(ref);
        const r = await ref.profile({ x: _x(0) });
        assert.equal(r.device, "WebAssembly");
        assert.ok(r.nodes.length > 0 && r.nodes.every((n) => n.ms >= 0));
        assert.ok(r.ops.some((o) => o.op === "Conv"));
      });
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `gpu target (${GPU.name}): TF32 is an opt-in that says where it applies`,
  ignore,
  async fn() {
    const programs: Program[] = [];
    try {
      const make = async (precision: "float32" | "tf32") => {
        const p = compile(
          await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }),
          "gpu",
          { gpu: { ...GPU.options, precision } },
        );
        programs.push(p);
        await p.bindWeights(await WeightSet.fromOnnxDir(p, TINY_DIR));
        return p;
      };
      const strict = await make("float32");
      const tf32 = await make("tf32");
      assert.deepEqual(strict.info().precision, { mode: "float32" });
      const info = tf32.info().precision!;
      const x = _x(2);
      const a = await _probs(strict, x), b = await _probs(tf32, x);
      if (GPU.kind === "emulator") {
        // no vendor BLAS there: the request is reported and the GEMMs stay float32
        assert.equal(info.mode, "float32");
        assert.match(info.why!, /TF32 needs the vendor BLAS/);
        assert.deepEqual(b, a);
      } else {
        assert.ok(info.mode === "tf32" || /TF32/.test(info.why ?? ""), JSON.stringify(info));
        const e = relativeL2(
          { dtype: "float32", dims: [b.length], data: b },
          { dtype: "float32", dims: [a.length], data: a },
        );
        console.log(
          `tinynet with ${info.mode} GEMMs on ${GPU.name}: rel L2 ${e.toExponential(2)} against float32`,
        );
        assert.ok(e <= 1e-2, `TF32 against float32: rel L2 ${e}`);
      }
    } finally {
      for (const p of programs) p.dispose();
    }
  },
});
