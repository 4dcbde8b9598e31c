/**
 * `deno task bundle`: the public API (mod.ts) as one self-contained ES module, dist/kiln.js,
 * with the WASM core (embedded by build/kiln_wasm.ts) and the ONNX decoder (protobufjs) inside.
 * It needs no node_modules and no import map: vendor the one file and
 * `import { compile, parseOnnx } from "./kiln.js"` from any Deno program, with read permission
 * for the model only, or from Node >= 20.16 (files through node:fs: core/host.ts; the gpu target
 * needs Deno's FFI). `node:` built-ins stay imports (Deno and Node provide them).
 *
 *   deno run -A tools/bundle.ts [--out dist/kiln.js] [--minify]
 * @module
 */
import * as esbuild from "esbuild";
import { parseArgs } from "node:util";
import { KILN_VERSION } from "../core/version.ts";

/** What a bundle build made. */
export interface BundleResult {
  outfile: string;
  bytes: number;
  ms: number;
}

/** How to bundle. */
export interface BundleOptions {
  minify?: boolean;
  /**
   * leave protobufjs an import (`protobufjs/minimal.js`) instead of inlining it: the npm package
   * depends on it, so bundlers and Node share one copy
   */
  externalProtobuf?: boolean;
  /** the banner's last words (default: where it runs) */
  note?: string;
}

/** Bundles mod.ts into `outfile` (esbuild: ESM, es2022, platform neutral). */
export async function bundle(outfile: string, options: BundleOptions = {}): Promise<BundleResult> {
  const t0 = performance.now();
  // what both outputs share: one ES module each, for every runtime
  const common = {
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    legalComments: "inline",
    logLevel: "warning",
  } as const;
  try {
    await esbuild.build({
      ...common,
      entryPoints: [new URL("../mod.ts", import.meta.url).pathname],
      // protobufjs is CommonJS with only a "main" field; platform "neutral" reads none by default
      mainFields: ["module", "main"],
      external: ["node:*"],
      // npm: specifiers (protobufjs) resolve to the package in node_modules
      plugins: [{
        name: "npm-specifiers",
        setup(build) {
          // WorkerProgram starts the bundle's worker file, kiln_worker.js beside it (built below)
          build.onLoad({ filter: /core[\\/]worker\.ts$/ }, async (args) => ({
            contents: (await Deno.readTextFile(args.path)).replace(
              '"./worker_main.ts"',
              '"./kiln_worker.js"',
            ),
            loader: "ts",
          }));
          build.onResolve({ filter: /^npm:/ }, (args) => {
            const m = /^npm:((?:@[^/]+\/)?[^@/]+)(?:@[^/]+)?(\/.*)?$/.exec(args.path);
            if (!m) return { errors: [{ text: `cannot resolve ${args.path}` }] };
            if (options.externalProtobuf && m[1] === "protobufjs") {
              return { path: `protobufjs${m[2] ?? ""}`, external: true };
            }
            const root = new URL(`../node_modules/${m[1]}`, import.meta.url).pathname;
            return { path: `${root}${m[2] ?? ""}` };
          });
        },
      }],
      outfile,
      minify: options.minify ?? false,
      banner: {
        js: `// kiln ${KILN_VERSION}: bundle of mod.ts (tools/bundle.ts). ${
          options.note ?? "Runs under Deno and Node >= 20.16."
        }`,
      },
    });
    // the worker's module: core/worker_main.ts with mod.ts left an import of the bundle itself
    await esbuild.build({
      ...common,
      entryPoints: [new URL("../core/worker_main.ts", import.meta.url).pathname],
      plugins: [{
        name: "kiln-itself",
        setup(build) {
          build.onResolve({ filter: /(^|\/)mod\.ts$/ }, () => ({
            path: "./" + outfile.slice(outfile.lastIndexOf("/") + 1),
            external: true,
          }));
        },
      }],
      outfile: outfile.slice(0, outfile.lastIndexOf("/") + 1) + "kiln_worker.js",
      banner: {
        js: `// kiln ${KILN_VERSION}: WorkerProgram's worker (tools/bundle.ts); imports kiln.js beside it.`,
      },
    });
  } finally {
    await esbuild.stop();
  }
  return { outfile, bytes: (await Deno.stat(outfile)).size, ms: performance.now() - t0 };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string", default: new URL("../dist/kiln.js", import.meta.url).pathname },
      minify: { type: "boolean", default: false },
    },
  });
  const r = await bundle(values.out!, { minify: values.minify });
  console.error(`bundle: ${r.outfile} ${(r.bytes / 1024).toFixed(0)} KiB in ${r.ms.toFixed(0)} ms`);
}
