/**
 * The LoRA adapter checks, run on the ref target (tests/adapter_test.ts) and the gpu target
 * (tests/gpu_adapter_test.ts): tinynet's two matrix weights adapted from a folder in PEFT's
 * layout, every output checked against a ref program bound with W0 + scale·B·A computed here.
 * @module
 */
import assert from "node:assert/strict";
import { Adapter, compile, parseOnnx, type Program, WeightSet, WeightSetError } from "../../mod.ts";
import type { GpuOptions, TargetName } from "../../core/targets/target.ts";
import type { Tensor } from "../../core/tensor.ts";
import { writeSafetensors } from "../../core/weights/safetensors.ts";
import { writeRandomWeights } from "../../core/weights/random.ts";
import { relativeL2 } from "../conformance/compare.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const TINY_DIR = `${ROOT}examples/tinynet`;
const TINY = `${TINY_DIR}/tinynet.onnx`;
const DIMS = { x: [1, 3, 16, 16] };

function _x(): Tensor {
  const data = new Float32Array(3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  return { dtype: "float32", dims: [1, 3, 16, 16], data };
}

/** Small multiples of 1/64: exact in float32, float16 and bfloat16 alike. */
function _factor(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (((i * 7919 + seed * 104729) % 17) - 8) / 64;
  return out;
}

interface _Module {
  module: string;
  a: Float32Array;
  aDims: [number, number];
  b: Float32Array;
  bDims: [number, number];
}

/** tinynet's matrices: proj.weight [16, 16] and fc.weight [10, 16] ([out, in]). */
function _modules(seed: number, which: string[] = ["proj", "fc"], rank = 4): _Module[] {
  const out: Record<string, _Module> = {
    proj: {
      module: "proj",
      a: _factor(rank * 16, seed),
      aDims: [rank, 16],
      b: _factor(16 * rank, seed + 1),
      bDims: [16, rank],
    },
    fc: {
      module: "fc",
      a: _factor(rank * 16, seed + 2),
      aDims: [rank, 16],
      b: _factor(10 * rank, seed + 3),
      bDims: [10, rank],
    },
  };
  return which.map((m) => out[m]);
}

function _bf16(x: Float32Array): Uint8Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = u[i] >>> 16; // exact for these values
  return new Uint8Array(out.buffer);
}

/** Writes an adapter folder as PEFT saves one. */
async function _writePeft(
  dir: string,
  modules: _Module[],
  config: Record<string, unknown> = { peft_type: "LORA", r: 4, lora_alpha: 8, fan_in_fan_out: false },
  dtype: "float32" | "bfloat16" = "float32",
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors = modules.flatMap((m) =>
    (["A", "B"] as const).map((k) => {
      const data = k === "A" ? m.a : m.b;
      return {
        name: `base_model.model.${m.module}.lora_${k}.weight`,
        dtype,
        dims: k === "A" ? m.aDims : m.bDims,
        bytes: dtype === "float32" ? new Uint8Array(data.buffer.slice(0)) : _bf16(data),
      };
    })
  );
  await writeSafetensors(`${dir}/adapter_model.safetensors`, tensors);
  await Deno.writeTextFile(`${dir}/adapter_config.json`, JSON.stringify(config));
  return dir;
}

/** W0 + scale·B·A (transposed: (B·A)ᵀ), float64 sums, as the reference. */
function _adapted(
  w0: Float32Array,
  rows: number,
  cols: number,
  m: _Module,
  scale: number,
  t = false,
): Float32Array {
  const out = new Float32Array(w0);
  const r = m.aDims[0];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) {
        s += t ? m.b[j * r + k] * m.a[k * rows + i] : m.b[i * r + k] * m.a[k * cols + j];
      }
      out[i * cols + j] += scale * s;
    }
  }
  return out;
}

