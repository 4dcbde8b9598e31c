// GpuOptions.precision "fp16" and "bf16" on the gpu target (tests/util/gpu.ts says which GPU: the
// CPU emulator in CI, where kiln's own GEMM kernel runs the 16-bit arithmetic, or the real device,
// where cuBLAS's GemmEx does). A MatMul or Gemm whose B comes from weights or literals reads a
// 16-bit copy of it, made in the prepare step, with A rounded to 16 bits and float32 sums:
//   - the conversions are bit-exact round to nearest even, NaN and infinities kept, for both
//     operands (an identity GEMM gives back the rounded values; checked against core/tensor.ts's
//     conversions on every 16-bit value, the ties between them and their neighbours);
//   - a GEMM model matches the 16-bit arithmetic computed here in float64 (rel L2 <= 1e-5), is
//     within what the format implies of float32 (rel L2 <= 2e-3 for fp16, 1e-2 for bf16) and
//     not bit-identical to it; a GEMM whose B is computed in each eval stays float32 exactly;
//   - a swap, a resident weight set and an adapter redo the conversion (a swap's outputs equal a
//     fresh compile's with the new weights bit for bit; sets and adapters match the arithmetic);
//   - exporter-style zoo models (a BERT layer, a GPT-2 block) stay within the same bounds;
//   - info().precision says what runs in 16 bits and what does not.
import assert from "node:assert/strict";
import { Adapter, compile, KilnError, parseOnnx, type Program, WeightSet } from "../mod.ts";
import { buildModel, type ModelSpec } from "../core/onnx/writer.ts";
import {
  float16BitsToFloat32,
  float32BitsToBfloat16Bits,
  float32ToFloat16Bits,
  type Tensor,
} from "../core/tensor.ts";
import { SeededRandom, writeRandomWeights } from "../core/weights/random.ts";
import { relativeL2 } from "./conformance/compare.ts";
import { runCliWith } from "./util/cli.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { encoder, gpt } from "./util/zoo_transformers.ts";

const ignore = gpuIgnore("gpu_precision_test.ts");
const GPU = gpuUnderTest();

type Half = "fp16" | "bf16";
const HALVES: Half[] = ["fp16", "bf16"];
/** What each format implies against float32 (unit roundoff 2^-11 and 2^-8 on both operands). */
const BAR: Record<Half, number> = { fp16: 2e-3, bf16: 1e-2 };
/** Against the same 16-bit arithmetic summed in float64: only the float32 sums' rounding and order differ. */
const BAR_EXACT = 1e-5;

const _f32 = new Float32Array(1);
const _u32 = new Uint32Array(_f32.buffer);

function _bits(v: number): number {
  _f32[0] = v;
  return _u32[0];
}

function _fromBits(b: number): number {
  _u32[0] = b >>> 0;
  return _f32[0];
}

/** The float32 value of v rounded to `h` (core/tensor.ts's conversions: the reference). */
function _round(h: Half, v: number): number {
  if (h === "fp16") return float16BitsToFloat32(float32ToFloat16Bits(v));
  return _fromBits(float32BitsToBfloat16Bits(_bits(v)) << 16);
}

/**
 * float32 values that probe a conversion to `h`: every finite 16-bit value of both signs, the
 * midpoint (a tie) to the next one and the float32 values beside that midpoint, then the edges:
 * overflow, underflow, float32 subnormals, infinities and NaNs.
 */
