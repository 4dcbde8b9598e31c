// ONNX importer tests: generated decoder, parseOnnx / importModel on writer-built models and the
// exporter graphs in /work/shared/models, external data, readTensorProto.
import { SHARED_MODELS } from "./util/models.ts";
import assert from "node:assert/strict";
import type {
  Attrs,
  DType,
  ExternalDataRef,
  ModuleBuilder,
  TensorValue,
  ValueRef,
} from "../core/ir/builder.ts";
import { decodeModel, importModel, modelOpset, parseOnnx, type ParseOptions } from "../core/onnx/import.ts";
import { KilnError } from "../core/errors.ts";
import { readTensorProto } from "../core/onnx/tensor_proto.ts";
import { normalizeLocation } from "../core/onnx/external_data.ts";
import { buildModel, type ModelSpec, type TensorSpec, writeTensorProto } from "../core/onnx/writer.ts";
import { onnx } from "../core/onnx/onnx_pb.js";

// ---- a recording ModuleBuilder: what the importer asked the core to build ----

interface Item {
  kind: "param" | "literal" | "hostLiteral" | "externalWeights" | "node";
  name: string;
  refs: ValueRef[];
  dtype?: DType;
  dims?: number[];
  bytes?: Uint8Array;
  hostId?: number;
  ext?: ExternalDataRef;
  op?: string;
  inputs?: (ValueRef | null)[];
  attrs?: Attrs;
}

class RecModule implements ModuleBuilder {
  readonly items: Item[] = [];
  outputs: { values: ValueRef[]; names: string[] } | null = null;
  constructor(readonly graph: RecGraph, readonly index: number, readonly name: string) {}
  #add(item: Omit<Item, "refs">, n = 1): ValueRef[] {
    const refs = Array.from({ length: n }, () => this.graph.nextRef++);
    const it = { ...item, refs };
    this.items.push(it);
    for (const r of refs) this.graph.byRef.set(r, { module: this, item: it });
    return refs;
  }
  param(name: string, dtype: DType, dims: number[]): ValueRef {
    return this.#add({ kind: "param", name, dtype, dims })[0];
  }
  boundParam(name: string, dtype: DType = 1): ValueRef {
    return this.#add({ kind: "param", name, dtype, dims: [] })[0];
  }
  literal(name: string, v: TensorValue): ValueRef {
    return this.#add({ kind: "literal", name, dtype: v.dtype, dims: v.dims, bytes: v.bytes })[0];
  }
  hostLiteral(name: string, dtype: DType, dims: number[], hostId: number): ValueRef {
    return this.#add({ kind: "hostLiteral", name, dtype, dims, hostId })[0];
  }
  externalWeights(name: string, dtype: DType, dims: number[], ext: ExternalDataRef): ValueRef {
    return this.#add({ kind: "externalWeights", name, dtype, dims, ext })[0];
  }
  node(
    op: string,
    inputs: (ValueRef | null)[],
    attrs: Attrs,
    numOutputs: number,
    nodeName: string,
  ): ValueRef[] {
    return this.#add({ kind: "node", name: nodeName, op, inputs, attrs }, numOutputs);
  }
  ret(values: ValueRef[], names: string[]): void {
    this.outputs = { values, names };
  }
  submodule(name: string): ModuleBuilder {
    const m = new RecModule(this.graph, this.graph.modules.length, name);
    this.graph.modules.push(m);
    return m;
  }
  find(name: string): Item {
    const it = this.items.find((i) => i.name === name);
    assert.ok(it, `no item '${name}' in module '${this.name}'`);
    return it;
  }
}

class RecGraph {
  nextRef = 0;
  readonly byRef = new Map<ValueRef, { module: RecModule; item: Item }>();
  readonly modules: RecModule[] = [];
  readonly main: RecModule;
  constructor(readonly opset: number) {
    this.main = new RecModule(this, 0, "main");
    this.modules.push(this.main);
  }
  /** The name of the item that produced a value. */
  src(ref: ValueRef | null): string | null {
    return ref === null ? null : this.byRef.get(ref)!.item.name;
  }
}

async function importSpec(spec: ModelSpec, options: ParseOptions = {}) {
  const model = decodeModel(buildModel(spec));
  const graph = new RecGraph(spec.opset ?? 18);
  const parsed = await importModel(model, graph, options);
  return { graph, parsed };
}

const f32 = (t: Item) => Array.from(new Float32Array(t.bytes!.slice().buffer));
const i64 = (t: Item) => Array.from(new BigInt64Array(t.bytes!.slice().buffer));

const ADD_MODEL: ModelSpec = {
  graph: {
    inputs: [{ name: "x", dtype: "float32", dims: ["batch", 3] }],
    outputs: [{ name: "y", dtype: "float32", dims: ["batch", 3] }],
    initializers: [{ name: "w", dtype: "float32", dims: [3], data: [1, 2, 3] }],
    nodes: [{ op: "Add", inputs: ["x", "w"], outputs: ["y"] }],
  },
};

Deno.test("gen_onnx: regenerating core/onnx/onnx_pb.* from onnx.proto gives identical files", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../tools/gen_onnx.ts", import.meta.url).pathname, "--check"],
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
});

Deno.test("onnx_pb: int64 fields decode to exact numbers or bigints", () => {
  const vals = [0, 1, -1, 127, 128, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 53 - 1)];
  const big = [2n ** 53n, 9223372036854775807n, -9223372036854775808n, -(2n ** 53n)];
  const t = onnx.TensorProto.decode(
    onnx.TensorProto.encode(
      new onnx.TensorProto({ int64_data: [...vals, ...big], uint64_data: [2n ** 64n - 1n, 5] }),
    )
      .finish(),
  );
  assert.deepEqual(t.int64_data, [...vals, ...big]);
  assert.deepEqual(t.uint64_data, [2n ** 64n - 1n, 5]);
  // absent int64 fields read as 0, not a Long
  assert.equal(new onnx.AttributeProto().i, 0);
});

