// The core's whole address space: a wasm32 core has up to 4 GiB of memory, and every pointer and
// length that crosses the boundary is unsigned. Past 2 GiB a usize export reads as a negative
// number in JavaScript unless the host makes it unsigned; these tests put pointers there.
import assert from "node:assert/strict";
import { GraphBuilder, type ModuleBuilder } from "../core/ir/builder.ts";
import { compile, Program } from "../core/program.ts";
import { CoreProgram } from "../core/core_program.ts";
import { Engine } from "../core/engine.ts";
import { KilnError } from "../core/errors.ts";
import { refTarget } from "../core/targets/ref.ts";
import type { HostLiteral, ParsedModel } from "../core/onnx/import.ts";
import type { Tensor } from "../core/tensor.ts";

const F32 = 1;
const I32 = 6;
const TWO_GIB = 2 ** 31;
/** The allocator's largest block (TLSF: 1 GiB less its header). */
const MAX_BLOCK = 2 ** 30 - 64;

function model(g: GraphBuilder, hostLiterals: HostLiteral[] = []): ParsedModel {
  return {
    graph: g,
    hostLiterals,
    inputs: [],
    outputs: [],
    opset: g.opset,
    fixedWeights: [],
    deferredWeights: [],
  };
}

function build(fn: (m: ModuleBuilder, g: GraphBuilder) => void, opset = 18): GraphBuilder {
  const g = new GraphBuilder(opset);
  fn(g.main, g);
  return g;
}

/** A small graph: y = Neg(x). */
function negGraph(n: number): GraphBuilder {
  return build((m) => {
    const x = m.param("x", F32, [n]);
    const [y] = m.node("Neg", [x], {}, 1, "neg");
    m.ret([y], ["y"]);
  });
}

Deno.test("Engine: pointers past 2 GiB are unsigned across the boundary (alloc, put/get, results)", () => {
  const engine = new Engine();
  const e = engine.exports;
  // two blocks of (almost) 1 GiB each: never written, so the pages cost no memory
  const big = [e.alloc(MAX_BLOCK), e.alloc(MAX_BLOCK)];
  for (const p of big) assert.ok(p > 0, `alloc gave ${p}`);
  const bytes = new Uint8Array(4096).map((_, i) => (i * 31 + 7) & 0xff);
  const p = engine.put(bytes);
  assert.ok(p >= TWO_GIB && p < 2 ** 32, `put's pointer ${p} lies past 2 GiB, as an unsigned number`);
  assert.deepEqual(engine.get(p, bytes.length), bytes);
  assert.deepEqual(engine.u8().subarray(p, p + 16), bytes.subarray(0, 16));

  // a compiled program whose result buffers (serialize, info) are allocated past 2 GiB
  const graph = negGraph(8).encode();
  const enc = new TextEncoder().encode("ref");
  const gp = engine.put(graph);
  assert.ok(gp >= TWO_GIB, `graph at ${gp}`);
  const h = engine.call("load", () => e.load_graph(gp, graph.length));
  assert.ok(h > 0, "load_graph reads a graph past 2 GiB");
  const tp = engine.put(enc);
  assert.equal(engine.call("compile", () => e.compile(h, tp, enc.length, 1, 0, 0)), 0);
  assert.equal(engine.call("serialize", () => e.serialize(h)), 0);
  assert.ok(e.result_ptr() >= TWO_GIB, `serialize's result at ${e.result_ptr()}`);
  assert.ok(e.result_len() > 0);
  const ir = engine.resultBytes();
  const want = CoreProgram.compile(graph, "ref");
  assert.deepEqual(ir, want.serialize(), "the serialized program read back from past 2 GiB");
  want.dispose();
  assert.equal(engine.call("info", () => e.info(h)), 0);
  assert.ok(e.result_ptr() >= TWO_GIB, `info's result at ${e.result_ptr()}`);
  const info = engine.resultJson<{ inputs: { name: string; dims: number[] }[] }>();
  assert.deepEqual(info.inputs.map((v) => [v.name, v.dims]), [["x", [8]]]);

  // finalize: the program's input and output buffers past 2 GiB
  assert.equal(engine.call("finalize", () => e.finalize(h)), 0);
  const xp = e.input_ptr(h, 0);
  const yp = e.output_ptr(h, 0);
  assert.ok(xp >= TWO_GIB && yp >= TWO_GIB, `input at ${xp}, output at ${yp}`);
  const x = new Float32Array([1, -2, 3.5, -4, 0.25, 1e30, -1e-30, 7]);
  engine.u8().set(new Uint8Array(x.buffer), xp);
  assert.equal(engine.call("run", () => e.run(h)), 0);
  const y = new Float32Array(engine.get(yp, 32).buffer);
  assert.deepEqual(Array.from(y), Array.from(x, (v) => -v));
  // sizes and ranges past the address space are refused, never wrapped to 32 bits
  for (const n of [2 ** 32, 2 ** 32 + 16, -1, 1.5]) {
    assert.throws(
      () => engine.call("alloc", () => e.alloc(n)),
      (err: unknown) =>
        err instanceof KilnError && err.code === "memory" && err.message.includes(`${n} bytes`),
    );
  }
  assert.throws(
    () => engine.get(p, e.memory.buffer.byteLength),
    (err: unknown) => err instanceof KilnError && /lie outside the kiln core's/.test(err.message),
  );
  assert.throws(() => engine.get(-16, 16), KilnError);
  for (const b of big) engine.free(b);
  engine.free(p);
  engine.free(gp);
  engine.free(tp);
  e.dispose(h);
  assert.equal(engine.broken, false);
});

