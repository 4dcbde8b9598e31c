/**
 * A small graph DSL over core/onnx/writer.ts for tests: {@linkcode G} builds one graph, float
 * (and quantized integer) weights in external data and small constants inline, and
 * {@linkcode writeGraph} writes it as `<dir>/<name>.onnx` beside `<name>.bin`.
 * @module
 */
import { type AttrSpec, buildModel, type NodeSpec, type TensorSpec } from "../../core/onnx/writer.ts";
import type { DTypeName } from "../../core/tensor.ts";
import { SeededRandom } from "../../core/weights/random.ts";

type Attrs = Record<string, AttrSpec>;

/** Builds one graph: float weights go to external data, small constants stay inline. */
export class G {
  readonly nodes: NodeSpec[] = [];
  readonly inits: TensorSpec[] = [];
  readonly weights: {
    name: string;
    dims: number[];
    data: Float32Array | Int8Array | Uint8Array;
    dtype?: DTypeName;
  }[] = [];
  readonly rng: SeededRandom;
  #n = 0;
  constructor(seed: number, readonly prefix = "") {
    this.rng = new SeededRandom(seed);
  }
  /** An external float weight, N(0, scale) (default 1/sqrt(fan_in)), or 1 + N(0, 0.05) when `ones`. */
  w(name: string, dims: number[], opts: { scale?: number; ones?: boolean } = {}): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const fanIn = dims.length >= 2 ? dims.slice(1).reduce((a, b) => a * b, 1) : 1;
    const scale = opts.scale ?? (dims.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      data[i] = (opts.ones ? 1 : 0) + this.rng.normal() * (opts.ones ? 0.05 : scale);
    }
    this.weights.push({ name, dims, data });
    return name;
  }
  /** An external weight with the given values (e.g. int8/uint8 weights of a quantized model). */
  wv(name: string, dims: number[], data: Float32Array | Int8Array | Uint8Array): string {
    const dtype: DTypeName = data instanceof Int8Array
      ? "int8"
      : data instanceof Uint8Array
      ? "uint8"
      : "float32";
    this.weights.push({ name, dims, data, dtype });
    return name;
  }
  /** An inline initializer. */
  c(dtype: DTypeName, vals: number[] | bigint[], dims?: number[], name?: string): string {
    const nm = name ?? `const_${this.#n++}`;
    this.inits.push({ name: nm, dtype, dims: dims ?? [vals.length], data: vals });
    return nm;
  }
  i64(vals: number[], dims?: number[]): string {
    return this.c("int64", vals, dims);
  }
  f32(vals: number[], dims?: number[]): string {
    return this.c("float32", vals, dims);
  }
  /** A Constant node (torch.onnx style) holding a tensor. */
  cnode(dtype: DTypeName, vals: number[], dims?: number[]): string {
    const out = `Constant_${this.#n++}_output_0`;
    this.nodes.push({
      op: "Constant",
      inputs: [],
      outputs: [out],
      name: `/Constant_${this.#n}`,
      attrs: { value: { t: { name: "", dtype, dims: dims ?? [vals.length], data: vals } } },
    });
    return out;
  }
  /** A node with one output. */
  o(op: string, inputs: string[], attrs: Attrs = {}, name?: string): string {
    return this.om(op, inputs, 1, attrs, name)[0];
  }
  /** A node with `n` outputs. */
  om(op: string, inputs: string[], n: number, attrs: Attrs = {}, name?: string): string[] {
    const k = this.#n++;
    const nm = name ?? `${this.prefix}/${op}_${k}`;
    const outs = Array.from({ length: n }, (_, i) => `${nm.replace(/^\//, "")}_output_${i}`);
    this.nodes.push({ op, inputs, outputs: outs, name: nm, attrs });
    return outs;
  }
}

export interface Written {
  path: string;
  bytes: Uint8Array;
}

/** Writes `g` as `<dir>/<name>.onnx` with its weights in `<name>.bin` (64-byte aligned offsets). */
export async function writeGraph(
  dir: string,
  name: string,
  g: G,
  io: {
    inputs: { name: string; dtype?: DTypeName; dims: (number | string)[] }[];
    outputs: { name: string; dtype?: DTypeName }[];
    opset: number;
  },
): Promise<Written> {
  const location = `${name}.bin`;
  let size = 0;
  const ext: TensorSpec[] = [];
  const placed: { offset: number; data: Float32Array | Int8Array | Uint8Array }[] = [];
  for (const w of g.weights) {
    const offset = Math.ceil(size / 64) * 64;
    placed.push({ offset, data: w.data });
    ext.push({
      name: w.name,
      dtype: w.dtype ?? "float32",
      dims: w.dims,
      external: { location, offset, length: w.data.byteLength },
    });
    size = offset + w.data.byteLength;
  }
  const bin = new Uint8Array(size);
  for (const p of placed) {
    bin.set(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength), p.offset);
  }
  await Deno.writeFile(`${dir}/${location}`, bin);
  const bytes = buildModel({
    opset: io.opset,
    graph: {
      name,
      inputs: io.inputs.map((i) => ({ name: i.name, dtype: i.dtype ?? "float32", dims: i.dims })),
      outputs: io.outputs.map((o) => ({ name: o.name, dtype: o.dtype ?? "float32" })),
      initializers: [...ext, ...g.inits],
      nodes: g.nodes,
    },
  });
  const path = `${dir}/${name}.onnx`;
  await Deno.writeFile(path, bytes);
  return { path, bytes };
}
