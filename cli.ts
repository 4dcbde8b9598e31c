/**
 * The kiln command line.
 *
 * ```sh
 * deno run --allow-read --allow-write cli.ts compile model.onnx --dims x=1x3x224x224 -o model.kiln
 * deno run --allow-read --allow-write cli.ts run model.kiln --input x=x.npy --output out/
 * deno run --allow-read cli.ts inspect model.kiln
 * ```
 *
 * Errors print one line on stderr (an error with several problems, such as a weight set that does
 * not fit, lists them one per line below it) and exit with status 1 (2 for usage errors);
 * `--verbose` adds the stack.
 * @module
 */
import { parseArgs } from "node:util";
import { KilnError } from "./core/errors.ts";
import { type DimRange, parseOnnx } from "./core/onnx/import.ts";
import { describeValue } from "./core/dynamic.ts";
import { type FreezeValue, parseFreezeValue } from "./core/onnx/freeze.ts";
import { summarizeOnnx } from "./core/onnx/summary.ts";
import { externalizeOnnx } from "./core/onnx/externalize.ts";
import { compile } from "./core/program.ts";
import { load, save } from "./core/save_load.ts";
import { type BakeOptions, loadWeightSet, replaceOnnxExternalWeights } from "./core/bake.ts";
import { readProgramFile } from "./core/program_file.ts";
import { randomWeightBytes, writeRandomWeights } from "./core/weights/random.ts";
import { modelDataFiles, signatureOfFile, writeOnnxDataDir } from "./core/weights/layout.ts";
import { writeSafetensors } from "./core/weights/safetensors.ts";
import { WeightSet } from "./core/weights/weight_set.ts";
import { readNpyFile, writeNpy } from "./core/npy.ts";
import { ensureDir, writeFileAtomic } from "./core/fs.ts";
import { describe, setOwn, type Tensor } from "./core/tensor.ts";
import { KILN_VERSION } from "./core/version.ts";
import { Progress } from "./core/progress.ts";
import { generateInputs, measureEvals } from "./core/perf.ts";
import { TARGET_NAMES } from "./core/targets/registry.ts";
import { MAX_THREADS } from "./core/threads.ts";
import type { BindPhases, GpuOptions, TargetName } from "./core/targets/target.ts";
import { builtLibraryPaths, openLibraryAt } from "./ffi/library.ts";

const USAGE = `kiln ${KILN_VERSION}: compile an ONNX model once, run it, swap or bake its weights

Usage:
  kiln compile MODEL.onnx [--defer-weights] [--dims NAME=1x3x224x224 ...] [--freeze NAME=VALUE ...]
               [--target ref|gpu] [--disable-pass NAME ...] -o OUT.kiln
  kiln run PROGRAM.kiln [--weights DIR|FILE.safetensors|INDEX.json] --input NAME=FILE.npy ... --output DIR
  kiln bake PROGRAM.kiln --weights DIR|FILE.safetensors [--partial] -o OUT.kiln
  kiln finalize PROGRAM.kiln [--target ref|gpu]
  kiln inspect PROGRAM.kiln|MODEL.onnx [--json]
  kiln perf MODEL.onnx|PROGRAM.kiln [--target ref|gpu] [--dims NAME=...] [--freeze NAME=VALUE ...] [--weights SRC]
            [--input NAME=FILE.npy ...] [--warmup N] [--iterations N] [--duration S] [--outputs-on-device] [--profile] [--top N] [--json]
  kiln devices [--json]
  kiln externalize MODEL.onnx -o OUT.onnx [--threshold BYTES] [--location NAME]
  kiln weights random MODEL.onnx|PROGRAM.kiln [--seed N] -o DIR
  kiln weights convert MODEL.onnx|PROGRAM.kiln SRC -o DST   (DIR -> .safetensors or .safetensors -> DIR)
  kiln help | kiln COMMAND --help | kiln --version

Options:
  --dims NAME=DxDx...   static dims for a model input (repeatable; fills symbolic dims); a dim
                        written MIN..MAX (e.g. ids=1x1..1024) is a range: the program then
                        evaluates any length in it (a dynamic program, docs/dynamic-shapes.md)
  --freeze NAME=VALUE   fix a model input to a value at compile time (repeatable): a number, true/false,
                        or a comma-separated list, in the input's declared type and dims; it is no
                        longer an input, and an If whose condition it decides folds to one branch
  --defer-weights       keep external-data weights out of the program (bind or bake them later)
  --defer-inline-over BYTES  defer inline initializers of at least BYTES too (bind them from an
                        .onnx model with --weights MODEL.onnx, or from safetensors)
  --disable-pass NAME   skip a compiler pass (repeatable); pack_gemm_weights: less memory, slower runs
  --weights SRC         a weight set: an ONNX external-data directory, .safetensors file(s), a sharded
                        checkpoint's model.safetensors.index.json, or a Hugging Face folder holding one
  --partial             the weight set may leave weights out (bake only those given)
  --cast                convert float32/float16/bfloat16 safetensors tensors to the weights' types
  --strip-prefix P      drop prefix P from safetensors tensor names (repeatable; the first that matches)
  --add-prefix P        add prefix P to safetensors tensor names (after stripping)
  --rename RE=TO        rewrite safetensors tensor names by a regular expression (repeatable, in order)
  --match-suffix        a tensor name that is no weight's matches the one weight ending in "." + it
  --seed N              seed of a random weight set (default 0)
  --target ref|gpu      compile target (default: ref, the WebAssembly reference target; gpu: kiln's HIP
                        library on an NVIDIA or AMD GPU). On run, bake and finalize: checked against
                        the program's own target
  --gpu-library PATH    the libkiln_hip to use (default: KILN_HIP_LIBRARY, then build/hip/)
  --device N            GPU index (default 0)
  --precision MODE      gpu: the GEMMs' arithmetic: float32 (default, strict), tf32 (TF32 tensor cores),
                        fp16 or bf16 (MatMul/Gemm on 16-bit copies of their weights, float32 sums;
                        docs/gpu.md "Numerics"); perf prints what applies
  --threads N           threads for the ref target's kernels (default: the cores available; 1: one
                        thread; where the host has no shared memory, one thread)
  -o, --output PATH     output file (compile) or directory (run)
  --input NAME=FILE     an input as a NumPy .npy file (repeatable)
  --threshold BYTES     externalize: move initializers of at least BYTES (default 1024)
  --location NAME       externalize: the data file's name beside OUT.onnx (default: OUT.onnx.data)
  --json                machine-readable output (compile, run, inspect, perf)
  --warmup N            perf: untimed evals first (default 5)
  --iterations N        perf: timed evals (default 50; with --duration, the least count)
  --duration S          perf: keep timing for S seconds
  --outputs-on-device   perf: leave the outputs on the device (gpu), as an engine feeding the next step
  --profile             perf: one eval timed node by node, the ops that take longest
  --top N               perf: ops and nodes listed by --profile (default 10)
  --force               weights random/convert: overwrite the model's own data files
  --verbose             print stack traces with errors
`;

