// Sources that are not file paths (core/source.ts): a model and a safetensors weight set given as
// bytes, a Blob, a fetch Response or an http: URL (served here on localhost) compile, bind and
// compute exactly what the same files given by path do; a failed fetch (HTTP 404, a refused
// connection) is an error naming the URL; a model given as bytes binds its deferred weights from
// a source of any kind; load() reads a saved program file from any of them (on ref, and on the
// gpu test device, where the literals are uploaded from memory instead of from file ranges); and
// fromOnnxDir reads deferred weights by range from an http: folder (one range request per
// weight; a server without range support is read once, whole) or from a RangeReader.
import assert from "node:assert/strict";
import {
  compile,
  httpRangeReader,
  load,
  parseOnnx,
  type Program,
  type RangeReader,
  replaceOnnxExternalWeights,
  type SafetensorsSource,
  save,
  WeightSet,
  writeSafetensors,
} from "../mod.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import type { Tensor } from "../core/tensor.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = `${ROOT}examples/tinynet/tinynet.onnx`;
const DIMS = { inputDims: { x: [1, 3, 16, 16] } };
const X: Tensor = {
  dtype: "float32",
  dims: [1, 3, 16, 16],
  data: new Float32Array(768).map((_, i) => Math.sin(i * 0.37)),
};

/** Serves `files` (by URL path) on a free localhost port; other paths get 404. */
function _serveFiles(files: Record<string, Uint8Array>): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (req) => {
    const f = files[new URL(req.url).pathname];
    return f ? new Response(f.slice()) : new Response("no such file", { status: 404 });
  });
}

async function _probs(p: Program): Promise<number[]> {
  return Array.from((await p.eval({ x: X })).probs.data as Float32Array);
}