Deno.test("importModel: plain graph maps inputs, initializers, nodes and outputs", async (t) => {
  await t.step("symbolic dim filled from inputDims", async () => {
    const { graph, parsed } = await importSpec(ADD_MODEL, { inputDims: { x: [2, 3] } });
    assert.deepEqual(parsed.inputs, [{ name: "x", dtype: "float32", dims: [2, 3] }]);
    assert.deepEqual(parsed.outputs, [{ name: "y" }]);
    assert.equal(parsed.opset, 18);
    const m = graph.main;
    assert.deepEqual(m.items.map((i) => `${i.kind}:${i.name}`), ["param:x", "literal:w", "node:Add_0"]);
    assert.deepEqual(f32(m.find("w")), [1, 2, 3]);
    const add = m.find("Add_0");
    assert.deepEqual(add.inputs!.map((r) => graph.src(r)), ["x", "w"]);
    assert.deepEqual(m.outputs!.names, ["y"]);
    assert.equal(m.outputs!.values[0], add.refs[0]);
  });
  await t.step("unresolved symbolic dim is an error naming the input and the dim", async () => {
    await assert.rejects(
      importSpec(ADD_MODEL),
      /Graph input 'x' dim 0 is 'batch' \(\[batch,3\]\); give it in options.inputDims/,
    );
  });
  await t.step("inputDims for an unknown input lists the real inputs", async () => {
    await assert.rejects(
      importSpec(ADD_MODEL, { inputDims: { x: [1, 3], ids: [1] } }),
      /inputDims names 'ids', which is not a graph input \(inputs: 'x'\)/,
    );
  });
  await t.step("inputDims must agree with fixed dims and rank", async () => {
    await assert.rejects(
      importSpec(ADD_MODEL, { inputDims: { x: [2, 4] } }),
      /gives dim 1 = 4, but the model fixes it to 3/,
    );
    await assert.rejects(
      importSpec(ADD_MODEL, { inputDims: { x: [2] } }),
      /has rank 1, the model declares rank 2/,
    );
  });
  await t.step("constantInputs become literals and leave the inputs", async () => {
    const x = { dtype: "float32" as const, dims: [1, 3], data: new Float32Array([4, 5, 6]) };
    const { graph, parsed } = await importSpec(ADD_MODEL, { constantInputs: { x } });
    assert.deepEqual(parsed.inputs, []);
    assert.deepEqual(f32(graph.main.find("x")), [4, 5, 6]);
    assert.equal(graph.main.find("x").kind, "literal");
    const bad = { dtype: "int32" as const, dims: [1, 3], data: new Int32Array(3) };
    await assert.rejects(
      importSpec(ADD_MODEL, { constantInputs: { x: bad } }),
      /constantInputs 'x' is int32\[1,3\]/,
    );
  });
  await t.step("initializers listed as graph inputs are constants, not inputs", async () => {
    const spec = structuredClone(ADD_MODEL);
    spec.graph.inputs!.push({ name: "w", dtype: "float32", dims: [3] });
    const { parsed } = await importSpec(spec, { inputDims: { x: [1, 3] } });
    assert.deepEqual(parsed.inputs.map((i) => i.name), ["x"]);
  });
});

Deno.test("importModel: tensor encodings (raw_data and typed fields) give the same bytes", async () => {
  const cases: TensorSpec[] = [
    { name: "f32", dtype: "float32", dims: [2], data: [1.5, -2] },
    { name: "f64", dtype: "float64", dims: [2], data: [1.25, 1e300] },
    { name: "i64", dtype: "int64", dims: [3], data: [-1n, 9223372036854775807n, 5n] },
    { name: "u64", dtype: "uint64", dims: [2], data: [18446744073709551615n, 7n] },
    { name: "u32", dtype: "uint32", dims: [2], data: [4294967295, 1] },
    { name: "i32", dtype: "int32", dims: [2], data: [-7, 2147483647] },
    { name: "i16", dtype: "int16", dims: [2], data: [-300, 300] },
    { name: "u16", dtype: "uint16", dims: [1], data: [65535] },
    { name: "i8", dtype: "int8", dims: [2], data: [-128, 127] },
    { name: "u8", dtype: "uint8", dims: [2], data: [0, 255] },
    { name: "b", dtype: "bool", dims: [3], data: [1, 0, 1] },
    { name: "h", dtype: "float16", dims: [2], data: [0x3c00, 0xc000] },
    { name: "bf", dtype: "bfloat16", dims: [1], data: [0x3f80] },
    { name: "scalar", dtype: "float32", dims: [], data: [3] },
    { name: "empty", dtype: "float32", dims: [0, 2], data: [] },
  ];
  const spec = (encoding: "raw" | "typed"): ModelSpec => ({
    graph: {
      outputs: cases.map((c) => ({ name: c.name })),
      initializers: cases.map((c) => ({ ...c, encoding })),
      nodes: [],
    },
  });
  const raw = (await importSpec(spec("raw"))).graph.main;
  const typed = (await importSpec(spec("typed"))).graph.main;
  for (const c of cases) {
    const a = raw.find(c.name), b = typed.find(c.name);
    assert.deepEqual(a.dims, c.dims, c.name);
    assert.deepEqual(b.bytes, a.bytes, `${c.name}: typed field bytes differ from raw_data`);
  }
  assert.deepEqual(i64(raw.find("i64")), [-1n, 9223372036854775807n, 5n]);
});

Deno.test("importModel: large initializers become host literals, small ones literals", async () => {
  const big = new Float32Array(20000).map((_, i) => i);
  const { graph, parsed } = await importSpec({
    graph: {
      outputs: [{ name: "big" }, { name: "small" }],
      initializers: [
        { name: "big", dtype: "float32", dims: [20000], data: big },
        { name: "small", dtype: "float32", dims: [1], data: [1] },
      ],
      nodes: [],
    },
  });
  const it = graph.main.find("big");
  assert.equal(it.kind, "hostLiteral");
  assert.equal(parsed.hostLiterals[it.hostId!].name, "big");
  assert.deepEqual(new Float32Array(parsed.hostLiterals[it.hostId!].bytes.slice().buffer), big);
  assert.equal(graph.main.find("small").kind, "literal");
});

