// Packed-only weights on the ref target (docs/internals.md "Packed-only weights"): a weight or
// external initializer that only GEMM packings read is never stored raw. A bind reads its file
// range in chunks into a small staging buffer in the core and packs each chunk into the spare of
// its packing (switched in only when every tensor is in); compiling with the weights packs each
// literal at finalize the same way. Results must equal, bit for bit, those of the same model with
// the packing left to the prepare step (the packing is the same) and of the unpacked GEMM.
import assert from "node:assert/strict";
import { Adapter, compile, load, parseOnnx, type Program, save, WeightSet } from "../mod.ts";
import { deserializeProgram, programInternals } from "../core/program.ts";
import { host, type HostFile } from "../core/host.ts";
import type { Tensor } from "../core/tensor.ts";
import { refStaging } from "../core/targets/ref.ts";
import { Engine, threadsUnavailable } from "../core/engine.ts";
import { writeSafetensors } from "../core/weights/safetensors.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";

const M = 5;
const K = 300; // > KC (256): a packing's row blocks split inside a chunk
const NT = 2053; // > NC (2048) and not a multiple of NR (8): the transposed packing's edges
const N2 = 60; // V (72 KB) stays a host literal when compiled with the weights (over 64 KB)

/**
 * x [M, K] -> y = x W^T + b (W [NT, K], a Gemm with transB: packed transposed), z = x V (V [K, N2],
 * MatMul: packed as stored), u = Gather(E, ids) and t = x E^T (E [NT, K], a tied embedding: the
 * Gather reads its rows out of the transposed packing), b a bias (stored raw).
 */
async function _write(dir: string, seed: number): Promise<string> {
  const g = new G(seed);
  const w = g.w("W", [NT, K]);
  const v = g.w("V", [K, N2]);
  const e = g.w("E", [NT, K]);
  const b = g.w("b", [NT]);
  g.nodes.push({
    op: "Gemm",
    inputs: ["x", w, b],
    outputs: ["y"],
    name: "/w/Gemm",
    attrs: { transB: { i: 1 } },
  });
  g.nodes.push({ op: "MatMul", inputs: ["x", v], outputs: ["z"], name: "/v/MatMul" });
  g.nodes.push({ op: "Gather", inputs: [e, "ids"], outputs: ["u"], name: "/e/Gather" });
  const et = g.o("Transpose", [e], { perm: { ints: [1, 0] } });
  g.nodes.push({ op: "MatMul", inputs: ["x", et], outputs: ["t"], name: "/e/MatMul" });
  await Deno.mkdir(`${dir}/v${seed}`, { recursive: true });
  const io = {
    inputs: [{ name: "x", dims: [M, K] }, { name: "ids", dtype: "int64" as const, dims: [3] }],
    outputs: [{ name: "y" }, { name: "z" }, { name: "u" }, { name: "t" }],
    opset: 17,
  };
  return (await writeGraph(`${dir}/v${seed}`, "m", g, io)).path;
}

function _inputs(): Record<string, Tensor> {
  const x = new Float32Array(M * K);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
  return {
    x: { dtype: "float32", dims: [M, K], data: x },
    ids: { dtype: "int64", dims: [3], data: new BigInt64Array([0n, 2052n, 77n]) },
  };
}

/** Bytes read from files under `dir` while `fn` runs. */
async function _counting<T>(dir: string, fn: () => Promise<T> | T): Promise<{ bytes: number; result: T }> {
  const openSync = host.openSync;
  let bytes = 0;
  const h = host as { -readonly [K in keyof typeof host]: (typeof host)[K] };
  h.openSync = (p, o) => {
    const f: HostFile = openSync(p, o);
    if (!p.startsWith(dir)) return f;
    const readSync = f.readSync.bind(f);
    f.readSync = (b) => {
      const n = readSync(b);
      bytes += n ?? 0;
      return n;
    };
    return f;
  };
  try {
    const result = await fn();
    return { bytes, result };
  } finally {
    h.openSync = openSync;
  }
}

