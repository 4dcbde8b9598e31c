// The graph encoding (host GraphBuilder -> core) and the compiled-program serialization, which
// share one record format (docs/internals.md, "Graph encoding"). Decoding validates every
// length and id (E_GRAPH / E_FORMAT, never a trap), infers shapes node by node and folds
// small constant nodes eagerly so that shape-deciding inputs are literals when needed; an If
// whose condition is then constant is replaced by its chosen branch (passes/fold_if.ts).
import {
  Attr, Attrs, ATTR_FLOAT, ATTR_FLOATS, ATTR_GRAPH, ATTR_INT, ATTR_INTS, ATTR_STRING, ATTR_STRINGS,
  ATTR_TENSOR,
} from "./attrs";
import { diagnostics, E_GRAPH, E_NEEDS_CONSTANT, E_SHAPE, E_UNSUPPORTED_OP, report } from "./diag";
import { DT_INT64, dtypeName, dtypeSize, isSupported } from "./dtype";
import { Shape } from "./shape";
import { Tensor } from "./tensor";
import {
  Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, K_PARAM, K_WEIGHT, Module, Program, Value,
} from "./program";
import { findOp } from "../ops/registry";
import { ComputeContext, OP_IDENTITY, OP_KEEPS_EXTENT, OP_NO_FOLD, ShapeContext, SubgraphBinding } from "../ops/op";
import { foldInstruction } from "../passes/fold_constants";
import { constantCondition, deferIf, differingOutput, explainIf, inlineIf, isLive } from "../passes/fold_if";

export const GRAPH_MAGIC: u32 = 0x3145474b; // "KGE1"
export const GRAPH_VERSION: u32 = 1;
/** Header flag: a compiled program (decode infers shapes but never folds). */
export const FLAG_COMPILED: u32 = 1;

export const R_PARAM: u8 = 1;
export const R_LITERAL: u8 = 2;
export const R_HOST_LITERAL: u8 = 3;
export const R_WEIGHT: u8 = 4;
export const R_NODE: u8 = 5;
export const R_RETURN: u8 = 6;
/**
 * A param of a Loop/Scan body whose shape the running node decides (same layout as R_PARAM; the
 * shape written is a placeholder in a graph encoding, the inferred one in a compiled program).
 */
export const R_PARAM_BOUND: u8 = 7;

/** Largest output (bytes) that decode and fold_constants turn into a literal. */
export const FOLD_MAX_BYTES: i32 = 65536;
const MAX_RANK: u32 = 64;

// ---------------------------------------------------------------- reading

class Reader {
  ptr: usize;
  end: usize;
  pos: usize;
  ok: bool = true;
  what: string = "";

  constructor(ptr: usize, len: usize) {
    this.ptr = ptr;
    this.pos = ptr;
    this.end = ptr + len;
  }

  /** Whether n more bytes are there; n is 64-bit so that a count times a size cannot wrap. */
  need(n: u64, what: string): bool {
    if (!this.ok) return false;
    if (<u64>(this.end - this.pos) < n) {
      this.ok = false;
      this.what = "truncated while reading " + what + " at byte " + (this.pos - this.ptr).toString();
      return false;
    }
    return true;
  }
  u8(what: string): u8 {
    if (!this.need(1, what)) return 0;
    const v = load<u8>(this.pos);
    this.pos += 1;
    return v;
  }
  u32(what: string): u32 {
    if (!this.need(4, what)) return 0;
    const v = load<u32>(this.pos);
    this.pos += 4;
    return v;
  }
  i32(what: string): i32 {
    return <i32>this.u32(what);
  }
  i64(what: string): i64 {
    if (!this.need(8, what)) return 0;
    const v = load<i64>(this.pos);
    this.pos += 8;
    return v;
  }
  f32(what: string): f32 {
    if (!this.need(4, what)) return 0;
    const v = load<f32>(this.pos);
    this.pos += 4;
    return v;
  }
  str(what: string): string {
    const n = this.u32(what);
    if (!this.need(<usize>n, what)) return "";
    const s = String.UTF8.decodeUnsafe(this.pos, <usize>n);
    this.pos += <usize>n;
    return s;
  }
  /** Copies n bytes into a fresh heap buffer (at least 1 byte). */
  bytes(n: u32, what: string): usize {
    if (!this.need(<usize>n, what)) return 0;
    const p = heap.alloc(n > 0 ? <usize>n : 1);
    memory.copy(p, this.pos, <usize>n);
    this.pos += <usize>n;
    return p;
  }
  fail(msg: string): void {
    if (!this.ok) return;
    this.ok = false;
    this.what = msg;
  }
}

function readShape(r: Reader, what: string): Shape | null {
  const dt = r.i32(what + " element type");
  const rank = r.u32(what + " rank");
  if (!r.ok) return null;
  if (rank > MAX_RANK) {
    r.fail(what + " has rank " + rank.toString());
    return null;
  }
  const lens = new Array<i32>(<i32>rank);
  let total: i64 = 1;
  for (let i = 0; i < <i32>rank; i++) {
    const d = r.i32(what + " dims");
    if (d < 0) {
      r.fail(what + " has negative dim " + d.toString());
      return null;
    }
    lens[i] = d;
    total *= <i64>d;
    if (total > 0x7fffffff) {
      r.fail(what + " has too many elements");
      return null;
    }
  }
  if (!r.ok) return null;
  if (!isSupported(dt)) {
    r.fail(what + " has unsupported element type " + dtypeName(dt));
    return null;
  }
  if (total * <i64>dtypeSize(dt) > 0x7fffffff) {
    r.fail(what + " is larger than 2 GiB");
    return null;
  }
  return Shape.standard(dt, lens);
}

