// fuse_elementwise (ref target): a group of float32 elementwise nodes of one output shape whose
// intermediate values only the group reads becomes one kiln.fused_elementwise node (ops/fused.ts),
// which runs the nodes' own row kernels block by block while a block is in cache, split over the
// threads: GPT-2's tanh GELU (Mul, Pow, Mul, Add, Mul, Tanh, Add, Mul over [128, 3072]) goes from
// eight passes over memory, five of them on one thread's worth of work each, to one. Each element is
// computed by the same kernel code as before, so results are bit-identical to the unfused graph.
import { Attr } from "../ir/attrs";
import { DT_FLOAT } from "../ir/dtype";
import { Instruction, K_LITERAL, K_NODE, Module, Program, useCounts, Value } from "../ir/program";
import { f32StepOf, F32Step } from "../ops/elementwise";
import { FUSED_ELEMENTWISE, FUSED_MAX_STEPS } from "../ops/fused";
import { findOp } from "../ops/registry";
import { Pass } from "./pass";

/** Groups smaller than this many elements are left alone (the per-node cost is not worth saving). */
const FUSE_MIN_ELEMENTS: i32 = 4096;

class Group {
  members: Array<Instruction> = new Array<Instruction>();
  steps: Array<F32Step> = new Array<F32Step>();
}

/** The float32 SIMD step node `ins` runs as, when it may join a group; null otherwise. */
function stepOf(ins: Instruction, opset: i32): F32Step | null {
  if (ins.kind != K_NODE || ins.op == null || ins.outputs.length != 1) return null;
  const y = ins.outputs[0];
  if (y.shape.dtype != DT_FLOAT || y.bounded != 0 || y.shape.elements() < FUSE_MIN_ELEMENTS) return null;
  const n = ins.inputs.length;
  if (n < 1 || n > 2) return null;
  for (let j = 0; j < n; j++) {
    const x = ins.inputs[j];
    if (x == null || x.shape.dtype != DT_FLOAT || x.bounded != 0) return null;
  }
  let exponent: f32 = NaN;
  if (ins.opName == "Pow" && n == 2) {
    const e = ins.inputs[1]!;
    const p = e.producer;
    if (p != null && p.kind == K_LITERAL && p.ptr != 0 && e.shape.elements() == 1) exponent = load<f32>(p.ptr);
  }
  const st = f32StepOf(ins.op!, ins.attrs, opset, exponent);
  if (st == null) return null;
  const x0 = ins.inputs[0]!;
  if (!st.binary) {
    // unary (Pow by a literal included): input 0 has the output's lens
    return x0.shape.sameLens(y.shape) ? st : null;
  }
  if (n != 2) return null;
  for (let j = 0; j < 2; j++) {
    const x = ins.inputs[j]!;
    if (!x.shape.sameLens(y.shape) && x.shape.elements() != 1) return null;
  }
  return st;
}

/** Times `v` appears among the inputs of `ins`. */
function readsOf(ins: Instruction, v: Value): i32 {
  let k = 0;
  for (let j = 0; j < ins.inputs.length; j++) if (ins.inputs[j] == v) k++;
  return k;
}

export class FuseElementwise extends Pass {
  constructor() {
    super("fuse_elementwise");
  }

