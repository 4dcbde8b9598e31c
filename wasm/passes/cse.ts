// cse: nodes with the same op, attributes and inputs become one (the first); random ops
// (OP_NO_FOLD) and nodes with subgraphs are left alone.
import {
  Attrs, ATTR_FLOAT, ATTR_FLOATS, ATTR_GRAPH, ATTR_INT, ATTR_INTS, ATTR_STRING, ATTR_STRINGS, ATTR_TENSOR,
} from "../ir/attrs";
import { Instruction, K_NODE, Module, Program, replaceUses } from "../ir/program";
import { OP_NO_FOLD } from "../ops/op";
import { Pass } from "./pass";

/** A canonical string of the attributes (sorted by name). */
export function attrsKey(attrs: Attrs): string {
  const names = attrs.names();
  names.sort();
  let s = "";
  for (let i = 0; i < names.length; i++) {
    const a = attrs.get(names[i])!;
    s += names[i] + "=" + a.kind.toString() + ":";
    if (a.kind == ATTR_INT) s += a.i.toString();
    else if (a.kind == ATTR_FLOAT) s += reinterpret<u32>(a.f).toString();
    else if (a.kind == ATTR_STRING) s += a.s.length.toString() + "'" + a.s;
    else if (a.kind == ATTR_INTS) {
      for (let j = 0; j < a.ints.length; j++) s += a.ints[j].toString() + ",";
    } else if (a.kind == ATTR_FLOATS) {
      for (let j = 0; j < a.floats.length; j++) s += reinterpret<u32>(a.floats[j]).toString() + ",";
    } else if (a.kind == ATTR_STRINGS) {
      for (let j = 0; j < a.strings.length; j++) s += a.strings[j].length.toString() + "'" + a.strings[j];
    } else if (a.kind == ATTR_TENSOR) {
      s += "t" + (a.t == null ? "0" : a.t!.ptr.toString());
    } else if (a.kind == ATTR_GRAPH) {
      s += "g" + a.g.toString();
    }
    s += ";";
  }
  return s;
}

function hasGraphAttr(ins: Instruction): bool {
  const names = ins.attrs.names();
  for (let i = 0; i < names.length; i++) if (ins.attrs.getGraph(names[i]) >= 0) return true;
  return false;
}

export class Cse extends Pass {
  constructor() {
    super("cse");
  }
  apply(prog: Program, m: Module): bool {
    const seen = new Map<string, Instruction>();
    const kept = new Array<Instruction>();
    let removed = false;
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind != K_NODE || ins.op == null || ins.op!.has(OP_NO_FOLD) || hasGraphAttr(ins)) {
        kept.push(ins);
        continue;
      }
      let key = ins.opName + "|" + ins.outputs.length.toString() + "|";
      for (let j = 0; j < ins.inputs.length; j++) {
        const x = ins.inputs[j];
        key += (x == null ? "-" : x.id.toString()) + ",";
      }
      key += "|" + attrsKey(ins.attrs);
      if (!seen.has(key)) {
        seen.set(key, ins);
        kept.push(ins);
        continue;
      }
      const first = seen.get(key);
      for (let j = 0; j < ins.outputs.length; j++) replaceUses(prog, ins.outputs[j], first.outputs[j]);
      removed = true;
    }
    if (removed) m.instrs = kept;
    return true;
  }
}
