// Loop and Scan (wasm/ops/control.ts, run by wasm/exec/executor.ts) on kiln's ref target against
// onnxruntime-node: Scan at opset 8 (batch axis) and 9+ (axes, directions), Loop with a constant
// trip count and scan outputs, a Loop ended by its condition, a body that slices by the iteration
// number, a body reading an outer value and a deferred external weight (swapped, serialized and
// baked), and the errors: a loop-carried value changing shape, scan outputs of unknown length;
// Loop and Scan on the gpu target (their bodies on the host), against ref.

import assert from "node:assert/strict";
import { parseOnnx } from "../core/onnx/import.ts";
import { buildModel, type GraphSpec, type NodeSpec, type ValueSpec } from "../core/onnx/writer.ts";
import { compile, deserializeProgram } from "../core/program.ts";
import { type DTypeName, elementCount, type Tensor } from "../core/tensor.ts";
import { gpuIgnore, gpuUnderTest } from "./util/gpu.ts";
import { runOrt } from "./util/ort.ts";

function f32(dims: number[], seed = 1): Tensor {
  return {
    dtype: "float32",
    dims,
    data: Float32Array.from({ length: elementCount(dims) }, (_, i) => Math.sin(i * 0.7311 + seed) * 2),
  };
}

function scalar(dtype: DTypeName, v: number): Tensor {
  if (dtype === "int64") return { dtype, dims: [], data: BigInt64Array.of(BigInt(v)) };
  if (dtype === "bool") return { dtype, dims: [], data: Uint8Array.of(v ? 1 : 0) };
  return { dtype: "float32", dims: [], data: Float32Array.of(v) };
}

function close(got: Tensor, want: Tensor, what: string, tol = 1e-5): void {
  assert.equal(got.dtype, want.dtype, `${what}: dtype`);
  assert.deepEqual(got.dims, want.dims, `${what}: dims`);
  const a = Array.from(got.data as ArrayLike<number | bigint>, Number);
  const b = Array.from(want.data as ArrayLike<number | bigint>, Number);
  for (let i = 0; i < a.length; i++) {
    assert.ok(
      Math.abs(a[i] - b[i]) <= tol + tol * Math.abs(b[i]),
      `${what}[${i}]: kiln ${a[i]}, ort ${b[i]}`,
    );
  }
}

interface ModelIO {
  inputs: Record<string, Tensor>;
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  opset: number;
  initializers?: GraphSpec["initializers"];
}

function model(io: ModelIO): Uint8Array {
  return buildModel({
    opset: io.opset,
    graph: {
      name: "g",
      inputs: Object.entries(io.inputs).map(([name, t]) => ({ name, dtype: t.dtype, dims: t.dims })),
      outputs: io.outputs,
      initializers: io.initializers,
      nodes: io.nodes,
    },
  });
}

/**
 * Declares the values named in `seqs` (graph and subgraph inputs and outputs) as sequences of float32
 * (the writer declares tensors only).
 */
async function asSequences(bytes: Uint8Array, seqs: string[]): Promise<Uint8Array> {
  if (seqs.length === 0) return bytes;
  const { onnx } = await import("../core/onnx/onnx_pb.js");
  const m = onnx.ModelProto.decode(bytes);
  const seqType = { sequence_type: { elem_type: { tensor_type: { elem_type: 1 } } } };
  const walk = (g: InstanceType<typeof onnx.GraphProto>) => {
    for (const v of [...(g.input ?? []), ...(g.output ?? [])]) {
      if (seqs.includes(v.name ?? "")) v.type = seqType;
    }
    for (const n of g.node ?? []) {
      for (const a of n.attribute ?? []) if (a.g) walk(a.g as InstanceType<typeof onnx.GraphProto>);
    }
  };
  walk(m.graph as InstanceType<typeof onnx.GraphProto>);
  return onnx.ModelProto.encode(m).finish();
}

/** kiln (ref) and onnxruntime on the same model and inputs: every output agrees. */
async function againstOrt(
  io: ModelIO,
  constantInputs: Record<string, Tensor> = {},
  seqs: string[] = [],
): Promise<void> {
  const bytes = await asSequences(model({ ...io, inputs: { ...io.inputs, ...constantInputs } }), seqs);
  const inputDims: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(io.inputs)) inputDims[k] = t.dims;
  const p = compile(await parseOnnx(bytes, { inputDims, constantInputs }), "ref", { validate: true });
  try {
    const got = await p.eval(io.inputs);
    const want = await runOrt(bytes, { ...io.inputs, ...constantInputs });
    for (const o of io.outputs) close(got[o.name], want[o.name], o.name);
  } finally {
    p.dispose();
  }
}

