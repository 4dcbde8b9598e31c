// Ops whose output size depends on data (wasm/ops/dynamic.ts; docs/internals.md "Bounded extents"):
// NonZero, Compress, Unique and NonMaxSuppression compiled with NON-constant inputs (the bounded
// path: memory planned for an upper bound, outputs trimmed to the actual extent), each program
// run on several random inputs with different extents (zero included) against onnxruntime-node;
// the same models with the deciding inputs bound as constants (exact shapes, folded); Cast after
// a bounded value; the refusal of other consumers and of the gpu target; save/load; and
// TfIdfVectorizer (a static shape) in its three modes.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type NodeSpec } from "../core/onnx/writer.ts";
import { compile, deserializeProgram, type Program } from "../core/program.ts";
import { load, save } from "../core/save_load.ts";
import { type DTypeName, elementCount, type Tensor } from "../core/tensor.ts";
import { SeededRandom } from "../core/weights/random.ts";
import { type Backend, NODE_TEST_DIR, nodeTestsMissing, runCase } from "./conformance/run.ts";
import { modelInfo } from "./conformance/model_info.ts";
import { runOrt } from "./util/ort.ts";

interface In {
  name: string;
  dtype: DTypeName;
  dims: number[];
}

interface Out {
  name: string;
  dtype: DTypeName;
}

function _model(
  ins: In[],
  outs: Out[],
  nodes: NodeSpec[],
  inits: { name: string; t: Tensor }[] = [],
): Uint8Array {
  return buildModel({
    opset: 18,
    graph: {
      inputs: ins.map((i) => ({ name: i.name, dtype: i.dtype, dims: i.dims })),
      outputs: outs.map((o) => ({ name: o.name, dtype: o.dtype })),
      initializers: inits.map((x) => ({
        name: x.name,
        dtype: x.t.dtype,
        dims: x.t.dims,
        data: Array.from(x.t.data as ArrayLike<number | bigint>) as number[] | bigint[],
      })),
      nodes,
    },
  });
}

function _f32(dims: number[], f: (i: number) => number): Tensor {
  return { dtype: "float32", dims, data: Float32Array.from({ length: elementCount(dims) }, (_, i) => f(i)) };
}

function _i64(dims: number[], f: (i: number) => number): Tensor {
  return {
    dtype: "int64",
    dims,
    data: BigInt64Array.from({ length: elementCount(dims) }, (_, i) => BigInt(f(i))),
  };
}

function _bool(dims: number[], f: (i: number) => boolean): Tensor {
  return {
    dtype: "bool",
    dims,
    data: Uint8Array.from({ length: elementCount(dims) }, (_, i) => f(i) ? 1 : 0),
  };
}

function _same(got: Record<string, Tensor>, want: Record<string, Tensor>, label: string): void {
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    assert.ok(g, `${label}: kiln returned no '${name}'`);
    assert.equal(g.dtype, w.dtype, `${label}: ${name} dtype`);
    assert.deepEqual(g.dims, w.dims, `${label}: ${name} dims`);
    const gv = Array.from(g.data as ArrayLike<number | bigint>);
    const wv = Array.from(w.data as ArrayLike<number | bigint>);
    assert.equal(gv.length, wv.length, `${label}: ${name} length`);
    for (let i = 0; i < wv.length; i++) {
      const a = gv[i], b = wv[i];
      if (typeof b === "number" && Number.isNaN(b)) {
        assert.ok(Number.isNaN(a as number), `${label}: ${name}[${i}] NaN`);
      } else assert.equal(a, b, `${label}: ${name}[${i}] is ${a}, onnxruntime gives ${b}`);
    }
  }
}

/**
 * Compiles `model` once with every input left non-constant, checks that the outputs named in
 * `bounded` are planned with bounded dims, then runs each feed on kiln and onnxruntime; returns
 * the output dims kiln gave per feed (so callers can check the extents varied).
 */
