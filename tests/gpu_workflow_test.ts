// The weight workflow on the gpu target (tests/util/gpu.ts says which GPU: the CPU emulator of
// kiln's HIP library in CI, the real device under `deno task test:gpu`): compile once with deferred
// weights, bind v1 from files the library reads itself, swap to v2, partial swap, binds that fail
// (missing, short and non-regular files, wrong shapes, out of device memory) and leave the old
// weights serving, bake, save, load, finalize, weightless refit, If branches, and nodes without a
// device kernel running on the host. Every result is compared with the ref target's.
import assert from "node:assert/strict";
import {
  compile,
  type KilnError,
  load,
  parseOnnx,
  type Program,
  replaceOnnxExternalWeights,
  save,
  WeightSet,
} from "../mod.ts";
import { buildModel, type ModelSpec } from "../core/onnx/writer.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { writeSafetensors } from "../core/weights/safetensors.ts";
import { WeightSetError } from "../core/weights/weight_set.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { programInternals } from "../core/program.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY_DIR = `${ROOT}examples/tinynet`;
const TINY = `${TINY_DIR}/tinynet.onnx`;
const DIMS = { x: [1, 3, 16, 16] };
const ignore = gpuIgnore("gpu_workflow_test.ts");
const GPU = gpuUnderTest();

function _x(seed = 0): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

/** The ref target's output for tinynet's model file in `dir` (weights read at parse time). */
async function _refProbs(dir: string, x: Tensor): Promise<Tensor> {
  const p = compile(await parseOnnx(`${dir}/tinynet.onnx`, { inputDims: DIMS }), "ref");
  try {
    return (await p.eval({ x }))["probs"];
  } finally {
    p.dispose();
  }
}

async function _probs(p: Program, x: Tensor): Promise<Tensor> {
  return (await p.eval({ x }))["probs"];
}

function _close(got: Tensor, want: Tensor, what: string): void {
  const e = relativeL2(got, want);
  assert.ok(e <= 1e-5, `${what}: relative L2 ${e.toExponential(2)} against the ref target`);
}

