// Seeded weight sets (core/weights/random.ts): determinism, file sizes, offsets and
// distributions, on a graph built here (external initializers of every kind) and, when present,
// on the real exporter graphs.

import { SHARED_MODELS } from "./util/models.ts";
import assert from "node:assert/strict";
import { onnx } from "../core/onnx/onnx_pb.js";
import {
  externalInitializers,
  float32ToFloat16Bits,
  randomWeightBytes,
  SeededRandom,
  weightKind,
  writeRandomWeights,
} from "../core/weights/random.ts";
import { float16BitsToNumber } from "./conformance/compare.ts";

const EXT = onnx.TensorProto.DataLocation.EXTERNAL;

interface Ext {
  name: string;
  type: number;
  dims: number[];
  offset: number;
  length?: number;
  location?: string;
}

/** A graph with only external initializers (no nodes): enough for the weight writer. */
function _model(exts: Ext[]): Uint8Array {
  const initializer = exts.map((e) => ({
    name: e.name,
    data_type: e.type,
    dims: e.dims,
    data_location: EXT,
    external_data: [
      { key: "location", value: e.location ?? "w.bin" },
      { key: "offset", value: String(e.offset) },
      ...(e.length !== undefined ? [{ key: "length", value: String(e.length) }] : []),
    ],
  }));
  return onnx.ModelProto.encode({
    ir_version: 10,
    opset_import: [{ domain: "", version: 18 }],
    graph: { name: "g", initializer, node: [], input: [], output: [] },
  }).finish();
}

const F32 = 1, I64 = 7, BOOL = 9, F16 = 10, BF16 = 16;

const SPEC: Ext[] = [
  { name: "encoder.embed_tokens.weight", type: F32, dims: [1000, 64], offset: 4096, length: 256000 },
  { name: "layer.0.fc.weight", type: F32, dims: [256, 512], offset: 262144, length: 524288 },
  { name: "layer.0.fc.bias", type: F32, dims: [256], offset: 1024, length: 1024 },
  { name: "layer.0.ln_1.weight", type: F32, dims: [4096], offset: 786432, length: 16384 },
  { name: "mask", type: BOOL, dims: [1, 1, 8, 8], offset: 0, length: 64 },
  { name: "flags", type: BOOL, dims: [5], offset: 64, length: 5 },
  { name: "position_ids", type: I64, dims: [1, 128], offset: 2048, length: 1024 },
  { name: "half.weight", type: F16, dims: [64, 64], offset: 802816, length: 8192, location: "sub/h.bin" },
  { name: "bhalf.weight", type: BF16, dims: [64, 64], offset: 16, length: 8192, location: "sub/h.bin" },
];

function _stats(v: ArrayLike<number>): { mean: number; std: number } {
  let s = 0, ss = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  const mean = s / v.length;
  for (let i = 0; i < v.length; i++) ss += (v[i] - mean) ** 2;
  return { mean, std: Math.sqrt(ss / v.length) };
}

async function _written(seed: number): Promise<{ dir: string; main: Uint8Array; sub: Uint8Array }> {
  const src = await Deno.makeTempDir({ prefix: "kiln_rw_src_" });
  await Deno.writeFile(`${src}/m.onnx`, _model(SPEC));
  const dir = await Deno.makeTempDir({ prefix: "kiln_rw_" });
  await writeRandomWeights(`${src}/m.onnx`, dir, { seed });
  await Deno.remove(src, { recursive: true });
  return { dir, main: await Deno.readFile(`${dir}/w.bin`), sub: await Deno.readFile(`${dir}/sub/h.bin`) };
}