async function _bounded(
  model: Uint8Array,
  feeds: Record<string, Tensor>[],
  label: string,
  bounded: string[],
): Promise<number[][][]> {
  const program = compile(await parseOnnx(model), "ref");
  const seen: number[][][] = [];
  try {
    for (const o of program.outputs) {
      assert.equal(!!o.bounded?.length, bounded.includes(o.name), `${label}: output ${o.name} bounded`);
    }
    for (const [k, feed] of feeds.entries()) {
      const want = await runOrt(model, feed);
      const got = await program.eval(feed);
      _same(got, want, `${label} feed ${k}`);
      for (const o of program.outputs) {
        // every dim at most its planned length; exact dims equal to it
        got[o.name].dims.forEach((d, i) => {
          if (o.bounded?.includes(i)) {
            assert.ok(d <= o.dims[i], `${label}: ${o.name} dim ${i} within its bound`);
          } else assert.equal(d, o.dims[i], `${label}: ${o.name} dim ${i} exact`);
        });
      }
      seen.push(Object.keys(want).map((n) => got[n].dims));
    }
  } finally {
    program.dispose();
  }
  return seen;
}

/** The same model with the named inputs bound as compile-time constants: exact shapes, same values. */
async function _constant(
  model: Uint8Array,
  feed: Record<string, Tensor>,
  names: string[],
  label: string,
): Promise<void> {
  const constantInputs: Record<string, Tensor> = {};
  const rest: Record<string, Tensor> = {};
  for (const [n, t] of Object.entries(feed)) {
    if (names.includes(n)) constantInputs[n] = t;
    else rest[n] = t;
  }
  const want = await runOrt(model, feed);
  const program = compile(await parseOnnx(model, { constantInputs }), "ref");
  try {
    for (const [n, w] of Object.entries(want)) {
      const o = program.outputs.find((o) => o.name === n);
      assert.deepEqual(o?.dims, w.dims, `${label}: ${n} has its exact dims`);
      assert.equal(o?.bounded, undefined, `${label}: ${n} is not bounded`);
    }
    _same(await program.eval(rest), want, `${label} (constants)`);
  } finally {
    program.dispose();
  }
}

Deno.test("NonZero with a non-constant input: int64 [rank, count] in row-major order, trimmed per eval", async (t) => {
  const rng = new SeededRandom(11);
  for (
    const [dtype, dims] of [["float32", [3, 4]], ["int32", [2, 3, 5]], ["bool", [7]], [
      "float32",
      [],
    ]] as const
  ) {
    await t.step(`${dtype}[${dims}]`, async () => {
      const model = _model([{ name: "x", dtype, dims: [...dims] }], [{ name: "y", dtype: "int64" }], [
        { op: "NonZero", inputs: ["x"], outputs: ["y"] },
      ]);
      const feeds: Record<string, Tensor>[] = [];
      for (const density of [0, 0.3, 0.7, 1]) {
        const n = elementCount([...dims]);
        const vals = Array.from(
          { length: n },
          () => rng.uniform() < density ? (rng.uniform() < 0.5 ? -1 : 2) : 0,
        );
        const data = dtype === "int32"
          ? Int32Array.from(vals)
          : dtype === "bool"
          ? Uint8Array.from(vals.map((v) => v ? 1 : 0))
          : Float32Array.from(vals.map((v, i) => v === 0 && i % 2 ? -0 : v)); // -0.0 counts as zero
        feeds.push({ x: { dtype, dims: [...dims], data } });
      }
      const seen = await _bounded(model, feeds, `NonZero ${dtype}[${dims}]`, ["y"]);
      assert.equal(seen[0][0][1], 0, "an all-zero input gives an empty result");
      assert.equal(seen[3][0][1], elementCount([...dims]), "an all-non-zero input fills the bound");
      await _constant(model, feeds[2], ["x"], `NonZero ${dtype}[${dims}]`);
    });
  }
});

Deno.test("NonZero counts NaN as non-zero", async () => {
  const model = _model([{ name: "x", dtype: "float32", dims: [4] }], [{ name: "y", dtype: "int64" }], [
    { op: "NonZero", inputs: ["x"], outputs: ["y"] },
  ]);
  const program = compile(await parseOnnx(model), "ref");
  try {
    const out = await program.eval({ x: _f32([4], (i) => [0, NaN, -0, 3][i]) });
    assert.deepEqual(out.y.dims, [1, 2]);
    assert.deepEqual(Array.from(out.y.data as BigInt64Array), [1n, 3n]);
  } finally {
    program.dispose();
  }
});

