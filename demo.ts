/**
 * The demo (`npm run demo` / `deno task demo`): compile once, swap, bake, save, load, on the
 * bundled tinynet (examples/tinynet, weights in ONNX external data), on the `ref` target and,
 * when this machine has a GPU (and `deno task build:hip` built kiln's library), on `gpu`.
 *
 * 1. parse with deferred weights and compile once;
 * 2. bind weight set v1 (the shipped data) and run; swap to v2 (a seeded set) and run;
 * 3. bake v1 into a new program, save it, load it back (finalized) and run;
 * 4. check every output against a program compiled from scratch (ref) with that weight set;
 * 5. print a table of times.
 * @module
 */
import {
  compile,
  gpuLibraryInfo,
  load,
  parseOnnx,
  replaceOnnxExternalWeights,
  save,
  type TargetName,
  WeightSet,
} from "./mod.ts";
import type { Tensor } from "./core/tensor.ts";
import { writeRandomWeights } from "./core/weights/random.ts";

const MODEL_DIR = new URL("./examples/tinynet/", import.meta.url).pathname;
const MODEL = `${MODEL_DIR}tinynet.onnx`;
const DIMS = { x: [1, 3, 16, 16] };

function _input(seed: number): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

/** Why the gpu target cannot run here, or undefined when it can. */
function _noGpu(): string | undefined {
  try {
    const info = gpuLibraryInfo();
    if (info.devices.length) return undefined;
    return `${info.path} (${info.platform}) found no GPU${info.error ? `: ${info.error}` : ""}`;
  } catch (e) {
    return (e as Error).message.split("\n")[0];
  }
}

function _maxDiff(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(Number(a.data[i]) - Number(b.data[i])));
  return m;
}

const rows: [string, number][] = [];
async function _time<T>(label: string, fn: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  rows.push([label, performance.now() - t0]);
  return r;
}

let failures = 0;
/** ref against ref agrees to 1e-6; the gpu's kernels (fused multiply-adds, device math) to 1e-5. */
function _check(what: string, got: Tensor, want: Tensor, tol: number): void {
  const d = _maxDiff(got, want);
  const ok = d <= tol;
  if (!ok) failures++;
  console.log(
    `  ${ok ? "ok  " : "FAIL"} ${what}: max |diff| vs from-scratch compile = ${d.toExponential(2)}`,
  );
}

/** A program compiled from scratch (weights read at parse time) from `dir`'s copy of the model. */
async function _fromScratch(dir: string, x: Tensor): Promise<Tensor> {
  const p = compile(await parseOnnx(`${dir}/tinynet.onnx`, { inputDims: DIMS }), "ref");
  try {
    return (await p.eval({ x }))["probs"];
  } finally {
    p.dispose();
  }
}

const dir = await Deno.makeTempDir({ prefix: "kiln-demo-" });
const targets: TargetName[] = ["ref"];
const noGpu = _noGpu();
if (!noGpu) targets.push("gpu");
try {
  const x = _input(0);
  await writeRandomWeights(MODEL, `${dir}/v2`, { seed: 2 }); // weight set v2 (v1 ships with the model)
  await Deno.copyFile(MODEL, `${dir}/v2/tinynet.onnx`);
  const want1 = await _fromScratch(MODEL_DIR, x);
  const want2 = await _fromScratch(`${dir}/v2`, x);
  for (const target of targets) {
    const tag = (s: string) => `${target}: ${s}`;
    console.log(`kiln demo: ${MODEL} on the ${target} target\n`);
    const model = await _time(
      tag("parse (deferred weights)"),
      () => parseOnnx(MODEL, { deferExternalWeights: true, inputDims: DIMS }),
    );
    const program = await _time(tag("compile once"), () => compile(model, target));
    const info = program.info();
    console.log(
      `compiled once for ${target} (${info.device}): ${program.weights.length} deferred weights, ` +
        `${info.instructionCount} instructions, ${info.prepareCount} weight-only nodes hoisted into the prepare step` +
        (info.hostNodes.length ? `, ${info.hostNodes.length} node(s) on the host` : ""),
    );

    const v1 = await _time(tag("read weight set v1"), () => WeightSet.fromOnnxDir(program, MODEL_DIR));
    await _time(tag("bind v1"), () => program.bindWeights(v1));
    const out1 = await _time(tag("eval (v1)"), () => program.eval({ x }));
    const v2 = await _time(tag("read weight set v2"), () => WeightSet.fromOnnxDir(program, `${dir}/v2`));
    await _time(tag("swap to v2 (bind)"), () => program.bindWeights(v2));
    const out2 = await _time(tag("eval (v2)"), () => program.eval({ x }));

    const baked = await _time(tag("bake v1"), () => replaceOnnxExternalWeights(program, MODEL_DIR, target));
    const file = `${dir}/tinynet_v1_${target}.kiln`;
    await _time(tag("save baked"), () => save(baked, file));
    const loaded = await _time(tag("load (finalized)"), () => load(file));
    const out3 = await _time(tag("eval (loaded v1)"), () => loaded.eval({ x }));

    console.log("\nchecks:");
    const tol = target === "ref" ? 1e-6 : 1e-5;
    _check(tag("v1 bound"), out1["probs"], want1, tol);
    _check(tag("v2 swapped in"), out2["probs"], want2, tol);
    _check(tag("v1 baked, saved, loaded"), out3["probs"], want1, tol);
    const swapped = _maxDiff(out1["probs"], out2["probs"]);
    console.log(
      `  ${swapped > 1e-3 ? "ok  " : "FAIL"} ${tag("v1 and v2 give different outputs")} (max |diff| ${
        swapped.toFixed(4)
      })`,
    );
    if (swapped <= 1e-3) failures++;
    console.log(
      `  probs (v1): [${
        Array.from(out1["probs"].data as Float32Array).map((v) => v.toFixed(4)).join(", ")
      }]\n`,
    );
    program.dispose();
    loaded.dispose();
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

console.log("\n| step | ms |\n|---|---|");
for (const [label, ms] of rows) console.log(`| ${label} | ${ms.toFixed(2)} |`);
console.log(
  noGpu
    ? `\nGPU target: not run, no GPU here (${noGpu}).\nOn a machine with an NVIDIA or AMD GPU, \`deno task build:hip\` builds kiln's library and this demo runs on it too.`
    : "\nGPU target: ran above, every output checked against the ref target.",
);
console.log(failures ? `\ndemo: ${failures} check(s) FAILED` : "\ndemo: all checks passed");
if (failures) Deno.exit(1);