/** The model at `path` with deferred weights; `packed: false` leaves every product unpacked. */
async function _deferred(path: string, packed = true, threads?: number): Promise<Program> {
  return compile(
    await parseOnnx(path, { deferExternalWeights: true }),
    "ref",
    { ...(packed ? {} : { disablePasses: ["pack_gemm_weights"] }), ...(threads ? { threads } : {}) },
  );
}

/** Runs `fn` with two weight sets written in a temporary folder and a small staging chunk. */
async function _withSets(fn: (dir: string, paths: string[]) => Promise<void>): Promise<void> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "kiln_packed_" }));
  const chunk = refStaging.packChunkBytes;
  refStaging.packChunkBytes = 8192; // many chunks per tensor, chunk edges inside packing blocks
  try {
    await fn(dir, [await _write(dir, 1), await _write(dir, 2)]);
  } finally {
    refStaging.packChunkBytes = chunk;
    await Deno.remove(dir, { recursive: true });
  }
}

/** Outputs of the unpacked model bound to the set at `path` (then `replace` bound over it). */
async function _want(path: string, replace: Record<string, Tensor> = {}): Promise<Record<string, Tensor>> {
  const p = await _deferred(path, false);
  await p.bindWeights(await WeightSet.fromOnnxDir(p, path.replace(/\/m\.onnx$/, "")));
  if (Object.keys(replace).length) await p.setWeights(replace);
  const out = await p.eval(_inputs());
  p.dispose();
  return out;
}

for (const threads of [1, 2]) {
  Deno.test(`ref packed-only weights, ${threads} thread${threads > 1 ? "s" : ""}: a swap reads each byte once and packs it; no prepare work is left for it`, async () => {
    await _withSets(async (dir, paths) => {
      const want = [await _want(paths[0]), await _want(paths[1])];
      const p = await _deferred(paths[0], true, threads);
      assert.equal(p.info().ops["kiln.pack_gemm_b"], 3, "W, V and E^T are packed");
      assert.equal(p.info().ops["kiln.gather_packed_rows"], 1, "E's rows are gathered from its packing");
      assert.equal(p.info().ops["Gather"], undefined);
      const total = p.weightSignature().reduce((a, s) => a + s.byteLength, 0);
      for (const [k, skipped] of [[0, 0], [1, 0], [0, 0], [0, 4]]) {
        const set = await WeightSet.fromOnnxDir(p, `${dir}/v${k + 1}`);
        const { bytes, result: r } = await _counting(dir, () => p.bindWeights(set));
        assert.equal(bytes, total, "every weight byte read once");
        assert.equal(r.staging?.bytesRead, total);
        assert.equal(typeof r.staging?.packMs, "number");
        assert.deepEqual([r.copied, r.skipped], [4 - skipped, skipped], JSON.stringify(r));
        assert.deepEqual(
          await p.eval(_inputs()),
          want[k],
          `v${k + 1}: equal to the unpacked GEMMs, bit for bit`,
        );
        // W, V and E were packed by the bind: no prepare work is left
        assert.equal(programInternals(p).lastPrepareNodes, 0);
      }
      // an index out of range is refused with the Gather's error, as on the raw rows
      const bad = {
        ..._inputs(),
        ids: { dtype: "int64" as const, dims: [3], data: new BigInt64Array([0n, 2053n, 1n]) },
      };
      await assert.rejects(() => p.eval(bad), /index 2053 is out of range \[-2053, 2053\) on axis 0/);
      const neg = {
        ..._inputs(),
        ids: { dtype: "int64" as const, dims: [3], data: new BigInt64Array([-1n, -2053n, 5n]) },
      };
      const r = await _deferred(paths[0], false);
      await r.bindWeights(await WeightSet.fromOnnxDir(r, `${dir}/v1`));
      assert.deepEqual(
        (await p.eval(neg))["u"],
        (await r.eval(neg))["u"],
        "negative indices count from the end",
      );
      r.dispose();
      p.dispose();
    });
  });
}