  apply(prog: Program, m: Module): bool {
    const fusedOp = findOp(FUSED_ELEMENTWISE);
    if (fusedOp == null) return true;
    const uses = useCounts(prog);
    const returned = new Set<i32>();
    for (let j = 0; j < m.returns.length; j++) returned.add(m.returns[j].id);
    const order = new Map<Instruction, i32>();
    for (let i = 0; i < m.instrs.length; i++) order.set(m.instrs[i], i);
    // the group each fused-so-far value belongs to (by value id)
    const groupOf = new Map<i32, Group>();
    const groups = new Array<Group>();
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      const st = stepOf(ins, prog.opset);
      if (st == null) continue;
      const y = ins.outputs[0];
      // join the groups of inputs this node alone reads (then they are the group's intermediates)
      let target: Group | null = null;
      for (let j = 0; j < ins.inputs.length; j++) {
        const v = ins.inputs[j]!;
        if (!groupOf.has(v.id) || returned.has(v.id) || !v.shape.sameLens(y.shape)) continue;
        if (uses.get(v.id) != readsOf(ins, v)) continue;
        const g = groupOf.get(v.id);
        if (g == target) continue;
        if (target == null) {
          if (g.members.length + 1 > FUSED_MAX_STEPS) continue;
          target = g;
          continue;
        }
        const t = target!;
        if (t.members.length + g.members.length + 1 > FUSED_MAX_STEPS) continue;
        // merge g into target, members in program order (each group's members precede this node)
        const ms = new Array<Instruction>();
        const ss = new Array<F32Step>();
        let a = 0, b = 0;
        while (a < t.members.length || b < g.members.length) {
          const takeA = b >= g.members.length ||
            (a < t.members.length && order.get(t.members[a]) < order.get(g.members[b]));
          if (takeA) {
            ms.push(t.members[a]);
            ss.push(t.steps[a++]);
          } else {
            ms.push(g.members[b]);
            ss.push(g.steps[b++]);
          }
        }
        t.members = ms;
        t.steps = ss;
        for (let k = 0; k < g.members.length; k++) groupOf.set(g.members[k].outputs[0].id, t);
        g.members = new Array<Instruction>();
        g.steps = new Array<F32Step>();
      }
      if (target == null) {
        target = new Group();
        groups.push(target!);
      }
      target!.members.push(ins);
      target!.steps.push(st);
      groupOf.set(y.id, target!);
    }
    // a group fuses when only its last node's output is read outside it
    const last = new Map<Instruction, Instruction>(); // last member -> the fused node
    const gone = new Set<Instruction>();
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi];
      const k = g.members.length;
      if (k < 2) continue;
      let ok = true;
      for (let a = 0; a < k - 1 && ok; a++) {
        const v = g.members[a].outputs[0];
        let inside = 0;
        for (let b = a + 1; b < k; b++) inside += readsOf(g.members[b], v);
        if (returned.has(v.id) || (uses.has(v.id) ? uses.get(v.id) : 0) != inside) ok = false;
      }
      if (!ok) continue;
      const f = this.fuse(m, g);
      f.op = fusedOp;
      last.set(g.members[k - 1], f);
      for (let a = 0; a < k - 1; a++) gone.add(g.members[a]);
    }
    if (last.size == 0) return true;
    const out = new Array<Instruction>();
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (gone.has(ins)) continue;
      out.push(last.has(ins) ? last.get(ins) : ins);
    }
    m.instrs = out;
    return true;
  }

  /** The kiln.fused_elementwise node computing group `g` (its output: the last member's). */
  fuse(m: Module, g: Group): Instruction {
    const k = g.members.length;
    const tail = g.members[k - 1];
    const f = new Instruction(K_NODE, FUSED_ELEMENTWISE, tail.nodeName, m.index);
    const stepOfValue = new Map<i32, i32>();
    const external = new Map<i32, i32>();
    const steps = new Array<i64>();
    const params = new Array<f32>();
    let ops = "";
    for (let s = 0; s < k; s++) {
      const ins = g.members[s];
      const st = g.steps[s];
      const refs = new Array<i64>(2);
      for (let j = 0; j < (st.binary ? 2 : 1); j++) {
        const v = ins.inputs[j]!;
        if (stepOfValue.has(v.id)) refs[j] = <i64>stepOfValue.get(v.id);
        else {
          if (!external.has(v.id)) {
            external.set(v.id, f.inputs.length);
            f.inputs.push(v);
          }
          refs[j] = -1 - <i64>external.get(v.id);
        }
      }
      steps.push(st.binary ? 1 : 0);
      steps.push(st.code);
      steps.push(refs[0]);
      steps.push(st.binary ? refs[1] : 0);
      params.push(st.p0);
      params.push(st.p1);
      stepOfValue.set(ins.outputs[0].id, s);
      if (s > 0) ops += "+";
      ops += ins.opName;
    }
    const y = tail.outputs[0];
    const lens = new Array<i64>(y.shape.lens.length);
    for (let d = 0; d < lens.length; d++) lens[d] = y.shape.lens[d];
    f.attrs.set("steps", Attr.intList(steps));
    f.attrs.set("params", Attr.floatList(params));
    f.attrs.set("shape", Attr.intList(lens));
    f.attrs.set("ops", Attr.str(ops));
    f.outputs.push(y);
    y.producer = f;
    return f;
  }
}
