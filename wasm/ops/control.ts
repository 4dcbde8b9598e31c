// Control flow: If, Loop and Scan. If's branches and the Loop/Scan bodies are submodules
// (attributes then_branch / else_branch / body); the executor (wasm/exec/executor.ts) runs them
// and copies their returns, so compute here is never called. Loop and Scan feed their body's
// params (bindSubgraph: the shapes the body is inferred with) and give static output shapes:
// a Loop's scan outputs need a compile-time trip count and a condition that cannot end it early. The leaves (@param, @literal, onnx_external_weights) are instruction kinds in
// wasm/ir/program.ts, not ops.
import { DT_BOOL, DT_INT64 } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { ComputeContext, Op, OP_NO_FOLD, ShapeContext, SubgraphBinding } from "./op";
import { registerOp } from "./registry";

class IfOp extends Op {
  constructor() {
    super("If", OP_NO_FOLD);
  }
  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("If needs a condition input");
    if (ctx.input(0).elements() != 1) return ctx.fail("If condition must have one element");
    const thenHas = ctx.subgraphOutputs.has("then_branch");
    const elseHas = ctx.subgraphOutputs.has("else_branch");
    if (!thenHas || !elseHas) return ctx.fail("If needs then_branch and else_branch subgraphs");
    const t = ctx.subgraphOutputs.get("then_branch");
    const e = ctx.subgraphOutputs.get("else_branch");
    if (t.length != e.length) {
      return ctx.fail("branches return " + t.length.toString() + " and " + e.length.toString() + " values");
    }
    if (t.length < ctx.numOutputs) {
      return ctx.fail("branches return " + t.length.toString() + " values for " + ctx.numOutputs.toString() + " outputs");
    }
    for (let i = 0; i < ctx.numOutputs; i++) {
      const a = t[i];
      const b = e[i];
      if (a.dtype != b.dtype || !a.sameLens(b)) {
        return ctx.fail("output " + i.toString() + " is " + a.toString() + " in then_branch and " + b.toString() +
          " in else_branch; kiln needs one static shape");
      }
      ctx.out(Shape.standard(a.dtype, a.lens));
    }
    return true;
  }
  compute(ctx: ComputeContext): bool {
    return ctx.fail("If runs only in the executor");
  }
}

/** Checks that body return `r` (a loop-carried value / state) keeps the shape `s` it came in with. */
function sameCarried(ctx: ShapeContext, what: string, k: i32, s: Shape, r: Shape): bool {
  if (s.dtype == r.dtype && s.sameLens(r)) return true;
  return ctx.fail(what + " " + k.toString() + " goes into the body as " + s.toString() + " and comes out as " +
    r.toString() + "; kiln needs the same static shape and type every iteration");
}

// ---------------------------------------------------------------- Loop

/**
 * Loop (opset 1..21): inputs M (trip count, optional), cond (optional), N loop-carried values;
 * body(iteration_num, cond_in, carried...) -> (cond_out, carried..., K scan values); outputs: the
 * N final carried values, then the K scan values stacked on a new axis 0.
 */
class LoopOp extends Op {
  constructor() {
    super("Loop", OP_NO_FOLD);
  }

  /** The trip count when the input is a compile-time constant (-1 when absent, -2 when not constant). */
  tripCount(ctx: ShapeContext): i64 {
    if (!ctx.hasInput(0)) return -1;
    const c = ctx.constant(0);
    if (c == null) return -2;
    const v = c.toI64Array();
    return v[0] < 0 ? 0 : v[0];
  }

  checkInputs(ctx: ShapeContext): bool {
    if (ctx.count() < 2) return ctx.fail("Loop needs inputs M and cond (either may be empty)");
    if (ctx.hasInput(0)) {
      const m = ctx.input(0);
      if (m.elements() != 1 || m.dtype != DT_INT64) {
        return ctx.fail("trip count M must be one int64, is " + m.toString());
      }
    }
    if (ctx.hasInput(1)) {
      const c = ctx.input(1);
      if (c.elements() != 1 || c.dtype != DT_BOOL) return ctx.fail("cond must be one bool, is " + c.toString());
    }
    for (let i = 2; i < ctx.count(); i++) {
      if (!ctx.hasInput(i)) return ctx.fail("loop-carried input " + (i - 2).toString() + " is empty");
    }
    return true;
  }

