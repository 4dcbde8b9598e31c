/**
 * Shape, data-movement and indexing ops (wasm/ops/shape/, wasm/ops/indexing.ts,
 * wasm/ops/data/): single-node graphs compiled on `ref`, checking the behaviours that the
 * ONNX backend node tests leave out (opset-dependent inputs, clamping, pad modes, ties,
 * reductions, error messages) and larger cases against a plain JS reference.
 */
import assert from "node:assert/strict";
import { type AttrValue, GraphBuilder } from "../core/ir/builder.ts";
import type { ValueInfo } from "../core/onnx/import.ts";
import { compile } from "../core/program.ts";
import { buildModel } from "../core/onnx/writer.ts";
import { runOrt } from "./util/ort.ts";
import { KilnError } from "../core/errors.ts";
import { type DTypeName, onnxCode, type Tensor, type TypedArray } from "../core/tensor.ts";

type Values = readonly (number | bigint)[];

/** A host tensor of `dtype` from plain numbers (float16 values are raw bits). */
function tensor(dtype: DTypeName, dims: number[], values: Values): Tensor {
  const n = values.length;
  let data: TypedArray;
  switch (dtype) {
    case "float32":
      data = Float32Array.from(values, Number);
      break;
    case "float64":
      data = Float64Array.from(values, Number);
      break;
    case "int64":
      data = BigInt64Array.from(values, (v) => BigInt(v));
      break;
    case "int32":
      data = Int32Array.from(values, Number);
      break;
    case "int8":
      data = Int8Array.from(values, Number);
      break;
    case "uint8":
    case "bool":
      data = Uint8Array.from(values, Number);
      break;
    case "float16":
    case "uint16":
      data = Uint16Array.from(values, Number);
      break;
    default:
      throw new Error(`tensor(): dtype ${dtype} not handled by this test`);
  }
  assert.equal(n, dims.reduce((a, b) => a * b, 1), `tensor(): ${n} values for dims [${dims}]`);
  return { dtype, dims, data };
}