/** A body graph; inputs without dims (kiln takes the shapes from the node). */
function body(inputs: ValueSpec[], outputs: ValueSpec[], nodes: NodeSpec[]): { g: GraphSpec } {
  return { g: { name: "body", inputs, outputs, nodes } };
}

Deno.test("Scan opset 9+: axes and directions of inputs and outputs, two scan inputs, against onnxruntime", async () => {
  // state s [3]; scan inputs a [4, 3] (axis 0, reversed) and b [3, 4] (axis 1)
  const nodes: NodeSpec[] = [{
    op: "Scan",
    inputs: ["s0", "a", "b"],
    outputs: ["s", "ya", "yb"],
    name: "scan",
    attrs: {
      num_scan_inputs: { i: 2 },
      scan_input_axes: { ints: [0, 1] },
      scan_input_directions: { ints: [1, 0] },
      scan_output_axes: { ints: [1, -1] },
      scan_output_directions: { ints: [0, 1] },
      body: body(
        [{ name: "si", dtype: "float32" }, { name: "ai", dtype: "float32" }, {
          name: "bi",
          dtype: "float32",
        }],
        [{ name: "so", dtype: "float32" }, { name: "o1", dtype: "float32" }, {
          name: "o2",
          dtype: "float32",
        }],
        [
          {
            op: "Constant",
            inputs: [],
            outputs: ["ax0"],
            attrs: { value: { t: { name: "", dtype: "int64", dims: [1], data: [0] } } },
          },
          { op: "Mul", inputs: ["ai", "bi"], outputs: ["ab"] },
          { op: "Add", inputs: ["si", "ab"], outputs: ["so"] },
          { op: "Unsqueeze", inputs: ["so", "ax0"], outputs: ["o1"] },
          { op: "Sub", inputs: ["ai", "si"], outputs: ["o2"] },
        ],
      ),
    },
  }];
  await againstOrt({
    opset: 16,
    inputs: { s0: f32([3], 1), a: f32([4, 3], 2), b: f32([3, 4], 3) },
    outputs: [{ name: "s", dtype: "float32" }, { name: "ya", dtype: "float32" }, {
      name: "yb",
      dtype: "float32",
    }],
    nodes,
  });
});

Deno.test("Scan opset 8: batch axis, reversed scan input, states and scan outputs per batch, against onnxruntime", async () => {
  const nodes: NodeSpec[] = [{
    op: "Scan",
    inputs: ["", "s0", "x"],
    outputs: ["s", "y"],
    name: "scan8",
    attrs: {
      num_scan_inputs: { i: 1 },
      directions: { ints: [1] },
      body: body(
        [{ name: "si", dtype: "float32" }, { name: "xi", dtype: "float32" }],
        [{ name: "so", dtype: "float32" }, { name: "yo", dtype: "float32" }],
        [
          { op: "Mul", inputs: ["si", "xi"], outputs: ["m"] },
          { op: "Add", inputs: ["m", "xi"], outputs: ["so"] },
          { op: "Neg", inputs: ["so"], outputs: ["yo"] },
        ],
      ),
    },
  }];
  await againstOrt({
    opset: 8,
    inputs: { s0: f32([2, 3], 4), x: f32([2, 5, 3], 5) },
    outputs: [{ name: "s", dtype: "float32" }, { name: "y", dtype: "float32" }],
    nodes,
  });
});

/** Loop: y += x * w, M times; scan output: y after each iteration; cond passed through. */
function loopNodes(): NodeSpec[] {
  return [{
    op: "Loop",
    inputs: ["M", "cond", "y0"],
    outputs: ["y", "ys"],
    name: "loop",
    attrs: {
      body: body(
        [{ name: "i", dtype: "int64", dims: [] }, { name: "c", dtype: "bool", dims: [] }, { name: "yi" }],
        [{ name: "c_out", dtype: "bool" }, { name: "yo" }, { name: "scan" }],
        [
          { op: "Identity", inputs: ["c"], outputs: ["c_out"] },
          { op: "Mul", inputs: ["x", "w"], outputs: ["xw"] }, // outer-scope input and weight
          { op: "Add", inputs: ["yi", "xw"], outputs: ["yo"] },
          { op: "Identity", inputs: ["yo"], outputs: ["scan"] },
        ],
      ),
    },
  }];
}