Deno.test("Compress with a non-constant condition: axis, negative axis, no axis, short condition", async (t) => {
  const rng = new SeededRandom(12);
  const cases: { axis?: number; dims: number[]; cond: number }[] = [
    { axis: 0, dims: [5, 3], cond: 5 },
    { axis: 1, dims: [2, 6, 3], cond: 6 },
    { axis: -1, dims: [2, 3, 4], cond: 4 },
    { dims: [3, 4], cond: 12 }, // no axis: the flattened input
    { axis: 1, dims: [3, 7], cond: 4 }, // condition shorter than the axis
    { dims: [2, 5], cond: 6 }, // flattened, shorter condition
  ];
  for (const c of cases) {
    await t.step(`axis=${c.axis ?? "none"} input [${c.dims}] condition [${c.cond}]`, async () => {
      const model = _model(
        [{ name: "x", dtype: "float32", dims: c.dims }, { name: "c", dtype: "bool", dims: [c.cond] }],
        [{ name: "y", dtype: "float32" }],
        [{
          op: "Compress",
          inputs: ["x", "c"],
          outputs: ["y"],
          attrs: c.axis === undefined ? {} : { axis: { i: c.axis } },
        }],
      );
      const x = _f32(c.dims, (i) => i + 0.5);
      const feeds = [0, 0.4, 1].map((p) => ({ x, c: _bool([c.cond], () => rng.uniform() < p) }));
      const seen = await _bounded(model, feeds, `Compress axis=${c.axis}`, ["y"]);
      const ax = c.axis === undefined ? 0 : (c.axis + c.dims.length) % c.dims.length;
      assert.equal(seen[0][0][ax], 0, "an all-false condition selects nothing");
      await _constant(model, feeds[1], ["c"], `Compress axis=${c.axis}`);
    });
  }
  await t.step("int64 data, condition longer than the axis is read up to the axis", async () => {
    const model = _model(
      [{ name: "x", dtype: "int64", dims: [3, 2] }, { name: "c", dtype: "bool", dims: [3] }],
      [{ name: "y", dtype: "int64" }],
      [{ op: "Compress", inputs: ["x", "c"], outputs: ["y"], attrs: { axis: { i: 0 } } }],
    );
    await _bounded(
      model,
      [{ x: _i64([3, 2], (i) => i * 7 - 5), c: _bool([3], (i) => i != 1) }],
      "Compress int64",
      ["y"],
    );
  });
});