Deno.test("importModel: Constant nodes of every value kind become literals", async () => {
  const { graph } = await importSpec({
    graph: {
      outputs: [{ name: "a" }, { name: "b" }, { name: "c" }, { name: "d" }, { name: "e" }],
      nodes: [
        {
          op: "Constant",
          inputs: [],
          outputs: ["a"],
          attrs: { value: { t: { name: "", dtype: "int32", dims: [2], data: [7, 8] } } },
        },
        { op: "Constant", inputs: [], outputs: ["b"], attrs: { value_float: { f: 2.5 } } },
        { op: "Constant", inputs: [], outputs: ["c"], attrs: { value_floats: { floats: [1, 2] } } },
        { op: "Constant", inputs: [], outputs: ["d"], attrs: { value_int: { i: -3 } } },
        {
          op: "Constant",
          inputs: [],
          outputs: ["e"],
          attrs: { value_ints: { ints: [1, 9223372036854775807n] } },
        },
      ],
    },
  });
  const m = graph.main;
  assert.ok(m.items.every((i) => i.kind === "literal"));
  assert.deepEqual(Array.from(new Int32Array(m.find("a").bytes!.slice().buffer)), [7, 8]);
  assert.deepEqual(m.find("b").dims, []);
  assert.deepEqual(f32(m.find("b")), [2.5]);
  assert.deepEqual(f32(m.find("c")), [1, 2]);
  assert.deepEqual(i64(m.find("d")), [-3n]);
  assert.deepEqual(i64(m.find("e")), [1n, 9223372036854775807n]);
  assert.equal(m.find("e").dtype, 7);
});

Deno.test("importModel: attributes of every kind reach the builder by name", async () => {
  const { graph } = await importSpec({
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [1] }],
      outputs: [{ name: "y" }],
      nodes: [{
        op: "Foo",
        name: "foo",
        inputs: ["x", ""],
        outputs: ["y", ""],
        attrs: {
          i: { i: 5 },
          big: { i: 9223372036854775807n },
          f: { f: 0.5 },
          s: { s: "constant" },
          ints: { ints: [1, -1] },
          floats: { floats: [0.25] },
          strings: { strings: ["a", "b"] },
          t: { t: { name: "v", dtype: "int64", dims: [1], data: [3n] } },
        },
      }],
    },
  });
  const n = graph.main.find("foo");
  assert.deepEqual(n.inputs!.map((r) => graph.src(r)), ["x", null]);
  assert.equal(n.refs.length, 2);
  const a = n.attrs!;
  assert.deepEqual(a.i, { i: 5 });
  assert.deepEqual(a.big, { i: 9223372036854775807n });
  assert.deepEqual(a.f, { f: 0.5 });
  assert.deepEqual(a.s, { s: "constant" });
  assert.deepEqual(a.ints, { ints: [1, -1] });
  assert.deepEqual(a.floats, { floats: [0.25] });
  assert.deepEqual(a.strings, { strings: ["a", "b"] });
  assert.ok("t" in a.t);
  assert.deepEqual(a.t.t.dims, [1]);
  assert.deepEqual(Array.from(new BigInt64Array(a.t.t.bytes.slice().buffer)), [3n]);
});

Deno.test("importModel: If branches become submodules that read outer-scope values", async () => {
  const branch = (name: string, k: number) => ({
    name,
    outputs: [{ name: `${name}_out` }],
    initializers: [{ name: `${name}_k`, dtype: "float32" as const, dims: [1], data: [k] }],
    nodes: [{ op: "Mul", inputs: ["x", `${name}_k`], outputs: [`${name}_out`] }],
  });
  const { graph } = await importSpec({
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [2] }, { name: "c", dtype: "bool", dims: [] }],
      outputs: [{ name: "y" }],
      nodes: [{
        op: "If",
        name: "if",
        inputs: ["c"],
        outputs: ["y"],
        attrs: { then_branch: { g: branch("then", 2) }, else_branch: { g: branch("else", 3) } },
      }],
    },
  });
  assert.equal(graph.modules.length, 3);
  const ifNode = graph.main.find("if");
  const thenMod = graph.modules[(ifNode.attrs!.then_branch as { g: number }).g];
  const elseMod = graph.modules[(ifNode.attrs!.else_branch as { g: number }).g];
  assert.equal(thenMod.name, "if.then_branch");
  assert.deepEqual(f32(thenMod.find("then_k")), [2]);
  assert.deepEqual(f32(elseMod.find("else_k")), [3]);
  const mul = thenMod.find("Mul_0");
  // "x" resolves to the main module's param
  assert.equal(graph.byRef.get(mul.inputs![0]!)!.module, graph.main);
  assert.equal(graph.src(mul.inputs![0]), "x");
  assert.deepEqual(thenMod.outputs!.names, ["then_out"]);
});

Deno.test("importModel: clear errors for unsupported domains, types and undefined names", async (t) => {
  await t.step("node of another domain", async () => {
    await assert.rejects(
      importSpec({
        graph: {
          inputs: [{ name: "x", dims: [1] }],
          outputs: [{ name: "y" }],
          nodes: [{ op: "Gelu", domain: "com.microsoft", name: "g", inputs: ["x"], outputs: ["y"] }],
        },
        otherOpsets: [{ domain: "com.microsoft", version: 1 }],
      }),
      /Node 'g' \(Gelu\) is in domain 'com.microsoft'; kiln supports only the default ONNX domain/,
    );
  });
  await t.step("unsupported element types name the tensor", async () => {
    for (
      const [code, name] of [[8, "STRING"], [17, "FLOAT8E4M3FN"], [22, "INT4"], [14, "COMPLEX64"]] as const
    ) {
      await assert.rejects(
        importSpec({
          graph: {
            outputs: [{ name: "w" }],
            initializers: [{ name: "w", dtype: code, dims: [1], data: new Uint8Array(1) }],
            nodes: [],
          },
        }),
        new RegExp(`Initializer 'w' has element type ${name} \\(${code}\\), which kiln does not support`),
      );
    }
    await assert.rejects(
      importSpec({
        graph: { inputs: [{ name: "s", dtype: 8, dims: [1] }], outputs: [{ name: "s" }], nodes: [] },
      }),
      /Graph input 's' has element type STRING \(8\)/,
    );
  });
  await t.step("raw_data of the wrong size", async () => {
    await assert.rejects(
      importSpec({
        graph: {
          outputs: [{ name: "w" }],
          initializers: [{ name: "w", dtype: "float32", dims: [2], data: new Uint8Array(4) }],
          nodes: [],
        },
      }),
      /Initializer 'w' \(float32\[2\]\) has 4 bytes of raw_data, needs 8/,
    );
  });
  await t.step("a node reading an undefined value", async () => {
    await assert.rejects(
      importSpec({
        graph: { outputs: [{ name: "y" }], nodes: [{ op: "Relu", inputs: ["nope"], outputs: ["y"] }] },
      }),
      /Node 'Relu_0' \(Relu\) reads 'nope', which no earlier node, input or initializer of graph 'graph' defines/,
    );
  });
  await t.step("no default-domain opset", () => {
    const bytes = onnx.ModelProto.encode({
      ir_version: 10,
      opset_import: [{ domain: "com.x", version: 1 }],
      graph: { name: "g" },
    }).finish();
    assert.throws(() => modelOpset(decodeModel(bytes)), /imports no default-domain opset/);
  });
});

