/**
 * ONNX backend node tests on kiln's `ref` target (`deno task conformance`).
 *
 * For every test folder in the Debian package `libonnx-testdata`
 * (/usr/share/libonnx-testdata/data/node; install with `apt-get install libonnx-testdata`):
 * parse model.onnx with kiln, compile on `ref`, feed test_data_set_0's inputs and compare every
 * output with output_N.pb (tests/conformance/compare.ts: dtype and dims exact, floats within
 * rtol 1e-3 / atol 1e-5, ints and bools exact, NaN equal to NaN).
 *
 * kiln compiles static shapes: when compiling fails with code "needs_constant" (an input decides
 * a shape, e.g. Reshape's `shape`), the test is retried with its integer and bool inputs bound
 * as `constantInputs`, then with all inputs; the report counts those tests separately.
 *
 * Flags: `--filter SUBSTR` (test folder names containing SUBSTR), `--json OUT` (every result as
 * JSON), `--quiet` (no per-test lines), `--md OUT` (the markdown report; default
 * docs/conformance.md, written only for unfiltered kiln runs unless given), `--data DIR`,
 * `--backend kiln|ort` (ort runs the same harness on onnxruntime-node: a check of the harness),
 * `--timeout-ms N` (per test, default 20000; cases run in a worker that is replaced when a case
 * hangs or crashes it; 0 runs in process), `--no-ort` (the markdown report normally also runs
 * the harness on onnxruntime-node and shows its pass counts beside kiln's).
 * Ends with the line `N passed, M failed`.
 * @module
 */

import { parseArgs } from "node:util";
import { parseOnnx, readTensorProto } from "../../core/onnx/import.ts";
import { onnxTypeName } from "../../core/onnx/tensor_proto.ts";
import { compile } from "../../core/program.ts";
import { isSupportedOnnxType, type Tensor } from "../../core/tensor.ts";
import { compareTensors, ONNX_TOLERANCE } from "./compare.ts";
import { readOptionalProto, readSequenceProto, type TestValue } from "./composite_pb.ts";
import { type ModelInfo, modelInfo } from "./model_info.ts";

/**
 * Where Debian's libonnx-testdata installs the node tests (or the folder `KILN_ONNX_NODE_TESTS`
 * names: a copy carried to a machine without the package).
 */
export const NODE_TEST_DIR = (() => {
  try {
    return Deno.env.get("KILN_ONNX_NODE_TESTS") || "/usr/share/libonnx-testdata/data/node";
  } catch {
    return "/usr/share/libonnx-testdata/data/node";
  }
})();

/**
 * The package's other suites, beside `node`: graphs made by exporters rather than one node each
 * (PyTorch modules and operators exported to ONNX, and small hand-made models). Reported in their
 * own section; the `N passed, M failed` line counts the node tests only.
 */
export const OTHER_SUITES = ["pytorch-converted", "pytorch-operator", "simple"];

/** How a test ended. */
export type CaseStatus = "pass" | "fail" | "error" | "unsupported";

/** One backend test's result. */
export interface CaseResult {
  /** Test folder name, e.g. `test_add_bcast`. */
  name: string;
  /** The op the test is filed under (its node's op type; `X (expanded)` for function-body tests). */
  op: string;
  /** Every op type in the test graph. */
  ops: string[];
  status: CaseStatus;
  /** First line of the failure or error; absent on pass. */
  reason?: string;
  /** Max abs error over the outputs (fail and pass). */
  maxAbsError?: number;
  /** Ops kiln does not register, for `unsupported`. */
  unsupportedOps?: string[];
  /** Which inputs had to be bound as compile-time constants: none, the integer/bool ones, or all. */
  constantInputs: "none" | "int" | "all";
  /** Parse + compile + eval, milliseconds. */
  ms: number;
  /** On the gpu target: the ops of the nodes that ran on the host (no device kernel). */
  hostOps?: string[];
}