Deno.test("Loop with a constant trip count, an outer-scope input and scan outputs, against onnxruntime", async () => {
  await againstOrt({
    opset: 13,
    inputs: { x: f32([2, 3], 6), y0: f32([2, 3], 7) },
    initializers: [{ name: "w", dtype: "float32", dims: [3], data: [0.5, -1, 2] }],
    outputs: [{ name: "y", dtype: "float32" }, { name: "ys", dtype: "float32" }],
    nodes: loopNodes(),
  }, { M: scalar("int64", 4), cond: scalar("bool", 1) });
});

Deno.test("Loop with a constant false condition runs no iteration: empty scan outputs", async () => {
  const io: ModelIO = {
    opset: 13,
    inputs: { x: f32([2, 3], 6), y0: f32([2, 3], 7) },
    initializers: [{ name: "w", dtype: "float32", dims: [3], data: [0.5, -1, 2] }],
    outputs: [{ name: "y", dtype: "float32" }],
    nodes: loopNodes(),
  };
  const consts = { M: scalar("int64", 4), cond: scalar("bool", 0) };
  await againstOrt(io, consts);
  // the scan output keeps its static row shape: [0, 2, 3] (onnxruntime, which never ran the body, says [0])
  const bytes = model({
    ...io,
    inputs: { ...io.inputs, ...consts },
    outputs: [...io.outputs, { name: "ys" }],
  });
  const p = compile(await parseOnnx(bytes, { inputDims: { x: [2, 3], y0: [2, 3] }, constantInputs: consts }));
  try {
    const got = await p.eval(io.inputs);
    assert.deepEqual(got.ys.dims, [0, 2, 3]);
    assert.deepEqual(got.y.data, io.inputs.y0.data);
  } finally {
    p.dispose();
  }
});

Deno.test("Loop ended by its condition (no trip count, no scan outputs), run-time inputs, against onnxruntime", async () => {
  // while sum(y) < limit: y = y * 2 + 1
  const nodes: NodeSpec[] = [{
    op: "Loop",
    inputs: ["", "c0", "y0"],
    outputs: ["y"],
    name: "while",
    attrs: {
      body: body(
        [{ name: "i", dtype: "int64", dims: [] }, { name: "c", dtype: "bool", dims: [] }, { name: "yi" }],
        [{ name: "c_out", dtype: "bool" }, { name: "yo" }],
        [
          { op: "Mul", inputs: ["yi", "two"], outputs: ["y2"] },
          { op: "Add", inputs: ["y2", "one"], outputs: ["yo"] },
          { op: "ReduceSum", inputs: ["yo"], outputs: ["s"], attrs: { keepdims: { i: 0 } } },
          { op: "Less", inputs: ["s", "limit"], outputs: ["c_out"] },
        ],
      ),
    },
  }];
  await againstOrt({
    opset: 13,
    inputs: { c0: scalar("bool", 1), y0: f32([4], 8), limit: scalar("float32", 300) },
    initializers: [
      { name: "two", dtype: "float32", dims: [], data: [2] },
      { name: "one", dtype: "float32", dims: [], data: [1] },
    ],
    outputs: [{ name: "y", dtype: "float32" }],
    nodes,
  });
});

Deno.test("Loop body slicing a run-time input by the iteration number: one static extent", async () => {
  // scan output row i = x[i:i+1] * 3 (x is a run-time input, the slice bounds follow i)
  const nodes: NodeSpec[] = [{
    op: "Loop",
    inputs: ["M", "", "acc0"],
    outputs: ["acc", "rows"],
    name: "slicer",
    attrs: {
      body: body(
        [{ name: "i", dtype: "int64", dims: [] }, { name: "c", dtype: "bool", dims: [] }, { name: "ai" }],
        [{ name: "c_out", dtype: "bool" }, { name: "ao" }, { name: "row" }],
        [
          { op: "Identity", inputs: ["c"], outputs: ["c_out"] },
          { op: "Add", inputs: ["i", "one"], outputs: ["end"] },
          { op: "Unsqueeze", inputs: ["i", "ax"], outputs: ["st"] },
          { op: "Unsqueeze", inputs: ["end", "ax"], outputs: ["en"] },
          { op: "Slice", inputs: ["x", "st", "en"], outputs: ["sl"] },
          { op: "Mul", inputs: ["sl", "three"], outputs: ["row"] },
          { op: "Add", inputs: ["ai", "sl"], outputs: ["ao"] },
        ],
      ),
    },
  }];
  await againstOrt({
    opset: 13,
    inputs: { x: f32([5, 2], 9), acc0: f32([1, 2], 10) },
    initializers: [
      { name: "one", dtype: "int64", dims: [], data: [1] },
      { name: "ax", dtype: "int64", dims: [1], data: [0] },
      { name: "three", dtype: "float32", dims: [], data: [3] },
    ],
    outputs: [{ name: "acc", dtype: "float32" }, { name: "rows", dtype: "float32" }],
    nodes,
  }, { M: scalar("int64", 5) });
});

