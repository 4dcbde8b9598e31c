/**
 * `deno task bench`: kiln's ref target on 1 and N threads (`--threads N`, default the cores
 * available) side by side with onnxruntime-web (wasm, SIMD, N threads) and onnxruntime-node
 * (1 thread and default threads) on the real exporter graphs in
 * ../shared/models (beside the repository), all on the same seeded weights and inputs, in one process.
 *
 * For each model: seeded weights are written into a temp dir (core/weights/random.ts), every
 * engine is set up and run once untimed (warm-up, its time is reported as "first run"), then
 * the engines are timed in `--runs` rounds of one run each, in rotating order, so that changes
 * in the (shared) machine's load hit all of them alike; medians, minimums and CPU times are
 * printed, with kiln's ratio to each peer. kiln's
 * outputs are checked against onnxruntime-node's (relative L2), so a fast wrong kernel cannot
 * win. The report is printed and appended as a dated section to bench/RESULTS.md.
 *
 * Flags: `--models resnet50,gpt2` (also `bert`), `--runs 5`, `--warmup 1`, `--seed 1`,
 * `--engines kiln,ort-web,ort-node,ort-node-default`, `--max-seconds 120` (per engine: stop
 * timing early once the runs took this long, keeping at least one), `--models-dir DIR`,
 * `--out bench/RESULTS.md`, `--no-write`, `--keep-weights`, `--no-profile` (skip the per-op-type
 * profiles of onnxruntime-node and kiln), `--kernels` (also time one-node models of the ops that dominate
 * the graphs: Conv, Gemm, MatMul, ...), `--only-kernels`, `--cases REGEX` (kernel cases whose label matches).
 *
 * Modules: models.ts (the models, engines and result types), model_bench.ts (one model, every
 * engine), peers.ts (onnxruntime-node and -web sessions), kiln_api.ts (kiln, loaded at run time),
 * kernel_cases.ts and kernel_bench.ts (`--kernels`), report.ts (the Markdown report), util.ts.
 * @module
 */
