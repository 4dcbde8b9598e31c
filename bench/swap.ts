/**
 * The weight-replacement benchmark (`deno task bench:swap`), in one run, side by side:
 *
 * - swap: a program compiled once with deferred weights binds a new weight set (read the
 *   ONNX external-data directory, validate, copy in; the first eval after it also runs the
 *   hoisted weight-only nodes, reported as "prepare", timed inside the program);
 * - recompile: parse the model with the new weights and compile from scratch (kiln), plus the
 *   prepare step its first eval runs (timed the same way);
 * - partial swap: one mid-sized tensor, in memory: its bind and the prepare work downstream of it;
 * - onnxruntime-node: re-create the session with the new weights (what a runtime without
 *   weight swap must do);
 * - no inference penalty: eval with deferred weights bound vs the same model baked, for
 *   GPT-2 and ResNet-50 (the ratio must stay <= 1.05).
 *
 * Medians of `--runs` (default 5), alternating two seeded weight sets so every swap copies.
 * Appends a dated section to bench/RESULTS.md unless `--no-write`.
 * @module
 */
import { parseArgs } from "node:util";
import { compile, parseOnnx, replaceOnnxExternalWeights, WeightSet } from "../mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import { ortNodeSession } from "./peers.ts";
import { programInternals } from "../core/program.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "5" },
    models: { type: "string", default: "gpt2,resnet50" },
    "models-dir": { type: "string", default: new URL("../../shared/models", import.meta.url).pathname },
    out: { type: "string", default: new URL("./RESULTS.md", import.meta.url).pathname },
    "no-write": { type: "boolean" },
  },
});
const RUNS = Number(values.runs);

const MODELS: Record<string, { file: string; input: () => Record<string, Tensor> }> = {
  gpt2: {
    file: "gpt2_dynamo.onnx",
    input: () => {
      const ids = new BigInt64Array(128);
      for (let i = 0; i < 128; i++) ids[i] = BigInt((i * 7919) % 50257);
      return { ids: { dtype: "int64", dims: [1, 128], data: ids } };
    },
  },
  resnet50: {
    file: "resnet50_dynamo.onnx",
    input: () => {
      const x = new Float32Array(3 * 224 * 224);
      for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.001);
      return { x: { dtype: "float32", dims: [1, 3, 224, 224], data: x } };
    },
  },
};
const DIMS: Record<string, Record<string, number[]>> = {
  gpt2: { ids: [1, 128] },
  resnet50: { x: [1, 3, 224, 224] },
};

function _median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function _ms<T>(fn: () => Promise<T> | T): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

const lines: string[] = [];
function _out(s = ""): void {
  console.log(s);
  lines.push(s);
}

const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
const mem = Math.round(Deno.systemMemoryInfo().total / 2 ** 30);
_out(
  `## Weight swap vs recompile vs session re-creation (bench/swap.ts), ${
    new Date().toISOString().slice(0, 16).replace("T", " ")
  } UTC`,
);
_out();
_out(
  `Machine: ${cpu}, ${navigator.hardwareConcurrency} cores, ${mem} GiB; Deno ${Deno.version.deno}; ` +
    `medians of ${RUNS} runs; seeded weight sets written by core/weights/random.ts (page cache warm).`,
);