function values(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** An input: a tensor and whether it is a compile-time constant (literal) or a run-time input. */
interface Arg {
  t: Tensor;
  constant?: boolean;
}

const lit = (t: Tensor): Arg => ({ t, constant: true });
const inp = (t: Tensor): Arg => ({ t });

interface RunOptions {
  opset?: number;
  outputs?: number;
}

/** Compiles a one-node graph on `ref` and evaluates it; returns the node's outputs in order. */
async function run(
  op: string,
  args: (Arg | null)[],
  attrs: Record<string, AttrValue> = {},
  opts: RunOptions = {},
): Promise<Tensor[]> {
  const opset = opts.opset ?? 18;
  const g = new GraphBuilder(opset);
  const feeds: Record<string, Tensor> = {};
  const inputs: ValueInfo[] = [];
  const refs = args.map((a, i) => {
    if (a === null) return null;
    const name = `x${i}`;
    const bytes = new Uint8Array(a.t.data.buffer, a.t.data.byteOffset, a.t.data.byteLength);
    if (a.constant) return g.main.literal(name, { dtype: onnxCode(a.t.dtype), dims: a.t.dims, bytes });
    feeds[name] = a.t;
    inputs.push({ name, dtype: a.t.dtype, dims: a.t.dims });
    return g.main.param(name, onnxCode(a.t.dtype), a.t.dims);
  });
  const n = opts.outputs ?? 1;
  const outs = g.main.node(op, refs, attrs, n, `${op.toLowerCase()}_node`);
  const names = outs.map((_, i) => `y${i}`);
  g.main.ret(outs, names);
  const prog = compile(
    {
      graph: g,
      hostLiterals: [],
      inputs,
      outputs: names.map((name) => ({ name })),
      opset,
      fixedWeights: [],
      deferredWeights: [],
    },
    "ref",
    { validate: true },
  );
  try {
    const res = await prog.eval(feeds);
    return names.map((name) => res[name]);
  } finally {
    prog.dispose();
  }
}

function check(t: Tensor, dtype: DTypeName, dims: number[], want: Values, tol = 0): void {
  assert.equal(t.dtype, dtype);
  assert.deepEqual(t.dims, dims);
  const got = values(t);
  const exp = want.map(Number);
  if (tol === 0) assert.deepEqual(got, exp);
  else {
    assert.equal(got.length, exp.length);
    got.forEach((v, i) => assert.ok(Math.abs(v - exp[i]) <= tol, `[${i}] ${v} != ${exp[i]}`));
  }
}

const iota = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

/** A deterministic pseudo-random sequence in [-1, 1). */
function rand(n: number, seed = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** Row-major transpose of `x` (dims) by `perm`, in JS. */
function transposeRef(x: number[], dims: number[], perm: number[]): number[] {
  const r = dims.length;
  const st = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const od = perm.map((p) => dims[p]);
  const out: number[] = [];
  const idx = new Array(r).fill(0);
  for (let k = 0; k < x.length; k++) {
    let off = 0;
    for (let d = 0; d < r; d++) off += idx[d] * st[perm[d]];
    out.push(x[off]);
    for (let d = r - 1; d >= 0; d--) {
      if (++idx[d] < od[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    assert.match(e.message + " " + e.diagnostics.map((d) => d.message).join(" "), message);
    return true;
  });
}

const i64 = (dims: number[], v: Values) => lit(tensor("int64", dims, v));
const f32 = (dims: number[], v: Values) => tensor("float32", dims, v);

Deno.test("Reshape infers -1, copies 0 dims and reports bad element counts", async (t) => {
  await t.step("0 and -1", async () => {
    const [y] = await run("Reshape", [inp(f32([2, 3, 4], iota(24))), i64([2], [0, -1])]);
    check(y, "float32", [2, 12], iota(24));
  });
  await t.step("allowzero keeps a literal 0", async () => {
    const [y] = await run("Reshape", [inp(f32([0, 3], [])), i64([2], [3, 0])], { allowzero: { i: 1 } });
    check(y, "float32", [3, 0], []);
  });
  await t.step("element count mismatch", async () => {
    await rejectsWith(
      run("Reshape", [inp(f32([2, 3], iota(6))), i64([2], [4, 2])]),
      "shape",
      /cannot reshape float32\[2,3\] \(6 elements\) to \[4,2\]/,
    );
  });
  await t.step("a run-time shape needs a constant", async () => {
    await rejectsWith(
      run("Reshape", [inp(f32([2, 3], iota(6))), inp(tensor("int64", [2], [3, 2]))]),
      "needs_constant",
      /shape/,
    );
  });
});

Deno.test("Flatten, Squeeze and Unsqueeze read axes from attributes before opset 13 and inputs after", async () => {
  check(
    (await run("Flatten", [inp(f32([2, 3, 4], iota(24)))], { axis: { i: -1 } }))[0],
    "float32",
    [6, 4],
    iota(24),
  );
  const x = f32([2], [5, 6]);
  check(
    (await run("Unsqueeze", [inp(x)], { axes: { ints: [0, -1] } }, { opset: 11 }))[0],
    "float32",
    [1, 2, 1],
    [5, 6],
  );
  check(
    (await run("Unsqueeze", [inp(f32([2, 3], iota(6))), i64([1], [1])]))[0],
    "float32",
    [2, 1, 3],
    iota(6),
  );
  check((await run("Squeeze", [inp(f32([1, 2, 1], [5, 6]))]))[0], "float32", [2], [5, 6]);
  check(
    (await run("Squeeze", [inp(f32([1, 2, 1], [5, 6]))], { axes: { ints: [-1] } }, { opset: 11 }))[0],
    "float32",
    [1, 2],
    [5, 6],
  );
  await rejectsWith(
    run("Squeeze", [inp(f32([1, 2], [5, 6])), i64([1], [1])]),
    "shape",
    /cannot squeeze axis 1/,
  );
});

Deno.test("Split handles split attributes, split inputs and uneven num_outputs", async (t) => {
  await t.step("opset 18 num_outputs=3 over 5 gives 2,2,1", async () => {
    const ys = await run("Split", [inp(f32([5], iota(5)))], { axis: { i: 0 }, num_outputs: { i: 3 } }, {
      outputs: 3,
    });
    check(ys[0], "float32", [2], [0, 1]);
    check(ys[1], "float32", [2], [2, 3]);
    check(ys[2], "float32", [1], [4]);
  });
  await t.step("opset 13 split input", async () => {
    const ys = await run("Split", [inp(f32([3, 2], iota(6))), i64([2], [1, 2])], {}, { outputs: 2 });
    check(ys[0], "float32", [1, 2], [0, 1]);
    check(ys[1], "float32", [2, 2], [2, 3, 4, 5]);
  });
  await t.step("opset 11 split attribute on axis 1", async () => {
    const ys = await run("Split", [inp(f32([2, 3], iota(6)))], { axis: { i: 1 }, split: { ints: [2, 1] } }, {
      opset: 11,
      outputs: 2,
    });
    check(ys[0], "float32", [2, 2], [0, 1, 3, 4]);
    check(ys[1], "float32", [2, 1], [2, 5]);
  });
});

Deno.test("Slice clamps starts and ends and walks negative steps", async () => {
  const x = inp(tensor("int32", [10], iota(10)));
  const min = -9223372036854775808n;
  check(
    (await run("Slice", [x, i64([1], [-1]), i64([1], [min]), i64([1], [0]), i64([1], [-3])]))[0],
    "int32",
    [4],
    [9, 6, 3, 0],
  );
  check(
    (await run("Slice", [x, i64([1], [2]), i64([1], [1000]), null, i64([1], [3])]))[0],
    "int32",
    [3],
    [2, 5, 8],
  );
  const m = inp(f32([3, 4], iota(12)));
  check(
    (await run("Slice", [m, i64([2], [1, 3]), i64([2], [3, 0]), i64([2], [0, 1]), i64([2], [1, -1])]))[0],
    "float32",
    [2, 3],
    [7, 6, 5, 11, 10, 9],
  );
  check(
    (await run("Slice", [m], { starts: { ints: [1] }, ends: { ints: [2] }, axes: { ints: [1] } }, {
      opset: 9,
    }))[0],
    "float32",
    [3, 1],
    [1, 5, 9],
  );
});

Deno.test("Pad supports constant, reflect, edge and wrap modes, negative pads and axes", async () => {
  const x = inp(f32([3], [1, 2, 3]));
  const pad = async (mode: string, pads: number[], extra: (Arg | null)[] = []) =>
    (await run("Pad", [x, i64([2], pads), ...extra], { mode: { s: mode } }))[0];
  check(await pad("reflect", [2, 2]), "float32", [7], [3, 2, 1, 2, 3, 2, 1]);
  check(await pad("edge", [1, 2]), "float32", [6], [1, 1, 2, 3, 3, 3]);
  check(await pad("wrap", [2, 1]), "float32", [6], [2, 3, 1, 2, 3, 1]);
  check(await pad("constant", [1, -1], [lit(f32([], [9]))]), "float32", [3], [9, 1, 2]);
  const m = inp(f32([2, 3], [1, 2, 3, 4, 5, 6]));
  check(
    (await run("Pad", [m, i64([4], [1, 1, 1, 1])], { mode: { s: "reflect" } }))[0],
    "float32",
    [4, 5],
    [5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5, 2, 1, 2, 3, 2],
  );
  check(
    (await run("Pad", [m, i64([2], [1, 0]), null, i64([1], [1])]))[0],
    "float32",
    [2, 4],
    [0, 1, 2, 3, 0, 4, 5, 6],
  );
  check(
    (await run("Pad", [m], { pads: { ints: [0, 0, 1, 0] }, value: { f: 7 } }, { opset: 10 }))[0],
    "float32",
    [3, 3],
    [1, 2, 3, 4, 5, 6, 7, 7, 7],
  );
});

Deno.test("Transpose moves every element type and matches a JS reference", async () => {
  check((await run("Transpose", [inp(tensor("int64", [2, 3], iota(6)))]))[0], "int64", [3, 2], [
    0,
    3,
    1,
    4,
    2,
    5,
  ]);
  const h = iota(8, 0x3c00);
  check(
    (await run("Transpose", [inp(tensor("float16", [2, 2, 2], h))], { perm: { ints: [1, 2, 0] } }))[0],
    "float16",
    [2, 2, 2],
    transposeRef(h, [2, 2, 2], [1, 2, 0]),
  );
  const dims = [2, 3, 4, 5];
  const x = rand(120);
  // large enough for the tiled path (edges that are not multiples of the tile, every element size)
  for (
    const [dtype, d2, perm] of [
      ["float32", [37, 45], [1, 0]],
      ["float32", [3, 20, 33], [0, 2, 1]],
      ["float32", [2, 9, 3, 17], [3, 1, 2, 0]],
      ["int64", [19, 23], [1, 0]],
      ["float16", [21, 18], [1, 0]],
      ["int8", [2, 17, 40], [2, 0, 1]],
    ] as [DTypeName, number[], number[]][]
  ) {
    const n = d2.reduce((a, b) => a * b, 1);
    const v = iota(n).map((i) => (i * 7) % 113);
    const [y] = await run("Transpose", [inp(tensor(dtype, d2, v))], { perm: { ints: perm } });
    check(y, dtype, perm.map((p) => d2[p]), transposeRef(v, d2, perm));
  }
  for (const perm of [[0, 2, 1, 3], [0, 2, 3, 1], [3, 1, 0, 2], [0, 1, 3, 2]]) {
    const [y] = await run("Transpose", [inp(f32(dims, x))], { perm: { ints: perm } });
    check(y, "float32", perm.map((p) => dims[p]), transposeRef(Array.from(Float32Array.from(x)), dims, perm));
  }
});

Deno.test("Gather takes negative indices and reports indices out of range", async () => {
  const data = inp(f32([4, 3], iota(12)));
  check(
    (await run("Gather", [data, inp(tensor("int32", [1, 2], [-1, 0]))]))[0],
    "float32",
    [1, 2, 3],
    [9, 10, 11, 0, 1, 2],
  );
  check(
    (await run("Gather", [data, inp(tensor("int64", [1], [2]))], { axis: { i: 1 } }))[0],
    "float32",
    [4, 1],
    [2, 5, 8, 11],
  );
  await rejectsWith(
    run("Gather", [data, inp(tensor("int64", [2], [1, 4]))]),
    "runtime",
    /index 4 is out of range \[-4, 4\) on axis 0/,
  );
  // an embedding lookup
  const vocab = 1000, dim = 64;
  const table = rand(vocab * dim, 7);
  const ids = [5, 999, 0, 123];
  const [e] = await run("Gather", [inp(f32([vocab, dim], table)), inp(tensor("int64", [1, 4], ids))]);
  const f = Float32Array.from(table);
  check(e, "float32", [1, 4, dim], ids.flatMap((i) => Array.from(f.subarray(i * dim, (i + 1) * dim))));
});

Deno.test("Concat, Expand and Tile move int8, bool and uint8", async () => {
  check(
    (await run("Concat", [inp(tensor("int8", [2, 1], [1, 4])), inp(tensor("int8", [2, 2], [2, 3, 5, 6]))], {
      axis: { i: -1 },
    }))[0],
    "int8",
    [2, 3],
    [1, 2, 3, 4, 5, 6],
  );
  const [e] = await run("Expand", [inp(tensor("bool", [3, 1], [1, 0, 1])), i64([3], [2, 1, 2])]);
  check(e, "bool", [2, 3, 2], [1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1]);
  const [t1] = await run("Tile", [inp(tensor("uint8", [1, 2], [7, 8])), i64([2], [2, 2])]);
  check(t1, "uint8", [2, 4], [7, 8, 7, 8, 7, 8, 7, 8]);
  await rejectsWith(run("Expand", [inp(f32([3], [1, 2, 3])), i64([1], [2])]), "shape", /cannot broadcast/);
});

Deno.test("Shape, Size, ConstantOfShape, Range, EyeLike and Trilu", async () => {
  const x = inp(f32([2, 3, 4, 5], rand(120)));
  check((await run("Shape", [x], { start: { i: 1 }, end: { i: -1 } }))[0], "int64", [2], [3, 4]);
  check((await run("Size", [x]))[0], "int64", [], [120]);
  const value = {
    t: { dtype: onnxCode("int64"), dims: [1], bytes: new Uint8Array(new BigInt64Array([7n]).buffer) },
  };
  check((await run("ConstantOfShape", [i64([2], [2, 2])], { value }))[0], "int64", [2, 2], [7, 7, 7, 7]);
  const i32 = (v: number) => lit(tensor("int32", [], [v]));
  check((await run("Range", [i32(10), i32(1), i32(-3)]))[0], "int32", [3], [10, 7, 4]);
  const s = (v: number) => lit(f32([], [v]));
  check((await run("Range", [s(0), s(1), s(0.25)]))[0], "float32", [4], [0, 0.25, 0.5, 0.75]);
  check(
    (await run("EyeLike", [inp(f32([2, 3], iota(6)))], { k: { i: 1 }, dtype: { i: 6 } }))[0],
    "int32",
    [2, 3],
    [0, 1, 0, 0, 0, 1],
  );
  const m = inp(f32([3, 3], iota(9, 1)));
  check(
    (await run("Trilu", [m, i64([], [-1])], { upper: { i: 0 } }))[0],
    "float32",
    [3, 3],
    [0, 0, 0, 4, 0, 0, 7, 8, 0],
  );
  check((await run("Trilu", [m, i64([], [1])]))[0], "float32", [3, 3], [0, 2, 3, 0, 0, 6, 0, 0, 0]);
});

Deno.test("Dropout at inference is the identity with an all-true mask", async () => {
  const ys = await run("Dropout", [inp(f32([2, 2], [1, 2, 3, 4]))], {}, { outputs: 2, opset: 13 });
  check(ys[0], "float32", [2, 2], [1, 2, 3, 4]);
  check(ys[1], "bool", [2, 2], [1, 1, 1, 1]);
});

Deno.test("DepthToSpace (DCR, CRD) and SpaceToDepth match the spec's index formulas", async () => {
  const [N, C, H, W, b] = [1, 8, 2, 3, 2];
  const x = rand(N * C * H * W, 3).map((v) => Math.fround(v));
  const Co = C / (b * b);
  for (const mode of ["DCR", "CRD"]) {
    const [y] = await run("DepthToSpace", [inp(f32([N, C, H, W], x))], {
      blocksize: { i: b },
      mode: { s: mode },
    });
    const want: number[] = [];
    for (let c = 0; c < Co; c++) {
      for (let hh = 0; hh < H * b; hh++) {
        for (let ww = 0; ww < W * b; ww++) {
          const [h, i, w, j] = [Math.floor(hh / b), hh % b, Math.floor(ww / b), ww % b];
          const cin = mode === "DCR" ? (i * b + j) * Co + c : c * b * b + i * b + j;
          want.push(x[(cin * H + h) * W + w]);
        }
      }
    }
    check(y, "float32", [N, Co, H * b, W * b], want);
  }
  const z = rand(1 * 2 * 4 * 6, 5).map((v) => Math.fround(v));
  const [s] = await run("SpaceToDepth", [inp(f32([1, 2, 4, 6], z))], { blocksize: { i: 2 } });
  const want: number[] = [];
  for (let co = 0; co < 8; co++) {
    for (let h = 0; h < 2; h++) {
      for (let w = 0; w < 3; w++) {
        const [i, j, c] = [Math.floor(co / 4), Math.floor(co / 2) % 2, co % 2];
        want.push(z[(c * 4 + h * 2 + i) * 6 + w * 2 + j]);
      }
    }
  }
  check(s, "float32", [1, 8, 2, 3], want);
});

Deno.test("TopK breaks ties by the lower index", async () => {
  const x = inp(f32([4], [3, 1, 3, 2]));
  const k = i64([1], [2]);
  let [v, i] = await run("TopK", [x, k], {}, { outputs: 2 });
  check(v, "float32", [2], [3, 3]);
  check(i, "int64", [2], [0, 2]);
  [v, i] = await run("TopK", [x, k], { largest: { i: 0 } }, { outputs: 2 });
  check(v, "float32", [2], [1, 2]);
  check(i, "int64", [2], [1, 3]);
  [v, i] = await run("TopK", [inp(f32([2, 3], [1, 5, 5, 9, 9, 0]))], { k: { i: 2 } }, {
    outputs: 2,
    opset: 9,
  });
  check(v, "float32", [2, 2], [5, 5, 9, 9]);
  check(i, "int64", [2, 2], [1, 2, 0, 1]);
});

Deno.test("ScatterElements and ScatterND apply reductions", async () => {
  const data = inp(f32([1, 5], [1, 2, 3, 4, 5]));
  const idx = inp(tensor("int64", [1, 2], [1, 1]));
  const upd = inp(f32([1, 2], [7, 1]));
  for (
    const [reduction, want] of [["max", [1, 7, 3, 4, 5]], ["min", [1, 1, 3, 4, 5]], ["add", [1, 10, 3, 4, 5]]]
  ) {
    const [y] = await run("ScatterElements", [data, idx, upd], {
      axis: { i: 1 },
      reduction: { s: reduction as string },
    });
    check(y, "float32", [1, 5], want as number[]);
  }
  const [y] = await run("ScatterND", [
    inp(f32([2, 2], [1, 2, 3, 4])),
    inp(tensor("int64", [2, 1], [1, 1])),
    inp(f32([2, 2], [10, 20, 30, 40])),
  ], { reduction: { s: "mul" } });
  check(y, "float32", [2, 2], [1, 2, 900, 3200]);
});

Deno.test("Resize takes axes and keep_aspect_ratio_policy (opset 18)", async () => {
  const x = inp(f32([1, 1, 2, 2], [1, 2, 3, 4]));
  const [y] = await run("Resize", [x, null, null, i64([2], [4, 6])], {
    axes: { ints: [2, 3] },
    keep_aspect_ratio_policy: { s: "not_larger" },
    coordinate_transformation_mode: { s: "asymmetric" },
  });
  check(y, "float32", [1, 1, 4, 4], [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  const [z] = await run("Resize", [x, null, lit(f32([4], [1, 1, 2, 2]))], {
    mode: { s: "linear" },
    coordinate_transformation_mode: { s: "align_corners" },
  });
  const third = 1 / 3;
  check(
    z,
    "float32",
    [1, 1, 4, 4],
    [0, 1, 2, 3].flatMap((r) => [0, 1, 2, 3].map((c) => 1 + 2 * r * third + c * third)),
    1e-5,
  );
  const [u] = await run("Upsample", [inp(tensor("int32", [1, 2], [5, 6])), lit(f32([2], [2, 2]))], {}, {
    opset: 9,
  });
  check(u, "int32", [2, 4], [5, 5, 6, 6, 5, 5, 6, 6]);
});

/** Einsum in JS by brute force over labels (no ellipsis). */
function einsumRef(eq: string, xs: { dims: number[]; v: number[] }[]): { dims: number[]; v: number[] } {
  const [lhs, rhs] = eq.split("->");
  const terms = lhs.split(",");
  const size = new Map<string, number>();
  terms.forEach((t, i) => [...t].forEach((l, d) => size.set(l, xs[i].dims[d])));
  const outL = [...rhs];
  const all = [...new Set([...outL, ...terms.join("")])];
  const dims = outL.map((l) => size.get(l)!);
  const out = new Array(dims.reduce((a, b) => a * b, 1)).fill(0);
  const idx = new Map<string, number>(all.map((l) => [l, 0]));
  const total = all.reduce((a, l) => a * size.get(l)!, 1);
  for (let k = 0; k < total; k++) {
    let p = 1;
    terms.forEach((t, i) => {
      let off = 0;
      [...t].forEach((l, d) => (off = off * xs[i].dims[d] + idx.get(l)!));
      p *= xs[i].v[off];
    });
    let o = 0;
    outL.forEach((l, d) => (o = o * dims[d] + idx.get(l)!));
    out[o] += p;
    for (let d = all.length - 1; d >= 0; d--) {
      const l = all[d];
      idx.set(l, idx.get(l)! + 1);
      if (idx.get(l)! < size.get(l)!) break;
      idx.set(l, 0);
    }
  }
  return { dims, v: out };
}

Deno.test("Einsum matches a brute-force reference", async () => {
  const cases: [string, number[][]][] = [
    ["ij->ji", [[3, 4]]],
    ["ii->i", [[3, 3]]],
    ["ij->i", [[3, 4]]],
    ["i,j->ij", [[3], [4]]],
    ["ij,jk->ik", [[5, 7], [7, 9]]],
    ["bij,bjk->bik", [[2, 3, 4], [2, 4, 5]]],
    ["bhqd,bhkd->bhqk", [[1, 2, 5, 8], [1, 2, 6, 8]]],
    ["bhqk,bhkd->bhqd", [[1, 2, 5, 6], [1, 2, 6, 8]]],
    ["ij,ij->", [[3, 4], [3, 4]]],
  ];
  for (const [eq, shapes] of cases) {
    const xs = shapes.map((dims, i) => ({
      dims,
      v: rand(dims.reduce((a, b) => a * b, 1), 11 + i).map((v) => Math.fround(v)),
    }));
    const want = einsumRef(eq, xs);
    const [y] = await run("Einsum", xs.map((x) => inp(f32(x.dims, x.v))), { equation: { s: eq } });
    check(y, "float32", want.dims, want.v, 1e-5);
  }
  const [d] = await run("Einsum", [inp(f32([2, 3, 3], iota(18)))], { equation: { s: "...ii->...i" } });
  check(d, "float32", [2, 3], [0, 4, 8, 9, 13, 17]);
});

/** The same one-node graph on kiln and on onnxruntime-node (constant inputs as initializers). */
async function againstOrt(
  op: string,
  args: (Arg | null)[],
  attrs: Record<string, AttrValue>,
  opts: RunOptions & { tol?: number; outDtypes?: DTypeName[] } = {},
): Promise<void> {
  const opset = opts.opset ?? 18;
  const n = opts.outputs ?? 1;
  const names = args.map((a, i) => (a === null ? "" : `x${i}`));
  const outs = Array.from({ length: n }, (_, i) => `y${i}`);
  const model = buildModel({
    opset,
    graph: {
      inputs: args.flatMap((
        a,
        i,
      ) => (a && !a.constant ? [{ name: names[i], dtype: a.t.dtype, dims: a.t.dims }] : [])),
      initializers: args.flatMap((a, i) =>
        a && a.constant ? [{ name: names[i], dtype: a.t.dtype, dims: a.t.dims, data: a.t.data }] : []
      ),
      outputs: outs.map((name, i) => ({ name, dtype: opts.outDtypes?.[i] })),
      nodes: [{ op, inputs: names, outputs: outs, attrs: attrs as never }],
    },
  });
  const feeds: Record<string, Tensor> = {};
  args.forEach((a, i) => {
    if (a && !a.constant) feeds[names[i]] = a.t;
  });
  const want = await runOrt(model, feeds);
  const got = await run(op, args, attrs, opts);
  outs.forEach((name, i) => {
    const w = want[name];
    check(got[i], w.dtype, w.dims, values(w), opts.tol ?? 0);
  });
}

Deno.test("Resize, Pad, Einsum, TopK, GatherND and DepthToSpace agree with onnxruntime", async (t) => {
  const img = (dims: number[], seed: number) => f32(dims, rand(dims.reduce((a, b) => a * b, 1), seed));
  const scales = (v: number[]) => lit(f32([v.length], v));
  const cases: [string, string, (Arg | null)[], Record<string, AttrValue>][] = [
    ["Resize linear antialias downsample", "Resize", [
      inp(img([1, 2, 9, 8], 1)),
      null,
      scales([1, 1, 0.6, 0.45]),
    ], {
      mode: { s: "linear" },
      antialias: { i: 1 },
    }],
    ["Resize cubic antialias sizes", "Resize", [
      inp(img([1, 1, 8, 9], 2)),
      null,
      null,
      i64([4], [1, 1, 3, 5]),
    ], {
      mode: { s: "cubic" },
      antialias: { i: 1 },
    }],
    ["Resize linear half_pixel upsample", "Resize", [
      inp(img([1, 1, 3, 4], 3)),
      null,
      scales([1, 1, 1.7, 2.5]),
    ], {
      mode: { s: "linear" },
    }],
    ["Resize cubic pytorch_half_pixel exclude_outside", "Resize", [
      inp(img([1, 1, 5, 5], 4)),
      null,
      scales([1, 1, 0.8, 1.6]),
    ], {
      mode: { s: "cubic" },
      coordinate_transformation_mode: { s: "pytorch_half_pixel" },
      exclude_outside: { i: 1 },
    }],
    ["Resize nearest tf_half_pixel_for_nn ceil", "Resize", [
      inp(img([1, 1, 7, 5], 5)),
      null,
      scales([1, 1, 0.5, 1.5]),
    ], {
      coordinate_transformation_mode: { s: "tf_half_pixel_for_nn" },
      nearest_mode: { s: "ceil" },
    }],
    ["Pad reflect 3D with a negative pad", "Pad", [inp(img([2, 4, 5], 6)), i64([6], [1, 2, 0, 0, -1, 3])], {
      mode: { s: "reflect" },
    }],
    ["Pad edge", "Pad", [inp(img([3, 4], 7)), i64([4], [2, 0, 1, 3])], { mode: { s: "edge" } }],
    ["Einsum batched matmul", "Einsum", [inp(img([3, 4, 5], 8)), inp(img([3, 5, 6], 9))], {
      equation: { s: "bij,bjk->bik" },
    }],
    ["DepthToSpace CRD", "DepthToSpace", [inp(img([2, 8, 3, 2], 10))], {
      blocksize: { i: 2 },
      mode: { s: "CRD" },
    }],
    ["GatherND batch_dims 1", "GatherND", [
      inp(img([2, 3, 4], 11)),
      inp(tensor("int64", [2, 2, 1], [2, 0, 1, 2])),
    ], { batch_dims: { i: 1 } }],
  ];
  for (const [name, op, args, attrs] of cases) {
    await t.step(name, () => againstOrt(op, args, attrs, { tol: 1e-5 }));
  }
  await t.step(
    "TopK on axis 1",
    () =>
      againstOrt("TopK", [inp(f32([3, 7, 2], rand(42, 12).map((v) => Math.round(v * 4)))), i64([1], [3])], {
        axis: { i: 1 },
      }, { outputs: 2, outDtypes: ["float32", "int64"] }),
  );
});