/** The usage lines of one command, then the options: `kiln COMMAND --help`. */
function _commandHelp(cmd: string): string {
  const lines = USAGE.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`  kiln ${cmd} `) || l === `  kiln ${cmd}`);
  const usage: string[] = [];
  for (let i = start; i >= 0 && i < lines.length; i++) {
    if (i > start && !/^ {6,}/.test(lines[i])) break;
    usage.push(lines[i]);
  }
  const options = lines.slice(lines.indexOf("Options:"));
  return [`kiln ${KILN_VERSION}`, "", "Usage:", ...usage, "", ...options].join("\n");
}

const COMMANDS = [
  "compile",
  "run",
  "bake",
  "finalize",
  "inspect",
  "perf",
  "devices",
  "weights",
  "externalize",
];

/** A usage error: exit status 2. */
class UsageError extends Error {}

/** Options of the commands that read a weight set (run, bake, perf). */
const WEIGHT_OPTIONS = {
  weights: { type: "string" as const, multiple: true as const, default: [] as string[] },
  partial: { type: "boolean" as const },
  cast: { type: "boolean" as const },
  "strip-prefix": { type: "string" as const, multiple: true as const, default: [] as string[] },
  "add-prefix": { type: "string" as const },
  rename: { type: "string" as const, multiple: true as const, default: [] as string[] },
  "match-suffix": { type: "boolean" as const },
};

/** The weight-set options of `values` (WEIGHT_OPTIONS), for loadWeightSet. */
function _weightOptions(values: {
  partial?: boolean;
  cast?: boolean;
  "strip-prefix"?: string[];
  "add-prefix"?: string;
  rename?: string[];
  "match-suffix"?: boolean;
}): BakeOptions {
  const rename: [RegExp, string][] = (values.rename ?? []).map((spec) => {
    const eq = spec.lastIndexOf("=");
    if (eq <= 0) throw new UsageError(`Bad --rename '${spec}': expected REGEX=REPLACEMENT`);
    try {
      return [new RegExp(spec.slice(0, eq)), spec.slice(eq + 1)];
    } catch (e) {
      throw new UsageError(`Bad --rename '${spec}': ${(e as Error).message}`);
    }
  });
  const names = {
    stripPrefix: values["strip-prefix"] ?? [],
    addPrefix: values["add-prefix"],
    rename,
    suffix: values["match-suffix"] ?? false,
  };
  const any = names.stripPrefix.length || names.addPrefix || rename.length || names.suffix;
  return { partial: values.partial, cast: values.cast, names: any ? names : undefined };
}

/** "; cast 148 tensors from bfloat16 to float32" where a weight set converted some. */
function _castNote(set: WeightSet): string {
  if (!set.casts.length) return "";
  const kinds = new Map<string, number>();
  for (const c of set.casts) kinds.set(`${c.from} to ${c.to}`, (kinds.get(`${c.from} to ${c.to}`) ?? 0) + 1);
  return `; cast ${[...kinds].map(([k, n]) => `${n} tensor(s) from ${k}`).join(", ")}`;
}

/** Options every command that places a program on a target takes. */
const TARGET_OPTIONS = {
  target: { type: "string" },
  "gpu-library": { type: "string" },
  device: { type: "string" },
  precision: { type: "string" },
  threads: { type: "string" },
} as const;

/** --threads N: threads for the ref target's kernels (default: the cores available). */
function _threads(values: { threads?: string }): number | undefined {
  if (values.threads === undefined) return undefined;
  const n = Number(values.threads);
  if (!/^\d+$/.test(values.threads) || n < 1 || n > MAX_THREADS) {
    throw new UsageError(`Bad --threads '${values.threads}': an integer from 1 to ${MAX_THREADS}`);
  }
  return n;
}

const _PRECISIONS = ["float32", "tf32", "fp16", "bf16"] as const;

function _gpuOptions(values: { "gpu-library"?: string; device?: string; precision?: string }): GpuOptions {
  const device = values.device === undefined ? 0 : Number(values.device);
  if (!Number.isInteger(device) || device < 0) {
    throw new UsageError(`Bad --device '${values.device}': a non-negative integer`);
  }
  const precision = values.precision as GpuOptions["precision"];
  if (precision !== undefined && !_PRECISIONS.includes(precision)) {
    throw new UsageError(`Bad --precision '${values.precision}': one of ${_PRECISIONS.join(", ")}`);
  }
  return { library: values["gpu-library"], device, ...(precision ? { precision } : {}) };
}