function readAttrs(r: Reader, attrs: Attrs, moduleCount: i32, what: string): void {
  const n = r.u32(what + " attribute count");
  for (let i: u32 = 0; i < n && r.ok; i++) {
    const name = r.str(what + " attribute name");
    const kind = <i32>r.u8(what + " attribute kind");
    if (!r.ok) return;
    const aw = what + " attribute '" + name + "'";
    if (kind == ATTR_INT) attrs.set(name, Attr.int(r.i64(aw)));
    else if (kind == ATTR_FLOAT) attrs.set(name, Attr.float(r.f32(aw)));
    else if (kind == ATTR_STRING) attrs.set(name, Attr.str(r.str(aw)));
    else if (kind == ATTR_INTS) {
      const k = r.u32(aw);
      if (!r.need(<u64>k * 8, aw)) return;
      const a = new Array<i64>(<i32>k);
      for (let j = 0; j < <i32>k; j++) a[j] = r.i64(aw);
      attrs.set(name, Attr.intList(a));
    } else if (kind == ATTR_FLOATS) {
      const k = r.u32(aw);
      if (!r.need(<u64>k * 4, aw)) return;
      const a = new Array<f32>(<i32>k);
      for (let j = 0; j < <i32>k; j++) a[j] = r.f32(aw);
      attrs.set(name, Attr.floatList(a));
    } else if (kind == ATTR_STRINGS) {
      const k = r.u32(aw);
      if (!r.need(<u64>k * 4, aw)) return;
      const a = new Array<string>(<i32>k);
      for (let j = 0; j < <i32>k; j++) a[j] = r.str(aw);
      const at = new Attr();
      at.kind = ATTR_STRINGS;
      at.strings = a;
      attrs.set(name, at);
    } else if (kind == ATTR_TENSOR) {
      const s = readShape(r, aw);
      const len = r.u32(aw + " byte length");
      if (s == null || !r.ok) return;
      if (<i32>len != s.bytes()) {
        r.fail(aw + " has " + len.toString() + " bytes, " + s.toString() + " needs " + s.bytes().toString());
        return;
      }
      const p = r.bytes(len, aw);
      attrs.set(name, Attr.tensor(new Tensor(s, p)));
    } else if (kind == ATTR_GRAPH) {
      const g = r.i32(aw);
      if (g <= 0 || g >= moduleCount) {
        r.fail(aw + " names module " + g.toString() + " of " + moduleCount.toString());
        return;
      }
      attrs.set(name, Attr.graph(g));
    } else {
      r.fail(aw + " has unknown kind " + kind.toString());
    }
  }
}

class DecodeState {
  prog: Program;
  values: Array<Value | null>;
  valueModule: Array<i32>;
  compiled: bool;
  /** Ifs whose condition is not constant and whose branches differ (passes/fold_if.ts deferIf). */
  pendingIfs: Array<Instruction> = new Array<Instruction>();
  /** every weight leaf decoded (keepOrphanWeights) */
  weights: Array<Instruction> = new Array<Instruction>();
  constructor(prog: Program, n: i32, compiled: bool) {
    this.prog = prog;
    this.values = new Array<Value | null>(n);
    this.valueModule = new Array<i32>(n);
    this.compiled = compiled;
  }
}

/** Looks up a value used in module m: defined, and in m or an ancestor of m. */
function useValue(st: DecodeState, r: Reader, id: i32, m: i32, what: string): Value | null {
  if (id < 0 || id >= st.values.length || st.values[id] == null) {
    r.fail(what + " uses unknown value " + id.toString());
    return null;
  }
  if (!st.prog.isWithin(m, st.valueModule[id])) {
    r.fail(what + " uses value " + id.toString() + " of module " + st.valueModule[id].toString() +
      ", which is not visible from module " + m.toString());
    return null;
  }
  return st.values[id];
}

function defineValue(st: DecodeState, r: Reader, id: i32, m: i32, v: Value, what: string): bool {
  if (id < 0 || id >= st.values.length) {
    r.fail(what + " defines value id " + id.toString() + " out of range");
    return false;
  }
  if (st.values[id] != null) {
    r.fail(what + " defines value " + id.toString() + " twice");
    return false;
  }
  st.values[id] = v;
  st.valueModule[id] = m;
  return true;
}

/** Whether `ins` may read a value with a bounded extent as input `i` (and pass the extent on). */
function keepsExtent(ins: Instruction, i: i32): bool {
  const op = ins.op!;
  return i == 0 && ins.outputs.length == 1 && (op.has(OP_KEEPS_EXTENT) || op.has(OP_IDENTITY));
}

/**
 * Refuses a node that reads a value whose extent depends on data (Value.bounded), unless the
 * node only passes the extent on (keepsExtent): its kernel would read the planned bound, not the
 * data. Lifting this needs run-time shapes (issue 11 part 3).
 */
