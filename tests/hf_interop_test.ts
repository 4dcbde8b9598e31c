// Hugging Face style weights bound to an exporter graph: prefixed tensor names (stripped, added,
// rewritten, or matched by suffix), bfloat16/float16 tensors converted when asked (and refused
// with a hint otherwise), a sharded checkpoint read through model.safetensors.index.json (shards
// checked against the index and kept inside its folder), from the API and the CLI; and the
// float conversions themselves (round to nearest even, infinities, NaN).
import assert from "node:assert/strict";
import {
  castFloats,
  compile,
  loadWeightSet,
  parseOnnx,
  type Program,
  WeightSet,
  WeightSetError,
} from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeSafetensors } from "../core/weights/safetensors.ts";
import { runCli } from "./util/cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY_DIR = `${ROOT}examples/tinynet`;
const TINY = `${TINY_DIR}/tinynet.onnx`;
const DIMS = { x: [1, 3, 16, 16] };

function _x(): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.cos(i * 0.29);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

Deno.test("castFloats: float32 <-> float16 / bfloat16, rounding to nearest even", () => {
  const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
  const back = (
    b: Uint8Array,
    from: "float16" | "bfloat16",
  ) => [...new Float32Array(castFloats(b, from, "float32").buffer)];
  // exact values survive both ways
  const exact = [0, -0, 1, -2, 0.5, 65504, 2 ** -24, Infinity, -Infinity];
  assert.deepEqual(back(castFloats(f32(exact), "float32", "float16"), "float16"), exact);
  assert.deepEqual(back(castFloats(f32([1, -3.5, 2 ** 100]), "float32", "bfloat16"), "bfloat16"), [
    1,
    -3.5,
    2 ** 100,
  ]);
  // halfway cases go to the even neighbour; past the largest half, infinity
  const h = new Uint16Array(
    castFloats(f32([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 2 ** -26]), "float32", "float16").buffer,
  );
  assert.deepEqual([...h], [0x3c00, 0x3c02, 0x7c00, 0x0000]);
  const b = new Uint16Array(castFloats(f32([1 + 2 ** -8, 1 + 3 * 2 ** -8]), "float32", "bfloat16").buffer);
  assert.deepEqual([...b], [0x3f80, 0x3f82]);
  assert.ok(Number.isNaN(back(castFloats(f32([NaN]), "float32", "float16"), "float16")[0]));
  assert.ok(Number.isNaN(back(castFloats(f32([NaN]), "float32", "bfloat16"), "bfloat16")[0]));
});

