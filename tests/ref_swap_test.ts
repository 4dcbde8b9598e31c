// The ref target's swap path: a WeightSet for a ref program leaves file tensors unread, and the
// bind reads each file range once, straight into a staging region in the core's memory, then
// switches the changed tensors in only when every range is in. Bytes read are counted through
// the host's file layer (core/host.ts), which every file read of kiln goes through.
import assert from "node:assert/strict";
import { compile, load, parseOnnx, type Program, save, WeightSet } from "../mod.ts";
import { host, type HostFile } from "../core/host.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { writeSafetensors } from "../core/weights/safetensors.ts";
import { refStaging } from "../core/targets/ref.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";

const TINY = new URL("../examples/tinynet/tinynet.onnx", import.meta.url).pathname;
const DIMS = { x: [1, 3, 16, 16] };

function _x(): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

/** Counts the bytes read from files under `dir` while `fn` runs (reads, and opens for reading). */
async function _counting<T>(dir: string, fn: () => Promise<T>): Promise<{ bytes: number; result: T }> {
  const open = host.open, openSync = host.openSync;
  let bytes = 0;
  const wrap = (path: string, f: HostFile): HostFile => {
    if (!path.startsWith(dir)) return f;
    const read = f.read.bind(f), readSync = f.readSync.bind(f);
    f.read = async (p) => {
      const n = await read(p);
      bytes += n ?? 0;
      return n;
    };
    f.readSync = (p) => {
      const n = readSync(p);
      bytes += n ?? 0;
      return n;
    };
    return f;
  };
  const h = host as { -readonly [K in keyof typeof host]: (typeof host)[K] };
  h.open = async (p, o) => wrap(p, await open(p, o));
  h.openSync = (p, o) => wrap(p, openSync(p, o));
  try {
    const result = await fn();
    return { bytes, result };
  } finally {
    h.open = open;
    h.openSync = openSync;
  }
}

async function _program(): Promise<Program> {
  return compile(await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }), "ref");
}