Deno.test("Loop body holding an If on the iteration number (a nested subgraph), against onnxruntime", async () => {
  const branch = (name: string, op: string): { g: GraphSpec } => ({
    g: {
      name,
      outputs: [{ name: `${name}_out`, dtype: "float32" }],
      nodes: [{ op, inputs: ["yi", "x"], outputs: [`${name}_out`] }],
    },
  });
  await againstOrt({
    opset: 13,
    inputs: { x: f32([3], 11), y0: f32([3], 12) },
    initializers: [{ name: "two", dtype: "int64", dims: [], data: [2] }],
    outputs: [{ name: "y", dtype: "float32" }, { name: "ys", dtype: "float32" }],
    nodes: [{
      op: "Loop",
      inputs: ["M", "", "y0"],
      outputs: ["y", "ys"],
      name: "loop_if",
      attrs: {
        body: body(
          [{ name: "i", dtype: "int64", dims: [] }, { name: "c", dtype: "bool", dims: [] }, { name: "yi" }],
          [{ name: "c", dtype: "bool" }, { name: "yo" }, { name: "yo" }],
          [
            { op: "Less", inputs: ["i", "two"], outputs: ["early"] },
            {
              op: "If",
              inputs: ["early"],
              outputs: ["yo"],
              attrs: { then_branch: branch("t", "Add"), else_branch: branch("e", "Mul") },
            },
          ],
        ),
      },
    }],
  }, { M: scalar("int64", 4) });
});

