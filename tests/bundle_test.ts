// The bundle (tools/bundle.ts, `deno task bundle`): one self-contained ES module that a Deno
// program imports with no node_modules, no config and read permission for the model only, and
// that computes what mod.ts computes.
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

Deno.test("the bundle runs on its own: no node_modules, no config, read access to the model only", async () => {
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
