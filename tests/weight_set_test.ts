import assert from "node:assert/strict";
import { readSafetensorsIndex, writeSafetensors } from "../core/weights/safetensors.ts";
import { WeightSet, WeightSetError, type WeightSpec } from "../core/weights/weight_set.ts";

function _f32bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

const SIG: WeightSpec[] = [
  {
    name: "w",
    dtype: "float32",
    dims: [2, 2],
    byteLength: 16,
    location: "m.data",
    offset: 0,
    length: 16,
    checksum: "",
  },
  {
    name: "b",
    dtype: "float32",
    dims: [2],
    byteLength: 8,
    location: "m.data",
    offset: 4096,
    length: 8,
    checksum: "",
  },
];

Deno.test("WeightSet.fromOnnxDir() reads each weight at its recorded offset", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = new Uint8Array(4104);
    data.set(_f32bytes([1, 2, 3, 4]), 0);
    data.set(_f32bytes([5, 6]), 4096);
    await Deno.writeFile(`${dir}/m.data`, data);
    const set = await WeightSet.fromOnnxDir(SIG, dir);
    assert.deepEqual([...new Float32Array(set.tensors.get("b")!.bytes.slice().buffer)], [5, 6]);
    assert.deepEqual([...new Float32Array(set.tensors.get("w")!.bytes.slice().buffer)], [1, 2, 3, 4]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WeightSet.fromOnnxDir() reports every problem at once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.data`, new Uint8Array(100)); // too short for 'b'
    const sig: WeightSpec[] = [
      ...SIG,
      { ...SIG[0], name: "esc", location: "../outside.data" },
      { ...SIG[0], name: "abs", location: "/etc/passwd" },
      { ...SIG[0], name: "gone", location: "missing.data" },
    ];
    const err = await WeightSet.fromOnnxDir(sig, dir).then(() => null, (e) => e);
    assert.ok(err instanceof WeightSetError, String(err));
    const text = err.problems.join("\n");
    assert.match(text, /'esc'.*escapes/);
    assert.match(text, /'abs'.*absolute/);
    assert.match(text, /missing\.data.*missing/);
    assert.match(text, /'b'.*has 100 bytes, the weight needs bytes 4096\.\.4104/);
    assert.equal(err.problems.length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WeightSet.fromOnnxDir() checks the recorded SHA-1 of a data file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.data`, new Uint8Array(4104));
    const sig = SIG.map((s) => ({ ...s, checksum: "0".repeat(40) }));
    await assert.rejects(WeightSet.fromOnnxDir(sig, dir), /fails its checksum/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WeightSet.fromArrays() validates names, dtypes and shapes together", () => {
  const err = (() => {
    try {
      WeightSet.fromArrays(SIG, {
        w: { dtype: "float64", dims: [2, 2], data: new Float64Array(4) },
        extra: new Float32Array(2),
      });
    } catch (e) {
      return e as WeightSetError;
    }
  })();
  assert.ok(err instanceof WeightSetError);
  const text = err.problems.join("\n");
  assert.match(text, /missing weight 'b'/);
  assert.match(text, /unknown weight 'extra'/);
  assert.match(text, /'w'.*element type float64, the program needs float32/);
  const ok = WeightSet.fromArrays(SIG, { b: new Float32Array([1, 2]) }, { partial: true });
  assert.deepEqual(ok.names(), ["b"]);
});

Deno.test("WeightSet.fromSafetensors() matches names, with a name map", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/w.safetensors`;
    await writeSafetensors(path, [
      { name: "model.w", dtype: "float32", dims: [2, 2], bytes: _f32bytes([1, 2, 3, 4]) },
      { name: "b", dtype: "float32", dims: [2], bytes: _f32bytes([7, 8]) },
    ]);
    const index = await readSafetensorsIndex(path);
    assert.equal(index.entries.get("b")!.offset % 8, 0);
    const set = await WeightSet.fromSafetensors(SIG, path, { nameMap: { "model.w": "w" } });
    assert.deepEqual([...new Float32Array(set.tensors.get("w")!.bytes.slice().buffer)], [1, 2, 3, 4]);
    await assert.rejects(
      WeightSet.fromSafetensors(SIG, path),
      /missing weight 'w'[\s\S]*unknown weight 'model\.w'/,
    );
    await Deno.writeFile(`${dir}/junk.safetensors`, new Uint8Array(4));
    await assert.rejects(WeightSet.fromSafetensors(SIG, `${dir}/junk.safetensors`), /not a safetensors file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