Deno.test("Loop body with a deferred external weight: swapped, serialized and baked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_loop_" });
  try {
    const w1 = Float32Array.of(0.5, -1, 2);
    await Deno.writeFile(`${dir}/w.bin`, new Uint8Array(w1.buffer));
    const io: ModelIO = {
      opset: 13,
      inputs: { x: f32([2, 3], 6), y0: f32([2, 3], 7) },
      initializers: [{
        name: "w",
        dtype: "float32",
        dims: [3],
        external: { location: "w.bin", offset: 0, length: 12 },
      }],
      outputs: [{ name: "y", dtype: "float32" }, { name: "ys", dtype: "float32" }],
      nodes: loopNodes(),
    };
    const consts = { M: scalar("int64", 3), cond: scalar("bool", 1) };
    const bytes = model({ ...io, inputs: { ...io.inputs, ...consts } });
    await Deno.writeFile(`${dir}/m.onnx`, bytes);
    const inputDims = { x: [2, 3], y0: [2, 3] };
    const p = compile(
      await parseOnnx(`${dir}/m.onnx`, { inputDims, constantInputs: consts, deferExternalWeights: true }),
    );
    // hand-computed: y = y0 + (k + 1) * x * w after iteration k
    const expect = (w: Float32Array) => {
      const x = io.inputs.x.data as Float32Array;
      const y0 = io.inputs.y0.data as Float32Array;
      const ys = new Float32Array(3 * 6);
      for (let k = 0; k < 3; k++) {
        for (let j = 0; j < 6; j++) ys[k * 6 + j] = y0[j] + (k + 1) * x[j] * w[j % 3];
      }
      return { y: { dtype: "float32", dims: [2, 3], data: ys.slice(12) } as Tensor, ys: ys };
    };
    try {
      assert.deepEqual(p.weights.map((w) => w.name), ["w"]);
      await p.setWeights({ w: { dtype: "float32", dims: [3], data: w1 } });
      const a = await p.eval(io.inputs);
      const ort = await runOrt(`${dir}/m.onnx`, { ...io.inputs, ...consts });
      close(a.y, ort.y, "y");
      close(a.ys, ort.ys, "ys");
      close(a.y, expect(w1).y, "y (hand)");
      const w2 = Float32Array.of(-3, 0.25, 1);
      await p.setWeights({ w: { dtype: "float32", dims: [3], data: w2 } });
      const b = await p.eval(io.inputs);
      close(b.y, expect(w2).y, "y after the swap");
      close(b.ys, { dtype: "float32", dims: [3, 2, 3], data: expect(w2).ys }, "ys after the swap");
      // the serialized program (its body params bound by the Loop) and the baked one run the same
      const { ir, hostLiterals } = p.serialize();
      const q = deserializeProgram(ir, hostLiterals);
      await q.setWeights({ w: { dtype: "float32", dims: [3], data: w2 } });
      close((await q.eval(io.inputs)).ys, b.ys, "ys of the deserialized program");
      q.dispose();
      const baked = p.bake({ w: { dtype: "float32", dims: [3], data: w1 } });
      const r = deserializeProgram(baked.ir, baked.hostLiterals);
      assert.deepEqual(r.weights, []);
      close((await r.eval(io.inputs)).ys, a.ys, "ys of the baked program");
      r.dispose();
    } finally {
      p.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function compileError(
  io: ModelIO,
  constantInputs: Record<string, Tensor> = {},
  target: "ref" | "gpu" = "ref",
) {
  const bytes = model({ ...io, inputs: { ...io.inputs, ...constantInputs } });
  const inputDims: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(io.inputs)) inputDims[k] = t.dims;
  try {
    compile(await parseOnnx(bytes, { inputDims, constantInputs }), target).dispose();
  } catch (e) {
    return e as Error & { code?: string; node?: string };
  }
  throw new Error("compile did not fail");
}

Deno.test("Loop errors: carried shape changing, scan outputs of unknown length", async (t) => {
  await t.step("a loop-carried value that grows each iteration", async () => {
    const e = await compileError({
      opset: 13,
      inputs: { y0: f32([2], 1) },
      outputs: [{ name: "y", dtype: "float32" }],
      nodes: [{
        op: "Loop",
        inputs: ["M", "", "y0"],
        outputs: ["y"],
        name: "grow",
        attrs: {
          body: body(
            [{ name: "i", dtype: "int64", dims: [] }, { name: "c", dtype: "bool", dims: [] }, { name: "yi" }],
            [{ name: "c", dtype: "bool" }, { name: "yo" }],
            [{ op: "Concat", inputs: ["yi", "yi"], outputs: ["yo"], attrs: { axis: { i: 0 } } }],
          ),
        },
      }],
    }, { M: scalar("int64", 3) });
    assert.equal(e.node, "grow");
    assert.match(
      e.message,
      /loop-carried value 0 goes into the body as float32\[2\] and comes out as float32\[4\]/,
    );
  });
  const condLoop = (cond: string): ModelIO => ({
    opset: 13,
    inputs: { y0: f32([2], 1), lim: scalar("float32", 5) },
    outputs: [{ name: "y", dtype: "float32" }, { name: "ys", dtype: "float32" }],
    nodes: [{
      op: "Loop",
      inputs: ["M", "", "y0"],
      outputs: ["y", "ys"],
      name: "early",
      attrs: {
        body: body(
          [{ name: "i", dtype: "int64", dims: [] }, { name: "c", dtype: "bool", dims: [] }, { name: "yi" }],
          [{ name: cond, dtype: "bool" }, { name: "yo" }, { name: "yo" }],
          [
            { op: "Add", inputs: ["yi", "yi"], outputs: ["yo"] },
            { op: "ReduceSum", inputs: ["yo"], outputs: ["s"], attrs: { keepdims: { i: 0 } } },
            { op: "Less", inputs: ["s", "lim"], outputs: ["c2"] },
          ],
        ),
      },
    }],
  });
  await t.step("scan outputs with a condition that can end the loop early", async () => {
    const e = await compileError(condLoop("c2"), { M: scalar("int64", 3) });
    assert.equal(e.node, "early");
    assert.match(e.message, /condition output may end the Loop early/);
  });
  await t.step("scan outputs with a run-time trip count: needs_constant", async () => {
    const io = condLoop("c");
    const e = await compileError({ ...io, inputs: { ...io.inputs, M: scalar("int64", 3) } });
    assert.equal(e.code, "needs_constant");
    assert.match(e.message, /trip count M/);
  });
});

// ---- sequences and optionals: compile-time lists and presence (core/onnx/sequences.ts) ----

Deno.test("sequence ops resolved when compiling: construct, insert, erase, at, length, concat, against onnxruntime", async () => {
  const pos = (name: string, v: number) => ({ name, dtype: "int64" as const, dims: [], data: [v] });
  await againstOrt({
    opset: 12,
    inputs: { a: f32([2, 3], 1), b: f32([2, 3], 2), c: f32([2, 3], 3) },
    initializers: [pos("p_ins", 1), pos("p_erase", -1), pos("p_at", -2)],
    outputs: [
      { name: "stacked", dtype: "float32" },
      { name: "joined", dtype: "float32" },
      { name: "len", dtype: "int64" },
      { name: "at", dtype: "float32" },
    ],
    nodes: [
      { op: "SequenceConstruct", inputs: ["a", "b"], outputs: ["s1"] },
      { op: "SequenceInsert", inputs: ["s1", "c", "p_ins"], outputs: ["s2"] }, // a c b
      { op: "SequenceInsert", inputs: ["s2", "a"], outputs: ["s3"] }, // a c b a
      { op: "SequenceErase", inputs: ["s3", "p_erase"], outputs: ["s4"] }, // a c b
      {
        op: "ConcatFromSequence",
        inputs: ["s4"],
        outputs: ["stacked"],
        attrs: { axis: { i: -1 }, new_axis: { i: 1 } },
      },
      { op: "ConcatFromSequence", inputs: ["s4"], outputs: ["joined"], attrs: { axis: { i: 0 } } },
      { op: "SequenceLength", inputs: ["s4"], outputs: ["len"] },
      { op: "SequenceAt", inputs: ["s4", "p_at"], outputs: ["at"] }, // c
    ],
  });
});

Deno.test("SplitToSequence and SequenceMap (body reading an outer value), against onnxruntime", async () => {
  await againstOrt({
    opset: 17,
    inputs: { x: f32([4, 3], 4), k: f32([3], 5) },
    initializers: [{ name: "sizes", dtype: "int64", dims: [2], data: [1, 3] }],
    outputs: [
      { name: "rows", dtype: "float32" },
      { name: "parts", dtype: "float32" },
      { name: "n", dtype: "int64" },
    ],
    nodes: [
      {
        op: "Constant",
        inputs: [],
        outputs: ["n1"],
        attrs: { value: { t: { name: "", dtype: "int64", dims: [], data: [1] } } },
      },
      { op: "SplitToSequence", inputs: ["x"], outputs: ["s"], attrs: { axis: { i: 0 }, keepdims: { i: 0 } } },
      {
        op: "SequenceMap",
        inputs: ["s"],
        outputs: ["m"],
        attrs: {
          body: body([{ name: "e", dtype: "float32" }], [{ name: "o", dtype: "float32" }], [
            { op: "Mul", inputs: ["e", "k"], outputs: ["o"] },
          ]),
        },
      },
      {
        op: "ConcatFromSequence",
        inputs: ["m"],
        outputs: ["rows"],
        attrs: { axis: { i: 0 }, new_axis: { i: 1 } },
      },
      { op: "SplitToSequence", inputs: ["x", "sizes"], outputs: ["s2"] },
      { op: "SequenceLength", inputs: ["s2"], outputs: ["n"] },
      { op: "SequenceAt", inputs: ["s2", "n1"], outputs: ["parts"] },
    ],
  });
});

/** A model whose input `xs` and output `ys` are sequences of float32 [2] (the writer knows tensors only). */
async function sequenceIoModel(): Promise<Uint8Array> {
  const { onnx } = await import("../core/onnx/onnx_pb.js");
  const bytes = model({
    opset: 17,
    inputs: { xs: f32([2]), k: f32([2], 2) },
    outputs: [{ name: "ys", dtype: "float32" }, { name: "has", dtype: "bool" }],
    nodes: [
      {
        op: "SequenceMap",
        inputs: ["xs", "k"],
        outputs: ["ys"],
        attrs: {
          body: body([{ name: "e", dtype: "float32" }, { name: "kk", dtype: "float32" }], [{
            name: "o",
            dtype: "float32",
          }], [{ op: "Add", inputs: ["e", "kk"], outputs: ["o"] }]),
        },
      },
      { op: "Optional", inputs: ["k"], outputs: ["ok"] },
      { op: "OptionalHasElement", inputs: ["ok"], outputs: ["has"] },
    ],
  });
  const m = onnx.ModelProto.decode(bytes);
  const seqType = {
    sequence_type: { elem_type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } },
  };
  m.graph!.input![0].type = seqType;
  m.graph!.output![0].type = seqType;
  return onnx.ModelProto.encode(m).finish();
}

