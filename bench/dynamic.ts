/**
 * The dynamic-shapes benchmark (`deno run -A bench/dynamic.ts`). `--model shared` (default): the
 * shared `gpt2_dynamo.onnx`, exported by PyTorch with its length fixed to 128, rewritten by
 * tools/gpt2_dynamic_seq.ts to a symbolic length (up to 128), with a seeded weight set;
 * `--model built`: a GPT-2-small-sized decoder (12 layers, 768 wide, 12 heads, vocabulary 50257,
 * 1024 positions; seeded weights in ONNX external data) built here with a symbolic length.
 * One program compiled with `ids: [1, 1..MAX]` and its weights bound once is evaluated at each
 * length: the first eval there (which specializes), then warm evals; beside it, at each length,
 * a program compiled for that fixed shape with the same weights bound. Outputs are checked equal.
 * Medians of `--runs`; appends a dated section to bench/RESULTS.md unless `--no-write`.
 * @module
 */
import { parseArgs } from "node:util";
import { compile, parseOnnx, type Tensor, WeightSet } from "../mod.ts";
import { G, writeGraph } from "../tests/util/graph_dsl.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { dynamicSeqGpt2 } from "../tools/gpt2_dynamic_seq.ts";
import { median, timed } from "./util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "5" },
    model: { type: "string", default: "shared" },
    "models-dir": { type: "string", default: new URL("../../shared/models", import.meta.url).pathname },
    lengths: { type: "string" },
    layers: { type: "string", default: "12" },
    out: { type: "string", default: new URL("./RESULTS.md", import.meta.url).pathname },
    "no-write": { type: "boolean" },
  },
});
const RUNS = Number(values.runs);
const SHARED = values.model === "shared";
if (!SHARED && values.model !== "built") throw new Error(`Unknown --model '${values.model}' (shared, built)`);
const LENGTHS = (values.lengths ?? (SHARED ? "16,64,128" : "32,128,256")).split(",").map(Number);
const LAYERS = Number(values.layers);
const D = 768, H = 12, V = 50257;
const CTX = SHARED ? 128 : 1024;

function _ln(g: G, x: string, p: string): string {
  return g.o("LayerNormalization", [x, g.w(`${p}.weight`, [D], { ones: true }), g.w(`${p}.bias`, [D])], {
    axis: { i: -1 },
    epsilon: { f: 1e-5 },
  });
}
function _linear(g: G, x: string, p: string, din: number, dout: number): string {
  return g.o("Add", [
    g.o("MatMul", [x, g.w(`${p}.weight`, [din, dout], { scale: 0.02 })]),
    g.w(`${p}.bias`, [dout]),
  ]);
}
/** [1, S, D] -> [1, H, S, D/H] (kT: [1, H, D/H, S]) through a Reshape to [1, -1, H, D/H]. */
function _heads(g: G, x: string, kT = false): string {
  const r = g.o("Reshape", [x, g.i64([1, -1, H, D / H])]);
  return g.o("Transpose", [r], { perm: { ints: kT ? [0, 2, 3, 1] : [0, 2, 1, 3] } });
}
function _gelu(g: G, x: string): string {
  const cube = g.o("Mul", [g.o("Pow", [x, g.f32([3], [])]), g.f32([0.044715], [])]);
  const inner = g.o("Mul", [g.o("Add", [x, cube]), g.f32([Math.sqrt(2 / Math.PI)], [])]);
  return g.o("Mul", [g.o("Mul", [g.f32([0.5], []), x]), g.o("Add", [g.o("Tanh", [inner]), g.f32([1], [])])]);
}