Deno.test("Unique with a non-constant input: sorted 0/1, flattened or along an axis, all four outputs", async (t) => {
  const rng = new SeededRandom(13);
  const outs = (dtype: DTypeName): Out[] => [
    { name: "y", dtype },
    { name: "indices", dtype: "int64" },
    { name: "inverse", dtype: "int64" },
    { name: "counts", dtype: "int64" },
  ];
  const cases: { axis?: number; sorted: number; dims: number[]; dtype: DTypeName; levels: number }[] = [
    { sorted: 1, dims: [12], dtype: "float32", levels: 4 },
    { sorted: 0, dims: [3, 5], dtype: "float32", levels: 5 },
    { sorted: 1, dims: [4, 3], dtype: "int64", levels: 3 },
    { sorted: 0, dims: [10], dtype: "int64", levels: 6 },
    { axis: 0, sorted: 1, dims: [6, 2], dtype: "float32", levels: 2 },
    { axis: 1, sorted: 1, dims: [2, 7, 2], dtype: "float32", levels: 2 },
    { axis: -1, sorted: 1, dims: [2, 6], dtype: "int64", levels: 2 },
    { axis: 0, sorted: 0, dims: [8, 2], dtype: "int64", levels: 2 },
  ];
  for (const c of cases) {
    const label = `Unique axis=${c.axis ?? "none"} sorted=${c.sorted} ${c.dtype}[${c.dims}]`;
    await t.step(label, async () => {
      const attrs: NodeSpec["attrs"] = { sorted: { i: c.sorted } };
      if (c.axis !== undefined) attrs.axis = { i: c.axis };
      const model = _model([{ name: "x", dtype: c.dtype, dims: c.dims }], outs(c.dtype), [
        { op: "Unique", inputs: ["x"], outputs: ["y", "indices", "inverse", "counts"], attrs },
      ]);
      const make = (levels: number): Tensor => {
        const v = (): number => Math.floor(rng.uniform() * levels) - 1;
        return c.dtype === "int64" ? _i64(c.dims, v) : _f32(c.dims, () => v() * 0.75);
      };
      const feeds = [make(c.levels), make(1), make(1000)].map((x) => ({ x }));
      const seen = await _bounded(model, feeds, label, ["y", "indices", "counts"]);
      assert.equal(seen[1][1][0], 1, "a constant input has one unique value");
      await _constant(model, feeds[0], ["x"], label);
    });
  }
  await t.step("an empty input gives empty outputs", async () => {
    const model = _model([{ name: "x", dtype: "float32", dims: [0] }], outs("float32"), [
      { op: "Unique", inputs: ["x"], outputs: ["y", "indices", "inverse", "counts"] },
    ]);
    await _bounded(model, [{ x: _f32([0], () => 0) }], "Unique empty", ["y", "indices", "counts"]);
  });
});

Deno.test("Unique treats NaNs as one value after every number, -0.0 as 0.0 (numpy's unique)", async () => {
  const model = _model([{ name: "x", dtype: "float32", dims: [7] }], [
    { name: "y", dtype: "float32" },
    { name: "indices", dtype: "int64" },
    { name: "inverse", dtype: "int64" },
    { name: "counts", dtype: "int64" },
  ], [{ op: "Unique", inputs: ["x"], outputs: ["y", "indices", "inverse", "counts"] }]);
  const program = compile(await parseOnnx(model), "ref");
  try {
    const out = await program.eval({ x: _f32([7], (i) => [NaN, 2, -0, NaN, 0, -1, 2][i]) });
    const y = Array.from(out.y.data as Float32Array);
    assert.deepEqual(out.y.dims, [4]);
    assert.deepEqual(y.slice(0, 3), [-1, -0, 2]);
    assert.ok(Object.is(y[1], -0), "the first occurrence (-0.0) represents the zeros");
    assert.ok(Number.isNaN(y[3]));
    assert.deepEqual(Array.from(out.indices.data as BigInt64Array), [5n, 2n, 1n, 0n]);
    assert.deepEqual(Array.from(out.inverse.data as BigInt64Array), [3n, 2n, 1n, 3n, 1n, 0n, 2n]);
    assert.deepEqual(Array.from(out.counts.data as BigInt64Array), [1n, 2n, 2n, 2n]);
  } finally {
    program.dispose();
  }
});

/** Random boxes [B, N, 4]: clustered so that some overlap, corners in either order when `flip`. */
function _boxes(rng: SeededRandom, B: number, N: number, center: boolean, flip: boolean): Tensor {
  const d = new Float32Array(B * N * 4);
  for (let i = 0; i < B * N; i++) {
    const cx = Math.floor(rng.uniform() * 4) * 2 + rng.uniform() * 0.5;
    const cy = Math.floor(rng.uniform() * 3) * 2 + rng.uniform() * 0.5;
    const w = 0.5 + rng.uniform() * 2, h = 0.5 + rng.uniform() * 2;
    if (center) d.set([cx, cy, w, h], i * 4);
    else if (flip && rng.uniform() < 0.5) d.set([cy + h / 2, cx + w / 2, cy - h / 2, cx - w / 2], i * 4);
    else d.set([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], i * 4);
  }
  return { dtype: "float32", dims: [B, N, 4], data: d };
}

