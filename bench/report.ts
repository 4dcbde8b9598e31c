/**
 * The report: the machine and its load, and per model a table of every engine's times with
 * kiln's ratios, its notes, and onnxruntime-node's time per op type.
 * @module
 */
import { type ModelReport, MODELS, REL_L2_TOLERANCE } from "./models.ts";
import { type OpProfile, peerVersions } from "./peers.ts";
import { fmtMs, median } from "./util.ts";

export async function machine(): Promise<string[]> {
  const read = async (p: string) => {
    try {
      return await Deno.readTextFile(p);
    } catch {
      return "";
    }
  };
  const cpu = (await read("/proc/cpuinfo")).match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU";
  const memKb = Number((await read("/proc/meminfo")).match(/^MemTotal:\s*(\d+)/m)?.[1] ?? 0);
  const v = peerVersions();
  return [
    `- CPU: ${cpu}, ${navigator.hardwareConcurrency} cores; memory ${(memKb / 1048576).toFixed(1)} GiB; ` +
    `${Deno.build.os} ${Deno.osRelease()}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); onnxruntime-node ${v.node}, onnxruntime-web ${v.web}`,
  ];
}

export async function loadavg(): Promise<string> {
  try {
    return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

function _table(rep: ModelReport): string[] {
  const kiln = rep.results.find((r) => r.id === "kiln");
  const kMed = kiln && kiln.times.length ? median(kiln.times) : undefined;
  const kCpu = kiln && kiln.cpu.length ? median(kiln.cpu) : undefined;
  const kilnWrong = kiln?.relL2 !== undefined && !(kiln.relL2 <= REL_L2_TOLERANCE);
  const lines = [
    "| engine | setup ms | first run ms | median ms | min ms | CPU ms | runs | kiln ÷ engine | rel. L2 vs ort-node |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const r of rep.results) {
    if (r.error) {
      lines.push(`| ${r.name} | failed: ${r.error.replaceAll("|", "\\|")} | | | | | | | |`);
      continue;
    }
    const med = r.times.length ? median(r.times) : undefined;
    const min = r.times.length ? Math.min(...r.times) : undefined;
    const cpu = r.cpu.length ? median(r.cpu) : undefined;
    let ratio = "";
    if (r.id !== "kiln" && kMed !== undefined && med) {
      ratio = `${(kMed / med).toFixed(2)}×`;
      if (r.id !== "ort-node-default" && kCpu !== undefined && cpu) {
        ratio += ` (CPU ${(kCpu / cpu).toFixed(2)}×)`;
      }
      if (kilnWrong) ratio += " (kiln output wrong)";
    }
    let l2 = r.id === "ort-node" ? "reference" : "–";
    if (r.relL2 !== undefined) {
      l2 = Number.isFinite(r.relL2)
        ? `${r.relL2.toExponential(1)} ${r.relL2 <= REL_L2_TOLERANCE ? "ok" : "**WRONG**"}`
        : "**WRONG**";
    }
    const setup = r.setupMs === undefined ? "–" : `${fmtMs(r.setupMs, 0)} (${r.setupNote})`;
    lines.push(
      `| ${r.name} | ${setup} | ${fmtMs(r.firstMs)} | ${fmtMs(med)} | ${fmtMs(min)} | ${
        fmtMs(cpu)
      } | ${r.times.length} | ${ratio} | ${l2} |`,
    );
  }
  return lines;
}

/** One line: the op types that take most of the time, with their share and ms per run. */
function _opMix(who: string, p: OpProfile): string {
  const rows = [...p.byOp.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((a, [, v]) => a + v.ms, 0);
  const top = rows.slice(0, 6).map(([op, v]) =>
    `${op} ${(100 * v.ms / total).toFixed(0)}% (${(v.ms / p.runs).toFixed(1)} ms, ${v.count / p.runs} nodes)`
  );
  return `Time per op type, ${who}, per run: ${top.join(", ")}; total ${(total / p.runs).toFixed(1)} ms.`;
}

export function report(
  reports: ModelReport[],
  header: string[],
  opts: { runs: number; seed: number },
): string {
  const out = [...header, ""];
  for (const rep of reports) {
    out.push(`### ${rep.model}`, "");
    if (rep.skipped) {
      out.push(`Skipped: ${rep.skipped}.`, "");
      continue;
    }
    const spec = MODELS[rep.model];
    out.push(
      `Input ${spec.input.name} ${spec.input.dtype}[${spec.input.dims.join(",")}], seeded weights ` +
        `(${(rep.weightBytes / 1e6).toFixed(1)} MB, seed ${opts.seed}, written in ${
          rep.weightsMs.toFixed(0)
        } ms); ` +
        `median and min of ${opts.runs} timed runs after the warm-up run, taken in rounds (one run of each ` +
        `engine per round, in rotating order, all engines set up at once). CPU ms is the median process ` +
        `CPU time per run (less disturbed by other load than wall time); kiln ÷ engine compares wall ` +
        `medians, CPU medians in parentheses.`,
      "",
      ..._table(rep),
      "",
    );
    const web = rep.results.find((r) => r.id === "ort-web");
    const kilns = rep.results.filter((r) => r.id === "kiln" && r.times.length);
    const one = kilns.find((r) => (r.threads ?? 1) === 1);
    for (const many of kilns.filter((r) => (r.threads ?? 1) > 1)) {
      if (!one) continue;
      const s = median(one.times) / median(many.times);
      out.push(
        `${many.name} over ${one.name}: **${s.toFixed(2)}×** faster (wall medians; goal ≥ 1.7× on 2 cores: ` +
          `${s >= 1.7 ? "met" : "not met"}); process CPU per run ${median(one.cpu).toFixed(0)} ms on one ` +
          `thread, ${median(many.cpu).toFixed(0)} ms on ${many.threads}.`,
        "",
      );
    }
    for (const kiln of kilns) {
      if (!web || !kiln.times.length || !web.times.length) continue;
      const q = median(kiln.times) / median(web.times);
      const threads = kiln.threads ?? 1;
      if (threads !== (web.threads ?? 1)) {
        out.push(`${kiln.name} ÷ ${web.name} = ${q.toFixed(2)}× (different thread counts: no goal).`, "");
        continue;
      }
      const goal = threads > 1 ? 0.8 : 2;
      out.push(
        `${kiln.name} ÷ ${web.name} = **${q.toFixed(2)}×** (goal ≤ ${goal}× with the same thread count: ` +
          `${q <= goal ? "met" : "not met"}` +
          `${
            kiln.relL2 !== undefined && !(kiln.relL2 <= REL_L2_TOLERANCE)
              ? ", but kiln's output is wrong"
              : ""
          }).`,
        "",
      );
    }
    for (const r of rep.results) for (const n of r.notes) out.push(`- ${r.name}: ${n}`);
    if (rep.results.some((r) => r.notes.length)) out.push("");
    if (rep.ortProfile) out.push(_opMix("onnxruntime-node (1 thread; its fused graph)", rep.ortProfile), "");
    for (const k of rep.kilnProfiles ?? []) out.push(_opMix(k.who, k.profile), "");
  }
  return out.join("\n");
}
