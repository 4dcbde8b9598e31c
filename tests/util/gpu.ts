/**
 * Which GPU the gpu tests run on. By default the CPU emulator of kiln's HIP library
 * (build/hip/libkiln_hip_emu.so, built by `deno task build:hip`): CI has no GPU, and the emulator
 * runs the whole gpu target (FFI, schedule, launch lists, binds, every kernel) on the CPU. With
 * `KILN_TEST_GPU=device` (`deno task test:gpu` on a GPU machine) they run on the real device that
 * the library lookup finds, and skip with the lookup's reason where there is none.
 * @module
 */
import { emulatorLibraryPath, openGpuLibrary, openLibraryAt } from "../../ffi/library.ts";
import type { GpuOptions } from "../../core/targets/target.ts";

/** The GPU under test, or why there is none. */
export interface GpuUnderTest {
  /** "emulator" (CI) or "device" (a real GPU) */
  kind: "emulator" | "device";
  /** options for compile/load/finalize */
  options: GpuOptions;
  /** e.g. "kiln CPU emulator" or "NVIDIA H200 (sm_90)" */
  name: string;
  /** set when the tests must skip; says why */
  skip?: string;
}

function _env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

let _cached: GpuUnderTest | undefined;

/** The GPU the gpu tests use (see the module doc). */
export function gpuUnderTest(): GpuUnderTest {
  if (_cached) return _cached;
  if (_env("KILN_TEST_GPU") === "device") {
    try {
      const lib = openGpuLibrary(_env("KILN_TEST_GPU_LIBRARY"));
      const d = lib.info().devices[0];
      _cached = d
        ? { kind: "device", options: { library: lib.path }, name: `${d.name} (${d.arch})` }
        : { kind: "device", options: {}, name: "none", skip: `no GPU found by ${lib.path}` };
    } catch (e) {
      _cached = { kind: "device", options: {}, name: "none", skip: (e as Error).message.split("\n")[0] };
    }
    return _cached;
  }
  const path = emulatorLibraryPath();
  try {
    openLibraryAt(path);
    _cached = { kind: "emulator", options: { library: path }, name: "kiln CPU emulator" };
  } catch (e) {
    _cached = {
      kind: "emulator",
      options: {},
      name: "none",
      skip: `the CPU emulator library is not built (deno task build:hip): ${
        (e as Error).message.split("\n")[0]
      }`,
    };
  }
  return _cached;
}

/** Logs why gpu tests skip (once per file) and returns the `ignore` flag for Deno.test. */
export function gpuIgnore(file: string): boolean {
  const g = gpuUnderTest();
  if (g.skip) console.log(`${file}: gpu tests skipped: ${g.skip}`);
  return g.skip !== undefined;
}
