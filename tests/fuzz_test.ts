// Corrupted inputs, seeded: a model file and a program file with bytes flipped, truncated or
// spliced must either work or fail with a KilnError (a clear message), never with another
// exception (a crash of the importer, the decoder or the core).
import assert from "node:assert/strict";
import {
  compile,
  deserializeProgram,
  KilnError,
  load,
  parseOnnx,
  save,
  WeightSet,
  writeSafetensors,
} from "../mod.ts";
import { buildModel } from "../core/onnx/writer.ts";
import { SeededRandom } from "../core/weights/random.ts";
import type { Tensor } from "../core/tensor.ts";

/** A small conv net with inline weights (every field kind the importer reads: attrs, raw data, shapes). */
function _model(): Uint8Array {
  const w = (n: number, s: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + s) * 0.3);
  return buildModel({
    opset: 17,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: ["batch", 2, 6, 6] }],
      outputs: [{ name: "y", dtype: "float32", dims: ["batch", 3] }],
      initializers: [
        { name: "cw", dtype: "float32", dims: [4, 2, 3, 3], data: w(72, 1) },
        { name: "cb", dtype: "float32", dims: [4], data: w(4, 2) },
        { name: "fw", dtype: "float32", dims: [3, 4], data: w(12, 3) },
        { name: "fb", dtype: "float32", dims: [3], data: w(3, 4), encoding: "typed" },
        { name: "shape", dtype: "int64", dims: [2], data: [0n, -1n] },
      ],
      nodes: [
        { op: "Conv", inputs: ["x", "cw", "cb"], outputs: ["c"], attrs: { pads: { ints: [1, 1, 1, 1] } } },
        { op: "Relu", inputs: ["c"], outputs: ["r"] },
        { op: "GlobalAveragePool", inputs: ["r"], outputs: ["g"] },
        { op: "Reshape", inputs: ["g", "shape"], outputs: ["f"] },
        { op: "Gemm", inputs: ["f", "fw", "fb"], outputs: ["y0"], attrs: { transB: { i: 1 } } },
        { op: "Softmax", inputs: ["y0"], outputs: ["y"], attrs: { axis: { i: 1 } } },
      ],
    },
  });
}

/** Flips, truncates or splices `bytes`; returns the mutant and what was done (for the report). */
function _mutate(bytes: Uint8Array, rnd: () => number): [Uint8Array, string] {
  const b = bytes.slice();
  const at = Math.floor(rnd() * b.length);
  const kind = Math.floor(rnd() * 4);
  if (kind === 0) {
    const n = 1 + Math.floor(rnd() * 8);
    for (let k = 0; k < n; k++) b[Math.floor(rnd() * b.length)] ^= 1 << Math.floor(rnd() * 8);
    return [b, `${n} bit flips`];
  }
  if (kind === 1) return [b.slice(0, at), `truncated at ${at}`];
  if (kind === 2) {
    b[at] = [0x00, 0xff, 0x7f, 0x80][Math.floor(rnd() * 4)];
    return [b, `byte ${at} set to an extreme`];
  }
  const len = 1 + Math.floor(rnd() * 16);
  const junk = Uint8Array.from({ length: len }, () => Math.floor(rnd() * 256));
  const out = new Uint8Array(b.length + len);
  out.set(b.subarray(0, at));
  out.set(junk, at);
  out.set(b.subarray(at), at + len);
  return [out, `${len} junk bytes spliced in at ${at}`];
}

const X: Tensor = { dtype: "float32", dims: [1, 2, 6, 6], data: new Float32Array(72).map((_, i) => i / 72) };

/** Runs `fn`; a KilnError or success is fine, anything else is returned as a finding. */
async function _finding(what: string, fn: () => Promise<void>): Promise<string | null> {
  try {
    await fn();
    return null;
  } catch (e) {
    if (e instanceof KilnError) {
      assert.ok(
        e.message.length > 0 && !e.message.includes("\n    at "),
        `${what}: a message without a stack`,
      );
      return null;
    }
    return `${what}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message ?? e}`;
  }
}

Deno.test("corrupted ONNX models fail with a KilnError or still work, never crash (300 seeded mutants)", async () => {
  const good = _model();
  const rng = new SeededRandom(2026);
  const rnd = () => rng.uniform();
  const findings: string[] = [];
  let worked = 0;
  for (let i = 0; i < 300; i++) {
    const [bytes, how] = _mutate(good, rnd);
    const f = await _finding(`mutant ${i} (${how})`, async () => {
      const program = compile(await parseOnnx(bytes, { inputDims: { x: [1, 2, 6, 6] } }), "ref");
      try {
        const ok = program.inputs.length === 1 && program.inputs[0].dims.join() === "1,2,6,6" &&
          program.info().arenaBytes < 64 << 20;
        if (ok && program.inputs[0].dtype === "float32") await program.eval({ x: X });
        worked++;
      } finally {
        program.dispose();
      }
    });
    if (f) findings.push(f);
  }
  assert.deepEqual(findings, []);
  assert.ok(worked > 0 && worked < 300, `some mutants still work, most do not (${worked} worked)`);
});