async function _model(dir: string): Promise<string> {
  const g = new G(7, "/gpt2");
  const wte = g.w("wte", [V, D], { scale: 0.02 });
  const T = g.o("Gather", [g.o("Shape", ["ids"]), g.c("int64", [1], [])], { axis: { i: 0 } });
  const pos = g.o("Range", [g.c("int64", [0], []), T, g.c("int64", [1], [])]);
  let h = g.o("Add", [
    g.o("Gather", [wte, "ids"]),
    g.o("Gather", [g.w("wpe", [CTX, D], { scale: 0.01 }), pos]),
  ]);
  // causal mask from the length: Trilu of ones [T, T]
  const tt = g.o("Concat", [g.o("Unsqueeze", [T, g.i64([0])]), g.o("Unsqueeze", [T, g.i64([0])])], {
    axis: { i: 0 },
  });
  const ones = g.o("ConstantOfShape", [tt], {
    value: { t: { name: "", dtype: "float32", dims: [1], data: [1] } },
  });
  const keep = g.o("Cast", [g.o("Trilu", [ones, g.c("int64", [0], [])], { upper: { i: 0 } })], {
    to: { i: 9 },
  });
  for (let l = 0; l < LAYERS; l++) {
    const p = `h.${l}`;
    const qkv = _linear(g, _ln(g, h, `${p}.ln_1`), `${p}.attn.c_attn`, D, 3 * D);
    const [q0, k0, v0] = g.om("Split", [qkv, g.i64([D, D, D])], 3, { axis: { i: 2 } });
    const scores = g.o("Mul", [g.o("MatMul", [_heads(g, q0), _heads(g, k0, true)]), g.f32([1 / 8], [])]);
    const probs = g.o("Softmax", [g.o("Where", [keep, scores, g.f32([-3.4e38], [])])], { axis: { i: -1 } });
    const merged = g.o("Reshape", [
      g.o("Transpose", [g.o("MatMul", [probs, _heads(g, v0)])], { perm: { ints: [0, 2, 1, 3] } }),
      g.i64([1, -1, D]),
    ]);
    h = g.o("Add", [_linear(g, merged, `${p}.attn.c_proj`, D, D), h]);
    const mlp = _linear(
      g,
      _gelu(g, _linear(g, _ln(g, h, `${p}.ln_2`), `${p}.mlp.c_fc`, D, 4 * D)),
      `${p}.mlp.c_proj`,
      4 * D,
      D,
    );
    h = g.o("Add", [mlp, h]);
  }
  g.nodes.push({
    op: "MatMul",
    inputs: [_ln(g, h, "ln_f"), g.o("Transpose", [wte], { perm: { ints: [1, 0] } })],
    outputs: ["logits"],
    name: "/lm_head/MatMul",
  });
  const w = await writeGraph(dir, "gpt2_dynamic", g, {
    inputs: [{ name: "ids", dtype: "int64", dims: [1, "seq"] }],
    outputs: [{ name: "logits" }],
    opset: 18,
  });
  return w.path;
}

