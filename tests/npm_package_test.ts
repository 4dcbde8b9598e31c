// The npm package (tools/npm_pack.ts, `deno task npm`): `npm pack` gives a tarball with one ES
// module (the WASM core inside), TypeScript declarations and a package.json for Node >= 20.16; it is
// installed into an empty folder outside the repo, where Node compiles a model given as bytes,
// binds its weights from a folder and evaluates it, as Deno does with mod.ts; and a TypeScript
// file importing the package's types checks under Node's own module resolution (nodenext, strict,
// the declarations checked too: no skipLibCheck). Skips, saying why, where node or npm is missing.
import assert from "node:assert/strict";
import { npmPack } from "../tools/npm_pack.ts";
import { compile, parseOnnx } from "../mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY_DIR = `${ROOT}examples/tinynet`;

const USE = `import { compile, parseOnnx, WeightSet } from "@kiln/kiln";
import { readFileSync } from "node:fs";
const [model, dir] = process.argv.slice(2);
const bytes = new Uint8Array(readFileSync(model));
const p = compile(await parseOnnx(bytes, { deferExternalWeights: true, inputDims: { x: [1, 3, 16, 16] } }), "ref");
const r = await p.bindWeights(await WeightSet.fromOnnxDir(p, dir));
const x = new Float32Array(768).map((_, i) => Math.sin(i));
const y = await p.eval({ x: { dtype: "float32", dims: [1, 3, 16, 16], data: x } });
console.log(JSON.stringify({ copied: r.copied, probs: Array.from(y.probs.data) }));
`;

const CHECK = `import { compile, KilnError, type Program, type ProgramInfo, WeightSet } from "@kiln/kiln";
export function infoOf(p: Program): ProgramInfo {
  return p.info();
}
export const isKiln = (e: unknown): e is KilnError => e instanceof KilnError;
export async function bind(p: Program, dir: string): Promise<number> {
  return (await p.bindWeights(await WeightSet.fromOnnxDir(p, dir))).copied;
}
export { compile };
`;

async function _has(cmd: string): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

async function _run(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  return { code: o.code, out: new TextDecoder().decode(o.stdout), err: new TextDecoder().decode(o.stderr) };
}

Deno.test("the npm package installs into an empty folder and runs in Node, typed", async (t) => {
  if (!(await _has("node")) || !(await _has("npm"))) {
    console.log("  skipped: node and npm are needed on PATH");
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "kiln_npm_test_" });
  try {
    const pkg = await npmPack(`${dir}/pkg`, { pack: true });
    assert.ok(pkg.tarball, "npm pack made a tarball");
    await t.step("the tarball holds the module, its declarations and the package manifest", async () => {
      const list = await _run("tar", ["tzf", pkg.tarball!], dir);
      const files = list.out.split("\n");
      for (
        const f of ["package/kiln.js", "package/types/mod.d.ts", "package/package.json", "package/LICENSE"]
      ) {
        assert.ok(files.includes(f), `${f} in the tarball`);
      }
      const manifest = JSON.parse(await Deno.readTextFile(`${dir}/pkg/package.json`));
      assert.equal(manifest.type, "module");
      assert.equal(manifest.engines.node, ">=20.16");
      assert.deepEqual(manifest.exports["."], { types: "./types/mod.d.ts", default: "./kiln.js" });
      const dts = await Deno.readTextFile(`${dir}/pkg/types/mod.d.ts`);
      assert.doesNotMatch(dts, /from "\.[^"]*\.ts"/, "declarations import .js paths");
    });

    const app = `${dir}/app`;
    await Deno.mkdir(app);
    await Deno.writeTextFile(`${app}/package.json`, '{ "name": "app", "private": true, "type": "module" }\n');
    const inst = await _run(
      "npm",
      ["install", pkg.tarball!, "--prefer-offline", "--no-audit", "--no-fund"],
      app,
    );
    assert.equal(inst.code, 0, inst.err);

    await t.step("Node compiles a model from bytes, binds weights and evaluates", async () => {
      await Deno.writeTextFile(`${app}/use.mjs`, USE);
      const r = await _run("node", ["use.mjs", `${TINY_DIR}/tinynet.onnx`, TINY_DIR], app);
      assert.equal(r.code, 0, r.err);
      const got = JSON.parse(r.out) as { copied: number; probs: number[] };
      assert.equal(got.copied, 8);
      const p = compile(
        await parseOnnx(`${TINY_DIR}/tinynet.onnx`, { inputDims: { x: [1, 3, 16, 16] } }),
        "ref",
      );
      const x = new Float32Array(768).map((_, i) => Math.sin(i));
      const want = Array.from(
        (await p.eval({ x: { dtype: "float32", dims: [1, 3, 16, 16], data: x } })).probs.data as Float32Array,
      );
      p.dispose();
      // within rounding: Node 20 runs the core's plain SIMD build (no relaxed SIMD)
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(got.probs[i] - want[i]) <= 1e-6, `probs[${i}]`);
      }
    });

    await t.step("its types check under nodenext, declarations included", async () => {
      await Deno.writeTextFile(`${app}/check.ts`, CHECK);
      await Deno.writeTextFile(
        `${app}/tsconfig.json`,
        JSON.stringify({
          compilerOptions: {
            noEmit: true,
            strict: true,
            module: "nodenext",
            moduleResolution: "nodenext",
            target: "es2022",
            types: ["node"],
            typeRoots: [`${ROOT}node_modules/@types`],
          },
          files: ["check.ts"],
        }),
      );
      const r = await _run(`${ROOT}node_modules/.bin/tsc`, ["-p", "tsconfig.json"], app);
      assert.equal(r.code, 0, r.out + r.err);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