function _probes(h: Half): Float32Array {
  const widen = (x: number) => h === "fp16" ? float16BitsToFloat32(x) : _fromBits(x << 16);
  const top = h === "fp16" ? 0x7c00 : 0x7f80; // +infinity's bits
  const out: number[] = [];
  for (let x = 0; x < top; x++) {
    const a = widen(x), b = widen(x + 1);
    const tie = (a + b) / 2; // exact in float32: one bit more than the 16-bit formats hold
    for (const v of [a, tie, _fromBits(_bits(tie) - 1), _fromBits(_bits(tie) + 1)]) {
      if (Number.isFinite(v)) out.push(v, -v);
    }
  }
  out.push(
    Infinity,
    -Infinity,
    _fromBits(0x7fc00000), // quiet NaN
    _fromBits(0x7f800001), // signalling NaN
    _fromBits(0xffc12345), // negative NaN with a payload
    _fromBits(0x7f7fffff), // float32's largest: infinity in both formats
    65504,
    65519.996,
    65520, // float16: the tie above its largest value, to infinity
    2 ** -24,
    2 ** -25, // float16: the tie below its smallest subnormal, to zero
    2 ** -25 * (1 + 2 ** -23),
    1e-45, // float32 subnormals
    -1e-40,
    0,
    -0,
  );
  return Float32Array.from(out);
}

function _same(got: number, want: number): boolean {
  return got === want || (Number.isNaN(got) && Number.isNaN(want));
}

/** The smallest normal value of each format: below it, a tensor core may flush operands to zero. */
const MIN_NORMAL: Record<Half, number> = { fp16: 2 ** -14, bf16: 2 ** -126 };

/**
 * The first mismatches of `got` against v -> _round(h, v), described. On a real device the
 * vendor GEMM's tensor cores may flush subnormal 16-bit operands to zero (a property of the
 * hardware's multiply, not of the conversion): there a zero for a subnormal result is counted
 * and logged, not a mismatch. The emulator (kiln's own kernel) must match every value.
 */
function _mismatches(h: Half, probes: Float32Array, got: Float32Array, what: string): string[] {
  const bad: string[] = [];
  let flushed = 0;
  for (let i = 0; i < probes.length && bad.length < 5; i++) {
    const want = _round(h, probes[i]);
    if (_same(got[i], want)) continue;
    if (GPU.kind === "device" && got[i] === 0 && Math.abs(want) < MIN_NORMAL[h]) {
      flushed++;
      continue;
    }
    bad.push(`${probes[i]} (0x${_bits(probes[i]).toString(16)}): got ${got[i]}, want ${want}`);
  }
  if (flushed) {
    console.log(`  ${what}: ${flushed} subnormal ${h} values flushed to zero by the GEMM on ${GPU.name}`);
  }
  return bad;
}

