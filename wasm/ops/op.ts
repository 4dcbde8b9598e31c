// An operator: a name, property flags, shape inference and a reference compute.
// Ops are stateless singletons in the registry; everything per node comes in the context.
// The op definitions are the executable spec: the ref target and constant folding both
// call `compute`.
import { Attrs } from "../ir/attrs";
import { diagnostics, Diagnostic, E_DTYPE, E_NEEDS_CONSTANT, E_RUNTIME, E_SHAPE } from "../ir/diag";
import { dtypeName } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { Tensor } from "../ir/tensor";

// ---- op properties, as data (passes consult these instead of switching on names) ----
/** Output element i depends only on input elements i (after broadcast). */
export const OP_ELEMENTWISE: i32 = 1;
/** f(a, b) == f(b, a). */
export const OP_COMMUTATIVE: i32 = 2;
export const OP_REDUCTION: i32 = 4;
/** Never fold (random ops, the weight placeholder). */
export const OP_NO_FOLD: i32 = 8;
/** The outputs depend only on input shapes, not data (Shape, Size): folds always. */
export const OP_SHAPE_ONLY: i32 = 16;
/** Output 0 is input 0 unchanged (Identity, inference Dropout): removed by a pass. */
export const OP_IDENTITY: i32 = 32;
/** Output 0 has input 0's bytes under another shape (Reshape, Flatten, Squeeze, Unsqueeze). */
export const OP_ALIAS_RESHAPE: i32 = 64;
/** compute writes every element of every output: the executor need not zero-fill them first. */
export const OP_WRITES_ALL: i32 = 128;
/**
 * Output 0 has input 0's lens, element for element (Cast): it may read a value with a bounded
 * (data-dependent) extent, and its output then has the same bounded dims and, at run time, the
 * same actual extent (docs/internals.md "Bounded extents").
 */
export const OP_KEEPS_EXTENT: i32 = 256;

function shapesString(inputs: Array<Shape | null>): string {
  let s = "";
  for (let i = 0; i < inputs.length; i++) {
    if (i > 0) s += ", ";
    const x = inputs[i];
    s += x == null ? "<none>" : x.toString();
  }
  return s;
}

/** What shape inference sees of one node. */
export class ShapeContext {
  nodeName: string;
  opName: string;
  attrs: Attrs;
  /** Opset of the default ONNX domain for this model. */
  opset: i32;
  /** Input shapes; null for an omitted optional input. */
  inputs: Array<Shape | null>;
  /** Values of inputs known at compile time (literals), else null. */
  constants: Array<Tensor | null>;
  /** Number of outputs the node declares. */
  numOutputs: i32;
  /** Filled by computeShape: one shape per output. */
  outputs: Array<Shape> = new Array<Shape>();
  /**
   * Per output, a bit mask of the dims that are only an upper bound (bit d: dim d): the actual
   * extent depends on input data and compute reports it (ComputeContext.setExtent).
   */
  bounded: Array<i32> = new Array<i32>();
  /** For ops with subgraph attributes: the return shapes of each referenced submodule, by attribute name. */
  subgraphOutputs: Map<string, Array<Shape>> = new Map<string, Array<Shape>>();
  /** Per return of each submodule: the index of the submodule param it passes through unchanged, else -1. */
  subgraphPassThrough: Map<string, Array<i32>> = new Map<string, Array<i32>>();
  /** Per return of each submodule: its value when it is a compile-time constant, else null. */
  subgraphConstants: Map<string, Array<Tensor | null>> = new Map<string, Array<Tensor | null>>();

  constructor(nodeName: string, opName: string, attrs: Attrs, opset: i32, inputs: Array<Shape | null>,
    constants: Array<Tensor | null>, numOutputs: i32) {
    this.nodeName = nodeName;
    this.opName = opName;
    this.attrs = attrs;
    this.opset = opset;
    this.inputs = inputs;
    this.constants = constants;
    this.numOutputs = numOutputs;
  }

  count(): i32 {
    return this.inputs.length;
  }

  hasInput(i: i32): bool {
    return i < this.inputs.length && this.inputs[i] != null;
  }

  /** Input i's shape; call hasInput first for optional inputs. */
  input(i: i32): Shape {
    return changetype<Shape>(this.inputs[i]);
  }

  constant(i: i32): Tensor | null {
    return i < this.constants.length ? this.constants[i] : null;
  }

  /** The integer values of constant input i, or null when not constant/absent. */
  constInts(i: i32): Array<i64> | null {
    if (!this.hasInput(i)) return null;
    const c = this.constant(i);
    return c == null ? null : c.toI64Array();
  }