Deno.test("NonMaxSuppression with non-constant inputs: box formats, thresholds, per batch and class", async (t) => {
  const rng = new SeededRandom(14);
  const B = 2, C = 3, N = 9;
  for (const center of [0, 1]) {
    await t.step(`center_point_box=${center}, every input non-constant`, async () => {
      const model = _model(
        [
          { name: "boxes", dtype: "float32", dims: [B, N, 4] },
          { name: "scores", dtype: "float32", dims: [B, C, N] },
          { name: "max", dtype: "int64", dims: [1] },
          { name: "iou", dtype: "float32", dims: [1] },
          { name: "score", dtype: "float32", dims: [1] },
        ],
        [{ name: "sel", dtype: "int64" }],
        [{
          op: "NonMaxSuppression",
          inputs: ["boxes", "scores", "max", "iou", "score"],
          outputs: ["sel"],
          attrs: { center_point_box: { i: center } },
        }],
      );
      const feeds: Record<string, Tensor>[] = [];
      for (
        const [mx, iou, sc] of [[3, 0.5, 0.2], [100, 0.3, 0], [2, 1, 0.5], [0, 0.5, 0], [5, 0.5, 2], [
          -1,
          0.5,
          0,
        ]]
      ) {
        feeds.push({
          boxes: _boxes(rng, B, N, center === 1, true),
          scores: _f32([B, C, N], () => Math.round(rng.uniform() * 1000) / 1000),
          max: _i64([1], () => mx),
          iou: _f32([1], () => iou),
          score: _f32([1], () => sc),
        });
      }
      const seen = await _bounded(model, feeds, `NMS center=${center}`, ["sel"]);
      assert.equal(seen[3][0][0], 0, "max_output_boxes_per_class 0 selects nothing");
      assert.equal(seen[4][0][0], 0, "a score threshold above every score selects nothing");
      await _constant(model, feeds[0], ["boxes", "scores", "max", "iou", "score"], `NMS center=${center}`);
    });
  }
  await t.step("constant max_output_boxes_per_class bounds the output; no score threshold", async () => {
    const model = _model(
      [{ name: "boxes", dtype: "float32", dims: [1, N, 4] }, {
        name: "scores",
        dtype: "float32",
        dims: [1, 2, N],
      }],
      [{ name: "sel", dtype: "int64" }],
      [{ op: "NonMaxSuppression", inputs: ["boxes", "scores", "max", "iou"], outputs: ["sel"] }],
      [{ name: "max", t: _i64([1], () => 2) }, { name: "iou", t: _f32([1], () => 0.4) }],
    );
    const program = compile(await parseOnnx(model), "ref");
    try {
      assert.deepEqual(program.outputs[0].dims, [4, 3], "min(2, 9) boxes x 2 classes x 1 batch");
    } finally {
      program.dispose();
    }
    const feeds = [0, 1, 2].map(() => ({
      boxes: _boxes(rng, 1, N, false, false),
      scores: _f32([1, 2, N], () => rng.uniform()),
    }));
    await _bounded(model, feeds, "NMS constant max", ["sel"]);
  });
  await t.step("absent max_output_boxes_per_class selects nothing", async () => {
    const model = _model(
      [{ name: "boxes", dtype: "float32", dims: [1, N, 4] }, {
        name: "scores",
        dtype: "float32",
        dims: [1, 1, N],
      }],
      [{ name: "sel", dtype: "int64" }],
      [{ op: "NonMaxSuppression", inputs: ["boxes", "scores"], outputs: ["sel"] }],
    );
    await _bounded(
      model,
      [{ boxes: _boxes(rng, 1, N, false, false), scores: _f32([1, 1, N], () => rng.uniform()) }],
      "NMS no max",
      [],
    );
  });
  await t.step("iou_threshold outside [0, 1] is a run-time error naming the node", async () => {
    const model = _model(
      [
        { name: "boxes", dtype: "float32", dims: [1, 2, 4] },
        { name: "scores", dtype: "float32", dims: [1, 1, 2] },
        { name: "max", dtype: "int64", dims: [1] },
        { name: "iou", dtype: "float32", dims: [1] },
      ],
      [{ name: "sel", dtype: "int64" }],
      [{
        op: "NonMaxSuppression",
        name: "nms0",
        inputs: ["boxes", "scores", "max", "iou"],
        outputs: ["sel"],
      }],
    );
    const program = compile(await parseOnnx(model), "ref");
    try {
      await assert.rejects(
        program.eval({
          boxes: _f32([1, 2, 4], (i) => i),
          scores: _f32([1, 1, 2], () => 1),
          max: _i64([1], () => 1),
          iou: _f32([1], () => 1.5),
        }),
        /nms0[\s\S]*iou_threshold/,
      );
    } finally {
      program.dispose();
    }
  });
});

