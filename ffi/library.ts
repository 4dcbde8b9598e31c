/**
 * Finding and opening libkiln_hip. The lookup tries, in order: an explicit path (an option of
 * the API, `--gpu-library` on the CLI), the `KILN_HIP_LIBRARY` environment variable (when env
 * access is allowed), then the build outputs beside this module (build/hip/libkiln_hip.so for
 * NVIDIA, build/hip/libkiln_hip_amd.so for AMD). The first library that opens and finds a GPU
 * wins; when none does, one error lists every path tried and what each said. The CPU emulator
 * (build/hip/libkiln_hip_emu.so) is a test device: it is used only when named explicitly.
 *
 * Everything here works under a scoped `--allow-ffi=<library path>`: no pointer helper is used.
 * @module
 */
import { KilnError } from "../core/errors.ts";
import { KILN_ABI_VERSION, type KilnHipSymbols, STATUS, SYMBOLS } from "./symbols.ts";

/** A GPU that a library found. */
export interface GpuDevice {
  /** device index for that library */
  index: number;
  /** e.g. "NVIDIA H200" */
  name: string;
  /** e.g. "sm_90", "gfx90a" */
  arch: string;
  /** total device memory, bytes */
  memoryBytes: number;
  /** free device memory when asked, bytes */
  freeBytes: number;
  /** multiprocessors (compute units) */
  multiprocessors: number;
}

/** What a library reports about itself and the machine. */
export interface GpuLibraryInfo {
  /** the library file */
  path: string;
  /** "cuda", "hip" or "emulator" */
  platform: string;
  /** the runtime's version as the platform numbers it (0 when unknown) */
  runtimeVersion: number;
  /** the driver's version as the platform numbers it (0 when unknown) */
  driverVersion: number;
  /** the GPUs it finds */
  devices: GpuDevice[];
  /** the runtime's reason when it found no device */
  error: string;
}

const _enc = new TextEncoder();
const _dec = new TextDecoder();

/** A NUL-terminated UTF-8 string for a "buffer" parameter. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const b = _enc.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** Reads a string a library writes into a caller's buffer (calls `fill(buf, cap)`, which returns the full length). */
export function readText(fill: (buf: Uint8Array<ArrayBuffer>, cap: bigint) => bigint | number): string {
  let cap = 1024;
  for (let tries = 0; tries < 4; tries++) {
    const buf = new Uint8Array(cap);
    const n = Number(fill(buf, BigInt(cap)));
    if (n < 0) return "";
    if (n <= cap) return _dec.decode(buf.subarray(0, n));
    cap = n;
  }
  return "";
}

/** An opened libkiln_hip. */
export class GpuLibrary {
  /** The file it was opened from. */
  readonly path: string;
  /** @internal Its functions (Deno FFI). */
  readonly symbols: KilnHipSymbols;
  #lib: Deno.DynamicLibrary<typeof SYMBOLS>;

  /** @internal use `openGpuLibrary`. */
  constructor(path: string, lib: Deno.DynamicLibrary<typeof SYMBOLS>) {
    this.path = path;
    this.#lib = lib;
    this.symbols = lib.symbols;
  }

  /** The library's last error without a program. */
  lastError(): string {
    return readText((b, c) => this.symbols.kiln_last_error(b, c));
  }

  /** What the library finds on this machine. */
  info(): GpuLibraryInfo {
    const text = readText((b, c) => this.symbols.kiln_devices_json(b, c));
    const j = JSON.parse(text) as Omit<GpuLibraryInfo, "path">;
    return { path: this.path, ...j };
  }

  /** The ONNX ops that have a device kernel in this library. */
  deviceOps(): string[] {
    return JSON.parse(readText((b, c) => this.symbols.kiln_ops_json(b, c))) as string[];
  }

  /** Closes the library (only once every context and program of it is destroyed). */
  close(): void {
    this.#lib.close();
  }
}

/** A KilnError for a failed library call, code by status. */
export function gpuError(status: number, message: string): KilnError {
  const code = status === STATUS.OUT_OF_MEMORY
    ? "memory"
    : status === STATUS.NO_DEVICE
    ? "no_gpu"
    : status === STATUS.IO
    ? "io"
    : status === STATUS.CHECKSUM
    ? "format"
    : status === STATUS.SCHEDULE
    ? "format"
    : status === STATUS.ARGUMENT
    ? "input"
    : "gpu";
  return new KilnError(code, message);
}