Deno.test("a program using more than 2 GiB of the core's memory runs (ref): literals, input and output past 2 GiB", async () => {
  // Three host literals of 720 MiB each (the ref target's per-buffer limit is 1 GiB): 2.11 GiB of
  // the core's memory, so the buffers finalize places after them (the input, the outputs) lie
  // past 2 GiB. int32 ones: ReduceSum over int32 accumulates exactly (its float32 row path sums in
  // float32 lanes, which stop counting ones at 2^24). One JavaScript buffer backs all three
  // literals (the core copies each in).
  const n = (720 * 2 ** 20) / 4;
  const ones = new Uint8Array(new Int32Array(n).fill(1).buffer);
  const lits: HostLiteral[] = ["a", "b", "c"].map((name) => ({
    name,
    dtype: "int32",
    dims: [n],
    bytes: ones,
  }));
  const k = 1 << 16;
  const g = build((m) => {
    const x = m.param("x", F32, [k]);
    const sums = lits.map((l, id) => {
      const v = m.hostLiteral(l.name, I32, [n], id);
      return m.node("ReduceSum", [v], { keepdims: { i: 0 } }, 1, `sum_${l.name}`)[0];
    });
    const [ab] = m.node("Add", [sums[0], sums[1]], {}, 1, "add_ab");
    const [s] = m.node("Add", [ab, sums[2]], {}, 1, "add_abc");
    const [y] = m.node("Neg", [x], {}, 1, "neg");
    m.ret([s, y], ["s", "y"]);
  });
  // compile() is CoreProgram.compile + new Program: done here by hand to read the core's pointers
  const core = CoreProgram.compile(g.encode(), "ref");
  const p = new Program(core, lits, refTarget);
  try {
    const x = new Float32Array(k);
    for (let i = 0; i < k; i++) x[i] = (i % 251) - 125.5 + i / 1024;
    const out: Record<string, Tensor> = await p.eval({ x: { dtype: "float32", dims: [k], data: x } });
    assert.deepEqual(out.s.dims, []);
    assert.equal(out.s.dtype, "int32");
    assert.equal((out.s.data as Int32Array)[0], 3 * n);
    assert.deepEqual(out.y.dims, [k]);
    const y = out.y.data as Float32Array;
    let bad = -1;
    for (let i = 0; i < k && bad < 0; i++) if (y[i] !== -x[i]) bad = i;
    assert.equal(bad, -1, `y[${bad}] = ${y[bad]}, want ${-x[bad]}`);

    // where the core put them: the input and the outputs past 2 GiB, the literals before
    const engine = core.engine("inspect");
    const h = core.handle("inspect");
    const e = engine.exports;
    assert.ok(e.memory.buffer.byteLength > TWO_GIB, `memory: ${e.memory.buffer.byteLength} bytes`);
    for (const id of [0, 1, 2]) {
      const q = e.host_literal_ptr(h, id);
      assert.ok(q > 0 && q + 4 * n <= e.memory.buffer.byteLength, `host literal ${id} at ${q}`);
    }
    const xp = e.input_ptr(h, 0);
    const [sp, yp] = [e.output_ptr(h, 0), e.output_ptr(h, 1)];
    for (const [what, q] of [["input x", xp], ["output s", sp], ["output y", yp]] as const) {
      assert.ok(q >= TWO_GIB && q < 2 ** 32, `${what} at ${q}`);
    }
    assert.deepEqual(engine.get(xp, 4 * k), new Uint8Array(x.buffer), "the input's bytes past 2 GiB");

    // a second run writes the same input slot again and reads the outputs back
    x.fill(3);
    const again = await p.eval({ x: { dtype: "float32", dims: [k], data: x } });
    assert.ok((again.y.data as Float32Array).every((v) => v === -3));
    assert.equal((again.s.data as Int32Array)[0], 3 * n);
    assert.deepEqual(engine.get(yp, 4 * k), new Uint8Array(again.y.data.buffer));
  } finally {
    p.dispose();
  }
});