Deno.test({
  name: `gpu target (${GPU.name}): compile once, bind, swap, fail safely, bake, save, load`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_workflow_" });
    try {
      await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
      const x = _x();
      const want1 = await _refProbs(TINY_DIR, x);
      const want2 = await _refProbs(`${dir}/v2`, x);
      assert.ok(relativeL2(want1, want2) > 1e-2, "the two weight sets must differ");
      const program = compile(
        await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }),
        "gpu",
        { gpu: GPU.options },
      );
      try {
        await t.step("the program is on the device; weight-only work is hoisted", () => {
          const info = program.info();
          assert.equal(info.target, "gpu");
          assert.match(info.device, GPU.kind === "emulator" ? /emulator/ : /./);
          assert.ok(info.deviceBytes > 0);
          assert.ok(info.prepareCount > 0, "tinynet's weight Transpose runs in the prepare step");
          assert.equal(program.weights.length, 8);
          assert.ok(program.readsWeightFiles);
        });
        await t.step("eval refuses to run before weights are bound", async () => {
          await assert.rejects(program.eval({ x }), /not bound/);
        });
        await t.step(
          "bind v1 from its ONNX data files (read by the library, not in JavaScript)",
          async () => {
            const set = await WeightSet.fromOnnxDir(program, TINY_DIR);
            for (const w of set.tensors.values()) assert.ok(w.file, `'${w.name}' stays a file range`);
            const r = await program.bindWeights(set);
            assert.equal(r.copied, 8);
            _close(await _probs(program, x), want1, "v1");
          },
        );
        await t.step("swap to v2 from safetensors", async () => {
          const set2 = await WeightSet.fromOnnxDir(program, `${dir}/v2`, { lazy: false });
          await writeSafetensors(`${dir}/v2.safetensors`, [...set2.tensors.values()]);
          await program.bindWeights(await WeightSet.fromSafetensors(program, `${dir}/v2.safetensors`));
          _close(await _probs(program, x), want2, "v2");
        });
        await t.step(
          "the same content again copies nothing; a partial set changes only its tensors",
          async () => {
            const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
            assert.equal(r.copied, 0);
            assert.equal(r.skipped, 8);
            const v1 = await WeightSet.fromOnnxDir(program, TINY_DIR);
            const r2 = await program.bindWeights(new WeightSet([v1.tensors.get("fc.weight")!], true));
            assert.equal(r2.copied, 1);
            const mixed = await _probs(program, x);
            assert.ok(
              relativeL2(mixed, want2) > 1e-3 && relativeL2(mixed, want1) > 1e-3,
              "a mix of v1 and v2",
            );
            await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
            _close(await _probs(program, x), want2, "v2 again");
          },
        );
        await t.step("typed arrays bind from the caller's memory", async () => {
          const set1 = await WeightSet.fromOnnxDir(program, TINY_DIR, { lazy: false });
          const arrays: Record<string, Tensor["data"]> = {};
          for (const w of set1.tensors.values()) arrays[w.name] = new Float32Array(w.bytes.slice().buffer);
          const r = await program.bindWeights(arrays);
          assert.equal(r.copied, 8);
          _close(await _probs(program, x), want1, "v1 from typed arrays");
          await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
        });
        await t.step("failed binds report the file and tensor and leave v2 serving", async () => {
          // a data file that ends early: every tensor past its end is named, nothing changes
          await Deno.mkdir(`${dir}/short`);
          const data = await Deno.readFile(`${dir}/v2/tinynet.onnx.data`);
          await Deno.writeFile(`${dir}/short/tinynet.onnx.data`, data.subarray(0, 100));
          await assert.rejects(WeightSet.fromOnnxDir(program, `${dir}/short`), WeightSetError);
          // the same file shortened after the set was built: the library finds it at commit
          await Deno.mkdir(`${dir}/late`);
          await Deno.writeFile(`${dir}/late/tinynet.onnx.data`, data);
          const late = await WeightSet.fromOnnxDir(program, `${dir}/late`);
          await Deno.writeFile(`${dir}/late/tinynet.onnx.data`, data.subarray(0, 100));
          await assert.rejects(
            program.bindWeights(late),
            (e: KilnError) =>
              e.code === "io" && /late\/tinynet\.onnx\.data/.test(e.message) && /weight '/.test(e.message),
          );
          _close(await _probs(program, x), want2, "v2 after a short file");
          // the data file gone after the set was built: named at commit, nothing changes
          await Deno.mkdir(`${dir}/gone`);
          await Deno.writeFile(`${dir}/gone/tinynet.onnx.data`, data);
          const gone = await WeightSet.fromOnnxDir(program, `${dir}/gone`);
          await Deno.remove(`${dir}/gone/tinynet.onnx.data`);
          await assert.rejects(
            program.bindWeights(gone),
            (e: KilnError) => e.code === "io" && /cannot open '.*gone\/tinynet\.onnx\.data'/.test(e.message),
          );
          _close(await _probs(program, x), want2, "v2 after a missing file");
          // a directory where a data file should be: refused without reading, nothing changes
          await Deno.remove(`${dir}/late/tinynet.onnx.data`);
          await Deno.mkdir(`${dir}/late/tinynet.onnx.data`);
          await assert.rejects(program.bindWeights(late), /not a regular file/);
          _close(await _probs(program, x), want2, "v2 after a directory");
          // wrong shapes and unknown names: all reported at once, before anything is read
          const err = await program.bindWeights({
            "conv1.weight": new Float32Array(5),
            "nope": new Float32Array(1),
          }).then(() => undefined, (e) => e);
          assert.ok(err instanceof WeightSetError, String(err));
          assert.match(err.message, /'conv1\.weight'/);
          assert.match(err.message, /'nope'/);
          _close(await _probs(program, x), want2, "v2 after bad shapes");
        });
        await t.step("bake v1 for gpu: the template unchanged; save, load and finalize agree", async () => {
          const before = program.serialize().ir;
          const baked = await replaceOnnxExternalWeights(program, TINY_DIR, "gpu");
          assert.deepEqual(program.serialize().ir, before);
          assert.equal(baked.target, "gpu");
          assert.equal(baked.weights.length, 0);
          _close(await _probs(program, x), want2, "the template still serves v2");
          const file = `${dir}/v1.kiln`;
          await save(baked, file);
          const loaded = await load(file, { gpu: GPU.options });
          try {
            assert.equal(loaded.target, "gpu");
            _close(await _probs(loaded, x), want1, "baked v1, saved and loaded");
          } finally {
            loaded.dispose();
          }
          const fin = baked.finalize("gpu", { gpu: GPU.options });
          try {
            _close(await _probs(fin, x), want1, "baked v1 finalized in process");
          } finally {
            fin.dispose();
          }
        });
        await t.step("a corrupted literal in a saved gpu program fails its checksum on load", async () => {
          const file = `${dir}/v1.kiln`;
          const bytes = await Deno.readFile(file);
          bytes[bytes.length - 9] ^= 0xff; // inside the last literal
          await Deno.writeFile(`${dir}/bad.kiln`, bytes);
          await assert.rejects(load(`${dir}/bad.kiln`, { gpu: GPU.options }), /checksum/);
        });
        await t.step("a weightless gpu program refits on load, its weights streamed from files", async () => {
          await save(program, `${dir}/weightless.kiln`);
          const p = await load(`${dir}/weightless.kiln`, { gpu: GPU.options, weights: `${dir}/v2` });
          try {
            _close(await _probs(p, x), want2, "weightless + v2");
          } finally {
            p.dispose();
          }
        });
        await t.step("baking a ref program for gpu is refused", async () => {
          const ref = compile(await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }), "ref");
          try {
            await assert.rejects(replaceOnnxExternalWeights(ref, TINY_DIR, "gpu"), /compiled for 'ref'/);
          } finally {
            ref.dispose();
          }
        });
      } finally {
        program.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `gpu target (${GPU.name}): a bind that runs out of device memory leaves the old weights serving`,
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_oom_" });
    try {
      await writeRandomWeights(TINY, `${dir}/v2`, { seed: 3 });
      const x = _x(1);
      const want1 = await _refProbs(TINY_DIR, x);
      const model = await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS });
      // measure what the program holds with one weight set bound
      const probe = compile(model, "gpu", { gpu: GPU.options });
      await probe.bindWeights(await WeightSet.fromOnnxDir(probe, TINY_DIR));
      const held = probe.info().deviceBytes;
      probe.dispose();
      // a limit that fits one weight set but not a second staged beside it
      const program = compile(model, "gpu", { gpu: { ...GPU.options, memoryLimit: held + 512 } });
      try {
        await program.bindWeights(await WeightSet.fromOnnxDir(program, TINY_DIR));
        _close(await _probs(program, x), want1, "v1");
        await assert.rejects(
          program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`)),
          (e: KilnError) =>
            e.code === "memory" && /Out of device memory: weight '/.test(e.message) &&
            /limit/.test(e.message),
        );
        _close(await _probs(program, x), want1, "v1 still serving after the failed bind");
      } finally {
        program.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** y = If(c, then: x * W^T + A, else: x * W^T - B) plus Det(M): a weight in a branch, a weight-only Transpose, and an op without a device kernel. */
function _branchyModel(): ModelSpec {
  const ext = (offset: number) => ({ location: "weights.bin", offset, length: 24 });
  return {
    graph: {
      inputs: [
        { name: "x", dtype: "float32", dims: [2, 3] },
        { name: "c", dtype: "bool", dims: [] },
        { name: "m", dtype: "float32", dims: [3, 3] },
      ],
      outputs: [{ name: "y", dtype: "float32", dims: [2, 3] }, { name: "d", dtype: "float32", dims: [] }],
      initializers: [
        { name: "W", dtype: "float32", dims: [3, 2], external: ext(0) },
        { name: "B", dtype: "float32", dims: [2, 3], external: ext(24) },
      ],
      nodes: [
        {
          op: "Transpose",
          name: "transpose_w",
          inputs: ["W"],
          outputs: ["wt"],
          attrs: { perm: { ints: [1, 0] } },
        },
        { op: "Mul", name: "mul", inputs: ["x", "wt"], outputs: ["xw"] },
        { op: "Det", name: "det", inputs: ["m"], outputs: ["d"] },
        {
          op: "If",
          name: "if",
          inputs: ["c"],
          outputs: ["y"],
          attrs: {
            then_branch: {
              g: {
                name: "then",
                outputs: [{ name: "then_out", dtype: "float32", dims: [2, 3] }],
                initializers: [{ name: "A", dtype: "float32", dims: [2, 3], external: ext(48) }],
                nodes: [{ op: "Add", name: "add_a", inputs: ["xw", "A"], outputs: ["then_out"] }],
              },
            },
            else_branch: {
              g: {
                name: "else",
                outputs: [{ name: "else_out", dtype: "float32", dims: [2, 3] }],
                nodes: [{ op: "Sub", name: "sub_b", inputs: ["xw", "B"], outputs: ["else_out"] }],
              },
            },
          },
        },
      ],
    },
  };
}

Deno.test({
  name: `gpu target (${GPU.name}): If branches, a weight inside a branch, and a node without a device kernel`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_if_" });
    try {
      await Deno.writeFile(`${dir}/model.onnx`, buildModel(_branchyModel()));
      const W = [0.5, -1, 2, 3, -0.25, 4], B = [1, 2, 3, 4, 5, 6], A = [10, 20, 30, 40, 50, 60];
      await Deno.writeFile(`${dir}/weights.bin`, new Uint8Array(new Float32Array([...W, ...B, ...A]).buffer));
      const inputs = (c: boolean) => ({
        x: { dtype: "float32" as const, dims: [2, 3], data: new Float32Array([1, 2, 3, -1, -2, -3]) },
        c: { dtype: "bool" as const, dims: [], data: new Uint8Array([c ? 1 : 0]) },
        m: { dtype: "float32" as const, dims: [3, 3], data: new Float32Array([2, 0, 1, 1, 3, 0, 0, 1, 4]) },
      });
      const ref = compile(
        await parseOnnx(`${dir}/model.onnx`, { inputDims: { x: [2, 3], m: [3, 3] } }),
        "ref",
      );
      const gpu = compile(
        await parseOnnx(`${dir}/model.onnx`, {
          deferExternalWeights: true,
          inputDims: { x: [2, 3], m: [3, 3] },
        }),
        "gpu",
        { gpu: GPU.options },
      );
      try {
        await t.step("the node without a device kernel is reported", () => {
          const host = gpu.info().hostNodes;
          assert.deepEqual(host.map((h) => [h.name, h.op]), [["det", "Det"]]);
          assert.match(host[0].reason, /no device kernel/);
          const graphs = gpu.info().graphs!;
          assert.equal(graphs.enabled, false, "a run list with host steps is not captured");
          assert.match(graphs.why!, /'det' runs on the host|branches on the host/);
        });
        await gpu.bindWeights(await WeightSet.fromOnnxDir(gpu, dir));
        for (const c of [true, false]) {
          await t.step(`branch ${c ? "then" : "else"} and the host node match the ref target`, async () => {
            const want = await ref.eval(inputs(c));
            const got = await gpu.eval(inputs(c));
            assert.deepEqual(Array.from(got.y.data as Float32Array), Array.from(want.y.data as Float32Array));
            assert.ok(Math.abs((got.d.data as Float32Array)[0] - (want.d.data as Float32Array)[0]) < 1e-4);
          });
        }
        await t.step("a partial bind reruns only the prepare nodes downstream of what changed", async () => {
          await gpu.bindWeights({ A: new Float32Array(6).fill(1) }, { partial: true });
          assert.equal(programInternals(gpu).lastPrepareNodes, 0, "A feeds no prepare node");
          await gpu.bindWeights({ W: new Float32Array([1, 2, 3, 4, 5, 6]) }, { partial: true });
          assert.equal(programInternals(gpu).lastPrepareNodes, 1, "W's Transpose reran");
          const got = await gpu.eval(inputs(true));
          const wt = [1, 3, 5, 2, 4, 6];
          const want = [1, 2, 3, -1, -2, -3].map((v, k) => Math.fround(Math.fround(v * wt[k]) + 1));
          assert.deepEqual(Array.from(got.y.data as Float32Array), want);
        });
      } finally {
        ref.dispose();
        gpu.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