const _opened = new Map<string, GpuLibrary>();

function _env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no env permission: the variable is not consulted
  }
}

/** The build outputs beside this module, in lookup order. */
export function builtLibraryPaths(): string[] {
  return ["libkiln_hip.so", "libkiln_hip_amd.so"].map((f) =>
    new URL(`../build/hip/${f}`, import.meta.url).pathname
  );
}

/** The CPU emulator's build output (a test device). */
export function emulatorLibraryPath(): string {
  return new URL("../build/hip/libkiln_hip_emu.so", import.meta.url).pathname;
}

/** Opens one library file (cached); throws a KilnError naming the path and why. */
export function openLibraryAt(path: string): GpuLibrary {
  const cached = _opened.get(path);
  if (cached) return cached;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    // the ABI version first: a library of another version may lack symbols this kiln declares
    const probe = Deno.dlopen(path, { kiln_abi_version: SYMBOLS.kiln_abi_version });
    const abi = probe.symbols.kiln_abi_version();
    probe.close();
    if (abi !== KILN_ABI_VERSION) {
      throw new KilnError(
        "no_gpu",
        `The GPU library '${path}' has ABI version ${abi}, this kiln needs ${KILN_ABI_VERSION}; rebuild it with \`deno task build:hip\``,
      );
    }
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    const msg = (e as Error).message;
    const name = (e as Error).name;
    if (name === "NotCapable" || name === "PermissionDenied") {
      throw new KilnError(
        "permission",
        `Cannot open the GPU library '${path}': FFI access to it is not allowed (run with --allow-ffi=${path})`,
      );
    }
    throw new KilnError("no_gpu", `Cannot open the GPU library '${path}': ${msg.split("\n")[0]}`);
  }
  const g = new GpuLibrary(path, lib);
  _opened.set(path, g);
  return g;
}

/**
 * The library to run the gpu target with: `explicit` if given (used even without a device, so
 * that the caller gets that library's own "no GPU" error), else the first of KILN_HIP_LIBRARY and
 * the build outputs that opens and finds a GPU. Throws one KilnError ("no_gpu") listing every path
 * tried and what each said, with how to build the library.
 */
export function openGpuLibrary(explicit?: string): GpuLibrary {
  if (explicit) return openLibraryAt(explicit);
  const tried: string[] = [];
  const env = _env("KILN_HIP_LIBRARY");
  const paths = env ? [env] : builtLibraryPaths();
  for (const path of paths) {
    try {
      const lib = openLibraryAt(path);
      const info = lib.info();
      if (info.devices.length > 0) return lib;
      tried.push(`${path}: ${info.platform} runtime found no GPU${info.error ? ` (${info.error})` : ""}`);
    } catch (e) {
      tried.push((e as Error).message.replace(/^Cannot open the GPU library '[^']*': /, `${path}: `));
    }
  }
  throw new KilnError(
    "no_gpu",
    `No GPU for the gpu target. Tried:\n${tried.map((t) => `  - ${t}`).join("\n")}\n` +
      `Build the library with \`deno task build:hip\` (nvcc for NVIDIA, hipcc for AMD), or name one with ` +
      `KILN_HIP_LIBRARY or the \`library\` option.`,
  );
}

/**
 * What the GPU library finds on this machine: the library at `path`, else the one the gpu target
 * would use (see `openGpuLibrary`), else the first that opens (its devices are then empty and its
 * `error` says why). Throws the lookup's error, listing every path tried, when none opens.
 */
export function gpuLibraryInfo(path?: string): GpuLibraryInfo {
  if (path) return openLibraryAt(path).info();
  try {
    return openGpuLibrary().info();
  } catch (e) {
    const env = _env("KILN_HIP_LIBRARY");
    for (const p of env ? [env] : builtLibraryPaths()) {
      try {
        return openLibraryAt(p).info();
      } catch {
        // try the next
      }
    }
    throw e;
  }
}
