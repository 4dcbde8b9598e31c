// libkiln_hip's flavours load through Deno FFI and report what they find: the NVIDIA and AMD
// builds say "no GPU" cleanly on a machine without one (CI), the CPU emulator reports its one
// test device, the lookup lists every path it tried, and the gpu target fails with a clear
// error where there is no GPU.
import assert from "node:assert/strict";
import { compile, KilnError, parseOnnx } from "../mod.ts";
import { builtLibraryPaths, emulatorLibraryPath, openGpuLibrary, openLibraryAt } from "../ffi/library.ts";
import { runCliWith } from "./util/cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY = `${ROOT}examples/tinynet/tinynet.onnx`;

function _exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const [CUDA, AMD] = builtLibraryPaths();
const EMU = emulatorLibraryPath();

for (const [flavour, path, platform] of [["NVIDIA", CUDA, "cuda"], ["AMD", AMD, "hip"]] as const) {
  const built = _exists(path);
  if (!built) {
    console.log(`gpu_library_test.ts: the ${flavour} build is missing (${path}): its test is skipped`);
  }
  Deno.test({
    name: `the ${flavour} build (${
      path.slice(ROOT.length)
    }) loads and reports its devices or why it has none`,
    ignore: !built,
    fn() {
      let lib;
      try {
        lib = openLibraryAt(path);
      } catch (e) {
        // the AMD build links libamdhip64: a machine without ROCm cannot load it, and says so
        assert.ok(e instanceof KilnError, String(e));
        assert.match(e.message, new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
        return;
      }
      const info = lib.info();
      assert.equal(info.platform, platform);
      if (info.devices.length === 0) assert.ok(info.error.length > 0, "no device, and the runtime's reason");
      for (const d of info.devices) assert.ok(d.memoryBytes > 0 && d.name.length > 0);
      assert.ok(lib.deviceOps().includes("MatMul"), "the library lowers MatMul");
    },
  });
}

Deno.test({
  name: "the CPU emulator build is a test device that is never picked without being named",
  ignore: !_exists(EMU),
  fn() {
    const info = openLibraryAt(EMU).info();
    assert.equal(info.platform, "emulator");
    assert.equal(info.devices.length, 1);
    assert.equal(info.devices[0].name, "kiln CPU emulator");
    assert.ok(!builtLibraryPaths().includes(EMU));
  },
});

Deno.test("a library that is not there: the error names it and how to build one", () => {
  assert.throws(
    () => openGpuLibrary(`${ROOT}build/hip/no-such-lib.so`),
    (e: KilnError) => e.code === "no_gpu" && /no-such-lib\.so/.test(e.message),
  );
});

const anyDevice = builtLibraryPaths().some((p) => {
  try {
    return openLibraryAt(p).info().devices.length > 0;
  } catch {
    return false;
  }
});

Deno.test({
  name: "with no GPU the gpu target fails at compile with every library it tried, and `kiln devices` says so",
  ignore: anyDevice,
  async fn() {
    const model = await parseOnnx(TINY, { inputDims: { x: [1, 3, 16, 16] } });
    assert.throws(
      () => compile(model, "gpu"),
      (e: KilnError) =>
        e.code === "no_gpu" && /No GPU for the gpu target/.test(e.message) && e.message.includes(CUDA) &&
        /deno task build:hip/.test(e.message),
    );
    const r = await runCliWith(["--allow-read", "--allow-ffi"], "devices");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no GPU found/);
  },
});