Deno.test("Hugging Face weights: prefixed names, bfloat16, a sharded index, through the API and the CLI", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_hf_" });
  const programs: Program[] = [];
  try {
    const program = compile(await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }), "ref");
    const oracle = compile(await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }), "ref");
    programs.push(program, oracle);
    const base = await WeightSet.fromOnnxDir(program, TINY_DIR, { lazy: false });
    const sig = program.weightSignature();
    // the checkpoint: bfloat16, every name prefixed "model.", in two shards
    const bf16 = new Map(
      sig.map((s) => [s.name, castFloats(base.tensors.get(s.name)!.bytes, "float32", "bfloat16")]),
    );
    const hf = `${dir}/hf`;
    await Deno.mkdir(hf);
    const shardOf = (name: string) =>
      name.startsWith("conv") ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    for (const shard of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) {
      await writeSafetensors(
        `${hf}/${shard}`,
        sig.filter((s) => shardOf(s.name) === shard).map((s) => ({
          name: `model.${s.name}`,
          dtype: "bfloat16" as const,
          dims: s.dims,
          bytes: bf16.get(s.name)!,
        })),
        { format: "pt" },
      );
    }
    const weightMap = Object.fromEntries(sig.map((s) => [`model.${s.name}`, shardOf(s.name)]));
    await Deno.writeTextFile(
      `${hf}/model.safetensors.index.json`,
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    // what binding them must give: the program with the bfloat16-rounded weights
    await oracle.bindWeights(
      Object.fromEntries(sig.map((s) => [s.name, {
        dtype: "float32" as const,
        dims: s.dims,
        data: new Float32Array(castFloats(bf16.get(s.name)!, "bfloat16", "float32").buffer),
      }])),
    );
    const want = (await oracle.eval({ x: _x() }))["probs"];
    const index = `${hf}/model.safetensors.index.json`;

    await t.step(
      "without cast, a bfloat16 tensor is refused with a hint; unknown prefixed names are listed",
      async () => {
        await assert.rejects(
          () => WeightSet.fromSafetensors(program, index, { names: { stripPrefix: ["model."] } }),
          (e: unknown) => {
            assert.ok(e instanceof WeightSetError, String(e));
            assert.match(
              e.message,
              /element type bfloat16, the program needs float32 \(bind with \{ cast: true \}/,
            );
            return true;
          },
        );
        await assert.rejects(
          () => WeightSet.fromSafetensors(program, index, { cast: true }),
          /unknown weight 'model\.conv1\.weight'/,
        );
      },
    );

    await t.step("stripPrefix + cast through the index: every weight, converted and listed", async () => {
      const set = await WeightSet.fromSafetensors(program, index, {
        cast: true,
        names: { stripPrefix: ["model."] },
      });
      assert.equal(set.casts.length, sig.length);
      assert.deepEqual(set.casts[0], { name: set.casts[0].name, from: "bfloat16", to: "float32" });
      await program.bindWeights(set);
      assert.deepEqual((await program.eval({ x: _x() }))["probs"].data, want.data);
    });

    await t.step("a Hugging Face folder is found by loadWeightSet; rename and suffix rules", async () => {
      const set = await loadWeightSet(program, hf, { cast: true, names: { rename: [[/^model\./, ""]] } });
      assert.equal(set.tensors.size, sig.length);
      // suffix matching: "weight" alone ends several weights' names and is refused, naming them
      await writeSafetensors(`${dir}/amb.safetensors`, [{
        name: "weight",
        dtype: "float32",
        dims: [10],
        bytes: new Uint8Array(40),
      }]);
      await assert.rejects(
        () =>
          WeightSet.fromSafetensors(program, `${dir}/amb.safetensors`, {
            partial: true,
            names: { suffix: true },
          }),
        /tensor 'weight' ends 4 weights' names/,
      );
      // "layers.fc.w" -> strip "layers.", rewrite ".w" to ".weight"
      const fc = base.tensors.get("fc.weight")!;
      await writeSafetensors(`${dir}/fc.safetensors`, [{
        name: "layers.fc.w",
        dtype: "float32",
        dims: fc.dims,
        bytes: fc.bytes,
      }]);
      const one = await WeightSet.fromSafetensors(program, `${dir}/fc.safetensors`, {
        partial: true,
        names: { stripPrefix: ["layers."], rename: [["\\.w$", ".weight"]] },
      });
      assert.deepEqual(one.names(), ["fc.weight"]);
    });

    await t.step("shards are checked against the index and kept inside its folder", async () => {
      const bad = `${dir}/bad`;
      await Deno.mkdir(bad);
      for (const f of Deno.readDirSync(hf)) await Deno.copyFile(`${hf}/${f.name}`, `${bad}/${f.name}`);
      const moved = { ...weightMap, "model.fc.bias": "model-00001-of-00002.safetensors" };
      await Deno.writeTextFile(`${bad}/model.safetensors.index.json`, JSON.stringify({ weight_map: moved }));
      await assert.rejects(
        () => WeightSet.fromSafetensors(program, `${bad}/model.safetensors.index.json`, { cast: true }),
        /tensor 'model\.fc\.bias' is in '.*model-00002-of-00002\.safetensors', the index puts it in/,
      );
      await Deno.writeTextFile(
        `${bad}/model.safetensors.index.json`,
        JSON.stringify({ weight_map: { ...weightMap, "model.fc.bias": "../outside.safetensors" } }),
      );
      await assert.rejects(
        () => WeightSet.fromSafetensors(program, `${bad}/model.safetensors.index.json`, { cast: true }),
        /maps to "\.\.\/outside\.safetensors", not a file inside its folder/,
      );
    });

    await t.step("the CLI: --cast and --strip-prefix on a Hugging Face folder, reported", async () => {
      const prog = `${dir}/t.kiln`;
      assert.equal(
        (await runCli("compile", TINY, "--defer-weights", "--dims", "x=1x3x16x16", "-o", prog)).code,
        0,
      );
      const none = await runCli("perf", prog, "--weights", hf, "--iterations", "1");
      assert.equal(none.code, 1);
      assert.match(
        none.stderr,
        /^kiln: error: Safetensors weights do not fit the program: 16 problems\n {2}- missing weight 'conv1.weight'/,
      );
      assert.match(none.stderr, /\n {2}- unknown weight 'model\.conv1\.weight'/);
      const r = await runCli(
        "perf",
        prog,
        "--weights",
        hf,
        "--cast",
        "--strip-prefix",
        "model.",
        "--iterations",
        "1",
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /cast 8 tensor\(s\) from bfloat16 to float32/);
    });
  } finally {
    for (const p of programs) p.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
