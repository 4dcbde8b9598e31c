/**
 * Serves the browser example on localhost: the page (index.html, main.js), kiln's bundle as
 * `kiln.js` (built with tools/bundle.ts when the server starts), tinynet.onnx, and two weight sets
 * as safetensors: `v1` (the model's own weights) and `v2` (seeded random ones of the same shapes),
 * and `tinynet_v1.kiln`, the program with v1 baked in.
 *
 *   deno run -A examples/browser/serve.ts [--port 8000]
 *
 * then open http://127.0.0.1:8000/. tests/browser_example_test.ts starts it on a free port and
 * drives it with headless Chromium.
 * @module
 */
import { parseArgs } from "node:util";
import {
  compile,
  parseOnnx,
  replaceOnnxExternalWeights,
  save,
  WeightSet,
  writeSafetensors,
} from "../../mod.ts";
import { bundle } from "../../tools/bundle.ts";

const HERE = new URL("./", import.meta.url).pathname;
const TINY = new URL("../tinynet/", import.meta.url).pathname;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  onnx: "application/octet-stream",
  safetensors: "application/octet-stream",
  kiln: "application/octet-stream",
};

/** A running example server. */
export interface ExampleServer {
  url: string;
  close(): Promise<void>;
}

/** Builds what the page fetches (in a temporary folder) and serves it on 127.0.0.1:`port` (0: any free port). */
export async function serveExample(port = 0): Promise<ExampleServer> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_browser_example_" });
  await bundle(`${dir}/kiln.js`);
  const p = compile(
    await parseOnnx(`${TINY}tinynet.onnx`, { deferExternalWeights: true, inputDims: { x: [1, 3, 16, 16] } }),
    "ref",
  );
  const v1 = await WeightSet.fromOnnxDir(p, TINY);
  await writeSafetensors(
    `${dir}/v1.safetensors`,
    [...v1.tensors.values()].map((t) => ({
      name: t.name,
      dtype: t.dtype,
      dims: [...t.dims],
      bytes: t.bytes,
    })),
  );
  let seed = 7;
  await writeSafetensors(
    `${dir}/v2.safetensors`,
    p.weights.map((w) => {
      const data = new Float32Array(w.dims.reduce((a, b) => a * b, 1)).map(() =>
        Math.sin(seed++ * 1.7) * 0.3
      );
      return { name: w.name, dtype: w.dtype, dims: [...w.dims], bytes: new Uint8Array(data.buffer) };
    }),
  );
  // a program file with v1 baked in, which the page loads whole (its checksums verified by WebCrypto)
  await save(await replaceOnnxExternalWeights(p, TINY, "ref"), `${dir}/tinynet_v1.kiln`);
  p.dispose();
  const files: Record<string, string> = {
    "/": `${HERE}index.html`,
    "/index.html": `${HERE}index.html`,
    "/main.js": `${HERE}main.js`,
    "/kiln.js": `${dir}/kiln.js`,
    "/tinynet.onnx": `${TINY}tinynet.onnx`,
    "/v1.safetensors": `${dir}/v1.safetensors`,
    "/v2.safetensors": `${dir}/v2.safetensors`,
    "/tinynet_v1.kiln": `${dir}/tinynet_v1.kiln`,
  };
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const file = files[path];
    if (!file) return new Response("not found", { status: 404 });
    const ext = file.slice(file.lastIndexOf(".") + 1);
    return new Response(await Deno.readFile(file), {
      headers: { "content-type": TYPES[ext] ?? "application/octet-stream", "cache-control": "no-store" },
    });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    async close() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string", default: "8000" } } });
  const s = await serveExample(Number(values.port));
  console.log(`kiln browser example: ${s.url} (Ctrl-C stops)`);
}