function _compileInline(spec: ModelSpec, precision: Half | "float32"): Promise<Program> {
  return (async () => {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_precision_" });
    try {
      await Deno.writeFile(`${dir}/m.onnx`, buildModel(spec));
      return compile(await parseOnnx(`${dir}/m.onnx`), "gpu", { gpu: { ...GPU.options, precision } });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  })();
}

Deno.test({
  name: `gpu target (${GPU.name}): fp16 and bf16 conversions round to nearest even, keep NaN and infinities`,
  ignore,
  async fn(t) {
    for (const h of HALVES) {
      const probes = _probes(h);
      const n = probes.length;
      await t.step(`${h}: B, a literal converted in the prepare step (${n} values)`, async () => {
        // y = [1, 0] x [[v], [0]]: each column gives back its probe as the GEMM read it
        const w = new Float32Array(2 * n);
        w.set(probes);
        const p = await _compileInline({
          graph: {
            inputs: [{ name: "x", dtype: "float32", dims: [1, 2] }],
            outputs: [{ name: "y", dtype: "float32", dims: [1, n] }],
            initializers: [{ name: "W", dtype: "float32", dims: [2, n], data: w }],
            nodes: [{ op: "MatMul", name: "mm", inputs: ["x", "W"], outputs: ["y"] }],
          },
        }, h);
        try {
          assert.equal(p.info().precision?.mode, h);
          const y =
            (await p.eval({ x: { dtype: "float32", dims: [1, 2], data: new Float32Array([1, 0]) } }))["y"]
              .data as Float32Array;
          assert.deepEqual(_mismatches(h, probes, y, `${h} B`), []);
        } finally {
          p.dispose();
        }
      });
      await t.step(`${h}: A, rounded in each GEMM (${n} values)`, async () => {
        const p = await _compileInline({
          graph: {
            inputs: [{ name: "x", dtype: "float32", dims: [n, 1] }],
            outputs: [{ name: "y", dtype: "float32", dims: [n, 1] }],
            initializers: [{ name: "W", dtype: "float32", dims: [1, 1], data: new Float32Array([1]) }],
            nodes: [{ op: "MatMul", name: "mm", inputs: ["x", "W"], outputs: ["y"] }],
          },
        }, h);
        try {
          const y = (await p.eval({ x: { dtype: "float32", dims: [n, 1], data: probes } }))["y"]
            .data as Float32Array;
          assert.deepEqual(_mismatches(h, probes, y, `${h} A`), []);
        } finally {
          p.dispose();
        }
      });
    }
  },
});

// ---- a GEMM model with deferred weights --------------------------------------------------

const S = 24, K = 48, N1 = 40, M2 = 20, N2 = 36;

function _gemmModel(): ModelSpec {
  const w1 = K * N1 * 4, w2 = N2 * K * 4;
  return {
    graph: {
      inputs: [
        { name: "x", dtype: "float32", dims: [2, S, K] },
        { name: "a", dtype: "float32", dims: [M2, K] },
      ],
      outputs: [
        { name: "y1", dtype: "float32", dims: [2, S, N1] },
        { name: "y2", dtype: "float32", dims: [M2, N2] },
        { name: "y3", dtype: "float32", dims: [2, S, S] },
      ],
      initializers: [
        {
          name: "W1",
          dtype: "float32",
          dims: [K, N1],
          external: { location: "w.bin", offset: 0, length: w1 },
        },
        {
          name: "W2",
          dtype: "float32",
          dims: [N2, K],
          external: { location: "w.bin", offset: w1, length: w2 },
        },
        {
          name: "b2",
          dtype: "float32",
          dims: [N2],
          external: { location: "w.bin", offset: w1 + w2, length: N2 * 4 },
        },
      ],
      nodes: [
        { op: "MatMul", name: "mm1", inputs: ["x", "W1"], outputs: ["y1"] },
        {
          op: "Gemm",
          name: "gemm2",
          inputs: ["a", "W2", "b2"],
          outputs: ["y2"],
          attrs: { transB: { i: 1 }, alpha: { f: 0.5 }, beta: { f: 2 } },
        },
        // B computed in each eval: stays float32
        { op: "Transpose", name: "xt", inputs: ["x"], outputs: ["xT"], attrs: { perm: { ints: [0, 2, 1] } } },
        { op: "MatMul", name: "mm3", inputs: ["x", "xT"], outputs: ["y3"] },
      ],
    },
  };
}

interface _Weights {
  W1: Float32Array;
  W2: Float32Array;
  b2: Float32Array;
}

function _normal(rng: SeededRandom, n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  rng.fillNormal(a, 0, std);
  return a;
}

function _weights(seed: number): _Weights {
  const rng = new SeededRandom(seed);
  return { W1: _normal(rng, K * N1, 0.3), W2: _normal(rng, N2 * K, 0.3), b2: _normal(rng, N2, 0.1) };
}

function _inputs(): Record<string, Tensor> {
  const rng = new SeededRandom(77);
  return {
    x: { dtype: "float32", dims: [2, S, K], data: _normal(rng, 2 * S * K, 1.7) },
    a: { dtype: "float32", dims: [M2, K], data: _normal(rng, M2 * K, 2.1) },
  };
}

/** y1 and y2 as GpuOptions.precision `h` computes them: 16-bit operands, exact products, sums in float64. */
function _expect16(
  h: Half,
  w: _Weights,
  inputs: Record<string, Tensor>,
): { y1: Float32Array; y2: Float32Array } {
  const r = (v: number) => _round(h, v);
  const x = inputs.x.data as Float32Array, a = inputs.a.data as Float32Array;
  const y1 = new Float32Array(2 * S * N1);
  for (let i = 0; i < 2 * S; i++) {
    for (let j = 0; j < N1; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += r(x[i * K + k]) * r(w.W1[k * N1 + j]);
      y1[i * N1 + j] = s;
    }
  }
  const y2 = new Float32Array(M2 * N2);
  for (let i = 0; i < M2; i++) {
    for (let j = 0; j < N2; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += r(a[i * K + k]) * r(w.W2[j * K + k]);
      y2[i * N2 + j] = 0.5 * s + 2 * w.b2[j];
    }
  }
  return { y1, y2 };
}

function _t(data: Float32Array): Tensor {
  return { dtype: "float32", dims: [data.length], data };
}

function _rel(got: Tensor, want: Float32Array | Tensor): number {
  return relativeL2(_t(got.data as Float32Array), want instanceof Float32Array ? _t(want) : want);
}

Deno.test({
  name:
    `gpu target (${GPU.name}): fp16 and bf16 GEMMs read 16-bit weights, swaps and weight sets reconvert them`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_precision_" });
    const programs: Program[] = [];
    try {
      await Deno.writeFile(`${dir}/m.onnx`, buildModel(_gemmModel()));
      await Deno.writeFile(`${dir}/w.bin`, new Uint8Array((K * N1 + N2 * K + N2) * 4));
      const make = async (precision: Half | "float32") => {
        const p = compile(await parseOnnx(`${dir}/m.onnx`, { deferExternalWeights: true }), "gpu", {
          gpu: { ...GPU.options, precision },
        });
        programs.push(p);
        return p;
      };
      const v1 = _weights(1), v2 = _weights(2);
      const inputs = _inputs();
      const strict = await make("float32");
      await strict.bindWeights({ ...v1 });
      const want = await strict.eval(inputs);
      await strict.bindWeights({ ...v2 });
      const want2 = await strict.eval(inputs);

      await t.step("float32 reports no 16-bit GEMM", () => {
        assert.deepEqual(strict.info().precision, { mode: "float32" });
      });

      for (const h of HALVES) {
        const p = await make(h);
        await t.step(`${h}: info says which GEMMs read 16-bit weights and which stay float32`, () => {
          const info = p.info().precision!;
          assert.equal(info.mode, h);
          assert.equal(info.gemms16, 2);
          assert.equal(info.gemms32, 1);
          assert.ok(info.bytes16! >= (K * N1 + N2 * K) * 2, JSON.stringify(info));
          assert.match(info.why!, /1 MatMul\/Gemm with a B computed in each eval stay float32 \(node 'mm3'/);
          assert.equal(info.convs, undefined);
        });

        await t.step(
          `${h}: the 16-bit arithmetic, within ${BAR[h]} of float32 and not equal to it`,
          async () => {
            await p.bindWeights({ ...v1 });
            const got = await p.eval(inputs);
            const exact = _expect16(h, v1, inputs);
            for (const name of ["y1", "y2"] as const) {
              const e16 = _rel(got[name], exact[name]);
              const e32 = relativeL2(got[name], want[name]);
              console.log(
                `  ${h} '${name}' on ${GPU.name}: rel L2 ${e32.toExponential(2)} against float32, ` +
                  `${e16.toExponential(2)} against the 16-bit arithmetic in float64`,
              );
              assert.ok(e16 <= BAR_EXACT, `${h} '${name}': rel L2 ${e16} against the 16-bit arithmetic`);
              assert.ok(e32 <= BAR[h], `${h} '${name}': rel L2 ${e32} against float32`);
              assert.notDeepEqual(
                got[name].data,
                want[name].data,
                `${h} '${name}' equals float32: no 16-bit path ran`,
              );
            }
            // B computed in each eval: float32, as the strict program computes it
            assert.deepEqual(got.y3.data, want.y3.data);
            if (GPU.kind === "device") {
              // kiln's own 16-bit kernel on the device (the vendor GemmEx ran above): the same arithmetic
              const own = compile(await parseOnnx(`${dir}/m.onnx`, { deferExternalWeights: true }), "gpu", {
                gpu: { ...GPU.options, precision: h, vendorBlas: false },
              });
              programs.push(own);
              await own.bindWeights({ ...v1 });
              const o = await own.eval(inputs);
              assert.ok(
                _rel(o.y1, exact.y1) <= BAR_EXACT && _rel(o.y2, exact.y2) <= BAR_EXACT,
                "vendorBlas: false",
              );
            }
          },
        );

        await t.step(
          `${h}: a swap reconverts (equal to a fresh compile bound to the new weights)`,
          async () => {
            await p.bindWeights({ ...v2 });
            const got = await p.eval(inputs);
            const fresh = await make(h);
            await fresh.bindWeights({ ...v2 });
            const ref = await fresh.eval(inputs);
            for (const name of ["y1", "y2", "y3"]) assert.deepEqual(got[name].data, ref[name].data, name);
            const exact = _expect16(h, v2, inputs);
            assert.ok(_rel(got.y1, exact.y1) <= BAR_EXACT);
            assert.ok(_rel(got.y2, exact.y2) <= BAR_EXACT);
            assert.ok(relativeL2(got.y1, want2.y1) <= BAR[h]);
            // a partial swap: only W2 changes, W1's copy stays right
            const v3 = { W2: _weights(3).W2 };
            await p.bindWeights(v3, { partial: true });
            const part = await p.eval(inputs);
            assert.deepEqual(part.y1.data, got.y1.data);
            const exact3 = _expect16(h, { ...v2, ...v3 }, inputs);
            assert.ok(_rel(part.y2, exact3.y2) <= BAR_EXACT, "partial swap: y2");
            await p.bindWeights({ ...v2 });
          },
        );

        await t.step(`${h}: resident weight sets reconvert on every switch`, async () => {
          // p is bound to v2
          const atV2 = await p.eval(inputs);
          await p.addWeightSet("v1", WeightSet.fromArrays(p.weightSignature(), { ...v1 }));
          const fromSet = await p.eval(inputs, { weights: "v1" });
          const exact = _expect16(h, v1, inputs);
          assert.ok(_rel(fromSet.y1, exact.y1) <= BAR_EXACT, "set v1: y1");
          assert.ok(_rel(fromSet.y2, exact.y2) <= BAR_EXACT, "set v1: y2");
          const back = await p.eval(inputs);
          for (const name of ["y1", "y2"]) {
            assert.deepEqual(back[name].data, atV2[name].data, `back to v2: ${name}`);
          }
          await p.removeWeightSet("v1");
        });

        await t.step(
          `${h}: an adapter reconverts the weight it changes, and its removal restores it`,
          async () => {
            // p is bound to v2; W2 is stored [out, in] (Gemm transB), so W2 + scale * B A
            const before = await p.eval(inputs);
            const rng = new SeededRandom(31), r = 4, scale = 1.5;
            const fa = _normal(rng, r * K, 0.2), fb = _normal(rng, N2 * r, 0.2);
            const adapter = new Adapter("w2", [{
              module: "W2",
              a: fa,
              aDims: [r, K],
              b: fb,
              bDims: [N2, r],
              scale,
            }], {
              weightOf: (m) => m,
              fanInFanOut: false,
            });
            await p.applyAdapter(adapter);
            const got = await p.eval(inputs);
            const w2 = Float32Array.from(v2.W2);
            for (let i = 0; i < N2; i++) {
              for (let j = 0; j < K; j++) {
                let d = 0;
                for (let q = 0; q < r; q++) d += fb[i * r + q] * fa[q * K + j];
                w2[i * K + j] += scale * d;
              }
            }
            const exact = _expect16(h, { ...v2, W2: w2 }, inputs);
            assert.ok(_rel(got.y2, exact.y2) <= BAR_EXACT, `adapted y2: ${_rel(got.y2, exact.y2)}`);
            assert.deepEqual(got.y1.data, before.y1.data);
            await p.removeAdapter();
            assert.deepEqual((await p.eval(inputs)).y2.data, before.y2.data);
          },
        );
      }

      await t.step("a precision the gpu target does not know is refused", async () => {
        await assert.rejects(
          async () => await make("fp8" as unknown as Half),
          (e: unknown) => e instanceof KilnError && e.code === "argument" && /'fp8'/.test(e.message),
        );
      });
    } finally {
      for (const p of programs) p.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `gpu target (${GPU.name}): zoo BERT layer and GPT-2 block in fp16 and bf16 against float32`,
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kiln_gpu_precision_zoo_" });
    try {
      for (const build of [encoder, gpt]) {
        const m = await build(dir);
        const c = m.cases[m.cases.length - 1];
        await writeRandomWeights(m.file.path, `${dir}/${m.name}_w`, { seed: 5 });
        const run = async (precision: Half | "float32") => {
          const p = compile(
            await parseOnnx(m.file.path, { inputDims: c.dims, deferExternalWeights: true }),
            "gpu",
            { gpu: { ...GPU.options, precision } },
          );
          try {
            await p.bindWeights(await WeightSet.fromOnnxDir(p, `${dir}/${m.name}_w`));
            return { out: await p.eval(c.inputs), info: p.info() };
          } finally {
            p.dispose();
          }
        };
        const strict = await run("float32");
        for (const h of HALVES) {
          await t.step(`${m.name} in ${h}`, async () => {
            const { out, info } = await run(h);
            const p = info.precision!;
            assert.equal(p.mode, h);
            assert.ok(p.gemms16! > 0 && p.gemms32! > 0, JSON.stringify(p)); // attention's products stay float32
            assert.deepEqual(info.hostNodes, []);
            for (const [name, want] of Object.entries(strict.out)) {
              if (want.dtype !== "float32") continue; // token ids (argmax, TopK indices)
              const e = relativeL2(out[name], want);
              console.log(
                `  ${m.name} ${h} on ${GPU.name}: '${name}' rel L2 ${e.toExponential(2)} against float32 ` +
                  `(${p.gemms16} GEMMs on 16-bit weights, ${p.gemms32} float32)`,
              );
              assert.ok(e <= BAR[h], `${m.name} ${h} '${name}': rel L2 ${e}`);
              assert.notDeepEqual(out[name].data, want.data, `${m.name} ${h} '${name}' equals float32`);
            }
          });
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `gpu target (${GPU.name}): fp16 reports where Convs run (tinynet)`,
  ignore,
  async fn() {
    const tiny = new URL("../examples/tinynet/tinynet.onnx", import.meta.url).pathname;
    const p = compile(await parseOnnx(tiny, { inputDims: { x: [1, 3, 16, 16] } }), "gpu", {
      gpu: { ...GPU.options, precision: "fp16" },
    });
    try {
      const info = p.info().precision!;
      if (GPU.kind === "emulator") {
        // no cuDNN there: kiln's own Conv kernels, in float32
        assert.equal(info.convs, "float32");
        assert.match(info.why!, /Convs stay float32 on kiln's kernels/);
      } else {
        assert.ok(info.convs === "tf32" || /Convs stay float32/.test(info.why ?? ""), JSON.stringify(info));
      }
    } finally {
      p.dispose();
    }
  },
});

Deno.test({
  name: `gpu target (${GPU.name}): kiln perf --precision fp16 says what applies; a bad mode is a usage error`,
  ignore: ignore || !GPU.options.library,
  async fn() {
    const tiny = new URL("../examples/tinynet/tinynet.onnx", import.meta.url).pathname;
    const lib = GPU.options.library!;
    const args = [
      "perf",
      tiny,
      "--dims",
      "x=1x3x16x16",
      "--target",
      "gpu",
      "--gpu-library",
      lib,
      "--iterations",
      "1",
    ];
    const flags = ["--allow-read", "--allow-write", `--allow-ffi=${lib}`, "--allow-env"];
    const ok = await runCliWith(flags, ...args, "--precision", "fp16");
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /kiln: precision fp16 \(.*Convs/);
    const bad = await runCliWith(flags, ...args, "--precision", "fp8");
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /Bad --precision 'fp8': one of float32, tf32, fp16, bf16/);
  },
});
