// Float conversions (core/tensor.ts castFloats): the platform's Float16Array, where there is one,
// and kiln's own bit conversions give the same float16 <-> float32 results: every one of the
// 65536 float16 patterns widened, and float32 values narrowed (a seeded sweep of bit patterns,
// the subnormal and overflow edges, halfway cases that round to even). NaN stays NaN either way
// (the platform's is the canonical quiet NaN, kiln's keeps the sign).
import assert from "node:assert/strict";
import { _castFloats, castFloats } from "../core/tensor.ts";

const F16 = (globalThis as { Float16Array?: unknown }).Float16Array as Parameters<typeof _castFloats>[3];

function _sameFloats(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length);
  const ua = new Uint32Array(a.buffer), ub = new Uint32Array(b.buffer);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    assert.equal(ua[i], ub[i], `${what} #${i}: ${a[i]} vs ${b[i]}`);
  }
}

function _isNaN16(h: number): boolean {
  return (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
}

Deno.test("float16 conversions: the platform's Float16Array and kiln's own agree", async (t) => {
  if (!F16) {
    console.log("  skipped: no Float16Array here (kiln's own conversions run)");
    return;
  }
  await t.step("every float16 pattern widened to float32", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const bytes = new Uint8Array(all.buffer);
    const a = new Float32Array(_castFloats(bytes, "float16", "float32", F16).slice().buffer);
    const b = new Float32Array(_castFloats(bytes, "float16", "float32", undefined).slice().buffer);
    _sameFloats(a, b, "float16 bits");
  });

  await t.step("float32 values narrowed to float16, round to nearest even", () => {
    const vals: number[] = [
      0,
      -0,
      1,
      -1,
      65504,
      65519.99,
      65520,
      -65520,
      1e-8,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -26,
    ];
    vals.push(Infinity, -Infinity, NaN, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -14, 2 ** -14 - 2 ** -25);
    const f = new Float32Array(200_000 + vals.length);
    const u = new Uint32Array(f.buffer);
    let s = 12345;
    for (let i = 0; i < 200_000; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      u[i] = (s ^ (s << 7) ^ Math.imul(i, 2654435761)) >>> 0;
    }
    f.set(vals, 200_000);
    const bytes = new Uint8Array(f.buffer);
    const a = new Uint16Array(_castFloats(bytes, "float32", "float16", F16).slice().buffer);
    const b = new Uint16Array(_castFloats(bytes, "float32", "float16", undefined).slice().buffer);
    for (let i = 0; i < a.length; i++) {
      if (_isNaN16(a[i]) && _isNaN16(b[i])) continue;
      assert.equal(a[i], b[i], `float32 ${f[i]} (#${i}): ${a[i].toString(16)} vs ${b[i].toString(16)}`);
    }
  });

  await t.step("castFloats uses it, and bfloat16 is unchanged", () => {
    const x = new Float32Array([1.5, -2.25, 3e-5, 70000]);
    const h = new Uint16Array(castFloats(new Uint8Array(x.buffer), "float32", "float16").slice().buffer);
    assert.deepEqual([...h], [0x3e00, 0xc080, 0x01f7, 0x7c00]);
    const bf = new Uint16Array(castFloats(new Uint8Array(x.buffer), "float32", "bfloat16").slice().buffer);
    assert.deepEqual([...bf], [0x3fc0, 0xc010, 0x37fc, 0x4789]);
  });
});