/** A whole run. */
export interface ConformanceReport {
  dataDir: string;
  /** The installed libonnx-testdata version (dpkg), when known. */
  dataVersion?: string;
  /** What ran the models. */
  backend: string;
  /** ISO date of the run. */
  date: string;
  results: CaseResult[];
  passed: number;
  failed: number;
  total: number;
  /** Wall time of the run, seconds. */
  seconds: number;
}

/** Options of {@linkcode runConformance}. */
export interface ConformanceOptions {
  /** Only test folders whose name contains this. */
  filter?: string;
  /** Node test folder (default {@linkcode NODE_TEST_DIR}). */
  dataDir?: string;
  /**
   * Run the cases in a worker and give each this many milliseconds (the first one of a worker
   * includes its start-up); a case past it is recorded as a timeout error. 0 or absent: in
   * process, no limit (a hang then hangs the run).
   */
  timeoutMs?: number;
  /** What runs the models (default {@linkcode KILN_REF}; with `timeoutMs`, kiln or onnxruntime-node only). */
  backend?: Backend;
  /** Called after each test (progress printing). */
  onResult?: (r: CaseResult, index: number, count: number) => void;
}

/** Whether the backend node tests are installed (the reason when they are not). */
export function nodeTestsMissing(dataDir = NODE_TEST_DIR): string | null {
  try {
    if (Deno.statSync(dataDir).isDirectory) return null;
  } catch { /* missing */ }
  return `ONNX backend node tests not found at '${dataDir}' (install the Debian package: apt-get install libonnx-testdata)`;
}

const _INT_TYPES = new Set([2, 3, 4, 5, 6, 7, 9, 12, 13]); // uint8 int8 uint16 int16 int32 int64 bool uint32 uint64

function _firstLine(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const msg = String(err?.message ?? e).split("\n")[0].trim();
  return err?.code ? `${err.code}: ${msg}` : msg;
}

function _code(e: unknown): string {
  const c = (e as { code?: unknown })?.code;
  return typeof c === "string" ? c : "";
}

function _unsupportedOp(e: unknown): string | null {
  // The importer refuses nodes outside the default domain (e.g. ai.onnx.preview.training).
  const d = /Node '[^']*' \(([^)]+)\) is in domain '([^']+)'/.exec(String((e as Error)?.message));
  if (d) return `${d[2]}:${d[1]}`;
  if (_code(e) !== "unsupported_op") return null;
  const op = (e as { op?: unknown }).op;
  if (typeof op === "string" && op) return op;
  const m = /op(?: type)? '([^']+)'/i.exec(String((e as Error).message));
  return m ? m[1] : "?";
}

/** What runs a test model: a kiln target, or onnxruntime-node to check the harness itself. */
export interface Backend {
  name: string;
  run(
    modelPath: string,
    feeds: Record<string, Tensor>,
    options: {
      inputDims: Record<string, number[]>;
      constantInputs: Record<string, Tensor>;
      /** sequence inputs (fed as `<name>.<i>`): their lengths; absent optional inputs */
      sequenceLengths?: Record<string, number>;
      absentInputs?: string[];
    },
  ): Promise<Record<string, Tensor>>;
  /** The ops of the last run's nodes that ran on the host (gpu). */
  hostOps?: () => string[];
}

/** kiln: parse, compile on `ref` (IR validated after every pass), eval, dispose. */
export const KILN_REF: Backend = {
  name: "kiln ref",
  async run(modelPath, feeds, { inputDims, constantInputs, sequenceLengths, absentInputs }) {
    const model = await parseOnnx(modelPath, { inputDims, constantInputs, sequenceLengths, absentInputs });
    const program = compile(model, "ref", { validate: true });
    try {
      return await program.eval(feeds);
    } finally {
      program.dispose();
    }
  },
};

/**
 * kiln's gpu target with the library at `library` (the CPU emulator in CI, a real GPU on the
 * device machine); records which nodes ran on the host.
 */