Deno.test("a sequence graph input and output: elements as `<name>.<i>`, the length given when compiling", async (t) => {
  const bytes = await sequenceIoModel();
  const k = f32([2], 2);
  await t.step("three elements in, three out, each hand-checked", async () => {
    const xs = [f32([2], 7), f32([2], 8), f32([2], 9)];
    const p = compile(
      await parseOnnx(bytes, {
        sequenceLengths: { xs: 3 },
        inputDims: { "xs.0": [2], "xs.1": [2], "xs.2": [2], k: [2] },
      }),
    );
    try {
      const feeds: Record<string, Tensor> = { k };
      xs.forEach((x, i) => (feeds[`xs.${i}`] = x));
      const out = await p.eval(feeds);
      assert.deepEqual(Object.keys(out).toSorted(), ["has", "ys.0", "ys.1", "ys.2"]);
      assert.deepEqual(Array.from(out.has.data as Uint8Array), [1]);
      for (let i = 0; i < 3; i++) {
        const want = (xs[i].data as Float32Array).map((v, j) => v + (k.data as Float32Array)[j]);
        close(out[`ys.${i}`], { dtype: "float32", dims: [2], data: want }, `ys.${i}`);
      }
    } finally {
      p.dispose();
    }
  });
  await t.step("an empty sequence: no elements out", async () => {
    const p = compile(await parseOnnx(bytes, { sequenceLengths: { xs: 0 }, inputDims: { k: [2] } }));
    try {
      assert.deepEqual(Object.keys(await p.eval({ k })), ["has"]);
    } finally {
      p.dispose();
    }
  });
  await t.step("the length not given: a clear error naming the input and the option", async () => {
    await assert.rejects(
      parseOnnx(bytes, { inputDims: { k: [2] } }),
      (e: Error & { code?: string }) =>
        e.code === "input" && /Graph input 'xs' is a sequence/.test(e.message) &&
        /sequenceLengths\['xs'\]/.test(e.message),
    );
  });
});