  bindSubgraph(ctx: ShapeContext, attr: string, b: SubgraphBinding): bool {
    if (attr != "body") return ctx.fail("Loop has no subgraph attribute '" + attr + "'");
    if (!this.checkInputs(ctx)) return false;
    b.inputs.push(Shape.scalar(DT_INT64));
    b.inputs.push(Shape.scalar(DT_BOOL));
    for (let i = 2; i < ctx.count(); i++) b.inputs.push(Shape.standard(ctx.input(i).dtype, ctx.input(i).lens));
    b.counter = 0;
    const m = this.tripCount(ctx);
    b.iterations = m >= 0 ? m : -1;
    return true;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!this.checkInputs(ctx)) return false;
    if (!ctx.subgraphOutputs.has("body")) return ctx.fail("Loop needs a body subgraph");
    const rs = ctx.subgraphOutputs.get("body");
    const n = ctx.count() - 2;
    if (rs.length < 1 + n) {
      return ctx.fail("the body returns " + rs.length.toString() + " values; it must return cond and the " +
        n.toString() + " loop-carried values");
    }
    if (rs[0].elements() != 1 || rs[0].dtype != DT_BOOL) {
      return ctx.fail("the body's condition output must be one bool, is " + rs[0].toString());
    }
    const k = rs.length - 1 - n;
    if (ctx.numOutputs > n + k) {
      return ctx.fail("Loop has " + ctx.numOutputs.toString() + " outputs; its body gives " + (n + k).toString());
    }
    for (let i = 0; i < n; i++) {
      if (!sameCarried(ctx, "loop-carried value", i, ctx.input(2 + i), rs[1 + i])) return false;
      if (i < ctx.numOutputs) ctx.out(Shape.standard(rs[1 + i].dtype, rs[1 + i].lens));
    }
    if (ctx.numOutputs <= n) return true;
    // scan outputs: their length is the number of iterations, which must be static
    let count: i64 = 0;
    let condFalse = false;
    if (ctx.hasInput(1)) {
      const c = ctx.constant(1);
      if (c == null) {
        return ctx.needConstant(1, "cond: the Loop has scan outputs, whose length must be known when compiling");
      }
      condFalse = c.getAsI64(0) == 0;
    }
    if (!condFalse) {
      const m = this.tripCount(ctx);
      if (m == -1) {
        return ctx.fail("the Loop has scan outputs but no trip count M: their length would be known only at " +
          "run time; kiln plans static shapes");
      }
      if (m == -2) {
        return ctx.needConstant(0, "trip count M: the Loop has scan outputs, whose length must be known when compiling");
      }
      const through = ctx.subgraphPassThrough.get("body");
      const consts = ctx.subgraphConstants.get("body");
      const c0 = consts[0];
      const alwaysTrue = through[0] == 1 || (c0 != null && c0.getAsI64(0) != 0);
      if (!alwaysTrue) {
        return ctx.fail("the body's condition output may end the Loop early, so the length of its scan outputs " +
          "is known only at run time; kiln plans static shapes and supports such a Loop only without scan " +
          "outputs (the condition may then end it)");
      }
      count = m;
    }
    if (count > 0x7fffffff) return ctx.fail("trip count " + count.toString() + " is too large for a scan output");
    for (let j = 0; n + j < ctx.numOutputs; j++) {
      const r = rs[1 + n + j];
      const lens = new Array<i32>();
      lens.push(<i32>count);
      for (let d = 0; d < r.lens.length; d++) lens.push(r.lens[d]);
      ctx.out(Shape.standard(r.dtype, lens));
    }
    return true;
  }

  compute(ctx: ComputeContext): bool {
    return ctx.fail("Loop runs only in the executor");
  }
}

// ---------------------------------------------------------------- Scan

/** Where the scan inputs start and how many states there are, for this node's opset. */
class ScanLayout {
  /** index of the first state input */
  first: i32 = 0;
  /** number of states */
  states: i32 = 0;
  /** number of scan inputs */
  scans: i32 = 0;
  /** opset 8: axis 0 of every input and output is a batch axis */
  batched: bool = false;
}

/**
 * Scan, opset 8 (batch axis 0, optional sequence_lens, `directions`) and opset 9+
 * (scan_input_axes / scan_input_directions / scan_output_axes / scan_output_directions):
 * body(states..., scan elements...) -> (states..., scan output elements...).
 */
class ScanOp extends Op {
  constructor() {
    super("Scan", OP_NO_FOLD);
  }