Deno.test("A bounded value feeds Cast (the extent passes on) but no other op: the compile names both nodes", async (t) => {
  await t.step("NonZero -> Cast is trimmed like NonZero", async () => {
    const model = _model([{ name: "x", dtype: "float32", dims: [2, 3] }], [{ name: "y", dtype: "float32" }], [
      { op: "NonZero", inputs: ["x"], outputs: ["nz"] },
      { op: "Cast", inputs: ["nz"], outputs: ["y"], attrs: { to: { i: 1 } } },
    ]);
    await _bounded(
      model,
      [{ x: _f32([2, 3], (i) => i % 2) }, { x: _f32([2, 3], () => 0) }, { x: _f32([2, 3], () => 1) }],
      "NonZero->Cast",
      ["y"],
    );
  });
  await t.step("NonZero -> Add is refused", async () => {
    const model = _model(
      [{ name: "x", dtype: "float32", dims: [2, 3] }, { name: "b", dtype: "int64", dims: [1] }],
      [{ name: "y", dtype: "int64" }],
      [
        { op: "NonZero", name: "nz_node", inputs: ["x"], outputs: ["nz"] },
        { op: "Add", name: "add_node", inputs: ["nz", "b"], outputs: ["y"] },
      ],
    );
    await assert.rejects(
      async () => compile(await parseOnnx(model), "ref"),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "needs_constant", "binding the deciding input as a constant would help");
        assert.match(e.message, /add_node/);
        assert.match(e.message, /nz_node/);
        assert.match(e.message, /depends on data/);
        assert.match(e.message, /issue 11 part 3/);
        return true;
      },
    );
    // with the deciding input constant the shapes are exact and Add is fine
    const x = _f32([2, 3], (i) => i % 3);
    const b = _i64([1], () => 10);
    const program = compile(await parseOnnx(model, { constantInputs: { x } }), "ref");
    try {
      _same(await program.eval({ b }), await runOrt(model, { x, b }), "NonZero->Add with a constant x");
    } finally {
      program.dispose();
    }
  });
});

Deno.test("The gpu target refuses a program with a bounded value at compile time, naming the node", async () => {
  const model = _model([{ name: "x", dtype: "float32", dims: [4] }], [{ name: "y", dtype: "int64" }], [
    { op: "NonZero", name: "nz_node", inputs: ["x"], outputs: ["y"] },
  ]);
  const refused = (e: Error & { code?: string }): boolean => {
    assert.match(e.message, /nz_node[\s\S]*depends on data/);
    assert.equal(e.code, "needs_constant", "binding x as a constant would help");
    return true;
  };
  await assert.rejects(async () => compile(await parseOnnx(model), "gpu"), refused);
  const ref = compile(await parseOnnx(model), "ref");
  try {
    const { ir, hostLiterals } = ref.serialize();
    assert.throws(() => deserializeProgram(ir, hostLiterals, "gpu"), refused);
  } finally {
    ref.dispose();
  }
});

