/**
 * The weight-replacement benchmark (`deno task bench:swap`), in one run, side by side:
 *
 * - swap: a program compiled once with deferred weights binds a new weight set: the set checks
 *   the ONNX external-data directory's ranges (no tensor is read), the bind reads each range
 *   straight into a staging region in the core's memory (a packed-only weight: in chunks of whole
 *   KC-row blocks; on a threaded core the workers pack each chunk while this thread reads the next,
 *   docs/internals.md "Packed-only weights"; beside it the same swap with each chunk packed after
 *   its read, on this thread), compares it with the
 *   bound tensor and switches the changed ones in (read / pack / compare / switch reported apart,
 *   and GB/s); the first eval after it also runs the hoisted weight-only nodes, reported as
 *   "prepare", timed inside the program; beside it, the same swap with every weight stored raw and
 *   packed in the prepare step (`refStaging.packedOnly = false`, the path before packed-only);
 * - compile with the weights: parse the model with the new weights (large initializers stay
 *   file ranges) and compile from scratch (the core reads them into place, packing the packed-only
 *   ones), plus the prepare step its first eval runs (timed the same way), beside the deferred
 *   compile of the same graph and the compile with every weight stored raw (each starts on the
 *   memory of the last program disposed, docs/internals.md "Memory reuse"); and a process's first
 *   program: the compile with the weights in a fresh process (fresh memory) against
 *   onnxruntime-node's first session in a fresh process (bench/first_compile.ts);
 * - partial swap: one mid-sized tensor, in memory and from a safetensors file: its bind and the
 *   prepare work downstream of it;
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
import { writeSafetensors } from "../core/weights/safetensors.ts";
import { ortNodeSession } from "./peers.ts";
import { programInternals } from "../core/program.ts";
import { refStaging } from "../core/targets/ref.ts";
import { median, timed } from "./util.ts";

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

const lines: string[] = [];
function _out(s = ""): void {
  console.log(s);
  lines.push(s);
}

/** The 1, 5 and 15-minute load averages (other work on the machine skews the timings). */
function _load(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" / ");
  } catch {
    return "unknown";
  }
}

/** What reading `bytes` of weights adds to a compile that takes `ms` longer with them than without. */
function _weightsAdd(ms: number, bytes: number): string {
  if (ms <= 0.5) return `the weights add nothing measurable (${ms.toFixed(0)} ms)`;
  return `the weights add ${ms.toFixed(0)} ms (${(bytes / ms / 1e6).toFixed(2)} GB/s)`;
}

