// pack_gemm_weights: a float32 MatMul or Gemm of the main module whose B operand depends only on
// literals and weights reads B packed once, in the prepare step, instead of packing it on every run.
//
// The node becomes kiln.gemm_packed_b(A, kiln.pack_gemm_b(B), C?) (ops/linalg.ts). The pack node
// is weight-only work, so memory_plan and hoist_prepare put it in the prepare step: it runs at
// finalize and again after every bind, baked and deferred weights alike (the same derived
// constant on both paths). A 2-D Transpose feeding B is folded into the packing (the packing reads
// B transposed), so the transposed copy of a tied embedding is not kept beside its packed form.
// One packing per (weight, transposition), however many nodes read it. Nodes with a single row
// (M == 1) are left alone: sgemm streams B there without packing it. A Gather (axis 0) of rows of
// a weight that is also packed transposed (a tied embedding: GPT-2's wte, gathered by the token
// ids and the LM head's B) reads the rows out of that packing (kiln.gather_packed_rows), so the
// weight's only readers are packings and the ref target keeps it packed only (docs/internals.md
// "Packed-only weights").
import { Attr } from "../ir/attrs";
import { DT_FLOAT, DT_INT32, DT_INT64 } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { Instruction, K_NODE, Module, Program, Value } from "../ir/program";
import { packedBLength } from "../kernels/gemm";
import { GATHER_PACKED_ROWS, GEMM_PACKED_B, PACK_GEMM_B } from "../ops/linalg";
import { findOp } from "../ops/registry";
import { trackWeightOnly } from "./hoist_prepare";
import { Pass } from "./pass";

/** B's source and whether the packing reads it transposed, for a Transpose-free B. */
class Source {
  value: Value;
  trans: bool;
  constructor(value: Value, trans: bool) {
    this.value = value;
    this.trans = trans;
  }
}

/** Looks through a 2-D Transpose of a fixed value: packing B^T from B costs the same. */
function sourceOf(b: Value, trans: bool, fixed: Set<i32>): Source {
  const p = b.producer;
  if (p == null || p.kind != K_NODE || p.opName != "Transpose" || p.inputs.length < 1) return new Source(b, trans);
  const x = p.inputs[0];
  if (x == null || !fixed.has(x.id) || x.shape.rank() != 2) return new Source(b, trans);
  const perm = p.attrs.getInts("perm");
  if (perm != null && (perm.length != 2 || perm[0] != 1 || perm[1] != 0)) return new Source(b, trans);
  return new Source(x, !trans);
}

export class PackGemmWeights extends Pass {
  constructor() {
    super("pack_gemm_weights");
  }