export function gpuBackend(library?: string): Backend {
  let hostOps: string[] = [];
  return {
    name: library ? `kiln gpu:${library}` : "kiln gpu",
    async run(modelPath, feeds, { inputDims, constantInputs, sequenceLengths, absentInputs }) {
      hostOps = [];
      const model = await parseOnnx(modelPath, { inputDims, constantInputs, sequenceLengths, absentInputs });
      const program = compile(model, "gpu", { validate: true, gpu: { library } });
      try {
        hostOps = program.info().hostNodes.map((h) => h.op);
        return await program.eval(feeds);
      } finally {
        program.dispose();
      }
    },
    hostOps: () => [...hostOps],
  };
}

/** The backend a name stands for (workers get names). */
export async function backendNamed(name: string): Promise<Backend> {
  if (name === KILN_REF.name) return KILN_REF;
  if (name === "kiln gpu") return gpuBackend();
  if (name.startsWith("kiln gpu:")) return gpuBackend(name.slice("kiln gpu:".length));
  return await ortBackend();
}

/** onnxruntime-node (a check of the harness: data reading and comparison); constants are fed as inputs. */
export async function ortBackend(): Promise<Backend> {
  const { runOrt } = await import("../util/ort.ts");
  return {
    name: "onnxruntime-node",
    run: (modelPath, feeds, { constantInputs }) => runOrt(modelPath, { ...feeds, ...constantInputs }),
  };
}

/**
 * The backend tests store bfloat16 data as uint16 TensorProtos (numpy has no bfloat16; ONNX's
 * runner feeds those arrays as they are): take the bits as the type the graph declares.
 */
function _asDeclared(t: Tensor, elemType: number): Tensor {
  if (elemType === 16 && t.dtype === "uint16") return { ...t, dtype: "bfloat16" };
  return t;
}

