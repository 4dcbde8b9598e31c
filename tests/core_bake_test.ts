// Baking (`Program.bake`, the core's `bake` export): weights become literals through the ref target's
// literal passes (replace_external_weights, hoist_prepare), run by the pass manager on a copy of the
// program, over every module (If branches included); the template program is left untouched.
import assert from "node:assert/strict";
import { Engine } from "../core/engine.ts";
import { KilnError } from "../core/errors.ts";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type ModelSpec } from "../core/onnx/writer.ts";
import { compile, deserializeProgram, type Program } from "../core/program.ts";
import type { Tensor } from "../core/tensor.ts";

const LITERAL_PASSES = ["replace_external_weights", "hoist_prepare"];

/** W [3,2] (main, feeds a weight-only Transpose), B [2,3] (main, read by the else branch), A [2,3] (then branch's own). */
const W = [0.5, -1, 2, 3, -0.25, 4];
const B = [1, 2, 3, 4, 5, 6];
const A = [10, 20, 30, 40, 50, 60];
const X = [1, 2, 3, -1, -2, -3];

/** y = If(c, then: x * W^T + A, else: x * W^T - B), with W, B and A in external data "weights.bin". */
function bakeModel(): ModelSpec {
  const ext = (offset: number) => ({ location: "weights.bin", offset, length: 24 });
  return {
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [2, 3] }, { name: "c", dtype: "bool", dims: [] }],
      outputs: [{ name: "y", dtype: "float32", dims: [2, 3] }],
      initializers: [
        { name: "W", dtype: "float32", dims: [3, 2], external: ext(0) },
        { name: "B", dtype: "float32", dims: [2, 3], external: ext(24) },
      ],
      nodes: [
        {
          op: "Transpose",
          name: "transpose_w",
          inputs: ["W"],
          outputs: ["wt"],
          attrs: { perm: { ints: [1, 0] } },
        },
        { op: "Mul", name: "mul", inputs: ["x", "wt"], outputs: ["xw"] },
        {
          op: "If",
          name: "if",
          inputs: ["c"],
          outputs: ["y"],
          attrs: {
            then_branch: {
              g: {
                name: "then",
                outputs: [{ name: "then_out", dtype: "float32", dims: [2, 3] }],
                initializers: [{ name: "A", dtype: "float32", dims: [2, 3], external: ext(48) }],
                nodes: [{ op: "Add", name: "add_a", inputs: ["xw", "A"], outputs: ["then_out"] }],
              },
            },
            else_branch: {
              g: {
                name: "else",
                outputs: [{ name: "else_out", dtype: "float32", dims: [2, 3] }],
                nodes: [{ op: "Sub", name: "sub_b", inputs: ["xw", "B"], outputs: ["else_out"] }],
              },
            },
          },
        },
      ],
    },
  };
}

function f32(dims: number[], values: number[]): Tensor {
  return { dtype: "float32", dims, data: new Float32Array(values) };
}

function cond(v: boolean): Tensor {
  return { dtype: "bool", dims: [], data: new Uint8Array([v ? 1 : 0]) };
}

const WEIGHTS: Record<string, Tensor> = { W: f32([3, 2], W), B: f32([2, 3], B), A: f32([2, 3], A) };

/** The expected y, computed here: x * W^T (+ A | - B). */
function expected(c: boolean): number[] {
  return X.map((x, k) => {
    const [i, j] = [Math.floor(k / 3), k % 3];
    const xw = Math.fround(x * W[j * 2 + i]);
    return Math.fround(c ? xw + A[k] : xw - B[k]);
  });
}

async function evalY(p: Program, c: boolean): Promise<number[]> {
  const { y } = await p.eval({ x: f32([2, 3], X), c: cond(c) });
  return Array.from(y.data as Float32Array);
}

