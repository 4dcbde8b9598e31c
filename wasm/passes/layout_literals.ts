// layout_literals: gives every literal an offset in one literal arena (inline literals first, then host literals, one region per host literal id), so a target uploads all literals in a few large copies.
//
// A literal pass of the gpu target (after AMDMIGraphX's write_literals): baking turns weights
// into host literals, and this pass places them. Deterministic from the IR alone, so
// deserialize re-runs it. Regions are `align`-byte aligned; the total is
// `Program.literalArenaBytes`. Inline literals (folded constants, small initializers) come first
// so that their bytes form one block the host sends at once.
import { K_HOST_LITERAL, K_LITERAL, Module, Program } from "../ir/program";
import { Pass } from "./pass";

export class LayoutLiterals extends Pass {
  align: i64;
  constructor(align: i64) {
    super("layout_literals");
    this.align = align;
  }
  apply(prog: Program, m: Module): bool {
    // the whole program at once, when the manager reaches main; other modules were placed with it
    if (m.index != 0) return true;
    let end: i64 = 0;
    for (let pass = 0; pass < 2; pass++) {
      const hostAt = new Map<i32, i64>();
      for (let mi = 0; mi < prog.modules.length; mi++) {
        const mod = prog.modules[mi];
        for (let i = 0; i < mod.instrs.length; i++) {
          const ins = mod.instrs[i];
          if (pass == 0 && ins.kind == K_LITERAL) {
            ins.litOffset = end;
            end = this.next(end, ins.outputs[0].shape.bytes());
          } else if (pass == 1 && ins.kind == K_HOST_LITERAL) {
            if (hostAt.has(ins.hostId)) {
              ins.litOffset = hostAt.get(ins.hostId);
              continue;
            }
            ins.litOffset = end;
            hostAt.set(ins.hostId, end);
            end = this.next(end, ins.outputs[0].shape.bytes());
          } else if (ins.kind != K_LITERAL && ins.kind != K_HOST_LITERAL) {
            ins.litOffset = -1;
          }
        }
      }
    }
    prog.literalArenaBytes = end;
    return true;
  }
  next(at: i64, bytes: i64): i64 {
    const n = at + (bytes > 0 ? bytes : 1);
    return (n + this.align - 1) / this.align * this.align;
  }
}