/** Runs one backend test folder; never throws. */
export async function runCase(
  dir: string,
  name: string,
  op: string,
  info: ModelInfo,
  backend: Backend = KILN_REF,
): Promise<CaseResult> {
  const t0 = performance.now();
  const base: Pick<CaseResult, "name" | "op" | "ops" | "constantInputs" | "hostOps"> = {
    name,
    op,
    ops: info.ops,
    constantInputs: "none",
  };
  const done = (r: Partial<CaseResult> & { status: CaseStatus }): CaseResult => ({
    ...base,
    ...r,
    ms: Math.round(performance.now() - t0),
  });
  // Values kiln cannot represent: maps and the like, and element types it does not store;
  // sequences and optionals are compile-time lists and presence (core/onnx/sequences.ts).
  for (const v of [...info.inputs, ...info.outputs]) {
    if (v.kind === "sequence" || v.kind === "optional") continue;
    if (v.kind !== "tensor") return done({ status: "unsupported", reason: `${v.kind} value '${v.name}'` });
    if (!isSupportedOnnxType(v.elemType)) {
      return done({
        status: "unsupported",
        reason: `element type ${onnxTypeName(v.elemType)} of '${v.name}'`,
      });
    }
  }
  const dataDir = `${dir}/test_data_set_0`;
  const inputs: Record<string, Tensor> = {};
  const expected: TestValue[] = [];
  // sequence inputs are fed as their elements `<name>.<i>`; an absent optional is not fed
  const seqFeeds: Record<string, Tensor> = {};
  const sequenceLengths: Record<string, number> = {};
  const absentInputs: string[] = [];
  const readValue = async (path: string, kind: string, elemType: number): Promise<TestValue> => {
    const bytes = await Deno.readFile(path);
    if (kind === "sequence") return readSequenceProto(bytes);
    if (kind === "optional") return readOptionalProto(bytes);
    return _asDeclared(readTensorProto(bytes), elemType);
  };
  try {
    for (let i = 0; i < info.inputs.length; i++) {
      const path = `${dataDir}/input_${i}.pb`;
      try {
        Deno.statSync(path);
      } catch {
        continue; // an optional input the test leaves out
      }
      const { name, kind, elemType } = info.inputs[i];
      const v = await readValue(path, kind, elemType);
      if (v === null) absentInputs.push(name);
      else if (Array.isArray(v)) {
        sequenceLengths[name] = v.length;
        v.forEach((t, k) => (seqFeeds[`${name}.${k}`] = t));
      } else if (kind === "tensor") inputs[name] = v;
      else seqFeeds[name] = v; // a present optional tensor
    }
    for (let i = 0; i < info.outputs.length; i++) {
      const o = info.outputs[i];
      expected.push(await readValue(`${dataDir}/output_${i}.pb`, o.kind, o.elemType));
    }
  } catch (e) {
    return done({ status: "error", reason: `reading test data: ${_firstLine(e)}` });
  }
  const inputDims: Record<string, number[]> = {};
  for (const [k, v] of Object.entries({ ...inputs, ...seqFeeds })) inputDims[k] = v.dims;

  const stages: CaseResult["constantInputs"][] = ["none", "int", "all"];
  for (const stage of stages) {
    base.constantInputs = stage;
    const constantInputs: Record<string, Tensor> = {};
    const feeds: Record<string, Tensor> = { ...seqFeeds };
    for (const v of info.inputs) {
      const t = inputs[v.name];
      if (!t) continue;
      const bind = stage === "all" || (stage === "int" && _INT_TYPES.has(v.elemType));
      if (bind) constantInputs[v.name] = t;
      else feeds[v.name] = t;
    }
    if (stage === "int" && Object.keys(constantInputs).length === 0) continue;
    try {
      const dims: Record<string, number[]> = {};
      for (const k of Object.keys(feeds)) dims[k] = inputDims[k];
      const out = await backend.run(`${dir}/model.onnx`, feeds, {
        inputDims: dims,
        constantInputs,
        sequenceLengths,
        absentInputs,
      });
      const hostOps = backend.hostOps?.();
      if (hostOps) base.hostOps = hostOps;
      let maxAbs = 0;
      for (let i = 0; i < info.outputs.length; i++) {
        const oname = info.outputs[i].name;
        const want = expected[i];
        // a sequence output comes back as `<name>.<i>`; an absent optional as no output
        const pairs: [string, Tensor][] = want === null
          ? []
          : Array.isArray(want)
          ? want.map((t, k) => [`${oname}.${k}`, t])
          : [[oname, want]];
        const extra = want === null
          ? [oname, `${oname}.0`]
          : Array.isArray(want)
          ? [oname, `${oname}.${want.length}`]
          : [];
        const unexpected = extra.find((k) => out[k] !== undefined);
        if (unexpected) return done({ status: "fail", reason: `output '${unexpected}' should not be there` });
        for (const [key, t] of pairs) {
          const got = out[key];
          if (!got) return done({ status: "fail", reason: `output '${key}' missing` });
          const c = compareTensors(got, _asDeclared(t, info.outputs[i].elemType), ONNX_TOLERANCE);
          if (!c.ok) {
            return done({
              status: "fail",
              reason: `output '${key}': ${c.reason}`,
              maxAbsError: c.maxAbsError,
            });
          }
          maxAbs = Math.max(maxAbs, c.maxAbsError);
        }
      }
      return done({ status: "pass", maxAbsError: maxAbs });
    } catch (e) {
      if (_code(e) === "needs_constant" && stage !== "all") continue;
      const op = _unsupportedOp(e);
      if (op) return done({ status: "unsupported", reason: _firstLine(e), unsupportedOps: [op] });
      return done({ status: "error", reason: _firstLine(e) });
    }
  }
  return done({ status: "error", reason: "no stage ran" });
}

/** The op a test is filed under (see {@linkcode CaseResult.op}). */
function _label(name: string, info: ModelInfo, labels: Map<string, string>): string {
  const ops = info.ops.filter((o) => o !== "Constant");
  const m = /^(.*)_expanded(_ver\d+)?$/.exec(name);
  if (m) {
    const base = labels.get(m[1]);
    return `${base ?? (ops[0] ?? "?")} (expanded)`;
  }
  if (ops.length === 0) return info.ops[0] ?? "?";
  return ops.join("+");
}