  /** Adds an output shape. */
  out(s: Shape): void {
    this.outputs.push(s);
    this.bounded.push(0);
  }

  /** Adds an output shape whose dims in `mask` (bit d: dim d) are upper bounds, not exact. */
  outBounded(s: Shape, mask: i32): void {
    this.outputs.push(s);
    this.bounded.push(mask);
  }

  /** Records a shape error naming node, op and input shapes; returns false. */
  fail(message: string): bool {
    diagnostics.push(new Diagnostic(E_SHAPE, this.nodeName, this.opName, message, shapesString(this.inputs)));
    return false;
  }

  failDtype(i: i32): bool {
    diagnostics.push(new Diagnostic(E_DTYPE, this.nodeName, this.opName,
      "element type " + dtypeName(this.input(i).dtype) + " of input " + i.toString() + " is not supported",
      shapesString(this.inputs)));
    return false;
  }

  /** Records that input i must be a compile-time constant to infer shapes; returns false. */
  needConstant(i: i32, what: string): bool {
    diagnostics.push(new Diagnostic(E_NEEDS_CONSTANT, this.nodeName, this.opName,
      "input " + i.toString() + " (" + what + ") must be a compile-time constant", shapesString(this.inputs)));
    return false;
  }
}

/** What compute sees of one node: inputs and preallocated outputs, all standard shapes. */
export class ComputeContext {
  nodeName: string;
  opName: string;
  attrs: Attrs;
  opset: i32;
  inputs: Array<Tensor | null>;
  outputs: Array<Tensor>;
  /**
   * Per output, the actual lens an op with data-dependent output sizes wrote (setExtent), or
   * null: the output's shape is exact. The data of an output with an extent is packed row-major
   * at the extent, at the start of the output's buffer (planned for the bound).
   */
  extents: Array<Array<i32> | null>;

  constructor(nodeName: string, opName: string, attrs: Attrs, opset: i32, inputs: Array<Tensor | null>,
    outputs: Array<Tensor>) {
    this.nodeName = nodeName;
    this.opName = opName;
    this.attrs = attrs;
    this.opset = opset;
    this.inputs = inputs;
    this.outputs = outputs;
    this.extents = new Array<Array<i32> | null>(outputs.length);
  }

  /** Records output i's actual lens (each at most the planned dim); compute calls it on every run. */
  setExtent(i: i32, lens: Array<i32>): void {
    this.extents[i] = lens;
  }

  hasInput(i: i32): bool {
    return i < this.inputs.length && this.inputs[i] != null;
  }

  input(i: i32): Tensor {
    return changetype<Tensor>(this.inputs[i]);
  }

  output(i: i32): Tensor {
    return this.outputs[i];
  }

  /** Records a run-time error naming the node; returns false. */
  fail(message: string): bool {
    let s = "";
    for (let i = 0; i < this.inputs.length; i++) {
      if (i > 0) s += ", ";
      const t = this.inputs[i];
      s += t == null ? "<none>" : t.shape.toString();
    }
    diagnostics.push(new Diagnostic(E_RUNTIME, this.nodeName, this.opName, message, s));
    return false;
  }
}

/** What a Loop/Scan-like op gives the params of a body it runs (Op.bindSubgraph). */
export class SubgraphBinding {
  /** One shape per body param, in order. */
  inputs: Array<Shape> = new Array<Shape>();
  /** Index of the param that holds the iteration number (int64, 0, 1, ...), or -1. */
  counter: i32 = -1;
  /** Number of iterations when known at compile time (lets shape inference track the counter), else -1. */
  iterations: i64 = -1;
}

export abstract class Op {
  name: string;
  flags: i32;

  constructor(name: string, flags: i32 = 0) {
    this.name = name;
    this.flags = flags;
  }

  has(flag: i32): bool {
    return (this.flags & flag) != 0;
  }

  /** Infers output shapes into ctx.outputs; on failure records a diagnostic (ctx.fail) and returns false. */
  abstract computeShape(ctx: ShapeContext): bool;

  /**
   * For ops that run a body subgraph (attribute `attr`) whose params they feed: fills the params'
   * shapes from the node's inputs (called before the body's shapes are inferred, and before
   * computeShape). False with ctx.fail on bad inputs.
   */
  bindSubgraph(ctx: ShapeContext, attr: string, b: SubgraphBinding): bool {
    return ctx.fail("op " + this.name + " does not bind the inputs of subgraph '" + attr + "'");
  }

  /** Computes outputs from inputs; returns false (with ctx.fail) on a run-time error. */
  abstract compute(ctx: ComputeContext): bool;
}
