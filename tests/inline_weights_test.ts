// Inline initializers deferred by size (ParseOptions.deferInlineWeightsOver) and weights bound
// from an ONNX model's own initializers (WeightSet.fromOnnxModel): a model whose weights are
// inline compiles with the large ones deferred (the small ones, and those the compiler needs as
// constants, stay constants); a fine-tune exported as a whole .onnx (same graph, other values)
// binds into it, from a path or from bytes; an external-data folder has nothing for an inline
// weight, and says so; outputs match the fine-tune compiled on its own.
import assert from "node:assert/strict";
import { buildModel, type ModelSpec } from "../core/onnx/writer.ts";
import { compile, KilnError, parseOnnx, WeightSet } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";

function _model(seed: number): ModelSpec {
  const w = new Float32Array(32).map((_, i) => Math.sin(i * 0.7 + seed));
  const w2 = new Float32Array(16).map((_, i) => Math.cos(i * 0.3 + seed));
  const b = new Float32Array(4).map((_, i) => i * 0.1 + seed);
  return {
    opset: 17,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [2, 8] }],
      outputs: [{ name: "y", dtype: "float32", dims: [1, 8] }],
      initializers: [
        { name: "w", dtype: "float32", dims: [8, 4], data: w }, // 128 bytes: deferred
        { name: "w2", dtype: "float32", dims: [4, 4], data: w2 }, // 64 bytes: deferred
        { name: "b", dtype: "float32", dims: [4], data: b }, // 16 bytes: a constant
        { name: "shape", dtype: "int64", dims: [2], data: [1n, 8n] }, // the Reshape needs it as a constant
      ],
      nodes: [
        { op: "MatMul", inputs: ["x", "w"], outputs: ["h"] },
        { op: "MatMul", inputs: ["h", "w2"], outputs: ["h2"] },
        { op: "Add", inputs: ["h2", "b"], outputs: ["s"] },
        { op: "Reshape", inputs: ["s", "shape"], outputs: ["y"] },
      ],
    },
  };
}

const X: Tensor = { dtype: "float32", dims: [2, 8], data: new Float32Array(16).map((_, i) => i / 7 - 1) };

Deno.test("inline initializers deferred by size bind from a model's own initializers", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_inline_" });
  try {
    await Deno.writeFile(`${dir}/base.onnx`, buildModel(_model(0)));
    const tuned = buildModel(_model(5)); // b differs too: it stays the base's constant
    await Deno.writeFile(`${dir}/tuned.onnx`, tuned);
    const p = compile(await parseOnnx(`${dir}/base.onnx`, { deferInlineWeightsOver: 64 }), "ref");
    try {
      await t.step(
        "the large inline initializers are the weights; small and shape ones stay constants",
        () => {
          assert.deepEqual(p.weights.map((w) => [w.name, w.location]), [["w", ""], ["w2", ""]]);
        },
      );
      await t.step("a fine-tune's .onnx binds into the compiled base, by path and as bytes", async () => {
        const want = await (async () => {
          // the fine-tune's w and w2 with the base's b: what the deferred program must compute
          const spec = _model(5);
          spec.graph.initializers![2] = _model(0).graph.initializers![2];
          const q = compile(await parseOnnx(buildModel(spec)), "ref");
          const y = Array.from((await q.eval({ x: X })).y.data as Float32Array);
          q.dispose();
          return y;
        })();
        const r = await p.bindWeights(await WeightSet.fromOnnxModel(p, `${dir}/tuned.onnx`));
        assert.equal(r.copied, 2);
        assert.deepEqual(Array.from((await p.eval({ x: X })).y.data as Float32Array), want);
        await p.bindWeights(await WeightSet.fromOnnxModel(p, `${dir}/base.onnx`));
        await p.bindWeights(await WeightSet.fromOnnxModel(p, tuned));
        assert.deepEqual(Array.from((await p.eval({ x: X })).y.data as Float32Array), want);
      });
      await t.step("an external-data folder has nothing for an inline weight, and says so", async () => {
        await assert.rejects(WeightSet.fromOnnxDir(p, dir), (e: unknown) => {
          assert.ok(e instanceof KilnError);
          assert.match(e.message, /weight 'w' was inline in the model .*WeightSet.fromOnnxModel/);
          return true;
        });
      });
      await t.step("the CLI: compile --defer-inline-over, bake --weights MODEL.onnx", async () => {
        const cli = new URL("../cli.ts", import.meta.url).pathname;
        const run = async (...args: string[]) => {
          const o = await new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", cli, ...args],
            stdout: "piped",
            stderr: "piped",
          })
            .output();
          return {
            code: o.code,
            out: new TextDecoder().decode(o.stdout),
            err: new TextDecoder().decode(o.stderr),
          };
        };
        const c = await run(
          "compile",
          `${dir}/base.onnx`,
          "--defer-inline-over",
          "64",
          "-o",
          `${dir}/base.kiln`,
          "--json",
        );
        assert.equal(c.code, 0, c.err);
        assert.equal(JSON.parse(c.out).deferredWeights, 2);
        const b = await run(
          "bake",
          `${dir}/base.kiln`,
          "--weights",
          `${dir}/tuned.onnx`,
          "-o",
          `${dir}/tuned.kiln`,
        );
        assert.equal(b.code, 0, b.err);
        const bad = await run(
          "compile",
          `${dir}/base.onnx`,
          "--defer-inline-over",
          "lots",
          "-o",
          `${dir}/x.kiln`,
        );
        assert.notEqual(bad.code, 0);
        assert.match(bad.err, /--defer-inline-over takes a byte count/);
      });
      await t.step("a model without the weights lists every missing one", async () => {
        const other = _model(1);
        other.graph.initializers = other.graph.initializers!.filter((i) =>
          i.name === "b" || i.name === "shape"
        );
        other.graph.nodes = [{ op: "Reshape", inputs: ["x", "shape"], outputs: ["y"] }];
        await assert.rejects(
          WeightSet.fromOnnxModel(p, buildModel(other)),
          /'w' is not an initializer[\s\S]*'w2'/,
        );
      });
    } finally {
      p.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
