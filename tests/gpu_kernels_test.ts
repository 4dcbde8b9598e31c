// Data-movement and broadcast kernels on the gpu target (tests/util/gpu.ts says which GPU) against
// the ref target, bit for bit: strided copies that move 16 bytes per thread (a Transpose keeping
// the last axis, a Slice of aligned rows, a Concat), swap the two innermost axes through
// shared-memory tiles (batched matrix transposes, edges not multiples of the tile), or move one
// element per thread with 32-bit index arithmetic (a small Transpose of the last axis), and binary float32 ops four elements per thread
// (operands contiguous or constant along the innermost dim) or one per thread (an odd dim).
import assert from "node:assert/strict";
import { compile, parseOnnx, type Program } from "../mod.ts";
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
        ],
        outputs: Object.values(outs).map((name) => ({ name })),
        opset: 17,
      });
      const feeds = {
        x: _t([2, 6, 8], 1),
        y: _t([2, 6, 8], 2),
        z: _t([3, 5], 3),
        t3: _t([3, 40, 70], 4),
        t4: _t([2, 3, 33, 40], 5),
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
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