function checkBoundedInputs(ins: Instruction): bool {
  for (let i = 0; i < ins.inputs.length; i++) {
    const x = ins.inputs[i];
    if (x == null || x.bounded == 0 || keepsExtent(ins, i)) continue;
    const p = x.producer;
    const from = p == null ? "" : " of node '" + p.nodeName + "' (" + p.opName + ")";
    // E_NEEDS_CONSTANT: binding the inputs that decide the size as constants gives exact shapes
    report(E_NEEDS_CONSTANT, ins.nodeName, ins.opName, "Node '" + ins.nodeName + "' (" + ins.opName + ") reads value '" +
      x.name + "'" + from + ", whose size depends on data (" + x.shape.toString() + " is only an upper bound); " +
      "kiln supports such a value only as a program output or through Cast/Identity: a consumer of a " +
      "data-dependent extent needs the dynamic-shape work (issue 11 part 3); binding the inputs that decide " +
      "the size as constants gives exact shapes");
    return false;
  }
  return true;
}

/** Shape inference (+ eager folding) for one node; false with a diagnostic on failure. */
export function inferNode(prog: Program, m: Module, ins: Instruction, fold: bool): bool {
  const op = ins.op!;
  const n = ins.inputs.length;
  if (!checkBoundedInputs(ins)) return false;
  const shapes = new Array<Shape | null>(n);
  const consts = new Array<Tensor | null>(n);
  for (let i = 0; i < n; i++) {
    const x = ins.inputs[i];
    if (x == null) {
      shapes[i] = null;
      consts[i] = null;
      continue;
    }
    shapes[i] = x.shape;
    const p = x.producer;
    consts[i] = p != null && p.isConstant() ? p.literalTensor() : null;
  }
  const ctx = new ShapeContext(ins.nodeName, ins.opName, ins.attrs, prog.opset, shapes, consts, ins.outputs.length);
  const names = ins.attrs.names();
  for (let i = 0; i < names.length; i++) {
    const g = ins.attrs.getGraph(names[i]);
    if (g < 0) continue;
    const sub = prog.modules[g];
    if (!sub.hasReturn) {
      report(E_GRAPH, ins.nodeName, ins.opName, "subgraph '" + names[i] + "' (module " + g.toString() +
        ") is used before it is complete");
      return false;
    }
    if (sub.bound && !bindSubgraph(prog, ins, ctx, names[i], sub)) return false;
    if (sub.pending && !inferModule(prog, sub, fold)) return false;
    if (sub.bound) freeSymbolic(prog, sub);
    const rs = new Array<Shape>(sub.returns.length);
    const through = new Array<i32>(sub.returns.length);
    const lits = new Array<Tensor | null>(sub.returns.length);
    for (let j = 0; j < sub.returns.length; j++) {
      rs[j] = sub.returns[j].shape;
      through[j] = paramBehind(sub, sub.returns[j]);
      const p = sub.returns[j].producer;
      lits[j] = p != null && p.isConstant() ? p.literalTensor() : null;
    }
    ctx.subgraphOutputs.set(names[i], rs);
    ctx.subgraphPassThrough.set(names[i], through);
    ctx.subgraphConstants.set(names[i], lits);
  }
  if (!op.computeShape(ctx)) {
    if (!retrySymbolic(prog, ins, ctx)) return false;
  }
  if (ctx.outputs.length < ins.outputs.length) {
    report(E_SHAPE, ins.nodeName, ins.opName, "op gave " + ctx.outputs.length.toString() + " output shapes for " +
      ins.outputs.length.toString() + " outputs");
    return false;
  }
  for (let i = 0; i < ins.outputs.length; i++) {
    const s = ctx.outputs[i];
    // a guard for every op: no negative dim, and no tensor of 2 GiB or more: Shape.bytes() and
    // elements() are i32, so a larger tensor's size would wrap negative (memory_plan would then
    // give it a 64-byte arena slot that its kernel overruns), and an overflowed i32 dim or element
    // count would otherwise reach a kernel. The ref target's buffers are at most 1 GiB anyway;
    // decoded tensors (readShape) have the same 2 GiB limit.
    let bytes: f64 = <f64>dtypeSize(s.dtype);
    for (let d = 0; d < s.lens.length; d++) {
      if (s.lens[d] < 0) {
        report(E_SHAPE, ins.nodeName, ins.opName, "output " + i.toString() + " would have a negative dim: " + s.toString());
        return false;
      }
      bytes *= <f64>s.lens[d];
    }
    if (bytes > 2147483647.0) {
      report(E_SHAPE, ins.nodeName, ins.opName, "output " + i.toString() + " " + s.toString() + " would take " +
        (bytes < 1e18 ? (<u64>bytes).toString() : bytes.toString()) + " bytes; kiln's core holds tensors of less than 2 GiB (its sizes are 32-bit)");
      return false;
    }
    ins.outputs[i].shape = s.isStandard() ? s : Shape.standard(s.dtype, s.lens);
    ins.outputs[i].bounded = i < ctx.bounded.length ? ctx.bounded[i] : 0;
  }
  if (ins.inputs.length > 0 && ins.inputs[0] != null && keepsExtent(ins, 0)) {
    const b = ins.inputs[0]!.bounded;
    if (b != 0 && ins.outputs[0].shape.sameLens(ins.inputs[0]!.shape)) ins.outputs[0].bounded = b;
  }
  propagateSymbolic(prog, ins);
  if (fold) {
    if (!foldInstruction(prog, m, ins, FOLD_MAX_BYTES)) return false;
  }
  return true;
}

/** Whether module mi or one of its ancestors is a Loop/Scan body (its shapes wait for the node). */
function isBoundWithin(prog: Program, mi: i32): bool {
  let cur = mi;
  while (cur >= 0) {
    if (prog.modules[cur].bound) return true;
    cur = prog.modules[cur].parent;
  }
  return false;
}

