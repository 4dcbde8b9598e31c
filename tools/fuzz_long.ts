/**
 * The long fuzz run, outside CI: the fuzzers of tests/util/fuzz.ts (the ones tests/fuzz_test.ts
 * runs a few thousand cases of) for 100,000+ cases, one parser after another, each in a worker
 * watched for hangs. Reports every finding: an exception other than a KilnError, a KilnError that
 * does not name the file, a valid file refused, an invalid one accepted, a tensor other than the
 * bytes say, a case that stops making progress (a hang) or kills its worker (a crash).
 *
 *   deno run -A tools/fuzz_long.ts                       # the default plan (see PLAN below)
 *   deno run -A tools/fuzz_long.ts npy-headers=50000:7 onnx-models=20000:3
 *   deno run -A tools/fuzz_long.ts --hang-s 60 --json report.json PARSER=CASES[:SEED][@FIRST] ...
 *
 * Case i of a parser is reproducible alone: `PARSER=1:SEED@i` re-runs it. Exit status 1 when
 * anything was found. `watchdog-selftest=8` checks the watchdog (its case 2 hangs, case 5
 * crashes: two findings). See docs/fuzzing.md.
 * @module
 */
import { parseArgs } from "node:util";
import type { FuzzReport } from "../tests/util/fuzz.ts";

/** The default plan: cases and seed per parser (520,000 cases, a few minutes on one core). */
const PLAN: [string, number, number][] = [
  ["onnx-models", 50_000, 101],
  ["program-files", 20_000, 102],
  ["ir-sections", 30_000, 103],
  ["safetensors-files", 20_000, 104],
  ["safetensors-headers", 200_000, 105],
  ["npy-headers", 200_000, 106],
];

interface Job {
  parser: string;
  cases: number;
  seed: number;
  first: number;
}

interface JobResult extends FuzzReport {
  first: number;
  wallS: number;
  slowest: { case: number; ms: number };
  workers: number;
}

const inWorker = "WorkerGlobalScope" in globalThis;

if (inWorker) {
  // a worker runs one job and posts its report; the heartbeat says which case it is in
  const self_ = globalThis as unknown as {
    onmessage: (e: MessageEvent) => void;
    postMessage: (m: unknown) => void;
  };
  self_.onmessage = async (e: MessageEvent) => {
    const { job, heartbeat } = e.data as { job: Job; heartbeat: SharedArrayBuffer };
    const hb = new Int32Array(heartbeat);
    const { FUZZERS } = await import("../tests/util/fuzz.ts");
    if (job.parser === "watchdog-selftest") {
      // checks the watchdog itself: case 2 hangs, case 5 kills its worker, the others pass
      for (let i = job.first; i < job.first + job.cases; i++) {
        Atomics.store(hb, 0, i);
        if (i === 2) { for (;;) { /* a hang */ } }
        if (i === 5) {
          setTimeout(() => {
            throw new Error("a crash");
          });
        }
        if (i === 5) await new Promise((r) => setTimeout(r, 1000));
      }
      const n = job.cases;
      self_.postMessage({
        report: { parser: job.parser, seed: job.seed, cases: n, loaded: n, refused: 0, findings: [] },
        slowest: { case: -1, ms: 0 },
      });
      return;
    }
    let last = performance.now();
    let slowest = { case: -1, ms: 0 };
    const report = await FUZZERS[job.parser]({
      seed: job.seed,
      cases: job.cases,
      first: job.first,
      onCase: (i) => {
        const now = performance.now();
        if (i > job.first && now - last > slowest.ms) slowest = { case: i - 1, ms: now - last };
        last = now;
        Atomics.store(hb, 0, i);
        Atomics.add(hb, 1, 1);
      },
    });
    const now = performance.now();
    if (now - last > slowest.ms) slowest = { case: job.first + job.cases - 1, ms: now - last };
    self_.postMessage({ report, slowest });
  };
} else if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { "hang-s": { type: "string", default: "30" }, json: { type: "string" } },
  });
  const hangMs = Number(values["hang-s"]) * 1000;
  const jobs: Job[] = positionals.length
    ? positionals.map((spec) => {
      const m = /^([a-z-]+)=(\d+)(?::(\d+))?(?:@(\d+))?$/.exec(spec);
      if (!m) throw new Error(`Bad job '${spec}': expected PARSER=CASES[:SEED][@FIRST]`);
      return { parser: m[1], cases: Number(m[2]), seed: Number(m[3] ?? 1), first: Number(m[4] ?? 0) };
    })
    : PLAN.map(([parser, cases, seed]) => ({ parser, cases, seed, first: 0 }));
  const { FUZZERS } = await import("../tests/util/fuzz.ts");
  for (const j of jobs) {
    if (!FUZZERS[j.parser] && j.parser !== "watchdog-selftest") {
      throw new Error(`Unknown parser '${j.parser}' (${Object.keys(FUZZERS).join(", ")})`);
    }
  }
  const started = new Date();
  const t0 = performance.now();
  const results: JobResult[] = [];
  for (const job of jobs) results.push(await runJob(job, hangMs));
  const wallS = (performance.now() - t0) / 1000;
  const total = results.reduce((a, r) => a + r.cases, 0);
  const findings = results.flatMap((r) => r.findings);
  console.log(`\nkiln long fuzz run, ${started.toISOString()}, ${Deno.build.os}/${Deno.build.arch}`);
  console.log("| parser | seed | cases | loaded | refused | findings | wall s | slowest case |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---|");
  for (const r of results) {
    console.log(
      `| ${r.parser} | ${r.seed} | ${r.cases} | ${r.loaded} | ${r.refused} | ${r.findings.length} | ${
        r.wallS.toFixed(1)
      } | #${r.slowest.case}: ${r.slowest.ms.toFixed(0)} ms |`,
    );
  }
  console.log(`| all | | ${total} | | | ${findings.length} | ${wallS.toFixed(1)} | |`);
  for (const f of findings) console.log(`FINDING ${f}`);
  if (values.json) {
    await Deno.writeTextFile(
      values.json,
      JSON.stringify({ started: started.toISOString(), wallS, total, results }, null, 2) + "\n",
    );
  }
  Deno.exit(findings.length ? 1 : 0);
}

