// Hostile and careless inputs, through the API and the CLI (each CLI run with a time limit): a
// symbolic link that leads out of the model's or weight set's folder, a FIFO or a directory where
// a file is expected, writes that fail or race, outputs whose names collide, a weight set written
// over the model's own data, typed arrays of the wrong type, a wrong checksum, a repeated --input.
// Every case fails with one clear message naming the file or tensor, or works; none hangs, reads
// outside the folder, or loses a file that was there.
import assert from "node:assert/strict";
import {
  compile,
  type KilnError,
  load,
  parseOnnx,
  replaceOnnxExternalWeights,
  save,
  WeightSet,
} from "../mod.ts";
import { buildModel, type ModelSpec } from "../core/onnx/writer.ts";
import { writeNpyFile } from "../core/npy.ts";
import type { WeightSetError } from "../core/weights/weight_set.ts";
import { outputFileNames } from "../cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CLI = `${ROOT}cli.ts`;
const TINY_DIR = `${ROOT}examples/tinynet`;

/** Runs the CLI with a time limit; a run past it is a hang (the test fails, the process is killed). */
async function cli(args: string[], ms = 30_000): Promise<{ code: number; stderr: string; stdout: string }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", CLI, ...args],
      stdout: "piped",
      stderr: "piped",
      signal: ac.signal,
    }).output();
    assert.ok(!ac.signal.aborted, `kiln ${args.join(" ")} hung (no exit within ${ms} ms)`);
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** y = x + w, with w (float32[4]) in external data `location`. */
function _model(location: string, checksum?: string): Uint8Array {
  const spec: ModelSpec = {
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [4] }],
      outputs: [{ name: "y", dtype: "float32", dims: [4] }],
      initializers: [{
        name: "w",
        dtype: "float32",
        dims: [4],
        external: { location, offset: 0, length: 16, ...(checksum ? { checksum } : {}) },
      }],
      nodes: [{ op: "Add", inputs: ["x", "w"], outputs: ["y"] }],
    },
  };
  return buildModel(spec);
}

const W = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);

async function mkfifo(path: string): Promise<boolean> {
  try {
    const r = await new Deno.Command("mkfifo", { args: [path] }).output();
    return r.success;
  } catch {
    return false;
  }
}

