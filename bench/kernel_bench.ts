/**
 * Timing the kernel cases (`--kernels`) in kiln, onnxruntime-web and onnxruntime-node (median
 * process CPU time), and their table in the report.
 * @module
 */
import { cpuUsage } from "node:process";
import type { Tensor } from "../core/tensor.ts";
import { caseModel, type KernelCase } from "./kernel_cases.ts";
import { type KilnApi, type KilnProgram, loadKiln } from "./kiln_api.ts";
import { type EngineId, REL_L2_TOLERANCE } from "./models.ts";
import { ortNodeSession, ortWebSession, type PeerSession } from "./peers.ts";
import { errText, fmtMs, median, relL2 } from "./util.ts";

export interface KernelResult {
  c: KernelCase;
  kilnMs?: number;
  webMs?: number;
  nodeMs?: number;
  relL2?: number;
  error?: string;
}

/** Median process CPU time (user + system) of `runs` runs after one warm-up, ms. */
async function _medianCpuOf(run: () => Promise<unknown>, runs: number): Promise<number> {
  await run();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = cpuUsage();
    await run();
    const c = cpuUsage(c0);
    ts.push((c.user + c.system) / 1000);
  }
  return median(ts);
}

export async function benchKernels(cases: KernelCase[], runs: number, seed: number, engines: Set<EngineId>) {
  const out: KernelResult[] = [];
  let kiln: KilnApi | undefined;
  let kilnError = "";
  try {
    if (engines.has("kiln")) kiln = await loadKiln();
  } catch (e) {
    kilnError = errText(e);
  }
  for (const c of cases) {
    const res: KernelResult = { c };
    out.push(res);
    const { bytes, feeds } = caseModel(c, seed);
    let ref: Record<string, Tensor> | undefined;
    const errs: string[] = [];
    for (
      const [id, make] of [["ort-node", () => ortNodeSession(bytes)], [
        "ort-web",
        () => ortWebSession(bytes),
      ]] as const
    ) {
      if (!engines.has(id)) continue;
      let s: PeerSession | undefined;
      try {
        s = await make();
        const ms = await _medianCpuOf(async () => {
          const o = await s!.run(feeds);
          if (id === "ort-node") ref = o;
        }, runs);
        if (id === "ort-node") res.nodeMs = ms;
        else res.webMs = ms;
      } catch (e) {
        errs.push(`${id}: ${errText(e)}`);
      } finally {
        await s?.release();
      }
    }
    if (kiln) {
      let program: KilnProgram | undefined;
      try {
        program = kiln.compile(await kiln.parseOnnx(bytes, {}), "ref", { validate: false });
        let got: Record<string, Tensor> = {};
        const p = program;
        res.kilnMs = await _medianCpuOf(async () => {
          got = await p.eval(feeds);
        }, runs);
        if (ref) res.relL2 = relL2(got, ref).value;
      } catch (e) {
        errs.push(`kiln: ${errText(e)}`);
      } finally {
        program?.dispose();
      }
    } else if (engines.has("kiln")) {
      errs.push(`kiln: ${kilnError}`);
    }
    if (errs.length) res.error = errs.join("; ");
    console.log(
      `[bench] kernel ${c.label}: kiln ${fmtMs(res.kilnMs, 2)} ms, ort-web ${fmtMs(res.webMs, 2)} ms, ` +
        `ort-node ${fmtMs(res.nodeMs, 2)} ms${res.error ? ` (${res.error})` : ""}`,
    );
  }
  return out;
}

export function kernelTable(results: KernelResult[], runs: number, kilnCore: string): string[] {
  const gf = (flops: number, ms?: number) => (ms && flops ? (flops / ms / 1e6).toFixed(1) : "–");
  const lines = [
    `### kernels (one-node models, median CPU time of ${runs} runs after a warm-up)`,
    "",
    `kiln runs its ${kilnCore} core here.`,
    "Times are process CPU time (user + system) per run, all engines single-threaded, so other load on",
    'the machine disturbs them less than wall time. GFLOP/s count 2 per multiply-add. "× count" is kiln\'s time for the case times the number of',
    "such nodes in the graph: a rough share of kiln's whole-model time.",
    "",
    "| case | nodes in graph | kiln ms | ort-web ms | ort-node ms | kiln GFLOP/s | ort-web GFLOP/s | kiln ÷ ort-web | kiln ms × count | rel. L2 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  const sums = new Map<string, { kiln: number; web: number }>();
  for (const r of results) {
    const c = r.c;
    const ratio = r.kilnMs !== undefined && r.webMs ? `${(r.kilnMs / r.webMs).toFixed(2)}×` : "–";
    const l2 = r.relL2 === undefined
      ? "–"
      : Number.isFinite(r.relL2)
      ? `${r.relL2.toExponential(1)} ${r.relL2 <= REL_L2_TOLERANCE ? "ok" : "**WRONG**"}`
      : "**WRONG**";
    const share = r.kilnMs !== undefined ? fmtMs(r.kilnMs * c.count) : "–";
    lines.push(
      `| ${c.label} | ${c.count} | ${fmtMs(r.kilnMs, 2)} | ${fmtMs(r.webMs, 2)} | ${fmtMs(r.nodeMs, 2)} | ` +
        `${gf(c.flops, r.kilnMs)} | ${gf(c.flops, r.webMs)} | ${ratio} | ${share} | ${l2} |`,
    );
    const s = sums.get(c.model) ?? { kiln: 0, web: 0 };
    s.kiln += (r.kilnMs ?? NaN) * c.count;
    s.web += (r.webMs ?? NaN) * c.count;
    sums.set(c.model, s);
  }
  lines.push("");
  for (const [m, s] of sums) {
    lines.push(`- ${m} cases × count: kiln ${fmtMs(s.kiln)} ms, ort-web ${fmtMs(s.web)} ms.`);
  }
  for (const r of results) if (r.error) lines.push(`- ${r.c.label}: ${r.error}`);
  lines.push("");
  return lines;
}