// ---- hostile dims: checked as non-negative integers up to 2^31 - 1, never narrowed to 32 bits ----

const HOSTILE_DIMS: [string, number | bigint, string][] = [
  ["2^31", 2 ** 31, "2147483648"],
  ["2^32", 2 ** 32, "4294967296"],
  ["-5", -5, "-5"],
  ["2^53 + 1 (decoded as a bigint)", 2n ** 53n + 1n, "9007199254740993"],
  ["-(2^63)", -(2n ** 63n), "-9223372036854775808"],
];

type HostileDims = {
  initializer?: (number | bigint)[];
  input?: (number | bigint)[];
  constant?: (number | bigint)[];
};

/** A model encoded straight from protos (no writer checks): an initializer, input or Constant with `dims`. */
function hostileBytes(dims: HostileDims): Uint8Array {
  return onnx.ModelProto.encode({
    ir_version: 10,
    opset_import: [{ domain: "", version: 18 }],
    graph: {
      name: "g",
      initializer: dims.initializer
        ? [{ name: "w", data_type: 1, dims: dims.initializer, raw_data: new Uint8Array(4) }]
        : [],
      input: dims.input
        ? [{
          name: "x",
          type: { tensor_type: { elem_type: 1, shape: { dim: dims.input.map((d) => ({ dim_value: d })) } } },
        }]
        : [],
      node: dims.constant
        ? [{
          op_type: "Constant",
          name: "c",
          output: ["k"],
          attribute: [{
            name: "value",
            type: onnx.AttributeProto.AttributeType.TENSOR,
            t: { data_type: 1, dims: dims.constant, raw_data: new Uint8Array(4) },
          }],
        }]
        : [],
      output: [{ name: dims.initializer ? "w" : dims.input ? "x" : "k" }],
    },
  }).finish();
}

function hostileModel(dims: HostileDims): onnx.ModelProto {
  return decodeModel(hostileBytes(dims));
}