/** Infers the nodes of a pending module in order (nested pending subgraphs infer with their nodes). */
function inferModule(prog: Program, m: Module, fold: bool): bool {
  const snapshot = m.instrs.slice(0);
  for (let i = 0; i < snapshot.length; i++) {
    const ins = snapshot[i];
    if (ins.kind != K_NODE) continue;
    if (!inferNode(prog, m, ins, fold)) return false;
  }
  m.pending = false;
  return true;
}

/** Index of the param of `m` that value v is (through Identity nodes), else -1. */
function paramBehind(m: Module, v: Value): i32 {
  let cur = v;
  for (let guard = 0; guard < 1000; guard++) {
    const p = cur.producer;
    if (p == null) return -1;
    if (p.kind == K_NODE && p.op != null && p.op!.has(OP_IDENTITY) && p.inputs.length > 0 && p.inputs[0] != null) {
      cur = changetype<Value>(p.inputs[0]);
      continue;
    }
    if (p.kind != K_PARAM || p.module != m.index) return -1;
    let k = 0;
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind != K_PARAM) continue;
      if (ins === p) return k;
      k++;
    }
    return -1;
  }
  return -1;
}

/** Largest iteration count for which a Loop's iteration number is tracked symbolically. */
const SYM_MAX_ITERS: i64 = 4096;
/** Largest value (bytes) tracked symbolically. */
const SYM_MAX_BYTES: i32 = 256;

/** Sets the params of a Loop/Scan body `sub` to the shapes the node `ins` gives them. */
function bindSubgraph(prog: Program, ins: Instruction, ctx: ShapeContext, attr: string, sub: Module): bool {
  const prev = sub.binder;
  if (prev != null && prev !== ins) {
    report(E_GRAPH, ins.nodeName, ins.opName, "subgraph '" + attr + "' is also the body of node '" + prev.nodeName +
      "'; a body belongs to one node");
    return false;
  }
  sub.binder = ins;
  const b = new SubgraphBinding();
  if (!ins.op!.bindSubgraph(ctx, attr, b)) return false;
  const params = sub.params();
  if (params.length != b.inputs.length) {
    report(E_SHAPE, ins.nodeName, ins.opName, "subgraph '" + attr + "' takes " + params.length.toString() +
      " inputs; the node gives it " + b.inputs.length.toString());
    return false;
  }
  for (let i = 0; i < params.length; i++) {
    params[i].shape = b.inputs[i];
    params[i].sym = null;
  }
  if (b.counter >= 0 && b.iterations > 0 && b.iterations <= SYM_MAX_ITERS) {
    const v = params[b.counter];
    if (v.shape.elements() == 1 && v.shape.dtype == DT_INT64) {
      const table = new Array<Tensor>(<i32>b.iterations);
      for (let k = 0; k < <i32>b.iterations; k++) {
        const t = Tensor.alloc(v.shape);
        store<i64>(t.ptr, <i64>k);
        table[k] = t;
      }
      v.sym = table;
    }
  }
  return true;
}

/**
 * The common table length of the symbolic inputs of ins: 0 when none, -1 when they differ; with
 * `strict`, also -1 when some input is neither constant nor symbolic.
 */
function symbolicCount(ins: Instruction, strict: bool): i32 {
  let n = 0;
  for (let i = 0; i < ins.inputs.length; i++) {
    const x = ins.inputs[i];
    if (x == null) continue;
    const p = x.producer;
    if (p != null && p.isConstant()) continue;
    const t = x.sym;
    if (t == null) {
      if (strict) return -1;
      continue;
    }
    if (n != 0 && t.length != n) return -1;
    n = t.length;
  }
  return n;
}

/** The constant inputs of ins for iteration k (symbolic ones take their k-th value). */
function constantsAt(ins: Instruction, k: i32): Array<Tensor | null> {
  const consts = new Array<Tensor | null>(ins.inputs.length);
  for (let i = 0; i < ins.inputs.length; i++) {
    const x = ins.inputs[i];
    if (x == null) {
      consts[i] = null;
      continue;
    }
    const p = x.producer;
    if (p != null && p.isConstant()) consts[i] = p.literalTensor();
    else {
      const t = x.sym;
      consts[i] = t != null ? t[k] : null;
    }
  }
  return consts;
}

function hasAnySymbolic(ins: Instruction): bool {
  for (let i = 0; i < ins.inputs.length; i++) {
    const x = ins.inputs[i];
    if (x != null && x.sym != null) return true;
  }
  return false;
}

/**
 * When shape inference needed a constant that is a Loop iteration number (or a small function of
 * it): infers the node once per iteration value; the shapes must agree (then they are static).
 */
function retrySymbolic(prog: Program, ins: Instruction, ctx: ShapeContext): bool {
  if (diagnostics.length == 0 || diagnostics[diagnostics.length - 1].code != E_NEEDS_CONSTANT) return false;
  if (!hasAnySymbolic(ins)) return false;
  const n = symbolicCount(ins, false);
  if (n <= 0) return false;
  const saved = diagnostics.length;
  let first: Array<Shape> | null = null;
  for (let k = 0; k < n; k++) {
    const c = new ShapeContext(ins.nodeName, ins.opName, ins.attrs, prog.opset, ctx.inputs, constantsAt(ins, k),
      ins.outputs.length);
    if (!ins.op!.computeShape(c)) return false;
    if (first == null) {
      first = c.outputs;
      continue;
    }
    const f = changetype<Array<Shape>>(first);
    for (let j = 0; j < f.length && j < c.outputs.length; j++) {
      if (f[j].dtype != c.outputs[j].dtype || !f[j].sameLens(c.outputs[j])) {
        report(E_SHAPE, ins.nodeName, ins.opName, "output " + j.toString() + " is " + f[j].toString() +
          " at iteration 0 and " + c.outputs[j].toString() + " at iteration " + k.toString() +
          " of the enclosing Loop; kiln needs one static shape");
        return false;
      }
    }
  }
  // the shapes are the same at every iteration: drop the needs-constant diagnostic
  diagnostics.length = saved - 1;
  ctx.outputs = changetype<Array<Shape>>(first);
  return true;
}

