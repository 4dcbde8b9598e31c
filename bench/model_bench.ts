/**
 * One model, every engine: seeded weights into a temp dir, each engine set up and warmed up,
 * then timed in rounds of one run each in rotating order; kiln's outputs checked against
 * onnxruntime-node's; optionally onnxruntime-node's and kiln's per-op-type profiles.
 * @module
 */
import { cpuUsage } from "node:process";
import { join } from "node:path";
import { writeRandomWeights } from "../core/weights/random.ts";
import type { Tensor } from "../core/tensor.ts";
import { type KilnProgram, loadKiln } from "./kiln_api.ts";
import { type EngineId, type EngineResult, modelInput, type ModelReport, type ModelSpec } from "./models.ts";
import {
  type OpProfile,
  ortNodeOpProfile,
  ortNodeSession,
  ortWebSession,
  type PeerSession,
} from "./peers.ts";
import { errText, finiteCheck, median, relL2 } from "./util.ts";

/** A set-up engine: a peer session or a compiled kiln program. */
interface _Live {
  res: EngineResult;
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
  /** cumulative timed ms, for --max-seconds */
  spent: number;
  last?: Record<string, Tensor>;
  /** one eval timed node by node (kiln) */
  profile?(feeds: Record<string, Tensor>): Promise<{ op: string; ms: number }[]>;
}

export async function benchModel(
  name: string,
  spec: ModelSpec,
  opts: {
    modelsDir: string;
    seed: number;
    runs: number;
    warmup: number;
    maxSeconds: number;
    engines: Set<EngineId>;
    keepWeights: boolean;
    profile: boolean;
    /** core builds to run kiln with ("auto", "relaxed", "simd"), one kiln row each */
    kilnCores: string[];
    /** kiln runs on 1 thread and on this many (one row each); onnxruntime-web on this many */
    threads: number;
  },
): Promise<ModelReport> {
  const src = join(opts.modelsDir, spec.file);
  try {
    await Deno.stat(src);
  } catch {
    console.log(`[bench] ${name}: ${src} is absent, skipped`);
    return { model: name, weightsMs: 0, weightBytes: 0, results: [], skipped: `${src} absent` };
  }
  const dir = await Deno.makeTempDir({ prefix: `kiln-bench-${name}-` });
  const live: _Live[] = [];
  try {
    const t0 = performance.now();
    const written = await writeRandomWeights(src, dir, { seed: opts.seed });
    const weightsMs = performance.now() - t0;
    const weightBytes = written.files.reduce((a, f) => a + f.bytes, 0);
    console.log(
      `[bench] ${name}: wrote ${(weightBytes / 1e6).toFixed(1)} MB of seeded weights in ${
        weightsMs.toFixed(0)
      } ms`,
    );
    const modelPath = written.modelPath;
    const feeds = { [spec.input.name]: modelInput(spec, opts.seed) };
    const results: EngineResult[] = [];

    // 1. set up every engine and run its warm-up runs
    const setUp = async (
      id: EngineId,
      make: (res: EngineResult) => Promise<Omit<_Live, "res" | "spent">>,
    ) => {
      const res: EngineResult = { id, name: id, times: [], cpu: [], notes: [] };
      results.push(res);
      try {
        const l: _Live = { ...(await make(res)), res, spent: 0 };
        live.push(l);
        console.log(
          `[bench] ${name}: ${res.name}: set up in ${res.setupMs?.toFixed(0)} ms (${res.setupNote})`,
        );
        for (let i = 0; i < opts.warmup; i++) {
          const w0 = performance.now();
          l.last = await l.run(feeds);
          if (i === 0) res.firstMs = performance.now() - w0;
        }
      } catch (e) {
        res.error = errText(e);
        console.log(`[bench] ${name}: ${res.name} failed: ${res.error}`);
      }
    };
    const peer = (make: () => Promise<PeerSession>) => async (res: EngineResult) => {
      const s = await make();
      res.name = s.name;
      res.setupMs = s.createMs;
      res.setupNote = "session create";
      return { run: (f: Record<string, Tensor>) => s.run(f), release: () => s.release() };
    };
    if (opts.engines.has("ort-node")) {
      await setUp("ort-node", peer(() => ortNodeSession(modelPath, { intraOpThreads: 1 })));
    }
    if (opts.engines.has("ort-node-default")) {
      await setUp("ort-node-default", peer(() => ortNodeSession(modelPath, { intraOpThreads: 0 })));
    }
    if (opts.engines.has("ort-web")) {
      await setUp("ort-web", async (res) => {
        res.threads = opts.threads;
        return await peer(() => ortWebSession(modelPath, opts.threads))(res);
      });
    }
    if (opts.engines.has("kiln")) {
      for (const v of opts.kilnCores) {
        for (const t of opts.threads > 1 ? [1, opts.threads] : [1]) {
          await setUp("kiln", (res) => _setUpKiln(modelPath, spec, res, v, t));
        }
      }
    }

    // 2. timed runs in rounds: one run of each engine per round, the order rotating, so that
    // changes in the machine's load hit every engine alike
    for (let round = 0; round < opts.runs; round++) {
      for (let k = 0; k < live.length; k++) {
        const l = live[(round + k) % live.length];
        if (l.res.error || l.spent > opts.maxSeconds * 1000) continue;
        try {
          const c0 = cpuUsage();
          const r0 = performance.now();
          l.last = await l.run(feeds);
          const ms = performance.now() - r0;
          const c = cpuUsage(c0);
          l.res.times.push(ms);
          l.res.cpu.push((c.user + c.system) / 1000);
          l.spent += ms;
        } catch (e) {
          l.res.error = errText(e);
          console.log(`[bench] ${name}: ${l.res.name} failed: ${l.res.error}`);
        }
      }
    }
    for (const l of live) {
      if (l.res.times.length < opts.runs && !l.res.error) {
        l.res.notes.push(
          `stopped after ${l.res.times.length} of ${opts.runs} runs (--max-seconds ${opts.maxSeconds})`,
        );
      }
    }

    // 3. outputs against onnxruntime-node (1 thread)
    const reference = live.find((l) => l.res.id === "ort-node" && !l.res.error)?.last;
    if (reference) {
      const bad = finiteCheck(reference);
      if (bad) live.find((l) => l.res.id === "ort-node")!.res.notes.push(`reference not finite: ${bad}`);
    }
    for (const l of live) {
      if (l.res.id === "ort-node" || !l.last) continue;
      if (!reference) {
        if (l.res.id === "kiln") l.res.notes.push("outputs unchecked (ort-node did not run)");
        continue;
      }
      const d = relL2(l.last, reference);
      l.res.relL2 = d.value;
      if (d.note) l.res.notes.push(d.note);
    }
    for (const r of results) {
      if (r.times.length) console.log(`[bench] ${name}: ${r.name}: median ${median(r.times).toFixed(1)} ms`);
    }
    const kilnProfiles: { who: string; profile: OpProfile }[] = [];
    if (opts.profile) {
      for (const l of live) {
        if (!l.profile || l.res.error) continue;
        try {
          kilnProfiles.push({
            who: `${l.res.name} (wall time per node on the main thread)`,
            profile: await _profileRuns(l, feeds, 3),
          });
        } catch (e) {
          console.log(`[bench] ${name}: ${l.res.name} profile failed: ${errText(e)}`);
        }
      }
    }
    for (const l of live.splice(0)) await l.release();

    let ortProfile: OpProfile | undefined;
    if (opts.profile) {
      try {
        ortProfile = await ortNodeOpProfile(modelPath, feeds, 3);
      } catch (e) {
        console.log(`[bench] ${name}: onnxruntime-node profile failed: ${errText(e)}`);
      }
    }
    return { model: name, weightsMs, weightBytes, results, ortProfile, kilnProfiles };
  } finally {
    for (const l of live) await l.release();
    if (opts.keepWeights) console.log(`[bench] ${name}: weights kept in ${dir}`);
    else await Deno.remove(dir, { recursive: true });
  }
}

