/**
 * Where an eval's time goes on the GPU (`deno run -A bench/gpu_profile.ts`): for each shared
 * exporter graph (GPT-2, BERT, ResNet-50 from ../shared/models or KILN_SHARED_MODELS), bound to a
 * seeded weight set, the median eval wall time with the run list replayed as a graph and launched
 * kernel by kernel, then one profiled eval: device time per op and the slowest nodes. A tool for
 * finding what to fuse or speed up next; the side-by-side benchmark is `deno task bench:gpu`.
 * Options: --models gpt2,bert,resnet50  --runs 20  --top 12  --json FILE  --batch N (the first
 * input dim, 1 by default)  --precision float32|tf32|fp16|bf16 (GpuOptions.precision); or any model with its
 * weights beside it: --onnx FILE --npy FILE (its one input, e.g. bench:gpu's exports).
 * @module
 */
import { parseArgs } from "node:util";
import { compile, parseOnnx, type ProfileReport, type Program, readNpy, WeightSet } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { median } from "./util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    models: { type: "string", default: "gpt2,bert,resnet50" },
    runs: { type: "string", default: "20" },
    top: { type: "string", default: "12" },
    json: { type: "string" },
    batch: { type: "string", default: "1" },
    precision: { type: "string", default: "float32" },
    onnx: { type: "string" },
    npy: { type: "string" },
    "models-dir": {
      type: "string",
      default: Deno.env.get("KILN_SHARED_MODELS") ?? new URL("../../shared/models", import.meta.url).pathname,
    },
  },
});
const RUNS = Number(values.runs);
const TOP = Number(values.top);
const BATCH = Number(values.batch);
if (!Number.isInteger(BATCH) || BATCH < 1) throw new Error(`gpu_profile: --batch must be a positive integer`);
const _PRECISIONS = ["float32", "tf32", "fp16", "bf16"] as const;
type _Precision = typeof _PRECISIONS[number];
if (!(_PRECISIONS as readonly string[]).includes(values.precision)) {
  throw new Error(`gpu_profile: --precision is ${_PRECISIONS.join(", ")}, not '${values.precision}'`);
}
const PRECISION = values.precision as _Precision;

const MODELS: Record<string, { file: string; input: string; dims: number[]; vocab?: number; npy?: string }> =
  {
    gpt2: { file: "gpt2_dynamo.onnx", input: "ids", dims: [1, 128], vocab: 50257 },
    bert: { file: "bert_dynamo.onnx", input: "ids", dims: [1, 128], vocab: 30522 },
    resnet50: { file: "resnet50_dynamo.onnx", input: "x", dims: [1, 3, 224, 224] },
  };
for (const m of Object.values(MODELS)) m.dims[0] = BATCH;

if (values.onnx) {
  if (!values.npy) throw new Error("gpu_profile: --onnx needs --npy (the model's input)");
  const x = readNpy(await Deno.readFile(values.npy), values.npy);
  const model = await parseOnnx(values.onnx);
  const input = model.inputs[0];
  MODELS[values.onnx] = { file: values.onnx, input: input.name, dims: [...x.dims], npy: values.npy };
  values.models = values.onnx;
}

async function _inputOf(m: (typeof MODELS)[string]): Promise<Record<string, Tensor>> {
  if (m.npy) return { [m.input]: readNpy(await Deno.readFile(m.npy), m.npy) };
  return _input(m);
}

function _input(m: (typeof MODELS)[string]): Record<string, Tensor> {
  const n = m.dims.reduce((a, b) => a * b, 1);
  if (m.vocab) {
    const ids = new BigInt64Array(n);
    for (let i = 0; i < n; i++) ids[i] = BigInt((i * 7919) % m.vocab);
    return { [m.input]: { dtype: "int64", dims: m.dims, data: ids } };
  }
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  return { [m.input]: { dtype: "float32", dims: m.dims, data: x } };
}