Deno.test("sequence errors: a run-time position needs a constant; If on a run-time condition returning a sequence", async (t) => {
  await t.step("SequenceAt with a run-time position: needs_constant naming the node", async () => {
    const e = await compileError({
      opset: 12,
      inputs: { a: f32([2], 1), p: scalar("int64", 0) },
      outputs: [{ name: "y", dtype: "float32" }],
      nodes: [
        { op: "SequenceConstruct", inputs: ["a", "a"], outputs: ["s"] },
        { op: "SequenceAt", inputs: ["s", "p"], outputs: ["y"], name: "at" },
      ],
    });
    assert.equal(e.code, "needs_constant");
    assert.match(e.message, /Node 'at' \(SequenceAt\): input 1 \(position\) must be a compile-time constant/);
  });
  await t.step("a position out of range", async () => {
    const e = await compileError({
      opset: 12,
      inputs: { a: f32([2], 1) },
      initializers: [{ name: "p", dtype: "int64", dims: [], data: [2] }],
      outputs: [{ name: "y", dtype: "float32" }],
      nodes: [
        { op: "SequenceConstruct", inputs: ["a", "a"], outputs: ["s"] },
        { op: "SequenceAt", inputs: ["s", "p"], outputs: ["y"], name: "at" },
      ],
    });
    assert.match(e.message, /position 2 is out of range \[-2, 1\]/);
  });
  await t.step("a sequence read as a tensor", async () => {
    const e = await compileError({
      opset: 12,
      inputs: { a: f32([2], 1) },
      outputs: [{ name: "y", dtype: "float32" }],
      nodes: [
        { op: "SequenceConstruct", inputs: ["a"], outputs: ["s"] },
        { op: "Relu", inputs: ["s"], outputs: ["y"], name: "relu" },
      ],
    });
    assert.match(e.message, /Node 'relu' \(Relu\) reads the sequence 's' as a tensor/);
  });
  await t.step("an If on a run-time condition whose branches make sequences", async () => {
    const branch = (name: string): { g: GraphSpec } => ({
      g: {
        name,
        outputs: [{ name: `${name}_s`, dtype: "float32" }],
        nodes: [{ op: "SequenceConstruct", inputs: ["a"], outputs: [`${name}_s`] }],
      },
    });
    const e = await compileError({
      opset: 13,
      inputs: { a: f32([2], 1), c: scalar("bool", 1) },
      outputs: [{ name: "y", dtype: "float32" }],
      nodes: [
        {
          op: "If",
          inputs: ["c"],
          outputs: ["s"],
          name: "pick",
          attrs: { then_branch: branch("t"), else_branch: branch("e") },
        },
        { op: "SequenceAt", inputs: ["s", "zero"], outputs: ["y"] },
        {
          op: "Constant",
          inputs: [],
          outputs: ["zero"],
          attrs: { value: { t: { name: "", dtype: "int64", dims: [], data: [0] } } },
        },
      ],
    });
    assert.equal(e.code, "needs_constant");
    assert.match(
      e.message,
      /Node 'pick' \(If\) returns a sequence or optional.*condition must be a compile-time constant/,
    );
  });
});