Deno.test("ref swap: each weight byte is read once, into the core; an unchanged set is read and skipped", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await writeRandomWeights(TINY, `${dir}/v1`, { seed: 1 });
    await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
    const program = await _program();
    const total = program.weightSignature().reduce((a, s) => a + s.byteLength, 0);
    const x = _x();

    const { bytes: setBytes, result: set1 } = await _counting(
      dir,
      () => WeightSet.fromOnnxDir(program, `${dir}/v1`),
    );
    assert.equal(setBytes, 0, "building a set for a ref program reads no tensor bytes");
    assert.ok([...set1.tensors.values()].every((t) => t.file), "file tensors stay unread");
    const { bytes: bindBytes, result: r1 } = await _counting(dir, () => program.bindWeights(set1));
    assert.equal(bindBytes, total, "the bind reads every weight byte once");
    assert.equal(r1.copied, program.weights.length);
    assert.equal(r1.staging?.bytesRead, total);
    const y1 = (await program.eval({ x }))["probs"];

    // the same weights read on the host and bound from memory give the same result
    const inMemory = await _program();
    const held = await WeightSet.fromOnnxDir(program.weightSignature(), `${dir}/v1`);
    assert.ok([...held.tensors.values()].every((t) => !t.file));
    await inMemory.bindWeights(held);
    assert.deepEqual((await inMemory.eval({ x }))["probs"], y1);
    inMemory.dispose();

    // v2: every tensor differs, each read once
    const set2 = await WeightSet.fromOnnxDir(program, `${dir}/v2`);
    const { bytes: b2, result: r2 } = await _counting(dir, () => program.bindWeights(set2));
    assert.equal(b2, total);
    assert.equal(r2.copied + r2.skipped, program.weights.length);
    assert.ok(r2.copied >= program.weights.length - 1, JSON.stringify(r2));
    const y2 = (await program.eval({ x }))["probs"];
    assert.notDeepEqual(y2, y1);

    // v2 again: read once, compared in the core, nothing copied, nothing to prepare
    const { bytes: b3, result: r3 } = await _counting(dir, () => program.bindWeights(set2));
    assert.equal(b3, total);
    assert.equal(r3.copied, 0);
    assert.equal(r3.skipped, program.weights.length);
    assert.deepEqual((await program.eval({ x }))["probs"], y2);
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ref swap: a partial swap reads and copies only the tensors it changes", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await writeRandomWeights(TINY, `${dir}/v1`, { seed: 1 });
    await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
    const program = await _program();
    await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
    const sig = program.weightSignature();
    const one = sig.find((s) => s.name === "fc.weight") ?? sig[sig.length - 1];
    const v2 = await WeightSet.fromOnnxDir(sig, `${dir}/v2`); // read into memory: the reference
    const t = v2.tensors.get(one.name)!;
    await writeSafetensors(`${dir}/one.safetensors`, [t]);

    const part = await WeightSet.fromSafetensors(program, `${dir}/one.safetensors`, { partial: true });
    const { bytes, result: r } = await _counting(dir, () => program.bindWeights(part));
    assert.equal(bytes, one.byteLength, "only the changed tensor's bytes are read");
    assert.equal(r.copied, 1);
    assert.equal(r.bytesCopied, one.byteLength);

    // the same result as v1 with that one tensor bound from memory
    const want = await _program();
    await want.bindWeights(await WeightSet.fromOnnxDir(want, `${dir}/v1`));
    await want.bindWeights(new WeightSet([{ ...t, file: undefined, bytes: t.bytes }], true));
    const x = _x();
    assert.deepEqual((await program.eval({ x }))["probs"], (await want.eval({ x }))["probs"]);
    want.dispose();
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ref swap: a read that fails midway switches nothing; the set binds once the file is whole", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await writeRandomWeights(TINY, `${dir}/v1`, { seed: 1 });
    const v2 = await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
    const program = await _program();
    await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
    const x = _x();
    const before = (await program.eval({ x }))["probs"];

    // the set is checked against the files, then a file shrinks before the bind reads it
    const set2 = await WeightSet.fromOnnxDir(program, `${dir}/v2`);
    const data = v2.files[0];
    const path = `${dir}/v2/${data.location}`;
    const whole = await Deno.readFile(path);
    const sig = program.weightSignature();
    const last = sig.reduce((a, s) => (s.offset > a.offset ? s : a));
    await Deno.writeFile(path, whole.subarray(0, last.offset + 4)); // every tensor but the last fits
    await assert.rejects(
      program.bindWeights(set2),
      (e: Error) => {
        assert.match(
          e.message,
          new RegExp(`'${last.name}'.*has ${last.offset + 4} bytes.*nothing was bound`),
        );
        return true;
      },
    );
    assert.deepEqual(
      (await program.eval({ x }))["probs"],
      before,
      "the weights that were serving still serve",
    );

    // once the file is whole again, the same set binds
    await Deno.writeFile(path, whole);
    const r = await program.bindWeights(set2);
    assert.ok(r.copied >= sig.length - 1);
    assert.notDeepEqual((await program.eval({ x }))["probs"], before);
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile with weights: large external initializers are read once, at finalize, straight into the core", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const v = await writeRandomWeights(TINY, `${dir}/v1`, { seed: 1 });
    const x = _x();
    const sig = (await _program()).weightSignature();
    const total = sig.reduce((a, s) => a + s.byteLength, 0);
    const limit = 1024; // tinynet's weights are small: a low literal limit makes the large ones host literals
    const large = sig.filter((s) => s.byteLength > limit).reduce((a, s) => a + s.byteLength, 0);
    assert.ok(large > 0 && large < total);

    const { bytes: parsed, result: model } = await _counting(
      dir,
      () => parseOnnx(v.modelPath, { inputDims: DIMS, literalLimit: limit }),
    );
    const modelFile = (await Deno.stat(v.modelPath)).size;
    assert.equal(
      parsed - modelFile,
      total - large,
      "parse reads only the tensors small enough to be literals",
    );
    const lazy = model.hostLiterals.filter((l) => l.file);
    assert.equal(lazy.reduce((a, l) => a + l.file!.length, 0), large);
    const { bytes: compiled, result: program } = await _counting(
      dir,
      () => Promise.resolve(compile(model, "ref")),
    );
    assert.equal(compiled, large, "finalize reads each large tensor once");

    // the same result as the program whose weights were bound
    const bound = await _program();
    await bound.bindWeights(await WeightSet.fromOnnxDir(bound, `${dir}/v1`));
    assert.deepEqual((await program.eval({ x }))["probs"], (await bound.eval({ x }))["probs"]);
    bound.dispose();

    // saved and loaded: the literals are copied from their file ranges into the program file
    await save(program, `${dir}/p.kiln`);
    const loaded = await load(`${dir}/p.kiln`);
    assert.deepEqual((await loaded.eval({ x }))["probs"], (await program.eval({ x }))["probs"]);
    loaded.dispose();
    program.dispose();

    // a data file cut short after the parse: the compile fails naming the literal and the file
    const again = await parseOnnx(v.modelPath, { inputDims: DIMS, literalLimit: limit });
    const path = `${dir}/v1/${v.files[0].location}`;
    await Deno.writeFile(path, (await Deno.readFile(path)).subarray(0, 100));
    assert.throws(
      () => compile(again, "ref"),
      /Cannot read literal '.*': file '.*' has 100 bytes \(it changed since it was checked\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ref swap: a fine-tune's whole .onnx (external data) binds with each byte read once, at bind", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const v2 = await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
    const program = await _program();
    const total = program.weightSignature().reduce((a, s) => a + s.byteLength, 0);
    const modelFile = (await Deno.stat(v2.modelPath)).size;
    const { bytes: built, result: set } = await _counting(
      dir,
      () => WeightSet.fromOnnxModel(program, v2.modelPath),
    );
    assert.equal(built, modelFile, "building the set reads the model's graph, no tensor");
    const { bytes: bound } = await _counting(dir, () => program.bindWeights(set));
    assert.equal(bound, total);
    const want = await _program();
    await want.bindWeights(await WeightSet.fromOnnxDir(want.weightSignature(), `${dir}/v2`));
    const x = _x();
    assert.deepEqual((await program.eval({ x }))["probs"], (await want.eval({ x }))["probs"]);
    want.dispose();
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ref swap: a first bind reads into the slots themselves; failing midway, it leaves every weight unbound", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const v1 = await writeRandomWeights(TINY, `${dir}/v1`, { seed: 1 });
    const program = await _program();
    const set = await WeightSet.fromOnnxDir(program, `${dir}/v1`);
    const path = `${dir}/v1/${v1.files[0].location}`;
    const whole = await Deno.readFile(path);
    const sig = program.weightSignature();
    const last = sig.reduce((a, s) => (s.offset > a.offset ? s : a));
    await Deno.writeFile(path, whole.subarray(0, last.offset + 4));
    await assert.rejects(program.bindWeights(set), /has \d+ bytes \(it changed since it was checked\)/);
    const x = _x();
    // the weights read before the failure are not usable: nothing was bound
    await assert.rejects(program.eval({ x }), /not bound/);
    await Deno.writeFile(path, whole);
    const r = await program.bindWeights(set);
    assert.equal(r.copied, sig.length);
    const want = await _program();
    await want.bindWeights(await WeightSet.fromOnnxDir(want.weightSignature(), `${dir}/v1`));
    assert.deepEqual((await program.eval({ x }))["probs"], (await want.eval({ x }))["probs"]);
    want.dispose();
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ref swap: a swap whose staging would not fit the core's memory is read on the host, as atomically", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const limit = refStaging.limitBytes;
  try {
    await writeRandomWeights(TINY, `${dir}/v1`, { seed: 1 });
    await writeRandomWeights(TINY, `${dir}/v2`, { seed: 2 });
    const program = await _program();
    const total = program.weightSignature().reduce((a, s) => a + s.byteLength, 0);
    await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
    const x = _x();
    refStaging.limitBytes = 0;
    const { bytes, result: r } = await _counting(
      dir,
      async () => program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`)),
    );
    assert.equal(r.staging, undefined, "no staging region");
    assert.equal(bytes, total, "each byte read once, on the host");
    refStaging.limitBytes = limit;
    const want = await _program();
    await want.bindWeights(await WeightSet.fromOnnxDir(want, `${dir}/v2`));
    assert.deepEqual((await program.eval({ x }))["probs"], (await want.eval({ x }))["probs"]);
    want.dispose();
    program.dispose();
  } finally {
    refStaging.limitBytes = limit;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ref swap: a weight switched in by address is what its aliases, its consumers and an output aliasing it read", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const written: string[] = [];
    for (const seed of [1, 2]) {
      const g = new G(seed);
      const w = g.w("w", [4, 6]);
      g.nodes.push({ op: "Reshape", inputs: [w, g.i64([24])], outputs: ["flat"], name: "/flat" });
      g.nodes.push({ op: "MatMul", inputs: ["x", w], outputs: ["y"], name: "/mm" });
      const r = g.o("Reshape", [w, g.i64([6, 4])]);
      g.nodes.push({
        op: "Transpose",
        inputs: [r],
        outputs: ["t"],
        name: "/t",
        attrs: { perm: { ints: [1, 0] } },
      });
      await Deno.mkdir(`${dir}/v${seed}`);
      const io = {
        inputs: [{ name: "x", dims: [2, 4] }],
        outputs: [{ name: "flat" }, { name: "y" }, { name: "t" }],
        opset: 17,
      };
      written.push((await writeGraph(`${dir}/v${seed}`, "m", g, io)).path);
    }
    const x: Tensor = {
      dtype: "float32",
      dims: [2, 4],
      data: new Float32Array([1, -2, 3, 0.5, -1, 4, 2, -3]),
    };
    const want = await Promise.all(written.map(async (p) => {
      const baked = compile(await parseOnnx(p), "ref");
      const out = await baked.eval({ x });
      baked.dispose();
      return out;
    }));
    const program = compile(await parseOnnx(written[0], { deferExternalWeights: true }), "ref");
    await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v1`));
    assert.deepEqual(await program.eval({ x }), want[0]);
    for (const v of [2, 1, 2]) {
      const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v${v}`));
      assert.equal(r.copied, 1);
      assert.deepEqual(await program.eval({ x }), want[v - 1], `after the swap to v${v}`);
    }
    program.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