Deno.test("SeededRandom gives the same stream for a seed and a different one for another seed", () => {
  const a = new SeededRandom(7), b = new SeededRandom(7), c = new SeededRandom(8);
  const xa = Array.from({ length: 16 }, () => a.nextU32());
  const xb = Array.from({ length: 16 }, () => b.nextU32());
  const xc = Array.from({ length: 16 }, () => c.nextU32());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
  const r = new SeededRandom(1);
  const n = Array.from({ length: 20000 }, () => r.normal());
  const s = _stats(n);
  assert.ok(Math.abs(s.mean) < 0.03 && Math.abs(s.std - 1) < 0.03, `normal(): mean ${s.mean}, std ${s.std}`);
  const u = Array.from({ length: 20000 }, () => r.uniform());
  assert.ok(u.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(_stats(u).mean - 0.5) < 0.01);
});

Deno.test("weightKind() classifies initializers by dtype, rank and name", () => {
  assert.equal(weightKind("m.transformer.wte.weight", "float32", [50257, 768]), "embedding");
  assert.equal(weightKind("m.embeddings.word_embeddings.weight", "float32", [30522, 768]), "embedding");
  assert.equal(weightKind("layer1.0.conv1.weight", "float32", [64, 64, 1, 1]), "fan_in");
  assert.equal(weightKind("m.transformer.h.0.ln_1.weight", "float32", [768]), "norm_scale");
  assert.equal(weightKind("m.embeddings.LayerNorm.weight", "float32", [768]), "norm_scale");
  assert.equal(weightKind("m.embeddings.LayerNorm.bias", "float32", [768]), "bias");
  assert.equal(weightKind("fc.bias", "float32", [1000]), "bias");
  assert.equal(weightKind("le", "bool", [1, 1, 128, 128]), "causal_mask");
  assert.equal(weightKind("flags", "bool", [5]), "true");
  assert.equal(weightKind("unsqueeze", "int64", [1, 128]), "small_int");
});

Deno.test("writeRandomWeights() writes every range at its offset, files at their full size, deterministically", async () => {
  const a = await _written(3), b = await _written(3), c = await _written(4);
  try {
    assert.equal(a.main.length, 786432 + 16384, "w.bin size is its furthest range's end");
    assert.equal(a.sub.length, 802816 + 8192, "sub/h.bin size is its furthest range's end");
    assert.ok((await Deno.stat(`${a.dir}/m.onnx`)).isFile, "the .onnx is copied beside the data");
    assert.deepEqual(a.main, b.main, "same seed, same bytes");
    assert.deepEqual(a.sub, b.sub);
    assert.notDeepEqual(a.main, c.main, "another seed, other bytes");
    // Each range holds exactly randomWeightBytes(seed, name, ...) and gaps stay zero.
    const covered = new Uint8Array(a.main.length);
    for (const s of SPEC.filter((s) => !s.location)) {
      const want = randomWeightBytes(
        3,
        s.name,
        s.type === F32 ? "float32" : s.type === I64 ? "int64" : "bool",
        s.dims,
      );
      assert.deepEqual(a.main.subarray(s.offset, s.offset + s.length!), want, `range of '${s.name}'`);
      covered.fill(1, s.offset, s.offset + s.length!);
    }
    for (let i = 0; i < covered.length; i++) {
      if (!covered[i]) assert.equal(a.main[i], 0, `gap byte ${i} is zero`);
    }
    // Distributions.
    const f32 = (s: Ext) => new Float32Array(a.main.slice(s.offset, s.offset + s.length!).buffer);
    const emb = _stats(f32(SPEC[0]));
    assert.ok(
      Math.abs(emb.mean) < 0.002 && Math.abs(emb.std - 0.02) < 0.001,
      `embedding ${JSON.stringify(emb)}`,
    );
    const fc = _stats(f32(SPEC[1]));
    assert.ok(Math.abs(fc.std - 1 / Math.sqrt(512)) < 0.002, `fan_in std ${fc.std} vs ${1 / Math.sqrt(512)}`);
    const bias = _stats(f32(SPEC[2]));
    assert.ok(
      Math.abs(bias.mean) < 0.005 && Math.abs(bias.std - 0.02) < 0.004,
      `bias ${JSON.stringify(bias)}`,
    );
    const ln = _stats(f32(SPEC[3]));
    assert.ok(
      Math.abs(ln.mean - 1) < 0.002 && Math.abs(ln.std - 0.02) < 0.002,
      `norm scale ${JSON.stringify(ln)}`,
    );
    const mask = a.main.subarray(0, 64);
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 8; j++) assert.equal(mask[i * 8 + j], j <= i ? 1 : 0, `mask[${i},${j}]`);
    }
    assert.deepEqual([...a.main.subarray(64, 69)], [1, 1, 1, 1, 1]);
    const ids = new BigInt64Array(a.main.slice(2048, 3072).buffer);
    assert.ok(ids.every((v) => v === 0n || v === 1n), "integers are 0 or 1");
    assert.ok(ids.some((v) => v === 1n) && ids.some((v) => v === 0n));
    const half = new Uint16Array(a.sub.slice(802816, 802816 + 8192).buffer);
    const hs = _stats(Array.from(half, float16BitsToNumber));
    assert.ok(Math.abs(hs.std - 1 / 8) < 0.01, `float16 std ${hs.std}`);
    const bh = new Uint16Array(a.sub.slice(16, 16 + 8192).buffer);
    const bs = _stats(Array.from(bh, (x) => new Float32Array(new Uint32Array([x << 16]).buffer)[0]));
    assert.ok(Math.abs(bs.std - 1 / 8) < 0.01, `bfloat16 std ${bs.std}`);
  } finally {
    for (const d of [a.dir, b.dir, c.dir]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("float32ToFloat16Bits() rounds to nearest even and handles specials", () => {
  assert.equal(float32ToFloat16Bits(1), 0x3c00);
  assert.equal(float32ToFloat16Bits(-2), 0xc000);
  assert.equal(float32ToFloat16Bits(65504), 0x7bff);
  assert.equal(float32ToFloat16Bits(1e6), 0x7c00);
  assert.equal(float32ToFloat16Bits(2 ** -24), 0x0001);
  assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00, "tie rounds to even");
  assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02, "tie rounds to even (up)");
  assert.ok(Number.isNaN(float16BitsToNumber(float32ToFloat16Bits(NaN))));
  for (const v of [0.1, -3.5, 1000.25, 6e-5]) {
    assert.ok(Math.abs(float16BitsToNumber(float32ToFloat16Bits(v)) - v) <= Math.abs(v) * 2 ** -11);
  }
});

