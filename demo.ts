/**
 * The demo (`npm run demo` / `deno task demo`): the bundled tinynet model compiled once on
 * the `ref` target, run, saved as a `.kiln` program, loaded back (finalized, no compiler
 * passes) and run again; outputs are checked and a table of times printed.
 * @module
 */
import { compile, load, parseOnnx, save } from "./mod.ts";
import type { Tensor } from "./core/tensor.ts";

const MODEL = new URL("./examples/tinynet/tinynet.onnx", import.meta.url).pathname;

function _input(seed: number): Tensor {
  const data = new Float32Array(1 * 3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

function _maxDiff(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(Number(a.data[i]) - Number(b.data[i])));
  return m;
}

async function _time<T>(rows: [string, number][], label: string, fn: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  rows.push([label, performance.now() - t0]);
  return r;
}

const rows: [string, number][] = [];
const dir = await Deno.makeTempDir({ prefix: "kiln-demo-" });
let failures = 0;
try {
  console.log(`kiln demo: ${MODEL}`);
  const model = await _time(rows, "parse", () => parseOnnx(MODEL, { inputDims: { x: [1, 3, 16, 16] } }));
  const program = await _time(rows, "compile (ref)", () => compile(model, "ref"));
  const x = _input(0);
  const out = await _time(rows, "eval", () => program.eval({ x }));
  const probs = out["probs"];
  const sum = Array.from(probs.data as Float32Array).reduce((a, b) => a + b, 0);
  console.log(`probs: [${Array.from(probs.data as Float32Array).map((v) => v.toFixed(4)).join(", ")}]`);
  if (Math.abs(sum - 1) > 1e-4) {
    console.log(`FAIL: probabilities sum to ${sum}`);
    failures++;
  }
  const file = `${dir}/tinynet.kiln`;
  await _time(rows, "save", () => save(program, file));
  const loaded = await _time(rows, "load (finalized)", () => load(file));
  const again = await _time(rows, "eval (loaded)", () => loaded.eval({ x }));
  const d = _maxDiff(again["probs"], probs);
  console.log(`loaded program vs compiled program: max |diff| = ${d}`);
  if (d !== 0) failures++;
  program.dispose();
  loaded.dispose();
} finally {
  await Deno.remove(dir, { recursive: true });
}

console.log("\n| step | ms |\n|---|---|");
for (const [label, ms] of rows) console.log(`| ${label} | ${ms.toFixed(2)} |`);
console.log(failures ? `\ndemo: ${failures} check(s) FAILED` : "\ndemo: all checks passed");
if (failures) Deno.exit(1);