/** Frees the per-iteration values tracked in `sub` and its nested modules (inference of the body is done). */
function freeSymbolic(prog: Program, sub: Module): void {
  for (let mi = sub.index; mi < prog.modules.length; mi++) {
    if (!prog.isWithin(mi, sub.index)) continue;
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const outs = m.instrs[i].outputs;
      for (let j = 0; j < outs.length; j++) {
        const t = outs[j].sym;
        if (t == null) continue;
        for (let k = 0; k < t.length; k++) heap.free(t[k].ptr);
        outs[j].sym = null;
      }
    }
  }
}

/** Computes the per-iteration values of a small node whose inputs are constants or symbolic. */
function propagateSymbolic(prog: Program, ins: Instruction): void {
  if (!hasAnySymbolic(ins)) return;
  const op = ins.op!;
  if (op.has(OP_NO_FOLD)) return;
  const names = ins.attrs.names();
  for (let i = 0; i < names.length; i++) if (ins.attrs.getGraph(names[i]) >= 0) return;
  const n = symbolicCount(ins, true);
  if (n <= 0) return;
  for (let j = 0; j < ins.outputs.length; j++) if (ins.outputs[j].shape.bytes() > SYM_MAX_BYTES) return;
  const tables = new Array<Array<Tensor>>(ins.outputs.length);
  for (let j = 0; j < ins.outputs.length; j++) tables[j] = new Array<Tensor>(n);
  for (let k = 0; k < n; k++) {
    const outs = new Array<Tensor>(ins.outputs.length);
    for (let j = 0; j < ins.outputs.length; j++) {
      outs[j] = Tensor.alloc(ins.outputs[j].shape);
      memory.fill(outs[j].ptr, 0, <usize>ins.outputs[j].shape.bytes());
      tables[j][k] = outs[j];
    }
    const saved = diagnostics.length;
    const c = new ComputeContext(ins.nodeName, ins.opName, ins.attrs, prog.opset, constantsAt(ins, k), outs);
    if (!op.compute(c)) {
      diagnostics.length = saved; // not an error of the model: the value is just not tracked
      for (let q = 0; q <= k; q++) for (let j = 0; j < ins.outputs.length; j++) heap.free(tables[j][q].ptr);
      return;
    }
  }
  for (let j = 0; j < ins.outputs.length; j++) ins.outputs[j].sym = tables[j];
}

/**
 * Decodes a graph encoding or a serialized program. Returns null with diagnostics on failure.
 * `badCode` is the diagnostic code for a malformed buffer (E_GRAPH or E_FORMAT).
 */
/**
 * Per-specialization overrides of main-module params (docs/internals.md "Dynamic programs"):
 * a param named in `decodeDims` takes those dims instead of the encoded ones, and one named in
 * `decodeValues` becomes a literal holding those bytes (a value-keyed input, frozen for one
 * specialization). Set by index.ts `set_decode_overrides`, cleared after each load_graph.
 */
export const decodeDims = new Map<string, Array<i32>>();
export const decodeValues = new Map<string, Array<u8>>();
/**
 * Set with the overrides (a dynamic program): every decoded weight is listed in
 * `Program.orphanWeights`, and `compile` keeps those that folding or dead-code elimination dropped
 * (a branch folded away), so that the root holds every weight a specialization may read.
 */
export let keepOrphanWeights = false;
export function setKeepOrphanWeights(on: bool): void {
  keepOrphanWeights = on;
}

