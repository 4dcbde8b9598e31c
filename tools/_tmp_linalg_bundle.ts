import * as esbuild from "esbuild";
await esbuild.build({
  entryPoints: [new URL("./_tmp_linalg.ts", import.meta.url).pathname],
  bundle: true, format: "esm", platform: "neutral", target: "es2022", mainFields: ["module", "main"],
  external: ["node:*"], outfile: "build/hip-linalg/dev/lt.js", logLevel: "warning",
});
await esbuild.stop();