Deno.test("containment by real path: a symbolic link out of the folder is refused, naming tensor, location and target", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "kiln_hostile_" });
  try {
    await Deno.mkdir(`${root}/model`);
    await Deno.mkdir(`${root}/outside`);
    await Deno.writeFile(`${root}/outside/secret.bin`, W);
    await Deno.writeFile(`${root}/model/m.onnx`, _model("w.data"));
    await Deno.symlink(`${root}/outside/secret.bin`, `${root}/model/w.data`);
    await t.step("parseOnnx reading the weights", async () => {
      await assert.rejects(
        parseOnnx(`${root}/model/m.onnx`),
        (e: KilnError) =>
          /tensor 'w'/.test(e.message) &&
          /location 'w\.data' leads to '.*outside\/secret\.bin'/.test(e.message),
      );
    });
    await t.step("a weight set from that folder", async () => {
      const program = compile(await parseOnnx(`${root}/model/m.onnx`, { deferExternalWeights: true }), "ref");
      try {
        await assert.rejects(
          WeightSet.fromOnnxDir(program, `${root}/model`),
          (e: WeightSetError) =>
            e.problems.some((p) => /weight 'w'.*leads to '.*outside\/secret\.bin'/.test(p)),
        );
      } finally {
        program.dispose();
      }
    });
    await t.step("a link that stays inside the folder is followed", async () => {
      await Deno.mkdir(`${root}/model2/sub`, { recursive: true });
      await Deno.writeFile(`${root}/model2/sub/real.bin`, W);
      await Deno.writeFile(`${root}/model2/m.onnx`, _model("w.data"));
      await Deno.symlink(`${root}/model2/sub/real.bin`, `${root}/model2/w.data`);
      const p = compile(await parseOnnx(`${root}/model2/m.onnx`), "ref");
      const { y } = await p.eval({ x: { dtype: "float32", dims: [4], data: new Float32Array(4) } });
      assert.deepEqual(Array.from(y.data as Float32Array), [1, 2, 3, 4]);
      p.dispose();
    });
    await t.step("the CLI names it too", async () => {
      const r = await cli(["compile", `${root}/model/m.onnx`, "-o", `${root}/m.kiln`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /leads to '.*outside\/secret\.bin'/);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("only regular files are read: a FIFO or a directory fails at once, naming it", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "kiln_hostile_" });
  try {
    await Deno.writeFile(`${root}/m.onnx`, _model("w.data"));
    const fifo = await mkfifo(`${root}/w.data`);
    await t.step("a FIFO as the data file: no hang", async () => {
      if (!fifo) return console.log("mkfifo unavailable: FIFO case skipped");
      const r = await cli(["compile", `${root}/m.onnx`, "-o", `${root}/m.kiln`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /External data file '.*w\.data' of tensor 'w' is a FIFO, not a regular file/);
    });
    await t.step("a directory as the model, an input, a program file", async () => {
      await Deno.mkdir(`${root}/dir.onnx`);
      await assert.rejects(
        parseOnnx(`${root}/dir.onnx`),
        /Cannot read ONNX model '.*dir\.onnx': is a directory/,
      );
      await Deno.mkdir(`${root}/dir.kiln`);
      await assert.rejects(
        load(`${root}/dir.kiln`),
        /Program file '.*dir\.kiln' is a directory, not a regular file/,
      );
      const r = await cli(["inspect", `${root}/dir.kiln`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /dir\.kiln' is a directory/);
    });
    await t.step("a FIFO as a program file and as an --input", async () => {
      if (!fifo) return;
      await mkfifo(`${root}/p.kiln`);
      const r = await cli(["inspect", `${root}/p.kiln`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /p\.kiln' is a FIFO/);
      // a real program, and a FIFO for its input
      await Deno.writeFile(`${root}/ok.onnx`, _model("ok.data"));
      await Deno.writeFile(`${root}/ok.data`, W);
      assert.equal((await cli(["compile", `${root}/ok.onnx`, "-o", `${root}/ok.kiln`])).code, 0);
      await mkfifo(`${root}/x.npy`);
      const r2 = await cli([
        "run",
        `${root}/ok.kiln`,
        "--input",
        `x=${root}/x.npy`,
        "--output",
        `${root}/out`,
      ]);
      assert.equal(r2.code, 1);
      assert.match(r2.stderr, /x\.npy' is a FIFO/);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writes are atomic: a save that fails leaves the old file whole and no temporary file", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "kiln_hostile_" });
  try {
    await Deno.writeFile(`${root}/m.onnx`, _model("w.data"));
    await Deno.writeFile(`${root}/w.data`, W);
    const program = compile(await parseOnnx(`${root}/m.onnx`, { deferExternalWeights: true }), "ref");
    try {
      await save(program, `${root}/out.kiln`);
      const before = await Deno.readFile(`${root}/out.kiln`);
      await t.step("a baked literal whose file vanished mid-save", async () => {
        // lazy: the baked weight stays a file range until save copies it
        const set = await WeightSet.fromOnnxDir(program, root, { lazy: true });
        const baked = await replaceOnnxExternalWeights(program, set, "ref");
        await Deno.remove(`${root}/w.data`);
        await assert.rejects(save(baked, `${root}/out.kiln`), /w\.data/);
        assert.deepEqual(await Deno.readFile(`${root}/out.kiln`), before, "the old file is intact");
        const left = [...Deno.readDirSync(root)].map((e) => e.name).filter((n) => n.includes("kiln-tmp"));
        assert.deepEqual(left, []);
        await Deno.writeFile(`${root}/w.data`, W);
      });
      await t.step("two saves racing on one path leave one whole program", async () => {
        const baked = await replaceOnnxExternalWeights(program, root, "ref");
        await Promise.all([save(baked, `${root}/race.kiln`), save(program, `${root}/race.kiln`)]);
        const p = await load(`${root}/race.kiln`);
        p.dispose();
      });
    } finally {
      program.dispose();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a weight set is never written over the model's own data files without --force", async () => {
  const root = await Deno.makeTempDir({ prefix: "kiln_hostile_" });
  try {
    await Deno.copyFile(`${TINY_DIR}/tinynet.onnx`, `${root}/tinynet.onnx`);
    await Deno.copyFile(`${TINY_DIR}/tinynet.onnx.data`, `${root}/tinynet.onnx.data`);
    const data = await Deno.readFile(`${root}/tinynet.onnx.data`);
    const r = await cli(["weights", "random", `${root}/tinynet.onnx`, "-o", root]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Refusing to overwrite '.*tinynet\.onnx\.data'.*--force/);
    assert.deepEqual(
      await Deno.readFile(`${root}/tinynet.onnx.data`),
      data,
      "the model's weights are intact",
    );
    const f = await cli(["weights", "random", `${root}/tinynet.onnx`, "-o", root, "--force"]);
    assert.equal(f.code, 0, f.stderr);
    assert.notDeepEqual(await Deno.readFile(`${root}/tinynet.onnx.data`), data);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("outputs whose names map to one file name get distinct files; a repeated --input is refused", async () => {
  const names = outputFileNames(["a/b", "a_b", "A_B", "..", "", "y"]);
  assert.equal(new Set(names.values()).size, 6);
  assert.equal(names.get("a/b"), "a_b.npy");
  assert.equal(names.get("a_b"), "a_b_2.npy");
  assert.equal(names.get("A_B"), "A_B_3.npy", "case-insensitive file systems see A_B and a_b as one");
  assert.ok(!names.get("..")!.startsWith("."));
  const root = await Deno.makeTempDir({ prefix: "kiln_hostile_" });
  try {
    await Deno.writeFile(`${root}/m.onnx`, _model("w.data"));
    await Deno.writeFile(`${root}/w.data`, W);
    assert.equal((await cli(["compile", `${root}/m.onnx`, "-o", `${root}/m.kiln`])).code, 0);
    await writeNpyFile(`${root}/x.npy`, { dtype: "float32", dims: [4], data: new Float32Array(4) });
    const r = await cli([
      "run",
      `${root}/m.kiln`,
      "--input",
      `x=${root}/x.npy`,
      "--input",
      `x=${root}/x.npy`,
      "--output",
      root,
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Input 'x' is given twice/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("typed arrays of the wrong type are refused, never reinterpreted; a wrong checksum fails at compile", async () => {
  const root = await Deno.makeTempDir({ prefix: "kiln_hostile_" });
  try {
    await Deno.writeFile(`${root}/m.onnx`, _model("w.data", "0".repeat(40)));
    await Deno.writeFile(`${root}/w.data`, W);
    await assert.rejects(parseOnnx(`${root}/m.onnx`), /file '.*w\.data' fails its checksum/);
    await Deno.writeFile(`${root}/m2.onnx`, _model("w.data"));
    const p = compile(await parseOnnx(`${root}/m2.onnx`, { deferExternalWeights: true }), "ref");
    try {
      await assert.rejects(
        p.bindWeights({ w: new Int32Array([1, 2, 3, 4]) }),
        (e: WeightSetError) =>
          e.problems.some((x) => /'w'.*an Int32Array, float32 needs a Float32Array/.test(x)),
      );
      await p.bindWeights({ w: new Float32Array([1, 2, 3, 4]) });
      await assert.rejects(
        p.eval({ x: { dtype: "float32", dims: [4], data: new Int32Array(4) as unknown as Float32Array } }),
        /input 'x': its data is an Int32Array, float32 needs a Float32Array/,
      );
    } finally {
      p.dispose();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("names from a file are names: duplicate initializers are refused, '__proto__' and 'constructor' work", async () => {
  const dup: ModelSpec = {
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [2] }],
      outputs: [{ name: "y", dtype: "float32", dims: [2] }],
      initializers: [
        { name: "w", dtype: "float32", dims: [2], data: [1, 2] },
        { name: "w", dtype: "float32", dims: [2], data: [3, 4] },
      ],
      nodes: [{ op: "Add", inputs: ["x", "w"], outputs: ["y"] }],
    },
  };
  await assert.rejects(parseOnnx(buildModel(dup)), /two initializers named 'w' \(initializers 0 and 1\)/);
  const odd: ModelSpec = {
    graph: {
      inputs: [{ name: "constructor", dtype: "float32", dims: [2] }],
      outputs: [{ name: "__proto__", dtype: "float32", dims: [2] }, {
        name: "toString",
        dtype: "float32",
        dims: [2],
      }],
      nodes: [
        { op: "Neg", inputs: ["constructor"], outputs: ["__proto__"] },
        { op: "Abs", inputs: ["constructor"], outputs: ["toString"] },
      ],
    },
  };
  const p = compile(await parseOnnx(buildModel(odd)), "ref");
  try {
    const inputs = Object.fromEntries([["constructor", {
      dtype: "float32" as const,
      dims: [2],
      data: new Float32Array([1, -2]),
    }]]);
    const out = await p.eval(inputs);
    assert.deepEqual(Object.keys(out).sort(), ["__proto__", "toString"]);
    assert.deepEqual(Array.from(Object.getOwnPropertyDescriptor(out, "__proto__")!.value.data), [-1, 2]);
    assert.deepEqual(Array.from(out["toString"].data as Float32Array), [1, 2]);
    await assert.rejects(p.eval({}), /missing input 'constructor'/);
  } finally {
    p.dispose();
  }
});

Deno.test("an output folder that is a file is named, not a bare 'File exists'", async () => {
  const root = await Deno.makeTempDir({ prefix: "kiln_hostile_" });
  try {
    await Deno.writeFile(`${root}/m.onnx`, _model("w.data"));
    await Deno.writeFile(`${root}/w.data`, W);
    assert.equal((await cli(["compile", `${root}/m.onnx`, "-o", `${root}/m.kiln`])).code, 0);
    await writeNpyFile(`${root}/x.npy`, { dtype: "float32", dims: [4], data: new Float32Array(4) });
    await Deno.writeFile(`${root}/out`, new Uint8Array(1));
    const r = await cli(["run", `${root}/m.kiln`, "--input", `x=${root}/x.npy`, "--output", `${root}/out`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Output folder '.*\/out' is a file, not a folder/);
    const w = await cli(["weights", "random", `${root}/m.onnx`, "-o", `${root}/x.npy`]);
    assert.equal(w.code, 1);
    assert.match(w.stderr, /Weight folder '.*x\.npy' is a file, not a folder/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