export function decodeProgram(ptr: usize, len: usize, badCode: i32): Program | null {
  const r = new Reader(ptr, len);
  const magic = r.u32("header");
  const version = r.u32("header");
  const flags = r.u32("header");
  const opset = r.i32("header");
  const moduleCount = r.i32("header");
  const valueCount = r.i32("header");
  if (!r.ok) {
    report(badCode, "", "", "Bad encoding: " + r.what);
    return null;
  }
  if (magic != GRAPH_MAGIC) {
    report(badCode, "", "", "Bad encoding: wrong magic number");
    return null;
  }
  if (version != GRAPH_VERSION) {
    report(badCode, "", "", "Bad encoding: version " + version.toString() + ", this core reads " +
      GRAPH_VERSION.toString());
    return null;
  }
  if (moduleCount < 1 || moduleCount > 1 << 20 || valueCount < 0 || valueCount > 1 << 26) {
    report(badCode, "", "", "Bad encoding: " + moduleCount.toString() + " modules, " + valueCount.toString() + " values");
    return null;
  }
  const compiled = (flags & FLAG_COMPILED) != 0;
  const prog = new Program(opset);
  prog.nextValueId = valueCount;
  for (let i = 0; i < moduleCount && r.ok; i++) {
    const name = r.str("module name");
    const parent = r.i32("module parent");
    if (!r.ok) break;
    if ((i == 0 && parent != -1) || (i > 0 && (parent < 0 || parent >= i))) {
      r.fail("module " + i.toString() + " has parent " + parent.toString());
      break;
    }
    prog.modules.push(new Module(i, name, parent));
  }
  const npass = r.u32("pass list");
  for (let i: u32 = 0; i < npass && r.ok; i++) prog.passes.push(r.str("pass name"));
  const nrec = r.u32("record count");
  if (!r.ok) {
    report(badCode, "", "", "Bad encoding: " + r.what);
    return null;
  }
  const st = new DecodeState(prog, valueCount, compiled);
  for (let ri: u32 = 0; ri < nrec; ri++) {
    const kind = r.u8("record kind");
    const mi = r.i32("record module");
    if (!r.ok) break;
    if (mi < 0 || mi >= moduleCount) {
      r.fail("record " + ri.toString() + " names module " + mi.toString());
      break;
    }
    const m = prog.modules[mi];
    if (m.hasReturn) {
      r.fail("record " + ri.toString() + " follows the return of module " + mi.toString());
      break;
    }
    if (kind == R_PARAM || kind == R_PARAM_BOUND || kind == R_LITERAL || kind == R_HOST_LITERAL || kind == R_WEIGHT) {
      const id = r.i32("leaf id");
      const name = r.str("leaf name");
      let s = readShape(r, "leaf '" + name + "'");
      if (s == null || !r.ok) break;
      let ins: Instruction;
      if (kind == R_PARAM && mi == 0 && decodeDims.has(name)) {
        const d = decodeDims.get(name);
        if (d.length != s.lens.length) {
          r.fail("param '" + name + "' has rank " + s.lens.length.toString() + ", the override gives " + d.length.toString());
          break;
        }
        s = Shape.standard(s.dtype, d);
      }
      if (kind == R_PARAM && mi == 0 && decodeValues.has(name)) {
        const b = decodeValues.get(name);
        if (b.length != s.bytes()) {
          r.fail("param '" + name + "' (" + s.toString() + ") needs " + s.bytes().toString() + " bytes, the value has " +
            b.length.toString());
          break;
        }
        ins = new Instruction(K_LITERAL, "@literal", name, mi);
        ins.ptr = heap.alloc(b.length > 0 ? <usize>b.length : 1);
        for (let k = 0; k < b.length; k++) store<u8>(ins.ptr + <usize>k, unchecked(b[k]));
      } else if (kind == R_PARAM || kind == R_PARAM_BOUND) {
        ins = new Instruction(K_PARAM, "@param", name, mi);
        if (kind == R_PARAM_BOUND) {
          if (mi == 0) {
            r.fail("leaf '" + name + "': the main module has no node to bind its params");
            break;
          }
          m.bound = true;
        }
      } else if (kind == R_LITERAL) {
        ins = new Instruction(K_LITERAL, "@literal", name, mi);
        const blen = r.u32("literal length");
        if (!r.ok) break;
        if (<i32>blen != s.bytes()) {
          r.fail("literal '" + name + "' has " + blen.toString() + " bytes, " + s.toString() + " needs " +
            s.bytes().toString());
          break;
        }
        ins.ptr = r.bytes(blen, "literal '" + name + "'");
      } else if (kind == R_HOST_LITERAL) {
        ins = new Instruction(K_HOST_LITERAL, "@literal", name, mi);
        ins.hostId = r.i32("host literal id");
        if (ins.hostId < 0) r.fail("host literal '" + name + "' has id " + ins.hostId.toString());
      } else {
        ins = new Instruction(K_WEIGHT, "onnx_external_weights", name, mi);
        ins.location = r.str("weight location");
        ins.extOffset = r.i64("weight offset");
        ins.extLength = r.i64("weight length");
        ins.checksum = r.str("weight checksum");
        ins.attrs.set("name", Attr.str(name));
        ins.attrs.set("location", Attr.str(ins.location));
        ins.attrs.set("offset", Attr.int(ins.extOffset));
        ins.attrs.set("length", Attr.int(ins.extLength));
        ins.attrs.set("checksum", Attr.str(ins.checksum));
      }
      if (!r.ok) break;
      const v = new Value(id, s, name);
      v.producer = ins;
      ins.outputs.push(v);
      if (!defineValue(st, r, id, mi, v, "leaf '" + name + "'")) break;
      m.instrs.push(ins);
      if (ins.kind == K_WEIGHT && keepOrphanWeights && !compiled) st.weights.push(ins);
    } else if (kind == R_NODE) {
      const opName = r.str("node op");
      const nodeName = r.str("node name");
      const what = "node '" + nodeName + "' (" + opName + ")";
      const nin = r.u32(what + " input count");
      if (!r.need(<u64>nin * 4, what + " inputs")) break;
      const ins = new Instruction(K_NODE, opName, nodeName, mi);
      for (let i: u32 = 0; i < nin && r.ok; i++) {
        const id = r.i32(what + " input");
        if (id < 0) ins.inputs.push(null);
        else ins.inputs.push(useValue(st, r, id, mi, what));
      }
      const nout = r.u32(what + " output count");
      if (!r.ok) break;
      if (nout > 4096) {
        r.fail(what + " has " + nout.toString() + " outputs");
        break;
      }
      for (let i: u32 = 0; i < nout && r.ok; i++) {
        const id = r.i32(what + " output");
        const oname = r.str(what + " output name");
        if (!r.ok) break;
        const v = new Value(id, Shape.scalar(1), oname);
        v.producer = ins;
        v.index = <i32>i;
        ins.outputs.push(v);
        defineValue(st, r, id, mi, v, what);
      }
      readAttrs(r, ins.attrs, moduleCount, what);
      if (!r.ok) break;
      const op = findOp(opName);
      if (op == null) {
        report(E_UNSUPPORTED_OP, nodeName, opName, "Unsupported op '" + opName + "' at node '" + nodeName + "'");
        return null;
      }
      ins.op = op;
      // an If on a constant condition becomes its chosen branch (passes/fold_if.ts); inside a
      // Loop/Scan body (whose nodes infer when the node running it does) it stays
      const bound = isBoundWithin(prog, mi);
      const cond = !compiled && !bound && opName == "If" ? constantCondition(ins) : -1;
      if (cond >= 0) {
        const outs = inlineIf(prog, m, ins, cond == 1);
        if (outs == null) return explainPending(st);
        for (let i = 0; i < outs.length; i++) st.values[ins.outputs[i].id] = outs[i];
      } else if (!compiled && !bound && opName == "If" && differingOutput(prog, ins) >= 0) {
        deferIf(prog, ins);
        m.instrs.push(ins);
        st.pendingIfs.push(ins);
      } else {
        m.instrs.push(ins);
        if (bound) m.pending = true;
        else if (!inferNode(prog, m, ins, !compiled)) return explainPending(st);
      }
    } else if (kind == R_RETURN) {
      const n = r.u32("return count");
      if (!r.need(<u64>n * 4, "return values")) break;
      for (let i: u32 = 0; i < n && r.ok; i++) {
        const v = useValue(st, r, r.i32("return value"), mi, "return of module " + mi.toString());
        if (v != null) m.returns.push(v);
      }
      for (let i: u32 = 0; i < n && r.ok; i++) m.returnNames.push(r.str("return name"));
      m.hasReturn = true;
      if (mi != 0) {
        for (let i = 0; i < m.returns.length; i++) {
          const v = m.returns[i];
          if (v.bounded == 0) continue;
          const p = v.producer;
          report(E_NEEDS_CONSTANT, p == null ? "" : p.nodeName, p == null ? "" : p.opName, "Subgraph '" + m.name +
            "' returns value '" + v.name + "', whose size depends on data (" + v.shape.toString() +
            " is only an upper bound); only the main graph may output such a value (issue 11 part 3)");
          return null;
        }
      }
    } else {
      r.fail("record " + ri.toString() + " has unknown kind " + kind.toString());
    }
    if (!r.ok) break;
  }
  if (r.ok && r.pos != r.end) r.fail((r.end - r.pos).toString() + " trailing bytes");
  if (r.ok) {
    for (let i = 0; i < moduleCount; i++) {
      if (!prog.modules[i].hasReturn) {
        r.fail("module " + i.toString() + " ('" + prog.modules[i].name + "') has no return");
        break;
      }
    }
  }
  if (!r.ok) {
    report(badCode, "", "", "Bad encoding: " + r.what);
    return null;
  }
  for (let i = 0; i < st.pendingIfs.length; i++) {
    if (isLive(prog, st.pendingIfs[i])) {
      explainIf(prog, st.pendingIfs[i]);
      return null;
    }
  }
  if (keepOrphanWeights) for (let i = 0; i < st.weights.length; i++) prog.orphanWeights.push(st.weights[i]);
  return prog;
}