  layout(ctx: ShapeContext, l: ScanLayout): bool {
    const s = ctx.attrs.getInt("num_scan_inputs", -1);
    if (s < 1) return ctx.fail("Scan needs attribute num_scan_inputs >= 1");
    if (s > <i64>ctx.count()) {
      return ctx.fail("num_scan_inputs is " + s.toString() + " but the node has " + ctx.count().toString() + " inputs");
    }
    l.batched = ctx.opset < 9;
    l.first = l.batched ? 1 : 0;
    l.scans = <i32>s;
    l.states = ctx.count() - l.first - l.scans;
    if (l.states < 0) {
      return ctx.fail("num_scan_inputs is " + s.toString() + " but the node has " +
        (ctx.count() - l.first).toString() + " state and scan inputs");
    }
    for (let i = l.first; i < ctx.count(); i++) {
      if (!ctx.hasInput(i)) return ctx.fail("input " + i.toString() + " is empty");
    }
    return true;
  }

  /** Normalized axis of scan input j (opset 9+), or -1 after ctx.fail. */
  inputAxis(ctx: ShapeContext, l: ScanLayout, j: i32): i32 {
    const r = ctx.input(l.first + l.states + j).rank();
    const axes = ctx.attrs.getInts("scan_input_axes");
    let a: i64 = 0;
    if (axes != null) {
      if (axes.length != l.scans) {
        ctx.fail("scan_input_axes has " + axes.length.toString() + " entries for " + l.scans.toString() + " scan inputs");
        return -1;
      }
      a = axes[j];
    }
    if (a < -r || a >= r) {
      ctx.fail("scan_input_axes[" + j.toString() + "] = " + a.toString() + " is out of range for rank " + r.toString());
      return -1;
    }
    return <i32>(a < 0 ? a + r : a);
  }

  /** The sequence length, with every scan input checked; -1 after ctx.fail. */
  seqLen(ctx: ShapeContext, l: ScanLayout): i32 {
    let t = -1;
    for (let j = 0; j < l.scans; j++) {
      const x = ctx.input(l.first + l.states + j);
      let len: i32;
      if (l.batched) {
        if (x.rank() < 2) {
          ctx.fail("scan input " + j.toString() + " is " + x.toString() + "; opset 8 needs [batch, sequence, ...]");
          return -1;
        }
        len = x.lens[1];
      } else {
        const a = this.inputAxis(ctx, l, j);
        if (a < 0) return -1;
        len = x.lens[a];
      }
      if (t >= 0 && len != t) {
        ctx.fail("scan inputs have sequence lengths " + t.toString() + " and " + len.toString());
        return -1;
      }
      t = len;
    }
    return t;
  }

  /** Opset 8: the batch size, every state and scan input checked; -1 after ctx.fail. */
  batch(ctx: ShapeContext, l: ScanLayout): i32 {
    let b = -1;
    for (let i = l.first; i < ctx.count(); i++) {
      const x = ctx.input(i);
      if (x.rank() < 1) {
        ctx.fail("input " + i.toString() + " is a scalar; opset 8 Scan needs a batch axis");
        return -1;
      }
      if (b >= 0 && x.lens[0] != b) {
        ctx.fail("inputs have batch sizes " + b.toString() + " and " + x.lens[0].toString());
        return -1;
      }
      b = x.lens[0];
    }
    return b;
  }

  checkSequenceLens(ctx: ShapeContext, b: i32, t: i32): bool {
    if (!ctx.hasInput(0)) return true;
    const s = ctx.input(0);
    if (s.dtype != DT_INT64 && s.dtype != 6) return ctx.fail("sequence_lens must be int32 or int64, is " + s.toString());
    const c = ctx.constant(0);
    if (c == null) return ctx.needConstant(0, "sequence_lens: kiln runs full-length sequences only");
    const v = c.toI64Array();
    if (v.length != b) return ctx.fail("sequence_lens has " + v.length.toString() + " entries for batch " + b.toString());
    for (let i = 0; i < v.length; i++) {
      if (v[i] != <i64>t) {
        return ctx.fail("sequence_lens[" + i.toString() + "] = " + v[i].toString() + " is shorter than the sequence (" +
          t.toString() + "); kiln supports only full-length sequences");
      }
    }
    return true;
  }

  /** Drops the batch axis (opset 8) from a state shape. */
  static stripLeading(s: Shape, n: i32): Shape {
    return Shape.standard(s.dtype, s.lens.slice(n));
  }