function _ids(n: number): Record<string, Tensor> {
  const ids = new BigInt64Array(n);
  for (let i = 0; i < n; i++) ids[i] = BigInt((i * 7919) % V);
  return { ids: { dtype: "int64", dims: [1, n], data: ids } };
}
function _maxDiff(a: Tensor, b: Tensor): number {
  const x = a.data as Float32Array, y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

const lines: string[] = [];
function _out(s = ""): void {
  console.log(s);
  lines.push(s);
}

/** The shared GPT-2 with a symbolic length, beside a seeded weight set in `dir`. */
async function _shared(dir: string): Promise<string> {
  const src = `${values["models-dir"]}/gpt2_dynamo.onnx`;
  await Deno.writeFile(`${dir}/gpt2_dyn.onnx`, dynamicSeqGpt2(await Deno.readFile(src)));
  const w = await writeRandomWeights(`${dir}/gpt2_dyn.onnx`, dir, { seed: 1, force: true });
  return w.modelPath;
}

const tmp = await Deno.makeTempDir({ prefix: "kiln-dyn-" });
try {
  const path = SHARED ? await _shared(tmp) : await _model(tmp);
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
  _out(
    `## Dynamic shapes: one GPT-2-sized program at several lengths vs fixed-shape programs (bench/dynamic.ts), ${
      new Date().toISOString().slice(0, 16).replace("T", " ")
    } UTC`,
  );
  _out();
  _out(
    `Machine: ${cpu}, ${navigator.hardwareConcurrency} cores, shared with other engineers' builds and tests ` +
      `(noisy: the dynamic and fixed programs are timed alternately in one run); Deno ${Deno.version.deno}; ` +
      `ref target; ${
        SHARED
          ? "the shared gpt2_dynamo.onnx (GPT-2 small, 12 layers) rewritten to a symbolic length by " +
            "tools/gpt2_dynamic_seq.ts (its export fixes 128, so lengths go up to 128)"
          : `${LAYERS}-layer GPT-2-small-sized decoder built by the script (symbolic length)`
      }; seeded weights, deferred and bound once; medians of ${RUNS} evals.`,
  );
  _out();
  const [compileMs, dyn] = await timed(async () =>
    compile(
      await parseOnnx(path, { inputDims: { ids: [1, { min: 1, max: CTX }] }, deferExternalWeights: true }),
      "ref",
    )
  );
  const [bindMs] = await timed(async () => dyn.bindWeights(await WeightSet.fromOnnxDir(dyn, tmp)));
  // the first eval after the bind runs the prepare step (GEMM weight packing) in the root, once
  const [prepMs] = await timed(() => dyn.eval(_ids(2)));
  _out(
    `Dynamic program: parse + compile (the root, at length 2) ${
      compileMs.toFixed(0)
    } ms; weights bound once: ${
      bindMs.toFixed(0)
    } ms; first eval (length 2, the root: runs the prepare step once for every length) ${
      prepMs.toFixed(0)
    } ms.`,
  );
  _out();
  _out(
    "| length | first eval at the length (specializes) ms | warm eval ms | fixed-shape eval ms | warm ÷ fixed | fixed-shape compile + bind ms | max abs diff |",
  );
  _out("|---:|---:|---:|---:|---:|---:|---:|");
  for (const n of LENGTHS) {
    const feeds = _ids(n);
    const [firstMs, got] = await timed(() => dyn.eval(feeds));
    const [fixedSetupMs, fixed] = await timed(async () => {
      const p = compile(
        await parseOnnx(path, { inputDims: { ids: [1, n] }, deferExternalWeights: true }),
        "ref",
      );
      await p.bindWeights(await WeightSet.fromOnnxDir(p, tmp));
      return p;
    });
    try {
      const want = await fixed.eval(feeds); // its prepare step runs here, not timed below
      const diff = _maxDiff(Object.values(got)[0], Object.values(want)[0]);
      const warm: number[] = [], stat: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        warm.push((await timed(() => dyn.eval(feeds)))[0]);
        stat.push((await timed(() => fixed.eval(feeds)))[0]);
      }
      const w = median(warm), f = median(stat);
      _out(
        `| ${n} | ${firstMs.toFixed(0)} | ${w.toFixed(1)} | ${f.toFixed(1)} | ${(w / f).toFixed(3)} | ${
          fixedSetupMs.toFixed(0)
        } | ${diff.toExponential(1)} |`,
      );
    } finally {
      fixed.dispose();
    }
  }
  const info = dyn.info().dynamic!;
  _out();
  _out(
    `- Specializations cached: ${
      info.specializations.map((s) =>
        `${s.key} (${s.compileMs.toFixed(0)} ms to compile, ` +
        `${s.sharedPrepareNodes} prepare nodes read from the root)`
      ).join("; ")
    }.`,
  );
  _out(
    "- The first eval at a new length includes compiling and finalizing its specialization (decode with the length, " +
      "the ref passes, memory plan) and its own prepare nodes; the packed GEMM weights are the root's (shared, " +
      "not packed again). The fixed-shape column is a separate program compiled for that length with the same weights.",
  );
  dyn.dispose();
  if (!values["no-write"]) {
    await Deno.writeTextFile(values.out!, `\n${lines.join("\n")}\n`, { append: true });
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}