/** The TARGET_OPTIONS a compile or load takes: --gpu-library, --device and --precision, --threads. */
function _targetOptions(
  values: { "gpu-library"?: string; device?: string; precision?: string; threads?: string },
): { gpu: GpuOptions; threads: number | undefined } {
  return { gpu: _gpuOptions(values), threads: _threads(values) };
}

/** Checks --target against the target a program file was compiled for. */
async function _checkTarget(path: string, target: string | undefined): Promise<void> {
  if (target === undefined) return;
  if (!(TARGET_NAMES as readonly string[]).includes(target)) {
    throw new UsageError(`Unknown target '${target}' (known: ${TARGET_NAMES.join(", ")})`);
  }
  const { meta } = await readProgramFile(path, { literals: false });
  if (meta.target !== target) {
    throw new KilnError("target", `Program '${path}' was compiled for '${meta.target}', not '${target}'`);
  }
}

/** One line about nodes that ran on the host (no kernel on the program's target). */
function _hostNodesLine(
  info: { target: string; hostNodes: { name: string; op: string }[] },
): string | undefined {
  const n = info.hostNodes.length;
  if (n === 0) return undefined;
  const list = info.hostNodes.slice(0, 8).map((h) => `'${h.name}' (${h.op})`).join(", ");
  return `${n} node(s) without a ${info.target} kernel run on the host's reference kernels: ${list}${
    n > 8 ? `, and ${n - 8} more` : ""
  }`;
}

/**
 * `--dims NAME=1x3x224x224` (repeatable) -> inputDims. Every dim is a decimal non-negative
 * integer up to 2^31 - 1, checked here: an empty, signed, fractional, exponent or padded field,
 * a dim past 2^31 - 1 and a name given twice are usage errors naming the spec.
 */
function _parseDims(specs: string[]): Record<string, (number | DimRange)[]> {
  const maxDim = 2 ** 31 - 1; // the core's dims are 32-bit signed
  const dims: Record<string, (number | DimRange)[]> = {};
  const seen = new Map<string, string>();
  for (const spec of specs) {
    const eq = spec.lastIndexOf("=");
    if (eq <= 0) throw new UsageError(`Bad --dims '${spec}': expected NAME=1x3x224x224`);
    const name = spec.slice(0, eq), text = spec.slice(eq + 1);
    if (text === "") {
      throw new UsageError(`Bad --dims '${spec}': no dims after '='; expected ${name}=1x3x224x224`);
    }
    const values = text.split(/[x,]/).map((field, i): number | DimRange => {
      const which = `dim ${i} of '${name}'`;
      // MIN..MAX: a symbolic dim with a range (a dynamic program, docs/dynamic-shapes.md)
      const range = /^([0-9]+)\.\.([0-9]+)$/.exec(field);
      if (range) {
        const min = Number(range[1]), max = Number(range[2]);
        if (min > max || max > maxDim) {
          throw new UsageError(
            `Bad --dims '${spec}': ${which} is the range ${field}; it needs MIN <= MAX <= ${maxDim}`,
          );
        }
        return { min, max };
      }
      if (field === "") {
        throw new UsageError(
          `Bad --dims '${spec}': ${which} is empty; dims must be non-negative integers separated by 'x'`,
        );
      }
      if (!/^[0-9]+$/.test(field)) {
        throw new UsageError(
          `Bad --dims '${spec}': ${which} is '${field}'; dims must be non-negative integers (or MIN..MAX ranges) separated by 'x'`,
        );
      }
      const v = Number(field);
      if (v > maxDim) {
        throw new UsageError(
          `Bad --dims '${spec}': ${which} is ${field}, past ${maxDim} (2^31 - 1), the largest dim kiln takes`,
        );
      }
      return v;
    });
    const prev = seen.get(name);
    if (prev !== undefined) {
      throw new UsageError(`Input '${name}' is given twice (--dims ${prev} and --dims ${spec})`);
    }
    seen.set(name, spec);
    dims[name] = values;
  }
  return dims;
}

function _parseInputs(specs: string[]): [string, string][] {
  const seen = new Map<string, string>();
  return specs.map((spec) => {
    const eq = spec.indexOf("=");
    if (eq <= 0 || eq === spec.length - 1) {
      throw new UsageError(`Bad --input '${spec}': expected NAME=FILE.npy`);
    }
    const name = spec.slice(0, eq);
    const prev = seen.get(name);
    if (prev !== undefined) {
      throw new UsageError(`Input '${name}' is given twice (--input ${prev} and --input ${spec})`);
    }
    seen.set(name, spec);
    return [name, spec.slice(eq + 1)];
  });
}

/**
 * One file name per output, as the output's name made safe for a file system; names that map
 * to the same file get distinct ones ("y.npy", "y_2.npy"), never one silently lost.
 */
export function outputFileNames(names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Set<string>();
  for (const name of names) {
    const safe = name.replace(/[^A-Za-z0-9_.-]/g, "_").replace(/^\.+/, "_") || "_";
    let file = `${safe}.npy`;
    for (let k = 2; used.has(file.toLowerCase()); k++) file = `${safe}_${k}.npy`;
    used.add(file.toLowerCase());
    out.set(name, file);
  }
  return out;
}

