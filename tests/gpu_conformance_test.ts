// The ONNX backend node tests on the gpu target (tests/util/gpu.ts says which GPU: the CPU emulator
// in CI, the real device under `deno task test:gpu`): every test that passes on ref passes on
// gpu, and a test whose ops all have a device kernel runs with no node on the host, except the
// cases listed in HOST_ALLOWED with the reason the device kernel leaves them to the host.
import assert from "node:assert/strict";
import { openLibraryAt } from "../ffi/library.ts";
import { gpuBackend, nodeTestsMissing, runConformance } from "./conformance/run.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";

const GPU = gpuUnderTest();
const missing = nodeTestsMissing();
if (missing) console.log(`gpu_conformance_test.ts: skipped: ${missing}`);
const ignore = gpuIgnore("gpu_conformance_test.ts") || missing !== null;

/** Tests of ops with a device kernel that may still run a node on the host, with the reason. */
const HOST_ALLOWED: Record<string, string> = {
  // training mode updates running statistics and returns batch statistics: inference kernels only
  test_batchnorm_epsilon_training_mode: "BatchNormalization in training mode runs on the host",
  test_batchnorm_example_training_mode: "BatchNormalization in training mode runs on the host",
};

/** Tests that pass on ref and may fail on gpu, with the reason. */
const FAIL_ALLOWED: Record<string, string> = {};

Deno.test({
  name: `gpu target (${GPU.name}): the ONNX node tests pass where ref passes, on device kernels`,
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ref = await runConformance({ timeoutMs: 20_000 });
    const gpu = await runConformance({ timeoutMs: 60_000, backend: gpuBackend(GPU.options.library) });
    const deviceOps = new Set(openLibraryAt(GPU.options.library!).deviceOps());
    const onRef = new Map(ref.results.map((r) => [r.name, r]));
    const regressions: string[] = [];
    const fallbacks: string[] = [];
    let onDevice = 0;
    for (const r of gpu.results) {
      const base = onRef.get(r.name)!;
      if (base.status === "pass" && r.status !== "pass" && !FAIL_ALLOWED[r.name]) {
        regressions.push(`${r.name}: ${r.status} ${r.reason ?? ""}`);
      }
      if (r.status !== "pass") continue;
      const host = r.hostOps ?? [];
      if (host.length === 0) onDevice++;
      const kernelOps = r.ops.filter((op) => op !== "Constant");
      if (kernelOps.every((op) => deviceOps.has(op)) && host.length && !HOST_ALLOWED[r.name]) {
        fallbacks.push(`${r.name}: ${[...new Set(host)].join(", ")}`);
      }
    }
    console.log(
      `gpu conformance on ${GPU.name}: ${gpu.passed}/${gpu.total} passed (ref ${ref.passed}), ${onDevice} of them ` +
        `with every node on the device; ${deviceOps.size} ops have device kernels`,
    );
    assert.deepEqual(regressions, [], "tests that pass on ref and fail on gpu");
    assert.deepEqual(fallbacks, [], "tests whose ops all have device kernels but ran a node on the host");
  },
});