  bindSubgraph(ctx: ShapeContext, attr: string, b: SubgraphBinding): bool {
    if (attr != "body") return ctx.fail("Scan has no subgraph attribute '" + attr + "'");
    const l = new ScanLayout();
    if (!this.layout(ctx, l)) return false;
    if (l.batched) {
      const bs = this.batch(ctx, l);
      if (bs < 0) return false;
      const t = this.seqLen(ctx, l);
      if (t < 0 || !this.checkSequenceLens(ctx, bs, t)) return false;
      for (let i = 0; i < l.states; i++) b.inputs.push(ScanOp.stripLeading(ctx.input(l.first + i), 1));
      for (let j = 0; j < l.scans; j++) b.inputs.push(ScanOp.stripLeading(ctx.input(l.first + l.states + j), 2));
      return true;
    }
    if (this.seqLen(ctx, l) < 0) return false;
    for (let i = 0; i < l.states; i++) b.inputs.push(Shape.standard(ctx.input(i).dtype, ctx.input(i).lens));
    for (let j = 0; j < l.scans; j++) {
      const x = ctx.input(l.states + j);
      const a = this.inputAxis(ctx, l, j);
      const lens = new Array<i32>();
      for (let d = 0; d < x.lens.length; d++) if (d != a) lens.push(x.lens[d]);
      b.inputs.push(Shape.standard(x.dtype, lens));
    }
    return true;
  }

  computeShape(ctx: ShapeContext): bool {
    const l = new ScanLayout();
    if (!this.layout(ctx, l)) return false;
    if (!ctx.subgraphOutputs.has("body")) return ctx.fail("Scan needs a body subgraph");
    const rs = ctx.subgraphOutputs.get("body");
    if (rs.length < l.states) {
      return ctx.fail("the body returns " + rs.length.toString() + " values for " + l.states.toString() + " states");
    }
    const k = rs.length - l.states;
    if (ctx.numOutputs > rs.length) {
      return ctx.fail("Scan has " + ctx.numOutputs.toString() + " outputs; its body gives " + rs.length.toString());
    }
    const t = this.seqLen(ctx, l);
    if (t < 0) return false;
    let bs = 0;
    if (l.batched) {
      bs = this.batch(ctx, l);
      if (bs < 0) return false;
      const dirs = ctx.attrs.getInts("directions");
      if (dirs != null && dirs.length != l.scans) {
        return ctx.fail("directions has " + dirs.length.toString() + " entries for " + l.scans.toString() + " scan inputs");
      }
    } else {
      const names = ["scan_input_directions", "scan_output_directions", "scan_output_axes"];
      const want = [l.scans, k, k];
      for (let i = 0; i < 3; i++) {
        const v = ctx.attrs.getInts(names[i]);
        if (v != null && v.length != want[i]) {
          return ctx.fail(names[i] + " has " + v.length.toString() + " entries for " + want[i].toString() + " values");
        }
      }
    }
    for (let i = 0; i < l.states; i++) {
      const s = ctx.input(l.first + i);
      const r = rs[i];
      const inner = l.batched ? ScanOp.stripLeading(s, 1) : s;
      if (!sameCarried(ctx, "state", i, inner, r)) return false;
      if (i < ctx.numOutputs) ctx.out(Shape.standard(s.dtype, s.lens));
    }
    const axes = ctx.attrs.getInts("scan_output_axes");
    for (let j = 0; l.states + j < ctx.numOutputs; j++) {
      const r = rs[l.states + j];
      const lens = new Array<i32>();
      if (l.batched) {
        lens.push(bs);
        lens.push(t);
        for (let d = 0; d < r.lens.length; d++) lens.push(r.lens[d]);
      } else {
        const rank = r.rank() + 1;
        let a: i64 = 0;
        if (axes != null) a = axes[j];
        if (a < -rank || a >= rank) {
          return ctx.fail("scan_output_axes[" + j.toString() + "] = " + a.toString() + " is out of range for rank " +
            rank.toString());
        }
        if (a < 0) a += rank;
        for (let d = 0; d < r.lens.length; d++) {
          if (d == <i32>a) lens.push(t);
          lens.push(r.lens[d]);
        }
        if (<i32>a == r.lens.length) lens.push(t);
      }
      ctx.out(Shape.standard(r.dtype, lens));
    }
    return true;
  }

  compute(ctx: ComputeContext): bool {
    return ctx.fail("Scan runs only in the executor");
  }
}

export function registerControl(): void {
  registerOp(new IfOp());
  registerOp(new LoopOp());
  registerOp(new ScanOp());
}