Deno.test("externalInitializers() rejects a location that escapes the model's folder", () => {
  const bad = _model([{ name: "w", type: F32, dims: [2], offset: 0, length: 8, location: "../w.bin" }]);
  assert.throws(() => externalInitializers(bad), /escapes the model's folder/);
  const wrong = _model([{ name: "w", type: F32, dims: [2], offset: 0, length: 12 }]);
  assert.throws(() => externalInitializers(wrong), /does not fit float32\[2\]/);
});

const GPT2 = `${SHARED_MODELS}/gpt2_dynamo.onnx`;
let gpt2Present = false;
try {
  gpt2Present = Deno.statSync(GPT2).isFile;
} catch { /* absent */ }
if (!gpt2Present) console.log(`weights test on GPT-2 skipped: ${GPT2} not found`);

Deno.test({
  name: "writeRandomWeights() writes GPT-2's 497,339,392-byte data file in seconds",
  ignore: !gpt2Present,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kiln_rw_gpt2_" });
    try {
      const t0 = performance.now();
      const r = await writeRandomWeights(GPT2, dir, { seed: 1 });
      const ms = performance.now() - t0;
      console.log(
        `GPT-2 seeded weights: ${r.tensors.length} tensors, ${r.files[0].bytes} bytes in ${ms.toFixed(0)} ms`,
      );
      assert.equal(r.files.length, 1);
      assert.equal(r.files[0].location, "gpt2_dynamo.onnx.data");
      assert.equal(r.files[0].bytes, 497_339_392);
      assert.equal((await Deno.stat(r.files[0].path)).size, 497_339_392);
      assert.equal(r.tensors.length, 55);
      assert.ok(ms < 30_000, `took ${ms} ms`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