async function rejectsKiln(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("importModel: dims out of range are KilnErrors naming the tensor or input and the value", async (t) => {
  for (const [what, d, text] of HOSTILE_DIMS) {
    await t.step(`initializer dim ${what}`, async () => {
      await rejectsKiln(
        importModel(hostileModel({ initializer: [1, d] }), new RecGraph(18)),
        "onnx",
        new RegExp(
          `Initializer 'w' has an invalid dimension '${text}' \\(dim 1; dims must be integers from 0 to 2147483647\\)`,
        ),
      );
    });
    await t.step(`Constant node tensor dim ${what}`, async () => {
      await rejectsKiln(
        importModel(hostileModel({ constant: [d] }), new RecGraph(18)),
        "onnx",
        new RegExp(`Constant node 'c' has an invalid dimension '${text}' \\(dim 0;`),
      );
    });
    await t.step(`graph input dim ${what}`, async () => {
      await rejectsKiln(
        importModel(hostileModel({ input: [d, 3] }), new RecGraph(18)),
        "onnx",
        new RegExp(
          `Graph input 'x' dim 0 is invalid \\(${text}\\): dims must be integers from 0 to 2147483647`,
        ),
      );
    });
    await t.step(`readTensorProto dim ${what}`, () => {
      const bytes = onnx.TensorProto.encode({
        name: "t",
        data_type: 1,
        dims: [d],
        raw_data: new Uint8Array(4),
      })
        .finish();
      assert.throws(
        () => readTensorProto(bytes),
        (e: unknown) =>
          e instanceof KilnError && e.code === "onnx" &&
          new RegExp(`Tensor 't' has an invalid dimension '${text}'`).test(e.message),
      );
    });
  }
  await t.step("2^31 - 1 itself is a dim kiln takes (the input stays an input)", async () => {
    const { parsed } = await importSpec({
      graph: {
        inputs: [{ name: "x", dtype: "float32", dims: [2 ** 31 - 1, 0] }],
        outputs: [{ name: "x" }],
        nodes: [],
      },
    });
    assert.deepEqual(parsed.inputs, [{ name: "x", dtype: "float32", dims: [2 ** 31 - 1, 0] }]);
  });
  await t.step("inputDims past 2^31 - 1, negative or fractional name the input and the dim", async () => {
    for (
      const [dims, bad] of [
        [[2 ** 31, 3], "dim 0 is 2147483648"],
        [[1, 2 ** 53 + 2], "dim 1 is 9007199254740994"],
        [
          [-1, 3],
          "dim 0 is -1",
        ],
        [[1.5, 3], "dim 0 is 1.5"],
        [[NaN, 3], "dim 0 is NaN"],
      ] as const
    ) {
      await rejectsKiln(
        importSpec(ADD_MODEL, { inputDims: { x: [...dims] } }),
        "input",
        new RegExp(
          `inputDims for 'x' must be non-negative integers up to 2147483647 \\(2\\^31 - 1\\), got .*\\(${bad}\\)`,
        ),
      );
    }
  });
  await t.step("constantInputs with dims past 2^31 - 1", async () => {
    const x = { dtype: "float32" as const, dims: [2 ** 32 + 1, 3], data: new Float32Array(3) };
    await rejectsKiln(
      importSpec(ADD_MODEL, { constantInputs: { x } }),
      "input",
      /constantInputs 'x' has dims \[4294967297,3\]; dims must be integers from 0 to 2147483647/,
    );
  });
  await t.step(
    "dims alone never make kiln allocate: an empty tensor of 2^62 elements is an error",
    () => {
      const bytes = onnx.TensorProto.encode({ name: "t", data_type: 1, dims: [2 ** 31 - 1, 2 ** 31 - 1] })
        .finish();
      assert.throws(
        () => readTensorProto(bytes),
        (e: unknown) =>
          e instanceof KilnError && e.code === "onnx" &&
          /Tensor 't' \(float32\[2147483647,2147483647\]\) has 0 values in float_data, needs 4611686014132420600/
            .test(e.message),
      );
    },
  );
  await t.step("parseOnnx: an input dim of 2^31 fails before the graph encoding narrows it", async () => {
    await rejectsKiln(
      parseOnnx(hostileBytes({ input: [2 ** 31] })),
      "onnx",
      /Graph input 'x' dim 0 is invalid \(2147483648\)/,
    );
  });
});

/** y = Relu(x) * alpha, a model-local function of domain "local" with a default alpha of 2. */
const SCALED_RELU = {
  domain: "local",
  name: "ScaledRelu",
  inputs: ["X"],
  outputs: ["Y"],
  defaults: { alpha: { f: 2 } },
  nodes: [
    {
      op: "Constant",
      inputs: [],
      outputs: ["a"],
      attrs: { value_float: { ref: "alpha", kind: "f" as const } },
    },
    { op: "Relu", inputs: ["X"], outputs: ["r"] },
    { op: "Mul", inputs: ["r", "a"], outputs: ["Y"] },
  ],
};

const FUNCTION_MODEL: ModelSpec = {
  otherOpsets: [{ domain: "local", version: 1 }],
  functions: [SCALED_RELU],
  graph: {
    inputs: [{ name: "x", dtype: "float32", dims: [3] }],
    outputs: [{ name: "y", dtype: "float32", dims: [3] }],
    nodes: [
      {
        op: "ScaledRelu",
        domain: "local",
        name: "s1",
        inputs: ["x"],
        outputs: ["h"],
        attrs: { alpha: { f: 3 } },
      },
      { op: "ScaledRelu", domain: "local", name: "s2", inputs: ["h"], outputs: ["y"] },
    ],
  },
};

Deno.test("importModel: model-local functions are inlined with the caller's attributes or defaults", async () => {
  const { graph } = await importSpec(FUNCTION_MODEL);
  const m = graph.main;
  assert.deepEqual(m.items.map((i) => `${i.kind}:${i.name}`), [
    "param:x",
    "literal:s1/a",
    "node:s1/Relu_1",
    "node:s1/Mul_2",
    "literal:s2/a",
    "node:s2/Relu_1",
    "node:s2/Mul_2",
  ]);
  const lits = m.items.filter((i) => i.kind === "literal");
  assert.deepEqual(lits.map(f32), [[3], [2]]);
  assert.deepEqual(graph.src(m.find("s2/Relu_1").inputs![0]), "s1/Mul_2");
  assert.equal(m.outputs!.values[0], m.find("s2/Mul_2").refs[0]);
  // a function body sees only its inputs
  const leaky = structuredClone(FUNCTION_MODEL);
  leaky.functions![0].nodes[1].inputs = ["x"];
  await assert.rejects(
    importSpec(leaky),
    /Node 's1\/Relu_1' \(Relu\) reads 'x', which no earlier node, input or initializer of graph 'function local:ScaledRelu' defines/,
  );
});

// ---- external data ----

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_onnx_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A model with one external float32[4] initializer "w" feeding Add, and one Reshape shape "shape". */
function externalModel(external: TensorSpec["external"], shapeExternal?: TensorSpec["external"]): ModelSpec {
  return {
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: [4] }],
      outputs: [{ name: "y" }],
      initializers: [
        { name: "w", dtype: "float32", dims: [4], external },
        shapeExternal
          ? { name: "shape", dtype: "int64", dims: [2], external: shapeExternal }
          : { name: "shape", dtype: "int64", dims: [2], data: [2n, 2n] },
      ],
      nodes: [
        { op: "Add", inputs: ["x", "w"], outputs: ["s"] },
        { op: "Reshape", inputs: ["s", "shape"], outputs: ["y"] },
      ],
    },
  };
}

const W = new Float32Array([1, 2, 3, 4]);
const SHAPE = new BigInt64Array([2n, 2n]);

async function writeData(dir: string, name = "w.data"): Promise<void> {
  // 16 bytes of padding, w at 16, shape at 32
  const buf = new Uint8Array(48);
  buf.set(new Uint8Array(W.buffer), 16);
  buf.set(new Uint8Array(SHAPE.buffer), 32);
  await Deno.mkdir(`${dir}/${name.split("/").slice(0, -1).join("/") || "."}`, { recursive: true });
  await Deno.writeFile(`${dir}/${name}`, buf);
}