Deno.test("corrupted .kiln program files fail with a KilnError or still work, never crash (200 seeded mutants)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_fuzz_" });
  try {
    const program = compile(await parseOnnx(_model(), { inputDims: { x: [1, 2, 6, 6] } }), "ref");
    await save(program, `${dir}/good.kiln`);
    program.dispose();
    const good = await Deno.readFile(`${dir}/good.kiln`);
    const rng = new SeededRandom(7);
    const rnd = () => rng.uniform();
    const findings: string[] = [];
    for (let i = 0; i < 200; i++) {
      const [bytes, how] = _mutate(good, rnd);
      await Deno.writeFile(`${dir}/m.kiln`, bytes);
      const f = await _finding(`mutant ${i} (${how})`, async () => {
        const p = await load(`${dir}/m.kiln`);
        try {
          await p.eval({ x: X });
        } finally {
          p.dispose();
        }
      });
      if (f) findings.push(f);
    }
    assert.deepEqual(findings, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("corrupted safetensors files fail with a KilnError or still bind, never crash (200 seeded mutants)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_fuzz_st_" });
  const tiny = new URL("../examples/tinynet/", import.meta.url).pathname;
  try {
    const program = compile(
      await parseOnnx(`${tiny}tinynet.onnx`, {
        deferExternalWeights: true,
        inputDims: { x: [1, 3, 16, 16] },
      }),
      "ref",
    );
    const set = await WeightSet.fromOnnxDir(program, tiny);
    await writeSafetensors(`${dir}/good.safetensors`, [...set.tensors.values()]);
    const good = await Deno.readFile(`${dir}/good.safetensors`);
    const rng = new SeededRandom(11);
    const rnd = () => rng.uniform();
    const findings: string[] = [];
    for (let i = 0; i < 200; i++) {
      // half the mutants hit the JSON header, where the parsing is
      const [bytes, how] = _mutate(i % 2 ? good : good.subarray(0, 8 + 200), rnd);
      const file = i % 2 ? bytes : Uint8Array.from([...bytes, ...good.subarray(8 + 200)]);
      await Deno.writeFile(`${dir}/m.safetensors`, file);
      const f = await _finding(`mutant ${i} (${how})`, async () => {
        await program.bindWeights(await WeightSet.fromSafetensors(program, `${dir}/m.safetensors`));
      });
      if (f) findings.push(f);
    }
    program.dispose();
    assert.deepEqual(findings, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findings of longer fuzz runs stay fixed: a GRAPH or TENSOR attribute that holds none", async () => {
  const { onnx } = await import("../core/onnx/onnx_pb.js");
  const T = onnx.AttributeProto.AttributeType;
  for (const [type, kind] of [[T.GRAPH, "graph"], [T.TENSOR, "tensor"]] as const) {
    const bytes = onnx.ModelProto.encode({
      ir_version: 8,
      opset_import: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        input: [{ name: "c", type: { tensor_type: { elem_type: 9, shape: { dim: [] } } } }],
        output: [{ name: "y", type: { tensor_type: { elem_type: 1, shape: { dim: [] } } } }],
        node: [{
          op_type: "If",
          name: "if0",
          input: ["c"],
          output: ["y"],
          attribute: [{ name: "then_branch", type }],
        }],
      },
    }).finish();
    const e = await parseOnnx(bytes).then(() => undefined, (e) => e);
    assert.ok(e instanceof KilnError, String(e));
    assert.match(
      e.message,
      new RegExp(`Attribute 'then_branch' of node 'if0' \\(If\\) has type \\w+ but holds no ${kind}`),
    );
  }
});

Deno.test("a corrupted IR section (past the file checksums) fails with a KilnError, never a trap (300 seeded mutants)", async () => {
  const program = compile(await parseOnnx(_model(), { inputDims: { x: [1, 2, 6, 6] } }), "ref");
  const { ir, hostLiterals } = program.serialize();
  program.dispose();
  const rng = new SeededRandom(1);
  const rnd = () => rng.uniform();
  const findings: string[] = [];
  for (let i = 0; i < 300; i++) {
    const [bytes, how] = _mutate(ir, rnd);
    try {
      const p = deserializeProgram(bytes, hostLiterals, "ref");
      try {
        const fits = p.inputs.length === 1 && p.inputs[0].dims.join() === "1,2,6,6" &&
          p.inputs[0].dtype === "float32" && p.info().arenaBytes < 64 << 20;
        if (fits) await p.eval({ x: X });
      } finally {
        p.dispose();
      }
    } catch (e) {
      if (!(e instanceof KilnError) || e.code === "internal") {
        findings.push(`mutant ${i} (${how}): ${(e as Error).message.slice(0, 200)}`);
      }
    }
  }
  assert.deepEqual(findings, []);
});