/** Runs the backend node tests (all, or those matching `filter`). */
export async function runConformance(options: ConformanceOptions = {}): Promise<ConformanceReport> {
  const dataDir = options.dataDir ?? NODE_TEST_DIR;
  const missing = nodeTestsMissing(dataDir);
  if (missing) throw new Error(missing);
  const start = performance.now();
  const names = [...Deno.readDirSync(dataDir)].filter((e) => e.isDirectory).map((e) => e.name).sort();
  const infos = new Map<string, ModelInfo | Error>();
  for (const n of names) {
    try {
      infos.set(n, modelInfo(await Deno.readFile(`${dataDir}/${n}/model.onnx`)));
    } catch (e) {
      infos.set(n, e as Error);
    }
  }
  const labels = new Map<string, string>();
  for (const n of names) {
    const info = infos.get(n)!;
    if (!(info instanceof Error) && !/_expanded/.test(n)) labels.set(n, _label(n, info, labels));
  }
  const selected = names.filter((n) => !options.filter || n.includes(options.filter));
  const backend = options.backend ?? KILN_REF;
  const results: CaseResult[] = [];
  const record = (r: CaseResult) => {
    results.push(r);
    options.onResult?.(r, results.length, selected.length);
  };
  const jobs: IsolatedJob[] = [];
  for (const n of selected) {
    const info = infos.get(n)!;
    if (info instanceof Error) {
      record({
        name: n,
        op: "?",
        ops: [],
        status: "error",
        reason: `reading model: ${_firstLine(info)}`,
        constantInputs: "none",
        ms: 0,
      });
      continue;
    }
    const job = { dir: `${dataDir}/${n}`, name: n, op: labels.get(n) ?? _label(n, info, labels), info };
    if (options.timeoutMs) {
      jobs.push(job);
      continue;
    }
    try {
      record(await runCase(job.dir, n, job.op, info, backend));
    } catch (e) {
      record({
        name: n,
        op: job.op,
        ops: info.ops,
        status: "error",
        reason: _firstLine(e),
        constantInputs: "none",
        ms: 0,
      });
    }
  }
  if (jobs.length) await _runIsolated(jobs, backend.name, options.timeoutMs!, record);
  results.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const passed = results.filter((r) => r.status === "pass").length;
  return {
    dataDir,
    dataVersion: await _dataVersion(),
    backend: (options.backend ?? KILN_REF).name,
    date: new Date().toISOString(),
    results,
    passed,
    failed: results.length - passed,
    total: results.length,
    seconds: (performance.now() - start) / 1000,
  };
}

/** A case handed to a worker (tests/conformance/worker.ts). */
export interface IsolatedJob {
  dir: string;
  name: string;
  op: string;
  info: ModelInfo;
}

/**
 * Runs jobs in a worker; a job that takes longer than `timeoutMs` (or crashes the worker) is
 * recorded as an error and the rest go on in a fresh worker.
 */
async function _runIsolated(
  jobs: IsolatedJob[],
  backend: string,
  timeoutMs: number,
  record: (r: CaseResult) => void,
): Promise<void> {
  let next = 0;
  const lost = (j: IsolatedJob, reason: string): CaseResult => ({
    name: j.name,
    op: j.op,
    ops: j.info.ops,
    status: "error",
    reason,
    constantInputs: "none",
    ms: timeoutMs,
  });
  while (next < jobs.length) {
    const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    await new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stop = (r?: CaseResult) => {
        clearTimeout(timer);
        worker.terminate();
        if (r) {
          record(r);
          next++;
        }
        resolve();
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(
          () => stop(lost(jobs[next], `timeout: no result after ${timeoutMs} ms`)),
          timeoutMs,
        );
      };
      worker.onmessage = (ev: MessageEvent<CaseResult | { done: true }>) => {
        if ("done" in ev.data) return stop();
        record(ev.data);
        next++;
        arm();
      };
      worker.onerror = (ev: ErrorEvent) => {
        ev.preventDefault();
        stop(lost(jobs[next], `worker crashed: ${ev.message}`));
      };
      worker.postMessage({ jobs: jobs.slice(next), backend });
      arm();
    });
  }
}

