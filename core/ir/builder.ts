/**
 * GraphBuilder: the host side of the WASM boundary's graph encoding. The ONNX importer
 * (core/onnx) builds a program with it; `encode()` gives the bytes that the core decodes
 * (`docs/internals.md`, "Graph encoding"). Value ids are assigned here, in order, across
 * all modules.
 *
 * Contract (importer <-> core):
 * - module 0 is the main module; `submodule()` adds one (If branches) and returns its builder.
 * - A submodule may take values of its parent modules as inputs (ONNX outer-scope refs).
 * - `null` in a node's inputs is an omitted optional input.
 * - Literal bytes are little-endian, standard layout, `dims` product * element size long.
 * - `externalWeights` is the deferred weight leaf (`onnx_external_weights`): no bytes.
 */

/** ONNX TensorProto.DataType codes. */
export type DType = number;

export type ValueRef = number;

export interface TensorValue {
  dtype: DType;
  dims: number[];
  /** little-endian standard-layout bytes */
  bytes: Uint8Array;
}

export type AttrValue =
  | { i: number | bigint }
  | { f: number }
  | { s: string }
  | { ints: (number | bigint)[] }
  | { floats: number[] }
  | { strings: string[] }
  | { t: TensorValue }
  /** a subgraph: index of a submodule made with ModuleBuilder.submodule() */
  | { g: number };

export type Attrs = Record<string, AttrValue>;

export interface ExternalDataRef {
  /** path relative to the model's folder */
  location: string;
  offset: number;
  length: number;
  /** SHA1 hex of the whole file, "" when the model gives none */
  checksum: string;
}

export interface ModuleBuilder {
  readonly index: number;
  readonly name: string;
  /** A named program input with static dims. */
  param(name: string, dtype: DType, dims: number[]): ValueRef;
  /**
   * A constant. `bytes` lands in WASM memory at decode time when it is small (the compiler
   * may fold it); `hostLiteral` keeps large ones on the host until finalize.
   */
  literal(name: string, value: TensorValue): ValueRef;
  /** A constant whose bytes stay on the host (id into the host literal table). */
  hostLiteral(name: string, dtype: DType, dims: number[], hostId: number): ValueRef;
  /** A deferred external weight: `onnx_external_weights{name, shape, location, offset, length, checksum}`. */
  externalWeights(name: string, dtype: DType, dims: number[], ref: ExternalDataRef): ValueRef;
  /** An op node. Returns one ValueRef per output. */
  node(op: string, inputs: (ValueRef | null)[], attrs: Attrs, numOutputs: number, nodeName: string): ValueRef[];
  /** The module's outputs, with their names. Call once, last. */
  ret(values: ValueRef[], names: string[]): void;
  /** A new submodule (for an If branch); pass its index as a `{ g: index }` attribute. */
  submodule(name: string): ModuleBuilder;
}