Deno.test("importModel: external data is read by key, in ranges, relative to the model folder", async (t) => {
  await withDir(async (dir) => {
    await writeData(dir, "sub/w.data");
    await t.step("entries in any order, length defaulting to the tensor size", async () => {
      const ext: [string, string][] = [["offset", "16"], ["location", "sub/w.data"]];
      const { graph, parsed } = await importSpec(externalModel(ext), { baseDir: dir });
      const w = graph.main.find("w");
      assert.equal(w.kind, "literal");
      assert.deepEqual(f32(w), [1, 2, 3, 4]);
      assert.deepEqual(parsed.fixedWeights, []);
    });
    await t.step("a normalized location inside the folder is accepted", async () => {
      const { graph } = await importSpec(
        externalModel({ location: "sub/./x/../w.data", offset: 16, length: 16 }),
        {
          baseDir: dir,
        },
      );
      assert.deepEqual(f32(graph.main.find("w")), [1, 2, 3, 4]);
    });
    await t.step("deferExternalWeights emits weight leaves but reads shape inputs", async () => {
      const { graph, parsed } = await importSpec(
        externalModel({ location: "sub/w.data", offset: 16, length: 16, checksum: "abc" }, {
          location: "sub/w.data",
          offset: 32,
        }),
        { baseDir: dir, deferExternalWeights: true },
      );
      const w = graph.main.find("w");
      assert.equal(w.kind, "externalWeights");
      assert.deepEqual(w.ext, { location: "sub/w.data", offset: 16, length: 16, checksum: "abc" });
      assert.deepEqual(w.dims, [4]);
      const shape = graph.main.find("shape");
      assert.equal(shape.kind, "literal");
      assert.deepEqual(i64(shape), [2n, 2n]);
      assert.deepEqual(parsed.fixedWeights, ["shape"]);
      assert.deepEqual(parsed.deferredWeights, ["w"]);
    });
    await t.step("a shape input passed through a model-local function is read too", async () => {
      const spec = externalModel({ location: "sub/w.data", offset: 16, length: 16 }, {
        location: "sub/w.data",
        offset: 32,
      });
      spec.functions = [{
        domain: "local",
        name: "Reshaper",
        inputs: ["X", "S"],
        outputs: ["Y"],
        nodes: [{ op: "Reshape", inputs: ["X", "S"], outputs: ["Y"] }],
      }];
      spec.graph.nodes[1] = { op: "Reshaper", domain: "local", inputs: ["s", "shape"], outputs: ["y"] };
      const { graph, parsed } = await importSpec(spec, { baseDir: dir, deferExternalWeights: true });
      assert.deepEqual(parsed.fixedWeights, ["shape"]);
      assert.equal(graph.main.find("shape").kind, "literal");
      assert.equal(graph.main.find("Reshaper_1/Reshape_0").op, "Reshape");
    });
    await t.step("deferred weights need no data file at parse time", async () => {
      const { graph } = await importSpec(externalModel({ location: "absent.data", offset: 0 }), {
        baseDir: dir,
        deferExternalWeights: true,
      });
      assert.equal(graph.main.find("w").kind, "externalWeights");
    });
  });
});

