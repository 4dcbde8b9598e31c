/**
 * Small helpers of the benchmark: medians, timing, error and time text, and the distance of outputs from
 * the reference.
 * @module
 */
import type { Tensor } from "../core/tensor.ts";

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs `fn` and gives its wall time in ms beside its result. */
export async function timed<T>(fn: () => Promise<T> | T): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

export function errText(e: unknown): string {
  const msg = e instanceof Error ? `${e.name === "Error" ? "" : e.name + ": "}${e.message}` : String(e);
  return msg.split("\n").slice(0, 3).join(" / ").slice(0, 300);
}

function _asNumbers(t: Tensor): ArrayLike<number> {
  const d = t.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Array.from(d, Number);
  return d as ArrayLike<number>;
}

/** Max over outputs of ||a - ref|| / ||ref||; Infinity when a value is not finite, or names or sizes differ. */
export function relL2(
  got: Record<string, Tensor>,
  ref: Record<string, Tensor>,
): { value: number; note?: string } {
  let worst = 0;
  for (const [name, r] of Object.entries(ref)) {
    const g = got[name];
    if (!g) return { value: Infinity, note: `output '${name}' missing` };
    const a = _asNumbers(g), b = _asNumbers(r);
    if (a.length !== b.length) {
      return { value: Infinity, note: `output '${name}' has ${a.length} values, not ${b.length}` };
    }
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i], y = b[i];
      if (!Number.isFinite(x)) return { value: Infinity, note: `output '${name}'[${i}] is ${x}` };
      num += (x - y) * (x - y);
      den += y * y;
    }
    const v = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
    if (v > worst) worst = v;
  }
  return { value: worst };
}

export function finiteCheck(outs: Record<string, Tensor>): string | undefined {
  for (const [name, t] of Object.entries(outs)) {
    const a = _asNumbers(t);
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return `output '${name}'[${i}] is ${a[i]}`;
  }
  return undefined;
}

export function fmtMs(ms: number | undefined, digits = 1): string {
  if (ms === undefined || !Number.isFinite(ms)) return "–";
  return ms >= 1000 ? ms.toFixed(0) : ms.toFixed(digits);
}
