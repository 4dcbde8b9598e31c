// The IR: values, instructions, modules and the program (after AMDMIGraphX). A module is an
// ordered list of instructions; leaves (params, literals, weights) are instructions too.
// Submodules (If branches) may read values of their ancestor modules.
import { Attrs } from "./attrs";
import { Shape } from "./shape";
import { Tensor } from "./tensor";
import { ComputeContext, Op } from "../ops/op";

/** Instruction kinds. Leaves first, then op nodes. */
export const K_PARAM: i32 = 1;
export const K_LITERAL: i32 = 2;
export const K_HOST_LITERAL: i32 = 3;
export const K_WEIGHT: i32 = 4;
export const K_NODE: i32 = 5;

/** Where a value lives at run time (set by memory_plan). */
export const LOC_NONE: i32 = 0;
/** Its own heap buffer (params, weights, module outputs). */
export const LOC_BUFFER: i32 = 1;
/** An offset in its module's arena. */
export const LOC_ARENA: i32 = 2;
/** The literal's own bytes. */
export const LOC_LITERAL: i32 = 3;
/** The same bytes as another value (`aliasOf`). */
export const LOC_ALIAS: i32 = 4;

export class Value {
  id: i32;
  shape: Shape;
  producer: Instruction | null = null;
  index: i32 = 0;
  name: string;
  /**
   * Bit mask of the dims that are an upper bound (bit d: dim d), set by shape inference for
   * outputs whose size depends on data (NonZero, Compress, Unique, NonMaxSuppression); 0: exact.
   */
  bounded: i32 = 0;
  /** A bounded value's actual lens after the last run (null: not run yet, or exact). */
  extent: Array<i32> | null = null;
  // ---- memory plan ----
  loc: i32 = LOC_NONE;
  offset: usize = 0;
  aliasOf: Value | null = null;
  /** Resolved address after finalize. */
  ptr: usize = 0;
  /** finalize placed it at another program's pointer (a dynamic program's shared weight or prepare output) */
  shared: bool = false;
  /**
   * A packed-only weight or host literal (finalize, Program.directPack): read only by pack nodes,
   * it has no bytes of its own; the host packs its source straight into their outputs.
   */
  direct: bool = false;
  /**
   * Shape inference only: a small value that depends on a Loop body's iteration number alone
   * (the counter, counter + 1, ...): its value for each iteration 0..n-1, else null.
   */
  sym: Array<Tensor> | null = null;

  constructor(id: i32, shape: Shape, name: string) {
    this.id = id;
    this.shape = shape;
    this.name = name;
  }
}

export class Instruction {
  kind: i32;
  /** Op name ("Add"), or the leaf name ("@param", "@literal", "onnx_external_weights"). */
  opName: string;
  op: Op | null = null;
  attrs: Attrs = new Attrs();
  inputs: Array<Value | null> = new Array<Value | null>();
  outputs: Array<Value> = new Array<Value>();
  /** ONNX node name, or the leaf's name. */
  nodeName: string;
  module: i32;
  // ---- leaves ----
  /** Literal bytes in WASM memory (K_LITERAL: owned; K_HOST_LITERAL: set at finalize). */
  ptr: usize = 0;
  hostId: i32 = -1;
  location: string = "";
  extOffset: i64 = 0;
  extLength: i64 = 0;
  checksum: string = "";
  /** Literals on targets with a literal arena (layout_literals): byte offset in it, else -1. */
  litOffset: i64 = -1;
  // ---- execution ----
  /** Prepared at finalize: the context handed to compute. */
  cctx: ComputeContext | null = null;
  /** Aliasing reshape: the output already holds the bytes, nothing to compute. */
  skip: bool = false;
  /** Depends only on literals and weights: runs once per weight bind (prepare), not per run. */
  prepare: bool = false;
  /** a prepare node whose outputs another program of the same dynamic program computes: never run here */
  shared: bool = false;
  /** a pack node of a packed-only value: the host writes its output (prepare never runs it) */
  fed: bool = false;

  constructor(kind: i32, opName: string, nodeName: string, module: i32) {
    this.kind = kind;
    this.opName = opName;
    this.nodeName = nodeName;
    this.module = module;
  }

  /** Literal bytes available in WASM memory now. */
  isConstant(): bool {
    return (this.kind == K_LITERAL || this.kind == K_HOST_LITERAL) && this.ptr != 0;
  }

  literalTensor(): Tensor {
    return new Tensor(this.outputs[0].shape, this.ptr);
  }
}