/** Runs a job in workers: a worker whose case makes no progress for `hangMs` (or that dies) is a finding; the job resumes after that case. */
async function runJob(job: Job, hangMs: number): Promise<JobResult> {
  const t0 = performance.now();
  const out: JobResult = {
    parser: job.parser,
    seed: job.seed,
    cases: 0,
    loaded: 0,
    refused: 0,
    findings: [],
    first: job.first,
    wallS: 0,
    slowest: { case: -1, ms: 0 },
    workers: 0,
  };
  let first = job.first;
  const end = job.first + job.cases;
  while (first < end) {
    out.workers++;
    const heartbeat = new SharedArrayBuffer(8);
    const hb = new Int32Array(heartbeat);
    Atomics.store(hb, 0, first);
    const w = new Worker(import.meta.url, { type: "module" });
    const r = await new Promise<{ report: FuzzReport; slowest: { case: number; ms: number } } | string>(
      (resolve) => {
        let seen = first, seenAt = performance.now();
        const watch = setInterval(() => {
          const now = Atomics.load(hb, 0);
          if (now !== seen) [seen, seenAt] = [now, performance.now()];
          else if (performance.now() - seenAt > hangMs) finish(`no progress for ${hangMs / 1000} s (a hang)`);
        }, 250);
        const finish = (v: { report: FuzzReport; slowest: { case: number; ms: number } } | string) => {
          clearInterval(watch);
          w.terminate();
          resolve(v);
        };
        w.onmessage = (e) => finish(e.data);
        w.onerror = (e) => {
          e.preventDefault();
          finish(`the worker died: ${e.message}`);
        };
        w.postMessage({ job: { ...job, first, cases: end - first }, heartbeat });
      },
    );
    if (typeof r === "string") {
      const at = Atomics.load(hb, 0);
      out.findings.push(`${job.parser} seed ${job.seed} case ${at}: ${r}`);
      out.cases += at - first + 1;
      first = at + 1;
      continue;
    }
    out.cases += r.report.cases;
    out.loaded += r.report.loaded;
    out.refused += r.report.refused;
    out.findings.push(...r.report.findings);
    if (r.slowest.ms > out.slowest.ms) out.slowest = r.slowest;
    first = end;
  }
  out.wallS = (performance.now() - t0) / 1000;
  console.log(
    `${job.parser}: ${out.cases} cases (seed ${job.seed}), ${out.loaded} loaded, ${out.refused} refused, ${out.findings.length} findings, ${
      out.wallS.toFixed(1)
    } s`,
  );
  return out;
}