/** " (validate 0.2 ms, load 14.1 ms: read 96.0 ms, hash 30.1 ms over 16 threads, upload tail 0.4 ms; prepare 1.0 ms)" */
function _phases(p: BindPhases | undefined): string {
  if (!p) return "";
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  return ` (validate ${ms(p.validateMs)}, load ${ms(p.loadMs)}: read ${ms(p.readMs)}${
    p.hashMs === undefined ? "" : `, hash ${ms(p.hashMs)}`
  } over ${p.threads} thread(s), ` +
    `upload tail ${ms(p.uploadTailMs)}; prepare ${ms(p.prepareMs)})`;
}

/** A non-negative integer byte count from an option's text; a clear error otherwise. */
function _byteCount(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new KilnError("argument", `${flag} takes a byte count (a whole number), not '${text}'`);
  }
  return n;
}

/**
 * `--freeze NAME=VALUE` (repeatable) -> the `freeze` parse option. VALUE is a number, `true`,
 * `false` or a comma-separated list of them; the model's declared type and dims are checked at parse.
 */
function _parseFreeze(specs: string[]): Record<string, FreezeValue> {
  const out: Record<string, FreezeValue> = {};
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    if (eq <= 0 || eq === spec.length - 1) {
      throw new UsageError(
        `Bad --freeze '${spec}': expected NAME=VALUE (a number, true, false or a list such as 1,2,3)`,
      );
    }
    const name = spec.slice(0, eq);
    if (Object.hasOwn(out, name)) throw new UsageError(`Input '${name}' is frozen twice (--freeze ${spec})`);
    try {
      setOwn(out, name, parseFreezeValue(spec.slice(eq + 1)));
    } catch (e) {
      throw new UsageError(
        `Bad --freeze '${spec}': ${(e as Error).message.replace(/^--freeze value '[^']*': /, "")}`,
      );
    }
  }
  return out;
}

/** Byte counts in decimal units (kB, MB, GB = 1e3, 1e6, 1e9 bytes), the one unit system kiln reports in. */
function _fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function _progress(msg: string): void {
  console.error(msg);
}

async function _compile(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      dims: { type: "string", multiple: true, default: [] },
      freeze: { type: "string", multiple: true, default: [] },
      ...TARGET_OPTIONS,
      output: { type: "string", short: "o" },
      "defer-weights": { type: "boolean" },
      "defer-inline-over": { type: "string" },
      "disable-pass": { type: "string", multiple: true, default: [] },
      json: { type: "boolean" },
      verbose: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("compile takes one MODEL.onnx");
  if (!values.output) throw new UsageError("compile needs -o OUT.kiln");
  const target = (values.target ?? "ref") as TargetName;
  if (!TARGET_NAMES.includes(target)) {
    throw new UsageError(`Unknown target '${values.target}' (known: ${TARGET_NAMES.join(", ")})`);
  }
  const t0 = performance.now();
  const progress = new Progress();
  const model = await parseOnnx(positionals[0], {
    inputDims: _parseDims(values.dims!),
    freeze: _parseFreeze(values.freeze!),
    deferExternalWeights: values["defer-weights"] ?? false,
    ...(values["defer-inline-over"] !== undefined
      ? { deferInlineWeightsOver: _byteCount(values["defer-inline-over"], "--defer-inline-over") }
      : {}),
    onProgress: progress.bytes("reading weights"),
  });
  const t1 = performance.now();
  progress.step("compiling");
  const program = compile(model, target, {
    disablePasses: values["disable-pass"],
    ..._targetOptions(values),
  });
  const hostNodes = program.info().hostNodes;
  const host = _hostNodesLine(program.info());
  if (host) _progress(`kiln: ${host}`);
  const t2 = performance.now();
  progress.step(`saving '${values.output}'`);
  try {
    await save(program, values.output);
  } finally {
    program.dispose();
  }
  const t3 = performance.now();
  const deferred = model.deferredWeights?.length ?? 0;
  if (values.json) {
    console.log(JSON.stringify(
      {
        model: positionals[0],
        output: values.output,
        target,
        deferredWeights: deferred,
        hostNodes,
        parseMs: t1 - t0,
        compileMs: t2 - t1,
        saveMs: t3 - t2,
      },
      null,
      2,
    ));
  }
  _progress(
    `kiln: compiled '${positionals[0]}' for ${target} -> '${values.output}'${
      deferred ? ` with ${deferred} deferred weights` : ""
    } (parse ${(t1 - t0).toFixed(0)} ms, compile ${(t2 - t1).toFixed(0)} ms, save ${
      (t3 - t2).toFixed(0)
    } ms)`,
  );
  return 0;
}