/** The Debian package version of libonnx-testdata, or undefined where dpkg cannot tell. */
async function _dataVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f=${Version}", "libonnx-testdata"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const v = new TextDecoder().decode(out.stdout).trim();
    return out.success && v ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why the node tests kiln does not pass fail, by test name: what the report says of them. A
 * test matching none is listed with the reason its run gave.
 */
const NOT_PASSED_WHY: [RegExp, string][] = [
  [
    /^test_(adagrad|adam|momentum|nesterov_momentum)/,
    "a training operator (domain ai.onnx.preview.training): kiln compiles inference programs",
  ],
  [
    /^test_bernoulli/,
    "random sampling: the expected values come from numpy's generator, which no backend reproduces",
  ],
  [
    /^test_training_dropout/,
    "Dropout in training mode draws a random mask: numpy's generator made the expected one",
  ],
  [/STRING|^test_strnormalizer/, "string tensors are not a kiln element type"],
  [
    /^test_castlike_(BFLOAT16_to_FLOAT|FLOAT_to_BFLOAT16)/,
    "the test data contradicts its model: input 'like' is stored as [1] where the model declares [3,4] " +
    "(ONNX 1.12's castlike generator); kiln, like onnxruntime, rejects an input that contradicts a fixed dim",
  ],
];

/** Per-op rows: passed/total and the first failure. */
export interface OpRow {
  op: string;
  passed: number;
  total: number;
  firstFailure?: string;
}

/** Groups results by op (sorted by op name). */
export function perOp(results: CaseResult[]): OpRow[] {
  const rows = new Map<string, OpRow>();
  for (const r of results) {
    let row = rows.get(r.op);
    if (!row) rows.set(r.op, row = { op: r.op, passed: 0, total: 0 });
    row.total++;
    if (r.status === "pass") row.passed++;
    else if (!row.firstFailure) {
      row.firstFailure = `${r.name}: ${r.status}${r.reason ? ` (${r.reason})` : ""}`;
    }
  }
  return [...rows.values()].sort((a, b) => a.op < b.op ? -1 : a.op > b.op ? 1 : 0);
}

function _md(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ").slice(0, 200);
}

/**
 * The markdown report (docs/conformance.md). With `reference` (the same harness run on
 * onnxruntime-node), the summary and the per-op table show its pass counts beside kiln's.
 */