Deno.test("a Loop body reading an outer sequence by the iteration number is unrolled; an If on a constant picks a sequence, against onnxruntime", async () => {
  const branch = (name: string, items: string[]): { g: GraphSpec } => ({
    g: {
      name,
      outputs: [{ name: `${name}_s` }],
      nodes: [{ op: "SequenceConstruct", inputs: items, outputs: [`${name}_s`] }],
    },
  });
  await againstOrt(
    {
      opset: 13,
      inputs: { a: f32([3], 1), b: f32([3], 2), c: f32([3], 3), acc0: f32([3], 4) },
      outputs: [{ name: "acc", dtype: "float32" }, { name: "rows", dtype: "float32" }],
      nodes: [
        {
          op: "If",
          inputs: ["flag"],
          outputs: ["s"],
          attrs: { then_branch: branch("t", ["a", "b", "c"]), else_branch: branch("e", ["c"]) },
        },
        {
          op: "Loop",
          inputs: ["M", "", "acc0"],
          outputs: ["acc", "rows"],
          name: "walk",
          attrs: {
            body: body(
              [{ name: "i", dtype: "int64", dims: [] }, { name: "cin", dtype: "bool", dims: [] }, {
                name: "ai",
              }],
              [{ name: "cin", dtype: "bool" }, { name: "ao" }, { name: "el" }],
              [
                { op: "SequenceAt", inputs: ["s", "i"], outputs: ["el"] },
                { op: "Mul", inputs: ["ai", "el"], outputs: ["ao"] },
              ],
            ),
          },
        },
      ],
    },
    { M: scalar("int64", 3), flag: scalar("bool", 1) },
    ["t_s", "e_s"],
  );
});

const GPU = gpuUnderTest();

Deno.test({
  name:
    `gpu target (${GPU.name}): Loop and Scan run on the host with the body's outer values and weight from the device`,
  ignore: gpuIgnore("ops_control_test.ts"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kiln_loop_gpu_" });
    try {
      await Deno.writeFile(`${dir}/w.bin`, new Uint8Array(Float32Array.of(0.5, -1, 2).buffer));
      const consts = { M: scalar("int64", 3), cond: scalar("bool", 1) };
      const inputs = { x: f32([2, 3], 6), y0: f32([2, 3], 7), s0: f32([3], 1), a: f32([4, 3], 2) };
      const scanNode: NodeSpec = {
        op: "Scan",
        inputs: ["s0", "a"],
        outputs: ["s", "sy"],
        attrs: {
          num_scan_inputs: { i: 1 },
          scan_input_directions: { ints: [1] },
          body: body([{ name: "si" }, { name: "ai" }], [{ name: "so" }, { name: "o" }], [
            { op: "Mul", inputs: ["ai", "w"], outputs: ["aw"] }, // the deferred weight, from the device
            { op: "Add", inputs: ["si", "aw"], outputs: ["so"] },
            { op: "Sub", inputs: ["so", "ai"], outputs: ["o"] },
          ]),
        },
      };
      const bytes = model({
        opset: 16,
        inputs: { ...inputs, ...consts },
        initializers: [{
          name: "w",
          dtype: "float32",
          dims: [3],
          external: { location: "w.bin", offset: 0, length: 12 },
        }],
        outputs: ["y", "ys", "s", "sy"].map((name) => ({ name, dtype: "float32" as const })),
        nodes: [...loopNodes(), scanNode],
      });
      await Deno.writeFile(`${dir}/m.onnx`, bytes);
      const opts = {
        inputDims: { x: [2, 3], y0: [2, 3], s0: [3], a: [4, 3] },
        constantInputs: consts,
        deferExternalWeights: true,
      };
      const ref = compile(await parseOnnx(`${dir}/m.onnx`, opts), "ref");
      const gpu = compile(await parseOnnx(`${dir}/m.onnx`, opts), "gpu", { gpu: GPU.options });
      try {
        assert.deepEqual(gpu.info().hostNodes.map((h) => h.op).filter((o) => o === "Loop" || o === "Scan"), [
          "Loop",
          "Scan",
        ]);
        for (const w of [Float32Array.of(0.5, -1, 2), Float32Array.of(-3, 0.25, 1)]) {
          await ref.setWeights({ w: { dtype: "float32", dims: [3], data: w } });
          await gpu.setWeights({ w: { dtype: "float32", dims: [3], data: w } });
          const want = await ref.eval(inputs);
          const got = await gpu.eval(inputs);
          for (const k of ["y", "ys", "s", "sy"]) close(got[k], want[k], `${k} (gpu vs ref)`);
        }
      } finally {
        gpu.dispose();
        ref.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