async function _run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      input: { type: "string", multiple: true, default: [] },
      output: { type: "string", short: "o" },
      ...WEIGHT_OPTIONS,
      ...TARGET_OPTIONS,
      json: { type: "boolean" },
      verbose: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("run takes one PROGRAM.kiln");
  if (!values.output) throw new UsageError("run needs --output DIR");
  const inputSpecs = _parseInputs(values.input!);
  await _checkTarget(positionals[0], values.target);
  const program = await load(positionals[0], _targetOptions(values));
  const report: Record<string, unknown> = { program: positionals[0] };
  try {
    if (values.weights!.length) {
      const t0 = performance.now();
      const set = await loadWeightSet(
        program,
        values.weights!.length === 1 ? values.weights![0] : values.weights!,
        { ..._weightOptions(values), onProgress: new Progress().bytes("reading weights") },
      );
      const r = await program.bindWeights(set);
      report.bind = { ...r, sources: values.weights, casts: set.casts };
      _progress(
        `kiln: bound ${r.copied} weight(s) (${_fmtBytes(r.bytesCopied)}) from ${
          values.weights!.join(", ")
        } in ${(performance.now() - t0).toFixed(0)} ms${_phases(r.phases)}${_castNote(set)}`,
      );
    } else if (program.weights.length) {
      throw new KilnError(
        "weights",
        `Program '${
          positionals[0]
        }' has ${program.weights.length} deferred weights: give them with --weights DIR|FILE.safetensors`,
      );
    }
    const inputs: Record<string, Tensor> = {};
    for (const [name, file] of inputSpecs) inputs[name] = await readNpyFile(file);
    const t0 = performance.now();
    const outputs = await program.eval(inputs);
    const t1 = performance.now();
    await ensureDir(values.output, "Output folder");
    const files = outputFileNames(Object.keys(outputs));
    const written: { name: string; dtype: string; dims: number[]; file: string }[] = [];
    for (const [name, t] of Object.entries(outputs)) {
      const path = `${values.output.replace(/\/+$/, "")}/${files.get(name)}`;
      await writeFileAtomic(path, writeNpy(t), "Output file");
      written.push({ name, dtype: t.dtype, dims: [...t.dims], file: path });
      if (!values.json) console.log(`${name}: ${describe(t.dtype, t.dims)} -> ${path}`);
    }
    const info = program.info();
    if (values.json) {
      console.log(JSON.stringify(
        {
          ...report,
          target: info.target,
          device: info.device,
          evalMs: t1 - t0,
          outputs: written,
          hostNodes: info.hostNodes,
        },
        null,
        2,
      ));
    }
    const host = _hostNodesLine(info);
    if (host) _progress(`kiln: ${host}`);
    _progress(`kiln: eval ${(t1 - t0).toFixed(1)} ms on ${info.target} (${info.device})`);
  } finally {
    program.dispose();
  }
  return 0;
}

async function _inspect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean" }, ...TARGET_OPTIONS, verbose: { type: "boolean" } },
  });
  if (positionals.length !== 1) throw new UsageError("inspect takes one PROGRAM.kiln or MODEL.onnx");
  if (!positionals[0].endsWith(".kiln")) return await _inspectOnnx(positionals[0], values.json ?? false);
  await _checkTarget(positionals[0], values.target);
  const program = await load(positionals[0], _targetOptions(values));
  try {
    const info = program.info();
    if (values.json) {
      console.log(JSON.stringify(info, null, 2));
      return 0;
    }
    console.log(`program: ${positionals[0]}`);
    console.log(`target: ${program.target} (${info.device})`);
    console.log(`inputs:`);
    for (const v of info.inputs) console.log(`  ${v.name}: ${describeValue(v)}`);
    console.log(`outputs:`);
    for (const v of info.outputs) console.log(`  ${v.name}: ${describeValue(v)}`);
    if (info.dynamic) {
      const keyed = info.dynamic.keyed.length
        ? `, specialized on the value of ${info.dynamic.keyed.join(", ")}`
        : "";
      console.log(`dynamic: specialized per shape at the first eval of each${keyed}`);
    }
    console.log(`literals: ${info.literalCount} (${_fmtBytes(info.literalBytes)})`);
    if (info.weights.length) {
      const total = program.weightSignature().reduce((a, w) => a + w.byteLength, 0);
      console.log(
        `deferred weights: ${info.weights.length} (${_fmtBytes(total)}), bound at run time or baked:`,
      );
      for (const w of program.weightSignature()) {
        console.log(
          `  ${w.name}: ${describe(w.dtype, w.dims)} ${w.byteLength} B  ${w.location} @ ${w.offset}`,
        );
      }
    } else {
      console.log(`deferred weights: none`);
    }
    if (program.fixedWeights.length) {
      console.log(
        `fixed weights (read at compile time, the compiler needs their values): ${
          program.fixedWeights.join(", ")
        }`,
      );
    }
    console.log(
      `instructions: ${info.instructionCount} in ${info.moduleCount} module(s), ${info.prepareCount} in the prepare step`,
    );
    const ops = Object.entries(info.ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    if (ops.length) console.log(`ops: ${ops.map(([op, n]) => `${op} ${n}`).join(", ")}`);
    if (info.passes?.length) console.log(`passes: ${info.passes.join(", ")}`);
    if (info.deviceBytes) console.log(`device memory: ${_fmtBytes(info.deviceBytes)}`);
    console.log(
      info.hostNodes.length
        ? `host nodes: ${info.hostNodes.length} (no ${info.target} kernel; they run on the reference kernels):`
        : `host nodes: none (every node runs on ${info.target})`,
    );
    for (const h of info.hostNodes) console.log(`  ${h.name} (${h.op}): ${h.reason}`);
  } finally {
    program.dispose();
  }
  return 0;
}

