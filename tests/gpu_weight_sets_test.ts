// Resident weight sets on the gpu target (tests/util/gpu.ts says which GPU): several whole weight
// sets held on the device beside the bound one, chosen per eval or made current, with every
// output checked against the ref target's for that set; sets that are incomplete, duplicated or
// unreadable are refused and change nothing; removing a set frees it.
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
const ignore = gpuIgnore("gpu_weight_sets_test.ts");
const GPU = gpuUnderTest();

function _x(): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

Deno.test({
  name: `gpu target (${GPU.name}): resident weight sets, chosen per eval or made current`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_sets_" });
    const programs: Program[] = [];
    try {
      const dirs = [TINY_DIR];
      for (const seed of [2, 3]) {
        await writeRandomWeights(TINY, `${dir}/v${seed}`, { seed });
        dirs.push(`${dir}/v${seed}`);
      }
      const x = _x();
      const want: Tensor[] = [];
      for (const d of dirs) {
        const ref = compile(await parseOnnx(`${d}/tinynet.onnx`, { inputDims: DIMS }), "ref");
        programs.push(ref);
        want.push((await ref.eval({ x }))["probs"]);
      }
      const program = compile(
        await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }),
        "gpu",
        { gpu: GPU.options },
      );
      programs.push(program);
      /** Which of v1, v2, v3 an output is (1-based), 0 for none. */
      const which = async (weights?: string) => {
        const y = (await program.eval({ x }, { weights }))["probs"];
        return want.findIndex((w) => relativeL2(y, w) <= 1e-5) + 1;
      };
      await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
      const held = program.info().deviceBytes;
      const weightBytes = program.weights.reduce((a, w) => a + w.length, 0);

      await t.step("two sets added beside the bound one; each eval runs with the one it names", async () => {
        await program.addWeightSet("v2", await WeightSet.fromOnnxDir(program, dirs[1]));
        await program.addWeightSet("v3", await WeightSet.fromOnnxDir(program, dirs[2]));
        assert.deepEqual(program.weightSets, { names: ["v2", "v3"], host: [], current: null });
        assert.equal(
          program.info().deviceBytes,
          held + 2 * weightBytes,
          "each set holds a copy of every weight",
        );
        const seen = [];
        for (const w of [undefined, "v2", "v3", undefined, "v3", "v2", "v2", undefined]) {
          seen.push(await which(w));
        }
        assert.deepEqual(seen, [1, 2, 3, 1, 3, 2, 2, 1]);
      });

      await t.step(
        "useWeights makes a set current; a swap meanwhile changes the bound weights only",
        async () => {
          await program.useWeights("v3");
          assert.equal(await which(), 3);
          assert.equal(await which("v2"), 2, "an eval may still name another set");
          assert.equal(await which(), 3);
          await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[1])); // bound: v1 -> v2
          assert.equal(await which(), 3, "the current set is still v3");
          await program.useWeights(null);
          assert.equal(await which(), 2, "back to the bound weights, now v2");
          await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
          assert.equal(await which(), 1);
        },
      );

      await t.step("a set equal to the bound weights is a copy of its own", async () => {
        await program.addWeightSet("v1copy", await WeightSet.fromOnnxDir(program, dirs[0]));
        await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[2]));
        assert.equal(await which("v1copy"), 1);
        assert.equal(await which(), 3);
        await program.removeWeightSet("v1copy");
      });

      await t.step(
        "incomplete, duplicate, unknown and unreadable sets are refused and change nothing",
        async () => {
          const before = program.info().deviceBytes;
          const partial = await WeightSet.fromOnnxDir(program, dirs[1]);
          const some = [...partial.tensors.values()].slice(0, 1);
          await assert.rejects(
            program.addWeightSet("part", new WeightSet(some, true)),
            (e: unknown) => e instanceof Error && /part/.test(e.message) && /missing/i.test(e.message),
          );
          await assert.rejects(
            program.addWeightSet("v2", await WeightSet.fromOnnxDir(program, dirs[1])),
            (e: unknown) => e instanceof KilnError && /'v2'/.test(e.message),
          );
          await assert.rejects(
            program.eval({ x }, { weights: "nope" }),
            (e: unknown) =>
              e instanceof KilnError && /No weight set 'nope'/.test(e.message) &&
              /'v2', 'v3'/.test(e.message),
          );
          const set = await WeightSet.fromOnnxDir(program, dirs[1]);
          const data = [...set.tensors.values()].find((w) => w.file)!.file!.path;
          const copy = `${dir}/broken`;
          await Deno.mkdir(copy);
          for (const f of Deno.readDirSync(dirs[1])) {
            await Deno.copyFile(`${dirs[1]}/${f.name}`, `${copy}/${f.name}`);
          }
          const broken = await WeightSet.fromOnnxDir(program, copy);
          await Deno.truncate(`${copy}/${data.split("/").pop()}`, 8);
          await assert.rejects(program.addWeightSet("broken", broken), /broken/);
          assert.deepEqual(program.weightSets.names, ["v2", "v3"]);
          assert.equal(program.info().deviceBytes, before, "nothing held by the refused sets");
          assert.equal(await which(), 3);
        },
      );

      await t.step(
        "removing a set frees it; an eval naming it then fails; the current one falls back",
        async () => {
          await program.useWeights("v2");
          await program.removeWeightSet("v2");
          assert.deepEqual(program.weightSets, { names: ["v3"], host: [], current: null });
          assert.equal(await which(), 3, "the bound weights (v3) serve");
          await assert.rejects(program.eval({ x }, { weights: "v2" }), /No weight set 'v2'/);
          await program.removeWeightSet("v3");
          assert.equal(
            program.info().deviceBytes <= held + weightBytes,
            true,
            "the sets' memory is given back",
          );
        },
      );

      await t.step(
        "host-resident sets: kept in pinned host memory, bound by name at the link's rate",
        async () => {
          const before = program.info().deviceBytes;
          await program.addWeightSet("h2", await WeightSet.fromOnnxDir(program, dirs[1]), { on: "host" });
          await program.addWeightSet("h1", await WeightSet.fromOnnxDir(program, dirs[0]), { on: "host" });
          assert.deepEqual(program.weightSets.host, ["h2", "h1"]);
          assert.equal(program.info().deviceBytes, before, "a host set holds no device memory");
          const bound = await which();
          for (const [name, v] of [["h2", 2], ["h1", 1], ["h2", 2]] as const) {
            const r = await program.bindWeights(name);
            assert.equal(await which(), v, `bound from host set ${name}`);
            assert.ok(r.copied + r.skipped === program.weights.length, JSON.stringify(r));
          }
          const again = await program.bindWeights("h2");
          assert.equal(again.copied, 0, "the same set again copies nothing");
          await assert.rejects(program.bindWeights("nope"), /No host weight set 'nope'.*'h2', 'h1'/);
          await program.removeWeightSet("h2");
          await assert.rejects(program.bindWeights("h2"), /No host weight set 'h2'/);
          assert.equal(await which(), 2, "removing the set keeps what it bound");
          await program.removeWeightSet("h1");
          assert.deepEqual(program.weightSets.host, []);
          assert.ok(bound > 0);
        },
      );

      await t.step("the ref target says it has no resident sets", async () => {
        const ref = programs[0];
        await assert.rejects(
          ref.addWeightSet("v2", { dummy: new Float32Array(1) }),
          (e: unknown) => e instanceof KilnError && e.code === "unsupported",
        );
        await assert.rejects(ref.eval({ x }, { weights: "v2" }), /no resident weight sets/);
      });
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