  apply(prog: Program, m: Module): bool {
    if (m.index != 0) return true; // the prepare step exists for the main module only
    const packOp = findOp(PACK_GEMM_B);
    const gemmOp = findOp(GEMM_PACKED_B);
    if (packOp == null || gemmOp == null) return true;
    const fixed = new Set<i32>();
    const packs = new Map<string, Value>();
    const out = new Array<Instruction>();
    let changed = false;
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (trackWeightOnly(ins, fixed) || ins.kind != K_NODE) {
        out.push(ins);
        continue;
      }
      const isMatMul = ins.kind == K_NODE && ins.opName == "MatMul";
      const isGemm = ins.kind == K_NODE && ins.opName == "Gemm";
      if ((!isMatMul && !isGemm) || ins.inputs.length < 2 || ins.inputs[0] == null || ins.inputs[1] == null ||
        ins.outputs.length != 1) {
        out.push(ins);
        continue;
      }
      const a = ins.inputs[0]!;
      const b = ins.inputs[1]!;
      const as = a.shape;
      const bs = b.shape;
      const tA = isGemm && ins.attrs.getInt("transA", 0) != 0;
      const tB = isGemm && ins.attrs.getInt("transB", 0) != 0;
      let rows: i32 = 1;
      if (isGemm) rows = as.rank() == 2 ? (tA ? as.lens[1] : as.lens[0]) : 0;
      else for (let d = 0; d < as.rank() - 1; d++) rows *= as.lens[d];
      if (as.dtype != DT_FLOAT || bs.dtype != DT_FLOAT || bs.rank() != 2 || as.rank() < 2 || rows < 2 ||
        !fixed.has(b.id)) {
        out.push(ins);
        continue;
      }
      const K = tB ? bs.lens[1] : bs.lens[0];
      const N = tB ? bs.lens[0] : bs.lens[1];
      const src = sourceOf(b, tB, fixed);
      const key = src.value.id.toString() + (src.trans ? "T" : "N");
      let packed: Value;
      if (packs.has(key)) {
        packed = packs.get(key);
      } else {
        const pk = new Instruction(K_NODE, PACK_GEMM_B, src.value.name + "/packed", m.index);
        pk.op = packOp;
        pk.attrs.set("trans_b", Attr.int(src.trans ? 1 : 0));
        pk.inputs.push(src.value);
        packed = prog.newValue(Shape.standard(DT_FLOAT, [packedBLength(K, N)]), src.value.name + "/packed");
        packed.producer = pk;
        pk.outputs.push(packed);
        out.push(pk);
        fixed.add(packed.id);
        packs.set(key, packed);
      }
      const g = new Instruction(K_NODE, GEMM_PACKED_B, ins.nodeName, m.index);
      g.op = gemmOp;
      g.attrs.set("k", Attr.int(K));
      g.attrs.set("n", Attr.int(N));
      g.attrs.set("trans_a", Attr.int(tA ? 1 : 0));
      g.attrs.set("alpha", Attr.float(isGemm ? ins.attrs.getFloat("alpha", 1) : 1));
      g.attrs.set("beta", Attr.float(isGemm ? ins.attrs.getFloat("beta", 1) : 0));
      g.inputs.push(a);
      g.inputs.push(packed);
      if (isGemm && ins.inputs.length > 2 && ins.inputs[2] != null) g.inputs.push(ins.inputs[2]);
      const y = ins.outputs[0];
      y.producer = g;
      g.outputs.push(y);
      out.push(g);
      changed = true;
    }
    if (changed) m.instrs = gatherFromPackings(m, out, packs);
    return true;
  }
}

/**
 * `instrs` with each Gather (axis 0, float32 [N, K] data) of a value packed transposed replaced by
 * kiln.gather_packed_rows reading that packing; a packing a Gather now reads before its first GEMM
 * moves up to just before that Gather (its input, a weight-only value, is defined by then).
 */
function gatherFromPackings(m: Module, instrs: Array<Instruction>, packs: Map<string, Value>): Array<Instruction> {
  const op = findOp(GATHER_PACKED_ROWS);
  if (op == null) return instrs;
  const out = new Array<Instruction>();
  const placed = new Set<Instruction>();
  for (let i = 0; i < instrs.length; i++) {
    const ins = instrs[i];
    if (placed.has(ins)) continue;
    if (ins.kind != K_NODE || ins.opName != "Gather" || ins.inputs.length != 2 || ins.inputs[0] == null ||
      ins.inputs[1] == null || ins.outputs.length != 1) {
      out.push(ins);
      continue;
    }
    const x = ins.inputs[0]!;
    const ind = ins.inputs[1]!;
    const axis = ins.attrs.getInt("axis", 0);
    const key = x.id.toString() + "T";
    if (x.shape.dtype != DT_FLOAT || x.shape.rank() != 2 || (axis != 0 && axis != -2) || !packs.has(key) ||
      (ind.shape.dtype != DT_INT64 && ind.shape.dtype != DT_INT32)) {
      out.push(ins);
      continue;
    }
    const packed = packs.get(key);
    const pk = packed.producer!;
    if (!placed.has(pk)) {
      // its packing comes later (at the first GEMM): place it here, before the Gather
      let seen = false;
      for (let k = 0; k < out.length && !seen; k++) if (out[k] == pk) seen = true;
      if (!seen) {
        out.push(pk);
        placed.add(pk);
      }
    }
    const g = new Instruction(K_NODE, GATHER_PACKED_ROWS, ins.nodeName, m.index);
    g.op = op;
    g.attrs.set("k", Attr.int(x.shape.lens[1]));
    g.attrs.set("n", Attr.int(x.shape.lens[0]));
    g.inputs.push(packed);
    g.inputs.push(ind);
    const y = ins.outputs[0];
    y.producer = g;
    g.outputs.push(y);
    out.push(g);
  }
  return out;
}