Deno.test("save/load keeps bounded outputs: the loaded program trims them per eval", async () => {
  const model = _model(
    [{ name: "x", dtype: "int64", dims: [3, 4] }],
    [{ name: "y", dtype: "int64" }, { name: "idx", dtype: "int64" }, { name: "nz", dtype: "int64" }],
    [
      { op: "Unique", inputs: ["x"], outputs: ["y", "idx"], attrs: { axis: { i: 1 } } },
      { op: "NonZero", inputs: ["x"], outputs: ["nz"] },
    ],
  );
  const dir = await Deno.makeTempDir();
  let loaded: Program | undefined;
  try {
    const program = compile(await parseOnnx(model), "ref");
    await save(program, `${dir}/dyn.kiln`);
    program.dispose();
    loaded = await load(`${dir}/dyn.kiln`);
    const rng = new SeededRandom(15);
    for (const levels of [1, 2, 50]) {
      const feed = { x: _i64([3, 4], () => Math.floor(rng.uniform() * levels)) };
      _same(await loaded.eval(feed), await runOrt(model, feed), `loaded, levels ${levels}`);
    }
  } finally {
    loaded?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TfIdfVectorizer matches onnxruntime in TF, IDF and TFIDF modes, skips and n-gram ranges", async (t) => {
  const rng = new SeededRandom(16);
  const pool = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7, 2, 3, 3, 4]; // 4 unigrams, then 5 bigrams
  const base = {
    ngram_counts: { ints: [0, 4] },
    ngram_indexes: { ints: [0, 1, 2, 3, 4, 5, 6, 7, 8] },
    pool_int64s: { ints: pool },
  };
  const cases: {
    mode: string;
    min: number;
    max: number;
    skip: number;
    weights?: boolean;
    dims: number[];
    dtype: DTypeName;
  }[] = [
    { mode: "TF", min: 1, max: 2, skip: 0, dims: [12], dtype: "int64" },
    { mode: "TF", min: 2, max: 2, skip: 3, dims: [2, 10], dtype: "int32" },
    { mode: "IDF", min: 1, max: 2, skip: 2, dims: [3, 8], dtype: "int64" },
    { mode: "IDF", min: 1, max: 1, skip: 0, weights: true, dims: [9], dtype: "int32" },
    { mode: "TFIDF", min: 1, max: 2, skip: 5, weights: true, dims: [2, 12], dtype: "int64" },
    { mode: "TFIDF", min: 1, max: 2, skip: 1, dims: [14], dtype: "int32" },
  ];
  for (const c of cases) {
    const label = `${c.mode} ${c.min}..${c.max}-grams skip ${c.skip}${
      c.weights ? " weighted" : ""
    } ${c.dtype}[${c.dims}]`;
    await t.step(label, async () => {
      const attrs: NodeSpec["attrs"] = {
        ...base,
        mode: { s: c.mode },
        min_gram_length: { i: c.min },
        max_gram_length: { i: c.max },
        max_skip_count: { i: c.skip },
      };
      if (c.weights) attrs.weights = { floats: Array.from({ length: 9 }, (_, i) => 0.5 + i * 0.25) };
      const model = _model([{ name: "x", dtype: c.dtype, dims: c.dims }], [{ name: "y", dtype: "float32" }], [
        { op: "TfIdfVectorizer", inputs: ["x"], outputs: ["y"], attrs },
      ]);
      const program = compile(await parseOnnx(model), "ref");
      try {
        for (let k = 0; k < 3; k++) {
          const vals = Array.from({ length: elementCount(c.dims) }, () => 2 + Math.floor(rng.uniform() * 7));
          const x: Tensor = c.dtype === "int64"
            ? { dtype: "int64", dims: c.dims, data: BigInt64Array.from(vals.map(BigInt)) }
            : { dtype: "int32", dims: c.dims, data: Int32Array.from(vals) };
          _same(await program.eval({ x }), await runOrt(model, { x }), `${label} feed ${k}`);
        }
      } finally {
        program.dispose();
      }
    });
  }
  await t.step("pool_strings is refused with a clear error", async () => {
    const model = _model([{ name: "x", dtype: "int64", dims: [4] }], [{ name: "y", dtype: "float32" }], [
      {
        op: "TfIdfVectorizer",
        name: "tfidf0",
        inputs: ["x"],
        outputs: ["y"],
        attrs: {
          mode: { s: "TF" },
          min_gram_length: { i: 1 },
          max_gram_length: { i: 1 },
          max_skip_count: { i: 0 },
          ngram_counts: { ints: [0] },
          ngram_indexes: { ints: [0, 1] },
          pool_strings: { strings: ["a", "b"] },
        },
      },
    ]);
    await assert.rejects(async () => compile(await parseOnnx(model), "ref"), /tfidf0[\s\S]*pool_strings/);
  });
  await t.step("a bad mode is refused naming the node", async () => {
    const model = _model([{ name: "x", dtype: "int64", dims: [4] }], [{ name: "y", dtype: "float32" }], [
      {
        op: "TfIdfVectorizer",
        name: "tfidf1",
        inputs: ["x"],
        outputs: ["y"],
        attrs: {
          ...base,
          mode: { s: "BM25" },
          min_gram_length: { i: 1 },
          max_gram_length: { i: 2 },
          max_skip_count: { i: 0 },
        },
      },
    ]);
    await assert.rejects(async () => compile(await parseOnnx(model), "ref"), /tfidf1[\s\S]*mode/);
  });
});