for (const name of values.models!.split(",")) {
  const spec = MODELS[name];
  if (!spec) throw new Error(`Unknown model '${name}' (known: ${Object.keys(MODELS).join(", ")})`);
  const src = `${values["models-dir"]}/${spec.file}`;
  try {
    await Deno.stat(src);
  } catch {
    _out(`\n${name}: skipped (${src} not found)`);
    continue;
  }
  const tmp = await Deno.makeTempDir({ prefix: `kiln-swap-${name}-` });
  try {
    const sets = [
      await writeRandomWeights(src, `${tmp}/v1`, { seed: 1 }),
      await writeRandomWeights(src, `${tmp}/v2`, { seed: 2 }),
    ];
    const dirs = [`${tmp}/v1`, `${tmp}/v2`];
    const feeds = spec.input();
    const bytes = sets[0].files.reduce((a, f) => a + f.bytes, 0);

    const [compileMs, program] = await _ms(async () =>
      compile(
        await parseOnnx(sets[0].modelPath, { deferExternalWeights: true, inputDims: DIMS[name] }),
        "ref",
      )
    );
    await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
    await program.eval(feeds);

    const read: number[] = [], bind: number[] = [], prepare: number[] = [];
    const recompile: number[] = [], ort: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const d = dirs[(r + 1) % 2];
      const [readMs, set] = await _ms(() => WeightSet.fromOnnxDir(program, d));
      const [bindMs] = await _ms(() => program.bindWeights(set));
      await program.eval(feeds);
      const prepareMs = programInternals(program).lastPrepareMs; // the prepare step that eval ran first
      read.push(readMs);
      bind.push(bindMs);
      prepare.push(prepareMs);
      const [rc, p2] = await _ms(async () =>
        compile(await parseOnnx(`${d}/${spec.file}`, { inputDims: DIMS[name] }), "ref")
      );
      // like the swap, the recompiled program runs its prepare step (weight packing, hoisted
      // transposes) in its first eval: count that step (only it: not the eval, nor the first
      // touch of the new program's memory, so the comparison does not favour the swap)
      await p2.eval(feeds);
      recompile.push(rc + programInternals(p2).lastPrepareMs);
      p2.dispose();
      const s = await ortNodeSession(`${d}/${spec.file}`, { intraOpThreads: 1 });
      ort.push(s.createMs);
      await s.release();
    }
    const swap = read.map((v, i) => v + bind[i] + prepare[i]);

    // a partial swap (one fine-tuned tensor, as an adapter merge would produce): bind + the
    // prepare work downstream of it only
    const sig = program.weightSignature();
    const mid = [...sig].sort((a, b) => a.byteLength - b.byteLength)[Math.floor(sig.length * 0.75)];
    // read just that tensor (a signature of one), held in memory like an adapter merge's output
    const partialSets = await Promise.all(
      dirs.map((d) => WeightSet.fromOnnxDir([mid], d, { partial: true })),
    );
    await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
    await program.eval(feeds);
    const partialMs: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const [bindMs] = await _ms(() => program.bindWeights(partialSets[(r + 1) % 2]));
      await program.eval(feeds);
      partialMs.push(bindMs + programInternals(program).lastPrepareMs);
    }

    // no inference penalty: deferred (bound) vs baked
    const baked = (await replaceOnnxExternalWeights(program, dirs[0], "ref")).finalize("ref");
    await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
    await program.eval(feeds);
    await baked.eval(feeds);
    const evDeferred: number[] = [], evBaked: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      evDeferred.push((await _ms(() => program.eval(feeds)))[0]);
      evBaked.push((await _ms(() => baked.eval(feeds)))[0]);
    }
    baked.dispose();
    program.dispose();

    const m = (xs: number[]) => _median(xs);
    _out();
    _out(
      `### ${name} (${(bytes / 1e6).toFixed(0)} MB of weights; compiled once in ${compileMs.toFixed(0)} ms)`,
    );
    _out();
    _out("| replace the weights by | median ms | vs kiln swap |");
    _out("|---|---|---|");
    _out(
      `| kiln swap: read ${m(read).toFixed(0)} + bind ${m(bind).toFixed(0)} + prepare ${
        m(prepare).toFixed(0)
      } | ${m(swap).toFixed(0)} | 1.00x |`,
    );
    _out(
      `| kiln full recompile (parse + compile + prepare with the new weights) | ${
        m(recompile).toFixed(0)
      } | ${(m(recompile) / m(swap)).toFixed(2)}x |`,
    );
    _out(
      `| kiln partial swap of one tensor ('${mid.name}', ${
        (mid.byteLength / 1e6).toFixed(1)
      } MB, in memory): ` +
        `bind + its prepare | ${m(partialMs).toFixed(1)} | ${(m(partialMs) / m(swap)).toFixed(3)}x |`,
    );
    _out(
      `| onnxruntime-node session re-creation (1 thread) | ${m(ort).toFixed(0)} | ${
        (m(ort) / m(swap)).toFixed(2)
      }x |`,
    );
    _out();
    _out(
      `Swap throughput: ${(bytes / 1e6 / (m(swap) / 1e3)).toFixed(0)} MB/s (read ${
        (bytes / 1e6 / (m(read) / 1e3)).toFixed(0)
      } MB/s).`,
    );
    _out();
    _out("| eval | median ms |");
    _out("|---|---|");
    _out(`| deferred weights, bound | ${m(evDeferred).toFixed(1)} |`);
    _out(`| baked | ${m(evBaked).toFixed(1)} |`);
    _out(`| ratio deferred / baked | **${(m(evDeferred) / m(evBaked)).toFixed(3)}** (bar: <= 1.05) |`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (!values["no-write"]) {
  const prev = await Deno.readTextFile(values.out!).catch(() => "# Benchmark results\n");
  await Deno.writeTextFile(values.out!, `${prev.trimEnd()}\n\n${lines.join("\n")}\n`);
  console.error(`bench/swap: appended to ${values.out}`);
}
