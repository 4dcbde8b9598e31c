/**
 * The public types of ONNX import: `parseOnnx`'s options and result, graph inputs and outputs,
 * host literals. Importable from `core/onnx/import.ts` (and `mod.ts`).
 * @module
 */
import type { FileRange } from "../io.ts";
import type { GraphBuilder, ModuleBuilder } from "../ir/builder.ts";
import type { DTypeName, Tensor } from "../tensor.ts";
import type { FreezeValue } from "./freeze.ts";

/** Options of `parseOnnx`. */
export interface ParseOptions {
  /**
   * Dims for graph inputs (fills symbolic dims; must agree with fixed ones). A dim given as a
   * range, `{ min, max }`, makes the program dynamic: it evaluates any dims in range, compiling a
   * specialization at the first eval of each new shape (docs/dynamic-shapes.md).
   * @example `{ ids: [1, { min: 1, max: 1024 }] }`
   */
  inputDims?: Record<string, (number | DimRange)[]>;
  /** Graph inputs bound as compile-time constants (literals); they are no longer inputs. */
  constantInputs?: Record<string, Tensor>;
  /**
   * Graph inputs frozen to a value at compile time: a number, bigint, boolean, array or typed
   * array, converted to the input's declared element type and dims (a scalar for a rank-0 or [1]
   * input). Like `constantInputs`, a frozen input is no longer an input; shape inference and
   * constant folding see its value, so an `If` whose condition it decides folds to one branch.
   * Unknown names, counts that do not fit the dims and values that do not fit the type are errors.
   * @example `{ freeze: { sr: 16000, mode: true } }`
   */
  freeze?: Record<string, FreezeValue>;
  /**
   * The length of each sequence graph input (kiln compiles a sequence as a list of tensors known
   * when compiling); its elements are the inputs `<name>.0`, `<name>.1`, ... (dims in inputDims).
   */
  sequenceLengths?: Record<string, number>;
  /** Optional graph inputs that are absent (None); the others are present. */
  absentInputs?: string[];
  /** Issue 3 (weight replacement): external initializers become onnx_external_weights leaves. */
  deferExternalWeights?: boolean;
  /**
   * Inline initializers of at least this many bytes are deferred too (weights with no file
   * location: bind them from the model itself, `WeightSet.fromOnnxModel`, or from safetensors or
   * arrays). Default: inline initializers stay constants. Those the compiler needs as constants
   * (shapes, axes) stay constants whatever their size.
   */
  deferInlineWeightsOver?: number;
  /**
   * Folder that external-data locations are relative to when the model is given as bytes
   * (default: none, so a byte model with external data is an error). Paths and URLs use the
   * model's own folder.
   */
  baseDir?: string;
  /** Initializers up to this many bytes become `literal`s (foldable); larger ones host literals. Default 65536. */
  literalLimit?: number;
  /** Called after each external tensor is read: bytes read so far and in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Stops the parse at the next step (a fetch, each external tensor read): KilnError "aborted". */
  signal?: AbortSignal;
}

/** The range of a symbolic dim of a dynamic program's input, both ends included. */
export interface DimRange {
  /** smallest length */
  min: number;
  /** largest length */
  max: number;
}

/** A graph input or output: name, element type and static dims. */
export interface ValueInfo {
  /** the name in the model */
  name: string;
  /** element type */
  dtype: DTypeName;
  /** static dims */
  dims: number[];
  /**
   * Outputs only: the dims that are an upper bound because the size depends on data (NonZero,
   * Compress, Unique, NonMaxSuppression with non-constant inputs); each eval returns the actual
   * extent. Absent when every dim is exact.
   */
  bounded?: number[];
  /**
   * Inputs of a dynamic program: the range of each dim given as `{ min, max }` (null for a fixed
   * dim); those dims read -1 in `dims`. Outputs of a dynamic program have -1 dims (known per eval).
   */
  ranges?: (DimRange | null)[];
}

/** A literal whose bytes stay on the host; `hostLiteral` ids index `ParsedModel.hostLiterals`. */
export interface HostLiteral {
  /** the initializer's name */
  name: string;
  /** element type */
  dtype: DTypeName;
  /** dims */
  dims: number[];
  /** its bytes, little-endian, row-major (read lazily from `file` when it names one) */
  readonly bytes: Uint8Array;
  /**
   * Where the bytes are when they come from a file (a baked weight, a literal of a `.kiln` file):
   * a target that reads files itself (gpu) uploads them from there, never reading them in
   * JavaScript; `sha1`, when given, is checked as they are read.
   */
  readonly file?: FileRange & { sha1?: string };
}

/** The graph builder the importer drives (the core's `GraphBuilder`). */
export interface GraphBuilderLike {
  /** opset of the default ONNX domain */
  readonly opset: number;
  /** the main module */
  readonly main: ModuleBuilder;
}

/** The result of `parseOnnx`: the built graph plus what the host keeps. */
export interface ParsedModel {
  /** core/ir/builder.ts GraphBuilder; main module = graph.main */
  graph: GraphBuilder;
  /** bytes of literals kept on the host (hostLiteral ids index this) */
  hostLiterals: HostLiteral[];
  /** graph inputs that remain inputs, with resolved dims */
  inputs: ValueInfo[];
  /** graph output names, in order */
  outputs: { name: string }[];
  /** default-domain opset */
  opset: number;
  /** absolute path when parsed from a file */
  modelPath?: string;
  /**
   * With `deferExternalWeights`: external initializers read at parse time because the compiler
   * needs them as constants (shape inputs, If conditions); they stay literals.
   */
  fixedWeights: string[];
  /** With `deferExternalWeights`: the names of the external initializers left as deferred leaves. */
  deferredWeights: string[];
}