export class Module {
  index: i32;
  name: string;
  /** Parent module index, -1 for main. */
  parent: i32;
  instrs: Array<Instruction> = new Array<Instruction>();
  returns: Array<Value> = new Array<Value>();
  returnNames: Array<string> = new Array<string>();
  hasReturn: bool = false;
  /**
   * A Loop/Scan body: its params take their shapes from the node that runs it (record
   * R_PARAM_BOUND), so its nodes are shape-inferred when that node is (codec.ts inferNode).
   */
  bound: bool = false;
  /** Nodes not shape-inferred yet (this module or an ancestor is `bound`). */
  pending: bool = false;
  /** The node that bound this body's params (one node per body). */
  binder: Instruction | null = null;
  // ---- memory plan ----
  planned: bool = false;
  arenaBytes: usize = 0;
  arena: usize = 0;

  constructor(index: i32, name: string, parent: i32) {
    this.index = index;
    this.name = name;
    this.parent = parent;
  }

  indexOf(ins: Instruction): i32 {
    return this.instrs.indexOf(ins);
  }

  /** The values of this module's params, in order. */
  params(): Array<Value> {
    const ps = new Array<Value>();
    for (let i = 0; i < this.instrs.length; i++) if (this.instrs[i].kind == K_PARAM) ps.push(this.instrs[i].outputs[0]);
    return ps;
  }
}

export class Program {
  opset: i32;
  modules: Array<Module> = new Array<Module>();
  nextValueId: i32 = 0;
  /** Names of the passes run by compile, in order. */
  passes: Array<string> = new Array<string>();
  finalized: bool = false;
  /**
   * finalize keeps weights and host literals that only pack nodes read packed only (set by the
   * ref target before finalize; docs/internals.md "Packed-only weights")
   */
  directPack: bool = false;
  /** Bytes of the literal arena laid out by layout_literals (targets that upload literals as one block). */
  literalArenaBytes: i64 = 0;
  /** Host literal id -> bytes in WASM memory (after finalize). */
  hostPtrs: Map<i32, usize> = new Map<i32, usize>();
  /** Heap buffers owned by the finalized program (freed by dispose). */
  allocs: Array<usize> = new Array<usize>();
  /** Per-pass timings (ms) recorded by compile. */
  timingNames: Array<string> = new Array<string>();
  timingMs: Array<f64> = new Array<f64>();
  /** Execution order of the main module: prepared at finalize. */
  inputValues: Array<Value> = new Array<Value>();
  weightInstrs: Array<Instruction> = new Array<Instruction>();
  /**
   * A dynamic program: every weight leaf decoded; `compile` appends those no module holds any more
   * (only in an If branch folded away, say) to main, unused, so that the root holds them for its
   * specializations.
   */
  orphanWeights: Array<Instruction> = new Array<Instruction>();
  /**
   * For a Loop/Scan node another target runs on the host (run_node): where the host placed the
   * values its body reads from elsewhere (IR value id -> address), set by bind_value.
   */
  hostBound: Map<i32, usize> = new Map<i32, usize>();

  constructor(opset: i32) {
    this.opset = opset;
  }

  main(): Module {
    return this.modules[0];
  }

  newValue(shape: Shape, name: string): Value {
    const v = new Value(this.nextValueId, shape, name);
    this.nextValueId++;
    return v;
  }

  /** True when module `m` is `ancestor` or inside it. */
  isWithin(m: i32, ancestor: i32): bool {
    let cur = m;
    while (cur >= 0) {
      if (cur == ancestor) return true;
      cur = this.modules[cur].parent;
    }
    return false;
  }
}

/** Replaces every use of `from` by `to` in `m` and all modules below it (inputs and returns). */
export function replaceUses(prog: Program, from: Value, to: Value): void {
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      for (let j = 0; j < ins.inputs.length; j++) {
        const x = ins.inputs[j];
        if (x != null && x === from) ins.inputs[j] = to;
      }
    }
    for (let j = 0; j < m.returns.length; j++) {
      if (m.returns[j] === from) m.returns[j] = to;
    }
  }
}

/** Count of uses of every value id in the whole program (inputs and returns). */
export function useCounts(prog: Program): Map<i32, i32> {
  const uses = new Map<i32, i32>();
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      for (let j = 0; j < ins.inputs.length; j++) {
        const x = ins.inputs[j];
        if (x == null) continue;
        const id = x.id;
        uses.set(id, uses.has(id) ? uses.get(id) + 1 : 1);
      }
    }
    for (let j = 0; j < m.returns.length; j++) {
      const id = m.returns[j].id;
      uses.set(id, uses.has(id) ? uses.get(id) + 1 : 1);
    }
  }
  return uses;
}

/** Inserts `x` at index `at` of `a` (AssemblyScript's splice does not insert). */
export function insertAt<T>(a: Array<T>, at: i32, x: T): void {
  a.push(x);
  for (let i = a.length - 1; i > at; i--) a[i] = a[i - 1];
  a[at] = x;
}
