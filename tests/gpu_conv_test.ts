// Convolutions on the gpu target (tests/util/gpu.ts says which GPU) against the ref target, on
// both of their paths: the vendor DNN library (cuDNN, where it loads: every float32 Conv is planned
// there once, when the program is created) and kiln's own kernels (im2col and the GEMM, the direct
// kernel for depthwise and narrow groups), chosen with `vendorDnn`. Shapes: 1-D, 2-D and 3-D,
// strides, dilations, groups, depthwise, a 1x1 read in place, a folded Relu, and padding wider at
// the end than at the start (which cuDNN's symmetric padding cannot express: that Conv stays on
// kiln's kernels, and the report says why), and residual block ends, Relu(Add(Conv, z)), which
// the library runs as one call (bias, sum and Relu in the convolution's kernel; z a graph input,
// and z an intermediate whose range the Relu's output may take). Strict float32 either way:
// within 1e-5 of the ref (the sums run in another order); TF32, asked for, within 5e-3 and reported.
import assert from "node:assert/strict";
import { compile, parseOnnx, type Program, WeightSet } from "../mod.ts";
import { writeRandomWeights } from "../core/weights/random.ts";
import type { Tensor } from "../core/tensor.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { G, writeGraph } from "./util/graph_dsl.ts";

const ignore = gpuIgnore("gpu_conv_test.ts");
const GPU = gpuUnderTest();

function _t(dims: number[], seed: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.613 + seed) * 2;
  return { dtype: "float32", dims, data };
}

const ints = (v: number[]) => ({ ints: v });