Deno.test("ref packed-only weights: a partial swap packs only the tensor it changes, from a file or from memory", async () => {
  await _withSets(async (dir, paths) => {
    const p = await _deferred(paths[0]);
    await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v1`));
    await p.eval(_inputs());
    const v2 = await WeightSet.fromOnnxDir(p.weightSignature(), `${dir}/v2`); // read into memory
    const V = v2.tensors.get("V")!;
    const W = v2.tensors.get("W")!;
    const t = (x: typeof V): Tensor => ({
      dtype: "float32",
      dims: x.dims,
      data: new Float32Array(x.bytes.slice().buffer),
    });
    await writeSafetensors(`${dir}/v.safetensors`, [V]);
    const one = await WeightSet.fromSafetensors(p, `${dir}/v.safetensors`, { partial: true });
    const { bytes, result: r } = await _counting(dir, () => p.bindWeights(one));
    assert.equal(bytes, V.bytes.byteLength, "only V's bytes are read at bind");
    assert.equal(r.staging?.bytesRead, V.bytes.byteLength);
    assert.deepEqual([r.copied, r.skipped], [1, 0]);
    assert.deepEqual(await p.eval(_inputs()), await _want(paths[0], { V: t(V) }), "V of v2, the rest of v1");
    assert.equal(programInternals(p).lastPrepareNodes, 0, "nothing to prepare: V was packed by the bind");
    // from memory: W of v2, packed from the host's bytes
    await p.setWeights({ W: t(W) });
    assert.deepEqual(await p.eval(_inputs()), await _want(paths[0], { V: t(V), W: t(W) }));
    assert.equal(programInternals(p).lastPrepareNodes, 0);
    p.dispose();
  });
});

Deno.test("ref packed-only weights: a read that fails midway leaves the old weights serving", async () => {
  await _withSets(async (dir, paths) => {
    const want1 = await _want(paths[0]);
    const p = await _deferred(paths[0]);
    await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v1`));
    assert.deepEqual(await p.eval(_inputs()), want1);
    // v2 with its data file cut inside E: W and V (before it in the file) are packed by then
    const sig = p.weightSignature();
    const e = p.weights.find((w) => w.name === "E")!;
    const bin = await Deno.readFile(`${dir}/v2/m.bin`);
    const set = await WeightSet.fromOnnxDir(p, `${dir}/v2`);
    await Deno.writeFile(`${dir}/v2/m.bin`, bin.subarray(0, e.offset + 1000));
    await assert.rejects(() => p.bindWeights(set), /Cannot bind weight 'E'.*nothing was bound/);
    assert.deepEqual(await p.eval(_inputs()), want1, "v1 still serves, whole");
    assert.equal(programInternals(p).lastPrepareNodes, 0);
    await Deno.writeFile(`${dir}/v2/m.bin`, bin);
    const r = await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v2`));
    assert.equal(r.copied, sig.length);
    assert.deepEqual(await p.eval(_inputs()), await _want(paths[1]));
    p.dispose();
  });
});

Deno.test({
  name:
    "ref packed-only weights, 2 threads: the workers pack each chunk while the next is read (pipelinePack), bit for bit; a failed read leaves the old weights",
  ignore: threadsUnavailable() !== "",
  fn: async () => {
    await _withSets(async (dir, paths) => {
      // chunks of 256 stored rows (77K elements: over the split's 65K), nine per 2053-row weight
      refStaging.packChunkBytes = 512 * 1024;
      const want = [await _want(paths[0]), await _want(paths[1])];
      const p = await _deferred(paths[0], true, 2);
      const internals = programInternals(p);
      await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v1`));
      assert.deepEqual(await p.eval(_inputs()), want[0]);
      // the workers start after a run that split its work (the bind's packing did): wait for them
      for (let i = 0; i < 400 && internals.workersRunning === 0; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(internals.workersRunning, 1, "a worker is up");
      let byWorker = 0;
      for (let round = 0; round < 6; round++) {
        const k = (round + 1) % 2;
        const before = internals.tasksRun()[1] ?? 0;
        const r = await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v${k + 1}`));
        byWorker += (internals.tasksRun()[1] ?? 0) - before;
        assert.equal(r.copied, 4);
        assert.deepEqual(await p.eval(_inputs()), want[k], `v${k + 1} (round ${round}): bit for bit`);
        if (byWorker > 0 && round >= 1) break;
      }
      assert.ok(byWorker > 0, "the worker packed chunks while this thread read");
      // packing after each read gives the same
      refStaging.pipelinePack = false;
      try {
        await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v1`));
        assert.deepEqual(await p.eval(_inputs()), want[0]);
      } finally {
        refStaging.pipelinePack = true;
      }
      // v2 cut inside E while the workers pack W's chunks: nothing is bound, v1 serves
      const e = p.weights.find((w) => w.name === "E")!;
      const bin = await Deno.readFile(`${dir}/v2/m.bin`);
      const set = await WeightSet.fromOnnxDir(p, `${dir}/v2`);
      await Deno.writeFile(`${dir}/v2/m.bin`, bin.subarray(0, e.offset + 600_000));
      await assert.rejects(() => p.bindWeights(set), /Cannot bind weight 'E'.*nothing was bound/);
      assert.deepEqual(await p.eval(_inputs()), want[0], "v1 still serves, whole");
      await Deno.writeFile(`${dir}/v2/m.bin`, bin);
      await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v2`));
      assert.deepEqual(await p.eval(_inputs()), want[1]);
      p.dispose();
    });
  },
});

Deno.test("ref packed-only literals: compile with the weights packs them at finalize; bake, save and load agree", async () => {
  await _withSets(async (dir, paths) => {
    const want = await _want(paths[1]);
    const model = await parseOnnx(paths[1]);
    const bin = (await Deno.stat(`${dir}/v2/m.bin`)).size;
    const { bytes, result: c } = await _counting(dir, () => compile(model, "ref"));
    assert.ok(bytes <= bin, `each literal byte read at most once (${bytes} of ${bin})`);
    assert.deepEqual(await c.eval(_inputs()), want, "compiled with the weights = bound, unpacked");
    assert.equal(programInternals(c).lastPrepareNodes, 0, "every packing was done at finalize");
    // revived after a trap: the packed-only literals are packed again from their source
    assert.throws(() => programInternals(c).debugTrap());
    assert.deepEqual(await c.eval(_inputs()), want, "after a revival");
    c.dispose();

    const p = await _deferred(paths[0]);
    const baked = p.bake(await WeightSet.fromOnnxDir(p, `${dir}/v2`));
    const q = deserializeProgram(baked.ir, baked.hostLiterals, "ref");
    assert.deepEqual(await q.eval(_inputs()), want, "baked");
    assert.equal(programInternals(q).lastPrepareNodes, 0, "its packed-only literals were packed at finalize");
    // saved (each literal with its checksum) and loaded: packed from the file's literal section
    await save(q, `${dir}/q.kiln`);
    const l = await load(`${dir}/q.kiln`);
    assert.deepEqual(await l.eval(_inputs()), want, "saved and loaded");
    l.dispose();
    q.dispose();
    p.dispose();
  });
});

Deno.test("ref packed-only weights: revival after a trap and LoRA adapters read the packed weights back", async () => {
  await _withSets(async (dir, paths) => {
    const p = await _deferred(paths[0]);
    const ref = await _deferred(paths[0], false);
    for (const x of [p, ref]) await x.bindWeights(await WeightSet.fromOnnxDir(x, `${dir}/v2`));
    const want = await ref.eval(_inputs());
    assert.deepEqual(await p.eval(_inputs()), want);
    assert.throws(() => programInternals(p).debugTrap());
    assert.deepEqual(await p.eval(_inputs()), want, "the packed weights were carried into the new instance");

    const rank = 2;
    const a = new Float32Array(rank * K).map((_, i) => ((i % 13) - 6) / 64);
    const b = new Float32Array(NT * rank).map((_, i) => ((i % 7) - 3) / 64);
    const adapter = new Adapter(
      "a",
      [{ module: "w", a, aDims: [rank, K], b, bDims: [NT, rank], scale: 0.5 }],
      {
        weightOf: (m) => m === "w" ? "W" : undefined,
      },
    );
    for (const x of [p, ref]) assert.equal((await x.applyAdapter(adapter)).adapted, 1);
    const adapted = await ref.eval(_inputs());
    assert.notDeepEqual(adapted, want);
    assert.deepEqual(await p.eval(_inputs()), adapted, "W0 (unpacked from its packing) + delta");
    for (const x of [p, ref]) await x.removeAdapter();
    assert.deepEqual(await p.eval(_inputs()), want, "W0 again, bit for bit");
    p.dispose();
    ref.dispose();
  });
});

Deno.test("ref weights stored raw (refStaging.packedOnly false): packed in the prepare step, with the same results", async () => {
  await _withSets(async (dir, paths) => {
    refStaging.packedOnly = false;
    let raw: Program;
    try {
      raw = await _deferred(paths[0], true, 2);
    } finally {
      refStaging.packedOnly = true;
    }
    const p = await _deferred(paths[0], true, 2);
    for (const x of [raw, p]) await x.bindWeights(await WeightSet.fromOnnxDir(x, `${dir}/v2`));
    const want = await p.eval(_inputs());
    assert.deepEqual(await raw.eval(_inputs()), want);
    assert.equal(programInternals(raw).lastPrepareNodes, 3, "every packing ran in the prepare step");
    assert.equal(programInternals(p).lastPrepareNodes, 0);
    // swapped and back: the prepare step packs again
    await raw.bindWeights(await WeightSet.fromOnnxDir(raw, `${dir}/v1`));
    await raw.bindWeights(await WeightSet.fromOnnxDir(raw, `${dir}/v2`));
    assert.deepEqual(await raw.eval(_inputs()), want);
    raw.dispose();
    p.dispose();
  });
});

Deno.test("ref packed-only weights: pack_rows split over threads, in KC-row and strip chunks, writes the bytes of one whole packing", () => {
  // the staging chunks a bind packs: whole KC (256) row blocks when they fit, else NR (8) row
  // strips; on the threaded core each chunk's strips are split into tasks (run by the main
  // instance alone here: no worker started, the same tasks)
  const engines = [new Engine(), ...(threadsUnavailable() ? [] : [new Engine({ threads: 2 })])];
  try {
    const shapes = [[false, 600, 300], [false, 300, 2053], [true, 300, 2053], [true, 700, 97]] as const;
    for (const [trans, K, N] of shapes) {
      const rows = trans ? N : K, cols = trans ? K : N;
      const src = new Float32Array(rows * cols);
      for (let i = 0; i < src.length; i++) src[i] = Math.sin(i * 0.01) + i * 1e-6;
      const packed = (engine: Engine, step: number, mode = 0): Uint8Array => {
        const e = engine.exports;
        const bytes = K * Math.ceil(N / 8) * 8 * 4;
        const s = engine.put(new Uint8Array(src.buffer)), d = e.alloc(bytes);
        engine.u8().fill(0, d, d + bytes);
        for (let r = 0; r < rows; r += step) {
          const n = Math.min(step, rows - r);
          // the chunk's rows at the start of a staging buffer, as a bind reads them
          const c = engine.put(new Uint8Array(src.buffer, r * cols * 4, n * cols * 4));
          e.pack_rows(trans ? 1 : 0, c, r, n, cols, K, N, d, mode);
          e.free(c);
        }
        const out = engine.get(d, bytes);
        e.free(s);
        e.free(d);
        return out;
      };
      const whole = packed(engines[0], rows);
      for (const engine of engines) {
        for (const step of [8, 256, 512, rows]) {
          for (const mode of [0, 2]) {
            assert.deepEqual(
              packed(engine, step, mode),
              whole,
              `${
                trans ? "transposed " : ""
              }${K}x${N}, chunks of ${step} rows, ${engine.threads} thread(s), mode ${mode}`,
            );
          }
        }
      }
    }
  } finally {
    for (const e of engines) e.dispose();
  }
});