const _CONFORMANCE = [
  "test_nonzero_example",
  "test_compress_0",
  "test_compress_1",
  "test_compress_default_axis",
  "test_compress_negative_axis",
  "test_unique_not_sorted_without_axis",
  "test_unique_sorted_with_axis",
  "test_unique_sorted_with_axis_3d",
  "test_unique_sorted_with_negative_axis",
  "test_unique_sorted_without_axis",
  "test_nonmaxsuppression_center_point_box_format",
  "test_nonmaxsuppression_flipped_coordinates",
  "test_nonmaxsuppression_identical_boxes",
  "test_nonmaxsuppression_limit_output_size",
  "test_nonmaxsuppression_single_box",
  "test_nonmaxsuppression_suppress_by_IOU",
  "test_nonmaxsuppression_suppress_by_IOU_and_scores",
  "test_nonmaxsuppression_two_batches",
  "test_nonmaxsuppression_two_classes",
  "test_tfidfvectorizer_tf_batch_onlybigrams_skip0",
  "test_tfidfvectorizer_tf_batch_onlybigrams_skip5",
  "test_tfidfvectorizer_tf_batch_uniandbigrams_skip5",
  "test_tfidfvectorizer_tf_only_bigrams_skip0",
  "test_tfidfvectorizer_tf_onlybigrams_levelempty",
  "test_tfidfvectorizer_tf_onlybigrams_skip5",
  "test_tfidfvectorizer_tf_uniandbigrams_skip5",
];

/**
 * The ref target with a check per compile: `bounded` true: the data-dependent outputs are bounded
 * (nothing bound as a constant); false: every input is bound as a constant and no output is bounded.
 */
function _backend(bounded: boolean): Backend {
  return {
    name: bounded ? "kiln ref, bounded" : "kiln ref, all constants",
    async run(modelPath, feeds, { inputDims, constantInputs }) {
      const all = bounded ? constantInputs : { ...constantInputs, ...feeds };
      const model = await parseOnnx(modelPath, { inputDims: bounded ? inputDims : {}, constantInputs: all });
      const program = compile(model, "ref", { validate: true });
      try {
        const isTfIdf = modelPath.includes("tfidf");
        const anyBounded = program.outputs.some((o) => o.bounded?.length);
        assert.equal(anyBounded, bounded && !isTfIdf, `${modelPath}: bounded outputs`);
        return await program.eval(bounded ? feeds : {});
      } finally {
        program.dispose();
      }
    },
  };
}

Deno.test({
  name:
    "The ONNX backend node tests of these ops pass through the bounded path and with every input constant",
  ignore: nodeTestsMissing() !== null,
  async fn(t) {
    for (const bounded of [true, false]) {
      for (const name of _CONFORMANCE) {
        await t.step(`${name} (${bounded ? "bounded" : "constants"})`, async () => {
          const dir = `${NODE_TEST_DIR}/${name}`;
          const info = modelInfo(await Deno.readFile(`${dir}/model.onnx`));
          const r = await runCase(dir, name, info.ops[0] ?? "?", info, _backend(bounded));
          assert.equal(r.status, "pass", `${name}: ${r.reason ?? ""}`);
          assert.equal(r.constantInputs, "none", `${name}: passed without the harness's constant retry`);
        });
      }
    }
  },
});