/** Writes the model and weights.bin (W, B, A) into a temp dir and parses it with deferred weights. */
async function withDeferredModel(
  fn: (template: Program, dir: string) => void | Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_bake_test_" });
  try {
    await Deno.writeFile(`${dir}/model.onnx`, buildModel(bakeModel()));
    await Deno.writeFile(`${dir}/weights.bin`, new Uint8Array(new Float32Array([...W, ...B, ...A]).buffer));
    const parsed = await parseOnnx(`${dir}/model.onnx`, {
      deferExternalWeights: true,
      inputDims: { x: [2, 3] },
    });
    assert.deepEqual(parsed.deferredWeights.toSorted(), ["A", "B", "W"]);
    const template = compile(parsed);
    try {
      await fn(template, dir);
    } finally {
      template.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The weight table bytes of docs/internals.md ("Weight table"), written independently of the host's. */
function weightTable(entries: [string, number][]): Uint8Array {
  const names = entries.map(([n]) => new TextEncoder().encode(n));
  const out = new Uint8Array(names.reduce((s, n) => s + 8 + n.length, 4));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, entries.length, true);
  let at = 4;
  entries.forEach(([, id], i) => {
    dv.setUint32(at, names[i].length, true);
    out.set(names[i], at + 4);
    dv.setInt32(at + 4 + names[i].length, id, true);
    at += 8 + names[i].length;
  });
  return out;
}

function catchKiln(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    return e;
  }
  assert.fail("expected a KilnError");
}

interface _Info {
  weights: { name: string; module: number }[];
  hostLiterals: { name: string; id: number; bytes: number }[];
  prepareCount: number;
  arenaBytes: number;
  passes: string[];
}

/** A compiled handle of the model in a raw engine (tests of the `bake` export itself). */
async function rawCompiled(dir: string): Promise<{ engine: Engine; h: number }> {
  const parsed = await parseOnnx(`${dir}/model.onnx`, {
    deferExternalWeights: true,
    inputDims: { x: [2, 3] },
  });
  const enc = parsed.graph.encode();
  const engine = new Engine();
  const e = engine.exports;
  const p = engine.put(enc);
  const h = e.load_graph(p, enc.length);
  engine.free(p);
  assert.ok(h > 0, "load_graph");
  const target = new TextEncoder().encode("ref");
  const tp = engine.put(target);
  assert.equal(e.compile(h, tp, target.length, 1, 0, 0), 0);
  engine.free(tp);
  return { engine, h };
}

function coreInfo(engine: Engine, h: number): _Info {
  assert.equal(engine.exports.info(h), 0);
  return engine.resultJson<_Info>();
}

function callBake(engine: Engine, h: number, table: Uint8Array): number {
  const tp = engine.put(table);
  const target = new TextEncoder().encode("ref");
  const np = engine.put(target);
  const copy = engine.call("bake", () => engine.exports.bake(h, tp, table.length, np, target.length));
  engine.free(tp);
  engine.free(np);
  return copy;
}

Deno.test("Program.bake() bakes a weight used inside an If branch; the template is untouched", async () => {
  await withDeferredModel(async (template, dir) => {
    assert.deepEqual(template.weights.map((w) => w.name).toSorted(), ["A", "B", "W"]);
    await template.setWeights(WEIGHTS);
    const before = { then: await evalY(template, true), else: await evalY(template, false) };
    assert.deepEqual(before, { then: expected(true), else: expected(false) });
    // the same model with its weights read from weights.bin agrees
    const read = compile(await parseOnnx(`${dir}/model.onnx`, { inputDims: { x: [2, 3] } }));
    assert.deepEqual({ then: await evalY(read, true), else: await evalY(read, false) }, before);
    read.dispose();

    const irBefore = template.serialize().ir;
    const { ir, hostLiterals } = template.bake(WEIGHTS);
    const baked = deserializeProgram(ir, hostLiterals);
    try {
      assert.deepEqual(baked.weights, []);
      assert.deepEqual(baked.info().weights, []);
      assert.deepEqual(hostLiterals.slice(-3).map((l) => l.name), ["W", "B", "A"]);
      assert.equal(baked.info().literalCount, template.info().literalCount + 3);
      assert.deepEqual({ then: await evalY(baked, true), else: await evalY(baked, false) }, before);
      // the template: same bytes, same weights, still evaluates with its bound weights
      assert.deepEqual(template.serialize().ir, irBefore);
      assert.deepEqual(template.weights.map((w) => w.name).toSorted(), ["A", "B", "W"]);
      assert.deepEqual({ then: await evalY(template, true), else: await evalY(template, false) }, before);
    } finally {
      baked.dispose();
    }
  });
});

Deno.test("Program.bake() with some weights leaves the others deferred", async () => {
  await withDeferredModel(async (template) => {
    const { ir, hostLiterals } = template.bake({ A: WEIGHTS.A });
    const baked = deserializeProgram(ir, hostLiterals);
    try {
      assert.deepEqual(baked.weights.map((w) => w.name).toSorted(), ["B", "W"]);
      assert.deepEqual(baked.weights.find((w) => w.name === "B")!.dims, [2, 3]);
      assert.equal(baked.weights.find((w) => w.name === "W")!.location, "weights.bin");
      await assert.rejects(evalY(baked, true), /weight 'W' is not bound/);
      await baked.setWeights({ W: WEIGHTS.W, B: WEIGHTS.B });
      assert.deepEqual(await evalY(baked, true), expected(true));
      assert.deepEqual(await evalY(baked, false), expected(false));
      // baking the rest of the partly baked program gives the fully baked one
      const rest = baked.bake({ W: WEIGHTS.W, B: WEIGHTS.B });
      const full = deserializeProgram(rest.ir, rest.hostLiterals);
      assert.deepEqual(full.weights, []);
      assert.deepEqual(await evalY(full, true), expected(true));
      assert.deepEqual(await evalY(full, false), expected(false));
      full.dispose();
    } finally {
      baked.dispose();
    }
  });
});

Deno.test("bake fails with a clear error on a name that is not a weight", async (t) => {
  await withDeferredModel(async (template, dir) => {
    await t.step("Program.bake names the unknown weight and changes nothing", () => {
      const irBefore = template.serialize().ir;
      const err = catchKiln(() => template.bake({ W: WEIGHTS.W, nope: WEIGHTS.B }));
      assert.equal(err.code, "weights");
      assert.match(err.message, /'nope' is not a weight of this program/);
      assert.deepEqual(template.serialize().ir, irBefore);
    });
    await t.step("the core's bake export: E_GRAPH naming it, no copy made", async () => {
      const { engine, h } = await rawCompiled(dir);
      const copy = callBake(engine, h, weightTable([["W", 0], ["nope", 1]]));
      assert.ok(copy < 0, `bake returned ${copy}`);
      const err = engine.error("bake");
      assert.equal(err.code, "graph");
      assert.equal(err.node, "nope");
      assert.match(err.message, /Cannot bake 'nope': the program has no weight of that name/);
      assert.equal(engine.broken, false);
      // the program still has its three weights
      assert.deepEqual(coreInfo(engine, h).weights.map((w) => w.name).toSorted(), ["A", "B", "W"]);
    });
    await t.step("a malformed weight table is a graph error, never a trap", async () => {
      const { engine, h } = await rawCompiled(dir);
      const good = weightTable([["W", 0]]);
      const cases: [Uint8Array, RegExp][] = [
        [good.slice(0, good.length - 2), /Bad weight table: entry 0 is truncated/],
        [new Uint8Array([...good, 0]), /Bad weight table: 1 trailing bytes/],
        [weightTable([["W", 0], ["W", 1]]), /weight 'W' is listed twice/],
        [weightTable([["W", -2]]), /weight 'W' has host literal id -2/],
        [new Uint8Array(2), /no entry count/],
      ];
      for (const [bytes, re] of cases) {
        assert.ok(callBake(engine, h, bytes) < 0);
        const err = engine.error("bake");
        assert.equal(err.code, "graph");
        assert.match(err.message, re);
      }
      assert.equal(engine.broken, false);
    });
  });
});

Deno.test("bake records the literal passes in the baked program's pass list", async () => {
  await withDeferredModel((template) => {
    const compiled = template.info().passes;
    assert.ok(compiled.includes("memory_plan"));
    assert.ok(!compiled.includes("replace_external_weights"));
    assert.ok(compiled.includes("hoist_prepare"), "hoist_prepare marks prepare work at compile too");
    const { ir, hostLiterals } = template.bake({ W: WEIGHTS.W });
    const baked = deserializeProgram(ir, hostLiterals);
    assert.deepEqual(baked.info().passes, [...compiled, ...LITERAL_PASSES]);
    assert.deepEqual(template.info().passes, compiled);
    baked.dispose();
  });
});

Deno.test("bake keeps the weight-only Transpose in the prepare step", async (t) => {
  await withDeferredModel(async (template, dir) => {
    await t.step("after Program.bake: prepareCount unchanged (> 0) and the same results", async () => {
      assert.equal(template.info().prepareCount, 1);
      const { ir, hostLiterals } = template.bake(WEIGHTS);
      const baked = deserializeProgram(ir, hostLiterals);
      assert.equal(baked.info().prepareCount, 1);
      assert.equal(baked.info().arenaBytes, template.info().arenaBytes);
      // evaluated twice per branch: the prepared transpose is reused, not recomputed per run
      for (let i = 0; i < 2; i++) {
        assert.deepEqual(await evalY(baked, true), expected(true));
        assert.deepEqual(await evalY(baked, false), expected(false));
      }
      baked.dispose();
    });
    await t.step(
      "the bake export's copy keeps the plan, is unfinalized, and runs finalized in place",
      async () => {
        const { engine, h } = await rawCompiled(dir);
        const e = engine.exports;
        const tmpl = coreInfo(engine, h);
        // A lives in the If's then branch (a submodule), W and B in main
        assert.deepEqual(tmpl.weights.map((w) => [w.name, w.module > 0]).toSorted(), [
          ["A", true],
          ["B", false],
          ["W", false],
        ]);
        const ids: Record<string, number> = { W: 0, B: 1, A: 2 };
        const copy = callBake(engine, h, weightTable(Object.entries(ids)));
        assert.ok(copy > 0, `bake returned ${copy}`);
        const info = coreInfo(engine, copy);
        assert.deepEqual(info.weights, []);
        assert.deepEqual(info.hostLiterals.map((l) => [l.name, l.id]).toSorted(), [["A", 2], ["B", 1], [
          "W",
          0,
        ]]);
        assert.equal(info.prepareCount, 1);
        assert.equal(info.arenaBytes, tmpl.arenaBytes);
        assert.deepEqual(info.passes, [...tmpl.passes, ...LITERAL_PASSES]);
        // not finalized: run refuses; the template still has its weights
        assert.notEqual(e.run(copy), 0);
        assert.equal(coreInfo(engine, h).weights.length, 3);
        assert.equal(e.finalize(copy), 0);
        for (const [name, id] of Object.entries(ids)) {
          const ptr = e.host_literal_ptr(copy, id);
          assert.ok(ptr > 0, `host literal ${name}`);
          engine.u8().set(new Uint8Array((WEIGHTS[name].data as Float32Array).buffer), ptr);
        }
        assert.equal(e.prepare(copy), 0);
        engine.u8().set(new Uint8Array(new Float32Array(X).buffer), e.input_ptr(copy, 0));
        for (const c of [true, false]) {
          engine.u8()[e.input_ptr(copy, 1)] = c ? 1 : 0;
          assert.equal(e.run(copy), 0);
          const y = new Float32Array(engine.get(e.output_ptr(copy, 0), 24).buffer);
          assert.deepEqual(Array.from(y), expected(c));
        }
        e.dispose(copy);
        e.dispose(h);
      },
    );
  });
});