export function renderMarkdown(
  rep: ConformanceReport,
  reference?: ConformanceReport,
  others: { suite: string; rep: ConformanceReport }[] = [],
): string {
  const by = (s: CaseStatus) => rep.results.filter((r) => r.status === s).length;
  const constInt = rep.results.filter((r) => r.constantInputs === "int");
  const constAll = rep.results.filter((r) => r.constantInputs === "all");
  const pct = rep.total ? (100 * rep.passed / rep.total).toFixed(1) : "0";
  const unsupported = new Map<string, number>();
  for (const r of rep.results) {
    for (const o of r.unsupportedOps ?? []) unsupported.set(o, (unsupported.get(o) ?? 0) + 1);
  }
  const unsupportedTypes = rep.results.filter((r) => r.status === "unsupported" && !r.unsupportedOps);
  const lines: string[] = [];
  lines.push(`# ONNX conformance (backend node tests, ${rep.backend})`);
  lines.push("");
  lines.push(`Generated by \`deno task conformance\` (tests/conformance/run.ts) on ${rep.date}.`);
  lines.push(
    `Test data: \`${rep.dataDir}\` (Debian package \`libonnx-testdata\`${
      rep.dataVersion ? ` ${rep.dataVersion}` : ""
    }), test_data_set_0 of each test.`,
  );
  lines.push(
    `Comparison: dtype and dims exact; floats \`|kiln - expected| <= ${ONNX_TOLERANCE.atol} + ${ONNX_TOLERANCE.rtol} * |expected|\` ` +
      "(onnxruntime's backend-test tolerances; ONNX's own default atol is 1e-7), NaN equal to NaN; integers and bools exact.",
  );
  lines.push("");
  lines.push("## Summary");
  lines.push("");
  lines.push("| | tests |");
  lines.push("|---|---|");
  lines.push(`| total | ${rep.total} |`);
  lines.push(`| **passed** | **${rep.passed}** (${pct}%) |`);
  lines.push(`| failed (wrong values, dtype or dims) | ${by("fail")} |`);
  lines.push(`| error (exception) | ${by("error")} |`);
  lines.push(`| unsupported op | ${rep.results.filter((r) => r.unsupportedOps).length} |`);
  lines.push(
    `| unsupported value type (sequence, optional, string, float8, ...) | ${unsupportedTypes.length} |`,
  );
  lines.push(
    `| needed integer/bool inputs bound as constants (passed) | ${constInt.length} (${
      constInt.filter((r) => r.status === "pass").length
    }) |`,
  );
  lines.push(
    `| needed all inputs bound as constants (passed) | ${constAll.length} (${
      constAll.filter((r) => r.status === "pass").length
    }) |`,
  );
  lines.push("");
  lines.push(
    "kiln compiles static shapes: a test whose compile failed with `needs_constant` (an input decides an output " +
      "shape) was retried with its integer and bool inputs bound as `constantInputs`, then with all of them. " +
      `Run time ${rep.seconds.toFixed(1)} s.`,
  );
  lines.push("");
  if (reference) {
    lines.push(
      `The same harness (same data, same comparison) run on ${reference.backend} passes ${reference.passed} of ` +
        `${reference.total} (\`--backend ort\`); its failures are random ops (Bernoulli, training Dropout), ` +
        "bfloat16 (no onnxruntime JS type), ops it lacks for some types and a few precision or spec-version differences.",
    );
    lines.push("");
  }
  const refRows = new Map(reference ? perOp(reference.results).map((r) => [r.op, r]) : []);
  lines.push("## Per op");
  lines.push("");
  lines.push(
    reference ? `| op | passed | ${reference.backend} | first failure |` : "| op | passed | first failure |",
  );
  lines.push(reference ? "|---|---|---|---|" : "|---|---|---|");
  for (const row of perOp(rep.results)) {
    const ref = refRows.get(row.op);
    const refCell = reference ? ` ${ref ? `${ref.passed}/${ref.total}` : ""} |` : "";
    lines.push(
      `| ${_md(row.op)} | ${row.passed}/${row.total} |${refCell} ${
        row.firstFailure ? _md(row.firstFailure) : ""
      } |`,
    );
  }
  lines.push("");
  lines.push("## Every test not passed, with its reason");
  lines.push("");
  const notPassed = rep.results.filter((r) => r.status !== "pass");
  if (notPassed.length === 0) lines.push("None.");
  else {
    lines.push("| test | status | why |");
    lines.push("|---|---|---|");
    for (const r of notPassed) {
      const known = NOT_PASSED_WHY.find(([re]) => re.test(r.name));
      lines.push(`| ${r.name} | ${r.status} | ${_md(known ? known[1] : r.reason ?? "")} |`);
    }
  }
  lines.push("");
  lines.push("## Unsupported ops");
  lines.push("");
  if (unsupported.size === 0) lines.push("None.");
  else {
    lines.push(
      [...unsupported.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([o, n]) => `${o} (${n})`).join(
        ", ",
      ),
    );
  }
  lines.push("");
  lines.push("## Tests bound to constant inputs");
  lines.push("");
  const consts = [...constInt, ...constAll];
  if (consts.length === 0) lines.push("None.");
  else lines.push(consts.map((r) => `${r.name} (${r.constantInputs}, ${r.status})`).join(", "));
  if (others.length) {
    lines.push("");
    lines.push("## The package's other suites (graphs made by exporters)");
    lines.push("");
    lines.push(
      "Same harness and tolerances. `pytorch-converted` and `pytorch-operator` are PyTorch modules and " +
        "operators exported by its ONNX exporter (old opsets included); `simple` holds small hand-made models.",
    );
    lines.push("");
    lines.push("| suite | passed | not passed, with the first reason |");
    lines.push("|---|---|---|");
    for (const o of others) {
      const bad = o.rep.results.filter((r) => r.status !== "pass");
      const why = bad.length
        ? bad.map((r) => `${r.name}: ${r.status}${r.reason ? ` (${r.reason.replaceAll("|", "/")})` : ""}`)
          .slice(0, 4).join("; ") + (bad.length > 4 ? `; and ${bad.length - 4} more` : "")
        : "none";
      lines.push(`| ${o.suite} | ${o.rep.passed}/${o.rep.total} | ${why} |`);
    }
  }
  lines.push("");
  lines.push("## Slowest tests");
  lines.push("");
  for (const r of [...rep.results].sort((a, b) => b.ms - a.ms).slice(0, 10)) {
    lines.push(`- ${r.name}: ${r.ms} ms`);
  }
  lines.push("");
  lines.push(`${rep.passed} passed, ${rep.failed} failed`);
  lines.push("");
  return lines.join("\n");
}