/**
 * A node failed while an If with differing branches is pending (its stand-in shapes may be what
 * failed): that If's explanation goes first. Returns null.
 */
function explainPending(st: DecodeState): Program | null {
  for (let i = 0; i < st.pendingIfs.length; i++) {
    const ins = st.pendingIfs[i];
    if (!isLive(st.prog, ins)) continue;
    explainIf(st.prog, ins);
    const d = diagnostics.pop();
    diagnostics.unshift(d);
    break;
  }
  return null;
}

// ---------------------------------------------------------------- writing

/** A growable little-endian byte buffer on the heap (free `buf` when done). */
export class Writer {
  buf: usize;
  cap: usize;
  len: usize = 0;

  constructor() {
    this.cap = 4096;
    this.buf = heap.alloc(this.cap);
  }
  reserve(n: usize): void {
    if (this.len + n <= this.cap) return;
    let c = this.cap * 2;
    while (c < this.len + n) c *= 2;
    this.buf = heap.realloc(this.buf, c);
    this.cap = c;
  }
  u8(v: u8): void {
    this.reserve(1);
    store<u8>(this.buf + this.len, v);
    this.len += 1;
  }
  u32(v: u32): void {
    this.reserve(4);
    store<u32>(this.buf + this.len, v);
    this.len += 4;
  }
  i64(v: i64): void {
    this.reserve(8);
    store<i64>(this.buf + this.len, v);
    this.len += 8;
  }
  f32(v: f32): void {
    this.reserve(4);
    store<f32>(this.buf + this.len, v);
    this.len += 4;
  }
  bytes(p: usize, n: usize): void {
    this.reserve(n);
    memory.copy(this.buf + this.len, p, n);
    this.len += n;
  }
  str(s: string): void {
    const b = String.UTF8.encode(s);
    this.u32(<u32>b.byteLength);
    this.bytes(changetype<usize>(b), <usize>b.byteLength);
  }
  shape(s: Shape): void {
    this.u32(<u32>s.dtype);
    this.u32(<u32>s.lens.length);
    for (let i = 0; i < s.lens.length; i++) this.u32(<u32>s.lens[i]);
  }
}

