/**
 * The kiln command line.
 *
 * ```sh
 * deno run --allow-read --allow-write cli.ts compile model.onnx --dims x=1x3x224x224 -o model.kiln
 * deno run --allow-read --allow-write cli.ts run model.kiln --input x=x.npy --output out/
 * deno run --allow-read cli.ts inspect model.kiln
 * ```
 *
 * Errors print one line on stderr and exit with status 1 (2 for usage errors); `--verbose`
 * adds the stack.
 * @module
 */
import { parseArgs } from "node:util";
import { KilnError } from "./core/errors.ts";
import { parseOnnx } from "./core/onnx/import.ts";
import { compile } from "./core/program.ts";
import { load, save } from "./core/save_load.ts";
import { readNpyFile, writeNpyFile } from "./core/npy.ts";
import { describe, type Tensor } from "./core/tensor.ts";
import { KILN_VERSION } from "./core/version.ts";

const USAGE = `kiln ${KILN_VERSION}: compile an ONNX model once, run it, swap or bake its weights

Usage:
  kiln compile MODEL.onnx [--dims NAME=1x3x224x224 ...] [--target ref] -o OUT.kiln
  kiln run PROGRAM.kiln --input NAME=FILE.npy ... --output DIR
  kiln inspect PROGRAM.kiln [--json]
  kiln help

Options:
  --dims NAME=DxDx...   static dims for a model input (repeatable; fills symbolic dims)
  --target ref          compile target (default: ref, the WebAssembly reference target)
  -o, --output PATH     output file (compile) or directory (run)
  --input NAME=FILE     an input as a NumPy .npy file (repeatable)
  --json                machine-readable output (inspect)
  --verbose             print stack traces with errors
`;

/** A usage error: exit status 2. */
class UsageError extends Error {}

function _parseDims(specs: string[]): Record<string, number[]> {
  const dims: Record<string, number[]> = {};
  for (const spec of specs) {
    const eq = spec.lastIndexOf("=");
    if (eq <= 0) throw new UsageError(`Bad --dims '${spec}': expected NAME=1x3x224x224`);
    const name = spec.slice(0, eq), text = spec.slice(eq + 1);
    const parts = text === "" ? [] : text.split(/[x,]/);
    const values = parts.map(Number);
    if (values.some((v) => !Number.isInteger(v) || v < 0)) {
      throw new UsageError(`Bad --dims '${spec}': dims must be non-negative integers separated by 'x'`);
    }
    dims[name] = values;
  }
  return dims;
}

function _parseInputs(specs: string[]): [string, string][] {
  return specs.map((spec) => {
    const eq = spec.indexOf("=");
    if (eq <= 0) throw new UsageError(`Bad --input '${spec}': expected NAME=FILE.npy`);
    return [spec.slice(0, eq), spec.slice(eq + 1)];
  });
}

function _fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / 1024).toFixed(1)} KiB`;
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
      target: { type: "string", default: "ref" },
      output: { type: "string", short: "o" },
      verbose: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("compile takes one MODEL.onnx");
  if (!values.output) throw new UsageError("compile needs -o OUT.kiln");
  if (values.target !== "ref") throw new UsageError(`Unknown target '${values.target}' (known: ref)`);
  const t0 = performance.now();
  const model = await parseOnnx(positionals[0], { inputDims: _parseDims(values.dims!) });
  const t1 = performance.now();
  const program = compile(model, "ref");
  const t2 = performance.now();
  try {
    await save(program, values.output);
  } finally {
    program.dispose();
  }
  const t3 = performance.now();
  _progress(
    `kiln: compiled '${positionals[0]}' -> '${values.output}' (parse ${(t1 - t0).toFixed(0)} ms, compile ${
      (t2 - t1).toFixed(0)
    } ms, save ${(t3 - t2).toFixed(0)} ms)`,
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
      verbose: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("run takes one PROGRAM.kiln");
  if (!values.output) throw new UsageError("run needs --output DIR");
  const program = await load(positionals[0]);
  try {
    const inputs: Record<string, Tensor> = {};
    for (const [name, file] of _parseInputs(values.input!)) inputs[name] = await readNpyFile(file);
    const t0 = performance.now();
    const outputs = await program.eval(inputs);
    const t1 = performance.now();
    await Deno.mkdir(values.output, { recursive: true });
    for (const [name, t] of Object.entries(outputs)) {
      const safe = name.replace(/[^A-Za-z0-9_.-]/g, "_");
      await writeNpyFile(`${values.output}/${safe}.npy`, t);
      console.log(`${name}: ${describe(t.dtype, t.dims)} -> ${values.output}/${safe}.npy`);
    }
    _progress(`kiln: eval ${(t1 - t0).toFixed(1)} ms`);
  } finally {
    program.dispose();
  }
  return 0;
}

async function _inspect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean" }, verbose: { type: "boolean" } },
  });
  if (positionals.length !== 1) throw new UsageError("inspect takes one PROGRAM.kiln");
  const program = await load(positionals[0]);
  try {
    const info = program.info();
    if (values.json) {
      console.log(JSON.stringify(info, null, 2));
      return 0;
    }
    console.log(`program: ${positionals[0]}`);
    console.log(`target: ${program.target}`);
    console.log(`inputs:`);
    for (const v of info.inputs) console.log(`  ${v.name}: ${describe(v.dtype, v.dims)}`);
    console.log(`outputs:`);
    for (const v of info.outputs) console.log(`  ${v.name}: ${describe(v.dtype, v.dims)}`);
    console.log(`literals: ${info.literalCount} (${_fmtBytes(info.literalBytes)})`);
    console.log(`instructions: ${info.instructionCount} in ${info.moduleCount} module(s)`);
    if (info.passes?.length) console.log(`passes: ${info.passes.join(", ")}`);
  } finally {
    program.dispose();
  }
  return 0;
}

/** Runs the CLI on `args`; returns the exit status. Never throws. */
export async function main(args: string[]): Promise<number> {
  const verbose = args.includes("--verbose");
  const [cmd, ...rest] = args;
  try {
    switch (cmd) {
      case "compile":
        return await _compile(rest);
      case "run":
        return await _run(rest);
      case "inspect":
        return await _inspect(rest);
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
    if (err instanceof UsageError || String((err as { code?: string }).code ?? "").startsWith("ERR_PARSE_ARGS")) {
      console.error(`kiln: ${err.message.split("\n")[0]} (see 'kiln help')`);
      return 2;
    }
    const msg = err instanceof KilnError ? err.message : `${err?.name ?? "Error"}: ${err?.message ?? String(e)}`;
    console.error(`kiln: error: ${msg.split("\n")[0]}`);
    if (verbose && err?.stack) console.error(err.stack);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