/** Runs the adapter checks on `target`. */
export async function adapterSuite(
  t: Deno.TestContext,
  target: TargetName,
  gpu: GpuOptions = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_adapter_" });
  const programs: Program[] = [];
  try {
    const x = _x();
    const program = compile(
      await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }),
      target,
      target === "gpu" ? { gpu } : {},
    );
    programs.push(program);
    const oracle = compile(await parseOnnx(TINY, { deferExternalWeights: true, inputDims: DIMS }), "ref");
    programs.push(oracle);
    await writeRandomWeights(TINY, `${dir}/v2`, { seed: 5 });
    const bases: Record<string, Record<string, Float32Array>> = {};
    for (const [k, d] of [["v1", TINY_DIR], ["v2", `${dir}/v2`]]) {
      const set = await WeightSet.fromOnnxDir(program, d, { lazy: false });
      bases[k] = {};
      for (const n of ["proj.weight", "fc.weight"]) {
        const b = set.tensors.get(n)!.bytes;
        bases[k][n] = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      }
    }
    /** The oracle's output with base `v` and these weights replaced. */
    const want = async (v: string, replace: Record<string, Float32Array> = {}) => {
      await oracle.bindWeights(await WeightSet.fromOnnxDir(oracle, v === "v1" ? TINY_DIR : `${dir}/v2`));
      await oracle.setWeights(
        Object.fromEntries(
          Object.entries(replace).map((
            [n, d],
          ) => [n, { dtype: "float32", dims: n === "fc.weight" ? [10, 16] : [16, 16], data: d }]),
        ),
      );
      return (await oracle.eval({ x }))["probs"];
    };
    const got = async () => (await program.eval({ x }))["probs"];
    const close = (y: Tensor, w: Tensor, what: string) => {
      const e = relativeL2(y, w);
      assert.ok(e <= 1e-5, `${what}: rel L2 ${e.toExponential(2)}`);
    };

    await program.bindWeights(await WeightSet.fromOnnxDir(program, TINY_DIR));
    const base = await got();
    const [pA, fA] = _modules(1);
    const aDir = await _writePeft(`${dir}/a`, [pA, fA]);
    const withA = await want("v1", {
      "proj.weight": _adapted(bases.v1["proj.weight"], 16, 16, pA, 2),
      "fc.weight": _adapted(bases.v1["fc.weight"], 10, 16, fA, 2),
    });

    await t.step("a PEFT adapter folder applies W0 + (alpha / r)·B·A to every module it names", async () => {
      const r = await program.applyAdapter(aDir);
      assert.deepEqual([r.adapter, r.adapted, r.restored], ["a", 2, 0]);
      assert.deepEqual(program.adapter, { name: "a", weights: ["proj.weight", "fc.weight"] });
      close(await got(), withA, "adapter a");
    });

    await t.step("the same adapter as bytes and a Blob, its config given as an object", async () => {
      const bytes = await Deno.readFile(`${aDir}/adapter_model.safetensors`);
      const config = JSON.parse(await Deno.readTextFile(`${aDir}/adapter_config.json`));
      for (const source of [bytes, new Blob([bytes.slice()])]) {
        const r = await program.applyAdapter(await Adapter.load(source, { config, name: "a" }));
        assert.deepEqual([r.adapter, r.adapted], ["a", 2]);
        close(await got(), withA, "adapter a from memory");
      }
      await assert.rejects(Adapter.load(bytes), /an adapter given as bytes has none beside it/);
    });

    await t.step("removeAdapter restores the base weights bit for bit", async () => {
      const r = await program.removeAdapter();
      assert.equal(r.restored, 2);
      assert.equal(program.adapter, null);
      assert.deepEqual(await got(), base);
    });

    const [fB] = _modules(9, ["fc"]);
    const bDir = await _writePeft(`${dir}/b`, [fB], { peft_type: "LORA", lora_alpha: 4 });
    await t.step("switching adapters replaces the deltas: they never pile up", async () => {
      await program.applyAdapter(aDir);
      await program.applyAdapter(aDir); // the same again: still W0 + delta, not W0 + 2·delta
      close(await got(), withA, "adapter a applied twice");
      const r = await program.applyAdapter(bDir);
      assert.deepEqual([r.adapted, r.restored], [1, 1], "fc changes, proj goes back to its base");
      close(
        await got(),
        await want("v1", { "fc.weight": _adapted(bases.v1["fc.weight"], 10, 16, fB, 1) }),
        "b after a",
      );
    });

    await t.step("weights bound under an adapter become its base and are adapted too", async () => {
      const r = await program.bindWeights(await WeightSet.fromOnnxDir(program, `${dir}/v2`));
      assert.equal(r.adapted, 1);
      close(
        await got(),
        await want("v2", { "fc.weight": _adapted(bases.v2["fc.weight"], 10, 16, fB, 1) }),
        "v2 + b",
      );
      await program.removeAdapter();
      close(await got(), await want("v2"), "v2 without the adapter");
      await program.bindWeights(await WeightSet.fromOnnxDir(program, TINY_DIR));
      assert.deepEqual(await got(), base);
    });

    await t.step("fan_in_fan_out, bfloat16 factors and an explicit scale", async () => {
      const [p] = _modules(3, ["proj"]);
      const d = await _writePeft(
        `${dir}/t`,
        [p],
        { peft_type: "LORA", r: 4, lora_alpha: 2, fan_in_fan_out: true },
        "bfloat16",
      );
      await program.applyAdapter(d);
      close(
        await got(),
        await want("v1", { "proj.weight": _adapted(bases.v1["proj.weight"], 16, 16, p, 0.5, true) }),
        "transposed",
      );
      await program.applyAdapter(await Adapter.load(d, { scale: -1.5 }));
      close(
        await got(),
        await want("v1", { "proj.weight": _adapted(bases.v1["proj.weight"], 16, 16, p, -1.5, true) }),
        "scale",
      );
      // fc.weight stored [in, out] as far as the factors say: B·A is [16, 10], so (B·A)ᵀ applies
      const f: _Module = {
        module: "fc",
        a: _factor(4 * 10, 6),
        aDims: [4, 10],
        b: _factor(16 * 4, 7),
        bDims: [16, 4],
      };
      await program.applyAdapter(await _writePeft(`${dir}/t2`, [f]));
      close(
        await got(),
        await want("v1", { "fc.weight": _adapted(bases.v1["fc.weight"], 10, 16, f, 2, true) }),
        "inferred transpose",
      );
      await program.removeAdapter();
      assert.deepEqual(await got(), base);
    });

    await t.step(
      "a bad adapter reports every problem at once and the applied one keeps serving",
      async () => {
        await program.applyAdapter(aDir);
        const [p, f] = _modules(4);
        const bad = await _writePeft(`${dir}/bad`, [
          { ...p, module: "nope" }, // matches no weight
          { ...f, b: new Float32Array(12 * 4), bDims: [12, 4] }, // [12, 16] fits no orientation of [10, 16]
          { ...p, module: "conv1" }, // not a matrix
        ]);
        await assert.rejects(
          () => program.applyAdapter(bad),
          (e: unknown) => {
            assert.ok(e instanceof WeightSetError, String(e));
            assert.equal(e.problems.length, 3, e.message);
            assert.match(e.message, /'nope' matches no weight/);
            assert.match(e.message, /B·A is \[12, 16\], weight 'fc.weight' is \[10, 16\]: neither/);
            assert.match(e.message, /'conv1.weight' is float32\[8,3,3,3\], not a float32 matrix/);
            return true;
          },
        );
        await Deno.writeTextFile(`${dir}/bad/adapter_config.json`, "{}");
        await Deno.remove(`${dir}/bad/adapter_model.safetensors`);
        await writeSafetensors(`${dir}/bad/adapter_model.safetensors`, [
          {
            name: "base_model.model.proj.lora_A.weight",
            dtype: "int32",
            dims: [4, 16],
            bytes: new Uint8Array(256),
          },
          {
            name: "base_model.model.fc.lora_A.weight",
            dtype: "float32",
            dims: [4, 16],
            bytes: new Uint8Array(256),
          },
          {
            name: "base_model.model.fc.lora_B.bias",
            dtype: "float32",
            dims: [10],
            bytes: new Uint8Array(40),
          },
        ]);
        await assert.rejects(
          () => program.applyAdapter(`${dir}/bad`),
          (e: unknown) => {
            assert.ok(e instanceof WeightSetError, String(e));
            assert.match(e.message, /lora_B.bias' is not a LoRA factor/);
            assert.match(e.message, /module 'fc' has lora_A but no lora_B/);
            assert.match(e.message, /module 'proj' has lora_A but no lora_B/);
            assert.equal(e.problems.length, 3, e.message);
            return true;
          },
        );
        assert.equal(program.adapter?.name, "a");
        close(await got(), withA, "adapter a still applied");
      },
    );

    await t.step("evals beside adapter switches see one adapter whole, never a mix", async () => {
      const withB = await want("v1", { "fc.weight": _adapted(bases.v1["fc.weight"], 10, 16, fB, 1) });
      const evals: Promise<Tensor>[] = [];
      const switches: Promise<unknown>[] = [];
      for (let i = 0; i < 6; i++) {
        evals.push(got());
        switches.push(program.applyAdapter(i % 2 ? aDir : bDir));
        evals.push(got());
      }
      await Promise.all(switches);
      for (const y of await Promise.all(evals)) {
        assert.ok(relativeL2(y, withA) <= 1e-5 || relativeL2(y, withB) <= 1e-5, "an output of a or b");
      }
      await program.removeAdapter();
      assert.deepEqual(await got(), base);
    });
  } finally {
    for (const p of programs) p.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}
