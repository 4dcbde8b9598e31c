// The gpu target needs no permission beyond reading the model folder and FFI access to kiln's
// library (plus writing where outputs go): the CLI compiles, binds, runs and bakes under exactly
// that. Deno refuses every FFI pointer helper under a path-scoped --allow-ffi, so this also checks
// that the bindings never use one.
import assert from "node:assert/strict";
import { writeNpyFile } from "../core/npy.ts";
import { runCliWith } from "./util/cli.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";

const TINY_DIR = new URL("../examples/tinynet", import.meta.url).pathname;
const ignore = gpuIgnore("gpu_permissions_test.ts");
const GPU = gpuUnderTest();

Deno.test({
  name:
    `gpu target (${GPU.name}): the CLI runs with --allow-read=<model dir> --allow-ffi=<library> and nothing more`,
  ignore,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "kiln_gpu_perm_" });
    try {
      const lib = GPU.options.library!;
      const x = new Float32Array(768).map((_, i) => Math.sin(i));
      await writeNpyFile(`${out}/x.npy`, { dtype: "float32", dims: [1, 3, 16, 16], data: x });
      const flags = [`--allow-read=${TINY_DIR},${out}`, `--allow-write=${out}`, `--allow-ffi=${lib}`];
      const gpu = ["--gpu-library", lib];
      const steps: string[][] = [
        [
          "compile",
          `${TINY_DIR}/tinynet.onnx`,
          "--defer-weights",
          "--dims",
          "x=1x3x16x16",
          "--target",
          "gpu",
          ...gpu,
          "-o",
          `${out}/w.kiln`,
        ],
        [
          "run",
          `${out}/w.kiln`,
          "--weights",
          TINY_DIR,
          "--input",
          `x=${out}/x.npy`,
          "--output",
          `${out}/y`,
          ...gpu,
        ],
        ["bake", `${out}/w.kiln`, "--weights", TINY_DIR, "-o", `${out}/b.kiln`, "--target", "gpu", ...gpu],
        ["run", `${out}/b.kiln`, "--input", `x=${out}/x.npy`, "--output", `${out}/z`, ...gpu],
        ["inspect", `${out}/b.kiln`, ...gpu],
      ];
      for (const args of steps) {
        const r = await runCliWith(flags, ...args);
        assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /NotCapable|PermissionDenied|Requires/);
      }
      const y = await Deno.readFile(`${out}/y/probs.npy`);
      const z = await Deno.readFile(`${out}/z/probs.npy`);
      assert.deepEqual(y, z, "bound and baked weights give the same outputs");
      // without FFI access the gpu target says what is missing
      const r = await runCliWith(
        [`--allow-read=${TINY_DIR},${out}`, `--allow-write=${out}`],
        "inspect",
        `${out}/b.kiln`,
        ...gpu,
      );
      assert.equal(r.code, 1);
      assert.match(r.stderr, /--allow-ffi/);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
