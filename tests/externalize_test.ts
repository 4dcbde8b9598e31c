// `kiln externalize` / externalizeOnnx: a model's initializers moved into one external-data file
// (those of at least the threshold; typed and raw encodings alike; If branches' initializers too;
// tensors already external rewritten into the new file), giving the same outputs and weights that
// can then be deferred and swapped; bad options are refused.
import assert from "node:assert/strict";
import { compile, externalizeOnnx, parseOnnx, type Program } from "../mod.ts";
import { buildModel } from "../core/onnx/writer.ts";
import type { Tensor } from "../core/tensor.ts";
import { runCli } from "./util/cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY = `${ROOT}examples/tinynet/tinynet.onnx`;

function _seq(n: number, k: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + k));
}

async function _evalBoth(
  a: string,
  b: string,
  feeds: Record<string, Tensor>[],
  dims?: Record<string, number[]>,
) {
  const programs: Program[] = [];
  try {
    const pa = compile(await parseOnnx(a, { inputDims: dims }), "ref");
    const pb = compile(await parseOnnx(b, { inputDims: dims }), "ref");
    programs.push(pa, pb);
    for (const f of feeds) assert.deepEqual(await pb.eval(f), await pa.eval(f));
  } finally {
    for (const p of programs) p.dispose();
  }
}

Deno.test("externalizeOnnx: initializers move to one data file, outputs unchanged", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_externalize_" });
  try {
    // inline W (raw, 128 bytes), b (typed float_data, 16 bytes), and an If whose branches hold initializers
    await Deno.writeFile(
      `${dir}/m.onnx`,
      buildModel({
        opset: 17,
        graph: {
          inputs: [{ name: "x", dtype: "float32", dims: [2, 8] }, { name: "c", dtype: "bool", dims: [] }],
          outputs: [{ name: "y", dtype: "float32", dims: [2, 4] }, {
            name: "z",
            dtype: "float32",
            dims: [16],
          }],
          initializers: [
            { name: "W", dtype: "float32", dims: [8, 4], data: _seq(32, 1) },
            { name: "b", dtype: "float32", dims: [4], data: _seq(4, 2), encoding: "typed" },
          ],
          nodes: [
            { op: "MatMul", inputs: ["x", "W"], outputs: ["xw"] },
            { op: "Add", inputs: ["xw", "b"], outputs: ["y"] },
            {
              op: "If",
              inputs: ["c"],
              outputs: ["z"],
              attrs: {
                then_branch: {
                  g: {
                    outputs: [{ name: "zt", dtype: "float32", dims: [16] }],
                    initializers: [{ name: "ct", dtype: "float32", dims: [16], data: _seq(16, 3) }],
                    nodes: [{ op: "Identity", inputs: ["ct"], outputs: ["zt"] }],
                  },
                },
                else_branch: {
                  g: {
                    outputs: [{ name: "ze", dtype: "float32", dims: [16] }],
                    initializers: [{ name: "ce", dtype: "float32", dims: [16], data: _seq(16, 4) }],
                    nodes: [{ op: "Identity", inputs: ["ce"], outputs: ["ze"] }],
                  },
                },
              },
            },
          ],
        },
      }),
    );
    const x: Tensor = { dtype: "float32", dims: [2, 8], data: Float32Array.from(_seq(16, 5)) };
    const feeds = [true, false].map((v) => ({
      x,
      c: { dtype: "bool" as const, dims: [], data: new Uint8Array([v ? 1 : 0]) },
    }));

    await Deno.mkdir(`${dir}/out`, { recursive: true });
    await t.step(
      "a threshold of 32 bytes moves W and both branches' tensors, and keeps b inline",
      async () => {
        const r = await externalizeOnnx(`${dir}/m.onnx`, `${dir}/out/m.onnx`, { threshold: 32 });
        assert.deepEqual([r.tensors, r.bytes, r.inline], [3, 128 + 64 + 64, 1]);
        assert.equal(r.data, `${dir}/out/m.onnx.data`);
        await _evalBoth(`${dir}/m.onnx`, `${dir}/out/m.onnx`, feeds);
        const deferred = await parseOnnx(`${dir}/out/m.onnx`, { deferExternalWeights: true });
        assert.ok(deferred.deferredWeights?.includes("W"), JSON.stringify(deferred.deferredWeights));
        assert.ok(!deferred.deferredWeights?.includes("b"));
      },
    );

    await t.step(
      "a model already in external data is rewritten into a new file in another folder",
      async () => {
        await Deno.mkdir(`${dir}/tiny`);
        const r = await runCli(
          "externalize",
          TINY,
          "-o",
          `${dir}/tiny/t.onnx`,
          "--threshold",
          "0",
          "--location",
          "w.bin",
        );
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /moved 9 initializer\(s\) .*; 0 left inline/); // 8 external + 1 inline
        const dims = { x: [1, 3, 16, 16] };
        const xt: Tensor = { dtype: "float32", dims: [1, 3, 16, 16], data: Float32Array.from(_seq(768, 6)) };
        await _evalBoth(TINY, `${dir}/tiny/t.onnx`, [{ x: xt }], dims);
        assert.ok((await Deno.stat(`${dir}/tiny/w.bin`)).size > 0);
      },
    );

    await t.step("bad options are refused", async () => {
      await assert.rejects(
        () => externalizeOnnx(`${dir}/m.onnx`, `${dir}/x.onnx`, { location: "../evil" }),
        /plain file name/,
      );
      await assert.rejects(
        () => externalizeOnnx(`${dir}/m.onnx`, `${dir}/x.onnx`, { threshold: -1 }),
        /not a byte count/,
      );
      const r = await runCli("externalize", `${dir}/m.onnx`);
      assert.equal(r.code, 2);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
