// Data-movement and broadcast kernels on the gpu target (tests/util/gpu.ts says which GPU) against
// the ref target, bit for bit: strided copies that move 16 bytes per thread (a Transpose keeping
// the last axis, a Slice of aligned rows, a Concat), swap the two innermost axes through
// shared-memory tiles (batched matrix transposes, edges not multiples of the tile), or move one
// element per thread with 32-bit index arithmetic (a small Transpose of the last axis), and binary float32 ops four elements per thread
// (operands contiguous or constant along the innermost dim) or one per thread (an odd dim); and
// float32 LayerNormalization one row per 32 lanes held in registers, with its Mean and InvStdDev
// outputs, rows of 100 to 2048 (within 1e-5: the ref sums in another order, and the means, near
// zero here, differ by about 1e-6 relative; the block kernel before it gave the same values), and
// float32 Softmax along a contiguous last axis the same way.
import assert from "node:assert/strict";
import { compile, parseOnnx, type Program } from "../mod.ts";
import { relativeL2 } from "./conformance/compare.ts";
import type { Tensor } from "../core/tensor.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";

const ignore = gpuIgnore("gpu_kernels_test.ts");
const GPU = gpuUnderTest();

function _t(dims: number[], seed: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.731 + seed) * 3;
  return { dtype: "float32", dims, data };
}

Deno.test({
  name: `gpu target (${GPU.name}): vectorized copies and broadcasts equal the ref target bit for bit`,
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_kernels_" });
    const programs: Program[] = [];
    try {
      const g = new G(11);
      const outs: Record<string, string> = {
        keepLast: g.o("Transpose", ["x"], { perm: { ints: [1, 0, 2] } }), // [6, 2, 8]: rows of 8 move as float4s
        swapLast: g.o("Transpose", ["x"], { perm: { ints: [0, 2, 1] } }), // [2, 8, 6]: element by element
        slice: g.o("Slice", ["x", g.i64([4]), g.i64([8]), g.i64([2])]), // [2, 6, 4] from offset 4
        sliceOdd: g.o("Slice", ["x", g.i64([1]), g.i64([6]), g.i64([2])]), // [2, 6, 5]: unaligned
        concat: g.o("Concat", ["x", "x"], { axis: { i: 2 } }), // [2, 6, 16]
        bias: g.o("Add", ["x", g.w("bias", [8])]), // b contiguous along the last dim
        column: g.o("Mul", ["x", g.w("col", [2, 6, 1])]), // b constant along it
        row: g.o("Sub", [g.w("row", [1, 6, 8]), "x"]), // a broadcast over the first dim
        same: g.o("Div", ["x", "y"]), // one merged dim of 96
        odd: g.o("Add", ["z", g.w("zb", [5])]), // [3, 5]: one element per thread
        tiles3: g.o("Transpose", ["t3"], { perm: { ints: [0, 2, 1] } }), // [3, 70, 40] through 32 x 32 tiles
        tiles2: g.o("Transpose", [g.w("m", [50, 33])], { perm: { ints: [1, 0] } }), // [33, 50]
        tiles4: g.o("Transpose", ["t4"], { perm: { ints: [0, 1, 3, 2] } }), // [2, 3, 40, 33], batch 6
      };
      const ln = (x: string, n: number, stats = false) => {
        const o = g.om(
          "LayerNormalization",
          [x, g.w(`s${n}`, [n], { ones: true }), g.w(`b${n}`, [n])],
          stats ? 3 : 1,
          {
            axis: { i: -1 },
            epsilon: { f: 1e-5 },
          },
        );
        return o;
      };
      const [ln768, lnMean, lnInv] = ln("l768", 768, true);
      const norms: Record<string, string> = {
        ln768,
        lnMean,
        lnInv,
        ln100: ln("l100", 100)[0],
        ln2048: ln("l2048", 2048)[0],
        // Softmax one row per 32 lanes as well (exponentials in float, sums in double)
        sm128: g.o("Softmax", ["l768"], { axis: { i: 1 } }), // [2, 9, 768] along 9: the block kernel
        smLast: g.o("Softmax", ["l100"], { axis: { i: -1 } }), // rows of 100
        sm2048: g.o("Softmax", ["l2048"], { axis: { i: -1 } }), // rows of 2048
        sm768: g.o("Softmax", ["l768"], { axis: { i: -1 } }),
      };
      const w = await writeGraph(dir, "kernels", g, {
        inputs: [
          { name: "x", dims: [2, 6, 8] },
          { name: "y", dims: [2, 6, 8] },
          { name: "z", dims: [3, 5] },
          {
            name: "t3",
            dims: [3, 40, 70],
          },
          { name: "t4", dims: [2, 3, 33, 40] },
          { name: "l768", dims: [2, 9, 768] },
          { name: "l100", dims: [7, 100] },
          { name: "l2048", dims: [3, 2048] },
        ],
        outputs: [...Object.values(outs), ...Object.values(norms)].map((name) => ({ name })),
        opset: 17,
      });
      const feeds = {
        x: _t([2, 6, 8], 1),
        y: _t([2, 6, 8], 2),
        z: _t([3, 5], 3),
        t3: _t([3, 40, 70], 4),
        t4: _t([2, 3, 33, 40], 5),
        l768: _t([2, 9, 768], 6),
        l100: _t([7, 100], 7),
        l2048: _t([3, 2048], 8),
      };
      const ref = compile(await parseOnnx(w.path), "ref");
      programs.push(ref);
      const gpu = compile(await parseOnnx(w.path), "gpu", { gpu: GPU.options });
      programs.push(gpu);
      assert.deepEqual(gpu.info().hostNodes, []);
      const want = await ref.eval(feeds);
      const got = await gpu.eval(feeds);
      for (const [what, name] of Object.entries(outs)) {
        assert.deepEqual(got[name].dims, want[name].dims, what);
        assert.deepEqual(got[name].data, want[name].data, `${what}: not bit for bit`);
      }
      for (const [what, name] of Object.entries(norms)) {
        assert.deepEqual(got[name].dims, want[name].dims, what);
        const e = relativeL2(got[name], want[name]);
        assert.ok(e <= 1e-5, `${what}: rel L2 ${e.toExponential(2)}`);
      }
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