Deno.test("importModel: external data errors name the tensor and the file", async (t) => {
  await withDir(async (dir) => {
    await writeData(dir);
    const cases: [string, TensorSpec["external"], RegExp][] = [
      ["escaping ../x", { location: "../x" }, /tensor 'w': location '\.\.\/x' escapes the model's folder/],
      ["escaping after normalization", { location: "a/../../x" }, /location 'a\/\.\.\/\.\.\/x' escapes/],
      [
        "absolute /etc/passwd",
        { location: "/etc/passwd" },
        /tensor 'w': location '\/etc\/passwd' is absolute/,
      ],
      ["windows drive", { location: "C:\\w.data" }, /is absolute/],
      [
        "missing file",
        { location: "nope.data" },
        /External data file '.*\/nope\.data' of tensor 'w' does not exist/,
      ],
      [
        "range past the end",
        { location: "w.data", offset: 40, length: 16 },
        /tensor 'w': bytes 40\.\.56 are past the end of '.*w\.data' \(48 bytes\)/,
      ],
      [
        "wrong length",
        { location: "w.data", offset: 16, length: 12 },
        /tensor 'w' in 'w\.data': length is 12 bytes, the tensor needs 16/,
      ],
      ["no location", [["offset", "0"]], /tensor 'w' has no 'location'/],
      ["bad offset", [["location", "w.data"], ["offset", "-4"]], /'offset' is '-4', not a byte count/],
      ["unknown key", [["location", "w.data"], ["ofset", "16"]], /unknown key 'ofset'/],
      ["repeated key", [["location", "w.data"], ["location", "x"]], /repeats the key 'location'/],
    ];
    for (const [what, ext, re] of cases) {
      await t.step(what, async () => {
        await assert.rejects(importSpec(externalModel(ext), { baseDir: dir }), re);
      });
    }
    await t.step(
      "onnx's basepath key is accepted and ignored: location stays relative to the model",
      async () => {
        const { graph } = await importSpec(
          externalModel([["location", "w.data"], ["offset", "16"], ["length", "16"], ["basepath", "/etc"]]),
          { baseDir: dir },
        );
        assert.equal(graph.main.find("w").kind, "literal");
        await assert.rejects(
          importSpec(externalModel([["location", "../w.data"], ["basepath", dir]]), { baseDir: dir }),
          /escapes the model's folder/,
        );
      },
    );
    await t.step("escapes are refused even when deferring", async () => {
      await assert.rejects(
        importSpec(externalModel({ location: "../w.data" }), { baseDir: dir, deferExternalWeights: true }),
        /escapes the model's folder/,
      );
    });
    await t.step("a byte model with external data needs baseDir", async () => {
      await assert.rejects(
        importSpec(externalModel({ location: "w.data", offset: 16 })),
        /pass a path, or options.baseDir/,
      );
    });
  });
});

Deno.test("normalizeLocation: keeps relative paths inside the folder", () => {
  assert.equal(normalizeLocation("t", "./a//b/../c.bin"), "a/c.bin");
  assert.throws(() => normalizeLocation("t", "a/.."), /names no file/);
  assert.throws(() => normalizeLocation("t", "\\\\server\\share"), /is absolute/);
});

Deno.test("parseOnnx: reads a path, a file URL or bytes and builds an encodable graph", async () => {
  await withDir(async (dir) => {
    await writeData(dir);
    const bytes = buildModel(externalModel({ location: "w.data", offset: 16, length: 16 }));
    await Deno.writeFile(`${dir}/m.onnx`, bytes);
    for (const source of [`${dir}/m.onnx`, new URL(`file://${dir}/m.onnx`)]) {
      const p = await parseOnnx(source);
      assert.equal(p.modelPath, `${dir}/m.onnx`);
      assert.deepEqual(p.inputs, [{ name: "x", dtype: "float32", dims: [4] }]);
      assert.deepEqual(p.outputs, [{ name: "y" }]);
      assert.equal(p.opset, 18);
      assert.equal(p.graph.opset, 18);
      assert.ok(p.graph.encode().length > 0);
    }
    const fromBytes = await parseOnnx(bytes, { baseDir: dir });
    assert.equal(fromBytes.modelPath, undefined);
    await assert.rejects(
      parseOnnx(`${dir}/absent.onnx`),
      (e: unknown) =>
        e instanceof KilnError && e.code === "io" &&
        /Cannot read ONNX model '.*absent\.onnx'/.test(e.message),
    );
    await assert.rejects(parseOnnx(new Uint8Array([1, 2, 3])), /Cannot decode ONNX model '<bytes>'/);
  });
});

Deno.test("parseOnnx: errors are KilnErrors naming the node", async () => {
  const bytes = buildModel({
    graph: {
      inputs: [{ name: "x", dims: [1] }],
      outputs: [{ name: "y" }],
      nodes: [{ op: "FusedGemm", domain: "com.microsoft", name: "fg", inputs: ["x"], outputs: ["y"] }],
    },
  });
  await assert.rejects(
    parseOnnx(bytes),
    (e: unknown) => e instanceof KilnError && e.code === "onnx" && e.node === "fg" && e.op === "FusedGemm",
  );
  await assert.rejects(
    parseOnnx(buildModel(ADD_MODEL)),
    (e: unknown) => e instanceof KilnError && e.code === "input",
  );
});

// ---- readTensorProto ----

const NODE_TESTS = "/usr/share/libonnx-testdata/data/node";

Deno.test("readTensorProto: decodes writer output and the backend tests' .pb files", async (t) => {
  await t.step("round trip through writeTensorProto", () => {
    const x = { dtype: "int64" as const, dims: [2, 1], data: new BigInt64Array([-5n, 2n ** 62n]) };
    const back = readTensorProto(writeTensorProto(x, "x"));
    assert.equal(back.name, "x");
    assert.equal(back.dtype, "int64");
    assert.deepEqual(back.dims, [2, 1]);
    assert.deepEqual(back.data, x.data);
  });
  let present = false;
  try {
    present = (await Deno.stat(`${NODE_TESTS}/test_add/test_data_set_0/input_0.pb`)).isFile;
  } catch { /* absent */ }
  await t.step({
    name: "test_add input_0.pb",
    ignore: !present,
    fn: async () => {
      const x = readTensorProto(await Deno.readFile(`${NODE_TESTS}/test_add/test_data_set_0/input_0.pb`));
      assert.equal(x.dtype, "float32");
      assert.deepEqual(x.dims, [3, 4, 5]);
      assert.equal(x.data.length, 60);
      const model = decodeModel(await Deno.readFile(`${NODE_TESTS}/test_add/model.onnx`));
      assert.equal(model.graph!.input![0].name, x.name);
    },
  });
});

// ---- the exporter graphs in /work/shared/models ----

const MODELS = SHARED_MODELS;
const REAL: {
  file: string;
  input: string;
  dtype: string;
  dims: number[];
  external: number;
  initializers: number;
}[] = [
  { file: "gpt2_dynamo.onnx", input: "ids", dtype: "int64", dims: [1, 128], external: 55, initializers: 75 },
  { file: "bert_dynamo.onnx", input: "ids", dtype: "int64", dims: [1, 128], external: 92, initializers: 102 },
  {
    file: "resnet50_dynamo.onnx",
    input: "x",
    dtype: "float32",
    dims: [1, 3, 224, 224],
    external: 55,
    initializers: 57,
  },
];

for (const m of REAL) {
  let present = false;
  try {
    present = (await Deno.stat(`${MODELS}/${m.file}`)).isFile;
  } catch { /* absent */ }
  Deno.test({
    name: `importModel: ${m.file} defers its ${m.external} external weights and keeps the rest as literals`,
    ignore: !present,
    fn: async () => {
      const model = decodeModel(await Deno.readFile(`${MODELS}/${m.file}`));
      const graph = new RecGraph(18);
      const parsed = await importModel(model, graph, {
        inputDims: { [m.input]: m.dims },
        deferExternalWeights: true,
        baseDir: MODELS,
      });
      assert.equal(parsed.opset, 18);
      assert.deepEqual(parsed.inputs, [{ name: m.input, dtype: m.dtype, dims: m.dims }]);
      assert.equal(parsed.outputs.length, 1);
      const kinds = (k: Item["kind"]) => graph.main.items.filter((i) => i.kind === k).length;
      assert.equal(kinds("externalWeights"), m.external);
      assert.equal(parsed.deferredWeights.length + parsed.fixedWeights.length, m.external);
      assert.equal(kinds("literal") + kinds("hostLiteral") + kinds("externalWeights"), m.initializers);
      assert.equal(kinds("node"), model.graph!.node!.length);
      for (const ext of graph.main.items.filter((i) => i.kind === "externalWeights")) {
        assert.equal(ext.ext!.location, m.file + ".data");
      }
      const viaPath = await parseOnnx(`${MODELS}/${m.file}`, {
        inputDims: { [m.input]: m.dims },
        deferExternalWeights: true,
      });
      assert.deepEqual(viaPath.inputs, parsed.inputs);
      assert.deepEqual(viaPath.outputs, parsed.outputs);
      assert.ok(viaPath.graph.encode().length > 0);
    },
  });
}

// ---- end to end: writer -> parseOnnx -> compile -> eval on the ref target ----

Deno.test("parseOnnx + compile: a writer-built model evaluates on the ref target", async (t) => {
  const { compile } = await import("../core/program.ts");
  await t.step("initializer, Constant node, typed-field initializer", async () => {
    const bytes = buildModel({
      graph: {
        inputs: [{ name: "x", dtype: "float32", dims: ["n", 3] }],
        outputs: [{ name: "y", dtype: "float32", dims: ["n", 3] }],
        initializers: [
          { name: "w", dtype: "float32", dims: [3], data: [1, -2, 0.5] },
          { name: "b", dtype: "float32", dims: [3], data: [0, 1, 2], encoding: "typed" },
        ],
        nodes: [
          { op: "Constant", inputs: [], outputs: ["two"], attrs: { value_float: { f: 2 } } },
          { op: "Mul", inputs: ["x", "w"], outputs: ["xw"] },
          { op: "Add", inputs: ["xw", "b"], outputs: ["s"] },
          { op: "Relu", inputs: ["s"], outputs: ["r"] },
          { op: "Mul", inputs: ["r", "two"], outputs: ["y"] },
        ],
      },
    });
    const program = compile(await parseOnnx(bytes, { inputDims: { x: [2, 3] } }));
    try {
      const x = new Float32Array([1, 1, 1, -1, -1, 4]);
      const { y } = await program.eval({ x: { dtype: "float32", dims: [2, 3], data: x } });
      const w = [1, -2, 0.5], b = [0, 1, 2];
      const want = Array.from(x, (v, i) => Math.max(0, v * w[i % 3] + b[i % 3]) * 2);
      assert.deepEqual(y.dims, [2, 3]);
      assert.deepEqual(Array.from(y.data as Float32Array), want);
    } finally {
      program.dispose();
    }
  });
  await t.step("If branch using its own initializer and an outer-scope value", async () => {
    const branch = (name: string, k: number) => ({
      name,
      outputs: [{ name: `${name}_out`, dtype: "float32" as const, dims: [2] }],
      initializers: [{ name: `${name}_k`, dtype: "float32" as const, dims: [1], data: [k] }],
      nodes: [{ op: "Mul", inputs: ["x", `${name}_k`], outputs: [`${name}_out`] }],
    });
    const bytes = buildModel({
      graph: {
        inputs: [{ name: "x", dtype: "float32", dims: [2] }, { name: "c", dtype: "bool", dims: [] }],
        outputs: [{ name: "y", dtype: "float32", dims: [2] }],
        nodes: [{
          op: "If",
          inputs: ["c"],
          outputs: ["y"],
          attrs: { then_branch: { g: branch("then", 2) }, else_branch: { g: branch("else", 3) } },
        }],
      },
    });
    const x = { dtype: "float32" as const, dims: [2], data: new Float32Array([1, 2]) };
    const cond = (v: boolean) => ({ dtype: "bool" as const, dims: [], data: new Uint8Array([v ? 1 : 0]) });
    // condition bound at compile time
    for (const [v, want] of [[true, [2, 4]], [false, [3, 6]]] as const) {
      const program = compile(await parseOnnx(bytes, { constantInputs: { c: cond(v) } }));
      try {
        const { y } = await program.eval({ x });
        assert.deepEqual(Array.from(y.data as Float32Array), want);
      } finally {
        program.dispose();
      }
    }
    // condition at run time
    const program = compile(await parseOnnx(bytes));
    try {
      assert.deepEqual(Array.from((await program.eval({ x, c: cond(true) })).y.data as Float32Array), [2, 4]);
      assert.deepEqual(Array.from((await program.eval({ x, c: cond(false) })).y.data as Float32Array), [
        3,
        6,
      ]);
    } finally {
      program.dispose();
    }
  });
  await t.step("external data and a host literal", async () => {
    await withDir(async (dir) => {
      await writeData(dir);
      const big = new Float32Array(20000).map((_, i) => i % 7);
      const spec = externalModel({ location: "w.data", offset: 16, length: 16 });
      spec.graph.initializers!.push({ name: "big", dtype: "float32", dims: [20000], data: big });
      spec.graph.outputs.push({ name: "big_sum" });
      spec.graph.nodes.push({
        op: "ReduceSum",
        inputs: ["big"],
        outputs: ["big_sum"],
        attrs: { keepdims: { i: 0 } },
      });
      await Deno.writeFile(`${dir}/m.onnx`, buildModel(spec));
      const parsed = await parseOnnx(`${dir}/m.onnx`);
      assert.equal(parsed.hostLiterals.length, 1);
      const program = compile(parsed);
      try {
        const out = await program.eval({
          x: { dtype: "float32", dims: [4], data: new Float32Array([10, 20, 30, 40]) },
        });
        assert.deepEqual(out.y.dims, [2, 2]);
        assert.deepEqual(Array.from(out.y.data as Float32Array), [11, 22, 33, 44]);
        assert.equal((out.big_sum.data as Float32Array)[0], big.reduce((a, v) => a + v, 0));
      } finally {
        program.dispose();
      }
    });
  });
  await t.step("a model-local function", async () => {
    const program = compile(await parseOnnx(buildModel(FUNCTION_MODEL)));
    try {
      const { y } = await program.eval({
        x: { dtype: "float32", dims: [3], data: new Float32Array([-1, 0.5, 2]) },
      });
      assert.deepEqual(Array.from(y.data as Float32Array), [0, 3, 12]);
    } finally {
      program.dispose();
    }
  });
  await t.step("deferred external weights become program weights; shape inputs stay literals", async () => {
    await withDir(async (dir) => {
      const spec = externalModel({ location: "w.data", offset: 16, length: 16 }, {
        location: "w.data",
        offset: 32,
      });
      await Deno.writeFile(`${dir}/m.onnx`, buildModel(spec));
      await writeData(dir);
      const parsed = await parseOnnx(`${dir}/m.onnx`, { deferExternalWeights: true });
      assert.deepEqual(parsed.fixedWeights, ["shape"]);
      const program = compile(parsed);
      try {
        const weights = program.info().weights;
        assert.deepEqual(weights.map((w) => [w.name, w.location, w.offset, w.length]), [[
          "w",
          "w.data",
          16,
          16,
        ]]);
        await program.setWeights({
          w: { dtype: "float32", dims: [4], data: new Float32Array([5, 6, 7, 8]) },
        });
        const { y } = await program.eval({
          x: { dtype: "float32", dims: [4], data: new Float32Array([1, 1, 1, 1]) },
        });
        assert.deepEqual(y.dims, [2, 2]);
        assert.deepEqual(Array.from(y.data as Float32Array), [6, 7, 8, 9]);
      } finally {
        program.dispose();
      }
    });
  });
});
