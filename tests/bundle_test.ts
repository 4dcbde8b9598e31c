// The bundle (tools/bundle.ts, `deno task bundle`): one self-contained ES module that a Deno
// program imports with no node_modules, no config and read permission for the model only, and
// that computes what mod.ts computes; and the same module run by Node (>= 20.16), where file access
// goes through node:fs (core/host.ts): a model read with its external data, one compiled with
// deferred weights and bound from the folder, and one in a WorkerProgram (worker_threads) give the
// same outputs.
import assert from "node:assert/strict";
import { bundle } from "../tools/bundle.ts";
import { compile, parseOnnx } from "../mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY_DIR = `${ROOT}examples/tinynet`;

const MAIN = `import { compile, parseOnnx } from "./kiln.js";
const p = compile(await parseOnnx(Deno.args[0], { inputDims: { x: [1, 3, 16, 16] } }), "ref");
const x = new Float32Array(768).map((_, i) => Math.sin(i));
const out = await p.eval({ x: { dtype: "float32", dims: [1, 3, 16, 16], data: x } });
console.log(JSON.stringify(Array.from(out.probs.data)));
`;

const NODE_MAIN = `import { compile, parseOnnx, WeightSet, WorkerProgram } from "./kiln.js";
const model = process.argv[2];
const x = { dtype: "float32", dims: [1, 3, 16, 16], data: new Float32Array(768).map((_, i) => Math.sin(i)) };
const a = compile(await parseOnnx(model, { inputDims: { x: [1, 3, 16, 16] } }), "ref");
const b = compile(await parseOnnx(model, { inputDims: { x: [1, 3, 16, 16] }, deferExternalWeights: true }), "ref");
const report = await b.bindWeights(await WeightSet.fromOnnxDir(b, model.slice(0, model.lastIndexOf("/"))));
const ya = await a.eval({ x }), yb = await b.eval({ x });
const w = await WorkerProgram.create(model, { parse: { inputDims: { x: [1, 3, 16, 16] } } });
const yw = await w.eval({ x });
w.dispose();
console.log(JSON.stringify({
  a: Array.from(ya.probs.data), b: Array.from(yb.probs.data), w: Array.from(yw.probs.data), copied: report.copied,
}));
`;

const WORKER_MAIN = `import { WorkerProgram } from "./kiln.js";
const w = await WorkerProgram.create(Deno.args[0], { parse: { inputDims: { x: [1, 3, 16, 16] } } });
const x = new Float32Array(768).map((_, i) => Math.sin(i));
const out = await w.eval({ x: { dtype: "float32", dims: [1, 3, 16, 16], data: x } });
w.dispose();
console.log(JSON.stringify(Array.from(out.probs.data)));
`;

async function _node(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

Deno.test("the bundle runs on its own: no node_modules, no config, read access to the model only", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_bundle_" });
  try {
    const r = await bundle(`${dir}/kiln.js`);
    assert.ok(r.bytes > 100_000, `bundle of ${r.bytes} bytes`);
    const src = await Deno.readTextFile(`${dir}/kiln.js`);
    // no run-time code generation (CSP, edge runtimes): no Function constructor, no eval call
    // (a method named eval, Program.eval, is a definition: `eval(inputs) {`)
    assert.doesNotMatch(src, /\bnew Function\(|(?<![.\w])eval\((?![\w, ]*\)\s*\{)/);
    await Deno.writeTextFile(`${dir}/main.ts`, MAIN);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-lock",
        `--allow-read=${TINY_DIR}`,
        "main.ts",
        `${TINY_DIR}/tinynet.onnx`,
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const got = JSON.parse(new TextDecoder().decode(out.stdout)) as number[];

    const p = compile(
      await parseOnnx(`${TINY_DIR}/tinynet.onnx`, { inputDims: { x: [1, 3, 16, 16] } }),
      "ref",
    );
    const x = new Float32Array(768).map((_, i) => Math.sin(i));
    const res = await p.eval({ x: { dtype: "float32", dims: [1, 3, 16, 16], data: x } });
    const want = Array.from(res.probs.data as Float32Array);
    p.dispose();
    assert.deepEqual(got, want, "the bundle computes what mod.ts computes");

    // (Deno starts a worker from a file only with read access to it: the bundle's folder here)
    await t.step("WorkerProgram from the bundle runs kiln_worker.js beside it", async () => {
      await Deno.writeTextFile(`${dir}/worker_main.ts`, WORKER_MAIN);
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--no-lock",
          `--allow-read=${TINY_DIR},${dir}`,
          "worker_main.ts",
          `${TINY_DIR}/tinynet.onnx`,
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      assert.deepEqual(JSON.parse(new TextDecoder().decode(run.stdout)), want);
    });

    await t.step("and in Node (files through node:fs)", async () => {
      const version = await _node();
      if (!version) {
        console.log("  skipped: no `node` on PATH");
        return;
      }
      const [major, minor] = (/^v(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
      assert.ok(major > 20 || (major === 20 && minor >= 16), `node ${version}: kiln needs 20.16 or later`);
      await Deno.writeTextFile(`${dir}/main.mjs`, NODE_MAIN);
      const run = await new Deno.Command("node", {
        args: ["main.mjs", `${TINY_DIR}/tinynet.onnx`],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      const r = JSON.parse(new TextDecoder().decode(run.stdout)) as {
        a: number[];
        b: number[];
        w: number[];
        copied: number;
      };
      // Node 20's V8 has no relaxed SIMD: it runs the core's plain SIMD build, whose separate
      // multiply and add round differently from the fused ones (core/engine.ts)
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(r.a[i] - want[i]) <= 1e-6, `probs[${i}]: Node ${r.a[i]}, Deno ${want[i]}`);
      }
      assert.deepEqual(r.b, r.a, "deferred weights bound from the folder give the same outputs");
      assert.deepEqual(r.w, r.a, "a WorkerProgram (worker_threads running kiln_worker.js) computes the same");
      assert.ok(r.copied > 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
