// Builds kiln's HIP library (hip/) in the flavours this machine's toolchains allow:
//   build/hip/libkiln_hip.so      NVIDIA: nvcc, sm_80 + sm_90, the CUDA runtime linked statically
//   build/hip/libkiln_hip_amd.so  AMD: hipcc (HIP_PLATFORM=amd), gfx90a + gfx1030
//   build/hip/libkiln_hip_emu.so  the CPU emulator (g++): CI runs the gpu target on it
// A flavour whose compiler is missing is skipped with a message; one that fails to build fails the
// task. Objects are rebuilt when their source or any header is newer.
//   deno run -A tools/build_hip.ts [cuda|amd|emu ...] [--jobs N] [--out DIR]
import { parseArgs } from "node:util";

const root = new URL("../", import.meta.url).pathname;
const src = `${root}hip/src`;

interface Flavour {
  name: string;
  lib: string;
  compiler: string;
  env?: Record<string, string>;
  /** arguments to compile one source file (kernel sources are *.hip) */
  compile(file: string, obj: string): string[];
  link(objs: string[], lib: string): string[];
  /** extra sources of this flavour only */
  extra: string[];
}

const INCLUDE = [`-I${root}hip/include`, `-I${src}`];

const FLAVOURS: Flavour[] = [
  {
    name: "cuda",
    lib: "libkiln_hip.so",
    compiler: "nvcc",
    compile: (file, obj) => [
      "-std=c++17",
      "-O3",
      "-Xcompiler",
      "-fPIC",
      "-Xcompiler",
      "-fvisibility=hidden",
      "-gencode",
      "arch=compute_80,code=sm_80",
      "-gencode",
      "arch=compute_90,code=sm_90",
      ...INCLUDE,
      ...(file.endsWith(".hip") ? ["-x", "cu"] : []),
      "-c",
      file,
      "-o",
      obj,
    ],
    link: (objs, lib) => ["-shared", "-cudart", "static", "-o", lib, ...objs, "-ldl", "-lpthread"],
    extra: [],
  },
  {
    name: "amd",
    lib: "libkiln_hip_amd.so",
    compiler: "hipcc",
    env: { HIP_PLATFORM: "amd" },
    compile: (file, obj) => [
      "-std=c++17",
      "-O3",
      "-fPIC",
      "-fvisibility=hidden",
      "--offload-arch=gfx90a",
      "--offload-arch=gfx1030",
      "-DKILN_AMD",
      ...INCLUDE,
      "-x",
      "hip",
      "-c",
      file,
      "-o",
      obj,
    ],
    link: (objs, lib) => ["-shared", "-fPIC", "-o", lib, ...objs, "-ldl", "-lpthread"],
    extra: [],
  },
  {
    name: "emu",
    lib: "libkiln_hip_emu.so",
    compiler: "g++",
    compile: (file, obj) => [
      "-std=c++17",
      "-O2",
      "-g",
      "-fPIC",
      "-fvisibility=hidden",
      "-DKILN_EMU",
      "-Wall",
      "-Wno-unused-function",
      ...INCLUDE,
      "-x",
      "c++",
      "-c",
      file,
      "-o",
      obj,
    ],
    link: (objs, lib) => ["-shared", "-o", lib, ...objs, "-ldl", "-lpthread"],
    extra: [`${src}/platform/emu.cpp`],
  },
];

async function _has(cmd: string): Promise<boolean> {
  try {
    const r = await new Deno.Command("sh", {
      args: ["-c", `command -v ${cmd}`],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return r.success;
  } catch {
    return false;
  }
}

async function _mtime(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch {
    return 0;
  }
}

async function _walk(dir: string, exts: string[]): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) files.push(...await _walk(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) files.push(p);
  }
  return files.sort();
}

async function _run(cmd: string, args: string[], env?: Record<string, string>): Promise<void> {
  const r = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  if (!r.success) {
    const text = new TextDecoder().decode(r.stderr) + new TextDecoder().decode(r.stdout);
    throw new Error(`${cmd} ${args.filter((a) => a.startsWith("/")).slice(-2).join(" ")} failed:\n${text}`);
  }
}

async function _build(f: Flavour, jobs: number): Promise<void> {
  const t0 = performance.now();
  const sources = [
    ...(await _walk(src, [".cpp", ".hip"])).filter((p) => !p.includes("/platform/")),
    ...f.extra,
  ];
  const headers = [...await _walk(`${root}hip`, [".h"])];
  const newestHeader = Math.max(...await Promise.all(headers.map(_mtime)));
  const objDir = `${out}/obj/${f.name}`;
  await Deno.mkdir(objDir, { recursive: true });
  const objs = sources.map((s) => `${objDir}/${s.slice(src.length + 1).replaceAll("/", "_")}.o`);
  const todo: number[] = [];
  for (let i = 0; i < sources.length; i++) {
    const o = await _mtime(objs[i]);
    if (o < (await _mtime(sources[i])) || o < newestHeader) todo.push(i);
  }
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const i = todo[next++];
      await _run(f.compiler, f.compile(sources[i], objs[i]), f.env);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  const lib = `${out}/${f.lib}`;
  const newestObj = Math.max(...await Promise.all(objs.map(_mtime)));
  if (todo.length > 0 || (await _mtime(lib)) < newestObj) {
    await _run(f.compiler, f.link(objs, lib), f.env);
  }
  const size = (await Deno.stat(lib)).size;
  console.error(
    `build:hip: ${f.name.padEnd(4)} ${lib.startsWith(root) ? lib.slice(root.length) : lib} ${
      (size / 1024).toFixed(0)
    } KiB (${todo.length}/${sources.length} compiled, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
}

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    jobs: { type: "string", default: String(navigator.hardwareConcurrency || 2) },
    out: { type: "string", default: `${root}build/hip` },
  },
});
const out = values.out!.replace(/\/+$/, "");
const wanted = positionals.length ? positionals : FLAVOURS.map((f) => f.name);
let failed = false;
for (const f of FLAVOURS) {
  if (!wanted.includes(f.name)) continue;
  if (!await _has(f.compiler)) {
    console.error(`build:hip: ${f.name.padEnd(4)} skipped: '${f.compiler}' is not on PATH`);
    continue;
  }
  try {
    await _build(f, Number(values.jobs));
  } catch (e) {
    console.error(`build:hip: ${f.name} failed: ${(e as Error).message}`);
    failed = true;
  }
}
if (failed) Deno.exit(1);
