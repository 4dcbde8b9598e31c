// cloneProgram: a copy of a program (serialize + decode, no passes) that keeps the original's
// memory plan (value locations, arena offsets, aliases, skip and prepare marks), so that the copy
// is the same compiled program, unfinalized. Value ids and instruction positions are kept.
import { decodeProgram, serializedLength, serializeProgram } from "./codec";
import { E_FORMAT, report } from "./diag";
import { K_LITERAL, Program, Value } from "./program";

/** A copy of `p` with its memory plan; null with diagnostics on failure. `p` is not changed. */
export function cloneProgram(p: Program): Program | null {
  const buf = serializeProgram(p);
  const q = decodeProgram(buf, serializedLength, E_FORMAT);
  heap.free(buf);
  if (q == null) return null;
  const byId = new Map<i32, Value>();
  for (let mi = 0; mi < q.modules.length; mi++) {
    const m = q.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const outs = m.instrs[i].outputs;
      for (let j = 0; j < outs.length; j++) byId.set(outs[j].id, outs[j]);
    }
  }
  for (let mi = 0; mi < p.modules.length; mi++) {
    const a = p.modules[mi];
    const b = q.modules[mi];
    if (a.instrs.length != b.instrs.length) {
      report(E_FORMAT, "", "", "Copy of module '" + a.name + "' has " + b.instrs.length.toString() +
        " instructions, the original " + a.instrs.length.toString());
      freeLiterals(q);
      return null;
    }
    b.planned = a.planned;
    b.arenaBytes = a.arenaBytes;
    for (let i = 0; i < a.instrs.length; i++) {
      const ia = a.instrs[i];
      const ib = b.instrs[i];
      ib.skip = ia.skip;
      ib.prepare = ia.prepare;
      ib.litOffset = ia.litOffset;
      for (let j = 0; j < ia.outputs.length && j < ib.outputs.length; j++) {
        const va = ia.outputs[j];
        const vb = ib.outputs[j];
        vb.loc = va.loc;
        vb.offset = va.offset;
        const root = va.aliasOf;
        vb.aliasOf = root != null && byId.has(root.id) ? byId.get(root.id) : null;
      }
    }
  }
  q.literalArenaBytes = p.literalArenaBytes;
  return q;
}

/** Frees the inline literal bytes decode allocated (a copy that is thrown away). */
function freeLiterals(q: Program): void {
  for (let mi = 0; mi < q.modules.length; mi++) {
    const m = q.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind == K_LITERAL && ins.ptr != 0) heap.free(ins.ptr);
      ins.ptr = 0;
    }
  }
}