Deno.test({
  name: `gpu target (${GPU.name}): Convs on the DNN library and on kiln's kernels equal the ref target`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_conv_" });
    const programs: Program[] = [];
    try {
      const g = new G(31);
      // the second residual's z, made before its Conv (the fold wants Conv, Add, Relu in a row)
      const z = g.o("Sigmoid", ["x"]);
      const t12 = g.o("Relu", [
        g.o("Conv", ["x", g.w("w12", [4, 4, 3, 3]), g.w("b12", [4])], { pads: ints([1, 1, 1, 1]) }),
      ]);
      const outs: Record<string, string> = {
        plain: g.o("Conv", ["x", g.w("w1", [8, 4, 3, 3]), g.w("b1", [8])], { pads: ints([1, 1, 1, 1]) }),
        strided: g.o("Conv", ["x", g.w("w2", [6, 4, 3, 3])], {
          strides: ints([2, 2]),
          pads: ints([1, 1, 1, 1]),
        }),
        dilated: g.o("Conv", ["x", g.w("w3", [5, 4, 3, 3]), g.w("b3", [5])], { dilations: ints([2, 2]) }),
        grouped: g.o("Conv", ["x", g.w("w4", [8, 2, 3, 3]), g.w("b4", [8])], { group: { i: 2 } }),
        depthwise: g.o("Conv", ["x", g.w("w5", [4, 1, 3, 3]), g.w("b5", [4])], {
          group: { i: 4 },
          pads: ints([1, 1, 1, 1]),
        }),
        pointwise: g.o("Conv", ["x", g.w("w6", [16, 4, 1, 1]), g.w("b6", [16])]),
        relu: g.o("Relu", [
          g.o("Conv", ["x", g.w("w7", [8, 4, 3, 3]), g.w("b7", [8])], { pads: ints([1, 1, 1, 1]) }),
        ]),
        oneD: g.o("Conv", ["s", g.w("w8", [6, 3, 5]), g.w("b8", [6])], {
          pads: ints([2, 2]),
          strides: ints([2]),
        }),
        threeD: g.o("Conv", ["v", g.w("w9", [4, 2, 3, 3, 3]), g.w("b9", [4])], {
          pads: ints([1, 1, 1, 1, 1, 1]),
        }),
        // wider at the end (2) than at the start (0): an output dim of 10 that symmetric padding gives otherwise
        skewed: g.o("Conv", ["x", g.w("w10", [3, 4, 3, 3])], { pads: ints([0, 0, 2, 2]) }),
        // residual block ends: Relu(Add(Conv, z)) with z a graph input, then with z an intermediate
        // that dies at the Add (the Relu's output may take its place: the library adds in place)
        residualInput: g.o("Relu", [
          g.o("Add", [
            g.o("Conv", ["x", g.w("w11", [4, 4, 3, 3]), g.w("b11", [4])], { pads: ints([1, 1, 1, 1]) }),
            "x",
          ]),
        ]),
        residualChain: g.o("Relu", [
          g.o("Add", [g.o("Conv", [t12, g.w("w13", [4, 4, 1, 1])]), z]), // no bias: the library gets zeros
        ]),
        // a Relu after a Conv without a bias
        reluBare: g.o("Relu", [g.o("Conv", ["x", g.w("w15", [5, 4, 3, 3])], { strides: ints([2, 2]) })]),
        // an Add without a Relu after it stays apart
        sum: g.o("Add", [g.o("Conv", ["x", g.w("w14", [4, 4, 1, 1]), g.w("b14", [4])]), "x"]),
      };
      const w = await writeGraph(dir, "convs", g, {
        inputs: [
          { name: "x", dims: [2, 4, 10, 10] },
          { name: "s", dims: [2, 3, 31] },
          { name: "v", dims: [1, 2, 6, 7, 8] },
        ],
        outputs: Object.values(outs).map((name) => ({ name })),
        opset: 17,
      });
      const feeds = { x: _t([2, 4, 10, 10], 1), s: _t([2, 3, 31], 2), v: _t([1, 2, 6, 7, 8], 3) };
      const ref = compile(await parseOnnx(w.path), "ref");
      programs.push(ref);
      const want = await ref.eval(feeds);
      const convs = ref.info().ops.Conv;
      for (const vendorDnn of [true, false]) {
        await t.step(vendorDnn ? "the DNN library where it loads" : "kiln's own Conv kernels", async () => {
          const gpu = compile(await parseOnnx(w.path), "gpu", { gpu: { ...GPU.options, vendorDnn } });
          programs.push(gpu);
          const info = gpu.info();
          assert.deepEqual(info.hostNodes, []);
          const dnn = info.dnn!;
          if (!vendorDnn) {
            assert.equal(dnn.library, "kiln (vendor DNN library disabled by the caller)");
            assert.equal(dnn.kernels, 0);
          } else if (dnn.library.startsWith("kiln")) {
            console.log(`  no vendor DNN library here: ${dnn.library}`);
            assert.equal(dnn.kernels, 0);
          } else {
            console.log(
              `  ${dnn.library}: ${dnn.kernels} Convs, ${dnn.misses} on kiln's kernels (${dnn.missWhy})`,
            );
            if (dnn.graphApi === 0) {
              // strict float32 plans on cuDNN's legacy API: its fused bias + Relu (+ residual) call
              assert.equal(dnn.kernels, convs - 1, "every Conv but the skewed one");
              assert.equal(dnn.misses, 1);
              assert.match(dnn.missWhy!, /asymmetric padding/);
              assert.equal(info.fusion!.residuals, 2, "both residual block ends as one call each");
              assert.equal(info.fusion!.epilogues, 3, "the Relus right after Convs folded into them");
            } else {
              // KILN_CUDNN_API=graph: the graph API takes padding that differs at the ends too
              assert.equal(dnn.kernels, convs, "every Conv, the skewed one too");
              assert.equal(dnn.graphApi, convs);
              assert.equal(dnn.misses, 0);
            }
          }
          const got = await gpu.eval(feeds);
          for (const [what, name] of Object.entries(outs)) {
            assert.deepEqual(got[name].dims, want[name].dims, what);
            const e = relativeL2(got[name], want[name]);
            assert.ok(e <= 1e-5, `${what}: rel L2 ${e.toExponential(2)}`);
          }
        });
      }
      await t.step("TF32, asked for: within 5e-3 and reported", async () => {
        const gpu = compile(await parseOnnx(w.path), "gpu", { gpu: { ...GPU.options, precision: "tf32" } });
        programs.push(gpu);
        const info = gpu.info();
        const got = await gpu.eval(feeds);
        for (const [what, name] of Object.entries(outs)) {
          const e = relativeL2(got[name], want[name]);
          assert.ok(e <= 5e-3, `${what}: rel L2 ${e.toExponential(2)}`);
        }
        if (!info.dnn!.library.startsWith("kiln")) {
          const dnn = info.dnn!;
          console.log(
            `  TF32: ${dnn.kernels} Convs on ${dnn.library}, ${dnn.graphApi} through its graph API`,
          );
          if (Deno.env.get("KILN_CUDNN_API") === "legacy") {
            assert.equal(dnn.kernels, convs - 1, "every Conv but the skewed one (legacy API)");
            assert.equal(dnn.graphApi, 0);
          } else {
            // TF32 plans on cuDNN's graph API, which takes padding that differs at the ends too
            assert.equal(dnn.kernels, convs, "every Conv, the skewed one too");
            assert.equal(dnn.graphApi, convs);
          }
          // TF32 runs cuDNN's plain call (its fused one is slower there): residual ends stay apart
          assert.equal(info.fusion!.residuals, 0);
          assert.match(info.fusion!.residualMissWhy!, /does not fuse/);
        }
      });
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `gpu target (${GPU.name}): TF32 Convs run channels-last, their filters laid out again after a swap`,
  ignore,
  async fn(t) {
    // a ResNet-style stack: the stem reads the NCHW input, the blocks between it and the global
    // pool (Conv, Relu, residual Add + Relu, MaxPool) can all be channels-last; the output (N x C x
    // 1 x 1) and the input stay NCHW
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_nhwc_" });
    const programs: Program[] = [];
    try {
      const g = new G(31);
      const stem = g.o("Relu", [
        g.o("Conv", ["x", g.w("w0", [16, 8, 3, 3]), g.w("b0", [16])], { pads: ints([1, 1, 1, 1]) }),
      ]);
      const c1 = g.o("Relu", [
        g.o("Conv", [stem, g.w("w1", [16, 16, 3, 3]), g.w("b1", [16])], { pads: ints([1, 1, 1, 1]) }),
      ]);
      const c2 = g.o("Conv", [c1, g.w("w2", [16, 16, 3, 3]), g.w("b2", [16])], { pads: ints([1, 1, 1, 1]) });
      const block = g.o("Relu", [g.o("Add", [c2, stem])]);
      const pooled = g.o("MaxPool", [block], {
        kernel_shape: ints([3, 3]),
        strides: ints([2, 2]),
        pads: ints([1, 1, 1, 1]),
      });
      const c3 = g.o("Relu", [g.o("Conv", [pooled, g.w("w3", [24, 16, 1, 1]), g.w("b3", [24])])]);
      const y = g.o("GlobalAveragePool", [c3]);
      const w = await writeGraph(dir, "nhwc", g, {
        inputs: [{ name: "x", dims: [2, 8, 12, 12] }],
        outputs: [{ name: y }],
        opset: 17,
      });
      await writeRandomWeights(w.path, `${dir}/v2`, { seed: 5 });
      const feeds = { x: _t([2, 8, 12, 12], 3) };
      const want1 = await compile(await parseOnnx(w.path), "ref").eval(feeds);
      const want2 = await compile(await parseOnnx(`${dir}/v2/nhwc.onnx`), "ref").eval(feeds);
      const gpu = compile(await parseOnnx(w.path, { deferExternalWeights: true }), "gpu", {
        gpu: { ...GPU.options, precision: "tf32" },
      });
      programs.push(gpu);
      const dnn = gpu.info().dnn!;
      if (!dnn.library.startsWith("kiln") && dnn.graphApi > 0) {
        await t.step("every Conv is channels-last (the stem writes it from NCHW input)", () => {
          assert.equal(dnn.channelsLast, 4, dnn.channelsLastWhy ?? "");
        });
      } else {
        console.log(`  no cuDNN graph API here (${dnn.library}): the Convs stay NCHW`);
      }
      // fusion off: the Relus stay nodes of their own (elementwise, channels-last too)
      const plain = compile(await parseOnnx(w.path, { deferExternalWeights: true }), "gpu", {
        gpu: { ...GPU.options, precision: "tf32", fusion: false },
      });
      programs.push(plain);
      for (const [what, p] of [["fused", gpu], ["fusion off", plain]] as const) {
        await t.step(
          `${what}: the first weights, then a swap, each within TF32's 5e-3 of the ref`,
          async () => {
            await p.bindWeights(await WeightSet.fromOnnxDir(p, dir));
            const e1 = relativeL2((await p.eval(feeds))[y], want1[y]);
            assert.ok(e1 <= 5e-3, `first weights: rel L2 ${e1.toExponential(2)}`);
            await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/v2`));
            const e2 = relativeL2((await p.eval(feeds))[y], want2[y]);
            assert.ok(
              e2 <= 5e-3,
              `after the swap: rel L2 ${e2.toExponential(2)} (the filters laid out again)`,
            );
          },
        );
      }
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