/** Attributes in the graph encoding's format (sorted by name). */
export function writeAttrs(w: Writer, attrs: Attrs): void {
  const names = attrs.names();
  names.sort();
  w.u32(<u32>names.length);
  for (let i = 0; i < names.length; i++) {
    const a = attrs.get(names[i])!;
    w.str(names[i]);
    w.u8(<u8>a.kind);
    if (a.kind == ATTR_INT) w.i64(a.i);
    else if (a.kind == ATTR_FLOAT) w.f32(a.f);
    else if (a.kind == ATTR_STRING) w.str(a.s);
    else if (a.kind == ATTR_INTS) {
      w.u32(<u32>a.ints.length);
      for (let j = 0; j < a.ints.length; j++) w.i64(a.ints[j]);
    } else if (a.kind == ATTR_FLOATS) {
      w.u32(<u32>a.floats.length);
      for (let j = 0; j < a.floats.length; j++) w.f32(a.floats[j]);
    } else if (a.kind == ATTR_STRINGS) {
      w.u32(<u32>a.strings.length);
      for (let j = 0; j < a.strings.length; j++) w.str(a.strings[j]);
    } else if (a.kind == ATTR_TENSOR) {
      const t = a.t!;
      w.shape(t.shape);
      w.u32(<u32>t.shape.bytes());
      w.bytes(t.ptr, <usize>t.shape.bytes());
    } else if (a.kind == ATTR_GRAPH) {
      w.u32(<u32>a.g);
    }
  }
}

class WriteState {
  w: Writer = new Writer();
  records: u32 = 0;
  done: Set<i32> = new Set<i32>();
}

function writeModule(st: WriteState, prog: Program, m: Module): void {
  if (st.done.has(m.index)) return;
  st.done.add(m.index);
  const w = st.w;
  for (let i = 0; i < m.instrs.length; i++) {
    const ins = m.instrs[i];
    if (ins.kind == K_NODE) {
      const names = ins.attrs.names();
      for (let j = 0; j < names.length; j++) {
        const g = ins.attrs.getGraph(names[j]);
        if (g > 0 && g < prog.modules.length) writeModule(st, prog, prog.modules[g]);
      }
    }
    st.records++;
    const v0 = ins.outputs[0];
    if (ins.kind == K_NODE) {
      w.u8(R_NODE);
      w.u32(<u32>m.index);
      w.str(ins.opName);
      w.str(ins.nodeName);
      w.u32(<u32>ins.inputs.length);
      for (let j = 0; j < ins.inputs.length; j++) {
        const x = ins.inputs[j];
        w.u32(x == null ? 0xffffffff : <u32>x.id);
      }
      w.u32(<u32>ins.outputs.length);
      for (let j = 0; j < ins.outputs.length; j++) {
        w.u32(<u32>ins.outputs[j].id);
        w.str(ins.outputs[j].name);
      }
      writeAttrs(w, ins.attrs);
      continue;
    }
    const kind: u8 = ins.kind == K_PARAM ? (m.bound ? R_PARAM_BOUND : R_PARAM) : ins.kind == K_LITERAL ? R_LITERAL :
      ins.kind == K_HOST_LITERAL ? R_HOST_LITERAL : R_WEIGHT;
    w.u8(kind);
    w.u32(<u32>m.index);
    w.u32(<u32>v0.id);
    w.str(ins.nodeName);
    w.shape(v0.shape);
    if (kind == R_LITERAL) {
      w.u32(<u32>v0.shape.bytes());
      w.bytes(ins.ptr, <usize>v0.shape.bytes());
    } else if (kind == R_HOST_LITERAL) {
      w.u32(<u32>ins.hostId);
    } else if (kind == R_WEIGHT) {
      w.str(ins.location);
      w.i64(ins.extOffset);
      w.i64(ins.extLength);
      w.str(ins.checksum);
    }
  }
  st.records++;
  w.u8(R_RETURN);
  w.u32(<u32>m.index);
  w.u32(<u32>m.returns.length);
  for (let j = 0; j < m.returns.length; j++) w.u32(<u32>m.returns[j].id);
  for (let j = 0; j < m.returns.length; j++) {
    w.str(j < m.returnNames.length ? m.returnNames[j] : "");
  }
}

/** Serializes a compiled program; returns a heap buffer (free it) and sets `serializedLength`. */
export let serializedLength: usize = 0;

export function serializeProgram(prog: Program): usize {
  const st = new WriteState();
  const w = st.w;
  w.u32(GRAPH_MAGIC);
  w.u32(GRAPH_VERSION);
  w.u32(FLAG_COMPILED);
  w.u32(<u32>prog.opset);
  w.u32(<u32>prog.modules.length);
  w.u32(<u32>prog.nextValueId);
  for (let i = 0; i < prog.modules.length; i++) {
    w.str(prog.modules[i].name);
    w.u32(<u32>prog.modules[i].parent);
  }
  w.u32(<u32>prog.passes.length);
  for (let i = 0; i < prog.passes.length; i++) w.str(prog.passes[i]);
  const countAt = w.len;
  w.u32(0);
  writeModule(st, prog, prog.modules[0]);
  // modules not reached from main through graph attributes (unused branches) come last
  for (let i = 1; i < prog.modules.length; i++) writeModule(st, prog, prog.modules[i]);
  store<u32>(w.buf + countAt, st.records);
  serializedLength = w.len;
  return w.buf;
}