/** `inspect MODEL.onnx`: what the file holds, without compiling it or reading its external data. */
async function _inspectOnnx(path: string, json: boolean): Promise<number> {
  const s = await summarizeOnnx(path);
  if (json) {
    console.log(JSON.stringify(s, null, 2));
    return 0;
  }
  const dims = (d: (number | string | null)[] | null) =>
    d === null ? "no declared shape" : `[${d.map((x) => x === null ? "?" : x).join(",")}]`;
  console.log(`model: ${path}`);
  console.log(
    `ir version ${s.irVersion}; opsets: ${
      Object.entries(s.opsets).map(([d, v]) => `${d || "ai.onnx"} ${v}`).join(", ")
    }${s.producer ? `; producer: ${s.producer}` : ""}`,
  );
  console.log("inputs:");
  for (const v of s.inputs) console.log(`  ${v.name}: ${v.dtype || "?"}${dims(v.dims)}`);
  console.log("outputs:");
  for (const v of s.outputs) console.log(`  ${v.name}: ${v.dtype || "?"}${dims(v.dims)}`);
  const ops = Object.entries(s.ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  console.log(`nodes: ${s.nodes} (subgraphs included)`);
  if (ops.length) console.log(`ops: ${ops.map(([op, n]) => `${op} ${n}`).join(", ")}`);
  const i = s.initializers;
  console.log(
    `initializers: ${i.count}: ${i.inline} inline (${
      _fmtBytes(i.inlineBytes)
    }), ${i.external} in external data (${_fmtBytes(i.externalBytes)})`,
  );
  for (const f of i.files) console.log(`  ${f.location}: ${f.tensors} tensor(s), ${_fmtBytes(f.bytes)}`);
  if (s.functions.length) console.log(`functions: ${s.functions.join(", ")}`);
  return 0;
}

async function _bake(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...WEIGHT_OPTIONS,
      output: { type: "string", short: "o" },
      ...TARGET_OPTIONS,
      verbose: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("bake takes one PROGRAM.kiln");
  if (!values.weights!.length) throw new UsageError("bake needs --weights DIR|FILE.safetensors");
  if (!values.output) throw new UsageError("bake needs -o OUT.kiln");
  await _checkTarget(positionals[0], values.target);
  const t0 = performance.now();
  const program = await load(positionals[0], _targetOptions(values));
  try {
    const source = values.weights!.length === 1 ? values.weights![0] : values.weights!;
    const progress = new Progress();
    const set = await loadWeightSet(program, source, {
      ..._weightOptions(values),
      onProgress: progress.bytes("reading weights"),
    });
    if (set.casts.length) _progress(`kiln: ${_castNote(set).slice(2)}`);
    progress.step("baking");
    const t1 = performance.now();
    const baked = await replaceOnnxExternalWeights(program, set, program.target);
    const t2 = performance.now();
    await save(baked, values.output);
    _progress(
      `kiln: baked ${baked.baked.length} weight(s) into '${values.output}'${
        baked.weights.length ? ` (${baked.weights.length} still deferred)` : ""
      } (read ${(t1 - t0).toFixed(0)} ms, bake ${(t2 - t1).toFixed(0)} ms, save ${
        (performance.now() - t2).toFixed(0)
      } ms)`,
    );
  } finally {
    program.dispose();
  }
  return 0;
}

async function _finalize(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...TARGET_OPTIONS, verbose: { type: "boolean" } },
  });
  if (positionals.length !== 1) throw new UsageError("finalize takes one PROGRAM.kiln");
  await _checkTarget(positionals[0], values.target ?? "ref");
  const t0 = performance.now();
  const program = await load(positionals[0], _targetOptions(values));
  const info = program.info();
  program.dispose();
  console.log(
    `finalized '${positionals[0]}' for ${info.target} (${info.device}) in ${
      (performance.now() - t0).toFixed(0)
    } ms: ${info.literalCount} literals (${_fmtBytes(info.literalBytes)}), ${
      _fmtBytes(info.arenaBytes)
    } arena, ${info.weights.length} deferred weights`,
  );
  return 0;
}

function _devices(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: { json: { type: "boolean" }, "gpu-library": { type: "string" }, verbose: { type: "boolean" } },
  });
  let env: string | undefined;
  try {
    env = Deno.env.get("KILN_HIP_LIBRARY") || undefined;
  } catch {
    env = undefined;
  }
  const paths = values["gpu-library"] ? [values["gpu-library"]] : env ? [env] : builtLibraryPaths();
  const found: unknown[] = [];
  let devices = 0;
  for (const path of paths) {
    try {
      const info = openLibraryAt(path).info();
      found.push(info);
      devices += info.devices.length;
      if (values.json) continue;
      console.log(`${path}: ${info.platform} runtime ${info.runtimeVersion}, driver ${info.driverVersion}`);
      if (!info.devices.length) console.log(`  no GPU${info.error ? `: ${info.error}` : ""}`);
      for (const d of info.devices) {
        console.log(
          `  gpu ${d.index}: ${d.name} (${d.arch}), ${_fmtBytes(d.memoryBytes)} (${
            _fmtBytes(d.freeBytes)
          } free), ${d.multiprocessors} multiprocessors`,
        );
      }
    } catch (e) {
      found.push({ path, error: (e as Error).message });
      if (!values.json) console.log(`${path}: ${(e as Error).message}`);
    }
  }
  if (values.json) console.log(JSON.stringify(found, null, 2));
  else if (!devices) console.log("no GPU found: the gpu target cannot run here (the ref target can)");
  return 0;
}