Deno.test("compile() runs a program using more than 2 GiB of the core's memory (ref)", async () => {
  // float32 literals of 720 MiB, zeros but for a marker at each end (sums exact in float32 too)
  const n = (720 * 2 ** 20) / 4;
  const f = new Float32Array(n);
  f[0] = 1;
  f[n - 1] = 8;
  const lits: HostLiteral[] = [0, 1, 2].map((id) => ({
    name: `w${id}`,
    dtype: "float32",
    dims: [n],
    bytes: new Uint8Array(f.buffer),
  }));
  const g = build((m) => {
    const x = m.param("x", F32, [4]);
    const sums = lits.map((l, id) => {
      const v = m.hostLiteral(l.name, F32, [n], id);
      return m.node("ReduceSum", [v], { keepdims: { i: 0 } }, 1, `sum_${l.name}`)[0];
    });
    const [ab] = m.node("Add", [sums[0], sums[1]], {}, 1, "add_ab");
    const [s] = m.node("Add", [ab, sums[2]], {}, 1, "add_abc");
    const [y] = m.node("Add", [x, s], {}, 1, "add_x");
    m.ret([y], ["y"]);
  });
  const p = compile(model(g, lits), "ref");
  try {
    const x = new Float32Array([0, 1, -0.5, 1000]);
    const { y } = await p.eval({ x: { dtype: "float32", dims: [4], data: x } });
    assert.deepEqual(Array.from(y.data as Float32Array), Array.from(x, (v) => v + 3 * 9));
  } finally {
    p.dispose();
  }
});

Deno.test("a node output of 2 to 4 GiB is a shape error at compile, never a wrapped 32-bit size", () => {
  // Expand of one float32 to 600 M (2.4 GB) and 900 M (3.6 GB) elements: the core's sizes are i32,
  // so such a tensor once planned into a 64-byte arena slot and trapped ("internal") when run
  for (const n of [600_000_000, 900_000_000]) {
    const g = build((m) => {
      const x = m.param("x", F32, [1]);
      const shape = m.literal("shape", {
        dtype: 7,
        dims: [1],
        bytes: new Uint8Array(new BigInt64Array([BigInt(n)]).buffer),
      });
      const [e] = m.node("Expand", [x, shape], {}, 1, "expand");
      const [y] = m.node("ReduceMax", [e], { keepdims: { i: 0 } }, 1, "max");
      m.ret([y], ["y"]);
    });
    assert.throws(
      () => compile(model(g), "ref"),
      (e: unknown) =>
        e instanceof KilnError && e.code === "shape" &&
        e.message.includes(`output 0 float32[${n}] would take ${4 * n} bytes`) &&
        /less than 2 GiB/.test(e.message),
    );
  }
});

Deno.test("GraphBuilder: dims and 32-bit fields are checked, never wrapped into the encoding", () => {
  for (const d of [2 ** 31, 2 ** 32, -1, 1.5, NaN, 2 ** 53 + 2]) {
    assert.throws(
      () => new GraphBuilder(18).main.param("x", F32, [2, d]),
      (e: unknown) =>
        e instanceof KilnError && e.code === "graph" &&
        e.message.includes(
          `Value 'x' has dim 1 = ${d}; kiln needs static non-negative integer dims up to 2147483647`,
        ),
      `dim ${d}`,
    );
  }
  // 2^31 - 1 is the largest dim: it encodes (the core refuses the tensor for its size, not its dim)
  const g = build((m) => {
    const x = m.param("x", 2, [2 ** 31 - 1]);
    m.ret([x], ["x"]);
  });
  assert.throws(
    () => compile(model(g), "ref"),
    (err: unknown) =>
      err instanceof KilnError && err.code === "memory" &&
      err.message.includes("Value 'x' (uint8[2147483647]) is larger than 1 GiB"),
  );
  // a host literal id past i32 fails at encode, never wraps
  const h = build((m) => {
    const w = m.hostLiteral("w", F32, [1], 2 ** 31);
    m.ret([w], ["w"]);
  });
  assert.throws(
    () => h.encode(),
    (err: unknown) =>
      err instanceof KilnError && err.code === "graph" && /2147483648 does not fit/.test(err.message),
  );
});
