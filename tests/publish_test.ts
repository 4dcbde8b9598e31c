// The package as users get it: `deno publish --dry-run` passes (name, version, exports, license,
// the generated WASM module inside, no slow types), and mod.ts works imported from a folder
// outside the repository (its one dependency, protobufjs, is an npm: specifier, fetched by Deno
// from the npm registry there: the step skips, saying so, where the registry cannot be reached).
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;
const DENO = Deno.execPath();

async function _run(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(DENO, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

async function _registryReachable(): Promise<boolean> {
  try {
    const r = await fetch("https://registry.npmjs.org/protobufjs", {
      method: "HEAD",
      signal: AbortSignal.timeout(5000),
    });
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  }
}

Deno.test("the package: publishable to JSR, importable from outside the repository", async (t) => {
  await t.step("deno publish --dry-run passes with the WASM module and the license inside", async () => {
    const r = await _run(["publish", "--dry-run", "--allow-dirty"], ROOT);
    const out = r.out.replace(new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g"), "");
    assert.equal(r.code, 0, out);
    assert.match(out, /Success Dry run complete/);
    assert.match(out, /build\/kiln_wasm\.ts/);
    assert.match(out, /\/LICENSE\b/);
    assert.doesNotMatch(out, /error\[/);
    assert.doesNotMatch(out, /\/tests\//, "tests are not published");
  });
  const reachable = await _registryReachable();
  if (!reachable) {
    console.log("publish_test.ts: importing from outside skipped: the npm registry cannot be reached");
  }
  await t.step({
    name: "mod.ts imported by a script in another folder compiles and runs a model",
    ignore: !reachable,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "kiln_outside_" });
      try {
        await Deno.writeTextFile(
          `${dir}/main.ts`,
          `import { compile, parseOnnx } from ${
            JSON.stringify(new URL("../mod.ts", import.meta.url).href)
          };\n` +
            `const p = compile(await parseOnnx(${
              JSON.stringify(`${ROOT}examples/tinynet/tinynet.onnx`)
            }, { inputDims: { x: [1, 3, 16, 16] } }), "ref");\n` +
            `const x = { dtype: "float32" as const, dims: [1, 3, 16, 16], data: new Float32Array(768).fill(0.5) };\n` +
            `const y = (await p.eval({ x }))["probs"].data as Float32Array;\n` +
            `console.log("sum", y.reduce((a, b) => a + b, 0).toFixed(4));\n`,
        );
        const r = await _run([
          "run",
          "--allow-read",
          "--allow-net=registry.npmjs.org",
          "--allow-env",
          `${dir}/main.ts`,
        ], dir);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /sum 1\.0000/);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
});
