/**
 * `deno task npm`: kiln as an npm package, in dist/npm/ (and, with --pack, the tarball `npm pack`
 * makes of it). What it holds:
 *
 * - `kiln.js`: mod.ts bundled as one ES module (tools/bundle.ts) with the WASM core inside;
 *   protobufjs stays an import, a dependency of the package, so an app's bundler keeps one copy.
 * - `types/`: TypeScript declarations emitted by `tsc` from the sources (Deno's own API types only
 *   for compiling them: the declarations name none of them; members that are Deno FFI plumbing
 *   are `@internal` and stripped). Imports in them name `.js` files, as Node's resolution wants.
 * - `package.json` (ES module, `exports` with `types` and `default`, Node >= 20.16), README, LICENSE.
 *
 * In Node the core runs on the ref target with files read through node:fs (core/host.ts); the gpu
 * target needs Deno's FFI and says so.
 *
 *   deno run -A tools/npm_pack.ts [--out dist/npm] [--pack]
 * @module
 */
import { parseArgs } from "node:util";
import { bundle } from "./bundle.ts";
import { KILN_VERSION } from "../core/version.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** What a package build made. */
export interface NpmPackResult {
  dir: string;
  /** the tarball (with `pack`) */
  tarball?: string;
  ms: number;
}

async function _run(cmd: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`npm_pack: ${cmd} ${args.join(" ")} failed:\n${text}`);
  return text;
}

async function* _walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* _walk(p);
    else if (e.isFile) yield p;
  }
}

/** Emits the declarations of mod.ts into `out` with tsc. */
async function _declarations(out: string): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "kiln_npm_" });
  try {
    await Deno.writeTextFile(
      `${tmp}/deno.d.ts`,
      await _run(`${ROOT}node_modules/.bin/deno`, ["types"], ROOT),
    );
    const config = {
      compilerOptions: {
        declaration: true,
        emitDeclarationOnly: true,
        allowImportingTsExtensions: true,
        stripInternal: true,
        target: "es2022",
        module: "esnext",
        moduleResolution: "bundler",
        lib: ["esnext"],
        types: ["node"],
        typeRoots: [`${ROOT}node_modules/@types`],
        skipLibCheck: true,
        strict: true,
        rootDir: ROOT,
        outDir: out,
        baseUrl: ROOT,
        paths: {
          "npm:protobufjs@7.6.6": ["./node_modules/protobufjs/index.d.ts"],
          "npm:protobufjs@7.6.6/*": ["./node_modules/protobufjs/*"],
        },
      },
      files: [`${ROOT}mod.ts`, `${tmp}/deno.d.ts`],
    };
    await Deno.writeTextFile(`${tmp}/tsconfig.json`, JSON.stringify(config, null, 2));
    await _run(`${ROOT}node_modules/.bin/tsc`, ["-p", `${tmp}/tsconfig.json`], ROOT);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  // the generated protobuf declarations are a source file, not emitted: copied beside the rest
  await Deno.copyFile(`${ROOT}core/onnx/onnx_pb.d.ts`, `${out}/core/onnx/onnx_pb.d.ts`);
  // imports name the .js files Node resolves (`./x.ts` -> `./x.js`), and protobufjs by its npm name
  for await (const f of _walk(out)) {
    if (!f.endsWith(".d.ts")) continue;
    const src = await Deno.readTextFile(f);
    const fixed = src
      .replace(/(from\s+"|import\(")(\.{1,2}\/[^"]+)\.ts"/g, '$1$2.js"')
      .replace(/"npm:protobufjs@[^"/]+(\/[^"]*)?"/g, (_m, sub) => `"protobufjs${sub ?? ""}"`);
    if (fixed !== src) await Deno.writeTextFile(f, fixed);
  }
}

const README = `# kiln

Compile an ONNX model once, then swap its weights (fine-tunes, per-customer variants) without
recompiling, or bake them in. This is kiln's npm package: the WebAssembly core and its API as one
ES module, with TypeScript declarations, for Node >= 20.16 and bundlers.

\`\`\`js
import { compile, parseOnnx, WeightSet } from "@kiln/kiln";

const model = await parseOnnx("model.onnx", { deferExternalWeights: true });
const program = compile(model, "ref");
await program.bindWeights(await WeightSet.fromOnnxDir(program, "weights_v1"));
const outputs = await program.eval({ x: { dtype: "float32", dims: [1, 3, 16, 16], data } });
\`\`\`

In Node the \`ref\` target runs (files through node:fs); the \`gpu\` target needs Deno's FFI
(kiln on JSR: \`@kiln/kiln\`). Documentation: the project's README and docs/.
`;

/** Builds the package folder `dir` (emptied first); with `pack`, runs `npm pack` there. */
export async function npmPack(dir: string, options: { pack?: boolean } = {}): Promise<NpmPackResult> {
  const t0 = performance.now();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  await bundle(`${dir}/kiln.js`, {
    externalProtobuf: true,
    note: "npm package (tools/npm_pack.ts): Node >= 20.16 and bundlers.",
  });
  await _declarations(`${dir}/types`);
  const root = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`)) as {
    description: string;
    dependencies: Record<string, string>;
  };
  const pkg = {
    name: "@kiln/kiln",
    version: KILN_VERSION,
    description: root.description,
    license: "MIT",
    type: "module",
    main: "./kiln.js",
    types: "./types/mod.d.ts",
    exports: { ".": { types: "./types/mod.d.ts", default: "./kiln.js" } },
    engines: { node: ">=20.16" },
    sideEffects: false,
    dependencies: { protobufjs: root.dependencies.protobufjs },
    files: ["kiln.js", "kiln_worker.js", "types/", "README.md", "LICENSE"],
  };
  await Deno.writeTextFile(`${dir}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
  await Deno.writeTextFile(`${dir}/README.md`, README);
  await Deno.copyFile(`${ROOT}LICENSE`, `${dir}/LICENSE`);
  let tarball: string | undefined;
  if (options.pack) {
    const out = await _run("npm", ["pack", "--silent"], dir);
    tarball = `${dir}/${out.trim().split("\n").pop()!.trim()}`;
  }
  return { dir, tarball, ms: performance.now() - t0 };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string", default: `${ROOT}dist/npm` },
      pack: { type: "boolean", default: false },
    },
  });
  const r = await npmPack(values.out!, { pack: values.pack });
  console.error(`npm: ${r.dir}${r.tarball ? `, ${r.tarball}` : ""} in ${(r.ms / 1000).toFixed(1)} s`);
}