async function _time(p: Program, inputs: Record<string, Tensor>, outputs?: string[]): Promise<number> {
  for (let i = 0; i < 3; i++) await p.eval(inputs, { outputs });
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await p.eval(inputs, { outputs });
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

const results: Record<string, unknown>[] = [];
for (const name of values.models.split(",")) {
  const m = MODELS[name];
  if (!m) {
    console.error(`gpu_profile: unknown model '${name}' (${Object.keys(MODELS).join(", ")})`);
    continue;
  }
  const own = m.npy !== undefined; // a model with its own weights beside it
  const path = own ? m.file : `${values["models-dir"]}/${m.file}`;
  const tmp = await Deno.makeTempDir({ prefix: "kiln_profile_" });
  const dir = own ? path.replace(/\/[^/]*$/, "") : tmp;
  const programs: Program[] = [];
  try {
    if (!own) await writeRandomWeights(path, dir, { seed: 7 });
    const make = async (graphs: boolean, fusion = true) => {
      const p = compile(
        await parseOnnx(path, { deferExternalWeights: true, inputDims: { [m.input]: m.dims } }),
        "gpu",
        { gpu: { graphs, fusion, precision: PRECISION } },
      );
      programs.push(p);
      await p.bindWeights(await WeightSet.fromOnnxDir(p, dir));
      return p;
    };
    const inputs = await _inputOf(m);
    const graphed = await make(true);
    const graphMs = await _time(graphed, inputs);
    const deviceOnlyMs = await _time(graphed, inputs, []);
    const g = graphed.info().graphs;
    const fusion = graphed.info().fusion;
    const dnn = graphed.info().dnn;
    const prof: ProfileReport = await graphed.profile(inputs);
    graphed.dispose();
    const stepped = await make(false);
    const stepMs = await _time(stepped, inputs);
    stepped.dispose();
    const unfused = await make(true, false);
    const unfusedMs = await _time(unfused, inputs, []);
    const unfusedProf: ProfileReport = await unfused.profile(inputs);
    unfused.dispose();
    console.log(
      `\n${name} on ${prof.device}: eval median ${graphMs.toFixed(3)} ms replayed as a graph` +
        `${g?.enabled ? "" : ` (graphs off: ${g?.why})`}, ${
          deviceOnlyMs.toFixed(3)
        } ms with the outputs left on ` +
        `the device, ${stepMs.toFixed(3)} ms kernel by kernel; fusion: ${fusion?.nodes} nodes in ` +
        `${fusion?.kernels} kernels, ${fusion?.epilogues} Relus and ${fusion?.residuals} residual ends folded into Convs` +
        `${fusion?.residualMissWhy ? ` (${fusion.residualMissWhy})` : ""} (unfused: ${
          unfusedMs.toFixed(3)
        } ms outputs on the device, ` +
        `${unfusedProf.nodes.length} launches); kernels ${prof.totalMs.toFixed(3)} ms device time in ` +
        `${prof.nodes.length} launches (profiled with an event per kernel)`,
    );
    if (dnn) {
      console.log(
        `  precision ${PRECISION}, batch ${BATCH}; Convs: ${dnn.kernels} on ${dnn.library}` +
          `${dnn.misses ? `, ${dnn.misses} on kiln's kernels (${dnn.missWhy})` : ""}`,
      );
    }
    console.log("  op                       count   device ms   share");
    for (const o of prof.ops.slice(0, TOP)) {
      console.log(
        `  ${o.op.padEnd(24)} ${String(o.count).padStart(5)} ${o.ms.toFixed(3).padStart(11)} ${
          (100 * o.ms / prof.totalMs).toFixed(1).padStart(6)
        }%`,
      );
    }
    console.log("  slowest nodes:");
    for (const n of [...prof.nodes].sort((a, b) => b.ms - a.ms).slice(0, TOP)) {
      console.log(`    ${n.ms.toFixed(4).padStart(9)} ms  ${n.op.padEnd(20)} ${n.name}`);
    }
    results.push({ model: name, graphMs, deviceOnlyMs, stepMs, unfusedMs, graphs: g, fusion, profile: prof });
  } catch (e) {
    console.error(`gpu_profile: ${name}: ${(e as Error).message}`);
  } finally {
    for (const p of programs) p.dispose();
    await Deno.remove(tmp, { recursive: true });
  }
}
if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 1));