async function _weights(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      seed: { type: "string", default: "0" },
      output: { type: "string", short: "o" },
      force: { type: "boolean" },
      verbose: { type: "boolean" },
    },
  });
  if (!values.output) throw new UsageError(`weights ${sub ?? ""} needs -o`.replace("  ", " "));
  const force = values.force ?? false;
  if (sub === "random") {
    if (positionals.length !== 1) throw new UsageError("weights random takes one MODEL.onnx or PROGRAM.kiln");
    const seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0) {
      throw new UsageError(`Bad --seed '${values.seed}': a non-negative integer`);
    }
    const t0 = performance.now();
    let bytes = 0, count = 0;
    if (positionals[0].endsWith(".kiln")) {
      const sig = await signatureOfFile(positionals[0]);
      const files = await writeOnnxDataDir(
        values.output,
        sig,
        (s) => randomWeightBytes(seed, s.name, s.dtype, s.dims),
      );
      bytes = files.reduce((a, f) => a + f.bytes, 0);
      count = sig.length;
    } else {
      const r = await writeRandomWeights(positionals[0], values.output, {
        seed,
        force,
        onProgress: new Progress().bytes("writing weights"),
      });
      bytes = r.files.reduce((a, f) => a + f.bytes, 0);
      count = r.tensors.length;
    }
    _progress(
      `kiln: wrote ${count} seeded weights (${_fmtBytes(bytes)}, seed ${seed}) to '${values.output}' in ${
        (performance.now() - t0).toFixed(0)
      } ms`,
    );
    return 0;
  }
  if (sub === "convert") {
    if (positionals.length !== 2) {
      throw new UsageError("weights convert takes MODEL.onnx|PROGRAM.kiln and SRC");
    }
    const [ref, src] = positionals;
    const sig = await signatureOfFile(ref);
    // an ONNX model's own data files are not overwritten unless --force says so
    const protect = ref.endsWith(".kiln") ? new Set<string>() : await modelDataFiles(ref, sig);
    if (src.endsWith(".safetensors")) {
      const set = await WeightSet.fromSafetensors(sig, src);
      await writeOnnxDataDir(values.output, sig, (s) => set.tensors.get(s.name)!.bytes, { protect, force });
    } else {
      if (!values.output.endsWith(".safetensors")) {
        throw new UsageError("weights convert: one side must be a .safetensors file");
      }
      const set = await WeightSet.fromOnnxDir(sig, src);
      // "format": "pt" is what transformers' loaders look for; the producer says where it came from
      await writeSafetensors(
        values.output,
        sig.map((s) => ({ ...s, bytes: set.tensors.get(s.name)!.bytes })),
        { format: "pt", producer: `kiln ${KILN_VERSION}` },
      );
    }
    _progress(`kiln: converted ${sig.length} weights from '${src}' to '${values.output}'`);
    return 0;
  }
  throw new UsageError(`Unknown weights command '${sub ?? ""}' (random, convert)`);
}

function _count(flag: string, v: string | undefined, min: number, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`Bad --${flag} '${v}': an integer of at least ${min}`);
  }
  return n;
}

/** `kiln perf`: latency and throughput of evals, and (gpu) where the device time goes. */
async function _perf(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      dims: { type: "string", multiple: true, default: [] },
      freeze: { type: "string", multiple: true, default: [] },
      input: { type: "string", multiple: true, default: [] },
      ...WEIGHT_OPTIONS,
      ...TARGET_OPTIONS,
      warmup: { type: "string" },
      iterations: { type: "string" },
      duration: { type: "string" },
      "outputs-on-device": { type: "boolean" },
      profile: { type: "boolean" },
      top: { type: "string" },
      json: { type: "boolean" },
      verbose: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("perf takes one MODEL.onnx or PROGRAM.kiln");
  const path = positionals[0];
  const warmup = _count("warmup", values.warmup, 0, 5);
  const iterations = _count("iterations", values.iterations, 1, 50);
  const top = _count("top", values.top, 1, 10);
  let durationMs = 0;
  if (values.duration !== undefined) {
    const s = Number(values.duration);
    if (!Number.isFinite(s) || s <= 0) {
      throw new UsageError(`Bad --duration '${values.duration}': seconds, above 0`);
    }
    durationMs = s * 1000;
  }
  const inputSpecs = _parseInputs(values.input!);
  const t0 = performance.now();
  let program;
  if (path.endsWith(".kiln")) {
    if (values.dims!.length || values.freeze!.length) {
      throw new UsageError("perf: --dims and --freeze apply to an .onnx model, not a compiled program");
    }
    await _checkTarget(path, values.target);
    program = await load(path, _targetOptions(values));
  } else {
    const target = (values.target ?? "ref") as TargetName;
    if (!TARGET_NAMES.includes(target)) {
      throw new UsageError(`Unknown target '${values.target}' (known: ${TARGET_NAMES.join(", ")})`);
    }
    const model = await parseOnnx(path, {
      inputDims: _parseDims(values.dims!),
      freeze: _parseFreeze(values.freeze!),
      deferExternalWeights: values.weights!.length > 0,
      onProgress: new Progress().bytes("reading weights"),
    });
    program = compile(model, target, _targetOptions(values));
  }
  try {
    const prepMs = performance.now() - t0;
    if (values.weights!.length) {
      const set = await loadWeightSet(
        program,
        values.weights!.length === 1 ? values.weights![0] : values.weights!,
        _weightOptions(values),
      );
      await program.bindWeights(set);
      if (set.casts.length && !values.json) _progress(`kiln: ${_castNote(set).slice(2)}`);
    } else if (program.weights.length) {
      throw new KilnError(
        "weights",
        `Program '${path}' has ${program.weights.length} deferred weights: give them with --weights DIR|FILE.safetensors`,
      );
    }
    const inputs = generateInputs(program);
    const given = new Set<string>();
    for (const [name, file] of inputSpecs) {
      inputs[name] = await readNpyFile(file);
      given.add(name);
    }
    const generated = program.inputs.filter((v) => !given.has(v.name)).map((v) => v.name);
    const host = _hostNodesLine(program.info());
    if (host) _progress(`kiln: ${host}`);
    const prec = program.info().precision;
    if (prec && (prec.mode !== "float32" || prec.why)) {
      _progress(`kiln: precision ${prec.mode}${prec.why ? ` (${prec.why})` : ""}`);
    }
    if (!values.json) {
      _progress(
        `kiln: ${program.target} (${program.info().device}): ${warmup} warm-up + ${
          durationMs
            ? `at least ${iterations} evals over ${durationMs / 1000} s`
            : `${iterations} timed evals`
        }${generated.length ? `; generated inputs: ${generated.join(", ")}` : ""}`,
      );
    }
    const r = await measureEvals(program, inputs, {
      warmup,
      iterations,
      durationMs,
      outputsOnDevice: values["outputs-on-device"] ?? false,
    });
    let profile: {
      ops: { op: string; count: number; ms: number }[];
      nodes: { name: string; op: string; ms: number }[];
      totalMs: number;
    } | undefined;
    let profileWhy: string | undefined;
    if (values.profile) {
      if (program.target === "gpu" || program.target === "ref") {
        const p = await program.profile(inputs);
        profile = {
          totalMs: p.totalMs,
          ops: p.ops.slice(0, top),
          nodes: [...p.nodes].sort((a, b) => b.ms - a.ms).slice(0, top),
        };
      } else {
        profileWhy = `the ${program.target} target does not time nodes`;
      }
    }
    const { samples: _samples, ...stats } = r;
    if (values.json) {
      console.log(JSON.stringify(
        {
          model: path,
          inputs: program.inputs.map((v) => ({ ...v, generated: !given.has(v.name) })),
          prepareMs: prepMs,
          threads: program.info().threads,
          ...stats,
          samples: r.samples,
          profile,
          profileWhy,
        },
        null,
        2,
      ));
      return 0;
    }
    const ms = (v: number) => `${v.toFixed(3)} ms`;
    console.log(
      `latency over ${r.iterations} evals${r.outputsOnDevice ? " (outputs left on the device)" : ""}: ` +
        `min ${ms(r.min)}, median ${ms(r.median)}, mean ${ms(r.mean)}, p90 ${ms(r.p90)}, p99 ${ms(r.p99)}, ` +
        `max ${ms(r.max)}`,
    );
    console.log(`throughput: ${r.throughput.toFixed(1)} evals/s (${program.info().threads} thread(s))`);
    if (profile) {
      console.log(
        `${
          program.target === "gpu" ? "device time" : "wall time on the main thread"
        } of one eval, node by node: ${ms(profile.totalMs)}`,
      );
      for (const o of profile.ops) {
        console.log(
          `  ${o.op.padEnd(32)} ${String(o.count).padStart(5)} x ${ms(o.ms).padStart(12)}  ${
            (100 * o.ms / profile.totalMs).toFixed(1).padStart(5)
          }%`,
        );
      }
      console.log("slowest nodes:");
      for (const n of profile.nodes) console.log(`  ${ms(n.ms).padStart(12)}  ${n.op.padEnd(20)} ${n.name}`);
    } else if (profileWhy) {
      console.log(`no per-node profile: ${profileWhy}`);
    }
  } finally {
    program.dispose();
  }
  return 0;
}