/** Runs bench/first_compile.ts in a fresh process; its JSON line. */
async function _firstCompile(args: string[]): Promise<Record<string, number>> {
  const script = new URL("./first_compile.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stderr: "inherit",
  })
    .output();
  if (!out.success) throw new Error(`bench/first_compile.ts ${args.join(" ")} failed`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
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
    `medians of ${RUNS} runs; seeded weight sets written by core/weights/random.ts (page cache warm); ` +
    `load average at the start ${_load()}.`,
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
    let threads = 1;

    const [compileMs, program] = await timed(async () =>
      compile(
        await parseOnnx(sets[0].modelPath, { deferExternalWeights: true, inputDims: DIMS[name] }),
        "ref",
      )
    );
    await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
    await program.eval(feeds);
    // the same program with every weight stored raw and packed in the prepare step (the path
    // before packed-only weights), swapped and recompiled beside it
    refStaging.packedOnly = false;
    const rawProgram = compile(
      await parseOnnx(sets[0].modelPath, { deferExternalWeights: true, inputDims: DIMS[name] }),
      "ref",
    );
    refStaging.packedOnly = true;
    await rawProgram.bindWeights(await WeightSet.fromOnnxDir(rawProgram, dirs[0]));
    await rawProgram.eval(feeds);
    const rawSwap: number[] = [], rawRecompile: number[] = [];

    // the swap: the set (file ranges checked: no tensor read), then the bind (each range read
    // straight into the core's staging region, compared with the bound tensor, switched), then
    // the prepare step the next eval runs
    const setMs: number[] = [], bind: number[] = [], prepare: number[] = [];
    const readMs: number[] = [], packMs: number[] = [], compareMs: number[] = [], switchMs: number[] = [];
    const recompile: number[] = [], parseMs: number[] = [], compileOnlyMs: number[] = [];
    const recompilePrepare: number[] = [], deferredCompile: number[] = [], ort: number[] = [];
    const freshRecompile: number[] = [],
      freshOrt: number[] = [],
      afterReadSwap: number[] = [],
      afterReadPackMs: number[] = [];
    let copied = 0;
    for (let r = 0; r < RUNS; r++) {
      const d = dirs[(r + 1) % 2];
      const [sMs, set] = await timed(() => WeightSet.fromOnnxDir(program, d));
      const [bindMs, rep] = await timed(() => program.bindWeights(set));
      await program.eval(feeds);
      const prepareMs = programInternals(program).lastPrepareMs; // the prepare step that eval ran first
      setMs.push(sMs);
      bind.push(bindMs);
      prepare.push(prepareMs);
      readMs.push(rep.staging?.readMs ?? NaN);
      packMs.push(rep.staging?.packMs ?? 0);
      compareMs.push(rep.staging?.compareMs ?? NaN);
      switchMs.push(rep.staging?.switchMs ?? NaN);
      copied = rep.bytesCopied;
      // the same swap with each staged chunk packed after its read, on this thread
      // (refStaging.pipelinePack false; by default, on a threaded core, the workers pack a chunk while
      // this thread reads the next), to the other set and back (the back swap not timed)
      refStaging.pipelinePack = false;
      try {
        const [s1Ms, set1] = await timed(() => WeightSet.fromOnnxDir(program, dirs[r % 2]));
        const [b1Ms, rep1] = await timed(() => program.bindWeights(set1));
        await program.eval(feeds);
        afterReadSwap.push(s1Ms + b1Ms + programInternals(program).lastPrepareMs);
        afterReadPackMs.push(rep1.staging?.packMs ?? 0);
      } finally {
        refStaging.pipelinePack = true;
      }
      await program.bindWeights(await WeightSet.fromOnnxDir(program, d));
      // compile with the weights: parse (large initializers stay file ranges), compile (the core
      // reads them into place at finalize), and the prepare step its first eval runs (timed the same
      // way as the swap's: not the eval, nor the first touch of the new program's memory)
      const [pMs, model] = await timed(() => parseOnnx(`${d}/${spec.file}`, { inputDims: DIMS[name] }));
      const [cMs, p2] = await timed(() => compile(model, "ref"));
      await p2.eval(feeds);
      parseMs.push(pMs);
      compileOnlyMs.push(cMs);
      recompilePrepare.push(programInternals(p2).lastPrepareMs);
      recompile.push(pMs + cMs + programInternals(p2).lastPrepareMs);
      p2.dispose();
      // the same graph compiled with deferred weights: what the weights add is the difference
      const [dMs, p3] = await timed(async () =>
        compile(
          await parseOnnx(`${d}/${spec.file}`, { deferExternalWeights: true, inputDims: DIMS[name] }),
          "ref",
        )
      );
      deferredCompile.push(dMs);
      p3.dispose();

      // the raw path: swap, then compile with the weights
      {
        const [sMs2, set2] = await timed(() => WeightSet.fromOnnxDir(rawProgram, d));
        const [bMs2] = await timed(() => rawProgram.bindWeights(set2));
        await rawProgram.eval(feeds);
        rawSwap.push(sMs2 + bMs2 + programInternals(rawProgram).lastPrepareMs);
        refStaging.packedOnly = false;
        try {
          const [pMs2, model2] = await timed(() => parseOnnx(`${d}/${spec.file}`, { inputDims: DIMS[name] }));
          const [cMs2, p4] = await timed(() => compile(model2, "ref"));
          await p4.eval(feeds);
          rawRecompile.push(pMs2 + cMs2 + programInternals(p4).lastPrepareMs);
          p4.dispose();
        } finally {
          refStaging.packedOnly = true;
        }
      }
      const s = await ortNodeSession(`${d}/${spec.file}`, { intraOpThreads: 1 });
      ort.push(s.createMs);
      await s.release();
    }
    const swap = setMs.map((v, i) => v + bind[i] + prepare[i]);
    const swapNoPrepare = setMs.map((v, i) => v + bind[i]);

    // partial swaps: one mid-sized tensor (as an adapter merge would produce), from memory and from
    // a safetensors file (read at bind straight into the core); bind + the prepare work downstream of it
    const sig = program.weightSignature();
    const mid = [...sig].sort((a, b) => a.byteLength - b.byteLength)[Math.floor(sig.length * 0.75)];
    const partialSets = await Promise.all(
      dirs.map((d) => WeightSet.fromOnnxDir([mid], d, { partial: true })),
    );
    const oneFiles = await Promise.all(dirs.map(async (_d, i) => {
      const path = `${tmp}/one_v${i + 1}.safetensors`;
      await writeSafetensors(path, [...partialSets[i].tensors.values()]);
      return path;
    }));
    await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
    await program.eval(feeds);
    const partialMs: number[] = [], partialFileMs: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const [bindMs] = await timed(() => program.bindWeights(partialSets[(r + 1) % 2]));
      await program.eval(feeds);
      partialMs.push(bindMs + programInternals(program).lastPrepareMs);
    }
    for (let r = 0; r < RUNS; r++) {
      const [fMs] = await timed(async () =>
        program.bindWeights(await WeightSet.fromSafetensors(program, oneFiles[r % 2], { partial: true }))
      );
      await program.eval(feeds);
      partialFileMs.push(fMs + programInternals(program).lastPrepareMs);
    }

    // no inference penalty: deferred (bound) vs baked
    const baked = (await replaceOnnxExternalWeights(program, dirs[0], "ref")).finalize("ref");
    await program.bindWeights(await WeightSet.fromOnnxDir(program, dirs[0]));
    await program.eval(feeds);
    await baked.eval(feeds);
    const evDeferred: number[] = [], evBaked: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      evDeferred.push((await timed(() => program.eval(feeds)))[0]);
      evBaked.push((await timed(() => baked.eval(feeds)))[0]);
    }
    // a process's first program: the compile with the weights in a fresh process (the core's memory
    // fresh, each page faulted in at its first write), against onnxruntime-node's first session in
    // a fresh process, alternating (bench/first_compile.ts); in this process a garbage collection
    // dropping the memories of the programs above would land in these timings
    for (let r = 0; r < RUNS; r++) {
      const model = `${dirs[r % 2]}/${spec.file}`;
      const dims = Object.entries(DIMS[name]).map(([k, v]) => `${k}=${v.join(",")}`).join(";");
      const k = await _firstCompile(["--model", model, "--dims", dims]);
      freshRecompile.push(k.parseMs + k.compileMs + k.prepareMs);
      freshOrt.push((await _firstCompile(["--engine", "ort", "--model", model])).createMs);
    }
    baked.dispose();
    threads = program.info().threads;
    program.dispose();
    rawProgram.dispose();

    const m = (xs: number[]) => median(xs);
    const gbs = (n: number, ms: number) => (n / 1e9 / (ms / 1e3)).toFixed(2);
    _out();
    _out(
      `### ${name} (${(bytes / 1e6).toFixed(0)} MB of weights; compiled once with deferred weights in ${
        compileMs.toFixed(0)
      } ms)`,
    );
    _out();
    _out("| replace the weights by | median ms | GB/s | vs kiln swap |");
    _out("|---|---|---|---|");
    _out(
      `| **kiln swap**: set ${m(setMs).toFixed(1)} (ranges checked) + bind ${
        m(bind).toFixed(0)
      } (read into the core ${m(readMs).toFixed(0)}, pack from the staged chunks ${m(packMs).toFixed(0)}${
        threads > 1 ? " beyond the reads" : ""
      }, compare ${m(compareMs).toFixed(1)}, switch ${m(switchMs).toFixed(0)}) + prepare ${
        m(prepare).toFixed(0)
      } | **${m(swap).toFixed(0)}** | ${gbs(bytes, m(swap))} | 1.00x |`,
    );
    _out(
      `| kiln swap with each staged chunk packed after its read, on this thread (pack ${
        m(afterReadPackMs).toFixed(0)
      }; the row above: ${
        threads > 1
          ? `the workers pack each chunk while this thread reads the next`
          : "the same, on one thread"
      }) | ${m(afterReadSwap).toFixed(0)} | ${gbs(bytes, m(afterReadSwap))} | ${
        (m(afterReadSwap) / m(swap)).toFixed(2)
      }x |`,
    );
    _out(
      `| kiln swap with every weight stored raw and packed in the prepare step (the path before packed-only weights) | ${
        m(rawSwap).toFixed(0)
      } | ${gbs(bytes, m(rawSwap))} | ${(m(rawSwap) / m(swap)).toFixed(2)}x |`,
    );
    _out(
      `| kiln swap without the prepare step (set + bind: the bytes in place) | ${
        m(swapNoPrepare).toFixed(0)
      } | ${gbs(bytes, m(swapNoPrepare))} (read alone: ${gbs(bytes, m(readMs))}) | ${
        (m(swapNoPrepare) / m(swap)).toFixed(2)
      }x |`,
    );
    _out(
      `| kiln partial swap of one tensor ('${mid.name}', ${
        (mid.byteLength / 1e6).toFixed(1)
      } MB, in memory): ` +
        `bind + its prepare | ${m(partialMs).toFixed(1)} | | ${(m(partialMs) / m(swap)).toFixed(3)}x |`,
    );
    _out(
      `| kiln partial swap of the same tensor from a safetensors file: set + bind + its prepare | ${
        m(partialFileMs).toFixed(1)
      } | | ${(m(partialFileMs) / m(swap)).toFixed(3)}x |`,
    );
    _out(
      `| kiln compile with the weights: parse ${m(parseMs).toFixed(0)} + compile ${
        m(compileOnlyMs).toFixed(0)
      } (weights read into place, packed-only ones packed) + prepare ${m(recompilePrepare).toFixed(0)} | ${
        m(recompile).toFixed(0)
      } | | ${(m(recompile) / m(swap)).toFixed(2)}x |`,
    );
    _out(
      `| kiln compile with the weights, every weight stored raw and packed in the prepare step | ${
        m(rawRecompile).toFixed(0)
      } | | ${(m(rawRecompile) / m(swap)).toFixed(2)}x |`,
    );
    _out(
      `| kiln compile with the weights as a process's first program (fresh memory; the rows above start on the memory of the last program disposed) | ${
        m(freshRecompile).toFixed(0)
      } | | ${(m(freshRecompile) / m(swap)).toFixed(2)}x |`,
    );
    _out(
      `| onnxruntime-node session re-creation (1 thread) | ${m(ort).toFixed(0)} | | ${
        (m(ort) / m(swap)).toFixed(2)
      }x |`,
    );
    _out();
    _out(
      `- Swap: ${(copied / 1e6).toFixed(0)} MB copied per swap; onnxruntime-node's re-creation takes ` +
        `**${(m(ort) / m(swap)).toFixed(1)}x** the swap (${
          (m(ort) / m(swapNoPrepare)).toFixed(1)
        }x the swap without its prepare step; ${
          (m(ort) / m(rawSwap)).toFixed(1)
        }x the swap with every weight stored raw).`,
    );
    _out(
      `- Compile with weights: **${
        (m(recompile) / m(ort)).toFixed(2)
      }x** onnxruntime-node's session creation ` +
        `(${(m(parseMs) + m(compileOnlyMs)).toFixed(0)} ms without the prepare step: ${
          ((m(parseMs) + m(compileOnlyMs)) / m(ort)).toFixed(2)
        }x); the same graph with deferred weights parses and compiles in ${
          m(deferredCompile).toFixed(0)
        } ms, so ${
          _weightsAdd(m(parseMs) + m(compileOnlyMs) - m(deferredCompile), bytes)
        }. With every weight stored raw: ${(m(rawRecompile) / m(ort)).toFixed(2)}x. As a process's first ` +
        `program (fresh processes, alternating): kiln ${
          m(freshRecompile).toFixed(0)
        } ms against onnxruntime-node's ` +
        `first session ${m(freshOrt).toFixed(0)} ms: **${(m(freshRecompile) / m(freshOrt)).toFixed(2)}x**.`,
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

_out();
_out(`Load average at the end: ${_load()}.`);

if (!values["no-write"]) {
  const prev = await Deno.readTextFile(values.out!).catch(() => "# Benchmark results\n");
  await Deno.writeTextFile(values.out!, `${prev.trimEnd()}\n\n${lines.join("\n")}\n`);
  // keep the file as `deno fmt` wants it (the gate runs `deno fmt --check`)
  const fmt = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", values.out!],
    stdout: "null",
  })
    .output();
  if (!fmt.success) console.error(`bench/swap: deno fmt ${values.out} failed`);
  console.error(`bench/swap: appended to ${values.out}`);
}