Deno.test("models and weight sets from bytes, Blobs, Responses and http: URLs", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_sources_" });
  const files: Record<string, Uint8Array> = {};
  const server = _serveFiles(files);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const programs: Program[] = [];
  try {
    // a weight set for tinynet's deferred weights, as safetensors
    const shape = compile(await parseOnnx(MODEL, { ...DIMS, deferExternalWeights: true }), "ref");
    programs.push(shape);
    let seed = 1;
    const weights = shape.weights.map((w) => {
      const n = w.dims.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n).map(() => Math.sin(seed++) * 0.2);
      return { name: w.name, dtype: w.dtype, dims: [...w.dims], bytes: new Uint8Array(data.buffer) };
    });
    const st = `${dir}/v2.safetensors`;
    await writeSafetensors(st, weights);
    files["/tinynet.onnx"] = await Deno.readFile(MODEL);
    files["/v2.safetensors"] = await Deno.readFile(st);

    const byPath = compile(await parseOnnx(MODEL, { ...DIMS, deferExternalWeights: true }), "ref");
    programs.push(byPath);
    await byPath.bindWeights(await WeightSet.fromSafetensors(byPath, st));
    const want = await _probs(byPath);

    const modelSources: Record<string, () => Uint8Array | Blob | Response | URL> = {
      bytes: () => files["/tinynet.onnx"],
      Blob: () => new Blob([files["/tinynet.onnx"].slice()]),
      Response: () => new Response(files["/tinynet.onnx"].slice()),
      "http: URL": () => new URL(`${base}/tinynet.onnx`),
    };
    const weightSources: Record<string, () => SafetensorsSource> = {
      bytes: () => files["/v2.safetensors"],
      Blob: () => new Blob([files["/v2.safetensors"].slice()]),
      Response: () => new Response(files["/v2.safetensors"].slice()),
      "http: URL": () => new URL(`${base}/v2.safetensors`),
      "file: URL": () => new URL(`file://${st}`),
    };
    for (const [m, model] of Object.entries(modelSources)) {
      await t.step(`model as ${m}, weights from every kind of source`, async () => {
        const p = compile(await parseOnnx(model(), { ...DIMS, deferExternalWeights: true }), "ref");
        programs.push(p);
        for (const [w, source] of Object.entries(weightSources)) {
          const r = await p.bindWeights(await WeightSet.fromSafetensors(p, source()));
          assert.ok(r.copied + r.skipped === weights.length, `${w}: every weight bound`);
          assert.deepEqual(await _probs(p), want, `model as ${m}, weights as ${w}`);
        }
      });
    }

    await t.step("a failed fetch names the URL", async () => {
      await assert.rejects(
        () => parseOnnx(new URL(`${base}/missing.onnx`), DIMS),
        /Cannot fetch onnx model 'http:\/\/127\.0\.0\.1:\d+\/missing\.onnx': HTTP 404/,
      );
      await assert.rejects(
        () => WeightSet.fromSafetensors(byPath, new Response("gone", { status: 410, statusText: "Gone" })),
        /Cannot fetch safetensors file '<response>': HTTP 410 Gone/,
      );
      await assert.rejects(
        () => WeightSet.fromSafetensors(byPath, new URL("http://127.0.0.1:1/w.safetensors")),
        /Cannot fetch safetensors file 'http:\/\/127\.0\.0\.1:1\/w\.safetensors'/,
      );
    });

    await t.step("a bad weight set from bytes names its source", async () => {
      const bad = new Uint8Array(files["/v2.safetensors"]);
      bad[0] = 0xff; // a header length past the end
      await assert.rejects(() => WeightSet.fromSafetensors(byPath, bad), /<bytes>/);
    });
  } finally {
    for (const p of programs) p.dispose();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

const GPU = gpuUnderTest();

async function _programFileFromEverySource(t: Deno.TestContext, target: "ref" | "gpu", gpu = {}) {
  const dir = await Deno.makeTempDir({ prefix: "kiln_sources_load_" });
  const files: Record<string, Uint8Array> = {};
  const server = _serveFiles(files);
  const programs: Program[] = [];
  try {
    const p = compile(await parseOnnx(MODEL, { ...DIMS, deferExternalWeights: true }), target, { gpu });
    programs.push(p);
    const baked = await replaceOnnxExternalWeights(p, `${ROOT}examples/tinynet`, target);
    await save(baked, `${dir}/tiny.kiln`);
    files["/tiny.kiln"] = await Deno.readFile(`${dir}/tiny.kiln`);
    const fromPath = await load(`${dir}/tiny.kiln`, { gpu });
    programs.push(fromPath);
    const want = await _probs(fromPath);
    const sources: Record<string, () => Uint8Array | Blob | Response | URL> = {
      bytes: () => files["/tiny.kiln"],
      Blob: () => new Blob([files["/tiny.kiln"].slice()]),
      Response: () => new Response(files["/tiny.kiln"].slice()),
      "http: URL": () => new URL(`http://127.0.0.1:${server.addr.port}/tiny.kiln`),
    };
    for (const [what, source] of Object.entries(sources)) {
      await t.step(`load from ${what}`, async () => {
        const q = await load(source(), { gpu });
        programs.push(q);
        assert.equal(q.target, target);
        assert.deepEqual(await _probs(q), want);
      });
    }
    await t.step("a corrupt program file in memory is an error naming it", async () => {
      const bad = files["/tiny.kiln"].slice(0, 100);
      await assert.rejects(load(bad), /'<bytes>'/);
    });
  } finally {
    for (const p of programs) p.dispose();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ref: load() reads a program file from bytes, a Blob, a Response or an http: URL", async (t) => {
  await _programFileFromEverySource(t, "ref");
});

Deno.test({
  name: `gpu target (${GPU.name}): load() from bytes uploads the literals from memory`,
  ignore: gpuIgnore("sources_test.ts"),
  async fn(t) {
    await _programFileFromEverySource(t, "gpu", GPU.options);
  },
});

Deno.test("deferred weights read by range: HTTP range requests, a server without ranges, a reader of one's own", async (t) => {
  const data = await Deno.readFile(`${ROOT}examples/tinynet/tinynet.onnx.data`);
  let ranges = 0, wholes = 0;
  const serve = (withRanges: boolean) =>
    Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (req) => {
      if (new URL(req.url).pathname !== "/w/tinynet.onnx.data") return new Response("no", { status: 404 });
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
      if (withRanges && m) {
        ranges++;
        const a = Number(m[1]), b = Number(m[2]);
        return new Response(data.slice(a, b + 1), {
          status: 206,
          headers: { "content-range": `bytes ${a}-${b}/${data.byteLength}` },
        });
      }
      wholes++;
      return new Response(data.slice());
    });
  const p = compile(await parseOnnx(MODEL, { ...DIMS, deferExternalWeights: true }), "ref");
  try {
    await p.bindWeights(await WeightSet.fromOnnxDir(p, `${ROOT}examples/tinynet`));
    const want = await _probs(p);
    for (const withRanges of [true, false]) {
      await t.step(
        withRanges
          ? "a server with range requests: one request per weight"
          : "a server without: one whole read",
        async () => {
          const server = serve(withRanges);
          try {
            ranges = wholes = 0;
            const base = new URL(`http://127.0.0.1:${server.addr.port}/w/`);
            const set = await WeightSet.fromOnnxDir(p, base);
            await p.bindWeights(set);
            assert.deepEqual(await _probs(p), want);
            if (withRanges) assert.equal(ranges, p.weights.length);
            else assert.equal(wholes, 1);
            await assert.rejects(
              WeightSet.fromOnnxDir(p, new URL(`http://127.0.0.1:${server.addr.port}/nothing/`)),
              /HTTP 404/,
            );
          } finally {
            await server.shutdown();
          }
        },
      );
    }
    await t.step("a RangeReader of one's own", async () => {
      const reads: string[] = [];
      const reader: RangeReader = {
        name: "memory",
        read: (location, offset, length) => {
          reads.push(location);
          return Promise.resolve(data.subarray(offset, offset + length));
        },
      };
      await p.bindWeights(await WeightSet.fromOnnxDir(p, reader));
      assert.deepEqual(await _probs(p), want);
      assert.equal(reads.length, p.weights.length);
      assert.ok(httpRangeReader(new URL("http://h/w")).name.endsWith("/w/"), "a folder URL gets its slash");
    });
  } finally {
    p.dispose();
  }
});