/** `kiln externalize`: a model's initializers moved into one external-data file. */
async function _externalize(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      threshold: { type: "string" },
      location: { type: "string" },
      verbose: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("externalize takes one MODEL.onnx");
  if (!values.output) throw new UsageError("externalize needs -o OUT.onnx");
  const threshold = _count("threshold", values.threshold, 0, 1024);
  const t0 = performance.now();
  const r = await externalizeOnnx(positionals[0], values.output, { threshold, location: values.location });
  _progress(
    `kiln: moved ${r.tensors} initializer(s) (${
      _fmtBytes(r.bytes)
    }) into '${r.data}'; ${r.inline} left inline; ` +
      `wrote '${r.model}' in ${(performance.now() - t0).toFixed(0)} ms`,
  );
  return 0;
}

/** Runs the CLI on `args`; returns the exit status. Never throws. */
export async function main(args: string[]): Promise<number> {
  const verbose = args.includes("--verbose");
  const [cmd, ...rest] = args;
  try {
    if (cmd === "--version" || cmd === "version") {
      console.log(`kiln ${KILN_VERSION} (Deno ${Deno.version.deno}, V8 ${Deno.version.v8})`);
      return 0;
    }
    if (COMMANDS.includes(cmd) && (rest.includes("--help") || rest.includes("-h"))) {
      console.log(_commandHelp(cmd));
      return 0;
    }
    switch (cmd) {
      case "compile":
        return await _compile(rest);
      case "run":
        return await _run(rest);
      case "inspect":
        return await _inspect(rest);
      case "bake":
        return await _bake(rest);
      case "finalize":
        return await _finalize(rest);
      case "perf":
        return await _perf(rest);
      case "externalize":
        return await _externalize(rest);
      case "devices":
        return _devices(rest);
      case "weights":
        return await _weights(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown command '${cmd}'`);
    }
  } catch (e) {
    const err = e as Error;
    if (
      err instanceof UsageError || String((err as { code?: string }).code ?? "").startsWith("ERR_PARSE_ARGS")
    ) {
      console.error(`kiln: ${err.message.split("\n")[0]} (see 'kiln help')`);
      return 2;
    }
    const msg = err instanceof KilnError
      ? err.message
      : `${err?.name ?? "Error"}: ${err?.message ?? String(e)}`;
    // One line per problem: a multi-problem error (a weight set that does not fit) lists each below its head.
    const [head, ...more] = msg.split("\n").map((l) => l.trim().replace(/^- /, "")).filter((l) => l);
    console.error(`kiln: error: ${head}`);
    for (const line of more) console.error(`  - ${line}`);
    if (verbose && err?.stack) console.error(err.stack);
    return 1;
  }
}

if (import.meta.main) {
  // `deno task kiln` runs in the repository's folder; paths on its command line are the caller's
  // (asked only where granted: `deno run cli.ts` in a terminal must not prompt for it)
  if (Deno.permissions.querySync({ name: "env", variable: "INIT_CWD" }).state === "granted") {
    const from = Deno.env.get("INIT_CWD");
    if (from) Deno.chdir(from);
  }
  Deno.exit(await main(Deno.args));
}
