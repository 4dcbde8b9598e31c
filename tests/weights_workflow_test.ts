// The weight-replacement workflow end to end on the bundled tinynet: compile once with
// deferred weights, bind v1, swap to v2, bake, save, load; every result compared with
// onnxruntime-node given the same weights.
import assert from "node:assert/strict";
import { compile, KilnError, load, parseOnnx, replaceOnnxExternalWeights, save, WeightSet } from "../mod.ts";
import { buildModel } from "../core/onnx/writer.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { readSafetensorsIndex, writeSafetensors } from "../core/weights/safetensors.ts";
import { WeightSetError } from "../core/weights/weight_set.ts";
import { runOrt } from "./util/ort.ts";
import { runCli } from "./util/cli.ts";
import { relativeL2 } from "./conformance/compare.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY_DIR = `${ROOT}examples/tinynet`;
const TINY = `${TINY_DIR}/tinynet.onnx`;
const DIMS = { x: [1, 3, 16, 16] };

function _x(seed = 0): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

Deno.test("bindWeights() swaps weights without recompiling; bake and load agree with onnxruntime", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const v2 = await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
    const x = _x();
    const want1 = (await runOrt(TINY, { x }))["probs"];
    const want2 = (await runOrt(v2.modelPath, { x }))["probs"];
    assert.ok(relativeL2(want1, want2) > 1e-2, "the two weight sets must differ");

    const program = compile(await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }), "ref");
    assert.equal(program.weights.length, 8);
    assert.ok(program.info().prepareCount > 0, "the weight-only Transpose is hoisted into the prepare step");

    await t.step("eval refuses to run before weights are bound", async () => {
      await assert.rejects(program.eval({ x }), /not bound/);
    });
    await t.step("bind v1 (ONNX dir) matches onnxruntime", async () => {
      const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, TINY_DIR));
      assert.equal(r.copied, 8);
      assert.ok(relativeL2((await program.eval({ x }))["probs"], want1) <= 1e-4);
    });
    await t.step("swap to v2 (safetensors) matches onnxruntime", async () => {
      const set2 = await WeightSet.fromOnnxDir(program, `${dir}/v2`);
      await writeSafetensors(`${dir}/v2.safetensors`, [...set2.tensors.values()]);
      await program.bindWeights(await WeightSet.fromSafetensors(program, `${dir}/v2.safetensors`));
      assert.ok(relativeL2((await program.eval({ x }))["probs"], want2) <= 1e-4);
    });
    await t.step("a failed bind reports every problem and keeps the weights that were serving", async () => {
      const before = (await program.eval({ x }))["probs"];
      const err = await (async () => {
        try {
          await program.bindWeights({
            "conv1.weight": new Float32Array(5),
            "fc.bias": { dtype: "float64", dims: [10], data: new Float64Array(10) },
            "nope": new Float32Array(1),
          });
        } catch (e) {
          return e;
        }
      })();
      assert.ok(err instanceof WeightSetError, String(err));
      assert.equal(err.problems.length >= 3, true, err.message);
      assert.match(err.message, /'conv1\.weight'/);
      assert.match(err.message, /'fc\.bias'.*float64/);
      assert.match(err.message, /'nope'/);
      assert.deepEqual((await program.eval({ x }))["probs"].data, before.data);
    });
    await t.step(
      "rebinding the same content copies nothing; a partial set changes only its tensors",
      async () => {
        const set2 = await WeightSet.fromOnnxDir(program, `${dir}/v2`);
        const r = await program.bindWeights(set2);
        assert.equal(r.copied, 0);
        assert.equal(r.skipped, 8);
        const set1 = await WeightSet.fromOnnxDir(program, TINY_DIR);
        const fc = set1.tensors.get("fc.weight")!;
        const r2 = await program.bindWeights(new WeightSet([fc], true));
        assert.equal(r2.copied, 1);
        const out = (await program.eval({ x }))["probs"];
        assert.ok(relativeL2(out, want2) > 1e-3 && relativeL2(out, want1) > 1e-3, "a mix of v1 and v2");
        await program.bindWeights(set2);
        assert.ok(relativeL2((await program.eval({ x }))["probs"], want2) <= 1e-4);
      },
    );
    await t.step("bake v1: a new program, the template unchanged", async () => {
      const before = program.serialize().ir;
      const baked = await replaceOnnxExternalWeights(program, TINY_DIR, "ref");
      assert.deepEqual(program.serialize().ir, before);
      assert.equal(baked.weights.length, 0);
      const ready = baked.finalize("ref");
      assert.ok(relativeL2((await ready.eval({ x }))["probs"], want1) <= 1e-4);
      ready.dispose();
      // the template still serves v2
      assert.ok(relativeL2((await program.eval({ x }))["probs"], want2) <= 1e-4);
      await save(baked, `${dir}/v1.kiln`);
      const loaded = await load(`${dir}/v1.kiln`);
      assert.equal(loaded.weights.length, 0);
      assert.ok(relativeL2((await loaded.eval({ x }))["probs"], want1) <= 1e-4);
      loaded.dispose();
    });
    await t.step("a failed bake changes nothing", async () => {
      await Deno.mkdir(`${dir}/short`);
      await Deno.writeFile(`${dir}/short/tinynet.onnx.data`, new Uint8Array(1000));
      await assert.rejects(replaceOnnxExternalWeights(program, `${dir}/short`, "ref"), /needs bytes/);
      assert.ok(relativeL2((await program.eval({ x }))["probs"], want2) <= 1e-4);
    });
    await t.step("a weightless program saves its signature and binds after load", async () => {
      await save(program, `${dir}/weightless.kiln`);
      const size = (await Deno.stat(`${dir}/weightless.kiln`)).size;
      assert.ok(size < 32 * 1024, `weightless file is ${size} bytes`);
      const loaded = await load(`${dir}/weightless.kiln`);
      assert.deepEqual(loaded.weightSignature(), program.weightSignature());
      await loaded.bindWeights(await WeightSet.fromOnnxDir(loaded, `${dir}/v2`));
      assert.ok(relativeL2((await loaded.eval({ x }))["probs"], want2) <= 1e-4);
      loaded.dispose();
    });
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln CLI: compile --defer-weights once, run with v1 and v2, bake v2, all equal onnxruntime", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const x = _x(1);
    const { writeNpyFile, readNpyFile } = await import("../core/npy.ts");
    await writeNpyFile(`${dir}/x.npy`, x);
    const ok = async (...args: string[]) => {
      const r = await runCli(...args);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    };
    await ok("compile", TINY, "--defer-weights", "--dims", "x=1x3x16x16", "-o", `${dir}/t.kiln`);
    await ok("weights", "random", `${dir}/t.kiln`, "--seed", "7", "-o", `${dir}/v2`);
    await ok("weights", "convert", `${dir}/t.kiln`, `${dir}/v2`, "-o", `${dir}/v2.safetensors`);
    // the metadata transformers' loaders look for
    assert.equal((await readSafetensorsIndex(`${dir}/v2.safetensors`)).metadata.get("format"), "pt");
    await ok(
      "run",
      `${dir}/t.kiln`,
      "--weights",
      TINY_DIR,
      "--input",
      `x=${dir}/x.npy`,
      "--output",
      `${dir}/o1`,
    );
    await ok(
      "run",
      `${dir}/t.kiln`,
      "--weights",
      `${dir}/v2.safetensors`,
      "--input",
      `x=${dir}/x.npy`,
      "--output",
      `${dir}/o2`,
    );
    await ok("weights", "convert", `${dir}/t.kiln`, `${dir}/v2.safetensors`, "-o", `${dir}/v2back`);
    assert.deepEqual(
      await Deno.readFile(`${dir}/v2back/tinynet.onnx.data`),
      await Deno.readFile(`${dir}/v2/tinynet.onnx.data`),
    );
    await ok("bake", `${dir}/t.kiln`, "--weights", `${dir}/v2`, "-o", `${dir}/b2.kiln`);
    await ok("run", `${dir}/b2.kiln`, "--input", `x=${dir}/x.npy`, "--output", `${dir}/o3`);
    await Deno.copyFile(TINY, `${dir}/v2/tinynet.onnx`);
    const want1 = (await runOrt(TINY, { x }))["probs"];
    const want2 = (await runOrt(`${dir}/v2/tinynet.onnx`, { x }))["probs"];
    assert.ok(relativeL2(await readNpyFile(`${dir}/o1/probs.npy`), want1) <= 1e-4);
    assert.ok(relativeL2(await readNpyFile(`${dir}/o2/probs.npy`), want2) <= 1e-4);
    assert.ok(relativeL2(await readNpyFile(`${dir}/o3/probs.npy`), want2) <= 1e-4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln CLI: bad weight sources fail with a head line and one line per problem, naming the tensor or file", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const r0 = await runCli(
      "compile",
      TINY,
      "--defer-weights",
      "--dims",
      "x=1x3x16x16",
      "-o",
      `${dir}/t.kiln`,
    );
    assert.equal(r0.code, 0, r0.stderr);
    // models whose external locations escape their folder or are absolute
    for (const [name, location] of [["escape", "../secret.data"], ["absolute", "/etc/passwd"]]) {
      await Deno.mkdir(`${dir}/${name}`);
      await Deno.writeFile(
        `${dir}/${name}/m.onnx`,
        buildModel({
          graph: {
            inputs: [{ name: "x", dtype: "float32", dims: [4] }],
            outputs: [{ name: "y", dtype: "float32", dims: [4] }],
            initializers: [{
              name: "w",
              dtype: "float32",
              dims: [4],
              external: { location, offset: 0, length: 16 },
            }],
            nodes: [{ op: "Add", inputs: ["x", "w"], outputs: ["y"] }],
          },
        }),
      );
    }
    await Deno.mkdir(`${dir}/trunc`);
    await Deno.writeFile(`${dir}/trunc/tinynet.onnx.data`, new Uint8Array(20000));
    await Deno.mkdir(`${dir}/empty`);
    const cases: [string, string[], RegExp][] = [
      [
        "escaping location",
        ["compile", `${dir}/escape/m.onnx`, "-o", `${dir}/e.kiln`],
        /'w'.*\.\.\/secret\.data|secret\.data.*'w'/,
      ],
      [
        "absolute location",
        ["compile", `${dir}/absolute/m.onnx`, "-o", `${dir}/a.kiln`],
        /'w'.*\/etc\/passwd|\/etc\/passwd.*'w'/,
      ],
      [
        "missing data file",
        ["bake", `${dir}/t.kiln`, "--weights", `${dir}/empty`, "-o", `${dir}/b.kiln`],
        /tinynet\.onnx\.data.*missing/,
      ],
      [
        "truncated data file",
        ["bake", `${dir}/t.kiln`, "--weights", `${dir}/trunc`, "-o", `${dir}/b.kiln`],
        /'fc\.weight'.*20000 bytes/,
      ],
      ["no weights for a weightless program", ["run", `${dir}/t.kiln`, "--output", `${dir}/o`], /--weights/],
      [
        "not a weight source",
        ["bake", `${dir}/t.kiln`, "--weights", `${dir}/t.kiln`, "-o", `${dir}/b.kiln`],
        /neither a directory/,
      ],
    ];
    for (const [name, args, pattern] of cases) {
      await t.step(name, async () => {
        const r = await runCli(...args);
        assert.notEqual(r.code, 0);
        // a head line, then one line per problem (a weight set's problems are listed, not joined)
        const [head, ...problems] = r.stderr.trimEnd().split("\n");
        assert.match(head, /^kiln: error: /, r.stderr);
        for (const p of problems) assert.match(p, /^ {2}- \S/, r.stderr);
        assert.match(problems.length ? problems.join("\n") : head, pattern);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WeightSet: float16 weights bind from safetensors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const half = new Uint16Array([0x3c00, 0x4000, 0xc000, 0x3800]); // 1, 2, -2, 0.5
    const bytes = new Uint8Array(half.buffer);
    await Deno.writeFile(`${dir}/w.data`, bytes);
    await Deno.writeFile(
      `${dir}/m.onnx`,
      buildModel({
        graph: {
          inputs: [{ name: "x", dtype: "float32", dims: [4] }],
          outputs: [{ name: "y", dtype: "float32", dims: [4] }],
          initializers: [{
            name: "w",
            dtype: "float16",
            dims: [4],
            external: { location: "w.data", offset: 0, length: 8 },
          }],
          nodes: [
            { op: "Cast", inputs: ["w"], outputs: ["wf"], attrs: { to: { i: 1 } } },
            { op: "Mul", inputs: ["x", "wf"], outputs: ["y"] },
          ],
        },
      }),
    );
    const program = compile(await parseOnnx(`${dir}/m.onnx`, { deferExternalWeights: true }), "ref");
    assert.deepEqual(program.weightSignature().map((w) => w.dtype), ["float16"]);
    await writeSafetensors(`${dir}/w.safetensors`, [{ name: "w", dtype: "float16", dims: [4], bytes }]);
    await program.bindWeights(await WeightSet.fromSafetensors(program, `${dir}/w.safetensors`));
    const x: Tensor = { dtype: "float32", dims: [4], data: new Float32Array([3, 3, 3, 3]) };
    assert.deepEqual([...(await program.eval({ x }))["y"].data as Float32Array], [3, 6, -6, 1.5]);
    const err = await WeightSet.fromSafetensors(program, `${dir}/nonexistent.safetensors`).catch((e) => e);
    assert.ok(err instanceof KilnError);
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseOnnx({ deferExternalWeights }) keeps shape inputs as fixed literals; save/load keeps the list", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = new Uint8Array(4096 + 16);
    new BigInt64Array(data.buffer, 0, 2).set([2n, 3n]);
    new Float32Array(data.buffer, 4096, 3).set([1, 2, 3]);
    await Deno.writeFile(`${dir}/m.data`, data);
    await Deno.writeFile(
      `${dir}/m.onnx`,
      buildModel({
        graph: {
          inputs: [{ name: "x", dtype: "float32", dims: [6] }],
          outputs: [{ name: "y", dtype: "float32", dims: [2, 3] }],
          initializers: [
            {
              name: "shape",
              dtype: "int64",
              dims: [2],
              external: { location: "m.data", offset: 0, length: 16 },
            },
            {
              name: "b",
              dtype: "float32",
              dims: [3],
              external: { location: "m.data", offset: 4096, length: 12 },
            },
          ],
          nodes: [
            { op: "Reshape", inputs: ["x", "shape"], outputs: ["r"] },
            { op: "Add", inputs: ["r", "b"], outputs: ["y"] },
          ],
        },
      }),
    );
    const program = compile(await parseOnnx(`${dir}/m.onnx`, { deferExternalWeights: true }), "ref");
    assert.deepEqual(program.fixedWeights, ["shape"]);
    assert.deepEqual(program.weightSignature().map((w) => w.name), ["b"]);
    await save(program, `${dir}/m.kiln`);
    const loaded = await load(`${dir}/m.kiln`);
    assert.deepEqual(loaded.fixedWeights, ["shape"]);
    await loaded.bindWeights(await WeightSet.fromOnnxDir(loaded, dir));
    const y =
      (await loaded.eval({ x: { dtype: "float32", dims: [6], data: new Float32Array([0, 0, 0, 1, 1, 1]) } }))[
        "y"
      ];
    assert.deepEqual(y.dims, [2, 3]);
    assert.deepEqual([...y.data as Float32Array], [1, 2, 3, 2, 3, 4]);
    program.dispose();
    loaded.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load(path, { weights }) refits a weightless program on load, or fails naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const v2 = await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
    const x = _x(1);
    const program = compile(await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }), "ref");
    await save(program, `${dir}/tiny.weightless.kiln`);
    program.dispose();

    const a = await load(`${dir}/tiny.weightless.kiln`, { weights: `${dir}/v2` });
    const want2 = (await runOrt(v2.modelPath, { x }))["probs"];
    assert.ok(relativeL2((await a.eval({ x }))["probs"], want2) <= 1e-4, "v2 bound on load");
    a.dispose();

    await Deno.mkdir(`${dir}/short`);
    await Deno.writeFile(`${dir}/short/tinynet.onnx.data`, new Uint8Array(16)); // truncated data file
    const err = await load(`${dir}/tiny.weightless.kiln`, { weights: `${dir}/short` }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof WeightSetError, String(err));
    assert.match(err.message, /Cannot bind weights to '.*tiny\.weightless\.kiln' on load: \d+ problems/);
    assert.ok(err.problems.every((p: string) => /tinynet\.onnx\.data/.test(p)), err.problems.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