async function _main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      filter: { type: "string" },
      json: { type: "string" },
      md: { type: "string" },
      data: { type: "string" },
      backend: { type: "string", default: "kiln" },
      "gpu-library": { type: "string" },
      "timeout-ms": { type: "string", default: "20000" },
      "no-ort": { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
    },
  });
  const missing = nodeTestsMissing(values.data ?? NODE_TEST_DIR);
  if (missing) {
    console.error(missing);
    Deno.exit(2);
  }
  if (values.backend !== "kiln" && values.backend !== "ort" && values.backend !== "gpu") {
    console.error(`Unknown --backend '${values.backend}' (kiln, gpu or ort)`);
    Deno.exit(2);
  }
  const backend = values.backend === "ort"
    ? await ortBackend()
    : values.backend === "gpu"
    ? gpuBackend(values["gpu-library"])
    : KILN_REF;
  const rep = await runConformance({
    backend,
    timeoutMs: Number(values["timeout-ms"]),
    filter: values.filter,
    dataDir: values.data,
    onResult: values.quiet ? undefined : (r, i, n) => {
      const tag = r.status === "pass"
        ? "ok  "
        : r.status === "fail"
        ? "FAIL"
        : r.status === "error"
        ? "ERR "
        : "UNSP";
      const host = r.hostOps?.length ? `  [host: ${[...new Set(r.hostOps)].join(", ")}]` : "";
      const extra = (r.status === "pass" ? "" : `  ${r.reason ?? ""}`) + host;
      const c = r.constantInputs === "none" ? "" : ` [const ${r.constantInputs}]`;
      console.log(`${String(i).padStart(4)}/${n} ${tag} ${r.name}${c} ${r.ms}ms${extra}`);
    },
  });
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(rep, null, 1));
  const md = values.md ??
    (values.filter || values.backend !== "kiln"
      ? undefined
      : new URL("../../docs/conformance.md", import.meta.url).pathname);
  if (md) {
    let reference: ConformanceReport | undefined;
    if (backend === KILN_REF && !values["no-ort"]) {
      reference = await runConformance({
        backend: await ortBackend(),
        filter: values.filter,
        dataDir: values.data,
      });
      console.log(
        `${reference.backend} on the same harness: ${reference.passed} passed, ${reference.failed} failed`,
      );
    }
    const others: { suite: string; rep: ConformanceReport }[] = [];
    if (!values.filter && !values.data) {
      for (const suite of OTHER_SUITES) {
        const dir = NODE_TEST_DIR.replace(/node$/, suite);
        if (nodeTestsMissing(dir)) continue;
        const o = await runConformance({ backend, dataDir: dir, timeoutMs: Number(values["timeout-ms"]) });
        console.log(`${suite}: ${o.passed} passed, ${o.failed} failed`);
        others.push({ suite, rep: o });
      }
    }
    await Deno.writeTextFile(md, renderMarkdown(rep, reference, others));
    console.log(`wrote ${md}`);
  }
  console.log(`${rep.passed} passed, ${rep.failed} failed`);
}

if (import.meta.main) await _main();