/** Time per op type over `runs` profiled evals of `l`. */
async function _profileRuns(l: _Live, feeds: Record<string, Tensor>, runs: number): Promise<OpProfile> {
  const byOp = new Map<string, { ms: number; count: number }>();
  for (let i = 0; i < runs; i++) {
    for (const n of await l.profile!(feeds)) {
      const o = byOp.get(n.op) ?? { ms: 0, count: 0 };
      o.ms += n.ms;
      o.count++;
      byOp.set(n.op, o);
    }
  }
  return { byOp, runs };
}

/** Parses and compiles the model with kiln (setup time, program info and pass timings into `res`). */
async function _setUpKiln(
  modelPath: string,
  spec: ModelSpec,
  res: EngineResult,
  variant: string,
  threads: number,
): Promise<Omit<_Live, "res" | "spent">> {
  const kiln = await loadKiln();
  const core = variant === "auto" ? (kiln.variants()[0] ?? "wasm") : variant;
  res.name = `kiln (ref, ${core} core, 1 thread)`;
  res.threads = 1;
  const t0 = performance.now();
  const model = await kiln.parseOnnx(modelPath, { inputDims: { [spec.input.name]: spec.input.dims } });
  const t1 = performance.now();
  let program: KilnProgram;
  kiln.useVariant(variant);
  try {
    program = kiln.compile(model, "ref", { timings: true, validate: false, threads });
  } finally {
    kiln.useVariant("auto");
  }
  const t2 = performance.now();
  res.setupMs = t2 - t0;
  res.setupNote = `parse ${(t1 - t0).toFixed(0)} + compile ${(t2 - t1).toFixed(0)}`;
  try {
    const info = program.info();
    // the threaded build has relaxed SIMD: its row says "threads core" and the threads it got
    if (info.threads > 1) res.name = `kiln (ref, threads core, ${info.threads} threads)`;
    res.threads = info.threads;
    if (threads > 1 && info.threads === 1) {
      res.notes.push(`asked for ${threads} threads, runs on one (no shared memory)`);
    }
    res.notes.push(
      `${info.instructionCount} instructions after ${info.passes.join(", ")}; ` +
        `arena ${(info.arenaBytes / 1e6).toFixed(1)} MB, ${info.literalCount} literals ${
          (info.literalBytes / 1e6).toFixed(1)
        } MB`,
    );
  } catch (e) {
    res.notes.push(`info() failed: ${errText(e)}`);
  }
  const passes = [...(program.passTimings ?? [])].sort((a, b) => b.ms - a.ms).slice(0, 4);
  if (passes.length) {
    res.notes.push(`slowest passes: ${passes.map((p) => `${p.pass} ${p.ms.toFixed(0)} ms`).join(", ")}`);
  }
  return {
    run: (f) => program.eval(f),
    profile: async (f) => (await program.profile(f)).nodes,
    release: () => {
      program.dispose();
      return Promise.resolve();
    },
  };
}