import { parseArgs } from "node:util";
import { benchKernels, kernelTable } from "./kernel_bench.ts";
import { KERNEL_CASES } from "./kernel_cases.ts";
import { loadKiln } from "./kiln_api.ts";
import { benchModel } from "./model_bench.ts";
import { type EngineId, ENGINES, type ModelReport, MODELS } from "./models.ts";
import { loadavg, machine, report } from "./report.ts";
import { errText } from "./util.ts";
import { availableCores } from "../core/threads.ts";

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      models: { type: "string", default: "resnet50,gpt2" },
      runs: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      seed: { type: "string", default: "1" },
      engines: { type: "string", default: ENGINES.join(",") },
      "max-seconds": { type: "string", default: "120" },
      "models-dir": { type: "string", default: new URL("../../shared/models", import.meta.url).pathname },
      out: { type: "string", default: new URL("./RESULTS.md", import.meta.url).pathname },
      "no-write": { type: "boolean", default: false },
      "keep-weights": { type: "boolean", default: false },
      "no-profile": { type: "boolean", default: false },
      kernels: { type: "boolean", default: false },
      "only-kernels": { type: "boolean", default: false },
      cases: { type: "string", default: "" },
      "kiln-core": { type: "string", default: "auto" },
      threads: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "deno task bench [--models resnet50,gpt2,bert] [--runs 5] [--warmup 1] [--seed 1]\n" +
        "  [--engines kiln,ort-web,ort-node,ort-node-default] [--max-seconds 120]\n" +
        "  [--models-dir ../shared/models] [--out bench/RESULTS.md] [--no-write] [--keep-weights] [--no-profile] [--kernels] [--only-kernels] [--cases REGEX]\n" +
        "  [--kiln-core auto|relaxed|simd|relaxed,simd] [--threads N (default: the cores available)]",
    );
    return;
  }
  const int = (flag: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new Error(`Flag --${flag} is '${v}', not an integer >= ${min}`);
    }
    return n;
  };
  const runs = int("runs", values.runs, 1);
  const warmup = int("warmup", values.warmup, 0);
  const seed = int("seed", values.seed, 0);
  const maxSeconds = int("max-seconds", values["max-seconds"], 1);
  const threads = values.threads === undefined ? availableCores() : int("threads", values.threads, 1);
  const models = values.models.split(",").map((s) => s.trim()).filter(Boolean);
  const kernels = values.kernels || values["only-kernels"];
  const kilnCores = values["kiln-core"].split(",").map((s) => s.trim()).filter(Boolean);
  for (const c of kilnCores) {
    if (!["auto", "relaxed", "simd"].includes(c)) {
      throw new Error(`Unknown core '${c}' in --kiln-core; known: auto, relaxed, simd`);
    }
  }
  for (const m of models) {
    if (!MODELS[m]) {
      throw new Error(`Unknown model '${m}' in --models; known: ${Object.keys(MODELS).join(", ")}`);
    }
  }
  const engines = new Set<EngineId>();
  for (const e of values.engines.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (!(ENGINES as readonly string[]).includes(e)) {
      throw new Error(`Unknown engine '${e}' in --engines; known: ${ENGINES.join(", ")}`);
    }
    engines.add(e as EngineId);
  }

  const started = new Date();
  const loadStart = await loadavg();
  const reports: ModelReport[] = [];
  for (const m of values["only-kernels"] ? [] : models) {
    reports.push(
      await benchModel(m, MODELS[m], {
        modelsDir: values["models-dir"],
        seed,
        runs,
        warmup,
        maxSeconds,
        engines,
        keepWeights: values["keep-weights"],
        profile: !values["no-profile"],
        kilnCores,
        threads,
      }),
    );
  }
  let kernelLines: string[] = [];
  if (kernels) {
    const re = new RegExp(values.cases, "i");
    const cases = KERNEL_CASES.filter((c) => models.includes(c.model) && re.test(c.label));
    let core = "default";
    try {
      core = (await loadKiln()).variants()[0] ?? core;
    } catch {
      // the kernel table says why kiln did not run
    }
    kernelLines = kernelTable(
      await benchKernels(cases, Math.max(runs, 5), seed, engines),
      Math.max(runs, 5),
      core,
    );
  }
  const loadEnd = await loadavg();
  const stamp = started.toISOString().replace("T", " ").slice(0, 16) + " UTC";
  const header = [
    `## ${stamp}`,
    "",
    ...(await machine()),
    `- load average (1/5/15 min) at start ${loadStart}, at end ${loadEnd} (the machine is shared)`,
    `- threads: kiln on 1 and ${threads}, onnxruntime-web on ${threads} (\`--threads\`; ${availableCores()} cores here)`,
    `- \`deno task bench --models ${models.join(",")} --runs ${runs} --warmup ${warmup} --seed ${seed}` +
    `${values["only-kernels"] ? " --only-kernels" : kernels ? " --kernels" : ""}` +
    `${values["kiln-core"] !== "auto" ? ` --kiln-core ${values["kiln-core"]}` : ""} --threads ${threads}\``,
  ];
  const text = report(reports, header, { runs, seed }) +
    (kernelLines.length ? "\n" + kernelLines.join("\n") : "");
  console.log("\n" + text);
  if (!values["no-write"]) {
    const path = values.out;
    let old = "";
    try {
      old = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (!old) {
      old = "# kiln benchmark results\n\nDated sections, newest last, appended by `deno task bench` " +
        "(see bench/README.md).\n";
    }
    await Deno.writeTextFile(path, old.replace(/\n*$/, "\n\n") + text + "\n");
    // keep the file as `deno fmt` wants it (the gate runs `deno fmt --check`)
    try {
      const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path], stdout: "null" })
        .output();
      if (!fmt.success) {
        console.log(`[bench] deno fmt ${path} failed: ${new TextDecoder().decode(fmt.stderr).trim()}`);
      }
    } catch (e) {
      console.log(`[bench] deno fmt ${path} failed: ${errText(e)}`);
    }
    console.log(`[bench] appended to ${path}`);
  }
}

if (import.meta.main) {
  await main();
  // onnxruntime-web's pthread workers (threads > 1) would keep the process alive
  Deno.exit(0);
}
