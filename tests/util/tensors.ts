/**
 * Test tensors: seeded inputs ({@linkcode randn}, {@linkcode ints}, attention {@linkcode mask}s)
 * and {@linkcode assertMatch}, which compares kiln's outputs with onnxruntime's.
 * @module
 */
import assert from "node:assert/strict";
import type { Tensor } from "../../core/tensor.ts";
import { SeededRandom } from "../../core/weights/random.ts";

export function randn(seed: number, dims: number[], scale = 1): Tensor {
  const r = new SeededRandom(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = r.normal() * scale;
  return { dtype: "float32", dims, data };
}

export function ints(dims: number[], f: (i: number) => number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new BigInt64Array(n);
  for (let i = 0; i < n; i++) data[i] = BigInt(f(i));
  return { dtype: "int64", dims, data };
}

/** A [batch, seq] attention mask with right padding: row b keeps seq - b tokens (at least 1). */
export function mask(batch: number, seq: number): Tensor {
  return ints([batch, seq], (i) => ((i % seq) < Math.max(1, seq - Math.floor(i / seq)) ? 1 : 0));
}

function _relL2(got: Tensor, want: Tensor): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.data.length; i++) {
    const g = Number(got.data[i]), w = Number(want.data[i]);
    if (Number.isNaN(g) !== Number.isNaN(w)) return Infinity;
    if (Number.isNaN(w)) continue;
    num += (g - w) ** 2;
    den += w ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Asserts every output of `want` matches `got` (relative L2 <= 1e-4 for floats, exact otherwise). */
export function assertMatch(got: Record<string, Tensor>, want: Record<string, Tensor>, what: string): void {
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    assert.ok(g, `${what}: kiln has no output '${name}' (has ${Object.keys(got).join(", ")})`);
    assert.equal(g.dtype, w.dtype, `${what}: output '${name}' dtype`);
    assert.deepEqual(g.dims, w.dims, `${what}: output '${name}' dims`);
    if (w.dtype.startsWith("float")) {
      const err = _relL2(g, w);
      assert.ok(err <= 1e-4, `${what}: output '${name}' relative L2 ${err}`);
    } else {
      assert.deepEqual(Array.from(g.data, String), Array.from(w.data, String), `${what}: output '${name}'`);
    }
  }
}
